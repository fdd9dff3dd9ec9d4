package stats

import (
	"sync"
	"testing"
	"time"
)

func TestObserveAndTotals(t *testing.T) {
	var r Registry
	s := r.NewSet("fuse", func(op uint32) string { return map[uint32]string{3: "GETATTR", 15: "READ"}[op] })
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wk := s.NewWorker()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				wk.Observe(3, 0, 0, 1500*time.Nanosecond)
				errno := uint32(0)
				if i%10 == 0 {
					errno = 5 // EIO
				}
				wk.Observe(15, errno, 4096, 3*time.Microsecond)
			}
		}()
	}
	wg.Wait()
	tot := s.Totals()
	if len(tot) != 2 {
		t.Fatalf("Totals = %+v", tot)
	}
	for _, o := range tot {
		if o.Count != 4000 {
			t.Errorf("%s count %d, want 4000", o.Name, o.Count)
		}
		if o.Name == "READ" && (o.Bytes != 4000*4096 || o.Errors != 400) {
			t.Errorf("READ bytes %d errors %d", o.Bytes, o.Errors)
		}
		if o.Name == "GETATTR" && o.Hist[10] != 4000 { // 1500 ns in [1024, 2048)
			t.Errorf("GETATTR hist %v", o.Hist)
		}
	}
	errs := s.Errnos()
	if len(errs) != 1 || errs[0].Errno != 5 || errs[0].Count != 400 {
		t.Errorf("Errnos = %+v, want 400 × errno 5", errs)
	}
	var sum uint64
	for _, w := range s.Workers() {
		if w.Requests != 2000 || w.Busy != 1000*(1500+3000)*time.Nanosecond {
			t.Errorf("worker %d: %d requests busy %v, want 2000 and 4.5ms", w.Index, w.Requests, w.Busy)
		}
		sum += w.Requests
	}
	if sum != 8000 {
		t.Errorf("workers served %d, want 8000", sum)
	}
}

// TestRelease: a released Worker is handed out again, keeping its counts,
// so workers that come and go do not grow the Set.
func TestRelease(t *testing.T) {
	var r Registry
	s := r.NewSet("9p", nil)
	if r.NewSet("9p", nil) != s {
		t.Fatal("a second NewSet of the same door made a second Set")
	}
	for i := range 100 {
		w := s.NewWorker()
		w.Observe(uint32(i%3), 0, 0, time.Microsecond)
		s.Release(w)
	}
	if ws := s.Workers(); len(ws) != 1 || ws[0].Requests != 100 {
		t.Fatalf("workers %+v, want one that served 100", ws)
	}
	a, b := s.NewWorker(), s.NewWorker()
	if a == b || len(s.Workers()) != 2 {
		t.Fatal("two live workers share counters")
	}
}

func TestObserveAllocs(t *testing.T) {
	w := new(Set).NewWorker()
	if n := testing.AllocsPerRun(1000, func() {
		w.Observe(15, 0, 4096, time.Microsecond)
		w.Observe(1, 2, 0, time.Microsecond) // a failure, counted by errno
		w.SetDepth(3)
	}); n != 0 {
		t.Fatalf("Observe allocates %v times per call, want 0", n)
	}
}

func BenchmarkObserve(b *testing.B) {
	w := new(Set).NewWorker()
	b.ReportAllocs()
	for b.Loop() {
		w.Observe(15, 0, 4096, time.Microsecond)
	}
}

// BenchmarkObserveParallel checks that workers do not slow each other down
// (no shared cache line on the hot path).
func BenchmarkObserveParallel(b *testing.B) {
	s := new(Set)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := s.NewWorker()
		for pb.Next() {
			w.Observe(15, 0, 4096, time.Microsecond)
		}
	})
}
