package nodefs_test

import (
	"context"
	"errors"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/fs/nodefs"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// TestMount serves a tree through /dev/fuse with fastfs.Mount and uses it
// with system calls: the kernel sees the IDs the Tree gave as st_ino,
// reads through the handles it keeps, lists the directory with
// READDIRPLUS, creates with Mknod and gets the defaults for the rest.
func TestMount(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	root := newDir()
	f := &testFile{data: []byte("through the kernel")}
	root.children["f"] = f
	root.children["bare"] = &bare{}
	tree := nodefs.New(root, &nodefs.Options{}) // no caching: every stat asks
	mnt := t.TempDir()
	m, err := fastfs.Mount(context.Background(), tree, mnt, &fastfs.MountOptions{FSName: "nodefs-test", Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	}()
	p := func(n string) string { return filepath.Join(mnt, n) }

	var st syscall.Stat_t
	if err := syscall.Stat(p("f"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Ino != uint64(f.ID()) || st.Mode != syscall.S_IFREG|0o644 || st.Size != int64(len(f.data)) {
		t.Errorf("stat f: ino %d mode %o size %d; want ino %d (its ID), mode 100644, size %d", st.Ino, st.Mode, st.Size, f.ID(), len(f.data))
	}
	got, err := testutil.ReadFile(p("f"))
	if err != nil || string(got) != string(f.data) {
		t.Errorf("read f: %q %v", got, err)
	}
	if err := syscall.Mknod(p("new"), syscall.S_IFREG|0o600, 0); err != nil {
		t.Errorf("mknod new: %v", err)
	}
	if got, err := testutil.ReadFile(p("new")); err != nil || string(got) != "new" {
		t.Errorf("read new: %q %v", got, err)
	}
	if err := syscall.Mkdir(p("d"), 0o755); !errors.Is(err, syscall.EPERM) {
		t.Errorf("mkdir in a directory without Mkdir: %v, want EPERM", err)
	}
	if err := syscall.Chmod(p("bare"), 0o600); !errors.Is(err, syscall.EPERM) {
		t.Errorf("chmod of a node without Setattr: %v, want EPERM", err)
	}
	if _, err := syscall.Getxattr(p("f"), "user.x", nil); !errors.Is(err, syscall.ENODATA) {
		t.Errorf("getxattr of a node without xattrs: %v, want ENODATA", err)
	}
	if err := syscall.Setxattr(p("f"), "user.x", []byte("v"), 0); !errors.Is(err, syscall.EOPNOTSUPP) {
		t.Errorf("setxattr of a node without xattrs: %v, want EOPNOTSUPP", err)
	}
	names, err := testutil.ReadDir(mnt)
	sort.Strings(names)
	if err != nil || len(names) != 3 || names[0] != "bare" || names[1] != "f" || names[2] != "new" {
		t.Errorf("readdir: %v %v", names, err)
	}
	// bare is empty (size 0): the kernel reads nothing from it.
	if got, err := testutil.ReadFile(p("bare")); err != nil || len(got) != 0 {
		t.Errorf("read bare: %q %v, want empty", got, err)
	}
	// Every open the kernel made is released. The kernel sends RELEASE
	// after close(2) has returned (asynchronously, from its own worker), so
	// wait for it: with GOMAXPROCS=1 the last one can still be in flight.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		n := tree.OpenHandles()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%d handles kept 5 s after every file was closed", n)
			break
		}
	}
}
