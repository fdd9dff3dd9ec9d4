package fastfs_test

import (
	"context"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// TestSessionAdopt plays fastfsd mount's supervisor and child in one
// process: a Session is opened (mounted, not served), its fd dup'ed and
// adopted as a second Session whose unmount asks the first to unmount;
// the adopted one is prepared, then served. A stat through the mount is
// answered, and Mounted.Unmount goes through the unmount function given
// to Adopt and ends serving.
func TestSessionAdopt(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	mnt := t.TempDir()
	opts := &fastfs.MountOptions{Workers: 2, FSName: "adopt"}
	sup, err := fastfs.Open(mnt, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	defer sup.Unmount()
	fd, err := unix.Dup(sup.Fd())
	if err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int32
	child, err := fastfs.Adopt(fd, sup.Mountpoint(), func() error {
		asked.Add(1)
		return sup.Unmount()
	}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Prepare(); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	m, err := child.Serve(context.Background(), helloFS{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := child.Serve(context.Background(), helloFS{}); err == nil {
		t.Error("a second Serve of one Session: no error")
	}
	if err := statHello(mnt); err != nil {
		t.Fatalf("through the adopted session: %v", err)
	}
	if err := m.Unmount(); err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	if asked.Load() == 0 {
		t.Error("Mounted.Unmount of an adopted session did not call the unmount function given to Adopt")
	}
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("serving did not end within 10 s of Unmount")
	}
	var st syscall.Stat_t
	if err := syscall.Stat(mnt+"/hello", &st); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("stat hello after Unmount: %v, want ENOENT (unmounted)", err)
	}
}

func TestSessionRefusesBadOptions(t *testing.T) {
	if _, err := fastfs.Adopt(-1, "/mnt", nil, nil); err == nil {
		t.Error("Adopt with no unmount function: no error")
	}
	if _, err := fastfs.Adopt(-1, "/mnt", func() error { return nil }, &fastfs.MountOptions{Splice: 7}); err == nil {
		t.Error("Adopt with Splice 7: no error")
	}
	if _, err := fastfs.Open(t.TempDir(), &fastfs.MountOptions{Workers: 2000}); err == nil {
		t.Error("Open with 2000 workers: no error")
	}
}
