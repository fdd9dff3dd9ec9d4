package main

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/testutil"
	vt "github.com/fastfsd/fastfsd/vhostuser/vhostusertest"
)

// Serving doors confine the process they run in (internal/sandbox), for
// good: tests run them as a child process (see the init in
// observe_test.go, FASTFSD_TEST_CHILD).

// child is a running "fastfsd NAME" started by startDoor.
type child struct {
	cmd    *exec.Cmd
	stderr *testutil.Buffer
	done   chan error // receives cmd.Wait's result once
}

// startDoor starts "fastfsd name args…" as a child process; it is killed
// at the end of the test if still running, and its stderr is logged.
func startDoor(t *testing.T, name string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$"}, args...)...)
	cmd.Env = append(os.Environ(), "FASTFSD_TEST_CHILD="+name)
	return startCmd(t, "fastfsd "+name, cmd)
}

// startCmd starts cmd (a fastfsd, named what in the log) with its stderr
// captured; it is killed at the end of the test if still running, and its
// stderr is logged.
func startCmd(t *testing.T, what string, cmd *exec.Cmd) *child {
	t.Helper()
	c := &child{cmd: cmd, stderr: new(testutil.Buffer), done: make(chan error, 1)}
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			<-c.done
		}
		if s := c.stderr.String(); s != "" {
			t.Logf("%s stderr:\n%s", what, s)
		}
	})
	return c
}

// sigterm sends SIGTERM and waits up to 10 s for an exit, which must be
// status 0.
func (c *child) sigterm(t *testing.T) {
	t.Helper()
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v, want status 0", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10 s after SIGTERM")
	}
}

// dialGuest connects a front-end to the vhost-user socket sock (retrying
// for up to 10 s while the door starts) and sets up a guest with two
// queues, both closed at the end of the test.
func dialGuest(t *testing.T, sock string) *vt.Guest {
	t.Helper()
	var f *vt.Frontend
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if f, err = vt.Dial(sock); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("dial %s: %v", sock, err)
	}
	t.Cleanup(func() { f.Close() })
	g, err := vt.NewGuest(f, vt.GuestConfig{Queues: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	return g
}
