package stats

import (
	"strings"
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
				wk.Observe(3, false, 0, 1500*time.Nanosecond)
				wk.Observe(15, i%10 == 0, 4096, 3*time.Microsecond)
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
	var b strings.Builder
	if err := r.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		`fastfsd_requests_total{door="fuse",op="READ"} 4000`,
		`fastfsd_request_errors_total{door="fuse",op="READ"} 400`,
		`fastfsd_bytes_total{door="fuse",op="READ"} 16384000`,
		`fastfsd_request_duration_seconds_bucket{door="fuse",op="GETATTR",le="+Inf"} 4000`,
		`fastfsd_request_duration_seconds_count{door="fuse",op="GETATTR"} 4000`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q:\n%s", want, out)
		}
	}
}

func TestObserveAllocs(t *testing.T) {
	w := new(Set).NewWorker()
	if n := testing.AllocsPerRun(1000, func() { w.Observe(15, false, 4096, time.Microsecond) }); n != 0 {
		t.Fatalf("Observe allocates %v times per call, want 0", n)
	}
}

func BenchmarkObserve(b *testing.B) {
	w := new(Set).NewWorker()
	b.ReportAllocs()
	for b.Loop() {
		w.Observe(15, false, 4096, time.Microsecond)
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
			w.Observe(15, false, 4096, time.Microsecond)
		}
	})
}
