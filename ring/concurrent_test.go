package ring_test

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/ring"
	"github.com/fastfsd/fastfsd/ring/ringtest"
)

// TestConcurrentDriverDevice moves chains between a driver goroutine and a
// device goroutine that share nothing but guest memory (heap-backed, so
// under -race the detector checks that the ring's atomics order every
// descriptor, request and reply byte). Half the chains are indirect. The
// device runs the kick-mode loop (Publish, EnableNotify, "sleep" by
// spinning on a kick counter), so a lost kick or interrupt shows up as a
// hang, which the watchdog turns into a failure.
func TestConcurrentDriverDevice(t *testing.T) {
	chains := 1_000_000
	if testing.Short() {
		chains = 100_000
	}
	t.Run("event_idx", func(t *testing.T) { runConcurrent(t, chains, allFeatures) })
	// Flag-based suppression (no EVENT_IDX): a quarter as many.
	t.Run("flags", func(t *testing.T) {
		runConcurrent(t, chains/4, ring.FeatureVersion1|ring.FeatureIndirectDesc)
	})
}

func runConcurrent(t *testing.T, chains int, features uint64) {
	const size = 256
	const inflight = 64 // request slots: each has a request, a reply and an indirect table page
	g, err := ringtest.NewGuest(size, features, 3*inflight*4096, true)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	d, err := ringtest.NewDriver(g.Table, g.Config)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ring.New(g.Table, g.Config)
	if err != nil {
		t.Fatal(err)
	}
	slot := func(i, part int) uint64 { return g.Data + uint64(3*i+part)*4096 }

	// Kicks and interrupts: counters standing in for the eventfds.
	var kicks, calls atomic.Uint64
	var done atomic.Bool
	var wg sync.WaitGroup
	var deviceErr error
	served := 0
	wg.Add(1)
	go func() { // device
		defer wg.Done()
		var c ring.Chain
		var req [16]byte
		seenKicks := kicks.Load()
		for !done.Load() {
			for {
				ok, err := q.Pop(&c)
				if !ok {
					if err != nil {
						deviceErr = err
						return
					}
					break
				}
				if err != nil {
					deviceErr = fmt.Errorf("valid chain rejected: %w", err)
					return
				}
				if c.ReadAt(req[:], 0) != 16 {
					deviceErr = fmt.Errorf("short request: %d readable bytes", c.ReadableLen())
					return
				}
				seq := binary.LittleEndian.Uint64(req[:])
				var rep [8]byte
				binary.LittleEndian.PutUint64(rep[:], ^seq)
				n := c.WriteAt(rep[:], 0)
				q.Push(c.Head, uint32(n))
				// Publish mid-batch too, so the driver reaps and adds while
				// the device is still popping.
				if served++; served%8 == 0 && q.Publish() {
					calls.Add(1)
				}
			}
			if q.Publish() {
				calls.Add(1)
			}
			if q.EnableNotify() {
				continue
			}
			// Sleep until a kick (or the end).
			for kicks.Load() == seenKicks && !done.Load() {
				runtime.Gosched()
			}
			seenKicks = kicks.Load()
			q.DisableNotify()
		}
	}()

	watchdog := time.AfterFunc(5*time.Minute, func() {
		panic(fmt.Sprintf("ring: driver/device test hung: %d kicks, %d calls, used.idx %d, base %d", kicks.Load(), calls.Load(), d.UsedIdx(), q.Base()))
	})
	defer watchdog.Stop()

	// Driver: keep up to inflight requests outstanding; request i lives in
	// slot i%inflight; completions come back in order (one device worker).
	sent, recv := 0, 0
	var heads [inflight]uint16
	seenCalls := calls.Load()
	for recv < chains {
		added := 0
		for sent < chains && sent-recv < inflight {
			s := sent % inflight
			binary.LittleEndian.PutUint64(d.Mem(slot(s, 0), 16), uint64(sent))
			bufs := [...]ringtest.Buf{
				{Addr: slot(s, 0), Len: 8},
				{Addr: slot(s, 0) + 8, Len: 8},
				{Addr: slot(s, 1), Len: 8, Write: true},
			}
			var head uint16
			var err error
			if sent%2 == 1 && features&ring.FeatureIndirectDesc != 0 {
				head, err = d.AddIndirect(slot(s, 2), bufs[:])
			} else {
				head, err = d.Add(bufs[:])
			}
			if err != nil {
				t.Fatalf("Add %d: %v", sent, err)
			}
			heads[s] = head
			sent++
			added++
		}
		if added > 0 && d.Kick() {
			kicks.Add(1)
		}
		got := 0
		for {
			id, n, ok := d.Used()
			if !ok {
				break
			}
			s := recv % inflight
			if id != heads[s] || n != 8 {
				t.Fatalf("request %d: used {%d, %d}, want {%d, 8}", recv, id, n, heads[s])
			}
			if rep := binary.LittleEndian.Uint64(d.Mem(slot(s, 1), 8)); rep != ^uint64(recv) {
				t.Fatalf("request %d: reply %#x", recv, rep)
			}
			recv++
			got++
		}
		if got == 0 {
			// Wait for an interrupt as a guest would: re-enable, re-check,
			// then wait. (used_event = next used element we expect.)
			d.SetUsedEvent(d.UsedLast())
			if d.UsedIdx() != d.UsedLast() {
				continue
			}
			if sent-recv < inflight && sent < chains {
				continue
			}
			for calls.Load() == seenCalls {
				runtime.Gosched()
			}
			seenCalls = calls.Load()
		}
	}
	done.Store(true)
	wg.Wait()
	if deviceErr != nil {
		t.Fatal(deviceErr)
	}
	if served != chains {
		t.Fatalf("device served %d chains, want %d", served, chains)
	}
	t.Logf("%d chains, %d kicks, %d interrupts", chains, kicks.Load(), calls.Load())
}
