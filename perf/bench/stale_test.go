package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// mounted reports whether dir is a mount point, from the mount table (a
// dead FUSE mount answers ENOTCONN to stat).
func mounted(t *testing.T, dir string) bool {
	t.Helper()
	infos, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
	if err != nil {
		t.Fatal(err)
	}
	return len(infos) > 0
}

// TestDetachStale leaves what a killed fastfs-bench leaves under its work
// directory — tmpfs mounts, one with a mount beneath it, and a FUSE
// mount whose daemon is gone (ENOTCONN, which made the next run's MkdirAll
// fail with "file exists") — plus a mount in a sibling directory whose
// name starts with the work directory's, and checks that DetachStale
// detaches exactly the ones beneath work, logs each, and that MkdirAll
// works again.
func TestDetachStale(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	top := t.TempDir()
	work := filepath.Join(top, "work")
	sibling := filepath.Join(top, "work2")
	src := filepath.Join(work, "src-fastfsd")
	nested := filepath.Join(src, "inner")
	mnt := filepath.Join(work, "mnt-fastfsd")
	for _, d := range []string{src, mnt, sibling} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tmpfs := func(d string) {
		t.Helper()
		if err := unix.Mount("tmpfs", d, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatalf("mount tmpfs on %s: %v", d, err)
		}
		t.Cleanup(func() { unix.Unmount(d, unix.MNT_DETACH) })
	}
	tmpfs(src)
	if err := os.Mkdir(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	tmpfs(nested)
	tmpfs(sibling)
	// A FUSE mount whose server is gone: closing the device aborts the
	// connection, and every access then fails with ENOTCONN.
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.Mount("fastfs-bench-test", mnt, "fuse", 0, fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0", fd))
	unix.Close(fd)
	if err != nil {
		t.Fatalf("mount fuse on %s: %v", mnt, err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	if err := os.MkdirAll(mnt, 0o755); err == nil || !strings.Contains(err.Error(), "file exists") {
		t.Fatalf("MkdirAll of a dead FUSE mount: %v, want the stale-mount failure (file exists)", err)
	}
	want := []string{nested, mnt, src}

	var log bytes.Buffer
	got, err := DetachStale(work, &log)
	if err != nil {
		t.Fatalf("DetachStale: %v", err)
	}
	if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) ||
		slices.Index(got, nested) > slices.Index(got, src) {
		t.Errorf("DetachStale detached %q, want %q with %s before the mount it is on", got, want, nested)
	}
	for _, d := range want {
		if mounted(t, d) {
			t.Errorf("%s still mounted after DetachStale", d)
		}
		if !strings.Contains(log.String(), d+" (left by an earlier run)") {
			t.Errorf("no log line for %s in %q", d, log.String())
		}
	}
	if !mounted(t, sibling) {
		t.Errorf("DetachStale(%s) detached %s, which is not beneath it", work, sibling)
	}
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Errorf("MkdirAll(%s) after DetachStale: %v", mnt, err)
	}
	// Nothing left: a second call detaches nothing and says nothing.
	log.Reset()
	if got, err := DetachStale(work, &log); err != nil || len(got) != 0 || log.Len() != 0 {
		t.Errorf("second DetachStale: %q, %v, log %q; want nothing", got, err, log.String())
	}
}
