package hostile

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// The attacker's identity.
const nobody = 65534

// childEnv selects a child role when the test binary is re-executed.
const childEnv = "FASTFS_HOSTILE_CHILD"

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(childMain(role, os.Args[len(os.Args)-1]))
	}
	// Daemons inherit umask 0, the most permissive an operator could run
	// them with: a socket's safety must not come from the umask.
	syscall.Umask(0)
	code := m.Run()
	// The built daemon and the attacker's copy of this binary.
	for _, d := range []string{binDir, filepath.Dir(copyPath)} {
		if d != "" && d != "." && strings.Contains(d, "fastfsd-hostile-") {
			os.RemoveAll(d)
		}
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

// fastfsd builds ./cmd/fastfsd once per test binary. FASTFS_HOSTILE_BIN
// names a prebuilt binary instead (to show an older build failing).
func fastfsd(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	if b := os.Getenv("FASTFS_HOSTILE_BIN"); b != "" {
		return b
	}
	testutil.RequireCommand(t, "go")
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "fastfsd-hostile-")
		if buildErr != nil {
			return
		}
		os.Chmod(binDir, 0o755)
		binPath, buildErr = testutil.BuildFastfsd(binDir, "fastfsd", nil)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// publicDir makes a scratch directory every user may enter and write, with
// the sticky bit, as /tmp is: the attacker can see the socket and what is
// created next to it.
func publicDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "fastfsd-hostile-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o1777); err != nil {
		t.Fatal(err)
	}
	return d
}

// openSocket listens on a socket in dir that everyone may connect to: the
// control that proves the attacker reaches dir at all.
func openSocket(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "control.sock")
	l, err := net.Listen("unix", p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	os.Chmod(p, 0o777)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return p
}

// checkLoop fails t unless the child connected to control and to nothing
// else, and was refused by a live socket at least once.
func checkLoop(t *testing.T, rep loopReport, control string) {
	t.Helper()
	got := false
	for p, n := range rep.Connected {
		if p != control {
			t.Fatalf("uid 65534 connected to %s (%d times)", p, n)
		}
		got = true
	}
	if !got {
		t.Fatalf("the child never connected to the open control socket %s in %d attempts: the attack is broken", control, rep.Attempts)
	}
	if rep.Refused == 0 {
		t.Fatalf("no connect was refused with EACCES in %d attempts: the child never met a live socket", rep.Attempts)
	}
}

// daemon is a running fastfsd.
type daemon struct {
	cmd  *exec.Cmd
	errb bytes.Buffer
	done chan error
}

// startDaemon runs fastfsd with args and waits until the socket file
// appears (or the daemon dies).
func startDaemon(t *testing.T, bin, sock string, args ...string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command(bin, args...), done: make(chan error, 1)}
	d.cmd.Stderr = &d.errb
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Lstat(sock); err == nil {
			return d
		}
		select {
		case err := <-d.done:
			t.Fatalf("fastfsd %s exited before its socket appeared: %v\n%s", strings.Join(args, " "), err, d.errb.String())
		default:
		}
		if time.Now().After(deadline) {
			d.cmd.Process.Kill()
			<-d.done
			t.Fatalf("fastfsd %s: no socket at %s after 10 s\n%s", strings.Join(args, " "), sock, d.errb.String())
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil && os.Getenv("FASTFS_HOSTILE_BIN") == "" { // an older build may die of the signal
			t.Errorf("fastfsd exited with %v\n%s", err, d.errb.String())
		}
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		t.Errorf("fastfsd did not exit within 10 s of SIGTERM\n%s", d.errb.String())
	}
}

// child is a re-executed test binary running a role as uid 65534 (and the
// given supplementary groups), talking JSON lines on stdout.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Scanner
	errb  bytes.Buffer
}

func startChild(t *testing.T, role, arg string, groups ...uint32) *child {
	t.Helper()
	return startChildAs(t, nobody, role, arg, groups...)
}

// startChildAs is startChild as uid and gid uid.
func startChildAs(t *testing.T, uid uint32, role, arg string, groups ...uint32) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary lives in a root-only temp dir: copy it where the
	// attacker may execute it.
	exe = childBinary(t, exe)
	c := &child{cmd: exec.Command(exe, "-test.run=^$", arg)}
	c.cmd.Env = append(os.Environ(), childEnv+"="+role)
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: groups}}
	c.cmd.Stderr = &c.errb
	c.cmd.Dir = "/"
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.out = bufio.NewScanner(stdout)
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.stdin.Close()
		c.cmd.Process.Kill()
		c.cmd.Wait()
	})
	return c
}

var (
	copyOnce sync.Once
	copyPath string
	copyErr  error
)

func childBinary(t *testing.T, exe string) string {
	copyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "fastfsd-hostile-child-")
		if err != nil {
			copyErr = err
			return
		}
		os.Chmod(dir, 0o755)
		b, err := os.ReadFile(exe)
		if err != nil {
			copyErr = err
			return
		}
		copyPath = filepath.Join(dir, "hostile.test")
		copyErr = os.WriteFile(copyPath, b, 0o755)
	})
	if copyErr != nil {
		t.Fatal(copyErr)
	}
	return copyPath
}

// result reads the child's next JSON line into v.
func (c *child) result(t *testing.T, v any) {
	t.Helper()
	if !c.out.Scan() {
		t.Fatalf("child ended without a result: %v\n%s", c.out.Err(), c.errb.String())
	}
	if err := json.Unmarshal(c.out.Bytes(), v); err != nil {
		t.Fatalf("child result %q: %v\n%s", c.out.Text(), err, c.errb.String())
	}
}

// --- the connect loop ----------------------------------------------------

// loopReport is what the connect-loop child reports when its stdin closes.
type loopReport struct {
	Attempts  int            // connect(2) calls
	Refused   int            // EACCES (the socket was there and said no)
	Connected map[string]int // paths it got into, and how often
}

// connectLoop (child role) tries, until stdin closes, to connect to every
// path listed in arg (comma-separated) and to anything under a ".sock-*"
// directory next to them (where sockfile binds before the rename).
func connectLoop(arg string) int {
	paths := strings.Split(arg, ",")
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	rep := loopReport{Connected: map[string]int{}}
	try := func(p string) {
		fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return
		}
		rep.Attempts++
		switch err := syscall.Connect(fd, &syscall.SockaddrUnix{Name: p}); err {
		case nil, syscall.EAGAIN, syscall.EINPROGRESS:
			rep.Connected[p]++
		case syscall.EACCES:
			rep.Refused++
		}
		syscall.Close(fd)
	}
	dirs := map[string]bool{}
	for _, p := range paths {
		dirs[filepath.Dir(p)] = true
	}
	for i := 0; ; i++ {
		select {
		case <-stop:
			json.NewEncoder(os.Stdout).Encode(&rep)
			return 0
		default:
		}
		for _, p := range paths {
			try(p)
		}
		if i == 0 {
			fmt.Println(`"ready"`) // the parent waits for this line
		}
		if i%8 == 0 {
			for d := range dirs {
				priv, _ := filepath.Glob(filepath.Join(d, ".sock-*", "*"))
				for _, p := range priv {
					try(p)
				}
			}
		}
	}
}

func childMain(role, arg string) int {
	switch role {
	case "connect-loop":
		return connectLoop(arg)
	case "9p":
		return p9Child(arg)
	case "9p-hold":
		return p9Hold(arg)
	case "9p-stat":
		return p9Stat(arg)
	case "9p-handshake":
		return p9Handshake(arg)
	case "9p-reads":
		return p9Reads(arg)
	}
	fmt.Fprintf(os.Stderr, "unknown child role %q\n", role)
	return 2
}

// runLoop starts a connect-loop child over paths, lets f run, and returns
// the child's report.
func runLoop(t *testing.T, paths []string, f func()) loopReport {
	t.Helper()
	c := startChild(t, "connect-loop", strings.Join(paths, ","))
	var ready string
	c.result(t, &ready) // the loop runs: race from here
	f()
	c.stdin.Close()
	var rep loopReport
	c.result(t, &rep)
	return rep
}

// doors are the ways to start a root daemon on a unix socket at sock.
func doors(bin, share, sock string, extra ...string) map[string][]string {
	return map[string][]string{
		"virtiofs": append([]string{"virtiofs", "--socket-path", sock, "--shared-dir", share}, extra...),
		"9p":       append([]string{"9p", "--listen", "unix:" + sock, "--shared-dir", share}, extra...),
	}
}

// TestSocketsRefuseOthers: a running root daemon's socket (0600, or 0660
// with a --socket-group the attacker is not in) refuses uid 65534.
func TestSocketsRefuseOthers(t *testing.T) {
	bin := fastfsd(t)
	for _, group := range []string{"", "0"} {
		for door, args := range doors(bin, t.TempDir(), "") {
			t.Run(door+"/group="+group, func(t *testing.T) {
				dir := publicDir(t)
				sock := filepath.Join(dir, door+".sock")
				args = doors(bin, t.TempDir(), sock)[door]
				if group != "" {
					args = append(args, "--socket-group", group)
				}
				d := startDaemon(t, bin, sock, args...)
				var st syscall.Stat_t
				if err := syscall.Lstat(sock, &st); err != nil {
					t.Fatal(err)
				}
				want := uint32(0o600)
				if group != "" {
					want = 0o660
				}
				if st.Mode&0o7777 != want || st.Uid != 0 {
					t.Errorf("socket mode %#o uid %d, want %#o uid 0", st.Mode&0o7777, st.Uid, want)
				}
				control := openSocket(t, dir)
				rep := runLoop(t, []string{sock, control}, func() { time.Sleep(30 * time.Millisecond) })
				d.stop(t)
				checkLoop(t, rep, control)
				if _, err := os.Lstat(sock); !os.IsNotExist(err) {
					t.Errorf("socket left behind after SIGTERM: %v", err)
				}
			})
		}
	}
}

// TestConnectRaceDaemonStarts: a connect loop as uid 65534 races 200
// starts of each door's daemon and never connects. FASTFS_HOSTILE_STARTS
// changes the count.
func TestConnectRaceDaemonStarts(t *testing.T) {
	bin := fastfsd(t)
	starts := 200
	if s := os.Getenv("FASTFS_HOSTILE_STARTS"); s != "" {
		fmt.Sscan(s, &starts)
	}
	dir := publicDir(t)
	share := t.TempDir()
	socks := map[string]string{"virtiofs": filepath.Join(dir, "vhost.sock"), "9p": filepath.Join(dir, "9p.sock")}
	control := openSocket(t, dir)
	began := time.Now()
	rep := runLoop(t, []string{socks["virtiofs"], socks["9p"], control}, func() {
		for i := 0; i < starts; i++ {
			for door, sock := range socks {
				d := startDaemon(t, bin, sock, doors(bin, share, sock)[door]...)
				d.stop(t)
				if t.Failed() {
					return
				}
			}
		}
	})
	t.Logf("%d starts of each door in %v; the child made %d connects, %d refused with EACCES",
		starts, time.Since(began).Round(time.Millisecond), rep.Attempts, rep.Refused)
	checkLoop(t, rep, control)
}

// p9Share makes the 9P share: a 0755 root directory holding /pub (0777),
// /secret (0600 root) and /acl (0666 root, whose POSIX ACL denies
// uid 65534 everything: u::rw-,u:65534:---,g::rw-,m::rw-,o::rw-).
func p9Share(t *testing.T) string {
	t.Helper()
	d := publicDir(t)
	os.Chmod(d, 0o755)
	if err := os.Mkdir(filepath.Join(d, "pub"), 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(d, "pub"), 0o777)
	if err := os.WriteFile(filepath.Join(d, "secret"), []byte("root only"), 0o600); err != nil {
		t.Fatal(err)
	}
	acl := filepath.Join(d, "acl")
	if err := os.WriteFile(acl, []byte("not for 65534"), 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(acl, 0o666)
	// The xattr form of the ACL: version 2, then {tag, perm, id} each.
	val := []byte{2, 0, 0, 0}
	for _, e := range [][3]uint32{{0x01, 6, ^uint32(0)}, {0x02, 0, nobody}, {0x04, 6, ^uint32(0)}, {0x10, 6, ^uint32(0)}, {0x20, 6, ^uint32(0)}} {
		val = binary.LittleEndian.AppendUint16(val, uint16(e[0]))
		val = binary.LittleEndian.AppendUint16(val, uint16(e[1]))
		val = binary.LittleEndian.AppendUint32(val, e[2])
	}
	if err := syscall.Setxattr(acl, "system.posix_acl_access", val, 0); err != nil {
		t.Fatalf("set a POSIX ACL on %s (the test directory's filesystem must keep ACLs): %v", acl, err)
	}
	return d
}

// checkP9Attack asserts what the 9P child could not do: attach as root,
// create anything owned by root or with gid 0, chown to root, read or
// change root's file; and that what it made belongs to it.
func checkP9Attack(t *testing.T, rep p9Report, share string) {
	t.Helper()
	want := map[string]string{
		"connect":      "ok",
		"version":      "ok",
		"attach-uid0":  syscall.EPERM.Error(),
		"attach-root":  syscall.EPERM.Error(),
		"attach-self":  "ok",
		"walk-pub":     "ok",
		"create-gid0":  syscall.EPERM.Error(),
		"create-suid":  "ok",
		"chown-root":   syscall.EPERM.Error(),
		"walk-secret":  "ok",
		"open-secret":  syscall.EACCES.Error(),
		"chmod-secret": syscall.EPERM.Error(),
		"walk-acl":     "ok",
		"open-acl":     syscall.EACCES.Error(), // its mode lets others write; its ACL denies 65534
	}
	for k, v := range want {
		if rep[k] != v {
			t.Errorf("%s: got %q, want %q", k, rep[k], v)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(share, "pub/mine"), &st); err != nil {
		t.Fatalf("the child's file: %v", err)
	}
	if st.Uid != nobody || st.Gid != nobody {
		t.Errorf("the child's setuid file is uid %d gid %d, want %d:%d (never root's)", st.Uid, st.Gid, nobody, nobody)
	}
	if _, err := os.Lstat(filepath.Join(share, "pub/evil")); !os.IsNotExist(err) {
		t.Errorf("pub/evil exists (%v): a create with gid 0 went through", err)
	}
	if err := syscall.Lstat(filepath.Join(share, "secret"), &st); err != nil || st.Mode&0o7777 != 0o600 || st.Uid != 0 {
		t.Errorf("root's secret changed: mode %#o uid %d %v", st.Mode&0o7777, st.Uid, err)
	}
}

// TestP9UnixGroupMember: uid 65534, in the socket's group, connects to a
// root daemon's 9P socket but acts only as itself.
func TestP9UnixGroupMember(t *testing.T) {
	bin := fastfsd(t)
	share := p9Share(t)
	dir := publicDir(t)
	sock := filepath.Join(dir, "9p.sock")
	const group = 4242 // a gid only the child has
	d := startDaemon(t, bin, sock, "9p", "--listen", "unix:"+sock, "--shared-dir", share, "--socket-group", fmt.Sprint(group))
	defer d.stop(t)
	c := startChild(t, "9p", "unix:"+sock, group)
	var rep p9Report
	c.result(t, &rep)
	checkP9Attack(t, rep, share)
}

// TestP9TCPLoopback: over loopback tcp, uid 65534 is identified by the
// kernel's record of its socket and acts only as itself; with extended
// attributes off for clients, the host's ACL still denies it /acl.
func TestP9TCPLoopback(t *testing.T) {
	bin := fastfsd(t)
	share := p9Share(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	// --xattr=false: the server's checks read the host's ACLs anyway.
	d := &daemon{cmd: exec.Command(bin, "9p", "--listen", "tcp:"+addr, "--shared-dir", share, "--xattr=false"), done: make(chan error, 1)}
	d.cmd.Stderr = &d.errb
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	defer d.stop(t)
	for i := 0; ; i++ {
		nc, err := net.Dial("tcp", addr)
		if err == nil {
			nc.Close()
			break
		}
		select {
		case err := <-d.done:
			t.Fatalf("fastfsd 9p exited: %v\n%s", err, d.errb.String())
		case <-time.After(10 * time.Millisecond):
		}
		if i > 1000 {
			t.Fatal("fastfsd 9p did not listen within 10 s")
		}
	}
	c := startChild(t, "9p", "tcp:"+addr)
	var rep p9Report
	c.result(t, &rep)
	checkP9Attack(t, rep, share)
}

// TestP9RefusesNetworkListen: without --insecure-tcp, a tcp listen address
// that is not loopback is refused before anything listens.
func TestP9RefusesNetworkListen(t *testing.T) {
	bin := fastfsd(t)
	share := t.TempDir()
	for _, addr := range []string{"tcp:0.0.0.0:0", "tcp::0", "tcp:[::]:0", "tcp!*!0"} {
		out, err := exec.Command(bin, "9p", "--listen", addr, "--shared-dir", share).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--insecure-tcp") {
			t.Errorf("fastfsd 9p --listen %s: %v, output %q; want a refusal naming --insecure-tcp", addr, err, out)
		}
	}
}
