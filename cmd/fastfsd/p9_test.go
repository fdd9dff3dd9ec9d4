package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
	"unsafe"

	hp9 "github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs/passthrough"
	"github.com/fastfsd/fastfsd/internal/testutil"
	"github.com/fastfsd/fastfsd/p9"
)

func TestParseP9Addr(t *testing.T) {
	for _, tc := range []struct {
		in, network, addr string
		bad               bool
	}{
		{in: "tcp:127.0.0.1:564", network: "tcp", addr: "127.0.0.1:564"},
		{in: "tcp:[::1]:5640", network: "tcp", addr: "[::1]:5640"},
		{in: "tcp::564", network: "tcp", addr: ":564"},
		{in: "unix:/run/fastfs.sock", network: "unix", addr: "/run/fastfs.sock"},
		{in: "tcp!localhost!564", network: "tcp", addr: "localhost:564"},
		{in: "tcp!*!564", network: "tcp", addr: ":564"},
		{in: "tcp!::1!564", network: "tcp", addr: "[::1]:564"},
		{in: "unix!/tmp/s", network: "unix", addr: "/tmp/s"},
		{in: "tcp:localhost", bad: true},
		{in: "tcp!host", bad: true},
		{in: "tcp!host!1!2", bad: true},
		{in: "unix:", bad: true},
		{in: "udp:1.2.3.4:5", bad: true},
		{in: "/tmp/s", bad: true},
	} {
		n, a, err := parseP9Addr(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: accepted as %s %s", tc.in, n, a)
			}
			continue
		}
		if err != nil || n != tc.network || a != tc.addr {
			t.Errorf("%q: %q %q %v, want %q %q", tc.in, n, a, err, tc.network, tc.addr)
		}
	}
}

// TestServeP9 serves a directory through fs/passthrough on a unix socket
// and uses it with the hugelgupf/p9 client, then stops it as a signal
// would.
func TestServeP9(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello"), []byte("hello, 9p\n"), 0644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "9p.sock")
	cfg := p9Config{network: "unix", addr: sock, dir: dir, drain: 5 * time.Second,
		fsOpts: passthrough.Options{Xattr: true}, srvOpts: p9.Options{Logf: t.Logf}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- serveP9(ctx, cfg, ready) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serveP9: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}

	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode: %v %v, want 0600", st.Mode(), err)
	}
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c, err := hp9.NewClient(nc, hp9.WithMessageSize(128<<10))
	if err != nil {
		t.Fatal(err)
	}
	root, err := c.Attach("")
	if err != nil {
		t.Fatal(err)
	}
	_, f, err := root.Walk([]string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Open(hp9.ReadOnly); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, err := f.ReadAt(buf, 0)
	if (err != nil && err != io.EOF) || string(buf[:n]) != "hello, 9p\n" {
		t.Fatalf("read: %q %v", buf[:n], err)
	}
	f.Close()

	_, nf, _ := root.Walk(nil)
	nf, _, _, err = nf.Create("new", hp9.WriteOnly, 0600, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nf.WriteAt([]byte("written over 9p"), 0); err != nil {
		t.Fatal(err)
	}
	nf.Close()
	if b, err := os.ReadFile(filepath.Join(dir, "new")); err != nil || string(b) != "written over 9p" {
		t.Fatalf("host sees %q %v", b, err)
	}
	if _, err := root.Mkdir("sub", 0755, 0, 0); err != nil {
		t.Fatal(err)
	}
	_, d, _ := root.Walk(nil)
	if _, _, err := d.Open(hp9.ReadOnly); err != nil {
		t.Fatal(err)
	}
	var names []string
	var off uint64
	for {
		ents, err := d.Readdir(off, 4096)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) == 0 {
			break
		}
		for _, e := range ents {
			names = append(names, e.Name)
			off = e.Offset
		}
	}
	sort.Strings(names)
	if got := strings.Join(names, ","); !strings.Contains(got, "hello,new,sub") {
		t.Errorf("readdir: %s", got)
	}
	_, _, err = root.Walk([]string{"..", "..", "hello"})
	if err != nil {
		t.Errorf("walk ../../hello from the root: %v", err)
	}
	c.Close()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serveP9 after stop: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serveP9 did not stop")
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}

func TestRequireLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:564": true, "[::1]:564": true, "localhost:564": true,
		":564": false, "0.0.0.0:564": false, "[::]:564": false, "192.0.2.1:564": false,
	} {
		if err := requireLoopback(addr); (err == nil) != ok {
			t.Errorf("requireLoopback(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

// TestTCPPeerUid: the kernel reports the owner of a loopback client's
// socket (this process) through sock_diag.
func TestTCPPeerUid(t *testing.T) {
	for _, network := range []string{"127.0.0.1:0", "[::1]:0"} {
		l, err := net.Listen("tcp", network)
		if err != nil {
			t.Logf("%s: %v (skipped)", network, err)
			continue
		}
		c, s := dialAccept(t, l)
		uid, err := tcpPeerUid(s.LocalAddr().(*net.TCPAddr), s.RemoteAddr().(*net.TCPAddr))
		if err != nil || uid != uint32(os.Getuid()) {
			t.Errorf("%s: tcpPeerUid = %d, %v; want %d", network, uid, err, os.Getuid())
		}
		c.Close()
		s.Close()
		l.Close()
	}
}

// dialAccept connects to the tcp listener l and returns both ends: the
// client's and the one l accepted.
func dialAccept(t *testing.T, l net.Listener) (client, server net.Conn) {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.Accept()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	return c, s
}

// TestP9Owner: a loopback tcp peer counts as its uid, and one that closed
// its socket before it was accepted is refused with errPeerClosed (a
// client connecting and closing in a loop), squashed or not; the
// diagnostic socket is kept for the next query.
func TestP9Owner(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, squash := range []bool{false, true} {
		owner := p9Owner(squash)
		c, s := dialAccept(t, l)
		if o, err := owner(s); err != nil || o != p9.UidOwner(uint32(os.Getuid())) {
			t.Errorf("squash %v: a live peer counts as %+v, %v; want %+v", squash, o, err, p9.UidOwner(uint32(os.Getuid())))
		}
		c.Close()
		time.Sleep(10 * time.Millisecond) // the FIN reaches the accepted end: nothing signals it
		if o, err := owner(s); err != errPeerClosed {
			t.Errorf("squash %v: a peer that closed counts as %+v, %v; want errPeerClosed", squash, o, err)
		}
		s.Close()
	}
	if len(diagSock) != 1 {
		t.Errorf("%d diagnostic sockets kept after the queries, want 1", len(diagSock))
	}
}

// TestP9LimitName: the log names the flag of every limit p9 names.
func TestP9LimitName(t *testing.T) {
	for opt, flag := range map[string]string{"MaxConns": "--max-conns", "RootConns": "--root-conns",
		"MaxConnsPerPeer": "--max-conns-per-uid", "HandshakeTimeout": "--handshake-timeout"} {
		if got := p9LimitName(opt); got != flag {
			t.Errorf("p9LimitName(%q) = %q, want %q", opt, got, flag)
		}
	}
}

// TestP9PeerGroupsConfined: a unix socket peer acts with its supplementary
// groups once the door is confined (defaults: Landlock hides other
// processes' /proc entries, a namespace their pids), so a file its group
// may read is readable.
func TestP9PeerGroupsConfined(t *testing.T) {
	testutil.RequireRoot(t)
	dir, err := os.MkdirTemp("", "p9groups")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	share, sock := filepath.Join(dir, "share"), filepath.Join(dir, "9p.sock")
	os.Chmod(dir, 0o755)
	os.Mkdir(share, 0o755)
	g := filepath.Join(share, "g")
	os.WriteFile(g, []byte("group\n"), 0o640)
	os.Chown(g, 0, 4242)
	startDoor(t, "9p", "--listen", "unix:"+sock, "--socket-group", "4242", "--shared-dir", share)

	// Connect as uid and gid 65534 with supplementary group 4242: from a
	// thread of its own, whose credentials alone change (raw syscalls);
	// it ends with the goroutine (locked, never unlocked).
	type dialed struct {
		nc  net.Conn
		err error
	}
	ch := make(chan dialed)
	go func() {
		runtime.LockOSThread()
		gs := []uint32{4242}
		for _, c := range [][4]uintptr{
			{unix.SYS_SETGROUPS, 1, uintptr(unsafe.Pointer(&gs[0]))},
			{unix.SYS_SETRESGID, 65534, 65534, 65534},
			{unix.SYS_SETRESUID, 65534, 65534, 65534},
		} {
			if _, _, e := unix.RawSyscall(c[0], c[1], c[2], c[3]); e != 0 {
				ch <- dialed{err: fmt.Errorf("syscall %d: %w", c[0], e)}
				return
			}
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			nc, err := net.Dial("unix", sock)
			if err == nil || time.Now().After(deadline) {
				ch <- dialed{nc, err}
				return
			}
		}
	}()
	d := <-ch
	if d.err != nil {
		t.Fatal(d.err)
	}
	c, err := hp9.NewClient(d.nc, hp9.WithMessageSize(128<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	root, err := c.Attach("")
	if err != nil {
		t.Fatal(err)
	}
	_, f, err := root.Walk([]string{"g"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Open(hp9.ReadOnly); err != nil {
		t.Fatalf("open a 0640 file of the peer's supplementary group: %v", err)
	}
	buf := make([]byte, 16)
	if n, err := f.ReadAt(buf, 0); string(buf[:n]) != "group\n" {
		t.Fatalf("read: %q %v", buf[:n], err)
	}
}

// TestP9BufferBound: the whole-daemon bound of 9P buffers that --help
// states for the defaults is what the server's per-connection bounds add
// up to.
func TestP9BufferBound(t *testing.T) {
	got := fmtBytes(p9.NewServer(nil, &p9.Options{}).BufferBound())
	if got != "3.5 GiB" {
		t.Errorf("bound with the defaults: %s, want 3.5 GiB (64 × ((16+4) × 2 MiB + 16 MiB))", got)
	}
	if !strings.Contains(p9Usage, got+" with the defaults") {
		t.Errorf("fastfsd 9p --help does not state the defaults' bound %s", got)
	}
	if b := p9.NewServer(nil, &p9.Options{MaxConns: 1, MaxRequests: 1, MaxMsize: 8192}).BufferBound(); b != 5*2*8192+16<<20 {
		t.Errorf("one connection, one request, msize 8192: bound %d", b)
	}
}

// TestP9PeerBufferBound: the per-uid bound --help states for the
// defaults is the server's.
func TestP9PeerBufferBound(t *testing.T) {
	got := fmtBytes(p9.NewServer(nil, &p9.Options{}).PeerBufferBound())
	if got != "448.0 MiB" {
		t.Errorf("per-uid bound with the defaults: %s, want 448.0 MiB (8 × ((16+4) × 2 MiB + 16 MiB))", got)
	}
	if !strings.Contains(p9Usage, "448 MiB with") {
		t.Errorf("fastfsd 9p --help does not state the defaults' per-uid bound 448 MiB")
	}
}

// TestP9ConnLimitFlags: the connection-limit flags refuse values that
// cannot work, by name, before anything listens.
func TestP9ConnLimitFlags(t *testing.T) {
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--max-conns", "4", "--root-conns", "4"}, "--root-conns 4 keeps every one"},
		{[]string{"--root-conns", "100"}, "--root-conns 100 keeps every one"},
		{[]string{"--max-conns-per-uid", "-1"}, "must not be negative"},
		{[]string{"--root-conns", "-1"}, "must not be negative"},
		{[]string{"--handshake-timeout", "-1s"}, "must not be negative"},
	} {
		args := append([]string{"--listen", "unix:/nonexistent/s", "--shared-dir", t.TempDir()}, tc.flags...)
		if err := runP9(args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("fastfsd 9p %v: %v, want an error saying %q", tc.flags, err, tc.want)
		}
	}
}

// TestP9RefusesSecurityLabel: 9P has no security context, so the flag is
// refused by name rather than accepted and ignored.
func TestP9RefusesSecurityLabel(t *testing.T) {
	err := runP9([]string{"--security-label", "--listen", "unix:/nonexistent/s", "--shared-dir", t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "not on the 9p door") {
		t.Fatalf("9p --security-label: %v, want a refusal naming the door", err)
	}
}

// TestP9RefusesCache: a cache mode sets FUSE timeouts and open flags,
// which 9P does not carry, so --cache is refused by name rather than
// accepted and ignored (it was, until the review found it).
func TestP9RefusesCache(t *testing.T) {
	for _, mode := range []string{"auto", "always", "never"} {
		err := runP9([]string{"--cache", mode, "--listen", "unix:/nonexistent/s", "--shared-dir", t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), "--cache: not on the 9p door") {
			t.Errorf("9p --cache %s: %v, want a refusal naming the door", mode, err)
		}
	}
}
