package memfs_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/fs/memfs"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/internal/posixtest"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// serveEnv names the mount point a re-executed test binary serves a memfs
// on (see TestMain): the suite must not run in the serving process (see
// package fusedev on os.Open of one's own mount).
const serveEnv = "MEMFS_TEST_SERVE"

func TestMain(m *testing.M) {
	if mnt := os.Getenv(serveEnv); mnt != "" {
		os.Exit(serve(mnt))
	}
	posixtest.Main(m)
}

// serve mounts a fresh memfs at mnt, says "ready" on stdout, and serves
// until SIGTERM or an unmount.
func serve(mnt string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	m, err := fastfs.Mount(ctx, memfs.New(nil), mnt, &fastfs.MountOptions{FSName: "memfs", AllowOther: true, Fuse: fuse.Options{Locks: true}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	if err := m.Wait(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startServer mounts a memfs at mnt in a child process and stops it at
// the end of the test; it returns the child's pid.
func startServer(t *testing.T, mnt string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), serveEnv+"="+mnt)
	out := &testutil.Buffer{}
	cmd.Stderr = out
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- strings.TrimSpace(line) == "ready"
	}()
	select {
	case ok := <-ready:
		if !ok {
			cmd.Wait()
			t.Fatalf("memfs server did not start: %s", out.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("memfs server not ready after 30 s: %s", out.String())
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("memfs server: %v: %s", err, out.String())
			}
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Errorf("memfs server did not exit within 20 s of SIGTERM: %s", out.String())
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
		if s := out.String(); strings.Contains(s, "panic:") || strings.Contains(s, "DATA RACE") {
			t.Errorf("memfs server output reports a panic or race:\n%s", s)
		}
	})
	return cmd.Process.Pid
}

// TestPosixFUSE runs the conformance suite on a memfs mounted through
// /dev/fuse with fastfs.Mount (default_permissions, allow_other, and
// fuse.Options.Locks: the client sends every lock to memfs's lock table).
func TestPosixFUSE(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	top := t.TempDir()
	for _, d := range []string{filepath.Dir(top), top} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mnt, ref := filepath.Join(top, "mnt"), filepath.Join(top, "ref")
	for _, d := range []string{mnt, ref} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The reference is a tmpfs, the filesystem memfs answers like where
	// Linux filesystems differ (fallocate modes, the largest file).
	if err := syscall.Mount("tmpfs", ref, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("mount a tmpfs for the reference: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(ref, syscall.MNT_DETACH) })
	startServer(t, mnt)
	env := posixtest.Env{
		Dir:   mnt,
		Ref:   ref,
		Lacks: posixLacks,
		// No ServerPid: memfs waits for a lock on a channel, not in
		// fcntl or flock, which is what the lock cases look for.
	}
	// Small bulk sizes, -short or not: the engine's bulk paths are
	// test/fusemount's to load; here they check memfs's data (2.5 min
	// under -race at the default sizes).
	env.FioJobMiB, env.TarFiles = 16, 500
	posixtest.Run(t, env)
}

// posixLacks is what memfs does not offer on any door.
var posixLacks = map[posixtest.Cap]string{
	posixtest.CapBtime: "memfs keeps no birth time (statx falls back to GETATTR)",
}
