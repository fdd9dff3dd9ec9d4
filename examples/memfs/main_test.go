package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	hp9 "github.com/hugelgupf/p9/p9"

	"github.com/fastfsd/fastfsd/fs/memfs"
	"github.com/fastfsd/fastfsd/internal/testutil"
	"github.com/fastfsd/fastfsd/internal/vhostload"
)

// TestThreeDoors serves one memfs on all three doors at once, as
// "memfs -mount DIR -virtiofs SOCKET -9p unix:PATH" does, and uses each:
// a file written through the FUSE mount (system calls through the
// kernel) is read over 9P (a 9P client), one created over 9P is read
// through the mount, and a vhost-user front-end playing a VM's virtio-fs
// driver (internal/vhostload) stats, looks up, reads and lists the
// filesystem and creates files in it that the mount then lists.
func TestThreeDoors(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	fsys := memfs.New(nil)
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i % 251)
	}
	if err := fsys.WriteFile("data", data, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 16 {
		if err := fsys.WriteFile(fmt.Sprintf("dir/entry-%02d", i), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tmp := t.TempDir()
	mnt, sock, p9sock := filepath.Join(tmp, "mnt"), filepath.Join(tmp, "vfs.sock"), filepath.Join(tmp, "9p.sock")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, fsys, mnt, sock, "unix:"+p9sock) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("serve did not return within 20 s of the cancel")
		}
	}()
	waitFor(t, sock)
	waitMounted(t, mnt)

	// FUSE → 9P.
	const hello = "written through the kernel's FUSE mount\n"
	if err := writeFile(filepath.Join(mnt, "hello"), hello); err != nil {
		t.Fatalf("write hello through the mount: %v", err)
	}
	nc, err := net.Dial("unix", p9sock)
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
		t.Fatalf("9p attach: %v", err)
	}
	_, f, err := root.Walk([]string{"hello"})
	if err != nil {
		t.Fatalf("9p walk hello: %v", err)
	}
	if _, _, err := f.Open(hp9.ReadOnly); err != nil {
		t.Fatalf("9p open hello: %v", err)
	}
	buf := make([]byte, 256)
	n, _ := f.ReadAt(buf, 0)
	if string(buf[:n]) != hello {
		t.Errorf("9p read of hello: %q, want %q", buf[:n], hello)
	}
	f.Close()

	// 9P → FUSE.
	const from9p = "created over 9P\n"
	_, d, err := root.Walk(nil)
	if err != nil {
		t.Fatal(err)
	}
	nf, _, _, err := d.Create("from9p", hp9.WriteOnly, 0o644, 0, 0)
	if err != nil {
		t.Fatalf("9p create: %v", err)
	}
	if _, err := nf.WriteAt([]byte(from9p), 0); err != nil {
		t.Fatalf("9p write: %v", err)
	}
	nf.Close()
	if got, err := testutil.ReadFile(filepath.Join(mnt, "from9p")); err != nil || string(got) != from9p {
		t.Errorf("read through the mount of a file created over 9P: %q (%v), want %q", got, err, from9p)
	}

	// virtio-fs, then what it created seen through the mount.
	s, err := vhostload.Connect(vhostload.Config{Socket: sock, Queues: 1, Depth: 4, Prefix: "vfs-",
		Tree: vhostload.Tree{File: "data", FileSize: int64(len(data)), Dir: "dir"}})
	if err != nil {
		t.Fatalf("virtio-fs front-end: %v", err)
	}
	const ops = 20
	for _, k := range []vhostload.Kind{vhostload.Getattr, vhostload.Lookup, vhostload.Read4K, vhostload.Readdirplus, vhostload.CreateRelease} {
		r, err := s.Run(k, 10*time.Second, ops)
		if err != nil {
			t.Fatalf("virtio-fs %v: %v", k, err)
		}
		if r.Errors != 0 || r.Ops < ops {
			t.Errorf("virtio-fs %v: %d ops, %d errors (%s); want ≥ %d ops and no error", k, r.Ops, r.Errors, r.FirstError, ops)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("virtio-fs front-end close: %v", err)
	}
	names, err := testutil.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	created := 0
	for _, n := range names {
		if strings.HasPrefix(n, "vfs-") {
			created++
		}
	}
	if created < ops {
		t.Errorf("the mount lists %d files created over virtio-fs, want ≥ %d (names: %.10q)", created, ops, names)
	}
}

func waitFor(t *testing.T, path string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("%s: %v after 10 s", path, err)
		}
	}
}

// waitMounted waits until mnt is a FUSE mount (serve mounts before it
// says ready, but runs in its own goroutine here).
func waitMounted(t *testing.T, mnt string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var st syscall.Statfs_t
		if syscall.Statfs(mnt, &st) == nil && st.Type == 0x65735546 { // FUSE_SUPER_MAGIC
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not a FUSE mount after 10 s", mnt)
		}
	}
}

// writeFile writes with plain system calls, as testutil.ReadFile reads:
// this process serves the mount, and os.Open would register the file
// with the netpoller (see package fusedev, "Serving and using a mount in
// one process").
func writeFile(path, s string) error {
	fd, err := syscall.Open(path, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_TRUNC|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	_, err = syscall.Write(fd, []byte(s))
	return err
}
