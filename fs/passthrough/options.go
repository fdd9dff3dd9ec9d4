package passthrough

import (
	"fmt"
	"time"
)

// CacheMode says how long the client may cache names, attributes and data,
// with the meaning virtiofsd gives its --cache option.
type CacheMode int

const (
	// CacheAuto lets the client cache names, absent names (negative
	// entries) and attributes for one second and keep file data cached
	// until the file changes (close-to-open).
	CacheAuto CacheMode = iota
	// CacheAlways lets the client cache names, absent names (negative
	// entries) and attributes for a day and keep file data and directory
	// listings across opens. Use it when only this client changes the
	// directory.
	CacheAlways
	// CacheNever disables caching: zero timeouts and direct I/O on every
	// open, so every change on the host is seen at once.
	CacheNever
	// CacheMetadata lets the client cache names and attributes for a day
	// (as CacheAlways) but no file data: direct I/O on every open
	// (virtiofsd's --cache=metadata).
	CacheMetadata
)

// String returns the name ParseCacheMode accepts.
func (m CacheMode) String() string {
	switch m {
	case CacheAuto:
		return "auto"
	case CacheAlways:
		return "always"
	case CacheNever:
		return "never"
	case CacheMetadata:
		return "metadata"
	}
	return fmt.Sprintf("CacheMode(%d)", int(m))
}

// ParseCacheMode parses "auto", "always", "never" (or "none") or
// "metadata".
func ParseCacheMode(s string) (CacheMode, error) {
	switch s {
	case "auto", "":
		return CacheAuto, nil
	case "always":
		return CacheAlways, nil
	case "never", "none":
		return CacheNever, nil
	case "metadata":
		return CacheMetadata, nil
	}
	return 0, fmt.Errorf("passthrough: cache mode %q: want auto, always, metadata or never", s)
}

// Timeouts of each cache mode.
const (
	autoTimeout   = time.Second
	alwaysTimeout = 24 * time.Hour
)

// Options configure New. The zero value is CacheAuto, xattrs off, no FUSE
// passthrough, read-write, no device nodes.
type Options struct {
	// Cache sets entry and attribute timeouts and the open flags.
	Cache CacheMode
	// Xattr enables the extended-attribute methods. Off, they answer
	// ENOSYS and the client stops asking (and stops sending a
	// security.capability GETXATTR before every write).
	Xattr bool
	// Passthrough makes Open and Create of regular files ask for FUSE
	// passthrough (fs.OpenPassthrough with the opened fd).
	Passthrough bool
	// ReadOnly refuses every change with EROFS.
	ReadOnly bool
	// AllowDevices lets Mknod create character and block device nodes
	// (for a caller the host lets do so: CAP_MKNOD). Off, Mknod of a
	// device fails with EPERM, so that no client puts into the export a
	// node through which host processes would reach a host device; FIFOs,
	// sockets and the overlayfs whiteout (a character device 0:0, which
	// no driver serves) are still created.
	AllowDevices bool
	// DirectIO passes a client's O_DIRECT through to the host file. Off
	// (virtiofsd's default), O_DIRECT is dropped: the client bypasses its
	// own cache regardless, and host O_DIRECT needs aligned buffers, which
	// spliced pipes and guest memory do not guarantee (EINVAL).
	DirectIO bool
	// FileHandles keeps inodes as file handles with their O_PATH fds in
	// a bounded cache (prefer, mandatory) instead of one open fd per
	// inode the client remembers (never, the zero value). Handles need
	// CAP_DAC_READ_SEARCH (open_by_handle_at) and a filesystem that
	// exports them (ext4, xfs, btrfs, tmpfs…).
	FileHandles FileHandleMode
	// FdCache is the number of unused inode fds kept open with file
	// handles; 0: AutoFdCache of RLIMIT_NOFILE.
	FdCache int
	// ProcFd, if > 0, is an open /proc/self/fd directory (O_PATH) New
	// uses instead of opening the path, for a process whose root no
	// longer shows /proc (a sandbox that pivot_roots into the shared
	// directory). The FS owns it from then on and closes it in Close.
	// Extended attributes then need Linux 6.13 (the *xattrat calls).
	ProcFd int
	// MaxOpenPerUid bounds the handles, lock-owner fds and waiting
	// locks' fds one caller uid may hold at once (see OpenBudget; uid 0
	// is never counted): past it an open fails with EMFILE and a lock
	// needing a new owner fd or a POSIX lock wait with ENOLCK, for that uid alone. 0 sizes it from RLIMIT_NOFILE
	// (AutoMaxOpenPerUid); < 0 sets no limit. It must be 0 when
	// OpenBudget is set.
	MaxOpenPerUid int
	// OpenBudget, if set, is the budget the FS counts into, shared with
	// the other FSes serving the same client (NewOpenBudget), so that
	// serving several directories does not multiply what one uid may
	// hold.
	OpenBudget *OpenBudget
}

// AutoOpenBudget is the per-uid budget (AutoMaxOpenPerUid) for shares FSes
// made with these options in this process, each with its own fd cache,
// from the process's RLIMIT_NOFILE now.
func (o *Options) AutoOpenBudget(shares int) int {
	nofile := nofileLimit()
	cache := 0
	if o.FileHandles != FileHandlesNever {
		cache = o.FdCache
		if cache == 0 {
			cache = AutoFdCache(nofile)
		}
	}
	return AutoMaxOpenPerUid(nofile, max(shares, 1)*cache, FdsPerHandle(o))
}
