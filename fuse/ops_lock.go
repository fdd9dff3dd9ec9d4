package fuse

import (
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse/abi"
)

// Locks and interrupts: GETLK, SETLK, SETLKW, INTERRUPT.

// lockIn decodes fuse_lk_in into q.lk and validates the lock type.
func (s *Server) lockIn(r *Request) (abi.LkIn, bool) {
	q := &r.req
	var in abi.LkIn
	if !in.Unmarshal(q.args) || in.Lk.Type > fUnlck {
		return in, false
	}
	q.lk = fs.Lock{Start: in.Lk.Start, End: in.Lk.End, Type: in.Lk.Type, Pid: in.Lk.PID}
	return in, true
}

func (s *Server) getlk(r *Request) int {
	q := &r.req
	in, ok := s.lockIn(r)
	if !ok {
		return s.errReply(r, syscall.EINVAL)
	}
	q.lkOut = fs.Lock{}
	if e := s.fs.GetLk(&q.ctx, s.inode(r), fs.Handle(in.Fh), in.Owner, &q.lk, &q.lkOut); e != 0 {
		return s.errReply(r, e)
	}
	out := abi.LkOut{Lk: abi.FileLock{Start: q.lkOut.Start, End: q.lkOut.End, Type: q.lkOut.Type, PID: q.lkOut.Pid}}
	out.Marshal(args(r))
	return s.okReply(r, abi.LkOutSize)
}

func (s *Server) setlk(r *Request, wait bool) int {
	q := &r.req
	in, ok := s.lockIn(r)
	if !ok {
		return s.errReply(r, syscall.EINVAL)
	}
	if wait {
		s.intr.register(q.hdr.Unique, &q.intr)
		defer s.intr.unregister(q.hdr.Unique)
	}
	flock := in.LkFlags&abi.LkFlock != 0
	return s.errReply(r, s.fs.SetLk(&q.ctx, s.inode(r), fs.Handle(in.Fh), in.Owner, &q.lk, wait, flock))
}

// interrupt flags the request named by fuse_interrupt_in.unique. It takes
// no reply: the interrupted request answers (usually EINTR).
func (s *Server) interrupt(r *Request) int {
	q := &r.req
	var in abi.InterruptIn
	if !in.Unmarshal(q.args) {
		s.logf("unique %d INTERRUPT: short, ignored", q.hdr.Unique)
		return 0
	}
	s.intr.interrupt(in.Unique)
	return 0
}
