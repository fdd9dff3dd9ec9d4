package fusedev

import (
	"context"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// openFds counts this process's open fds.
func openFds(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// TestAdoptPrepared: a connection handed to another Conn (Adopt, as
// fastfsd mount's namespace child gets it) and prepared ahead (Prepare)
// serves with the fds Prepare cloned — one per worker past the first —
// and its Unmount calls the adopter's unmount, which ends Serve; Serve
// refuses options other than those prepared; Close releases unused
// prepared fds.
func TestAdoptPrepared(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	mnt := t.TempDir()
	host, err := Mount(mnt, MountOptions{DefaultPermissions: true})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	defer unix.Unmount(mnt, unix.MNT_DETACH)

	// Prepare's fds are released by Close if Serve never takes them.
	fd0, err := unix.Dup(host.Fd())
	if err != nil {
		t.Fatal(err)
	}
	spare := Adopt(fd0, mnt, func() error { return nil })
	fsys := newTestFS(t) // opens its backing files
	before := openFds(t)
	if err := spare.Prepare(ServeOptions{Workers: 3, Splice: SpliceOff}); err != nil {
		t.Fatal(err)
	}
	if n := openFds(t) - before; n != 2 {
		t.Errorf("Prepare for 3 workers opened %d fds, want 2 (the first worker reads the mount's fd)", n)
	}
	if err := spare.Serve(context.Background(), fsys, fuse.Options{}, ServeOptions{Workers: 2, Splice: SpliceOff}); err == nil || !strings.Contains(err.Error(), "prepared for 3 workers") {
		t.Errorf("Serve with other options than prepared: %v, want a refusal", err)
	}
	spare.Close()
	if n := openFds(t) - before; n != -1 {
		t.Errorf("after Close: %d fds more than before Prepare, want -1 (the adopted fd)", n)
	}

	fd, err := unix.Dup(host.Fd())
	if err != nil {
		t.Fatal(err)
	}
	var unmounts atomic.Int32
	c := Adopt(fd, mnt, func() error {
		unmounts.Add(1)
		return host.Unmount() // the supervisor's part
	})
	defer c.Close()
	opts := ServeOptions{Workers: 2, Splice: SpliceOn}
	if err := c.Prepare(opts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx, fsys, fuse.Options{}, opts) }()
	checkFiles(t, &served{c: c, mnt: mnt, fsys: fsys})
	if st := c.WorkerStats(); len(st) != 2 {
		t.Errorf("%d workers, want 2", len(st))
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return 10 s after cancel")
	}
	if unmounts.Load() == 0 {
		t.Error("the adopted Conn's Unmount did not call the adopter's unmount")
	}
	if isMounted(t, mnt) {
		t.Errorf("%s still mounted", mnt)
	}
}
