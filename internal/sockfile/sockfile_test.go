package sockfile

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func sockMode(t *testing.T, path string) (os.FileMode, uint32) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFSOCK {
		t.Fatalf("%s: mode %#o is not a socket", path, st.Mode)
	}
	return os.FileMode(st.Mode & 0o7777), st.Gid
}

// TestModeIgnoresUmask: with umask 0 (what passthrough.New used to set) the
// socket is still 0600, and it accepts connections.
func TestModeIgnoresUmask(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	path := filepath.Join(dir, "vhost.sock")
	l, err := Listen(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := sockMode(t, path); m != 0o600 {
		t.Errorf("mode %#o, want 0600", m)
	}
	if a := l.Addr().String(); a != path {
		t.Errorf("Addr %s, want %s", a, path)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.Close()
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the socket (private directory left behind?)", len(ents))
	}
	l.Close()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("after Close: %v, want the socket removed", err)
	}
}

func TestGroupMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	gid := os.Getgid()
	if os.Geteuid() == 0 {
		gid = 65534 // root may give any group
	}
	l, err := Listen(path, Options{Mode: 0o660, Gid: gid, SetGid: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	m, g := sockMode(t, path)
	if m != 0o660 || int(g) != gid {
		t.Errorf("mode %#o gid %d, want 0660 gid %d", m, g, gid)
	}
}

func TestRefuseBadMode(t *testing.T) {
	if _, err := Listen(filepath.Join(t.TempDir(), "s"), Options{Mode: 0o4700}); err == nil {
		t.Fatal("mode 04700 accepted")
	}
}

func TestReplaceStale(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	// A stale socket: bound, never listened on (a dead daemon's leftover).
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	os.Chmod(path, 0o777)
	l, err := Listen(path, Options{})
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer l.Close()
	if m, _ := sockMode(t, path); m != 0o600 {
		t.Errorf("mode %#o, want 0600", m)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial the new socket: %v", err)
	}
	c.Close()
}

func TestRefuseLive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	l, err := Listen(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l2, err := Listen(path, Options{What: "--socket-path"}); err == nil {
		l2.Close()
		t.Fatal("a live socket was replaced")
	} else if !strings.Contains(err.Error(), "--socket-path") || !strings.Contains(err.Error(), "accepting") {
		t.Errorf("error %q: want it to name the flag and say a server is accepting", err)
	}
}

// TestRefuseNonSocket: a regular file or a symlink (even to a stale
// socket) at the path is never replaced nor followed.
func TestRefuseNonSocket(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("keep"), 0o644)
	if l, err := Listen(file, Options{}); err == nil {
		l.Close()
		t.Fatal("regular file replaced")
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Errorf("regular file changed: %q", b)
	}
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("x"), 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink(target, link)
	if l, err := Listen(link, Options{}); err == nil {
		l.Close()
		t.Fatal("symlink replaced")
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("symlink changed: %v %v", fi, err)
	}
}

// TestExchangeRefusesNonSocket drives place directly: a file that appears
// at the path after the stale check is swapped back, not clobbered.
func TestExchangeRefusesNonSocket(t *testing.T) {
	dir := t.TempDir()
	priv, _ := os.MkdirTemp(dir, ".sock-")
	tmp := filepath.Join(priv, "s")
	fd, _ := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: tmp}); err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	path := filepath.Join(dir, "s")
	os.WriteFile(path, []byte("victim"), 0o600)
	keep := false
	if err := place(tmp, path, priv, &keep); err == nil {
		t.Fatal("place replaced a regular file")
	}
	if b, _ := os.ReadFile(path); string(b) != "victim" || keep {
		t.Errorf("after refusal: path holds %q, keep=%v; want the file back in place", b, keep)
	}
}

// TestPrivateDirSwapped: in a directory another user may write (not
// sticky), that user can rename the private directory away and put a
// world-writable one of their own in its place. The socket must still be
// bound in the directory Listen made (pinned by fd), never in theirs,
// where they could connect before its mode is set.
func TestPrivateDirSwapped(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o777) // writable by anyone, no sticky bit
	path := filepath.Join(dir, "vhost.sock")
	var theirs string
	testHookPrivate = func(priv string) {
		theirs = priv
		if err := os.Rename(priv, priv+".moved"); err != nil {
			t.Errorf("swap: %v", err)
		}
		os.Mkdir(priv, 0o777)
		os.Chmod(priv, 0o777)
	}
	connected := false
	testHookBound = func() {
		if c, err := net.Dial("unix", filepath.Join(theirs, "s")); err == nil {
			connected = true
			c.Close()
		}
	}
	defer func() { testHookPrivate, testHookBound = nil, nil }()
	l, err := Listen(path, Options{})
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	defer l.Close()
	if connected {
		t.Error("connected to the socket through the swapped-in world-writable directory before its mode was set")
	}
	if m, _ := sockMode(t, path); m != 0o600 {
		t.Errorf("mode %#o, want 0600", m)
	}
	if _, err := os.Lstat(filepath.Join(theirs, "s")); err == nil {
		t.Error("the socket was bound in the swapped-in directory")
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.Close()
}
