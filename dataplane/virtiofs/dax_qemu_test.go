package virtiofs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/testutil"
	"github.com/fastfsd/fastfsd/internal/vmtest"
)

// TestQEMUDAXUnsupported boots the installed QEMU (Debian 12's 7.2 here)
// on `fastfsd virtiofs --dax`. A QEMU without vhost-user SHMEM cannot give
// the guest a DAX window: it does not ack the SHMEM protocol bit, never
// sends GET_SHMEM_CONFIG, and its vhost-user-fs-pci has no cache window;
// so the guest's `mount -o dax=always` fails (the kernel refuses DAX on a
// device without a cache window) while a plain mount works. The daemon's
// --dax is harmless there.
func TestQEMUDAXUnsupported(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	testutil.RequireRoot(t)
	k := vmtest.RequireGuest(t)
	testutil.RequireCommand(t, "go")
	bin, err := testutil.BuildFastfsd(t.TempDir(), "fastfsd", []string{"CGO_ENABLED=0"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello"), []byte("from the host\n"), 0o644)
	be := vmtest.Fastfsd(bin, "--log-level", "debug", "--dax", "--cache-size", "64M")
	res := vmtest.RunT(t, vmtest.Config{
		Kernel: k,
		Shares: []vmtest.Share{{Tag: "fs", Dir: dir, Backend: &be}},
		Script: `
r() { if eval "$2"; then echo "FASTFS-RESULT name=$1 status=PASS detail="; else echo "FASTFS-RESULT name=$1 status=FAIL detail=$2"; fi; }
mkdir -p /mnt/d
r dax-always-refused '! mount -t virtiofs -o dax=always fs /mnt/d'
dmesg | grep -i 'virtio-fs\|virtiofs\|dax' | sed 's/^/GUEST-DMESG: /'
r plain-mount 'mount -t virtiofs fs /mnt/d && [ "$(cat /mnt/d/hello)" = "from the host" ]'
r no-dax-in-use '! grep -q "dax" /proc/mounts'
umount /mnt/d
`,
		Timeout: 3 * time.Minute,
	})
	for _, l := range strings.Split(res.Console, "\n") {
		if strings.Contains(l, "GUEST-DMESG") {
			t.Log(strings.TrimSpace(l))
		}
	}
	var log string
	for _, l := range res.BackendLogs {
		log += l
	}
	var seq []string
	for _, m := range regexp.MustCompile(`msg="vhostuser: message" request=(\w+)`).FindAllStringSubmatch(log, -1) {
		seq = append(seq, m[1])
	}
	t.Logf("QEMU sent: %s", compress(seq))
	if len(seq) == 0 {
		t.Fatalf("no vhost-user messages logged; backend log:\n%s", log)
	}
	if strings.Contains(strings.Join(seq, " "), "GET_SHMEM_CONFIG") {
		t.Error("this QEMU asked for GET_SHMEM_CONFIG: it speaks SHMEM, update the test and the docs")
	}
	if strings.Contains(log, "refused") {
		t.Errorf("the back-end refused a message QEMU sent:\n%s", log)
	}
}
