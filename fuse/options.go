package fuse

import (
	"log"

	"github.com/fastfsd/fastfsd/fs"
)

// DefaultMaxWrite is the max_write the engine offers when Options.MaxWrite
// is 0: 1 MiB, 256 pages of 4 KiB.
const DefaultMaxWrite = 1 << 20

// Options are what the transport can do and what the user asked for. The
// engine offers the kernel only what they (and the engine itself) honour.
type Options struct {
	// MaxWrite is the largest WRITE payload (and, through max_pages, the
	// largest READ and READDIR) to offer; 0 means DefaultMaxWrite. It is
	// raised to 4096 and lowered to 65535 pages. The transport sizes its
	// receive buffers for it (InHeader + WriteIn + MaxWrite).
	MaxWrite int
	// MaxReadahead caps the kernel's readahead in bytes; 0 takes the
	// kernel's value.
	MaxReadahead uint32
	// MaxBackground and CongestionThreshold tune the kernel's background
	// request queue (0: the kernel's defaults, 12 and 9).
	MaxBackground       uint16
	CongestionThreshold uint16
	// TimeGran is the timestamp granularity of the filesystem in ns
	// (1..1e9); 0 means 1.
	TimeGran uint32

	// Locks says the filesystem implements GetLk/SetLk: offer POSIX_LOCKS
	// and FLOCK_LOCKS. Without it the kernel keeps locks local.
	Locks bool
	// Writeback asks for the kernel's write-back cache (WRITEBACK_CACHE).
	// It excludes passthrough.
	Writeback bool
	// NoKillPrivV2 withholds HANDLE_KILLPRIV_V2, for a filesystem that
	// cannot clear suid/sgid itself. It costs a GETXATTR round trip per
	// write: without KILLPRIV_V2 the kernel asks for security.capability
	// before each write (measured with the fuse:fuse_request_send
	// tracepoint: 14,194 GETXATTR for 14,179 writes); leave it false when
	// the filesystem honours
	// WriteKillSuidGid, SetKillSuidGid and OpenKillSuidGid.
	NoKillPrivV2 bool
	// PosixACL offers POSIX_ACL: the client enforces the POSIX ACLs it
	// reads through GETXATTR system.posix_acl_*, and sends them with
	// SETXATTR (the filesystem must store them as the host does).
	PosixACL bool
	// SecurityLabel asks for FUSE_SECURITY_CTX: the client sends the
	// label its LSM chose for each inode a creating request makes
	// (fs.Context.SecLabelName, SecLabel), which the filesystem must
	// store. INIT fails with EPROTO if the kernel does not offer it with
	// the extension layout of protocol 7.38 (Linux 6.3) or later: a label
	// asked for that would go unstored is refused, not dropped.
	SecurityLabel bool
	// NoReaddirplus withholds READDIRPLUS: the client lists with READDIR
	// and looks names up one by one.
	NoReaddirplus bool

	// SpliceRead, SpliceWrite and SpliceMove say the transport splices
	// requests from, replies to, or moves pages to /dev/fuse.
	SpliceRead, SpliceWrite, SpliceMove bool
	// IOUring says the transport serves FUSE over io_uring: offer
	// OVER_IO_URING when the kernel does.
	IOUring bool

	// Backing registers passthrough backing files (FUSE_DEV_IOC_BACKING_*).
	// Non-nil offers PASSTHROUGH (unless Writeback); then files the
	// filesystem opens with fs.OpenPassthrough bypass the server.
	Backing BackingFiles
	// MaxStackDepth is the max_stack_depth offered with PASSTHROUGH (1 or
	// 2; 0 means 1): how deeply stacked the backing files' filesystem may
	// be.
	MaxStackDepth uint32

	// DAX handles virtio-fs SETUPMAPPING/REMOVEMAPPING; nil answers them
	// ENOSYS. Non-nil offers MAP_ALIGNMENT.
	DAX DAX
	// MapAlignment is log2 of the alignment DAX mappings need (0 means 12,
	// 4 KiB; at most 21).
	MapAlignment uint16

	// PollHack serves PollHackName in the root directory (see there), for
	// transports that serve a mount in the process that also uses it.
	PollHack bool

	// Logger, when non-nil, gets one line per request and reply and every
	// rejected request. Nil costs nothing per request.
	Logger *log.Logger
}

// BackingFiles registers files for FUSE passthrough. The /dev/fuse transport
// implements it with FUSE_DEV_IOC_BACKING_OPEN/CLOSE.
//
// The engine calls Open when the filesystem answers OPEN or CREATE with
// fs.OpenPassthrough, and puts the id in the reply. The kernel looks the id
// up only when the opening process resumes, after the reply is written, so
// the engine keeps the id registered until the handle's RELEASE and calls
// Close then. Both are called from worker goroutines, concurrently.
type BackingFiles interface {
	// Open registers fd and returns its backing id (> 0). On failure the
	// file is served through READ/WRITE as usual.
	Open(fd int) (id int32, errno fs.Errno)
	// Close drops the registration of id.
	Close(id int32) fs.Errno
}

// DAX maps file ranges into a virtio-fs DAX window (package dax implements
// it). The engine validates each request (non-empty ranges that do not
// overflow, known flags) before calling it.
type DAX interface {
	// SetupMapping maps [foffset, foffset+length) of the open handle fh
	// (or of ino) at moffset in the window; flags are
	// abi.SetupmappingRead/Write bits.
	SetupMapping(ctx *fs.Context, ino fs.Inode, fh fs.Handle, foffset, length, moffset, flags uint64) fs.Errno
	// RemoveMapping unmaps [moffset, moffset+length) of the window.
	RemoveMapping(ctx *fs.Context, moffset, length uint64) fs.Errno
}
