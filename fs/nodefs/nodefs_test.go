package nodefs_test

import (
	"fmt"
	"sync"
	"syscall"
	"testing"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/nodefs"
)

// testDir is a directory of named children, some of which can be added
// and removed; mkdir makes a new testFile (never reusing a node).
type testDir struct {
	nodefs.Inode
	mu       sync.Mutex
	children map[string]nodefs.Node
}

func newDir() *testDir { return &testDir{children: map[string]nodefs.Node{}} }

func (d *testDir) Getattr(_ *fs.Context, _ nodefs.FileHandle, out *fs.Attr) fs.Errno {
	*out = fs.Attr{Mode: syscall.S_IFDIR | 0o755, Nlink: 2}
	return 0
}

func (d *testDir) Lookup(_ *fs.Context, name []byte) (nodefs.Node, fs.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.children[string(name)]; ok {
		return c, 0
	}
	return nil, syscall.ENOENT
}

func (d *testDir) Mknod(_ *fs.Context, name []byte, mode, _ uint32) (nodefs.Node, fs.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.children[string(name)]; ok {
		return nil, syscall.EEXIST
	}
	f := &testFile{data: []byte(string(name))}
	d.children[string(name)] = f
	return f, 0
}

func (d *testDir) Unlink(_ *fs.Context, name []byte) fs.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.children[string(name)]; !ok {
		return syscall.ENOENT
	}
	delete(d.children, string(name))
	return 0
}

// Readdir lists children in name order with cookies 1, 2, …
func (d *testDir) Readdir(_ *fs.Context, _ nodefs.FileHandle, off uint64, dst *nodefs.DirList) fs.Errno {
	d.mu.Lock()
	names := make([]string, 0, len(d.children))
	for n := range d.children {
		names = append(names, n)
	}
	d.mu.Unlock()
	sortStrings(names)
	for i := off; i < uint64(len(names)); i++ {
		d.mu.Lock()
		c := d.children[names[i]]
		d.mu.Unlock()
		if c != nil && !dst.Add([]byte(names[i]), c, i+1) {
			break
		}
	}
	return 0
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// testFile is a read-only file whose opens carry a *testOpen.
type testFile struct {
	nodefs.Inode
	data     []byte
	released sync.WaitGroup
}

type testOpen struct{ flags uint32 }

func (f *testFile) Getattr(_ *fs.Context, _ nodefs.FileHandle, out *fs.Attr) fs.Errno {
	*out = fs.Attr{Mode: syscall.S_IFREG | 0o644, Nlink: 1, Size: uint64(len(f.data))}
	return 0
}

func (f *testFile) Open(_ *fs.Context, flags, _ uint32, _ *fs.OpenOut) (nodefs.FileHandle, fs.Errno) {
	return &testOpen{flags: flags}, 0
}

func (f *testFile) Read(_ *fs.Context, fh nodefs.FileHandle, off int64, _ uint32, dst fs.Sink) fs.Errno {
	if _, ok := fh.(*testOpen); !ok {
		return syscall.EBADFD // the Tree lost the handle
	}
	dst.Append(f.data[min(off, int64(len(f.data))):])
	return 0
}

// bare has no methods at all: every request gets the Tree's default.
type bare struct{ nodefs.Inode }

// sink is an fs.Sink over a fixed buffer.
type sink struct {
	buf []byte
	n   int
}

func (s *sink) Cap() int { return len(s.buf) - s.n }
func (s *sink) Len() int { return s.n }
func (s *sink) Append(p []byte) int {
	c := copy(s.buf[s.n:], p)
	s.n += c
	return c
}
func (s *sink) ReadFrom(int, int64, int) (int, fs.Errno) { return 0, syscall.ENOSYS }

var ctx fs.Context

func lookup(t *testing.T, tree *nodefs.Tree, parent fs.Inode, name string) fs.Entry {
	t.Helper()
	var e fs.Entry
	if errno := tree.Lookup(&ctx, parent, []byte(name), &e); errno != 0 {
		t.Fatalf("lookup %s: %v", name, errno)
	}
	return e
}

func TestLookupCountsAndForget(t *testing.T) {
	root := newDir()
	tree := nodefs.New(root, nil)
	f := &testFile{data: []byte("data")}
	root.children["f"] = f

	e1 := lookup(t, tree, fs.RootInode, "f")
	e2 := lookup(t, tree, fs.RootInode, "f")
	if e1.Ino != e2.Ino || e1.Ino == fs.RootInode || e1.Ino != f.ID() {
		t.Fatalf("IDs %d, %d, node's %d: want one ID, not the root's", e1.Ino, e2.Ino, f.ID())
	}
	if e1.Attr.Ino != uint64(e1.Ino) || e1.Generation != nodefs.Generation || e1.EntryTimeout != nodefs.DefaultOptions.EntryTimeout {
		t.Errorf("entry %+v: want Attr.Ino = ID, the generation and the default timeouts", e1)
	}
	if n, in := tree.Lookups(f); n != 2 || !in {
		t.Fatalf("after two lookups: count %d (in table %v), want 2", n, in)
	}
	tree.Forget(e1.Ino, 1)
	var a fs.AttrOut
	if errno := tree.GetAttr(&ctx, e1.Ino, 0, false, &a); errno != 0 || a.Attr.Ino != uint64(e1.Ino) {
		t.Fatalf("getattr with one lookup left: %v, ino %d", errno, a.Attr.Ino)
	}
	tree.Forget(e1.Ino, 5) // more than held: clamps, never wraps
	if errno := tree.GetAttr(&ctx, e1.Ino, 0, false, &a); errno != syscall.ESTALE {
		t.Fatalf("getattr of a forgotten ID: %v, want ESTALE", errno)
	}
	tree.Forget(fs.RootInode, 100) // the root is never forgotten
	tree.Forget(12345, 1)          // an ID never handed out: ignored
	if errno := tree.GetAttr(&ctx, fs.RootInode, 0, false, &a); errno != 0 || a.Attr.Mode != syscall.S_IFDIR|0o755 {
		t.Fatalf("root after Forget(root): %v %o", errno, a.Attr.Mode)
	}
	// Looked up again, the node keeps its ID.
	if e := lookup(t, tree, fs.RootInode, "f"); e.Ino != e1.Ino {
		t.Errorf("ID after forget and lookup: %d, want %d", e.Ino, e1.Ino)
	}
}

// TestIDsNeverReused: nodes created and forgotten one after another get
// ever larger IDs, and an old ID names nothing.
func TestIDsNeverReused(t *testing.T) {
	root := newDir()
	tree := nodefs.New(root, nil)
	var last fs.Inode = fs.RootInode
	for i := range 100 {
		var e fs.Entry
		name := []byte(fmt.Sprint("n", i))
		if errno := tree.Mknod(&ctx, fs.RootInode, name, syscall.S_IFREG|0o644, 0, &e); errno != 0 {
			t.Fatal(errno)
		}
		if e.Ino <= last {
			t.Fatalf("node %d got ID %d after %d", i, e.Ino, last)
		}
		if errno := tree.Unlink(&ctx, fs.RootInode, name); errno != 0 {
			t.Fatal(errno)
		}
		tree.Forget(e.Ino, 1)
		var a fs.AttrOut
		if errno := tree.GetAttr(&ctx, last, 0, false, &a); last != fs.RootInode && errno != syscall.ESTALE {
			t.Fatalf("old ID %d: %v, want ESTALE", last, errno)
		}
		last = e.Ino
	}
	if tree.Len() != 1 {
		t.Errorf("%d nodes in the table after every one was forgotten, want 1 (the root)", tree.Len())
	}
}

// TestUnlinkedButHeld: a node removed from its directory but not yet
// forgotten stays reachable, open handles included.
func TestUnlinkedButHeld(t *testing.T) {
	root := newDir()
	tree := nodefs.New(root, nil)
	root.children["f"] = &testFile{data: []byte("still here")}
	e := lookup(t, tree, fs.RootInode, "f")
	var o fs.OpenOut
	if errno := tree.Open(&ctx, e.Ino, syscall.O_RDONLY, 0, &o); errno != 0 || o.Handle == 0 {
		t.Fatalf("open: %v, handle %d", errno, o.Handle)
	}
	if errno := tree.Unlink(&ctx, fs.RootInode, []byte("f")); errno != 0 {
		t.Fatal(errno)
	}
	var lo fs.Entry
	if errno := tree.Lookup(&ctx, fs.RootInode, []byte("f"), &lo); errno != syscall.ENOENT {
		t.Errorf("lookup after unlink: %v, want ENOENT", errno)
	}
	s := &sink{buf: make([]byte, 64)}
	if errno := tree.Read(&ctx, e.Ino, o.Handle, 0, 64, s); errno != 0 || string(s.buf[:s.n]) != "still here" {
		t.Errorf("read of the unlinked file: %v %q", errno, s.buf[:s.n])
	}
}

func TestHandles(t *testing.T) {
	root := newDir()
	tree := nodefs.New(root, nil)
	root.children["a"] = &testFile{data: []byte("a")}
	root.children["b"] = &testFile{data: []byte("b")}
	a, b := lookup(t, tree, fs.RootInode, "a"), lookup(t, tree, fs.RootInode, "b")
	var oa, ob fs.OpenOut
	tree.Open(&ctx, a.Ino, syscall.O_RDONLY, 0, &oa)
	tree.Open(&ctx, b.Ino, syscall.O_RDONLY, 0, &ob)
	if oa.Handle == ob.Handle || tree.OpenHandles() != 2 {
		t.Fatalf("handles %d and %d, %d kept", oa.Handle, ob.Handle, tree.OpenHandles())
	}
	s := &sink{buf: make([]byte, 8)}
	for _, c := range []struct {
		what string
		ino  fs.Inode
		fh   fs.Handle
		want fs.Errno
	}{
		{"a's handle on a", a.Ino, oa.Handle, 0},
		{"b's handle on a", a.Ino, ob.Handle, syscall.EBADF},
		{"a handle never given", a.Ino, 99, syscall.EBADF},
		{"no handle", a.Ino, 0, syscall.EBADFD}, // the node sees a nil FileHandle
	} {
		if errno := tree.Read(&ctx, c.ino, c.fh, 0, 8, s); errno != c.want {
			t.Errorf("read with %s: %v, want %v", c.what, errno, c.want)
		}
	}
	if errno := tree.Release(&ctx, a.Ino, oa.Handle, 0); errno != 0 {
		t.Fatal(errno)
	}
	if errno := tree.Read(&ctx, a.Ino, oa.Handle, 0, 8, s); errno != syscall.EBADF {
		t.Errorf("read with a released handle: %v, want EBADF", errno)
	}
	if errno := tree.Release(&ctx, a.Ino, oa.Handle, 0); errno != syscall.EBADF {
		t.Errorf("second release: %v, want EBADF", errno)
	}
	// A node forgotten before its open is released still has it released.
	var ob2 fs.OpenOut
	tree.Open(&ctx, b.Ino, syscall.O_RDONLY, 0, &ob2)
	tree.Forget(b.Ino, 1)
	if errno := tree.Release(&ctx, b.Ino, ob2.Handle, 0); errno != 0 || tree.OpenHandles() != 1 {
		t.Errorf("release after forget: %v, %d handles kept, want 1", errno, tree.OpenHandles())
	}
	lookup(t, tree, fs.RootInode, "b")
	// The slot is reused for the next open, of any node.
	var oc fs.OpenOut
	tree.Open(&ctx, b.Ino, syscall.O_RDONLY, 0, &oc)
	if oc.Handle != oa.Handle || tree.OpenHandles() != 2 {
		t.Errorf("next open got handle %d (%d kept), want the freed %d", oc.Handle, tree.OpenHandles(), oa.Handle)
	}
}

// TestDefaults: what a node with no methods answers.
func TestDefaults(t *testing.T) {
	root := newDir()
	tree := nodefs.New(root, nil)
	root.children["bare"] = &bare{}
	e := lookup(t, tree, fs.RootInode, "bare")
	if e.Attr.Mode != syscall.S_IFREG|0o444 || e.Attr.Nlink != 1 {
		t.Errorf("bare node's attributes: mode %o nlink %d", e.Attr.Mode, e.Attr.Nlink)
	}
	ino := e.Ino
	var ent fs.Entry
	var o fs.OpenOut
	var ao fs.AttrOut
	s := &sink{buf: make([]byte, 8)}
	for _, c := range []struct {
		op   string
		got  fs.Errno
		want fs.Errno
	}{
		{"lookup", tree.Lookup(&ctx, ino, []byte("x"), &ent), syscall.ENOENT},
		{"setattr", tree.SetAttr(&ctx, ino, &fs.SetAttrIn{Valid: fs.SetMode}, &ao), syscall.EPERM},
		{"mkdir", tree.Mkdir(&ctx, ino, []byte("x"), 0o755, &ent), syscall.EPERM},
		{"create", tree.Create(&ctx, ino, []byte("x"), 0o644, 0, &ent, &o), syscall.EPERM},
		{"unlink", tree.Unlink(&ctx, ino, []byte("x")), syscall.EPERM},
		{"rename", tree.Rename(&ctx, ino, []byte("x"), ino, []byte("y"), 0), syscall.EPERM},
		{"open", tree.Open(&ctx, ino, 0, 0, &o), 0},
		{"read", tree.Read(&ctx, ino, 0, 0, 8, s), syscall.EINVAL},
		{"setxattr", tree.SetXattr(&ctx, ino, []byte("user.a"), []byte("v"), 0), syscall.EOPNOTSUPP},
		{"removexattr", tree.RemoveXattr(&ctx, ino, []byte("user.a")), syscall.ENODATA},
		{"fallocate", tree.Fallocate(&ctx, ino, 0, 0, 1, 0), syscall.EOPNOTSUPP},
		{"flush", tree.Flush(&ctx, ino, 0, 0), 0},
		{"release", tree.Release(&ctx, ino, 0, 0), 0},
		{"readdir", tree.ReadDir(&ctx, ino, 0, 0, nil), 0},
	} {
		if c.got != c.want {
			t.Errorf("%s on a bare node: %v, want %v", c.op, c.got, c.want)
		}
	}
	if o.Handle != 0 || tree.OpenHandles() != 0 {
		t.Errorf("an open without a FileHandle kept handle %d (%d kept)", o.Handle, tree.OpenHandles())
	}
	if _, errno := tree.GetXattr(&ctx, ino, []byte("user.a"), nil); errno != syscall.ENODATA {
		t.Errorf("getxattr: %v, want ENODATA", errno)
	}
	if n, errno := tree.ListXattr(&ctx, ino, nil); errno != 0 || n != 0 {
		t.Errorf("listxattr: %d %v, want an empty list", n, errno)
	}
	if _, errno := tree.Readlink(&ctx, ino, make([]byte, 8)); errno != syscall.EINVAL {
		t.Errorf("readlink: %v, want EINVAL", errno)
	}
	var st fs.StatFs
	if errno := tree.StatFs(&ctx, ino, &st); errno != 0 || st.NameLen != 255 {
		t.Errorf("statfs: %v %+v", errno, st)
	}
	// A node the author's method returns without error must exist.
	if errno := tree.Lookup(&ctx, fs.RootInode, []byte("bare"), &ent); errno != 0 {
		t.Fatal(errno)
	}
}

// dirSink accepts up to room entries.
type dirSink struct {
	plus  bool
	room  int
	names []string
	inos  []fs.Inode
}

func (d *dirSink) Plus() bool { return d.plus }
func (d *dirSink) Add(e fs.DirEntry, plus *fs.Entry) bool {
	if len(d.names) == d.room {
		return false
	}
	d.names = append(d.names, string(e.Name))
	if plus != nil {
		d.inos = append(d.inos, plus.Ino)
	}
	return true
}

// TestReaddirPlusCounts: READDIRPLUS counts a lookup for each entry the
// reply took and none for the one that did not fit.
func TestReaddirPlusCounts(t *testing.T) {
	root := newDir()
	tree := nodefs.New(root, nil)
	files := map[string]*testFile{}
	for _, n := range []string{"a", "b", "c"} {
		files[n] = &testFile{}
		root.children[n] = files[n]
	}
	d := &dirSink{plus: true, room: 2}
	if errno := tree.ReadDir(&ctx, fs.RootInode, 0, 0, d); errno != 0 {
		t.Fatal(errno)
	}
	if fmt.Sprint(d.names) != "[a b]" || len(d.inos) != 2 || d.inos[0] != files["a"].ID() {
		t.Fatalf("listed %v with entries %v", d.names, d.inos)
	}
	for n, want := range map[string]uint64{"a": 1, "b": 1, "c": 0} {
		if got, _ := tree.Lookups(files[n]); got != want {
			t.Errorf("%s: %d lookups after READDIRPLUS, want %d", n, got, want)
		}
	}
	// Plain READDIR counts nothing but still reports IDs as d_ino.
	d = &dirSink{room: 10}
	tree.ReadDir(&ctx, fs.RootInode, 0, 0, d)
	if got, _ := tree.Lookups(files["c"]); got != 0 || files["c"].ID() == 0 {
		t.Errorf("c after READDIR: %d lookups, ID %d; want 0 and an ID", got, files["c"].ID())
	}
}

// TestConcurrentLookupForget races lookups and forgets of the same nodes
// (run it with -race): each goroutine forgets exactly what it looked up,
// so at the end every node is forgotten, and a node held throughout by
// an extra lookup is never dropped in between.
func TestConcurrentLookupForget(t *testing.T) {
	root := newDir()
	tree := nodefs.New(root, nil)
	const nodes, goroutines, rounds = 8, 8, 2000
	names := make([][]byte, nodes)
	for i := range names {
		names[i] = []byte(fmt.Sprint("f", i))
		root.children[string(names[i])] = &testFile{data: names[i]}
	}
	held := lookup(t, tree, fs.RootInode, "f0")
	var wg sync.WaitGroup
	errs := make(chan string, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c fs.Context
			var e fs.Entry
			var a fs.AttrOut
			for r := range rounds {
				name := names[(g+r)%nodes]
				if errno := tree.Lookup(&c, fs.RootInode, name, &e); errno != 0 {
					errs <- fmt.Sprintf("lookup %s: %v", name, errno)
					return
				}
				if errno := tree.GetAttr(&c, e.Ino, 0, false, &a); errno != 0 {
					errs <- fmt.Sprintf("getattr of %s, held: %v", name, errno)
					return
				}
				tree.Forget(e.Ino, 1)
				if errno := tree.GetAttr(&c, held.Ino, 0, false, &a); errno != 0 {
					errs <- fmt.Sprintf("getattr of the held node: %v", errno)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n, _ := tree.Lookups(root.children["f0"]); n != 1 {
		t.Errorf("held node: %d lookups, want 1", n)
	}
	tree.Forget(held.Ino, 1)
	if tree.Len() != 1 {
		t.Errorf("%d nodes left in the table, want only the root", tree.Len())
	}
}

func TestNodeOfAnotherTree(t *testing.T) {
	shared := &testFile{}
	r1, r2 := newDir(), newDir()
	t1, t2 := nodefs.New(r1, nil), nodefs.New(r2, nil)
	r1.children["s"], r2.children["s"] = shared, shared
	lookup(t, t1, fs.RootInode, "s")
	var e fs.Entry
	if errno := t2.Lookup(&ctx, fs.RootInode, []byte("s"), &e); errno != syscall.EIO {
		t.Errorf("a node of another tree: %v, want EIO", errno)
	}
}
