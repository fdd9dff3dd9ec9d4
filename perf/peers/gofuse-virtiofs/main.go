// Command gofuse-virtiofs is go-fuse's virtio-fs backend serving a loopback
// of a directory: go-fuse's example/virtiofs without its debug logging
// (which logs every request and would make the comparison unfair).
//
//	gofuse-virtiofs SOCKET DIR
package main

import (
	"flag"
	"log"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/virtiofs"
)

func main() {
	flag.Parse()
	if flag.NArg() != 2 {
		log.Fatal("usage: gofuse-virtiofs SOCKET DIR")
	}
	root, err := fs.NewLoopbackRoot(flag.Arg(1))
	if err != nil {
		log.Fatalf("loopback %s: %v", flag.Arg(1), err)
	}
	opts := &fs.Options{}
	raw := fs.NewNodeFS(root, opts)
	virtiofs.ServeFS(flag.Arg(0), raw, &opts.MountOptions)
}
