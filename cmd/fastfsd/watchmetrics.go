package main

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fastfsd/fastfsd/fs/passthrough"
)

// watchCollector serves a --watch watcher's counts (passthrough.WatchStats)
// at --metrics. It is registered before the watcher exists (the metrics
// endpoint starts first) and reports nothing until set is called.
type watchCollector struct {
	w atomic.Pointer[passthrough.Watcher]
}

var (
	watchEventsDesc = prometheus.NewDesc("fastfsd_watch_events_total",
		"fanotify events the --watch watcher read.", nil, nil)
	watchOwnDesc = prometheus.NewDesc("fastfsd_watch_own_events_total",
		"Events of changes the daemon made itself for the client, skipped (the client's kernel knows them).", nil, nil)
	watchUnknownDesc = prometheus.NewDesc("fastfsd_watch_unknown_total",
		"Events about inodes the client does not know (nothing cached), skipped.", nil, nil)
	watchNotifyDesc = prometheus.NewDesc("fastfsd_watch_notifications_total",
		"Cache invalidations sent to the client's kernel, by kind: entry (a name created, deleted or moved), data (an inode's data and attributes), attr (its attributes only).", []string{"kind"}, nil)
	watchErrorsDesc = prometheus.NewDesc("fastfsd_watch_notify_errors_total",
		"Invalidations the kernel refused (other than ENOENT, nothing cached).", nil, nil)
	watchOverflowsDesc = prometheus.NewDesc("fastfsd_watch_overflows_total",
		"fanotify queue overflows: events were lost and every inode the client knows was invalidated.", nil, nil)
)

// set makes c report w's counts.
func (c *watchCollector) set(w *passthrough.Watcher) { c.w.Store(w) }

// Describe sends every metric's descriptor.
func (c *watchCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{watchEventsDesc, watchOwnDesc, watchUnknownDesc, watchNotifyDesc, watchErrorsDesc, watchOverflowsDesc} {
		ch <- d
	}
}

// Collect reads the watcher's atomic counters.
func (c *watchCollector) Collect(ch chan<- prometheus.Metric) {
	w := c.w.Load()
	if w == nil {
		return
	}
	s := w.Stats()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(watchEventsDesc, s.Events)
	counter(watchOwnDesc, s.Own)
	counter(watchUnknownDesc, s.Unknown)
	counter(watchNotifyDesc, s.Entries, "entry")
	counter(watchNotifyDesc, s.Data, "data")
	counter(watchNotifyDesc, s.Attrs, "attr")
	counter(watchErrorsDesc, s.Errors)
	counter(watchOverflowsDesc, s.Overflows)
}
