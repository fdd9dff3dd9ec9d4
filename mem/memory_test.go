package mem

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestMemoryConcurrentSwaps runs readers that touch every byte-page of every
// region of the table they entered while a writer replaces, adds and removes
// memfd-backed regions. A region unmapped too early kills the test with
// SIGSEGV; a region closed too early is also caught by the closed flag.
func TestMemoryConcurrentSwaps(t *testing.T) {
	m := NewMemory()
	defer m.Close(context.Background())

	const readers = 2
	var stop atomic.Bool
	var wg sync.WaitGroup
	var batches atomic.Int64
	errc := make(chan error, readers)
	for range readers {
		r := m.NewReader()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.Close()
			for !stop.Load() {
				tb := r.Enter()
				for i := range tb.Len() {
					d := tb.Region(i).Desc()
					for off := uint64(0); off < d.Size; off += 4096 {
						b, ok := tb.Slice(d.GuestAddr+off, 1)
						if !ok {
							errc <- errors.New("Slice failed inside a region")
							return
						}
						b[0]++ // write: a read-only or unmapped page would fault
					}
					if tb.Region(i).closed.Load() {
						errc <- errors.New("reader saw a closed region")
						return
					}
				}
				// Mostly stay online (Enter again without Exit, the
				// per-request pattern), sometimes go offline; yield so the
				// writer gets a CPU (GOMAXPROCS may be 1 or 2).
				if batches.Add(1)%3 == 0 {
					r.Exit()
				}
				runtime.Gosched()
			}
		}()
	}

	ctx := context.Background()
	newRegion := func(gpa uint64) *Region {
		r, err := NewMemfdRegion(RegionDesc{GuestAddr: gpa, Size: 16 << 10, UserAddr: gpa + 1<<40})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	deadline := time.Now().Add(time.Second)
	swaps := 0
	for ; time.Now().Before(deadline) || swaps < 50; swaps++ {
		switch swaps % 3 {
		case 0:
			if err := m.SetRegions(ctx, []*Region{newRegion(0), newRegion(1 << 20)}); err != nil {
				t.Fatal(err)
			}
		case 1:
			if err := m.AddRegion(ctx, newRegion(2<<20)); err != nil {
				t.Fatal(err)
			}
		case 2:
			d := RegionDesc{GuestAddr: 0, Size: 16 << 10, UserAddr: 1 << 40}
			if err := m.RemoveRegion(ctx, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	t.Logf("%d swaps, %d reader batches", swaps, batches.Load())
	if batches.Load() == 0 {
		t.Fatal("readers never ran")
	}
}

// TestSynchronizeWaitsForOnlineReader: an online reader holding the old table
// keeps its regions mapped; the writer's context expires, the region is
// retired, and the next Synchronize after the reader exits unmaps it.
func TestSynchronizeWaitsForOnlineReader(t *testing.T) {
	m := NewMemory()
	old, err := NewMemfdRegion(RegionDesc{GuestAddr: 0, Size: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetRegions(context.Background(), []*Region{old}); err != nil {
		t.Fatal(err)
	}
	r := m.NewReader()
	tb := r.Enter()
	view, ok := tb.Slice(0, 4096)
	if !ok {
		t.Fatal("no view")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err = m.SetRegions(ctx, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SetRegions with an online reader = %v, want deadline exceeded", err)
	}
	if old.closed.Load() {
		t.Fatal("region unmapped while a reader is online")
	}
	view[0] = 1 // still mapped
	if got := r.Enter(); got.Len() != 0 {
		t.Fatalf("re-Enter saw %d regions, want the new empty table", got.Len())
	}
	r.Exit()
	if err := m.Synchronize(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !old.closed.Load() {
		t.Fatal("retired region not unmapped after the grace period")
	}
	r.Close()
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.AddRegion(context.Background(), mustHeap(t, 0, 4096, 0)); err == nil {
		t.Fatal("AddRegion after Close succeeded")
	}
}

func TestMemoryUpdates(t *testing.T) {
	m := NewMemory()
	ctx := context.Background()
	a := mustHeap(t, 0, 4096, 0x1000_0000)
	b := mustHeap(t, 4096, 4096, 0x2000_0000)
	if err := m.AddRegion(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := m.AddRegion(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := m.AddRegion(ctx, mustHeap(t, 100, 1, 0x3000_0000)); err == nil {
		t.Fatal("AddRegion accepted an overlapping region")
	}
	if _, ok := m.Table().Slice(4000, 200); ok {
		t.Fatal("Slice straddled two regions")
	}
	if err := m.RemoveRegion(ctx, RegionDesc{GuestAddr: 0, Size: 4096, UserAddr: 0x1000_0001}); !errors.Is(err, ErrNoRegion) {
		t.Fatalf("RemoveRegion with a wrong user address = %v, want ErrNoRegion", err)
	}
	if err := m.RemoveRegion(ctx, a.Desc()); err != nil {
		t.Fatal(err)
	}
	if !a.closed.Load() || b.closed.Load() {
		t.Fatal("RemoveRegion closed the wrong region")
	}
	if m.Table().Len() != 1 || m.Table().Region(0) != b {
		t.Fatal("table after RemoveRegion is wrong")
	}
	// SetRegions keeping b retires nothing.
	c := mustHeap(t, 1<<20, 4096, 0x4000_0000)
	if err := m.SetRegions(ctx, []*Region{b, c}); err != nil {
		t.Fatal(err)
	}
	if b.closed.Load() {
		t.Fatal("SetRegions closed a region it kept")
	}
	if err := m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !b.closed.Load() || !c.closed.Load() {
		t.Fatal("Close left regions open")
	}
}

func TestReaderAllocs(t *testing.T) {
	m := NewMemory()
	r := m.NewReader()
	n := testing.AllocsPerRun(1000, func() {
		_ = r.Enter()
		r.Exit()
	})
	if n != 0 {
		t.Fatalf("Enter/Exit allocate %v, want 0", n)
	}
}

func BenchmarkReaderEnterExit(b *testing.B) {
	m := NewMemory()
	r := m.NewReader()
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Enter()
		r.Exit()
	}
}

// BenchmarkReaderEnter is the per-request cost when a worker passes a
// quiescent point before each request (Enter without Exit).
func BenchmarkReaderEnter(b *testing.B) {
	m := NewMemory()
	r := m.NewReader()
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Enter()
	}
}

// TestRetiredRegionAddedBack: a region retired by an update whose wait
// timed out, then added back, must not be unmapped by the next grace period.
func TestRetiredRegionAddedBack(t *testing.T) {
	m := NewMemory()
	r, err := NewMemfdRegion(RegionDesc{Size: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AddRegion(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	rd := m.NewReader()
	rd.Enter()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if err := m.RemoveRegion(ctx, r.Desc()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RemoveRegion = %v, want deadline exceeded", err)
	}
	rd.Exit()
	if err := m.AddRegion(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if r.closed.Load() {
		t.Fatal("a region back in the live table was unmapped")
	}
	b, ok := m.Table().Slice(0, 4096)
	if !ok {
		t.Fatal("region missing")
	}
	b[4095] = 1
	if err := m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !r.closed.Load() {
		t.Fatal("Close left the region mapped")
	}
}
