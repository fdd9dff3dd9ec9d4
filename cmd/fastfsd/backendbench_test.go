package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/testutil"
	"github.com/fastfsd/fastfsd/internal/vhostload"
)

// TestBackendLoadSmoke drives `fastfsd virtiofs` with the guest-less load
// generator behind `make bench-backend` (internal/vhostload): every kind of
// the mix, on one and two request queues, a few dozen operations each. It
// fails if a kind errors, completes nothing, or the CPU reading breaks.
func TestBackendLoadSmoke(t *testing.T) {
	testutil.RequireRoot(t) // CREATE as uid 0 switches the worker to uid 0
	dir := t.TempDir()
	tree, err := vhostload.MakeTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, queues := range []int{1, 2} {
		sock := filepath.Join(t.TempDir(), "vfs.sock")
		// A child process: the door confines the process it runs in.
		ch := startDoor(t, "virtiofs", "--socket-path="+sock, "--shared-dir="+dir, "--num-request-queues=2", "--log-level", "warn")
		done := ch.done
		s, err := vhostload.Connect(vhostload.Config{Socket: sock, Queues: queues, Depth: 4, Tree: tree,
			Prefix: "smoke", PID: ch.cmd.Process.Pid})
		if err != nil {
			t.Fatalf("%d queues: %v", queues, err)
		}
		const ops = 25
		for _, k := range vhostload.Kinds {
			r, err := s.Run(k, 10*time.Second, ops)
			if err != nil {
				t.Fatalf("%d queues, %v: %v", queues, k, err)
			}
			if r.Errors != 0 || r.Ops < uint64(ops*queues) {
				t.Errorf("%d queues, %v: %d ops, %d errors (%s); want ≥ %d ops and no error", queues, k, r.Ops, r.Errors, r.FirstError, ops*queues)
			}
			if r.CPU < 0 || r.Wall <= 0 {
				t.Errorf("%d queues, %v: CPU %v over %v", queues, k, r.CPU, r.Wall)
			}
		}
		if err := s.Close(); err != nil {
			t.Errorf("%d queues: stop: %v", queues, err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("virtiofs: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("virtiofs did not exit after the front-end disconnected")
		}
	}
	if n, _ := os.ReadDir(dir); len(n) < 2+2*25 {
		t.Errorf("%d entries in the tree: CREATE made fewer files than it counted", len(n))
	}
}
