package p9

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/testutil"
	"github.com/fastfsd/fastfsd/internal/vmtest"
)

// TestKernelMountInGuest runs TestKernelMount inside the QEMU guest of
// internal/vmtest: the host kernel of the development and CI machines has
// no 9p, the guest's has 9p and 9pnet_fd. It builds this package's test
// binary statically, boots the guest, brings up loopback and runs
// -test.run '^TestKernelMount$' there (the server and the v9fs mount both
// in the guest, over tcp on 127.0.0.1).
func TestKernelMountInGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM; not in -short")
	}
	testutil.RequireRoot(t)
	k := vmtest.RequireGuest(t)
	testutil.RequireCommand(t, "go")
	bin := filepath.Join(t.TempDir(), "p9.test")
	cmd := exec.Command("go", "test", "-c", "-o", bin, ".")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go test -c: %v\n%s", err, out)
	}
	res := vmtest.RunT(t, vmtest.Config{
		Kernel:  k,
		Files:   []vmtest.File{{Host: bin, Guest: "/p9.test", Mode: 0o755}},
		Timeout: 8 * time.Minute,
		Script: `
ifconfig lo 127.0.0.1 up 2>/dev/null || ip link set lo up
mkdir -p /tmp
if /p9.test -test.run '^TestKernelMount$' -test.v -test.count=1 >/tmp/out 2>&1; then st=PASS; else st=FAIL; fi
cat /tmp/out
if grep -q -- '--- SKIP: TestKernelMount ' /tmp/out; then st=FAIL; fi
echo "FASTFS-RESULT name=kernel-mount status=$st detail=$(grep -c -- '    --- PASS' /tmp/out) modes passed"
`,
	})
	if r, ok := res.Result("kernel-mount"); !ok || r.Status != "PASS" {
		t.Errorf("kernel-mount in the guest: %+v (found %v)", r, ok)
	}
}
