package p9

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs/passthrough"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// The permission matrix of issue 11 on the 9P door: every caller × every
// directory mode × every operation runs natively (on a thread switched to
// the caller's ids) and over a 9P connection identified as that caller,
// each on its own fresh copy of the same tree, and must give the same
// errno and, when it creates, the same owner, group and mode.
//
// The tree of a case: d (owned 1001:2000, mode under test) holding f
// (1002:2000, 0660).

type matrixCaller struct {
	name string
	id   Identity
}

var matrixCallers = []matrixCaller{
	{"dir-owner", Identity{Uid: 1001, Gid: 1001}},
	{"file-owner", Identity{Uid: 1002, Gid: 1002}},
	{"group-primary", Identity{Uid: 1003, Gid: 2000}},
	{"group-supplementary", Identity{Uid: 1004, Gid: 1004, Groups: []uint32{2000}}},
	{"other", Identity{Uid: 1005, Gid: 1005}},
}

var matrixDirModes = []uint32{0o755, 0o775, 0o777, 0o1777, 0o2775, 0o1770}

// matrixOp is one operation, natively (paths under base) and over 9P (on
// a connection attached at the case's root, fid 1).
type matrixOp struct {
	name    string
	creates string // the name of what it creates in d, to compare
	native  func(base string, id Identity) error
	p9      func(r *rawConn, id Identity) syscall.Errno
}

// rpcErr sends m and returns the Rlerror errno, or 0.
func rpcErr(r *rawConn, m Message) syscall.Errno {
	rm := r.rpc(m)
	if e, ok := rm.(*Rlerror); ok {
		return syscall.Errno(e.Ecode)
	}
	return 0
}

// walkErr walks fid 1 to newfid through names and returns the errno.
func walkErr(r *rawConn, newfid uint32, names ...string) syscall.Errno {
	rm := r.rpc(walkMsg(1, newfid, names...))
	if e, ok := rm.(*Rlerror); ok {
		return syscall.Errno(e.Ecode)
	}
	if w, ok := rm.(*Rwalk); ok && w.NQIDs != len(names) {
		return syscall.EACCES // a partial walk: refused at a later name
	}
	return 0
}

// then runs f if e is 0.
func then(e syscall.Errno, f func() syscall.Errno) syscall.Errno {
	if e != 0 {
		return e
	}
	return f()
}

var matrixOps = []matrixOp{
	{"create", "new",
		func(b string, id Identity) error {
			fd, err := syscall.Open(filepath.Join(b, "d/new"), syscall.O_CREAT|syscall.O_EXCL|syscall.O_RDWR, 0o644)
			if err == nil {
				syscall.Close(fd)
			}
			return err
		},
		func(r *rawConn, id Identity) syscall.Errno {
			return then(walkErr(r, 2, "d"), func() syscall.Errno {
				return rpcErr(r, &Tlcreate{Fid: 2, Name: []byte("new"), Flags: 2 | DotlExcl, Mode: 0o644, Gid: id.Gid})
			})
		}},
	{"mkdir", "newdir",
		func(b string, id Identity) error { return syscall.Mkdir(filepath.Join(b, "d/newdir"), 0o2755) },
		func(r *rawConn, id Identity) syscall.Errno {
			return then(walkErr(r, 2, "d"), func() syscall.Errno {
				return rpcErr(r, &Tmkdir{Dfid: 2, Name: []byte("newdir"), Mode: 0o2755, Gid: id.Gid})
			})
		}},
	{"mkfifo", "fifo",
		func(b string, id Identity) error {
			return syscall.Mknod(filepath.Join(b, "d/fifo"), syscall.S_IFIFO|0o640, 0)
		},
		func(r *rawConn, id Identity) syscall.Errno {
			return then(walkErr(r, 2, "d"), func() syscall.Errno {
				return rpcErr(r, &Tmknod{Dfid: 2, Name: []byte("fifo"), Mode: syscall.S_IFIFO | 0o640, Gid: id.Gid})
			})
		}},
	{"symlink", "sl",
		func(b string, id Identity) error { return syscall.Symlink("f", filepath.Join(b, "d/sl")) },
		func(r *rawConn, id Identity) syscall.Errno {
			return then(walkErr(r, 2, "d"), func() syscall.Errno {
				return rpcErr(r, &Tsymlink{Fid: 2, Name: []byte("sl"), Target: []byte("f"), Gid: id.Gid})
			})
		}},
	{"unlink", "",
		func(b string, id Identity) error { return syscall.Unlink(filepath.Join(b, "d/f")) },
		func(r *rawConn, id Identity) syscall.Errno {
			return then(walkErr(r, 2, "d"), func() syscall.Errno {
				return rpcErr(r, &Tunlinkat{DirFid: 2, Name: []byte("f")})
			})
		}},
	{"rename", "",
		func(b string, id Identity) error {
			return syscall.Rename(filepath.Join(b, "d/f"), filepath.Join(b, "d/g"))
		},
		func(r *rawConn, id Identity) syscall.Errno {
			return then(walkErr(r, 2, "d"), func() syscall.Errno {
				return rpcErr(r, &Trenameat{OldDirFid: 2, OldName: []byte("f"), NewDirFid: 2, NewName: []byte("g")})
			})
		}},
	{"link", "hl",
		func(b string, id Identity) error {
			return syscall.Link(filepath.Join(b, "d/f"), filepath.Join(b, "d/hl"))
		},
		func(r *rawConn, id Identity) syscall.Errno {
			return then(walkErr(r, 2, "d"), func() syscall.Errno {
				return then(walkErr(r, 3, "d", "f"), func() syscall.Errno {
					return rpcErr(r, &Tlink{Dfid: 2, Fid: 3, Name: []byte("hl")})
				})
			})
		}},
	{"rmdir", "",
		func(b string, id Identity) error { return syscall.Rmdir(filepath.Join(b, "d/sub")) },
		func(r *rawConn, id Identity) syscall.Errno {
			return then(walkErr(r, 2, "d"), func() syscall.Errno {
				return rpcErr(r, &Tunlinkat{DirFid: 2, Name: []byte("sub"), Flags: AtRemoveDir})
			})
		}},
	{"unlink-symlink", "",
		func(b string, id Identity) error { return syscall.Unlink(filepath.Join(b, "d/sl0")) },
		func(r *rawConn, id Identity) syscall.Errno {
			return then(walkErr(r, 2, "d"), func() syscall.Errno {
				return rpcErr(r, &Tunlinkat{DirFid: 2, Name: []byte("sl0")})
			})
		}},
	{"rename-over-other", "",
		func(b string, id Identity) error {
			return syscall.Rename(filepath.Join(b, "d/f"), filepath.Join(b, "d/h"))
		},
		func(r *rawConn, id Identity) syscall.Errno {
			return then(walkErr(r, 2, "d"), func() syscall.Errno {
				return rpcErr(r, &Trenameat{OldDirFid: 2, OldName: []byte("f"), NewDirFid: 2, NewName: []byte("h")})
			})
		}},
	{"rename-dir-away", "",
		func(b string, id Identity) error {
			return syscall.Rename(filepath.Join(b, "d/sub"), filepath.Join(b, "d/sub2"))
		},
		func(r *rawConn, id Identity) syscall.Errno {
			return then(walkErr(r, 2, "d"), func() syscall.Errno {
				return rpcErr(r, &Trenameat{OldDirFid: 2, OldName: []byte("sub"), NewDirFid: 2, NewName: []byte("sub2")})
			})
		}},
	{"open-rdwr", "",
		func(b string, id Identity) error {
			fd, err := syscall.Open(filepath.Join(b, "d/f"), syscall.O_RDWR, 0)
			if err == nil {
				syscall.Close(fd)
			}
			return err
		},
		func(r *rawConn, id Identity) syscall.Errno {
			return then(walkErr(r, 3, "d", "f"), func() syscall.Errno { return rpcErr(r, &Tlopen{Fid: 3, Flags: 2}) })
		}},
	{"opendir", "",
		func(b string, id Identity) error {
			fd, err := syscall.Open(filepath.Join(b, "d"), syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
			if err == nil {
				syscall.Close(fd)
			}
			return err
		},
		func(r *rawConn, id Identity) syscall.Errno {
			return then(walkErr(r, 2, "d"), func() syscall.Errno { return rpcErr(r, &Tlopen{Fid: 2, Flags: 0}) })
		}},
	{"truncate", "",
		func(b string, id Identity) error { return syscall.Truncate(filepath.Join(b, "d/f"), 1) },
		func(r *rawConn, id Identity) syscall.Errno {
			return then(walkErr(r, 3, "d", "f"), func() syscall.Errno {
				return rpcErr(r, &Tsetattr{Fid: 3, Valid: SetAttrSize, Size: 1})
			})
		}},
	{"chmod", "",
		func(b string, id Identity) error { return syscall.Chmod(filepath.Join(b, "d/f"), 0o2640) },
		func(r *rawConn, id Identity) syscall.Errno {
			return then(walkErr(r, 3, "d", "f"), func() syscall.Errno {
				return rpcErr(r, &Tsetattr{Fid: 3, Valid: SetAttrMode, Mode: 0o2640})
			})
		}},
	{"chgrp-own-group", "",
		func(b string, id Identity) error { return syscall.Lchown(filepath.Join(b, "d/f"), -1, int(id.Gid)) },
		func(r *rawConn, id Identity) syscall.Errno {
			return then(walkErr(r, 3, "d", "f"), func() syscall.Errno {
				return rpcErr(r, &Tsetattr{Fid: 3, Valid: SetAttrGID, GID: id.Gid})
			})
		}},
	{"chown-root", "",
		func(b string, id Identity) error { return syscall.Lchown(filepath.Join(b, "d/f"), 0, -1) },
		func(r *rawConn, id Identity) syscall.Errno {
			return then(walkErr(r, 3, "d", "f"), func() syscall.Errno {
				return rpcErr(r, &Tsetattr{Fid: 3, Valid: SetAttrUID, UID: 0})
			})
		}},
	{"utimes-set", "",
		func(b string, id Identity) error {
			return syscall.UtimesNano(filepath.Join(b, "d/f"), []syscall.Timespec{{Sec: 1}, {Sec: 2}})
		},
		func(r *rawConn, id Identity) syscall.Errno {
			return then(walkErr(r, 3, "d", "f"), func() syscall.Errno {
				return rpcErr(r, &Tsetattr{Fid: 3, Valid: SetAttrAtime | SetAttrAtimeSet | SetAttrMtime | SetAttrMtimeSet, AtimeSec: 1, MtimeSec: 2})
			})
		}},
	{"utimes-now", "",
		func(b string, id Identity) error {
			p, err := syscall.BytePtrFromString(filepath.Join(b, "d/f"))
			if err != nil {
				return err
			}
			const atFdcwd = -100
			fdcwd := atFdcwd
			if _, _, e := syscall.Syscall6(syscall.SYS_UTIMENSAT, uintptr(fdcwd), uintptr(unsafe.Pointer(p)), 0, 0, 0, 0); e != 0 {
				return e
			}
			return nil
		},
		func(r *rawConn, id Identity) syscall.Errno {
			return then(walkErr(r, 3, "d", "f"), func() syscall.Errno {
				return rpcErr(r, &Tsetattr{Fid: 3, Valid: SetAttrAtime | SetAttrMtime})
			})
		}},
}

// asCaller runs f on a fresh locked thread switched to id (raw system
// calls: only that thread changes) and never unlocks it, so the thread
// dies with its goroutine instead of going back to the runtime.
func asCaller(id Identity, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		gs := id.Groups
		var p uintptr
		if len(gs) > 0 {
			p = uintptr(unsafe.Pointer(&gs[0]))
		}
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETGROUPS, uintptr(len(gs)), p, 0); e != 0 {
			errc <- fmt.Errorf("setgroups: %w", e)
			return
		}
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, uintptr(id.Gid), uintptr(id.Gid), uintptr(id.Gid)); e != 0 {
			errc <- fmt.Errorf("setresgid: %w", e)
			return
		}
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uintptr(id.Uid), uintptr(id.Uid), uintptr(id.Uid)); e != 0 {
			errc <- fmt.Errorf("setresuid: %w", e)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// matrixTree makes base/d and base/d/f for a case, and gives d and f
// the ACLs of acl (if any).
func matrixTree(t *testing.T, base string, dirMode uint32, acl *matrixACL) {
	t.Helper()
	d := filepath.Join(base, "d")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(base, 0o755)
	os.Chown(d, 1001, 2000)
	if err := syscall.Chmod(d, dirMode); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(d, "f")
	if err := os.WriteFile(f, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(f, 1002, 2000)
	syscall.Chmod(f, 0o660)
	// d/h: another user's file; d/sub: a directory; d/sl0: a symlink.
	h := filepath.Join(d, "h")
	os.WriteFile(h, nil, 0o600)
	os.Chown(h, 1003, 2000)
	syscall.Chmod(h, 0o660)
	sub := filepath.Join(d, "sub")
	os.Mkdir(sub, 0o775)
	os.Chown(sub, 1002, 2000)
	syscall.Chmod(sub, 0o775)
	sl := filepath.Join(d, "sl0")
	os.Symlink("f", sl)
	os.Lchown(sl, 1002, 2000)
	if acl == nil {
		return
	}
	for _, x := range []struct {
		path, name string
		ents       []aclEnt
	}{
		{d, "system.posix_acl_access", acl.dir},
		{d, "system.posix_acl_default", acl.dirDefault},
		{f, "system.posix_acl_access", acl.file},
	} {
		if x.ents == nil {
			continue
		}
		if err := unix.Setxattr(x.path, x.name, aclXattr(x.ents...), 0); err != nil {
			if errors.Is(err, unix.EOPNOTSUPP) {
				t.Skipf("the test directory's filesystem keeps no POSIX ACLs: %v", err)
			}
			t.Fatalf("set %s on %s: %v", x.name, x.path, err)
		}
	}
}

// aclEnt is one POSIX ACL entry: tag (aclUser…), permission bits, id.
type aclEnt struct {
	tag  uint16
	perm uint16
	id   uint32
}

// aclXattr encodes entries (in the kernel's order: user_obj, users,
// group_obj, groups, mask, other) as the system.posix_acl_* value.
func aclXattr(ents ...aclEnt) []byte {
	b := binary.LittleEndian.AppendUint32(nil, aclVersion)
	for _, e := range ents {
		id := e.id
		if e.tag == aclUserObj || e.tag == aclGroupObj || e.tag == aclMask || e.tag == aclOther {
			id = ^uint32(0) // ACL_UNDEFINED_ID
		}
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, id)
	}
	return b
}

// matrixACL gives d (dir, and its default ACL dirDefault) and d/f (file)
// POSIX ACLs on top of the tree of matrixTree (d 1001:2000, f 1002:2000
// 0660), so that what the ACL grants or denies differs from what the
// mode bits alone would: the server must decide as the kernel's
// posix_acl_permission does.
type matrixACL struct {
	name                  string
	dir, dirDefault, file []aclEnt
}

var matrixACLs = []matrixACL{
	// "other" (1005) may read and write f through a named-user entry.
	{name: "file-user-grants", file: []aclEnt{{aclUserObj, 6, 0}, {aclUser, 6, 1005}, {aclGroupObj, 6, 0}, {aclMask, 6, 0}, {aclOther, 0, 0}}},
	// group-primary (1003) is denied by its named-user entry although
	// its group may read and write.
	{name: "file-user-denies", file: []aclEnt{{aclUserObj, 6, 0}, {aclUser, 0, 1003}, {aclGroupObj, 6, 0}, {aclMask, 6, 0}, {aclOther, 0, 0}}},
	// The mask limits the named user and the group to reading.
	{name: "file-mask", file: []aclEnt{{aclUserObj, 6, 0}, {aclUser, 6, 1005}, {aclGroupObj, 6, 0}, {aclMask, 4, 0}, {aclOther, 0, 0}}},
	// A named group (1004, group-supplementary's primary group) may write
	// in d; d's own group only search and read, though the mask (the
	// mode's group bits) says rwx.
	{name: "dir-group-grants", dir: []aclEnt{{aclUserObj, 7, 0}, {aclGroupObj, 5, 0}, {aclGroup, 7, 1004}, {aclMask, 7, 0}, {aclOther, 5, 0}}},
	// A named user (1005, other) may write in d, and what is created
	// there inherits d's default ACL.
	{name: "dir-user-default", dir: []aclEnt{{aclUserObj, 7, 0}, {aclUser, 7, 1005}, {aclGroupObj, 5, 0}, {aclMask, 7, 0}, {aclOther, 5, 0}},
		dirDefault: []aclEnt{{aclUserObj, 7, 0}, {aclUser, 7, 1005}, {aclGroupObj, 5, 0}, {aclMask, 5, 0}, {aclOther, 0, 0}}},
	// A mask of --- on d: its group and named entries give nothing.
	{name: "dir-mask-none", dir: []aclEnt{{aclUserObj, 7, 0}, {aclUser, 7, 1005}, {aclGroupObj, 7, 0}, {aclMask, 0, 0}, {aclOther, 5, 0}}},
}

func TestPermMatrix(t *testing.T) {
	testutil.RequireRoot(t)
	native, served := t.TempDir(), t.TempDir()
	os.Chmod(filepath.Dir(native), 0o755) // the callers must reach it
	os.Chmod(native, 0o755)
	os.Chmod(served, 0o755)
	fsys, err := passthrough.New(served, passthrough.Options{Xattr: true})
	if err != nil {
		t.Fatal(err)
	}
	var next atomic.Pointer[Identity]
	s := NewServer(fsys, &Options{Logf: func(string, ...any) {}, Identify: func(net.Conn) (Peer, error) {
		return Peer{Identity: *next.Load()}, nil
	}})
	sock := filepath.Join(t.TempDir(), "9p.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	defer func() { s.Close(); fsys.Close() }()

	cases, diffs := 0, 0
	run := func(tree string, mode uint32, acl *matrixACL, c matrixCaller, op matrixOp) {
		cases++
		name := fmt.Sprintf("%s/%s/%s", tree, c.name, op.name)
		nb, sb := filepath.Join(native, fmt.Sprint(cases)), filepath.Join(served, fmt.Sprint(cases))
		matrixTree(t, nb, mode, acl)
		matrixTree(t, sb, mode, acl)
		var want syscall.Errno
		if err := asCaller(c.id, func() error { return op.native(nb, c.id) }); err != nil {
			e, ok := err.(syscall.Errno)
			if !ok {
				t.Fatalf("%s: native: %v", name, err)
			}
			want = e
		}
		id := c.id
		next.Store(&id)
		r := dialRaw(t, sock)
		r.version(65536)
		// Attach at the case's directory, as the caller.
		r.ok(&Tattach{Fid: 1, Afid: NoFid, Aname: []byte(fmt.Sprint(cases)), NUname: c.id.Uid}, MsgRattach)
		got := op.p9(r, c.id)
		r.nc.Close()
		if got != want {
			diffs++
			t.Errorf("%s: 9P gives %v, the kernel %v", name, errName(got), errName(want))
			return
		}
		if op.creates != "" && want == 0 {
			var a, b syscall.Stat_t
			syscall.Lstat(filepath.Join(nb, "d", op.creates), &a)
			syscall.Lstat(filepath.Join(sb, "d", op.creates), &b)
			if a.Uid != b.Uid || a.Gid != b.Gid || a.Mode != b.Mode {
				diffs++
				t.Errorf("%s: created %s: 9P uid %d gid %d mode %#o, natively uid %d gid %d mode %#o",
					name, op.creates, b.Uid, b.Gid, b.Mode, a.Uid, a.Gid, a.Mode)
			}
		}
		if op.name == "chmod" && want == 0 {
			var a, b syscall.Stat_t
			syscall.Lstat(filepath.Join(nb, "d/f"), &a)
			syscall.Lstat(filepath.Join(sb, "d/f"), &b)
			if a.Mode != b.Mode {
				diffs++
				t.Errorf("%s: mode after chmod: 9P %#o, natively %#o", name, b.Mode, a.Mode)
			}
		}
	}
	for _, mode := range matrixDirModes {
		for _, c := range matrixCallers {
			for _, op := range matrixOps {
				run(fmt.Sprintf("%#o", mode), mode, nil, c, op)
			}
		}
	}
	modeCases := cases
	for i := range matrixACLs {
		acl := &matrixACLs[i]
		for _, c := range matrixCallers {
			for _, op := range matrixOps {
				run("acl-"+acl.name, 0o755, acl, c, op)
			}
		}
	}
	t.Logf("%d cases (%d directory modes × %d callers × %d operations, then %d ACL trees × %d callers × %d operations), %d differ from the kernel",
		cases, len(matrixDirModes), len(matrixCallers), len(matrixOps), len(matrixACLs), len(matrixCallers), len(matrixOps), diffs)
	if cases-modeCases != len(matrixACLs)*len(matrixCallers)*len(matrixOps) {
		t.Errorf("ran %d ACL cases", cases-modeCases)
	}
}

func errName(e syscall.Errno) string {
	if e == 0 {
		return "success"
	}
	return e.Error()
}
