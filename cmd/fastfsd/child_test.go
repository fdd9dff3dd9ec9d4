package main

import (
	"os"
	"os/exec"
	"testing"

	"github.com/fastfsd/fastfsd/internal/testutil"
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
	c := &child{stderr: new(testutil.Buffer), done: make(chan error, 1)}
	c.cmd = exec.Command(os.Args[0], append([]string{"-test.run=^$"}, args...)...)
	c.cmd.Env = append(os.Environ(), "FASTFSD_TEST_CHILD="+name)
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
			t.Logf("fastfsd %s stderr:\n%s", name, s)
		}
	})
	return c
}
