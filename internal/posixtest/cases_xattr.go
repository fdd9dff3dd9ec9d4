package posixtest

import (
	"bytes"
	"os"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func init() {
	register("xattr", func(t *testing.T, env Env) {
		env.need(t, CapXattr)
		twin(t, env, xattrCase)
	})
}

// listNames returns the sorted user.* names of an llistxattr buffer (the
// backing filesystem may add security.* names of its own; both sides
// agree on those through Rec of the full list separately).
func listNames(b []byte) []string {
	var out []string
	for _, n := range strings.Split(string(b), "\x00") {
		if strings.HasPrefix(n, "user.") {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

func xattrCase(s *Side) {
	f := s.P("f")
	os.WriteFile(f, []byte("x"), 0o644)
	buf := make([]byte, 1<<16)

	get := func(step, path, name string, size int) {
		n, err := unix.Lgetxattr(path, name, buf[:size])
		s.Err(step, err)
		if err == nil {
			if size == 0 {
				s.Rec(step+" size", "%d", n)
			} else {
				s.Rec(step+" value", "%q", buf[:n])
			}
		}
	}
	get("get missing", f, "user.none", 100)
	s.Err("replace missing", unix.Lsetxattr(f, "user.a", []byte("v"), unix.XATTR_REPLACE))
	s.Err("create", unix.Lsetxattr(f, "user.a", []byte("value-a"), unix.XATTR_CREATE))
	s.Err("create existing", unix.Lsetxattr(f, "user.a", []byte("other"), unix.XATTR_CREATE))
	get("get a", f, "user.a", 100)
	get("probe a (size 0)", f, "user.a", 0)
	get("get a into short buffer", f, "user.a", 3)
	s.Err("replace", unix.Lsetxattr(f, "user.a", []byte("replaced"), unix.XATTR_REPLACE))
	get("get replaced", f, "user.a", 100)
	s.Err("set plain", unix.Lsetxattr(f, "user.b", []byte{}, 0))
	get("get empty value", f, "user.b", 100)
	get("probe empty value", f, "user.b", 0)
	big := pattern(5, 3000)
	s.Err("set 3000 bytes", unix.Lsetxattr(f, "user.big", big, 0))
	n, err := unix.Lgetxattr(f, "user.big", buf)
	s.Err("get 3000 bytes", err)
	s.Checkf(err == nil && bytes.Equal(buf[:n], big), "user.big read back %d bytes that differ from the 3000 set (err %v)", n, err)
	s.Err("set bad flags", unix.Lsetxattr(f, "user.c", []byte("v"), 0x100))
	s.Err("set empty name", unix.Lsetxattr(f, "", []byte("v"), 0))
	s.Err("set unknown namespace", unix.Lsetxattr(f, "bogus.c", []byte("v"), 0))
	s.Err("set name too long", unix.Lsetxattr(f, "user."+strings.Repeat("n", 300), []byte("v"), 0))
	s.Err("set value too big", unix.Lsetxattr(f, "user.huge", make([]byte, 70000), 0))

	n, err = unix.Llistxattr(f, buf)
	s.Err("list", err)
	s.Rec("list user names", "%q", listNames(buf[:max(n, 0)]))
	sz, err := unix.Llistxattr(f, nil)
	s.Err("list probe", err)
	s.Checkf(err != nil || sz == n, "listxattr size probe said %d, the list is %d bytes", sz, n)
	if n > 1 {
		_, err = unix.Llistxattr(f, buf[:1])
		s.Err("list into short buffer", err)
	}

	s.Err("remove", unix.Lremovexattr(f, "user.a"))
	s.Err("remove again", unix.Lremovexattr(f, "user.a"))
	get("get removed", f, "user.a", 100)
	n, _ = unix.Llistxattr(f, buf)
	s.Rec("list after remove", "%q", listNames(buf[:max(n, 0)]))

	// fd-based calls and other file types.
	fd, err := unix.Open(f, unix.O_RDONLY, 0)
	s.Must("open", err)
	s.Err("fsetxattr", unix.Fsetxattr(fd, "user.fd", []byte("via-fd"), 0))
	n, err = unix.Fgetxattr(fd, "user.fd", buf)
	s.Err("fgetxattr", err)
	s.Rec("fgetxattr value", "%q", buf[:max(n, 0)])
	s.Err("fremovexattr", unix.Fremovexattr(fd, "user.fd"))
	unix.Close(fd)
	unix.Mkdir(s.P("d"), 0o755)
	s.Err("set on dir", unix.Lsetxattr(s.P("d"), "user.d", []byte("dir"), 0))
	get("get on dir", s.P("d"), "user.d", 100)
	unix.Symlink("f", s.P("l"))
	s.Err("lset user.* on symlink", unix.Lsetxattr(s.P("l"), "user.l", []byte("v"), 0))
	s.Err("set through symlink", unix.Setxattr(s.P("l"), "user.via", []byte("followed"), 0))
	get("get on target", f, "user.via", 100)
	get("get missing file", s.P("missing"), "user.a", 100)
	// Non-root-visible namespaces root may use.
	s.Err("set trusted.*", unix.Lsetxattr(f, "trusted.t", []byte("t"), 0))
	get("get trusted.*", f, "trusted.t", 100)
}
