package passthrough

import (
	"fmt"
	"math"
	"reflect"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
)

func lockRange(typ uint32, start, end uint64) *fs.Lock {
	return &fs.Lock{Type: typ, Start: start, End: end}
}

// TestLockOwnerFdsBounded: GETLK never opens an owner fd, and an owner's
// fd is closed when its last lock goes, so distinct owners cannot pile up
// fds (issue 10: 5,000 GETLK with distinct owners left 5,000 fds open).
func TestLockOwnerFdsBounded(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	writeFile(t, join(dir, "f"), "", 0o644)
	e := lookup(t, f, fs.RootInode, "f")
	h := open(t, f, e.Ino, unix.O_RDWR)
	defer f.Release(rootCtx, e.Ino, h, 0)
	// A holder, so that GETLK has something to report.
	if errno := f.SetLk(rootCtx, e.Ino, h, 1, lockRange(unix.F_WRLCK, 0, 9), false, false); errno != 0 {
		t.Fatal(errno)
	}
	base := openFds(t)
	var out fs.Lock
	for owner := uint64(100); owner < 5100; owner++ {
		if errno := f.GetLk(rootCtx, e.Ino, h, owner, lockRange(unix.F_WRLCK, 0, 0), &out); errno != 0 || out.Type != unix.F_WRLCK {
			t.Fatalf("GetLk owner %d = %v %+v", owner, errno, out)
		}
	}
	if n := openFds(t); n > base+2 {
		t.Errorf("5000 GETLK with distinct owners: %d fds open, %d before", n, base)
	}
	for owner := uint64(100); owner < 5100; owner++ {
		if errno := f.SetLk(rootCtx, e.Ino, h, owner, lockRange(unix.F_RDLCK, 100, 200), false, false); errno != 0 {
			t.Fatalf("lock owner %d: %v", owner, errno)
		}
		// Split then release piecewise: the fd goes with the last piece.
		f.SetLk(rootCtx, e.Ino, h, owner, lockRange(unix.F_UNLCK, 150, 150), false, false)
		f.SetLk(rootCtx, e.Ino, h, owner, lockRange(unix.F_UNLCK, 100, 149), false, false)
		f.SetLk(rootCtx, e.Ino, h, owner, lockRange(unix.F_UNLCK, 151, 200), false, false)
	}
	if n := openFds(t); n > base+2 {
		t.Errorf("5000 owners locking and unlocking: %d fds open, %d before", n, base)
	}
	// A refused lock leaves no fd either.
	for owner := uint64(100); owner < 1100; owner++ {
		wantErrno(t, "conflicting lock", f.SetLk(rootCtx, e.Ino, h, owner, lockRange(unix.F_WRLCK, 5, 5), false, false), syscall.EAGAIN)
	}
	if n := openFds(t); n > base+2 {
		t.Errorf("1000 refused locks: %d fds open, %d before", n, base)
	}
	// A partial unlock keeps the lock (and its fd).
	f.SetLk(rootCtx, e.Ino, h, 2, lockRange(unix.F_WRLCK, 1000, 1999), false, false)
	f.SetLk(rootCtx, e.Ino, h, 2, lockRange(unix.F_UNLCK, 1000, 1499), false, false)
	wantErrno(t, "remaining half still locked", f.SetLk(rootCtx, e.Ino, h, 3, lockRange(unix.F_WRLCK, 1500, 1500), false, false), syscall.EAGAIN)
	if errno := f.SetLk(rootCtx, e.Ino, h, 3, lockRange(unix.F_WRLCK, 1400, 1400), false, false); errno != 0 {
		t.Errorf("unlocked half: %v", errno)
	}
}

// TestLockSpansBounded: one owner cannot make the daemon mirror an
// unbounded number of disjoint ranges; the lock past maxSpans is refused
// with ENOLCK and nothing else changes.
func TestLockSpansBounded(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	writeFile(t, join(dir, "f"), "", 0o644)
	e := lookup(t, f, fs.RootInode, "f")
	h := open(t, f, e.Ino, unix.O_RDWR)
	defer f.Release(rootCtx, e.Ino, h, 0)
	for i := uint64(0); i < maxSpans; i++ {
		if errno := f.SetLk(rootCtx, e.Ino, h, 1, lockRange(unix.F_WRLCK, 2*i, 2*i), false, false); errno != 0 {
			t.Fatalf("lock %d: %v", i, errno)
		}
	}
	wantErrno(t, "lock past the bound", f.SetLk(rootCtx, e.Ino, h, 1, lockRange(unix.F_WRLCK, 2*maxSpans, 2*maxSpans), false, false), syscall.ENOLCK)
	// Merging into an existing range needs no new one: allowed.
	if errno := f.SetLk(rootCtx, e.Ino, h, 1, lockRange(unix.F_WRLCK, 1, 1), false, false); errno != 0 {
		t.Errorf("merging lock: %v", errno)
	}
}

// TestBlockingLockInterrupt: a waiting lock is a real blocking
// F_OFD_SETLKW (or flock) that an interrupt ends at once with EINTR, and
// that is granted as soon as the holder unlocks.
func TestBlockingLockInterrupt(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	writeFile(t, join(dir, "f"), "", 0o644)
	e := lookup(t, f, fs.RootInode, "f")
	h1 := open(t, f, e.Ino, unix.O_RDWR)
	h2 := open(t, f, e.Ino, unix.O_RDWR)
	defer f.Release(rootCtx, e.Ino, h1, 0)
	defer f.Release(rootCtx, e.Ino, h2, 0)
	for _, flock := range []bool{false, true} {
		name := map[bool]string{false: "posix", true: "flock"}[flock]
		t.Run(name, func(t *testing.T) {
			if errno := f.SetLk(rootCtx, e.Ino, h1, 1, lockRange(unix.F_WRLCK, 0, math.MaxUint64), false, flock); errno != 0 {
				t.Fatal(errno)
			}
			base := openFds(t)
			const waiters = 20
			var intrs [waiters]fs.Interrupt
			res := make(chan syscall.Errno, waiters)
			for i := range waiters {
				go func() {
					ctx := &fs.Context{}
					ctx.SetInterrupt(&intrs[i])
					res <- f.SetLk(ctx, e.Ino, h2, uint64(10+i), lockRange(unix.F_WRLCK, 0, 0), true, flock)
				}()
			}
			time.Sleep(200 * time.Millisecond)
			select {
			case errno := <-res:
				t.Fatalf("a waiter returned while the lock is held: %v", errno)
			default:
			}
			// Interrupt all but one; they answer EINTR promptly.
			start := time.Now()
			for i := 1; i < waiters; i++ {
				intrs[i].Set()
			}
			for i := 1; i < waiters; i++ {
				select {
				case errno := <-res:
					if errno != syscall.EINTR {
						t.Errorf("interrupted waiter: %v, want EINTR", errno)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("interrupted waiters still blocked after 5 s")
				}
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("interrupting %d waiters took %v", waiters-1, d)
			}
			// The last one gets the lock when the holder unlocks.
			f.SetLk(rootCtx, e.Ino, h1, 1, lockRange(unix.F_UNLCK, 0, math.MaxUint64), false, flock)
			select {
			case errno := <-res:
				if errno != 0 {
					t.Errorf("granted waiter: %v", errno)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("waiter not granted after the unlock")
			}
			wantErrno(t, "the waiter holds it now", f.SetLk(rootCtx, e.Ino, h1, 1, lockRange(unix.F_WRLCK, 0, 0), false, flock), syscall.EAGAIN)
			f.SetLk(rootCtx, e.Ino, h2, 10, lockRange(unix.F_UNLCK, 0, math.MaxUint64), false, flock)
			if n := openFds(t); n > base+1 {
				t.Errorf("after the waits: %d fds, %d before", n, base)
			}
		})
	}
}

// TestBlockingLockInterruptRace interrupts waits at every moment around
// the call: none may stay blocked.
func TestBlockingLockInterruptRace(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	writeFile(t, join(dir, "f"), "", 0o644)
	e := lookup(t, f, fs.RootInode, "f")
	h1 := open(t, f, e.Ino, unix.O_RDWR)
	h2 := open(t, f, e.Ino, unix.O_RDWR)
	defer f.Release(rootCtx, e.Ino, h1, 0)
	defer f.Release(rootCtx, e.Ino, h2, 0)
	if errno := f.SetLk(rootCtx, e.Ino, h1, 1, lockRange(unix.F_WRLCK, 0, 0), false, false); errno != 0 {
		t.Fatal(errno)
	}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var in fs.Interrupt
			ctx := &fs.Context{}
			ctx.SetInterrupt(&in)
			go func() {
				time.Sleep(time.Duration(i%20) * 50 * time.Microsecond)
				in.Set()
			}()
			if errno := f.SetLk(ctx, e.Ino, h2, uint64(100+i), lockRange(unix.F_WRLCK, 0, 0), true, false); errno != syscall.EINTR {
				t.Errorf("waiter %d: %v, want EINTR", i, errno)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("interrupted waiters still blocked after 20 s")
	}
}

func TestSpans(t *testing.T) {
	const eof = math.MaxInt64
	tests := []struct {
		name string
		in   []span
		add  bool
		a    span
		want []span
	}{
		{"add to empty", nil, true, span{5, 9}, []span{{5, 9}}},
		{"add disjoint before", []span{{10, 20}}, true, span{0, 5}, []span{{0, 5}, {10, 20}}},
		{"add adjacent merges", []span{{10, 20}}, true, span{21, 30}, []span{{10, 30}}},
		{"add bridging", []span{{0, 5}, {10, 20}}, true, span{6, 9}, []span{{0, 20}}},
		{"add to eof", []span{{0, 5}, {10, 20}}, true, span{3, eof}, []span{{0, eof}}},
		{"add after eof range", []span{{10, eof}}, true, span{0, 3}, []span{{0, 3}, {10, eof}}},
		{"sub middle splits", []span{{0, 20}}, false, span{5, 9}, []span{{0, 4}, {10, 20}}},
		{"sub all", []span{{0, 5}, {10, 20}}, false, span{0, eof}, []span{}},
		{"sub head", []span{{0, eof}}, false, span{0, 99}, []span{{100, eof}}},
		{"sub nothing", []span{{0, 5}}, false, span{6, 9}, []span{{0, 5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []span
			if tt.add {
				got = addSpan(tt.in, tt.a)
			} else {
				got = subSpan(tt.in, tt.a)
			}
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestOpenDirHoldsNoBuffer: an open directory handle holds its fd but no
// getdents buffer between READDIR calls, even one that stopped mid-buffer
// (a 9P client may keep tens of thousands of directory fids open).
func TestOpenDirHoldsNoBuffer(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	for i := range 200 {
		writeFile(t, join(dir, fmt.Sprintf("entry-%03d", i)), "", 0o644)
	}
	const n = 2000
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapInuse
	hs := make([]fs.Handle, n)
	for i := range hs {
		hs[i] = openDir(t, f, fs.RootInode)
		s := &dirSink{max: 3} // stops with most of a buffer unread
		if e := f.ReadDir(rootCtx, fs.RootInode, hs[i], 0, s); e != 0 || len(s.ents) != 3 {
			t.Fatalf("ReadDir: %v, %d entries", e, len(s.ents))
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	grow := int64(ms.HeapInuse) - int64(before)
	t.Logf("%d open directories, each read partly: heap in use grew %d KiB (%d B each)", n, grow>>10, grow/n)
	if grow > n*dirBufSize/4 {
		t.Errorf("%d open directories grew the heap by %d bytes: buffers are kept between calls", n, grow)
	}
	// The unread rest is still there, in order.
	all := readAll(t, f, hs[0], 0, 7, false)
	if len(all) != 202 {
		t.Errorf("re-read: %d entries, want 202", len(all))
	}
	for _, h := range hs {
		f.ReleaseDir(rootCtx, fs.RootInode, h)
	}
}
