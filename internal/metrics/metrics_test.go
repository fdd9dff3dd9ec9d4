package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"

	"github.com/fastfsd/fastfsd/internal/metrics/metricstest"
	"github.com/fastfsd/fastfsd/internal/stats"
)

// TestHandler counts a known set of requests into two doors and scrapes
// them through the handler with the Prometheus text parser.
func TestHandler(t *testing.T) {
	var reg stats.Registry
	fuse := reg.NewSet("fuse", func(op uint32) string { return map[uint32]string{1: "LOOKUP", 15: "READ"}[op] })
	p9 := reg.NewSet("9p", func(op uint32) string { return "Twalk" })
	w0, w1 := fuse.NewWorker(), fuse.NewWorker()
	for i := range 100 {
		w0.Observe(15, 0, 4096, 3*time.Microsecond)
		if i%4 == 0 {
			w1.Observe(1, uint32(syscall.ENOENT), 0, 700*time.Nanosecond)
		}
	}
	w1.SetDepth(5)
	p9.NewWorker().Observe(55, 0, 0, time.Millisecond)

	srv := httptest.NewServer(Handler(&reg))
	defer srv.Close()
	f := metricstest.Scrape(t, srv.URL)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"fastfsd_requests_total", []string{"door=fuse", "op=READ"}, 100},
		{"fastfsd_requests_total", []string{"door=fuse", "op=LOOKUP"}, 25},
		{"fastfsd_request_errors_total", []string{"door=fuse", "op=LOOKUP"}, 25},
		{"fastfsd_request_errors_total", []string{"door=fuse", "op=READ"}, 0},
		{"fastfsd_bytes_total", []string{"door=fuse", "op=READ"}, 409600},
		{"fastfsd_request_errno_total", []string{"door=fuse", "errno=ENOENT"}, 25},
		{"fastfsd_requests_total", []string{"door=9p", "op=Twalk"}, 1},
		{"fastfsd_worker_requests_total", []string{"door=fuse", "worker=0"}, 100},
		{"fastfsd_worker_requests_total", []string{"door=fuse", "worker=1"}, 25},
		{"fastfsd_worker_busy_seconds_total", []string{"door=fuse", "worker=0"}, 300e-6},
		{"fastfsd_worker_queue_depth", []string{"door=fuse", "worker=1"}, 5},
	} {
		got, ok := f.Value(c.name, c.labels...)
		if !ok || abs(got-c.want) > 1e-9 {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	h := f.Histogram("fastfsd_request_duration_seconds", "door=fuse", "op=READ")
	if h == nil || h.GetSampleCount() != 100 || abs(h.GetSampleSum()-300e-6) > 1e-12 {
		t.Fatalf("READ histogram %v", h)
	}
	// 3 µs lies in [2048, 4096) ns: every sample is in le=4.096e-06 and
	// none in the bucket below.
	for _, b := range h.Bucket {
		le := b.GetUpperBound()
		want := uint64(0)
		if le >= 4.096e-6 {
			want = 100
		}
		if b.GetCumulativeCount() != want {
			t.Errorf("READ bucket le=%g: %d, want %d", le, b.GetCumulativeCount(), want)
		}
	}
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_cpu_seconds_total", "process_open_fds"} {
		if f[name] == nil {
			t.Errorf("no %s: the Go runtime and process collectors are missing", name)
		}
	}

	// OpenMetrics when asked for, parseable, and ending in # EOF.
	req, _ := http.NewRequest("GET", srv.URL, nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := expfmt.ResponseFormat(resp.Header); ct.FormatType() != expfmt.TypeOpenMetrics {
		t.Fatalf("Accept openmetrics: got Content-Type %q", resp.Header.Get("Content-Type"))
	}
	if !strings.HasSuffix(string(body), "# EOF\n") || !strings.Contains(string(body), `fastfsd_requests_total{door="fuse",op="READ"} 100`) {
		t.Fatalf("OpenMetrics body lacks # EOF or the READ counter:\n%s", body)
	}
}

func TestErrnoName(t *testing.T) {
	if n := ErrnoName(uint32(syscall.ENOENT)); n != "ENOENT" {
		t.Errorf("ErrnoName(ENOENT) = %q", n)
	}
	if n := ErrnoName(255); n != "255" {
		t.Errorf("ErrnoName(255) = %q", n)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
