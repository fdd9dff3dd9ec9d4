package passthrough

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/internal/sys"
)

// FS is a host directory served as an fs.FileSystem. Create it with New;
// all methods may be called concurrently.
type FS struct {
	fs.Base // nothing is left to it; it keeps FS an fs.FileSystem if the API grows

	opts Options
	// gen is Entry.Generation for every inode of this instance.
	gen uint64
	// procFd is /proc/self/fd, opened O_PATH at New (or Options.ProcFd).
	// Immutable.
	procFd int
	// xattrAt: the kernel has the *xattrat calls, and xattrs go through
	// (procFd, "N") instead of the path /proc/self/fd/N. Immutable.
	xattrAt bool
	root    *inode
	// rootMnt is the mount ID of the root's mount if the root is that
	// mount's root directory (a bind mount of the share, as in the
	// namespace sandbox, or a filesystem mounted there), else 0: then a
	// directory on that mount is beneath the root exactly when the kernel
	// finds it connected to the mount (beneathRoot). Immutable.
	rootMnt uint64

	inodes  inodeTable
	handles handleTable

	// entryTimeout, attrTimeout and openFlags follow opts.Cache. Immutable.
	entryTimeout time.Duration
	attrTimeout  time.Duration
	openFlags    uint32

	// writeback is InitInfo.Writeback: reads may arrive on O_WRONLY opens.
	writeback atomic.Bool
	// noFlush is set by Init when the client keeps locks itself and
	// caches no writes: Flush then has nothing to do that Release does not
	// (it would only drop a lock owner's locks, and close a dup of the fd
	// for close-to-open host filesystems, which Release's close does a
	// moment later), so file opens answer fs.OpenNoFlush and close(2)
	// costs the client no round trip.
	noFlush atomic.Bool
	// flushless: the root's filesystem gives its files no flush method
	// (hostNoFlush), so closing a dup of a handle's fd does nothing there
	// that Flush needs. It holds for the inodes on the root's st_dev
	// only: a filesystem mounted below the root has another. Immutable.
	flushless bool
	// ptPath: the kernel registers an O_PATH fd as a passthrough backing
	// file (FUSE_DEV_IOC_BACKING_OPEN takes one since Linux 6.12, commit
	// efad7153bf93: only its path is used), so a handle's passthrough
	// file is its inode's O_PATH fd and none is opened (fileOpenOut).
	// Immutable.
	ptPath bool

	// creds switches a thread to a caller's identity. Immutable.
	creds creds
	// umask is the process umask when New ran, which the host applies to
	// every inode the FS creates (see fixMode). Immutable.
	umask uint32

	// fhErr is why FileHandlesPrefer fell back to keeping fds (nil if
	// it did not). Immutable.
	fhErr error
	// sweepStop ends the fd cache's sweeper (fdcache.go), which closes
	// sweepDone when it has; both nil without file handles. Immutable.
	// sweepOnce makes a second Close not panic on the closed channel.
	sweepStop, sweepDone chan struct{}
	sweepOnce            sync.Once

	// budget counts each uid's handles and lock-owner fds; nil: no
	// limit. Immutable (inodes.budget is the same).
	budget *OpenBudget
}

var (
	_ fs.FileSystem = (*FS)(nil)
	_ fs.Mapper     = (*FS)(nil)
)

// New exports the directory root. It opens root O_PATH and /proc/self/fd
// and notes the process umask (see the package comment). Close the FS to
// release its fds.
func New(root string, opts Options) (*FS, error) {
	switch opts.Cache {
	case CacheAuto, CacheAlways, CacheNever, CacheMetadata:
	default:
		return nil, fmt.Errorf("passthrough: %v: unknown cache mode; use ParseCacheMode", opts.Cache)
	}
	if opts.OpenBudget != nil && opts.MaxOpenPerUid != 0 {
		return nil, errors.New("passthrough: Options.MaxOpenPerUid and OpenBudget both set: give the limit to NewOpenBudget and leave MaxOpenPerUid 0")
	}
	rootFd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("passthrough: open root %q: %w; it must be an existing directory", root, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(rootFd, &st); err != nil {
		unix.Close(rootFd)
		return nil, fmt.Errorf("passthrough: stat root %q: %w", root, err)
	}
	probe, err := unix.Openat2(rootFd, ".", &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH})
	if err != nil {
		unix.Close(rootFd)
		return nil, fmt.Errorf("passthrough: openat2 in %q: %w; Linux 5.6 or later is needed (openat2 keeps lookups beneath the root)", root, err)
	}
	unix.Close(probe)
	procFd := opts.ProcFd
	if procFd <= 0 {
		procFd, err = unix.Open("/proc/self/fd", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			unix.Close(rootFd)
			return nil, fmt.Errorf("passthrough: open /proc/self/fd: %w; mount procfs (mount -t proc proc /proc)", err)
		}
	}
	xattrAt := hasXattrAt(procFd, rootFd)
	if opts.ProcFd > 0 && !xattrAt && opts.Xattr {
		unix.Close(rootFd)
		return nil, errors.New("passthrough: extended attributes with Options.ProcFd need the *xattrat system calls (Linux 6.13); turn xattrs off or keep /proc reachable")
	}
	f := &FS{
		opts:    opts,
		gen:     uint64(time.Now().UnixNano()),
		procFd:  procFd,
		xattrAt: xattrAt,
		creds:   probeCreds(os.Geteuid(), os.Getegid()),
		umask:   processUmask(),
	}
	f.inodes.init()
	f.handles.init()
	if opts.FileHandles != FileHandlesNever {
		size := opts.FdCache
		if size == 0 {
			size = autoFdCache()
		}
		if size < MinFdCache {
			unix.Close(rootFd)
			unix.Close(procFd)
			return nil, fmt.Errorf("passthrough: fd cache of %d: must be at least %d", size, MinFdCache)
		}
		h, err := probeHandles(rootFd, root, opts.FileHandles == FileHandlesMandatory, size, procFd)
		switch {
		case err == nil:
			h.verifyDir = f.beneathRoot
			f.inodes.fh = h
		case opts.FileHandles == FileHandlesMandatory:
			unix.Close(rootFd)
			unix.Close(procFd)
			return nil, fmt.Errorf("passthrough: inode file handles are mandatory but do not work on %q: %w; use prefer or never", root, err)
		default:
			f.fhErr = err
		}
	}
	switch {
	case opts.OpenBudget != nil:
		f.budget = opts.OpenBudget
	case opts.MaxOpenPerUid > 0:
		f.budget = NewOpenBudget(opts.MaxOpenPerUid)
	case opts.MaxOpenPerUid == 0:
		cache := 0
		if h := f.inodes.fh; h != nil {
			cache = len(h.cache.slots)
		}
		o := opts
		if f.inodes.fh == nil {
			o.FileHandles = FileHandlesNever // fell back: no inode fd per handle
		}
		f.budget = NewOpenBudget(AutoMaxOpenPerUid(nofileLimit(), cache, FdsPerHandle(&o)))
	}
	f.inodes.budget = f.budget
	f.root = f.inodes.insertRoot(rootFd, &st)
	if _, id, root, err := statMount(rootFd); err == nil && root {
		f.rootMnt = id
	}
	f.flushless = hostNoFlush(rootFd)
	f.ptPath = kernelAtLeast(6, 12)
	if h := f.inodes.fh; h != nil {
		f.sweepStop, f.sweepDone = make(chan struct{}), make(chan struct{})
		go h.cache.sweep(f.sweepStop, f.sweepDone)
	}
	switch opts.Cache {
	case CacheAuto:
		f.entryTimeout, f.attrTimeout = autoTimeout, autoTimeout
	case CacheAlways:
		f.entryTimeout, f.attrTimeout = alwaysTimeout, alwaysTimeout
		f.openFlags = fs.OpenKeepCache
	case CacheNever:
		// pwrite on one fd from many workers is safe: let the client
		// send direct writes to one file in parallel.
		f.openFlags = fs.OpenDirectIO | fs.OpenParallelDirectWrites
	case CacheMetadata:
		f.entryTimeout, f.attrTimeout = alwaysTimeout, alwaysTimeout
		f.openFlags = fs.OpenDirectIO | fs.OpenParallelDirectWrites
	}
	return f, nil
}

// Close releases every fd the FS holds. No method may be called after it.
func (f *FS) Close() error {
	if f.sweepStop != nil {
		f.sweepOnce.Do(func() { close(f.sweepStop); <-f.sweepDone })
	}
	for _, h := range f.handles.removeAll() {
		f.putHandle(h)
	}
	f.inodes.drop(false)
	if f.inodes.fh != nil {
		f.inodes.fh.close()
	}
	return unix.Close(f.procFd)
}

// FileHandles reports whether inodes are kept as file handles with a
// bounded fd cache, its size, and, if Options.FileHandles asked for them
// (prefer) but New fell back to keeping an fd per inode, why.
func (f *FS) FileHandles() (on bool, cacheSize int, fallback error) {
	if h := f.inodes.fh; h != nil {
		return true, len(h.cache.slots), nil
	}
	return false, 0, f.fhErr
}

// MaxOpenPerUid returns the handles and lock-owner fds one uid may hold
// (Options.MaxOpenPerUid, OpenBudget), 0 if there is no limit.
func (f *FS) MaxOpenPerUid() int { return f.budget.Max() }

// Init records what the client and transport agreed on.
func (f *FS) Init(ctx *fs.Context, info *fs.InitInfo) fs.Errno {
	f.writeback.Store(info.Writeback)
	f.noFlush.Store(!info.Locks && !info.Writeback)
	return fs.OK
}

// Destroy closes every handle and forgets every inode but the root: the
// client is gone and will not forget them. The FS stays usable for a new
// client (a virtio-fs guest that reboots).
func (f *FS) Destroy() {
	for _, h := range f.handles.removeAll() {
		f.putHandle(h)
	}
	f.inodes.drop(true)
}

// errno converts an error from x/sys/unix to an Errno, EIO if it is none.
func errno(err error) fs.Errno {
	if err == nil {
		return fs.OK
	}
	if e, ok := err.(syscall.Errno); ok {
		if e == syscall.ENOSYS {
			// The host lacks a system call. To a client ENOSYS means "this
			// filesystem does not implement the operation" and it would
			// never send the request again (fs package comment).
			return syscall.EOPNOTSUPP
		}
		return e
	}
	return syscall.EIO
}

// ignoringEINTR retries fn while it fails with EINTR. The Go runtime
// interrupts system calls with signals (preemption, SIGURG); a slow call
// on a network filesystem may see EINTR that no client asked for.
func ignoringEINTR(fn func() error) error {
	for {
		err := fn()
		if err != syscall.EINTR {
			return err
		}
	}
}

// Name checks.

// maxName is NAME_MAX.
const maxName = 255

// nameKind classifies a name from a request.
type nameKind int

const (
	nameNormal nameKind = iota
	nameDot
	nameDotDot
)

// checkName validates a single path component from the client.
func checkName(name []byte) (nameKind, fs.Errno) {
	if len(name) == 0 {
		return 0, syscall.ENOENT
	}
	if len(name) > maxName {
		return 0, syscall.ENAMETOOLONG
	}
	for _, c := range name {
		if c == '/' || c == 0 {
			return 0, syscall.EINVAL
		}
	}
	if name[0] == '.' {
		if len(name) == 1 {
			return nameDot, fs.OK
		}
		if len(name) == 2 && name[1] == '.' {
			return nameDotDot, fs.OK
		}
	}
	return nameNormal, fs.OK
}

// cname is a NUL-terminated copy of a checked name, built on the stack.
type cname [maxName + 1]byte

func (c *cname) set(name []byte) *byte {
	n := copy(c[:maxName], name)
	c[n] = 0
	return &c[0]
}

// checkNewName validates the name of an entry to create, remove or rename
// to. "." and ".." get the errno the host kernel gives each operation for
// them (errDot, errDotDot), without a system call that could reach above
// the root.
func checkNewName(name []byte, errDot, errDotDot fs.Errno) fs.Errno {
	k, e := checkName(name)
	if e != 0 {
		return e
	}
	switch k {
	case nameDot:
		return errDot
	case nameDotDot:
		return errDotDot
	}
	return fs.OK
}

// fillAttr converts a stat to an fs.Attr.
func fillAttr(a *fs.Attr, st *unix.Stat_t) {
	a.Ino = st.Ino
	a.Size = uint64(st.Size)
	a.Blocks = uint64(st.Blocks)
	a.Atime = uint64(st.Atim.Sec)
	a.Mtime = uint64(st.Mtim.Sec)
	a.Ctime = uint64(st.Ctim.Sec)
	a.AtimeNsec = uint32(st.Atim.Nsec)
	a.MtimeNsec = uint32(st.Mtim.Nsec)
	a.CtimeNsec = uint32(st.Ctim.Nsec)
	a.Mode = st.Mode
	a.Nlink = uint32(st.Nlink)
	a.Uid = st.Uid
	a.Gid = st.Gid
	a.Rdev = uint32(st.Rdev)
	a.Blksize = uint32(st.Blksize)
}

func (f *FS) fillEntry(out *fs.Entry, id fs.Inode, st *unix.Stat_t) {
	out.Ino = id
	out.Generation = f.gen
	out.EntryTimeout = f.entryTimeout
	out.AttrTimeout = f.attrTimeout
	fillAttr(&out.Attr, st)
}

// Reopening.

// hasXattrAt reports whether the kernel has getxattrat(2): asked for an
// xattr of fd's magic link in procFd, anything but ENOSYS says it has.
func hasXattrAt(procFd, fd int) bool {
	var n fdName
	var name = [...]byte{'u', 's', 'e', 'r', '.', 'x', 0}
	_, e := sys.Getxattrat(procFd, n.set(fd), &name[0], nil)
	return e != syscall.ENOSYS
}

// procName is "N" for fd N, the name of its magic link in f.procFd.
func procName(fd int) string { return strconv.Itoa(fd) }

// reopen opens the inode for I/O through /proc/self/fd. Symlinks are
// refused (ELOOP): the magic link would land on the symlink, and opening
// it would follow it on the host. FIFOs, sockets and devices are refused
// (EBADF): opening them blocks or reaches a device; the client handles
// special files itself.
func (f *FS) reopen(in *inode, flags int) (int, fs.Errno) {
	switch in.typ {
	case unix.S_IFREG, unix.S_IFDIR:
	case unix.S_IFLNK:
		return -1, syscall.ELOOP
	default:
		return -1, syscall.EBADF
	}
	fd, err := f.openProc(in.fd, flags)
	if err != nil {
		return -1, errno(err)
	}
	return fd, fs.OK
}

// openProc opens for I/O the inode of fd (an O_PATH fd) through its magic
// link in f.procFd, where the host checks permission against the calling
// thread. The caller has refused the file types that must not be opened,
// each with its own errno (reopen, Create). O_NOFOLLOW would refuse the
// magic link itself; O_CREAT and O_EXCL make no sense on an existing
// inode; O_NOCTTY is moot for files.
func (f *FS) openProc(fd, flags int) (int, error) {
	flags &^= unix.O_NOFOLLOW | unix.O_CREAT | unix.O_EXCL | unix.O_NOCTTY
	var nfd int
	err := ignoringEINTR(func() (err error) {
		nfd, err = unix.Openat(f.procFd, procName(fd), flags|unix.O_CLOEXEC, 0)
		return err
	})
	return nfd, err
}

// openForIO is reopen for a client's OPEN or a truncate: a regular file
// is opened through openRegular, so that a host lease never makes a
// NoWait request wait.
func (f *FS) openForIO(ctx *fs.Context, in *inode, flags int) (int, fs.Errno) {
	if in.typ != unix.S_IFREG {
		return f.reopen(in, flags)
	}
	fd, err := f.openRegular(ctx, in.fd, flags)
	if err != nil {
		return -1, errno(err)
	}
	return fd, fs.OK
}

// openRegular is openProc for a regular file (fd is its O_PATH fd). Its
// open may have to break a lease another process holds on the host file
// (fcntl F_SETLEASE), which sleeps for as long as the holder takes to
// give it up, up to /proc/sys/fs/lease-break-time (45 s by default). So
// the file is first opened with O_NONBLOCK added: with no lease in the
// way that succeeds at once, and O_NONBLOCK is cleared again (F_SETFL
// with the caller's flags) unless the caller asked for it, so the handle
// has the caller's flags. A lease makes it fail with EWOULDBLOCK, having
// started the lease break and changed nothing else (O_TRUNC truncates
// only after the open). Then, if ctx.NoWait, fs.WouldWait is returned
// (the transport serves the request again where it may wait); otherwise
// the open is done again without O_NONBLOCK in blockingCall, so the
// request's interrupt (FUSE_INTERRUPT, shutdown) ends the wait with
// EINTR. A caller that asked for O_NONBLOCK gets EWOULDBLOCK, as open(2)
// would give it.
func (f *FS) openRegular(ctx *fs.Context, fd, flags int) (int, error) {
	if flags&unix.O_NONBLOCK != 0 {
		return f.openProc(fd, flags)
	}
	nfd, err := f.openProc(fd, flags|unix.O_NONBLOCK)
	if err == nil {
		if _, err := unix.FcntlInt(uintptr(nfd), unix.F_SETFL, flags); err != nil {
			unix.Close(nfd)
			return -1, err
		}
		return nfd, nil
	}
	if err != syscall.EWOULDBLOCK {
		return -1, err
	}
	if ctx != nil && ctx.NoWait {
		return -1, fs.WouldWait
	}
	flags &^= unix.O_NOFOLLOW | unix.O_CREAT | unix.O_EXCL | unix.O_NOCTTY
	e := blockingCall(ctx, func() (err error) {
		nfd, err = unix.Openat(f.procFd, procName(fd), flags|unix.O_CLOEXEC, 0)
		return err
	})
	if e != 0 {
		return -1, e
	}
	return nfd, nil
}

// openBeneath opens name (a checked, normal name) in directory dir with
// how, never resolving outside dir nor through a magic link.
func openBeneath(dir *inode, name []byte, flags int, mode uint32) (int, fs.Errno) {
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC),
		Mode:    uint64(mode),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	var fd int
	err := ignoringEINTR(func() (err error) {
		fd, err = unix.Openat2(dir.fd, string(name), &how)
		return err
	})
	if err != nil {
		return -1, errno(err)
	}
	return fd, fs.OK
}

// getInode resolves an ID; ESTALE if the client names an inode it has
// forgotten (or never had).
func (f *FS) getInode(id fs.Inode) (*inode, fs.Errno) {
	return f.inodes.acquire(id)
}

// getDir is getInode for an inode that must be a directory.
func (f *FS) getDir(id fs.Inode) (*inode, fs.Errno) {
	in, e := f.getInode(id)
	if e != 0 {
		return nil, e
	}
	if !in.isDir() {
		f.inodes.put(in)
		return nil, syscall.ENOTDIR
	}
	return in, fs.OK
}

func (f *FS) getHandle(fh fs.Handle) (*handle, fs.Errno) {
	h := f.handles.get(fh)
	if h == nil {
		return nil, syscall.EBADF
	}
	return h, fs.OK
}

func (f *FS) putHandle(h *handle) {
	if h.refs.Add(-1) == 0 {
		h.lockMu.Lock()
		owners := h.lockOwners
		h.lockOwners = nil
		h.lockMu.Unlock()
		for _, o := range owners {
			f.dropLockOwner(h.in, o)
		}
		if h.passthrough {
			putPassthroughFd(h.in)
		}
		unix.Close(h.fd)
		f.budget.give(h.uid)
		f.inodes.put(h.in)
	}
}

// readOnly reports EROFS if the FS refuses changes.
func (f *FS) readOnly() fs.Errno {
	if f.opts.ReadOnly {
		return syscall.EROFS
	}
	return fs.OK
}
