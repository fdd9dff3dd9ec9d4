package nodefs_test

import (
	"fmt"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/nodefs"
)

// helloDir is a directory holding one file, hello.
type helloDir struct {
	nodefs.Inode
	hello helloFile
}

func (d *helloDir) Lookup(_ *fs.Context, name []byte) (nodefs.Node, fs.Errno) {
	if string(name) == "hello" {
		return &d.hello, 0
	}
	return nil, syscall.ENOENT
}

// helloFile is a read-only file; its default attributes say 0444, and
// Getattr gives its size.
type helloFile struct{ nodefs.Inode }

var content = []byte("hello, world\n")

func (f *helloFile) Getattr(_ *fs.Context, _ nodefs.FileHandle, out *fs.Attr) fs.Errno {
	*out = fs.Attr{Mode: syscall.S_IFREG | 0o444, Nlink: 1, Size: uint64(len(content))}
	return 0
}

func (f *helloFile) Read(_ *fs.Context, _ nodefs.FileHandle, off int64, _ uint32, dst fs.Sink) fs.Errno {
	dst.Append(content[min(off, int64(len(content))):])
	return 0
}

// A tree is an fs.FileSystem: fastfs.Mount(ctx, tree, "/mnt", nil) mounts
// it. Here it is called as a door would, to show what the Tree adds.
func Example() {
	tree := nodefs.New(&helloDir{}, nil)

	var ctx fs.Context
	var e fs.Entry
	errno := tree.Lookup(&ctx, fs.RootInode, []byte("hello"), &e)
	fmt.Printf("lookup hello: errno %d, ID %d, generation %d, size %d, mode %o\n",
		errno, e.Ino, e.Generation, e.Attr.Size, e.Attr.Mode)

	var a fs.AttrOut
	tree.GetAttr(&ctx, fs.RootInode, 0, false, &a)
	fmt.Printf("root: ID %d, mode %o\n", a.Attr.Ino, a.Attr.Mode)

	tree.Forget(e.Ino, 1) // the client forgets hello: its ID names nothing now
	fmt.Println("getattr after forget:", tree.GetAttr(&ctx, e.Ino, 0, false, &a))
	tree.Lookup(&ctx, fs.RootInode, []byte("hello"), &e)
	fmt.Println("looked up again: ID", e.Ino)
	// Output:
	// lookup hello: errno 0, ID 2, generation 1, size 13, mode 100444
	// root: ID 1, mode 40555
	// getattr after forget: stale file handle
	// looked up again: ID 2
}
