package proccpu

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestTreeCPUSumsChildren pins that TreeCPU counts a process's
// descendants: a shell that only waits while its child burns CPU has a
// tree CPU time that grows and a ProcCPU that does not. (fastfs-run's
// guest table charges the C virtiofsd and fastfsd by their trees: both
// serve from a sandboxed child.)
func TestTreeCPUSumsChildren(t *testing.T) {
	// The child spins; the shell waits for it, spending no CPU.
	cmd := exec.Command("sh", "-c", "sh -c 'while :; do :; done' & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	}()
	pid := cmd.Process.Pid
	// On a loaded machine the spinner may get little CPU: wait (up to
	// 20 s) for the tree to reach 200 ms.
	var tree time.Duration
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		var err error
		if tree, err = TreeCPU(pid); err != nil {
			t.Fatal(err)
		}
		if tree >= 200*time.Millisecond {
			break
		}
	}
	own, err := ProcCPU(pid)
	if err != nil {
		t.Fatal(err)
	}
	if tree < 200*time.Millisecond {
		t.Fatalf("TreeCPU = %v after 20 s of a spinning child: children not counted", tree)
	}
	if own > tree/4 {
		t.Errorf("ProcCPU of the waiting shell = %v of a tree's %v: the shell itself should use next to none", own, tree)
	}
	if _, err := TreeCPU(1 << 30); err == nil {
		t.Error("TreeCPU of a PID that does not exist: no error")
	}
}
