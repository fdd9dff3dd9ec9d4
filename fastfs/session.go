package fastfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/fastfsd/fastfsd/dataplane/fusedev"
	"github.com/fastfsd/fastfsd/dataplane/uring"
	"github.com/fastfsd/fastfsd/fs"
)

// A Session is a filesystem mounted through /dev/fuse and not served yet:
// Open mounts one, Adopt takes one another process mounted, and Serve
// starts serving it. Mount is Open and Serve in one call; the two steps
// are for a process that must do something between them, above all a
// daemon that confines itself before it opens what it serves
// (cmd/fastfsd mount as root: a supervisor Opens and hands Fd to a
// child, which Adopts it, Prepares, enters the served directory as its
// root, takes Landlock and a system-call filter, and Serves).
//
// Until Serve, the kernel holds every request to the mount: a process
// that stats the mountpoint waits. A Session that will not be served must
// be unmounted (Unmount) and closed (Close).
type Session struct {
	conn *fusedev.Conn
	o    MountOptions // checked, defaults applied

	mu     sync.Mutex
	served bool // +checklocks:mu; Serve ran: the Mounted owns conn
}

// checkMountOptions checks opts and applies the defaults.
func checkMountOptions(opts *MountOptions) (MountOptions, error) {
	var o MountOptions
	if opts != nil {
		o = *opts
	}
	if o.FSName == "" {
		o.FSName = "fastfs"
	}
	if strings.ContainsAny(o.FSName, ", \x00") {
		return o, fmt.Errorf("FSName %q must not contain a comma, space or NUL", o.FSName)
	}
	if o.Workers < 0 || o.Workers > 1024 {
		return o, fmt.Errorf("Workers %d: want 0 (one per CPU) to 1024", o.Workers)
	}
	if o.Passthrough && os.Geteuid() != 0 {
		return o, errors.New("Passthrough needs root (CAP_SYS_ADMIN); leave it off for an unprivileged mount")
	}
	switch o.Splice {
	case SpliceAuto, SpliceOn, SpliceOff:
	default:
		return o, fmt.Errorf("Splice %d: want SpliceAuto, SpliceOn or SpliceOff", o.Splice)
	}
	return o, nil
}

// What Open calls, replaced by a test that checks their order.
var (
	uringEnabled = uring.Enabled
	uringEnable  = uring.Enable
	mountFUSE    = fusedev.Mount
)

// Open mounts a filesystem at mountpoint through /dev/fuse, as Mount
// does, but serves nothing yet: see Session. With opts.IOUring, it turns
// the fuse module's enable_uring parameter on if it is off (root).
func Open(mountpoint string, opts *MountOptions) (*Session, error) {
	o, err := checkMountOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("fastfs: mount %s: %w", mountpoint, err)
	}
	// Before the mount: the kernel decides what its INIT offers when the
	// filesystem is mounted (fuse_fill_super queues it), so a parameter
	// turned on after the mount leaves that mount without io_uring.
	if o.IOUring && !uringEnabled() {
		if err := uringEnable(); err != nil {
			return nil, fmt.Errorf("fastfs: mount %s: IOUring: %w", mountpoint, err)
		}
	}
	conn, err := mountFUSE(mountpoint, fusedev.MountOptions{
		Source:             o.FSName,
		AllowOther:         o.AllowOther,
		DefaultPermissions: true,
	})
	if err != nil {
		return nil, fmt.Errorf("fastfs: %w", err)
	}
	return &Session{conn: conn, o: o}, nil
}

// Adopt returns the Session of fd, the /dev/fuse fd of a filesystem
// another process mounted at mountpoint and handed over (a Session's Fd,
// passed to a child process). Its Unmount calls unmount, which must make
// that process unmount the filesystem (serving ends when it is gone):
// the mount may live in a mount namespace this process has left, or
// Landlock may forbid it to unmount. The Session owns fd from now on.
// opts say how to serve, as for Open; how it was mounted (FSName,
// AllowOther) was the other process's choice.
func Adopt(fd int, mountpoint string, unmount func() error, opts *MountOptions) (*Session, error) {
	o, err := checkMountOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("fastfs: adopt %s: %w", mountpoint, err)
	}
	if unmount == nil {
		return nil, fmt.Errorf("fastfs: adopt %s: no unmount function: the mounting process must unmount", mountpoint)
	}
	return &Session{conn: fusedev.Adopt(fd, mountpoint, unmount), o: o}, nil
}

// Fd returns the mount's /dev/fuse fd, to hand over to the process that
// will Adopt it (dup it first: the Session still owns this one).
func (s *Session) Fd() int { return s.conn.Fd() }

// Mountpoint returns the absolute path the filesystem is mounted on.
func (s *Session) Mountpoint() string { return s.conn.Mountpoint() }

// Prepare opens and reads now what serving needs outside the served
// directory — the CPU topology in /sys, one cloned /dev/fuse fd per
// worker, /dev/null for splice, the number of io_uring queues — so that
// Serve can run after the process has pivot_rooted into that directory or
// restricted its file access with Landlock. Without it, Serve opens them
// itself.
func (s *Session) Prepare() error {
	if err := s.conn.Prepare(s.serveOptions()); err != nil {
		return fmt.Errorf("fastfs: %w", err)
	}
	return nil
}

func (s *Session) serveOptions() fusedev.ServeOptions {
	return fusedev.ServeOptions{Workers: s.o.Workers, NoPin: s.o.NoPin, Splice: s.o.Splice, Passthrough: s.o.Passthrough,
		IOUring: s.o.IOUring, Stats: s.o.Stats, Debug: s.o.Debug}
}

// ConnectionID returns the kernel's number of the Session's FUSE
// connection (its fusectl directory, the minor of the mount's st_dev),
// read from /proc/self/mountinfo without touching the mount. A process
// that did not mount it can unmount it by this number
// (UnmountConnection), wait for it to leave mountinfo
// (ConnectionMounted) or abort it (AbortConnection).
func (s *Session) ConnectionID() (uint32, error) {
	id, err := s.conn.ConnectionID()
	if err != nil {
		return 0, fmt.Errorf("fastfs: %w", err)
	}
	return id, nil
}

// UnmountConnection unmounts FUSE connection id from mountpoint (an
// absolute path) as a root Session's Unmount does — umount2(2), and if
// the mount is busy a lazy detach and an abort of the connection — if it
// is still mounted there; it does nothing if it is not (whatever is
// mounted there now is not this connection). Needs CAP_SYS_ADMIN. The
// calling process does the kernel's part of the unmount, freeing every
// dentry and inode the mount cached (about 2 µs each), before the call
// returns: a daemon may call it from a helper process so that its own
// exit does not wait for that.
func UnmountConnection(mountpoint string, id uint32) error {
	if err := fusedev.UnmountConnection(mountpoint, id); err != nil {
		return fmt.Errorf("fastfs: %w", err)
	}
	return nil
}

// ConnectionMounted reports whether FUSE connection id is mounted at
// mountpoint (an absolute path) in this process's mount namespace. A
// mount leaves it as soon as umount2 has detached it, before the kernel
// has freed its cache.
func ConnectionMounted(mountpoint string, id uint32) (bool, error) {
	ok, err := fusedev.ConnectionMounted(mountpoint, id)
	if err != nil {
		return false, fmt.Errorf("fastfs: %w", err)
	}
	return ok, nil
}

// AbortConnection aborts FUSE connection id (fusectl; needs
// CAP_SYS_ADMIN): every pending and future request fails, the server's
// reads of /dev/fuse return ENODEV, so it stops serving. The mount stays
// (every access ENOTCONN) until unmounted.
func AbortConnection(id uint32) error {
	if err := fusedev.AbortConnection(id); err != nil {
		return fmt.Errorf("fastfs: %w", err)
	}
	return nil
}

// Unmount unmounts a Session that was not served (once served, use
// Mounted.Unmount).
func (s *Session) Unmount() error { return s.conn.Unmount() }

// Close closes the /dev/fuse fd of a Session that was not served, after
// Unmount (closing the fd of a live mount leaves a dead one behind, every
// access failing with ENOTCONN). Once served, the Mounted closes it, and
// Close does nothing.
func (s *Session) Close() error {
	s.mu.Lock()
	served := s.served
	s.mu.Unlock()
	if served {
		return nil
	}
	return s.conn.Close()
}

// Serve starts serving fsys on the Session's mount, on worker goroutines,
// until the filesystem is unmounted: by Mounted.Unmount, by ctx being
// cancelled, or from outside. The returned Mounted owns the mount: it
// unmounts and closes it when serving ends. Serve may be called once.
func (s *Session) Serve(ctx context.Context, fsys fs.FileSystem) (*Mounted, error) {
	if fsys == nil {
		return nil, errors.New("fastfs: serve: nil filesystem")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.served {
		return nil, fmt.Errorf("fastfs: serve %s: already served", s.conn.Mountpoint())
	}
	s.served = true
	conn := s.conn
	m := &Mounted{conn: conn, done: make(chan struct{})}
	go func() {
		err := conn.Serve(ctx, fsys, s.o.Fuse, s.serveOptions())
		// Serve returns once the mount is gone, or after unmounting it on
		// a fatal error; unmount again so that closing the fd never leaves
		// a dead mount behind.
		if uerr := conn.Unmount(); uerr != nil && err == nil {
			err = uerr
		}
		conn.Close()
		if err != nil {
			err = fmt.Errorf("fastfs: serve %s: %w", conn.Mountpoint(), err)
		}
		m.err = err
		close(m.done)
	}()
	return m, nil
}
