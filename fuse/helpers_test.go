package fuse

import (
	"bytes"
	"encoding/binary"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse/abi"
)

// marshaler is any abi struct.
type marshaler interface{ Marshal([]byte) bool }

// enc encodes an abi struct of size n.
func enc(m marshaler, n int) []byte {
	b := make([]byte, n)
	if !m.Marshal(b) {
		panic("enc: short buffer")
	}
	return b
}

func cstr(s string) []byte { return append([]byte(s), 0) }

// mkReq builds a request with a correct header around the concatenated
// argument parts.
func mkReq(op abi.Opcode, unique, node uint64, parts ...[]byte) []byte {
	body := bytes.Join(parts, nil)
	h := abi.InHeader{Len: uint32(abi.InHeaderSize + len(body)), Opcode: op, Unique: unique, NodeID: node, UID: 1000, GID: 100, PID: 42}
	return append(enc(&h, abi.InHeaderSize), body...)
}

func initReq(minor uint32, flags abi.InitFlags) []byte {
	lo, hi := flags.Split()
	in := abi.InitIn{Major: 7, Minor: minor, MaxReadahead: 128 << 10, Flags: lo, Flags2: hi}
	b := enc(&in, abi.InitInSize)
	if minor < 36 {
		b = b[:abi.CompatInitInSize]
	}
	return mkReq(abi.OpInit, 2, 0, b)
}

// allKernelFlags is what a 6.18 kernel offers (all but DAX, submounts,
// io_uring bits are common; tests add those when they need them).
const allKernelFlags = abi.InitFlags(1<<43-1) &^ abi.InitReserved

// outHdr decodes a reply header.
func outHdr(t testing.TB, out []byte, n int) abi.OutHeader {
	t.Helper()
	var h abi.OutHeader
	if n < abi.OutHeaderSize || !h.Unmarshal(out[:n]) {
		t.Fatalf("reply of %d bytes has no header", n)
	}
	return h
}

// harness is a server with one worker Request.
type harness struct {
	t   testing.TB
	s   *Server
	r   *Request
	fs  *fakeFS
	ag  Agreement
	out []byte
}

func newHarness(t testing.TB, opts Options) *harness {
	f := newFakeFS()
	h := &harness{t: t, fs: f, s: NewServer(f, opts)}
	h.r = h.s.NewRequest()
	if n := h.do(initReq(45, allKernelFlags)); n == 0 {
		t.Fatal("INIT: no reply")
	}
	if e := h.err(); e != 0 {
		t.Fatalf("INIT: %v", e)
	}
	h.ag, _ = h.s.Agreed()
	return h
}

// do serves one request and returns n; h.out is the reply.
func (h *harness) do(in []byte) int {
	h.r.In, h.r.Src, h.r.Dst = in, nil, nil
	n := h.s.Handle(h.r)
	h.out = h.r.Out[:n]
	return n
}

// err is the errno of the last reply (0 on success).
func (h *harness) err() syscall.Errno {
	h.t.Helper()
	oh := outHdr(h.t, h.out, len(h.out))
	if int(oh.Len) != len(h.out)+h.r.DataLen() {
		h.t.Fatalf("reply header len %d, reply %d bytes + %d data", oh.Len, len(h.out), h.r.DataLen())
	}
	return syscall.Errno(-oh.Error)
}

// ok asserts success and returns the reply arguments.
func (h *harness) ok(in []byte) []byte {
	h.t.Helper()
	if n := h.do(in); n == 0 {
		h.t.Fatalf("%v: no reply", abi.Opcode(binary.NativeEndian.Uint32(in[4:])))
	}
	if e := h.err(); e != 0 {
		h.t.Fatalf("%v: errno %v", abi.Opcode(binary.NativeEndian.Uint32(in[4:])), e)
	}
	return h.out[abi.OutHeaderSize:]
}

// fails asserts an error reply with errno want.
func (h *harness) fails(in []byte, want syscall.Errno) {
	h.t.Helper()
	if n := h.do(in); n == 0 {
		h.t.Fatalf("no reply, want %v", want)
	}
	if len(h.out) != abi.OutHeaderSize {
		h.t.Errorf("error reply of %d bytes", len(h.out))
	}
	if e := h.err(); e != want {
		h.t.Fatalf("errno %v, want %v", e, want)
	}
}

// call is one recorded filesystem call.
type call struct {
	op    string
	ino   fs.Inode
	fh    fs.Handle
	name  string
	name2 string
	a, b  uint64
	flags uint32
	ctx   fs.Context
}

// fakeFS answers from fixed data and records every call.
type fakeFS struct {
	fs.Base
	mu    sync.Mutex
	calls []call
	init  fs.InitInfo
	file  []byte // contents of inode 5
	wrote []byte
	dir   []string
	fail  fs.Errno // returned by every method that can fail, if set
	panic bool     // GetAttr panics
	lk    chan struct{}
	pfd   int // PassthroughFd for Open (-1: no passthrough)
	xattr []byte
	// nextFh, if set, is the handle the next Open returns (then raised).
	nextFh fs.Handle
}

func newFakeFS() *fakeFS {
	return &fakeFS{file: []byte("hello, world\n"), dir: []string{"a", "bb", "ccc"}, pfd: -1, xattr: []byte("value")}
}

func (f *fakeFS) rec(c call) fs.Errno {
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	return f.fail
}

func (f *fakeFS) last() call {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return call{}
	}
	return f.calls[len(f.calls)-1]
}

func (f *fakeFS) reset() {
	f.mu.Lock()
	f.calls = f.calls[:0]
	f.mu.Unlock()
}

func attrOf(ino fs.Inode, mode uint32) fs.Attr {
	return fs.Attr{Ino: uint64(ino), Size: 13, Blocks: 1, Mode: mode, Nlink: 1, Uid: 1000, Gid: 100, Blksize: 4096, Mtime: 1700000000, MtimeNsec: 5}
}

func (f *fakeFS) Init(ctx *fs.Context, info *fs.InitInfo) fs.Errno {
	f.init = *info
	return 0
}

func (f *fakeFS) Lookup(ctx *fs.Context, parent fs.Inode, name []byte, out *fs.Entry) fs.Errno {
	if e := f.rec(call{op: "lookup", ino: parent, name: string(name)}); e != 0 {
		return e
	}
	if string(name) == "missing" {
		out.EntryTimeout = time.Second
		return 0 // negative entry
	}
	out.Ino = 5
	out.Generation = 7
	out.EntryTimeout = 1500 * time.Millisecond
	out.AttrTimeout = time.Second
	out.Attr = attrOf(5, syscall.S_IFREG|0o644)
	return 0
}

func (f *fakeFS) Forget(ino fs.Inode, n uint64) { f.rec(call{op: "forget", ino: ino, a: n}) }

func (f *fakeFS) GetAttr(ctx *fs.Context, ino fs.Inode, fh fs.Handle, hasHandle bool, out *fs.AttrOut) fs.Errno {
	if f.panic {
		panic("fake GetAttr panic")
	}
	if e := f.rec(call{op: "getattr", ino: ino, fh: fh, a: b2u(hasHandle), ctx: *ctx}); e != 0 {
		return e
	}
	out.Timeout = 2 * time.Second
	out.Attr = attrOf(ino, syscall.S_IFREG|0o644)
	return 0
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func (f *fakeFS) SetAttr(ctx *fs.Context, ino fs.Inode, in *fs.SetAttrIn, out *fs.AttrOut) fs.Errno {
	if e := f.rec(call{op: "setattr", ino: ino, fh: in.Handle, a: in.Size, flags: in.Valid}); e != 0 {
		return e
	}
	out.Attr = attrOf(ino, in.Mode)
	return 0
}

func (f *fakeFS) Readlink(ctx *fs.Context, ino fs.Inode, buf []byte) (int, fs.Errno) {
	if e := f.rec(call{op: "readlink", ino: ino}); e != 0 {
		return 0, e
	}
	return copy(buf, "target/path"), 0
}

func (f *fakeFS) newEntry(out *fs.Entry, mode uint32) {
	out.Ino = 9
	out.Attr = attrOf(9, mode)
}

func (f *fakeFS) Symlink(ctx *fs.Context, parent fs.Inode, name, target []byte, out *fs.Entry) fs.Errno {
	if e := f.rec(call{op: "symlink", ino: parent, name: string(name), name2: string(target), ctx: *ctx}); e != 0 {
		return e
	}
	f.newEntry(out, syscall.S_IFLNK|0o777)
	return 0
}

func (f *fakeFS) Mknod(ctx *fs.Context, parent fs.Inode, name []byte, mode, rdev uint32, out *fs.Entry) fs.Errno {
	if e := f.rec(call{op: "mknod", ino: parent, name: string(name), a: uint64(mode), b: uint64(rdev), ctx: *ctx}); e != 0 {
		return e
	}
	f.newEntry(out, mode)
	return 0
}

func (f *fakeFS) Mkdir(ctx *fs.Context, parent fs.Inode, name []byte, mode uint32, out *fs.Entry) fs.Errno {
	if e := f.rec(call{op: "mkdir", ino: parent, name: string(name), a: uint64(mode), ctx: *ctx}); e != 0 {
		return e
	}
	f.newEntry(out, syscall.S_IFDIR|mode)
	return 0
}

func (f *fakeFS) Unlink(ctx *fs.Context, parent fs.Inode, name []byte) fs.Errno {
	return f.rec(call{op: "unlink", ino: parent, name: string(name)})
}

func (f *fakeFS) Rmdir(ctx *fs.Context, parent fs.Inode, name []byte) fs.Errno {
	return f.rec(call{op: "rmdir", ino: parent, name: string(name)})
}

func (f *fakeFS) Rename(ctx *fs.Context, parent fs.Inode, name []byte, newParent fs.Inode, newName []byte, flags uint32) fs.Errno {
	return f.rec(call{op: "rename", ino: parent, name: string(name), a: uint64(newParent), name2: string(newName), flags: flags})
}

func (f *fakeFS) Link(ctx *fs.Context, ino fs.Inode, newParent fs.Inode, newName []byte, out *fs.Entry) fs.Errno {
	if e := f.rec(call{op: "link", ino: ino, a: uint64(newParent), name: string(newName), ctx: *ctx}); e != 0 {
		return e
	}
	out.Ino = ino
	out.Attr = attrOf(ino, syscall.S_IFREG|0o644)
	return 0
}

func (f *fakeFS) Open(ctx *fs.Context, ino fs.Inode, flags, openFlags uint32, out *fs.OpenOut) fs.Errno {
	if e := f.rec(call{op: "open", ino: ino, flags: flags, a: uint64(openFlags)}); e != 0 {
		return e
	}
	out.Handle = 77
	if f.nextFh != 0 {
		out.Handle = f.nextFh
		f.nextFh++
	}
	out.Flags = fs.OpenKeepCache
	if f.pfd >= 0 {
		out.Flags |= fs.OpenPassthrough
		out.PassthroughFd = f.pfd
	}
	return 0
}

func (f *fakeFS) Create(ctx *fs.Context, parent fs.Inode, name []byte, mode, flags uint32, out *fs.Entry, open *fs.OpenOut) fs.Errno {
	if e := f.rec(call{op: "create", ino: parent, name: string(name), a: uint64(mode), flags: flags, ctx: *ctx}); e != 0 {
		return e
	}
	f.newEntry(out, syscall.S_IFREG|mode)
	open.Handle = 78
	if f.pfd >= 0 {
		open.Flags |= fs.OpenPassthrough
		open.PassthroughFd = f.pfd
	}
	return 0
}

func (f *fakeFS) Tmpfile(ctx *fs.Context, parent fs.Inode, mode, flags uint32, out *fs.Entry, open *fs.OpenOut) fs.Errno {
	if e := f.rec(call{op: "tmpfile", ino: parent, a: uint64(mode), flags: flags, ctx: *ctx}); e != 0 {
		return e
	}
	f.newEntry(out, syscall.S_IFREG|mode)
	open.Handle = 79
	return 0
}

func (f *fakeFS) Read(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, size uint32, dst fs.Sink) fs.Errno {
	if e := f.rec(call{op: "read", ino: ino, fh: fh, a: uint64(off), b: uint64(size)}); e != 0 {
		return e
	}
	if off >= int64(len(f.file)) {
		return 0
	}
	end := min(int64(len(f.file)), off+int64(size))
	dst.Append(f.file[off:end])
	return 0
}

func (f *fakeFS) Write(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, src fs.Source, flags uint32) (uint32, fs.Errno) {
	if e := f.rec(call{op: "write", ino: ino, fh: fh, a: uint64(off), b: uint64(src.Len()), flags: flags}); e != 0 {
		return 0, e
	}
	b := make([]byte, src.Len())
	n := src.CopyTo(b)
	f.mu.Lock() // TestConcurrent writes from several workers
	f.wrote = b
	f.mu.Unlock()
	return uint32(n), 0
}

func (f *fakeFS) Flush(ctx *fs.Context, ino fs.Inode, fh fs.Handle, lockOwner uint64) fs.Errno {
	return f.rec(call{op: "flush", ino: ino, fh: fh, a: lockOwner})
}

func (f *fakeFS) Fsync(ctx *fs.Context, ino fs.Inode, fh fs.Handle, datasync bool) fs.Errno {
	return f.rec(call{op: "fsync", ino: ino, fh: fh, a: b2u(datasync)})
}

func (f *fakeFS) Release(ctx *fs.Context, ino fs.Inode, fh fs.Handle, flags uint32) fs.Errno {
	return f.rec(call{op: "release", ino: ino, fh: fh, flags: flags})
}

func (f *fakeFS) Fallocate(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off, length uint64, mode uint32) fs.Errno {
	return f.rec(call{op: "fallocate", ino: ino, fh: fh, a: off, b: length, flags: mode})
}

func (f *fakeFS) Lseek(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off int64, whence uint32) (int64, fs.Errno) {
	if e := f.rec(call{op: "lseek", ino: ino, fh: fh, a: uint64(off), flags: whence}); e != 0 {
		return 0, e
	}
	return off + 100, 0
}

func (f *fakeFS) CopyFileRange(ctx *fs.Context, inIno fs.Inode, inFh fs.Handle, inOff int64, outIno fs.Inode, outFh fs.Handle, outOff int64, length uint64, flags uint64) (uint64, fs.Errno) {
	if e := f.rec(call{op: "copy", ino: inIno, fh: inFh, a: uint64(outIno), b: length}); e != 0 {
		return 0, e
	}
	return length, 0
}

func (f *fakeFS) OpenDir(ctx *fs.Context, ino fs.Inode, flags uint32, out *fs.OpenOut) fs.Errno {
	if e := f.rec(call{op: "opendir", ino: ino, flags: flags}); e != 0 {
		return e
	}
	out.Handle = 88
	out.Flags = fs.OpenCacheDir
	return 0
}

func (f *fakeFS) ReadDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off uint64, dst fs.DirSink) fs.Errno {
	if e := f.rec(call{op: "readdir", ino: ino, fh: fh, a: off, b: b2u(dst.Plus())}); e != 0 {
		return e
	}
	if off >= uint64(len(f.dir)) {
		return 0
	}
	for i := int(off); i < len(f.dir); i++ {
		e := fs.DirEntry{Ino: uint64(100 + i), Off: uint64(i + 1), Type: syscall.DT_REG, Name: []byte(f.dir[i])}
		var ent fs.Entry
		var p *fs.Entry
		if dst.Plus() {
			ent = fs.Entry{Ino: fs.Inode(100 + i), Attr: attrOf(fs.Inode(100+i), syscall.S_IFREG|0o600), EntryTimeout: time.Second}
			p = &ent
		}
		if !dst.Add(e, p) {
			break
		}
	}
	return 0
}

func (f *fakeFS) ReleaseDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle) fs.Errno {
	return f.rec(call{op: "releasedir", ino: ino, fh: fh})
}

func (f *fakeFS) FsyncDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle, datasync bool) fs.Errno {
	return f.rec(call{op: "fsyncdir", ino: ino, fh: fh, a: b2u(datasync)})
}

func (f *fakeFS) StatFs(ctx *fs.Context, ino fs.Inode, out *fs.StatFs) fs.Errno {
	if e := f.rec(call{op: "statfs", ino: ino}); e != 0 {
		return e
	}
	*out = fs.StatFs{Blocks: 1000, Bfree: 500, Bavail: 400, Files: 100, Ffree: 50, Bsize: 4096, NameLen: 255, Frsize: 4096}
	return 0
}

func (f *fakeFS) Access(ctx *fs.Context, ino fs.Inode, mask uint32) fs.Errno {
	return f.rec(call{op: "access", ino: ino, flags: mask})
}

func (f *fakeFS) Statx(ctx *fs.Context, ino fs.Inode, fh fs.Handle, hasHandle bool, flags, mask uint32, out *fs.StatxOut) fs.Errno {
	if e := f.rec(call{op: "statx", ino: ino, fh: fh, a: b2u(hasHandle), b: uint64(mask), flags: flags}); e != 0 {
		return e
	}
	out.Statx = fs.Statx{Mask: mask, Ino: uint64(ino), Size: 13, Mode: syscall.S_IFREG | 0o644, Btime: fs.StatxTime{Sec: 5, Nsec: 6}}
	return 0
}

func (f *fakeFS) SyncFs(ctx *fs.Context, ino fs.Inode) fs.Errno {
	return f.rec(call{op: "syncfs", ino: ino})
}

func (f *fakeFS) SetXattr(ctx *fs.Context, ino fs.Inode, name, value []byte, flags uint32) fs.Errno {
	return f.rec(call{op: "setxattr", ino: ino, name: string(name), name2: string(value), flags: flags})
}

func (f *fakeFS) GetXattr(ctx *fs.Context, ino fs.Inode, name []byte, dst []byte) (int, fs.Errno) {
	if e := f.rec(call{op: "getxattr", ino: ino, name: string(name), a: uint64(len(dst))}); e != 0 {
		return 0, e
	}
	if len(dst) == 0 {
		return len(f.xattr), 0
	}
	if len(dst) < len(f.xattr) {
		return 0, syscall.ERANGE
	}
	return copy(dst, f.xattr), 0
}

func (f *fakeFS) ListXattr(ctx *fs.Context, ino fs.Inode, dst []byte) (int, fs.Errno) {
	if e := f.rec(call{op: "listxattr", ino: ino, a: uint64(len(dst))}); e != 0 {
		return 0, e
	}
	list := []byte("user.a\x00user.b\x00")
	if len(dst) == 0 {
		return len(list), 0
	}
	if len(dst) < len(list) {
		return 0, syscall.ERANGE
	}
	return copy(dst, list), 0
}

func (f *fakeFS) RemoveXattr(ctx *fs.Context, ino fs.Inode, name []byte) fs.Errno {
	return f.rec(call{op: "removexattr", ino: ino, name: string(name)})
}

func (f *fakeFS) GetLk(ctx *fs.Context, ino fs.Inode, fh fs.Handle, owner uint64, lk *fs.Lock, out *fs.Lock) fs.Errno {
	if e := f.rec(call{op: "getlk", ino: ino, fh: fh, a: owner, b: lk.Start}); e != 0 {
		return e
	}
	*out = fs.Lock{Start: 10, End: 20, Type: syscall.F_WRLCK, Pid: 99}
	return 0
}

func (f *fakeFS) SetLk(ctx *fs.Context, ino fs.Inode, fh fs.Handle, owner uint64, lk *fs.Lock, wait, flock bool) fs.Errno {
	e := f.rec(call{op: "setlk", ino: ino, fh: fh, a: owner, b: b2u(wait)*2 + b2u(flock), flags: lk.Type})
	if wait && f.lk != nil {
		// Block until interrupted, polling as the fs contract says.
		f.lk <- struct{}{}
		for !ctx.Interrupted() {
			time.Sleep(time.Millisecond)
		}
		return syscall.EINTR
	}
	return e
}

// fakeBacking is a BackingFiles that records registrations.
type fakeBacking struct {
	mu     sync.Mutex
	next   int32
	open   map[int32]int
	closed []int32
	fail   fs.Errno
}

func (b *fakeBacking) Open(fd int) (int32, fs.Errno) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fail != 0 {
		return 0, b.fail
	}
	if b.open == nil {
		b.open = map[int32]int{}
	}
	b.next++
	b.open[b.next] = fd
	return b.next, 0
}

func (b *fakeBacking) Close(id int32) fs.Errno {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.open[id]; !ok {
		return syscall.ENOENT
	}
	delete(b.open, id)
	b.closed = append(b.closed, id)
	return 0
}

// fakeDAX records mapping calls.
type fakeDAX struct {
	mu    sync.Mutex
	calls [][4]uint64
}

func (d *fakeDAX) SetupMapping(ctx *fs.Context, ino fs.Inode, fh fs.Handle, foffset, length, moffset, flags uint64) fs.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, [4]uint64{foffset, length, moffset, flags})
	return 0
}

func (d *fakeDAX) RemoveMapping(ctx *fs.Context, moffset, length uint64) fs.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, [4]uint64{0, length, moffset, 1 << 63})
	return 0
}
