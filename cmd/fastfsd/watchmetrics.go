package main

import (
	"sync/atomic"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/passthrough"
)

// watchCollector serves the --watch watchers' counts
// (passthrough.WatchStats, summed over the watchers: one per filesystem
// holding shares, so an event is counted once however many shares are on
// its filesystem) at --metrics.
// It is registered before the watchers exist (the metrics endpoint starts
// first) and reports nothing until set is called.
type watchCollector struct {
	w atomic.Pointer[[]*passthrough.Watcher]
}

var (
	watchEventsDesc = prometheus.NewDesc("fastfsd_watch_events_total",
		"fanotify events the --watch watchers read: each once, however many shares are on its filesystem (one watcher per filesystem).", nil, nil)
	watchOwnDesc = prometheus.NewDesc("fastfsd_watch_own_events_total",
		"Events of changes the daemon made itself for the client, skipped (the client's kernel knows them).", nil, nil)
	watchUnknownDesc = prometheus.NewDesc("fastfsd_watch_unknown_total",
		"File ids in events naming an inode no share's client knows (nothing cached), skipped.", nil, nil)
	watchNotifyDesc = prometheus.NewDesc("fastfsd_watch_notifications_total",
		"Cache invalidations sent to the client's kernel, by kind: entry (a name created, deleted or moved), data (an inode's data and attributes), attr (its attributes only).", []string{"kind"}, nil)
	watchErrorsDesc = prometheus.NewDesc("fastfsd_watch_notify_errors_total",
		"Invalidations the kernel refused (other than ENOENT, nothing cached).", nil, nil)
	watchOverflowsDesc = prometheus.NewDesc("fastfsd_watch_overflows_total",
		"fanotify queue overflows: events were lost and every inode the client knows was invalidated.", nil, nil)
)

// set makes c report ws' counts; ws must not change afterwards.
func (c *watchCollector) set(ws []*passthrough.Watcher) { c.w.Store(&ws) }

// Describe sends every metric's descriptor.
func (c *watchCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{watchEventsDesc, watchOwnDesc, watchUnknownDesc, watchNotifyDesc, watchErrorsDesc, watchOverflowsDesc} {
		ch <- d
	}
}

// Collect reads the watcher's atomic counters.
func (c *watchCollector) Collect(ch chan<- prometheus.Metric) {
	ws := c.w.Load()
	if ws == nil {
		return
	}
	s := sumWatchStats(*ws)
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

// sumWatchStats adds up the counts of ws.
func sumWatchStats(ws []*passthrough.Watcher) passthrough.WatchStats {
	var t passthrough.WatchStats
	for _, w := range ws {
		s := w.Stats()
		t.Events += s.Events
		t.Own += s.Own
		t.Unknown += s.Unknown
		t.Notified += s.Notified
		t.Entries += s.Entries
		t.Data += s.Data
		t.Attrs += s.Attrs
		t.Overflows += s.Overflows
		t.Errors += s.Errors
	}
	return t
}

// shareNotifier sends a share's watcher's notifications, which name the
// share backend's inode IDs, under the IDs the VFS gave the client for
// them (fs/vfs's inode-space split). An ID the VFS cannot carry was never
// given to the client: its notification is answered ENOENT, as the kernel
// answers one about an inode it does not know.
type shareNotifier struct {
	n   passthrough.Notifier
	ids func(fs.Inode) (fs.Inode, bool)
}

func (s shareNotifier) NotifyInvalInode(ino uint64, off, length int64) error {
	id, ok := s.ids(fs.Inode(ino))
	if !ok {
		return syscall.ENOENT
	}
	return s.n.NotifyInvalInode(uint64(id), off, length)
}

func (s shareNotifier) NotifyInvalEntry(parent uint64, name []byte, expireOnly bool) error {
	id, ok := s.ids(fs.Inode(parent))
	if !ok {
		return syscall.ENOENT
	}
	return s.n.NotifyInvalEntry(uint64(id), name, expireOnly)
}
