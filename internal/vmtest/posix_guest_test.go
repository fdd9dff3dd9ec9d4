package vmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// posixMatrixScript runs internal/posixtest's matrix cases (compiled with
// go test -c) on the virtio-fs share, with a guest tmpfs as the native
// twin, and reports one FASTFS-RESULT; the test's own output goes to the
// console prefixed "PT ".
const posixMatrixScript = `
mkdir -p /tmp/ref
chmod 755 /tmp/ref /mnt/fastfsd
POSIXTEST_DIR=/mnt/fastfsd POSIXTEST_REF=/tmp/ref /test/posixtest.test -test.run 'TestDir/matrix' -test.v -test.count=1 >/tmp/pt.out 2>&1
rc=$?
sed 's/^/PT /' /tmp/pt.out
steps=$(grep -c 'comparing' /tmp/pt.out)
if [ $rc -eq 0 ] && [ "$steps" -ge 2 ]; then
	echo "FASTFS-RESULT name=posix-matrix status=PASS detail=$(grep 'comparing' /tmp/pt.out | sed 's/.*comparing //' | tr '\n' ';')"
else
	echo "FASTFS-RESULT name=posix-matrix status=FAIL detail=exit $rc, $steps cases compared"
fi
`

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
	pt := filepath.Join(t.TempDir(), "posixtest.test")
	cmd := exec.Command("go", "test", "-c", "-o", pt, "./internal/posixtest")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go test -c ./internal/posixtest: %v\n%s", err, out)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	be := Fastfsd(bin, "--allow-devices") // the matrix makes char and block devices as root
	res := RunT(t, Config{
		Kernel:  k,
		Shares:  []Share{{Tag: "fastfsd", Dir: dir, Backend: &be, GuestPath: "/mnt/fastfsd"}},
		Files:   []File{{Host: pt, Guest: "/test/posixtest.test"}},
		Script:  posixMatrixScript,
		Timeout: 8 * time.Minute,
	})
	r, ok := res.Result("posix-matrix")
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
