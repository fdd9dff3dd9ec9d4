package p9

import (
	"bytes"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hugelgupf/p9/linux"
	hp9 "github.com/hugelgupf/p9/p9"

	"github.com/fastfsd/fastfsd/fs"
)

// The peer client of these tests is github.com/hugelgupf/p9 (gVisor's 9P
// client, maintained as a standalone module): a 9P2000.L client not written
// here. It has no Tflush, Tgetlock nor xattr messages; those are tested
// over a raw connection (raw_test.go).

// startServer serves fsys on a unix socket in a temp dir and returns its
// path; the server is closed at cleanup (opts.Logf nil: t.Logf).
func startServer(t testing.TB, fsys fs.FileSystem, opts *Options) (string, *Server) {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	s := NewServer(fsys, opts)
	sock := filepath.Join(t.TempDir(), "9p.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return sock, s
}

func dialClient(t testing.TB, sock string, msize uint32) (*hp9.Client, net.Conn) {
	t.Helper()
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c, err := hp9.NewClient(nc, hp9.WithMessageSize(msize))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, nc
}

// wantErrno fails unless err is the Linux errno want.
func wantErrno(t testing.TB, what string, err error, want syscall.Errno) {
	t.Helper()
	var e linux.Errno
	if !errors.As(err, &e) || uintptr(e) != uintptr(want) {
		t.Errorf("%s: got error %v, want %v (%d)", what, err, want, int(want))
	}
}

func must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// waitOutstanding waits until every lookup was forgotten and every handle
// released (the server tears a connection down asynchronously).
func waitOutstanding(t testing.TB, m *memFS) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, h := m.outstanding()
		if l == 0 && h == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after teardown: %d lookups not forgotten, %d handles not released", l, h)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestClientFileOps(t *testing.T) {
	m := newMemFS(t.TempDir()) // backing files: Read/Write take the zero-copy path
	sock, _ := startServer(t, m, nil)
	c, nc := dialClient(t, sock, 64<<10)
	root, err := c.Attach("")
	must(t, "attach", err)

	qid, valid, attr, err := root.GetAttr(hp9.AttrMaskAll)
	must(t, "getattr root", err)
	if qid.Type != hp9.TypeDir || attr.Mode&hp9.FileModeMask != hp9.ModeDirectory || !valid.Mode || !valid.Size {
		t.Errorf("root getattr: qid %+v valid %v attr %+v", qid, valid, attr)
	}
	if !valid.BTime || attr.BTimeSeconds != 1600000000 || attr.BTimeNanoSeconds != 7 {
		t.Errorf("btime via Statx: valid %v attr %+v", valid.BTime, attr)
	}

	// Create, write, read back (in several chunks of the client's msize).
	_, dir, err := root.Walk(nil)
	must(t, "clone", err)
	_, f, err := root.Walk(nil)
	must(t, "clone", err)
	f, fq, _, err := f.Create("file", hp9.ReadWrite, 0640, 1000, 1000)
	must(t, "create", err)
	if fq.Type != hp9.TypeRegular {
		t.Errorf("create qid type %v", fq.Type)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320000 bytes: several Twrites
	n, err := f.WriteAt(data, 0)
	if err != nil || n != len(data) {
		t.Fatalf("write: %d %v", n, err)
	}
	got := make([]byte, len(data)+100)
	n, err = f.ReadAt(got, 0)
	if n != len(data) || (err != nil && err != io.EOF) {
		t.Fatalf("read: %d %v", n, err)
	}
	if !bytes.Equal(got[:n], data) {
		t.Fatal("read back differs from what was written")
	}
	n, err = f.ReadAt(got[:10], int64(len(data))+5)
	if n != 0 {
		t.Errorf("read past EOF: %d %v", n, err)
	}
	must(t, "fsync", f.FSync())
	// A dir opened by create cannot be walked or reopened.
	_, _, err = f.Walk(nil)
	wantErrno(t, "walk from opened fid", err, syscall.EBADF)
	_, _, err = f.Open(hp9.ReadOnly)
	wantErrno(t, "reopen", err, syscall.EBADF)
	must(t, "close file", f.Close())

	// Walk to it and check the attributes.
	_, ff, err := root.Walk([]string{"file"})
	must(t, "walk file", err)
	_, _, fa, err := ff.GetAttr(hp9.AttrMaskAll)
	must(t, "getattr file", err)
	if fa.Size != uint64(len(data)) || fa.Mode.Permissions() != 0640 || fa.UID != nobody || fa.GID != nobody {
		t.Errorf("file attr %+v", fa)
	}
	must(t, "setattr", ff.SetAttr(hp9.SetAttrMask{Permissions: true, Size: true, MTime: true, MTimeNotSystemTime: true},
		hp9.SetAttr{Permissions: 0600, Size: 10, MTimeSeconds: 1234, MTimeNanoSeconds: 5}))
	_, _, fa, err = ff.GetAttr(hp9.AttrMaskAll)
	must(t, "getattr after setattr", err)
	if fa.Size != 10 || fa.Mode.Permissions() != 0600 || fa.MTimeSeconds != 1234 || fa.MTimeNanoSeconds != 5 {
		t.Errorf("after setattr: %+v", fa)
	}
	_, _, err = ff.Open(hp9.ReadOnly)
	must(t, "lopen", err)
	n, _ = ff.ReadAt(got[:100], 0)
	if n != 10 || !bytes.Equal(got[:10], data[:10]) {
		t.Errorf("read after truncate: %d", n)
	}
	must(t, "close", ff.Close())

	// Directories, links, special files.
	_, err = dir.Mkdir("sub", 0755, 0, 0)
	must(t, "mkdir", err)
	_, err = dir.Mkdir("sub", 0755, 0, 0)
	wantErrno(t, "mkdir existing", err, syscall.EEXIST)
	sq, err := dir.Symlink("file", "link", 0, 0)
	must(t, "symlink", err)
	if sq.Type != hp9.TypeSymlink {
		t.Errorf("symlink qid type %v", sq.Type)
	}
	_, lf, err := dir.Walk([]string{"link"})
	must(t, "walk link", err)
	target, err := lf.Readlink()
	if err != nil || target != "file" {
		t.Errorf("readlink: %q %v", target, err)
	}
	lf.Close()
	_, tf, err := dir.Walk([]string{"file"})
	must(t, "walk file", err)
	must(t, "link", dir.Link(tf, "hard"))
	_, err = dir.Mknod("fifo", hp9.ModeNamedPipe|0644, 0, 0, 0, 0)
	must(t, "mknod", err)
	_, err = dir.Mknod("dev", hp9.ModeCharacterDevice|0600, 1, 3, 0, 0)
	must(t, "mknod chr", err)
	_, df, err := dir.Walk([]string{"dev"})
	must(t, "walk dev", err)
	_, _, da, err := df.GetAttr(hp9.AttrMaskAll)
	must(t, "getattr dev", err)
	if da.Mode.FileType() != hp9.ModeCharacterDevice || da.RDev != 1<<8|3 {
		t.Errorf("dev attr: mode %o rdev %#x", da.Mode, da.RDev)
	}
	df.Close()

	// Rename: renameat, then rename of a fid (the fid follows).
	must(t, "renameat", dir.RenameAt("hard", dir, "hard2"))
	_, subf, err := dir.Walk([]string{"sub"})
	must(t, "walk sub", err)
	must(t, "rename", tf.Rename(subf, "moved"))
	_, _, err = dir.Walk([]string{"file"})
	wantErrno(t, "walk renamed", err, syscall.ENOENT)
	_, _, err = dir.Walk([]string{"sub", "moved"})
	must(t, "walk moved", err)
	tf.Close()

	// Readdir.
	_, od, err := dir.Walk(nil)
	must(t, "clone", err)
	_, _, err = od.Open(hp9.ReadOnly)
	must(t, "opendir", err)
	var names []string
	var off uint64
	for {
		ents, err := od.Readdir(off, 200) // small count: several Treaddirs
		must(t, "readdir", err)
		if len(ents) == 0 {
			break
		}
		for _, e := range ents {
			names = append(names, e.Name)
			off = e.Offset
			if e.Name == "sub" && e.QID.Type != hp9.TypeDir || e.Name == "link" && e.QID.Type != hp9.TypeSymlink {
				t.Errorf("dirent %q qid type %v", e.Name, e.QID.Type)
			}
		}
	}
	sort.Strings(names)
	if strings.Join(names, ",") != ".,..,dev,fifo,hard2,link,sub" {
		t.Errorf("readdir names %v", names)
	}
	_, _, err = od.Walk([]string{"sub"})
	wantErrno(t, "walk opened dir", err, syscall.EBADF)
	od.Close()

	// Unlink, rmdir, remove.
	wantErrno(t, "rmdir non-empty", dir.UnlinkAt("sub", 0x200), syscall.ENOTEMPTY)
	wantErrno(t, "unlink dir", dir.UnlinkAt("sub", 0), syscall.EISDIR)
	must(t, "unlinkat", dir.UnlinkAt("hard2", 0))
	wantErrno(t, "unlinkat missing", dir.UnlinkAt("hard2", 0), syscall.ENOENT)
	wantErrno(t, "unlinkat bad flags", dir.UnlinkAt("fifo", 1), syscall.EINVAL)
	wantErrno(t, "unlinkat dotdot", dir.UnlinkAt("..", 0x200), syscall.EINVAL)
	_, mv, err := dir.Walk([]string{"sub", "moved"})
	must(t, "walk moved", err)
	must(t, "remove", mv.(interface{ Remove() error }).Remove())
	must(t, "rmdir", dir.UnlinkAt("sub", 0x200))

	st, err := root.StatFS()
	must(t, "statfs", err)
	if st.Type != V9fsMagic || st.BlockSize != 4096 || st.Blocks != 1000 || st.NameLength != 255 {
		t.Errorf("statfs %+v", st)
	}

	// Errnos of walk and of ops on bad names.
	_, _, err = root.Walk([]string{"nope"})
	wantErrno(t, "walk missing", err, syscall.ENOENT)
	_, err = dir.Mkdir("a/b", 0755, 0, 0)
	wantErrno(t, "mkdir with slash", err, syscall.EINVAL)
	_, err = dir.Mkdir("..", 0755, 0, 0)
	wantErrno(t, "mkdir dotdot", err, syscall.EEXIST)

	// Tearing the connection down returns every lookup and handle.
	dir.Close()
	c.Close()
	nc.Close()
	waitOutstanding(t, m)
}

func TestWalkDotDot(t *testing.T) {
	m := newMemFS("")
	sock, _ := startServer(t, m, nil)
	c, _ := dialClient(t, sock, 64<<10)
	root, err := c.Attach("")
	must(t, "attach", err)
	_, err = root.Mkdir("a", 0755, 0, 0)
	must(t, "mkdir", err)
	_, a, _ := root.Walk([]string{"a"})
	_, err = a.Mkdir("b", 0755, 0, 0)
	must(t, "mkdir b", err)
	rq, _, _, _ := root.GetAttr(hp9.AttrMaskAll)
	aq, _, _, _ := a.GetAttr(hp9.AttrMaskAll)

	qids, _, err := root.Walk([]string{"..", "..", ".", "a", "b", "..", ".."})
	must(t, "walk with ..", err)
	want := []uint64{rq.Path, rq.Path, rq.Path, aq.Path, 0, aq.Path, rq.Path}
	for i, q := range qids {
		if want[i] != 0 && q.Path != want[i] {
			t.Errorf("qid %d: path %d, want %d", i, q.Path, want[i])
		}
	}

	// aname selects a subtree; ".." never leaves it.
	sub, err := c.Attach("a")
	must(t, "attach a", err)
	qids, _, err = sub.Walk([]string{"..", "..", "b", "..", ".."})
	must(t, "walk in sub attach", err)
	for i, q := range qids {
		w := aq.Path
		if i == 2 {
			continue
		}
		if q.Path != w {
			t.Errorf("sub attach qid %d: path %d, want %d (the attach root)", i, q.Path, w)
		}
	}
	_, err = c.Attach("nope")
	wantErrno(t, "attach missing aname", err, syscall.ENOENT)
	_, err = c.Attach("a/../..")
	wantErrno(t, "attach with ..", err, syscall.EINVAL)
}

func TestMaxConns(t *testing.T) {
	m := newMemFS("")
	sock, _ := startServer(t, m, &Options{MaxConns: 1})
	c, _ := dialClient(t, sock, 64<<10)
	if _, err := c.Attach(""); err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := hp9.NewClient(nc); err == nil {
		t.Fatal("second connection served past MaxConns=1")
	}
	// The first one still works.
	if _, err := c.Attach(""); err != nil {
		t.Fatalf("first connection after refusing another: %v", err)
	}
}
