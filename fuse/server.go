package fuse

import (
	"encoding/binary"
	"log"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse/abi"
)

var ne = binary.NativeEndian

// MinMinor is the oldest protocol minor the engine serves (Linux 2.6.31);
// INIT from an older kernel is refused with EPROTO.
const MinMinor = 12

// minOutSize is the smallest Out that holds every fixed-size reply: the
// out header and fuse_statx_out, the largest one.
const minOutSize = abi.OutHeaderSize + abi.StatxOutSize

// MinOutSize is the smallest Request.Out Handle accepts: a transport may
// give a Request that serves only small replies (a helper's) this much.
const MinOutSize = minOutSize

// xattrSizeMax is XATTR_SIZE_MAX, the largest xattr value (and list) the
// kernel asks for; xattrNameMax is XATTR_NAME_MAX.
const (
	xattrSizeMax = 65536
	xattrNameMax = 255
)

// nameMax is NAME_MAX, the longest file name the engine passes on; pathMax
// is PATH_MAX, the longest symlink target (with its NUL).
const (
	nameMax = 255
	pathMax = 4096
)

// request is the engine's per-request scratch inside Request: the decoded
// header and every value a filesystem method fills. Only the worker that
// owns the Request touches it, except intr (see interrupts).
type request struct {
	hdr  abi.InHeader
	args []byte // In[InHeaderSize : Len-extensions]: the op's arguments
	ctx  fs.Context
	intr fs.Interrupt // set by INTERRUPT while registered in Server.intr, or by Request.Interrupt

	entry   fs.Entry
	attr    fs.AttrOut
	open    fs.OpenOut
	setattr fs.SetAttrIn
	statfs  fs.StatFs
	statx   fs.StatxOut
	lk      fs.Lock
	lkOut   fs.Lock

	rsink readSink
	wsrc  BytesSource
	dsink dirSink

	// retry: the filesystem returned fs.WouldWait to a NoWait request,
	// which was left unanswered (Request.Retry).
	retry bool

	// dataLen is the number of READ bytes the transport sends from Dst
	// after Out[:n] (0 unless Dst was used and the read succeeded).
	dataLen int
}

// Server is the FUSE protocol engine for one connection (one mount or one
// virtio-fs device). It is safe for concurrent use by many workers, each
// with its own Request.
type Server struct {
	fs       fs.FileSystem
	opts     Options
	log      *log.Logger
	pageSize int
	maxWrite int // offered max_write
	maxPages int // offered max_pages
	outSize  int // len(Out) NewRequest allocates
	want     abi.InitFlags

	// agreed is nil until INIT succeeds; set once by the INIT handler and
	// read by every request (one atomic load). It stays set after DESTROY,
	// which sets destroyed.
	agreed    atomic.Pointer[Agreement]
	destroyed atomic.Bool
	// initMu serialises INIT and DESTROY handling.
	initMu sync.Mutex

	intr interrupts

	// panics counts filesystem (or engine) panics turned into EIO.
	panics atomic.Uint64

	// backingMu guards backing and backingIno.
	backingMu sync.Mutex
	// backing maps an open handle to the passthrough backing id registered
	// for it, closed at the handle's RELEASE.
	backing map[handleKey]int32
	// backingIno is the one backing id each inode open in passthrough mode
	// uses, with the number of handles using it: the kernel refuses (EIO on
	// open) a second, different backing file for an inode that already has
	// one, so every open of the inode shares the first registration.
	backingIno map[fs.Inode]*backingRef

	// retr are the NOTIFY_RETRIEVEs waiting for their NOTIFY_REPLY.
	retr retrievals
}

type backingRef struct {
	id int32
	n  int
}

type handleKey struct {
	ino fs.Inode
	fh  fs.Handle
}

// NewServer returns an engine serving fsys with the transport's options.
func NewServer(fsys fs.FileSystem, opts Options) *Server {
	s := &Server{fs: fsys, opts: opts, log: opts.Logger, pageSize: os.Getpagesize()}
	if s.pageSize <= 0 {
		s.pageSize = 4096
	}
	mw := opts.MaxWrite
	if mw == 0 {
		mw = DefaultMaxWrite
	}
	mw = max(mw, 4096)
	pages := (mw + s.pageSize - 1) / s.pageSize
	if pages > 65535 {
		pages = 65535
		mw = pages * s.pageSize
	}
	s.maxWrite, s.maxPages = mw, pages
	// READ and READDIR replies are bounded by max_pages pages; xattr
	// replies by XATTR_SIZE_MAX.
	s.outSize = abi.OutHeaderSize + max(pages*s.pageSize, xattrSizeMax, minOutSize-abi.OutHeaderSize)
	s.want = s.wantFlags()
	s.intr.init()
	s.backing = make(map[handleKey]int32)
	s.backingIno = make(map[fs.Inode]*backingRef)
	return s
}

// NewRequest allocates a worker's Request with Out sized for the largest
// reply the options allow.
func (s *Server) NewRequest() *Request {
	return &Request{Out: make([]byte, s.outSize)}
}

// OutSize is the length of the Out buffer NewRequest allocates: the
// largest reply the engine writes into Out.
func (s *Server) OutSize() int { return s.outSize }

// Handle serves r.In and returns the length of the reply in r.Out (out
// header + arguments). For READ with r.Dst set, the reply header's len also
// counts the r.DataLen() bytes Dst holds, which the transport sends after
// Out[:n]. It returns 0 when the request takes no reply (FORGET,
// BATCH_FORGET, INTERRUPT, NOTIFY_REPLY) or when not even the header is
// readable. It never panics on bad input: a malformed request gets an
// EINVAL or EIO reply, a panicking filesystem an EIO reply.
func (s *Server) Handle(r *Request) (n int) {
	q := &r.req
	q.dataLen = 0
	q.retry = false
	if !q.hdr.Unmarshal(r.In) {
		s.logf("request of %d bytes has no readable header: dropped", len(r.In))
		return 0
	}
	h := &q.hdr
	if len(r.Out) < abi.OutHeaderSize {
		s.logf("unique %d: Out of %d bytes cannot hold a reply: dropped", h.Unique, len(r.Out))
		return 0
	}
	// One defer (so it stays open-coded): recover a panicking filesystem,
	// and leave no interrupt flag behind for the Request's next request —
	// a request interrupted unregistered (Request.Interrupt, or a blocking
	// op ended by InterruptAll) would otherwise keep it set.
	defer func() {
		if p := recover(); p != nil {
			s.panics.Add(1)
			s.logAlways("unique %d %v: panic (bug) answered EIO: %v", h.Unique, h.Opcode, p)
			q.dataLen = 0
			n = s.errReply(r, syscall.EIO)
		}
		if q.intr.IsSet() {
			q.intr.Clear()
		}
	}()
	total := len(r.In)
	if r.Src != nil {
		total += r.Src.Len()
	}
	if int64(h.Len) != int64(total) {
		s.logf("unique %d %v: header len %d, received %d", h.Unique, h.Opcode, h.Len, total)
		return s.errReply(r, syscall.EINVAL)
	}
	ext := int(h.TotalExtlen) * 8
	if ext > len(r.In)-abi.InHeaderSize {
		s.logf("unique %d %v: %d extension bytes in a %d-byte request", h.Unique, h.Opcode, ext, len(r.In))
		return s.errReply(r, syscall.EINVAL)
	}
	q.args = r.In[abi.InHeaderSize : len(r.In)-ext]
	if r.Src != nil && h.Opcode != abi.OpWrite {
		s.logf("unique %d %v: Src set for a request other than WRITE", h.Unique, h.Opcode)
		return s.errReply(r, syscall.EINVAL)
	}
	if len(r.Out) < minOutSize {
		s.logf("unique %d %v: Out of %d bytes, need %d", h.Unique, h.Opcode, len(r.Out), minOutSize)
		return s.errReply(r, syscall.EIO)
	}

	q.ctx = fs.Context{
		Caller: fs.Caller{Uid: h.UID, Gid: h.GID, Pid: h.PID},
		Unique: h.Unique,
		NoWait: r.NoWait,
	}
	q.ctx.SetInterrupt(&q.intr)
	ag := s.agreed.Load()
	if ext > 0 {
		// A security context is taken only where the kernel sends one:
		// on creating requests, once INIT agreed on SECURITY_CTX.
		secctx := ag != nil && ag.Flags&abi.InitSecurityCtx != 0 && labelled(h.Opcode)
		if e := parseExtensions(&q.ctx, r.In[len(r.In)-ext:], secctx); e != 0 {
			s.logf("unique %d %v: malformed request extension", h.Unique, h.Opcode)
			return s.errReply(r, e)
		}
	}

	if ag == nil || s.destroyed.Load() {
		if h.Opcode == abi.OpInit {
			return s.doInit(r)
		}
		s.logf("unique %d %v: before INIT or after DESTROY", h.Unique, h.Opcode)
		return s.errReply(r, syscall.EIO)
	}
	if s.opts.PollHack && fs.Inode(h.NodeID) == PollHackInode {
		n = s.pollHack(r)
	} else {
		n = s.dispatch(r, ag)
	}
	if s.log != nil {
		s.logReply(r, n)
	}
	return n
}

// Panics is the number of panics Handle has turned into EIO replies: each
// is a bug in the filesystem or the engine.
func (s *Server) Panics() uint64 { return s.panics.Load() }

func (s *Server) dispatch(r *Request, ag *Agreement) int {
	q := &r.req
	switch q.hdr.Opcode {
	case abi.OpLookup:
		return s.lookup(r)
	case abi.OpForget:
		return s.forget(r)
	case abi.OpBatchForget:
		return s.batchForget(r)
	case abi.OpGetattr:
		return s.getattr(r)
	case abi.OpSetattr:
		return s.setattr(r, ag)
	case abi.OpReadlink:
		return s.readlink(r)
	case abi.OpSymlink:
		return s.symlink(r)
	case abi.OpMknod:
		return s.mknod(r)
	case abi.OpMkdir:
		return s.mkdir(r)
	case abi.OpUnlink:
		return s.unlink(r, false)
	case abi.OpRmdir:
		return s.unlink(r, true)
	case abi.OpRename:
		return s.rename(r, false)
	case abi.OpRename2:
		return s.rename(r, true)
	case abi.OpLink:
		return s.link(r)
	case abi.OpOpen:
		return s.open(r, ag)
	case abi.OpRead:
		return s.read(r)
	case abi.OpWrite:
		return s.write(r, ag)
	case abi.OpStatfs:
		return s.statfs(r)
	case abi.OpRelease:
		return s.release(r)
	case abi.OpFsync, abi.OpFsyncdir:
		return s.fsync(r)
	case abi.OpSetxattr:
		return s.setxattr(r, ag)
	case abi.OpGetxattr:
		return s.getxattr(r)
	case abi.OpListxattr:
		return s.listxattr(r)
	case abi.OpRemovexattr:
		return s.removexattr(r)
	case abi.OpFlush:
		return s.flush(r)
	case abi.OpOpendir:
		return s.opendir(r)
	case abi.OpReaddir:
		return s.readdir(r, false)
	case abi.OpReaddirplus:
		return s.readdir(r, true)
	case abi.OpReleasedir:
		return s.releasedir(r)
	case abi.OpGetlk:
		return s.getlk(r)
	case abi.OpSetlk:
		return s.setlk(r, false)
	case abi.OpSetlkw:
		return s.setlk(r, true)
	case abi.OpAccess:
		return s.access(r)
	case abi.OpCreate:
		return s.create(r, ag, false)
	case abi.OpTmpfile:
		return s.create(r, ag, true)
	case abi.OpInterrupt:
		return s.interrupt(r)
	case abi.OpFallocate:
		return s.fallocate(r)
	case abi.OpLseek:
		return s.lseek(r)
	case abi.OpCopyFileRange:
		return s.copyFileRange(r, false)
	case abi.OpCopyFileRange64:
		return s.copyFileRange(r, true)
	case abi.OpStatx:
		return s.statxOp(r)
	case abi.OpSyncfs:
		return s.syncfs(r)
	case abi.OpSetupmapping:
		return s.setupMapping(r)
	case abi.OpRemovemapping:
		return s.removeMapping(r)
	case abi.OpDestroy:
		return s.destroy(r)
	case abi.OpInit:
		s.logf("unique %d: INIT after INIT", q.hdr.Unique)
		return s.errReply(r, syscall.EIO)
	case abi.OpIoctl:
		return s.errReply(r, syscall.ENOTTY)
	case abi.OpNotifyReply:
		return s.notifyReply(r)
	case abi.OpPoll:
		if p, ok := s.fs.(fs.Poller); ok {
			return s.poll(r, p)
		}
		return s.errReply(r, syscall.ENOSYS)
	case abi.OpBmap:
		// ENOSYS: the kernel remembers it and uses the default poll mask
		// (and no bmap) from then on.
		return s.errReply(r, syscall.ENOSYS)
	}
	return s.errReply(r, syscall.ENOSYS)
}

// noReply reports whether op is answered with nothing.
func noReply(op abi.Opcode) bool {
	switch op {
	case abi.OpForget, abi.OpBatchForget, abi.OpInterrupt, abi.OpNotifyReply:
		return true
	}
	return false
}

// wireError is the out_header.error for e: -e for an errno in [1, 511],
// -EIO for anything else the filesystem returns.
func wireError(e fs.Errno) int32 {
	if e == 0 {
		return 0
	}
	if e > 0 && e <= 511 {
		return -int32(e)
	}
	return -int32(syscall.EIO)
}

// errReply writes a header-only reply carrying e (0 means success with no
// arguments) and returns its length, or 0 for ops that take no reply.
func (s *Server) errReply(r *Request, e fs.Errno) int {
	h := &r.req.hdr
	if noReply(h.Opcode) {
		return 0
	}
	if e == fs.WouldWait && r.req.ctx.NoWait {
		// No reply: the transport serves the request again where it
		// may wait (Request.Retry).
		r.req.retry = true
		return 0
	}
	putOutHeader(r.Out, abi.OutHeaderSize, wireError(e), h.Unique)
	return abi.OutHeaderSize
}

// okReply writes the header of a successful reply with n argument bytes
// already in Out[16:16+n].
func (s *Server) okReply(r *Request, n int) int {
	putOutHeader(r.Out, abi.OutHeaderSize+n, 0, r.req.hdr.Unique)
	return abi.OutHeaderSize + n
}

// reply answers e if it is an error, else the n argument bytes in Out.
func (s *Server) reply(r *Request, e fs.Errno, n int) int {
	if e != 0 {
		return s.errReply(r, e)
	}
	return s.okReply(r, n)
}

func putOutHeader(b []byte, n int, e int32, unique uint64) {
	_ = b[15]
	ne.PutUint32(b[0:], uint32(n))
	ne.PutUint32(b[4:], uint32(e))
	ne.PutUint64(b[8:], unique)
}

// args returns the reply argument area of Out.
func args(r *Request) []byte { return r.Out[abi.OutHeaderSize:] }

// splitDuration converts a cache timeout to FUSE's seconds + nanoseconds;
// negative means 0.
func splitDuration(d time.Duration) (uint64, uint32) {
	if d <= 0 {
		return 0, 0
	}
	return uint64(d / time.Second), uint32(d % time.Second)
}

func toAbiAttr(a *fs.Attr, out *abi.Attr) {
	// Field by field: a composite literal would build a temporary and copy
	// it.
	out.Ino, out.Size, out.Blocks = a.Ino, a.Size, a.Blocks
	out.Atime, out.Mtime, out.Ctime = a.Atime, a.Mtime, a.Ctime
	out.AtimeNsec, out.MtimeNsec, out.CtimeNsec = a.AtimeNsec, a.MtimeNsec, a.CtimeNsec
	out.Mode, out.Nlink, out.UID, out.GID = a.Mode, a.Nlink, a.Uid, a.Gid
	out.Rdev, out.Blksize, out.Flags = a.Rdev, a.Blksize, 0
}

// putEntry encodes e as fuse_entry_out into b (len(b) >= EntryOutSize).
func putEntry(b []byte, e *fs.Entry) {
	var eo abi.EntryOut
	eo.NodeID = uint64(e.Ino)
	eo.Generation = e.Generation
	eo.EntryValid, eo.EntryValidNsec = splitDuration(e.EntryTimeout)
	eo.AttrValid, eo.AttrValidNsec = splitDuration(e.AttrTimeout)
	toAbiAttr(&e.Attr, &eo.Attr)
	eo.Marshal(b)
}

func (s *Server) logf(format string, v ...any) {
	if s.log != nil {
		s.log.Printf("fuse: "+format, v...)
	}
}

// logAlways reports engine bugs even without a Logger.
func (s *Server) logAlways(format string, v ...any) {
	if s.log != nil {
		s.log.Printf("fuse: "+format, v...)
		return
	}
	log.Printf("fuse: "+format, v...)
}

func (s *Server) logReply(r *Request, n int) {
	h := &r.req.hdr
	if n == 0 {
		s.log.Printf("fuse: unique %d %v node %d: no reply", h.Unique, h.Opcode, h.NodeID)
		return
	}
	s.log.Printf("fuse: unique %d %v node %d: error %d, %d bytes (+%d data)", h.Unique, h.Opcode, h.NodeID,
		int32(ne.Uint32(r.Out[4:])), n, r.req.dataLen)
}

// labelled reports whether op is a request the kernel adds a security
// context to when SECURITY_CTX is agreed (fs/fuse/dir.c get_create_ext:
// every creating request but LINK).
func labelled(op abi.Opcode) bool {
	switch op {
	case abi.OpCreate, abi.OpMknod, abi.OpMkdir, abi.OpSymlink, abi.OpTmpfile:
		return true
	}
	return false
}

// parseExtensions walks the request extensions (struct fuse_ext_header
// blocks, each 8-aligned and sized including its header) and records in
// ctx what the filesystem acts on: the supplementary group of a creating
// request (FUSE_EXT_GROUPS, sent with FUSE_CREATE_SUPP_GROUP) and, if
// secctx, its security context (parseSecctx). Without secctx a security
// context block is skipped unread. A block that overruns the extension
// area is EINVAL. Allocation-free.
func parseExtensions(ctx *fs.Context, b []byte, secctx bool) fs.Errno {
	for len(b) > 0 {
		var h abi.ExtHeader
		if len(b) < abi.ExtHeaderSize || !h.Unmarshal(b) {
			return syscall.EINVAL
		}
		if h.Size < abi.ExtHeaderSize || h.Size%8 != 0 || int64(h.Size) > int64(len(b)) {
			return syscall.EINVAL
		}
		body := b[abi.ExtHeaderSize:h.Size]
		if secctx && h.Type <= abi.MaxNrSecctx {
			// struct fuse_secctx_header is the extension header with
			// nr_secctx in place of the type.
			if ctx.SecLabelName != nil {
				return syscall.EINVAL // a second security context block
			}
			if e := parseSecctx(ctx, h.Type, body); e != 0 {
				return e
			}
		}
		if h.Type == abi.ExtGroups {
			var sg abi.SuppGroups
			if len(body) < abi.SuppGroupsSize || !sg.Unmarshal(body) {
				return syscall.EINVAL
			}
			gs := body[abi.SuppGroupsSize:]
			if uint64(sg.NrGroups)*4 > uint64(len(gs)) {
				return syscall.EINVAL
			}
			// The kernel sends one group (the parent's); a filesystem
			// adds one, so more would be a different protocol.
			if sg.NrGroups >= 1 {
				ctx.SuppGid = ne.Uint32(gs)
				ctx.HasSuppGid = true
			}
		}
		b = b[h.Size:]
	}
	return fs.OK
}

// parseSecctx decodes the nr security contexts of body, the part of a
// fuse_secctx_header block after its header: nr × (struct fuse_secctx
// {size, padding}, the NUL-terminated xattr name, size bytes of context),
// each padded to 8 bytes (FUSE_REC_ALIGN). The kernel sends nr = 0 (no
// LSM labels this inode: body empty) or 1; more, or a record that does
// not fill body exactly, is EINVAL. The name must be a security.* name
// other than security.capability (a label is never a file capability),
// 1 to 255 bytes, and the context 1 to 64 KiB. On success ctx views the
// name and context in body. Allocation-free.
func parseSecctx(ctx *fs.Context, nr uint32, body []byte) fs.Errno {
	if nr == 0 {
		if len(body) != 0 {
			return syscall.EINVAL
		}
		return fs.OK
	}
	if nr > 1 {
		return syscall.EINVAL
	}
	var sc abi.Secctx
	if len(body) < abi.SecctxSize || !sc.Unmarshal(body) {
		return syscall.EINVAL
	}
	name, rest, e := xattrName(body[abi.SecctxSize:])
	if e != 0 {
		return syscall.EINVAL // ERANGE for a long name elsewhere
	}
	const prefix = "security."
	if len(name) <= len(prefix) || string(name[:len(prefix)]) != prefix || string(name) == "security.capability" {
		return syscall.EINVAL
	}
	if sc.Size == 0 || sc.Size > xattrSizeMax || int(sc.Size) > len(rest) {
		return syscall.EINVAL
	}
	if pad := len(rest) - int(sc.Size); pad >= 8 {
		return syscall.EINVAL // more than the record's alignment
	}
	ctx.SecLabelName, ctx.SecLabel = name, rest[:sc.Size]
	return fs.OK
}
