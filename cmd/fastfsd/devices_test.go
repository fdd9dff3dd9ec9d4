package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hugelgupf/p9/linux"
	hp9 "github.com/hugelgupf/p9/p9"
	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/testutil"
	vt "github.com/fastfsd/fastfsd/vhostuser/vhostusertest"
)

// mknodFunc asks a door, as a root client, to make name with mode and
// rdev, and returns the errno the door answered (0: made).
type mknodFunc func(t *testing.T, name string, mode, rdev uint32) syscall.Errno

// devNodes are what TestDevicesRefusedByDefault makes through each door:
// the devices are refused without --allow-devices; the rest never are.
var devNodes = []struct {
	name   string
	mode   uint32
	rdev   uint32
	device bool
}{
	{"null", unix.S_IFCHR | 0o644, uint32(unix.Mkdev(1, 3)), true},
	{"loop", unix.S_IFBLK | 0o640, uint32(unix.Mkdev(7, 0)), true},
	{"whiteout", unix.S_IFCHR, 0, false},
	{"fifo", unix.S_IFIFO | 0o644, 0, false},
	{"sock", unix.S_IFSOCK | 0o644, 0, false},
}

// TestDevicesRefusedByDefault: a root client cannot make a character or
// block device in the share through any door (EPERM, nothing on the
// host) unless the daemon runs with --allow-devices; FIFOs, sockets and
// the 0:0 whiteout are made either way. The confined daemon keeps
// CAP_MKNOD only with --allow-devices.
func TestDevicesRefusedByDefault(t *testing.T) {
	testutil.RequireRoot(t)
	doors := []struct {
		name  string
		start func(t *testing.T, allow bool) (share string, pid int, mknod mknodFunc)
	}{
		{"mount", startMountMknod},
		{"virtiofs", startVirtiofsMknod},
		{"9p", startP9Mknod},
	}
	for _, d := range doors {
		for _, allow := range []bool{false, true} {
			name := d.name
			if allow {
				name += ",allow-devices"
			}
			t.Run(name, func(t *testing.T) {
				share, pid, mknod := d.start(t, allow)
				st, err := procStatus(pid)
				if err != nil {
					t.Fatal(err)
				}
				capEff, _ := strconv.ParseUint(st["CapEff"], 16, 64)
				if has := capEff&(1<<unix.CAP_MKNOD) != 0; has != allow {
					t.Errorf("CapEff %s: mknod kept %v, want %v", st["CapEff"], has, allow)
				}
				for _, n := range devNodes {
					want := syscall.Errno(0)
					if n.device && !allow {
						want = syscall.EPERM
					}
					if got := mknod(t, n.name, n.mode, n.rdev); got != want {
						t.Errorf("mknod %s (mode %o rdev %#x): %v, want %v", n.name, n.mode, n.rdev, got, want)
					}
					var st unix.Stat_t
					err := unix.Lstat(filepath.Join(share, n.name), &st)
					switch {
					case want != 0 && err != unix.ENOENT:
						t.Errorf("%s refused, yet the host has it: %v (mode %o)", n.name, err, st.Mode)
					case want == 0 && (err != nil || st.Mode&unix.S_IFMT != n.mode&unix.S_IFMT || uint32(st.Rdev) != n.rdev):
						t.Errorf("%s on the host: mode %o rdev %#x, %v; want mode %o rdev %#x", n.name, st.Mode, st.Rdev, err, n.mode, n.rdev)
					}
				}
			})
		}
	}
}

func allowFlag(allow bool) []string {
	if allow {
		return []string{"--allow-devices"}
	}
	return nil
}

// startMountMknod mounts a share through /dev/fuse; mknod(2) on the mount
// as this (root) process.
func startMountMknod(t *testing.T, allow bool) (string, int, mknodFunc) {
	cmd, src, mnt := startMount(t, allowFlag(allow)...)
	// Confined before the mount serves (the first request's reply).
	if _, err := os.Stat(filepath.Join(mnt, "a")); err != nil {
		t.Fatal(err)
	}
	// As root the serving process is the supervisor's child.
	return src, nsChild(t, cmd.Process.Pid, new(testutil.Buffer)), func(t *testing.T, name string, mode, rdev uint32) syscall.Errno {
		err := unix.Mknod(filepath.Join(mnt, name), mode, int(rdev))
		if err == nil {
			return 0
		}
		var e syscall.Errno
		if !errors.As(err, &e) {
			t.Fatalf("mknod %s: %v", name, err)
		}
		return e
	}
}

// startVirtiofsMknod serves a share to a Go vhost-user front-end and
// sends MKNOD requests from uid 0, as a guest's root would.
func startVirtiofsMknod(t *testing.T, allow bool) (string, int, mknodFunc) {
	share, vc := startVirtiofsClient(t, abi.InitMaxPages, allowFlag(allow)...)
	return share, vc.pid, func(t *testing.T, name string, mode, rdev uint32) syscall.Errno {
		mk := make([]byte, abi.MknodInSize)
		(&abi.MknodIn{Mode: mode, Rdev: rdev}).Marshal(mk)
		return vc.call(abi.OpMknod, abi.RootID, nil, mk, append([]byte(name), 0))
	}
}

// vhostClient sends FUSE requests to a virtiofs door from a Go vhost-user
// front-end, as a guest's root (uid 0) on the first request queue.
type vhostClient struct {
	t      *testing.T
	q      *vt.GuestQueue
	unique uint64
	pid    int // the door's
	// agreed is the INIT reply's flags.
	agreed abi.InitFlags
}

// startVirtiofsClient runs "fastfsd virtiofs" on a fresh share with the
// extra args, connects, and sends INIT offering flags.
func startVirtiofsClient(t *testing.T, flags abi.InitFlags, extra ...string) (string, *vhostClient) {
	share, vc := dialVirtiofs(t, extra...)
	if e := vc.init(flags); e != 0 {
		t.Fatalf("INIT: %v", e)
	}
	return share, vc
}

// init sends INIT offering flags and records what the door agreed to.
func (vc *vhostClient) init(flags abi.InitFlags) syscall.Errno {
	lo, hi := flags.Split()
	in := make([]byte, abi.InitInSize)
	(&abi.InitIn{Major: 7, Minor: abi.KernelMinorVersion, Flags: lo, Flags2: hi}).Marshal(in)
	out, e := vc.reply(abi.OpInit, 0, nil, in)
	if e != 0 {
		return e
	}
	var io abi.InitOut
	io.Unmarshal(out)
	vc.agreed = abi.MakeInitFlags(io.Flags, io.Flags2)
	return 0
}

// dialVirtiofs runs "fastfsd virtiofs" on a fresh share with the extra
// args and connects a front-end with two queues, sending nothing.
func dialVirtiofs(t *testing.T, extra ...string) (string, *vhostClient) {
	dir := t.TempDir()
	share, sock := filepath.Join(dir, "share"), filepath.Join(dir, "vfs.sock")
	os.Mkdir(share, 0o755)
	ch := startDoor(t, "virtiofs", append([]string{"--socket-path=" + sock, "--shared-dir=" + share, "--log-level=warn"}, extra...)...)
	g := dialGuest(t, sock)
	t.Cleanup(func() { g.Stop() })
	return share, &vhostClient{t: t, q: g.Queues[1], unique: 1, pid: ch.cmd.Process.Pid}
}

// call sends op on node with args and the request extensions ext, and
// returns the reply's errno.
func (vc *vhostClient) call(op abi.Opcode, node uint64, ext []byte, args ...[]byte) syscall.Errno {
	_, e := vc.reply(op, node, ext, args...)
	return e
}

// reply is call returning the reply's arguments too.
func (vc *vhostClient) reply(op abi.Opcode, node uint64, ext []byte, args ...[]byte) ([]byte, syscall.Errno) {
	n := len(ext)
	for _, a := range args {
		n += len(a)
	}
	h := make([]byte, abi.InHeaderSize)
	vc.unique++
	(&abi.InHeader{Len: uint32(abi.InHeaderSize + n), Opcode: op, Unique: vc.unique, NodeID: node, TotalExtlen: uint16(len(ext) / 8)}).Marshal(h)
	in := append([][]byte{h}, args...)
	if len(ext) > 0 {
		in = append(in, ext)
	}
	out, err := vc.q.Submit(vt.Buffers{In: in, Out: []int{abi.OutHeaderSize + max(abi.InitOutSize, abi.EntryOutSize+abi.OpenOutSize)}})
	var oh abi.OutHeader
	if err != nil || !oh.Unmarshal(out) {
		vc.t.Fatalf("%v: %x %v", op, out, err)
	}
	return out[abi.OutHeaderSize:], syscall.Errno(-oh.Error)
}

// startP9Mknod serves a share on a unix socket and sends Tmknod from this
// (root) process, which the door identifies by SO_PEERCRED.
func startP9Mknod(t *testing.T, allow bool) (string, int, mknodFunc) {
	dir := t.TempDir()
	share, sock := filepath.Join(dir, "share"), filepath.Join(dir, "9p.sock")
	os.Mkdir(share, 0o755)
	ch := startDoor(t, "9p", append([]string{"--listen", "unix:" + sock, "--shared-dir", share}, allowFlag(allow)...)...)
	var nc net.Conn
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if nc, err = net.Dial("unix", sock); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("dial %s: %v", sock, err)
	}
	c, err := hp9.NewClient(nc, hp9.WithMessageSize(128<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	root, err := c.Attach("")
	if err != nil {
		t.Fatal(err)
	}
	return share, ch.cmd.Process.Pid, func(t *testing.T, name string, mode, rdev uint32) syscall.Errno {
		_, err := root.Mknod(name, hp9.FileMode(mode), unix.Major(uint64(rdev)), unix.Minor(uint64(rdev)), 0, 0)
		if err == nil {
			return 0
		}
		var e linux.Errno
		if !errors.As(err, &e) {
			t.Fatalf("Tmknod %s: %v", name, err)
		}
		return syscall.Errno(e)
	}
}
