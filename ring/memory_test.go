package ring_test

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/mem"
	"github.com/fastfsd/fastfsd/ring"
	"github.com/fastfsd/fastfsd/ring/ringtest"
)

// TestQueueFollowsMemoryUpdates runs a worker the way the vhost-user device
// will — Reader.Enter, Queue.SetMemory, pop/complete/publish, Reader.Exit —
// while the control plane keeps adding and removing a second guest memory
// region (ADD_MEM_REG / REM_MEM_REG), each time a fresh mapping of the same
// memfd. Half the chains point into that region: they succeed when it is in
// the worker's table and fail with ErrAddress when not, and the worker must
// never touch a mapping after it is unmapped (that would be SIGSEGV).
func TestQueueFollowsMemoryUpdates(t *testing.T) {
	const size = 64
	const extraGPA, extraSize = 1 << 32, 64 << 10
	g, err := ringtest.NewGuest(size, allFeatures, 64<<10, false)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	extraFile, err := mem.NewMemfd("extra", extraSize)
	if err != nil {
		t.Fatal(err)
	}
	defer extraFile.Close()
	extraDesc := mem.RegionDesc{GuestAddr: extraGPA, Size: extraSize, UserAddr: 1 << 44}
	driverExtra, err := mem.Map(int(extraFile.Fd()), extraDesc)
	if err != nil {
		t.Fatal(err)
	}
	defer driverExtra.Close()
	driverTable, err := mem.NewTable(g.Region, driverExtra)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ringtest.NewDriver(driverTable, g.Config)
	if err != nil {
		t.Fatal(err)
	}

	// The back-end's memory: the ring region (shared with the guest's
	// mapping; it is never removed) and, on and off, the extra region.
	m := mem.NewMemory()
	ctx := context.Background()
	if err := m.SetRegions(ctx, []*mem.Region{g.Region}); err != nil {
		t.Fatal(err)
	}
	q, err := ring.New(m.Table(), g.Config)
	if err != nil {
		t.Fatal(err)
	}

	var stop atomic.Bool
	var served, missed atomic.Int64
	var workerErr error
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // worker
		defer wg.Done()
		r := m.NewReader()
		defer r.Close()
		var c ring.Chain
		for !stop.Load() {
			if err := q.SetMemory(r.Enter()); err != nil {
				workerErr = err
				return
			}
			for {
				ok, err := q.Pop(&c)
				if !ok {
					if err != nil {
						workerErr = err
						return
					}
					break
				}
				if err != nil {
					if !errors.Is(err, ring.ErrAddress) {
						workerErr = err
						return
					}
					missed.Add(1)
					q.Push(c.Head, 0)
					continue
				}
				var req [8]byte
				c.ReadAt(req[:], 0)
				n := c.WriteAt(req[:], 0) // touches the extra region's mapping
				q.Push(c.Head, uint32(n))
				served.Add(1)
			}
			q.Publish()
			r.Exit() // quiescent; a real worker would now wait for a kick
		}
	}()

	// Guest: keeps requests flowing, half of them into the extra region.
	wg.Add(1)
	go func() {
		defer wg.Done()
		seq := uint64(0)
		for !stop.Load() {
			for d.Free() >= 2 {
				in := g.Data + (seq%8)*64
				out := uint64(extraGPA) + (seq%8)*64
				if seq%2 == 0 {
					out = g.Data + 4096 + (seq%8)*64
				}
				binary.LittleEndian.PutUint64(d.Mem(in, 8), seq)
				d.Add([]ringtest.Buf{{Addr: in, Len: 8}, {Addr: out, Len: 8, Write: true}})
				seq++
			}
			d.Kick()
			for {
				if _, _, ok := d.Used(); !ok {
					break
				}
			}
		}
	}()

	// Control plane.
	deadline := time.Now().Add(time.Second)
	updates := 0
	for time.Now().Before(deadline) {
		r, err := mem.Map(int(extraFile.Fd()), extraDesc)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.AddRegion(ctx, r); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
		if err := m.RemoveRegion(ctx, extraDesc); err != nil {
			t.Fatal(err)
		}
		updates += 2
	}
	stop.Store(true)
	wg.Wait()
	if workerErr != nil {
		t.Fatal(workerErr)
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d memory updates, %d chains served, %d refused while the region was out", updates, served.Load(), missed.Load())
	if served.Load() == 0 {
		t.Fatal("worker served nothing")
	}
}
