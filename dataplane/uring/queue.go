package uring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fastfsd/fastfsd/dataplane"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/stats"
	"golang.org/x/sys/unix"
)

// EnableParam is the fuse module parameter that lets the kernel offer
// FUSE_OVER_IO_URING.
const EnableParam = "/sys/module/fuse/parameters/enable_uring"

// Enabled reports whether the kernel will offer FUSE over io_uring.
func Enabled() bool {
	b, err := os.ReadFile(EnableParam)
	return err == nil && strings.TrimSpace(string(b)) == "Y"
}

// Enable turns the kernel's enable_uring parameter on (root only). It
// opens /dev/fuse first, which loads the fuse module where it is one and
// not loaded yet: the parameter exists only once it is.
func Enable() error {
	if f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0); err == nil {
		f.Close()
	}
	if err := os.WriteFile(EnableParam, []byte("Y"), 0); err != nil {
		return fmt.Errorf("enable FUSE over io_uring: %w; needs root and a kernel built with CONFIG_FUSE_IO_URING (6.14+)", err)
	}
	return nil
}

// QueueCount is the number of FUSE io_uring queues the kernel expects: one
// per possible CPU (num_possible_cpus()).
func QueueCount() (int, error) {
	b, err := os.ReadFile("/sys/devices/system/cpu/possible")
	if err != nil {
		return 0, fmt.Errorf("read possible CPUs: %w", err)
	}
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(string(b)), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		z := a
		var err2 error
		if isRange {
			z, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || z < a {
			return 0, fmt.Errorf("parse possible CPUs %q", b)
		}
		n = max(n, z+1)
	}
	return n, nil
}

// Config configures Serve.
type Config struct {
	// Fd is a /dev/fuse fd of the connection. The connection's INIT must
	// have agreed FUSE_OVER_IO_URING.
	Fd int
	// Server is the connection's engine.
	Server *fuse.Server
	// Depth is the number of entries per queue (requests in flight per
	// CPU); 0 means 16.
	Depth int
	// Stats, when not nil, counts every request served.
	Stats *stats.Set
	// Queues is the number of queues the kernel expects (QueueCount);
	// 0 reads it from /sys at Serve. A caller that pivot_roots or
	// restricts itself with Landlock before Serve reads it ahead.
	Queues int
}

// ErrNotAgreed is returned when the connection did not agree on io_uring.
var ErrNotAgreed = errors.New("uring: the connection's INIT did not agree FUSE_OVER_IO_URING; turn it on with echo Y > " + EnableParam)

// Serve runs one pinned worker per queue until the connection ends, and
// returns nil then. It returns an error if a queue cannot start; queues
// that started are stopped by the connection's end only.
func Serve(cfg Config) error {
	ag, ok := cfg.Server.Agreed()
	if !ok || ag.Flags&abi.InitOverIoUring == 0 {
		return ErrNotAgreed
	}
	nq := cfg.Queues
	if nq <= 0 {
		var err error
		if nq, err = QueueCount(); err != nil {
			return err
		}
	}
	depth := cfg.Depth
	if depth <= 0 {
		depth = 16
	}
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		return fmt.Errorf("uring: sched_getaffinity: %w", err)
	}
	var (
		wg      sync.WaitGroup
		errMu   sync.Mutex
		errs    []error
		started = make(chan error, nq)
	)
	for qid := 0; qid < nq; qid++ {
		q := newQueue(uint16(qid), cfg.Fd, cfg.Server, depth)
		if cfg.Stats != nil {
			q.stats = cfg.Stats.NewWorker()
		}
		wg.Add(1)
		cpu := -1 // a possible CPU this process may not run on stays unpinned
		if allowed.IsSet(qid) {
			cpu = qid
		}
		w := dataplane.Start(cpu, func() error {
			err := q.run(started)
			if err != nil {
				errMu.Lock()
				errs = append(errs, fmt.Errorf("uring queue %d: %w", qid, err))
				errMu.Unlock()
			}
			return err
		})
		go func() {
			if err := w.Wait(); !q.began {
				started <- err // pinning failed before run
			}
			wg.Done()
		}()
	}
	for i := 0; i < nq; i++ {
		if err := <-started; err != nil {
			wg.Wait()
			return err
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// queue is one FUSE io_uring queue, owned by one worker.
type queue struct {
	qid   uint16
	fd    int
	srv   *fuse.Server
	depth int
	stats *stats.Worker

	ring  *ring
	ents  []*entryMem
	req   *fuse.Request
	in    []byte // request reassembly: in header, op struct, names
	src   fuse.BytesSource
	done  error // set when the connection ends
	began bool  // run was entered (read by Serve after the worker ends)

	// Requests that may block for long (fuse.Blocking: SETLKW waiting for
	// a lock, FSYNC, …) run on helper goroutines, at most one per entry
	// and lock waits on at most half the entries (see waits): a queue has
	// one worker, and a lock waiter blocking it would hold up the very
	// RELEASE that frees the lock when the holder runs on the same CPU. A
	// helper serves the request in its entry's own Request, then appends
	// the entry to finished and writes evfd; the ring has a READ of evfd
	// outstanding, whose completion wakes the worker, which commits the
	// finished entries (the ring stays single-issuer).
	evfd     int
	evbuf    []byte // 8-byte read target of the evfd READ, mmapped
	helpReqs []*fuse.Request
	// helpIn[i] is the request copy the helper serving entry i reads
	// (serve reassembles the request there: the reply overwrites the
	// entry's payload buffer), helperPayloadMax bytes of payload.
	helpIn [][]byte
	// waitIn holds the copies for waits whose payload helpIn cannot
	// hold (a CREATE of a long name with request extensions, which must
	// still wait for a host lease off the worker), taken and given back
	// by the worker only, with the wait's slot. At most the wait slots
	// (depth/2) of them exist, each at most waitInMax bytes: at most
	// depth/2 × (the ring's payload buffer size + 168 bytes) per queue,
	// about half what the entries' own buffers take; in practice far
	// less: a copy is the request rounded up to 4 KiB (one page for a
	// name and a security label), reused (dataplane.WaitCopies).
	waitIn   *dataplane.WaitCopies
	helpers  sync.WaitGroup
	finMu    sync.Mutex
	finished []helperDone // guarded by finMu
	// waits counts the waits on helpers, lock waits and opens breaking
	// a host lease (retry); taken and put by the worker only. A waiter
	// holds its ring entry until it is answered, and the kernel queues
	// this CPU's requests behind the entries: at most half of them (the
	// wait slots) may wait, so the other half keeps serving, and the
	// unlock that ends a lock wait always finds an entry. Of those slots a uid other than 0 waits in
	// at most an eighth, and non-root waits leave an eighth to root
	// (dataplane.LockWaits), as on /dev/fuse: one local user pinning its
	// waiters to a CPU cannot take that CPU's blocking locks from the
	// others.
	waits *dataplane.LockWaits
}

// newQueue returns queue qid of the connection on fd, with depth entries
// (half of them wait slots); setup makes its ring.
func newQueue(qid uint16, fd int, srv *fuse.Server, depth int) *queue {
	return &queue{qid: qid, fd: fd, srv: srv, depth: depth, waits: dataplane.NewLockWaits(depth / 2)}
}

// helperDone is an entry a helper has served.
type helperDone struct {
	ent int
	n   int
	op  uint32
	t0  time.Time
	// wait: the request was a wait (lock or lease) counted for uid in
	// queue.waits.
	wait bool
	uid  uint32
	// in is the wait's copy from q.waitIn, given back at commit; nil
	// when the helper used helpIn.
	in []byte
}

// evfdTag marks the CQE of the evfd READ.
const evfdTag = 1 << 63

func (q *queue) run(started chan<- error) error {
	q.began = true
	err := q.setup()
	started <- err
	if err != nil {
		q.close()
		return err
	}
	defer q.close()
	reqs := 0 // request CQEs of this wake-up (not the evfd READ's)
	reap := func(userData uint64, res int32) {
		if userData != evfdTag {
			reqs++
		}
		q.complete(userData, res)
	}
	var sched dataplane.SchedPoint
	for q.done == nil {
		if sched.Due() {
			// The replies go out first: the pass takes tens of µs.
			if err := q.ring.submitAndWait(0); err != nil {
				return err
			}
			sched.Pass()
		}
		if err := q.ring.submitAndWait(1); err != nil {
			return err
		}
		reqs = 0
		q.ring.reap(reap)
		if q.stats != nil {
			q.stats.SetDepth(reqs) // requests this wake-up found
		}
	}
	if errors.Is(q.done, errConnEnded) {
		return nil
	}
	return q.done
}

var errConnEnded = errors.New("connection ended")

func (q *queue) setup() error {
	r, err := newRing(uint32(q.depth)*2 + 2)
	if err != nil {
		return err
	}
	q.ring = r
	payload := q.srv.OutSize() - abi.OutHeaderSize
	q.req = q.srv.NewRequest()
	// The worker must not wait: a request that would (an open breaking
	// a host lease) goes to a helper (retry).
	q.req.NoWait = true
	q.in = make([]byte, abi.InHeaderSize+abi.UringOpInOutSize+payload)
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	q.evfd = efd
	if q.evbuf, err = unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS); err != nil {
		return fmt.Errorf("mmap evfd buffer: %w", err)
	}
	putRead(q.ring.nextSQE(), q.evfd, q.evbuf[:8], evfdTag)
	q.waitIn = dataplane.NewWaitCopies(q.waits.Slots(), waitInMax(payload))
	for i := 0; i < q.depth; i++ {
		e, err := newEntryMem(payload)
		if err != nil {
			return err
		}
		q.ents = append(q.ents, e)
		q.helpReqs = append(q.helpReqs, &fuse.Request{})
		q.helpIn = append(q.helpIn, make([]byte, waitInMax(helperPayloadMax)))
		sqe := q.ring.nextSQE()
		putUringCmd(sqe, q.fd, uint32(abi.UringCmdRegister), e.iovAddr, 2, 0, q.qid, uint64(i))
	}
	// Submit the REGISTERs without waiting: they complete only when a
	// request arrives.
	return q.ring.submitAndWait(0)
}

func (q *queue) close() {
	if q.ring != nil {
		q.ring.close() // cancels what the kernel still holds
	}
	// The connection is gone: lock waits and the like answer EINTR now.
	q.srv.InterruptAll()
	// Helpers write into their entry's memory and to evfd. One may still
	// be blocked (a lock wait nobody will interrupt once the connection
	// is gone): then leave the memory mapped and evfd open rather than let
	// it write into an unmapped page or a reused fd number. That leak is
	// bounded by the queue depth and happens only at the end of a session.
	idle := make(chan struct{})
	go func() { q.helpers.Wait(); close(idle) }()
	select {
	case <-idle:
	case <-time.After(2 * time.Second):
		return
	}
	for _, e := range q.ents {
		e.close()
	}
	q.ents = nil
	if q.evbuf != nil {
		unix.Munmap(q.evbuf)
		q.evbuf = nil
	}
	if q.evfd > 0 {
		unix.Close(q.evfd)
		q.evfd = 0
	}
}

// complete handles one CQE: a request delivered into entry userData.
func (q *queue) complete(userData uint64, res int32) {
	if userData == evfdTag {
		q.commitFinished()
		if q.done == nil {
			putRead(q.ring.nextSQE(), q.evfd, q.evbuf[:8], evfdTag)
		}
		return
	}
	if res < 0 {
		// A COMMIT_AND_FETCH the kernel refused. ENOENT (Linux 6.18
		// fuse_uring_commit_fetch: the commit_id is not in the queue's
		// processing list) cannot come from a client: a request the
		// server holds leaves that list only when committed or when the
		// connection is aborted (a caller's fatal signal waits out a
		// request already sent, request_wait_answer; FUSE_NOTIFY_RESEND
		// resends only /dev/fuse requests, fc->devices), so it ends the
		// queue like the other errors; the references such a reply
		// carried go with the connection. A kernel that resends ring
		// requests would need fuse.Server.NotDelivered here, with the
		// entry's opcode kept, and the entry registered again.
		switch syscall.Errno(-res) {
		case unix.ENOTCONN, unix.ECONNABORTED, unix.ECANCELED, unix.ENODEV:
			q.done = errConnEnded
		default:
			q.done = fmt.Errorf("entry %d: %w", userData, syscall.Errno(-res))
		}
		return
	}
	if userData >= uint64(len(q.ents)) {
		q.done = fmt.Errorf("CQE for unknown entry %d", userData)
		return
	}
	e := q.ents[userData]
	var t0 time.Time
	if q.stats != nil {
		t0 = time.Now()
	}
	if q.offload(int(userData), t0) {
		return
	}
	n, op := q.serve(e, q.req, q.in)
	if n == retryOnHelper {
		q.retry(int(userData), t0)
		return
	}
	q.commit(int(userData), n, op, t0)
}

// retry serves entry i again where it may wait: the engine left it
// unanswered because it would wait (fuse.Request.Retry: an OPEN, CREATE
// or truncating SETATTR breaking a host lease). It goes to a helper
// counted in waits like a lock wait (same per-uid share), registered for
// FUSE_INTERRUPT, whatever its payload's size (a CREATE of a long name
// with a security label: waitCopy); when the share or the wait slots are
// taken it is refused with EAGAIN (what an O_NONBLOCK open gets from a
// lease). Never served again on the worker: a lease break lasts up to
// lease-break-time (45 s), and every request of this CPU would wait
// behind it.
func (q *queue) retry(i int, t0 time.Time) {
	q.waitOnHelper(i, t0, syscall.EAGAIN)
}

// waitOnHelper hands entry i, a request that may wait (a lock wait, or
// an open breaking a host lease), to a helper, counted for its caller's
// uid in q.waits; past the uid's share or with every wait slot taken it
// is refused with refusal instead (refused, not queued: a wait may last
// forever).
func (q *queue) waitOnHelper(i int, t0 time.Time, refusal syscall.Errno) {
	e := q.ents[i]
	uid := binary.NativeEndian.Uint32(e.hdr[inUidOff:])
	if !q.waits.Take(uid) {
		unique := binary.NativeEndian.Uint64(e.hdr[8:])
		q.commit(i, q.errorReply(e, unique, refusal), binary.NativeEndian.Uint32(e.hdr[4:]), t0)
		return
	}
	q.toHelper(i, t0, true, uid, q.waitCopy(i))
}

// waitInMax is the size of a request copy that holds any request a ring
// entry of payload bytes can carry: in header, op struct, payload.
func waitInMax(payload int) int { return abi.InHeaderSize + abi.UringOpInOutSize + payload }

// waitCopy returns the copy from q.waitIn that the helper of entry i's
// wait reassembles its request in when helpIn[i] cannot hold it (nil
// when it can). Called by the worker for a wait that holds a slot, which
// bounds the copies in use (see waitIn; Get's own bound is never
// reached, and would give nil: serve then answers E2BIG). A payload
// larger than the entry's buffer gets nil: serve answers it EIO without
// copying.
func (q *queue) waitCopy(i int) []byte {
	e := q.ents[i]
	payload := int(binary.NativeEndian.Uint32(e.hdr[256+16:]))
	need := waitInMax(payload)
	if need <= len(q.helpIn[i]) || payload > len(e.payload) {
		return nil
	}
	return q.waitIn.Get(need)
}

// commit sends entry i's reply (n bytes in its out buffer) and re-arms it.
func (q *queue) commit(i, n int, op uint32, t0 time.Time) {
	e := q.ents[i]
	commitID := binary.NativeEndian.Uint64(e.hdr[256+8:])
	if q.stats != nil {
		errno := stats.FuseErrno(binary.NativeEndian.Uint32(e.out[4:]))
		q.stats.Observe(op, errno, uint64(max(n-abi.OutHeaderSize, 0)), time.Since(t0))
	}
	userData := uint64(i)
	// Reply: out header into the header area, arguments already in the
	// payload buffer; payload_sz says how many.
	copy(e.hdr[:abi.OutHeaderSize], e.out[:abi.OutHeaderSize])
	binary.NativeEndian.PutUint32(e.hdr[256+16:], uint32(n-abi.OutHeaderSize))
	sqe := q.ring.nextSQE()
	if sqe == nil {
		// Cannot happen: the SQ has twice as many slots as entries and each
		// entry has at most one command outstanding.
		q.done = errors.New("submission queue full")
		return
	}
	putUringCmd(sqe, q.fd, uint32(abi.UringCmdCommitAndFetch), 0, 0, commitID, q.qid, userData)
}

// inUidOff is the offset of fuse_in_header.uid (the caller's uid, which
// the host kernel sets) in an entry's header area.
const inUidOff = 24

// helperPayloadMax is the payload helpIn holds: the blocking ops
// (fuse.Blocking) carry their struct only, and a wait with a larger
// payload gets a copy from q.waitIn.
const helperPayloadMax = 256

// offload hands entry i to a helper goroutine if its request may block,
// and reports whether it did.
func (q *queue) offload(i int, t0 time.Time) bool {
	e := q.ents[i]
	op := abi.Opcode(binary.NativeEndian.Uint32(e.hdr[4:]))
	if !fuse.Blocking(op) {
		return false
	}
	if op == abi.OpSetlkw {
		if !fuse.WaitingLock(op, e.hdr[abi.UringInOutHeaderSize:abi.UringInOutHeaderSize+abi.UringOpInOutSize]) {
			return false // an unlock: it never waits, and must work with every wait slot taken
		}
		q.waitOnHelper(i, t0, syscall.ENOLCK) // whatever its payload (waitCopy)
		return true
	}
	if binary.NativeEndian.Uint32(e.hdr[256+16:]) > helperPayloadMax {
		// FSYNC, FALLOCATE and the like never wait for another process
		// (they end on their own) and the kernel sends them with their
		// struct only: one with a payload is served on the worker, as
		// /dev/fuse serves them when its helpers are busy.
		return false
	}
	q.toHelper(i, t0, false, 0, nil)
	return true
}

// toHelper serves entry i on a helper goroutine, which hands it back to
// the worker to commit (commitFinished). wait: it is counted for uid in
// q.waits. in, when not nil, is the request copy from q.waitIn the
// helper uses instead of helpIn[i] (given back at commit).
func (q *queue) toHelper(i int, t0 time.Time, wait bool, uid uint32, in []byte) {
	e := q.ents[i]
	buf := q.helpIn[i]
	if in != nil {
		buf = in
	}
	q.helpers.Add(1)
	go func() {
		defer q.helpers.Done()
		n, op := q.serve(e, q.helpReqs[i], buf)
		q.finMu.Lock()
		q.finished = append(q.finished, helperDone{ent: i, n: n, op: op, t0: t0, wait: wait, uid: uid, in: in})
		q.finMu.Unlock()
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		unix.Write(q.evfd, one[:])
	}()
}

// commitFinished commits the entries helpers have served.
func (q *queue) commitFinished() {
	q.finMu.Lock()
	fin := q.finished
	q.finished = nil
	q.finMu.Unlock()
	for _, f := range fin {
		if f.wait {
			q.waits.Put(f.uid)
		}
		if f.in != nil {
			q.waitIn.Put(f.in)
		}
		q.commit(f.ent, f.n, f.op, f.t0)
	}
}

// retryOnHelper is serve's length for a request the engine left
// unanswered because it would wait (fuse.Request.Retry): complete hands
// it to retry.
const retryOnHelper = -1

// serve reassembles the request in e for the engine, runs it, and returns
// the reply length in e.out (≥ 16) and the opcode.
func (q *queue) serve(e *entryMem, r *fuse.Request, buf []byte) (int, uint32) {
	h := e.hdr
	hdrLen := binary.NativeEndian.Uint32(h[0:])
	op := binary.NativeEndian.Uint32(h[4:])
	unique := binary.NativeEndian.Uint64(h[8:])
	payloadSz := binary.NativeEndian.Uint32(h[256+16:])
	// The kernel splits the request: fuse_in_header in in_out, the first
	// argument (the op's struct) in op_in, the rest in the payload. Its
	// size is what the header's total length leaves.
	opIn := int64(hdrLen) - abi.InHeaderSize - int64(payloadSz)
	if opIn < 0 || opIn > abi.UringOpInOutSize || int(payloadSz) > len(e.payload) {
		return q.errorReply(e, unique, syscall.EIO), op
	}
	in := buf[:abi.InHeaderSize+int(opIn)]
	copy(in, h[:abi.InHeaderSize])
	copy(in[abi.InHeaderSize:], h[abi.UringInOutHeaderSize:abi.UringInOutHeaderSize+int(opIn)])
	r.Src, r.Dst = nil, nil
	if abi.Opcode(op) == abi.OpWrite {
		// WRITE data stays in the payload buffer (helpers never serve WRITE).
		q.src.B = e.payload[:payloadSz]
		r.Src = &q.src
	} else {
		if len(in)+int(payloadSz) > len(buf) {
			return q.errorReply(e, unique, syscall.E2BIG), op
		}
		in = buf[:len(in)+int(payloadSz)]
		copy(in[abi.InHeaderSize+int(opIn):], e.payload[:payloadSz])
	}
	r.In = in
	r.Out = e.out
	n := q.srv.Handle(r)
	r.Src = nil
	if n == 0 && r.Retry() {
		return retryOnHelper, op
	}
	if n < abi.OutHeaderSize {
		// Every request delivered on a queue must be committed, or its
		// entry is lost; one the engine could not even parse gets EIO.
		return q.errorReply(e, unique, syscall.EIO), op
	}
	return n, op
}

func (q *queue) errorReply(e *entryMem, unique uint64, errno syscall.Errno) int {
	binary.NativeEndian.PutUint32(e.out[0:], abi.OutHeaderSize)
	binary.NativeEndian.PutUint32(e.out[4:], uint32(-int32(errno)))
	binary.NativeEndian.PutUint64(e.out[8:], unique)
	return abi.OutHeaderSize
}
