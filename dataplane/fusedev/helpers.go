package fusedev

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/dataplane"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/stats"
)

// DefaultBlockingHelpers is the default ServeOptions.BlockingHelpers: how
// many requests that may block (lock waits, fsync…) a connection serves at
// once off its workers. Each waits on its own OS thread, and holds a slot
// of helperInMax + helperOutSize bytes (2 MiB and 1,024 idle goroutines in
// all), and a wait whose request is larger a copy from the pool's
// WaitCopies (helperPool.copies). An eighth of them is one uid's share of lock waits and another
// eighth is kept for root (dataplane.LockWaits): 128 waits per user, as many as
// the storm of 100 waiters one user makes in test/dos.
const DefaultBlockingHelpers = 1024

// helperInMax is the request a helper slot's own copy holds: the
// blocking ops carry a fixed struct of at most 56 bytes and perhaps a few
// request extensions. A bigger wait (a CREATE of a long name with a
// security label over a leased file) gets a copy from
// helperPool.copies; a bigger FSYNC or the like is served inline (it
// ends on its own; the kernel never sends one).
const helperInMax = 1024

// helperOutSize is a helper slot's reply buffer: blocking ops answer at
// most fuse_lk_out; the engine asks for room for its largest fixed reply.
const helperOutSize = 1024

// helperSlot carries one blocking request from a worker to a helper.
// Owned by the pool while in free, by one helper between hand-off and
// its reply.
type helperSlot struct {
	fd int // the /dev/fuse fd the request was read from: its reply goes there
	id int // that worker's id, for logs
	// wait: the request is a wait (a lock wait, or an open breaking a
	// host lease: helperPool.wait) counted for uid in helperPool.waits.
	wait bool
	uid  uint32
	// in is the request the helper serves: a copy in small (the slot's
	// own helperInMax bytes) or, for a wait too big for it, in big.
	in    []byte
	small []byte
	// big is the wait's copy from helperPool.copies, given back by the
	// helper once the reply is sent; nil when in is in small.
	big  []byte
	req  *fuse.Request
	errb [outHeaderSize]byte
}

// helperPool is a connection's bounded set of helpers for requests that
// may block (fuse.Blocking). A worker hands such a request over and goes
// on reading; when every slot is busy, or its caller's share of them waits
// already (waits), a lock wait is refused with ENOLCK
// (a waiter must not take the worker: the RELEASE that frees the lock may
// be queued behind it) and any other blocking request is served inline
// (it ends on its own).
type helperPool struct {
	srv   *fuse.Server
	stats *stats.Set // nil: no Stats
	// obs counts what every helper serves: one Worker (one series) for the
	// pool, not one per slot. A Worker takes one writer at a time, which
	// obsMu gives; blocking requests are few and slow, so the lock costs
	// nothing that matters.
	obsMu   sync.Mutex
	obs     *stats.Worker    // nil: no Stats; +checklocks:obsMu for writes
	free    chan *helperSlot // idle slots
	work    chan *helperSlot // handed over; capacity = slots, so a send never blocks
	running sync.WaitGroup

	// waits bounds the slots waits (lock waits, and opens breaking a
	// host lease) hold, per uid (dataplane.LockWaits: a uid other than 0
	// waits in at most an eighth, and in none once all but an eighth
	// wait, kept for root). The kernel sets the uid on a
	// FUSE mount, so one local user cannot take the pool, and with it
	// every other user's blocking locks, away.
	waits *dataplane.LockWaits
	// copies holds the copies of waits too big for a slot's own
	// (helperInMax): taken by a worker at hand-off with the wait's slot
	// and given back by its helper with it, so at most one per slot
	// exists, each at most the worker's read buffer (header, write_in
	// and max_write: the largest request the door reads). In theory
	// slots × that (1,024 × 1 MiB with the defaults); in practice a copy
	// is the request rounded up to 4 KiB, and the kernel's waits carry at
	// most a name (PATH_MAX) and its request extensions, a page or two:
	// a few MiB with every slot waiting (dataplane.WaitCopies).
	copies *dataplane.WaitCopies
}

// newHelperPool starts n helpers for requests of at most maxIn bytes (a
// worker's read buffer); with st non-nil they count what they serve in
// one stats.Worker of st, as a worker does.
func newHelperPool(srv *fuse.Server, n, maxIn int, st *stats.Set) *helperPool {
	p := &helperPool{srv: srv, stats: st, free: make(chan *helperSlot, n), work: make(chan *helperSlot, n),
		waits: dataplane.NewLockWaits(n), copies: dataplane.NewWaitCopies(n, maxIn)}
	if st != nil {
		p.obs = st.NewWorker()
	}
	for range n {
		s := &helperSlot{small: make([]byte, helperInMax), req: &fuse.Request{Out: make([]byte, max(helperOutSize, fuse.MinOutSize))}}
		p.free <- s
		p.running.Add(1)
		go p.helper()
	}
	return p
}

// offload hands the request in (read from w's fd) to a helper if it may
// block, and reports whether w is done with it (handed over, or refused
// with ENOLCK). It allocates nothing.
func (p *helperPool) offload(w *worker, in []byte) bool {
	if p == nil {
		return false
	}
	h, ok := readHdr(in)
	op := abi.Opcode(h.opcode)
	if !ok || !fuse.Blocking(op) {
		return false
	}
	wait := fuse.WaitingLock(op, in[inHeaderSize:])
	if op == abi.OpSetlkw && !wait {
		return false // an unlock: it never waits, and must work with the pool full
	}
	if !wait && len(in) > helperInMax {
		// FSYNC, FALLOCATE and the like never wait for another process
		// (they end on their own) and the kernel sends them with their
		// struct only: one with more is served inline, as when every
		// helper is busy. A lock wait of any size goes to a helper.
		return false
	}
	if p.give(w, in, h, wait) {
		return true
	}
	if !wait {
		return false
	}
	w.refuse(h, syscall.ENOLCK)
	return true
}

// wait hands to a helper the request in (read from w's fd) that the
// engine left unanswered because serving it would wait (fuse.Request.Retry:
// an OPEN, CREATE or truncating SETATTR that must break a host lease,
// for up to lease-break-time). The helper serves it again allowed to
// wait, registered for FUSE_INTERRUPT, so an INTERRUPT or the
// connection's end answers it EINTR. Such a wait is counted in waits
// like a lock wait, with the same per-uid share; when uid's share or
// every slot is taken it is refused with EAGAIN (a native open would
// wait: EAGAIN is what an O_NONBLOCK open gets from a lease). Whatever its
// size: a request too big for a slot's own copy (a CREATE of a long name
// with a security label) takes one from p.copies, never waits on the
// worker (a lease break lasts up to lease-break-time, 45 s, and the
// worker's CPU serves nothing else meanwhile). It allocates nothing
// unless it makes such a copy.
func (p *helperPool) wait(w *worker, in []byte) {
	h, ok := readHdr(in)
	if !ok {
		return // the engine answered nothing it could not parse: unreachable
	}
	if !p.give(w, in, h, true) {
		w.refuse(h, syscall.EAGAIN)
	}
}

// give hands the request in (read from w's fd, header h) to an idle
// helper and reports whether one took it. With wait it is a wait,
// counted for h.uid in waits first: uid's share taken, or no helper idle,
// it reports false having counted nothing. A wait larger than a slot's
// own copy (helperInMax) is copied into one from p.copies; only waits
// are (the caller serves any other such request inline). It allocates
// nothing unless it makes such a copy.
func (p *helperPool) give(w *worker, in []byte, h hdr, wait bool) bool {
	if wait && !p.waits.Take(h.uid) {
		return false
	}
	select {
	case s := <-p.free:
		buf := s.small
		if len(in) > len(s.small) {
			// Bounded: this wait holds a slot (see copies).
			if s.big = p.copies.Get(len(in)); s.big == nil {
				p.free <- s // never blocks: free holds every slot
				break
			}
			buf = s.big
		}
		s.fd, s.id = w.fd, w.id
		s.wait, s.uid = wait, h.uid
		s.in = append(buf[:0], in...)
		p.work <- s
		return true
	default:
	}
	if wait {
		p.waits.Put(h.uid)
	}
	return false
}

// refuse answers the request with header h, read from w's fd, with
// error e at once (counting it in w.obs).
func (w *worker) refuse(h hdr, e syscall.Errno) {
	putErrReply(w.errb[:], h.unique, int32(e))
	if w.obs != nil {
		w.obs.Observe(h.opcode, uint32(e), 0, 0)
	}
	w.send(w.errb[:])
}

func (p *helperPool) helper() {
	defer p.running.Done()
	for s := range p.work {
		r := s.req
		r.In, r.Src, r.Dst = s.in, nil, nil
		var n int
		if p.obs != nil {
			t0 := time.Now()
			n = p.call(s)
			d := time.Since(t0)
			p.obsMu.Lock()
			observeReply(p.obs, r, n, d)
			p.obsMu.Unlock()
		} else {
			n = p.call(s)
		}
		if n > 0 {
			sendReply(p.srv, r, s.fd, s.id, r.Out[:n], s.errb[:])
		}
		if s.wait {
			p.waits.Put(s.uid)
		}
		if s.big != nil {
			p.copies.Put(s.big)
			s.big = nil
		}
		s.in = s.small[:0]
		p.free <- s
	}
}

// call runs the engine on s; a panic (a bug) becomes EIO.
func (p *helperPool) call(s *helperSlot) (n int) {
	defer func() {
		if x := recover(); x != nil {
			fmt.Fprintf(os.Stderr, "fastfsd: fusedev helper: engine panic (bug), replying EIO: %v\n", x)
			n = 0
			if h, ok := readHdr(s.in); ok && !noReply(h.opcode) {
				putErrReply(s.req.Out, h.unique, int32(syscall.EIO))
				n = outHeaderSize
			}
		}
	}()
	return p.srv.Handle(s.req)
}

// stop interrupts what the helpers serve (lock waits answer EINTR), ends
// them, and reports whether they all ended within d: if not, their fds
// must stay open (a late reply must not land on a reused fd number).
func (p *helperPool) stop(d time.Duration) bool {
	if p == nil {
		return true
	}
	p.srv.InterruptAll()
	close(p.work)
	idle := make(chan struct{})
	go func() { p.running.Wait(); close(idle) }()
	select {
	case <-idle:
		// No helper is left to write the pool's counters: give them back
		// (their counts stay in the totals).
		if p.stats != nil {
			p.stats.Release(p.obs)
			p.obs = nil
		}
		return true
	case <-time.After(d):
		fmt.Fprintf(os.Stderr, "fastfsd: fusedev: blocking requests still running %v after the connection ended; leaving their fds open\n", d)
		return false
	}
}

// sendReply writes to fd the reply b that srv made for r, from a helper
// (the worker's send is the worker's alone). errb is scratch for an EIO
// reply if the kernel refuses b. A reply the kernel did not take gives
// back the references it carried (fuse.Server.NotDelivered), as send does.
func sendReply(srv *fuse.Server, r *fuse.Request, fd, id int, b, errb []byte) {
	for {
		_, err := unix.Write(fd, b)
		switch err {
		case nil, syscall.ENODEV, syscall.ECONNABORTED:
			// Sent; or the connection is gone: nobody waits for the reply.
			return
		case syscall.ENOENT:
			// The kernel no longer has the request (resent, or the
			// connection aborted).
			srv.NotDelivered(r, b)
			return
		case syscall.EINTR:
			continue
		default:
			fmt.Fprintf(os.Stderr, "fastfsd: fusedev worker %d helper: reply of %d bytes refused: %v\n", id, len(b), err)
			srv.NotDelivered(r, b)
			if h, ok := readHdr(r.In); ok && len(b) != outHeaderSize {
				putErrReply(errb, h.unique, int32(syscall.EIO))
				b = errb
				continue
			}
			return
		}
	}
}
