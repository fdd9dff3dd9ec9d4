package passthrough

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
)

// TestContainment: nothing the client names reaches outside the root.
func TestContainment(t *testing.T) {
	outside := t.TempDir()
	writeFile(t, join(outside, "secret"), "SECRET", 0o644)
	base := t.TempDir()
	root := join(base, "root")
	os.Mkdir(root, 0o755)
	writeFile(t, join(base, "sibling"), "SIBLING", 0o644)
	os.Symlink(join(outside, "secret"), join(root, "abs")) // absolute symlink
	os.Symlink("../sibling", join(root, "rel"))            // relative, escaping
	os.Symlink(outside, join(root, "dirlink"))             // to a directory outside
	os.Symlink("/proc/self/root/etc", join(root, "magic")) // through a magic link
	f, err := New(root, Options{Xattr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	for _, name := range []string{"abs", "rel", "magic"} {
		e := lookup(t, f, fs.RootInode, name)
		if e.Attr.Mode&unix.S_IFMT != unix.S_IFLNK {
			t.Errorf("%s: looked up as mode %o, want the symlink itself", name, e.Attr.Mode)
		}
		var oo fs.OpenOut
		wantErrno(t, name+": Open", f.Open(rootCtx, e.Ino, unix.O_RDONLY, 0, &oo), syscall.ELOOP)
		wantErrno(t, name+": Open O_WRONLY|O_TRUNC", f.Open(rootCtx, e.Ino, unix.O_WRONLY|unix.O_TRUNC, 0, &oo), syscall.ELOOP)
		var ce fs.Entry
		wantErrno(t, name+": Create through it", f.Create(rootCtx, fs.RootInode, []byte(name), 0o644, unix.O_RDWR, &ce, &oo), syscall.ELOOP)
		in := fs.SetAttrIn{Valid: fs.SetSize}
		var ao fs.AttrOut
		wantErrno(t, name+": truncate", f.SetAttr(rootCtx, e.Ino, &in, &ao), syscall.ELOOP)
		var x fs.Entry
		wantErrno(t, name+": lookup beneath", f.Lookup(rootCtx, e.Ino, []byte("passwd"), &x), syscall.ENOTDIR)
		buf := make([]byte, 256)
		n, errno := f.Readlink(rootCtx, e.Ino, buf)
		target, _ := os.Readlink(join(root, name))
		if errno != 0 || string(buf[:n]) != target {
			t.Errorf("%s: Readlink = %q, %v; want %q", name, buf[:n], errno, target)
		}
	}
	d := lookup(t, f, fs.RootInode, "dirlink")
	var x fs.Entry
	wantErrno(t, "lookup through dir symlink", f.Lookup(rootCtx, d.Ino, []byte("secret"), &x), syscall.ENOTDIR)
	wantErrno(t, "OpenDir of dir symlink", f.OpenDir(rootCtx, d.Ino, 0, &fs.OpenOut{}), syscall.ENOTDIR)
	wantErrno(t, "mkdir through dir symlink", f.Mkdir(rootCtx, d.Ino, []byte("x"), 0o755, &x), syscall.ENOTDIR)
	for _, name := range []string{"../sibling", "../../etc/passwd", "/etc/passwd", "..\x00x"} {
		wantErrno(t, "lookup "+name, f.Lookup(rootCtx, fs.RootInode, []byte(name), &x), syscall.EINVAL)
	}
	var oo fs.OpenOut
	wantErrno(t, "create ../x", f.Create(rootCtx, fs.RootInode, []byte("../x"), 0o644, unix.O_RDWR, &x, &oo), syscall.EINVAL)
	wantErrno(t, "rename to ../x", f.Rename(rootCtx, fs.RootInode, []byte("abs"), fs.RootInode, []byte("../x"), 0), syscall.EINVAL)
	wantErrno(t, "rename ..", f.Rename(rootCtx, fs.RootInode, []byte(".."), fs.RootInode, []byte("x"), 0), syscall.EBUSY)
	if r := lookup(t, f, fs.RootInode, ".."); r.Ino != fs.RootInode {
		t.Errorf(`".." of root = %d`, r.Ino)
	}

	// A directory the host moves out of the export: ".." no longer
	// reaches the root, and is refused.
	os.Mkdir(join(root, "mover"), 0o755)
	m := lookup(t, f, fs.RootInode, "mover")
	if err := os.Rename(join(root, "mover"), join(base, "moved")); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, `".." of a dir moved out`, f.Lookup(rootCtx, m.Ino, []byte(".."), &x), syscall.EACCES)

	if got, _ := os.ReadFile(join(outside, "secret")); string(got) != "SECRET" {
		t.Errorf("outside file changed: %q", got)
	}
	if got, _ := os.ReadFile(join(base, "sibling")); string(got) != "SIBLING" {
		t.Errorf("sibling file changed: %q", got)
	}
}

// TestSymlinkSwapRace races a host process that keeps swapping a name
// between a regular file and symlinks to outside files against lookups,
// opens, creates, reads and writes of that name: no byte outside the
// root may ever be read or written.
func TestSymlinkSwapRace(t *testing.T) {
	outside := t.TempDir()
	secret := []byte("SECRET-OUTSIDE")
	writeFile(t, join(outside, "secret"), string(secret), 0o666)
	root := t.TempDir()
	f, err := New(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	writeFile(t, join(root, "regular"), "inside", 0o666)
	os.Symlink(join(outside, "secret"), join(root, "evil-abs"))
	os.Symlink("../"+filepath.Base(outside)+"/secret", join(root, "evil-rel"))
	os.Mkdir(join(root, "d"), 0o777)
	os.Symlink(outside, join(root, "evil-dir"))

	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the host side: swap "target" among the three, atomically
		defer wg.Done()
		srcs := []string{"regular", "evil-abs", "evil-rel", "d", "evil-dir"}
		for i := 0; !stop.Load(); i++ {
			src := srcs[i%len(srcs)]
			tmp := join(root, "tmp-link")
			os.Remove(tmp)
			if fi, err := os.Lstat(join(root, src)); err == nil && fi.Mode()&os.ModeSymlink != 0 {
				dst, _ := os.Readlink(join(root, src))
				os.Symlink(dst, tmp)
			} else if src == "d" {
				os.Mkdir(tmp, 0o777)
			} else {
				os.Link(join(root, src), tmp)
			}
			os.Remove(join(root, "target"))
			unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, join(root, "target"), unix.RENAME_EXCHANGE)
			os.Rename(tmp, join(root, "target"))
			os.RemoveAll(tmp)
		}
	}()
	d := 2 * time.Second
	if testing.Short() {
		d = 500 * time.Millisecond
	}
	deadline := time.Now().Add(d)
	var leaks atomic.Int64
	var ops, opened, created atomic.Int64
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				ops.Add(1)
				var e fs.Entry
				// Ino 0 with no error is a cached absence (cache=auto).
				if f.Lookup(rootCtx, fs.RootInode, []byte("target"), &e) == 0 && e.Ino != 0 {
					var oo fs.OpenOut
					if f.Open(rootCtx, e.Ino, unix.O_RDWR, 0, &oo) == 0 {
						opened.Add(1)
						s := newSink(64)
						f.Read(rootCtx, e.Ino, oo.Handle, 0, 64, s)
						if bytes.Contains(s.Bytes(), []byte("SECRET")) {
							leaks.Add(1)
						}
						f.Write(rootCtx, e.Ino, oo.Handle, 0, &bufSource{[]byte("PWNED")}, 0)
						f.Release(rootCtx, e.Ino, oo.Handle, 0)
					}
					var x fs.Entry
					if f.Lookup(rootCtx, e.Ino, []byte("secret"), &x) == 0 && x.Ino != 0 {
						leaks.Add(1)
						f.Forget(x.Ino, 1)
					}
					var ce fs.Entry
					if f.Create(rootCtx, e.Ino, []byte("made"), 0o644, unix.O_RDWR, &ce, &oo) == 0 {
						f.Release(rootCtx, ce.Ino, oo.Handle, 0)
						f.Forget(ce.Ino, 1)
					}
					f.Forget(e.Ino, 1)
				}
				var ce fs.Entry
				var oo fs.OpenOut
				if f.Create(rootCtx, fs.RootInode, []byte("target"), 0o644, unix.O_RDWR, &ce, &oo) == 0 {
					created.Add(1)
					s := newSink(64)
					f.Read(rootCtx, ce.Ino, oo.Handle, 0, 64, s)
					if bytes.Contains(s.Bytes(), []byte("SECRET")) {
						leaks.Add(1)
					}
					f.Write(rootCtx, ce.Ino, oo.Handle, 0, &bufSource{[]byte("PWNED")}, 0)
					f.Release(rootCtx, ce.Ino, oo.Handle, 0)
					f.Forget(ce.Ino, 1)
				}
			}
		}()
	}
	time.Sleep(time.Until(deadline))
	stop.Store(true)
	wg.Wait()
	if leaks.Load() != 0 {
		t.Errorf("%d reads reached outside the root", leaks.Load())
	}
	if got, _ := os.ReadFile(join(outside, "secret")); !bytes.Equal(got, secret) {
		t.Errorf("outside file written: %q", got)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("files created outside the root: %v", ents)
	}
	t.Logf("%d rounds against the swapper: %d opens, %d creates succeeded", ops.Load(), opened.Load(), created.Load())
	if opened.Load() == 0 || created.Load() == 0 {
		t.Errorf("the race never opened or created the name: the test proves nothing")
	}
}

// FuzzLookupName: whatever name a client sends, Lookup never panics, and
// what it finds is the root or an entry directly in it.
func FuzzLookupName(f *testing.F) {
	for _, s := range []string{"a", ".", "..", "../x", "/etc", "a/b", "", "\x00", "abs", "d", "..\x00"} {
		f.Add([]byte(s))
	}
	root := f.TempDir()
	writeFile(f, join(root, "a"), "a", 0o644)
	os.Mkdir(join(root, "d"), 0o755)
	os.Symlink("/etc", join(root, "abs"))
	fsys, err := New(root, Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { fsys.Close() })
	allowed := map[uint64]bool{lstat(f, root).Ino: true}
	for _, n := range []string{"a", "d", "abs"} {
		allowed[lstat(f, join(root, n)).Ino] = true
	}
	f.Fuzz(func(t *testing.T, name []byte) {
		var e fs.Entry
		if errno := fsys.Lookup(rootCtx, fs.RootInode, name, &e); errno != 0 {
			if e.Ino != 0 {
				t.Fatalf("error %v with an entry", errno)
			}
			return
		}
		if !allowed[e.Attr.Ino] {
			t.Fatalf("Lookup(%q) found host inode %d outside the root's entries", name, e.Attr.Ino)
		}
		fsys.Forget(e.Ino, 1)
	})
}
