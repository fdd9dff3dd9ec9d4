package fastfs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/fastfsd/fastfsd/dataplane/virtiofs"
	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/internal/stats"
	"github.com/fastfsd/fastfsd/vhostuser"
)

// MaxTagSize is the longest virtio-fs mount tag, in bytes: the size of
// the tag field of the device's config space (struct virtio_fs_config).
const MaxTagSize = virtiofs.TagSize

// DefaultDAXWindow is the usual size of a DAX window
// (VirtioFSOptions.DAXWindow; fastfsd virtiofs --dax without
// --cache-size): 1 GiB of the guest's physical address space.
const DefaultDAXWindow = virtiofs.DefaultCacheSize

// DefaultAdaptivePoll is the largest adaptive poll window fastfsd
// virtiofs uses by default (VirtioFSOptions.AdaptivePoll; --busy-poll
// auto): 64 µs, twice QEMU's default poll-max-ns for its I/O threads.
const DefaultAdaptivePoll = virtiofs.DefaultAdaptivePoll

// VirtioFSOptions say how ServeVirtioFS serves. The zero value (or nil)
// serves tag "fastfs" on one request queue with the engine's defaults,
// one front-end after another.
type VirtioFSOptions struct {
	// Tag is the mount tag the guest mounts by (1 to MaxTagSize bytes; default
	// "fastfs"). The VMM may override it (QEMU's vhost-user-fs-pci tag=).
	Tag string
	// RequestQueues is the number of request queues offered (default 1);
	// each has its own worker.
	RequestQueues int
	// CPUs pins queue i's worker to CPUs[i % len(CPUs)] (nil: unpinned;
	// the VMM's vCPU threads share the host CPUs, which fastfs cannot
	// see). Queue 0 is hiprio; dataplane.Topology.Plan(1+RequestQueues)
	// gives one CPU each, distinct physical cores first.
	CPUs []int
	// BusyPoll keeps a queue's worker polling its ring this long after it
	// ran dry before it sleeps on the VMM's kick (0: sleep at once).
	BusyPoll time.Duration
	// AdaptivePoll, without BusyPoll, polls a dry ring for a window each
	// worker sizes to the guest's pace, up to this maximum (0: off;
	// fastfsd virtiofs uses DefaultAdaptivePoll, 64 µs). See
	// virtiofs.Options.AdaptivePoll. Both set, or either negative, is an
	// error.
	AdaptivePoll time.Duration
	// Helpers is the number of goroutines per queue that serve requests
	// which may block for long (lock waits, fsync) and large READs and
	// WRITEs, so that several run at once on one queue (0: all on the
	// queue's worker but lock waits; see virtiofs.Options.Helpers).
	Helpers int
	// DAXWindow, if not zero, offers a DAX window of this many bytes
	// (DefaultDAXWindow is the usual size): file ranges are then
	// mapped into the guest's memory instead of copied (vhost-user
	// SHMEM; a front-end without it gets no window and the guest mounts
	// without DAX). fsys must implement fs.Mapper, as fs/passthrough does.
	DAXWindow uint64
	// OneSession serves the first front-end that connects and returns
	// when its session ends: nil if the front-end went away (the guest
	// shut down, the VMM exited), the session's error otherwise
	// (virtiofsd's behaviour). By default the next front-end is awaited.
	OneSession bool
	// KeepAfterError awaits the next front-end also after a session that
	// ended on an error (a front-end that broke the protocol), logged as
	// a warning, instead of returning that error. Not with OneSession.
	KeepAfterError bool
	// Stats, if set, gets a counter per worker and helper slot that
	// counts every request with its service time (cmd/fastfsd's
	// --metrics: internal/stats cannot be imported outside this module,
	// so other users leave it nil).
	Stats *stats.Set
	// Fuse are the protocol engine's options; the zero value is the
	// engine's defaults.
	Fuse fuse.Options
	// Log gets session events (a front-end connecting and leaving,
	// dropped requests) and, when it is enabled for slog.LevelDebug,
	// every vhost-user message's header; nil: slog.Default().
	Log *slog.Logger
}

// ServeVirtioFS serves fsys as a vhost-user-fs (virtio-fs) device on a
// unix socket at socketPath, for a VMM (QEMU's vhost-user-fs-pci, Cloud
// Hypervisor) to connect to, until ctx is cancelled; it then drops the
// front-end, removes the socket and returns nil.
//
// The socket is born private to this process's user (mode 0600, with no
// moment in which another user could connect and play the VMM), so the
// VMM must run as the same user or as root. One front-end is served at a
// time; when it goes away (the guest shut down, the VMM exited) the next
// is awaited, and the filesystem sees a new Init. An error accepting, or
// a session that ended on a protocol error, ends serving and is returned
// (see opts.OneSession and opts.KeepAfterError for the other choices).
func ServeVirtioFS(ctx context.Context, fsys fs.FileSystem, socketPath string, opts *VirtioFSOptions) error {
	dev, err := newVirtioFS(fsys, opts)
	if err != nil {
		return err
	}
	ln, err := vhostuser.Listen(socketPath, -1)
	if err != nil {
		return fmt.Errorf("fastfs: serve virtio-fs: %w", err)
	}
	return serveVirtioFS(ctx, dev, ln, opts)
}

// UnixListener is a listening unix socket: a *net.UnixListener, or a
// wrapper whose Close also removes the socket file.
type UnixListener interface {
	AcceptUnix() (*net.UnixConn, error)
	Close() error
	Addr() net.Addr
}

// ServeVirtioFSListener is ServeVirtioFS on a socket that is already
// listening: one the caller made with the owner, group and mode it wants,
// or one it inherited (virtiofsd's --fd=N from libvirt, or from a
// supervising process: see vhostuser.FileListener). Who may connect is
// then the socket's business. It closes l when it returns.
func ServeVirtioFSListener(ctx context.Context, fsys fs.FileSystem, l UnixListener, opts *VirtioFSOptions) error {
	dev, err := newVirtioFS(fsys, opts)
	if err != nil {
		l.Close()
		return err
	}
	return serveVirtioFS(ctx, dev, l, opts)
}

// newVirtioFS checks opts and makes the device.
func newVirtioFS(fsys fs.FileSystem, opts *VirtioFSOptions) (*virtiofs.Device, error) {
	var o VirtioFSOptions
	if opts != nil {
		o = *opts
	}
	if fsys == nil {
		return nil, errors.New("fastfs: serve virtio-fs: nil filesystem")
	}
	if o.Tag == "" {
		o.Tag = "fastfs"
	}
	if len(o.Tag) > MaxTagSize {
		return nil, fmt.Errorf("fastfs: serve virtio-fs: Tag %q: want 1 to %d bytes", o.Tag, MaxTagSize)
	}
	if o.RequestQueues == 0 {
		o.RequestQueues = 1
	}
	if o.RequestQueues < 0 || o.RequestQueues > 1024 {
		return nil, fmt.Errorf("fastfs: serve virtio-fs: RequestQueues %d: want 1 to 1024", o.RequestQueues)
	}
	if o.OneSession && o.KeepAfterError {
		return nil, errors.New("fastfs: serve virtio-fs: OneSession and KeepAfterError: choose one (OneSession never awaits another front-end)")
	}
	dev, err := virtiofs.New(fsys, virtiofs.Options{Tag: o.Tag, RequestQueues: o.RequestQueues, CPUs: o.CPUs,
		BusyPoll: o.BusyPoll, AdaptivePoll: o.AdaptivePoll, Helpers: o.Helpers, Fuse: o.Fuse, Log: logger(o.Log), Stats: o.Stats})
	if err != nil {
		return nil, fmt.Errorf("fastfs: serve virtio-fs: %w", err)
	}
	if o.DAXWindow != 0 {
		if err := dev.EnableDAX(o.DAXWindow); err != nil {
			return nil, fmt.Errorf("fastfs: serve virtio-fs: DAXWindow %d: %w", o.DAXWindow, err)
		}
		logger(o.Log).Info("virtiofs: DAX window offered (vhost-user SHMEM); a front-end without SHMEM gets none and the guest mounts without DAX",
			"cache-size", o.DAXWindow)
	}
	return dev, nil
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}

// serveVirtioFS accepts front-ends on ln and serves dev to them, one at
// a time, until ctx is cancelled or opts say to stop; it closes ln.
func serveVirtioFS(ctx context.Context, dev *virtiofs.Device, ln UnixListener, opts *VirtioFSOptions) error {
	var o VirtioFSOptions
	if opts != nil {
		o = *opts
	}
	defer ln.Close()
	log := logger(o.Log)
	b := vhostuser.NewBackend(dev)
	b.Log = log
	if log.Enabled(ctx, slog.LevelDebug) {
		b.OnMessage = func(h vhostuser.Header) {
			log.Debug("vhostuser: message", "request", h.Request.String(), "flags", h.Flags, "size", h.Size)
		}
	}
	where := ln.Addr().String()

	// On cancel: stop accepting and drop the front-end; Serve then stops
	// every ring and returns.
	var mu sync.Mutex
	var cur *net.UnixConn // guarded by mu
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
		case <-stopped:
			return
		}
		mu.Lock()
		if cur != nil {
			cur.Close()
		}
		mu.Unlock()
		ln.Close()
	}()
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("fastfs: serve virtio-fs: accept on %s: %w", where, err)
		}
		mu.Lock()
		if ctx.Err() != nil {
			mu.Unlock()
			conn.Close()
			return nil
		}
		cur = conn
		mu.Unlock()
		log.Info("virtiofs: front-end connected")
		err = b.Serve(conn)
		mu.Lock()
		cur = nil
		mu.Unlock()
		if ctx.Err() != nil {
			return nil
		}
		left := errors.Is(err, vhostuser.ErrClosed) || errors.Is(err, vhostuser.ErrDisconnected)
		if errors.Is(err, vhostuser.ErrClosed) {
			log.Info("virtiofs: front-end disconnected", "reason", err)
		} else {
			log.Warn("virtiofs: session ended", "err", err)
		}
		switch {
		case o.OneSession && left:
			return nil
		case o.OneSession, !left && !o.KeepAfterError:
			return fmt.Errorf("fastfs: serve virtio-fs on %s: %w", where, err)
		}
	}
}
