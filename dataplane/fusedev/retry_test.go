package fusedev

import (
	"encoding/binary"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/fusetest"
)

// leasedFS is testFS whose opens would wait (as an open breaking a host
// lease): with NoWait they return fs.WouldWait, and without it they wait
// until interrupted.
type leasedFS struct {
	*testFS
	entered chan struct{}
	noWait  chan bool // NoWait of every Open, in order
}

func (l *leasedFS) Open(ctx *fs.Context, ino fs.Inode, flags, openFlags uint32, out *fs.OpenOut) fs.Errno {
	l.noWait <- ctx.NoWait
	if ctx.NoWait {
		return fs.WouldWait
	}
	return fusetest.WaitInterrupted(ctx, l.entered)
}

// TestRetryOnHelper: an OPEN that would wait on the worker (fs.WouldWait
// to a NoWait request) is not answered there but served again on a
// helper without NoWait, counted in the pool's per-uid waits: a uid past
// its share gets EAGAIN at once, the worker keeps serving, an INTERRUPT
// ends a waiting open with EINTR, the connection's end ends the rest, and
// every count is given back.
func TestRetryOnHelper(t *testing.T) {
	d := newFakeDev(t)
	lfs := &leasedFS{testFS: newTestFS(t), entered: make(chan struct{}, 8), noWait: make(chan bool, 32)}
	srv := fuse.NewServer(lfs, fuse.Options{MaxWrite: 128 << 10})
	d.useServer(t, srv, initExt)
	ne := binary.NativeEndian
	const slots = 16 // a share of 2 per uid
	pool := newHelperPool(srv, slots, len(d.w.buf), nil)
	d.w.pool = pool

	send := func(op uint32, unique uint64, uid uint32, argLen int) {
		t.Helper()
		n := d.put(op, inoHello, argLen)
		ne.PutUint64(d.req[8:], unique)
		ne.PutUint32(d.req[24:], uid)
		if op == uint32(abi.OpInterrupt) {
			ne.PutUint64(d.req[inHeaderSize:], 100)
		}
		d.feed(t, n)
	}
	waits := func(uniques ...uint64) {
		t.Helper()
		for _, u := range uniques {
			send(uint32(abi.OpOpen), u, 65534, abi.OpenInSize)
			if nw := <-lfs.noWait; !nw {
				t.Fatalf("OPEN %d: the worker served it without NoWait", u)
			}
			select {
			case <-lfs.entered:
			case <-time.After(5 * time.Second):
				t.Fatalf("OPEN %d: not served again on a helper", u)
			}
			if nw := <-lfs.noWait; nw {
				t.Fatalf("OPEN %d: the helper served it with NoWait", u)
			}
		}
	}
	waits(100, 102)
	// Past uid 65534's share: EAGAIN at once, nothing left waiting.
	send(uint32(abi.OpOpen), 104, 65534, abi.OpenInSize)
	<-lfs.noWait
	if u, e := d.nextReply(t); u != 104 || e != -int32(syscall.EAGAIN) {
		t.Fatalf("open past the uid's share: unique %d error %d, want 104 -EAGAIN", u, e)
	}
	if w, _ := pool.waits.Waiting(); w != 2 {
		t.Fatalf("%d waits counted, want 2", w)
	}
	// The worker still serves.
	send(3 /* GETATTR */, 106, 0, 16)
	if u, e := d.nextReply(t); u != 106 || e != 0 {
		t.Fatalf("GETATTR while opens wait: unique %d error %d", u, e)
	}
	// INTERRUPT ends the first wait.
	send(uint32(abi.OpInterrupt), 108, 0, abi.InterruptInSize)
	if u, e := d.nextReply(t); u != 100 || e != -int32(syscall.EINTR) {
		t.Fatalf("interrupted open: unique %d error %d, want 100 -EINTR", u, e)
	}
	if !pool.stop(5 * time.Second) {
		t.Fatal("helpers still running after stop")
	}
	if u, e := d.nextReply(t); u != 102 || e != -int32(syscall.EINTR) {
		t.Fatalf("open at the connection's end: unique %d error %d, want 102 -EINTR", u, e)
	}
	if w, uids := pool.waits.Waiting(); w != 0 || uids != 0 {
		t.Errorf("after stop: %d waits, %d uids counted; want none", w, uids)
	}
}
