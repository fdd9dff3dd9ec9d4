package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// The mount tests run "fastfsd mount" as a child process: this test binary
// re-executed with FASTFSD_TEST_MOUNT_CHILD=1 runs runMount on its
// arguments and exits with the status main would give.
func init() {
	// The supervisor's unmount helper is this binary too, started with
	// this environment.
	unmountHelperMain()
	if os.Getenv("FASTFSD_TEST_MOUNT_CHILD") != "1" {
		return
	}
	args := os.Args[1:]
	for len(args) > 0 && strings.HasPrefix(args[0], "-test.") {
		args = args[1:]
	}
	if err := runMount(args); err != nil {
		var st exitStatus
		if errors.As(err, &st) {
			os.Exit(int(st)) // the serving child said why
		}
		os.Stderr.WriteString("fastfsd mount: " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Exit(0)
}

// startMount starts fastfsd mount of a temp dir holding file "a" and waits
// until the mountpoint is a different filesystem (the readiness rule the
// conformance suite uses).
func startMount(t *testing.T, extra ...string) (cmd *exec.Cmd, src, mnt string) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	dir := t.TempDir()
	src, mnt = filepath.Join(dir, "src"), filepath.Join(dir, "mnt")
	os.Mkdir(src, 0o755)
	os.Mkdir(mnt, 0o755)
	os.WriteFile(filepath.Join(src, "a"), []byte("contents of a\n"), 0o644)
	args := append([]string{"-test.run=^$"}, extra...)
	args = append(args, "--source", src, mnt)
	cmd = exec.Command(os.Args[0], args...)
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
	var parent, st syscall.Stat_t
	syscall.Stat(dir, &parent)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := syscall.Stat(mnt, &st); err == nil && st.Dev != parent.Dev {
			return cmd, src, mnt
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not become a mount within 10 s", mnt)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitExit(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return cmd.ProcessState.ExitCode()
	case <-time.After(10 * time.Second):
		t.Fatal("fastfsd mount still running 10 s after it should have ended")
		return -1
	}
}

func mounted(mnt string) bool {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == mnt {
			return true
		}
	}
	return false
}

func TestMountSIGTERM(t *testing.T) {
	for _, splice := range []string{"--splice=on", "--splice=off"} {
		t.Run(splice, func(t *testing.T) {
			cmd, _, mnt := startMount(t, splice, "--passthrough=false")
			out, err := exec.Command("cat", filepath.Join(mnt, "a")).CombinedOutput()
			if err != nil || string(out) != "contents of a\n" {
				t.Fatalf("cat through the mount: %q, %v", out, err)
			}
			if err := exec.Command("sh", "-c", "echo new > "+filepath.Join(mnt, "b")).Run(); err != nil {
				t.Fatalf("write through the mount: %v", err)
			}
			cmd.Process.Signal(syscall.SIGTERM)
			if code := waitExit(t, cmd); code != 0 {
				t.Fatalf("exit status %d after SIGTERM, want 0", code)
			}
			if mounted(mnt) {
				t.Fatalf("%s still mounted after SIGTERM", mnt)
			}
		})
	}
}

func TestMountExternalUmount(t *testing.T) {
	cmd, _, mnt := startMount(t)
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v: %s", err, out)
	}
	if code := waitExit(t, cmd); code != 0 {
		t.Fatalf("exit status %d after external umount, want 0", code)
	}
}

func TestMountBusyAtSIGINT(t *testing.T) {
	cmd, _, mnt := startMount(t)
	// A process with its cwd in the mount keeps it busy.
	hold := exec.Command("sleep", "30")
	hold.Dir = mnt
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { hold.Process.Kill(); hold.Wait() }()
	cmd.Process.Signal(syscall.SIGINT)
	if code := waitExit(t, cmd); code != 0 {
		t.Fatalf("exit status %d after SIGINT with the mount busy, want 0", code)
	}
	if mounted(mnt) {
		t.Fatalf("%s still mounted (a dead mount) after exit", mnt)
	}
}

// TestMountXattrDefaultAndIdmap: the mount door applies the default xattr
// map (a security.* or trusted.* set through the mount lands on the host
// under user.virtiofs.*, and the host's own stay hidden) and
// --translate-uid/--translate-gid (host owners shown translated, files
// created as translated owners).
func TestMountXattrDefaultAndIdmap(t *testing.T) {
	_, src, mnt := startMount(t, "--passthrough=false", "--translate-uid", "map:0:100000:65536", "--translate-gid", "map:0:200000:65536")
	host := filepath.Join(src, "a")
	if err := syscall.Setxattr(host, "trusted.hostsecret", []byte("s"), 0); err != nil {
		t.Fatalf("host setxattr: %v", err)
	}
	if err := os.Chown(host, 101234, 204321); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(mnt, "a"), &st); err != nil || st.Uid != 1234 || st.Gid != 4321 {
		t.Errorf("owner through the mount: %d:%d %v, want 1234:4321", st.Uid, st.Gid, err)
	}
	// As root through the mount (root is host 100000:200000).
	if err := os.WriteFile(filepath.Join(mnt, "new"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(filepath.Join(src, "new"), &st); err != nil || st.Uid != 100000 || st.Gid != 200000 {
		t.Errorf("host owner of a file root created: %d:%d %v, want 100000:200000", st.Uid, st.Gid, err)
	}
	m := filepath.Join(mnt, "a")
	if err := syscall.Setxattr(m, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatalf("setxattr trusted.overlay.opaque through the mount: %v", err)
	}
	buf := make([]byte, 64)
	if n, err := syscall.Getxattr(host, "user.virtiofs.trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("host user.virtiofs.trusted.overlay.opaque = %q, %v", buf[:n], err)
	}
	if _, err := syscall.Getxattr(host, "trusted.overlay.opaque", buf); err != syscall.ENODATA {
		t.Errorf("host trusted.overlay.opaque: %v, want ENODATA", err)
	}
	n, err := syscall.Listxattr(m, buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); got != "trusted.overlay.opaque\x00" {
		t.Errorf("listxattr through the mount = %q, want only trusted.overlay.opaque", got)
	}
	if err := syscall.Setxattr(m, "user.virtiofs.x", []byte("1"), 0); err != syscall.EPERM {
		t.Errorf("setxattr user.virtiofs.x through the mount: %v, want EPERM", err)
	}
}

// TestMountRefusesIgnoredPassthrough: --passthrough given with a cache mode
// where every open is direct I/O would be ignored, so it is refused before
// anything is mounted (the default passthrough is dropped quietly there).
func TestMountRefusesIgnoredPassthrough(t *testing.T) {
	dir := t.TempDir()
	err := runMount([]string{"--passthrough", "--cache=never", "--source", dir, dir})
	if err == nil || !strings.Contains(err.Error(), "nothing would be passed through") {
		t.Fatalf("--passthrough --cache=never: got %v, want a refusal", err)
	}
}

// TestMountRefusesSpliceWithUring: over io_uring a request is read from
// its ring entry's buffer and answered there, never spliced (tried: a
// 20 MB cat and a 10 MB dd through --uring --splice=on --passthrough=false
// made 155 pread64 and 20 pwrite64 and no splice), so --splice=on with
// --uring is refused before anything is mounted. (--fsname "a b" is
// refused later in runMount: so nothing is mounted whatever happens.)
func TestMountRefusesSpliceWithUring(t *testing.T) {
	dir := t.TempDir()
	err := runMount([]string{"--uring", "--splice=on", "--fsname", "a b", "--source", dir, dir})
	if err == nil || !strings.Contains(err.Error(), "never spliced") {
		t.Fatalf("--uring --splice=on: got %v, want a refusal", err)
	}
	for _, mode := range []string{"auto", "off"} {
		err := runMount([]string{"--uring", "--splice=" + mode, "--fsname", "a b", "--source", dir, dir})
		if err == nil || !strings.Contains(err.Error(), "--fsname") {
			t.Errorf("--uring --splice=%s: got %v, want only the --fsname refusal", mode, err)
		}
	}
}
