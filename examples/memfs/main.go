// Command memfs serves one in-memory filesystem (fs/memfs) over any of
// fastfs's three doors, or all of them at once: a FUSE mount on this host,
// a virtio-fs device for a VM, and a 9P2000.L server. Every door sees the
// same files: one written through the mount is read at once over 9P.
//
//	memfs -mount /mnt                       # /dev/fuse (root, or fusermount3)
//	memfs -virtiofs /run/memfs.sock         # QEMU: -chardev socket,path=/run/memfs.sock ...
//	memfs -9p unix:/run/memfs-9p.sock       # mount -t 9p -o trans=unix,version=9p2000.L ...
//	memfs -mount /mnt -9p tcp:127.0.0.1:5640 -virtiofs /run/memfs.sock
//
// It serves until SIGINT or SIGTERM, or until the mount is unmounted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/fs/memfs"
)

func main() {
	mount := flag.String("mount", "", "mount through /dev/fuse on this `directory`")
	vfs := flag.String("virtiofs", "", "serve a vhost-user-fs device on this unix `socket`")
	p9 := flag.String("9p", "", "serve 9P2000.L on `unix:PATH or tcp:HOST:PORT`")
	maxBytes := flag.Int64("max-bytes", 0, "cap the file data held at this many `bytes` (0: no cap)")
	flag.Parse()
	if flag.NArg() != 0 || *mount == "" && *vfs == "" && *p9 == "" {
		fmt.Fprintln(os.Stderr, "usage: memfs [-mount DIR] [-virtiofs SOCKET] [-9p unix:PATH|tcp:HOST:PORT] [-max-bytes N]: at least one door")
		os.Exit(2)
	}
	if *maxBytes < 0 {
		log.Fatalf("memfs: -max-bytes %d: want 0 (no cap) or more", *maxBytes)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, memfs.New(&memfs.Options{MaxBytes: *maxBytes}), *mount, *vfs, *p9); err != nil {
		log.Fatal(err)
	}
}

// serve serves fsys on each door asked for until ctx is cancelled or a
// door ends; then it stops them all and returns the first error. It
// prints "ready" once every door is up.
func serve(ctx context.Context, fsys *memfs.FS, mount, vfs, p9 string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The FUSE mount's kernel sends locks to memfs (FuseOptions.Locks),
	// so that a lock taken through the mount and one taken over 9P are
	// one lock. A virtio-fs guest keeps its locks itself: its kernel
	// never interrupts a request (Linux's virtio-fs has no
	// FUSE_INTERRUPT), so a process killed while it waited for a lock
	// held here would hang until the lock was free.
	locks := fastfs.FuseOptions{Locks: true}
	var doors []<-chan error
	start := func(f func() error) {
		c := make(chan error, 1)
		go func() { c <- f(); cancel() }()
		doors = append(doors, c)
	}
	if p9 != "" {
		network, addr, ok := strings.Cut(p9, ":")
		if !ok || network != "unix" && network != "tcp" {
			return fmt.Errorf("memfs: -9p %q: want unix:PATH or tcp:HOST:PORT", p9)
		}
		l, err := net.Listen(network, addr)
		if err != nil {
			return fmt.Errorf("memfs: %w", err)
		}
		start(func() error { return fastfs.Serve9P(ctx, fsys, l, nil) })
	}
	if vfs != "" {
		start(func() error {
			return fastfs.ServeVirtioFS(ctx, fsys, vfs, &fastfs.VirtioFSOptions{Tag: "memfs"})
		})
	}
	if mount != "" {
		m, err := fastfs.Mount(ctx, fsys, mount, &fastfs.MountOptions{FSName: "memfs", AllowOther: os.Geteuid() == 0, Fuse: locks})
		if err != nil {
			cancel()
			for _, c := range doors {
				<-c
			}
			return err
		}
		start(m.Wait)
	}
	fmt.Println("ready")
	var first error
	for _, c := range doors {
		if err := <-c; err != nil && !errors.Is(err, context.Canceled) && first == nil {
			first = err
		}
	}
	return first
}
