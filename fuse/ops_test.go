package fuse

import (
	"bytes"
	"encoding/binary"
	"math"
	"reflect"
	"syscall"
	"testing"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse/abi"
)

// opCase is a valid request of one opcode, what it must answer and which
// filesystem call it must make.
type opCase struct {
	name  string
	in    []byte
	reply int    // argument bytes of the reply; -1: no reply
	call  string // the fake's op name; "" for none
	errno syscall.Errno
}

// validRequests has a well-formed request of every opcode the kernel sends.
// They seed FuzzHandle as well.
func validRequests() []opCase {
	lk := abi.LkIn{Fh: 3, Owner: 4, Lk: abi.FileLock{Start: 0, End: 100, Type: syscall.F_WRLCK, PID: 42}}
	rm := append(enc(&abi.RemovemappingIn{Count: 2}, abi.RemovemappingInSize),
		append(enc(&abi.RemovemappingOne{Moffset: 0, Len: 4096}, 16), enc(&abi.RemovemappingOne{Moffset: 8192, Len: 4096}, 16)...)...)
	return []opCase{
		{"LOOKUP", mkReq(abi.OpLookup, 10, 1, cstr("name")), abi.EntryOutSize, "lookup", 0},
		{"FORGET", mkReq(abi.OpForget, 10, 5, enc(&abi.ForgetIn{Nlookup: 1}, 8)), -1, "forget", 0},
		{"BATCH_FORGET", mkReq(abi.OpBatchForget, 10, 0, enc(&abi.BatchForgetIn{Count: 1}, 8), enc(&abi.ForgetOne{NodeID: 5, Nlookup: 1}, 16)), -1, "forget", 0},
		{"GETATTR", mkReq(abi.OpGetattr, 10, 5, enc(&abi.GetattrIn{}, abi.GetattrInSize)), abi.AttrOutSize, "getattr", 0},
		{"SETATTR", mkReq(abi.OpSetattr, 10, 5, enc(&abi.SetattrIn{Valid: abi.FattrSize | abi.FattrFh, Fh: 3, Size: 10}, abi.SetattrInSize)), abi.AttrOutSize, "setattr", 0},
		{"READLINK", mkReq(abi.OpReadlink, 10, 5), len("target/path"), "readlink", 0},
		{"SYMLINK", mkReq(abi.OpSymlink, 10, 1, cstr("link"), cstr("../target")), abi.EntryOutSize, "symlink", 0},
		{"MKNOD", mkReq(abi.OpMknod, 10, 1, enc(&abi.MknodIn{Mode: syscall.S_IFIFO | 0o600, Umask: 0o22}, abi.MknodInSize), cstr("fifo")), abi.EntryOutSize, "mknod", 0},
		{"MKDIR", mkReq(abi.OpMkdir, 10, 1, enc(&abi.MkdirIn{Mode: 0o755, Umask: 0o22}, abi.MkdirInSize), cstr("dir")), abi.EntryOutSize, "mkdir", 0},
		{"UNLINK", mkReq(abi.OpUnlink, 10, 1, cstr("file")), 0, "unlink", 0},
		{"RMDIR", mkReq(abi.OpRmdir, 10, 1, cstr("dir")), 0, "rmdir", 0},
		{"RENAME", mkReq(abi.OpRename, 10, 1, enc(&abi.RenameIn{Newdir: 2}, abi.RenameInSize), cstr("old"), cstr("new")), 0, "rename", 0},
		{"RENAME2", mkReq(abi.OpRename2, 10, 1, enc(&abi.Rename2In{Newdir: 2, Flags: 1}, abi.Rename2InSize), cstr("old"), cstr("new")), 0, "rename", 0},
		{"LINK", mkReq(abi.OpLink, 10, 1, enc(&abi.LinkIn{OldNodeID: 5}, abi.LinkInSize), cstr("hard")), abi.EntryOutSize, "link", 0},
		{"OPEN", mkReq(abi.OpOpen, 10, 5, enc(&abi.OpenIn{Flags: syscall.O_RDWR}, abi.OpenInSize)), abi.OpenOutSize, "open", 0},
		{"READ", mkReq(abi.OpRead, 10, 5, enc(&abi.ReadIn{Fh: 77, Size: 5}, abi.ReadInSize)), 5, "read", 0},
		{"WRITE", mkReq(abi.OpWrite, 10, 5, enc(&abi.WriteIn{Fh: 77, Size: 3}, abi.WriteInSize), []byte("abc")), abi.WriteOutSize, "write", 0},
		{"STATFS", mkReq(abi.OpStatfs, 10, 1), abi.StatfsOutSize, "statfs", 0},
		{"RELEASE", mkReq(abi.OpRelease, 10, 5, enc(&abi.ReleaseIn{Fh: 77}, abi.ReleaseInSize)), 0, "release", 0},
		{"FSYNC", mkReq(abi.OpFsync, 10, 5, enc(&abi.FsyncIn{Fh: 77, FsyncFlags: abi.FsyncFdatasync}, abi.FsyncInSize)), 0, "fsync", 0},
		{"SETXATTR", mkReq(abi.OpSetxattr, 10, 5, enc(&abi.SetxattrIn{Size: 3, Flags: 1}, abi.SetxattrInSize), cstr("user.x"), []byte("val")), 0, "setxattr", 0},
		{"GETXATTR", mkReq(abi.OpGetxattr, 10, 5, enc(&abi.GetxattrIn{Size: 100}, abi.GetxattrInSize), cstr("user.x")), 5, "getxattr", 0},
		{"GETXATTR size", mkReq(abi.OpGetxattr, 10, 5, enc(&abi.GetxattrIn{Size: 0}, abi.GetxattrInSize), cstr("user.x")), abi.GetxattrOutSize, "getxattr", 0},
		{"LISTXATTR", mkReq(abi.OpListxattr, 10, 5, enc(&abi.GetxattrIn{Size: 100}, abi.GetxattrInSize)), 14, "listxattr", 0},
		{"LISTXATTR size", mkReq(abi.OpListxattr, 10, 5, enc(&abi.GetxattrIn{}, abi.GetxattrInSize)), abi.GetxattrOutSize, "listxattr", 0},
		{"REMOVEXATTR", mkReq(abi.OpRemovexattr, 10, 5, cstr("user.x")), 0, "removexattr", 0},
		{"FLUSH", mkReq(abi.OpFlush, 10, 5, enc(&abi.FlushIn{Fh: 77, LockOwner: 9}, abi.FlushInSize)), 0, "flush", 0},
		{"OPENDIR", mkReq(abi.OpOpendir, 10, 1, enc(&abi.OpenIn{}, abi.OpenInSize)), abi.OpenOutSize, "opendir", 0},
		{"READDIR", mkReq(abi.OpReaddir, 10, 1, enc(&abi.ReadIn{Fh: 88, Size: 4096}, abi.ReadInSize)), 3 * 32, "readdir", 0},
		{"READDIRPLUS", mkReq(abi.OpReaddirplus, 10, 1, enc(&abi.ReadIn{Fh: 88, Size: 4096}, abi.ReadInSize)), 3 * 160, "readdir", 0},
		{"RELEASEDIR", mkReq(abi.OpReleasedir, 10, 1, enc(&abi.ReleaseIn{Fh: 88}, abi.ReleaseInSize)), 0, "releasedir", 0},
		{"FSYNCDIR", mkReq(abi.OpFsyncdir, 10, 1, enc(&abi.FsyncIn{Fh: 88}, abi.FsyncInSize)), 0, "fsyncdir", 0},
		{"GETLK", mkReq(abi.OpGetlk, 10, 5, enc(&lk, abi.LkInSize)), abi.LkOutSize, "getlk", 0},
		{"SETLK", mkReq(abi.OpSetlk, 10, 5, enc(&lk, abi.LkInSize)), 0, "setlk", 0},
		{"SETLKW", mkReq(abi.OpSetlkw, 10, 5, enc(&lk, abi.LkInSize)), 0, "setlk", 0},
		{"ACCESS", mkReq(abi.OpAccess, 10, 5, enc(&abi.AccessIn{Mask: 4}, abi.AccessInSize)), 0, "access", 0},
		{"CREATE", mkReq(abi.OpCreate, 10, 1, enc(&abi.CreateIn{Flags: syscall.O_RDWR, Mode: 0o644}, abi.CreateInSize), cstr("new")), abi.EntryOutSize + abi.OpenOutSize, "create", 0},
		{"INTERRUPT", mkReq(abi.OpInterrupt, 11, 0, enc(&abi.InterruptIn{Unique: 10}, abi.InterruptInSize)), -1, "", 0},
		{"BMAP", mkReq(abi.OpBmap, 10, 5, enc(&abi.BmapIn{Block: 1, Blocksize: 4096}, abi.BmapInSize)), 0, "", syscall.ENOSYS},
		{"DESTROY", mkReq(abi.OpDestroy, 10, 0), 0, "", 0},
		{"IOCTL", mkReq(abi.OpIoctl, 10, 5, enc(&abi.IoctlIn{Fh: 77, Cmd: 0x5401}, abi.IoctlInSize)), 0, "", syscall.ENOTTY},
		{"POLL", mkReq(abi.OpPoll, 10, 5, enc(&abi.PollIn{Fh: 77}, abi.PollInSize)), 0, "", syscall.ENOSYS},
		{"NOTIFY_REPLY", mkReq(abi.OpNotifyReply, 10, 5, enc(&abi.NotifyRetrieveIn{Size: 2}, abi.NotifyRetrieveInSize), []byte("ab")), -1, "", 0},
		{"FALLOCATE", mkReq(abi.OpFallocate, 10, 5, enc(&abi.FallocateIn{Fh: 77, Offset: 0, Length: 4096}, abi.FallocateInSize)), 0, "fallocate", 0},
		{"LSEEK", mkReq(abi.OpLseek, 10, 5, enc(&abi.LseekIn{Fh: 77, Offset: 5, Whence: 3}, abi.LseekInSize)), abi.LseekOutSize, "lseek", 0},
		{"COPY_FILE_RANGE", mkReq(abi.OpCopyFileRange, 10, 5, enc(&abi.CopyFileRangeIn{FhIn: 1, NodeIDOut: 6, FhOut: 2, Len: 8192}, abi.CopyFileRangeInSize)), abi.WriteOutSize, "copy", 0},
		{"COPY_FILE_RANGE_64", mkReq(abi.OpCopyFileRange64, 10, 5, enc(&abi.CopyFileRangeIn{FhIn: 1, NodeIDOut: 6, FhOut: 2, Len: 8 << 30}, abi.CopyFileRangeInSize)), abi.CopyFileRangeOutSize, "copy", 0},
		{"SETUPMAPPING", mkReq(abi.OpSetupmapping, 10, 5, enc(&abi.SetupmappingIn{Fh: 77, Foffset: 0, Len: 2 << 20, Flags: abi.SetupmappingRead, Moffset: 0}, abi.SetupmappingInSize)), 0, "", syscall.ENOSYS},
		{"REMOVEMAPPING", mkReq(abi.OpRemovemapping, 10, 5, rm), 0, "", syscall.ENOSYS},
		{"SYNCFS", mkReq(abi.OpSyncfs, 10, 1, enc(&abi.SyncfsIn{}, abi.SyncfsInSize)), 0, "syncfs", 0},
		{"TMPFILE", mkReq(abi.OpTmpfile, 10, 1, enc(&abi.CreateIn{Flags: syscall.O_RDWR, Mode: 0o600}, abi.CreateInSize), cstr("/")), abi.EntryOutSize + abi.OpenOutSize, "tmpfile", 0},
		{"STATX", mkReq(abi.OpStatx, 10, 5, enc(&abi.StatxIn{SxMask: 0xfff}, abi.StatxInSize)), abi.StatxOutSize, "statx", 0},
		{"CUSE_INIT", mkReq(abi.OpCuseInit, 10, 0, enc(&abi.CuseInitIn{Major: 7, Minor: 45}, abi.CuseInitInSize)), 0, "", syscall.ENOSYS},
		{"unknown 54", mkReq(54, 10, 1), 0, "", syscall.ENOSYS},
		{"unused 7", mkReq(7, 10, 1), 0, "", syscall.ENOSYS},
	}
}

func TestEveryOpcode(t *testing.T) {
	for _, c := range validRequests() {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			h.fs.reset()
			n := h.do(c.in)
			if c.reply < 0 {
				if n != 0 {
					t.Fatalf("replied %d bytes, want no reply", n)
				}
			} else {
				if e := h.err(); e != c.errno {
					t.Fatalf("errno %v, want %v", e, c.errno)
				}
				if n != abi.OutHeaderSize+c.reply {
					t.Errorf("reply %d argument bytes, want %d", n-abi.OutHeaderSize, c.reply)
				}
				if oh := outHdr(t, h.out, n); oh.Unique != 10 {
					t.Errorf("unique %d", oh.Unique)
				}
			}
			if got := h.fs.last().op; got != c.call {
				t.Errorf("filesystem call %q, want %q", got, c.call)
			}
		})
	}
}

// TestOpcodeArguments checks that each request's fields reach the
// filesystem where they belong.
func TestOpcodeArguments(t *testing.T) {
	h := newHarness(t, Options{})
	check := func(in []byte, want call) {
		t.Helper()
		h.fs.reset()
		h.ok(in)
		got := h.fs.last()
		got.ctx = fs.Context{}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("call %+v, want %+v", got, want)
		}
	}
	check(mkReq(abi.OpSetattr, 10, 5, enc(&abi.SetattrIn{Valid: abi.FattrSize | abi.FattrFh | 1<<20, Fh: 3, Size: 10}, abi.SetattrInSize)),
		call{op: "setattr", ino: 5, fh: 3, a: 10, flags: fs.SetSize | fs.SetHandle})
	check(mkReq(abi.OpSymlink, 10, 1, cstr("link"), cstr("../target")), call{op: "symlink", ino: 1, name: "link", name2: "../target"})
	check(mkReq(abi.OpRename2, 10, 1, enc(&abi.Rename2In{Newdir: 2, Flags: 2}, abi.Rename2InSize), cstr("old"), cstr("new")),
		call{op: "rename", ino: 1, name: "old", a: 2, name2: "new", flags: 2})
	check(mkReq(abi.OpLink, 10, 3, enc(&abi.LinkIn{OldNodeID: 5}, abi.LinkInSize), cstr("hard")), call{op: "link", ino: 5, a: 3, name: "hard"})
	check(mkReq(abi.OpSetxattr, 10, 5, enc(&abi.SetxattrIn{Size: 3, Flags: 2}, abi.SetxattrInSize), cstr("user.x"), []byte("v\x00l")),
		call{op: "setxattr", ino: 5, name: "user.x", name2: "v\x00l", flags: 2})
	check(mkReq(abi.OpFsync, 10, 5, enc(&abi.FsyncIn{Fh: 7, FsyncFlags: abi.FsyncFdatasync}, abi.FsyncInSize)), call{op: "fsync", ino: 5, fh: 7, a: 1})
	check(mkReq(abi.OpFallocate, 10, 5, enc(&abi.FallocateIn{Fh: 7, Offset: 4, Length: 8, Mode: 1}, abi.FallocateInSize)),
		call{op: "fallocate", ino: 5, fh: 7, a: 4, b: 8, flags: 1})
	check(mkReq(abi.OpSetlk, 10, 5, enc(&abi.LkIn{Fh: 7, Owner: 9, Lk: abi.FileLock{Type: syscall.F_UNLCK}, LkFlags: abi.LkFlock}, abi.LkInSize)),
		call{op: "setlk", ino: 5, fh: 7, a: 9, b: 1, flags: syscall.F_UNLCK})
	check(mkReq(abi.OpStatx, 10, 5, enc(&abi.StatxIn{GetattrFlags: abi.GetattrFh, Fh: 7, SxFlags: 0x800, SxMask: 0x7ff}, abi.StatxInSize)),
		call{op: "statx", ino: 5, fh: 7, a: 1, b: 0x7ff, flags: 0x800})
	// COPY_FILE_RANGE (32-bit reply) clamps the length below 4 GiB.
	check(mkReq(abi.OpCopyFileRange, 10, 5, enc(&abi.CopyFileRangeIn{FhIn: 1, NodeIDOut: 6, Len: 8 << 30}, abi.CopyFileRangeInSize)),
		call{op: "copy", ino: 5, fh: 1, a: 6, b: math.MaxUint32})
	var wo abi.WriteOut
	wo.Unmarshal(h.out[abi.OutHeaderSize:])
	if wo.Size != math.MaxUint32 {
		t.Errorf("copy_file_range write_out %d", wo.Size)
	}
	// RELEASE with FLOCK_UNLOCK drops flock locks first.
	h.fs.reset()
	h.ok(mkReq(abi.OpRelease, 10, 5, enc(&abi.ReleaseIn{Fh: 7, ReleaseFlags: abi.ReleaseFlockUnlock, LockOwner: 9}, abi.ReleaseInSize)))
	if len(h.fs.calls) != 2 || h.fs.calls[0].op != "setlk" || h.fs.calls[0].b != 1 || h.fs.calls[0].flags != syscall.F_UNLCK || h.fs.calls[1].op != "release" {
		t.Errorf("calls %+v", h.fs.calls)
	}
	// GETXATTR with a too small buffer passes ERANGE on.
	h.fails(mkReq(abi.OpGetxattr, 10, 5, enc(&abi.GetxattrIn{Size: 2}, abi.GetxattrInSize), cstr("user.x")), syscall.ERANGE)
	b := h.ok(mkReq(abi.OpGetxattr, 10, 5, enc(&abi.GetxattrIn{}, abi.GetxattrInSize), cstr("user.x")))
	var gxo abi.GetxattrOut
	if gxo.Unmarshal(b); gxo.Size != 5 {
		t.Errorf("getxattr size probe %d", gxo.Size)
	}
}

// TestSetxattrCompat: without SETXATTR_EXT the kernel sends the 8-byte
// fuse_setxattr_in.
func TestSetxattrCompat(t *testing.T) {
	f := newFakeFS()
	s := NewServer(f, Options{})
	r := s.NewRequest()
	r.In = initReq(32, abi.InitFlags(1<<29-1)) // 7.32: no SETXATTR_EXT
	if outHdr(t, r.Out, s.Handle(r)).Error != 0 {
		t.Fatal("INIT")
	}
	r.In = mkReq(abi.OpSetxattr, 10, 5, enc(&abi.SetxattrIn{Size: 3}, abi.SetxattrInSize)[:8], cstr("user.x"), []byte("val"))
	if oh := outHdr(t, r.Out, s.Handle(r)); oh.Error != 0 {
		t.Fatalf("error %d", oh.Error)
	}
	if c := f.last(); c.name != "user.x" || c.name2 != "val" {
		t.Errorf("call %+v", c)
	}
}

func TestErrnoMapping(t *testing.T) {
	h := newHarness(t, Options{})
	in := mkReq(abi.OpGetattr, 10, 5, enc(&abi.GetattrIn{}, abi.GetattrInSize))
	for _, c := range []struct{ fail, want syscall.Errno }{
		{syscall.ENOENT, syscall.ENOENT}, {511, 511}, {512, syscall.EIO}, {1 << 40, syscall.EIO},
	} {
		h.fs.fail = c.fail
		h.fails(in, c.want)
	}
}

func TestPanicBecomesEIO(t *testing.T) {
	h := newHarness(t, Options{})
	h.fs.panic = true
	h.fails(mkReq(abi.OpGetattr, 10, 5, enc(&abi.GetattrIn{}, abi.GetattrInSize)), syscall.EIO)
	h.fs.panic = false
	h.ok(mkReq(abi.OpGetattr, 12, 5, enc(&abi.GetattrIn{}, abi.GetattrInSize)))
}

func TestDestroy(t *testing.T) {
	h := newHarness(t, Options{})
	h.ok(mkReq(abi.OpDestroy, 10, 0))
	h.fails(mkReq(abi.OpGetattr, 12, 5, enc(&abi.GetattrIn{}, abi.GetattrInSize)), syscall.EIO)
	h.fails(initReq(45, allKernelFlags), syscall.EIO)
}

// TestReaddirEncoding decodes READDIR and READDIRPLUS replies record by
// record: alignment, zero padding, cookies, names, and the size limit.
func TestReaddirEncoding(t *testing.T) {
	for _, plus := range []bool{false, true} {
		op, hdr := abi.OpReaddir, abi.DirentHeaderSize
		if plus {
			op, hdr = abi.OpReaddirplus, abi.DirentplusHeaderSize
		}
		t.Run(op.String(), func(t *testing.T) {
			h := newHarness(t, Options{})
			h.fs.dir = []string{"a", "eight888", "nine99999", "x"}
			b := h.ok(mkReq(op, 10, 1, enc(&abi.ReadIn{Fh: 88, Size: 4096}, abi.ReadInSize)))
			var names []string
			for off := 0; off < len(b); {
				if len(b)-off < hdr {
					t.Fatalf("truncated record at %d", off)
				}
				rec := b[off:]
				if plus {
					var eo abi.EntryOut
					eo.Unmarshal(rec)
					if eo.NodeID != uint64(100+len(names)) || eo.Attr.Mode != syscall.S_IFREG|0o600 || eo.EntryValid != 1 {
						t.Errorf("entry_out %+v", eo)
					}
					rec = rec[abi.EntryOutSize:]
				}
				var d abi.Dirent
				d.Unmarshal(rec)
				if d.Ino != uint64(100+len(names)) || d.Off != uint64(len(names)+1) || d.Type != syscall.DT_REG {
					t.Errorf("dirent %+v", d)
				}
				size := abi.DirentAlign(hdr + int(d.Namelen))
				if off+size > len(b) {
					t.Fatalf("record at %d overruns the reply", off)
				}
				names = append(names, string(rec[abi.DirentHeaderSize:abi.DirentHeaderSize+d.Namelen]))
				for _, p := range b[off+hdr+int(d.Namelen) : off+size] {
					if p != 0 {
						t.Errorf("non-zero padding after %q", names[len(names)-1])
					}
				}
				off += size
			}
			if got := len(names); got != 4 || names[1] != "eight888" || names[2] != "nine99999" {
				t.Errorf("names %q", names)
			}
			// Size limit: only whole records that fit, and resuming from
			// the last cookie continues.
			first := abi.DirentAlign(hdr + 1)
			b = h.ok(mkReq(op, 12, 1, enc(&abi.ReadIn{Fh: 88, Size: uint32(first + 8)}, abi.ReadInSize)))
			if len(b) != first {
				t.Errorf("limited reply %d bytes, want %d", len(b), first)
			}
			b = h.ok(mkReq(op, 14, 1, enc(&abi.ReadIn{Fh: 88, Offset: 4, Size: 4096}, abi.ReadInSize)))
			if len(b) != 0 {
				t.Errorf("read past the end: %d bytes", len(b))
			}
		})
	}
}

// TestReaddirBadEntries: entries the kernel would reject are refused and
// never reach it.
func TestReaddirBadEntries(t *testing.T) {
	for _, dir := range [][]string{{"a/b"}, {""}, {"nul\x00"}, {string(bytes.Repeat([]byte("n"), abi.NameLowMax+1))}} {
		h := newHarness(t, Options{})
		h.fs.dir = dir
		h.fails(mkReq(abi.OpReaddir, 10, 1, enc(&abi.ReadIn{Size: 8192}, abi.ReadInSize)), syscall.EIO)
	}
	// Good entries before a bad one are returned.
	h := newHarness(t, Options{})
	h.fs.dir = []string{"ok", "bad/"}
	if b := h.ok(mkReq(abi.OpReaddir, 10, 1, enc(&abi.ReadIn{Size: 8192}, abi.ReadInSize))); len(b) != abi.DirentRecordSize(2) {
		t.Errorf("reply %d bytes", len(b))
	}
}

func TestPassthrough(t *testing.T) {
	back := &fakeBacking{}
	h := newHarness(t, Options{Backing: back})
	if h.ag.Flags&abi.InitPassthrough == 0 {
		t.Fatal("passthrough not agreed")
	}
	h.fs.pfd = 33
	b := h.ok(mkReq(abi.OpOpen, 10, 5, enc(&abi.OpenIn{Flags: syscall.O_RDWR}, abi.OpenInSize)))
	var oo abi.OpenOut
	oo.Unmarshal(b)
	if oo.OpenFlags&abi.FopenPassthrough == 0 || oo.BackingID != 1 || back.open[1] != 33 {
		t.Fatalf("open_out %+v, registrations %v", oo, back.open)
	}
	// The fake fs answers KEEP_CACHE; the kernel fails a passthrough open
	// with any flag outside FOPEN_PASSTHROUGH_MASK, so it must be dropped.
	if oo.OpenFlags&^passthroughMask != 0 {
		t.Fatalf("passthrough open_out carries flags the kernel refuses: %#x", oo.OpenFlags)
	}
	b = h.ok(mkReq(abi.OpCreate, 12, 1, enc(&abi.CreateIn{Mode: 0o600}, abi.CreateInSize), cstr("new")))
	oo.Unmarshal(b[abi.EntryOutSize:])
	if oo.OpenFlags&abi.FopenPassthrough == 0 || oo.BackingID != 2 {
		t.Fatalf("create open_out %+v", oo)
	}
	// The ids stay registered until their handle's RELEASE.
	if len(back.closed) != 0 {
		t.Fatalf("closed before RELEASE: %v", back.closed)
	}
	h.ok(mkReq(abi.OpRelease, 14, 5, enc(&abi.ReleaseIn{Fh: 77}, abi.ReleaseInSize)))
	h.ok(mkReq(abi.OpRelease, 16, 9, enc(&abi.ReleaseIn{Fh: 78}, abi.ReleaseInSize)))
	if len(back.closed) != 2 || len(back.open) != 0 {
		t.Errorf("after RELEASE: closed %v, open %v", back.closed, back.open)
	}
	// A refused registration falls back to normal I/O.
	back.fail = syscall.EPERM
	b = h.ok(mkReq(abi.OpOpen, 18, 5, enc(&abi.OpenIn{}, abi.OpenInSize)))
	oo.Unmarshal(b)
	if oo.OpenFlags&abi.FopenPassthrough != 0 || oo.BackingID != 0 || oo.Fh != 77 || oo.OpenFlags&abi.FopenKeepCache == 0 {
		t.Errorf("fallback open_out %+v (KEEP_CACHE must stay without passthrough)", oo)
	}
	// Without a registrar the flag is stripped.
	h2 := newHarness(t, Options{})
	h2.fs.pfd = 33
	b = h2.ok(mkReq(abi.OpOpen, 10, 5, enc(&abi.OpenIn{}, abi.OpenInSize)))
	oo.Unmarshal(b)
	if oo.OpenFlags&abi.FopenPassthrough != 0 || oo.BackingID != 0 {
		t.Errorf("open_out without registrar %+v", oo)
	}
}

func TestDAX(t *testing.T) {
	d := &fakeDAX{}
	h := newHarness(t, Options{DAX: d})
	h.ok(mkReq(abi.OpSetupmapping, 10, 5, enc(&abi.SetupmappingIn{Fh: 1, Foffset: 4096, Len: 8192, Flags: abi.SetupmappingWrite, Moffset: 1 << 21}, abi.SetupmappingInSize)))
	rm := append(enc(&abi.RemovemappingIn{Count: 2}, 4), append(enc(&abi.RemovemappingOne{Moffset: 1, Len: 2}, 16), enc(&abi.RemovemappingOne{Moffset: 3, Len: 4}, 16)...)...)
	h.ok(mkReq(abi.OpRemovemapping, 12, 5, rm))
	want := [][4]uint64{{4096, 8192, 1 << 21, 1}, {0, 2, 1, 1 << 63}, {0, 4, 3, 1 << 63}}
	if len(d.calls) != 3 || d.calls[0] != want[0] || d.calls[1] != want[1] || d.calls[2] != want[2] {
		t.Errorf("calls %v", d.calls)
	}
	for _, in := range [][]byte{
		mkReq(abi.OpSetupmapping, 14, 5, enc(&abi.SetupmappingIn{Len: 0}, abi.SetupmappingInSize)),
		mkReq(abi.OpSetupmapping, 14, 5, enc(&abi.SetupmappingIn{Len: 10, Foffset: math.MaxUint64 - 5}, abi.SetupmappingInSize)),
		mkReq(abi.OpSetupmapping, 14, 5, enc(&abi.SetupmappingIn{Len: 10, Flags: 4}, abi.SetupmappingInSize)),
		mkReq(abi.OpRemovemapping, 14, 5, rm[:len(rm)-1]),
		mkReq(abi.OpRemovemapping, 14, 5, enc(&abi.RemovemappingIn{Count: 0}, 4)),
		// A count the payload does not hold (2^32-1 entries in 32 bytes).
		mkReq(abi.OpRemovemapping, 14, 5, append(enc(&abi.RemovemappingIn{Count: math.MaxUint32}, 4), rm[4:]...)),
		mkReq(abi.OpRemovemapping, 14, 5, append(enc(&abi.RemovemappingIn{Count: 1}, 4), enc(&abi.RemovemappingOne{Moffset: math.MaxUint64, Len: 2}, 16)...)),
	} {
		h.fails(in, syscall.EINVAL)
	}
}

// TestPassthroughSharedInode: the kernel allows one backing file per inode,
// so every passthrough open of an inode shares the first registration,
// which is dropped at the last RELEASE.
func TestPassthroughSharedInode(t *testing.T) {
	back := &fakeBacking{}
	h := newHarness(t, Options{Backing: back})
	h.fs.pfd = 33
	h.fs.nextFh = 100
	var ids []int32
	for _, u := range []uint64{10, 12} {
		var oo abi.OpenOut
		oo.Unmarshal(h.ok(mkReq(abi.OpOpen, u, 5, enc(&abi.OpenIn{}, abi.OpenInSize))))
		ids = append(ids, oo.BackingID)
	}
	if ids[0] != 1 || ids[1] != 1 || len(back.open) != 1 {
		t.Fatalf("backing ids %v, registrations %v", ids, back.open)
	}
	h.ok(mkReq(abi.OpRelease, 14, 5, enc(&abi.ReleaseIn{Fh: 100}, abi.ReleaseInSize)))
	if len(back.closed) != 0 {
		t.Fatalf("closed %v while a handle still uses it", back.closed)
	}
	h.ok(mkReq(abi.OpRelease, 16, 5, enc(&abi.ReleaseIn{Fh: 101}, abi.ReleaseInSize)))
	if len(back.closed) != 1 || back.closed[0] != 1 {
		t.Errorf("closed %v after the last RELEASE", back.closed)
	}
}

// withExt appends request extensions to a request built by mkReq and
// fixes its header's len and total_extlen.
func withExt(req []byte, ext []byte) []byte {
	var h abi.InHeader
	h.Unmarshal(req)
	b := append(append([]byte(nil), req...), ext...)
	h.Len = uint32(len(b))
	h.TotalExtlen = uint16(len(ext) / 8)
	h.Marshal(b)
	return b
}

// suppGroupExt is a FUSE_EXT_GROUPS extension naming groups.
func suppGroupExt(groups ...uint32) []byte {
	size := (abi.ExtHeaderSize + abi.SuppGroupsSize + 4*len(groups) + 7) &^ 7
	b := make([]byte, size)
	binary.NativeEndian.PutUint32(b[0:], uint32(size))
	binary.NativeEndian.PutUint32(b[4:], abi.ExtGroups)
	binary.NativeEndian.PutUint32(b[8:], uint32(len(groups)))
	for i, g := range groups {
		binary.NativeEndian.PutUint32(b[12+4*i:], g)
	}
	return b
}

// TestCreateSuppGroup: the engine asks for FUSE_CREATE_SUPP_GROUP and
// hands the group the kernel sends with a creating request to the
// filesystem; a malformed extension fails the request with EINVAL.
func TestCreateSuppGroup(t *testing.T) {
	h := newHarness(t, Options{})
	if h.ag.Flags&abi.InitCreateSuppGroup == 0 {
		t.Fatalf("INIT did not agree on CREATE_SUPP_GROUP: %v", h.ag.Flags)
	}
	mk := enc(&abi.MkdirIn{Mode: 0o755, Umask: 0o22}, abi.MkdirInSize)
	h.ok(withExt(mkReq(abi.OpMkdir, 10, 1, mk, cstr("d")), suppGroupExt(2000)))
	if c := h.fs.last(); c.op != "mkdir" || !c.ctx.HasSuppGid || c.ctx.SuppGid != 2000 || c.ctx.Gid != 100 {
		t.Errorf("mkdir with a supplementary group: fs saw %+v", c)
	}
	h.ok(mkReq(abi.OpMkdir, 11, 1, mk, cstr("e")))
	if c := h.fs.last(); c.ctx.HasSuppGid {
		t.Errorf("mkdir without an extension: fs saw a supplementary group %d", c.ctx.SuppGid)
	}
	// A security context block before the groups is skipped.
	secctx := make([]byte, 16)
	binary.NativeEndian.PutUint32(secctx[0:], 16)
	binary.NativeEndian.PutUint32(secctx[4:], 1)
	h.ok(withExt(mkReq(abi.OpMkdir, 12, 1, mk, cstr("f")), append(secctx, suppGroupExt(3000)...)))
	if c := h.fs.last(); !c.ctx.HasSuppGid || c.ctx.SuppGid != 3000 {
		t.Errorf("groups after a security context: fs saw %+v", c.ctx)
	}
	for name, ext := range map[string][]byte{
		"size beyond the area": func() []byte { b := suppGroupExt(1); binary.NativeEndian.PutUint32(b, 64); return b }(),
		"size zero":            func() []byte { b := suppGroupExt(1); binary.NativeEndian.PutUint32(b, 0); return b }(),
		"unaligned size":       func() []byte { b := suppGroupExt(1); binary.NativeEndian.PutUint32(b, 12); return b }(),
		"too many groups":      func() []byte { b := suppGroupExt(1); binary.NativeEndian.PutUint32(b[8:], 9); return b }(),
	} {
		h.fs.reset()
		h.fails(withExt(mkReq(abi.OpMkdir, 13, 1, mk, cstr("g")), ext), syscall.EINVAL)
		if c := h.fs.last(); c.op != "" {
			t.Errorf("%s: the filesystem was called (%s)", name, c.op)
		}
	}
}

// TestSetattrNothingKills: with HANDLE_KILLPRIV_V2 a SETATTR that changes
// nothing is the kernel's ATTR_KILL_SUID|ATTR_KILL_SGID (file_remove_privs
// before a FUSE passthrough write, chown(-1, -1)); the engine asks the
// filesystem to kill. Any real change, or no KILLPRIV_V2, passes through
// as sent.
func TestSetattrNothingKills(t *testing.T) {
	for _, c := range []struct {
		name   string
		opts   Options
		valid  abi.SetattrValid
		killed bool
	}{
		{"nothing", Options{}, 0, true},
		{"handle only", Options{}, abi.FattrFh, true},
		{"ctime (writeback)", Options{}, abi.FattrCtime | abi.FattrFh, true},
		{"mode", Options{}, abi.FattrMode, false},
		{"times", Options{}, abi.FattrAtimeNow | abi.FattrMtimeNow, false},
		{"nothing without KILLPRIV_V2", Options{NoKillPrivV2: true}, 0, false},
	} {
		h := newHarness(t, c.opts)
		h.ok(mkReq(abi.OpSetattr, 10, 5, enc(&abi.SetattrIn{Valid: c.valid}, abi.SetattrInSize)))
		got := h.fs.last().flags&fs.SetKillSuidGid != 0
		if got != c.killed {
			t.Errorf("%s: kill asked %v, want %v", c.name, got, c.killed)
		}
	}
}
