// Command gofuse-loopback is go-fuse's example loopback file system (the
// same options: 1 s entry and attribute timeouts, NullPermissions), with
// one switch the example lacks: -passthrough=false serves file data
// through the daemon instead of FUSE passthrough, so that `make bench`
// can compare every subject with passthrough and without it.
//
//	gofuse-loopback [-passthrough=false] [-directmount] [-q] MOUNTPOINT ORIGINAL
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is a LoopbackNode whose open files refuse passthrough.
type node struct{ fs.LoopbackNode }

// file is a LoopbackFile that never offers a passthrough fd: go-fuse then
// serves READ and WRITE itself.
type file struct{ *fs.LoopbackFile }

func (file) PassthroughFd() (int, bool) { return -1, false }

func wrap(fh fs.FileHandle) fs.FileHandle {
	if lf, ok := fh.(*fs.LoopbackFile); ok {
		return &file{lf}
	}
	return fh
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fl, e := n.LoopbackNode.Open(ctx, flags)
	return wrap(fh), fl, e
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	in, fh, fl, e := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	return in, wrap(fh), fl, e
}

func main() {
	pass := flag.Bool("passthrough", true, "FUSE passthrough for open files (go-fuse's default); false serves READ and WRITE in the daemon")
	direct := flag.Bool("directmount", false, "call mount(2) instead of fusermount")
	quiet := flag.Bool("q", false, "quiet")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: gofuse-loopback [-passthrough=false] [-directmount] [-q] MOUNTPOINT ORIGINAL")
		os.Exit(2)
	}
	orig := flag.Arg(1)
	var st syscall.Stat_t
	if err := syscall.Stat(orig, &st); err != nil {
		log.Fatalf("stat %s: %v", orig, err)
	}
	root := &fs.LoopbackRoot{Path: orig, Dev: uint64(st.Dev)}
	if !*pass {
		root.NewNode = func(r *fs.LoopbackRoot, parent *fs.Inode, name string, st *syscall.Stat_t) fs.InodeEmbedder {
			return &node{fs.LoopbackNode{RootData: r}}
		}
	}
	var rootNode fs.InodeEmbedder = &fs.LoopbackNode{RootData: root}
	if root.NewNode != nil {
		rootNode = root.NewNode(root, nil, "", &st)
	}
	root.RootNode = rootNode
	sec := time.Second
	opts := &fs.Options{
		AttrTimeout: &sec, EntryTimeout: &sec, NullPermissions: true,
		MountOptions: fuse.MountOptions{DirectMount: *direct, FsName: orig, Name: "loopback"},
	}
	if !*quiet {
		opts.Logger = log.New(os.Stderr, "", 0)
	}
	server, err := fs.Mount(flag.Arg(0), rootNode, opts)
	if err != nil {
		log.Fatalf("mount: %v", err)
	}
	// Unmount on SIGINT/SIGTERM, as the example does: the harness stops
	// a subject with SIGTERM and expects no mount left behind.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		server.Unmount()
	}()
	server.Wait()
}
