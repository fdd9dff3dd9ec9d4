package fastfs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/fastfsd/fastfsd/dataplane/virtiofs"
	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/vhostuser"
)

// VirtioFSOptions say how ServeVirtioFS serves. The zero value (or nil)
// serves tag "fastfs" on one request queue with the engine's defaults.
type VirtioFSOptions struct {
	// Tag is the mount tag the guest mounts by (1 to 36 bytes; default
	// "fastfs"). The VMM may override it (QEMU's vhost-user-fs-pci tag=).
	Tag string
	// RequestQueues is the number of request queues offered (default 1);
	// each has its own worker.
	RequestQueues int
	// CPUs pins queue i's worker to CPUs[i % len(CPUs)] (nil: unpinned;
	// the VMM's vCPU threads share the host CPUs, which fastfs cannot
	// see).
	CPUs []int
	// Fuse are the protocol engine's options; the zero value is the
	// engine's defaults.
	Fuse fuse.Options
	// Log gets session events (a front-end connecting and leaving,
	// dropped requests); nil: slog.Default().
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
// a session that ended on a protocol error, ends serving and is returned.
func ServeVirtioFS(ctx context.Context, fsys fs.FileSystem, socketPath string, opts *VirtioFSOptions) error {
	var o VirtioFSOptions
	if opts != nil {
		o = *opts
	}
	if fsys == nil {
		return errors.New("fastfs: serve virtio-fs: nil filesystem")
	}
	if o.Tag == "" {
		o.Tag = "fastfs"
	}
	if len(o.Tag) > virtiofs.TagSize {
		return fmt.Errorf("fastfs: serve virtio-fs: Tag %q: want 1 to %d bytes", o.Tag, virtiofs.TagSize)
	}
	if o.RequestQueues == 0 {
		o.RequestQueues = 1
	}
	if o.RequestQueues < 0 || o.RequestQueues > 1024 {
		return fmt.Errorf("fastfs: serve virtio-fs: RequestQueues %d: want 1 to 1024", o.RequestQueues)
	}
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	dev, err := virtiofs.New(fsys, virtiofs.Options{Tag: o.Tag, RequestQueues: o.RequestQueues, CPUs: o.CPUs, Fuse: o.Fuse, Log: log})
	if err != nil {
		return fmt.Errorf("fastfs: serve virtio-fs: %w", err)
	}
	ln, err := vhostuser.Listen(socketPath, -1)
	if err != nil {
		return fmt.Errorf("fastfs: serve virtio-fs: %w", err)
	}
	defer ln.Close()
	b := vhostuser.NewBackend(dev)
	b.Log = log

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
			return fmt.Errorf("fastfs: serve virtio-fs: accept on %s: %w", socketPath, err)
		}
		mu.Lock()
		if ctx.Err() != nil {
			mu.Unlock()
			conn.Close()
			return nil
		}
		cur = conn
		mu.Unlock()
		err = b.Serve(conn)
		mu.Lock()
		cur = nil
		mu.Unlock()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, vhostuser.ErrClosed), errors.Is(err, vhostuser.ErrDisconnected):
			log.Info("fastfs: virtio-fs front-end left; waiting for the next", "socket", socketPath, "reason", err)
		default:
			return fmt.Errorf("fastfs: serve virtio-fs on %s: %w", socketPath, err)
		}
	}
}
