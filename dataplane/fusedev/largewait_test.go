package fusedev

import (
	"encoding/binary"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/fusetest"
)

// leasedCreateFS is waitingFS whose CREATEs are of an existing name a
// host lease is held on: with NoWait they would wait (fs.WouldWait);
// without, they record what the helper saw (name, label, group) and wait
// until interrupted (EINTR).
type leasedCreateFS struct {
	*waitingFS
	created chan string
}

func (l *leasedCreateFS) Create(ctx *fs.Context, parent fs.Inode, name []byte, mode, flags uint32, out *fs.Entry, open *fs.OpenOut) fs.Errno {
	if ctx.NoWait {
		return fs.WouldWait
	}
	l.created <- fmt.Sprintf("%s label %s=%d bytes gid %d (%v)", name, ctx.SecLabelName, len(ctx.SecLabel), ctx.SuppGid, ctx.HasSuppGid)
	return fusetest.WaitInterrupted(ctx, l.entered)
}

// TestLargeWaitOnHelper: a wait larger than a helper slot's own copy
// (helperInMax) still waits on a helper, never on the worker: a CREATE
// of a 255-byte name with a security label and a supplementary group
// (1,4xx bytes, as the kernel sends it for an existing name over a host
// lease), and a SETLKW padded with a request extension. The helper sees
// the whole request; a GETATTR is answered meanwhile; a uid past its
// share is refused EAGAIN without a copy; INTERRUPT and the connection's
// end answer the waits EINTR; the copies are given back, reused the next
// round and never more than the waits. Before, the worker served such a
// request itself and slept in the filesystem until the lease went.
func TestLargeWaitOnHelper(t *testing.T) {
	d := newFakeDev(t)
	wfs := &waitingFS{testFS: newTestFS(t), entered: make(chan struct{}, 16)}
	lfs := &leasedCreateFS{waitingFS: wfs, created: make(chan string, 16)}
	srv := fuse.NewServer(lfs, fuse.Options{MaxWrite: 128 << 10, Locks: true, SecurityLabel: true})
	d.w.srv, d.w.req = srv, srv.NewRequest()
	ne := binary.NativeEndian
	{ // INIT with POSIX locks and (flags2) SECURITY_CTX, as a 7.45 kernel.
		n := d.put(opInit, 0, 64)
		ne.PutUint32(d.req[40:], 7)
		ne.PutUint32(d.req[44:], 45)
		ne.PutUint32(d.req[48:], 128<<10)
		ne.PutUint32(d.req[52:], initExt|1<<1)
		ne.PutUint32(d.req[56:], uint32(abi.InitSecurityCtx>>32))
		if out := d.roundTrip(t, n); len(out) < outHeaderSize || ne.Uint32(out[4:]) != 0 {
			t.Fatalf("INIT reply %x", out)
		}
	}
	const slots = 16 // a share of 2 per uid, 2 kept for root
	pool := newHelperPool(srv, slots, len(d.w.buf), nil)
	d.w.pool = pool
	stopped := false
	defer func() {
		if !stopped {
			pool.stop(5 * time.Second)
		}
	}()

	unique := uint64(100)
	// send writes d.req[:n] as request unique by uid; the worker must be
	// done with it within 2 s (a wait served on it never is).
	send := func(what string, n int, uid uint32) uint64 {
		t.Helper()
		unique += 2
		ne.PutUint64(d.req[8:], unique)
		ne.PutUint32(d.req[24:], uid)
		if _, err := unix.Write(d.client, d.req[:n]); err != nil {
			t.Fatal(err)
		}
		m, e := readDev(d.w.fd, d.w.buf)
		if e != 0 {
			t.Fatal(e)
		}
		done := make(chan struct{})
		go func() { d.w.serve(d.w.buf[:m]); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: the worker still serves it after 2 s (waits in the filesystem)", what)
		}
		return unique
	}
	name := strings.Repeat("n", 255)
	const labelName, labelLen = "security.selinux", 1000
	create := func(uid uint32) int {
		payload := append([]byte(name+"\x00"), fusetest.SecctxExt(labelName, labelLen)...)
		payload = append(payload, fusetest.GroupsExt(4242)...)
		n := d.put(uint32(abi.OpCreate), 1, abi.CreateInSize+len(payload))
		(&abi.CreateIn{Flags: unix.O_WRONLY | unix.O_CREAT, Mode: 0o644}).Marshal(d.req[inHeaderSize:])
		copy(d.req[inHeaderSize+abi.CreateInSize:], payload)
		ne.PutUint16(d.req[36:], uint16((len(payload)-len(name)-1)/8)) // total_extlen
		if n <= helperInMax {
			t.Fatalf("a %d-byte CREATE tests nothing (slots hold %d)", n, helperInMax)
		}
		return n
	}
	setlkw := func() int {
		const extLen = 1104 // past the slot's 1 KiB
		n := d.put(uint32(abi.OpSetlkw), inoHello, abi.LkInSize+extLen)
		ne.PutUint64(d.req[inHeaderSize+8:], unique+2) // owner
		ne.PutUint64(d.req[inHeaderSize+24:], 1<<63-1) // end
		ne.PutUint32(d.req[inHeaderSize+32:], unix.F_WRLCK)
		ext := d.req[inHeaderSize+abi.LkInSize:]
		ne.PutUint32(ext[0:], extLen)
		ne.PutUint32(ext[4:], 99) // a type the engine skips
		ne.PutUint16(d.req[36:], extLen/8)
		return n
	}
	entered := func(what string) {
		t.Helper()
		select {
		case <-wfs.entered:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: not waiting on a helper", what)
		}
	}
	wantCreate := fmt.Sprintf("%s label %s=%d bytes gid 4242 (true)", name, labelName, labelLen)
	var copiesMade int
	for round := range 2 {
		var waiting []uint64
		waiting = append(waiting, send("CREATE by uid 65534", create(65534), 65534))
		if got := <-lfs.created; got != wantCreate {
			t.Fatalf("the helper's CREATE: %.40q…, want %.40q…", got, wantCreate)
		}
		entered("CREATE by uid 65534")
		waiting = append(waiting, send("padded SETLKW", setlkw(), 65533))
		entered("padded SETLKW")
		waiting = append(waiting, send("CREATE by root", create(0), 0))
		<-lfs.created
		entered("CREATE by root")
		waiting = append(waiting, send("second CREATE by uid 65534", create(65534), 65534))
		<-lfs.created
		entered("second CREATE by uid 65534")
		// Past uid 65534's share: EAGAIN at once, no copy taken.
		u := send("CREATE past the share", create(65534), 65534)
		if got, e := d.nextReply(t); got != u || e != -int32(syscall.EAGAIN) {
			t.Fatalf("CREATE past the uid's share: unique %d error %d, want %d -EAGAIN", got, e, u)
		}
		// The worker still serves.
		u = send("GETATTR", d.put(3 /* GETATTR */, inoHello, 16), 65532)
		if got, e := d.nextReply(t); got != u || e != 0 {
			t.Fatalf("GETATTR while large requests wait: unique %d error %d", got, e)
		}
		if out, free := pool.copies.Counts(); out != 4 || free != 0 {
			t.Fatalf("round %d: %d copies out, %d free while 4 large requests wait; want 4, 0", round, out, free)
		}
		if w, _ := pool.waits.Waiting(); w != 4 {
			t.Fatalf("round %d: %d waits counted, want 4", round, w)
		}
		if round == 0 {
			// INTERRUPT ends each wait.
			for _, w := range waiting {
				n := d.put(uint32(abi.OpInterrupt), 0, abi.InterruptInSize)
				ne.PutUint64(d.req[inHeaderSize:], w)
				send("INTERRUPT", n, 0)
				if got, e := d.nextReply(t); got != w || e != -int32(syscall.EINTR) {
					t.Fatalf("interrupted wait: unique %d error %d, want %d -EINTR", got, e, w)
				}
			}
		} else {
			// The connection's end ends the rest.
			stopped = true
			if !pool.stop(5 * time.Second) {
				t.Fatal("helpers still running after stop")
			}
			got := map[uint64]int32{}
			for range waiting {
				u, e := d.nextReply(t)
				got[u] = e
			}
			for _, w := range waiting {
				if got[w] != -int32(syscall.EINTR) {
					t.Errorf("wait %d at the connection's end: error %d, want -EINTR (replies %v)", w, got[w], got)
				}
			}
		}
		// A helper gives its copy back after sending the reply.
		deadline := time.Now().Add(5 * time.Second)
		for {
			out, free := pool.copies.Counts()
			if out == 0 {
				if round == 0 {
					copiesMade = free
				}
				if free != 4 || free != copiesMade {
					t.Fatalf("round %d: %d copies free after the waits, want 4 (round 0's, reused)", round, free)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: %d copies still out after every wait was answered", round, out)
			}
			time.Sleep(time.Millisecond)
		}
		if w, uids := pool.waits.Waiting(); w != 0 || uids != 0 {
			t.Fatalf("round %d: %d waits, %d uids still counted", round, w, uids)
		}
	}
}
