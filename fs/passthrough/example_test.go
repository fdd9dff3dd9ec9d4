package passthrough_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/passthrough"
)

// A host directory served as an fs.FileSystem: fastfs.Mount,
// ServeVirtioFS or Serve9P serve it to a client; here it is called as a
// door would. Names resolve beneath the directory only: ".." of the root
// is the root, and a symlink is never followed out of it.
func Example() {
	dir, _ := os.MkdirTemp("", "passthrough-example")
	defer os.RemoveAll(dir)
	os.WriteFile(filepath.Join(dir, "hello"), []byte("hello, world\n"), 0o644)

	f, err := passthrough.New(dir, passthrough.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Close()
	var ctx fs.Context // the caller's identity (uid 0 here)
	var e fs.Entry
	errno := f.Lookup(&ctx, fs.RootInode, []byte("hello"), &e)
	fmt.Printf("hello: errno %d, size %d, mode %o\n", errno, e.Attr.Size, e.Attr.Mode)
	errno = f.Lookup(&ctx, fs.RootInode, []byte(".."), &e)
	fmt.Printf("..: errno %d, the root: %v\n", errno, e.Ino == fs.RootInode)
	// Output:
	// hello: errno 0, size 13, mode 100644
	// ..: errno 0, the root: true
}
