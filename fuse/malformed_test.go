package fuse

import (
	"bytes"
	"encoding/binary"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/fuse/abi"
)

func setLen(b []byte, n int) []byte {
	binary.NativeEndian.PutUint32(b, uint32(n))
	return b
}

func TestMalformed(t *testing.T) {
	long := string(bytes.Repeat([]byte("x"), 256))
	getattr := mkReq(abi.OpGetattr, 10, 5, enc(&abi.GetattrIn{}, abi.GetattrInSize))
	withExt := mkReq(abi.OpGetattr, 10, 5, enc(&abi.GetattrIn{}, abi.GetattrInSize))
	binary.NativeEndian.PutUint16(withExt[36:], 100) // 800 bytes of extensions in a 56-byte request
	for _, c := range []struct {
		name  string
		in    []byte
		errno syscall.Errno // 0: no reply at all
	}{
		{"empty", nil, 0},
		{"short header", getattr[:39], 0},
		{"len larger than received", setLen(bytes.Clone(getattr), len(getattr)+1), syscall.EINVAL},
		{"len smaller than received", setLen(bytes.Clone(getattr), len(getattr)-1), syscall.EINVAL},
		{"extensions beyond the request", withExt, syscall.EINVAL},
		{"GETATTR short", mkReq(abi.OpGetattr, 10, 5, make([]byte, 15)), syscall.EINVAL},
		{"LOOKUP no NUL", mkReq(abi.OpLookup, 10, 1, []byte("name")), syscall.EINVAL},
		{"LOOKUP empty name", mkReq(abi.OpLookup, 10, 1, cstr("")), syscall.EINVAL},
		{"LOOKUP slash", mkReq(abi.OpLookup, 10, 1, cstr("a/b")), syscall.EINVAL},
		{"LOOKUP dot", mkReq(abi.OpLookup, 10, 1, cstr(".")), syscall.EINVAL},
		{"LOOKUP dotdot", mkReq(abi.OpLookup, 10, 1, cstr("..")), syscall.EINVAL},
		{"LOOKUP 256 bytes", mkReq(abi.OpLookup, 10, 1, cstr(long)), syscall.ENAMETOOLONG},
		{"LOOKUP trailing bytes", mkReq(abi.OpLookup, 10, 1, cstr("a"), []byte("b")), syscall.EINVAL},
		{"SYMLINK no target", mkReq(abi.OpSymlink, 10, 1, cstr("a")), syscall.EINVAL},
		{"SYMLINK empty target", mkReq(abi.OpSymlink, 10, 1, cstr("a"), cstr("")), syscall.EINVAL},
		{"SYMLINK target too long", mkReq(abi.OpSymlink, 10, 1, cstr("a"), cstr(string(bytes.Repeat([]byte("t"), 4096)))), syscall.ENAMETOOLONG},
		{"MKNOD short", mkReq(abi.OpMknod, 10, 1, make([]byte, 8), cstr("a")[:1]), syscall.EINVAL},
		{"MKDIR no name", mkReq(abi.OpMkdir, 10, 1, enc(&abi.MkdirIn{}, 8)), syscall.EINVAL},
		{"RENAME one name", mkReq(abi.OpRename, 10, 1, enc(&abi.RenameIn{Newdir: 2}, 8), cstr("a")), syscall.EINVAL},
		{"RENAME2 bad flags", mkReq(abi.OpRename2, 10, 1, enc(&abi.Rename2In{Newdir: 2, Flags: 8}, 16), cstr("a"), cstr("b")), syscall.EINVAL},
		{"RENAME newdir 0", mkReq(abi.OpRename, 10, 1, enc(&abi.RenameIn{}, 8), cstr("a"), cstr("b")), syscall.EINVAL},
		{"LINK old node 0", mkReq(abi.OpLink, 10, 1, enc(&abi.LinkIn{}, 8), cstr("a")), syscall.EINVAL},
		{"READ short", mkReq(abi.OpRead, 10, 5, make([]byte, 39)), syscall.EINVAL},
		{"READ negative offset", mkReq(abi.OpRead, 10, 5, enc(&abi.ReadIn{Offset: 1 << 63, Size: 1}, abi.ReadInSize)), syscall.EINVAL},
		{"WRITE size > payload", mkReq(abi.OpWrite, 10, 5, enc(&abi.WriteIn{Size: 5}, abi.WriteInSize), []byte("abc")), syscall.EINVAL},
		{"WRITE size < payload", mkReq(abi.OpWrite, 10, 5, enc(&abi.WriteIn{Size: 1}, abi.WriteInSize), []byte("abc")), syscall.EINVAL},
		{"WRITE beyond max_write", mkReq(abi.OpWrite, 10, 5, enc(&abi.WriteIn{Size: DefaultMaxWrite + 1}, abi.WriteInSize)), syscall.EINVAL},
		{"SETXATTR value size mismatch", mkReq(abi.OpSetxattr, 10, 5, enc(&abi.SetxattrIn{Size: 4}, 16), cstr("user.a"), []byte("abc")), syscall.EINVAL},
		{"SETXATTR too large", mkReq(abi.OpSetxattr, 10, 5, enc(&abi.SetxattrIn{Size: 65537}, 16), cstr("user.a")), syscall.E2BIG},
		{"SETXATTR bad flags", mkReq(abi.OpSetxattr, 10, 5, enc(&abi.SetxattrIn{Size: 1, Flags: 4}, 16), cstr("user.a"), []byte("v")), syscall.EINVAL},
		{"SETXATTR empty name", mkReq(abi.OpSetxattr, 10, 5, enc(&abi.SetxattrIn{Size: 1}, 16), cstr(""), []byte("v")), syscall.EINVAL},
		{"GETXATTR long name", mkReq(abi.OpGetxattr, 10, 5, enc(&abi.GetxattrIn{}, 8), cstr(long)), syscall.ERANGE},
		{"REMOVEXATTR no NUL", mkReq(abi.OpRemovexattr, 10, 5, []byte("user.a")), syscall.EINVAL},
		{"GETLK bad type", mkReq(abi.OpGetlk, 10, 5, enc(&abi.LkIn{Lk: abi.FileLock{Type: 3}}, abi.LkInSize)), syscall.EINVAL},
		{"CREATE slash", mkReq(abi.OpCreate, 10, 1, enc(&abi.CreateIn{}, 16), cstr("a/")), syscall.EINVAL},
		{"TMPFILE no name", mkReq(abi.OpTmpfile, 10, 1, enc(&abi.CreateIn{}, 16)), syscall.EINVAL},
		{"FALLOCATE overflow", mkReq(abi.OpFallocate, 10, 5, enc(&abi.FallocateIn{Offset: 1 << 62, Length: 1 << 62}, 32)), syscall.EINVAL},
		{"COPY_FILE_RANGE node 0", mkReq(abi.OpCopyFileRange, 10, 5, enc(&abi.CopyFileRangeIn{Len: 1}, 56)), syscall.EINVAL},
		{"LSEEK short", mkReq(abi.OpLseek, 10, 5, make([]byte, 8)), syscall.EINVAL},
		{"STATX short", mkReq(abi.OpStatx, 10, 5, make([]byte, 8)), syscall.EINVAL},
		{"SYNCFS short", mkReq(abi.OpSyncfs, 10, 1), syscall.EINVAL},
		{"ACCESS short", mkReq(abi.OpAccess, 10, 1, make([]byte, 4)), syscall.EINVAL},
		{"INIT again", initReq(45, allKernelFlags), syscall.EIO},
		// No reply for these, however malformed.
		{"FORGET short", mkReq(abi.OpForget, 10, 5, make([]byte, 4)), 0},
		{"BATCH_FORGET count mismatch", mkReq(abi.OpBatchForget, 10, 0, enc(&abi.BatchForgetIn{Count: 2}, 8), make([]byte, 16)), 0},
		{"INTERRUPT short", mkReq(abi.OpInterrupt, 11, 0, make([]byte, 3)), 0},
		{"FORGET bad len", setLen(mkReq(abi.OpForget, 10, 5, make([]byte, 8)), 3), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			h.fs.reset()
			n := h.do(c.in)
			if c.errno == 0 {
				if n != 0 {
					t.Fatalf("replied %d bytes, want no reply", n)
				}
			} else {
				if n != abi.OutHeaderSize {
					t.Fatalf("reply of %d bytes, want a header-only error", n)
				}
				if e := h.err(); e != c.errno {
					t.Fatalf("errno %v, want %v", e, c.errno)
				}
			}
			if op := h.fs.last().op; op != "" && op != "forget" {
				t.Errorf("the filesystem was called (%s)", op)
			}
			if op := h.fs.last().op; op == "forget" {
				t.Errorf("a malformed forget reached the filesystem")
			}
		})
	}
}

// TestSmallOut: a transport that hands a too small Out gets EIO, not a
// panic.
func TestSmallOut(t *testing.T) {
	h := newHarness(t, Options{})
	h.r.Out = make([]byte, 32)
	h.fails(mkReq(abi.OpStatx, 10, 5, enc(&abi.StatxIn{}, abi.StatxInSize)), syscall.EIO)
	h.r.Out = make([]byte, 8)
	if n := h.do(mkReq(abi.OpStatx, 10, 5, enc(&abi.StatxIn{}, abi.StatxInSize))); n != 0 {
		t.Errorf("replied %d bytes into an 8-byte Out", n)
	}
}

// TestInterruptSetlkw blocks a SETLKW in the filesystem and interrupts it
// from another worker; the blocked request answers EINTR and INTERRUPT
// itself answers nothing.
func TestInterruptSetlkw(t *testing.T) {
	for _, early := range []bool{false, true} {
		name := "registered"
		if early {
			name = "interrupt before registration"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, Options{Locks: true})
			h.fs.lk = make(chan struct{}, 1)
			lk := abi.LkIn{Fh: 3, Owner: 4, Lk: abi.FileLock{End: 100, Type: syscall.F_WRLCK}}
			intr := mkReq(abi.OpInterrupt, 21, 0, enc(&abi.InterruptIn{Unique: 20}, abi.InterruptInSize))
			w2 := h.s.NewRequest()
			if early {
				w2.In = intr
				if n := h.s.Handle(w2); n != 0 {
					t.Fatalf("INTERRUPT replied %d bytes", n)
				}
			}
			var wg sync.WaitGroup
			var n int
			wg.Add(1)
			go func() {
				defer wg.Done()
				h.r.In = mkReq(abi.OpSetlkw, 20, 5, enc(&lk, abi.LkInSize))
				n = h.s.Handle(h.r)
			}()
			select {
			case <-h.fs.lk:
			case <-time.After(5 * time.Second):
				t.Fatal("SETLKW never reached the filesystem")
			}
			if !early {
				w2.In = intr
				if n := h.s.Handle(w2); n != 0 {
					t.Fatalf("INTERRUPT replied %d bytes", n)
				}
			}
			done := make(chan struct{})
			go func() { wg.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("SETLKW not interrupted")
			}
			if oh := outHdr(t, h.r.Out, n); oh.Error != -int32(syscall.EINTR) || oh.Unique != 20 {
				t.Errorf("SETLKW reply %+v", oh)
			}
			h.s.intr.mu.Lock()
			left := len(h.s.intr.inflight)
			h.s.intr.mu.Unlock()
			if left != 0 {
				t.Errorf("%d requests still registered", left)
			}
			if h.r.req.intr.IsSet() {
				t.Error("the interrupt flag outlived its request")
			}
		})
	}
}
