package posixtest

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func init() {
	register("rename", func(t *testing.T, env Env) { twin(t, env, renamePlain) })
	register("rename_flags", func(t *testing.T, env Env) {
		env.need(t, CapRenameFlag)
		twin(t, env, renameFlags)
	})
	register("link_hard", func(t *testing.T, env Env) {
		env.need(t, CapHardlink)
		twin(t, env, linkHard)
	})
	register("link_symlink", func(t *testing.T, env Env) { twin(t, env, linkSymlink) })
}

// renameTree makes a/ (f1 "one", d1/ with x), b/ (f2 "two", d2/ empty,
// full/ with y).
func renameTree(s *Side) {
	for _, d := range []string{"a", "a/d1", "b", "b/d2", "b/full"} {
		s.Must("mkdir "+d, unix.Mkdir(s.P(d), 0o755))
	}
	for _, fc := range [][2]string{{"a/f1", "one"}, {"a/d1/x", "x"}, {"b/f2", "two"}, {"b/full/y", "y"}} {
		s.Must("write "+fc[0], os.WriteFile(s.P(fc[0]), []byte(fc[1]), 0o644))
	}
}

// after records the state of the given names.
func after(s *Side, step string, names ...string) {
	for _, n := range names {
		s.Lstat(step+": "+n, n)
	}
}

func renamePlain(s *Side) {
	renameTree(s)
	r := func(step, from, to string) { s.Err(step, unix.Rename(s.P(from), s.P(to))) }
	r("file same dir", "a/f1", "a/g1")
	after(s, "file same dir", "a/f1", "a/g1")
	s.Content("moved content", "a/g1")
	r("file across dirs", "a/g1", "b/g1")
	after(s, "file across dirs", "a/g1", "b/g1")
	r("file over file", "b/g1", "b/f2")
	after(s, "file over file", "b/g1", "b/f2")
	s.Content("replaced content", "b/f2")
	r("dir across dirs", "a/d1", "b/d1")
	after(s, "dir across dirs", "a", "b", "a/d1", "b/d1", "b/d1/x")
	r("dir over empty dir", "b/d1", "b/d2")
	after(s, "dir over empty dir", "b/d1", "b/d2", "b/d2/x")
	r("dir over nonempty dir", "b/d2", "b/full")
	r("dir over file", "b/d2", "b/f2")
	r("file over dir", "b/f2", "b/d2")
	r("missing source", "a/nope", "a/x")
	r("into missing dir", "b/f2", "nope/f2")
	r("dir into itself", "b/d2", "b/d2/sub")
	r("same name", "b/f2", "b/f2")
	after(s, "same name", "b/f2")
	// Hard links to one inode: rename is a no-op and both names stay.
	if s.Err("link", unix.Link(s.P("b/f2"), s.P("b/f2link"))) {
		r("onto own hard link", "b/f2", "b/f2link")
		after(s, "onto own hard link", "b/f2", "b/f2link")
	}
	// A renamed open file stays readable and writable through its fd.
	fd, err := unix.Open(s.P("b/f2"), unix.O_RDWR, 0)
	s.Must("open", err)
	r("rename open file", "b/f2", "a/moved")
	unix.Pwrite(fd, []byte("TW"), 0)
	unix.Close(fd)
	s.Content("write through fd after rename", "a/moved")
	// Renaming a symlink moves the link, not its target.
	unix.Symlink("moved", s.P("a/sl"))
	r("symlink", "a/sl", "a/sl2")
	after(s, "symlink", "a/sl", "a/sl2", "a/moved")
}

func renameFlags(s *Side) {
	renameTree(s)
	r2 := func(step, from, to string, flags uint) {
		s.Err(step, unix.Renameat2(unix.AT_FDCWD, s.P(from), unix.AT_FDCWD, s.P(to), flags))
	}
	os.WriteFile(s.P("a/f3"), []byte("three"), 0o600)
	r2("noreplace onto file", "a/f1", "b/f2", unix.RENAME_NOREPLACE)
	after(s, "noreplace onto file", "a/f1", "b/f2")
	r2("noreplace onto dir", "a/d1", "b/d2", unix.RENAME_NOREPLACE)
	r2("noreplace to new", "a/f1", "b/new", unix.RENAME_NOREPLACE)
	after(s, "noreplace to new", "a/f1", "b/new")
	r2("noreplace missing", "a/none", "b/none", unix.RENAME_NOREPLACE)

	r2("exchange files", "a/f3", "b/f2", unix.RENAME_EXCHANGE)
	after(s, "exchange files", "a/f3", "b/f2")
	s.Content("exchanged a/f3", "a/f3")
	s.Content("exchanged b/f2", "b/f2")
	r2("exchange file and dir across dirs", "a/f3", "b/full", unix.RENAME_EXCHANGE)
	after(s, "exchange file and dir", "a", "b", "a/f3", "b/full", "a/f3/y")
	s.Content("exchanged dir content", "a/f3/y")
	r2("exchange dirs", "a/d1", "b/d2", unix.RENAME_EXCHANGE)
	after(s, "exchange dirs", "a/d1", "b/d2", "b/d2/x")
	r2("exchange with missing", "a/d1", "b/none", unix.RENAME_EXCHANGE)
	r2("exchange missing source", "a/none", "b/d2", unix.RENAME_EXCHANGE)
	r2("exchange and noreplace", "a/d1", "b/d2", unix.RENAME_EXCHANGE|unix.RENAME_NOREPLACE)
	r2("exchange with itself", "a/d1", "a/d1", unix.RENAME_EXCHANGE)
	r2("exchange dir with its child", "b/d2", "b/d2/x", unix.RENAME_EXCHANGE)
	r2("unknown flag", "a/d1", "b/d9", 1<<20)
}

func linkHard(s *Side) {
	os.WriteFile(s.P("f"), []byte("data"), 0o640)
	s.Must("link", unix.Link(s.P("f"), s.P("l1")))
	unix.Mkdir(s.P("d"), 0o755)
	s.Must("link across dirs", unix.Link(s.P("f"), s.P("d", "l2")))
	st := s.Lstat("stat f", "f")
	s.Checkf(st != nil && st.Nlink == 3, "nlink after two links: %v, want 3", st)
	s.Lstat("stat l1", "l1")
	s.Lstat("stat d/l2", "d/l2")
	var a, b unix.Stat_t
	unix.Lstat(s.P("f"), &a)
	unix.Lstat(s.P("d", "l2"), &b)
	s.Rec("same inode", "%v", a.Ino == b.Ino)
	s.Checkf(a.Ino == b.Ino, "hard links report different inode numbers %d and %d", a.Ino, b.Ino)
	os.WriteFile(s.P("l1"), []byte("changed"), 0)
	s.Content("write via link seen", "d/l2")
	s.Err("link existing", unix.Link(s.P("f"), s.P("l1")))
	s.Err("link missing", unix.Link(s.P("nope"), s.P("l3")))
	s.Err("link dir", unix.Link(s.P("d"), s.P("dl")))
	s.Err("link into missing", unix.Link(s.P("f"), s.P("nope", "l")))
	s.Must("unlink f", unix.Unlink(s.P("f")))
	s.Lstat("stat l1 after unlink", "l1")
	s.Must("unlink l1", unix.Unlink(s.P("l1")))
	s.Lstat("stat d/l2 after unlinks", "d/l2")
	s.Content("content survives", "d/l2")
	// A link to a symlink links the symlink itself (linkat without
	// AT_SYMLINK_FOLLOW), with AT_SYMLINK_FOLLOW the target.
	unix.Symlink("d/l2", s.P("sl"))
	s.Err("linkat symlink", unix.Linkat(unix.AT_FDCWD, s.P("sl"), unix.AT_FDCWD, s.P("sl-hard"), 0))
	s.Lstat("stat sl-hard", "sl-hard")
	s.Err("linkat follow", unix.Linkat(unix.AT_FDCWD, s.P("sl"), unix.AT_FDCWD, s.P("sl-follow"), unix.AT_SYMLINK_FOLLOW))
	s.Lstat("stat sl-follow", "sl-follow")
	s.Lstat("stat d/l2 final", "d/l2")
}

func linkSymlink(s *Side) {
	os.WriteFile(s.P("target"), []byte("pointed-at"), 0o644)
	unix.Mkdir(s.P("d"), 0o755)
	targets := map[string]string{
		"rel":      "target",
		"up":       "../" + "x",
		"dangling": "no/such/file",
		"abs":      "/nonexistent-fastfs-target",
		"inner":    "d/../target",
		"long":     longTarget(1000),
		"space":    "a b\tc",
	}
	names := []string{"abs", "dangling", "inner", "long", "rel", "space", "up"}
	for _, name := range names {
		s.Must("symlink "+name, unix.Symlink(targets[name], s.P(name)))
	}
	for _, name := range names {
		st := s.Lstat("lstat "+name, name)
		buf := make([]byte, 4096)
		n, err := unix.Readlink(s.P(name), buf)
		s.Err("readlink "+name, err)
		if err == nil {
			s.Rec("readlink "+name, "%q", buf[:n])
			s.Checkf(string(buf[:n]) == targets[name], "readlink %s: %q, want %q", name, buf[:n], targets[name])
			s.Checkf(st != nil && st.Size == int64(len(targets[name])), "lstat %s: size %v, want %d", name, st, len(targets[name]))
		}
		// readlink into a short buffer truncates silently.
		n, err = unix.Readlink(s.P(name), buf[:3])
		s.Err("readlink short "+name, err)
		s.Rec("readlink short "+name, "%q", buf[:n])
	}
	s.Content("follow rel", "rel")
	s.Content("follow inner", "inner")
	s.Content("follow dangling", "dangling")
	s.Err("symlink existing", unix.Symlink("x", s.P("rel")))
	s.Err("symlink empty target", unix.Symlink("", s.P("empty")))
	s.Err("symlink in missing dir", unix.Symlink("x", s.P("nope", "l")))
	buf := make([]byte, 64)
	_, err := unix.Readlink(s.P("target"), buf)
	s.Err("readlink on file", err)
	_, err = unix.Readlink(s.P("missing"), buf)
	s.Err("readlink missing", err)
	// Loops.
	unix.Symlink("loop2", s.P("loop1"))
	unix.Symlink("loop1", s.P("loop2"))
	_, err = os.ReadFile(s.P("loop1"))
	s.Err("follow loop", err)
	// A symlink to a directory is a directory when followed.
	unix.Symlink("d", s.P("dl"))
	os.WriteFile(s.P("dl", "in"), []byte("via link"), 0o644)
	s.Content("created through dir symlink", "d/in")
	s.Err("lchown symlink", unix.Lchown(s.P("rel"), 123, 456))
	s.Lstat("lstat rel after lchown", "rel")
	s.Lstat("target unchanged by lchown", "target")
	s.Err("unlink symlink", unix.Unlink(s.P("rel")))
	s.Lstat("target survives", "target")
}

func longTarget(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = "abcdefgh/"[i%9]
	}
	return string(b)
}
