// Package metrics exposes the daemon's counters (internal/stats) to
// Prometheus: a collector that reads the lock-free per-worker counters only
// when scraped, plus the Go runtime and process collectors, served by
// promhttp with content negotiation (the Prometheus text format, or
// OpenMetrics when the scraper asks for it).
//
// The data plane never sees this package: it counts into stats.Worker
// (atomic adds, no allocation); everything here runs in the scrape.
package metrics

import (
	"net/http"
	"strconv"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/internal/stats"
)

var (
	opLabels = []string{"door", "op"}

	requestsDesc = prometheus.NewDesc("fastfsd_requests_total",
		"Requests served, by door and operation (FUSE opcode or 9P message).", opLabels, nil)
	errorsDesc = prometheus.NewDesc("fastfsd_request_errors_total",
		"Requests answered with an error, by door and operation.", opLabels, nil)
	bytesDesc = prometheus.NewDesc("fastfsd_bytes_total",
		"Payload bytes moved (read and write data), by door and operation.", opLabels, nil)
	durationDesc = prometheus.NewDesc("fastfsd_request_duration_seconds",
		"Time the daemon spent serving a request, from decode to reply, by door and operation.", opLabels, nil)
	errnoDesc = prometheus.NewDesc("fastfsd_request_errno_total",
		"Requests answered with an error, by door and errno name.", []string{"door", "errno"}, nil)
	workerRequestsDesc = prometheus.NewDesc("fastfsd_worker_requests_total",
		"Requests served by one worker (a /dev/fuse fd, io_uring queue, virtqueue slot or 9P connection worker).", []string{"door", "worker"}, nil)
	workerBusyDesc = prometheus.NewDesc("fastfsd_worker_busy_seconds_total",
		"Time one worker spent serving requests; its rate is the worker's utilisation.", []string{"door", "worker"}, nil)
	workerDepthDesc = prometheus.NewDesc("fastfsd_worker_queue_depth",
		"Requests the worker found waiting when it last looked at its queue (virtqueue or io_uring batch; 0 where the transport cannot tell).", []string{"door", "worker"}, nil)
)

// Collector is a prometheus.Collector over a stats.Registry.
type Collector struct {
	reg *stats.Registry
}

// NewCollector returns a collector of reg's Sets.
func NewCollector(reg *stats.Registry) *Collector { return &Collector{reg: reg} }

// Describe sends every metric's descriptor.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{requestsDesc, errorsDesc, bytesDesc, durationDesc, errnoDesc, workerRequestsDesc, workerBusyDesc, workerDepthDesc} {
		ch <- d
	}
}

// Collect reads the counters. Histogram buckets are the stats package's
// power-of-two slots, every one of them always present (so rate() and
// histogram_quantile see the same le set in every scrape).
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.reg.Sets() {
		for _, t := range s.Totals() {
			ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(t.Count), s.Door, t.Name)
			ch <- prometheus.MustNewConstMetric(errorsDesc, prometheus.CounterValue, float64(t.Errors), s.Door, t.Name)
			ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(t.Bytes), s.Door, t.Name)
			buckets := make(map[float64]uint64, stats.HistSlots)
			var cum uint64
			for i, n := range t.Hist[:stats.HistSlots-1] {
				cum += n
				buckets[stats.SlotUpper(i).Seconds()] = cum
			}
			ch <- prometheus.MustNewConstHistogram(durationDesc, t.Count, t.Sum.Seconds(), buckets, s.Door, t.Name)
		}
		for _, e := range s.Errnos() {
			ch <- prometheus.MustNewConstMetric(errnoDesc, prometheus.CounterValue, float64(e.Count), s.Door, ErrnoName(e.Errno))
		}
		for _, w := range s.Workers() {
			idx := strconv.Itoa(w.Index)
			ch <- prometheus.MustNewConstMetric(workerRequestsDesc, prometheus.CounterValue, float64(w.Requests), s.Door, idx)
			ch <- prometheus.MustNewConstMetric(workerBusyDesc, prometheus.CounterValue, w.Busy.Seconds(), s.Door, idx)
			ch <- prometheus.MustNewConstMetric(workerDepthDesc, prometheus.GaugeValue, float64(w.Depth), s.Door, idx)
		}
	}
}

// ErrnoName is errno's symbolic name (ENOENT), or its number if it has none.
func ErrnoName(e uint32) string {
	if n := unix.ErrnoName(syscall.Errno(e)); n != "" {
		return n
	}
	return strconv.FormatUint(uint64(e), 10)
}

// NewRegistry returns a Prometheus registry holding a Collector of reg,
// the Go runtime and process collectors, and extra (the daemon's own, such
// as the --watch watcher's counts).
func NewRegistry(reg *stats.Registry, extra ...prometheus.Collector) *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(
		NewCollector(reg),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	r.MustRegister(extra...)
	return r
}

// Handler serves reg's metrics and extra's: the Prometheus text format by
// default, OpenMetrics when the request's Accept header asks for it.
func Handler(reg *stats.Registry, extra ...prometheus.Collector) http.Handler {
	r := NewRegistry(reg, extra...)
	return promhttp.HandlerFor(r, promhttp.HandlerOpts{
		EnableOpenMetrics: true,
		ErrorHandling:     promhttp.ContinueOnError,
	})
}
