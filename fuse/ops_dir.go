package fuse

import (
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse/abi"
)

// Directory handles: OPENDIR, READDIR, READDIRPLUS, RELEASEDIR (FSYNCDIR
// shares fsync).

func (s *Server) opendir(r *Request) int {
	q := &r.req
	var in abi.OpenIn
	if !in.Unmarshal(q.args) {
		return s.errReply(r, syscall.EINVAL)
	}
	q.open = fs.OpenOut{PassthroughFd: -1}
	if e := s.fs.OpenDir(&q.ctx, s.inode(r), in.Flags, &q.open); e != 0 {
		return s.errReply(r, e)
	}
	// Passthrough is for regular files only.
	oo := abi.OpenOut{
		Fh:        uint64(q.open.Handle),
		OpenFlags: abi.OpenOutFlags(q.open.Flags) & abi.FopenAll &^ abi.FopenPassthrough,
	}
	oo.Marshal(args(r))
	return s.okReply(r, abi.OpenOutSize)
}

func (s *Server) readdir(r *Request, plus bool) int {
	q := &r.req
	var in abi.ReadIn
	if !in.Unmarshal(q.args) {
		return s.errReply(r, syscall.EINVAL)
	}
	b := args(r)
	q.dsink.reset(b[:min(int(in.Size), len(b))], plus)
	e := s.fs.ReadDir(&q.ctx, s.inode(r), fs.Handle(in.Fh), in.Offset, &q.dsink)
	n := q.dsink.n
	if e == 0 && q.dsink.bad {
		s.logf("unique %d %v: filesystem returned an entry with a bad name or offset 0", q.hdr.Unique, q.hdr.Opcode)
		if n == 0 {
			e = syscall.EIO
		}
	}
	// Entries already added stay valid even if the filesystem then
	// failed: for READDIRPLUS their lookups were counted, so they must
	// reach the kernel.
	if e != 0 && n > 0 {
		s.logf("unique %d %v: %v after %d bytes of entries; returning the entries", q.hdr.Unique, q.hdr.Opcode, e, n)
		e = 0
	}
	return s.reply(r, e, n)
}

func (s *Server) releasedir(r *Request) int {
	q := &r.req
	var in abi.ReleaseIn
	if !in.Unmarshal(q.args) {
		return s.errReply(r, syscall.EINVAL)
	}
	if e := s.fs.ReleaseDir(&q.ctx, s.inode(r), fs.Handle(in.Fh)); e != 0 {
		s.logf("unique %d RELEASEDIR: %v", q.hdr.Unique, e)
	}
	return s.errReply(r, 0)
}
