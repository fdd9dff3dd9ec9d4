package fuse

import (
	"bytes"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse/abi"
)

// NotDelivered tells the engine that reply, the reply Handle last wrote
// for r (r.Out[:n]), never reached the client: the kernel refused it
// (ENOENT on /dev/fuse: it no longer has the request, e.g. after
// FUSE_NOTIFY_RESEND gave it a new unique, or the connection was
// aborted; EINVAL and the like, after which the transport answers EIO
// instead). The kernel then takes none of the references the reply
// carried and will never FORGET or RELEASE them, so the engine gives
// them back to the filesystem as libfuse does (fuse.c forgets the node
// and releases the handle when fuse_reply_entry/_create/_open returns
// -ENOENT):
//
//   - LOOKUP, MKNOD, MKDIR, SYMLINK, LINK: Forget(ino, 1) for the entry's
//     nonzero node ID;
//   - CREATE, TMPFILE: that, and Release of the open handle (and its
//     passthrough backing id);
//   - OPEN: Release of the handle; OPENDIR: ReleaseDir;
//   - READDIRPLUS: Forget(ino, 1) for each entry with a nonzero node ID
//     other than "." and ".." (the ones the filesystem counted:
//     fs.DirSink.Plus; the kernel ignores those two).
//
// Error replies and every other opcode carry no reference: nothing is
// done. Call it at most once per reply, from the goroutine that owns r,
// after Handle and before r serves its next request; reply must be what
// Handle returned (a reply whose unique is not r's current request's is
// ignored, so a transport may pass any reply it wrote from r's worker).
// Not for a reply lost because the connection ended (ENODEV): the
// filesystem's Destroy follows and drops everything. A panicking
// filesystem is recovered and logged.
func (s *Server) NotDelivered(r *Request, reply []byte) {
	q := &r.req
	var oh abi.OutHeader
	if len(reply) < abi.OutHeaderSize || !oh.Unmarshal(reply) || oh.Error != 0 ||
		oh.Unique != q.hdr.Unique || int(oh.Len) != len(reply) {
		return // an error, another request's reply, or READ data sent apart
	}
	defer func() {
		if p := recover(); p != nil {
			s.panics.Add(1)
			s.logAlways("unique %d %v: panic (bug) giving back an undelivered reply's references: %v", q.hdr.Unique, q.hdr.Opcode, p)
		}
	}()
	body := reply[abi.OutHeaderSize:]
	switch q.hdr.Opcode {
	case abi.OpLookup, abi.OpMknod, abi.OpMkdir, abi.OpSymlink, abi.OpLink:
		if len(body) >= abi.EntryOutSize {
			s.forgetEntry(body)
		}
	case abi.OpCreate, abi.OpTmpfile:
		if len(body) >= abi.EntryOutSize+abi.OpenOutSize {
			ino := s.forgetEntry(body)
			var in abi.CreateIn
			in.Unmarshal(q.args) // Handle parsed it: the reply is a success
			s.releaseUndelivered(r, ino, body[abi.EntryOutSize:], in.Flags, false)
		}
	case abi.OpOpen:
		if len(body) >= abi.OpenOutSize {
			var in abi.OpenIn
			in.Unmarshal(q.args)
			s.releaseUndelivered(r, s.inode(r), body, in.Flags, false)
		}
	case abi.OpOpendir:
		if len(body) >= abi.OpenOutSize {
			s.releaseUndelivered(r, s.inode(r), body, 0, true)
		}
	case abi.OpReaddirplus:
		s.forgetDirentplus(body)
	}
}

// forgetEntry gives back the lookup an undelivered fuse_entry_out in b
// carried, and returns its node ID (0: a negative entry, nothing counted).
func (s *Server) forgetEntry(b []byte) fs.Inode {
	var eo abi.EntryOut
	if !eo.Unmarshal(b) {
		return 0
	}
	ino := fs.Inode(eo.NodeID)
	if ino == 0 || s.opts.PollHack && ino == PollHackInode {
		return ino // the engine's own file: the filesystem counted nothing
	}
	s.fs.Forget(ino, 1)
	return ino
}

// releaseUndelivered releases the handle of an undelivered fuse_open_out
// in b for inode ino, as the kernel's RELEASE (RELEASEDIR if dir) would,
// with the request's context and open flags; with its passthrough
// backing id.
func (s *Server) releaseUndelivered(r *Request, ino fs.Inode, b []byte, flags uint32, dir bool) {
	var oo abi.OpenOut
	if !oo.Unmarshal(b) || ino == 0 || s.opts.PollHack && ino == PollHackInode {
		return
	}
	q := &r.req
	fh := fs.Handle(oo.Fh)
	if dir {
		if e := s.fs.ReleaseDir(&q.ctx, ino, fh); e != 0 {
			s.logf("unique %d %v: releasing the undelivered handle: %v", q.hdr.Unique, q.hdr.Opcode, e)
		}
		return
	}
	if e := s.fs.Release(&q.ctx, ino, fh, flags); e != 0 {
		s.logf("unique %d %v: releasing the undelivered handle: %v", q.hdr.Unique, q.hdr.Opcode, e)
	}
	s.closeBacking(ino, fh)
}

// forgetDirentplus gives back the lookups of the fuse_direntplus records
// in b (a READDIRPLUS reply's arguments, as dirSink wrote them).
func (s *Server) forgetDirentplus(b []byte) {
	for len(b) >= abi.DirentplusHeaderSize {
		var d abi.Dirent
		if !d.Unmarshal(b[abi.EntryOutSize:]) {
			return
		}
		rec := abi.DirentAlign(abi.DirentplusHeaderSize + int(d.Namelen))
		if int(d.Namelen) > len(b)-abi.DirentplusHeaderSize || rec > len(b) {
			return
		}
		name := b[abi.DirentplusHeaderSize : abi.DirentplusHeaderSize+int(d.Namelen)]
		if !bytes.Equal(name, dot) && !bytes.Equal(name, dotdot) {
			s.forgetEntry(b)
		}
		b = b[rec:]
	}
}

var (
	dot    = []byte(".")
	dotdot = []byte("..")
)
