package passthrough

import (
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// TestCallerOwnership: every creating op as uid 1000 makes an inode owned
// by 1000 — even in a root-owned 0700 directory, because permission is the
// client kernel's decision — and the daemon's identity comes back.
func TestCallerOwnership(t *testing.T) {
	testutil.RequireRoot(t)
	f, dir := newTestFS(t, Options{})
	user := &fs.Context{Caller: fs.Caller{Uid: 1000, Gid: 1001, Pid: 1}}
	var e fs.Entry
	var oo fs.OpenOut
	check := func(what, name string) {
		t.Helper()
		st := lstat(t, join(dir, name))
		if st.Uid != 1000 || st.Gid != 1001 {
			t.Errorf("%s: owned by %d:%d, want 1000:1001", what, st.Uid, st.Gid)
		}
		if e.Attr.Uid != 1000 || e.Attr.Gid != 1001 {
			t.Errorf("%s: entry says %d:%d", what, e.Attr.Uid, e.Attr.Gid)
		}
	}
	if errno := f.Create(user, fs.RootInode, []byte("file"), 0o640, unix.O_RDWR, &e, &oo); errno != 0 {
		t.Fatalf("Create as 1000: %v", errno)
	}
	check("Create", "file")
	f.Release(user, e.Ino, oo.Handle, 0)
	if errno := f.Mkdir(user, fs.RootInode, []byte("dir"), 0o750, &e); errno != 0 {
		t.Fatalf("Mkdir: %v", errno)
	}
	check("Mkdir", "dir")
	if errno := f.Mknod(user, fs.RootInode, []byte("fifo"), unix.S_IFIFO|0o600, 0, &e); errno != 0 {
		t.Fatalf("Mknod: %v", errno)
	}
	check("Mknod", "fifo")
	if errno := f.Symlink(user, fs.RootInode, []byte("sym"), []byte("file"), &e); errno != 0 {
		t.Fatalf("Symlink: %v", errno)
	}
	check("Symlink", "sym")
	if errno := f.Tmpfile(user, fs.RootInode, 0o600, unix.O_RDWR, &e, &oo); errno != 0 {
		t.Fatalf("Tmpfile: %v", errno)
	}
	if e.Attr.Uid != 1000 || e.Attr.Gid != 1001 {
		t.Errorf("Tmpfile owned by %d:%d", e.Attr.Uid, e.Attr.Gid)
	}
	f.Release(user, e.Ino, oo.Handle, 0)

	// The daemon's thread identity is back: root creates root's files.
	if errno := f.Mkdir(rootCtx, fs.RootInode, []byte("rootdir"), 0o755, &e); errno != 0 {
		t.Fatal(errno)
	}
	if st := lstat(t, join(dir, "rootdir")); st.Uid != 0 || st.Gid != 0 {
		t.Errorf("root's dir owned by %d:%d", st.Uid, st.Gid)
	}
	if uid, _ := unix.SetfsuidRetUid(-1); uid != 0 {
		t.Errorf("this thread's fsuid is %d", uid)
	}
}

// TestSetgidDirectory: in a setgid directory new inodes take the
// directory's group and new directories inherit the bit, as on the host.
func TestSetgidDirectory(t *testing.T) {
	testutil.RequireRoot(t)
	f, dir := newTestFS(t, Options{})
	sg := join(dir, "sg")
	os.Mkdir(sg, 0o777)
	os.Chown(sg, 0, 2000)
	unix.Chmod(sg, 0o2777)
	d := lookup(t, f, fs.RootInode, "sg")
	user := &fs.Context{Caller: fs.Caller{Uid: 1000, Gid: 1001}}
	var e fs.Entry
	var oo fs.OpenOut
	if errno := f.Create(user, d.Ino, []byte("f"), 0o644, unix.O_RDWR, &e, &oo); errno != 0 {
		t.Fatal(errno)
	}
	f.Release(user, e.Ino, oo.Handle, 0)
	if st := lstat(t, join(sg, "f")); st.Uid != 1000 || st.Gid != 2000 {
		t.Errorf("file in setgid dir owned %d:%d, want 1000:2000", st.Uid, st.Gid)
	}
	if errno := f.Mkdir(user, d.Ino, []byte("sub"), 0o755, &e); errno != 0 {
		t.Fatal(errno)
	}
	if st := lstat(t, join(sg, "sub")); st.Gid != 2000 || st.Mode&unix.S_ISGID == 0 {
		t.Errorf("subdir of setgid dir: gid %d mode %o", st.Gid, st.Mode)
	}
}

// TestUmaskIgnored: the mode from the client is used as is.
func TestUmaskIgnored(t *testing.T) {
	f, dir := newTestFS(t, Options{})
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	f2, err := New(dir, Options{}) // New resets it
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	var e fs.Entry
	if errno := f.Mkdir(rootCtx, fs.RootInode, []byte("d"), 0o777, &e); errno != 0 {
		t.Fatal(errno)
	}
	if st := lstat(t, join(dir, "d")); st.Mode&0o777 != 0o777 {
		t.Errorf("mode %o, want 777", st.Mode&0o777)
	}
}

func TestAccess(t *testing.T) {
	testutil.RequireRoot(t) // to chown the test file to uid 1000
	f, dir := newTestFS(t, Options{})
	writeFile(t, join(dir, "f"), "", 0o640)
	writeFile(t, join(dir, "x"), "", 0o755)
	os.Chown(join(dir, "f"), 1000, 1001)
	fe := lookup(t, f, fs.RootInode, "f")
	xe := lookup(t, f, fs.RootInode, "x")
	owner := &fs.Context{Caller: fs.Caller{Uid: 1000, Gid: 5}}
	group := &fs.Context{Caller: fs.Caller{Uid: 2000, Gid: 1001}}
	other := &fs.Context{Caller: fs.Caller{Uid: 2000, Gid: 2000}}
	for _, c := range []struct {
		ctx  *fs.Context
		ino  fs.Inode
		mask uint32
		want syscall.Errno
	}{
		{owner, fe.Ino, unix.R_OK | unix.W_OK, 0},
		{owner, fe.Ino, unix.X_OK, syscall.EACCES},
		{group, fe.Ino, unix.R_OK, 0},
		{group, fe.Ino, unix.W_OK, syscall.EACCES},
		{other, fe.Ino, unix.R_OK, syscall.EACCES},
		{other, fe.Ino, unix.F_OK, 0},
		{rootCtx, fe.Ino, unix.R_OK | unix.W_OK, 0},
		{rootCtx, fe.Ino, unix.X_OK, syscall.EACCES}, // no x bit at all
		{rootCtx, xe.Ino, unix.X_OK, 0},
		{other, xe.Ino, unix.X_OK | unix.R_OK, 0},
		{rootCtx, fs.RootInode, unix.X_OK, 0},
		{rootCtx, fe.Ino, 0x10, syscall.EINVAL},
	} {
		wantErrno(t, "Access", f.Access(c.ctx, c.ino, c.mask), c.want)
	}
}
