package fusedev

import (
	"bytes"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fuse/abi"
)

// Notifications are messages the server writes to the device unasked
// (out_header.unique = 0, out_header.error = the FUSE_NOTIFY_* code) to
// change what the kernel caches: the filesystem changed something the
// client cannot know of. They go to the mount's fd whichever door serves
// the requests (FUSE over io_uring has no notifications of its own), one
// write(2) each, so any goroutine may send one at any time.
//
// Deadlock rule (the kernel's, as libfuse states it): a notification
// must not be sent from a request handler for, or while holding a lock
// needed by a request about, the inode it names: the kernel takes the
// inode's (or the parent directory's) lock to apply it, and a thread
// waiting for that request's reply may hold that lock.
//
// The errors are the kernel's: ENOENT means it has nothing cached for the
// inode or directory named (nothing to invalidate, not a failure),
// ENAMETOOLONG a name beyond the connection's name_max, ENODEV a
// connection that is gone, EBADF a Conn already closed.

// NotifyInvalInode drops the kernel's cached attributes of ino and, with
// off >= 0, its cached data from off for length bytes (length <= 0: to the
// end of the file); off < 0 drops attributes only. The next stat or read
// asks the filesystem again.
func (c *Conn) NotifyInvalInode(ino uint64, off, length int64) error {
	var b [abi.OutHeaderSize + abi.NotifyInvalInodeSize]byte
	out := abi.NotifyInvalInodeOut{Ino: ino, Off: off, Len: length}
	out.Marshal(b[abi.OutHeaderSize:])
	return c.notify(abi.NotifyInvalInode, b[:], nil)
}

// NotifyInvalEntry drops the kernel's cached entry name in directory
// parent (and the parent's cached attributes); the next lookup of name
// asks the filesystem. expireOnly marks it expired instead of dropping it
// (FUSE_EXPIRE_ONLY, Linux 6.2+), so that a process with it open or as
// its cwd keeps it.
func (c *Conn) NotifyInvalEntry(parent uint64, name []byte, expireOnly bool) error {
	if err := checkName(name); err != nil {
		return err
	}
	var b [abi.OutHeaderSize + abi.NotifyInvalEntrySize]byte
	out := abi.NotifyInvalEntryOut{Parent: parent, Namelen: uint32(len(name))}
	if expireOnly {
		out.Flags = uint32(abi.ExpireOnly)
	}
	out.Marshal(b[abi.OutHeaderSize:])
	return c.notify(abi.NotifyInvalEntry, b[:], name)
}

// NotifyDelete tells the kernel that name in directory parent, which was
// inode child, is gone: like NotifyInvalEntry, and if the cached entry is
// child it is deleted (a process holding it open sees it unlinked, and
// inotify watchers get IN_DELETE).
func (c *Conn) NotifyDelete(parent, child uint64, name []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	var b [abi.OutHeaderSize + abi.NotifyDeleteSize]byte
	out := abi.NotifyDeleteOut{Parent: parent, Child: child, Namelen: uint32(len(name))}
	out.Marshal(b[abi.OutHeaderSize:])
	return c.notify(abi.NotifyDelete, b[:], name)
}

// checkName refuses what can never be one entry's name; the kernel
// checks the length against the connection's name_max.
func checkName(name []byte) error {
	if len(name) == 0 || bytes.IndexByte(name, '/') >= 0 || bytes.IndexByte(name, 0) >= 0 {
		return syscall.EINVAL
	}
	return nil
}

var nul = []byte{0}

// notify fills msg's out header (msg holds the header and the fixed
// payload) and writes it, followed by name and a NUL when name is set,
// in one writev. It holds fdMu for reading so that Close cannot close,
// and the process reuse, the fd under the write.
func (c *Conn) notify(code abi.NotifyCode, msg []byte, name []byte) error {
	n := len(msg)
	if name != nil {
		n += len(name) + 1
	}
	h := abi.OutHeader{Len: uint32(n), Error: int32(code)}
	h.Marshal(msg)
	c.fdMu.RLock()
	defer c.fdMu.RUnlock()
	if c.fdClosed {
		return syscall.EBADF
	}
	var err error
	if name == nil {
		_, err = unix.Write(c.fd, msg)
	} else {
		_, err = unix.Writev(c.fd, [][]byte{msg, name, nul})
	}
	return err
}
