package vfs

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/fs"
)

// fake is a backend with a root (1) holding file "f" (2) and directory
// "d" (3); with big set, "f" is inode 1<<41. It records forgets and
// Destroy, and Read blocks while block is non-nil.
type fake struct {
	fs.Base
	big       bool
	forgets   atomic.Int64
	destroyed atomic.Int32
	closed    atomic.Int32
	inits     atomic.Int32
	block     chan struct{}
	entered   chan struct{}
	dirEnt    fs.Entry // ReadDir's scratch (tests call it from one goroutine)
}

var nameF = []byte("f")

func (f *fake) fIno() fs.Inode {
	if f.big {
		return 1 << 41
	}
	return 2
}

func (f *fake) Init(*fs.Context, *fs.InitInfo) fs.Errno { f.inits.Add(1); return 0 }
func (f *fake) Destroy()                                { f.destroyed.Add(1) }
func (f *fake) Close() error                            { f.closed.Add(1); return nil }
func (f *fake) Forget(ino fs.Inode, n uint64)           { f.forgets.Add(int64(n)) }

func (f *fake) Lookup(_ *fs.Context, parent fs.Inode, name []byte, out *fs.Entry) fs.Errno {
	switch {
	case parent == 1 && string(name) == "f":
		out.Ino, out.Attr = f.fIno(), fs.Attr{Ino: 20, Mode: syscall.S_IFREG | 0o644, Nlink: 1, Size: 5}
	case parent == 1 && string(name) == "d":
		out.Ino, out.Attr = 3, fs.Attr{Ino: 30, Mode: syscall.S_IFDIR | 0o755, Nlink: 2}
	default:
		return syscall.ENOENT
	}
	return 0
}

func (f *fake) GetAttr(_ *fs.Context, ino fs.Inode, _ fs.Handle, _ bool, out *fs.AttrOut) fs.Errno {
	switch ino {
	case 1:
		out.Attr = fs.Attr{Ino: 10, Mode: syscall.S_IFDIR | 0o755, Nlink: 3}
	case f.fIno():
		out.Attr = fs.Attr{Ino: 20, Mode: syscall.S_IFREG | 0o644, Nlink: 1, Size: 5}
	case 3:
		out.Attr = fs.Attr{Ino: 30, Mode: syscall.S_IFDIR | 0o755, Nlink: 2}
	default:
		return syscall.ESTALE
	}
	return 0
}

func (f *fake) Open(*fs.Context, fs.Inode, uint32, uint32, *fs.OpenOut) fs.Errno { return 0 }

func (f *fake) Read(_ *fs.Context, ino fs.Inode, _ fs.Handle, off int64, _ uint32, dst fs.Sink) fs.Errno {
	if f.block != nil {
		f.entered <- struct{}{}
		<-f.block
	}
	dst.Append(hello[min(off, 5):])
	return 0
}

func (f *fake) ReadDir(_ *fs.Context, ino fs.Inode, _ fs.Handle, off uint64, dst fs.DirSink) fs.Errno {
	if off > 0 {
		return 0
	}
	e := &f.dirEnt
	*e = fs.Entry{}
	if dst.Plus() {
		e.Ino, e.Attr = f.fIno(), fs.Attr{Ino: 20, Mode: syscall.S_IFREG | 0o644}
	}
	dst.Add(fs.DirEntry{Ino: 20, Off: 1, Type: syscall.DT_REG, Name: nameF}, e)
	return 0
}

var hello = []byte("hello")

// sink is an fs.Sink over a buffer.
type sink struct{ b []byte }

func (s *sink) Cap() int                                 { return cap(s.b) - len(s.b) }
func (s *sink) Len() int                                 { return len(s.b) }
func (s *sink) Append(p []byte) int                      { n := min(len(p), s.Cap()); s.b = append(s.b, p[:n]...); return n }
func (s *sink) ReadFrom(int, int64, int) (int, fs.Errno) { return 0, syscall.EINVAL }

// dirs collects directory entries, at most max of them.
type dirs struct {
	plus  bool
	max   int
	names []string
	ents  []fs.DirEntry
	plusE []fs.Entry
}

func (d *dirs) Plus() bool { return d.plus }
func (d *dirs) Add(e fs.DirEntry, p *fs.Entry) bool {
	if d.max > 0 && len(d.names) == d.max {
		return false
	}
	d.names = append(d.names, string(e.Name))
	e.Name = nil
	d.ents = append(d.ents, e)
	var pe fs.Entry
	if p != nil {
		pe = *p
	}
	d.plusE = append(d.plusE, pe)
	return true
}

// countDirs is a DirSink that keeps only a count and the last plus ID.
type countDirs struct {
	plus bool
	n    int
	last fs.Inode
}

func (d *countDirs) Plus() bool { return d.plus }
func (d *countDirs) Add(e fs.DirEntry, p *fs.Entry) bool {
	d.n++
	if p != nil {
		d.last = p.Ino
	}
	return true
}

func lookup(t *testing.T, v *VFS, parent fs.Inode, name string) fs.Entry {
	t.Helper()
	var out fs.Entry
	if e := v.Lookup(&fs.Context{}, parent, []byte(name), &out); e != 0 {
		t.Fatalf("lookup %d/%s: %v", parent, name, e)
	}
	return out
}

func TestCheckName(t *testing.T) {
	for _, n := range []string{"", ".", "..", "a/b", "/", "a\x00", string(make([]byte, 256))} {
		if err := CheckName(n); !errors.Is(err, ErrBadName) {
			t.Errorf("CheckName(%q) = %v, want ErrBadName", n, err)
		}
	}
	for _, n := range []string{"a", "...", "share-1", ".hidden", string(make([]byte, 255))[:0] + "x"} {
		if err := CheckName(n); err != nil {
			t.Errorf("CheckName(%q) = %v", n, err)
		}
	}
	v := New(Options{})
	if err := v.Mount("..", &fake{}); !errors.Is(err, ErrBadName) {
		t.Errorf("Mount(..) = %v", err)
	}
	if err := v.Mount("a", &fake{}); err != nil {
		t.Fatal(err)
	}
	if err := v.Mount("a", &fake{}); !errors.Is(err, ErrExist) {
		t.Errorf("second Mount(a) = %v, want ErrExist", err)
	}
	if err := v.Unmount(context.Background(), "b"); !errors.Is(err, ErrNotMounted) {
		t.Errorf("Unmount(b) = %v, want ErrNotMounted", err)
	}
}

// TestRouting looks up the same backend IDs through two shares: the
// client IDs and st_ino differ, and each reaches its own backend.
func TestRouting(t *testing.T) {
	v := New(Options{})
	a, b := &fake{}, &fake{}
	if err := v.Mount("a", a); err != nil {
		t.Fatal(err)
	}
	if err := v.Mount("b", b); err != nil {
		t.Fatal(err)
	}
	ctx := &fs.Context{}
	if e := v.Init(ctx, &fs.InitInfo{}); e != 0 || a.inits.Load() != 1 || b.inits.Load() != 1 {
		t.Fatalf("Init: %v, inits %d %d", e, a.inits.Load(), b.inits.Load())
	}
	ra, rb := lookup(t, v, fs.RootInode, "a"), lookup(t, v, fs.RootInode, "b")
	if ra.Ino == rb.Ino || ra.Attr.Ino == rb.Attr.Ino || ra.Attr.Mode != syscall.S_IFDIR|0o755 {
		t.Fatalf("roots: %+v %+v", ra, rb)
	}
	fa, fb := lookup(t, v, ra.Ino, "f"), lookup(t, v, rb.Ino, "f")
	if fa.Ino == fb.Ino || fa.Attr.Ino == fb.Attr.Ino || fa.Attr.Ino&stInoMask != 20 {
		t.Fatalf("files: ino %#x %#x st_ino %#x %#x", fa.Ino, fb.Ino, fa.Attr.Ino, fb.Attr.Ino)
	}
	var ao fs.AttrOut
	if e := v.GetAttr(ctx, fa.Ino, 0, false, &ao); e != 0 || ao.Attr.Ino != fa.Attr.Ino || ao.Attr.Size != 5 {
		t.Fatalf("getattr: %v %+v", e, ao.Attr)
	}
	s := &sink{b: make([]byte, 0, 16)}
	if e := v.Read(ctx, fa.Ino, 0, 1, 16, s); e != 0 || string(s.b) != "ello" {
		t.Fatalf("read: %v %q", e, s.b)
	}
	// ".." of a share's root and of the pseudo root is the pseudo root.
	if up := lookup(t, v, ra.Ino, ".."); up.Ino != fs.RootInode {
		t.Errorf("a/.. = %#x, want the root", up.Ino)
	}
	if up := lookup(t, v, fs.RootInode, ".."); up.Ino != fs.RootInode {
		t.Errorf("/.. = %#x", up.Ino)
	}
	var out fs.Entry
	if e := v.Lookup(ctx, fs.RootInode, []byte("c"), &out); e != syscall.ENOENT {
		t.Errorf("lookup c: %v, want ENOENT", e)
	}
	// Between shares: EXDEV; into the pseudo root: EPERM.
	da := lookup(t, v, ra.Ino, "d")
	if e := v.Rename(ctx, ra.Ino, []byte("f"), rb.Ino, []byte("g"), 0); e != syscall.EXDEV {
		t.Errorf("rename a→b: %v, want EXDEV", e)
	}
	if e := v.Link(ctx, fa.Ino, rb.Ino, []byte("g"), &out); e != syscall.EXDEV {
		t.Errorf("link a→b: %v, want EXDEV", e)
	}
	if _, e := v.CopyFileRange(ctx, fa.Ino, 0, 0, fb.Ino, 0, 0, 1, 0); e != syscall.EXDEV {
		t.Errorf("copy_file_range a→b: %v, want EXDEV", e)
	}
	if e := v.Rename(ctx, ra.Ino, []byte("f"), fs.RootInode, []byte("g"), 0); e != syscall.EPERM {
		t.Errorf("rename a→/: %v, want EPERM", e)
	}
	if e := v.Mkdir(ctx, fs.RootInode, []byte("x"), 0o755, &out); e != syscall.EPERM {
		t.Errorf("mkdir /x: %v, want EPERM", e)
	}
	if e := v.Rmdir(ctx, fs.RootInode, []byte("a")); e != syscall.EPERM {
		t.Errorf("rmdir /a: %v, want EPERM", e)
	}
	// Within a share the backend answers (fake: ENOSYS → EOPNOTSUPP).
	if e := v.Rename(ctx, ra.Ino, []byte("f"), da.Ino, []byte("g"), 0); e != syscall.EOPNOTSUPP {
		t.Errorf("rename within a: %v, want the backend's ENOSYS as EOPNOTSUPP", e)
	}
	// ENOSYS never reaches the client.
	if _, e := v.GetXattr(ctx, fa.Ino, []byte("user.x"), nil); e != syscall.EOPNOTSUPP {
		t.Errorf("getxattr: %v, want EOPNOTSUPP", e)
	}
	if e := v.Flush(ctx, fa.Ino, 0, 0); e != 0 {
		t.Errorf("flush: %v, want 0", e)
	}
	if e := v.SetLk(ctx, fa.Ino, 0, 0, &fs.Lock{}, false, false); e != syscall.ENOLCK {
		t.Errorf("setlk: %v, want ENOLCK", e)
	}
	if e := v.Rename(ctx, ra.Ino, []byte("f"), da.Ino, []byte("g"), 1); e != syscall.EINVAL {
		t.Errorf("rename2: %v, want EINVAL", e)
	}
	var sx fs.StatxOut
	if e := v.Statx(ctx, fa.Ino, 0, false, 0, 0x7ff, &sx); e != 0 || sx.Statx.Ino != fa.Attr.Ino || sx.Statx.Size != 5 {
		t.Errorf("statx from getattr: %v %+v", e, sx.Statx)
	}
	// A backend without LSEEK: SEEK_DATA and SEEK_HOLE answered as the
	// kernel's generic llseek would after remembering ENOSYS (f has 5
	// bytes).
	for _, c := range []struct {
		off    int64
		whence uint32
		want   int64
		err    fs.Errno
	}{{0, 3, 0, 0}, {4, 3, 4, 0}, {5, 3, 0, syscall.ENXIO}, {0, 4, 5, 0}, {3, 4, 5, 0}, {5, 4, 0, syscall.ENXIO}, {-1, 3, 0, syscall.ENXIO}} {
		if n, e := v.Lseek(ctx, fa.Ino, 0, c.off, c.whence); n != c.want || e != c.err {
			t.Errorf("lseek(%d, whence %d): %d %v, want %d %v", c.off, c.whence, n, e, c.want, c.err)
		}
	}
	// A forged ID: slot 0, generation 0, a slot never used.
	for _, ino := range []fs.Inode{2, fs.Inode(1<<slotShift | 2), fs.Inode(9<<slotShift | 1<<genShift | 2), ra.Ino &^ MaxBackendIno} {
		if e := v.GetAttr(ctx, ino, 0, false, &ao); e != syscall.ESTALE {
			t.Errorf("getattr %#x: %v, want ESTALE", ino, e)
		}
	}
}

// TestStale unmounts a share and mounts another in its slot: the old IDs
// answer ESTALE, their FORGETs are dropped, the backend is destroyed and
// closed once.
func TestStale(t *testing.T) {
	v := New(Options{})
	a, b, c := &fake{}, &fake{}, &fake{}
	v.Mount("a", a)
	v.Mount("b", b)
	ctx := &fs.Context{}
	v.Init(ctx, &fs.InitInfo{})
	rb := lookup(t, v, fs.RootInode, "b")
	fb := lookup(t, v, rb.Ino, "f")
	if got := v.Shares(); len(got) != 2 || got[1].Name != "b" || got[1].Lookups != 2 {
		t.Fatalf("shares: %+v", got)
	}
	if err := v.Unmount(context.Background(), "b"); err != nil {
		t.Fatal(err)
	}
	if b.destroyed.Load() != 1 || b.closed.Load() != 1 {
		t.Errorf("b destroyed %d closed %d times, want 1", b.destroyed.Load(), b.closed.Load())
	}
	var ao fs.AttrOut
	if e := v.GetAttr(ctx, fb.Ino, 0, false, &ao); e != syscall.ESTALE {
		t.Errorf("getattr of an unmounted share's file: %v, want ESTALE", e)
	}
	var out fs.Entry
	if e := v.Lookup(ctx, fs.RootInode, []byte("b"), &out); e != syscall.ENOENT {
		t.Errorf("lookup b after unmount: %v", e)
	}
	v.Forget(fb.Ino, 1)
	if b.forgets.Load() != 0 {
		t.Errorf("a forget of a gone share reached its backend")
	}
	// Force the freed slot, as if the others were taken.
	oldSlot, _, _ := split(fb.Ino)
	v.mu.Lock()
	v.next = int(oldSlot)
	v.mu.Unlock()
	if err := v.Mount("c", c); err != nil {
		t.Fatal(err)
	}
	if c.inits.Load() != 1 {
		t.Errorf("a share mounted after Init was not started")
	}
	fc := lookup(t, v, lookup(t, v, fs.RootInode, "c").Ino, "f")
	if s, _, _ := split(fc.Ino); s != oldSlot || fc.Ino == fb.Ino {
		t.Fatalf("c took slot %d id %#x; b had slot %d id %#x", s, fc.Ino, oldSlot, fb.Ino)
	}
	if e := v.GetAttr(ctx, fb.Ino, 0, false, &ao); e != syscall.ESTALE {
		t.Errorf("old id in a reused slot: %v, want ESTALE", e)
	}
	if e := v.GetAttr(ctx, fc.Ino, 0, false, &ao); e != 0 {
		t.Errorf("new id: %v", e)
	}
	v.Forget(fc.Ino, 1)
	if c.forgets.Load() != 1 || v.Shares()[1].Lookups != 1 {
		t.Errorf("forget: backend saw %d, shares %+v", c.forgets.Load(), v.Shares())
	}
	// A client that goes away (DESTROY) holds nothing; the next INIT
	// starts every share again.
	v.Destroy()
	if a.destroyed.Load() != 1 || c.destroyed.Load() != 1 || v.Shares()[1].Lookups != 0 {
		t.Errorf("Destroy: a %d c %d destroyed, shares %+v", a.destroyed.Load(), c.destroyed.Load(), v.Shares())
	}
	v.Init(ctx, &fs.InitInfo{})
	if a.inits.Load() != 2 || c.inits.Load() != 2 {
		t.Errorf("Init after Destroy: a %d c %d inits, want 2", a.inits.Load(), c.inits.Load())
	}
}

// TestUnmountWaits unmounts a share while a request is inside its
// backend: Unmount returns only after it, new requests get ESTALE
// meanwhile, and a context that ends first makes Unmount return early
// with the backend destroyed later.
func TestUnmountWaits(t *testing.T) {
	for _, early := range []bool{false, true} {
		v := New(Options{})
		b := &fake{block: make(chan struct{}), entered: make(chan struct{})}
		v.Mount("b", b)
		ctx := &fs.Context{}
		v.Init(ctx, &fs.InitInfo{})
		fb := lookup(t, v, lookup(t, v, fs.RootInode, "b").Ino, "f")
		readDone := make(chan fs.Errno)
		go func() {
			readDone <- v.Read(&fs.Context{}, fb.Ino, 0, 0, 16, &sink{b: make([]byte, 0, 16)})
		}()
		<-b.entered
		uctx, cancel := context.WithCancel(context.Background())
		unmounted := make(chan error)
		go func() { unmounted <- v.Unmount(uctx, "b") }()
		time.Sleep(20 * time.Millisecond)
		select {
		case err := <-unmounted:
			t.Fatalf("Unmount returned %v while a request was inside the backend", err)
		default:
		}
		var ao fs.AttrOut
		if e := v.GetAttr(ctx, fb.Ino, 0, false, &ao); e != syscall.ESTALE {
			t.Errorf("getattr while unmounting: %v, want ESTALE", e)
		}
		if b.destroyed.Load() != 0 {
			t.Fatal("backend destroyed under a request")
		}
		if early {
			cancel()
			if err := <-unmounted; !errors.Is(err, context.Canceled) {
				t.Errorf("Unmount with a cancelled context: %v", err)
			}
		}
		close(b.block)
		if e := <-readDone; e != 0 {
			t.Errorf("the read in flight: %v", e)
		}
		if !early {
			if err := <-unmounted; err != nil {
				t.Errorf("Unmount: %v", err)
			}
		}
		for deadline := time.Now().Add(5 * time.Second); b.closed.Load() == 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		if b.destroyed.Load() != 1 || b.closed.Load() != 1 {
			t.Errorf("early=%v: destroyed %d closed %d, want 1 1", early, b.destroyed.Load(), b.closed.Load())
		}
		cancel()
	}
}

// TestRootReadDir lists the pseudo root in pieces, with and without
// attributes, and counts READDIRPLUS lookups.
func TestRootReadDir(t *testing.T) {
	v := New(Options{})
	for _, n := range []string{"a", "b", "c"} {
		v.Mount(n, &fake{})
	}
	ctx := &fs.Context{}
	v.Init(ctx, &fs.InitInfo{})
	v.Unmount(context.Background(), "b")
	var all []string
	var off uint64
	for {
		d := &dirs{max: 2}
		if e := v.ReadDir(ctx, fs.RootInode, 0, off, d); e != 0 {
			t.Fatal(e)
		}
		if len(d.names) == 0 {
			break
		}
		all = append(all, d.names...)
		off = d.ents[len(d.ents)-1].Off
	}
	if want := []string{".", "..", "a", "c"}; len(all) != len(want) || all[2] != "a" || all[3] != "c" {
		t.Fatalf("root listing %q, want %q", all, want)
	}
	d := &dirs{plus: true}
	v.ReadDir(ctx, fs.RootInode, 0, 0, d)
	ra := lookup(t, v, fs.RootInode, "a")
	if d.plusE[2].Ino != ra.Ino || d.ents[2].Ino != ra.Attr.Ino || d.plusE[2].Attr.Mode != syscall.S_IFDIR|0o755 {
		t.Errorf("plus entry for a: %+v %+v; lookup gives %+v", d.ents[2], d.plusE[2], ra)
	}
	if s := v.Shares(); s[0].Lookups != 2 {
		t.Errorf("a's lookups after READDIRPLUS + LOOKUP: %d, want 2", s[0].Lookups)
	}
	// Inside a share: IDs translated and counted.
	d = &dirs{plus: true}
	if e := v.ReadDir(ctx, ra.Ino, 0, 0, d); e != 0 {
		t.Fatal(e)
	}
	fa := lookup(t, v, ra.Ino, "f")
	if d.plusE[0].Ino != fa.Ino || d.ents[0].Ino != fa.Attr.Ino {
		t.Errorf("share readdirplus: %+v %+v; lookup %#x %#x", d.ents[0], d.plusE[0], fa.Ino, fa.Attr.Ino)
	}
	if s := v.Shares(); s[0].Lookups != 4 {
		t.Errorf("a's lookups: %d, want 4", s[0].Lookups)
	}
}

// TestBigBackendIno: an ID that does not fit is refused and given back.
func TestBigBackendIno(t *testing.T) {
	v := New(Options{})
	a := &fake{big: true}
	v.Mount("a", a)
	ctx := &fs.Context{}
	ra := lookup(t, v, fs.RootInode, "a")
	var out fs.Entry
	if e := v.Lookup(ctx, ra.Ino, []byte("f"), &out); e != syscall.EOVERFLOW || out.Ino != 0 {
		t.Errorf("lookup of a 2^41 ID: %v %#x, want EOVERFLOW", e, out.Ino)
	}
	d := &dirs{plus: true}
	v.ReadDir(ctx, ra.Ino, 0, 0, d)
	if len(d.names) != 1 || d.plusE[0].Ino != 0 {
		t.Errorf("readdirplus of a 2^41 ID: %+v", d.plusE)
	}
	if a.forgets.Load() != 2 {
		t.Errorf("backend got %d forgets back, want 2", a.forgets.Load())
	}
}

// TestMountUnmountWhileServing mounts and unmounts one share in a loop
// while readers loop over another: no reader sees an error (run with
// -race: the slot's publication is what is tested).
func TestMountUnmountWhileServing(t *testing.T) {
	v := New(Options{})
	v.Mount("a", &fake{})
	ctx := &fs.Context{}
	v.Init(ctx, &fs.InitInfo{})
	fa := lookup(t, v, lookup(t, v, fs.RootInode, "a").Ino, "f")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &fs.Context{}
			s := &sink{b: make([]byte, 0, 16)}
			for {
				select {
				case <-stop:
					return
				default:
				}
				var out fs.Entry
				if e := v.Lookup(c, fs.RootInode, []byte("a"), &out); e != 0 || out.Ino&^MaxBackendIno != fa.Ino&^MaxBackendIno {
					t.Errorf("lookup a: %v", e)
					return
				}
				s.b = s.b[:0]
				if e := v.Read(c, fa.Ino, 0, 0, 16, s); e != 0 || string(s.b) != "hello" {
					t.Errorf("read a: %v %q", e, s.b)
					return
				}
				// A lookup in b may race its unmount: ENOENT or ESTALE only.
				if e := v.Lookup(c, fs.RootInode, []byte("b"), &out); e == 0 {
					var f fs.Entry
					if e := v.Lookup(c, out.Ino, []byte("f"), &f); e != 0 && e != syscall.ESTALE {
						t.Errorf("lookup b/f: %v", e)
					}
				} else if e != syscall.ENOENT {
					t.Errorf("lookup b: %v", e)
				}
				reads.Add(1)
				runtime.Gosched() // GOMAXPROCS=1: let Unmount's goroutine run
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; i < 200 || reads.Load() < 200 && time.Now().Before(deadline); i++ {
		runtime.Gosched() // GOMAXPROCS=1: let the readers run
		if err := v.Mount("b", &fake{}); err != nil {
			t.Fatal(err)
		}
		if err := v.Unmount(context.Background(), "b"); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if reads.Load() == 0 {
		t.Fatal("no read ran")
	}
}

// TestAllocs: routed requests allocate nothing.
func TestAllocs(t *testing.T) {
	v := New(Options{})
	v.Mount("a", &fake{})
	ctx := &fs.Context{}
	v.Init(ctx, &fs.InitInfo{})
	ra := lookup(t, v, fs.RootInode, "a")
	fa := lookup(t, v, ra.Ino, "f")
	name := []byte("f")
	s := &sink{b: make([]byte, 0, 16)}
	var out fs.Entry
	var ao fs.AttrOut
	d := &countDirs{plus: true}
	nameA := []byte("a")
	n := testing.AllocsPerRun(200, func() {
		v.Lookup(ctx, ra.Ino, name, &out)
		v.Forget(out.Ino, 1)
		v.GetAttr(ctx, fa.Ino, 0, false, &ao)
		s.b = s.b[:0]
		v.Read(ctx, fa.Ino, 0, 0, 16, s)
		v.Lookup(ctx, fs.RootInode, nameA, &out)
		v.ReadDir(ctx, ra.Ino, 0, 0, d)
	})
	if d.n == 0 || d.last != fa.Ino {
		t.Fatalf("readdirplus in the loop: %d entries, last %#x", d.n, d.last)
	}
	if n != 0 {
		t.Errorf("Lookup+Forget+GetAttr+Read+root Lookup+ReadDirPlus: %v allocs, want 0", n)
	}
}

// BenchmarkGetAttr compares GETATTR on a backend called directly with the
// same call routed through a VFS share (the cost of enter, leave and the
// ID translation), on one goroutine and on all (the share's state word is
// one cache line every request of the share touches).
func BenchmarkGetAttr(b *testing.B) {
	back := &fake{}
	v := New(Options{})
	v.Mount("a", back)
	ctx := &fs.Context{}
	v.Init(ctx, &fs.InitInfo{})
	var out fs.Entry
	v.Lookup(ctx, fs.RootInode, []byte("a"), &out)
	v.Lookup(ctx, out.Ino, []byte("f"), &out)
	routed := out.Ino
	for _, c := range []struct {
		name string
		fsys fs.FileSystem
		ino  fs.Inode
	}{{"direct", back, 2}, {"vfs", v, routed}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var ao fs.AttrOut
			for b.Loop() {
				c.fsys.GetAttr(ctx, c.ino, 0, false, &ao)
			}
		})
		b.Run(c.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx := &fs.Context{}
				var ao fs.AttrOut
				for pb.Next() {
					c.fsys.GetAttr(ctx, c.ino, 0, false, &ao)
				}
			})
		})
	}
}

// TestClientIDs: a share's backend IDs map to the IDs its lookups gave
// the client; a remounted share's mapping differs from the old one.
func TestClientIDs(t *testing.T) {
	v := New(Options{})
	a, b := &fake{}, &fake{}
	if err := v.Mount("a", a); err != nil {
		t.Fatal(err)
	}
	if err := v.Mount("b", b); err != nil {
		t.Fatal(err)
	}
	ra, rb := lookup(t, v, fs.RootInode, "a"), lookup(t, v, fs.RootInode, "b")
	fb := lookup(t, v, rb.Ino, "f")
	ida, err := v.ClientIDs("a")
	if err != nil {
		t.Fatal(err)
	}
	idb, err := v.ClientIDs("b")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := ida(fs.RootInode); !ok || got != ra.Ino {
		t.Errorf("a's root: %#x %v, want %#x", got, ok, ra.Ino)
	}
	if got, ok := idb(b.fIno()); !ok || got != fb.Ino {
		t.Errorf("b/f: %#x %v, want %#x", got, ok, fb.Ino)
	}
	for _, bad := range []fs.Inode{0, MaxBackendIno + 1} {
		if got, ok := ida(bad); ok {
			t.Errorf("backend ID %#x mapped to %#x, want refused", bad, got)
		}
	}
	if _, err := v.ClientIDs("c"); !errors.Is(err, ErrNotMounted) {
		t.Errorf("ClientIDs of no share: %v, want ErrNotMounted", err)
	}
	if err := v.Unmount(context.Background(), "a"); err != nil {
		t.Fatal(err)
	}
	if err := v.Mount("a", &fake{}); err != nil {
		t.Fatal(err)
	}
	ida2, _ := v.ClientIDs("a")
	if got, _ := ida2(fs.RootInode); got == ra.Ino || got != lookup(t, v, fs.RootInode, "a").Ino {
		t.Errorf("remounted a's root maps to %#x (old %#x), want the new lookup's ID", got, ra.Ino)
	}
}
