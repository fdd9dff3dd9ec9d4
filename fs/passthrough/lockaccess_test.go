package passthrough

import (
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// ownerAcc returns the access mode (O_ACCMODE bits) the host reports for
// owner's lock fd on the inode of handle fh, and whether owner has one.
func ownerAcc(t *testing.T, f *FS, fh fs.Handle, owner uint64) (int, bool) {
	t.Helper()
	h, e := f.getHandle(fh)
	if e != 0 {
		t.Fatalf("getHandle: %v", e)
	}
	defer f.putHandle(h)
	h.in.lockMu.Lock()
	defer h.in.lockMu.Unlock()
	o, ok := h.in.lockOwners[owner]
	if !ok {
		return 0, false
	}
	fl, err := unix.FcntlInt(uintptr(o.fd), unix.F_GETFL, 0)
	if err != nil {
		t.Fatalf("F_GETFL of owner %d's fd: %v", owner, err)
	}
	return fl & unix.O_ACCMODE, true
}

// hostLock takes (or, with F_UNLCK, releases) an OFD lock on [start,
// start+n) through fd, a host process's own open of the file.
func hostLock(fd int, typ int16, start, n int64) error {
	l := unix.Flock_t{Type: typ, Whence: unix.SEEK_SET, Start: start, Len: n}
	return unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &l)
}

// TestLockKeepsReadLease: a client's read lock leaves a host process's
// read lease alone, as a native POSIX lock does: the owner's lock fd is
// opened read-only (before, it was opened read-write, which broke the
// lease: its holder got SIGIO and F_GETLEASE said F_UNLCK).
func TestLockKeepsReadLease(t *testing.T) {
	testutil.RequireRoot(t) // F_SETLEASE on a file the test made as root; CAP_LEASE
	f, dir := newTestFS(t, Options{})
	writeFile(t, join(dir, "f"), "leased", 0o644)
	e := lookup(t, f, fs.RootInode, "f")
	lfd := holdLease(t, join(dir, "f"), unix.F_RDLCK)
	sigio := make(chan os.Signal, 1)
	signal.Notify(sigio, syscall.SIGIO)
	defer signal.Stop(sigio)
	if _, err := unix.FcntlInt(uintptr(lfd), unix.F_SETOWN, unix.Getpid()); err != nil {
		t.Fatal(err)
	}

	h := open(t, f, e.Ino, unix.O_RDONLY) // a read open breaks no read lease
	defer f.Release(rootCtx, e.Ino, h, 0)
	if errno := f.SetLk(rootCtx, e.Ino, h, 1, lockRange(unix.F_RDLCK, 0, 9), false, false); errno != 0 {
		t.Fatalf("read lock with a read lease held: %v", errno)
	}
	// The waiting path opens its owner fd the same way.
	if errno := f.SetLk(rootCtx, e.Ino, h, 2, lockRange(unix.F_RDLCK, 5, 20), true, false); errno != 0 {
		t.Fatalf("waiting read lock with a read lease held: %v", errno)
	}
	for _, owner := range []uint64{1, 2} {
		if acc, ok := ownerAcc(t, f, h, owner); !ok || acc != unix.O_RDONLY {
			t.Errorf("owner %d's lock fd: access %#x (held %v), want O_RDONLY", owner, acc, ok)
		}
	}
	if got, err := unix.FcntlInt(uintptr(lfd), unix.F_GETLEASE, 0); err != nil || got != unix.F_RDLCK {
		t.Errorf("after the client's read locks F_GETLEASE = %d, %v; want F_RDLCK (%d): the lease was broken", got, err, unix.F_RDLCK)
	}
	select {
	case <-sigio:
		t.Error("the lease holder got SIGIO: its lease is being broken")
	case <-time.After(100 * time.Millisecond):
	}
	// The locks are real: a host write lock on the range is refused.
	hfd := hostOpen(t, join(dir, "f"), unix.O_RDONLY)
	probe := unix.Flock_t{Type: unix.F_WRLCK, Whence: unix.SEEK_SET, Start: 0, Len: 1}
	if err := unix.FcntlFlock(uintptr(hfd), unix.F_OFD_GETLK, &probe); err != nil || probe.Type != unix.F_RDLCK {
		t.Errorf("host F_OFD_GETLK over the client's read lock: %v, type %d; want F_RDLCK", err, probe.Type)
	}
}

// TestLockUpgrade: an owner holding read locks on a read-only lock fd
// that asks for a write lock gets it on a read-write fd carrying its
// locks, with no moment in which another process could lock the range
// (checked by a host process trying all along); another owner's read
// lock refuses the upgrade and the read lock stays held; the budget
// counts one fd per owner throughout.
func TestLockUpgrade(t *testing.T) {
	f, dir := newTestFS(t, Options{MaxOpenPerUid: 8})
	writeFile(t, join(dir, "f"), "0123456789", 0o666)
	e := lookup(t, f, fs.RootInode, "f")
	alice := asUid(1000)
	h := openAs(t, f, alice, e.Ino, unix.O_RDWR)
	defer f.Release(alice, e.Ino, h, 0)
	h2 := open(t, f, e.Ino, unix.O_RDWR)
	defer f.Release(rootCtx, e.Ino, h2, 0)
	hfd := hostOpen(t, join(dir, "f"), unix.O_RDWR)

	if errno := f.SetLk(alice, e.Ino, h, 1, lockRange(unix.F_RDLCK, 0, 99), false, false); errno != 0 {
		t.Fatal(errno)
	}
	if errno := f.SetLk(alice, e.Ino, h, 1, lockRange(unix.F_RDLCK, 200, 299), false, false); errno != 0 {
		t.Fatal(errno)
	}
	if acc, _ := ownerAcc(t, f, h, 1); acc != unix.O_RDONLY {
		t.Errorf("read-locking owner's fd: access %#x, want O_RDONLY", acc)
	}
	if n := f.budget.Held(1000); n != 2 {
		t.Errorf("alice holds %d, want 2 (a handle, an owner fd)", n)
	}
	fds := openFds(t)

	// Another owner's read lock on part of the range: the write lock is
	// refused, and owner 1 still holds its read locks.
	if errno := f.SetLk(rootCtx, e.Ino, h2, 2, lockRange(unix.F_RDLCK, 50, 60), false, false); errno != 0 {
		t.Fatal(errno)
	}
	wantErrno(t, "write lock over another owner's read lock", f.SetLk(alice, e.Ino, h, 1, lockRange(unix.F_WRLCK, 0, 99), false, false), syscall.EAGAIN)
	for _, r := range [][2]int64{{0, 1}, {99, 1}, {200, 100}} {
		if err := hostLock(hfd, unix.F_WRLCK, r[0], r[1]); err == nil {
			t.Errorf("host write lock at %d+%d granted after a refused upgrade: owner 1's read lock went", r[0], r[1])
			hostLock(hfd, unix.F_UNLCK, r[0], r[1])
		}
	}
	f.SetLk(rootCtx, e.Ino, h2, 2, lockRange(unix.F_UNLCK, 50, 60), false, false)

	// Granted now, on a read-write fd; the other range is still read-locked.
	if errno := f.SetLk(alice, e.Ino, h, 1, lockRange(unix.F_WRLCK, 0, 99), false, false); errno != 0 {
		t.Fatalf("write lock by the read lock's owner: %v", errno)
	}
	if acc, _ := ownerAcc(t, f, h, 1); acc != unix.O_RDWR {
		t.Errorf("write-locking owner's fd: access %#x, want O_RDWR", acc)
	}
	wantErrno(t, "another owner's read lock over the write lock", f.SetLk(rootCtx, e.Ino, h2, 3, lockRange(unix.F_RDLCK, 10, 10), false, false), syscall.EAGAIN)
	if err := hostLock(hfd, unix.F_RDLCK, 10, 1); err == nil {
		t.Error("host read lock over the upgraded write lock granted")
	}
	if err := hostLock(hfd, unix.F_WRLCK, 250, 1); err == nil {
		t.Error("host write lock over the moved read lock granted")
	}
	if err := hostLock(hfd, unix.F_RDLCK, 250, 1); err != nil {
		t.Errorf("host read lock over the moved read lock: %v", err)
	}
	hostLock(hfd, unix.F_UNLCK, 250, 1)
	if n := f.budget.Held(1000); n != 2 {
		t.Errorf("after the upgrade alice holds %d, want 2", n)
	}
	if n := openFds(t); n != fds {
		t.Errorf("after the upgrade %d fds are open, want %d (the old fd closed)", n, fds)
	}
	f.SetLk(alice, e.Ino, h, 1, lockRange(unix.F_UNLCK, 0, 299), false, false)
	if _, ok := ownerAcc(t, f, h, 1); ok {
		t.Error("owner 1 keeps a lock fd after its last unlock")
	}
	if n := f.budget.Held(1000); n != 1 {
		t.Errorf("after the unlock alice holds %d, want 1", n)
	}

	// No window: a host process tries to write-lock the range all along;
	// it must never get it while owner 1 holds it (seq odd on both sides
	// of its try), and owner 1's upgrade must never be refused.
	var seq atomic.Uint64
	var violations atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			before := seq.Load()
			if hostLock(hfd, unix.F_WRLCK, 0, 100) == nil {
				if after := seq.Load(); before == after && before%2 == 1 {
					violations.Add(1)
				}
				hostLock(hfd, unix.F_UNLCK, 0, 100)
			}
		}
	}()
	const rounds = 300
	for i := 0; i < rounds; i++ {
		deadline := time.Now().Add(5 * time.Second)
		for {
			errno := f.SetLk(alice, e.Ino, h, 1, lockRange(unix.F_RDLCK, 0, 99), false, false)
			if errno == 0 {
				break
			}
			if errno != syscall.EAGAIN || time.Now().After(deadline) {
				t.Fatalf("round %d: read lock: %v", i, errno)
			}
			runtime.Gosched()
		}
		seq.Add(1) // odd: owner 1 holds [0, 99]
		if errno := f.SetLk(alice, e.Ino, h, 1, lockRange(unix.F_WRLCK, 0, 99), false, false); errno != 0 {
			t.Errorf("round %d: upgrade refused: %v (the range was unlocked for a moment)", i, errno)
		}
		seq.Add(1)
		f.SetLk(alice, e.Ino, h, 1, lockRange(unix.F_UNLCK, 0, 99), false, false)
	}
	close(stop)
	wg.Wait()
	if n := violations.Load(); n != 0 {
		t.Errorf("a host process got a write lock on the range %d times while owner 1 held it", n)
	}
	if n := f.budget.Held(1000); n != 1 {
		t.Errorf("after %d upgrades alice holds %d, want 1", rounds, n)
	}
}

// TestLockUpgradeWhileWaiting: an owner with a lock wait in progress on
// its read-only fd is refused an upgrade (ENOLCK) rather than have the
// wait granted on a fd it no longer uses; once the wait ends the upgrade
// works.
func TestLockUpgradeWhileWaiting(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	writeFile(t, join(dir, "f"), "", 0o644)
	e := lookup(t, f, fs.RootInode, "f")
	h := open(t, f, e.Ino, unix.O_RDWR)
	defer f.Release(rootCtx, e.Ino, h, 0)
	hfd := hostOpen(t, join(dir, "f"), unix.O_RDWR)
	if err := hostLock(hfd, unix.F_WRLCK, 100, 10); err != nil {
		t.Fatal(err)
	}
	if errno := f.SetLk(rootCtx, e.Ino, h, 1, lockRange(unix.F_RDLCK, 0, 9), false, false); errno != 0 {
		t.Fatal(errno)
	}
	res := make(chan fs.Errno, 1)
	go func() { res <- f.SetLk(&fs.Context{}, e.Ino, h, 1, lockRange(unix.F_RDLCK, 100, 109), true, false) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		hh, _ := f.getHandle(h)
		hh.in.lockMu.Lock()
		w := hh.in.lockOwners[1].waiting
		hh.in.lockMu.Unlock()
		f.putHandle(hh)
		if w == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the read lock never started waiting")
		}
		time.Sleep(time.Millisecond)
	}
	wantErrno(t, "upgrade while a wait is in progress", f.SetLk(rootCtx, e.Ino, h, 1, lockRange(unix.F_WRLCK, 0, 9), false, false), syscall.ENOLCK)
	if err := hostLock(hfd, unix.F_WRLCK, 0, 1); err == nil {
		t.Error("host write lock granted over the read lock after a refused upgrade")
	}
	hostLock(hfd, unix.F_UNLCK, 100, 10)
	select {
	case errno := <-res:
		if errno != 0 {
			t.Fatalf("waiting read lock: %v", errno)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the wait was not granted after the host unlocked")
	}
	if errno := f.SetLk(rootCtx, e.Ino, h, 1, lockRange(unix.F_WRLCK, 0, 9), false, false); errno != 0 {
		t.Fatalf("upgrade after the wait: %v", errno)
	}
	// The lock the wait got moved too.
	if err := hostLock(hfd, unix.F_WRLCK, 105, 1); err == nil {
		t.Error("host write lock granted over the waited-for read lock after the upgrade")
	}
	if err := hostLock(hfd, unix.F_RDLCK, 5, 1); err == nil {
		t.Error("host read lock granted over the write lock")
	}
}

// TestLockReadOnlyFile: a non-root caller that may only read a file
// (mode 0444) read-locks it through its read-only handle on a read-only
// lock fd; a write lock through that handle is EBADF, as fcntl(2) on a
// read-only fd, and opens nothing (before, the daemon opened the file
// read-write for it and granted it).
func TestLockReadOnlyFile(t *testing.T) {
	f, dir := newTestFS(t, Options{MaxOpenPerUid: 8})
	writeFile(t, join(dir, "ro"), "read only", 0o444)
	e := lookup(t, f, fs.RootInode, "ro")
	nobody := asUid(65534)
	h := openAs(t, f, nobody, e.Ino, unix.O_RDONLY)
	defer f.Release(nobody, e.Ino, h, 0)
	fds := openFds(t)
	wantErrno(t, "write lock through a read-only handle", f.SetLk(nobody, e.Ino, h, 1, lockRange(unix.F_WRLCK, 0, 9), false, false), syscall.EBADF)
	wantErrno(t, "waiting write lock through a read-only handle", f.SetLk(nobody, e.Ino, h, 1, lockRange(unix.F_WRLCK, 0, 9), true, false), syscall.EBADF)
	if n := openFds(t); n != fds {
		t.Errorf("refused write locks left %d fds open, %d before", n, fds)
	}
	if errno := f.SetLk(nobody, e.Ino, h, 1, lockRange(unix.F_RDLCK, 0, 9), false, false); errno != 0 {
		t.Fatalf("read lock on a read-only file: %v", errno)
	}
	if acc, ok := ownerAcc(t, f, h, 1); !ok || acc != unix.O_RDONLY {
		t.Errorf("lock fd: access %#x (held %v), want O_RDONLY", acc, ok)
	}
	if n := f.budget.Held(65534); n != 2 {
		t.Errorf("uid 65534 holds %d, want 2 (a handle, an owner fd)", n)
	}
	wantErrno(t, "write lock of the read lock's owner through a read-only handle", f.SetLk(nobody, e.Ino, h, 1, lockRange(unix.F_WRLCK, 0, 9), false, false), syscall.EBADF)
	var got fs.Lock
	if errno := f.GetLk(nobody, e.Ino, h, 2, lockRange(unix.F_WRLCK, 0, 0), &got); errno != 0 || got.Type != unix.F_RDLCK {
		t.Errorf("GetLk of another owner: %v, type %d; want F_RDLCK", errno, got.Type)
	}
	if errno := f.SetLk(nobody, e.Ino, h, 1, lockRange(unix.F_UNLCK, 0, 9), false, false); errno != 0 {
		t.Errorf("unlock: %v", errno)
	}
	if n := openFds(t); n != fds {
		t.Errorf("after the unlock %d fds are open, want %d", n, fds)
	}
}
