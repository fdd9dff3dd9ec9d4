package fuse

import (
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse/abi"
)

// Whole-filesystem and miscellaneous requests: STATFS, ACCESS, STATX,
// SYNCFS, and the virtio-fs DAX requests SETUPMAPPING / REMOVEMAPPING.

func (s *Server) statfs(r *Request) int {
	q := &r.req
	q.statfs = fs.StatFs{}
	if e := s.fs.StatFs(&q.ctx, s.inode(r), &q.statfs); e != 0 {
		return s.errReply(r, e)
	}
	st := &q.statfs
	out := abi.StatfsOut{St: abi.Kstatfs{
		Blocks: st.Blocks, Bfree: st.Bfree, Bavail: st.Bavail,
		Files: st.Files, Ffree: st.Ffree,
		Bsize: st.Bsize, NameLen: st.NameLen, Frsize: st.Frsize,
	}}
	out.Marshal(args(r))
	return s.okReply(r, abi.StatfsOutSize)
}

func (s *Server) access(r *Request) int {
	q := &r.req
	var in abi.AccessIn
	if !in.Unmarshal(q.args) {
		return s.errReply(r, syscall.EINVAL)
	}
	return s.errReply(r, s.fs.Access(&q.ctx, s.inode(r), in.Mask))
}

func sxTime(t fs.StatxTime) abi.SxTime { return abi.SxTime{Sec: t.Sec, Nsec: t.Nsec} }

func (s *Server) statxOp(r *Request) int {
	q := &r.req
	var in abi.StatxIn
	if !in.Unmarshal(q.args) {
		return s.errReply(r, syscall.EINVAL)
	}
	q.statx = fs.StatxOut{}
	e := s.fs.Statx(&q.ctx, s.inode(r), fs.Handle(in.Fh), in.GetattrFlags&abi.GetattrFh != 0, in.SxFlags, in.SxMask, &q.statx)
	if e != 0 {
		return s.errReply(r, e)
	}
	x := &q.statx.Statx
	var out abi.StatxOut
	out.AttrValid, out.AttrValidNsec = splitDuration(q.statx.Timeout)
	out.Stat = abi.Statx{
		Mask: x.Mask, Blksize: x.Blksize, Attributes: x.Attributes,
		Nlink: x.Nlink, UID: x.Uid, GID: x.Gid, Mode: x.Mode,
		Ino: x.Ino, Size: x.Size, Blocks: x.Blocks, AttributesMask: x.AttributesMask,
		Atime: sxTime(x.Atime), Btime: sxTime(x.Btime), Ctime: sxTime(x.Ctime), Mtime: sxTime(x.Mtime),
		RdevMajor: x.RdevMajor, RdevMinor: x.RdevMinor, DevMajor: x.DevMajor, DevMinor: x.DevMinor,
	}
	out.Marshal(args(r))
	return s.okReply(r, abi.StatxOutSize)
}

func (s *Server) syncfs(r *Request) int {
	q := &r.req
	var in abi.SyncfsIn
	if !in.Unmarshal(q.args) {
		return s.errReply(r, syscall.EINVAL)
	}
	s.intr.register(q.hdr.Unique, &q.intr)
	defer s.intr.unregister(q.hdr.Unique)
	return s.errReply(r, s.fs.SyncFs(&q.ctx, s.inode(r)))
}

// rangeOK reports whether [off, off+n) is non-empty and does not wrap.
func rangeOK(off, n uint64) bool { return n != 0 && off+n > off }

func (s *Server) setupMapping(r *Request) int {
	q := &r.req
	if s.opts.DAX == nil {
		return s.errReply(r, syscall.ENOSYS)
	}
	var in abi.SetupmappingIn
	if !in.Unmarshal(q.args) {
		return s.errReply(r, syscall.EINVAL)
	}
	const known = abi.SetupmappingRead | abi.SetupmappingWrite
	if in.Flags&^known != 0 || !rangeOK(in.Foffset, in.Len) || !rangeOK(in.Moffset, in.Len) {
		s.logf("unique %d SETUPMAPPING: bad range or flags (foffset %d moffset %d len %d flags %#x)",
			q.hdr.Unique, in.Foffset, in.Moffset, in.Len, uint64(in.Flags))
		return s.errReply(r, syscall.EINVAL)
	}
	return s.errReply(r, s.opts.DAX.SetupMapping(&q.ctx, s.inode(r), fs.Handle(in.Fh), in.Foffset, in.Len, in.Moffset, uint64(in.Flags)))
}

func (s *Server) removeMapping(r *Request) int {
	q := &r.req
	if s.opts.DAX == nil {
		return s.errReply(r, syscall.ENOSYS)
	}
	var in abi.RemovemappingIn
	if !in.Unmarshal(q.args) {
		return s.errReply(r, syscall.EINVAL)
	}
	list := q.args[abi.RemovemappingInSize:]
	if in.Count == 0 || uint64(in.Count)*abi.RemovemappingOneSize != uint64(len(list)) {
		s.logf("unique %d REMOVEMAPPING: count %d in %d bytes", q.hdr.Unique, in.Count, len(list))
		return s.errReply(r, syscall.EINVAL)
	}
	// Each entry is read once (In may be guest memory that changes under
	// us) and validated before it is used; a bad one stops the request.
	for i := 0; i < int(in.Count); i++ {
		var one abi.RemovemappingOne
		one.Unmarshal(list[i*abi.RemovemappingOneSize:])
		if !rangeOK(one.Moffset, one.Len) {
			s.logf("unique %d REMOVEMAPPING: entry %d: bad range (moffset %d len %d)", q.hdr.Unique, i, one.Moffset, one.Len)
			return s.errReply(r, syscall.EINVAL)
		}
		if e := s.opts.DAX.RemoveMapping(&q.ctx, one.Moffset, one.Len); e != 0 {
			return s.errReply(r, e)
		}
	}
	return s.errReply(r, 0)
}
