package p9

import (
	"context"
	"net"
	"os"
	"path/filepath"
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
	deadline := time.Now().Add(2 * time.Second)
	for oneConn(t, s).waitCount() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%s does not wait", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitCount returns the requests c has handed off to wait (wait.go).
func (c *conn) waitCount() int {
	n, _ := c.waits.Waiting()
	return n
}
