package probe

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// TestProbeCountsGetattr mounts fastfsd with caching off, makes a known
// number of fstat calls (each one a FUSE GETATTR round trip, the attributes
// never being cached), and checks the probe counted at least that many
// GETATTRs on that connection, with plausible latencies.
func TestProbeCountsGetattr(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	dir := t.TempDir()
	bin, err := testutil.BuildFastfsd(dir, "fastfsd", nil)
	if err != nil {
		t.Fatal(err)
	}
	src, mnt := filepath.Join(dir, "src"), filepath.Join(dir, "mnt")
	os.Mkdir(src, 0o755)
	os.Mkdir(mnt, 0o755)
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := exec.Command(bin, "mount", "--cache", "never", "--source", src, mnt)
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Unmount(mnt, 0)
		done := make(chan error, 1)
		go func() { done <- srv.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			srv.Process.Kill()
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		var sfs unix.Statfs_t
		if unix.Statfs(mnt, &sfs) == nil && sfs.Type == 0x65735546 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("fastfsd did not mount within 20 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn, err := ConnOf(mnt)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Attach(Options{Conn: conn})
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	defer p.Close()
	fd, err := unix.Open(filepath.Join(mnt, "f"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	const n = 3000
	var st unix.Stat_t
	for i := 0; i < n; i++ {
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
	}
	s, err := p.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var got *Stats
	for i := range s.Fuse {
		if s.Fuse[i].Name == "GETATTR" {
			got = &s.Fuse[i]
		}
	}
	if got == nil || got.Count < n {
		t.Fatalf("probe (%s mode) counted %+v GETATTR round trips, want ≥ %d", s.Mode, got, n)
	}
	if got.P50.Value <= 0 || got.P50.Value > 50*time.Millisecond || got.P99.Value < got.P50.Value || got.Max < got.P99.Value || got.Errors != 0 {
		t.Fatalf("implausible GETATTR latencies: %+v", got)
	}
	if got.Hist.Total() != got.Count {
		t.Fatalf("histogram holds %d samples, count is %d", got.Hist.Total(), got.Count)
	}
	t.Logf("%s mode: %d GETATTR, p50 %v p99 %v max %v", s.Mode, got.Count, got.P50.Value, got.P99.Value, got.Max)
}
