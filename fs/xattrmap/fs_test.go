package xattrmap

import (
	"bytes"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/fastfsd/fastfsd/fs"
)

// memFS keeps one inode's xattrs in memory, as the host would.
type memFS struct {
	fs.Base
	x       map[string]string
	removed []string
}

func (m *memFS) SetXattr(ctx *fs.Context, ino fs.Inode, name, value []byte, flags uint32) fs.Errno {
	m.x[string(name)] = string(value)
	return 0
}

func (m *memFS) GetXattr(ctx *fs.Context, ino fs.Inode, name []byte, dst []byte) (int, fs.Errno) {
	v, ok := m.x[string(name)]
	if !ok {
		return 0, syscall.ENODATA
	}
	if len(dst) == 0 {
		return len(v), 0
	}
	if len(dst) < len(v) {
		return 0, syscall.ERANGE
	}
	return copy(dst, v), 0
}

func (m *memFS) ListXattr(ctx *fs.Context, ino fs.Inode, dst []byte) (int, fs.Errno) {
	var names []string
	for k := range m.x {
		names = append(names, k)
	}
	sort.Strings(names)
	var b []byte
	for _, n := range names {
		b = append(append(b, n...), 0)
	}
	if len(dst) == 0 {
		return len(b), 0
	}
	if len(dst) < len(b) {
		return 0, syscall.ERANGE
	}
	return copy(dst, b), 0
}

func (m *memFS) RemoveXattr(ctx *fs.Context, ino fs.Inode, name []byte) fs.Errno {
	if _, ok := m.x[string(name)]; !ok {
		return syscall.ENODATA
	}
	m.removed = append(m.removed, string(name))
	delete(m.x, string(name))
	return 0
}

func (m *memFS) SetAttr(ctx *fs.Context, ino fs.Inode, in *fs.SetAttrIn, out *fs.AttrOut) fs.Errno {
	return 0
}

type mapperMem struct{ memFS }

func (*mapperMem) MapFd(ctx *fs.Context, ino fs.Inode, fh fs.Handle, writable bool) (int, fs.Errno) {
	return 42, 0
}

func list(t *testing.T, w fs.FileSystem) []string {
	t.Helper()
	ctx := &fs.Context{}
	n, e := w.ListXattr(ctx, 2, nil)
	if e != 0 {
		t.Fatalf("ListXattr size: %v", e)
	}
	buf := make([]byte, n)
	m, e := w.ListXattr(ctx, 2, buf)
	if e != 0 || m != n {
		t.Fatalf("ListXattr = %d, %v; size query said %d", m, e, n)
	}
	if n > 0 {
		if _, e := w.ListXattr(ctx, 2, buf[:n-1]); e != syscall.ERANGE {
			t.Errorf("ListXattr into %d bytes: %v, want ERANGE", n-1, e)
		}
	}
	return strings.Split(strings.TrimSuffix(string(buf[:m]), "\x00"), "\x00")
}

func TestWrapDefault(t *testing.T) {
	inner := &memFS{x: map[string]string{
		"security.selinux":       "host_label", // the host's own: hidden, untouchable
		"trusted.overlay.origin": "host",
		"user.plain":             "p",
	}}
	w := Wrap(inner, MustParse(Default))
	ctx := &fs.Context{}
	if e := w.SetXattr(ctx, 2, []byte("security.capability"), []byte("caps"), 0); e != 0 {
		t.Fatalf("set security.capability: %v", e)
	}
	if e := w.SetXattr(ctx, 2, []byte("security.selinux"), []byte("guest_label"), 0); e != 0 {
		t.Fatalf("set security.selinux: %v", e)
	}
	// Stored under the mapped names; the host's own label is untouched.
	if inner.x["user.virtiofs.security.capability"] != "caps" || inner.x["security.capability"] != "" {
		t.Errorf("host xattrs after set: %v", inner.x)
	}
	if inner.x["security.selinux"] != "host_label" || inner.x["user.virtiofs.security.selinux"] != "guest_label" {
		t.Errorf("host xattrs after set: %v", inner.x)
	}
	// Reads come back under the client's names.
	buf := make([]byte, 64)
	n, e := w.GetXattr(ctx, 2, []byte("security.selinux"), buf)
	if e != 0 || string(buf[:n]) != "guest_label" {
		t.Errorf("get security.selinux = %q, %v", buf[:n], e)
	}
	got := list(t, w)
	want := []string{"user.plain", "security.capability", "security.selinux"}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("list = %v, want %v", got, want)
	}
	// Forging the mapped namespace: refused on set and remove, absent on get.
	if e := w.SetXattr(ctx, 2, []byte("user.virtiofs.security.capability"), []byte("x"), 0); e != syscall.EPERM {
		t.Errorf("forged set: %v, want EPERM", e)
	}
	if e := w.RemoveXattr(ctx, 2, []byte("user.virtiofs.security.capability")); e != syscall.EPERM {
		t.Errorf("forged remove: %v, want EPERM", e)
	}
	if _, e := w.GetXattr(ctx, 2, []byte("user.virtiofs.security.capability"), buf); e != syscall.ENODATA {
		t.Errorf("forged get: %v, want ENODATA", e)
	}
	// A SETATTR that kills privileges (or a chown) drops the stored
	// capability too; a plain one does not.
	var ao fs.AttrOut
	if e := w.SetAttr(ctx, 2, &fs.SetAttrIn{Valid: fs.SetMode, Mode: 0o644}, &ao); e != 0 || inner.x["user.virtiofs.security.capability"] == "" {
		t.Errorf("chmod dropped the capability: %v %v", e, inner.x)
	}
	if e := w.SetAttr(ctx, 2, &fs.SetAttrIn{Valid: fs.SetSize | fs.SetKillSuidGid}, &ao); e != 0 {
		t.Fatal(e)
	}
	if _, ok := inner.x["user.virtiofs.security.capability"]; ok {
		t.Errorf("truncate with SetKillSuidGid kept the stored capability: %v", inner.x)
	}
	if e := w.RemoveXattr(ctx, 2, []byte("security.selinux")); e != 0 || inner.x["security.selinux"] != "host_label" {
		t.Errorf("remove security.selinux: %v, host %v", e, inner.x)
	}
}

func TestWrapKeepsMapper(t *testing.T) {
	m := MustParse(Default)
	if _, ok := Wrap(&memFS{}, m).(fs.Mapper); ok {
		t.Error("wrapper of a non-Mapper claims fs.Mapper")
	}
	w, ok := Wrap(&mapperMem{}, m).(fs.Mapper)
	if !ok {
		t.Fatal("wrapper hides fs.Mapper")
	}
	if fd, e := w.MapFd(&fs.Context{}, 2, 1, false); fd != 42 || e != 0 {
		t.Errorf("MapFd = %d, %v", fd, e)
	}
}

func TestWrapAllocs(t *testing.T) {
	inner := &memFS{x: map[string]string{"user.virtiofs.security.capability": "c"}}
	w := Wrap(inner, MustParse(Default))
	ctx := &fs.Context{}
	name := []byte("security.capability")
	buf := make([]byte, 8)
	if a := testing.AllocsPerRun(100, func() {
		if n, e := w.GetXattr(ctx, 2, name, buf); e != 0 || !bytes.Equal(buf[:n], []byte("c")) {
			t.Fatal(n, e)
		}
	}); a != 0 {
		t.Errorf("GetXattr: %v allocs/op", a)
	}
}

// labelFS records the label name each creating call sees.
type labelFS struct {
	fs.Base
	seen []string
}

func (l *labelFS) rec(ctx *fs.Context, out *fs.Entry) fs.Errno {
	l.seen = append(l.seen, string(ctx.SecLabelName)+"="+string(ctx.SecLabel))
	out.Ino = 9
	return 0
}
func (l *labelFS) Create(ctx *fs.Context, _ fs.Inode, _ []byte, _, _ uint32, out *fs.Entry, _ *fs.OpenOut) fs.Errno {
	return l.rec(ctx, out)
}
func (l *labelFS) Tmpfile(ctx *fs.Context, _ fs.Inode, _, _ uint32, out *fs.Entry, _ *fs.OpenOut) fs.Errno {
	return l.rec(ctx, out)
}
func (l *labelFS) Mkdir(ctx *fs.Context, _ fs.Inode, _ []byte, _ uint32, out *fs.Entry) fs.Errno {
	return l.rec(ctx, out)
}
func (l *labelFS) Mknod(ctx *fs.Context, _ fs.Inode, _ []byte, _, _ uint32, out *fs.Entry) fs.Errno {
	return l.rec(ctx, out)
}
func (l *labelFS) Symlink(ctx *fs.Context, _ fs.Inode, _, _ []byte, out *fs.Entry) fs.Errno {
	return l.rec(ctx, out)
}

// TestWrapLabels: the security label of a creating request goes through
// the map as a client's SetXattr name does (default: stored as
// user.virtiofs.security.selinux); a name the map refuses fails the
// request before the inner filesystem creates anything; the client's name
// is back in ctx afterwards.
func TestWrapLabels(t *testing.T) {
	creates := map[string]func(w fs.FileSystem, ctx *fs.Context) fs.Errno{
		"create": func(w fs.FileSystem, ctx *fs.Context) fs.Errno {
			return w.Create(ctx, 1, []byte("f"), 0o644, 0, &fs.Entry{}, &fs.OpenOut{})
		},
		"tmpfile": func(w fs.FileSystem, ctx *fs.Context) fs.Errno {
			return w.Tmpfile(ctx, 1, 0o644, 2, &fs.Entry{}, &fs.OpenOut{})
		},
		"mkdir": func(w fs.FileSystem, ctx *fs.Context) fs.Errno {
			return w.Mkdir(ctx, 1, []byte("d"), 0o755, &fs.Entry{})
		},
		"mknod": func(w fs.FileSystem, ctx *fs.Context) fs.Errno {
			return w.Mknod(ctx, 1, []byte("p"), 0o10644, 0, &fs.Entry{})
		},
		"symlink": func(w fs.FileSystem, ctx *fs.Context) fs.Errno {
			return w.Symlink(ctx, 1, []byte("l"), []byte("t"), &fs.Entry{})
		},
	}
	for _, c := range []struct {
		rules, seen string
		want        syscall.Errno
	}{
		{Default, "user.virtiofs.security.selinux=lbl", 0},
		{":ok:all:::", "security.selinux=lbl", 0},
		{":map:security.selinux:trusted.virtiofs.:", "trusted.virtiofs.security.selinux=lbl", 0},
		{":bad:all:security.:: :ok:all:::", "", syscall.EPERM},
		{":unsupported:all:security.:: :ok:all:::", "", syscall.EOPNOTSUPP},
	} {
		for op, create := range creates {
			inner := &labelFS{}
			w := Wrap(inner, MustParse(c.rules))
			ctx := &fs.Context{SecLabelName: []byte("security.selinux"), SecLabel: []byte("lbl")}
			if e := create(w, ctx); e != c.want {
				t.Errorf("%s under %q: %v, want %v", op, c.rules, e, c.want)
			}
			if got := strings.Join(inner.seen, ","); got != c.seen {
				t.Errorf("%s under %q: inner saw label %q, want %q", op, c.rules, got, c.seen)
			}
			if string(ctx.SecLabelName) != "security.selinux" {
				t.Errorf("%s under %q: ctx label name %q afterwards", op, c.rules, ctx.SecLabelName)
			}
			inner.seen = nil
			if e := create(w, &fs.Context{}); e != 0 || len(inner.seen) != 1 || inner.seen[0] != "=" {
				t.Errorf("%s without a label under %q: %v, inner saw %q", op, c.rules, e, inner.seen)
			}
		}
	}
}
