package passthrough

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

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

// TestUmaskKept: New leaves the process umask alone (widening it would
// make every file and socket the process creates elsewhere
// world-writable), and the modes the client sends are used as they are.
func TestUmaskKept(t *testing.T) {
	testutil.RequireRoot(t) // non-root callers' creations
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	f, dir := newTestFS(t, Options{})
	if m := unix.Umask(0o077); m != 0o077 {
		t.Errorf("New changed the process umask to %03o", m)
	}
	sg := join(dir, "sg")
	os.Mkdir(sg, 0o777)
	os.Chown(sg, 0, 2000)
	unix.Chmod(sg, 0o2777)
	sgd := lookup(t, f, fs.RootInode, "sg")
	user := &fs.Context{Caller: fs.Caller{Uid: 1000, Gid: 1000}}
	var e fs.Entry
	var oo fs.OpenOut
	for _, ctx := range []*fs.Context{rootCtx, user} {
		p := fmt.Sprintf("%d-", ctx.Uid)
		if errno := f.Mkdir(ctx, fs.RootInode, []byte(p+"d"), 0o777, &e); errno != 0 {
			t.Fatal(errno)
		}
		if e.Attr.Mode&07777 != 0o777 {
			t.Errorf("uid %d: Mkdir 0777: entry says %04o", ctx.Uid, e.Attr.Mode&07777)
		}
		if errno := f.Create(ctx, fs.RootInode, []byte(p+"f"), 0o666, unix.O_RDWR, &e, &oo); errno != 0 {
			t.Fatal(errno)
		}
		f.Release(ctx, e.Ino, oo.Handle, 0)
		if errno := f.Mknod(ctx, fs.RootInode, []byte(p+"fifo"), unix.S_IFIFO|0o662, 0, &e); errno != 0 {
			t.Fatal(errno)
		}
		if errno := f.Mkdir(ctx, sgd.Ino, []byte(p+"sub"), 0o775, &e); errno != 0 {
			t.Fatal(errno)
		}
		for name, want := range map[string]uint32{"d": 0o777, "f": 0o666, "fifo": 0o662, "sg/" + p + "sub": 0o2775} {
			rel := p + name
			if strings.HasPrefix(name, "sg/") {
				rel = name
			}
			if st := lstat(t, join(dir, rel)); st.Mode&07777 != want {
				t.Errorf("uid %d: %s has mode %04o, want %04o", ctx.Uid, rel, st.Mode&07777, want)
			}
		}
	}
}

// TestCapsRestored pins issue 9's defect: a request from uid 0 with
// another group left its thread without CAP_CHOWN, CAP_FOWNER and
// CAP_FSETID, and the next request on that thread failed. After every
// kind of identity switch the thread has the daemon's exact capability
// sets, fsuid, fsgid and groups, and root's chown works on it.
func TestCapsRestored(t *testing.T) {
	testutil.RequireRoot(t)
	f, dir := newTestFS(t, Options{})
	if !f.creds.ok {
		t.Fatal("the test runs as root but the FS cannot switch identity")
	}
	writeFile(t, join(dir, "victim"), "x", 0o644)
	victim := lookup(t, f, fs.RootInode, "victim")
	// asCaller runs on this goroutine's thread: locked, every request
	// below is served by the same OS thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	state := func() string {
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var d [2]unix.CapUserData
		if err := unix.Capget(&hdr, &d[0]); err != nil {
			t.Fatal(err)
		}
		u, _ := unix.SetfsuidRetUid(-1)
		g, _ := unix.SetfsgidRetGid(-1)
		gs, _ := unix.Getgroups()
		return fmt.Sprintf("caps %+v fsuid %d fsgid %d groups %v", d, u, g, gs)
	}
	before := state()
	callers := []*fs.Context{
		{Caller: fs.Caller{Uid: 0, Gid: 1000}},
		{Caller: fs.Caller{Uid: 1000, Gid: 1000}},
		{Caller: fs.Caller{Uid: 1000, Gid: 0}},
		{Caller: fs.Caller{Uid: 1000, Gid: 1000}, SuppGid: 2000, HasSuppGid: true},
		{Caller: fs.Caller{Uid: 0, Gid: 0}, SuppGid: 2000, HasSuppGid: true},
	}
	var e fs.Entry
	var ao fs.AttrOut
	for i, ctx := range callers {
		name := fmt.Sprintf("d%d", i)
		if errno := f.Mkdir(ctx, fs.RootInode, []byte(name), 0o755, &e); errno != 0 {
			t.Fatalf("Mkdir as %d:%d: %v", ctx.Uid, ctx.Gid, errno)
		}
		if st := lstat(t, join(dir, name)); st.Uid != ctx.Uid || st.Gid != ctx.Gid {
			t.Errorf("Mkdir as %d:%d made %d:%d", ctx.Uid, ctx.Gid, st.Uid, st.Gid)
		}
		if now := state(); now != before {
			t.Errorf("after a request as %d:%d (supp %v) the thread has\n%s\nwas\n%s", ctx.Uid, ctx.Gid, ctx.HasSuppGid, now, before)
		}
		// The next, unrelated request on the same thread: root's chown
		// needs CAP_CHOWN, chmod of a file of another owner CAP_FOWNER.
		in := fs.SetAttrIn{Valid: fs.SetUid | fs.SetGid, Uid: uint32(3000 + i), Gid: 3000}
		if errno := f.SetAttr(rootCtx, victim.Ino, &in, &ao); errno != 0 {
			t.Errorf("root's chown after a request as %d:%d: %v", ctx.Uid, ctx.Gid, errno)
		}
		in = fs.SetAttrIn{Valid: fs.SetMode, Mode: 0o4755}
		if errno := f.SetAttr(rootCtx, victim.Ino, &in, &ao); errno != 0 || ao.Attr.Mode&07777 != 0o4755 {
			t.Errorf("root's chmod u+s after a request as %d:%d: %v, mode %04o", ctx.Uid, ctx.Gid, errno, ao.Attr.Mode&07777)
		}
	}
}

// TestCreateExistingChecked pins issue 9's defect: CREATE without O_EXCL
// of a name that appeared after the client's lookup opened the existing
// file with the daemon's rights. It must be opened only if the caller
// could open it, and O_TRUNC by a non-owner clears set-user-ID.
func TestCreateExistingChecked(t *testing.T) {
	testutil.RequireRoot(t)
	f, dir := newTestFS(t, Options{})
	writeFile(t, join(dir, "secret"), "root's secret", 0o600)
	writeFile(t, join(dir, "shared"), "shared", 0o666)
	os.Chown(join(dir, "shared"), 0, 0)
	unix.Chmod(join(dir, "shared"), 0o4666)
	writeFile(t, join(dir, "grp"), "group", 0o640)
	os.Chown(join(dir, "grp"), 0, 2000)
	user := &fs.Context{Caller: fs.Caller{Uid: 1000, Gid: 1000}}
	var e fs.Entry
	var oo fs.OpenOut
	wantErrno(t, "CREATE O_RDWR|O_TRUNC of root's 0600 file as 1000",
		f.Create(user, fs.RootInode, []byte("secret"), 0o644, unix.O_RDWR|unix.O_TRUNC, &e, &oo), syscall.EACCES)
	if b, _ := os.ReadFile(join(dir, "secret")); string(b) != "root's secret" {
		t.Errorf("root's file now holds %q", b)
	}
	wantErrno(t, "CREATE O_EXCL of an existing name",
		f.Create(user, fs.RootInode, []byte("shared"), 0o644, unix.O_RDWR|unix.O_EXCL, &e, &oo), syscall.EEXIST)
	if errno := f.Create(user, fs.RootInode, []byte("shared"), 0o644, unix.O_WRONLY|unix.O_TRUNC, &e, &oo); errno != 0 {
		t.Fatalf("CREATE of a 0666 file as 1000: %v", errno)
	}
	f.Release(user, e.Ino, oo.Handle, 0)
	if st := lstat(t, join(dir, "shared")); st.Mode&07777 != 0o666 || st.Size != 0 || st.Uid != 0 {
		t.Errorf("after O_TRUNC by a non-owner: mode %04o size %d uid %d, want 0666, 0, 0", st.Mode&07777, st.Size, st.Uid)
	}
	wantErrno(t, "CREATE O_RDONLY of a 0640 file of group 2000 as 1000:1000",
		f.Create(user, fs.RootInode, []byte("grp"), 0o644, unix.O_RDONLY, &e, &oo), syscall.EACCES)
	member := &fs.Context{Caller: user.Caller, SuppGid: 2000, HasSuppGid: true}
	if errno := f.Create(member, fs.RootInode, []byte("grp"), 0o644, unix.O_RDONLY, &e, &oo); errno != 0 {
		t.Errorf("CREATE O_RDONLY of a 0640 file of group 2000 by a member through a supplementary group: %v", errno)
	} else {
		f.Release(member, e.Ino, oo.Handle, 0)
	}
	if errno := f.Create(rootCtx, fs.RootInode, []byte("secret"), 0o644, unix.O_RDWR, &e, &oo); errno != 0 {
		t.Errorf("CREATE of an existing file by root: %v", errno)
	} else {
		f.Release(rootCtx, e.Ino, oo.Handle, 0)
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

// TestMknodDevicesRefused: by default (no Options.AllowDevices) a device
// node is EPERM even for root, and nothing is left on the host; FIFOs,
// sockets and the 0:0 whiteout are made. With AllowDevices root makes
// them (TestMknodSymlinkLink).
func TestMknodDevicesRefused(t *testing.T) {
	testutil.RequireRoot(t) // as root the host itself would allow them
	f, dir := newTestFS(t, Options{})
	var e fs.Entry
	for _, c := range []struct {
		name string
		mode uint32
		rdev uint32
		want syscall.Errno
	}{
		{"null", unix.S_IFCHR | 0o666, uint32(unix.Mkdev(1, 3)), syscall.EPERM},
		{"loop", unix.S_IFBLK | 0o660, uint32(unix.Mkdev(7, 0)), syscall.EPERM},
		{"blk0", unix.S_IFBLK | 0o660, 0, syscall.EPERM},
		{"whiteout", unix.S_IFCHR, 0, 0},
		{"fifo", unix.S_IFIFO | 0o600, 0, 0},
		{"sock", unix.S_IFSOCK | 0o600, 0, 0},
	} {
		wantErrno(t, "Mknod "+c.name, f.Mknod(rootCtx, fs.RootInode, []byte(c.name), c.mode, c.rdev, &e), c.want)
		var st unix.Stat_t
		err := unix.Lstat(join(dir, c.name), &st)
		switch {
		case c.want != 0 && err != unix.ENOENT:
			t.Errorf("%s refused, yet the host has it: %v (mode %o)", c.name, err, st.Mode)
		case c.want == 0 && (err != nil || st.Mode&unix.S_IFMT != c.mode&unix.S_IFMT || uint32(st.Rdev) != c.rdev):
			t.Errorf("%s on the host: mode %o rdev %x, %v; want mode %o rdev %x", c.name, st.Mode, st.Rdev, err, c.mode, c.rdev)
		}
	}
}

// TestCreateExistingSpecial: CREATE without O_EXCL of a name that turns
// out to be a device node or a FIFO must not open it. The daemon would
// otherwise hand the client a handle on a host device (a guest's root, or
// its kernel, sends CREATE for a node it made with MKNOD: READ and WRITE
// then reach the host's disk), or block its worker in open(2) of a FIFO
// with no writer.
func TestCreateExistingSpecial(t *testing.T) {
	testutil.RequireRoot(t)
	f, dir := newTestFS(t, Options{})
	if err := unix.Mknod(join(dir, "zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(join(dir, "fifo"), 0o666); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"zero", "fifo"} {
		for _, ctx := range []*fs.Context{rootCtx, {Caller: fs.Caller{Uid: 1000, Gid: 1000}}} {
			var e fs.Entry
			var oo fs.OpenOut
			done := make(chan fs.Errno, 1)
			go func() { done <- f.Create(ctx, fs.RootInode, []byte(name), 0o644, unix.O_RDONLY, &e, &oo) }()
			var errno fs.Errno
			select {
			case errno = <-done:
			case <-time.After(3 * time.Second):
				// Unblock the open of the FIFO so the test can end.
				if w, err := os.OpenFile(join(dir, name), os.O_WRONLY, 0); err == nil {
					w.Close()
				}
				errno = <-done
				t.Errorf("CREATE of the existing %s as uid %d blocked in open(2)", name, ctx.Uid)
			}
			if errno == 0 {
				f.Release(ctx, e.Ino, oo.Handle, 0)
				t.Errorf("CREATE of the existing %s as uid %d opened it; want it refused", name, ctx.Uid)
			}
		}
	}
}
