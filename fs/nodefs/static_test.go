package nodefs_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/nodefs"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// TestStaticNodes: a Dir of Files answers lookups, attributes and reads
// with no methods of the author's own.
func TestStaticNodes(t *testing.T) {
	hello := &nodefs.File{Data: []byte("hello, world\n")}
	root := &nodefs.Dir{Entries: map[string]nodefs.Node{
		"hello": hello,
		"sub":   &nodefs.Dir{Entries: map[string]nodefs.Node{"x": &nodefs.File{Data: []byte("x"), Mode: 0o640}}, Mode: 0o750},
	}}
	tree := nodefs.New(root, nil)
	var ctx fs.Context
	var e fs.Entry
	if errno := tree.Lookup(&ctx, fs.RootInode, []byte("hello"), &e); errno != 0 {
		t.Fatalf("lookup hello: %v", errno)
	}
	if e.Attr.Mode != 0o100444 || e.Attr.Size != 13 {
		t.Errorf("hello: mode %o size %d, want 100444 and 13", e.Attr.Mode, e.Attr.Size)
	}
	if errno := tree.Lookup(&ctx, fs.RootInode, []byte("nope"), &e); errno != 2 {
		t.Errorf("lookup nope: errno %d, want ENOENT", errno)
	}
	if errno := tree.Lookup(&ctx, fs.RootInode, []byte("sub"), &e); errno != 0 || e.Attr.Mode != 0o40750 {
		t.Errorf("lookup sub: errno %d mode %o, want 0 and 40750", errno, e.Attr.Mode)
	}
	sub := e.Ino
	if errno := tree.Lookup(&ctx, sub, []byte("x"), &e); errno != 0 || e.Attr.Mode != 0o100640 || e.Attr.Size != 1 {
		t.Errorf("lookup sub/x: errno %d mode %o size %d", errno, e.Attr.Mode, e.Attr.Size)
	}
}

// TestStaticMount reads a Dir of Files through a real mount: contents,
// a read past the end, and the listing in name order.
func TestStaticMount(t *testing.T) {
	root := &nodefs.Dir{Entries: map[string]nodefs.Node{
		"b": &nodefs.File{Data: []byte("bee")},
		"a": &nodefs.File{Data: []byte("ay")},
		"c": &nodefs.Dir{},
	}}
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	mnt := t.TempDir()
	m, err := fastfs.Mount(context.Background(), nodefs.New(root, nil), mnt, &fastfs.MountOptions{FSName: "nodefs-static", Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := m.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	}()
	got, err := testutil.ReadFile(filepath.Join(mnt, "b"))
	if err != nil || string(got) != "bee" {
		t.Fatalf("read b: %q %v", got, err)
	}
	names, err := testutil.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "c"}; !slices.Equal(names, want) {
		t.Errorf("listing %v, want %v", names, want)
	}
	if _, err := os.Stat(filepath.Join(mnt, "d")); !os.IsNotExist(err) {
		t.Errorf("stat d: %v, want not exist", err)
	}
}
