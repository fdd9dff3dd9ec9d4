package passthrough

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
)

// Notifier is what a Watcher tells of changes made on the host: the
// kernel cache notifications of a FUSE session (dataplane/fusedev's Conn
// has these methods). Inode numbers are the FS's fs.Inode IDs, which are
// the session's node IDs.
type Notifier interface {
	// NotifyInvalInode drops the client's cached attributes of ino and,
	// with off >= 0, its cached data from off (length <= 0: to the end).
	NotifyInvalInode(ino uint64, off, length int64) error
	// NotifyInvalEntry drops the client's cached entry name in parent
	// (positive or negative) and parent's cached attributes and listing.
	NotifyInvalEntry(parent uint64, name []byte, expireOnly bool) error
}

// watchMask is what a Watcher asks fanotify for: data and attribute
// changes of any inode, and entries created, deleted or moved in any
// directory, directories included (FAN_ONDIR).
const watchMask = unix.FAN_MODIFY | unix.FAN_ATTRIB | unix.FAN_CREATE | unix.FAN_DELETE |
	unix.FAN_MOVED_FROM | unix.FAN_MOVED_TO | unix.FAN_ONDIR

// direntEvents change a directory's entries.
const direntEvents = unix.FAN_CREATE | unix.FAN_DELETE | unix.FAN_MOVED_FROM | unix.FAN_MOVED_TO

// Watcher finds changes other processes make to the filesystem holding a
// served directory, with fanotify, and turns them into kernel cache
// notifications (Run), so that a client may cache for long (CacheAlways)
// and still see the host's changes within milliseconds.
//
// It marks the whole filesystem (FAN_MARK_FILESYSTEM: one mark, no
// per-directory watches to add as the client walks the tree, and no
// limit like inotify's max_user_watches) and asks for file ids
// (FAN_REPORT_FID with FAN_REPORT_DFID_NAME): each event names the
// changed inode by its file handle, and an entry change by the
// directory's handle and the name. A handle is mapped to the FS's inode
// by opening it (open_by_handle_at, O_PATH) and looking its (st_dev,
// st_ino) up in the inode table without taking a lookup; an inode the
// client does not know (outside the export, or never looked up) is
// skipped.
//
// What it does not see or skips:
//   - Changes the daemon makes itself (the event's pid is this process):
//     the client made them through the session and its kernel already
//     knows. Writes the kernel does itself through FUSE passthrough carry
//     the writing client process's pid and are reported: an extra
//     invalidation, not a stale cache.
//   - Stores through a shared mmap of a host file (fanotify has no event
//     for them), and filesystems mounted beneath the export (another
//     filesystem, not marked).
//   - After a queue overflow (more than fanotify's max_queued_events
//     changes waiting, 16384 by default) the events lost cannot be
//     known: Run drops the cached attributes and data of every inode the
//     client knows, but names the client cached (positive or negative)
//     stay until their entry timeout. WatchStats.Overflows counts them.
//
// One Watcher may serve several FSs whose directories are on the
// filesystem it marked (SameFilesystem; RunTargets): each event is read
// and decoded once, its handle opened (or found in the negative cache)
// once, and the notification sent to every FS that knows the inode.
// Shares on one filesystem with a Watcher each would each read and
// decode every event of it.
//
// Creating a Watcher needs CAP_SYS_ADMIN (a filesystem mark); Run then
// needs only read(2), open_by_handle_at (CAP_DAC_READ_SEARCH), fstat and
// the notifications' writes, so a daemon may create it before confining
// itself and its system-call filter need not allow fanotify_init or
// fanotify_mark.
type Watcher struct {
	file *os.File // the fanotify fd, non-blocking, read through the poller
	// mountMu is held for reading around each use of mountFd and for
	// writing by Close, so the fd is never closed (and its number
	// reused) under an open_by_handle_at.
	mountMu sync.RWMutex
	// mountFd is root opened O_RDONLY: open_by_handle_at's mount fd (an
	// O_PATH fd is refused with EBADF); -1 once closed. +checklocks:mountMu
	mountFd int
	fsid    [2]int32 // the marked filesystem's; events of others are skipped
	dev     uint64   // st_dev of the marked directory (SameFilesystem)
	pid     int32    // this process: its own changes are skipped

	events, own, unknown, notified, overflows, errs atomic.Uint64
	// entries, datas, attrs count the notifications sent by kind.
	entries, datas, attrs atomic.Uint64
	opens                 atomic.Uint64 // handles opened to map them (tests)

	// neg remembers handles that named no inode of any target's table,
	// with the sum of the tables' last inode IDs (inodeTable.next) when
	// that was found: until an inode is added to one of them, the answer
	// stands, and an event about a file the
	// client never looked up (on a busy host filesystem, most of them)
	// costs a map lookup instead of open_by_handle_at and fstat. Used by
	// Run's goroutine only; cleared when it reaches maxNeg entries.
	neg map[string]uint64

	// targets are the FSs Run serves, set once by RunTargets and used by
	// its goroutine only.
	targets []watchTarget
	// ids is inodesOf's answer, one per target: the target's ID of the
	// inode, 0 when it does not know it (IDs start at fs.RootInode).
	ids []fs.Inode
}

// WatchTarget is one FS a Watcher serves and where the notifications
// about its inodes go.
type WatchTarget struct {
	FS       *FS
	Notifier Notifier
}

type watchTarget struct {
	WatchTarget
	gone bool // its Notifier reported the session gone: skipped since
}

// maxNeg bounds Watcher.neg.
const maxNeg = 4096

// WatchStats counts what a Watcher saw and did.
type WatchStats struct {
	Events   uint64 // events read, once each whatever the number of targets
	Own      uint64 // events of changes this process made (skipped)
	Unknown  uint64 // handles naming no inode any target's client knows (skipped)
	Notified uint64 // notifications sent (ENOENT, nothing cached, included)
	// Notified by kind: Entries + Data + Attrs == Notified.
	Entries   uint64 // INVAL_ENTRY: a name created, deleted or moved in a directory
	Data      uint64 // INVAL_INODE of data and attributes (FAN_MODIFY; every inode after an overflow)
	Attrs     uint64 // INVAL_INODE of attributes only (FAN_ATTRIB)
	Overflows uint64 // queue overflows (events lost; see Watcher)
	Errors    uint64 // notifications that failed other than with ENOENT
}

// NewWatcher marks the filesystem holding root for changes. It needs
// CAP_SYS_ADMIN, Linux 5.9 (FAN_REPORT_DFID_NAME) and a filesystem whose
// file handles can be opened (ext4, xfs, btrfs, tmpfs…).
func NewWatcher(root string) (*Watcher, error) {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK|
		unix.FAN_REPORT_DFID_NAME|unix.FAN_REPORT_FID, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	switch {
	case err == unix.EPERM:
		return nil, errors.New("passthrough: watch: fanotify_init: operation not permitted; watching the host filesystem needs CAP_SYS_ADMIN (run as root)")
	case err == unix.EINVAL || err == unix.ENOSYS:
		return nil, fmt.Errorf("passthrough: watch: fanotify_init: %w; the kernel lacks fanotify with file ids and names (Linux 5.9)", err)
	case err != nil:
		return nil, fmt.Errorf("passthrough: watch: fanotify_init: %w", err)
	}
	fail := func(err error) (*Watcher, error) {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, watchMask, unix.AT_FDCWD, root); err != nil {
		switch err {
		case unix.EPERM:
			return fail(fmt.Errorf("passthrough: watch: fanotify_mark %s: operation not permitted; a filesystem mark needs CAP_SYS_ADMIN (run as root)", root))
		case unix.ENODEV, unix.EOPNOTSUPP, unix.EXDEV:
			return fail(fmt.Errorf("passthrough: watch: fanotify_mark %s: %w; its filesystem does not report file ids to fanotify", root, err))
		}
		return fail(fmt.Errorf("passthrough: watch: fanotify_mark %s: %w", root, err))
	}
	fsid, dev, err := filesystemOf(root)
	if err != nil {
		return fail(fmt.Errorf("passthrough: watch: %w", err))
	}
	mfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail(fmt.Errorf("passthrough: watch: open %s: %w", root, err))
	}
	// The handles of events must open: probe with root's own.
	h, _, err := unix.NameToHandleAt(unix.AT_FDCWD, root, 0)
	if err == nil {
		var hfd int
		if hfd, err = unix.OpenByHandleAt(mfd, h, unix.O_PATH|unix.O_CLOEXEC); err == nil {
			unix.Close(hfd)
		}
	}
	if err != nil {
		unix.Close(mfd)
		return fail(fmt.Errorf("passthrough: watch: %s: its file handles cannot be opened (%w); watching needs a filesystem that exports them and CAP_DAC_READ_SEARCH", root, err))
	}
	return &Watcher{
		file:    os.NewFile(uintptr(fd), "fanotify"),
		mountFd: mfd,
		fsid:    fsid,
		dev:     dev,
		pid:     int32(os.Getpid()),
	}, nil
}

// filesystemOf returns the fsid (statfs) and device (stat) of the
// filesystem holding dir.
func filesystemOf(dir string) ([2]int32, uint64, error) {
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		return [2]int32{}, 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return [2]int32{}, 0, fmt.Errorf("stat %s: %w", dir, err)
	}
	return sfs.Fsid.Val, st.Dev, nil
}

// SameFilesystem reports whether dir is on the filesystem w marked (the
// same device and fsid as the directory NewWatcher was given): w already
// reads its events, so an FS exporting dir can be one of w's targets
// (RunTargets) instead of needing a Watcher of its own.
func (w *Watcher) SameFilesystem(dir string) (bool, error) {
	fsid, dev, err := filesystemOf(dir)
	if err != nil {
		return false, fmt.Errorf("passthrough: watch: %w", err)
	}
	return fsid == w.fsid && dev == w.dev, nil
}

// Stats returns what the Watcher counted so far.
func (w *Watcher) Stats() WatchStats {
	return WatchStats{
		Events: w.events.Load(), Own: w.own.Load(), Unknown: w.unknown.Load(),
		Notified: w.notified.Load(), Overflows: w.overflows.Load(), Errors: w.errs.Load(),
		Entries: w.entries.Load(), Data: w.datas.Load(), Attrs: w.attrs.Load(),
	}
}

// Close closes the Watcher's fds; Run returns nil. It may be called from
// any goroutine, more than once.
func (w *Watcher) Close() error {
	err := w.file.Close()
	w.mountMu.Lock()
	if w.mountFd >= 0 {
		unix.Close(w.mountFd)
		w.mountFd = -1
	}
	w.mountMu.Unlock()
	if errors.Is(err, os.ErrClosed) {
		err = nil
	}
	return err
}

// Run reads events until Close and sends n the notifications they call
// for, naming f's inodes: a file's data changed (its cached data and
// attributes dropped), its attributes changed (attributes dropped), an
// entry created, deleted or moved (the entry dropped in its directory, and
// the directory's attributes and listing). Run serves one FS and one
// Notifier (RunTargets serves several); call it once, on a goroutine of
// its own: a notification may wait in the kernel for a request about the
// same inode to be answered (fusedev's notify.go), so it must not run on
// a serving worker.
//
// It returns nil after Close, or the error of a session that is gone
// (ENODEV, EBADF from the Notifier) or of reading the events.
func (w *Watcher) Run(f *FS, n Notifier) error {
	return w.RunTargets([]WatchTarget{{FS: f, Notifier: n}})
}

// RunTargets is Run for several FSs, each exporting a directory on the
// filesystem w marked (SameFilesystem), with a Notifier each: every
// event is read and decoded once, its handles opened once, and each
// notification sent to every target whose FS knows the inode (two
// targets may know one inode when their directories nest). A target
// whose Notifier reports its session gone gets nothing more; RunTargets
// returns that error once every target's session is gone, nil after
// Close, or the error of reading the events. Call it once; the caller
// may reuse ts afterwards.
func (w *Watcher) RunTargets(ts []WatchTarget) error {
	if len(ts) == 0 {
		return errors.New("passthrough: watch: no FS to serve")
	}
	w.setTargets(ts)
	buf := make([]byte, 64<<10)
	for {
		nr, err := w.file.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("passthrough: watch: read fanotify events: %w", err)
		}
		if err := w.handle(buf[:nr]); err != nil {
			return err
		}
	}
}

// setTargets makes ts the FSs w serves (RunTargets' goroutine, before
// the first event).
func (w *Watcher) setTargets(ts []WatchTarget) {
	w.targets = make([]watchTarget, len(ts))
	for i, t := range ts {
		w.targets[i].WatchTarget = t
	}
	w.ids = make([]fs.Inode, len(ts))
}

// fanotify_event_metadata and fanotify_event_info_header, as
// include/uapi/linux/fanotify.h lays them out.
const (
	metaSize       = 24 // event_len u32, vers u8, reserved u8, metadata_len u16, mask u64, fd s32, pid s32
	infoHeaderSize = 4  // info_type u8, pad u8, len u16
	fidHeaderSize  = 8  // fsid (two s32)
	fhHeaderSize   = 8  // handle_bytes u32, handle_type s32
	metadataVers   = unix.FANOTIFY_METADATA_VERSION
)

// fid is one file id record of an event: a handle and, for a
// DFID_NAME record, the entry's name. Both are views into the read buffer.
type fid struct {
	fsid   [2]int32
	typ    int32
	handle []byte
	name   []byte
	ok     bool
}

// parseFid decodes an info record's body (after the info header).
func parseFid(b []byte, withName bool) fid {
	if len(b) < fidHeaderSize+fhHeaderSize {
		return fid{}
	}
	var r fid
	r.fsid[0] = int32(binary.NativeEndian.Uint32(b[0:]))
	r.fsid[1] = int32(binary.NativeEndian.Uint32(b[4:]))
	hb := binary.NativeEndian.Uint32(b[8:])
	r.typ = int32(binary.NativeEndian.Uint32(b[12:]))
	b = b[fidHeaderSize+fhHeaderSize:]
	if hb == 0 || uint64(hb) > uint64(len(b)) {
		return fid{}
	}
	r.handle = b[:hb]
	if withName {
		rest := b[hb:]
		end := 0
		for end < len(rest) && rest[end] != 0 {
			end++
		}
		if end == len(rest) || end == 0 {
			return fid{} // no NUL in the record, or an empty name
		}
		r.name = rest[:end]
	}
	r.ok = true
	return r
}

// handle acts on one read's events for w's targets. It returns an error
// only when every target's session is gone.
func (w *Watcher) handle(b []byte) error {
	for len(b) >= metaSize {
		evLen := binary.NativeEndian.Uint32(b[0:])
		vers := b[4]
		metaLen := binary.NativeEndian.Uint16(b[6:])
		mask := binary.NativeEndian.Uint64(b[8:])
		pid := int32(binary.NativeEndian.Uint32(b[20:]))
		if vers != metadataVers || evLen < metaSize || uint64(evLen) > uint64(len(b)) || metaLen < metaSize || uint32(metaLen) > evLen {
			return fmt.Errorf("passthrough: watch: malformed fanotify event (version %d, length %d of %d)", vers, evLen, len(b))
		}
		ev := b[:evLen]
		b = b[evLen:]
		w.events.Add(1)
		if mask&unix.FAN_Q_OVERFLOW != 0 {
			w.overflows.Add(1)
			if err := w.invalidateAll(); err != nil {
				return err
			}
			continue
		}
		if pid == w.pid {
			w.own.Add(1)
			continue
		}
		var dir, obj fid
		for info := ev[metaLen:]; len(info) >= infoHeaderSize; {
			typ := info[0]
			l := int(binary.NativeEndian.Uint16(info[2:]))
			if l < infoHeaderSize || l > len(info) {
				break
			}
			body := info[infoHeaderSize:l]
			info = info[l:]
			switch typ {
			case unix.FAN_EVENT_INFO_TYPE_FID:
				obj = parseFid(body, false)
			case unix.FAN_EVENT_INFO_TYPE_DFID_NAME:
				dir = parseFid(body, true)
			case unix.FAN_EVENT_INFO_TYPE_DFID:
				dir = parseFid(body, false)
			}
		}
		// An event on a directory itself names it as the directory
		// with the name "." (FAN_REPORT_DFID_NAME) and no FID record.
		if !obj.ok && dir.ok && (dir.name == nil || string(dir.name) == ".") {
			obj, dir = dir, fid{}
		}
		if mask&direntEvents != 0 && dir.ok && dir.name != nil && w.inodesOf(dir) {
			for i := range w.targets {
				if t := &w.targets[i]; w.ids[i] != 0 && !t.gone {
					if err := w.send(t, &w.entries, t.Notifier.NotifyInvalEntry(uint64(w.ids[i]), dir.name, false)); err != nil {
						return err
					}
				}
			}
		}
		if mask&(unix.FAN_MODIFY|unix.FAN_ATTRIB) != 0 && obj.ok && w.inodesOf(obj) {
			off, kind := int64(-1), &w.attrs // attributes only
			if mask&unix.FAN_MODIFY != 0 {
				off, kind = 0, &w.datas // and all the data
			}
			for i := range w.targets {
				if t := &w.targets[i]; w.ids[i] != 0 && !t.gone {
					if err := w.send(t, kind, t.Notifier.NotifyInvalInode(uint64(w.ids[i]), off, 0)); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// inodesOf maps an event's file id to each live target's inode (w.ids;
// 0 where the target's client does not know it) and reports whether any
// knows it. The handle is opened at most once, whatever the number of
// targets.
func (w *Watcher) inodesOf(id fid) bool {
	clear(w.ids)
	if id.fsid != w.fsid {
		w.unknown.Add(1)
		return false
	}
	// Loaded before the lookups: an inode added to any table after them
	// (its ID taken under the key shard's lock, with its insertion)
	// raises the sum and makes this answer stale. The sum covers every
	// target, gone ones included, so it only grows.
	var gen uint64
	for i := range w.targets {
		gen += w.targets[i].FS.inodes.next.Load()
	}
	if g, ok := w.neg[string(id.handle)]; ok && g == gen {
		w.unknown.Add(1)
		return false
	}
	w.opens.Add(1)
	w.mountMu.RLock()
	fd, err := -1, error(syscall.EBADF)
	if w.mountFd >= 0 {
		fd, err = unix.OpenByHandleAt(w.mountFd, unix.NewFileHandle(id.typ, id.handle), unix.O_PATH|unix.O_CLOEXEC)
	}
	w.mountMu.RUnlock()
	if err != nil {
		w.unknown.Add(1) // ESTALE: gone already
		return false
	}
	var st unix.Stat_t
	err = unix.Fstat(fd, &st)
	unix.Close(fd)
	if err != nil {
		w.unknown.Add(1)
		return false
	}
	k, found := keyOf(&st), false
	for i := range w.targets {
		if t := &w.targets[i]; !t.gone {
			if ino, ok := t.FS.inodes.idOf(k); ok {
				w.ids[i], found = ino, true
			}
		}
	}
	if !found {
		w.unknown.Add(1)
		if w.neg == nil || len(w.neg) >= maxNeg {
			w.neg = make(map[string]uint64)
		}
		w.neg[string(id.handle)] = gen
	}
	return found
}

// send counts a notification to t of a kind (one of the Watcher's
// counters) and its outcome. A session that is gone marks t gone; the
// error is returned only when it was the last target left.
func (w *Watcher) send(t *watchTarget, kind *atomic.Uint64, err error) error {
	w.notified.Add(1)
	kind.Add(1)
	switch err {
	case nil, syscall.ENOENT: // ENOENT: the client caches nothing of it
		return nil
	case syscall.ENODEV, syscall.EBADF, syscall.ENOTCONN:
		t.gone = true
		for i := range w.targets {
			if !w.targets[i].gone {
				return nil
			}
		}
		return fmt.Errorf("passthrough: watch: notify: %w", err)
	}
	w.errs.Add(1)
	return nil
}

// invalidateAll drops the cached attributes and data of every inode each
// live target's client knows (after events were lost).
func (w *Watcher) invalidateAll() error {
	for i := range w.targets {
		t := &w.targets[i]
		if t.gone {
			continue
		}
		for _, id := range t.FS.inodes.allIDs() {
			if err := w.send(t, &w.datas, t.Notifier.NotifyInvalInode(uint64(id), 0, 0)); err != nil {
				return err
			}
			if t.gone {
				break
			}
		}
	}
	return nil
}
