package fastfs

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"sync"
	"time"

	"github.com/fastfsd/fastfsd/dataplane/fusedev"
	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/internal/stats"
	"github.com/fastfsd/fastfsd/p9"
)

// MountOptions say how Mount mounts and serves. The zero value (or nil)
// mounts with the defaults: source name "fastfs", only the mounting user
// may access the mount, one worker per CPU, no FUSE passthrough.
type MountOptions struct {
	// FSName is the source shown in /proc/mounts and df (default
	// "fastfs"); it must not contain a comma, space or NUL.
	FSName string
	// AllowOther lets users other than the mounting one access the mount
	// (unprivileged: needs user_allow_other in /etc/fuse.conf).
	AllowOther bool
	// Workers is the number of serving workers, each on its own OS thread
	// with its own cloned /dev/fuse fd (0: one per CPU the process may run
	// on).
	Workers int
	// NoPin leaves the workers unpinned (by default each is pinned to one
	// CPU).
	NoPin bool
	// Passthrough lets files the filesystem opens with fs.OpenPassthrough
	// be read and written by the kernel directly (root and Linux 6.9+;
	// Mount refuses it without root).
	Passthrough bool
	// Splice chooses how READ and WRITE payloads that are not passed
	// through move between the kernel and the filesystem (default
	// SpliceAuto).
	Splice SpliceMode
	// IOUring serves FUSE over io_uring (Linux 6.14+): one ring per CPU
	// queue, one system call per batch of requests. Open (and Mount) turn
	// the fuse module's enable_uring parameter on if it is off, which
	// needs root, before mounting; if INIT still does not agree on it,
	// serving ends with an error (the mount is removed) rather than going
	// on over /dev/fuse. A lock
	// wait holds its ring entry: a CPU's queue holds at most 8, at most
	// one per uid other than 0, the last kept for root; past them a lock
	// wait is refused with ENOLCK (/dev/fuse lets 128 per uid wait). An
	// open or truncate that must break a host lease waits in the same
	// slots, refused with EAGAIN past them.
	IOUring bool
	// Stats, if set, counts every request with its service time, per
	// worker (cmd/fastfsd's --metrics: internal/stats cannot be imported
	// outside this module, so other users leave it nil).
	Stats *stats.Set
	// Fuse are the protocol engine's options (locks, writeback, max_write,
	// …); the zero value is the engine's defaults.
	Fuse fuse.Options
	// Debug, if set, logs every request and reply (slow).
	Debug *log.Logger
}

// SpliceMode chooses the data path of payloads on /dev/fuse
// (MountOptions.Splice).
type SpliceMode = fusedev.SpliceMode

const (
	// SpliceAuto splices when Passthrough is off, where large payloads
	// reach the filesystem, and uses read/writev when it is on, where
	// requests are mostly small (measurements: package fusedev).
	SpliceAuto = fusedev.SpliceAuto
	// SpliceOn moves payloads through pipes with splice(2) (READs under
	// 32 KiB are copied).
	SpliceOn = fusedev.SpliceOn
	// SpliceOff reads requests into buffers and writes replies with
	// writev(2).
	SpliceOff = fusedev.SpliceOff
)

// Mounted is a filesystem mounted by Mount (or Open, or Adopt) and being
// served.
// Its methods are safe for concurrent use.
type Mounted struct {
	conn *fusedev.Conn
	done chan struct{}
	err  error // Serve's result; written before done is closed
	once sync.Once
}

// Mount mounts fsys at mountpoint through /dev/fuse and serves it on
// worker goroutines until the filesystem is unmounted: by Unmount, by
// ctx being cancelled, or from outside (umount, fusermount3 -u). On return
// the mount is in place; the kernel's first request waits until the
// workers have answered INIT, so the mount can be used at once.
//
// As root, Mount calls mount(2) itself; otherwise it runs the setuid
// fusermount3 (package fuse3). The mount uses the kernel's permission
// checks on the mode, uid and gid fsys reports (default_permissions).
//
// A process must not open regular files of its own mount with os.Open
// (see package fusedev, "Serving and using a mount in one process"): use
// syscall.Open, or another process.
func Mount(ctx context.Context, fsys fs.FileSystem, mountpoint string, opts *MountOptions) (*Mounted, error) {
	if fsys == nil {
		return nil, errors.New("fastfs: mount: nil filesystem")
	}
	if _, err := checkMountOptions(opts); err != nil {
		return nil, fmt.Errorf("fastfs: mount: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("fastfs: mount %s: %w", mountpoint, err)
	}
	s, err := Open(mountpoint, opts)
	if err != nil {
		return nil, err
	}
	return s.Serve(ctx, fsys)
}

// Mountpoint returns the absolute path the filesystem is mounted on.
func (m *Mounted) Mountpoint() string { return m.conn.Mountpoint() }

// Wait waits until the filesystem is unmounted and served no more, and
// returns nil after a clean unmount or the error that ended serving.
func (m *Mounted) Wait() error {
	<-m.done
	return m.err
}

// Done is closed once the filesystem is unmounted and served no more.
func (m *Mounted) Done() <-chan struct{} { return m.done }

// Unmount unmounts the filesystem (lazily and aborting the connection if
// it is busy, so that it always ends) and waits until serving has ended.
// It returns what Wait returns.
func (m *Mounted) Unmount() error {
	select {
	case <-m.done:
	default:
		var err error
		m.once.Do(func() { err = m.conn.Unmount() })
		<-m.done
		if err != nil && m.err == nil {
			return fmt.Errorf("fastfs: unmount %s: %w", m.conn.Mountpoint(), err)
		}
	}
	return m.err
}

// FuseOptions are the FUSE protocol engine's options (MountOptions.Fuse,
// VirtioFSOptions.Fuse: locks, writeback, max_write, …), named here so
// that a library user needs no other package to set them.
type FuseOptions = fuse.Options

// P9Options say how Serve9P serves; nil or the zero value means p9's
// defaults (see p9.Options, whose fields are promoted: opts.MaxConns,
// opts.Identify, …) and closing every connection at once when ctx is
// cancelled.
type P9Options struct {
	// Options are the 9P server's: bounds (MaxMsize, MaxConns, MaxFids,
	// MaxRequests), connection limits per client (MaxConnsPerPeer,
	// RootConns, HandshakeTimeout), whom a client counts against and who
	// it is (Owner, Identify), counters (Stats), where permission checks
	// read ACLs (ACLs), logging (Logf, LimitName, Debug).
	p9.Options
	// Drain, if positive, is how long a cancelled Serve9P lets the
	// requests being served finish (reading no new ones) before it
	// closes the connections that remain (p9.Server.Shutdown); zero
	// closes them at once, interrupting what they serve (p9.Server.Close).
	Drain time.Duration
}

// Serve9P serves fsys over 9P2000.L on every connection l accepts until
// ctx is cancelled; it then stops accepting, closes every connection
// (after at most opts.Drain) and returns nil. Serve9P closes l. An error
// accepting ends serving and is returned. Over a unix socket the client's
// identity is its peer credentials (SO_PEERCRED); over tcp the client is
// trusted to name its own uid (set opts.Identify to decide otherwise).
// opts.BufferBound() is the most buffer memory serving holds, and
// opts.PeerBufferBound() the most one client other than root can make it
// hold (p9's per-peer connection cap: a unix socket's uid, a tcp peer's
// address).
func Serve9P(ctx context.Context, fsys fs.FileSystem, l net.Listener, opts *P9Options) error {
	var o P9Options
	if opts != nil {
		o = *opts
	}
	if fsys == nil {
		l.Close()
		return errors.New("fastfs: serve 9p: nil filesystem")
	}
	if o.Drain < 0 {
		l.Close()
		return fmt.Errorf("fastfs: serve 9p: Drain %v: want 0 (close at once) or more", o.Drain)
	}
	srv := p9.NewServer(fsys, &o.Options)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		srv.Close()
		if errors.Is(err, p9.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("fastfs: serve 9p on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	if o.Drain > 0 {
		dctx, cancel := context.WithTimeout(context.Background(), o.Drain)
		if err := srv.Shutdown(dctx); err != nil {
			logf := o.Logf
			if logf == nil {
				logf = log.Printf
			}
			logf("fastfs: serve 9p on %s: drain: %v; closed the remaining connections", l.Addr(), err)
		}
		cancel()
	} else {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, p9.ErrServerClosed) {
		return fmt.Errorf("fastfs: serve 9p on %s: %w", l.Addr(), err)
	}
	return nil
}

// InvalidateInode tells the kernel that ino changed without its asking:
// it drops ino's cached attributes and, with off >= 0, its cached data
// from off for length bytes (length <= 0: to the end of the file; off < 0:
// attributes only). The next stat or read of ino asks the filesystem.
// It may be called from any goroutine, but not while serving a request
// about ino (see package fusedev, "Deadlock rule"). ENOENT means the
// kernel had nothing cached for ino.
func (m *Mounted) InvalidateInode(ino fs.Inode, off, length int64) error {
	return m.conn.NotifyInvalInode(uint64(ino), off, length)
}

// InvalidateEntry tells the kernel that name in directory parent may now
// name another inode, or none: it drops the cached entry (and parent's
// cached attributes), so the next lookup of name asks the filesystem.
// The same rules as InvalidateInode apply, for parent.
func (m *Mounted) InvalidateEntry(parent fs.Inode, name string) error {
	return m.conn.NotifyInvalEntry(uint64(parent), []byte(name), false)
}

// NotifyDelete tells the kernel that name in directory parent, which was
// child, was removed: it drops the cached entry and, if it still named
// child, deletes it (processes with it open see it unlinked; inotify
// watchers get IN_DELETE). The same rules as InvalidateInode apply.
func (m *Mounted) NotifyDelete(parent, child fs.Inode, name string) error {
	return m.conn.NotifyDelete(uint64(parent), uint64(child), []byte(name))
}

// Store puts data into the kernel's page cache of regular file ino at
// off (extending its cached size if the data reaches past it), so that
// the client reads it with no READ. The same rules as InvalidateInode
// apply; ENOENT means the kernel does not know ino.
func (m *Mounted) Store(ino fs.Inode, off int64, data []byte) error {
	return m.conn.NotifyStore(uint64(ino), off, data)
}

// Retrieve reads back what the kernel has cached of regular file ino from
// off, up to len(dst) bytes, into dst, and returns the offset the data
// starts at and its length (short, or 0, where nothing is cached). It
// waits for the kernel's answer, which a worker hands over, so it must
// not be called from a request handler; it returns early with ctx's error,
// or when the filesystem is unmounted.
func (m *Mounted) Retrieve(ctx context.Context, ino fs.Inode, off int64, dst []byte) (int64, int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-m.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return m.conn.NotifyRetrieve(ctx, uint64(ino), off, dst)
}

// NotifyPoll wakes the client's poll(2), select(2) and epoll waiters on
// the open file the kernel named kh in an fs.Poller's Poll call; they poll
// again. Call it when that file becomes ready, from any goroutine but not
// from Poll itself.
func (m *Mounted) NotifyPoll(kh uint64) error { return m.conn.NotifyPoll(kh) }

// Resend makes the kernel send again every request the filesystem has
// received but not answered yet (Linux 6.9); an answer to the first copy
// is then dropped.
func (m *Mounted) Resend() error { return m.conn.NotifyResend() }

// IncEpoch makes every name the kernel has cached be looked up again at
// its next use, and drops cached directory listings (Linux 6.16): one
// call for "everything may have changed".
func (m *Mounted) IncEpoch() error { return m.conn.NotifyIncEpoch() }

// Prune asks the kernel to drop the inodes ids from its caches where
// nothing holds them (no open file, cwd or mount); it FORGETs them.
// Inodes in use stay (Linux 6.18).
func (m *Mounted) Prune(ids ...fs.Inode) error {
	u := make([]uint64, len(ids))
	for i, id := range ids {
		u[i] = uint64(id)
	}
	return m.conn.NotifyPrune(u)
}
