package main

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	hp9 "github.com/hugelgupf/p9/p9"

	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// content is what hello must hold.
var content = []byte("hello, world\n")

// TestHelloFUSE mounts hellofs through /dev/fuse with the one-call API,
// reads hello through the kernel, and unmounts.
func TestHelloFUSE(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	mnt := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m, err := fastfs.Mount(ctx, newHello(), mnt, &fastfs.MountOptions{FSName: "hellofs", Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()

	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(mnt, "hello"), &st); err != nil {
		t.Fatalf("stat hello: %v", err)
	}
	if st.Mode != syscall.S_IFREG|0o444 || st.Size != int64(len(content)) || st.Ino != 2 {
		t.Errorf("stat hello: mode %o size %d ino %d; want %o %d 2", st.Mode, st.Size, st.Ino, syscall.S_IFREG|0o444, len(content))
	}
	got, err := testutil.ReadFile(filepath.Join(mnt, "hello"))
	if err != nil {
		t.Fatalf("read hello: %v", err)
	}
	if string(got) != string(content) {
		t.Errorf("read hello: %q, want %q", got, content)
	}
	if err := syscall.Stat(filepath.Join(mnt, "nothere"), &st); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("stat nothere: %v, want ENOENT", err)
	}

	// Cancelling ctx unmounts; Wait then reports a clean end.
	cancel()
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("cancelling the context did not end serving within 10 s")
	}
	if err := m.Wait(); err != nil {
		t.Errorf("Wait after cancel: %v", err)
	}
	if err := syscall.Stat(filepath.Join(mnt, "hello"), &st); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("stat hello after unmount: %v, want ENOENT (the empty mountpoint)", err)
	}
}

// TestHello9P serves the same hellofs over 9P2000.L with the one-call API
// and reads hello with a 9P client.
func TestHello9P(t *testing.T) {
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "9p.sock"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- fastfs.Serve9P(ctx, newHello(), l, nil) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve9P: %v", err)
		}
	}()

	nc, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := hp9.NewClient(nc)
	if err != nil {
		t.Fatalf("9p client: %v", err)
	}
	defer c.Close()
	root, err := c.Attach("")
	if err != nil {
		t.Fatalf("attach: %v", err)
	}
	_, f, err := root.Walk([]string{"hello"})
	if err != nil {
		t.Fatalf("walk hello: %v", err)
	}
	if _, _, err := f.Open(hp9.ReadOnly); err != nil {
		t.Fatalf("open hello: %v", err)
	}
	got := make([]byte, 100)
	n, err := f.ReadAt(got, 0)
	if err != nil && n == 0 {
		t.Fatalf("read hello: %v", err)
	}
	if string(got[:n]) != string(content) {
		t.Errorf("read hello over 9P: %q, want %q", got[:n], content)
	}
	if _, _, err := root.Walk([]string{"nothere"}); err == nil {
		t.Error("walk nothere: no error, want ENOENT")
	}
}
