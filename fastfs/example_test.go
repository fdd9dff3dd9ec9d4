package fastfs_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	hp9 "github.com/hugelgupf/p9/p9"

	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/fs"
)

var greeting = []byte("hello, world\n")

// helloFS is a read-only directory holding one file, hello (inode 2).
type helloFS struct{ fs.Base }

var attrs = [...]fs.Attr{
	fs.RootInode: {Ino: 1, Mode: syscall.S_IFDIR | 0o555, Nlink: 2},
	2:            {Ino: 2, Mode: syscall.S_IFREG | 0o444, Nlink: 1, Size: uint64(len(greeting))},
}

func (helloFS) Lookup(_ *fs.Context, _ fs.Inode, name []byte, out *fs.Entry) fs.Errno {
	if string(name) != "hello" {
		return syscall.ENOENT
	}
	out.Ino, out.Attr = 2, attrs[2]
	return 0
}

func (helloFS) GetAttr(_ *fs.Context, ino fs.Inode, _ fs.Handle, _ bool, out *fs.AttrOut) fs.Errno {
	out.Attr = attrs[ino]
	return 0
}

func (helloFS) Open(*fs.Context, fs.Inode, uint32, uint32, *fs.OpenOut) fs.Errno { return 0 }

func (helloFS) Read(_ *fs.Context, _ fs.Inode, _ fs.Handle, off int64, _ uint32, dst fs.Sink) fs.Errno {
	dst.Append(greeting[min(off, int64(len(greeting))):])
	return 0
}

// Mount a filesystem through /dev/fuse (root, or fusermount3) and serve
// it until SIGINT or SIGTERM.
func ExampleMount() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m, err := fastfs.Mount(ctx, helloFS{}, "/mnt", &fastfs.MountOptions{FSName: "hello"})
	if err != nil {
		log.Fatal(err)
	}
	if err := m.Wait(); err != nil {
		log.Fatal(err)
	}
}

// Serve a filesystem over 9P2000.L on a unix socket and read it with a
// 9P client (github.com/hugelgupf/p9); the Linux kernel's v9fs would mount
// the same socket.
func ExampleServe9P() {
	dir, err := os.MkdirTemp("", "fastfs-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("unix", filepath.Join(dir, "9p.sock"))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fastfs.Serve9P(ctx, helloFS{}, l, nil) }()

	nc, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	c, err := hp9.NewClient(nc)
	if err != nil {
		log.Fatal(err)
	}
	root, err := c.Attach("")
	if err != nil {
		log.Fatal(err)
	}
	_, f, err := root.Walk([]string{"hello"})
	if err != nil {
		log.Fatal(err)
	}
	if _, _, err := f.Open(hp9.ReadOnly); err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := f.ReadAt(buf, 0)
	fmt.Printf("%s", buf[:n])
	c.Close()

	cancel()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	// Output: hello, world
}
