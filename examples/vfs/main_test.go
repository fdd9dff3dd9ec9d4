package main

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

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
		if got, err := testutil.ReadFile(filepath.Join(mnt, c.path)); err != nil || string(got) != c.want {
			t.Fatalf("read %s: %q %v, want %q", c.path, got, err, c.want)
		}
	}
	if err := v.Unmount(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := testutil.ReadFile(filepath.Join(mnt, "b/f")); err != syscall.ENOENT {
		t.Errorf("read b/f after unmounting b: %v, want ENOENT", err)
	}
	if got, err := testutil.ReadFile(filepath.Join(mnt, "a/f")); err != nil || string(got) != "from a" {
		t.Errorf("read a/f after unmounting b: %q %v", got, err)
	}
}
