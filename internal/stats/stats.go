// Package stats holds the daemon's hot-path counters: per worker, per
// operation, requests, errors, bytes and a log2 service-time histogram.
//
// Each Worker is written by exactly one goroutine (its data-plane worker)
// and read by any (the metrics endpoint). Counters are atomics so a reader
// sees whole values; since each Worker has one writer they never contend,
// and Workers are padded to cache lines so two workers never share one.
// Observe allocates nothing. Readers sum over workers only when asked.
//
// stats is a leaf: it imports nothing of fastfs, so the data plane may import
// it and perf and cmd may read it.
package stats

import (
	"fmt"
	"io"
	"math/bits"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/cpu"
)

// MaxOps bounds operation codes; larger codes are counted under MaxOps-1.
const MaxOps = 64

// HistSlots is the number of log2 buckets: slot i counts service times in
// [2^i, 2^(i+1)) ns; the last slot also takes everything above.
const HistSlots = 36 // up to ~69 s

type opCounters struct {
	count  atomic.Uint64
	errors atomic.Uint64
	bytes  atomic.Uint64
	sumNs  atomic.Uint64
	hist   [HistSlots]atomic.Uint64
}

// Worker is one worker's counters. Only its worker may call Observe.
type Worker struct {
	_   cpu.CacheLinePad
	ops [MaxOps]opCounters
	_   cpu.CacheLinePad
}

// Observe counts one served request of operation op that took d, moved n
// payload bytes and failed or not.
func (w *Worker) Observe(op uint32, failed bool, n uint64, d time.Duration) {
	if op >= MaxOps {
		op = MaxOps - 1
	}
	c := &w.ops[op]
	c.count.Add(1)
	if failed {
		c.errors.Add(1)
	}
	if n != 0 {
		c.bytes.Add(n)
	}
	ns := uint64(max(d, 0))
	c.sumNs.Add(ns)
	slot := 0
	if ns > 0 {
		slot = min(bits.Len64(ns)-1, HistSlots-1)
	}
	c.hist[slot].Add(1)
}

// Set is the counters of one door (fuse, virtiofs, 9p): a Worker per worker.
type Set struct {
	Door string              // label value, e.g. "fuse"
	Name func(uint32) string // operation names for the labels

	mu sync.Mutex
	// workers is guarded by mu; the Workers themselves are lock-free.
	workers []*Worker
}

// NewWorker adds and returns a Worker for one more worker of this door.
func (s *Set) NewWorker() *Worker {
	w := new(Worker)
	s.mu.Lock()
	s.workers = append(s.workers, w)
	s.mu.Unlock()
	return w
}

// OpTotals is one operation's counters summed over a Set's workers.
type OpTotals struct {
	Op     uint32
	Name   string
	Count  uint64
	Errors uint64
	Bytes  uint64
	Sum    time.Duration
	Hist   [HistSlots]uint64
}

// Totals sums the workers' counters per operation, for operations seen.
func (s *Set) Totals() []OpTotals {
	s.mu.Lock()
	ws := append([]*Worker(nil), s.workers...)
	s.mu.Unlock()
	var out []OpTotals
	for op := uint32(0); op < MaxOps; op++ {
		t := OpTotals{Op: op}
		for _, w := range ws {
			c := &w.ops[op]
			t.Count += c.count.Load()
			t.Errors += c.errors.Load()
			t.Bytes += c.bytes.Load()
			t.Sum += time.Duration(c.sumNs.Load())
			for i := range t.Hist {
				t.Hist[i] += c.hist[i].Load()
			}
		}
		if t.Count == 0 {
			continue
		}
		t.Name = fmt.Sprint(op)
		if s.Name != nil {
			t.Name = s.Name(op)
		}
		out = append(out, t)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Count > out[b].Count })
	return out
}

// Registry is every Set the daemon serves, for the metrics endpoint.
type Registry struct {
	mu   sync.Mutex
	sets []*Set // guarded by mu
}

// Default is the process's registry.
var Default = new(Registry)

// NewSet registers and returns a Set for a door.
func (r *Registry) NewSet(door string, name func(uint32) string) *Set {
	s := &Set{Door: door, Name: name}
	r.mu.Lock()
	r.sets = append(r.sets, s)
	r.mu.Unlock()
	return s
}

// WritePrometheus writes every Set in the Prometheus text exposition format
// (version 0.0.4): requests, errors and bytes as counters, service time as a
// histogram in seconds with power-of-two buckets.
func (r *Registry) WritePrometheus(w io.Writer) error {
	r.mu.Lock()
	sets := append([]*Set(nil), r.sets...)
	r.mu.Unlock()
	type row struct {
		set *Set
		t   OpTotals
	}
	var rows []row
	for _, s := range sets {
		for _, t := range s.Totals() {
			rows = append(rows, row{s, t})
		}
	}
	bw := &errWriter{w: w}
	bw.printf("# HELP fastfsd_requests_total Requests served, by door and operation.\n# TYPE fastfsd_requests_total counter\n")
	for _, r := range rows {
		bw.printf("fastfsd_requests_total{door=%q,op=%q} %d\n", r.set.Door, r.t.Name, r.t.Count)
	}
	bw.printf("# HELP fastfsd_request_errors_total Requests answered with an error.\n# TYPE fastfsd_request_errors_total counter\n")
	for _, r := range rows {
		bw.printf("fastfsd_request_errors_total{door=%q,op=%q} %d\n", r.set.Door, r.t.Name, r.t.Errors)
	}
	bw.printf("# HELP fastfsd_bytes_total Payload bytes moved (read and write data).\n# TYPE fastfsd_bytes_total counter\n")
	for _, r := range rows {
		if r.t.Bytes != 0 {
			bw.printf("fastfsd_bytes_total{door=%q,op=%q} %d\n", r.set.Door, r.t.Name, r.t.Bytes)
		}
	}
	bw.printf("# HELP fastfsd_request_duration_seconds Time the daemon spent serving a request.\n# TYPE fastfsd_request_duration_seconds histogram\n")
	for _, r := range rows {
		var cum uint64
		last := 0
		for i, c := range r.t.Hist {
			if c != 0 {
				last = i
			}
		}
		for i := 0; i <= last; i++ {
			cum += r.t.Hist[i]
			le := float64(uint64(1)<<(i+1)) / 1e9
			bw.printf("fastfsd_request_duration_seconds_bucket{door=%q,op=%q,le=\"%g\"} %d\n", r.set.Door, r.t.Name, le, cum)
		}
		bw.printf("fastfsd_request_duration_seconds_bucket{door=%q,op=%q,le=\"+Inf\"} %d\n", r.set.Door, r.t.Name, r.t.Count)
		bw.printf("fastfsd_request_duration_seconds_sum{door=%q,op=%q} %g\n", r.set.Door, r.t.Name, r.t.Sum.Seconds())
		bw.printf("fastfsd_request_duration_seconds_count{door=%q,op=%q} %d\n", r.set.Door, r.t.Name, r.t.Count)
	}
	return bw.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
