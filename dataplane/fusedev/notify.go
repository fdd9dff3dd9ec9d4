package fusedev

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
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
// payload) and writes it, followed by name and a NUL when name is set.
func (c *Conn) notify(code abi.NotifyCode, msg []byte, name []byte) error {
	if name == nil {
		return c.writeNotify(code, msg, nil, nil)
	}
	return c.writeNotify(code, msg, name, nul)
}

// writeNotify fills msg's out header and writes msg, followed by a and b
// when either is set, in one write(v). It holds fdMu for reading so that
// Close cannot close, and the process reuse, the fd under the write.
func (c *Conn) writeNotify(code abi.NotifyCode, msg, a, b []byte) error {
	h := abi.OutHeader{Len: uint32(len(msg) + len(a) + len(b)), Error: int32(code)}
	h.Marshal(msg)
	c.fdMu.RLock()
	defer c.fdMu.RUnlock()
	if c.fdClosed {
		return syscall.EBADF
	}
	var err error
	if a == nil && b == nil {
		_, err = unix.Write(c.fd, msg)
	} else {
		_, err = unix.Writev(c.fd, [][]byte{msg, a, b})
	}
	return err
}

// NotifyStore puts data into the kernel's page cache of ino at off,
// extending its cached size if the data reaches past it: a read of that
// range is then answered from the cache, with no READ. The inode must be
// a regular file the kernel knows (ENOENT otherwise).
func (c *Conn) NotifyStore(ino uint64, off int64, data []byte) error {
	if off < 0 || len(data) > math.MaxInt32 {
		return syscall.EINVAL
	}
	var b [abi.OutHeaderSize + abi.NotifyStoreSize]byte
	out := abi.NotifyStoreOut{NodeID: ino, Offset: uint64(off), Size: uint32(len(data))}
	out.Marshal(b[abi.OutHeaderSize:])
	return c.writeNotify(abi.NotifyStore, b[:], data, nil)
}

// NotifyRetrieve asks the kernel for what it has cached of regular file
// ino from off, up to len(dst) bytes (and the connection's max_write), and
// waits for its answer (a NOTIFY_REPLY request the engine hands back
// here). It returns the offset the data starts at and its length: n is
// short, or 0, where the kernel has no page cached. It fails with the
// kernel's errno when the inode is unknown (ENOENT) or not a regular file
// (EINVAL), and with ctx's error if ctx ends first. dst is written only
// before NotifyRetrieve returns.
func (c *Conn) NotifyRetrieve(ctx context.Context, ino uint64, off int64, dst []byte) (dataOff int64, n int, err error) {
	c.mu.Lock()
	srv := c.server
	c.mu.Unlock()
	if srv == nil {
		return 0, 0, errNotServing
	}
	if off < 0 || len(dst) > math.MaxInt32 {
		return 0, 0, syscall.EINVAL
	}
	rt, err := srv.BeginRetrieve(dst)
	if err != nil {
		return 0, 0, err
	}
	var b [abi.OutHeaderSize + abi.NotifyRetrieveSize]byte
	out := abi.NotifyRetrieveOut{NotifyUnique: rt.ID(), NodeID: ino, Offset: uint64(off), Size: uint32(len(dst))}
	out.Marshal(b[abi.OutHeaderSize:])
	if err := c.notify(abi.NotifyRetrieve, b[:], nil); err != nil {
		srv.EndRetrieve(rt)
		return 0, 0, err
	}
	select {
	case <-rt.Done():
	case <-ctx.Done():
		srv.EndRetrieve(rt)
		select {
		case <-rt.Done(): // answered just before EndRetrieve
		default:
			return 0, 0, ctx.Err()
		}
	}
	o, k := rt.Result()
	return int64(o), k, nil
}

var errNotServing = errors.New("fusedev: notify retrieve: the connection is not being served (call Serve first)")

// NotifyPoll wakes the client's poll(2), select(2) and epoll waiters on
// the handle the kernel named kh in a POLL request (fs.Poller): they poll
// again.
func (c *Conn) NotifyPoll(kh uint64) error {
	var b [abi.OutHeaderSize + abi.NotifyPollWakeupSize]byte
	out := abi.NotifyPollWakeupOut{Kh: kh}
	out.Marshal(b[abi.OutHeaderSize:])
	return c.notify(abi.NotifyPoll, b[:], nil)
}

// NotifyResend makes the kernel send again every request the server has
// read but not answered (Linux 6.9): for a server that lost requests, e.g.
// one restarted with the connection kept. An answer to the first copy is
// then refused (ENOENT), the second one's counts.
func (c *Conn) NotifyResend() error {
	var b [abi.OutHeaderSize]byte
	return c.notify(abi.NotifyResend, b[:], nil)
}

// NotifyIncEpoch starts a new epoch (Linux 6.16): every entry the kernel
// cached before it is looked up again at its next use, and cached
// directory listings are dropped, as if each had been invalidated.
func (c *Conn) NotifyIncEpoch() error {
	var b [abi.OutHeaderSize]byte
	return c.notify(abi.NotifyIncEpoch, b[:], nil)
}

// maxPrune is the most node IDs one PRUNE message carries.
const maxPrune = 512

// NotifyPrune asks the kernel to drop the inodes ids from its caches
// (Linux 6.18) where nothing holds them (no open file, cwd or mount): their
// entries go, and the kernel FORGETs them. Inodes in use stay.
func (c *Conn) NotifyPrune(ids []uint64) error {
	var b [abi.OutHeaderSize + abi.NotifyPruneSize + 8*maxPrune]byte
	for len(ids) > 0 {
		k := min(len(ids), maxPrune)
		out := abi.NotifyPruneOut{Count: uint32(k)}
		out.Marshal(b[abi.OutHeaderSize:])
		p := b[abi.OutHeaderSize+abi.NotifyPruneSize:]
		for i, id := range ids[:k] {
			binary.NativeEndian.PutUint64(p[8*i:], id)
		}
		if err := c.notify(abi.NotifyPrune, b[:abi.OutHeaderSize+abi.NotifyPruneSize+8*k], nil); err != nil {
			return err
		}
		ids = ids[k:]
	}
	return nil
}
