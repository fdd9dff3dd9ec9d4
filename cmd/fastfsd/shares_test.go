package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	hp9 "github.com/hugelgupf/p9/p9"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/passthrough"
	"github.com/fastfsd/fastfsd/fs/vfs"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/testutil"
	"github.com/fastfsd/fastfsd/p9"
	vt "github.com/fastfsd/fastfsd/vhostuser/vhostusertest"
)

// A test binary re-executed with FASTFSD_TEST_DIAL_AS_NOBODY=PATH drops
// to uid/gid 65534, connects to the control socket PATH, sends a list
// request and prints what happened: "connect: ERR", "reply: LINE" or
// "no reply: ERR".
func init() {
	path := os.Getenv("FASTFSD_TEST_DIAL_AS_NOBODY")
	if path == "" {
		return
	}
	if err := syscall.Setgroups(nil); err == nil {
		if err = syscall.Setgid(65534); err == nil {
			err = syscall.Setuid(65534)
		}
		if err != nil {
			fmt.Println("setuid:", err)
			os.Exit(2)
		}
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		fmt.Println("connect:", err)
		os.Exit(0)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte(`{"op":"list"}` + "\n"))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		fmt.Println("no reply:", err)
	} else {
		fmt.Println("reply:", strings.TrimSpace(line))
	}
	os.Exit(0)
}

func TestParseShareSpec(t *testing.T) {
	for _, tc := range []struct {
		in, name, dir, err string
	}{
		{in: "/srv/a", dir: "/srv/a"},
		{in: "a=/srv/a", name: "a", dir: "/srv/a"},
		{in: "/srv/x=y", dir: "/srv/x=y"},
		{in: "./a=b", dir: "./a=b"},
		{in: "a=rel/dir", name: "a", dir: "rel/dir"},
		{in: "..=/srv", err: "share name"},
		{in: ".=/srv", err: "share name"},
		{in: "=/srv", err: "share name"},
		{in: "a=", err: "no directory"},
		{in: "", err: "empty"},
	} {
		sp, err := parseShareSpec("--shared-dir", tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || sp.name != tc.name || sp.dir != tc.dir {
			t.Errorf("%q: %+v %v, want name %q dir %q", tc.in, sp, err, tc.name, tc.dir)
		}
	}
}

func TestVirtiofsShareArgs(t *testing.T) {
	for _, tc := range []struct {
		args string
		err  string
		n    int // named shares
	}{
		{args: "--socket-path=/s --shared-dir a=/x --shared-dir=b=/y", n: 2},
		{args: "--socket-path=/s -o source=a=/x --shared-dir b=/y", n: 2},
		{args: "--socket-path=/s --control-socket /c --share-root /r", n: 0},
		{args: "--socket-path=/s --shared-dir a=/x --control-socket /c --share-root /r", n: 1},
		{args: "--socket-path=/s --shared-dir /x --shared-dir b=/y", err: "each needs a name"},
		{args: "--socket-path=/s --shared-dir /x --control-socket /c --share-root /r", err: "every share needs a name"},
		{args: "--socket-path=/s --shared-dir a=/x --shared-dir a=/y", err: "given twice"},
		{args: "--socket-path=/s --shared-dir a=/x --control-socket /c", err: "go together"},
		{args: "--socket-path=/s --shared-dir a=/x --share-root /r", err: "go together"},
		{args: "--socket-path=/s --shared-dir a/b=/x", n: -1}, // a path with '=': one plain directory
		{args: "--socket-path=/s --shared-dir a=/x --shared-dir b=/y --sandbox namespace", n: 2},
		{args: "--socket-path=/s --shared-dir a=/x --shared-dir b=/y --sandbox chroot", err: "--sandbox=chroot serves one shared directory"},
		{args: "--socket-path=/s --control-socket /c --share-root /r -o sandbox=chroot", err: "--control-socket with --sandbox=chroot"},
		{args: "--socket-path=/s --control-socket /c --share-root /r --sandbox namespace", err: "--control-socket with --sandbox=namespace"},
		{args: "--socket-path=/s --shared-dir /x --sandbox namespace", n: -2}, // one directory: as before
	} {
		c, _, err := parseVirtiofsArgs(strings.Fields(tc.args))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.args, err)
			continue
		}
		if tc.n == -2 {
			if c.dir != "/x" {
				t.Errorf("%s: dir %q", tc.args, c.dir)
			}
			continue
		}
		if tc.n < 0 {
			if c.dir != "a/b=/x" {
				t.Errorf("%s: dir %q, want the plain directory", tc.args, c.dir)
			}
			continue
		}
		if c.dir != "" || len(c.shares.specs) != tc.n {
			t.Errorf("%s: dir %q, %d shares; want a VFS of %d", tc.args, c.dir, len(c.shares.specs), tc.n)
		}
	}
}

// FuzzDecodeControl: the control socket's decoder never panics, fails
// with a zero request, and passes only requests the handlers may trust
// (a valid name, an absolute bounded dir for add), which survive a
// re-encode unchanged.
func FuzzDecodeControl(f *testing.F) {
	for _, s := range []string{
		`{"op":"add","name":"a","dir":"/srv/a"}`,
		`{"op":"remove","name":"a"}`,
		`{"op":"list"}`,
		`{"op":"add","name":"..","dir":"/srv"}`,
		`{"op":"add","name":"a/b","dir":"/srv"}`,
		`{"op":"add","name":"a","dir":"rel"}`,
		`{"op":"list","extra":1}`,
		`{"op":"list"}{"op":"list"}`,
		`{"op":"add","name":"a\u0000","dir":"/x"}`,
		`[]`, `null`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := decodeControl(line)
		if err != nil {
			if r != (controlRequest{}) {
				t.Fatalf("error %v with a request %+v", err, r)
			}
			return
		}
		switch r.Op {
		case "add":
			if vfs.CheckName(r.Name) != nil || !filepath.IsAbs(r.Dir) || len(r.Dir) > controlMaxPath || strings.ContainsRune(r.Dir, 0) {
				t.Fatalf("accepted %+v", r)
			}
		case "remove":
			if vfs.CheckName(r.Name) != nil || r.Dir != "" {
				t.Fatalf("accepted %+v", r)
			}
		case "list":
			if r.Name != "" || r.Dir != "" {
				t.Fatalf("accepted %+v", r)
			}
		default:
			t.Fatalf("accepted op %q", r.Op)
		}
		b, _ := json.Marshal(r)
		if r2, err := decodeControl(b); err != nil || r2 != r {
			t.Fatalf("re-encoded %s: %+v %v, want %+v", b, r2, err, r)
		}
	})
}

// fuseCall sends one FUSE request on the guest's first request queue
// and returns the reply's errno and payload.
func fuseCall(t *testing.T, g *vt.Guest, op abi.Opcode, node uint64, arg []byte, outLen int) (int32, []byte) {
	t.Helper()
	h := make([]byte, abi.InHeaderSize)
	(&abi.InHeader{Len: uint32(abi.InHeaderSize + len(arg)), Opcode: op, Unique: 2, NodeID: node}).Marshal(h)
	in := [][]byte{h}
	if len(arg) > 0 {
		in = append(in, arg)
	}
	out, err := g.Queues[1].Submit(vt.Buffers{In: in, Out: []int{16 + outLen}})
	var oh abi.OutHeader
	if err != nil || !oh.Unmarshal(out) {
		t.Fatalf("%v on %d: %x %v", op, node, out, err)
	}
	return oh.Error, out[16:]
}

// lookupNode looks name up in node and returns its node ID (0 and the
// errno on failure).
func lookupNode(t *testing.T, g *vt.Guest, node uint64, name string) (uint64, int32) {
	t.Helper()
	e, out := fuseCall(t, g, abi.OpLookup, node, append([]byte(name), 0), abi.EntryOutSize)
	if e != 0 {
		return 0, e
	}
	return binary.NativeEndian.Uint64(out), 0
}

// TestVirtiofsShares serves two shares to a guest (played over the
// vhost-user socket), adds a third and removes it through the control
// socket while the guest runs: the guest sees it come and go, its old
// node IDs answer ESTALE, directories outside --share-root (directly or
// through a symlink) are refused, the socket is 0600, and a peer of
// another uid gets nothing.
func TestVirtiofsShares(t *testing.T) {
	testutil.RequireRoot(t)
	root := t.TempDir()
	outside := t.TempDir()
	for _, d := range []string{"a", "b", "c"} {
		os.Mkdir(filepath.Join(root, d), 0o755)
		os.WriteFile(filepath.Join(root, d, "in-"+d), []byte(d), 0o644)
	}
	os.Symlink(outside, filepath.Join(root, "escape"))
	ctlDir, err := os.MkdirTemp("", "fastfs-ctl")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(ctlDir)
	os.Chmod(ctlDir, 0o755) // the socket's own mode is what keeps others out
	ctl := filepath.Join(ctlDir, "ctl.sock")
	sock := filepath.Join(t.TempDir(), "vfs.sock")
	startDoor(t, "virtiofs", "--socket-path="+sock, "--shared-dir", "a="+filepath.Join(root, "a"),
		"--shared-dir", "b="+filepath.Join(root, "b"), "--control-socket", ctl, "--share-root", root, "--log-level", "warn")
	g := dialGuest(t, sock)
	in := abi.InitIn{Major: 7, Minor: abi.KernelMinorVersion, Flags: uint32(abi.InitMaxPages)}
	a := make([]byte, abi.InitInSize)
	in.Marshal(a)
	if e, _ := fuseCall(t, g, abi.OpInit, 0, a, abi.InitOutSize); e != 0 {
		t.Fatalf("INIT: %d", e)
	}
	for _, d := range []string{"a", "b"} {
		n, e := lookupNode(t, g, 1, d)
		if e != 0 {
			t.Fatalf("LOOKUP %s: %d", d, e)
		}
		if _, e := lookupNode(t, g, n, "in-"+d); e != 0 {
			t.Fatalf("LOOKUP %s/in-%s: %d", d, d, e)
		}
	}
	if _, e := lookupNode(t, g, 1, "c"); e != -int32(syscall.ENOENT) {
		t.Fatalf("LOOKUP c before adding it: %d, want ENOENT", e)
	}

	var st syscall.Stat_t
	if err := syscall.Stat(ctl, &st); err != nil || st.Mode&0o777 != 0o600 || st.Uid != 0 {
		t.Fatalf("control socket: mode %o uid %d (%v), want 0600 root", st.Mode&0o777, st.Uid, err)
	}
	call := func(r controlRequest) (controlReply, error) { return controlCall(ctl, r) }
	if _, err := call(controlRequest{Op: "add", Name: "c", Dir: filepath.Join(root, "c")}); err != nil {
		t.Fatalf("add c: %v", err)
	}
	nc, e := lookupNode(t, g, 1, "c")
	if e != 0 {
		t.Fatalf("LOOKUP c after adding it: %d", e)
	}
	fc, e := lookupNode(t, g, nc, "in-c")
	if e != 0 {
		t.Fatalf("LOOKUP c/in-c: %d", e)
	}
	for _, tc := range []struct {
		r    controlRequest
		want string
	}{
		{controlRequest{Op: "add", Name: "x", Dir: outside}, "not under --share-root"},
		{controlRequest{Op: "add", Name: "x", Dir: filepath.Join(root, "escape")}, "leads outside --share-root"},
		{controlRequest{Op: "add", Name: "x", Dir: filepath.Join(root, "c", "..", "..")}, "not under --share-root"},
		{controlRequest{Op: "add", Name: "c", Dir: filepath.Join(root, "a")}, "is mounted"},
		{controlRequest{Op: "add", Name: "..", Dir: filepath.Join(root, "a")}, "share name"},
		{controlRequest{Op: "remove", Name: "nosuch"}, "no share"},
		{controlRequest{Op: "shutdown"}, "unknown op"},
	} {
		if _, err := call(tc.r); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error containing %q", tc.r, err, tc.want)
		}
	}
	rep, err := call(controlRequest{Op: "list"})
	if err != nil || len(rep.Shares) != 3 || rep.Shares[2].Name != "c" || rep.Shares[2].Lookups != 2 {
		t.Fatalf("list: %+v %v, want a, b, c with 2 lookups on c", rep, err)
	}
	if _, err := call(controlRequest{Op: "remove", Name: "c"}); err != nil {
		t.Fatalf("remove c: %v", err)
	}
	if e, _ := fuseCall(t, g, abi.OpGetattr, fc, make([]byte, abi.GetattrInSize), abi.AttrOutSize); e != -int32(syscall.ESTALE) {
		t.Errorf("GETATTR of c/in-c after removing c: %d, want ESTALE", e)
	}
	if _, e := lookupNode(t, g, 1, "c"); e != -int32(syscall.ENOENT) {
		t.Errorf("LOOKUP c after removing it: %d, want ENOENT", e)
	}
	if _, e := lookupNode(t, g, 1, "a"); e != 0 {
		t.Errorf("LOOKUP a after removing c: %d", e)
	}

	// Another user: the socket's mode refuses the connection; with the
	// mode opened up, the daemon's SO_PEERCRED check drops it unanswered.
	nobody := func() string {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "FASTFSD_TEST_DIAL_AS_NOBODY="+ctl)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("child: %v", err)
		}
		return strings.TrimSpace(string(out))
	}
	if got := nobody(); !strings.Contains(got, "connect:") || !strings.Contains(got, "permission denied") {
		t.Errorf("uid 65534 on the 0600 socket: %q, want a refused connect", got)
	}
	os.Chmod(ctl, 0o666)
	if got := nobody(); !strings.HasPrefix(got, "no reply:") {
		t.Errorf("uid 65534 on a 0666 control socket: %q, want no reply", got)
	}
}

// TestMountShares mounts two directories as the shares a and b of one
// /dev/fuse mount with fastfsd mount --source NAME=DIR, reads each through
// the mount, checks a rename between them is EXDEV, and stops it with
// SIGTERM (exit 0, mount gone).
func TestMountShares(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	dir := t.TempDir()
	a, b, mnt := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "mnt")
	for _, d := range []string{a, b, mnt} {
		os.Mkdir(d, 0o755)
	}
	os.WriteFile(filepath.Join(a, "f"), []byte("in a"), 0o644)
	os.WriteFile(filepath.Join(b, "f"), []byte("in b"), 0o644)
	cmd := exec.Command(os.Args[0], "-test.run=^$", "--source", "a="+a, "--source", "b="+b, mnt)
	cmd.Env = append(os.Environ(), "FASTFSD_TEST_MOUNT_CHILD=1")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		syscall.Unmount(mnt, syscall.MNT_DETACH)
	})
	deadline := time.Now().Add(10 * time.Second)
	for !mounted(mnt) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not become a mount within 10 s", mnt)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ents, err := os.ReadDir(mnt)
	if err != nil || len(ents) != 2 || ents[0].Name() != "a" || ents[1].Name() != "b" || !ents[0].IsDir() {
		t.Fatalf("ls %s: %v %v, want a and b", mnt, ents, err)
	}
	for _, c := range []struct{ path, want string }{{"a/f", "in a"}, {"b/f", "in b"}} {
		if got, err := os.ReadFile(filepath.Join(mnt, c.path)); err != nil || string(got) != c.want {
			t.Errorf("read %s: %q %v, want %q", c.path, got, err, c.want)
		}
	}
	if err := os.Rename(filepath.Join(mnt, "a/f"), filepath.Join(mnt, "b/g")); !errors.Is(err, syscall.EXDEV) {
		t.Errorf("rename a/f b/g: %v, want EXDEV", err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "b/new"), []byte("x"), 0o644); err != nil {
		t.Errorf("create b/new: %v", err)
	} else if got, _ := os.ReadFile(filepath.Join(b, "new")); string(got) != "x" {
		t.Errorf("b/new on the host: %q", got)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	if mounted(mnt) {
		t.Error("still mounted after SIGTERM")
	}
}

// testNamespaceShares (a subtest of TestNamespaceSandbox, which builds
// the static binary): fastfsd virtiofs with two shares under
// --sandbox=namespace serves from a child whose root is a read-only
// directory holding exactly the two shares, and the guest reaches a
// file of each.
func testNamespaceShares(t *testing.T, bin string, door string) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{a, b} {
		os.Mkdir(d, 0o755)
		os.WriteFile(filepath.Join(d, "in-"+filepath.Base(d)), []byte("x"), 0o644)
	}
	sock := filepath.Join(dir, "door.sock")
	args := []string{"virtiofs", "--socket-path", sock}
	if door == "9p" {
		args = []string{"9p", "--listen", "unix:" + sock}
	}
	d := startCmd(t, bin, exec.Command(bin, append(args, "--shared-dir", "a="+a, "--shared-dir", "b="+b, "--sandbox", "namespace")...))
	child := nsChild(t, d.cmd.Process.Pid, d.stderr)
	root := fmt.Sprintf("/proc/%d/root", child)
	ents, err := os.ReadDir(root)
	if err != nil || len(ents) != 2 || ents[0].Name() != "a" || ents[1].Name() != "b" {
		t.Fatalf("the child's root holds %v (%v), want exactly a and b", ents, err)
	}
	// Each share, the first as much as the others (the root's tmpfs once
	// hid the first share's directory), is its host directory.
	for name, host := range map[string]string{"a": a, "b": b} {
		var st, want syscall.Stat_t
		syscall.Stat(filepath.Join(root, name), &st)
		syscall.Stat(host, &want)
		if st.Dev != want.Dev || st.Ino != want.Ino {
			t.Errorf("the child's /%s is %d:%d, want the share's directory %d:%d", name, st.Dev, st.Ino, want.Dev, want.Ino)
		}
		if _, err := os.Stat(filepath.Join(root, name, "in-"+name)); err != nil {
			t.Errorf("the child's /%s does not show the share's file: %v", name, err)
		}
	}
	if err := syscall.Mkdir(filepath.Join(root, "x"), 0o755); err != syscall.EROFS {
		t.Errorf("mkdir in the child's root: %v, want EROFS", err)
	}
	if door == "9p" {
		p9ReadShares(t, sock)
	} else {
		virtiofsReadShares(t, sock)
	}
	d.sigterm(t)
}

// p9ReadShares walks to a/in-a and b/in-b over 9P on the unix socket.
func p9ReadShares(t *testing.T, sock string) {
	t.Helper()
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c, err := hp9.NewClient(nc, hp9.WithMessageSize(128<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	root, err := c.Attach("")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"a", "b"} {
		if _, _, err := root.Walk([]string{d, "in-" + d}); err != nil {
			t.Errorf("walk %s/in-%s: %v", d, d, err)
		}
	}
}

// virtiofsReadShares plays the guest: INIT, then LOOKUP a/in-a and b/in-b.
func virtiofsReadShares(t *testing.T, sock string) {
	t.Helper()
	f, err := vt.Dial(sock)
	if err != nil {
		t.Fatalf("dial %s: %v", sock, err)
	}
	defer f.Close()
	g, err := vt.NewGuest(f, vt.GuestConfig{Queues: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	in := abi.InitIn{Major: 7, Minor: abi.KernelMinorVersion, Flags: uint32(abi.InitMaxPages)}
	ia := make([]byte, abi.InitInSize)
	in.Marshal(ia)
	if e, _ := fuseCall(t, g, abi.OpInit, 0, ia, abi.InitOutSize); e != 0 {
		t.Fatalf("INIT: %d", e)
	}
	for _, d := range []string{"a", "b"} {
		n, e := lookupNode(t, g, 1, d)
		if e != 0 {
			t.Fatalf("LOOKUP %s: %d", d, e)
		}
		if _, e := lookupNode(t, g, n, "in-"+d); e != 0 {
			t.Errorf("LOOKUP %s/in-%s: %d", d, d, e)
		}
	}
}

// TestServeP9Shares serves two shares over 9P (the hugelgupf/p9
// client): each share's file reads back, ".." of a share is the root, a
// file created in one lands in its directory, and the root refuses a
// mkdir.
func TestServeP9Shares(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(a, "f"), []byte("in a"), 0o644)
	os.WriteFile(filepath.Join(b, "f"), []byte("in b"), 0o644)
	sock := filepath.Join(t.TempDir(), "9p.sock")
	cfg := p9Config{network: "unix", addr: sock, shares: shareSet{specs: []shareSpec{{"a", a}, {"b", b}}}, drain: 5 * time.Second,
		fsOpts: passthrough.Options{Xattr: true}, srvOpts: p9.Options{Logf: t.Logf}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- serveP9(ctx, cfg, ready) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serveP9: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	c, err := hp9.NewClient(nc, hp9.WithMessageSize(128<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	root, err := c.Attach("")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct{ share, want string }{{"a", "in a"}, {"b", "in b"}} {
		_, f, err := root.Walk([]string{s.share, "f"})
		if err != nil {
			t.Fatalf("walk %s/f: %v", s.share, err)
		}
		if _, _, err := f.Open(hp9.ReadOnly); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 16)
		n, err := f.ReadAt(buf, 0)
		if (err != nil && err != io.EOF) || string(buf[:n]) != s.want {
			t.Errorf("read %s/f: %q %v, want %q", s.share, buf[:n], err, s.want)
		}
		f.Close()
	}
	_, up, err := root.Walk([]string{"a", "..", "b"})
	if err != nil {
		t.Fatalf("walk a/../b: %v", err)
	}
	qid, _, attr, err := up.GetAttr(hp9.AttrMaskAll)
	if err != nil || qid.Type&hp9.TypeDir == 0 || attr.Mode.Permissions() != 0o755 {
		t.Errorf("a/../b: %v %+v %v", qid, attr, err)
	}
	_, dirB, _ := root.Walk([]string{"b"})
	nf, _, _, err := dirB.Create("new", hp9.WriteOnly, 0o600, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	nf.WriteAt([]byte("x"), 0)
	nf.Close()
	if got, err := os.ReadFile(filepath.Join(b, "new")); err != nil || string(got) != "x" {
		t.Errorf("b/new on the host: %q %v", got, err)
	}
	if _, err := root.Mkdir("c", 0o755, 0, 0); err == nil {
		t.Error("mkdir in the pseudo root succeeded")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serveP9: %v", err)
	}
}

// TestMountSourceErrors: fastfsd mount's share errors name its flag,
// --source, whether a value fails to parse or the set fails its check.
func TestMountSourceErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--source", "a=", "/mnt"},
		{"--source", "..=/srv", "/mnt"},
		{"--source", "a=/x", "--source", "a=/y", "/mnt"},
		{"--source", "/x", "--source", "a=/y", "/mnt"},
		{"--source", "/nonexistent-fastfs-source", "/mnt"},
	} {
		err := runMount(args)
		if err == nil || !strings.Contains(err.Error(), "--source") || strings.Contains(err.Error(), "--shared-dir") {
			t.Errorf("mount %q: %v, want an error naming --source (not --shared-dir)", args, err)
		}
	}
}

// TestControlAddSymlinkedRoot: a --share-root given through a symbolic
// link takes directories named through that same link (the daemon
// resolves the root, the client sends the path as typed), and still
// refuses one outside it.
func TestControlAddSymlinkedRoot(t *testing.T) {
	real := t.TempDir()
	os.Mkdir(filepath.Join(real, "x"), 0o755)
	link := filepath.Join(t.TempDir(), "root")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	v := vfs.New(vfs.Options{})
	defer unmountAll(v)
	var opened []string
	mk := func(dir string) (fs.FileSystem, error) {
		opened = append(opened, dir)
		return fs.Base{}, nil
	}
	c, err := newControlServer(v, mk, slog.New(slog.DiscardHandler), link)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Join(link, "x"), filepath.Join(real, "x")} {
		name := "s" + strconv.Itoa(len(opened))
		if err := c.add(name, dir); err != nil {
			t.Errorf("add %s: %v", dir, err)
		}
	}
	if got := len(v.Shares()); got != 2 {
		t.Errorf("%d shares mounted, want 2", got)
	}
	if err := c.add("out", t.TempDir()); err == nil || !strings.Contains(err.Error(), "not under --share-root") {
		t.Errorf("add a directory outside: %v, want not under --share-root", err)
	}
}
