// Command vfs serves several host directories under one mount: each
// NAME=DIR argument becomes the directory NAME of a read-only root
// (package fs/vfs). Shares can be mounted and unmounted while the mount
// is in use; this example takes the last one away after -drop, to show
// it.
//
//	sudo go run ./examples/vfs /mnt a=/srv/a b=/srv/b
//	ls /mnt        # a b
package main

import (
	"context"
	"flag"
	"log"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/fs/passthrough"
	"github.com/fastfsd/fastfsd/fs/vfs"
)

// serve mounts shares (NAME=DIR each) under a new VFS at mountpoint.
func serve(ctx context.Context, mountpoint string, shares []string) (*vfs.VFS, *fastfs.Mounted, error) {
	v := vfs.New(vfs.Options{})
	for _, s := range shares {
		name, dir, _ := strings.Cut(s, "=")
		backend, err := passthrough.New(dir, passthrough.Options{})
		if err != nil {
			return nil, nil, err
		}
		if err := v.Mount(name, backend); err != nil { // v owns backend from here
			backend.Close()
			return nil, nil, err
		}
	}
	m, err := fastfs.Mount(ctx, v, mountpoint, &fastfs.MountOptions{FSName: "vfs-example"})
	return v, m, err
}

func main() {
	drop := flag.Duration("drop", 0, "unmount the last share after this long (0: never)")
	flag.Parse()
	if flag.NArg() < 2 {
		log.Fatal("usage: vfs [-drop DURATION] MOUNTPOINT NAME=DIR...")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	v, m, err := serve(ctx, flag.Arg(0), flag.Args()[1:])
	if err != nil {
		log.Fatal(err)
	}
	if *drop > 0 {
		last, _, _ := strings.Cut(flag.Arg(flag.NArg()-1), "=")
		time.AfterFunc(*drop, func() { log.Print(v.Unmount(ctx, last)) })
	}
	if err := m.Wait(); err != nil {
		log.Fatal(err)
	}
}
