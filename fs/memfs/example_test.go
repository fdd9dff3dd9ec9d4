package memfs_test

import (
	"fmt"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/memfs"
)

// A memfs is an fs.FileSystem: fastfs.Mount(ctx, fsys, "/mnt", nil)
// mounts it. Here it is driven as a door would drive it.
func Example() {
	fsys := memfs.New(nil)
	ctx := &fs.Context{Caller: fs.Caller{Uid: 1000, Gid: 1000}}

	var e fs.Entry
	var o fs.OpenOut
	fsys.Create(ctx, fs.RootInode, []byte("notes"), 0o644, syscall.O_WRONLY, &e, &o)
	n, _ := fsys.Write(ctx, e.Ino, o.Handle, 0, source("in memory"), 0)
	fsys.Release(ctx, e.Ino, o.Handle, 0)

	var a fs.AttrOut
	fsys.GetAttr(ctx, e.Ino, 0, false, &a)
	fmt.Printf("wrote %d bytes; notes: mode %o, size %d, owner %d\n", n, a.Attr.Mode, a.Attr.Size, a.Attr.Uid)
	// Output: wrote 9 bytes; notes: mode 100644, size 9, owner 1000
}

// source is an fs.Source over a string.
type source string

func (s source) Len() int                           { return len(s) }
func (s source) CopyTo(p []byte) int                { return copy(p, s) }
func (s source) WriteTo(int, int64) (int, fs.Errno) { return 0, syscall.ENOSYS }
