package fuse

import (
	"bytes"
	"syscall"
	"testing"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse/abi"
)

func TestInitNegotiation(t *testing.T) {
	for _, c := range []struct {
		name    string
		minor   uint32
		kernel  abi.InitFlags
		opts    Options
		size    int
		want    abi.InitFlags // must be set
		notWant abi.InitFlags // must be clear
	}{
		{
			name: "6.18", minor: 45, kernel: allKernelFlags, size: 64,
			want:    abi.InitAsyncRead | abi.InitHandleKillprivV2 | abi.InitDoReaddirplus | abi.InitMaxPages | abi.InitExt | abi.InitSetxattrExt | abi.InitParallelDirops,
			notWant: abi.InitPassthrough | abi.InitAllowIdmap | abi.InitDontMask | abi.InitWritebackCache | abi.InitPosixLocks | abi.InitSpliceRead | abi.InitOverIoUring | abi.InitMapAlignment | abi.InitExportSupport | abi.InitPosixACL | abi.InitSecurityCtx,
		},
		{
			name: "6.1 guest (7.38)", minor: 38, kernel: allKernelFlags &^ (1<<39 - 1&^(1<<37-1)), size: 64,
			want: abi.InitHandleKillprivV2 | abi.InitExt,
		},
		{
			name: "7.27 no INIT_EXT", minor: 27, kernel: abi.InitFlags(1<<22 - 1), size: 64,
			want: abi.InitAsyncRead | abi.InitBigWrites, notWant: abi.InitExt | abi.InitMaxPages | abi.InitHandleKillprivV2,
		},
		{
			name: "7.22 compat reply", minor: 22, kernel: abi.InitFlags(1<<16 - 1), size: abi.Compat22InitOutSize,
		},
		{
			name: "locks, splice, writeback", minor: 45, kernel: allKernelFlags, size: 64,
			opts: Options{Locks: true, SpliceRead: true, SpliceWrite: true, Writeback: true, Backing: &fakeBacking{}},
			want: abi.InitPosixLocks | abi.InitFlockLocks | abi.InitSpliceRead | abi.InitSpliceWrite | abi.InitWritebackCache,
			// Writeback excludes passthrough.
			notWant: abi.InitPassthrough | abi.InitSpliceMove,
		},
		{
			name: "posix acl, no readdirplus", minor: 45, kernel: allKernelFlags, size: 64,
			opts:    Options{PosixACL: true, NoReaddirplus: true},
			want:    abi.InitPosixACL,
			notWant: abi.InitDoReaddirplus | abi.InitReaddirplusAuto,
		},
		{
			name: "passthrough, io_uring, dax", minor: 45, kernel: allKernelFlags, size: 64,
			opts:    Options{Backing: &fakeBacking{}, IOUring: true, DAX: &fakeDAX{}, NoKillPrivV2: true},
			want:    abi.InitPassthrough | abi.InitOverIoUring | abi.InitMapAlignment,
			notWant: abi.InitHandleKillprivV2,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeFS()
			s := NewServer(f, c.opts)
			r := s.NewRequest()
			r.In = initReq(c.minor, c.kernel)
			n := s.Handle(r)
			oh := outHdr(t, r.Out, n)
			if oh.Error != 0 {
				t.Fatalf("INIT error %d", oh.Error)
			}
			if n != abi.OutHeaderSize+c.size || int(oh.Len) != n || oh.Unique != 2 {
				t.Fatalf("INIT reply %d bytes (header len %d unique %d), want %d", n, oh.Len, oh.Unique, abi.OutHeaderSize+c.size)
			}
			var out abi.InitOut
			buf := make([]byte, abi.InitOutSize)
			copy(buf, r.Out[abi.OutHeaderSize:n])
			out.Unmarshal(buf)
			if out.Major != 7 || out.Minor != c.minor {
				t.Errorf("version %d.%d, want 7.%d", out.Major, out.Minor, c.minor)
			}
			got := abi.InitFlags(out.Flags)
			if c.size == abi.InitOutSize {
				got = abi.MakeInitFlags(out.Flags, out.Flags2)
			}
			if got&^c.kernel != 0 {
				t.Errorf("reply flags %v not offered by the kernel", got&^c.kernel)
			}
			if got&c.want != c.want {
				t.Errorf("reply flags %v lack %v", got, c.want&^got)
			}
			if got&c.notWant != 0 {
				t.Errorf("reply flags have %v", got&c.notWant)
			}
			ag, ok := s.Agreed()
			if !ok || ag.Minor != c.minor || ag.Flags != got {
				t.Errorf("Agreed() = %+v, %v", ag, ok)
			}
			if c.size == abi.InitOutSize {
				if got&abi.InitMaxPages != 0 && (out.MaxWrite != DefaultMaxWrite || int(out.MaxPages)*s.pageSize < DefaultMaxWrite) {
					t.Errorf("max_write %d max_pages %d", out.MaxWrite, out.MaxPages)
				}
				if got&abi.InitPassthrough != 0 && out.MaxStackDepth != 1 {
					t.Errorf("max_stack_depth %d with passthrough", out.MaxStackDepth)
				}
				if got&abi.InitMapAlignment != 0 && out.MapAlignment != 12 {
					t.Errorf("map_alignment %d", out.MapAlignment)
				}
			}
			if f.init.KillPrivV2 != (got&abi.InitHandleKillprivV2 != 0) || f.init.Passthrough != (got&abi.InitPassthrough != 0) ||
				f.init.Writeback != (got&abi.InitWritebackCache != 0) {
				t.Errorf("fs.InitInfo %+v does not match %v", f.init, got)
			}
			// A second INIT is refused.
			r.In = initReq(c.minor, c.kernel)
			n = s.Handle(r)
			if oh := outHdr(t, r.Out, n); oh.Error != -int32(syscall.EIO) {
				t.Errorf("second INIT: error %d", oh.Error)
			}
		})
	}
}

func TestInitRefused(t *testing.T) {
	for _, c := range []struct {
		name  string
		in    []byte
		errno syscall.Errno
		size  int
	}{
		{"minor 11", initReq(11, 0), syscall.EPROTO, 0},
		{"major 6", mkReq(abi.OpInit, 2, 0, enc(&abi.InitIn{Major: 6, Minor: 40}, 64)), syscall.EPROTO, 0},
		{"major 8", mkReq(abi.OpInit, 2, 0, enc(&abi.InitIn{Major: 8, Minor: 1}, 64)), 0, abi.CompatInitOutSize},
		{"short", mkReq(abi.OpInit, 2, 0, make([]byte, 8)), syscall.EINVAL, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := NewServer(newFakeFS(), Options{})
			r := s.NewRequest()
			r.In = c.in
			n := s.Handle(r)
			oh := outHdr(t, r.Out, n)
			if syscall.Errno(-oh.Error) != c.errno || n != abi.OutHeaderSize+c.size {
				t.Fatalf("error %d, %d bytes; want %v, %d", oh.Error, n, c.errno, abi.OutHeaderSize+c.size)
			}
			if _, ok := s.Agreed(); ok {
				t.Error("agreed after a refused INIT")
			}
			// Other requests are refused before INIT.
			r.In = mkReq(abi.OpGetattr, 4, 1, enc(&abi.GetattrIn{}, abi.GetattrInSize))
			if oh := outHdr(t, r.Out, s.Handle(r)); oh.Error != -int32(syscall.EIO) {
				t.Errorf("GETATTR before INIT: error %d", oh.Error)
			}
		})
	}
}

func TestGetattr(t *testing.T) {
	h := newHarness(t, Options{})
	b := h.ok(mkReq(abi.OpGetattr, 10, 5, enc(&abi.GetattrIn{GetattrFlags: abi.GetattrFh, Fh: 3}, abi.GetattrInSize)))
	if len(b) != abi.AttrOutSize {
		t.Fatalf("reply args %d bytes", len(b))
	}
	var ao abi.AttrOut
	ao.Unmarshal(b)
	if ao.AttrValid != 2 || ao.Attr.Ino != 5 || ao.Attr.Size != 13 || ao.Attr.Mode != syscall.S_IFREG|0o644 || ao.Attr.MtimeNsec != 5 {
		t.Errorf("attr_out %+v", ao)
	}
	c := h.fs.last()
	if c.op != "getattr" || c.ino != 5 || c.fh != 3 || c.a != 1 || c.ctx.Uid != 1000 || c.ctx.Gid != 100 || c.ctx.Pid != 42 || c.ctx.Unique != 10 {
		t.Errorf("call %+v", c)
	}
	if oh := outHdr(t, h.out, len(h.out)); oh.Unique != 10 {
		t.Errorf("unique %d", oh.Unique)
	}
}

func TestLookup(t *testing.T) {
	h := newHarness(t, Options{})
	b := h.ok(mkReq(abi.OpLookup, 10, 1, cstr("file")))
	var eo abi.EntryOut
	if len(b) != abi.EntryOutSize || !eo.Unmarshal(b) {
		t.Fatalf("reply args %d bytes", len(b))
	}
	if eo.NodeID != 5 || eo.Generation != 7 || eo.EntryValid != 1 || eo.EntryValidNsec != 5e8 || eo.AttrValid != 1 || eo.Attr.Ino != 5 {
		t.Errorf("entry_out %+v", eo)
	}
	if c := h.fs.last(); c.op != "lookup" || c.ino != 1 || c.name != "file" {
		t.Errorf("call %+v", c)
	}
	// Negative entry: success with node 0.
	b = h.ok(mkReq(abi.OpLookup, 12, 1, cstr("missing")))
	eo.Unmarshal(b)
	if eo.NodeID != 0 || eo.EntryValid != 1 {
		t.Errorf("negative entry %+v", eo)
	}
}

func TestRead(t *testing.T) {
	h := newHarness(t, Options{})
	in := mkReq(abi.OpRead, 10, 5, enc(&abi.ReadIn{Fh: 77, Offset: 7, Size: 4096}, abi.ReadInSize))
	b := h.ok(in)
	if string(b) != "world\n" {
		t.Errorf("read %q", b)
	}
	if c := h.fs.last(); c.op != "read" || c.fh != 77 || c.a != 7 || c.b != 4096 {
		t.Errorf("call %+v", c)
	}
	// With a transport sink: the header counts the data in Dst.
	var dst bufSink
	dst.buf = make([]byte, 0, 4096)
	h.r.In, h.r.Dst = in, &dst
	n := h.s.Handle(h.r)
	oh := outHdr(t, h.r.Out, n)
	if n != abi.OutHeaderSize || oh.Error != 0 || int(oh.Len) != n+6 || h.r.DataLen() != 6 || string(dst.buf) != "world\n" {
		t.Errorf("Dst read: n %d header %+v DataLen %d data %q", n, oh, h.r.DataLen(), dst.buf)
	}
	// A READ larger than Out is refused rather than answered short.
	h.fails(mkReq(abi.OpRead, 10, 5, enc(&abi.ReadIn{Size: uint32(len(h.r.Out))}, abi.ReadInSize)), syscall.EINVAL)
}

// bufSink is a transport Sink over a slice.
type bufSink struct{ buf []byte }

func (k *bufSink) Cap() int { return cap(k.buf) - len(k.buf) }
func (k *bufSink) Len() int { return len(k.buf) }
func (k *bufSink) Append(p []byte) int {
	n := min(len(p), k.Cap())
	k.buf = append(k.buf, p[:n]...)
	return n
}
func (k *bufSink) ReadFrom(fd int, off int64, n int) (int, fs.Errno) {
	return 0, syscall.ENOSYS
}

// bufSource is a transport Source over a slice.
type bufSource struct{ p []byte }

func (s *bufSource) Len() int                                  { return len(s.p) }
func (s *bufSource) CopyTo(p []byte) int                       { return copy(p, s.p) }
func (s *bufSource) WriteTo(fd int, off int64) (int, fs.Errno) { return 0, syscall.ENOSYS }

func TestWrite(t *testing.T) {
	h := newHarness(t, Options{})
	payload := []byte("some data")
	wi := abi.WriteIn{Fh: 77, Offset: 100, Size: uint32(len(payload)), WriteFlags: abi.WriteKillSuidGID}
	b := h.ok(mkReq(abi.OpWrite, 10, 5, enc(&wi, abi.WriteInSize), payload))
	var wo abi.WriteOut
	wo.Unmarshal(b)
	if len(b) != abi.WriteOutSize || wo.Size != uint32(len(payload)) || !bytes.Equal(h.fs.wrote, payload) {
		t.Errorf("write_out %+v, wrote %q", wo, h.fs.wrote)
	}
	if c := h.fs.last(); c.fh != 77 || c.a != 100 || c.flags&fs.WriteKillSuidGid == 0 {
		t.Errorf("call %+v", c)
	}
	// With Src: In ends after write_in, the header counts the payload.
	in := mkReq(abi.OpWrite, 12, 5, enc(&wi, abi.WriteInSize))
	hl := uint32(len(in) + len(payload))
	in[0], in[1], in[2], in[3] = byte(hl), byte(hl>>8), byte(hl>>16), byte(hl>>24)
	h.fs.wrote = nil
	h.r.In, h.r.Src, h.r.Dst = in, &bufSource{payload}, nil
	n := h.s.Handle(h.r)
	if oh := outHdr(t, h.r.Out, n); oh.Error != 0 || !bytes.Equal(h.fs.wrote, payload) {
		t.Errorf("Src write: header %+v wrote %q", oh, h.fs.wrote)
	}
	// Payload and size disagree.
	wi.Size = 3
	h.fails(mkReq(abi.OpWrite, 14, 5, enc(&wi, abi.WriteInSize), payload), syscall.EINVAL)
}

func TestCreateOpenRelease(t *testing.T) {
	h := newHarness(t, Options{})
	b := h.ok(mkReq(abi.OpCreate, 10, 1, enc(&abi.CreateIn{Flags: syscall.O_RDWR, Mode: 0o644, Umask: 0o22}, abi.CreateInSize), cstr("new")))
	var eo abi.EntryOut
	var oo abi.OpenOut
	if len(b) != abi.EntryOutSize+abi.OpenOutSize || !eo.Unmarshal(b) || !oo.Unmarshal(b[abi.EntryOutSize:]) {
		t.Fatalf("create reply %d bytes", len(b))
	}
	if eo.NodeID != 9 || oo.Fh != 78 || oo.OpenFlags&abi.FopenPassthrough != 0 {
		t.Errorf("entry %+v open %+v", eo, oo)
	}
	if c := h.fs.last(); c.op != "create" || c.name != "new" || c.a != 0o644 || c.ctx.Umask != 0o22 {
		t.Errorf("call %+v", c)
	}
	b = h.ok(mkReq(abi.OpOpen, 12, 9, enc(&abi.OpenIn{Flags: syscall.O_RDONLY}, abi.OpenInSize)))
	oo.Unmarshal(b)
	if len(b) != abi.OpenOutSize || oo.Fh != 77 || oo.OpenFlags != abi.FopenKeepCache {
		t.Errorf("open_out %+v", oo)
	}
	b = h.ok(mkReq(abi.OpRelease, 14, 9, enc(&abi.ReleaseIn{Fh: 77}, abi.ReleaseInSize)))
	if len(b) != 0 || h.fs.last().op != "release" || h.fs.last().fh != 77 {
		t.Errorf("release: %d bytes, call %+v", len(b), h.fs.last())
	}
	// A failing Release still answers success.
	h.fs.fail = syscall.EBADF
	h.ok(mkReq(abi.OpRelease, 16, 9, enc(&abi.ReleaseIn{Fh: 77}, abi.ReleaseInSize)))
}

func TestStatfs(t *testing.T) {
	h := newHarness(t, Options{})
	b := h.ok(mkReq(abi.OpStatfs, 10, 1))
	var so abi.StatfsOut
	so.Unmarshal(b)
	if len(b) != abi.StatfsOutSize || so.St.Blocks != 1000 || so.St.NameLen != 255 || so.St.Frsize != 4096 {
		t.Errorf("statfs %+v", so)
	}
}

func TestForget(t *testing.T) {
	h := newHarness(t, Options{})
	if n := h.do(mkReq(abi.OpForget, 10, 5, enc(&abi.ForgetIn{Nlookup: 3}, abi.ForgetInSize))); n != 0 {
		t.Errorf("FORGET replied %d bytes", n)
	}
	if c := h.fs.last(); c.op != "forget" || c.ino != 5 || c.a != 3 {
		t.Errorf("call %+v", c)
	}
	h.fs.reset()
	list := append(enc(&abi.ForgetOne{NodeID: 5, Nlookup: 1}, 16), enc(&abi.ForgetOne{NodeID: 6, Nlookup: 2}, 16)...)
	if n := h.do(mkReq(abi.OpBatchForget, 12, 0, enc(&abi.BatchForgetIn{Count: 2}, 8), list)); n != 0 {
		t.Errorf("BATCH_FORGET replied %d bytes", n)
	}
	if len(h.fs.calls) != 2 || h.fs.calls[1].ino != 6 || h.fs.calls[1].a != 2 {
		t.Errorf("calls %+v", h.fs.calls)
	}
	// A count beyond the payload forgets nothing.
	h.fs.reset()
	if n := h.do(mkReq(abi.OpBatchForget, 14, 0, enc(&abi.BatchForgetIn{Count: 3}, 8), list)); n != 0 || len(h.fs.calls) != 0 {
		t.Errorf("bad BATCH_FORGET: reply %d, calls %+v", n, h.fs.calls)
	}
}
