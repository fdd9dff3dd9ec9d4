package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
func TestP9TCPNamespaceRefused(t *testing.T) {
	dir := t.TempDir()
	done := make(chan error, 1)
	go func() {
		done <- runP9([]string{"--listen", "tcp:127.0.0.1:0", "--shared-dir", dir, "--sandbox", "namespace"})
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "cannot serve --listen tcp") {
			t.Errorf("9p --listen tcp --sandbox=namespace: %v; want it refused as unable to identify peers", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("9p --listen tcp --sandbox=namespace started serving; every client would be refused")
	}
}
