// Package stats holds the daemon's hot-path counters: per worker, per
// operation, requests, errors, bytes and a log2 service-time histogram;
// per worker, errors by errno.
//
// Each Worker is written by exactly one goroutine (its data-plane worker)
// and read by any (the metrics endpoint). Counters are atomics so a reader
// sees whole values; since each Worker has one writer they never contend,
// and Workers are padded to cache lines so two workers never share one.
// Observe allocates nothing. Readers sum over workers only when asked.
//
// stats is a leaf: it imports nothing of fastfs, so the data plane may import
// it and perf and cmd may read it. The Prometheus exposition (a collector
// over these counters) is internal/metrics.
package stats

import (
	"math/bits"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/cpu"
)

// MaxOps bounds operation codes; larger codes are counted under MaxOps-1.
const MaxOps = 64

// MaxErrno bounds the errnos counted one by one; larger ones (no Linux
// errno is) are counted under MaxErrno-1.
const MaxErrno = 256

// HistSlots is the number of log2 buckets: slot i counts service times in
// [2^i, 2^(i+1)) ns; the last slot also takes everything above.
const HistSlots = 36 // up to ~69 s

// SlotUpper is the upper bound of histogram slot i: 2^(i+1) ns (the last
// slot also holds everything above it).
func SlotUpper(i int) time.Duration { return time.Duration(uint64(1) << (i + 1)) }

type opCounters struct {
	count  atomic.Uint64
	errors atomic.Uint64
	bytes  atomic.Uint64
	sumNs  atomic.Uint64
	hist   [HistSlots]atomic.Uint64
}

// Worker is one worker's counters. Only its worker may call Observe and
// SetDepth.
type Worker struct {
	_      cpu.CacheLinePad
	ops    [MaxOps]opCounters
	errnos [MaxErrno]atomic.Uint64
	depth  atomic.Int64 // requests taken in the worker's last batch (SetDepth)
	index  int          // position in its Set, a stable label
	_      cpu.CacheLinePad
}

// Observe counts one served request of operation op that took d, moved n
// payload bytes and succeeded (errno 0) or failed with errno (positive).
func (w *Worker) Observe(op, errno uint32, n uint64, d time.Duration) {
	if op >= MaxOps {
		op = MaxOps - 1
	}
	c := &w.ops[op]
	c.count.Add(1)
	if errno != 0 {
		c.errors.Add(1)
		w.errnos[min(errno, MaxErrno-1)].Add(1)
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

// SetDepth records how many requests the worker found waiting when it
// last looked at its queue (a virtqueue's or ring's batch), a gauge.
func (w *Worker) SetDepth(n int) { w.depth.Store(int64(n)) }

// FuseErrno is the errno of a FUSE reply's header error field (0 or a
// negated errno, as the kernel ABI has it), as Observe wants it.
func FuseErrno(headerError uint32) uint32 { return uint32(-int32(headerError)) }

// Set is the counters of one door (fuse, virtiofs, 9p): a Worker per worker.
type Set struct {
	Door string              // label value, e.g. "fuse"
	Name func(uint32) string // operation names for the labels

	mu sync.Mutex
	// workers and free are guarded by mu; the Workers themselves are
	// lock-free. free holds released Workers, handed out again before a
	// new one is made, so a door whose workers come and go (9P's, per
	// connection) holds at most as many as ever ran at once.
	workers []*Worker
	free    []*Worker
}

// NewWorker returns a Worker for one more worker of this door: a released
// one if there is one (its counts stay, they are totals), else a new one.
func (s *Set) NewWorker() *Worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.free); n > 0 {
		w := s.free[n-1]
		s.free = s.free[:n-1]
		return w
	}
	w := &Worker{index: len(s.workers)}
	s.workers = append(s.workers, w)
	return w
}

// Release gives back a Worker whose worker is done with it; its counts
// stay in the totals. The caller must not use w afterwards.
func (s *Set) Release(w *Worker) {
	w.depth.Store(0)
	s.mu.Lock()
	s.free = append(s.free, w)
	s.mu.Unlock()
}

func (s *Set) snapshot() []*Worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Worker(nil), s.workers...)
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
	ws := s.snapshot()
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
		t.Name = strconv.Itoa(int(op))
		if s.Name != nil {
			t.Name = s.Name(op)
		}
		out = append(out, t)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Count > out[b].Count })
	return out
}

// ErrnoCount is how many requests of a Set failed with one errno.
type ErrnoCount struct {
	Errno uint32
	Count uint64
}

// Errnos sums the workers' failures per errno, for errnos seen, in errno
// order.
func (s *Set) Errnos() []ErrnoCount {
	ws := s.snapshot()
	var out []ErrnoCount
	for e := range uint32(MaxErrno) {
		var n uint64
		for _, w := range ws {
			n += w.errnos[e].Load()
		}
		if n != 0 {
			out = append(out, ErrnoCount{e, n})
		}
	}
	return out
}

// WorkerTotals is one worker's load: requests served, time spent serving
// them, and its queue depth gauge.
type WorkerTotals struct {
	Index    int
	Requests uint64
	Busy     time.Duration
	Depth    int64
}

// Workers returns every worker's load, in the order they were made.
func (s *Set) Workers() []WorkerTotals {
	ws := s.snapshot()
	out := make([]WorkerTotals, len(ws))
	for i, w := range ws {
		t := WorkerTotals{Index: w.index, Depth: w.depth.Load()}
		for op := range w.ops {
			// Busy is the sum of the ops' service times (no counter of
			// its own: one atomic add less per request).
			t.Requests += w.ops[op].count.Load()
			t.Busy += time.Duration(w.ops[op].sumNs.Load())
		}
		out[i] = t
	}
	return out
}

// Registry is every Set the daemon serves, for the metrics endpoint.
type Registry struct {
	mu   sync.Mutex
	sets []*Set // guarded by mu
}

// Default is the process's registry.
var Default = new(Registry)

// NewSet registers and returns the Set of a door. A door registered
// before gets its existing Set back (name is then ignored): one series per
// door and operation, its counts the process's totals.
func (r *Registry) NewSet(door string, name func(uint32) string) *Set {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.sets {
		if s.Door == door {
			return s
		}
	}
	s := &Set{Door: door, Name: name}
	r.sets = append(r.sets, s)
	return s
}

// Sets returns the registered Sets.
func (r *Registry) Sets() []*Set {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Set(nil), r.sets...)
}
