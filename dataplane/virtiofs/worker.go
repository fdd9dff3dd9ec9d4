package virtiofs

import (
	"encoding/binary"
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

// worker serves one virtqueue to completion on its own locked (and
// optionally pinned) thread. Everything here is owned by the worker's
// goroutine, except stop (written by StopQueue) and the fields StopQueue
// reads after the worker has exited (q, reader).
type worker struct {
	d      *Device
	index  int
	q      *ring.Queue
	reader *mem.Reader
	sess   *session // the FUSE session req belongs to
	kick   int      // -1: the front-end asked for polling
	call   int      // -1: no notifications
	errFd  int
	stop   int // eventfd StopQueue signals, to wake a sleeping worker
	// stopping is set by StopQueue before it signals stop, and checked
	// between requests so a busy ring cannot delay GET_VRING_BASE.
	stopping atomic.Bool
	dw       *dataplane.Worker

	req   *fuse.Request
	chain ring.Chain
	sink  guestSink
	src   guestSource
	iov   [ring.MaxBuffers]unix.Iovec
	in    [inBufSize]byte
	one   [8]byte // eventfd increment
	scr   [8]byte // eventfd read scratch
	pfd   [2]unix.PollFd

	// Worker-private counters; badChains rate-limits the log of refused
	// chains to the first 10 per queue start.
	served, badChains uint64
}

func newWorker(d *Device, q *vhostuser.Queue, rq *ring.Queue, stop int) *worker {
	w := &worker{d: d, index: q.Index, q: rq, kick: q.Kick, call: q.Call, errFd: q.Err, stop: stop}
	// The reader is created here and used only by the worker from now on.
	w.reader = q.Memory.NewReader()
	w.sess = d.sess.Load()
	w.req = w.sess.srv.NewRequest()
	w.sink.iov = &w.iov
	w.src.iov = &w.iov
	binary.LittleEndian.PutUint64(w.one[:], 1)
	w.pfd[0] = unix.PollFd{Fd: int32(stop), Events: unix.POLLIN}
	w.pfd[1] = unix.PollFd{Fd: int32(q.Kick), Events: unix.POLLIN}
	return w
}

// run is the worker loop (ring.Queue's documented kick-driven loop). It
// returns errStopped when StopQueue asks, or nil after a broken ring, once
// StopQueue asks.
func (w *worker) run() error {
	defer w.reader.Exit()
	for {
		stop, ok := w.drainRing()
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
		if w.d.opts.BusyPoll > 0 && w.poll() {
			continue
		}
		if w.q.EnableNotify() {
			continue
		}
		w.reader.Exit() // quiescent: hold no view of guest memory while asleep
		if w.sleep() {
			return errStopped
		}
		// Online again before touching the ring: the table may have been
		// replaced (and the old one unmapped) while we slept.
		if !w.enter() {
			return w.broken()
		}
		w.q.DisableNotify()
	}
}

// enter passes a quiescent point of guest memory before each request (an
// atomic load and store: cheap), so a memory update never waits for a busy
// queue to drain, and re-translates the ring if the table changed. It
// reports false if the ring is no longer in guest memory.
func (w *worker) enter() bool {
	t := w.reader.Enter()
	if t == w.q.Table() {
		return true
	}
	// vhostuser restarts a ring whose areas moved, so this fails only for
	// a ring the front-end broke.
	if err := w.q.SetMemory(t); err != nil {
		w.d.log.Warn("virtiofs: ring no longer in guest memory; stopping it", "queue", w.index, "err", err)
		return false
	}
	return true
}

// drainRing serves every available chain, publishing after each so a slow
// request does not hold back the completions before it. It returns with
// stop set when StopQueue asked the worker to stop, and ok false when the
// ring left guest memory. It leaves the reader online.
func (w *worker) drainRing() (stop, ok bool) {
	for {
		if w.stopping.Load() {
			return true, true
		}
		if !w.enter() {
			return false, false
		}
		got, err := w.q.Pop(&w.chain)
		if !got {
			return false, true
		}
		var n uint32
		if err != nil {
			w.badChains++
			if w.badChains <= 10 {
				w.d.log.Warn("virtiofs: refused descriptor chain", "queue", w.index, "head", w.chain.Head, "err", err)
			}
		} else {
			n = w.serve()
			w.served++
		}
		w.q.Push(w.chain.Head, n)
		if w.q.Publish() && w.call >= 0 {
			signal(w.call, &w.one)
		}
	}
}

// poll spins on the ring for BusyPoll; true if work arrived.
func (w *worker) poll() bool {
	deadline := time.Now().Add(w.d.opts.BusyPoll)
	for time.Now().Before(deadline) {
		if !w.enter() {
			return true // drainRing sees the failure and stops the ring
		}
		if w.q.EnableNotify() {
			return true
		}
		if w.stopRequested() {
			return false
		}
	}
	return false
}

func (w *worker) stopRequested() bool { return w.stopping.Load() }

// sleep waits for a kick or a stop; true means stop.
func (w *worker) sleep() bool {
	p := w.pfd[:2]
	timeout := -1
	if w.kick < 0 {
		p = w.pfd[:1] // polling mode: no kick fd, look again every ms
		timeout = 1
	}
	for {
		n, err := unix.Poll(p, timeout)
		if err == unix.EINTR {
			continue
		}
		if w.pfd[0].Revents != 0 {
			return true
		}
		if n > 0 && len(p) > 1 && p[1].Revents != 0 {
			drain(w.kick, &w.scr)
		}
		return false
	}
}

// broken signals the error eventfd and waits for StopQueue.
func (w *worker) broken() error {
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

// serve runs the FUSE request in w.chain and returns the bytes written to
// its writable part (the used length).
//
// The readable part is fuse_in_header + arguments (+ WRITE payload). Header
// and arguments are copied into the worker's buffer: guest memory can
// change under us, and the engine and the filesystem must see names and
// lengths that stay what was validated. The WRITE payload is not copied: it
// is pwritev'd from guest memory (guestSource). The reply header and
// arguments are built in the engine's Out and copied to the writable part;
// READ data is preadv'd straight into the guest after the 16-byte header
// (guestSink).
func (w *worker) serve() uint32 {
	c := &w.chain
	r := w.req
	rlen := c.ReadableLen()
	if rlen < abi.InHeaderSize {
		return 0 // not even a header: nothing to answer
	}
	if c.ReadAt(w.in[:abi.InHeaderSize], 0) != abi.InHeaderSize {
		return 0
	}
	op := abi.Opcode(binary.LittleEndian.Uint32(w.in[4:8]))
	unique := binary.LittleEndian.Uint64(w.in[8:16])
	inLen := rlen
	var src fs.Source
	var dst fs.Sink
	if op == abi.OpWrite && rlen >= abi.InHeaderSize+abi.WriteInSize {
		inLen = abi.InHeaderSize + abi.WriteInSize
		w.src.reset(c.Readable(), inLen, int(rlen-inLen))
		src = &w.src
	}
	wlen := c.WritableLen()
	if inLen > uint64(len(w.in)) {
		return w.errReply(unique, unix.E2BIG, wlen)
	}
	c.ReadAt(w.in[abi.InHeaderSize:inLen], abi.InHeaderSize)
	if op == abi.OpRead && wlen > abi.OutHeaderSize {
		w.sink.reset(c.Writable(), abi.OutHeaderSize, int(min(wlen-abi.OutHeaderSize, 1<<31)))
		dst = &w.sink
	}
	r.In, r.Src, r.Dst = w.in[:inLen], src, dst
	if w.session(op) {
		r = w.req
		r.In, r.Src, r.Dst = w.in[:inLen], src, dst
	}
	n := w.sess.srv.Handle(r)
	if op == abi.OpDestroy {
		w.sess.destroyed.Store(true)
	}
	if n == 0 {
		return 0
	}
	data := r.DataLen()
	if uint64(n)+uint64(data) > wlen {
		// The driver gave less room than the reply needs (Linux never
		// does); answer EIO if at least the header fits.
		return w.errReply(unique, unix.EIO, wlen)
	}
	c.WriteAt(r.Out[:n], 0)
	return uint32(n + data)
}

// session makes the worker serve the device's current FUSE session,
// starting a new one first if op is INIT for a session already initialised
// (a guest that rebooted; virtio spec: a new FUSE_INIT terminates the
// session). It reports whether w.req changed. Steady state: one atomic
// load, no allocation.
func (w *worker) session(op abi.Opcode) bool {
	s := w.d.sess.Load()
	if op == abi.OpInit {
		if _, ok := s.srv.Agreed(); ok {
			w.d.log.Info("virtiofs: FUSE INIT on an initialised session: starting a new session", "queue", w.index)
			w.d.newSession(s)
			s = w.d.sess.Load()
		}
	}
	if s == w.sess {
		return false
	}
	w.sess = s
	w.req = s.srv.NewRequest()
	return true
}

// errReply writes a header-only error reply, if it fits.
func (w *worker) errReply(unique uint64, e unix.Errno, wlen uint64) uint32 {
	if wlen < abi.OutHeaderSize {
		return 0
	}
	var h [abi.OutHeaderSize]byte
	binary.LittleEndian.PutUint32(h[0:], abi.OutHeaderSize)
	binary.LittleEndian.PutUint32(h[4:], uint32(-int32(e)))
	binary.LittleEndian.PutUint64(h[8:], unique)
	w.chain.WriteAt(h[:], 0)
	return abi.OutHeaderSize
}
