package vmtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// TestGuestBoots boots the guest with a virtio-9p share and a trivial
// script: the harness itself works.
func TestGuestBoots(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU guest; not with -short")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello"), []byte("hi\n"), 0o644)
	testutil.RequireRoot(t)
	res := RunT(t, Config{
		Shares: []Share{{Tag: "p9", Dir: dir, GuestPath: "/mnt/p9"}},
		Script: `
. /etc/fastfs/env
if [ "$(cat /mnt/p9/hello)" = hi ]; then echo "FASTFS-RESULT name=read status=PASS detail=ok"; else echo "FASTFS-RESULT name=read status=FAIL detail=$(ls -la /mnt/p9)"; fi
fio --version >/dev/null && echo "FASTFS-RESULT name=fio status=PASS detail=$(fio --version)" || echo "FASTFS-RESULT name=fio status=FAIL detail=fio does not run"
getfattr --version >/dev/null && echo "FASTFS-RESULT name=attr status=PASS detail=" || echo "FASTFS-RESULT name=attr status=FAIL detail=getfattr does not run"
`,
	})
	if _, ok := res.Result("read"); !ok {
		t.Errorf("no read result")
	}
}
