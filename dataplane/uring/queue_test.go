package uring

import (
	"encoding/binary"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/fusetest"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// waitingFS answers every request ENOSYS but SetLk: a lock wait blocks
// until interrupted (EINTR), an unlock or a non-blocking lock answers at
// once.
type waitingFS struct {
	fs.Base
	entered chan struct{}
	created chan string
	unlocks atomic.Int32
}

func (w *waitingFS) SetLk(ctx *fs.Context, ino fs.Inode, fh fs.Handle, owner uint64, lk *fs.Lock, wait, flock bool) fs.Errno {
	if !wait || lk.Type == unix.F_UNLCK {
		if lk.Type == unix.F_UNLCK {
			w.unlocks.Add(1)
		}
		return 0
	}
	return fusetest.WaitInterrupted(ctx, w.entered)
}

// Open is an open breaking a host lease: with NoWait it would wait
// (fs.WouldWait); without, it waits until interrupted (EINTR).
func (w *waitingFS) Open(ctx *fs.Context, ino fs.Inode, flags, openFlags uint32, out *fs.OpenOut) fs.Errno {
	if ctx.NoWait {
		return fs.WouldWait
	}
	return fusetest.WaitInterrupted(ctx, w.entered)
}

// Create of an existing name is an open breaking a host lease, as Open;
// it records the name and the supplementary group the helper saw.
func (w *waitingFS) Create(ctx *fs.Context, parent fs.Inode, name []byte, mode, flags uint32, out *fs.Entry, open *fs.OpenOut) fs.Errno {
	if ctx.NoWait {
		return fs.WouldWait
	}
	w.created <- fmt.Sprintf("%s gid %d (%v)", name, ctx.SuppGid, ctx.HasSuppGid)
	return w.Open(ctx, 0, flags, 0, open)
}

// newLockQueue is a queue of depth entries over a real io_uring (its
// commands go to fd -1 and fail, unseen: the test reads replies from the
// entries' memory) whose engine serves a waitingFS with locks, past INIT.
// The test goroutine acts as the queue's worker.
func newLockQueue(t *testing.T, depth int) (*queue, *waitingFS) {
	t.Helper()
	wfs := &waitingFS{entered: make(chan struct{}, depth), created: make(chan string, depth)}
	srv := fuse.NewServer(wfs, fuse.Options{MaxWrite: 128 << 10, Locks: true})
	r := srv.NewRequest()
	in := make([]byte, abi.InHeaderSize+abi.InitInSize)
	(&abi.InHeader{Len: uint32(len(in)), Opcode: abi.OpInit, Unique: 2}).Marshal(in)
	(&abi.InitIn{Major: 7, Minor: 45, MaxReadahead: 128 << 10, Flags: uint32(abi.InitExt | abi.InitPosixLocks | abi.InitFlockLocks)}).Marshal(in[abi.InHeaderSize:])
	r.In = in
	if n := srv.Handle(r); n < abi.OutHeaderSize || binary.NativeEndian.Uint32(r.Out[4:]) != 0 {
		t.Fatalf("INIT: %d bytes, %x", n, r.Out[:16])
	}
	q := newQueue(0, -1, srv, depth)
	if err := q.setup(); err != nil {
		q.close()
		if testutil.Strict() {
			t.Fatalf("io_uring queue: %v", err)
		}
		t.Skipf("needs io_uring (io_uring_setup; kernel.io_uring_disabled 0): %v", err)
	}
	t.Cleanup(q.close)
	return q, wfs
}

// TestQueueLockWaitsPerUid: on one io_uring queue, one uid's lock waits
// take at most its share of the wait slots (half the entries), non-root
// waits leave the reserve to root, other uids and root still wait, and
// an unlock through SETLKW never needs a slot, even with all taken. The
// queue keeps serving; the connection's end answers the waits and gives
// every count back.
func TestQueueLockWaitsPerUid(t *testing.T) {
	const depth = 32 // 16 wait slots: a share of 2 per uid, 2 kept for root
	q, wfs := newLockQueue(t, depth)
	if s, sh, r := q.waits.Slots(), q.waits.Share(), q.waits.Reserve(); s != 16 || sh != 2 || r != 2 {
		t.Fatalf("wait slots %d, share %d, reserve %d; want 16, 2, 2", s, sh, r)
	}
	qd := &queueDriver{t: t, q: q, unique: 100}
	// wait sends a lock wait by uid: want 1 for "waits", else its error.
	wait := func(uid uint32, want int32) {
		t.Helper()
		i := qd.deliver(abi.OpSetlkw, uid, unix.F_WRLCK)
		if e, ok := qd.answered(i); ok {
			if e != want {
				t.Fatalf("lock wait by uid %d: error %d, want %d (1: waits)", uid, e, want)
			}
			return // refused: the entry is free again
		}
		select {
		case <-wfs.entered:
		case <-time.After(5 * time.Second):
			t.Fatalf("lock wait by uid %d: neither answered nor waiting", uid)
		}
		if want != 1 {
			t.Fatalf("lock wait by uid %d waits, want error %d", uid, want)
		}
		qd.next++ // the entry stays with the wait
	}
	enolck := -int32(syscall.ENOLCK)
	wait(65534, 1)
	wait(65534, 1)
	wait(65534, enolck) // its share is 2
	for uid := uint32(1000); uid < 1006; uid++ {
		wait(uid, 1)
		wait(uid, 1)
	}
	wait(2000, enolck) // 14 = slots − reserve wait: no non-root uid waits more
	wait(0, 1)
	wait(0, 1)
	wait(0, enolck) // root too, with every wait slot taken
	// An unlock through SETLKW is served on the worker all the same, by
	// the user whose waits are refused and by root.
	for _, uid := range []uint32{65534, 0} {
		i := qd.deliver(abi.OpSetlkw, uid, unix.F_UNLCK)
		if e, ok := qd.answered(i); !ok || e != 0 {
			t.Fatalf("unlock through SETLKW by uid %d with every wait slot taken: answered %v, error %d", uid, ok, e)
		}
	}
	if n := wfs.unlocks.Load(); n != 2 {
		t.Fatalf("%d unlocks reached the filesystem, want 2", n)
	}
	// Other requests are still served on the worker.
	if e, ok := qd.answered(qd.deliver(abi.OpGetattr, 65534, 0)); !ok || e != -int32(syscall.ENOSYS) {
		t.Fatalf("GETATTR with every wait slot taken: answered %v, error %d (want ENOSYS from the test fs)", ok, e)
	}
	if w, u := q.waits.Waiting(); w != 16 || u != 7 {
		t.Fatalf("%d waits from %d non-root uids counted, want 16 from 7", w, u)
	}
	// The connection's end answers every wait; the worker commits them
	// and gives every count back.
	qd.interruptAll(16)
}

// queueDriver acts as the kernel and the worker of a test queue.
type queueDriver struct {
	t      *testing.T
	q      *queue
	unique uint64 // of the last request delivered
	next   int    // the next entry a request arrives in; waits keep theirs
}

// deliver puts a request of op by uid into the next entry, as the kernel
// would, and completes it; it returns the entry. typ is a SETLKW's lock
// type.
func (d *queueDriver) deliver(op abi.Opcode, uid uint32, typ uint32) int {
	t, q, ne := d.t, d.q, binary.NativeEndian
	t.Helper()
	if d.next >= q.depth {
		t.Fatal("out of entries")
	}
	i := d.next
	e := q.ents[i]
	clear(e.hdr)
	d.unique += 2
	argLen := 0
	switch op {
	case abi.OpSetlkw:
		argLen = abi.LkInSize
		(&abi.LkIn{Fh: 1, Owner: d.unique, Lk: abi.FileLock{End: 1<<63 - 1, Type: typ, PID: 1}}).Marshal(e.hdr[abi.UringInOutHeaderSize:])
	case abi.OpOpen:
		argLen = abi.OpenInSize
		(&abi.OpenIn{Flags: unix.O_RDONLY}).Marshal(e.hdr[abi.UringInOutHeaderSize:])
	default:
		argLen = abi.GetattrInSize
	}
	(&abi.InHeader{Len: uint32(abi.InHeaderSize + argLen), Opcode: op, Unique: d.unique, NodeID: 1, UID: uid, GID: uid, PID: 1}).Marshal(e.hdr)
	ne.PutUint64(e.hdr[256+8:], d.unique) // commit id
	q.complete(uint64(i), 0)
	if q.done != nil {
		t.Fatalf("queue failed: %v", q.done)
	}
	return i
}

// answered returns entry i's reply error if the worker committed one
// for the last request delivered (the out header is copied into the
// header area), and whether it did.
func (d *queueDriver) answered(i int) (int32, bool) {
	ne := binary.NativeEndian
	e := d.q.ents[i]
	if ne.Uint64(e.hdr[8:]) != d.unique || ne.Uint32(e.hdr[0:]) != abi.OutHeaderSize {
		return 0, false
	}
	return int32(ne.Uint32(e.hdr[4:])), true
}

// interruptAll ends the connection: the n waits in entries 0… answer
// EINTR, the worker commits them and every count is given back.
func (d *queueDriver) interruptAll(n int) {
	d.t.Helper()
	d.q.srv.InterruptAll()
	d.commitWaits(n)
}

// interrupt sends FUSE_INTERRUPT for each of the n waits in entries 0…
// (their requests' uniques), which answer EINTR; the worker commits them
// and every count is given back. Unlike interruptAll, the queue may
// serve waits again afterwards.
func (d *queueDriver) interrupt(uniques ...uint64) {
	t, ne := d.t, binary.NativeEndian
	t.Helper()
	r := d.q.srv.NewRequest()
	for _, u := range uniques {
		d.unique += 2
		in := make([]byte, abi.InHeaderSize+abi.InterruptInSize)
		(&abi.InHeader{Len: uint32(len(in)), Opcode: abi.OpInterrupt, Unique: d.unique}).Marshal(in)
		ne.PutUint64(in[abi.InHeaderSize:], u)
		r.In = in
		if n := d.q.srv.Handle(r); n != 0 {
			t.Fatalf("INTERRUPT of %d: a %d-byte reply", u, n)
		}
	}
	d.commitWaits(len(uniques))
}

// commitWaits commits the n waits in entries 0… as their helpers end
// them, as the worker would, and checks each answered EINTR and every
// count was given back.
func (d *queueDriver) commitWaits(n int) {
	t, q := d.t, d.q
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for committed := 0; committed < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d interrupted waits committed after 5 s", committed, n)
		}
		q.finMu.Lock()
		k := len(q.finished)
		q.finMu.Unlock()
		if k == 0 {
			time.Sleep(time.Millisecond)
			continue
		}
		committed += k
		q.commitFinished()
	}
	for i := range n {
		if e := int32(binary.NativeEndian.Uint32(q.ents[i].hdr[4:])); e != -int32(syscall.EINTR) {
			t.Errorf("entry %d after the interrupt: error %d, want EINTR", i, e)
		}
	}
	if w, u := q.waits.Waiting(); w != 0 || u != 0 {
		t.Errorf("after the waits ended: %d waits of %d uids counted, want none", w, u)
	}
}

// TestQueueLeaseRetry: an OPEN that would wait on the queue's worker
// (fs.WouldWait to a NoWait request) is served again on a helper without
// NoWait, holding its entry and counted in the queue's per-uid waits; a
// uid past its share gets EAGAIN at once; the worker keeps serving; the
// connection's end answers the waiting opens EINTR and gives every count
// back.
func TestQueueLeaseRetry(t *testing.T) {
	const depth = 32 // 16 wait slots: a share of 2 per uid
	q, wfs := newLockQueue(t, depth)
	qd := &queueDriver{t: t, q: q, unique: 100}
	for range 2 {
		i := qd.deliver(abi.OpOpen, 65534, 0)
		if e, ok := qd.answered(i); ok {
			t.Fatalf("OPEN by uid 65534 within its share: answered at once, error %d", e)
		}
		select {
		case <-wfs.entered:
		case <-time.After(5 * time.Second):
			t.Fatal("OPEN not served again on a helper")
		}
		qd.next++ // the entry stays with the wait
	}
	if e, ok := qd.answered(qd.deliver(abi.OpOpen, 65534, 0)); !ok || e != -int32(syscall.EAGAIN) {
		t.Fatalf("OPEN past the uid's share: answered %v, error %d, want -EAGAIN", ok, e)
	}
	if e, ok := qd.answered(qd.deliver(abi.OpGetattr, 65534, 0)); !ok || e != -int32(syscall.ENOSYS) {
		t.Fatalf("GETATTR while opens wait: answered %v, error %d (want ENOSYS from the test fs)", ok, e)
	}
	if w, u := q.waits.Waiting(); w != 2 || u != 1 {
		t.Fatalf("%d waits from %d non-root uids counted, want 2 from 1", w, u)
	}
	qd.interruptAll(2)
}

// TestQueueServeAllocs: a quick request (GETATTR) served and committed
// by a queue's worker allocates nothing, with NoWait set and the lock
// and lease hand-offs checked on the way.
func TestQueueServeAllocs(t *testing.T) {
	q, _ := newLockQueue(t, 16)
	qd := &queueDriver{t: t, q: q, unique: 100}
	discard := func(uint64, int32) {}
	allocs := testing.AllocsPerRun(200, func() {
		if e, ok := qd.answered(qd.deliver(abi.OpGetattr, 65534, 0)); !ok || e != -int32(syscall.ENOSYS) {
			t.Fatalf("GETATTR: answered %v, error %d (want ENOSYS from the test fs)", ok, e)
		}
		// Hand the commit to the kernel (it fails: the queue's fd is
		// -1) and drop its completion, so the rings never fill.
		if err := q.ring.submitAndWait(0); err != nil {
			t.Fatal(err)
		}
		q.ring.reap(discard)
	})
	if allocs != 0 {
		t.Errorf("GETATTR on a queue's worker allocates %v times, want 0", allocs)
	}
}

// deliverLarge puts a request of op by uid into the next entry as the
// kernel would, its op struct arg in the entry's op_in area and payload
// (names, then ext bytes of request extensions) in its payload buffer,
// and completes it; it returns the entry. The worker must answer it or
// hand it to a helper at once: one that waits in the filesystem on the
// worker fails the test (after 5 s, interrupting it).
func (d *queueDriver) deliverLarge(op abi.Opcode, uid uint32, arg, payload []byte, ext int) int {
	t, q, ne := d.t, d.q, binary.NativeEndian
	t.Helper()
	if d.next >= q.depth {
		t.Fatal("out of entries")
	}
	i := d.next
	e := q.ents[i]
	clear(e.hdr)
	d.unique += 2
	copy(e.hdr[abi.UringInOutHeaderSize:], arg)
	copy(e.payload, payload)
	(&abi.InHeader{Len: uint32(abi.InHeaderSize + len(arg) + len(payload)), Opcode: op, Unique: d.unique, NodeID: 1,
		UID: uid, GID: uid, PID: 1, TotalExtlen: uint16(ext / 8)}).Marshal(e.hdr)
	ne.PutUint64(e.hdr[256+8:], d.unique)              // commit id
	ne.PutUint32(e.hdr[256+16:], uint32(len(payload))) // payload_sz
	served := make(chan struct{})
	go func() { q.complete(uint64(i), 0); close(served) }()
	select {
	case <-served:
	case <-time.After(5 * time.Second):
		q.srv.InterruptAll()
		<-served
		t.Fatalf("%v with a %d-byte payload: the queue's worker waited in the filesystem", op, len(payload))
	}
	if q.done != nil {
		t.Fatalf("queue failed: %v", q.done)
	}
	return i
}

// extBlock is a request extension of size bytes (header included) of
// type typ; a FUSE_EXT_GROUPS one names group.
func extBlock(size int, typ uint32, group uint32) []byte {
	b := make([]byte, size)
	binary.NativeEndian.PutUint32(b[0:], uint32(size))
	binary.NativeEndian.PutUint32(b[4:], typ)
	if typ == abi.ExtGroups {
		binary.NativeEndian.PutUint32(b[8:], 1)
		binary.NativeEndian.PutUint32(b[12:], group)
	}
	return b
}

// TestQueueLargeWaitOffWorker: a wait whose payload is larger than a
// helper's small copy (helperPayloadMax) still waits on a helper, never
// on the queue's worker: a CREATE of an existing 255-byte name carrying
// the kernel's FUSE_EXT_GROUPS extension (256 + 16 = 272 bytes) that
// must break a host lease, and a SETLKW padded with a 264-byte extension.
// The helper sees the whole request (name and group); the worker keeps
// serving; the copies come from the queue's pool, which never holds more
// than its wait slots, and are reused.
func TestQueueLargeWaitOffWorker(t *testing.T) {
	const depth = 16 // 8 wait slots, a share of 1 per uid
	q, wfs := newLockQueue(t, depth)
	qd := &queueDriver{t: t, q: q, unique: 100}
	name := strings.Repeat("n", 255)
	create := func(uid uint32) int {
		arg := make([]byte, abi.CreateInSize)
		(&abi.CreateIn{Flags: unix.O_WRONLY | unix.O_CREAT, Mode: 0o644}).Marshal(arg)
		payload := append([]byte(name+"\x00"), extBlock(16, abi.ExtGroups, 4242)...)
		if len(payload) <= helperPayloadMax {
			t.Fatalf("a %d-byte payload tests nothing (helpers hold %d)", len(payload), helperPayloadMax)
		}
		return qd.deliverLarge(abi.OpCreate, uid, arg, payload, 16)
	}
	setlkw := func(uid uint32) int {
		arg := make([]byte, abi.LkInSize)
		(&abi.LkIn{Fh: 1, Owner: qd.unique, Lk: abi.FileLock{End: 1<<63 - 1, Type: unix.F_WRLCK, PID: 1}}).Marshal(arg)
		return qd.deliverLarge(abi.OpSetlkw, uid, arg, extBlock(264, 100, 0), 264)
	}
	var waiting []uint64 // the uniques of the waits
	waits := func(what string, i int) {
		t.Helper()
		if e, ok := qd.answered(i); ok {
			t.Fatalf("%s: answered at once, error %d; want it waiting", what, e)
		}
		select {
		case <-wfs.entered:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: not waiting on a helper", what)
		}
		waiting = append(waiting, qd.unique)
		qd.next++ // the entry stays with the wait
	}
	for round := range 2 {
		waiting = waiting[:0]
		waits("CREATE of a leased 255-byte name", create(65534))
		if got, want := <-wfs.created, name+" gid 4242 (true)"; got != want {
			t.Fatalf("the helper's CREATE: %.20q…, want %.20q…", got, want)
		}
		waits("SETLKW with a 264-byte extension", setlkw(65533))
		waits("CREATE by root", create(0))
		<-wfs.created
		if e, ok := qd.answered(qd.deliver(abi.OpGetattr, 65532, 0)); !ok || e != -int32(syscall.ENOSYS) {
			t.Fatalf("GETATTR while large requests wait: answered %v, error %d (want ENOSYS from the test fs)", ok, e)
		}
		// Past uid 65534's share: refused at once, no copy taken.
		if e, ok := qd.answered(create(65534)); !ok || e != -int32(syscall.EAGAIN) {
			t.Fatalf("CREATE past the uid's share: answered %v, error %d, want -EAGAIN", ok, e)
		}
		if out, free := q.waitIn.Counts(); out != 3 || free != 0 {
			t.Fatalf("round %d: %d copies out, %d free while 3 large requests wait, want 3, 0 (reused)", round, out, free)
		}
		qd.interrupt(waiting...)
		if out, free := q.waitIn.Counts(); out != 0 || free != 3 || q.waitIn.Slots() != q.waits.Slots() {
			t.Fatalf("round %d: %d copies out, %d given back to a pool of %d, want 0, 3 of %d", round, out, free, q.waitIn.Slots(), q.waits.Slots())
		}
		qd.next = 0
	}
}
