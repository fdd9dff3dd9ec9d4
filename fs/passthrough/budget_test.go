package passthrough

import (
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
)

func asUid(uid uint32) *fs.Context { return &fs.Context{Caller: fs.Caller{Uid: uid, Gid: uid}} }

// TestOpenBudget: a uid at its budget gets EMFILE for every kind of open
// and ENOLCK for a lock that needs a new owner fd; another uid and root
// still open; Release gives the budget back, and the counts empty.
func TestOpenBudget(t *testing.T) {
	const max = 3
	f, dir := newTestFS(t, Options{MaxOpenPerUid: max})
	if got := f.MaxOpenPerUid(); got != max {
		t.Fatalf("MaxOpenPerUid() = %d, want %d", got, max)
	}
	writeFile(t, join(dir, "f"), "x", 0o666)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	e := lookup(t, f, fs.RootInode, "f")
	base := openFds(t)
	alice, bob := asUid(1000), asUid(1001)

	var alices []fs.Handle
	var out fs.OpenOut
	for i := 0; i < max-1; i++ {
		if errno := f.Open(alice, e.Ino, unix.O_RDWR, 0, &out); errno != 0 {
			t.Fatalf("alice's open %d: %v", i, errno)
		}
		alices = append(alices, out.Handle)
	}
	if errno := f.OpenDir(alice, fs.RootInode, 0, &out); errno != 0 {
		t.Fatalf("alice's opendir: %v", errno)
	}
	aliceDir := out.Handle
	if n := f.budget.Held(1000); n != max {
		t.Fatalf("alice holds %d, want %d", n, max)
	}

	// Over budget: every open is refused, and nothing is left behind.
	fdsFull := openFds(t)
	wantErrno(t, "alice's open over budget", f.Open(alice, e.Ino, unix.O_RDONLY, 0, &out), syscall.EMFILE)
	wantErrno(t, "alice's opendir over budget", f.OpenDir(alice, fs.RootInode, 0, &out), syscall.EMFILE)
	var ce fs.Entry
	wantErrno(t, "alice's create over budget", f.Create(alice, fs.RootInode, []byte("new"), 0o644, unix.O_RDWR, &ce, &out), syscall.EMFILE)
	if _, err := os.Lstat(join(dir, "new")); !os.IsNotExist(err) {
		t.Errorf("a create refused over budget left %q behind: %v", "new", err)
	}
	wantErrno(t, "alice's tmpfile over budget", f.Tmpfile(alice, fs.RootInode, 0o600, unix.O_RDWR, &ce, &out), syscall.EMFILE)
	wantErrno(t, "alice's lock with a new owner over budget",
		f.SetLk(alice, e.Ino, alices[0], 7, lockRange(unix.F_WRLCK, 0, 9), false, false), syscall.ENOLCK)
	// flock locks the handle's own fd: no new fd, not refused.
	if errno := f.SetLk(alice, e.Ino, alices[0], 7, lockRange(unix.F_WRLCK, 0, 0), false, true); errno != 0 {
		t.Errorf("alice's flock at budget: %v", errno)
	}
	f.SetLk(alice, e.Ino, alices[0], 7, lockRange(unix.F_UNLCK, 0, 0), false, true)
	if n := openFds(t); n != fdsFull {
		t.Errorf("refused requests changed the open fds: %d, %d before", n, fdsFull)
	}
	if n := f.budget.Held(1000); n != max {
		t.Errorf("refused requests changed alice's count: %d, want %d", n, max)
	}

	// Another uid and root are not affected.
	var bobs []fs.Handle
	for i := 0; i < max; i++ {
		if errno := f.Open(bob, e.Ino, unix.O_RDONLY, 0, &out); errno != 0 {
			t.Fatalf("bob's open %d while alice is at her budget: %v", i, errno)
		}
		bobs = append(bobs, out.Handle)
	}
	var roots []fs.Handle
	for i := 0; i < 4*max; i++ {
		if errno := f.Open(rootCtx, e.Ino, unix.O_RDONLY, 0, &out); errno != 0 {
			t.Fatalf("root's open %d: %v", i, errno)
		}
		roots = append(roots, out.Handle)
	}
	if errno := f.OpenDir(rootCtx, fs.RootInode, 0, &out); errno != 0 {
		t.Fatalf("root's opendir: %v", errno)
	}
	roots = append(roots, out.Handle)
	if n := f.budget.Held(0); n != 0 {
		t.Errorf("root is counted: %d", n)
	}

	// Release gives back; a lock owner's fd counts until its last lock goes.
	f.Release(alice, e.Ino, alices[1], 0)
	alices = alices[:1]
	if n := f.budget.Held(1000); n != max-1 {
		t.Errorf("after a release alice holds %d, want %d", n, max-1)
	}
	if errno := f.SetLk(alice, e.Ino, alices[0], 7, lockRange(unix.F_WRLCK, 0, 9), false, false); errno != 0 {
		t.Fatalf("alice's lock after a release: %v", errno)
	}
	if n := f.budget.Held(1000); n != max {
		t.Errorf("with a lock owner alice holds %d, want %d", n, max)
	}
	wantErrno(t, "alice's open with the lock owner counted", f.Open(alice, e.Ino, unix.O_RDONLY, 0, &out), syscall.EMFILE)
	f.SetLk(alice, e.Ino, alices[0], 7, lockRange(unix.F_UNLCK, 0, 9), false, false)
	if errno := f.Open(alice, e.Ino, unix.O_RDONLY, 0, &out); errno != 0 {
		t.Fatalf("alice's open after her unlock: %v", errno)
	}
	alices = append(alices, out.Handle)
	// An owner fd dropped at RELEASE (not unlocked) is given back too.
	// The caller is counted, whoever's handle it locks through.
	wantErrno(t, "alice's lock through bob's handle at her budget",
		f.SetLk(alice, e.Ino, bobs[0], 8, lockRange(unix.F_RDLCK, 0, 9), false, false), syscall.ENOLCK)
	f.ReleaseDir(alice, fs.RootInode, aliceDir)
	if errno := f.SetLk(alice, e.Ino, bobs[0], 8, lockRange(unix.F_RDLCK, 0, 9), false, false); errno != 0 {
		t.Fatalf("alice's lock through bob's handle: %v", errno)
	}
	if n := f.budget.Held(1000); n != max {
		t.Errorf("alice holds %d, want %d", n, max)
	}

	// A handle still in use when released is given back by its last user.
	h := f.handles.get(alices[0])
	f.Release(alice, e.Ino, alices[0], 0)
	if n := f.budget.Held(1000); n != max {
		t.Errorf("a handle in use: alice holds %d after its release, want %d until it is done", n, max)
	}
	f.putHandle(h)
	if n := f.budget.Held(1000); n != max-1 {
		t.Errorf("a handle's last user done: alice holds %d, want %d", n, max-1)
	}

	for _, h := range alices[1:] {
		f.Release(alice, e.Ino, h, 0)
	}
	for _, h := range bobs {
		f.Release(bob, e.Ino, h, 0) // bobs[0] drops alice's owner 8
	}
	for _, h := range roots {
		f.Release(rootCtx, e.Ino, h, 0)
	}
	if n := f.budget.uids(); n != 0 {
		t.Errorf("everything released: %d uids still counted (alice %d, bob %d)", n, f.budget.Held(1000), f.budget.Held(1001))
	}
	if n := openFds(t); n != base {
		t.Errorf("everything released: %d fds open, %d before", n, base)
	}
}

// TestOpenBudgetLockWait: a waiting POSIX lock's dup of its owner's fd
// counts in its caller's budget while it waits (before, a user at its
// budget could add one fd per waiting lock): at the budget a wait is
// refused with ENOLCK, even for an owner that has its fd already, and
// an interrupted or granted wait gives its count back.
func TestOpenBudgetLockWait(t *testing.T) {
	const max = 3
	f, dir := newTestFS(t, Options{MaxOpenPerUid: max})
	writeFile(t, join(dir, "f"), "", 0o666)
	e := lookup(t, f, fs.RootInode, "f")
	base := openFds(t)
	rh := open(t, f, e.Ino, unix.O_RDWR)
	var out fs.OpenOut
	if errno := f.Open(asUid(1000), e.Ino, unix.O_RDWR, 0, &out); errno != 0 {
		t.Fatal(errno)
	}
	ah := out.Handle
	// Root holds [0, 9]; alice's owner 7 holds [100, 100]: 2 counted.
	if errno := f.SetLk(rootCtx, e.Ino, rh, 1, lockRange(unix.F_WRLCK, 0, 9), false, false); errno != 0 {
		t.Fatal(errno)
	}
	if errno := f.SetLk(asUid(1000), e.Ino, ah, 7, lockRange(unix.F_WRLCK, 100, 100), false, false); errno != 0 {
		t.Fatal(errno)
	}
	if n := f.budget.Held(1000); n != 2 {
		t.Fatalf("alice holds %d, want 2 (a handle, an owner fd)", n)
	}
	// wait starts a blocking lock of owner 7 on [at, at] and returns its
	// interrupt and result.
	wait := func(at uint64) (*fs.Interrupt, chan syscall.Errno) {
		intr := new(fs.Interrupt)
		ctx := asUid(1000)
		ctx.SetInterrupt(intr)
		res := make(chan syscall.Errno, 1)
		go func() { res <- f.SetLk(ctx, e.Ino, ah, 7, lockRange(unix.F_WRLCK, at, at), true, false) }()
		return intr, res
	}
	held := func(want int, why string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); f.budget.Held(1000) != want; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: alice holds %d, want %d", why, f.budget.Held(1000), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	intr, res := wait(0)
	held(max, "with a lock wait")
	select {
	case errno := <-res:
		t.Fatalf("the wait returned while root holds the lock: %v", errno)
	case <-time.After(100 * time.Millisecond):
	}
	// At the budget: an open, and another wait of the same owner (no new
	// owner fd, only the dup), are refused at once.
	wantErrno(t, "alice's open with a lock wait counted", f.Open(asUid(1000), e.Ino, unix.O_RDONLY, 0, &out), syscall.EMFILE)
	_, res2 := wait(1)
	select {
	case errno := <-res2:
		wantErrno(t, "alice's second lock wait at her budget", errno, syscall.ENOLCK)
	case <-time.After(5 * time.Second):
		t.Fatal("a lock wait over budget waits")
	}
	// Root is not counted: it waits whatever alice holds.
	rintr := new(fs.Interrupt)
	rctx := &fs.Context{}
	rctx.SetInterrupt(rintr)
	rres := make(chan syscall.Errno, 1)
	go func() { rres <- f.SetLk(rctx, e.Ino, rh, 2, lockRange(unix.F_WRLCK, 100, 100), true, false) }()
	// Interrupted: its count goes back.
	intr.Set()
	wantErrno(t, "alice's interrupted wait", <-res, syscall.EINTR)
	held(2, "after an interrupted wait")
	rintr.Set()
	wantErrno(t, "root's interrupted wait", <-rres, syscall.EINTR)
	// Granted: the count goes back too (the lock it got stays on the
	// owner's fd, already counted).
	_, res = wait(5)
	held(max, "with a lock wait")
	f.SetLk(rootCtx, e.Ino, rh, 1, lockRange(unix.F_UNLCK, 0, 9), false, false)
	select {
	case errno := <-res:
		if errno != 0 {
			t.Fatalf("alice's wait after root's unlock: %v", errno)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("alice's wait not granted after root's unlock")
	}
	held(2, "after a granted wait")
	f.Release(asUid(1000), e.Ino, ah, 0)
	f.Release(rootCtx, e.Ino, rh, 0)
	if n := f.budget.uids(); n != 0 {
		t.Errorf("everything released: %d uids still counted", n)
	}
	if n := openFds(t); n != base {
		t.Errorf("everything released: %d fds open, %d before", n, base)
	}
}

// TestOpenBudgetCreate: Create and Tmpfile count, and Release gives back.
func TestOpenBudgetCreate(t *testing.T) {
	f, dir := newTestFS(t, Options{MaxOpenPerUid: 1})
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	alice := asUid(1000)
	var ce fs.Entry
	var out fs.OpenOut
	if errno := f.Create(alice, fs.RootInode, []byte("a"), 0o644, unix.O_RDWR, &ce, &out); errno != 0 {
		t.Fatalf("create: %v", errno)
	}
	wantErrno(t, "second create", f.Create(alice, fs.RootInode, []byte("b"), 0o644, unix.O_RDWR, &ce, &out), syscall.EMFILE)
	f.Release(alice, ce.Ino, out.Handle, 0)
	if errno := f.Tmpfile(alice, fs.RootInode, 0o600, unix.O_RDWR, &ce, &out); errno != 0 && errno != syscall.EOPNOTSUPP {
		t.Fatalf("tmpfile: %v", errno)
	} else if errno == 0 {
		if n := f.budget.Held(1000); n != 1 {
			t.Errorf("tmpfile: alice holds %d, want 1", n)
		}
		f.Release(alice, ce.Ino, out.Handle, 0)
	}
	if n := f.budget.uids(); n != 0 {
		t.Errorf("%d uids still counted", n)
	}
}

// TestOpenBudgetOff: MaxOpenPerUid < 0 sets no limit; 0 sizes one.
func TestOpenBudgetOff(t *testing.T) {
	f, dir := newTestFS(t, Options{MaxOpenPerUid: -1})
	writeFile(t, join(dir, "f"), "", 0o644)
	e := lookup(t, f, fs.RootInode, "f")
	if n := f.MaxOpenPerUid(); n != 0 {
		t.Errorf("MaxOpenPerUid() = %d with -1, want 0 (none)", n)
	}
	var out fs.OpenOut
	for i := 0; i < 2*MinOpenPerUid; i++ {
		if errno := f.Open(asUid(1000), e.Ino, unix.O_RDONLY, 0, &out); errno != 0 {
			t.Fatalf("open %d without a limit: %v", i, errno)
		}
	}
	auto, _ := newTestFS(t, Options{})
	if n := auto.MaxOpenPerUid(); n < MinOpenPerUid {
		t.Errorf("automatic MaxOpenPerUid() = %d, want at least %d", n, MinOpenPerUid)
	}
	if _, err := New(dir, Options{MaxOpenPerUid: 5, OpenBudget: NewOpenBudget(5)}); err == nil {
		t.Errorf("New with both MaxOpenPerUid and OpenBudget: no error")
	}
}

// TestOpenBudgetShared: two FSes sharing one budget count together.
func TestOpenBudgetShared(t *testing.T) {
	b := NewOpenBudget(2)
	f1, d1 := newTestFS(t, Options{OpenBudget: b})
	f2, d2 := newTestFS(t, Options{OpenBudget: b})
	writeFile(t, join(d1, "f"), "", 0o644)
	writeFile(t, join(d2, "f"), "", 0o644)
	e1, e2 := lookup(t, f1, fs.RootInode, "f"), lookup(t, f2, fs.RootInode, "f")
	alice := asUid(1000)
	var o1, o2 fs.OpenOut
	if errno := f1.Open(alice, e1.Ino, unix.O_RDONLY, 0, &o1); errno != 0 {
		t.Fatal(errno)
	}
	if errno := f2.Open(alice, e2.Ino, unix.O_RDONLY, 0, &o2); errno != 0 {
		t.Fatal(errno)
	}
	var out fs.OpenOut
	wantErrno(t, "third open across two FSes", f1.Open(alice, e1.Ino, unix.O_RDONLY, 0, &out), syscall.EMFILE)
	f2.Release(alice, e2.Ino, o2.Handle, 0)
	if errno := f1.Open(alice, e1.Ino, unix.O_RDONLY, 0, &out); errno != 0 {
		t.Errorf("open after the other FS released: %v", errno)
	}
}

// TestOpenBudgetConcurrent: uids opening and releasing at once never get
// past the budget and end at zero, with no entry left.
func TestOpenBudgetConcurrent(t *testing.T) {
	const max = 8
	f, dir := newTestFS(t, Options{MaxOpenPerUid: max})
	writeFile(t, join(dir, "f"), "", 0o644)
	e := lookup(t, f, fs.RootInode, "f")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := asUid(uint32(1000 + g%3))
			var hs []fs.Handle
			for i := 0; i < 300; i++ {
				var out fs.OpenOut
				switch errno := f.Open(ctx, e.Ino, unix.O_RDONLY, 0, &out); errno {
				case 0:
					hs = append(hs, out.Handle)
				case syscall.EMFILE:
				default:
					t.Errorf("open: %v", errno)
					return
				}
				if n := f.budget.Held(ctx.Uid); n > max {
					t.Errorf("uid %d holds %d, over %d", ctx.Uid, n, max)
				}
				if len(hs) > 0 && i%3 == 0 {
					f.Release(ctx, e.Ino, hs[0], 0)
					hs = hs[1:]
				}
			}
			for _, h := range hs {
				f.Release(ctx, e.Ino, h, 0)
			}
		}()
	}
	wg.Wait()
	if n := f.budget.uids(); n != 0 {
		t.Errorf("%d uids still counted", n)
	}
}

// TestOpenBudgetAllocs: counting allocates nothing once a uid's shard has
// room.
func TestOpenBudgetAllocs(t *testing.T) {
	b := NewOpenBudget(4)
	b.take(1000)
	b.give(1000)
	if n := testing.AllocsPerRun(1000, func() {
		b.take(1000)
		b.take(1000)
		b.give(1000)
		b.give(1000)
	}); n != 0 {
		t.Errorf("take/give: %v allocs, want 0", n)
	}
	if b.uids() != 0 {
		t.Errorf("entries left: %d", b.uids())
	}
}

func TestAutoMaxOpenPerUid(t *testing.T) {
	for _, tc := range []struct {
		nofile         uint64
		cache, perOpen int
		want           int
	}{
		{20000, 5000, 3, 614},      // this machine's limit, the default fd cache
		{1048576, 8192, 3, 43338},  // a raised limit
		{1048576, 8192, 1, 130016}, // no passthrough, no handles
		{1024, 256, 3, 21},
		{512, 128, 3, MinOpenPerUid}, // below the floor
	} {
		if got := AutoMaxOpenPerUid(tc.nofile, tc.cache, tc.perOpen); got != tc.want {
			t.Errorf("AutoMaxOpenPerUid(%d, %d, %d) = %d, want %d", tc.nofile, tc.cache, tc.perOpen, got, tc.want)
		}
	}
	o := Options{FileHandles: FileHandlesPrefer, Passthrough: true}
	if n := FdsPerHandle(&o); n != 3 {
		t.Errorf("FdsPerHandle(prefer, passthrough) = %d, want 3", n)
	}
	if n := FdsPerHandle(&Options{}); n != 1 {
		t.Errorf("FdsPerHandle(never) = %d, want 1", n)
	}
}
