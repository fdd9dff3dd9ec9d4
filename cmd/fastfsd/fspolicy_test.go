package main

import (
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/passthrough"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// TestUidMapConfines: with --uid-map/--gid-map=:1000:1000:1: (virtiofsd's
// user-namespace map) a guest ID outside the map is not usable on the
// host. Before, it mapped to itself: guest root created a file owned by
// host root (a set-user-ID root binary in the share, for example), which
// virtiofsd in its namespace cannot do. Host root's files must show as
// 65534, not as guest root's.
func TestUidMapConfines(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	var p fsPolicy
	if err := p.addNamespaceMap("uid", ":1000:1000:1:"); err != nil {
		t.Fatal(err)
	}
	if err := p.addNamespaceMap("gid", ":1000:1000:1:"); err != nil {
		t.Fatal(err)
	}
	pt, err := passthrough.New(dir, passthrough.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := p.wrap(pt, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := &fs.Context{Caller: fs.Caller{Uid: 0, Gid: 0}}
	var ent fs.Entry
	var open fs.OpenOut
	e := fsys.Create(ctx, fs.RootInode, []byte("suid"), syscall.S_IFREG|0o4755, syscall.O_RDWR, &ent, &open)
	if e == 0 {
		var st syscall.Stat_t
		syscall.Stat(filepath.Join(dir, "suid"), &st)
		t.Fatalf("guest root (outside --uid-map) created a file: host owner %d:%d mode %#o; want EPERM", st.Uid, st.Gid, st.Mode)
	}
	if e != syscall.EPERM {
		t.Errorf("create as unmapped guest root: %v, want EPERM", e)
	}
	// The mapped user creates as itself.
	ctx = &fs.Context{Caller: fs.Caller{Uid: 1000, Gid: 1000}}
	if e := fsys.Create(ctx, fs.RootInode, []byte("mine"), syscall.S_IFREG|0o644, syscall.O_RDWR, &ent, &open); e != 0 {
		t.Fatalf("create as mapped uid 1000: %v", e)
	}
	if ent.Attr.Uid != 1000 || ent.Attr.Gid != 1000 {
		t.Errorf("mapped file shown as %d:%d, want 1000:1000", ent.Attr.Uid, ent.Attr.Gid)
	}
	// A host-root file is shown as the overflow ID.
	if err := os.WriteFile(filepath.Join(dir, "rootfile"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if e := fsys.Lookup(ctx, fs.RootInode, []byte("rootfile"), &ent); e != 0 {
		t.Fatal(e)
	}
	if ent.Attr.Uid != 65534 || ent.Attr.Gid != 65534 {
		t.Errorf("host root's file shown as %d:%d, want 65534:65534", ent.Attr.Uid, ent.Attr.Gid)
	}
}

// TestP9TCPNamespaceRefused: a loopback tcp listener identifies each peer
// with NETLINK_SOCK_DIAG, which from the namespace sandbox's new network
// namespace finds nothing: every client, root included, was refused
// ("sock_diag: no such file or directory") while the daemon looked
// healthy. The combination is refused at start with a way out.
//
// With --sandbox=chroot the peer is found, but its groups were read from
// the chroot's /etc/passwd and /etc/group, the shared directory's own
// files, which a client may write: refused too.
func TestP9TCPNamespaceRefused(t *testing.T) {
	for _, mode := range []string{"namespace", "chroot"} {
		dir := t.TempDir()
		done := make(chan error, 1)
		go func() {
			done <- runP9([]string{"--listen", "tcp:127.0.0.1:0", "--shared-dir", dir, "--sandbox", mode})
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "cannot serve --listen tcp") {
				t.Errorf("9p --listen tcp --sandbox=%s: %v; want it refused as unable to identify peers", mode, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("9p --listen tcp --sandbox=%s started serving; its peers' identities would be wrong", mode)
		}
	}
}

// TestP9TCPClosedPeerNotRoot: a loopback peer that connects as an
// unprivileged user, queues its requests and closes before the daemon
// identifies it leaves a time-wait socket, which sock_diag reports as
// uid 0. It was trusted as root (its queued Tattach n_uname=0 and Tlcreate
// would run as root); it must be refused.
func TestP9TCPClosedPeerNotRoot(t *testing.T) {
	testutil.RequireRoot(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	// dial64k connects from a socket owned by uid 65534: the kernel
	// records the creator's fsuid as the socket's owner.
	dial64k := func() int {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		unix.SetfsuidRetUid(65534)
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		unix.SetfsuidRetUid(0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		return fd
	}
	fd := dial64k()
	unix.Write(fd, make([]byte, 100))
	unix.Close(fd)
	time.Sleep(200 * time.Millisecond) // its end is a time-wait socket now
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer, err := p9Identify(nil, false)(c)
	if err == nil && (peer.Trusted || peer.Uid == 0) {
		t.Fatalf("a closed peer of uid 65534 was identified as %v", peer)
	}
	// A live peer is still identified as who it is.
	fd = dial64k()
	defer unix.Close(fd)
	c2, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	peer, err = p9Identify(nil, false)(c2)
	if err != nil || peer.Trusted || peer.Uid != 65534 {
		t.Errorf("a live peer of uid 65534 identified as %v, %v", peer, err)
	}
	// With a uid/gid translation only trusted peers are served: the
	// server's own checks cannot compare an untrusted peer's host IDs (and
	// ACLs' host IDs) with translated owners.
	if peer, err = p9Identify(nil, true)(c2); err == nil {
		t.Errorf("with a translation, a peer of uid 65534 was served as %v", peer)
	}
	nc, err := net.Dial("tcp", ln.Addr().String()) // this process: root
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	c3, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if peer, err = p9Identify(nil, true)(c3); err != nil || !peer.Trusted {
		t.Errorf("with a translation, a root peer: %v, %v; want trusted", peer, err)
	}
}

// TestP9SquashWithTranslationRefused: --all-squash checks the squashed
// identity against translated owners but untranslated ACL IDs, so the
// combination is refused at start.
func TestP9SquashWithTranslationRefused(t *testing.T) {
	err := runP9([]string{"--all-squash", "65534:65534", "--translate-uid", "map:0:100000:65536",
		"--listen", "unix:/nonexistent/s", "--shared-dir", t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "--all-squash cannot be combined") {
		t.Fatalf("9p --all-squash with --translate-uid: %v, want a refusal", err)
	}
}
