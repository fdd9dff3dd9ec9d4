package vmtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// TestGuestPowerOffWithLockWait: a guest powers off while one of its
// processes waits for a flock held by another (issue 10: a lock wait that
// is never granted held its queue, and with it QEMU's stop sequence,
// GET_VRING_BASE). fastfsd answers the wait when the queue stops, so QEMU
// exits within its grace period instead of hanging.
func TestGuestPowerOffWithLockWait(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU guest; not with -short")
	}
	testutil.RequireRoot(t)
	testutil.RequireCommand(t, "flock")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "f"), nil, 0o644)
	bin := buildFastfsd(t)
	be := Fastfsd(bin, "--posix-lock")
	res := RunT(t, Config{
		Shares: []Share{{Tag: "fs", Dir: dir, Backend: &be, GuestPath: "/mnt/fs"}},
		Files:  []File{{Host: "/usr/bin/flock", Guest: "/bin/flock", Libs: true}},
		Script: `
flock /mnt/fs/f sleep 1000 &
sleep 1
flock /mnt/fs/f true &
sleep 2
if kill -0 $! 2>/dev/null; then
	echo "FASTFS-RESULT name=lock-wait-pending status=PASS detail=a flock waits at power-off"
else
	echo "FASTFS-RESULT name=lock-wait-pending status=FAIL detail=the waiter did not wait"
fi
`,
		ExitGrace: 15 * time.Second,
	})
	r, ok := res.Result("lock-wait-pending")
	if !ok || r.Status != "PASS" {
		t.Errorf("the guest had no lock wait pending at power-off: %+v", r)
	}
	if res.HungOnExit {
		t.Errorf("QEMU hung on power-off with a lock wait pending")
	}
	for name, log := range res.BackendLogs {
		if strings.Contains(log, "panic") {
			t.Errorf("%s: %s", name, tail(log, 40))
		}
	}
	t.Logf("power-off with a lock wait pending: run %.1fs, total %.1fs", res.RunTime.Seconds(), res.Total.Seconds())
}
