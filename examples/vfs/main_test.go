package main

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// readFile reads path with plain system calls (this process serves the
// mount; see package fusedev, "Serving and using a mount in one process").
func readFile(path string) (string, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer syscall.Close(fd)
	buf := make([]byte, 64)
	n, err := syscall.Read(fd, buf)
	return string(buf[:max(n, 0)]), err
}

// TestTwoShares mounts the example's VFS of two shares through /dev/fuse,
// reads a file of each, takes one share away while the mount is in use
// and checks the other still serves.
func TestTwoShares(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	a, b, mnt := t.TempDir(), t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(a, "f"), []byte("from a"), 0o644)
	os.WriteFile(filepath.Join(b, "f"), []byte("from b"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, m, err := serve(ctx, mnt, []string{"a=" + a, "b=" + b})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()
	for _, c := range []struct{ path, want string }{{"a/f", "from a"}, {"b/f", "from b"}} {
		if got, err := readFile(filepath.Join(mnt, c.path)); err != nil || got != c.want {
			t.Fatalf("read %s: %q %v, want %q", c.path, got, err, c.want)
		}
	}
	if err := v.Unmount(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := readFile(filepath.Join(mnt, "b/f")); err != syscall.ENOENT {
		t.Errorf("read b/f after unmounting b: %v, want ENOENT", err)
	}
	if got, err := readFile(filepath.Join(mnt, "a/f")); err != nil || got != "from a" {
		t.Errorf("read a/f after unmounting b: %q %v", got, err)
	}
}
