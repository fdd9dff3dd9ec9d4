package fs_test

import (
	"fmt"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
)

// helloFS is the low-level API at its smallest: the author numbers the
// inodes (the root is fs.RootInode) and fills the replies; fs.Base
// answers every method left out with ENOSYS, which FUSE clients remember
// and stop asking. fs/nodefs does the numbering and counting for you.
type helloFS struct{ fs.Base }

func (helloFS) Lookup(_ *fs.Context, parent fs.Inode, name []byte, out *fs.Entry) fs.Errno {
	if parent != fs.RootInode || string(name) != "hello" {
		return syscall.ENOENT
	}
	out.Ino = 2
	out.Attr = fs.Attr{Ino: 2, Mode: syscall.S_IFREG | 0o444, Nlink: 1, Size: 13}
	return 0
}

func Example() {
	var fsys fs.FileSystem = helloFS{}
	var ctx fs.Context
	var e fs.Entry
	errno := fsys.Lookup(&ctx, fs.RootInode, []byte("hello"), &e)
	fmt.Printf("lookup hello: errno %d, inode %d, size %d\n", errno, e.Ino, e.Attr.Size)
	var a fs.AttrOut
	fmt.Println("getattr, left to fs.Base:", fsys.GetAttr(&ctx, 2, 0, false, &a) == syscall.ENOSYS)
	// Output:
	// lookup hello: errno 0, inode 2, size 13
	// getattr, left to fs.Base: true
}
