package passthrough

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// recNotifier records the notifications a Watcher sends.
type recNotifier struct {
	mu   sync.Mutex
	msgs []string
	ch   chan struct{}
}

func (r *recNotifier) add(s string) {
	r.mu.Lock()
	r.msgs = append(r.msgs, s)
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
}

func (r *recNotifier) NotifyInvalInode(ino uint64, off, length int64) error {
	r.add(fmt.Sprintf("inode %d off %d", ino, off))
	return nil
}

func (r *recNotifier) NotifyInvalEntry(parent uint64, name []byte, expireOnly bool) error {
	r.add(fmt.Sprintf("entry %d %s", parent, name))
	return nil
}

// waitFor waits up to 5 s for msg and returns what was recorded.
func (r *recNotifier) waitFor(t *testing.T, msg string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		r.mu.Lock()
		for _, m := range r.msgs {
			if m == msg {
				r.mu.Unlock()
				return
			}
		}
		got := append([]string(nil), r.msgs...)
		r.mu.Unlock()
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("no %q within 5 s; got %q", msg, got)
		}
	}
}

func (r *recNotifier) reset() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.msgs
	r.msgs = nil
	return m
}

// host runs a shell command as another process (the watcher skips this
// one's changes).
func host(t *testing.T, script string) {
	t.Helper()
	if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", script, err, out)
	}
}

func TestWatcher(t *testing.T) {
	testutil.RequireRoot(t)
	f, dir := newTestFS(t, Options{Cache: CacheAlways})
	w, err := NewWatcher(dir)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recNotifier{ch: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() { done <- w.Run(f, rec) }()
	defer func() {
		w.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	writeFile(t, join(dir, "a"), "one", 0o644)
	if err := os.Mkdir(join(dir, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	a := lookup(t, f, fs.RootInode, "a").Ino
	d := lookup(t, f, fs.RootInode, "d").Ino
	root := uint64(fs.RootInode)

	host(t, "echo two > "+join(dir, "a"))
	rec.waitFor(t, fmt.Sprintf("inode %d off 0", a))
	host(t, "chmod 600 "+join(dir, "a"))
	rec.waitFor(t, fmt.Sprintf("inode %d off -1", a))
	host(t, "touch "+join(dir, "d", "new"))
	rec.waitFor(t, fmt.Sprintf("entry %d new", d))
	host(t, "mv "+join(dir, "d", "new")+" "+join(dir, "moved"))
	rec.waitFor(t, fmt.Sprintf("entry %d new", d))
	rec.waitFor(t, fmt.Sprintf("entry %d moved", root))
	host(t, "rm "+join(dir, "moved"))
	rec.waitFor(t, fmt.Sprintf("entry %d moved", root))
	host(t, "chmod 700 "+join(dir, "d"))
	rec.waitFor(t, fmt.Sprintf("inode %d off -1", d))

	// A file the client never looked up: nothing but its directory's
	// entry.
	rec.reset()
	host(t, "echo x > "+join(dir, "other")+"; echo y >> "+join(dir, "other"))
	rec.waitFor(t, fmt.Sprintf("entry %d other", root))
	time.Sleep(100 * time.Millisecond)
	for _, m := range rec.reset() {
		if m != fmt.Sprintf("entry %d other", root) && m != fmt.Sprintf("inode %d off -1", root) {
			t.Errorf("unexpected notification %q for a change to a file the client does not know", m)
		}
	}

	// This process's own changes (the daemon's, on behalf of the client)
	// are skipped.
	own := w.Stats().Own
	writeFile(t, join(dir, "a"), "mine", 0o644)
	if err := os.Remove(join(dir, "d", "x")); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	os.WriteFile(join(dir, "d", "mine"), nil, 0o644)
	deadline := time.Now().Add(5 * time.Second)
	for w.Stats().Own == own && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if w.Stats().Own == own {
		t.Error("no event of this process's own changes was seen and skipped")
	}
	if got := rec.reset(); len(got) != 0 {
		t.Errorf("notifications for this process's own changes: %q", got)
	}
	// Every kind was sent above, and the kinds add up to the total.
	if st := w.Stats(); st.Entries == 0 || st.Data == 0 || st.Attrs == 0 || st.Entries+st.Data+st.Attrs != st.Notified {
		t.Errorf("stats %+v: want entries, data and attrs each > 0, summing to notified", st)
	}
}

func TestWatcherStopsOnGoneSession(t *testing.T) {
	testutil.RequireRoot(t)
	f, dir := newTestFS(t, Options{Cache: CacheAlways})
	w, err := NewWatcher(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	writeFile(t, join(dir, "a"), "one", 0o644)
	lookup(t, f, fs.RootInode, "a")
	done := make(chan error, 1)
	go func() { done <- w.Run(f, goneNotifier{}) }()
	host(t, "echo two > "+join(dir, "a"))
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Run returned nil after the session was gone, want ENODEV")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run still running 5 s after the session was gone")
	}
}

type goneNotifier struct{}

func (goneNotifier) NotifyInvalInode(uint64, int64, int64) error { return syscall.ENODEV }
func (goneNotifier) NotifyInvalEntry(uint64, []byte, bool) error { return syscall.ENODEV }

// TestNewWatcherUnprivileged creates a watcher on a thread whose
// effective uid is 65534 (so its effective capabilities are empty): the
// refusal must name CAP_SYS_ADMIN. The thread is never unlocked, so it
// dies with the goroutine and no other goroutine runs with its identity.
func TestNewWatcherUnprivileged(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// setresuid(2) on this thread only (Go's syscall.Setresuid would
		// change every thread).
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, ^uintptr(0), 65534, ^uintptr(0)); e != 0 {
			errc <- fmt.Errorf("setresuid: %v", e)
			return
		}
		w, err := NewWatcher(dir)
		if err == nil {
			w.Close()
			err = errors.New("NewWatcher succeeded with euid 65534")
		} else if !strings.Contains(err.Error(), "needs CAP_SYS_ADMIN") {
			err = fmt.Errorf("NewWatcher with euid 65534: %v, want an error naming CAP_SYS_ADMIN", err)
		} else {
			err = nil
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// FuzzWatchEvents: whatever a read of the fanotify fd holds, handle
// neither panics nor reads outside it.
func FuzzWatchEvents(f *testing.F) {
	ev := make([]byte, metaSize+infoHeaderSize+fidHeaderSize+fhHeaderSize+8+2)
	ev[4] = metadataVers
	ev[0] = byte(len(ev))
	ev[6] = metaSize
	ev[8] = byte(0x2) // FAN_MODIFY
	info := ev[metaSize:]
	info[0] = 2 // DFID_NAME
	info[2] = byte(len(info))
	info[infoHeaderSize+fidHeaderSize] = 8 // handle_bytes
	info[len(info)-2] = 'x'
	f.Add(ev)
	f.Add(ev[:metaSize])
	f.Add([]byte{})
	fsys, _ := newTestFS(f, Options{})
	w := &Watcher{mountFd: -1}
	w.setTargets([]WatchTarget{{fsys, nopNotifier{}}, {fsys, nopNotifier{}}})
	f.Fuzz(func(t *testing.T, b []byte) {
		w.handle(b)
	})
}

type nopNotifier struct{}

func (nopNotifier) NotifyInvalInode(uint64, int64, int64) error { return nil }
func (nopNotifier) NotifyInvalEntry(uint64, []byte, bool) error { return nil }

// TestWatcherNegativeCache: a handle that names no inode the client
// knows is opened once; asked again it is answered from the cache, until
// the client looks an inode up, when it is opened again and found.
func TestWatcherNegativeCache(t *testing.T) {
	testutil.RequireRoot(t)
	f, dir := newTestFS(t, Options{Cache: CacheAlways})
	w, err := NewWatcher(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	writeFile(t, join(dir, "u"), "0", 0o644)
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, join(dir, "u"), 0)
	if err != nil {
		t.Fatal(err)
	}
	id := fid{fsid: w.fsid, typ: h.Type(), handle: h.Bytes(), ok: true}
	// Two targets: the second exports a directory without u, so it never
	// knows it, and its table's growth must be seen as well.
	f2, dir2 := newTestFS(t, Options{Cache: CacheAlways})
	w.setTargets([]WatchTarget{{f, nopNotifier{}}, {f2, nopNotifier{}}})
	for i := range 3 {
		if w.inodesOf(id) {
			t.Fatalf("ask %d: u found before the client looked it up", i)
		}
	}
	if n := w.opens.Load(); n != 1 {
		t.Fatalf("handle opened %d times for three asks, want 1", n)
	}
	// An inode added to the other target's table makes the answer stale
	// too (the cache cannot tell which table u would be in).
	writeFile(t, join(dir2, "v"), "0", 0o644)
	lookup(t, f2, fs.RootInode, "v")
	if found := w.inodesOf(id); found || w.opens.Load() != 2 {
		t.Fatalf("after a lookup in the other target: found %v, %d opens; want false, 2", found, w.opens.Load())
	}
	u := lookup(t, f, fs.RootInode, "u").Ino
	ok := w.inodesOf(id)
	if !ok || w.ids[0] != u || w.ids[1] != 0 || w.opens.Load() != 3 {
		t.Fatalf("after the lookup: %v, ids %v, %d opens; want true, [%d 0], 3", ok, w.ids, w.opens.Load(), u)
	}
}

// TestWatcherTargets: one Watcher serves three FSs on one filesystem (a
// private tmpfs, so that no other process's events arrive): a and b side
// by side, and n nested in a. Each host change reaches the targets whose
// FS knows the inode, under that FS's IDs (both a and n for a file in n),
// and no other; a target whose session is gone stops receiving while the
// others go on; the events are read once, not once per target.
func TestWatcherTargets(t *testing.T) {
	testutil.RequireRoot(t)
	base := t.TempDir()
	if err := unix.Mount("tmpfs", base, "tmpfs", 0, "size=8m"); err != nil {
		t.Fatalf("mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(base, unix.MNT_DETACH) })
	a, b, n := join(base, "a"), join(base, "b"), join(base, "a", "n")
	for _, d := range []string{a, b, n} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, join(a, "f"), "0", 0o644)
	writeFile(t, join(b, "g"), "0", 0o644)
	writeFile(t, join(n, "h"), "0", 0o644)
	newFS := func(dir string) *FS {
		f, err := New(dir, Options{Cache: CacheAlways})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	fa, fb, fn := newFS(a), newFS(b), newFS(n)
	w, err := NewWatcher(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dir  string
		same bool
	}{{b, true}, {n, true}, {t.TempDir(), false}} {
		if got, err := w.SameFilesystem(c.dir); err != nil || got != c.same {
			t.Errorf("SameFilesystem(%s) = %v, %v; want %v", c.dir, got, err, c.same)
		}
	}
	f := lookup(t, fa, fs.RootInode, "f").Ino
	an := lookup(t, fa, fs.RootInode, "n").Ino
	ah := lookup(t, fa, an, "h").Ino
	g := lookup(t, fb, fs.RootInode, "g").Ino
	nh := lookup(t, fn, fs.RootInode, "h").Ino
	ra, rb, rn := &recNotifier{ch: make(chan struct{}, 1)}, &recNotifier{ch: make(chan struct{}, 1)}, &recNotifier{ch: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() {
		done <- w.RunTargets([]WatchTarget{{fa, ra}, {fb, goneNotifier{}}, {fb, rb}, {fn, rn}})
	}()
	defer func() {
		w.Close()
		if err := <-done; err != nil {
			t.Errorf("RunTargets: %v", err)
		}
	}()

	host(t, "echo 1 > "+join(a, "f"))
	ra.waitFor(t, fmt.Sprintf("inode %d off 0", f))
	// b's first target answers ENODEV: b's second still hears of g.
	host(t, "echo 1 > "+join(b, "g"))
	rb.waitFor(t, fmt.Sprintf("inode %d off 0", g))
	host(t, "chmod 600 "+join(b, "g"))
	rb.waitFor(t, fmt.Sprintf("inode %d off -1", g))
	host(t, "echo 1 > "+join(n, "h"))
	ra.waitFor(t, fmt.Sprintf("inode %d off 0", ah))
	rn.waitFor(t, fmt.Sprintf("inode %d off 0", nh))
	host(t, "touch "+join(n, "new"))
	ra.waitFor(t, fmt.Sprintf("entry %d new", an))
	rn.waitFor(t, fmt.Sprintf("entry %d new", fs.RootInode))
	time.Sleep(100 * time.Millisecond)

	// Nothing of another target's inodes. The IDs of the three tables
	// overlap, so a misrouted notification would look plausible: check
	// by what each recorder may have heard.
	want := map[*recNotifier][]string{
		ra: {fmt.Sprintf("inode %d off 0", f), fmt.Sprintf("inode %d off 0", ah), fmt.Sprintf("entry %d new", an)},
		rb: {fmt.Sprintf("inode %d off 0", g), fmt.Sprintf("inode %d off -1", g)},
		rn: {fmt.Sprintf("inode %d off 0", nh), fmt.Sprintf("entry %d new", fs.RootInode)},
	}
	for r, name := range map[*recNotifier]string{ra: "a", rb: "b", rn: "n"} {
		for _, m := range r.reset() {
			// A data change may come as two events (truncate, write), and
			// a create in n also changes n's attributes (a's inode an).
			if !slices.Contains(want[r], m) && !(r == ra && m == fmt.Sprintf("inode %d off -1", an)) &&
				!(r == rn && m == fmt.Sprintf("inode %d off -1", fs.RootInode)) {
				t.Errorf("target %s: unexpected notification %q (want only %q)", name, m, want[r])
			}
		}
	}
	// Each event was read once: every one of them is ours (a private
	// tmpfs), and each handle it names was opened at most once for the
	// four targets (at most two per event: a directory's and a file's).
	st := w.Stats()
	if st.Events == 0 || w.opens.Load() > 2*st.Events {
		t.Errorf("%d events read, %d handles opened: want at most two opens per event", st.Events, w.opens.Load())
	}
	t.Logf("stats %+v, %d handles opened", st, w.opens.Load())
}
