// Command hellofs mounts a read-only filesystem holding one file, hello,
// at the directory given as its argument, and serves it until SIGINT or
// SIGTERM (or an unmount). It is the smallest filesystem fastfs serves:
// fs.Base answers every request it leaves out.
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
	"github.com/fastfsd/fastfsd/fs"
)

var content = []byte("hello, world\n")

type helloFS struct{ fs.Base }

// attr holds the attributes of the root (inode 1) and of hello (inode 2),
// the only inodes the kernel is ever told of.
var attr = [...]fs.Attr{
	fs.RootInode: {Ino: 1, Mode: syscall.S_IFDIR | 0o555, Nlink: 2},
	2:            {Ino: 2, Mode: syscall.S_IFREG | 0o444, Nlink: 1, Size: uint64(len(content))},
}

func (helloFS) Lookup(_ *fs.Context, _ fs.Inode, name []byte, out *fs.Entry) fs.Errno {
	if string(name) != "hello" {
		return syscall.ENOENT
	}
	out.Ino, out.Attr = 2, attr[2]
	return 0
}

func (helloFS) GetAttr(_ *fs.Context, ino fs.Inode, _ fs.Handle, _ bool, out *fs.AttrOut) fs.Errno {
	out.Attr = attr[ino]
	return 0
}

func (helloFS) Open(*fs.Context, fs.Inode, uint32, uint32, *fs.OpenOut) fs.Errno { return 0 }

func (helloFS) Read(_ *fs.Context, _ fs.Inode, _ fs.Handle, off int64, _ uint32, dst fs.Sink) fs.Errno {
	dst.Append(content[min(off, int64(len(content))):]) // Append takes what fits
	return 0
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, err := fastfs.Mount(ctx, helloFS{}, os.Args[1], nil)
	if err == nil {
		err = m.Wait()
	}
	if err != nil {
		log.Fatal(err)
	}
}
