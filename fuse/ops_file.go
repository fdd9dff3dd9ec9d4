package fuse

import (
	"math"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse/abi"
)

// Requests on open files: OPEN, CREATE, TMPFILE, READ, WRITE, FLUSH,
// FSYNC, RELEASE, FALLOCATE, LSEEK, COPY_FILE_RANGE.

// openOut encodes q.open as fuse_open_out into b. When the filesystem asks
// for passthrough and the connection has it, the backing file is
// registered — once per inode: later opens of an inode that already has a
// backing id share it (see Server.backingIno), so the filesystem should
// hand out a PassthroughFd that serves every open of the inode: any fd
// naming the inode's host file does, whatever its access mode, since the
// kernel opens each open's own backing file on its path with that open's
// flags (fs.OpenOut.PassthroughFd). On any failure the open silently falls
// back to READ/WRITE.
// passthroughMask is FOPEN_PASSTHROUGH_MASK: the open flags the kernel
// accepts together with FOPEN_PASSTHROUGH.
const passthroughMask = abi.FopenPassthrough | abi.FopenDirectIO | abi.FopenParallelDirectWrites | abi.FopenNoflush

func (s *Server) openOut(r *Request, ino fs.Inode, b []byte, ag *Agreement) {
	q := &r.req
	oo := abi.OpenOut{
		Fh:        uint64(q.open.Handle),
		OpenFlags: abi.OpenOutFlags(q.open.Flags) & abi.FopenAll &^ abi.FopenPassthrough,
	}
	if q.open.Flags&fs.OpenPassthrough != 0 && ag.Flags&abi.InitPassthrough != 0 && q.open.PassthroughFd >= 0 {
		key := handleKey{ino, q.open.Handle}
		s.backingMu.Lock()
		ref := s.backingIno[ino]
		var e fs.Errno
		if ref == nil {
			var id int32
			if id, e = s.opts.Backing.Open(q.open.PassthroughFd); e == 0 && id > 0 {
				ref = &backingRef{id: id}
				s.backingIno[ino] = ref
			}
		}
		if ref != nil {
			if _, dup := s.backing[key]; dup {
				// The filesystem reused an open handle: keep its one
				// reference.
				ref.n--
			}
			ref.n++
			s.backing[key] = ref.id
			// The kernel refuses a passthrough open whose other flags
			// fall outside FOPEN_PASSTHROUGH_MASK (fs/fuse/iomode.c):
			// page-cache hints such as KEEP_CACHE (cache=always) mean
			// nothing when the backing file does the I/O, so drop them
			// rather than fail the open with EIO.
			oo.OpenFlags &= passthroughMask
			oo.OpenFlags |= abi.FopenPassthrough
			oo.BackingID = ref.id
		}
		s.backingMu.Unlock()
		if ref == nil {
			s.logf("unique %d %v: passthrough of fd %d refused (%v): serving READ/WRITE",
				q.hdr.Unique, q.hdr.Opcode, q.open.PassthroughFd, e)
		}
	}
	oo.Marshal(b)
}

// closeBacking drops a released handle's use of its inode's passthrough
// registration, and the registration with the last one.
func (s *Server) closeBacking(ino fs.Inode, fh fs.Handle) {
	if s.opts.Backing == nil {
		return
	}
	key := handleKey{ino, fh}
	var closeID int32
	s.backingMu.Lock()
	if _, ok := s.backing[key]; ok {
		delete(s.backing, key)
		if ref := s.backingIno[ino]; ref != nil {
			if ref.n--; ref.n <= 0 {
				delete(s.backingIno, ino)
				closeID = ref.id
			}
		}
	}
	s.backingMu.Unlock()
	if closeID > 0 {
		if e := s.opts.Backing.Close(closeID); e != 0 {
			s.logf("passthrough: closing backing id %d: %v", closeID, e)
		}
	}
}

func (s *Server) open(r *Request, ag *Agreement) int {
	q := &r.req
	var in abi.OpenIn
	if !in.Unmarshal(q.args) {
		return s.errReply(r, syscall.EINVAL)
	}
	if !r.NoWait {
		// Served where it may wait (an open breaking a host lease):
		// FUSE_INTERRUPT and shutdown must reach it.
		s.intr.register(q.hdr.Unique, &q.intr)
		defer s.intr.unregister(q.hdr.Unique)
	}
	q.open = fs.OpenOut{PassthroughFd: -1}
	e := s.fs.Open(&q.ctx, s.inode(r), in.Flags, uint32(in.OpenFlags), &q.open)
	if e != 0 {
		return s.errReply(r, e)
	}
	s.openOut(r, s.inode(r), args(r), ag)
	return s.okReply(r, abi.OpenOutSize)
}

func (s *Server) create(r *Request, ag *Agreement, tmpfile bool) int {
	q := &r.req
	var in abi.CreateIn
	if !in.Unmarshal(q.args) {
		return s.errReply(r, syscall.EINVAL)
	}
	var nm []byte
	if tmpfile {
		// The kernel sends the name of the unnamed dentry ("/"): only
		// check that it is there.
		if _, rest, ok := cstring(q.args[abi.CreateInSize:]); !ok || len(rest) != 0 {
			return s.errReply(r, syscall.EINVAL)
		}
	} else {
		var e fs.Errno
		if nm, e = lastName(q.args[abi.CreateInSize:]); e != 0 {
			return s.errReply(r, e)
		}
	}
	if !r.NoWait {
		// Served where it may wait (an open breaking a host lease):
		// FUSE_INTERRUPT and shutdown must reach it.
		s.intr.register(q.hdr.Unique, &q.intr)
		defer s.intr.unregister(q.hdr.Unique)
	}
	q.ctx.Umask = in.Umask
	q.entry = fs.Entry{}
	q.open = fs.OpenOut{PassthroughFd: -1}
	var e fs.Errno
	if tmpfile {
		e = s.fs.Tmpfile(&q.ctx, s.inode(r), in.Mode, in.Flags, &q.entry, &q.open)
	} else {
		e = s.fs.Create(&q.ctx, s.inode(r), nm, in.Mode, in.Flags, &q.entry, &q.open)
	}
	if e == 0 && q.entry.Ino == 0 {
		s.logf("unique %d %v: filesystem returned inode 0", q.hdr.Unique, q.hdr.Opcode)
		e = syscall.EIO
	}
	if e != 0 {
		return s.errReply(r, e)
	}
	b := args(r)
	putEntry(b, &q.entry)
	// The handle belongs to the new inode, which its RELEASE will name.
	s.openOut(r, q.entry.Ino, b[abi.EntryOutSize:], ag)
	return s.okReply(r, abi.EntryOutSize+abi.OpenOutSize)
}

func (s *Server) read(r *Request) int {
	q := &r.req
	var in abi.ReadIn
	if !in.Unmarshal(q.args) || in.Offset > math.MaxInt64 {
		return s.errReply(r, syscall.EINVAL)
	}
	if r.Dst != nil {
		before := r.Dst.Len()
		e := s.fs.Read(&q.ctx, s.inode(r), fs.Handle(in.Fh), int64(in.Offset), in.Size, r.Dst)
		n := r.Dst.Len() - before
		if e == 0 && (n < 0 || n > int(in.Size)) {
			s.logf("unique %d READ: filesystem returned %d bytes for %d", q.hdr.Unique, n, in.Size)
			e = syscall.EIO
		}
		if e != 0 {
			return s.errReply(r, e)
		}
		q.dataLen = n
		putOutHeader(r.Out, abi.OutHeaderSize+n, 0, q.hdr.Unique)
		return abi.OutHeaderSize
	}
	b := args(r)
	if int(in.Size) > len(b) {
		s.logf("unique %d READ: size %d exceeds the %d-byte reply buffer", q.hdr.Unique, in.Size, len(b))
		return s.errReply(r, syscall.EINVAL)
	}
	q.rsink.reset(b[:in.Size])
	e := s.fs.Read(&q.ctx, s.inode(r), fs.Handle(in.Fh), int64(in.Offset), in.Size, &q.rsink)
	return s.reply(r, e, q.rsink.n)
}

func (s *Server) write(r *Request, ag *Agreement) int {
	q := &r.req
	var in abi.WriteIn
	if !in.Unmarshal(q.args) || in.Offset > math.MaxInt64 || in.Size > ag.MaxWrite {
		return s.errReply(r, syscall.EINVAL)
	}
	payload := q.args[abi.WriteInSize:]
	var src fs.Source
	if r.Src != nil {
		if len(payload) != 0 || r.Src.Len() != int(in.Size) {
			s.logf("unique %d WRITE: size %d, %d bytes in In and %d in Src", q.hdr.Unique, in.Size, len(payload), r.Src.Len())
			return s.errReply(r, syscall.EINVAL)
		}
		src = r.Src
	} else {
		if len(payload) != int(in.Size) {
			s.logf("unique %d WRITE: size %d with a %d-byte payload", q.hdr.Unique, in.Size, len(payload))
			return s.errReply(r, syscall.EINVAL)
		}
		q.wsrc.B = payload
		src = &q.wsrc
	}
	n, e := s.fs.Write(&q.ctx, s.inode(r), fs.Handle(in.Fh), int64(in.Offset), src, uint32(in.WriteFlags))
	q.wsrc.B = nil
	if e == 0 && n > in.Size {
		s.logf("unique %d WRITE: filesystem wrote %d of %d bytes", q.hdr.Unique, n, in.Size)
		e = syscall.EIO
	}
	if e != 0 {
		return s.errReply(r, e)
	}
	wo := abi.WriteOut{Size: n}
	wo.Marshal(args(r))
	return s.okReply(r, abi.WriteOutSize)
}

func (s *Server) flush(r *Request) int {
	q := &r.req
	var in abi.FlushIn
	if !in.Unmarshal(q.args) {
		return s.errReply(r, syscall.EINVAL)
	}
	return s.errReply(r, s.fs.Flush(&q.ctx, s.inode(r), fs.Handle(in.Fh), in.LockOwner))
}

func (s *Server) fsync(r *Request) int {
	q := &r.req
	var in abi.FsyncIn
	if !in.Unmarshal(q.args) {
		return s.errReply(r, syscall.EINVAL)
	}
	datasync := in.FsyncFlags&abi.FsyncFdatasync != 0
	s.intr.register(q.hdr.Unique, &q.intr)
	defer s.intr.unregister(q.hdr.Unique)
	if q.hdr.Opcode == abi.OpFsyncdir {
		return s.errReply(r, s.fs.FsyncDir(&q.ctx, s.inode(r), fs.Handle(in.Fh), datasync))
	}
	return s.errReply(r, s.fs.Fsync(&q.ctx, s.inode(r), fs.Handle(in.Fh), datasync))
}

// fUnlck is F_UNLCK.
const fUnlck = 2

func (s *Server) release(r *Request) int {
	q := &r.req
	var in abi.ReleaseIn
	if !in.Unmarshal(q.args) {
		return s.errReply(r, syscall.EINVAL)
	}
	ino, fh := s.inode(r), fs.Handle(in.Fh)
	if in.ReleaseFlags&abi.ReleaseFlockUnlock != 0 {
		// The file's last close drops its flock(2) locks.
		q.lk = fs.Lock{Start: 0, End: math.MaxInt64, Type: fUnlck, Pid: q.hdr.PID}
		if e := s.fs.SetLk(&q.ctx, ino, fh, in.LockOwner, &q.lk, false, true); e != 0 {
			s.logf("unique %d RELEASE: flock unlock: %v", q.hdr.Unique, e)
		}
	}
	if e := s.fs.Release(&q.ctx, ino, fh, in.Flags); e != 0 {
		s.logf("unique %d RELEASE: %v", q.hdr.Unique, e)
	}
	s.closeBacking(ino, fh)
	// RELEASE cannot fail from the client's view.
	return s.errReply(r, 0)
}

func (s *Server) fallocate(r *Request) int {
	q := &r.req
	var in abi.FallocateIn
	if !in.Unmarshal(q.args) || in.Offset > math.MaxInt64 || in.Length > math.MaxInt64-in.Offset {
		return s.errReply(r, syscall.EINVAL)
	}
	s.intr.register(q.hdr.Unique, &q.intr)
	defer s.intr.unregister(q.hdr.Unique)
	return s.errReply(r, s.fs.Fallocate(&q.ctx, s.inode(r), fs.Handle(in.Fh), in.Offset, in.Length, in.Mode))
}

func (s *Server) lseek(r *Request) int {
	q := &r.req
	var in abi.LseekIn
	if !in.Unmarshal(q.args) || in.Offset > math.MaxInt64 {
		return s.errReply(r, syscall.EINVAL)
	}
	off, e := s.fs.Lseek(&q.ctx, s.inode(r), fs.Handle(in.Fh), int64(in.Offset), in.Whence)
	if e == 0 && off < 0 {
		e = syscall.EIO
	}
	if e != 0 {
		return s.errReply(r, e)
	}
	lo := abi.LseekOut{Offset: uint64(off)}
	lo.Marshal(args(r))
	return s.okReply(r, abi.LseekOutSize)
}

func (s *Server) copyFileRange(r *Request, wide bool) int {
	q := &r.req
	var in abi.CopyFileRangeIn
	if !in.Unmarshal(q.args) || in.OffIn > math.MaxInt64 || in.OffOut > math.MaxInt64 || in.NodeIDOut == 0 {
		return s.errReply(r, syscall.EINVAL)
	}
	length := in.Len
	if !wide {
		// The reply carries a 32-bit count.
		length = min(length, math.MaxUint32)
	}
	s.intr.register(q.hdr.Unique, &q.intr)
	defer s.intr.unregister(q.hdr.Unique)
	n, e := s.fs.CopyFileRange(&q.ctx, s.inode(r), fs.Handle(in.FhIn), int64(in.OffIn),
		fs.Inode(in.NodeIDOut), fs.Handle(in.FhOut), int64(in.OffOut), length, in.Flags)
	if e == 0 && n > length {
		s.logf("unique %d %v: filesystem copied %d of %d bytes", q.hdr.Unique, q.hdr.Opcode, n, length)
		e = syscall.EIO
	}
	if e != 0 {
		return s.errReply(r, e)
	}
	if wide {
		co := abi.CopyFileRangeOut{BytesCopied: n}
		co.Marshal(args(r))
		return s.okReply(r, abi.CopyFileRangeOutSize)
	}
	wo := abi.WriteOut{Size: uint32(n)}
	wo.Marshal(args(r))
	return s.okReply(r, abi.WriteOutSize)
}
