package dax

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/fastfsd/fastfsd/fs"
)

const page = 4096

// fakeFS hands out fd = fh (fake numbers); fh 0 is not open (EBADF) and a
// writable mapping of an odd fh is refused (a read-only open: EACCES).
// Open gives handle 100+2·ino (+1 when opened read-only); ino 0 does not
// exist. It counts the handles Open gave that are not released yet.
type fakeFS struct {
	open map[fs.Handle]uint32 // handle → open flags
}

func (f *fakeFS) MapFd(ctx *fs.Context, ino fs.Inode, fh fs.Handle, writable bool) (int, fs.Errno) {
	if fh == 0 || fh == NoHandle {
		return -1, syscall.EBADF
	}
	if writable && fh%2 == 1 {
		return -1, syscall.EACCES
	}
	return int(fh), 0
}

func (f *fakeFS) Open(ctx *fs.Context, ino fs.Inode, flags, openFlags uint32, out *fs.OpenOut) fs.Errno {
	if ino == 0 {
		return syscall.ENOENT
	}
	h := fs.Handle(100 + 2*ino)
	if flags&syscall.O_ACCMODE == syscall.O_RDONLY {
		h++
	}
	if f.open == nil {
		f.open = map[fs.Handle]uint32{}
	}
	f.open[h] = flags
	out.Handle = h
	return 0
}

func (f *fakeFS) Release(ctx *fs.Context, ino fs.Inode, fh fs.Handle, flags uint32) fs.Errno {
	if _, ok := f.open[fh]; !ok {
		panic("release of a handle not open")
	}
	delete(f.open, fh)
	return 0
}

// fds fakes fd duplication: every duplicate gets a fresh number that
// remembers the fh it came from.
type fds struct {
	next   int
	origin map[int]int // open duplicate → fh
	t      testing.TB
}

func (f *fds) dup(fd int) (int, error) {
	f.next++
	f.origin[1000+f.next] = fd
	return 1000 + f.next, nil
}

func (f *fds) close(fd int) error {
	if _, ok := f.origin[fd]; !ok {
		f.t.Errorf("close of fd %d that is not open", fd)
		return syscall.EBADF
	}
	delete(f.origin, fd)
	return nil
}

// frontMapping is a mapping as the fake front-end holds it.
type frontMapping struct {
	len, fdOff uint64
	fh         int // the file, through the duplicate's origin
	writable   bool
}

// front is a strict front-end like QEMU's SHMEM implementation: a map
// over anything mapped and an unmap that is not exactly one mapping are
// refused. fail, if set, decides per call whether to refuse anyway.
type front struct {
	size uint64
	fds  *fds
	m    map[uint64]frontMapping
	fail func(op string) bool
	t    testing.TB
}

var errRefused = syscall.ENOMEM // an arbitrary errno the front-end "returns"

func (f *front) Map(off, n uint64, fd int, fdOff uint64, writable bool) error {
	if f.fail != nil && f.fail("map") {
		return fmt.Errorf("fake: map refused: %w", errRefused)
	}
	fh, ok := f.fds.origin[fd]
	if !ok {
		f.t.Errorf("map with fd %d that is not open", fd)
		return syscall.EBADF
	}
	if n == 0 || off+n > f.size || off+n < off {
		f.t.Errorf("map [%#x,+%#x) outside the window", off, n)
		return syscall.EINVAL
	}
	for o, m := range f.m {
		if off < o+m.len && o < off+n {
			f.t.Errorf("map [%#x,+%#x) over existing [%#x,+%#x)", off, n, o, m.len)
			return syscall.EEXIST
		}
	}
	f.m[off] = frontMapping{len: n, fdOff: fdOff, fh: fh, writable: writable}
	return nil
}

func (f *front) Unmap(off, n uint64) error {
	if f.fail != nil && f.fail("unmap") {
		return errors.New("fake: unmap refused, no errno")
	}
	m, ok := f.m[off]
	if !ok || m.len != n {
		f.t.Errorf("unmap [%#x,+%#x) is not exactly one mapping", off, n)
		return syscall.EINVAL
	}
	delete(f.m, off)
	return nil
}

type harness struct {
	w   *Window
	fds *fds
	fr  *front
}

func newHarness(t testing.TB, pages uint64) *harness {
	w, err := New(pages*page, 12, &fakeFS{})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{w: w, fds: &fds{origin: map[int]int{}, t: t}}
	h.fr = &front{size: w.Size(), fds: h.fds, m: map[uint64]frontMapping{}, t: t}
	w.dup, w.close = h.fds.dup, h.fds.close
	w.SetMapper(h.fr)
	return h
}

// check verifies the invariants: the table is sorted, non-overlapping,
// aligned and inside the window; it equals the front-end's mappings; the
// open duplicates are exactly the files the table uses.
func (h *harness) check(t testing.TB) {
	t.Helper()
	ms := h.w.Mappings()
	var prevEnd uint64
	files := map[int]bool{}
	h.w.mu.Lock()
	for i, e := range h.w.entries {
		files[e.f.fd] = true
		m := ms[i]
		if m.Length == 0 || m.Offset%page != 0 || m.Length%page != 0 || m.Offset < prevEnd || m.Offset+m.Length > h.w.Size() {
			t.Fatalf("bad entry %d: %+v (previous ends at %#x)", i, m, prevEnd)
		}
		prevEnd = m.Offset + m.Length
		fm, ok := h.fr.m[m.Offset]
		if !ok || fm.len != m.Length || fm.fdOff != m.FdOffset || fm.writable != m.Writable || fm.fh != h.fds.origin[e.f.fd] {
			t.Fatalf("entry %+v (fh %d): front-end has %+v, %v", m, h.fds.origin[e.f.fd], fm, ok)
		}
		if e.f.refs < 1 {
			t.Fatalf("entry %+v with file refs %d", m, e.f.refs)
		}
	}
	h.w.mu.Unlock()
	if len(h.fr.m) != len(ms) {
		t.Fatalf("front-end has %d mappings, table %d", len(h.fr.m), len(ms))
	}
	if len(h.fds.origin) != len(files) {
		t.Fatalf("%d duplicates open, table uses %d", len(h.fds.origin), len(files))
	}
}

func TestSetupRemove(t *testing.T) {
	h := newHarness(t, 64)
	ctx := &fs.Context{}
	rw := uint64(FlagRead | FlagWrite)
	if e := h.w.SetupMapping(ctx, 1, 2, 0, 8*page, 0, rw); e != 0 {
		t.Fatal(e)
	}
	h.check(t)
	// Overlap in the middle: the old one splits in two.
	if e := h.w.SetupMapping(ctx, 1, 4, 100*page, 2*page, 3*page, FlagRead); e != 0 {
		t.Fatal(e)
	}
	h.check(t)
	want := []Mapping{
		{Offset: 0, Length: 3 * page, FdOffset: 0, Writable: true, File: 1},
		{Offset: 3 * page, Length: 2 * page, FdOffset: 100 * page, Writable: false, File: 2},
		{Offset: 5 * page, Length: 3 * page, FdOffset: 5 * page, Writable: true, File: 1},
	}
	if got := h.w.Mappings(); !slices.Equal(got, want) {
		t.Fatalf("after split:\n got %+v\nwant %+v", got, want)
	}
	// Exact replacement.
	if e := h.w.SetupMapping(ctx, 1, 6, 0, 2*page, 3*page, rw); e != 0 {
		t.Fatal(e)
	}
	h.check(t)
	// Remove across three entries, splitting both ends.
	if e := h.w.RemoveMapping(ctx, 2*page, 4*page); e != 0 {
		t.Fatal(e)
	}
	h.check(t)
	want = []Mapping{
		{Offset: 0, Length: 2 * page, FdOffset: 0, Writable: true, File: 1},
		{Offset: 6 * page, Length: 2 * page, FdOffset: 6 * page, Writable: true, File: 1},
	}
	if got := h.w.Mappings(); !slices.Equal(got, want) {
		t.Fatalf("after remove:\n got %+v\nwant %+v", got, want)
	}
	// Removing an unmapped range succeeds and changes nothing.
	if e := h.w.RemoveMapping(ctx, 20*page, 4*page); e != 0 {
		t.Fatal(e)
	}
	h.check(t)
	// Reset unmaps everything at the front-end.
	if n := h.w.Reset(); n != 0 {
		t.Fatalf("reset: %d refused", n)
	}
	h.check(t)
	if len(h.fr.m) != 0 || len(h.fds.origin) != 0 {
		t.Fatalf("after reset: front-end %v, fds %v", h.fr.m, h.fds.origin)
	}
}

func TestErrors(t *testing.T) {
	ctx := &fs.Context{}
	r := uint64(FlagRead)
	for _, c := range []struct {
		name                     string
		fh, foff, n, moff, flags uint64
		want                     syscall.Errno
	}{
		{"zero length", 2, 0, 0, 0, r, syscall.EINVAL},
		{"misaligned moffset", 2, 0, page, 100, r, syscall.EINVAL},
		{"misaligned foffset", 2, 1, page, 0, r, syscall.EINVAL},
		{"misaligned length", 2, 0, page + 1, 0, r, syscall.EINVAL},
		{"beyond the window", 2, 0, 2 * page, 63 * page, r, syscall.EINVAL},
		{"past the window", 2, 0, page, 64 * page, r, syscall.EINVAL},
		{"wrapping window range", 2, 0, 1 << 63, 1 << 63, r, syscall.EINVAL},
		{"wrapping file range", 2, ^uint64(0) &^ (page - 1), 2 * page, 0, r, syscall.EINVAL},
		{"unknown flag", 2, 0, page, 0, 4, syscall.EINVAL},
		{"no handle", 0, 0, page, 0, r, syscall.EBADF},
		{"write on read-only", 3, 0, page, 0, r | FlagWrite, syscall.EACCES},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, 64)
			if e := h.w.SetupMapping(ctx, 1, 4, 0, 4*page, 8*page, r); e != 0 {
				t.Fatal(e)
			}
			before := h.w.Mappings()
			if e := h.w.SetupMapping(ctx, 1, fs.Handle(c.fh), c.foff, c.n, c.moff, c.flags); e != c.want {
				t.Fatalf("got %v, want %v", e, c.want)
			}
			if c.want == syscall.EINVAL && c.foff == 0 && c.flags == r {
				// The same window range is as invalid for REMOVEMAPPING.
				if e := h.w.RemoveMapping(ctx, c.moff, c.n); e != syscall.EINVAL {
					t.Fatalf("remove: got %v, want EINVAL", e)
				}
			}
			h.check(t)
			if got := h.w.Mappings(); !slices.Equal(got, before) {
				t.Fatalf("table changed: %+v → %+v", before, got)
			}
		})
	}
}

// TestNoHandle: Linux sends fh = -1; the window opens the inode itself
// (read-write only for a writable mapping), maps that handle's fd and
// releases the handle at once: the duplicate keeps the file.
func TestNoHandle(t *testing.T) {
	h := newHarness(t, 16)
	fsys := h.w.fsys.(*fakeFS)
	ctx := &fs.Context{}
	if e := h.w.SetupMapping(ctx, 7, NoHandle, 0, 2*page, 0, FlagRead|FlagWrite); e != 0 {
		t.Fatal(e)
	}
	if e := h.w.SetupMapping(ctx, 7, NoHandle, 0, 2*page, 4*page, FlagRead); e != 0 {
		t.Fatal(e)
	}
	h.check(t)
	if got := []int{h.fr.m[0].fh, h.fr.m[4*page].fh}; got[0] != 114 || got[1] != 115 {
		t.Fatalf("mapped handles %v, want [114 115] (read-write, read-only)", got)
	}
	if len(fsys.open) != 0 {
		t.Fatalf("handles left open: %v", fsys.open)
	}
	before := h.w.Mappings()
	if e := h.w.SetupMapping(ctx, 0, NoHandle, 0, 2*page, 8*page, FlagRead); e != syscall.ENOENT {
		t.Fatalf("open failure: %v, want ENOENT", e)
	}
	if got := h.w.Mappings(); !slices.Equal(got, before) || len(fsys.open) != 0 {
		t.Fatalf("after a failed open: %+v, open %v", got, fsys.open)
	}
	h.check(t)
}

func TestNoMapper(t *testing.T) {
	h := newHarness(t, 8)
	ctx := &fs.Context{}
	if e := h.w.SetupMapping(ctx, 1, 2, 0, page, 0, FlagRead); e != 0 {
		t.Fatal(e)
	}
	// Disconnect: the table is dropped without unmapping (the front-end
	// is gone), and every duplicate is closed.
	h.w.SetMapper(nil)
	if n := len(h.w.Mappings()); n != 0 || len(h.fds.origin) != 0 {
		t.Fatalf("after disconnect: %d mappings, %d fds", n, len(h.fds.origin))
	}
	if e := h.w.SetupMapping(ctx, 1, 2, 0, page, 0, FlagRead); e != syscall.EOPNOTSUPP {
		t.Fatalf("setup without mapper: %v, want EOPNOTSUPP", e)
	}
	if e := h.w.RemoveMapping(ctx, 0, page); e != syscall.EOPNOTSUPP {
		t.Fatalf("remove without mapper: %v, want EOPNOTSUPP", e)
	}
	// Validation still comes first.
	if e := h.w.SetupMapping(ctx, 1, 2, 0, 0, 0, FlagRead); e != syscall.EINVAL {
		t.Fatalf("zero length without mapper: %v, want EINVAL", e)
	}
}

func TestFrontendRefuses(t *testing.T) {
	h := newHarness(t, 16)
	ctx := &fs.Context{}
	if e := h.w.SetupMapping(ctx, 1, 2, 0, 8*page, 0, FlagRead); e != 0 {
		t.Fatal(e)
	}
	h.fr.fail = func(op string) bool { return op == "map" }
	// The old mapping is unmapped, its left piece cannot be mapped back:
	// the front-end's errno comes back and the table follows the front-end.
	if e := h.w.SetupMapping(ctx, 1, 4, 0, 2*page, 4*page, FlagRead); e != errRefused {
		t.Fatalf("got %v, want %v", e, errRefused)
	}
	h.check(t)
	h.fr.fail = func(op string) bool { return true }
	if e := h.w.SetupMapping(ctx, 1, 4, 0, 2*page, 12*page, FlagRead); e != errRefused {
		t.Fatalf("got %v, want %v", e, errRefused)
	}
	h.check(t)
	h.fr.fail = nil
	if e := h.w.SetupMapping(ctx, 1, 2, 0, 8*page, 0, FlagRead); e != 0 {
		t.Fatal(e)
	}
	h.fr.fail = func(op string) bool { return op == "unmap" }
	// An error without an errno is EIO.
	if e := h.w.RemoveMapping(ctx, 0, page); e != syscall.EIO {
		t.Fatalf("got %v, want EIO", e)
	}
	h.check(t)
	if n := h.w.Reset(); n != 1 {
		t.Fatalf("reset: %d refused, want 1", n)
	}
	// The front-end still holds the mapping it refused to drop; the table
	// is empty anyway and every duplicate is closed.
	if len(h.w.Mappings()) != 0 || len(h.fds.origin) != 0 {
		t.Fatalf("after reset: %d mappings, %d fds", len(h.w.Mappings()), len(h.fds.origin))
	}
}

// slot is one page of the model window.
type slot struct {
	fh       int
	fpage    uint64
	writable bool
}

// TestModel runs random SETUPMAPPING / REMOVEMAPPING requests, valid and
// invalid, against the window and against a page-by-page model of it, and
// checks after each that the table describes exactly the model's pages.
func TestModel(t *testing.T) {
	const pages = 64
	for seed := uint64(1); seed <= 2; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			h := newHarness(t, pages)
			rnd := rand.New(rand.NewPCG(seed, 7))
			var model [pages]slot
			ctx := &fs.Context{}
			n := 10000
			for op := 0; op < n; op++ {
				moff := rnd.Uint64N(pages + 4)
				length := rnd.Uint64N(12)
				misalign := uint64(0)
				if rnd.IntN(20) == 0 {
					misalign = 512
				}
				valid := length > 0 && moff+length <= pages && misalign == 0
				if rnd.IntN(3) > 0 {
					fh := 2 * (1 + rnd.IntN(4)) // even: writable allowed
					fpage := rnd.Uint64N(1000)
					flags := uint64(FlagRead)
					if rnd.IntN(2) == 0 {
						flags |= FlagWrite
					}
					e := h.w.SetupMapping(ctx, 1, fs.Handle(fh), fpage*page, length*page, moff*page+misalign, flags)
					if !valid {
						if e != syscall.EINVAL {
							t.Fatalf("op %d: invalid setup %d+%d: %v", op, moff, length, e)
						}
					} else if e != 0 {
						t.Fatalf("op %d: setup: %v", op, e)
					} else {
						for p := uint64(0); p < length; p++ {
							model[moff+p] = slot{fh: fh, fpage: fpage + p, writable: flags&FlagWrite != 0}
						}
					}
				} else {
					e := h.w.RemoveMapping(ctx, moff*page+misalign, length*page)
					if !valid {
						if e != syscall.EINVAL {
							t.Fatalf("op %d: invalid remove %d+%d: %v", op, moff, length, e)
						}
					} else if e != 0 {
						t.Fatalf("op %d: remove: %v", op, e)
					} else {
						for p := uint64(0); p < length; p++ {
							model[moff+p] = slot{}
						}
					}
				}
				h.check(t)
				var got [pages]slot
				h.w.mu.Lock()
				for _, e := range h.w.entries {
					for p := uint64(0); p < e.len/page; p++ {
						got[e.off/page+p] = slot{fh: h.fds.origin[e.f.fd], fpage: e.fdOff/page + p, writable: e.writable}
					}
				}
				h.w.mu.Unlock()
				if got != model {
					t.Fatalf("op %d: table and model differ:\n got %v\nwant %v", op, got, model)
				}
			}
		})
	}
}

// TestRefusalsKeepTableTrue injects random front-end refusals: the table
// must still equal the front-end's state and leak no fd.
func TestRefusalsKeepTableTrue(t *testing.T) {
	h := newHarness(t, 32)
	rnd := rand.New(rand.NewPCG(42, 42))
	h.fr.fail = func(string) bool { return rnd.IntN(8) == 0 }
	ctx := &fs.Context{}
	for op := 0; op < 5000; op++ {
		moff, length := rnd.Uint64N(32), 1+rnd.Uint64N(8)
		if moff+length > 32 {
			continue
		}
		if rnd.IntN(3) > 0 {
			h.w.SetupMapping(ctx, 1, fs.Handle(2*(1+rnd.IntN(3))), rnd.Uint64N(100)*page, length*page, moff*page, FlagRead)
		} else {
			h.w.RemoveMapping(ctx, moff*page, length*page)
		}
		h.check(t)
	}
	h.w.SetMapper(nil)
	if len(h.fds.origin) != 0 {
		t.Fatalf("%d fds leaked", len(h.fds.origin))
	}
}

func TestNew(t *testing.T) {
	for _, c := range []struct {
		size  uint64
		shift uint16
		ok    bool
	}{
		{1 << 30, 21, true}, {1 << 30, 12, true}, {0, 21, false}, {3 << 20, 21, false},
		{1 << 30, 22, false}, {1 << 30, 11, false},
	} {
		_, err := New(c.size, c.shift, &fakeFS{})
		if (err == nil) != c.ok {
			t.Errorf("New(%d, %d): %v", c.size, c.shift, err)
		}
	}
	if _, err := New(1<<30, 21, nil); err == nil {
		t.Error("New without an fs.Mapper succeeded")
	}
}

func TestErrno(t *testing.T) {
	for _, c := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{fmt.Errorf("x: %w", syscall.ETIMEDOUT), syscall.ETIMEDOUT},
		{fmt.Errorf("x: %w", ErrNoMapper), syscall.EOPNOTSUPP},
		{errors.New("opaque"), syscall.EIO},
	} {
		if got := Errno(c.err); got != c.want {
			t.Errorf("Errno(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// FuzzWindow decodes a byte string into a sequence of SETUPMAPPING and
// REMOVEMAPPING requests with arbitrary 64-bit fields (each 33 bytes: op,
// foffset, length, moffset, flags) and runs them against a 64-page window
// and the strict fake front-end. Invariants: no panic; a request the
// window calls invalid (EINVAL) changes nothing; the table always equals
// the front-end's mappings and holds exactly the fds it uses.
func FuzzWindow(f *testing.F) {
	op := func(kind byte, foff, n, moff, flags uint64) []byte {
		b := []byte{kind}
		for _, v := range []uint64{foff, n, moff, flags} {
			b = binary.LittleEndian.AppendUint64(b, v)
		}
		return b
	}
	f.Add(op(0, 0, 2*page, 0, FlagRead|FlagWrite))
	f.Add(slices.Concat(op(0, 0, 8*page, 0, FlagRead), op(0, 0, 2*page, 3*page, FlagRead), op(1, 0, 4*page, 2*page, 0)))
	f.Add(slices.Concat(op(0, 0, 1<<63, 1<<63, FlagRead), op(1, 0, ^uint64(0), page, 0)))
	f.Add(op(0, ^uint64(0)&^(page-1), 2*page, 0, FlagRead))
	f.Add(op(2, 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		h := newHarness(t, 64)
		ctx := &fs.Context{}
		for len(data) >= 33 {
			kind := data[0]
			foff := binary.LittleEndian.Uint64(data[1:])
			n := binary.LittleEndian.Uint64(data[9:])
			moff := binary.LittleEndian.Uint64(data[17:])
			flags := binary.LittleEndian.Uint64(data[25:])
			data = data[33:]
			before := h.w.Mappings()
			var e syscall.Errno
			if kind%2 == 0 {
				fh := fs.Handle(2 + 2*(kind/2%4))
				if kind/2%4 == 3 {
					fh = NoHandle // as Linux sends: the window opens the inode
				}
				e = h.w.SetupMapping(ctx, 1, fh, foff, n, moff, flags)
			} else {
				e = h.w.RemoveMapping(ctx, moff, n)
			}
			if e == syscall.EINVAL && !slices.Equal(before, h.w.Mappings()) {
				t.Fatalf("EINVAL changed the table")
			}
			h.check(t)
		}
		h.w.SetMapper(nil)
		if len(h.fds.origin) != 0 || len(h.w.fsys.(*fakeFS).open) != 0 {
			t.Fatalf("%d fds, %d handles leaked", len(h.fds.origin), len(h.w.fsys.(*fakeFS).open))
		}
	})
}

// TestConcurrent: workers mapping and unmapping at once keep the table
// equal to the front-end (run with -race).
func TestConcurrent(t *testing.T) {
	h := newHarness(t, 64)
	var mu sync.Mutex // the fake front-end and fd table are not thread-safe
	locked := lockedMapper{m: h.fr, mu: &mu}
	h.w.SetMapper(locked)
	dup, cl := h.w.dup, h.w.close
	h.w.dup = func(fd int) (int, error) { mu.Lock(); defer mu.Unlock(); return dup(fd) }
	h.w.close = func(fd int) error { mu.Lock(); defer mu.Unlock(); return cl(fd) }
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(seed, 1))
			ctx := &fs.Context{}
			for i := 0; i < 2000; i++ {
				moff, n := rnd.Uint64N(60), 1+rnd.Uint64N(4)
				if rnd.IntN(2) == 0 {
					if e := h.w.SetupMapping(ctx, 1, 2, rnd.Uint64N(50)*page, n*page, moff*page, FlagRead); e != 0 {
						t.Errorf("setup: %v", e)
						return
					}
				} else if e := h.w.RemoveMapping(ctx, moff*page, n*page); e != 0 {
					t.Errorf("remove: %v", e)
					return
				}
			}
		}(uint64(g))
	}
	wg.Wait()
	h.check(t)
}

type lockedMapper struct {
	m  Mapper
	mu *sync.Mutex
}

func (l lockedMapper) Map(off, n uint64, fd int, fdOff uint64, w bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.Map(off, n, fd, fdOff, w)
}

func (l lockedMapper) Unmap(off, n uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.Unmap(off, n)
}
