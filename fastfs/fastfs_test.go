package fastfs_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

func TestMountRefusesBadOptions(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
		opts *fastfs.MountOptions
		want string
	}{
		{"fsname", context.Background(), &fastfs.MountOptions{FSName: "a,b"}, "comma"},
		{"workers", context.Background(), &fastfs.MountOptions{Workers: -1}, "Workers -1"},
		{"cancelled", cancelled, nil, "context canceled"},
	} {
		_, err := fastfs.Mount(tc.ctx, helloFS{}, t.TempDir(), tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Mount: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
	if _, err := fastfs.Mount(context.Background(), nil, t.TempDir(), nil); err == nil {
		t.Error("Mount of a nil filesystem: no error")
	}
}

// TestUnmount: Unmount ends serving (Wait returns nil), is idempotent,
// and leaves the empty mountpoint; an unmount from outside ends it too.
func TestUnmount(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	mnt := t.TempDir()
	m, err := fastfs.Mount(context.Background(), helloFS{}, mnt, &fastfs.MountOptions{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := statHello(mnt); err != nil {
		t.Fatal(err)
	}
	if err := m.Unmount(); err != nil {
		t.Fatalf("Unmount: %v", err)
	}
	if err := m.Unmount(); err != nil {
		t.Fatalf("second Unmount: %v", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(mnt+"/hello", &st); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("stat hello after Unmount: %v, want ENOENT", err)
	}

	m, err = fastfs.Mount(context.Background(), helloFS{}, mnt, &fastfs.MountOptions{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(mnt+"/hello", &st); err != nil {
		t.Fatalf("stat hello (second mount): %v", err)
	}
	if err := syscall.Unmount(mnt, 0); err != nil {
		t.Fatalf("umount from outside: %v", err)
	}
	select {
	case <-m.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("an unmount from outside did not end serving within 10 s")
	}
	if err := m.Wait(); err != nil {
		t.Errorf("Wait after an outside unmount: %v", err)
	}
}

// TestMountIOUring mounts with IOUring and checks the mount serves: the
// engine refuses to go on over /dev/fuse when INIT did not agree on
// io_uring (fusedev), so a mount whose kernel was not offering it fails
// here. On a machine where enable_uring is still off (a fresh boot) this
// is the test that catches the parameter being turned on after the
// mount, which the kernel's INIT of that mount no longer sees.
func TestMountIOUring(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	mnt := t.TempDir()
	m, err := fastfs.Mount(context.Background(), helloFS{}, mnt, &fastfs.MountOptions{Workers: 1, IOUring: true})
	if err != nil {
		if testutil.Strict() {
			t.Fatalf("FUSE over io_uring unavailable (strict mode): %v", err)
		}
		t.Skip(err)
	}
	if err := statHello(mnt); err != nil {
		t.Errorf("over io_uring: %v", err)
	}
	if err := m.Unmount(); err != nil {
		t.Errorf("Unmount: %v", err)
	}
	if err := m.Wait(); err != nil {
		t.Errorf("serving over io_uring ended with %v", err)
	}
}

// statHello stats helloFS's file through the mount at mnt: nil if it is
// there with the greeting's size.
func statHello(mnt string) error {
	var st syscall.Stat_t
	if err := syscall.Stat(mnt+"/hello", &st); err != nil || st.Size != int64(len(greeting)) {
		return fmt.Errorf("stat hello: %v (size %d)", err, st.Size)
	}
	return nil
}
