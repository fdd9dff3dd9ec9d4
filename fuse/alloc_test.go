package fuse

import (
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse/abi"
)

// nopFS answers the hot-path requests without doing anything, so that
// benchmarks and allocation tests measure the engine alone.
type nopFS struct{ fs.Base }

func (nopFS) GetAttr(ctx *fs.Context, ino fs.Inode, fh fs.Handle, hasHandle bool, out *fs.AttrOut) fs.Errno {
	out.Timeout = time.Second
	out.Attr = fs.Attr{Ino: uint64(ino), Mode: 0o100644, Nlink: 1}
	return 0
}

func (nopFS) Lookup(ctx *fs.Context, parent fs.Inode, name []byte, out *fs.Entry) fs.Errno {
	out.Ino = 5
	out.EntryTimeout = time.Second
	out.Attr = fs.Attr{Ino: 5, Mode: 0o100644, Nlink: 1}
	return 0
}

func (nopFS) Read(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, size uint32, dst fs.Sink) fs.Errno {
	for dst.Len() < int(size) && dst.Cap() > 0 {
		dst.Append(zero[:min(len(zero), int(size)-dst.Len())])
	}
	return 0
}

func (nopFS) Open(ctx *fs.Context, ino fs.Inode, flags, openFlags uint32, out *fs.OpenOut) fs.Errno {
	return 0
}

func (nopFS) Write(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, src fs.Source, flags uint32) (uint32, fs.Errno) {
	return uint32(src.Len()), 0
}

// ReadDir adds 16 entries with attributes.
func (nopFS) ReadDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off uint64, dst fs.DirSink) fs.Errno {
	var e fs.Entry
	for i := off; i < 16; i++ {
		var p *fs.Entry
		if dst.Plus() {
			e = fs.Entry{Ino: fs.Inode(100 + i), EntryTimeout: time.Second, Attr: fs.Attr{Ino: 100 + i, Mode: 0o100644, Nlink: 1}}
			p = &e
		}
		if !dst.Add(fs.DirEntry{Ino: 100 + i, Off: i + 1, Type: 8, Name: dirNames[i]}, p) {
			break
		}
	}
	return 0
}

var dirNames = func() [][]byte {
	var n [][]byte
	for i := range 16 {
		n = append(n, []byte("entry-name-"+string(rune('a'+i))))
	}
	return n
}()

// zero is package-level: a local array passed to an interface method
// would escape and allocate in the fake, not in the engine.
var zero [512]byte

// hotRequests are the requests TestAllocs and the benchmarks serve.
func hotRequests() map[string][]byte {
	return map[string][]byte{
		"Getattr": mkReq(abi.OpGetattr, 10, 5, enc(&abi.GetattrIn{}, abi.GetattrInSize)),
		"Lookup":  mkReq(abi.OpLookup, 10, 1, cstr("some-file-name")),
		"Read4K":  mkReq(abi.OpRead, 10, 5, enc(&abi.ReadIn{Fh: 1, Size: 4096}, abi.ReadInSize)),
		"Write4K": mkReq(abi.OpWrite, 10, 5, enc(&abi.WriteIn{Fh: 1, Size: 4096}, abi.WriteInSize), make([]byte, 4096)),
	}
}

func nopServer(t testing.TB) (*Server, *Request) {
	s := NewServer(nopFS{}, Options{})
	r := s.NewRequest()
	r.In = initReq(45, allKernelFlags)
	if n := s.Handle(r); n == 0 || outHdr(t, r.Out, n).Error != 0 {
		t.Fatal("INIT failed")
	}
	return s, r
}

func TestAllocs(t *testing.T) {
	s, r := nopServer(t)
	for name, in := range hotRequests() {
		t.Run(name, func(t *testing.T) {
			r.In = in
			if n := s.Handle(r); outHdr(t, r.Out, n).Error != 0 {
				t.Fatalf("error reply")
			}
			if a := testing.AllocsPerRun(200, func() { r.In = in; s.Handle(r) }); a != 0 {
				t.Errorf("%v allocs per request, want 0", a)
			}
		})
	}
}

func benchHot(b *testing.B, name string, bytes int64) {
	s, r := nopServer(b)
	in := hotRequests()[name]
	if name == "Readdirplus16" {
		in = mkReq(abi.OpReaddirplus, 10, 1, enc(&abi.ReadIn{Fh: 1, Size: 4096}, abi.ReadInSize))
	}
	b.ReportAllocs()
	if bytes > 0 {
		b.SetBytes(bytes)
	}
	for b.Loop() {
		r.In = in
		s.Handle(r)
	}
}

func BenchmarkGetattr(b *testing.B) { benchHot(b, "Getattr", 0) }
func BenchmarkLookup(b *testing.B)  { benchHot(b, "Lookup", 0) }
func BenchmarkRead4K(b *testing.B)  { benchHot(b, "Read4K", 4096) }
func BenchmarkWrite4K(b *testing.B) { benchHot(b, "Write4K", 4096) }

// BenchmarkReaddirplus16 encodes 16 entries with attributes per request.
// The one allocation per request is nopFS's: an *fs.Entry handed to
// DirSink.Add (an interface method) escapes.
func BenchmarkReaddirplus16(b *testing.B) { benchHot(b, "Readdirplus16", 0) }

// TestAllocsErrors: common failures (ENOENT lookups, a malformed name)
// allocate nothing either when no Logger is set.
func TestAllocsErrors(t *testing.T) {
	s := NewServer(enoentFS{}, Options{})
	r := s.NewRequest()
	r.In = initReq(45, allKernelFlags)
	s.Handle(r)
	for name, in := range map[string][]byte{
		"LOOKUP ENOENT":  mkReq(abi.OpLookup, 10, 1, cstr("missing")),
		"GETATTR ENOENT": mkReq(abi.OpGetattr, 10, 5, enc(&abi.GetattrIn{}, abi.GetattrInSize)),
		"LOOKUP bad":     mkReq(abi.OpLookup, 10, 1, []byte("no-nul")),
		"WRITE bad size": mkReq(abi.OpWrite, 10, 5, enc(&abi.WriteIn{Size: 9}, abi.WriteInSize), []byte("x")),
	} {
		r.In = in
		if n := s.Handle(r); outHdr(t, r.Out, n).Error == 0 {
			t.Fatalf("%s: succeeded", name)
		}
		if a := testing.AllocsPerRun(100, func() { r.In = in; s.Handle(r) }); a != 0 {
			t.Errorf("%s: %v allocs per request", name, a)
		}
	}
}

// enoentFS fails lookups and getattrs without allocating.
type enoentFS struct{ fs.Base }

func (enoentFS) Lookup(*fs.Context, fs.Inode, []byte, *fs.Entry) fs.Errno { return syscall.ENOENT }
func (enoentFS) GetAttr(*fs.Context, fs.Inode, fs.Handle, bool, *fs.AttrOut) fs.Errno {
	return syscall.ENOENT
}

// wouldWaitFS is nopFS whose opens would wait with NoWait set (as an
// open breaking a host lease).
type wouldWaitFS struct{ nopFS }

func (wouldWaitFS) Open(ctx *fs.Context, ino fs.Inode, flags, openFlags uint32, out *fs.OpenOut) fs.Errno {
	if ctx.NoWait {
		return fs.WouldWait
	}
	return 0
}

// TestAllocsOpen: OPEN allocates nothing served with NoWait (on a
// worker: nothing registered), without it (where it may wait: registered
// for FUSE_INTERRUPT while the filesystem runs), or left unanswered for
// a retry (fs.WouldWait to a NoWait request).
func TestAllocsOpen(t *testing.T) {
	open := mkReq(abi.OpOpen, 10, 5, enc(&abi.OpenIn{}, abi.OpenInSize))
	for _, c := range []struct {
		name          string
		fsys          fs.FileSystem
		noWait, retry bool
	}{
		{"may wait", wouldWaitFS{}, false, false},
		{"worker", nopFS{}, true, false},
		{"retry", wouldWaitFS{}, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := NewServer(c.fsys, Options{})
			r := s.NewRequest()
			r.In = initReq(45, allKernelFlags)
			if n := s.Handle(r); n == 0 || outHdr(t, r.Out, n).Error != 0 {
				t.Fatal("INIT failed")
			}
			r.NoWait = c.noWait
			r.In = open
			n := s.Handle(r)
			if c.retry {
				if n != 0 || !r.Retry() {
					t.Fatalf("OPEN that would wait: %d bytes, Retry %v; want 0, true", n, r.Retry())
				}
			} else if outHdr(t, r.Out, n).Error != 0 || r.Retry() {
				t.Fatalf("OPEN: error reply, or Retry %v", r.Retry())
			}
			if a := testing.AllocsPerRun(200, func() { r.In = open; s.Handle(r) }); a != 0 {
				t.Errorf("%v allocs per OPEN, want 0", a)
			}
		})
	}
}
