package p9

import (
	"bytes"
	"encoding/binary"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
)

// Permission checks for connections that are not Trusted (see Peer). The
// filesystem performs every request with the daemon's rights (it creates
// as the caller, but may read and write anything), so the server checks
// first, as the kernel's generic_permission (with posix_acl_permission
// for an inode that has a POSIX access ACL), may_delete, may_create,
// chown_ok, setattr_prepare and xattr_permission would for the
// connection's Identity, with the same errnos (EACCES for a mode bit
// denied, EPERM for what needs ownership or privilege). A default ACL
// needs no check here: the host kernel applies a directory's default ACL
// to what the filesystem creates in it.
//
// The checks read the attributes (and an ACL) right before the operation:
// a mode or owner changed in between (by the host or another client) is
// seen at the next request — the same window as a client kernel checking
// for a FUSE daemon. Trusted connections skip all of this: their client
// checked (default_permissions, v9fs access=client).

// Access bits of permission's mask (MAY_READ, MAY_WRITE, MAY_EXEC).
const (
	mayRead  = 4
	mayWrite = 2
	mayExec  = 1
)

// Errnos of this file, as values.
const (
	eAcces = syscall.EACCES
	ePerm  = syscall.EPERM
)

// checked returns the identity the server checks permissions for on this
// connection, or nil if the connection is Trusted.
func (c *conn) checked() *Identity {
	if c.peer.Trusted {
		return nil
	}
	return &c.peer.Identity
}

// permission is generic_permission for the inode ino whose attributes are
// a: root may do anything but execute a non-directory without an x bit;
// the owner gets the owner's bits; anyone else is checked against ino's
// POSIX access ACL when it has one and the group bits are not all clear
// (acl_permission_check: the group bits are then the ACL's mask), else
// against the group's or others' bits, the first class id belongs to
// (supplementary groups included).
//
// The ACL is read at each check, as the attributes are, from
// Options.ACLs or else the served filesystem; an inode without one
// (ENODATA) or a filesystem that keeps none (EOPNOTSUPP) leaves the mode
// bits to decide. So does a served filesystem without extended
// attributes (ENOSYS), which is why fastfsd 9p reads ACLs from
// fs/passthrough directly (Options.ACLs) whatever --xattr says, when it
// serves one directory.
func (r *request) permission(id *Identity, ino fs.Inode, a *fs.Attr, mask uint32) fs.Errno {
	if id.Uid == 0 || id.Uid == a.Uid || a.Mode&0o070 == 0 {
		return modePermission(id, a, mask)
	}
	acl, e := r.accessACL(ino)
	if e != 0 {
		return e
	}
	if acl == nil {
		return modePermission(id, a, mask)
	}
	return aclPermission(id, a, acl, mask)
}

// modePermission is generic_permission on the mode bits alone (an inode
// without an ACL).
func modePermission(id *Identity, a *fs.Attr, mask uint32) fs.Errno {
	if id.Uid == 0 {
		if mask&mayExec != 0 && a.Mode&syscall.S_IFMT != syscall.S_IFDIR && a.Mode&0o111 == 0 {
			return eAcces
		}
		return 0
	}
	var bits uint32
	switch {
	case id.Uid == a.Uid:
		bits = a.Mode >> 6 & 7
	case id.inGroup(a.Gid):
		bits = a.Mode >> 3 & 7
	default:
		bits = a.Mode & 7
	}
	if mask&^bits != 0 {
		return eAcces
	}
	return 0
}

// The POSIX ACL extended attribute: a little-endian header (version 2)
// and 8-byte entries {tag u16, perm u16, id u32}, in the order the kernel
// keeps them (include/uapi/linux/posix_acl_xattr.h, posix_acl.h).
const (
	aclVersion  = 2
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
	aclHeader   = 4
	aclEntry    = 8
	// aclBufSize holds an ACL of 30 entries in the request; a longer
	// one is read into a buffer of its own.
	aclBufSize = aclHeader + 30*aclEntry
)

var xattrACLAccess = []byte("system.posix_acl_access")

// ACLReader reads the POSIX access ACL of an inode, in the kernel's xattr
// format, into dst and returns its length, or its size if dst is empty:
// ERANGE if dst is too small, ENODATA if the inode has none, EOPNOTSUPP if
// the filesystem keeps none (fs/passthrough's FS is one). See
// Options.ACLs.
type ACLReader interface {
	AccessACL(ino fs.Inode, dst []byte) (int, fs.Errno)
}

// readACL reads ino's access ACL into dst from Options.ACLs or the served
// filesystem.
func (r *request) readACL(ino fs.Inode, dst []byte) (int, fs.Errno) {
	if a := r.c.s.opts.ACLs; a != nil {
		return a.AccessACL(ino, dst)
	}
	return r.c.s.fs.GetXattr(&r.ctx, ino, xattrACLAccess, dst)
}

// accessACL returns ino's access ACL, in r.acl or (if longer) a buffer of
// its own, valid until the next call; nil if it has none or the
// filesystem keeps none.
func (r *request) accessACL(ino fs.Inode) ([]byte, fs.Errno) {
	n, e := r.readACL(ino, r.acl[:])
	buf := r.acl[:]
	for try := 0; e == eRange && try < 3; try++ { // longer than r.acl, or grew in between
		if n, e = r.readACL(ino, nil); e != 0 {
			break
		}
		if n < 0 || n > XattrSizeMax {
			return nil, syscall.EIO
		}
		buf = make([]byte, n)
		n, e = r.readACL(ino, buf)
	}
	switch e {
	case 0:
	case syscall.ENODATA, syscall.EOPNOTSUPP, syscall.ENOSYS:
		return nil, 0
	default:
		return nil, e
	}
	if n < 0 || n > len(buf) {
		return nil, syscall.EIO
	}
	return buf[:n], 0
}

// aclPermission is posix_acl_permission for a non-owner, non-root
// identity: the first entry that names it decides: ACL_USER for its uid
// (limited by ACL_MASK); else any ACL_GROUP_OBJ or ACL_GROUP entry of one
// of its groups that grants all of mask (limited by ACL_MASK), EACCES if
// it is in such groups but none grants it; else ACL_OTHER. The owner's
// entry (ACL_USER_OBJ) does not apply: the owner was checked on the mode
// bits, which are that entry. A malformed ACL is EIO, as the kernel's
// posix_acl_from_xattr refuses it.
func aclPermission(id *Identity, a *fs.Attr, acl []byte, mask uint32) fs.Errno {
	if len(acl) < aclHeader || (len(acl)-aclHeader)%aclEntry != 0 ||
		binary.LittleEndian.Uint32(acl) != aclVersion {
		return syscall.EIO
	}
	ents := acl[aclHeader:]
	mask &= mayRead | mayWrite | mayExec
	// The ACL_MASK entry, if any (it follows the entries it limits).
	maskPerm, hasMask := uint32(7), false
	for i := 0; i+aclEntry <= len(ents); i += aclEntry {
		if binary.LittleEndian.Uint16(ents[i:]) == aclMask {
			maskPerm, hasMask = uint32(binary.LittleEndian.Uint16(ents[i+2:])), true
		}
	}
	limited := func(perm uint32) fs.Errno {
		if hasMask {
			perm &= maskPerm
		}
		if mask&^perm != 0 {
			return eAcces
		}
		return 0
	}
	found := false
	for i := 0; i+aclEntry <= len(ents); i += aclEntry {
		tag := binary.LittleEndian.Uint16(ents[i:])
		perm := uint32(binary.LittleEndian.Uint16(ents[i+2:]))
		eid := binary.LittleEndian.Uint32(ents[i+4:])
		switch tag {
		case aclUserObj, aclMask:
		case aclUser:
			if eid == id.Uid {
				return limited(perm)
			}
		case aclGroupObj, aclGroup:
			g := a.Gid
			if tag == aclGroup {
				g = eid
			}
			if id.inGroup(g) {
				found = true
				if mask&^perm == 0 {
					return limited(perm)
				}
			}
		case aclOther:
			if found || mask&^perm != 0 {
				return eAcces
			}
			return 0
		default:
			return syscall.EIO
		}
	}
	return syscall.EIO // no ACL_OTHER entry
}

// owns is inode_owner_or_capable.
func owns(id *Identity, a *fs.Attr) bool { return id.Uid == 0 || id.Uid == a.Uid }

// attrOf returns the attributes of ino, read with r's context.
func (r *request) attrOf(ino fs.Inode) (fs.Attr, fs.Errno) {
	r.attr = fs.AttrOut{}
	e := r.c.s.fs.GetAttr(&r.ctx, ino, 0, false, &r.attr)
	return r.attr.Attr, e
}

// childAttr looks name up in dir and returns its attributes (the lookup
// count is given back at once); found is false for ENOENT.
func (r *request) childAttr(dir fs.Inode, name []byte) (a fs.Attr, ino fs.Inode, found bool, e fs.Errno) {
	r.entry = fs.Entry{}
	e = r.c.s.fs.Lookup(&r.ctx, dir, name, &r.entry)
	if e == eNoent || e == 0 && r.entry.Ino == 0 {
		return fs.Attr{}, 0, false, 0
	}
	if e != 0 {
		return fs.Attr{}, 0, false, e
	}
	r.c.s.fs.Forget(r.entry.Ino, 1)
	return r.entry.Attr, r.entry.Ino, true, 0
}

// mayExecDir checks search permission on a directory before a lookup in it.
func (r *request) mayExecDir(id *Identity, dir fs.Inode) fs.Errno {
	a, e := r.attrOf(dir)
	if e != 0 {
		return e
	}
	return r.permission(id, dir, &a, mayExec)
}

// mayCreate is may_create: write and search on the directory. It returns
// the directory's attributes for the group rules of the new inode.
func (r *request) mayCreate(id *Identity, dir fs.Inode) (fs.Attr, fs.Errno) {
	a, e := r.attrOf(dir)
	if e != 0 {
		return a, e
	}
	return a, r.permission(id, dir, &a, mayWrite|mayExec)
}

// mayDelete is may_delete for name in dir: write and search on dir, and
// in a sticky directory only the owner of the file or of the directory
// (or root) may remove or rename it away (EPERM). It returns the victim's
// attributes and inode; ENOENT if there is none.
func (r *request) mayDelete(id *Identity, dir fs.Inode, name []byte) (fs.Attr, fs.Inode, fs.Errno) {
	da, e := r.attrOf(dir)
	if e != 0 {
		return fs.Attr{}, 0, e
	}
	if e := r.permission(id, dir, &da, mayWrite|mayExec); e != 0 {
		return fs.Attr{}, 0, e
	}
	va, vino, found, e := r.childAttr(dir, name)
	if e != 0 {
		return fs.Attr{}, 0, e
	}
	if !found {
		return fs.Attr{}, 0, eNoent
	}
	if da.Mode&syscall.S_ISVTX != 0 && id.Uid != 0 && id.Uid != va.Uid && id.Uid != da.Uid {
		return fs.Attr{}, 0, ePerm
	}
	return va, vino, 0
}

// createCtx sets r's caller for a creating request in a directory with
// attributes dir, from the gid the client asked for: a squashed
// connection always creates with its gid; otherwise the gid must be one
// of the identity's groups, or the directory's own group when the
// directory is set-group-ID (the host gives the new inode that group
// anyway), else EPERM. When the identity belongs to the directory's group
// only through a supplementary group, that group is passed along
// (fs.Context.SuppGid) so that the host decides the new inode's
// set-group-ID bit as it would for the caller.
func (r *request) createCtx(f *fid, gid uint32, dir *fs.Attr) (*fs.Context, fs.Errno) {
	id := r.c.checked()
	if id == nil {
		return r.ctxFor(f, gid), 0
	}
	ctx := r.ctxFor(f, nobody)
	switch {
	case r.c.peer.Squash, gid == NoUid:
		gid = id.Gid
	case id.inGroup(gid):
	case dir.Mode&syscall.S_ISGID != 0 && gid == dir.Gid:
		gid = id.Gid // the host takes the directory's group
	default:
		return nil, ePerm
	}
	ctx.Gid = gid
	if dir.Gid != gid && id.inGroup(dir.Gid) {
		ctx.SuppGid, ctx.HasSuppGid = dir.Gid, true
	}
	return ctx, 0
}

// openMask is what opening with host flags fl needs: read and/or write,
// and write for O_TRUNC.
func openMask(fl uint32) uint32 {
	var m uint32
	switch fl & 3 {
	case syscall.O_RDONLY:
		m = mayRead
	case syscall.O_WRONLY:
		m = mayWrite
	default:
		m = mayRead | mayWrite
	}
	if fl&syscall.O_TRUNC != 0 {
		m |= mayWrite
	}
	return m
}

// mayOpen checks opening a with host flags fl: the mode bits, and
// O_NOATIME only for the owner (EPERM).
func (r *request) mayOpen(id *Identity, ino fs.Inode, a *fs.Attr, fl uint32) fs.Errno {
	if e := r.permission(id, ino, a, openMask(fl)); e != 0 {
		return e
	}
	if fl&syscall.O_NOATIME != 0 && !owns(id, a) {
		return ePerm
	}
	return 0
}

// mayLink is may_linkat with protected_hardlinks (the default of every
// distribution): the owner may link anything; others only a regular file
// that is neither set-user-ID nor executable set-group-ID and that they
// may read and write (EPERM otherwise).
func (r *request) mayLink(id *Identity, ino fs.Inode, a *fs.Attr) fs.Errno {
	if owns(id, a) {
		return 0
	}
	m := a.Mode
	if m&syscall.S_IFMT != syscall.S_IFREG || m&syscall.S_ISUID != 0 || m&(syscall.S_ISGID|0o010) == syscall.S_ISGID|0o010 {
		return ePerm
	}
	if r.permission(id, ino, a, mayRead|mayWrite) != 0 {
		return ePerm
	}
	return 0
}

// checkSetattr applies chown_ok, chgrp_ok and setattr_prepare to in for
// the file with attributes a: EPERM for an owner change, a group change
// by a non-owner or to a group the identity is not in, a mode change or
// explicit times by a non-owner; EACCES for a truncate without write
// permission or "now" times by a non-owner who may not write. A mode
// change by a non-root owner who is not in the file's (new) group drops
// S_ISGID, and a size change by a non-root identity clears set-user-ID
// and set-group-ID (SetKillSuidGid), as the kernel does.
func (r *request) checkSetattr(id *Identity, ino fs.Inode, a *fs.Attr, in *fs.SetAttrIn) fs.Errno {
	if id.Uid == 0 {
		return 0
	}
	owner := id.Uid == a.Uid
	if in.Valid&fs.SetUid != 0 && !(owner && in.Uid == a.Uid) {
		return ePerm
	}
	gid := a.Gid
	if in.Valid&fs.SetGid != 0 {
		if !owner || !(in.Gid == a.Gid || id.inGroup(in.Gid)) {
			return ePerm
		}
		gid = in.Gid
	}
	if in.Valid&fs.SetMode != 0 {
		if !owner {
			return ePerm
		}
		if in.Mode&syscall.S_ISGID != 0 && !id.inGroup(gid) {
			in.Mode &^= syscall.S_ISGID
		}
	}
	if in.Valid&fs.SetSize != 0 {
		if a.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			return eIsdir
		}
		if e := r.permission(id, ino, a, mayWrite); e != 0 {
			return e
		}
		in.Valid |= fs.SetKillSuidGid
	}
	explicit := in.Valid&(fs.SetAtime|fs.SetMtime) != 0 &&
		(in.Valid&fs.SetAtime != 0 && in.Valid&fs.SetAtimeNow == 0 ||
			in.Valid&fs.SetMtime != 0 && in.Valid&fs.SetMtimeNow == 0)
	if explicit && !owner {
		return ePerm
	}
	if in.Valid&(fs.SetAtime|fs.SetMtime) != 0 && !owner {
		if r.permission(id, ino, a, mayWrite) != 0 {
			return eAcces
		}
	}
	return 0
}

// xattr name prefixes (the kernel's XATTR_*_PREFIX).
var (
	xattrUser     = []byte("user.")
	xattrTrusted  = []byte("trusted.")
	xattrPosixACL = []byte("system.posix_acl_")
)

// mayGetXattr is xattr_permission for reading name: trusted.* is hidden
// from non-root (ENODATA), user.* needs read permission; the rest
// (security.*, system.*) is readable by anyone who can reach the file.
func (r *request) mayGetXattr(id *Identity, ino fs.Inode, a *fs.Attr, name []byte) fs.Errno {
	if id.Uid == 0 {
		return 0
	}
	switch {
	case bytes.HasPrefix(name, xattrTrusted):
		return syscall.ENODATA
	case bytes.HasPrefix(name, xattrUser):
		return r.permission(id, ino, a, mayRead)
	}
	return 0
}

// dropTrusted removes the trusted.* names from a listxattr result (names
// each ended by a NUL), in place, as the kernel's listxattr does for a
// caller without CAP_SYS_ADMIN.
func dropTrusted(list []byte) []byte {
	out := list[:0]
	for len(list) > 0 {
		end := bytes.IndexByte(list, 0)
		if end < 0 {
			end = len(list) - 1 // no final NUL: keep what is there
		}
		name := list[:end+1]
		list = list[end+1:]
		if !bytes.HasPrefix(name, xattrTrusted) {
			out = append(out, name...)
		}
	}
	return out
}

// maySetXattr is xattr_permission and the LSM checks for setting or
// removing name, for non-root: user.* on a regular file or directory the
// identity may write (EPERM on other types, and in a sticky directory for
// a non-owner), POSIX ACLs by the owner; everything else (security.*,
// trusted.*, other system.*) needs privileges the connection does not
// have (EPERM).
func (r *request) maySetXattr(id *Identity, ino fs.Inode, a *fs.Attr, name []byte) fs.Errno {
	if id.Uid == 0 {
		return 0
	}
	switch {
	case bytes.HasPrefix(name, xattrUser):
		t := a.Mode & syscall.S_IFMT
		if t != syscall.S_IFREG && t != syscall.S_IFDIR {
			return ePerm
		}
		if t == syscall.S_IFDIR && a.Mode&syscall.S_ISVTX != 0 && !owns(id, a) {
			return ePerm
		}
		return r.permission(id, ino, a, mayWrite)
	case bytes.HasPrefix(name, xattrPosixACL):
		if !owns(id, a) {
			return ePerm
		}
		return 0
	}
	return ePerm
}

// mayRename is the permission part of vfs_rename: deleting oldName from
// oldDir (may_delete, sticky rule included), creating or replacing newName
// in newDir (may_delete of the target if it exists, else may_create), and
// write permission on a directory that moves to another parent (its ".."
// changes).
func (r *request) mayRename(id *Identity, oldDir fs.Inode, oldName []byte, newDir fs.Inode, newName []byte) fs.Errno {
	src, srcIno, e := r.mayDelete(id, oldDir, oldName)
	if e != 0 {
		return e
	}
	if _, _, found, e := r.childAttr(newDir, newName); e != 0 {
		return e
	} else if found {
		if _, _, e := r.mayDelete(id, newDir, newName); e != 0 {
			return e
		}
	} else if _, e := r.mayCreate(id, newDir); e != 0 {
		return e
	}
	if src.Mode&syscall.S_IFMT == syscall.S_IFDIR && oldDir != newDir {
		if e := r.permission(id, srcIno, &src, mayWrite); e != 0 {
			return e
		}
	}
	return 0
}
