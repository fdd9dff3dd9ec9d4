package fusedev

import (
	"encoding/binary"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/fusetest"
	"github.com/fastfsd/fastfsd/internal/stats"
)

// waitingFS is testFS whose lock waits block until interrupted (an
// unlock never waits, as on a real filesystem).
type waitingFS struct {
	*testFS
	entered chan struct{}
}

func (w *waitingFS) SetLk(ctx *fs.Context, ino fs.Inode, fh fs.Handle, owner uint64, lk *fs.Lock, wait, flock bool) fs.Errno {
	if !wait || lk.Type == unix.F_UNLCK {
		return 0
	}
	return fusetest.WaitInterrupted(ctx, w.entered)
}

// newLockDev is a fake device whose worker serves a waitingFS (entered
// buffering that many waits) with locks on, past INIT.
func newLockDev(t *testing.T, entered int) (*fakeDev, *waitingFS, *fuse.Server) {
	t.Helper()
	d := newFakeDev(t)
	wfs := &waitingFS{testFS: newTestFS(t), entered: make(chan struct{}, entered)}
	srv := fuse.NewServer(wfs, fuse.Options{MaxWrite: 128 << 10, Locks: true})
	d.useServer(t, srv, initExt|1<<1 /* POSIX_LOCKS */)
	return d, wfs, srv
}

// TestHelperPool: lock waits leave the worker for the pool, which answers
// them (EINTR) when interrupted or stopped; with the pool full a lock
// wait is refused with ENOLCK at once; the worker keeps serving.
func TestHelperPool(t *testing.T) {
	d, wfs, srv := newLockDev(t, 8)
	ne := binary.NativeEndian
	const slots = 2
	pool := newHelperPool(srv, slots, len(d.w.buf), nil)
	d.w.pool = pool

	// send writes a request and lets the worker serve it.
	send := func(op uint32, unique uint64, argLen int) {
		t.Helper()
		n := d.put(op, inoHello, argLen)
		ne.PutUint64(d.req[8:], unique)
		if op == uint32(abi.OpInterrupt) {
			ne.PutUint64(d.req[inHeaderSize:], 100)
		}
		if op == uint32(abi.OpSetlkw) {
			ne.PutUint64(d.req[inHeaderSize+8:], unique) // owner
			ne.PutUint32(d.req[inHeaderSize+32:], unix.F_WRLCK)
		}
		d.feed(t, n)
	}
	send(uint32(abi.OpSetlkw), 100, abi.LkInSize)
	send(uint32(abi.OpSetlkw), 102, abi.LkInSize)
	for range slots {
		select {
		case <-wfs.entered:
		case <-time.After(5 * time.Second):
			t.Fatal("lock wait did not reach the filesystem")
		}
	}
	// Pool full: refused at once.
	send(uint32(abi.OpSetlkw), 104, abi.LkInSize)
	if u, e := d.nextReply(t); u != 104 || e != -int32(syscall.ENOLCK) {
		t.Fatalf("lock wait past the pool: unique %d error %d, want 104 -ENOLCK", u, e)
	}
	// The worker still serves.
	send(3 /* GETATTR */, 106, 16)
	if u, e := d.nextReply(t); u != 106 || e != 0 {
		t.Fatalf("GETATTR while the pool is full: unique %d error %d", u, e)
	}
	// INTERRUPT ends the first wait.
	send(uint32(abi.OpInterrupt), 108, abi.InterruptInSize)
	if u, e := d.nextReply(t); u != 100 || e != -int32(syscall.EINTR) {
		t.Fatalf("interrupted wait: unique %d error %d, want 100 -EINTR", u, e)
	}
	// The connection's end ends the other.
	if !pool.stop(5 * time.Second) {
		t.Fatal("helpers still running after stop")
	}
	if u, e := d.nextReply(t); u != 102 || e != -int32(syscall.EINTR) {
		t.Fatalf("wait at the connection's end: unique %d error %d, want 102 -EINTR", u, e)
	}
}

// TestWorkerServeAllocsWithPool: the check for a blocking request costs no
// allocation on the hot path.
func TestWorkerServeAllocsWithPool(t *testing.T) {
	d := newFakeDev(t)
	d.w.pool = newHelperPool(d.w.srv, 2, len(d.w.buf), nil)
	defer d.w.pool.stop(time.Second)
	getattr := d.put(3, 1, 16)
	if n := testing.AllocsPerRun(200, func() { d.put(3, 1, 16); d.roundTrip(t, getattr) }); n != 0 {
		t.Errorf("GETATTR round trip with a helper pool allocates %v times, want 0", n)
	}
}

// TestHelperPoolStats: a request served on the pool (FSYNC) is counted in
// the Set, as one served by a worker is, and the pool gives its slots'
// Workers back when it stops.
func TestHelperPoolStats(t *testing.T) {
	d := newFakeDev(t)
	set := &stats.Set{Door: "fuse-test"}
	d.w.obs = set.NewWorker()
	pool := newHelperPool(d.w.srv, 2, len(d.w.buf), set)
	d.w.pool = pool
	d.feed(t, d.put(uint32(abi.OpFsync), inoHello, abi.FsyncInSize))
	if u, _ := d.nextReply(t); u != 2 {
		t.Fatalf("no FSYNC reply: reply to %d", u)
	}
	var fsyncs uint64
	for _, o := range set.Totals() {
		if o.Op == uint32(abi.OpFsync) {
			fsyncs = o.Count
		}
	}
	if fsyncs != 1 {
		t.Fatalf("FSYNC through the pool counted %d times, want 1", fsyncs)
	}
	if !pool.stop(5 * time.Second) {
		t.Fatal("helpers still running after stop")
	}
	// The pool's Worker is free again: the next one comes from it.
	before := len(set.Workers())
	set.NewWorker()
	if after := len(set.Workers()); after != before {
		t.Fatalf("pool's stats Workers not released: Set grew from %d to %d", before, after)
	}
}

// TestHelperPoolPerUid: one uid's lock waits take at most its share of
// the pool, and non-root waits leave the reserve to root; other uids and
// root still wait; an unlock through SETLKW never takes a slot, even with
// the pool full (a hostile try took every other user's blocking locks,
// unlocks included, with 128 waits of one uid).
func TestHelperPoolPerUid(t *testing.T) {
	d, wfs, srv := newLockDev(t, 64)
	ne := binary.NativeEndian
	const slots = 16 // a share of 2 per uid, 2 kept for root
	pool := newHelperPool(srv, slots, len(d.w.buf), nil)
	d.w.pool = pool
	unique := uint64(100)
	// setlkw sends a SETLKW of typ by uid and lets the worker serve it;
	// it returns the reply's error if one came at once, else 1.
	setlkw := func(uid, typ uint32) int32 {
		t.Helper()
		unique += 2
		n := d.put(uint32(abi.OpSetlkw), inoHello, abi.LkInSize)
		ne.PutUint64(d.req[8:], unique)
		ne.PutUint32(d.req[24:], uid)
		ne.PutUint64(d.req[inHeaderSize+8:], unique) // owner
		ne.PutUint32(d.req[inHeaderSize+32:], typ)
		d.feed(t, n)
		// A refusal or an unlock is answered by serve itself; a wait
		// reaches the filesystem on a helper.
		unix.SetsockoptTimeval(d.client, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 200000})
		if r, err := unix.Read(d.client, d.reply); err == nil && r >= outHeaderSize {
			if u := ne.Uint64(d.reply[8:]); u != unique {
				t.Fatalf("reply to %d, want %d", u, unique)
			}
			return int32(ne.Uint32(d.reply[4:]))
		}
		select {
		case <-wfs.entered:
			return 1
		case <-time.After(5 * time.Second):
			t.Fatalf("SETLKW %d by uid %d: neither answered nor waiting", unique, uid)
		}
		return 0
	}
	wait := func(uid uint32, want int32) {
		t.Helper()
		if got := setlkw(uid, unix.F_WRLCK); got != want {
			t.Fatalf("lock wait by uid %d: %d, want %d (1: waits)", uid, got, want)
		}
	}
	enolck := -int32(syscall.ENOLCK)
	wait(65534, 1)
	wait(65534, 1)
	wait(65534, enolck) // its share is 2
	for uid := uint32(1000); uid < 1006; uid++ {
		wait(uid, 1)
		wait(uid, 1)
	}
	// 14 = slots − reserve wait: no non-root uid waits more.
	wait(2000, enolck)
	wait(0, 1)
	wait(0, 1)
	// The pool is full; an unlock is served on the worker all the same.
	if got := setlkw(65534, unix.F_UNLCK); got != 0 {
		t.Fatalf("unlock through SETLKW with every slot taken: %d, want 0", got)
	}
	if got := setlkw(0, unix.F_UNLCK); got != 0 {
		t.Fatalf("root's unlock with every slot taken: %d, want 0", got)
	}
	wait(0, enolck) // root too, with no slot left
	waiting, uids := pool.waits.Waiting()
	if waiting != slots || uids != 7 {
		t.Fatalf("%d waits from %d non-root uids counted, want %d from 7", waiting, uids, slots)
	}
	// The connection's end answers them all and gives every count back.
	if !pool.stop(5 * time.Second) {
		t.Fatal("helpers still running after stop")
	}
	waiting, uids = pool.waits.Waiting()
	if waiting != 0 || uids != 0 {
		t.Errorf("after stop: %d waits, %d uids counted; want none", waiting, uids)
	}
}
