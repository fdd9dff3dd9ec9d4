package fusedev

import (
	"errors"
	"fmt"
	"github.com/fastfsd/fastfsd/fuse"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/internal/sys"
)

// MountOptions say how to mount.
type MountOptions struct {
	// Source is the "device" shown in /proc/mounts and df (default
	// "fastfs").
	Source string
	// Subtype names the filesystem type fuse.<Subtype> (default "fastfs").
	Subtype string
	// AllowOther lets users other than the mounting one access the mount.
	AllowOther bool
	// DefaultPermissions makes the kernel check permissions from the mode,
	// uid and gid the filesystem reports (recommended: fastfs filesystems
	// rely on it).
	DefaultPermissions bool
	// MaxRead caps the size of READ requests (0: leave the kernel's
	// default).
	MaxRead int
	// ForceFusermount uses fusermount3 even when running as root (tests).
	ForceFusermount bool
}

// Conn is one mounted FUSE connection: the /dev/fuse fd the kernel gave the
// mount, and the mountpoint. Mount makes one; Serve runs it; Unmount ends
// it. Conn's methods are safe for concurrent use.
type Conn struct {
	fd         int // the /dev/fuse fd of the mount; closed by Close
	mountpoint string
	fusermount bool // mounted through fusermount3: unmount through it too
	// unmount, if set, is how Unmount unmounts: the connection was
	// mounted by another process (Adopt), which unmounts it.
	unmount func() error

	mu        sync.Mutex
	unmounted bool // +checklocks:mu
	closed    bool // +checklocks:mu

	workers []*workerStats // +checklocks:mu; set by Serve before workers start
	server  *fuse.Server   // +checklocks:mu; the engine Serve made
	prep    *prepared      // +checklocks:mu; what Prepare opened, until Serve takes it

	// fdMu is held for reading by a notification's write on fd and for
	// writing by Close, so fd is never closed (and its number reused)
	// under a write. Separate from mu: a notification may block in the
	// kernel until a worker serves a request, and nothing a worker does
	// may wait for it.
	fdMu     sync.RWMutex
	fdClosed bool // +checklocks:fdMu
}

// Server returns the engine Serve runs (nil before Serve), e.g. to read
// what INIT agreed.
func (c *Conn) Server() *fuse.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.server
}

// Mount opens /dev/fuse and mounts it at mountpoint. As root it calls
// mount(2) itself; otherwise it runs fusermount3, which passes the fd back
// over a unix socket. The filesystem is served only once Serve runs:
// until then, accesses to the mountpoint block.
func Mount(mountpoint string, opts MountOptions) (*Conn, error) {
	if opts.Source == "" {
		opts.Source = "fastfs"
	}
	if opts.Subtype == "" {
		opts.Subtype = "fastfs"
	}
	if strings.ContainsAny(opts.Source+opts.Subtype, ",\x00") || strings.ContainsAny(opts.Subtype, " /") {
		return nil, fmt.Errorf("mount %s: source %q or subtype %q contains ',', a NUL, or (subtype) a space or '/'; pick another name", mountpoint, opts.Source, opts.Subtype)
	}
	if opts.MaxRead != 0 && opts.MaxRead < 4096 {
		return nil, fmt.Errorf("mount %s: max_read %d is below the kernel's minimum 4096", mountpoint, opts.MaxRead)
	}
	abs, err := filepath.Abs(mountpoint)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		if errors.Is(err, syscall.ENOTCONN) {
			return nil, fmt.Errorf("mount %s: a dead FUSE mount is in the way (%w); unmount it with umount -l %s", abs, err, abs)
		}
		return nil, fmt.Errorf("mount %s: %w; create the mountpoint directory first (mkdir -p)", abs, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("mount %s: not a directory; mount on an empty directory", abs)
	}
	if os.Geteuid() != 0 || opts.ForceFusermount {
		return mountFusermount(abs, opts)
	}
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("mount %s: open /dev/fuse: %w; %s", abs, err, devFuseHint(err))
	}
	data := fmt.Sprintf("fd=%d,rootmode=40000,user_id=%d,group_id=%d", fd, os.Getuid(), os.Getgid())
	if opts.DefaultPermissions {
		data += ",default_permissions"
	}
	if opts.AllowOther {
		data += ",allow_other"
	}
	if opts.MaxRead > 0 {
		data += ",max_read=" + strconv.Itoa(opts.MaxRead)
	}
	if err := unix.Mount(opts.Source, abs, "fuse."+opts.Subtype, unix.MS_NOSUID|unix.MS_NODEV, data); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mount %s: mount(2) fuse.%s %q: %w; %s", abs, opts.Subtype, data, err, mountHint(err))
	}
	return &Conn{fd: fd, mountpoint: abs}, nil
}

// Adopt returns a Conn for fd, a /dev/fuse fd of a connection another
// process mounted at mountpoint and handed over (fastfsd mount's
// namespace sandbox: its supervisor mounts and unmounts in the host's
// mount namespace, the child serves). Unmount calls unmount, which must
// make that process unmount the filesystem: Serve's workers end when it
// is gone. Close closes fd.
func Adopt(fd int, mountpoint string, unmount func() error) *Conn {
	return &Conn{fd: fd, mountpoint: mountpoint, unmount: unmount}
}

func devFuseHint(err error) string {
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ENODEV), errors.Is(err, syscall.ENXIO):
		return "load the fuse module (modprobe fuse) or create the node (mknod /dev/fuse c 10 229)"
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return "run as root or install fuse3 (fusermount3)"
	}
	return "check that /dev/fuse is the FUSE character device (10, 229)"
}

func mountHint(err error) string {
	switch {
	case errors.Is(err, syscall.EPERM):
		return "mounting needs CAP_SYS_ADMIN; run as root or install fuse3 (fusermount3)"
	case errors.Is(err, syscall.ENODEV):
		return "the kernel has no FUSE filesystem type; modprobe fuse"
	case errors.Is(err, syscall.EBUSY):
		return "the mountpoint is busy; unmount what is mounted there"
	case errors.Is(err, syscall.EINVAL):
		return "the kernel refused the options; check max_read and the mountpoint"
	}
	return "see dmesg for the kernel's reason"
}

// Mountpoint returns the absolute path the connection is mounted on.
func (c *Conn) Mountpoint() string { return c.mountpoint }

// Fd returns the connection's /dev/fuse fd (for diagnostics; Serve owns
// reading it).
func (c *Conn) Fd() int { return c.fd }

// backingFiles is fuse.BackingFiles on this connection's fd: FUSE
// passthrough backing files registered with FUSE_DEV_IOC_BACKING_OPEN and
// dropped with FUSE_DEV_IOC_BACKING_CLOSE. Safe for concurrent use (each
// call is one ioctl).
type backingFiles struct{ c *Conn }

// Open registers fd (a regular file the caller keeps owning) and returns
// its backing id for fuse_open_out.backing_id. The kernel must have agreed
// FUSE_PASSTHROUGH; EPERM without CAP_SYS_ADMIN.
func (b backingFiles) Open(fd int) (int32, syscall.Errno) {
	return sys.FuseBackingOpen(b.c.fd, fd)
}

// Close drops the server's reference to id; open files keep theirs.
func (b backingFiles) Close(id int32) syscall.Errno {
	return sys.FuseBackingClose(b.c.fd, id)
}

// Unmount unmounts the filesystem: umount2(2), and if the mount is busy, a
// lazy detach (MNT_DETACH) followed by an abort of the connection through
// the fusectl filesystem, so that the workers' reads return ENODEV and
// Serve returns. Unmounting an already unmounted Conn is a no-op.
func (c *Conn) Unmount() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.unmounted {
		return nil
	}
	if c.unmount != nil {
		err := c.unmount()
		if err == nil {
			c.unmounted = true
		}
		return err
	}
	if c.fusermount {
		err := fusermountUnmount(c.mountpoint)
		if err == nil {
			c.unmounted = true
		}
		return err
	}
	// Find the connection before the mount disappears from mountinfo.
	connID, idErr := c.ConnectionID()
	err := unmountPath(c.mountpoint, connID, idErr)
	if err == nil || errors.Is(err, errDetached) {
		c.unmounted = true
	}
	return err
}

// errDetached marks an Unmount error after the mount was detached (lazy
// unmount done, the connection abort failed): the mount is gone from the
// namespace, so Unmount does not try again.
var errDetached = errors.New("detached")

// unmountPath is Unmount's umount2(2) of mountpoint, falling back to a
// lazy detach and a fusectl abort of connection connID (unless idErr says
// it could not be found) when the mount is busy. The calling task does
// the unmount: with a plain umount2 the kernel frees every dentry and
// inode the mount cached in it (cleanup_mnt, task work run before the
// call returns to user space), about 2 µs each.
func unmountPath(mountpoint string, connID uint32, idErr error) error {
	err := unix.Unmount(mountpoint, 0)
	switch {
	case err == nil, errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.ENOENT):
		// EINVAL: no longer a mountpoint (unmounted from outside).
		return nil
	case errors.Is(err, syscall.EBUSY):
		if err := unix.Unmount(mountpoint, unix.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			return fmt.Errorf("unmount %s: lazy unmount: %w; unmount it by hand (umount -l)", mountpoint, err)
		}
		// Detached but still alive while files are open: abort the
		// connection so blocked workers wake up.
		if idErr != nil {
			return fmt.Errorf("unmount %s: busy, detached; cannot abort the connection: %w (%w)", mountpoint, idErr, errDetached)
		}
		if err := AbortConnection(connID); err != nil {
			return fmt.Errorf("unmount %s: busy, detached: %w (%w)", mountpoint, err, errDetached)
		}
		return nil
	default:
		return fmt.Errorf("unmount %s: %w; unmount it by hand (umount -l %s)", mountpoint, err, mountpoint)
	}
}

// UnmountConnection is Conn.Unmount for a process that holds no Conn:
// it unmounts mountpoint as root does (umount2, and if busy a lazy detach
// and an abort of connection id) if FUSE connection id is still mounted
// there, and does nothing if it is not (unmounted from outside: whatever
// is mounted there now is someone else's). fastfsd mount's supervisor
// runs it in a short-lived helper process, so that the kernel's freeing
// of the mount's cache (see unmountPath) runs in that process and not in
// the daemon's exit.
func UnmountConnection(mountpoint string, id uint32) error {
	mounted, err := ConnectionMounted(mountpoint, id)
	if err != nil {
		return fmt.Errorf("unmount %s: %w", mountpoint, err)
	}
	if !mounted {
		return nil
	}
	return unmountPath(mountpoint, id, nil)
}

// ConnectionMounted reports whether /proc/self/mountinfo shows FUSE
// connection id mounted at mountpoint (an absolute, clean path). A mount
// leaves mountinfo when umount2 detaches it, before the kernel frees its
// cache.
func ConnectionMounted(mountpoint string, id uint32) (bool, error) {
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		found := m.Mountpoint == mountpoint && m.Major == 0 && m.Minor == int(id)
		return !found, found
	})
	if err != nil {
		return false, fmt.Errorf("read mountinfo: %w", err)
	}
	return len(mounts) > 0, nil
}

// Abort tears the connection down at once (fusectl abort): pending and
// future requests fail, reads on the device return ENODEV. The mount
// stays (every access then fails with ENOTCONN) until Unmount. An
// adopted Conn asks its mounting process to unmount instead.
func (c *Conn) Abort() error {
	if c.unmount != nil {
		// Adopted: the mounting process unmounts, aborting a busy
		// connection; this one may not be allowed to.
		return c.unmount()
	}
	id, err := c.ConnectionID()
	if err != nil {
		return err
	}
	return AbortConnection(id)
}

// ConnectionID finds the fusectl connection number of the mount: the minor
// of its st_dev as /proc/self/mountinfo shows it ("0:N"), read without
// touching the mount. UnmountConnection and ConnectionMounted take it.
func (c *Conn) ConnectionID() (uint32, error) {
	// 36 35 0:45 / /mnt/x rw,... - fuse.fastfs src rw,...
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return m.Mountpoint != c.mountpoint || !strings.HasPrefix(m.FSType, "fuse"), false
	})
	if err != nil {
		return 0, fmt.Errorf("read mountinfo: %w", err)
	}
	if len(mounts) == 0 {
		return 0, fmt.Errorf("no FUSE mount at %s in /proc/self/mountinfo", c.mountpoint)
	}
	return uint32(mounts[len(mounts)-1].Minor), nil // the last match is the top mount
}

const fusectlDir = "/sys/fs/fuse/connections"

// AbortConnection aborts FUSE connection id: it writes to fusectl's abort
// file of the connection, mounting fusectl first if nobody has (needs
// CAP_SYS_ADMIN). Pending and future requests fail, the server's reads
// return ENODEV.
func AbortConnection(id uint32) error {
	path := fmt.Sprintf("%s/%d/abort", fusectlDir, id)
	if _, err := os.Stat(path); err != nil {
		// fusectl may simply not be mounted.
		if err := unix.Mount("fusectl", fusectlDir, "fusectl", 0, ""); err != nil && !errors.Is(err, syscall.EBUSY) {
			return fmt.Errorf("abort FUSE connection %d: mount fusectl on %s: %w; run as root", id, fusectlDir, err)
		}
	}
	if err := os.WriteFile(path, []byte("1"), 0); err != nil {
		return fmt.Errorf("abort FUSE connection %d: %w", id, err)
	}
	return nil
}

// Close closes the connection's /dev/fuse fd. Call it after Serve has
// returned and the filesystem is unmounted: closing the fd of a live mount
// leaves a dead mount (ENOTCONN) behind.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.prep != nil {
		c.prep.close()
		c.prep = nil
	}
	c.fdMu.Lock()
	defer c.fdMu.Unlock()
	c.fdClosed = true
	return unix.Close(c.fd)
}
