package fuse

import (
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse/abi"
)

// Requests that name an inode: LOOKUP, FORGET, attributes, links, and the
// creating requests that answer fuse_entry_out.

func (s *Server) inode(r *Request) fs.Inode { return fs.Inode(r.req.hdr.NodeID) }

// entryReply answers an Entry-returning request. A successful reply with
// Ino 0 is a negative entry, valid for LOOKUP only.
func (s *Server) entryReply(r *Request, e fs.Errno) int {
	if e != 0 {
		return s.errReply(r, e)
	}
	q := &r.req
	if q.entry.Ino == 0 && q.hdr.Opcode != abi.OpLookup {
		s.logf("unique %d %v: filesystem returned inode 0", q.hdr.Unique, q.hdr.Opcode)
		return s.errReply(r, syscall.EIO)
	}
	putEntry(args(r), &q.entry)
	return s.okReply(r, abi.EntryOutSize)
}

func (s *Server) lookup(r *Request) int {
	q := &r.req
	nm, e := lastName(q.args)
	if e != 0 {
		return s.errReply(r, e)
	}
	if s.opts.PollHack && q.hdr.NodeID == abi.RootID && string(nm) == PollHackName {
		return s.pollHackLookup(r)
	}
	q.entry = fs.Entry{}
	return s.entryReply(r, s.fs.Lookup(&q.ctx, s.inode(r), nm, &q.entry))
}

func (s *Server) forget(r *Request) int {
	q := &r.req
	var in abi.ForgetIn
	if !in.Unmarshal(q.args) || q.hdr.NodeID == 0 {
		s.logf("unique %d FORGET: malformed, ignored", q.hdr.Unique)
		return 0
	}
	s.fs.Forget(s.inode(r), in.Nlookup)
	return 0
}

func (s *Server) batchForget(r *Request) int {
	q := &r.req
	var in abi.BatchForgetIn
	if !in.Unmarshal(q.args) {
		s.logf("unique %d BATCH_FORGET: short, ignored", q.hdr.Unique)
		return 0
	}
	list := q.args[abi.BatchForgetInSize:]
	if uint64(in.Count)*abi.ForgetOneSize != uint64(len(list)) {
		s.logf("unique %d BATCH_FORGET: count %d in %d bytes, ignored", q.hdr.Unique, in.Count, len(list))
		return 0
	}
	for i := 0; i < int(in.Count); i++ {
		var one abi.ForgetOne
		one.Unmarshal(list[i*abi.ForgetOneSize:])
		if one.NodeID != 0 && !(s.opts.PollHack && fs.Inode(one.NodeID) == PollHackInode) {
			s.fs.Forget(fs.Inode(one.NodeID), one.Nlookup)
		}
	}
	return 0
}

func (s *Server) attrReply(r *Request, e fs.Errno) int {
	if e != 0 {
		return s.errReply(r, e)
	}
	q := &r.req
	var ao abi.AttrOut
	ao.AttrValid, ao.AttrValidNsec = splitDuration(q.attr.Timeout)
	toAbiAttr(&q.attr.Attr, &ao.Attr)
	ao.Marshal(args(r))
	return s.okReply(r, abi.AttrOutSize)
}

func (s *Server) getattr(r *Request) int {
	q := &r.req
	var in abi.GetattrIn
	if !in.Unmarshal(q.args) {
		return s.errReply(r, syscall.EINVAL)
	}
	q.attr = fs.AttrOut{}
	e := s.fs.GetAttr(&q.ctx, s.inode(r), fs.Handle(in.Fh), in.GetattrFlags&abi.GetattrFh != 0, &q.attr)
	return s.attrReply(r, e)
}

func (s *Server) setattr(r *Request, ag *Agreement) int {
	q := &r.req
	var in abi.SetattrIn
	if !in.Unmarshal(q.args) {
		return s.errReply(r, syscall.EINVAL)
	}
	if !r.NoWait {
		// Served where it may wait (an open breaking a host lease):
		// FUSE_INTERRUPT and shutdown must reach it.
		s.intr.register(q.hdr.Unique, &q.intr)
		defer s.intr.unregister(q.hdr.Unique)
	}
	q.setattr = fs.SetAttrIn{
		Valid: uint32(in.Valid & abi.FattrAll), Handle: fs.Handle(in.Fh),
		Size: in.Size, LockOwner: in.LockOwner,
		Atime: in.Atime, Mtime: in.Mtime, Ctime: in.Ctime,
		AtimeNsec: in.AtimeNsec, MtimeNsec: in.MtimeNsec, CtimeNsec: in.CtimeNsec,
		Mode: in.Mode, Uid: in.UID, Gid: in.GID,
	}
	if ag.Flags&abi.InitHandleKillprivV2 != 0 && in.Valid&^(abi.FattrFh|abi.FattrLockOwner|abi.FattrCtime) == 0 {
		// A SETATTR that changes nothing is how the kernel passes on
		// notify_change(ATTR_KILL_SUID|ATTR_KILL_SGID) with
		// HANDLE_KILLPRIV_V2 (fuse_setattr drops ATTR_MODE, expecting the
		// server to kill on its next write): it comes from
		// file_remove_privs before a FUSE passthrough write, which never
		// reaches the server, and from chown(-1, -1). The client checked
		// that the caller lacks CAP_FSETID: kill as a write would.
		q.setattr.Valid |= fs.SetKillSuidGid
	}
	q.attr = fs.AttrOut{}
	return s.attrReply(r, s.fs.SetAttr(&q.ctx, s.inode(r), &q.setattr, &q.attr))
}

func (s *Server) readlink(r *Request) int {
	q := &r.req
	buf := args(r)
	buf = buf[:min(len(buf), pathMax)]
	n, e := s.fs.Readlink(&q.ctx, s.inode(r), buf)
	if e == 0 && (n < 0 || n > len(buf)) {
		s.logf("unique %d READLINK: filesystem returned %d bytes for a %d-byte buffer", q.hdr.Unique, n, len(buf))
		e = syscall.EIO
	}
	return s.reply(r, e, n)
}

func (s *Server) symlink(r *Request) int {
	q := &r.req
	nm, rest, e := name(q.args)
	if e != 0 {
		return s.errReply(r, e)
	}
	target, rest, ok := cstring(rest)
	switch {
	case !ok || len(rest) != 0 || len(target) == 0:
		return s.errReply(r, syscall.EINVAL)
	case len(target) >= pathMax:
		return s.errReply(r, syscall.ENAMETOOLONG)
	}
	q.entry = fs.Entry{}
	return s.entryReply(r, s.fs.Symlink(&q.ctx, s.inode(r), nm, target, &q.entry))
}

func (s *Server) mknod(r *Request) int {
	q := &r.req
	var in abi.MknodIn
	if !in.Unmarshal(q.args) {
		return s.errReply(r, syscall.EINVAL)
	}
	nm, e := lastName(q.args[abi.MknodInSize:])
	if e != 0 {
		return s.errReply(r, e)
	}
	q.ctx.Umask = in.Umask
	q.entry = fs.Entry{}
	return s.entryReply(r, s.fs.Mknod(&q.ctx, s.inode(r), nm, in.Mode, in.Rdev, &q.entry))
}

func (s *Server) mkdir(r *Request) int {
	q := &r.req
	var in abi.MkdirIn
	if !in.Unmarshal(q.args) {
		return s.errReply(r, syscall.EINVAL)
	}
	nm, e := lastName(q.args[abi.MkdirInSize:])
	if e != 0 {
		return s.errReply(r, e)
	}
	q.ctx.Umask = in.Umask
	q.entry = fs.Entry{}
	return s.entryReply(r, s.fs.Mkdir(&q.ctx, s.inode(r), nm, in.Mode, &q.entry))
}

func (s *Server) unlink(r *Request, dir bool) int {
	q := &r.req
	nm, e := lastName(q.args)
	if e != 0 {
		return s.errReply(r, e)
	}
	if dir {
		return s.errReply(r, s.fs.Rmdir(&q.ctx, s.inode(r), nm))
	}
	return s.errReply(r, s.fs.Unlink(&q.ctx, s.inode(r), nm))
}

// renameFlags are the renameat2 flags the engine passes on:
// RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT.
const renameFlags = 1 | 2 | 4

func (s *Server) rename(r *Request, v2 bool) int {
	q := &r.req
	var newdir uint64
	var flags uint32
	var rest []byte
	if v2 {
		var in abi.Rename2In
		if !in.Unmarshal(q.args) {
			return s.errReply(r, syscall.EINVAL)
		}
		newdir, flags, rest = in.Newdir, in.Flags, q.args[abi.Rename2InSize:]
	} else {
		var in abi.RenameIn
		if !in.Unmarshal(q.args) {
			return s.errReply(r, syscall.EINVAL)
		}
		newdir, rest = in.Newdir, q.args[abi.RenameInSize:]
	}
	if flags&^renameFlags != 0 {
		return s.errReply(r, syscall.EINVAL)
	}
	old, rest, e := name(rest)
	if e != 0 {
		return s.errReply(r, e)
	}
	nw, e := lastName(rest)
	if e != 0 {
		return s.errReply(r, e)
	}
	if newdir == 0 {
		return s.errReply(r, syscall.EINVAL)
	}
	return s.errReply(r, s.fs.Rename(&q.ctx, s.inode(r), old, fs.Inode(newdir), nw, flags))
}

func (s *Server) link(r *Request) int {
	q := &r.req
	var in abi.LinkIn
	if !in.Unmarshal(q.args) || in.OldNodeID == 0 {
		return s.errReply(r, syscall.EINVAL)
	}
	nm, e := lastName(q.args[abi.LinkInSize:])
	if e != 0 {
		return s.errReply(r, e)
	}
	q.entry = fs.Entry{}
	return s.entryReply(r, s.fs.Link(&q.ctx, fs.Inode(in.OldNodeID), s.inode(r), nm, &q.entry))
}
