package passthrough

import (
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/internal/sys"
)

// Lookup finds name in parent. A name already known costs one fstatat and
// allocates nothing; a new one is opened O_PATH beneath parent.
func (f *FS) Lookup(ctx *fs.Context, parent fs.Inode, name []byte, out *fs.Entry) fs.Errno {
	kind, e := checkName(name)
	if e != 0 {
		return e
	}
	dir, e := f.getDir(parent)
	if e != 0 {
		return e
	}
	defer f.inodes.put(dir)
	switch kind {
	case nameDot:
		return f.lookupSelf(dir, out)
	case nameDotDot:
		return f.lookupParent(dir, out)
	}
	var c cname
	e = f.lookupName(dir, name, c.set(name), out)
	if e == syscall.ENOENT && f.entryTimeout > 0 {
		// Cache the absence as long as a name: a name made on the host
		// shows within EntryTimeout, as a removed one vanishes within it.
		*out = fs.Entry{EntryTimeout: f.entryTimeout}
		return fs.OK
	}
	return e
}

// lookupName looks up the checked normal name (also given as the
// NUL-terminated cstr) in dir and fills out, raising the lookup count.
func (f *FS) lookupName(dir *inode, name []byte, cstr *byte, out *fs.Entry) fs.Errno {
	var st unix.Stat_t
	// AT_SYMLINK_NOFOLLOW and a single component: this stats the entry in
	// dir itself, whatever it is, and follows nothing.
	if e := sys.Fstatat(dir.fd, cstr, &st, unix.AT_SYMLINK_NOFOLLOW); e != 0 {
		return e
	}
	if id, ok := f.inodes.lookupKey(keyOf(&st), dir.fd, cstr); ok {
		f.fillEntry(out, id, &st)
		return fs.OK
	}
	return f.lookupNew(dir, name, out)
}

// lookupNew opens name O_PATH beneath dir and adds it to the table. The
// identity is taken from the opened fd, so a name replaced since an
// earlier stat yields the inode actually opened.
func (f *FS) lookupNew(dir *inode, name []byte, out *fs.Entry) fs.Errno {
	fd, e := openBeneath(dir, name, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if e != 0 {
		return e
	}
	return f.addFd(fd, out)
}

// addFd adds the O_PATH fd to the table (taking ownership) and fills out.
func (f *FS) addFd(fd int, out *fs.Entry) fs.Errno {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return errno(err)
	}
	id, e := f.inodes.insert(fd, &st)
	if e != 0 {
		return e
	}
	f.fillEntry(out, id, &st)
	return fs.OK
}

// lookupSelf answers "." : dir itself, one more lookup.
func (f *FS) lookupSelf(dir *inode, out *fs.Entry) fs.Errno {
	var st unix.Stat_t
	if err := unix.Fstat(dir.fd, &st); err != nil {
		return errno(err)
	}
	if dir.id == fs.RootInode {
		f.fillEntry(out, fs.RootInode, &st)
		return fs.OK
	}
	if id, ok := f.inodes.lookupKey(dir.key, -1, nil); ok && id == dir.id {
		f.fillEntry(out, id, &st)
		return fs.OK
	} else if ok {
		f.inodes.forget(id, 1)
	}
	return syscall.ESTALE // dir was forgotten while we looked
}

// lookupParent answers "..": the root's is the root; any other
// directory's parent is opened and accepted only if walking up from it
// meets the root (a directory the host moved out of the export has no
// parent the client may see: EACCES).
func (f *FS) lookupParent(dir *inode, out *fs.Entry) fs.Errno {
	if dir.id == fs.RootInode {
		return f.lookupSelf(dir, out)
	}
	pfd, err := unix.Openat(dir.fd, "..", unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return errno(err)
	}
	if e := f.beneathRoot(pfd); e != 0 {
		unix.Close(pfd)
		return e
	}
	return f.addFd(pfd, out)
}

// linkInode links the inode the O_PATH fd holds as name in dirFd:
// linkat(AT_EMPTY_PATH), which needs CAP_DAC_READ_SEARCH (ENOENT without
// it), else linkat(AT_SYMLINK_FOLLOW) of its /proc/self/fd magic link,
// which lands on the inode itself (a symlink is linked, not followed).
func linkInode(procFd, fd, dirFd int, name string) error {
	err := unix.Linkat(fd, "", dirFd, name, unix.AT_EMPTY_PATH)
	if err == syscall.ENOENT {
		err = unix.Linkat(procFd, procName(fd), dirFd, name, unix.AT_SYMLINK_FOLLOW)
	}
	return err
}

// Forget lowers ino's lookup count by n.
func (f *FS) Forget(ino fs.Inode, n uint64) { f.inodes.forget(ino, n) }

// newEntry finishes a creating request: it looks up the name just created
// in dir (of type typ, S_IFMT bits), gives it the permission bits of mode
// that the process umask took away (fixMode) and the client's security
// label (setLabel; if that fails, the name is removed again and the
// request fails), and fills out.
func (f *FS) newEntry(ctx *fs.Context, dir *inode, name []byte, typ, mode uint32, out *fs.Entry) fs.Errno {
	fd, e := openBeneath(dir, name, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if e != 0 {
		return e
	}
	if e := f.fixMode(ctx, fd, mode); e != 0 {
		unix.Close(fd)
		return e
	}
	if e := f.setLabel(ctx, fd, typ); e != 0 {
		unix.Close(fd)
		removeNew(dir, name, typ)
		return e
	}
	return f.addFd(fd, out)
}

// removeNew removes name, of type typ, which the request creating it has
// just made in dir, when the request fails after all (its label could not
// be stored): the client is told it failed, so nothing may be left. A
// name the host replaced in between is removed too (as virtiofsd does);
// an error is ignored: the request's own is reported.
func removeNew(dir *inode, name []byte, typ uint32) {
	flags := 0
	if typ == unix.S_IFDIR {
		flags = unix.AT_REMOVEDIR
	}
	_ = unix.Unlinkat(dir.fd, string(name), flags)
}

// fixMode gives the inode just created (fd, any kind of fd) the
// permission bits of mode that the process umask removed: the client's
// kernel applied the caller's umask already, and the host applied the
// daemon's on top (the FS never widens the process umask, which would make
// every file and socket the process creates elsewhere world-writable).
// Only bits are added, so a set-group-ID bit the host gave a directory
// stays. It runs as the daemon, and only on an inode the caller owns (the
// caller could chmod it itself), so a name swapped on the host between
// the creation and the open cannot make the daemon widen another's file.
// Symlinks have no mode to fix. The common case (mode&umask == 0) costs
// nothing.
func (f *FS) fixMode(ctx *fs.Context, fd int, mode uint32) fs.Errno {
	lost := mode & f.umask & 0o777
	if lost == 0 {
		return fs.OK
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return errno(err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK || st.Mode&lost == lost || (ctx != nil && st.Uid != ctx.Uid) {
		return fs.OK
	}
	return errno(fchmod(fd, st.Mode&07777|lost))
}

// Mkdir creates directory name in parent, owned by the caller.
func (f *FS) Mkdir(ctx *fs.Context, parent fs.Inode, name []byte, mode uint32, out *fs.Entry) fs.Errno {
	if e := checkNewName(name, syscall.EEXIST, syscall.EEXIST); e != 0 {
		return e
	}
	if e := f.readOnly(); e != 0 {
		return e
	}
	dir, e := f.getDir(parent)
	if e != 0 {
		return e
	}
	defer f.inodes.put(dir)
	s := string(name)
	if e := f.asCaller(ctx, func() error { return unix.Mkdirat(dir.fd, s, mode&07777) }); e != 0 {
		return e
	}
	return f.newEntry(ctx, dir, name, unix.S_IFDIR, mode, out)
}

// Mknod creates a regular file, FIFO, socket or (with
// Options.AllowDevices) device node. Without it a device is EPERM, except
// the whiteout (character device 0:0) overlayfs in a client makes.
func (f *FS) Mknod(ctx *fs.Context, parent fs.Inode, name []byte, mode, rdev uint32, out *fs.Entry) fs.Errno {
	if e := checkNewName(name, syscall.EEXIST, syscall.EEXIST); e != 0 {
		return e
	}
	switch mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFIFO, unix.S_IFSOCK:
	case unix.S_IFCHR, unix.S_IFBLK:
		if !f.opts.AllowDevices && !isWhiteout(mode, rdev) {
			return syscall.EPERM
		}
	case 0:
		mode |= unix.S_IFREG // mknod(2): a zero type is a regular file
	default:
		return syscall.EINVAL
	}
	if e := f.readOnly(); e != 0 {
		return e
	}
	dir, e := f.getDir(parent)
	if e != 0 {
		return e
	}
	defer f.inodes.put(dir)
	s := string(name)
	if e := f.asCaller(ctx, func() error { return unix.Mknodat(dir.fd, s, mode, int(rdev)) }); e != 0 {
		return e
	}
	return f.newEntry(ctx, dir, name, mode&unix.S_IFMT, mode, out)
}

// isWhiteout reports whether mode and rdev make an overlayfs whiteout: a
// character device numbered 0:0, which opens as ENXIO (no driver has
// major 0), so it reaches no host device.
func isWhiteout(mode, rdev uint32) bool {
	return mode&unix.S_IFMT == unix.S_IFCHR && rdev == 0
}

// Symlink creates symlink name → target. The target is stored as given;
// the daemon never follows it.
func (f *FS) Symlink(ctx *fs.Context, parent fs.Inode, name, target []byte, out *fs.Entry) fs.Errno {
	if e := checkNewName(name, syscall.EEXIST, syscall.EEXIST); e != 0 {
		return e
	}
	if len(target) == 0 {
		return syscall.ENOENT
	}
	if len(target) >= unix.PathMax {
		return syscall.ENAMETOOLONG
	}
	for _, c := range target {
		if c == 0 {
			return syscall.EINVAL
		}
	}
	if e := f.readOnly(); e != 0 {
		return e
	}
	dir, e := f.getDir(parent)
	if e != 0 {
		return e
	}
	defer f.inodes.put(dir)
	s, t := string(name), string(target)
	if e := f.asCaller(ctx, func() error { return unix.Symlinkat(t, dir.fd, s) }); e != 0 {
		return e
	}
	return f.newEntry(ctx, dir, name, unix.S_IFLNK, 0, out)
}

// Unlink removes a non-directory.
func (f *FS) Unlink(ctx *fs.Context, parent fs.Inode, name []byte) fs.Errno {
	if e := checkNewName(name, syscall.EISDIR, syscall.EISDIR); e != 0 {
		return e
	}
	if e := f.readOnly(); e != 0 {
		return e
	}
	dir, e := f.getDir(parent)
	if e != 0 {
		return e
	}
	defer f.inodes.put(dir)
	return errno(unix.Unlinkat(dir.fd, string(name), 0))
}

// Rmdir removes an empty directory.
func (f *FS) Rmdir(ctx *fs.Context, parent fs.Inode, name []byte) fs.Errno {
	if e := checkNewName(name, syscall.EINVAL, syscall.ENOTEMPTY); e != 0 {
		return e
	}
	if e := f.readOnly(); e != 0 {
		return e
	}
	dir, e := f.getDir(parent)
	if e != 0 {
		return e
	}
	defer f.inodes.put(dir)
	return errno(unix.Unlinkat(dir.fd, string(name), unix.AT_REMOVEDIR))
}

// renameFlags are the renameat2 flags passed through.
const renameFlags = unix.RENAME_NOREPLACE | unix.RENAME_EXCHANGE | unix.RENAME_WHITEOUT

// Rename is renameat2(2).
func (f *FS) Rename(ctx *fs.Context, parent fs.Inode, name []byte, newParent fs.Inode, newName []byte, flags uint32) fs.Errno {
	if flags&^renameFlags != 0 {
		return syscall.EINVAL
	}
	if e := checkNewName(name, syscall.EBUSY, syscall.EBUSY); e != 0 {
		return e
	}
	if e := checkNewName(newName, syscall.EBUSY, syscall.EBUSY); e != 0 {
		return e
	}
	if e := f.readOnly(); e != 0 {
		return e
	}
	od, e := f.getDir(parent)
	if e != 0 {
		return e
	}
	defer f.inodes.put(od)
	nd, e := f.getDir(newParent)
	if e != 0 {
		return e
	}
	defer f.inodes.put(nd)
	return errno(unix.Renameat2(od.fd, string(name), nd.fd, string(newName), uint(flags)))
}

// Link makes newName in newParent a hard link to ino. It runs as the
// daemon (see the package comment): linkat(AT_EMPTY_PATH) on the inode's
// O_PATH fd links exactly that inode, symlinks included, and follows
// nothing.
func (f *FS) Link(ctx *fs.Context, ino fs.Inode, newParent fs.Inode, newName []byte, out *fs.Entry) fs.Errno {
	if e := checkNewName(newName, syscall.EEXIST, syscall.EEXIST); e != 0 {
		return e
	}
	if e := f.readOnly(); e != 0 {
		return e
	}
	in, e := f.getInode(ino)
	if e != 0 {
		return e
	}
	defer f.inodes.put(in)
	if in.isDir() {
		return syscall.EPERM
	}
	dir, e := f.getDir(newParent)
	if e != 0 {
		return e
	}
	defer f.inodes.put(dir)
	if err := linkInode(f.procFd, in.fd, dir.fd, string(newName)); err != nil {
		return errno(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(in.fd, &st); err != nil {
		return errno(err)
	}
	if id, ok := f.inodes.lookupKey(in.key, -1, nil); ok {
		f.fillEntry(out, id, &st)
		return fs.OK
	}
	return f.lookupNew(dir, newName, out)
}
