package fs

import (
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Errno is the error currency of the data plane: 0 is success, anything else
// is returned to the client as that errno.
type Errno = syscall.Errno

// OK is the zero Errno: success.
const OK = Errno(0)

// WouldWait is returned only for a request whose Context has NoWait set:
// serving it would wait for another process, nothing was changed, and the
// transport must serve it again with NoWait false (Context.NoWait). It is
// no errno (above the range a client can be sent), so a transport that
// lets it through answers EIO; fs/passthrough returns it for an open or
// truncate that would break a host lease, and no other filesystem here
// returns it.
const WouldWait = Errno(1 << 20)

// Inode is the 64-bit ID of an inode as the filesystem handed it out in
// Entry.Ino. RootInode is the root and is never looked up nor forgotten.
type Inode uint64

// RootInode is the ID of the root directory (FUSE_ROOT_ID).
const RootInode Inode = 1

// Handle is an open file or directory handle chosen by the filesystem in
// OpenOut.Handle; 0 is a valid handle.
type Handle uint64

// Caller is the identity a request runs with. With FUSE it is the fsuid,
// fsgid and thread-group id of the process that made the system call.
type Caller struct {
	Uid uint32
	Gid uint32
	Pid uint32
}

// Context describes one request. It is owned by the transport worker and
// reused for the next request: do not keep it after the method returns.
type Context struct {
	Caller
	// Umask is the caller's umask for creating requests (CREATE, MKNOD,
	// MKDIR, TMPFILE), already applied to the mode unless the transport says
	// otherwise. 0 elsewhere.
	Umask uint32
	// SuppGid, when HasSuppGid, is a supplementary group of the caller
	// sent with a creating request (FUSE_CREATE_SUPP_GROUP): the parent
	// directory's group, when the caller belongs to it only through its
	// supplementary groups. A filesystem that creates as the caller adds
	// it to the caller's groups, so that the new inode's group and
	// set-group-ID bit come out as the caller's kernel would make them.
	SuppGid    uint32
	HasSuppGid bool
	// SecLabelName and SecLabel, on a creating request (Create, Mknod,
	// Mkdir, Symlink, Tmpfile) whose transport agreed on security labels
	// (FUSE_SECURITY_CTX, fastfsd's --security-label), are the xattr name
	// ("security.selinux", "security.SMACK64"…; no NUL) and the value of
	// the label the client's LSM chose for the new inode. A filesystem
	// that keeps labels stores it on the inode it creates, or fails the
	// request and leaves nothing created. Both nil when there is none.
	// They view the request's bytes: valid until the method returns; a
	// wrapper may replace them for the call it makes (fs/xattrmap maps
	// the name as a client's SetXattr name).
	SecLabelName, SecLabel []byte
	// Unique is the transport's request ID (FUSE unique, 9P tag); for logs.
	Unique uint64
	// NoWait is set by a transport that serves the request where it must
	// not wait for long (a worker that other requests queue behind) and
	// can serve it again elsewhere. A method that would have to wait for
	// another process (an open that must break a host lease, for up to
	// lease-break-time) may then return WouldWait instead, having changed
	// nothing; the transport serves the request again with NoWait false
	// where waiting is allowed (a helper that FUSE_INTERRUPT and shutdown
	// can wake). A filesystem that never waits ignores it.
	NoWait bool

	// interrupt is set by the transport when the client asks to abort the
	// request (FUSE_INTERRUPT, 9P Tflush, shutdown). It may be nil for
	// transports that cannot interrupt.
	interrupt *Interrupt
}

// SetInterrupt ties the context to the request's interrupt state, which
// its transport sets. For transports only.
func (c *Context) SetInterrupt(i *Interrupt) { c.interrupt = i }

// Interrupted reports whether the client asked to abort this request.
func (c *Context) Interrupted() bool {
	return c.interrupt != nil && c.interrupt.IsSet()
}

// OnInterrupt arranges for fn to be called once if the request is
// interrupted before StopOnInterrupt. It returns false, registering
// nothing, if the request is already interrupted or its transport cannot
// interrupt (then fn is never called: a wait must be bounded some other
// way). fn runs on the goroutine that interrupts (a transport's reader or
// worker) and must not block. A method that blocks in a system call uses
// it to wake itself (see fs/passthrough: a blocking lock); one that merely
// loops may poll Interrupted instead.
func (c *Context) OnInterrupt(fn func()) bool {
	if c.interrupt == nil {
		return false
	}
	return c.interrupt.notify(fn)
}

// StopOnInterrupt undoes OnInterrupt; once it returns, fn is not running
// and will not be called.
func (c *Context) StopOnInterrupt() {
	if c.interrupt != nil {
		c.interrupt.notify(nil)
	}
}

// CanInterrupt reports whether the request's transport can interrupt it
// (FUSE_INTERRUPT, Tflush, a queue stop). A filesystem may refuse an
// unbounded wait for a request that cannot be interrupted.
func (c *Context) CanInterrupt() bool { return c.interrupt != nil }

// Interrupt is one request's interrupt state. The transport owns it (one
// per request slot, reused): Set when the client aborts the request or the
// connection stops, Clear before the slot serves its next request. The
// zero value is ready to use.
type Interrupt struct {
	set atomic.Bool
	mu  sync.Mutex
	// fn is the callback registered through Context.OnInterrupt.
	// +checklocks:mu
	fn func()
}

// Set marks the request interrupted and calls the callback a waiting
// filesystem method registered, if any (once: Set clears it).
func (i *Interrupt) Set() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.set.Store(true)
	if fn := i.fn; fn != nil {
		i.fn = nil
		fn()
	}
}

// IsSet reports whether Set was called since the last Clear.
func (i *Interrupt) IsSet() bool { return i.set.Load() }

// Clear readies the state for the slot's next request.
func (i *Interrupt) Clear() {
	i.mu.Lock()
	i.set.Store(false)
	i.fn = nil
	i.mu.Unlock()
}

// notify registers fn (nil: unregisters); false if already set.
func (i *Interrupt) notify(fn func()) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	if fn != nil && i.set.Load() {
		return false
	}
	i.fn = fn
	return true
}

// Attr is an inode's attributes, as stat(2) reports them.
type Attr struct {
	Ino       uint64
	Size      uint64
	Blocks    uint64 // 512-byte blocks
	Atime     uint64
	Mtime     uint64
	Ctime     uint64
	AtimeNsec uint32
	MtimeNsec uint32
	CtimeNsec uint32
	Mode      uint32 // file type and permission bits (S_IFMT | 07777)
	Nlink     uint32
	Uid       uint32
	Gid       uint32
	Rdev      uint32
	Blksize   uint32
}

// Entry answers every request that makes a name refer to an inode (LOOKUP,
// MKDIR, CREATE, …). Returning an Entry with a non-zero Ino raises that
// inode's lookup count by one; the client will Forget it later.
type Entry struct {
	// Ino is the inode's ID, the one later requests name. 0 means a negative
	// entry: the name does not exist, cache that for EntryTimeout (LOOKUP only).
	Ino        Inode
	Generation uint64
	// EntryTimeout is how long the client may cache the name → inode binding;
	// AttrTimeout how long it may cache Attr.
	EntryTimeout time.Duration
	AttrTimeout  time.Duration
	Attr         Attr
}

// AttrOut answers GETATTR and SETATTR.
type AttrOut struct {
	Timeout time.Duration
	Attr    Attr
}

// SetAttr valid bits. The values are FUSE's FATTR_* bits so that the fuse
// engine passes them through unchanged.
const (
	SetMode        = 1 << 0
	SetUid         = 1 << 1
	SetGid         = 1 << 2
	SetSize        = 1 << 3
	SetAtime       = 1 << 4
	SetMtime       = 1 << 5
	SetHandle      = 1 << 6 // Handle is valid (ftruncate, futimens, fchmod, …)
	SetAtimeNow    = 1 << 7
	SetMtimeNow    = 1 << 8
	SetLockOwner   = 1 << 9
	SetCtime       = 1 << 10
	SetKillSuidGid = 1 << 11 // clear suid and sgid (sgid only if group-executable) as the change does
)

// SetAttrIn says which attributes to change and to what.
type SetAttrIn struct {
	Valid     uint32 // Set* bits
	Handle    Handle // valid if Valid&SetHandle
	Size      uint64
	LockOwner uint64
	Atime     uint64
	Mtime     uint64
	Ctime     uint64
	AtimeNsec uint32
	MtimeNsec uint32
	CtimeNsec uint32
	Mode      uint32
	Uid       uint32
	Gid       uint32
}

// Open flags a filesystem sets in OpenOut.Flags. The values are FUSE's
// FOPEN_* bits so that the fuse engine passes them through unchanged.
const (
	OpenDirectIO             = 1 << 0 // bypass the client's page cache for this open
	OpenKeepCache            = 1 << 1 // do not invalidate cached data on open
	OpenNonSeekable          = 1 << 2
	OpenCacheDir             = 1 << 3 // allow caching this directory's entries
	OpenStream               = 1 << 4
	OpenNoFlush              = 1 << 5 // the client need not send FLUSH on close
	OpenParallelDirectWrites = 1 << 6
	// OpenPassthrough asks the transport to let the client do this file's
	// reads and writes on PassthroughFd directly (FUSE passthrough). The
	// transport may decline, in which case requests arrive as usual.
	OpenPassthrough = 1 << 7
)

// OpenOut answers OPEN, OPENDIR, CREATE and TMPFILE.
type OpenOut struct {
	Handle Handle
	Flags  uint32 // Open* bits
	// PassthroughFd is the file the client should do I/O on directly, if
	// Flags&OpenPassthrough. The filesystem keeps owning it (keep it open
	// until Release). On /dev/fuse it names the host file: the kernel
	// does each client open's I/O on a backing file it opens itself on
	// that fd's path, with the client open's flags and the daemon's
	// credentials, so its access mode does not limit the open's (a
	// read-only fd serves write opens; fs/passthrough's getPassthroughFd),
	// and from Linux 6.12 it may be an O_PATH fd (fs/passthrough hands
	// out its inode's).
	PassthroughFd int
}

// Open request flags beyond the open(2) flags, as FUSE's FUSE_OPEN_* bits.
const (
	// OpenKillSuidGid asks the filesystem to clear suid/sgid on this open
	// (O_TRUNC by an unprivileged caller, with HANDLE_KILLPRIV_V2).
	OpenKillSuidGid = 1 << 0
)

// WriteKillSuidGid in Write's flags asks the filesystem to clear suid and
// sgid (sgid only if group-executable) as part of the write.
const WriteKillSuidGid = 1 << 2

// StatFs answers STATFS.
type StatFs struct {
	Blocks  uint64
	Bfree   uint64
	Bavail  uint64
	Files   uint64
	Ffree   uint64
	Bsize   uint32
	NameLen uint32
	Frsize  uint32
}

// Lock is a POSIX byte-range lock. End is inclusive; math.MaxUint64 (or
// 0x7fffffffffffffff) means to end of file. Type is F_RDLCK, F_WRLCK or
// F_UNLCK.
type Lock struct {
	Start uint64
	End   uint64
	Type  uint32
	Pid   uint32
}

// StatxTime is a timestamp in a Statx.
type StatxTime struct {
	Sec  int64
	Nsec uint32
}

// Statx answers STATX; fields are those of statx(2). Mask says which are
// filled.
type Statx struct {
	Mask           uint32
	Blksize        uint32
	Attributes     uint64
	Nlink          uint32
	Uid            uint32
	Gid            uint32
	Mode           uint16
	Ino            uint64
	Size           uint64
	Blocks         uint64
	AttributesMask uint64
	Atime          StatxTime
	Btime          StatxTime
	Ctime          StatxTime
	Mtime          StatxTime
	RdevMajor      uint32
	RdevMinor      uint32
	DevMajor       uint32
	DevMinor       uint32
}

// StatxOut answers STATX.
type StatxOut struct {
	Timeout time.Duration
	Statx   Statx
}

// DirEntry is one directory entry handed to a DirSink.
type DirEntry struct {
	// Ino is the inode number to report in the entry (d_ino); for
	// READDIRPLUS the inode ID is Entry.Ino.
	Ino uint64
	// Off is the cookie of the *next* entry: passing it as the offset of a
	// later ReadDir continues after this entry. Never 0.
	Off uint64
	// Type is the file type as in d_type (DT_REG, DT_DIR, …).
	Type uint32
	// Name is a view, valid until Add returns.
	Name []byte
}

// InitInfo tells the filesystem what the client and transport agreed on.
type InitInfo struct {
	// Writeback: the client caches writes (FUSE_WRITEBACK_CACHE); reads may
	// arrive on write-only handles.
	Writeback bool
	// KillPrivV2: the filesystem must clear suid/sgid on write, truncate and
	// chown when asked (Write flag WriteKillSuidGid, SetKillSuidGid,
	// OpenKillSuidGid).
	KillPrivV2 bool
	// Passthrough: the transport can honour OpenPassthrough.
	Passthrough bool
	// DAX: the client maps file ranges (virtio-fs) and will send
	// SETUPMAPPING / REMOVEMAPPING (see Mapper).
	DAX bool
	// Locks is FUSE's: the client negotiated FUSE_POSIX_LOCKS or
	// FUSE_FLOCK_LOCKS, so it sends lock requests to the filesystem and
	// Flush's lock owner must drop that owner's locks. False under FUSE,
	// the client's kernel keeps locks itself: nothing at close(2) concerns
	// the filesystem, which may then answer opens with OpenNoFlush and
	// spare the client a FLUSH round trip per close. The 9P server leaves
	// it false and still calls SetLk and GetLk (9P has no FLUSH at close,
	// and ignores OpenNoFlush): only the choice of OpenNoFlush depends on it.
	Locks bool
}
