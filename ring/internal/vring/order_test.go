package vring

import (
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestStoreLoadOrder is the store-buffering litmus test of virtio's
// notification suppression, on memory outside the Go heap as guest memory
// is: the device stores used.idx ([Word.Store]) then loads used_event; the
// driver stores used_event ([Field.Store]) then loads used.idx. In every
// round at least one of them must see the other's store, or the device
// skips the interrupt while the driver goes to sleep waiting for it. Built
// with -race, an atomic.StoreUint32 in Word.Store let the device's load
// pass its store (golang/go#58020): this test failed within a few
// thousand rounds then. It needs two CPUs running both goroutines at once
// to show anything, and runs for at most 200,000 rounds or 2 s.
func TestStoreLoadOrder(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 || runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs running at once to observe store→load reordering")
	}
	page, err := syscall.Mmap(-1, 0, 4096, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(page)
	// Two cache lines apart, as used.idx and used_event are.
	hdr, ok := NewWord(page[0:4])
	if !ok {
		t.Fatal("NewWord")
	}
	ev, ok := NewField(page[128:132], 0)
	if !ok {
		t.Fatal("NewField")
	}
	idx, _ := NewField(page[0:4], 2)

	const rounds = 200000
	// arrived[side] is the last round that side reached (Go heap: not the
	// memory under test); both run round r's store and load at once once
	// both arrived, and reaching r+1 means r is done.
	var arrived [2]atomic.Uint32
	var seenEv, seenIdx [rounds]uint16
	var done atomic.Int64
	deadline := time.Now().Add(2 * time.Second)
	var stop atomic.Bool
	side := func(me int, op func(r int)) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for r := 1; r < rounds; r++ {
			arrived[me].Store(uint32(r))
			for spin := 0; arrived[1-me].Load() < uint32(r); spin++ {
				if spin&1023 == 1023 && stop.Load() {
					return
				}
			}
			op(r)
			if me == 0 {
				done.Store(int64(r))
				if r&255 == 0 && time.Now().After(deadline) {
					stop.Store(true)
					return
				}
			}
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // device
		defer wg.Done()
		side(0, func(r int) {
			hdr.Store(0, uint16(r)) // used.idx = r
			seenEv[r] = ev.Load()
		})
	}()
	go func() { // driver
		defer wg.Done()
		side(1, func(r int) {
			for !ev.Store(uint16(r)) { // used_event = r
			}
			seenIdx[r] = idx.Load()
		})
	}()
	wg.Wait()
	n := int(done.Load()) - 1 // the driver may not have finished the last one
	for r := 1; r <= n; r++ {
		if seenEv[r] != uint16(r) && seenIdx[r] != uint16(r) {
			t.Fatalf("round %d: the device loaded used_event %d after storing used.idx %d, and the driver loaded used.idx %d after storing used_event %d: neither saw the other's store (a lost interrupt)",
				r, seenEv[r], r, seenIdx[r], r)
		}
	}
	t.Logf("%d rounds, no store→load reordering seen", n)
}
