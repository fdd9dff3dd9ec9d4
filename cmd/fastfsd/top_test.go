package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/metrics"
	"github.com/fastfsd/fastfsd/internal/stats"
)

// TestTopMetrics: fastfsd top's metrics source turns two scrapes into the
// interval's rate, error rate and latencies per operation.
func TestTopMetrics(t *testing.T) {
	var reg stats.Registry
	w := reg.NewSet("fuse", func(op uint32) string { return map[uint32]string{1: "LOOKUP", 15: "READ"}[op] }).NewWorker()
	w.Observe(1, 0, 0, time.Millisecond) // before the baseline: not in the interval
	srv := httptest.NewServer(metrics.Handler(&reg))
	defer srv.Close()
	src := &metricsSource{url: srv.URL, client: &http.Client{Timeout: 5 * time.Second}}
	if f, err := src.sample(); err != nil || len(f.rows) != 0 {
		t.Fatalf("baseline: %+v %v", f, err)
	}
	for i := range 100 {
		var errno uint32
		if i%10 == 0 {
			errno = uint32(syscall.EIO)
		}
		w.Observe(15, errno, 4096, 3*time.Microsecond)
	}
	time.Sleep(100 * time.Millisecond)
	f, err := src.sample()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.rows) != 1 || f.rows[0].name != "fuse READ" {
		t.Fatalf("rows %+v, want only fuse READ (LOOKUP did nothing in the interval)", f.rows)
	}
	r := f.rows[0]
	dt := 100 / r.rate // seconds the interval lasted, as top measured it
	if dt < 0.1 || dt > 5 || r.errRate*dt < 9.99 || r.errRate*dt > 10.01 {
		t.Errorf("rate %.1f/s err %.1f/s: not 100 and 10 requests over one interval", r.rate, r.errRate)
	}
	if r.mean < 3*time.Microsecond-time.Nanosecond || r.mean > 3*time.Microsecond+time.Nanosecond {
		t.Errorf("mean %v, want 3µs", r.mean)
	}
	// 3 µs lies in the (2.048 µs, 4.096 µs] bucket.
	for _, p := range []time.Duration{r.p50, r.p99} {
		if p < 2048 || p > 4096 {
			t.Errorf("percentile %v outside the bucket holding every sample", p)
		}
	}
	var b strings.Builder
	f.write(&b, 10)
	if !strings.Contains(b.String(), "fuse READ") {
		t.Errorf("frame:\n%s", b.String())
	}
}

func TestTopFlags(t *testing.T) {
	for _, args := range [][]string{{}, {"--metrics", "x:1", "--mount", "/"}, {"--metrics", "x:1", "--interval", "1ms"}} {
		if err := runTop(args); err == nil {
			t.Errorf("fastfsd top %q accepted", args)
		}
	}
}
