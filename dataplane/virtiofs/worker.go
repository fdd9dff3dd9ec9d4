package virtiofs

import (
	"encoding/binary"
	"github.com/fastfsd/fastfsd/internal/stats"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fastfsd/fastfsd/dataplane"
	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/mem"
	"github.com/fastfsd/fastfsd/ring"
	"github.com/fastfsd/fastfsd/vhostuser"
	"golang.org/x/sys/unix"
)

// inBufSize bounds the request bytes copied out of guest memory for one
// request (header and arguments; WRITE data stays in guest memory). The
// largest non-WRITE request Linux sends is SETXATTR: a name and a value of
// up to XATTR_SIZE_MAX (64 KiB).
const inBufSize = abi.InHeaderSize + 1<<17

// offloadBytes is the READ/WRITE size from which a request goes to a helper
// (Options.Helpers > 0) instead of being served inline: big transfers are
// where running several at once on one queue pays.
const offloadBytes = 64 << 10

// slot is the working set of one request: its chain, the engine's Request,
// the copied header and arguments, and the sink/source over the chain's
// buffers. The worker owns its inline slot; helper slots are owned by the
// worker while free and by one helper between hand-off and completion.
type slot struct {
	chain ring.Chain
	sess  *session // the FUSE session req belongs to
	// reqMu guards replacing req (a new session, served by whoever owns
	// the slot) against the worker interrupting a slot a helper owns.
	reqMu sync.Mutex
	req   *fuse.Request
	sink  guestSink
	src   guestSource
	iov   [ring.MaxBuffers]unix.Iovec
	// in is where serve copies the request's header and arguments: the
	// slot's own fixed buffer (inBufSize bytes, or smallIn for a
	// blocking slot), or, for a wait longer than a blocking slot's own
	// (big), a copy from worker.waitIn, given back at reap (worker-owned).
	in    []byte
	fixed []byte
	big   bool
	small bool // a blocking slot: small buffers, fuse.Blocking ops only
	// inLen: the request bytes the worker copied into in at hand-off (a
	// blocking slot only; see worker.toBlocking).
	inLen int
	n     uint32        // used length, written by whoever served the slot
	obs   *stats.Worker // nil unless Options.Stats; written only by whoever serves the slot
	// interrupted: the worker interrupted the request (worker-owned).
	interrupted bool
	// wait: the slot serves a wait (a lock wait, or an open breaking a
	// host lease: retry) counted for uid in worker.waits
	// (worker-owned: set at hand-off, put back at reap).
	wait bool
	uid  uint32
	// noWait: the worker serves the slot inline (fuse.Request.NoWait);
	// retry: the engine left the request unanswered because it would
	// wait (fuse.Request.Retry). Both written only by whoever serves it.
	noWait, retry bool
}

// Sizes of a blocking slot's buffers: the blocking ops carry a fixed
// struct of at most 56 bytes and answer at most fuse_lk_out. A wait with
// more (a CREATE of a long name with a security label) takes a copy from
// worker.waitIn.
const (
	smallIn  = 1024
	smallOut = 1024
)

// newRequest makes a Request of the session for s.
func (s *slot) newRequest() *fuse.Request {
	if s.small {
		return &fuse.Request{Out: make([]byte, max(smallOut, fuse.MinOutSize))}
	}
	return s.sess.srv.NewRequest()
}

// interrupt interrupts the request a helper serves in s (the worker,
// stopping its queue): a lock wait answers EINTR.
func (s *slot) interrupt() {
	s.reqMu.Lock()
	s.req.Interrupt()
	s.reqMu.Unlock()
	s.interrupted = true
}

func newSlot(d *Device) *slot { return newSlotSized(d, false) }

func newSlotSized(d *Device, small bool) *slot {
	s := &slot{small: small}
	if small {
		s.fixed = make([]byte, smallIn)
	} else {
		s.fixed = make([]byte, inBufSize)
	}
	s.in = s.fixed
	s.sess = d.sess.Load()
	s.req = s.newRequest()
	s.sink.iov = &s.iov
	s.src.iov = &s.iov
	if d.opts.Stats != nil {
		s.obs = d.opts.Stats.NewWorker()
	}
	return s
}

// worker serves one virtqueue on its own locked (and optionally pinned)
// thread. Requests run to completion inline, or on helper goroutines while
// the worker goes on popping: those that may block (SETLKW, FSYNC,
// FALLOCATE…) on a blocking slot (every queue has Options.BlockingHelpers
// of them), and, with Options.Helpers, big READ/WRITE on a helper slot. Everything here is owned by
// the worker's goroutine except where a field says otherwise.
type worker struct {
	// served counts chains popped (requests), worker-owned; read by
	// StopQueue after the worker ended.
	served uint64
	d      *Device
	index  int
	q      *ring.Queue
	mem    *mem.Memory
	reader *mem.Reader
	// table is the table reader.Enter last returned: mapped while the
	// worker is online. copyOut translates blocking slots' replies with
	// it (the ring's own table may lag it if moving the ring failed).
	table *mem.Table
	kick  int // -1: the front-end asked for polling
	// window is the adaptive poll window (Options.AdaptivePoll; adapt),
	// worker-owned.
	window time.Duration
	sched  dataplane.SchedPoint // passes through the Go scheduler before a sleep, and while busy (busyPass)
	// busyWork is the work served on the worker since busyPass last
	// looked at the clock, worker-owned.
	busyWork int
	// batch is how many requests the last drain served, worker-owned
	// (adapt's budget).
	batch uint64
	call  int // -1: no notifications
	errFd int
	stop  int // eventfd StopQueue signals, to wake a sleeping worker
	// stopping is set by StopQueue before it signals stop, and checked
	// between requests so a busy ring cannot delay GET_VRING_BASE.
	stopping atomic.Bool
	dw       *dataplane.Worker

	own *slot // the inline slot

	// Helpers. Memory rule: while holding > 0 the worker
	// does not pass a quiescent point (no Enter, no Exit) and does not
	// re-translate the ring, so every view a helper holds stays mapped.
	// Blocking slots hold no view (their request is copied in at
	// hand-off, their reply copied out by the worker at reap), so a lock
	// wait, which may last for ever, never holds up a memory update.
	// waits counts the waits (lock waits, and opens breaking a host
	// lease) the slots hold, per guest uid: a uid other than 0 waits in
	// at most an eighth of the slots a lock wait may take (blocking and
	// helper slots), and non-root waits leave an eighth to guest root (dataplane.LockWaits), so that one guest user
	// cannot take every other guest user's blocking locks. Taken and put
	// by the worker only.
	waits *dataplane.LockWaits
	// waitIn holds the copies for waits longer than a blocking slot holds
	// (smallIn): a CREATE of a long name with a security label over a
	// leased file, or any wait a guest pads with request extensions,
	// which must still wait off the worker. Taken by the worker when it
	// hands such a wait to a blocking slot and given back at reap, one
	// per blocking slot at most, each at most inBufSize (the largest
	// request the worker reads): per queue at most BlockingHelpers ×
	// 128 KiB (4 MiB with the default 32), which a hostile guest can
	// reach with padded lock waits on a lock it holds itself, as much as
	// 32 more --thread-pool-size slots hold; a Linux guest's are a page
	// each (dataplane.WaitCopies).
	waitIn   *dataplane.WaitCopies
	free     []*slot    // idle helper slots (Options.Helpers)
	bfree    []*slot    // idle blocking slots (Options.BlockingHelpers)
	slots    []*slot    // every helper and blocking slot
	inflight int        // slots handed to helpers and not yet pushed
	holding  int        // of those, helper slots (views of guest memory)
	busy     []*slot    // scratch for interruptInflight
	work     chan *slot // hand-off to helpers
	doneFd   int        // eventfd helpers signal after queueing a completion
	doneMu   sync.Mutex
	done     []*slot // completed slots; guarded by doneMu (helpers append)
	spare    []*slot // the worker's swap buffer for done
	helpers  sync.WaitGroup

	one [8]byte // eventfd increment (read-only after start; helpers read it)
	scr [8]byte // eventfd read scratch
	pfd [3]unix.PollFd

	// badChains rate-limits the log of refused chains to the first 10 per
	// queue start.
	badChains uint64
	// faulted: the ring faulted (fault.go), or is in no memory region of
	// the table the worker holds (enter failed: its views are of a table
	// that may be unmapped); the worker no longer touches
	// it. Worker-owned.
	faulted bool
}

func newWorker(d *Device, q *vhostuser.Queue, rq *ring.Queue, stop int) (*worker, error) {
	w := &worker{d: d, index: q.Index, q: rq, mem: q.Memory, kick: q.Kick, call: q.Call, errFd: q.Err, stop: stop}
	binary.LittleEndian.PutUint64(w.one[:], 1)
	w.pfd[0] = unix.PollFd{Fd: int32(stop), Events: unix.POLLIN}
	w.pfd[1] = unix.PollFd{Fd: int32(q.Kick), Events: unix.POLLIN}
	// Every queue has blocking slots: a lock wait must never hold the
	// worker (the unlock that ends it may be queued behind it).
	h, b := max(d.opts.Helpers, 0), d.opts.BlockingHelpers
	if b <= 0 {
		b = DefaultBlockingHelpers
	}
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, err
	}
	w.doneFd = fd
	w.pfd[2] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	// The inline slot only now: an error above would leak its stats.Worker.
	w.own = newSlot(d)
	w.work = make(chan *slot, h+b)
	w.done = make([]*slot, 0, h+b)
	w.spare = make([]*slot, 0, h+b)
	w.busy = make([]*slot, 0, h+b)
	w.waits = dataplane.NewLockWaits(h + b)
	w.waitIn = dataplane.NewWaitCopies(b, inBufSize)
	for i := range h + b {
		s := newSlotSized(d, i >= h)
		if s.small {
			w.bfree = append(w.bfree, s)
		} else {
			w.free = append(w.free, s)
		}
		w.slots = append(w.slots, s)
		w.helpers.Add(1)
		go w.helper()
	}
	// The reader is created here and used only by the worker from now on.
	w.reader = q.Memory.NewReader()
	return w, nil
}

// close releases what newWorker made, after run returned.
func (w *worker) close() {
	if st := w.d.opts.Stats; st != nil {
		// Give the slots' counters back (their counts stay in the totals),
		// so a guest that restarts its queues does not grow the Set. slots
		// holds every helper and blocking slot once (free, bfree and spare
		// only ever hold some of them, spare repeating the free lists').
		for _, s := range append(w.slots, w.own) {
			if s.obs != nil {
				st.Release(s.obs)
				s.obs = nil
			}
		}
	}
	w.reader.Close()
	unix.Close(w.doneFd)
}

// run is the worker loop (ring.Queue's documented kick-driven loop). It
// returns errStopped when StopQueue asks, or nil after a broken ring, once
// StopQueue asks. Either way every request it popped has been pushed.
func (w *worker) run() (err error) {
	panicOnFault() // see fault.go
	defer func() {
		w.quiesce()
		close(w.work)
		w.helpers.Wait()
		w.reader.Exit()
	}()
	defer func() {
		// A fault on the ring (not one request's buffers: serveGuarded
		// catches those) breaks this queue only.
		if p := recover(); p != nil {
			f := mem.AsFault(p)
			if f == nil {
				panic(p)
			}
			w.faulted = true
			w.d.faults.Add(1)
			w.d.log.Warn("virtiofs: ring in guest memory the front-end no longer backs (shrunk memfd?); stopping the queue",
				"queue", w.index, "addr", f.Addr())
			err = w.broken()
		}
	}()
	return w.loop()
}

// loop is run's body: the worker loop proper.
func (w *worker) loop() error {
	for {
		served := w.served
		stop, ok := w.drainRing()
		w.batch = w.served - served
		if stop {
			return errStopped
		}
		if !ok {
			return w.broken()
		}
		if err := w.q.Err(); err != nil {
			w.d.log.Warn("virtiofs: driver broke the ring; stopping it", "queue", w.index, "err", err)
			return w.broken()
		}
		var dry time.Time // when the ring ran dry: adaptive polling only
		if w.d.opts.AdaptivePoll > 0 {
			dry = time.Now()
		}
		if w.pollDry() {
			continue // the window stays as it is: it was long enough
		}
		if !w.askKick() {
			w.adaptSince(dry)
			continue
		}
		if w.holding == 0 {
			w.reader.Exit() // quiescent: hold no view of guest memory while asleep
		}
		// Completions are published and a kick asked for: a request that
		// comes during the pass wakes the sleep at once.
		w.sched.BeforeBlock()
		if w.sleep() {
			return errStopped
		}
		w.adaptSince(dry)
		// Online again before touching the ring: the table may have been
		// replaced (and the old one unmapped) while we slept.
		if !w.enter() {
			return w.broken()
		}
		w.q.DisableNotify()
	}
}

// askKick asks the driver to kick once it adds a chain (EnableNotify),
// before the worker sleeps; true if the ring is still dry, so that the
// worker may sleep. Otherwise a chain arrived (or the ring broke) and the
// worker serves on and polls again without having slept: it withdraws
// the request (DisableNotify, which without EVENT_IDX sets NO_NOTIFY
// again) so that a driver adding chains meanwhile does not kick a worker
// that is looking anyway. With EVENT_IDX avail_event stays behind the
// chains the worker pops, and the driver kicks at most once more.
func (w *worker) askKick() bool {
	if !w.q.EnableNotify() {
		return true
	}
	w.q.DisableNotify()
	return false
}

// enter passes a quiescent point of guest memory before each request (an
// atomic load and store: cheap), so a memory update never waits for a busy
// queue to drain, and re-translates the ring if the table changed. It
// reports false if the ring is no longer in guest memory. With requests on
// helper slots it does nothing (see worker.free).
func (w *worker) enter() bool {
	if w.holding > 0 {
		return true
	}
	t := w.reader.Enter()
	w.table = t
	if t == w.q.Table() {
		return true
	}
	// vhostuser restarts a ring whose areas moved, so this fails only for
	// a ring the front-end broke.
	if err := w.q.SetMemory(t); err != nil {
		// The ring's views are of the old table, which the writer may now
		// unmap: never push to it again (requests on blocking slots
		// complete without it).
		w.faulted = true
		w.d.log.Warn("virtiofs: ring no longer in guest memory; stopping it", "queue", w.index, "err", err)
		return false
	}
	return true
}

// complete pushes one used element and publishes it, signalling the call
// eventfd if the driver asked. Publishing after each completion keeps a
// slow request from holding back the ones before it.
func (w *worker) complete(head uint16, n uint32) {
	if w.faulted {
		return // the ring is not in memory we can touch
	}
	w.q.Push(head, n)
	if w.q.Publish() && w.call >= 0 {
		signal(w.call, &w.one)
	}
}

// drainRing serves every available chain. It returns with stop set when
// StopQueue asked the worker to stop, and ok false when the ring left guest
// memory. It leaves the reader online.
func (w *worker) drainRing() (stop, ok bool) {
	for {
		if w.stopping.Load() {
			return true, true
		}
		w.reap()
		if w.holding > 0 && w.mem.Table() != w.q.Table() {
			// Guest memory changed: let the helper slots finish so the
			// ring can move to the new table before popping more.
			w.quiesceViews()
		}
		if !w.enter() {
			return false, false
		}
		s := w.own
		if len(w.free) > 0 {
			s = w.free[len(w.free)-1]
		}
		got, err := w.q.Pop(&s.chain)
		if !got {
			return false, true
		}
		w.served++
		if w.own.obs != nil {
			w.own.obs.SetDepth(w.q.Pending() + 1) // this one and those seen behind it
		}
		if err != nil {
			w.badChains++
			if w.badChains <= 10 {
				w.d.log.Warn("virtiofs: refused descriptor chain", "queue", w.index, "head", s.chain.Head, "err", err)
			}
			w.complete(s.chain.Head, 0)
			continue
		}
		switch w.offloadGuarded(s) {
		case offloadHelper:
			w.free = w.free[:len(w.free)-1]
			w.inflight++
			w.holding++
			w.work <- s // never blocks: work holds every slot
			continue
		case offloadBlocking:
			if !w.toBlocking(&s.chain, s.wait, s.uid) { // the lock wait offload counted moves with it
				// Guest memory faulted under the request (copyIn). Only a
				// lock wait was counted in waits (offload): an FSYNC or
				// the like was not.
				e := unix.EIO
				if s.wait {
					w.waits.Put(s.uid)
					e = unix.ENOLCK
				}
				w.complete(s.chain.Head, refuse(&s.chain, e))
			}
			s.wait = false
			continue
		case offloadRefuse:
			w.complete(s.chain.Head, refuse(&s.chain, unix.ENOLCK))
			continue
		}
		s.noWait = true
		n := w.d.serveGuarded(s, w.index)
		s.noWait = false
		if s.retry {
			s.retry = false
			w.retry(s)
			continue
		}
		w.complete(s.chain.Head, n)
		w.busyPass(&s.chain)
	}
}

// busyPass counts the request in c, just served on the worker and
// completed, and after busyPassWork of work since it last looked passes
// through the Go scheduler if a pass is due (dataplane.SchedPoint). A
// ring that never runs dry has no sleep to pass before, and without the
// passes the runtime's monitor takes the worker's P at each long system
// call: fastfsd serving 1 MiB READs at 8 in flight spent 8–10 % of a CPU
// in the monitor, while fastfs-backendbench showed it using 3–14 % more
// CPU per READ than the C virtiofsd (six runs). Work is one unit per request and one more per
// 32 KiB of its buffers, so the clock is read every 64 small requests
// and every other 1 MiB READ: reading it after every request (60-90 ns)
// served GETATTRs at 8 in flight at half the rate, for reasons of the
// worker's and the front-end's interplay this did not pin down; every
// 8th still cost 13 %.
func (w *worker) busyPass(c *ring.Chain) {
	w.busyWork += 1 + int((c.ReadableLen()+c.WritableLen())>>15)
	if w.busyWork < busyPassWork {
		return
	}
	w.busyWork = 0
	w.sched.BeforeBlock() // nothing is owed: complete published it
}

// busyPassWork is how much work (busyPass's units) a busy worker serves
// between looks at the clock.
const busyPassWork = 64

// retry serves again, where it may wait, the request in s that the
// engine left unanswered on the worker because it would wait (an OPEN,
// CREATE or truncating SETATTR breaking a host lease): on a blocking slot,
// counted in w.waits like a lock wait (same per-uid share), where a queue
// stop interrupts it. With no blocking slot free or the uid's share taken
// it is refused with EAGAIN (what an O_NONBLOCK open gets from a lease).
// Whatever its length: one longer than a blocking slot holds (a CREATE
// of a long name with a security label) takes a copy from w.waitIn,
// never waits on the worker, where a lease break (up to lease-break-time,
// 45 s) would hold the whole queue, and with it GET_VRING_BASE.
func (w *worker) retry(s *slot) {
	c := &s.chain
	var h [abi.InHeaderSize]byte
	if c.ReadAt(h[:], 0) != len(h) {
		w.complete(c.Head, 0)
		return
	}
	uid := binary.LittleEndian.Uint32(h[inUidOff:])
	if len(w.bfree) == 0 || !w.waits.Take(uid) {
		w.complete(c.Head, refuse(c, unix.EAGAIN))
		return
	}
	if !w.toBlocking(c, true, uid) {
		w.waits.Put(uid)
		w.complete(c.Head, refuse(c, unix.EAGAIN))
	}
}

// toBlocking moves the request in c to an idle blocking slot (one must
// be free) and hands it to that slot's helper; wait: it is counted for
// uid in w.waits, and reap gives the count back. A request longer than
// the slot holds must be a wait (offload serves any other inline): it
// gets a copy from w.waitIn, bounded since it holds the slot. toBlocking
// reports false, having done nothing, if it cannot have one (longer than
// any request the worker reads: serve refuses those before they can
// wait, so never), or if guest memory faults under the request. The
// request is copied into the slot here, so its helper never touches
// guest memory (worker.holding).
func (w *worker) toBlocking(c *ring.Chain, wait bool, uid uint32) bool {
	b := w.bfree[len(w.bfree)-1]
	if n := c.ReadableLen(); n > uint64(len(b.fixed)) {
		big := w.waitIn.Get(int(min(n, inBufSize+1)))
		if big == nil {
			return false
		}
		b.in, b.big = big, true
	}
	b.chain.CopyFrom(c)
	if !copyIn(b) {
		// The request's memory is gone (a shrunk memory file).
		if b.big {
			w.waitIn.Put(b.in)
			b.in, b.big = b.fixed, false
		}
		return false
	}
	w.bfree = w.bfree[:len(w.bfree)-1]
	b.wait, b.uid = wait, uid
	w.inflight++
	w.work <- b // never blocks: work holds every slot
	return true
}

// copyIn copies blocking slot b's request (its chain's readable part) into
// b.in; false if guest memory faults under it (see fault.go).
func copyIn(b *slot) (ok bool) {
	defer func() {
		if p := recover(); p != nil {
			if mem.AsFault(p) == nil {
				panic(p)
			}
			ok = false
		}
	}()
	n := min(b.chain.ReadableLen(), uint64(len(b.in)))
	b.inLen = b.chain.ReadAt(b.in[:n], 0)
	return true
}

// copyOut writes blocking slot s's reply (s.n bytes of s.req.Out, see
// serveCopied) into its chain's writable buffers, translated again with
// the table the worker now holds (worker.table): guest memory may have
// changed while the request waited. It returns the used length: 0 if a
// buffer is no longer in guest memory (or faults).
func (w *worker) copyOut(s *slot) (n uint32) {
	if s.n == 0 || w.faulted {
		return 0
	}
	defer func() {
		if p := recover(); p != nil {
			f := mem.AsFault(p)
			if f == nil {
				panic(p)
			}
			if k := w.d.faults.Add(1); k <= 10 {
				w.d.log.Warn("virtiofs: reply to guest memory the front-end no longer backs (shrunk memfd?); failing the request",
					"queue", w.index, "addr", f.Addr(), "faults", k)
			}
			n = 0
		}
	}()
	t := w.table // online: reap runs after an enter (worker.loop, drainRing)
	out := s.req.Out[:s.n]
	for _, b := range s.chain.Writable() {
		if len(out) == 0 {
			break
		}
		k := min(len(b.Bytes), len(out)) // the length only: b.Bytes may be unmapped
		v, ok := t.Slice(b.GPA, uint64(k))
		if !ok {
			return 0
		}
		copy(v, out[:k])
		out = out[k:]
	}
	return s.n
}

// inUidOff is the offset of fuse_in_header.uid (the caller's uid, as the
// guest claims it).
const inUidOff = 24

// Where the worker sends a request (offload).
const (
	offloadInline   = iota // serve it on the worker
	offloadHelper          // on the helper whose slot it was popped into
	offloadBlocking        // moved to a blocking slot, for its helper
	offloadRefuse          // a lock wait with no slot for it (waits, or every slot busy): ENOLCK
)

// waitingLock reports whether c, a SETLKW request, may wait
// (fuse.WaitingLock), and the caller's uid (fuse_in_header.uid, as the
// guest claims it): it reads the header and the lock's type from guest
// memory.
func (w *worker) waitingLock(c *ring.Chain) (wait bool, uid uint32) {
	var b [abi.InHeaderSize + abi.LkInSize]byte
	n := c.ReadAt(b[:], 0)
	return fuse.WaitingLock(abi.OpSetlkw, b[abi.InHeaderSize:max(n, abi.InHeaderSize)]), binary.LittleEndian.Uint32(b[inUidOff:])
}

// offload decides where the request just popped into s runs. Requests
// that may block (fuse.Blocking) go to a blocking slot, or, all busy, to
// a free helper slot; a lock wait that finds neither, or whose uid may
// not wait in one more slot (w.waits), is refused with ENOLCK (it might
// wait for ever, and the unlock that ends it may be queued behind it),
// any other is served inline (it ends on its own). A lock wait handed
// over is counted in w.waits and marked in s (offloadBlocking moves the
// mark to the blocking slot). READ/WRITE of offloadBytes or more go to a
// helper slot if s is one.
func (w *worker) offload(s *slot) int {
	c := &s.chain
	var h [8]byte
	if c.ReadAt(h[:], 0) != len(h) {
		return offloadInline
	}
	helper := s != w.own
	switch op := abi.Opcode(binary.LittleEndian.Uint32(h[4:8])); {
	case op == abi.OpSetlkw && c.ReadableLen() <= inBufSize:
		// Of any length the worker reads (one longer than a blocking
		// slot's own copy takes one from w.waitIn: toBlocking); longer
		// still is refused E2BIG by serve inline, before it can wait.
		wait, uid := w.waitingLock(c)
		if !wait {
			return offloadInline // an unlock: it never waits, and must work with every slot taken
		}
		if (len(w.bfree) == 0 && !helper) || !w.waits.Take(uid) {
			return offloadRefuse
		}
		s.wait, s.uid = true, uid
		if len(w.bfree) > 0 {
			return offloadBlocking
		}
		return offloadHelper
	case fuse.Blocking(op) && c.ReadableLen() <= smallIn:
		// FSYNC, FALLOCATE and the like, which end on their own; one
		// longer than a blocking slot holds (Linux never sends one) is
		// served inline.
		if len(w.bfree) > 0 {
			return offloadBlocking
		}
		if helper {
			return offloadHelper
		}
	case op == abi.OpWrite:
		if helper && c.ReadableLen() >= offloadBytes {
			return offloadHelper
		}
	case op == abi.OpRead:
		if helper && c.WritableLen() >= offloadBytes {
			return offloadHelper
		}
	}
	return offloadInline
}

// refuse answers the request in c with errno e (0: used length 0, if
// guest memory faults under it; see fault.go).
func refuse(c *ring.Chain, e unix.Errno) (n uint32) {
	defer func() {
		if p := recover(); p != nil {
			if mem.AsFault(p) == nil {
				panic(p)
			}
			n = 0
		}
	}()
	var h [abi.InHeaderSize]byte
	if c.ReadAt(h[:], 0) != len(h) {
		return 0
	}
	return errReply(c, binary.LittleEndian.Uint64(h[8:16]), e, c.WritableLen())
}

// interruptInflight interrupts every request on a helper (once each):
// the queue is stopping, and a lock wait must not hold that up. The
// guest's lock call sees EINTR.
func (w *worker) interruptInflight() { w.interrupt(true) }

// interrupt interrupts the requests in flight on helper slots, and with
// blocking those on blocking slots too, once each.
func (w *worker) interrupt(blocking bool) {
	if w.inflight == 0 {
		return
	}
	w.busy = w.busy[:0]
	for _, s := range w.slots {
		if blocking || !s.small {
			w.busy = append(w.busy, s)
		}
	}
	for _, s := range w.free {
		w.busy = markIdle(w.busy, s)
	}
	for _, s := range w.bfree {
		w.busy = markIdle(w.busy, s)
	}
	for _, s := range w.busy {
		if s != nil && !s.interrupted {
			s.interrupt()
		}
	}
}

// markIdle removes s from busy (nils it out).
func markIdle(busy []*slot, s *slot) []*slot {
	for i, b := range busy {
		if b == s {
			busy[i] = nil
		}
	}
	return busy
}

// helper serves slots handed over by the worker until work is closed.
func (w *worker) helper() {
	defer w.helpers.Done()
	panicOnFault() // see fault.go
	for s := range w.work {
		if s.small {
			s.n = w.d.serveCopied(s, w.index)
		} else {
			s.n = w.d.serveGuarded(s, w.index)
		}
		w.doneMu.Lock()
		w.done = append(w.done, s) // within capacity: at most every slot (Helpers + BlockingHelpers)
		w.doneMu.Unlock()
		signal(w.doneFd, &w.one)
	}
}

// reap pushes the requests helpers completed.
func (w *worker) reap() {
	if w.inflight == 0 {
		return
	}
	w.doneMu.Lock()
	w.done, w.spare = w.spare[:0], w.done
	w.doneMu.Unlock()
	for _, s := range w.spare {
		w.inflight--
		n := s.n
		if s.small {
			n = w.copyOut(s)
		} else {
			w.holding--
		}
		if s.wait {
			w.waits.Put(s.uid)
			s.wait = false
		}
		if s.interrupted {
			s.req.ClearInterrupt() // Interrupt may have come after Handle cleared it
			s.interrupted = false
		}
		if s.big {
			w.waitIn.Put(s.in)
			s.in, s.big = s.fixed, false
		}
		if s.small {
			w.bfree = append(w.bfree, s)
		} else {
			w.free = append(w.free, s)
		}
		w.complete(s.chain.Head, n)
	}
}

// quiesce waits until every request handed to helpers is pushed,
// interrupting them (lock waits) if the queue is stopping or the wait
// lasts: it holds up a memory update or GET_VRING_BASE. It goes online
// first: a worker stopped while asleep is offline (with only blocking
// slots in flight), and pushing or copying a reply out needs the table it
// holds to be mapped.
func (w *worker) quiesce() {
	if w.inflight > 0 && !w.faulted {
		w.enter() // on failure faulted is set: nothing more is pushed
	}
	w.reapAll(false)
}

// quiesceViews waits until no helper slot holds a view of guest memory
// (worker.holding), interrupting them if the wait lasts; blocking slots
// wait on (a lock wait is not cut short by a memory update).
func (w *worker) quiesceViews() { w.reapAll(true) }

// reapAll reaps until no request is on a helper (views: on a helper
// slot, worker.holding), interrupting every request in flight if the
// queue is stopping, and those it waits for after about a second.
func (w *worker) reapAll(views bool) {
	for i := 0; ; i++ {
		w.reap()
		left := w.inflight
		if views {
			left = w.holding
		}
		if left == 0 {
			return
		}
		if w.stopping.Load() {
			w.interruptInflight()
		} else if i == 10 {
			// views: only the helper slots (a lock wait there, no
			// blocking slot having been free).
			w.interrupt(!views)
		}
		p := w.pfd[2:3]
		if _, err := unix.Poll(p, 100); err == nil && p[0].Revents != 0 {
			drain(w.doneFd, &w.scr)
		}
	}
}

// pollWindow is how long the worker polls its ring once it ran dry
// before it asks for a kick and sleeps: Options.BusyPoll, or the
// adaptive window (Options.AdaptivePoll), or 0.
func (w *worker) pollWindow() time.Duration {
	if w.d.opts.BusyPoll > 0 {
		return w.d.opts.BusyPoll
	}
	// Within the budget of the batch just served, which may be smaller
	// than the one the window grew for: the worker polls a long window
	// only after serving the requests that pay for it.
	return min(w.window, w.budget())
}

// adaptSince sizes the adaptive poll window from the gap between the ring
// running dry (dry; zero without Options.AdaptivePoll) and the worker
// waking for the next request, as QEMU's adaptive polling of its event
// loops does: a gap the window did not cover but the maximum would
// doubles it (from 4 µs), a gap beyond the maximum halves it, so a
// guest that answers and asks again within a few µs finds the worker
// polling, and a slow or idle one (a TCG guest's round trip is ~140 µs)
// costs no CPU. The gap also counts wake-ups for a helper's completion
// or a stop; they come rarely enough not to matter.
func (w *worker) adaptSince(dry time.Time) {
	if !dry.IsZero() {
		w.adapt(time.Since(dry))
	}
}

// adapt is adaptSince's sizing for a gap measured (Options.AdaptivePoll
// set). Besides the maximum, a window never exceeds spinPerRequest for
// each request the worker served since it last woke (w.batch): a guest
// that sends one request at a time, at a pace just inside the maximum,
// would otherwise have the worker spin most of each gap for one request,
// more CPU than the sleep and wake-up it saves.
func (w *worker) adapt(gap time.Duration) {
	maxWin := w.budget()
	w.window = min(w.window, maxWin)
	switch {
	case gap <= w.window:
	case gap > maxWin:
		if w.window /= 2; w.window < minPollWindow {
			w.window = 0
		}
	default:
		w.window = min(max(2*w.window, minPollWindow), maxWin)
	}
}

// adaptivePollers counts the workers, of every Device in the process,
// polling in an adaptive window: at most maxAdaptivePollers at once, so
// that polling leaves at least half the CPUs to the VMM's vCPU threads,
// whose requests the pollers wait for. (On this 2-CPU machine, two
// queues driven by two front-end threads, GETATTRs per second against
// two queues that slept: 0.86× with both polling and no yield, 0.92–1.02×
// over four runs with yields and one at a time; docs/backend-bench.md.) A fixed Options.BusyPoll
// is what its user asked for and is not limited.
var adaptivePollers atomic.Int32

var maxAdaptivePollers = int32(max(1, runtime.NumCPU()/2))

// pollTurn reports whether the worker may poll now; endTurn ends a turn
// it was given.
func (w *worker) pollTurn() bool {
	if w.d.opts.BusyPoll > 0 {
		return true
	}
	if adaptivePollers.Add(1) > maxAdaptivePollers {
		adaptivePollers.Add(-1)
		return false
	}
	return true
}

func (w *worker) endTurn() {
	if w.d.opts.BusyPoll == 0 {
		adaptivePollers.Add(-1)
	}
}

// pollDry polls the dry ring for the worker's window (pollWindow), if it
// has one and may now (pollTurn); true if work arrived (poll). The turn
// is given back however poll ends: a fault on the ring panics out of it
// to run, which breaks the queue, and a turn kept by a dead worker would
// be one fewer for every queue of the process for good.
func (w *worker) pollDry() bool {
	win := w.pollWindow()
	if win <= 0 || !w.pollTurn() {
		return false
	}
	defer w.endTurn()
	return w.poll(time.Now().Add(win))
}

// budget is the largest adaptive window now: Options.AdaptivePoll, and
// spinPerRequest for each request the last drain served (at least one).
func (w *worker) budget() time.Duration {
	spin := spinPerRequest
	if w.d.opts.spinPerRequest > 0 {
		spin = w.d.opts.spinPerRequest
	}
	return min(w.d.opts.AdaptivePoll, time.Duration(max(w.batch, 1))*spin)
}

// spinPerRequest bounds the adaptive window per request served in the
// batch before it (adapt): about what a sleep and a wake-up of the worker
// cost in CPU on this machine (ppoll, two context switches and the
// kick's eventfd write on the other side: 5–10 µs), so that polling pays
// for itself. Measured with fastfs-backendbench, one request in flight
// (-depth 1), GETATTR: 17.1 µs of CPU per request with a 32 µs window
// and no such bound, 9.9 µs without polling; with this bound at 8 µs (4
// before) one request at a time costs what it did (0.95–1.06× over
// GETATTR, LOOKUP, 4 KiB READ and create, 5 rounds), and eight in
// flight reach DefaultAdaptivePoll's 64 µs window.
const spinPerRequest = 8 * time.Microsecond

// minPollWindow is the adaptive window's first step (QEMU's too).
const minPollWindow = 4 * time.Microsecond

// poll spins on the ring until deadline, yielding the CPU on each turn,
// without asking the driver for a kick (Queue.Ready: a driver adding
// buffers meanwhile does not kick, which in a VM saves the guest a VM
// exit per request); true if work arrived: a chain, a helper's completion, a stop, or a broken ring or
// memory table (drainRing sees which). It passes a quiescent point of
// guest memory on each turn (enter), so a memory update does not wait
// for the window.
func (w *worker) poll(deadline time.Time) bool {
	for {
		if !w.enter() || w.q.Ready() {
			return true
		}
		if w.stopping.Load() || w.inflight > 0 && w.pending() {
			return true
		}
		if !time.Now().Before(deadline) {
			return false
		}
		// Let a thread waiting for this CPU (the front-end's, which
		// makes the next request) run first: without it two queues
		// polling on this 2-CPU machine served fewer requests per
		// second than two that slept.
		unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
}

// pending reports whether a helper completed a request.
func (w *worker) pending() bool {
	w.doneMu.Lock()
	n := len(w.done)
	w.doneMu.Unlock()
	return n > 0
}

// sleep waits for a kick, a completion from a helper, or a stop; true means
// stop.
func (w *worker) sleep() bool {
	p := w.pfd[:]
	timeout := -1
	if w.kick < 0 {
		// Polling mode: no kick fd, look again every ms.
		p[1] = unix.PollFd{Fd: -1}
		timeout = 1
	}
	for {
		_, err := unix.Poll(p, timeout)
		if err == unix.EINTR {
			continue
		}
		if w.pfd[0].Revents != 0 {
			return true
		}
		if w.kick >= 0 && w.pfd[1].Revents != 0 {
			drain(w.kick, &w.scr)
		}
		if w.pfd[2].Revents != 0 {
			drain(w.doneFd, &w.scr)
		}
		return false
	}
}

// broken pushes what helpers still hold, signals the error eventfd and
// waits for StopQueue.
func (w *worker) broken() error {
	w.interruptInflight() // the ring is dead: nobody waits for them
	w.quiesce()
	w.reader.Exit()
	if w.errFd >= 0 {
		signal(w.errFd, &w.one)
	}
	for {
		if _, err := unix.Poll(w.pfd[:1], -1); err != unix.EINTR {
			return nil
		}
	}
}

// serve runs the FUSE request in s.chain and returns the bytes written to
// its writable part (the used length). Called by the worker or by a helper;
// it touches only s and the device (read-only but for session changes,
// which lock).
//
// The readable part is fuse_in_header + arguments (+ WRITE payload). Header
// and arguments are copied into the slot's buffer: guest memory can change
// under us, and the engine and the filesystem must see names and lengths
// that stay what was validated. The WRITE payload is not copied: it is
// pwritev'd from guest memory (guestSource). The reply header and
// arguments are built in the engine's Out and copied to the writable part;
// READ data is preadv'd straight into the guest after the 16-byte header
// (guestSink).
func (d *Device) serve(s *slot, queue int) uint32 {
	c := &s.chain
	rlen := c.ReadableLen()
	if rlen < abi.InHeaderSize {
		return 0 // not even a header: nothing to answer
	}
	if c.ReadAt(s.in[:abi.InHeaderSize], 0) != abi.InHeaderSize {
		return 0
	}
	op := abi.Opcode(binary.LittleEndian.Uint32(s.in[4:8]))
	unique := binary.LittleEndian.Uint64(s.in[8:16])
	inLen := rlen
	var src fs.Source
	var dst fs.Sink
	if op == abi.OpWrite && rlen >= abi.InHeaderSize+abi.WriteInSize {
		inLen = abi.InHeaderSize + abi.WriteInSize
		s.src.reset(c.Readable(), inLen, int(rlen-inLen))
		src = &s.src
	}
	wlen := c.WritableLen()
	if inLen > uint64(len(s.in)) {
		return errReply(c, unique, unix.E2BIG, wlen)
	}
	c.ReadAt(s.in[abi.InHeaderSize:inLen], abi.InHeaderSize)
	if op == abi.OpRead && wlen > abi.OutHeaderSize {
		s.sink.reset(c.Writable(), abi.OutHeaderSize, int(min(wlen-abi.OutHeaderSize, 1<<31)))
		dst = &s.sink
	}
	n := d.handle(s, op, queue, s.in[:inLen], src, dst)
	if n == 0 {
		return 0
	}
	data := s.req.DataLen()
	if uint64(n)+uint64(data) > wlen {
		// The driver gave less room than the reply needs (Linux never
		// does); answer EIO if at least the header fits.
		return errReply(c, unique, unix.EIO, wlen)
	}
	c.WriteAt(s.req.Out[:n], 0)
	return uint32(n + data)
}

// handle runs the engine on the request in (s.in) with src and dst as its
// WRITE source and READ sink (nil for none), in the device's current
// session, with s.noWait, counting it in s.obs; what serve and serveCopied
// share. It returns the reply length in s.req.Out; 0 when there is no
// reply, s.retry then telling whether the engine left it because it would
// wait. Every reply is delivered: the guest driver completes whatever
// chain the device returns (it has no ENOENT of /dev/fuse for a request
// it gave up on: a request stays queued until the device answers it), so
// no reply's lookups or handles are lost and nothing here calls
// fuse.Server.NotDelivered.
func (d *Device) handle(s *slot, op abi.Opcode, queue int, in []byte, src fs.Source, dst fs.Sink) int {
	d.session(s, op, queue)
	r := s.req
	r.In, r.Src, r.Dst = in, src, dst
	r.NoWait, s.retry = s.noWait, false
	var t0 time.Time
	if s.obs != nil {
		t0 = time.Now()
	}
	n := s.sess.srv.Handle(r)
	if s.obs != nil && n >= abi.OutHeaderSize {
		moved := uint64(r.DataLen()) // 0 without dst
		if src != nil {
			moved = uint64(src.Len())
		}
		s.obs.Observe(uint32(op), stats.FuseErrno(binary.LittleEndian.Uint32(r.Out[4:8])), moved, time.Since(t0))
	}
	if op == abi.OpDestroy {
		s.sess.destroyed.Store(true)
	}
	if n == 0 {
		s.retry = r.Retry()
	}
	return n
}

// serveCopied is serve for a blocking slot, touching no guest memory: the
// request is in s.in[:s.inLen] (copied by the worker, toBlocking) and the
// reply is left in s.req.Out[:n] for the worker to copy out (copyOut), so
// a blocking slot holds no view of guest memory however long it waits.
// The requests blocking slots serve (fuse.Blocking, lease retries of
// OPEN, CREATE and SETATTR) carry no data payload either way.
func (d *Device) serveCopied(s *slot, queue int) uint32 {
	c := &s.chain
	rlen := uint64(s.inLen)
	if rlen < abi.InHeaderSize {
		return 0
	}
	op := abi.Opcode(binary.LittleEndian.Uint32(s.in[4:8]))
	unique := binary.LittleEndian.Uint64(s.in[8:16])
	wlen := c.WritableLen()
	if c.ReadableLen() != rlen {
		return errOut(s, unique, unix.E2BIG, wlen) // longer than its copy (toBlocking sizes it: never)
	}
	n := d.handle(s, op, queue, s.in[:rlen], nil, nil)
	if n == 0 {
		return 0
	}
	if uint64(n) > wlen || s.req.DataLen() != 0 {
		return errOut(s, unique, unix.EIO, wlen)
	}
	return uint32(n)
}

// errOut leaves a header-only error reply in s.req.Out for copyOut, if it
// fits in wlen bytes.
func errOut(s *slot, unique uint64, e unix.Errno, wlen uint64) uint32 {
	if wlen < abi.OutHeaderSize {
		return 0
	}
	h := s.req.Out[:abi.OutHeaderSize]
	binary.LittleEndian.PutUint32(h[0:], abi.OutHeaderSize)
	binary.LittleEndian.PutUint32(h[4:], uint32(-int32(e)))
	binary.LittleEndian.PutUint64(h[8:], unique)
	return abi.OutHeaderSize
}

// session makes slot s serve the device's current FUSE session, starting a
// new one first if op is INIT for a session already initialised (a guest
// that rebooted; virtio spec: a new FUSE_INIT terminates the session).
// Steady state: one atomic load, no allocation.
func (d *Device) session(s *slot, op abi.Opcode, queue int) {
	cur := d.sess.Load()
	if op == abi.OpInit {
		if _, ok := cur.srv.Agreed(); ok {
			d.log.Info("virtiofs: FUSE INIT on an initialised session: starting a new session", "queue", queue)
			d.newSession(cur)
			cur = d.sess.Load()
		}
	}
	if cur != s.sess {
		s.reqMu.Lock()
		s.sess = cur
		s.req = s.newRequest()
		s.reqMu.Unlock()
	}
}

// errReply writes a header-only error reply, if it fits.
func errReply(c *ring.Chain, unique uint64, e unix.Errno, wlen uint64) uint32 {
	if wlen < abi.OutHeaderSize {
		return 0
	}
	var h [abi.OutHeaderSize]byte
	binary.LittleEndian.PutUint32(h[0:], abi.OutHeaderSize)
	binary.LittleEndian.PutUint32(h[4:], uint32(-int32(e)))
	binary.LittleEndian.PutUint64(h[8:], unique)
	c.WriteAt(h[:], 0)
	return abi.OutHeaderSize
}
