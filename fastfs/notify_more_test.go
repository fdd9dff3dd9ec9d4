package fastfs_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// TestStore: the filesystem stores new content in the kernel's page
// cache; the client reads it with no READ reaching the filesystem.
func TestStore(t *testing.T) {
	f, m, mnt := mountChanging(t)
	path := filepath.Join(mnt, "data")
	if got, err := readAll(path); err != nil || got != "version 1\n" {
		t.Fatalf("first read: %q, %v", got, err)
	}
	reads := f.reads.Load()
	if err := m.Store(2, 0, []byte("VERSION 9\n")); err != nil {
		t.Fatalf("Store: %v", err)
	}
	if got, err := readAll(path); err != nil || got != "VERSION 9\n" {
		t.Fatalf("read after Store: %q, %v; want the stored %q", got, err, "VERSION 9\n")
	}
	if n := f.reads.Load() - reads; n != 0 {
		t.Errorf("read after Store: %d READs reached the filesystem, want 0", n)
	}
	if err := m.Store(99, 0, []byte("x")); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("Store to an inode the kernel does not know: %v, want ENOENT", err)
	}
}

// TestRetrieve: the filesystem reads back what the kernel caches (the
// NOTIFY_REPLY is routed to the waiting caller), with no READ.
func TestRetrieve(t *testing.T) {
	f, m, mnt := mountChanging(t)
	if got, err := readAll(filepath.Join(mnt, "data")); err != nil || got != "version 1\n" {
		t.Fatalf("first read: %q, %v", got, err)
	}
	reads := f.reads.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	buf := make([]byte, 4096)
	off, n, err := m.Retrieve(ctx, 2, 0, buf)
	if err != nil || off != 0 || string(buf[:n]) != "version 1\n" {
		t.Fatalf("Retrieve: off %d, %q, %v; want 0, %q", off, buf[:n], err, "version 1\n")
	}
	// What Store put there is what Retrieve finds.
	if err := m.Store(2, 0, []byte("STORED 42\n")); err != nil {
		t.Fatal(err)
	}
	if _, n, err = m.Retrieve(ctx, 2, 0, buf); err != nil || string(buf[:n]) != "STORED 42\n" {
		t.Fatalf("Retrieve after Store: %q, %v", buf[:n], err)
	}
	if _, _, err := m.Retrieve(ctx, 1, 0, buf); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("Retrieve of the root directory: %v, want EINVAL (regular files only)", err)
	}
	if d := f.reads.Load() - reads; d != 0 {
		t.Errorf("%d READs reached the filesystem during the retrievals, want 0", d)
	}
}

// pollFS serves one file, "ready", that becomes readable when the test
// says; Poll keeps the kernel's handle to wake the waiter.
type pollFS struct {
	changingFS
	ready     atomic.Bool
	mu        sync.Mutex
	kh        uint64
	scheduled chan struct{} // closed at the first Poll that asks to be woken
	polls     atomic.Int64
}

func (p *pollFS) Lookup(ctx *fs.Context, parent fs.Inode, name []byte, out *fs.Entry) fs.Errno {
	if string(name) == "ready" {
		out.Ino, out.Attr, out.EntryTimeout, out.AttrTimeout = 6, p.attr(6), hour, hour
		return 0
	}
	return p.changingFS.Lookup(ctx, parent, name, out)
}

func (p *pollFS) Poll(_ *fs.Context, ino fs.Inode, _ fs.Handle, kh uint64, schedule bool, events uint32) (uint32, fs.Errno) {
	p.polls.Add(1)
	if p.ready.Load() {
		return events & unix.POLLIN, 0
	}
	if schedule {
		p.mu.Lock()
		if p.kh == 0 {
			p.kh = kh
			close(p.scheduled)
		}
		p.mu.Unlock()
	}
	return 0, 0
}

// TestNotifyPoll: a poll(2) waiter on a file that is not ready sleeps
// until the filesystem's poll notification, then sees it readable.
func TestNotifyPoll(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	p := &pollFS{scheduled: make(chan struct{})}
	v := []byte("x")
	p.content.Store(&v)
	mnt := t.TempDir()
	m, err := fastfs.Mount(context.Background(), p, mnt, &fastfs.MountOptions{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()
	fd, err := syscall.Open(filepath.Join(mnt, "ready"), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	type result struct {
		n   int
		rev int16
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	go func() {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 10_000)
		done <- result{n, fds[0].Revents, err, time.Now()}
	}()
	select {
	case <-p.scheduled:
	case <-time.After(5 * time.Second):
		t.Fatal("no POLL asking to be woken reached the filesystem within 5 s")
	}
	select {
	case r := <-done:
		t.Fatalf("poll returned before the file was ready: %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
	p.ready.Store(true)
	p.mu.Lock()
	kh := p.kh
	p.mu.Unlock()
	woke := time.Now()
	if err := m.NotifyPoll(kh); err != nil {
		t.Fatalf("NotifyPoll: %v", err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.n != 1 || r.rev&unix.POLLIN == 0 {
			t.Fatalf("poll after NotifyPoll: n %d revents %#x err %v, want POLLIN", r.n, r.rev, r.err)
		}
		t.Logf("poll returned %v after the notification", r.at.Sub(woke))
	case <-time.After(5 * time.Second):
		t.Fatal("poll still waiting 5 s after NotifyPoll")
	}
}

// TestIncEpoch: after a new epoch a cached name is looked up again (once)
// and the rebound inode is seen.
func TestIncEpoch(t *testing.T) {
	f, m, mnt := mountChanging(t)
	path := filepath.Join(mnt, "moved")
	if ino, err := statIno(t, path); err != nil || ino != 3 {
		t.Fatalf("stat moved: ino %d, %v; want 3", ino, err)
	}
	f.moved.Store(4)
	lookups := f.lookups.Load()
	if ino, _ := statIno(t, path); ino != 3 {
		t.Fatalf("stat before the notification: ino %d; want the cached 3", ino)
	}
	if err := m.IncEpoch(); err != nil {
		if errors.Is(err, syscall.EINVAL) {
			t.Skipf("IncEpoch: %v: this kernel lacks FUSE_NOTIFY_INC_EPOCH (Linux 6.16)", err)
		}
		t.Fatalf("IncEpoch: %v", err)
	}
	if ino, err := statIno(t, path); err != nil || ino != 4 {
		t.Fatalf("stat after IncEpoch: ino %d, %v; want 4", ino, err)
	}
	if n := f.lookups.Load() - lookups; n != 1 {
		t.Errorf("%d LOOKUPs reached the filesystem across the two stats, want 1 (after the notification)", n)
	}
}

// slowFS blocks its first READ of "slow" until released, so that only a
// resent copy of the request can answer the client.
type slowFS struct {
	changingFS
	entered chan struct{}
	release chan struct{}
	slow    atomic.Int64
}

func (s *slowFS) Lookup(ctx *fs.Context, parent fs.Inode, name []byte, out *fs.Entry) fs.Errno {
	if string(name) == "slow" {
		out.Ino, out.Attr, out.EntryTimeout, out.AttrTimeout = 7, s.attr(7), hour, hour
		out.Attr.Size = 5
		return 0
	}
	return s.changingFS.Lookup(ctx, parent, name, out)
}

func (s *slowFS) GetAttr(ctx *fs.Context, ino fs.Inode, fh fs.Handle, hasFh bool, out *fs.AttrOut) fs.Errno {
	e := s.changingFS.GetAttr(ctx, ino, fh, hasFh, out)
	if ino == 7 {
		out.Attr.Size = 5
	}
	return e
}

func (s *slowFS) Read(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, size uint32, dst fs.Sink) fs.Errno {
	if ino != 7 {
		return s.changingFS.Read(ctx, ino, fh, off, size, dst)
	}
	if s.slow.Add(1) == 1 {
		close(s.entered)
		<-s.release
	}
	dst.Append([]byte("slow\n")[min(off, 5):])
	return 0
}

// TestResend: a READ the filesystem never answers is sent again after
// Resend, and the copy's answer reaches the client.
func TestResend(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	s := &slowFS{entered: make(chan struct{}), release: make(chan struct{})}
	v := []byte("x")
	s.content.Store(&v)
	mnt, m, release := mountHolding(t, s, s.release)
	type result struct {
		s   string
		err error
	}
	done := make(chan result, 1)
	go func() {
		got, err := readAll(filepath.Join(mnt, "slow"))
		done <- result{got, err}
	}()
	resendHeld(t, m, s.entered, "the READ")
	select {
	case r := <-done:
		if r.err != nil || r.s != "slow\n" {
			t.Fatalf("read after Resend: %q, %v", r.s, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read still waiting 5 s after Resend: the request was not sent again")
	}
	if n := s.slow.Load(); n != 2 {
		t.Errorf("%d READs of the file reached the filesystem, want 2 (the first, blocked, and the resent copy)", n)
	}
	release() // the first copy's answer is refused by the kernel
}

// mountHolding mounts f with two workers, one to hold a request the
// filesystem blocks until rel is closed and one to serve its resent copy,
// and returns the mount point, the mount and release, which closes rel
// (once; the test's cleanup closes it if the test did not, before the
// unmount).
func mountHolding(t *testing.T, f fs.FileSystem, rel chan struct{}) (string, *fastfs.Mounted, func()) {
	t.Helper()
	mnt := t.TempDir()
	m, err := fastfs.Mount(context.Background(), f, mnt, &fastfs.MountOptions{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release := func() { once.Do(func() { close(rel) }) }
	t.Cleanup(func() {
		release()
		m.Unmount()
	})
	return mnt, m, release
}

// resendHeld waits until what, held by the filesystem, has reached it
// (entered is closed), then has the kernel send every request in flight
// again (Mounted.Resend); it skips where the kernel lacks
// FUSE_NOTIFY_RESEND.
func resendHeld(t *testing.T, m *fastfs.Mounted, entered <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s did not reach the filesystem within 5 s", what)
	}
	if err := m.Resend(); err != nil {
		if errors.Is(err, syscall.EINVAL) {
			t.Skipf("Resend: %v: this kernel lacks FUSE_NOTIFY_RESEND (Linux 6.9)", err)
		}
		t.Fatalf("Resend: %v", err)
	}
}

// forgetFS records FORGETs.
type forgetFS struct {
	changingFS
	forgot chan fs.Inode
}

func (f *forgetFS) Forget(ino fs.Inode, n uint64) {
	select {
	case f.forgot <- ino:
	default:
	}
}

// TestPrune: an inode the client looked up but does not hold is dropped
// by the kernel after Prune, which FORGETs it.
func TestPrune(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	f := &forgetFS{forgot: make(chan fs.Inode, 16)}
	v := []byte("x")
	f.content.Store(&v)
	f.moved.Store(3)
	mnt := t.TempDir()
	m, err := fastfs.Mount(context.Background(), f, mnt, &fastfs.MountOptions{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()
	if _, err := statIno(t, filepath.Join(mnt, "gone")); err != nil {
		t.Fatal(err)
	}
	select {
	case ino := <-f.forgot:
		t.Fatalf("FORGET of %d before Prune", ino)
	case <-time.After(100 * time.Millisecond):
	}
	if err := m.Prune(5); err != nil {
		if errors.Is(err, syscall.EINVAL) {
			t.Skipf("Prune: %v: this kernel lacks FUSE_NOTIFY_PRUNE (Linux 6.18)", err)
		}
		t.Fatalf("Prune: %v", err)
	}
	select {
	case ino := <-f.forgot:
		if ino != 5 {
			t.Fatalf("FORGET of %d after Prune(5)", ino)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no FORGET within 5 s of Prune: the kernel kept the inode")
	}
	lookups := f.lookups.Load()
	if _, err := statIno(t, filepath.Join(mnt, "gone")); err != nil {
		t.Fatal(err)
	}
	if n := f.lookups.Load() - lookups; n != 1 {
		t.Errorf("stat after Prune: %d LOOKUPs, want 1 (the entry was dropped)", n)
	}
}
