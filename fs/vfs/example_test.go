package vfs_test

import (
	"context"
	"fmt"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/vfs"
)

// emptyDir is a backend with an empty root directory.
type emptyDir struct{ fs.Base }

func (emptyDir) GetAttr(_ *fs.Context, ino fs.Inode, _ fs.Handle, _ bool, out *fs.AttrOut) fs.Errno {
	if ino != fs.RootInode {
		return syscall.ESTALE
	}
	out.Attr = fs.Attr{Ino: 1, Mode: syscall.S_IFDIR | 0o755, Nlink: 2}
	return 0
}

// A VFS of two shares, one taken away while the session runs. Serve v
// with fastfs.Mount, ServeVirtioFS or Serve9P like any fs.FileSystem.
func Example() {
	v := vfs.New(vfs.Options{})
	v.Mount("a", emptyDir{})
	v.Mount("b", emptyDir{})

	ctx := &fs.Context{}
	v.Init(ctx, &fs.InitInfo{}) // the transport does this
	var a, b fs.Entry
	v.Lookup(ctx, fs.RootInode, []byte("a"), &a)
	v.Lookup(ctx, fs.RootInode, []byte("b"), &b)
	fmt.Printf("a and b have distinct IDs: %v\n", a.Ino != b.Ino)

	v.Unmount(context.Background(), "b")
	var out fs.AttrOut
	fmt.Println("b's root after unmount:", v.GetAttr(ctx, b.Ino, 0, false, &out))
	for _, s := range v.Shares() {
		fmt.Printf("share %s, %d lookup(s) held\n", s.Name, s.Lookups)
	}
	// Output:
	// a and b have distinct IDs: true
	// b's root after unmount: stale file handle
	// share a, 1 lookup(s) held
}
