package main

import (
	"fmt"
	"io"
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

	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/sandbox"
	"github.com/fastfsd/fastfsd/internal/testutil"
	vt "github.com/fastfsd/fastfsd/vhostuser/vhostusertest"
)

// procStatus reads /proc/PID/status as a map.
func procStatus(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, nil
}

// TestDoorsConfined: each serving door, started with its defaults, serves
// under the seccomp filter with no_new_privs and exactly its documented
// capability set (docs/sandbox.md) once it serves. (The doors run as this
// test binary, a cgo build under -race, so --sandbox=auto serves without
// a namespace here; TestNamespaceSandbox covers that.)
func TestDoorsConfined(t *testing.T) {
	testutil.RequireRoot(t)
	if !cgoBuild() {
		t.Skip("a CGO_ENABLED=0 test binary: --sandbox=auto serves from a namespace child; TestNamespaceSandbox covers it")
	}
	for _, door := range []sandbox.Door{sandbox.Mount, sandbox.Virtiofs, sandbox.P9} {
		t.Run(door.String(), func(t *testing.T) {
			dir := t.TempDir()
			share := filepath.Join(dir, "share")
			os.Mkdir(share, 0o755)
			os.WriteFile(filepath.Join(share, "a"), []byte("a\n"), 0o644)
			var ch *child
			switch door {
			case sandbox.Mount:
				testutil.RequireDevFuse(t)
				mnt := filepath.Join(dir, "mnt")
				os.Mkdir(mnt, 0o755)
				ch = startDoor(t, "mount", "--source", share, mnt)
				// Served once a file of the share shows through.
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
					if b, err := os.ReadFile(filepath.Join(mnt, "a")); err == nil && string(b) == "a\n" {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s does not serve %s/a within 10 s; stderr:\n%s", mnt, share, ch.stderr)
					}
				}
				defer func() {
					ch.cmd.Process.Signal(os.Interrupt)
					select {
					case <-ch.done:
					case <-time.After(10 * time.Second):
						t.Error("mount door did not stop on SIGINT")
					}
					if mounted(mnt) {
						t.Errorf("%s still mounted", mnt)
					}
				}()
			case sandbox.Virtiofs:
				ch = startDoor(t, "virtiofs", "--socket-path", filepath.Join(dir, "vfs.sock"), "--shared-dir", share)
			case sandbox.P9:
				ch = startDoor(t, "9p", "--listen", "unix:"+filepath.Join(dir, "9p.sock"), "--shared-dir", share)
			}
			want := map[string]string{
				"Seccomp":    "2",
				"NoNewPrivs": "1",
				"CapEff":     fmt.Sprintf("%016x", uint64(sandbox.DefaultCaps(door))),
				"CapPrm":     fmt.Sprintf("%016x", uint64(sandbox.DefaultCaps(door))),
				"CapBnd":     fmt.Sprintf("%016x", uint64(sandbox.DefaultCaps(door))),
				"CapAmb":     "0000000000000000",
			}
			pid := ch.cmd.Process.Pid
			if door == sandbox.Mount {
				// As root the mount door serves from a child; the
				// process started unmounts (TestMountSandbox).
				pid = nsChild(t, pid, ch.stderr)
			}
			deadline := time.Now().Add(10 * time.Second)
			var st map[string]string
			for {
				var err error
				if st, err = procStatus(pid); err != nil {
					t.Fatalf("%v (exited? stderr: %s)", err, ch.stderr)
				}
				if st["Seccomp"] == "2" || time.Now().After(deadline) {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			for k, v := range want {
				if st[k] != v {
					t.Errorf("%s = %q, want %q", k, st[k], v)
				}
			}
		})
	}
}

// staticFastfsd builds ./cmd/fastfsd with CGO_ENABLED=0 (what
// --sandbox=namespace needs, see cgoBuild) into a temp dir.
func staticFastfsd(t *testing.T) string {
	t.Helper()
	testutil.RequireCommand(t, "go")
	bin, err := testutil.BuildFastfsd(t.TempDir(), "fastfsd", []string{"CGO_ENABLED=0"})
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// nsChild waits for the namespace supervisor pid to have its serving
// child confined and returns the child's pid.
func nsChild(t *testing.T, pid int, stderr *testutil.Buffer) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		// The child is the child of the thread that forked it.
		var b []byte
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
		for _, task := range tasks {
			c, _ := os.ReadFile(task)
			b = append(b, c...)
		}
		if f := strings.Fields(string(b)); len(f) == 1 {
			c, _ := strconv.Atoi(f[0])
			if st, err := procStatus(c); err == nil && st["Seccomp"] == "2" {
				return c
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no confined child of %d within 10 s; stderr:\n%s", pid, stderr)
	return 0
}

// TestNamespaceSandbox: with --sandbox=namespace (and =chroot, without new
// namespaces) the virtiofs and 9p doors
// serve from a child whose root is the shared directory, in its own pid
// and network namespaces, confined as without it; the requests work
// (fs/passthrough through the child's own /proc/self/fd, xattrs through
// it), SIGTERM to the supervisor stops both with status 0, and the socket
// is removed.
func TestNamespaceSandbox(t *testing.T) {
	testutil.RequireRoot(t)
	bin := staticFastfsd(t)
	for _, tc := range []struct {
		mode string
		door sandbox.Door
	}{{"namespace", sandbox.Virtiofs}, {"namespace", sandbox.P9}, {"chroot", sandbox.Virtiofs}, {"chroot", sandbox.P9}} {
		mode, door := tc.mode, tc.door
		t.Run(mode+"/"+door.String(), func(t *testing.T) {
			dir := t.TempDir()
			share := filepath.Join(dir, "share")
			os.Mkdir(share, 0o755)
			os.WriteFile(filepath.Join(share, "hello"), []byte("hello\n"), 0o644)
			sock := filepath.Join(dir, "door.sock")
			var args []string
			if door == sandbox.Virtiofs {
				args = []string{"virtiofs", "--socket-path", sock, "--shared-dir", share, "--sandbox", mode}
			} else {
				args = []string{"9p", "--listen", "unix:" + sock, "--shared-dir", share, "--sandbox", mode}
			}
			d := startCmd(t, bin, exec.Command(bin, args...))
			cmd := d.cmd
			child := nsChild(t, cmd.Process.Pid, d.stderr)
			var root, want syscall.Stat_t
			if err := syscall.Stat(fmt.Sprintf("/proc/%d/root", child), &root); err != nil {
				t.Fatal(err)
			}
			syscall.Stat(share, &want)
			if root.Dev != want.Dev || root.Ino != want.Ino {
				t.Errorf("child's root is %d:%d, want the shared directory %d:%d", root.Dev, root.Ino, want.Dev, want.Ino)
			}
			for _, ns := range []string{"mnt", "pid", "net"} {
				a, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", cmd.Process.Pid, ns))
				b, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", child, ns))
				if mode == "namespace" && (a == "" || a == b) {
					t.Errorf("%s namespace: supervisor %q, child %q: want a new one", ns, a, b)
				}
				if mode == "chroot" && (a == "" || a != b) {
					t.Errorf("%s namespace: supervisor %q, child %q: want the same (chroot makes none)", ns, a, b)
				}
			}
			// The supervisor drops its capabilities once the child runs.
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				sup, _ := procStatus(cmd.Process.Pid)
				if sup["CapEff"] == "0000000000000000" && sup["CapBnd"] == "0000000000000000" && sup["NoNewPrivs"] == "1" {
					break
				}
				if time.Now().After(deadline) {
					t.Errorf("supervisor: CapEff %s CapBnd %s NoNewPrivs %s, want no capabilities and no_new_privs", sup["CapEff"], sup["CapBnd"], sup["NoNewPrivs"])
					break
				}
			}
			st, _ := procStatus(child)
			if caps := fmt.Sprintf("%016x", uint64(sandbox.DefaultCaps(door))); st["CapEff"] != caps || st["NoNewPrivs"] != "1" {
				t.Errorf("CapEff %s NoNewPrivs %s, want %s and 1", st["CapEff"], st["NoNewPrivs"], caps)
			}
			if door == sandbox.Virtiofs {
				virtiofsLookup(t, sock, "hello")
			} else {
				p9Work(t, sock, share)
			}
			d.sigterm(t)
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", child)); err == nil {
				t.Errorf("child %d outlived the supervisor", child)
			}
			if _, err := os.Lstat(sock); !os.IsNotExist(err) {
				t.Errorf("socket left behind: %v", err)
			}
		})
	}
	for _, door := range []string{"virtiofs", "9p"} {
		t.Run("namespace/"+door+"-shares", func(t *testing.T) { testNamespaceShares(t, bin, door) })
	}
}

// virtiofsLookup plays QEMU and the guest: FUSE INIT, then LOOKUP name.
func virtiofsLookup(t *testing.T, sock, name string) {
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
	a := make([]byte, abi.InitInSize)
	in.Marshal(a)
	hdr := func(op abi.Opcode, node uint64, n int) []byte {
		b := make([]byte, abi.InHeaderSize)
		(&abi.InHeader{Len: uint32(abi.InHeaderSize + n), Opcode: op, Unique: 2, NodeID: node}).Marshal(b)
		return b
	}
	out, err := g.Queues[1].Submit(vt.Buffers{In: [][]byte{hdr(abi.OpInit, 0, len(a)), a}, Out: []int{16 + abi.InitOutSize}})
	if err != nil || len(out) < 16 {
		t.Fatalf("INIT: %x %v", out, err)
	}
	n := []byte(name + "\x00")
	out, err = g.Queues[1].Submit(vt.Buffers{In: [][]byte{hdr(abi.OpLookup, 1, len(n)), n}, Out: []int{16 + abi.EntryOutSize}})
	var oh abi.OutHeader
	if err != nil || !oh.Unmarshal(out) || oh.Error != 0 || len(out) != 16+abi.EntryOutSize {
		t.Fatalf("LOOKUP %s: %x %v", name, out, err)
	}
}

// p9Work attaches over the unix socket, reads "hello", creates a file
// with an xattr-free write, and checks the host sees it in share.
func p9Work(t *testing.T, sock, share string) {
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
	_, f, err := root.Walk([]string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Open(hp9.ReadOnly); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, err := f.ReadAt(buf, 0)
	if (err != nil && err != io.EOF) || string(buf[:n]) != "hello\n" {
		t.Fatalf("read: %q %v", buf[:n], err)
	}
	f.Close()
	_, nf, _ := root.Walk(nil)
	nf, _, _, err = nf.Create("new", hp9.WriteOnly, 0o600, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nf.WriteAt([]byte("from the sandbox"), 0); err != nil {
		t.Fatal(err)
	}
	nf.Close()
	if b, err := os.ReadFile(filepath.Join(share, "new")); err != nil || string(b) != "from the sandbox" {
		t.Fatalf("host sees %q %v", b, err)
	}
}
