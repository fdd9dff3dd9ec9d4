package vmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// p9HostAddr is where the guest reaches the host's 9P server: an address
// of QEMU's user-mode network that its guestfwd rule hands to a unix
// socket on the host (no route anywhere else: restrict=on).
const p9HostAddr, p9HostPort = "10.0.2.100", "5640"

// p9HostMountScript brings up the guest's network to QEMU's user-mode
// network and mounts the host's 9P server on /mnt/p9 with the guest
// kernel's v9fs (trans=tcp, cache=none: every operation reaches the
// server), reporting mount:p9; a failed mount stops the script, so that
// nothing runs on the bare directory below it.
const p9HostMountScript = `
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0
mkdir -p /mnt/p9
if mount -t 9p -o trans=tcp,port=` + p9HostPort + `,version=9p2000.L,msize=262144,cache=none ` + p9HostAddr + ` /mnt/p9 && grep -q ' /mnt/p9 9p ' /proc/mounts; then
	echo "FASTFS-RESULT name=mount:p9 status=PASS detail=$(grep ' /mnt/p9 ' /proc/mounts)"
else
	echo "FASTFS-RESULT name=mount:p9 status=FAIL detail=mount -t 9p ` + p9HostAddr + ` failed"
	exit 1
fi
`

// TestGuestPosixMatrix9P runs posixtest's permission and times matrix
// (issue 11) on fastfsd's 9P door: `fastfsd 9p` on the host, with its
// defaults (sandbox, seccomp filter, capability drop), serves a unix
// socket; QEMU's user-mode network forwards a guest TCP address to it
// (guestfwd), and the guest kernel's v9fs mounts it. QEMU connects as
// root, so the connection is trusted: the guest kernel checks
// permissions with the caller's credentials (access=client, v9fs's
// default for 9P2000.L) and attaches per uid, and the server carries the
// operations out as the uid the client names (the server-side checks of
// untrusted peers are p9's TestPermMatrix).
//
// Why the server runs on the host: the guest has no virtio-9p transport
// to a server of ours (QEMU's virtio-9p is QEMU's own server), trans=fd
// cannot use a virtio-serial port (the kernel's 9P fd transport writes
// with kernel_write, which the virtio console refuses: "kernel write not
// supported"), and a server inside the guest runs emulated, where
// fastfsd's default seccomp filter, run on every system call of the
// emulated server, made the matrix several times slower (it timed out).
// Over this path the time is the guest's own: v9fs with cache=none keeps
// no dentries, so every path component of every call is a Twalk and a
// Tgetattr. Not with -short.
func TestGuestPosixMatrix9P(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU guest; not with -short")
	}
	testutil.RequireRoot(t)
	k := RequireGuest(t)
	bin := buildFastfsd(t)
	pt := buildPosixtest(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)

	sock := filepath.Join(t.TempDir(), "9p.sock")
	log := &testutil.Buffer{}
	// --allow-devices: the matrix makes character and block devices as root.
	// --handshake-timeout 0: QEMU's guestfwd chardev connects when the VM
	// starts, and the guest's Tversion comes only once it has booted and
	// mounts (10.6 s after in one CI run under load, past the 10 s
	// default, which closed the connection and left the mount hanging).
	srv := exec.Command(bin, "9p", "--listen", "unix:"+sock, "--shared-dir", dir, "--allow-devices", "--handshake-timeout", "0")
	srv.Stdout, srv.Stderr = log, log
	srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		t.Fatalf("start fastfsd 9p: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			srv.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("fastfsd 9p output:\n%s", tail(log.String(), 60))
		}
	}()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if st, err := os.Stat(sock); err == nil && st.Mode()&os.ModeSocket != 0 {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("fastfsd 9p exited before opening its socket (%v):\n%s", err, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("fastfsd 9p opened no socket at %s:\n%s", sock, log.String())
		}
	}

	res := RunT(t, Config{
		Kernel:  k,
		Modules: append(append([]string{}, DefaultModules...), "virtio_net"),
		Files:   []File{{Host: pt, Guest: "/test/posixtest.test"}},
		ExtraQEMUArgs: []string{
			"-netdev", "user,id=p9net,restrict=on,guestfwd=tcp:" + p9HostAddr + ":" + p9HostPort + "-unix:" + sock,
			"-device", "virtio-net-pci,netdev=p9net",
		},
		Script:  p9HostMountScript + posixMatrixScript("posix-matrix-9p", "/mnt/p9") + "umount /mnt/p9\n",
		Timeout: 8 * time.Minute,
	})
	if r, ok := res.Result("mount:p9"); !ok || r.Status != "PASS" {
		t.Fatalf("9P mount in the guest: %+v", r)
	}
	checkMatrixResult(t, res, "posix-matrix-9p")
}
