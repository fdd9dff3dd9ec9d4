// Command hellofs mounts a read-only filesystem holding one file, hello,
// at the directory given as its argument, and serves it until SIGINT or
// SIGTERM (or an unmount). It is the smallest filesystem fastfs serves:
// fs/nodefs numbers the inodes, counts the kernel's lookups and answers
// every request a node has no method for; its File and Dir are ready-made
// nodes (a filesystem of its own types is in fs/nodefs's example, and a
// read-write one is fs/memfs).
//
//	go run ./examples/hellofs /mnt && cat /mnt/hello
package main

import (
	"context"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/fs/nodefs"
)

// newHello is the filesystem: a directory holding one file.
func newHello() *nodefs.Tree {
	return nodefs.New(&nodefs.Dir{Entries: map[string]nodefs.Node{
		"hello": &nodefs.File{Data: []byte("hello, world\n")},
	}}, nil)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, err := fastfs.Mount(ctx, newHello(), os.Args[1], nil)
	if err == nil {
		err = m.Wait()
	}
	if err != nil {
		log.Fatal(err)
	}
}
