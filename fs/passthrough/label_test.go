package passthrough

import (
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// labelCreates are the creating methods, each making name in the root as
// ctx, with the type it makes.
var labelCreates = []struct {
	op   string
	typ  uint32
	call func(f *FS, ctx *fs.Context, name string) fs.Errno
}{
	{"create", unix.S_IFREG, func(f *FS, ctx *fs.Context, name string) fs.Errno {
		var oo fs.OpenOut
		e := f.Create(ctx, fs.RootInode, []byte(name), 0o644, unix.O_WRONLY, &fs.Entry{}, &oo)
		if e == 0 {
			f.Release(ctx, 0, oo.Handle, 0)
		}
		return e
	}},
	{"mkdir", unix.S_IFDIR, func(f *FS, ctx *fs.Context, name string) fs.Errno {
		return f.Mkdir(ctx, fs.RootInode, []byte(name), 0o755, &fs.Entry{})
	}},
	{"mknod", unix.S_IFIFO, func(f *FS, ctx *fs.Context, name string) fs.Errno {
		return f.Mknod(ctx, fs.RootInode, []byte(name), unix.S_IFIFO|0o644, 0, &fs.Entry{})
	}},
	{"symlink", unix.S_IFLNK, func(f *FS, ctx *fs.Context, name string) fs.Errno {
		return f.Symlink(ctx, fs.RootInode, []byte(name), []byte("target"), &fs.Entry{})
	}},
}

// hostXattr reads name of path (not following a symlink).
func hostXattr(path, name string) (string, error) {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(path, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// TestSecurityLabelStored: a creating request's label (as fs/xattrmap's
// default map names it, user.virtiofs.security.selinux) is stored on the
// new regular file or directory, and on an unnamed Tmpfile; on a FIFO or
// symlink, where the host keeps no user.* xattr, the inode is made
// unlabelled. As root, an unmapped security.* label (--xattrmap none) is
// stored under that name.
func TestSecurityLabelStored(t *testing.T) {
	f, dir := newTestFS(t, Options{Xattr: true})
	const label = "system_u:object_r:container_file_t:s0\x00"
	ctx := &fs.Context{SecLabelName: []byte("user.virtiofs.security.selinux"), SecLabel: []byte(label)}
	for _, c := range labelCreates {
		name := "l-" + c.op
		if e := c.call(f, ctx, name); e != 0 {
			t.Errorf("%s with a label: %v", c.op, e)
			continue
		}
		got, err := hostXattr(join(dir, name), "user.virtiofs.security.selinux")
		switch c.typ {
		case unix.S_IFREG, unix.S_IFDIR:
			if err != nil || got != label {
				t.Errorf("%s: host label %q, %v; want %q", c.op, got, err, label)
			}
		default:
			if err != unix.ENODATA && err != unix.EPERM {
				t.Errorf("%s: host label %q, %v; want none (user.* is not kept on this type)", c.op, got, err)
			}
		}
	}
	// Tmpfile: the unnamed file carries it (read through its handle).
	var e fs.Entry
	var oo fs.OpenOut
	if errno := f.Tmpfile(ctx, fs.RootInode, 0o600, unix.O_RDWR, &e, &oo); errno != 0 {
		t.Fatalf("tmpfile with a label: %v", errno)
	}
	buf := make([]byte, 64)
	if n, errno := f.GetXattr(rootCtx, e.Ino, []byte("user.virtiofs.security.selinux"), buf); errno != 0 || string(buf[:n]) != label {
		t.Errorf("tmpfile: label %q, %v", buf[:n], errno)
	}
	f.Release(rootCtx, e.Ino, oo.Handle, 0)
	// No label: none stored.
	if errno := f.Mkdir(rootCtx, fs.RootInode, []byte("plain"), 0o755, &e); errno != 0 {
		t.Fatal(errno)
	}
	if _, err := hostXattr(join(dir, "plain"), "user.virtiofs.security.selinux"); err != unix.ENODATA {
		t.Errorf("mkdir without a label: host has one (%v)", err)
	}

	if os.Geteuid() == 0 {
		raw := &fs.Context{SecLabelName: []byte("security.selinux"), SecLabel: []byte(label)}
		for _, c := range labelCreates {
			name := "raw-" + c.op
			if errno := c.call(f, raw, name); errno != 0 {
				t.Errorf("%s with an unmapped label as root: %v", c.op, errno)
				continue
			}
			if got, err := hostXattr(join(dir, name), "security.selinux"); err != nil || got != label {
				t.Errorf("%s: host security.selinux %q, %v; want %q", c.op, got, err, label)
			}
		}
	}
}

// TestSecurityLabelFailureRemoves: a label the host refuses fails the
// creating request with the host's errno and leaves nothing created; a
// CREATE that opens an existing file does not label it.
func TestSecurityLabelFailureRemoves(t *testing.T) {
	testutil.RequireRoot(t) // the caller switch and "made as root" below
	f, dir := newTestFS(t, Options{Xattr: true})
	// No host namespace is called "bogus.": the kernel refuses it.
	bad := &fs.Context{SecLabelName: []byte("bogus.selinux"), SecLabel: []byte("x")}
	for _, c := range labelCreates {
		name := "bad-" + c.op
		if e := c.call(f, bad, name); e != syscall.EOPNOTSUPP {
			t.Errorf("%s with a label the host refuses: %v, want EOPNOTSUPP", c.op, e)
		}
		if _, err := os.Lstat(join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s failed, yet the host has %s: %v", c.op, name, err)
		}
	}
	if e := f.Tmpfile(bad, fs.RootInode, 0o600, unix.O_RDWR, &fs.Entry{}, &fs.OpenOut{}); e != syscall.EOPNOTSUPP {
		t.Errorf("tmpfile with a label the host refuses: %v", e)
	}
	// An existing file opened by CREATE keeps its own (no) label.
	if err := os.WriteFile(join(dir, "old"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	lbl := &fs.Context{SecLabelName: []byte("user.virtiofs.security.selinux"), SecLabel: []byte("new")}
	var oo fs.OpenOut
	if e := f.Create(lbl, fs.RootInode, []byte("old"), 0o644, unix.O_WRONLY, &fs.Entry{}, &oo); e != 0 {
		t.Fatalf("create of an existing file: %v", e)
	}
	f.Release(rootCtx, 0, oo.Handle, 0)
	if got, err := hostXattr(join(dir, "old"), "user.virtiofs.security.selinux"); err != unix.ENODATA {
		t.Errorf("an existing file opened by CREATE got the label: %q %v", got, err)
	}
	// Xattrs off: a label cannot be stored, so the request fails.
	g, gdir := newTestFS(t, Options{})
	if e := g.Mkdir(lbl, fs.RootInode, []byte("d"), 0o755, &fs.Entry{}); e != syscall.EOPNOTSUPP {
		t.Errorf("mkdir with a label, xattrs off: %v, want EOPNOTSUPP", e)
	}
	if _, err := os.Lstat(join(gdir, "d")); !os.IsNotExist(err) {
		t.Errorf("mkdir failed, yet the host has d: %v", err)
	}
}
