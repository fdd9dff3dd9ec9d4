package fuse

import (
	"syscall"

	"github.com/fastfsd/fastfsd/fs"

	"github.com/fastfsd/fastfsd/fuse/abi"
)

// Extended attributes: SETXATTR, GETXATTR, LISTXATTR, REMOVEXATTR.

// xattrFlags are the setxattr(2) flags passed on: XATTR_CREATE,
// XATTR_REPLACE.
const xattrFlags = 1 | 2

func (s *Server) setxattr(r *Request, ag *Agreement) int {
	q := &r.req
	var in abi.SetxattrIn
	size := abi.CompatSetxattrInSize
	if ag.Flags&abi.InitSetxattrExt != 0 {
		size = abi.SetxattrInSize
	}
	if len(q.args) < size {
		return s.errReply(r, syscall.EINVAL)
	}
	var buf [abi.SetxattrInSize]byte
	copy(buf[:], q.args[:size])
	in.Unmarshal(buf[:])
	nm, value, e := xattrName(q.args[size:])
	switch {
	case e != 0:
		return s.errReply(r, e)
	case in.Size > xattrSizeMax:
		return s.errReply(r, syscall.E2BIG)
	case len(value) != int(in.Size), in.Flags&^xattrFlags != 0:
		return s.errReply(r, syscall.EINVAL)
	}
	return s.errReply(r, s.fs.SetXattr(&q.ctx, s.inode(r), nm, value, in.Flags))
}

// xattrReply answers GETXATTR/LISTXATTR: with size 0 the value's size in
// fuse_getxattr_out, else the value itself.
func (s *Server) xattrReply(r *Request, size uint32, n int, e fs.Errno, cap int) int {
	if e == 0 && (n < 0 || size != 0 && n > cap) {
		s.logf("unique %d %v: filesystem returned %d bytes for %d", r.req.hdr.Unique, r.req.hdr.Opcode, n, cap)
		e = syscall.EIO
	}
	if e != 0 {
		return s.errReply(r, e)
	}
	if size == 0 {
		out := abi.GetxattrOut{Size: uint32(n)}
		out.Marshal(args(r))
		return s.okReply(r, abi.GetxattrOutSize)
	}
	return s.okReply(r, n)
}

func (s *Server) getxattr(r *Request) int {
	q := &r.req
	var in abi.GetxattrIn
	if !in.Unmarshal(q.args) {
		return s.errReply(r, syscall.EINVAL)
	}
	nm, rest, e := xattrName(q.args[abi.GetxattrInSize:])
	if e == 0 && len(rest) != 0 {
		e = syscall.EINVAL
	}
	if e != 0 {
		return s.errReply(r, e)
	}
	dst := args(r)
	dst = dst[:min(len(dst), int(in.Size))]
	n, e := s.fs.GetXattr(&q.ctx, s.inode(r), nm, dst)
	return s.xattrReply(r, in.Size, n, e, len(dst))
}

func (s *Server) listxattr(r *Request) int {
	q := &r.req
	var in abi.GetxattrIn
	if !in.Unmarshal(q.args) {
		return s.errReply(r, syscall.EINVAL)
	}
	dst := args(r)
	dst = dst[:min(len(dst), int(in.Size))]
	n, e := s.fs.ListXattr(&q.ctx, s.inode(r), dst)
	return s.xattrReply(r, in.Size, n, e, len(dst))
}

func (s *Server) removexattr(r *Request) int {
	q := &r.req
	nm, rest, e := xattrName(q.args)
	if e == 0 && len(rest) != 0 {
		e = syscall.EINVAL
	}
	if e != 0 {
		return s.errReply(r, e)
	}
	return s.errReply(r, s.fs.RemoveXattr(&q.ctx, s.inode(r), nm))
}
