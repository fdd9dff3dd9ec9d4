package p9

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs/passthrough"
)

// reply is one reply read off a rawConn.
type reply struct {
	tag uint16
	m   Message
}

// replies reads r's replies into a channel until the connection ends.
func replies(r *rawConn) <-chan reply {
	ch := make(chan reply, 64)
	go func() {
		defer close(ch)
		for {
			tag, m, err := r.recv()
			if err != nil {
				return
			}
			ch <- reply{tag, m}
		}
	}()
	return ch
}

// next returns the next reply, failing the test after d.
func next(t *testing.T, ch <-chan reply, d time.Duration, what string) reply {
	t.Helper()
	select {
	case rp, ok := <-ch:
		if !ok {
			t.Fatalf("%s: the connection ended", what)
		}
		return rp
	case <-time.After(d):
		t.Fatalf("%s: no reply within %v", what, d)
	}
	return reply{}
}

func wantRlerror(t *testing.T, what string, rp reply, tag uint16, want syscall.Errno) {
	t.Helper()
	e, ok := rp.m.(*Rlerror)
	if rp.tag != tag || !ok || syscall.Errno(e.Ecode) != want {
		t.Errorf("%s: tag %d %v %+v, want tag %d Rlerror %v", what, rp.tag, rp.m.Type(), rp.m, tag, want)
	}
}

// TestLeaseOpenOffWorker: a Tlopen of a file whose host copy another
// process holds a lease on (fcntl F_SETLEASE) waits for the lease break
// off the connection's workers (wait.go). With MaxRequests 2, two such
// opens wait while a Tgetattr on the same connection is answered at once
// (before: both workers slept in the lease break and nothing else was
// served); a third wait is past the connection's bound and gets EAGAIN at
// once; a Tlcreate of an existing leased name waits as Tlopen does; a
// Tflush of a waiting open gets EINTR and its Rflush promptly; giving
// the lease up lets a waiting open complete; the connection's end ends
// a waiting truncating Tsetattr, which changed nothing.
func TestLeaseOpenOffWorker(t *testing.T) {
	dir := t.TempDir()
	leases := map[string]int{}
	for _, name := range []string{"a", "b", "c", "d"} {
		leases[name] = leasedFile(t, filepath.Join(dir, name))
	}
	fsys, err := passthrough.New(dir, passthrough.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sock, s := startServer(t, fsys, &Options{MaxRequests: 2})

	r := dialRaw(t, sock)
	r.version(8192)
	r.attach(1)
	for i, name := range []string{"a", "b", "c"} {
		r.ok(walkMsg(1, uint32(2+i), name), MsgRwalk)
	}
	r.ok(walkMsg(1, 5), MsgRwalk) // fid 5: the root, for a Tlcreate
	ch := replies(r)

	// Two opens wait, off the two workers.
	r.send(10, &Tlopen{Fid: 2, Flags: syscall.O_RDONLY})
	r.send(11, &Tlopen{Fid: 3, Flags: syscall.O_RDONLY})
	time.Sleep(100 * time.Millisecond)
	t0 := time.Now()
	r.send(12, &Tgetattr{Fid: 1, Mask: AttrBasic})
	rp := next(t, ch, 2*time.Second, "Tgetattr while two opens wait")
	d := time.Since(t0)
	if rp.tag != 12 || rp.m.Type() != MsgRgetattr {
		t.Fatalf("Tgetattr while two opens wait: tag %d %v %+v, want tag 12 Rgetattr", rp.tag, rp.m.Type(), rp.m)
	}
	if d > 200*time.Millisecond {
		t.Errorf("Tgetattr while two opens wait answered in %v, want < 200 ms", d)
	}
	t.Logf("Tgetattr while two leased opens wait: %v", d)

	// A third wait is past the connection's bound (MaxRequests): EAGAIN.
	r.send(13, &Tlopen{Fid: 4, Flags: syscall.O_RDONLY})
	wantRlerror(t, "a third leased open", next(t, ch, 2*time.Second, "a third leased open"), 13, syscall.EAGAIN)
	if n := oneConn(t, s).waitCount(); n != 2 {
		t.Errorf("%d requests wait, want 2", n)
	}

	// Tflush of a waiting open: EINTR, then Rflush, promptly.
	t0 = time.Now()
	r.send(14, &Tflush{OldTag: 10})
	wantRlerror(t, "the flushed open", next(t, ch, 2*time.Second, "the flushed open"), 10, syscall.EINTR)
	if rp := next(t, ch, 2*time.Second, "Rflush"); rp.tag != 14 || rp.m.Type() != MsgRflush {
		t.Errorf("after the flushed open: tag %d %v, want Rflush tag 14", rp.tag, rp.m.Type())
	}
	t.Logf("Tflush of a waiting open answered in %v", time.Since(t0))
	// The flushed open gives its wait slot back just after its reply
	// (wait.go): until then the Tlcreate below would be past the bound.
	waitOne(t, s, "the open left waiting")

	// A Tlcreate of an existing leased name waits as Tlopen does.
	r.send(15, &Tlcreate{Fid: 5, Name: []byte("d"), Flags: DotlRdwr, Mode: 0o644, Gid: 0})
	time.Sleep(100 * time.Millisecond)
	r.send(16, &Tgetattr{Fid: 1, Mask: AttrBasic})
	if rp := next(t, ch, 2*time.Second, "Tgetattr while an open and a create wait"); rp.tag != 16 {
		t.Fatalf("while an open and a create wait: tag %d %v %+v answered first, want the Tgetattr (tag 16)", rp.tag, rp.m.Type(), rp.m)
	}

	// Giving the lease up lets the waiting ones complete.
	for _, name := range []string{"b", "d"} {
		if _, err := unix.FcntlInt(uintptr(leases[name]), unix.F_SETLEASE, unix.F_UNLCK); err != nil {
			t.Fatal(err)
		}
	}
	got := map[uint16]MsgType{}
	for range 2 {
		rp := next(t, ch, 5*time.Second, "the opens once the leases are given up")
		got[rp.tag] = rp.m.Type()
	}
	if got[11] != MsgRlopen || got[15] != MsgRlcreate {
		t.Errorf("once the leases are given up: %v, want tag 11 Rlopen and tag 15 Rlcreate", got)
	}

	// The connection's end ends a waiting truncate, which changes
	// nothing.
	r.send(17, &Tsetattr{Fid: 4, Valid: SetAttrSize, Size: 0})
	waitOne(t, s, "the truncating Tsetattr of a leased file")
	t0 = time.Now()
	r.nc.Close()
	wantEmpty(t, s)
	t.Logf("connection with a waiting truncate torn down in %v", time.Since(t0))
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("the connection's teardown took %v with a truncate waiting, want < 2 s", d)
	}
	if st, err := os.Stat(filepath.Join(dir, "c")); err != nil || st.Size() != 6 {
		t.Errorf("after the interrupted truncate c is %v (%v), want 6 bytes", st, err)
	}
}

// oneConn returns s's only connection.
func oneConn(t *testing.T, s *Server) *conn {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) != 1 {
		t.Fatalf("%d connections, want 1", len(s.conns))
	}
	for c := range s.conns {
		return c
	}
	return nil
}

// TestLeaseOpenShutdown: a Shutdown does not wait for a leased open to
// finish (it could take lease-break-time, 45 s): the waiting open is
// answered EINTR at once and Shutdown returns.
func TestLeaseOpenShutdown(t *testing.T) {
	dir := t.TempDir()
	leasedFile(t, filepath.Join(dir, "a"))
	fsys, err := passthrough.New(dir, passthrough.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(fsys, &Options{Logf: t.Logf})
	sock := filepath.Join(t.TempDir(), "9p.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	r := dialRaw(t, sock)
	r.version(8192)
	r.attach(1)
	r.ok(walkMsg(1, 2, "a"), MsgRwalk)
	ch := replies(r)
	r.send(10, &Tlopen{Fid: 2, Flags: syscall.O_RDONLY})
	waitOne(t, s, "the Tlopen of a leased file")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t0 := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown with a leased open waiting: %v", err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("Shutdown with a leased open waiting took %v, want < 2 s", d)
	}
	t.Logf("Shutdown with a leased open waiting: %v", time.Since(t0))
	wantRlerror(t, "the waiting open at Shutdown", next(t, ch, time.Second, "the waiting open at Shutdown"), 10, syscall.EINTR)
}

// leasedFile creates path and takes a write lease on it (fcntl
// F_SETLEASE F_WRLCK) on an open file description of this process's,
// kept until the test ends: the server's open is another one and must
// break it. It skips the test if the lease cannot be taken. It returns
// the lease's fd.
func leasedFile(t *testing.T, path string) int {
	t.Helper()
	if err := os.WriteFile(path, []byte("leased"), 0o644); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_WRLCK); err != nil {
		t.Skipf("F_SETLEASE F_WRLCK: %v (needs to own the file or CAP_LEASE)", err)
	}
	return fd
}

// waitOne waits up to 2 s for s's only connection to have one request
// waiting (handed off, wait.go), else fails the test: what does not wait.
func waitOne(t *testing.T, s *Server, what string) {
	t.Helper()
	waitCountIs(t, s, 1, 2*time.Second, what+" does not wait")
}

// waitCountIs waits up to d for s's only connection to have n requests
// waiting (handed off, wait.go), else fails the test with msg.
func waitCountIs(t *testing.T, s *Server, n int, d time.Duration, msg string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for oneConn(t, s).waitCount() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d requests wait after %v, want %d", msg, oneConn(t, s).waitCount(), d, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitCount returns the requests c has handed off to wait (wait.go).
func (c *conn) waitCount() int {
	n, _ := c.waits.Waiting()
	return n
}

// TestLeaseOpenFidFree: a Tlopen or Tlcreate waiting for a host lease
// break does not hold its fid (fidOpening): a Tgetattr of that very fid
// is answered at once, a Twalk from it gets EBADF at once, and a Tclunk
// of it is answered at once and ends the wait with EINTR (before, each
// waited on a worker for as long as the lease held: up to
// lease-break-time, 45 s). An open that completes once the lease goes
// leaves its fid opened. At the end every handle is released: the open
// budget of the uid holds nothing and no fd is left open.
func TestLeaseOpenFidFree(t *testing.T) {
	dir := t.TempDir()
	leases := map[string]int{}
	for _, name := range []string{"a", "b", "c"} {
		leases[name] = leasedFile(t, filepath.Join(dir, name))
	}
	os.Chmod(filepath.Join(dir, "c"), 0o666) // Tlcreate opens it read-write as uid 1000
	budget := passthrough.NewOpenBudget(100)
	fsys, err := passthrough.New(dir, passthrough.Options{OpenBudget: budget})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close() })
	sock, s := startServer(t, fsys, nil)
	const uid = 1000 // counted in the budget (uid 0 is not)

	r := dialRaw(t, sock)
	r.version(8192)
	r.ok(&Tattach{Fid: 1, Afid: NoFid, NUname: uid}, MsgRattach)
	r.ok(walkMsg(1, 2, "a"), MsgRwalk)
	r.ok(walkMsg(1, 3, "b"), MsgRwalk)
	r.ok(walkMsg(1, 4), MsgRwalk) // the root, for a Tlcreate of c
	fds0 := openFds(t)
	ch := replies(r)
	prompt := func(what string, tag uint16, want MsgType) {
		t.Helper()
		t0 := time.Now()
		rp := next(t, ch, 2*time.Second, what)
		d := time.Since(t0)
		if rp.tag != tag || rp.m.Type() != want {
			t.Fatalf("%s: tag %d %v %+v, want tag %d %v", what, rp.tag, rp.m.Type(), rp.m, tag, want)
		}
		if d > 100*time.Millisecond {
			t.Errorf("%s answered in %v, want < 100 ms", what, d)
		}
		t.Logf("%s: %v", what, d)
	}

	// A waiting Tlopen: its fid's Tgetattr and Twalk are answered at
	// once; the lease given up, the open completes and the fid reads.
	r.send(10, &Tlopen{Fid: 3, Flags: syscall.O_RDONLY})
	waitOne(t, s, "the Tlopen of a leased file")
	r.send(11, &Tgetattr{Fid: 3, Mask: AttrBasic})
	prompt("Tgetattr of the fid being opened", 11, MsgRgetattr)
	r.send(12, walkMsg(3, 20))
	t0 := time.Now()
	wantRlerror(t, "Twalk from the fid being opened", next(t, ch, 2*time.Second, "Twalk from the fid being opened"), 12, syscall.EBADF)
	t.Logf("Twalk from the fid being opened: %v", time.Since(t0))
	if _, err := unix.FcntlInt(uintptr(leases["b"]), unix.F_SETLEASE, unix.F_UNLCK); err != nil {
		t.Fatal(err)
	}
	if rp := next(t, ch, 5*time.Second, "the open once the lease is given up"); rp.tag != 10 || rp.m.Type() != MsgRlopen {
		t.Fatalf("the open once the lease is given up: tag %d %v %+v, want tag 10 Rlopen", rp.tag, rp.m.Type(), rp.m)
	}
	r.send(13, &Tread{Fid: 3, Count: 100})
	if rp := next(t, ch, 2*time.Second, "Tread of the opened fid"); rp.tag != 13 || rp.m.Type() != MsgRread || string(rp.m.(*Rread).Data) != "leased" {
		t.Fatalf("Tread of the fid opened after the wait: tag %d %v %+v", rp.tag, rp.m.Type(), rp.m)
	}
	if n := budget.Held(uid); n != 1 {
		t.Errorf("uid %d holds %d opens with one fid opened, want 1", uid, n)
	}

	// A waiting Tlopen and a waiting Tlcreate of an existing name: a
	// Tgetattr of each fid is answered at once, then a Tclunk of each,
	// which ends the wait with EINTR.
	r.send(20, &Tlopen{Fid: 2, Flags: syscall.O_RDONLY})
	waitOne(t, s, "the Tlopen of a leased file")
	r.send(21, &Tlcreate{Fid: 4, Name: []byte("c"), Flags: DotlRdwr, Mode: 0o644})
	waitCountIs(t, s, 2, 2*time.Second, "the Tlcreate of an existing leased name does not wait")
	r.send(22, &Tgetattr{Fid: 2, Mask: AttrBasic})
	prompt("Tgetattr of the fid being opened by Tlopen", 22, MsgRgetattr)
	r.send(23, &Tgetattr{Fid: 4, Mask: AttrBasic})
	prompt("Tgetattr of the fid being opened by Tlcreate", 23, MsgRgetattr)
	for _, c := range []struct {
		fid        uint32
		tag, waits uint16
	}{{2, 24, 20}, {4, 25, 21}} {
		t0 := time.Now()
		r.send(c.tag, &Tclunk{Fid: c.fid})
		got := map[uint16]reply{}
		for range 2 {
			rp := next(t, ch, 2*time.Second, "Tclunk of a fid being opened")
			got[rp.tag] = rp
		}
		d := time.Since(t0)
		if got[c.tag].m == nil || got[c.tag].m.Type() != MsgRclunk {
			t.Errorf("Tclunk of fid %d being opened: %+v, want Rclunk (tag %d)", c.fid, got, c.tag)
		}
		wantRlerror(t, "the open of a clunked fid", got[c.waits], c.waits, syscall.EINTR)
		if d > 100*time.Millisecond {
			t.Errorf("Tclunk of fid %d being opened and its open answered in %v, want < 100 ms", c.fid, d)
		}
		t.Logf("Tclunk of fid %d being opened, and its open's EINTR: %v", c.fid, d)
	}
	// Each gives its wait slot back just after its reply (wait.go).
	waitCountIs(t, s, 0, time.Second, "after their fids were clunked")

	// The leases go; nothing the clunked fids were opening stays open.
	for _, name := range []string{"a", "c"} {
		if _, err := unix.FcntlInt(uintptr(leases[name]), unix.F_SETLEASE, unix.F_UNLCK); err != nil {
			t.Fatal(err)
		}
	}
	r.send(30, &Tclunk{Fid: 3})
	if rp := next(t, ch, 2*time.Second, "Tclunk of the opened fid"); rp.tag != 30 || rp.m.Type() != MsgRclunk {
		t.Fatalf("Tclunk of the opened fid: tag %d %v %+v", rp.tag, rp.m.Type(), rp.m)
	}
	if n := budget.Held(uid); n != 0 {
		t.Errorf("uid %d holds %d opens with every opened fid clunked, want 0", uid, n)
	}
	if fds := openFds(t); fds > fds0 {
		t.Errorf("%d fds open after the opens and clunks, %d before: a leak", fds, fds0)
	}
}

// TestOpenFidClunkedLate: a fid clunked while its open waits, where the
// open completes all the same (the filesystem got past the point where
// an interrupt could stop it): the Tclunk is answered at once, the open
// answers EINTR once it completes, and its handle is released then, not
// kept by a fid that no longer exists.
func TestOpenFidClunkedLate(t *testing.T) {
	m := newMemFS("")
	sock, s := startServer(t, m, nil)
	r := dialRaw(t, sock)
	r.version(8192)
	r.attach(1)
	r.ok(walkMsg(1, 2), MsgRwalk)
	r.ok(&Tlcreate{Fid: 2, Name: []byte("f"), Flags: DotlRdwr, Mode: 0o644}, MsgRlcreate)
	r.ok(&Tclunk{Fid: 2}, MsgRclunk)
	r.ok(walkMsg(1, 3, "f"), MsgRwalk)
	gate := make(chan struct{})
	var opened sync.Once
	open := func() { opened.Do(func() { close(gate) }) }
	t.Cleanup(open) // before the server's: a failed test must not leave the open blocked
	m.openGate.Store(&gate)
	ch := replies(r)
	r.send(10, &Tlopen{Fid: 3, Flags: syscall.O_RDONLY})
	select {
	case <-m.openEntered:
	case <-time.After(2 * time.Second):
		t.Fatal("the gated open does not wait")
	}
	t0 := time.Now()
	r.send(11, &Tclunk{Fid: 3})
	rp := next(t, ch, 2*time.Second, "Tclunk of the fid being opened")
	if rp.tag != 11 || rp.m.Type() != MsgRclunk {
		t.Fatalf("Tclunk of the fid being opened: tag %d %v %+v, want tag 11 Rclunk", rp.tag, rp.m.Type(), rp.m)
	}
	t.Logf("Tclunk of the fid being opened: %v", time.Since(t0))
	if _, h := m.outstanding(); h != 0 {
		t.Fatalf("%d handles open before the open completed", h)
	}
	open()
	wantRlerror(t, "the open of a clunked fid", next(t, ch, 2*time.Second, "the open of a clunked fid"), 10, syscall.EINTR)
	m.openGate.Store(nil)
	r.send(12, &Tgetattr{Fid: 3, Mask: AttrBasic})
	wantRlerror(t, "Tgetattr of the clunked fid", next(t, ch, 2*time.Second, "Tgetattr of the clunked fid"), 12, syscall.EBADF)
	if _, h := m.outstanding(); h != 0 {
		t.Errorf("%d handles open after the clunked fid's open completed, want 0", h)
	}
	waitCountIs(t, s, 0, time.Second, "after the open's reply")
}

// openFds counts this process's open fds.
func openFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents) - 1 // the directory's own
}
