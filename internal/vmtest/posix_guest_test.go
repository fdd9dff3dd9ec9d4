package vmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// posixMatrixScript runs internal/posixtest's matrix cases (compiled with
// go test -c) on the directory dir in the guest, with a guest tmpfs as the
// native twin, and reports one FASTFS-RESULT named name; the test's own
// output goes to the console prefixed "PT ".
func posixMatrixScript(name, dir string) string {
	return fmt.Sprintf(`
mkdir -p /tmp/ref
chmod 755 /tmp/ref %[2]s
start=$(cut -d' ' -f1 /proc/uptime)
POSIXTEST_DIR=%[2]s POSIXTEST_REF=/tmp/ref /test/posixtest.test -test.run 'TestDir/matrix' -test.v -test.count=1 >/tmp/pt.out 2>&1
rc=$?
end=$(cut -d' ' -f1 /proc/uptime)
sed 's/^/PT /' /tmp/pt.out
steps=$(grep -c 'comparing' /tmp/pt.out)
if [ $rc -eq 0 ] && [ "$steps" -ge 2 ]; then
	echo "FASTFS-RESULT name=%[1]s status=PASS detail=$(grep 'comparing' /tmp/pt.out | sed 's/.*comparing //' | tr '\n' ';') guest seconds $start-$end"
else
	echo "FASTFS-RESULT name=%[1]s status=FAIL detail=exit $rc, $steps cases compared"
fi
`, name, dir)
}

// buildPosixtest compiles internal/posixtest's tests as a static binary
// for the guest.
func buildPosixtest(t *testing.T) string {
	t.Helper()
	pt := filepath.Join(t.TempDir(), "posixtest.test")
	cmd := exec.Command("go", "test", "-c", "-o", pt, "./internal/posixtest")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go test -c ./internal/posixtest: %v\n%s", err, out)
	}
	return pt
}

// checkMatrixResult fails t unless the guest reported name as PASS, with
// the tail of posixtest's output.
func checkMatrixResult(t *testing.T, res *Result, name string) {
	t.Helper()
	r, ok := res.Result(name)
	if !ok || r.Status != "PASS" {
		var out []string
		for _, l := range strings.Split(res.Console, "\n") {
			if s, ok := strings.CutPrefix(strings.TrimRight(l, "\r"), "PT "); ok {
				out = append(out, s)
			}
		}
		t.Errorf("posix matrix in the guest: %+v\n%s", r, tail(strings.Join(out, "\n"), 120))
		return
	}
	t.Logf("guest matrix passed: %s", r.Detail)
}

// TestGuestPosixMatrix runs posixtest's permission and times matrix
// (issue 11) inside the guest on a virtio-fs share served by fastfsd: the
// guest kernel checks permissions and the daemon carries them out, so this
// is the virtio-fs door of the matrix test/fusemount runs on /dev/fuse.
// The callers are guest uids (the test drops to them on a thread; no
// user database is needed). Not with -short.
func TestGuestPosixMatrix(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU guest; not with -short")
	}
	testutil.RequireRoot(t)
	k := RequireGuest(t)
	bin := buildFastfsd(t)
	pt := buildPosixtest(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	be := Fastfsd(bin, "--allow-devices") // the matrix makes char and block devices as root
	res := RunT(t, Config{
		Kernel:  k,
		Shares:  []Share{{Tag: "fastfsd", Dir: dir, Backend: &be, GuestPath: "/mnt/fastfsd"}},
		Files:   []File{{Host: pt, Guest: "/test/posixtest.test"}},
		Script:  posixMatrixScript("posix-matrix", "/mnt/fastfsd"),
		Timeout: 8 * time.Minute,
	})
	checkMatrixResult(t, res, "posix-matrix")
}
