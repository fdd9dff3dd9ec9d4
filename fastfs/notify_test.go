package fastfs_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// changingFS changes behind the kernel's back, and lets it cache
// everything for an hour, so that only a notification can make the
// client see a change:
//
//	data (ino 2)   a file whose content the test replaces (same size)
//	moved          names ino 3, then ino 4 after the test rebinds it
//	gone (ino 5)   exists until the test removes it
type changingFS struct {
	fs.Base
	content atomic.Pointer[[]byte]
	moved   atomic.Uint64
	gone    atomic.Bool // removed
	lookups atomic.Int64
	reads   atomic.Int64
}

const hour = time.Hour

func (f *changingFS) attr(ino fs.Inode) fs.Attr {
	switch ino {
	case fs.RootInode:
		return fs.Attr{Ino: 1, Mode: syscall.S_IFDIR | 0o755, Nlink: 2}
	case 2:
		return fs.Attr{Ino: 2, Mode: syscall.S_IFREG | 0o644, Nlink: 1, Size: uint64(len(*f.content.Load()))}
	default:
		return fs.Attr{Ino: uint64(ino), Mode: syscall.S_IFREG | 0o644, Nlink: 1}
	}
}

func (f *changingFS) Lookup(_ *fs.Context, parent fs.Inode, name []byte, out *fs.Entry) fs.Errno {
	f.lookups.Add(1)
	var ino fs.Inode
	switch string(name) {
	case "data":
		ino = 2
	case "moved":
		ino = fs.Inode(f.moved.Load())
	case "gone":
		if f.gone.Load() {
			return syscall.ENOENT
		}
		ino = 5
	default:
		return syscall.ENOENT
	}
	out.Ino, out.Attr, out.EntryTimeout, out.AttrTimeout = ino, f.attr(ino), hour, hour
	return 0
}

func (f *changingFS) GetAttr(_ *fs.Context, ino fs.Inode, _ fs.Handle, _ bool, out *fs.AttrOut) fs.Errno {
	out.Attr, out.Timeout = f.attr(ino), hour
	return 0
}

func (f *changingFS) Open(_ *fs.Context, _ fs.Inode, _, _ uint32, out *fs.OpenOut) fs.Errno {
	out.Flags = fs.OpenKeepCache // keep cached data across opens
	return 0
}

func (f *changingFS) Read(_ *fs.Context, _ fs.Inode, _ fs.Handle, off int64, _ uint32, dst fs.Sink) fs.Errno {
	f.reads.Add(1)
	c := *f.content.Load()
	dst.Append(c[min(off, int64(len(c))):])
	return 0
}

func mountChanging(t *testing.T) (*changingFS, *fastfs.Mounted, string) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	f := &changingFS{}
	v1 := []byte("version 1\n")
	f.content.Store(&v1)
	f.moved.Store(3)
	mnt := t.TempDir()
	m, err := fastfs.Mount(context.Background(), f, mnt, &fastfs.MountOptions{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("Unmount: %v", err)
		}
	})
	return f, m, mnt
}

func statIno(t *testing.T, path string) (uint64, error) {
	t.Helper()
	var st syscall.Stat_t
	err := syscall.Stat(path, &st)
	return st.Ino, err
}

// TestInvalidateInode: the client reads cached data until the filesystem
// invalidates the inode; the next read then asks the filesystem once and
// sees the new content.
func TestInvalidateInode(t *testing.T) {
	f, m, mnt := mountChanging(t)
	path := filepath.Join(mnt, "data")
	if got, err := readAll(path); err != nil || got != "version 1\n" {
		t.Fatalf("first read: %q, %v", got, err)
	}
	v2 := []byte("version 2\n")
	f.content.Store(&v2)
	reads := f.reads.Load()
	if got, err := readAll(path); err != nil || got != "version 1\n" {
		t.Fatalf("read before the notification: %q, %v; want the cached %q (the test cannot tell the notification's effect otherwise)", got, err, "version 1\n")
	}
	if n := f.reads.Load() - reads; n != 0 {
		t.Fatalf("read before the notification reached the filesystem %d times; want the page cache to answer", n)
	}
	if err := m.InvalidateInode(2, 0, 0); err != nil {
		t.Fatalf("InvalidateInode: %v", err)
	}
	if got, err := readAll(path); err != nil || got != "version 2\n" {
		t.Fatalf("read after InvalidateInode: %q, %v; want %q", got, err, "version 2\n")
	}
	if n := f.reads.Load() - reads; n != 1 {
		t.Errorf("read after the notification: %d READs reached the filesystem, want 1", n)
	}
}

// TestInvalidateEntry: a name the filesystem rebinds to another inode
// keeps its cached inode until InvalidateEntry; the next stat then looks
// it up once and sees the new one.
func TestInvalidateEntry(t *testing.T) {
	f, m, mnt := mountChanging(t)
	path := filepath.Join(mnt, "moved")
	if ino, err := statIno(t, path); err != nil || ino != 3 {
		t.Fatalf("stat moved: ino %d, %v; want 3", ino, err)
	}
	f.moved.Store(4)
	lookups := f.lookups.Load()
	if ino, err := statIno(t, path); err != nil || ino != 3 {
		t.Fatalf("stat before the notification: ino %d, %v; want the cached 3", ino, err)
	}
	if err := m.InvalidateEntry(fs.RootInode, "moved"); err != nil {
		t.Fatalf("InvalidateEntry: %v", err)
	}
	if ino, err := statIno(t, path); err != nil || ino != 4 {
		t.Fatalf("stat after InvalidateEntry: ino %d, %v; want 4", ino, err)
	}
	if n := f.lookups.Load() - lookups; n != 1 {
		t.Errorf("%d LOOKUPs reached the filesystem across the two stats, want 1 (after the notification)", n)
	}
	if err := m.InvalidateEntry(fs.RootInode, "a/b"); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("InvalidateEntry of a name with a slash: %v, want EINVAL", err)
	}
}

// TestNotifyDelete: a file the filesystem removed stays visible from the
// cache until NotifyDelete; then stat fails with ENOENT.
func TestNotifyDelete(t *testing.T) {
	f, m, mnt := mountChanging(t)
	path := filepath.Join(mnt, "gone")
	if ino, err := statIno(t, path); err != nil || ino != 5 {
		t.Fatalf("stat gone: ino %d, %v; want 5", ino, err)
	}
	f.gone.Store(true)
	if _, err := statIno(t, path); err != nil {
		t.Fatalf("stat before the notification: %v; want the cached entry", err)
	}
	if err := m.NotifyDelete(fs.RootInode, 5, "gone"); err != nil {
		t.Fatalf("NotifyDelete: %v", err)
	}
	if _, err := statIno(t, path); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("stat after NotifyDelete: %v, want ENOENT", err)
	}
}

// TestNotifyAfterUnmount: a notification on a Mounted that has ended
// fails cleanly (the fd is closed, never reused under it).
func TestNotifyAfterUnmount(t *testing.T) {
	_, m, _ := mountChanging(t)
	if err := m.Unmount(); err != nil {
		t.Fatal(err)
	}
	if err := m.InvalidateInode(2, 0, 0); !errors.Is(err, syscall.EBADF) {
		t.Errorf("InvalidateInode after Unmount: %v, want EBADF", err)
	}
}

// readAll reads path with plain system calls (this process serves the
// mount: see package fusedev on os.Open).
func readAll(path string) (string, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer syscall.Close(fd)
	buf := make([]byte, 4096)
	n, err := syscall.Read(fd, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}
