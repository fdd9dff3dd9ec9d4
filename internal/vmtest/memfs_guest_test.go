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

// memfsPosixScript runs internal/posixtest (compiled with go test -c) on
// two doors of examples/memfs: the virtio-fs share the host serves at
// /mnt/memfs, and a 9P server the guest runs itself (memfs -9p on a unix
// socket, mounted by the guest's v9fs). The reference twin is a guest
// tmpfs. Each door reports one FASTFS-RESULT; the suite's output goes to
// the console prefixed "PT-<door> ". The bulk cases (fio, tar, a
// 10,000-entry directory) are left out: under TCG they take minutes, and
// the host's run (fs/memfs TestPosixFUSE) has them.
const memfsPosixScript = `
mkdir -p /tmp/ref /mnt/p9
mount -t tmpfs -o mode=0755 tmpfs /tmp/ref
chmod 755 /mnt/memfs
memfs -9p unix:/run/memfs-9p.sock >/tmp/memfs-9p.log 2>&1 &
try() { i=0; while [ $i -lt 100 ]; do "$@" 2>/dev/null && return 0; sleep 0.1; i=$((i+1)); done; "$@"; }
if ! try mount -t 9p -o trans=unix,version=9p2000.L,msize=524288 /run/memfs-9p.sock /mnt/p9; then
	echo "FASTFS-RESULT name=posix:9p status=FAIL detail=mount: $(tr '\n' ' ' </tmp/memfs-9p.log)"
fi
chmod 755 /mnt/p9
for door in virtiofs:/mnt/memfs 9p:/mnt/p9; do
	name=${door%%:*}
	dir=${door#*:}
	grep -q " $dir " /proc/mounts || continue
	lacks=btime,fio,tar,bigdir
	skip='^$'
	if [ $name = 9p ]; then
		# 9P2000.L has no message for these.
		lacks=$lacks,fallocate,seek-hole,rename-flags,tmpfile
		# The guest's v9fs, not memfs (which passes them on virtio-fs):
		# no shared writable mmap without cache=mmap, and timestamps
		# set through it lose their nanoseconds.
		skip='TestDir/(mmap|attr_chmod_chown_utimens)$'
	fi
	POSIXTEST_DIR=$dir POSIXTEST_REF=/tmp/ref POSIXTEST_LACKS=$lacks /test/posixtest.test -test.run "$MEMFS_CASES" -test.skip "$skip" -test.v -test.count=1 -test.timeout 9m >/tmp/pt-$name.out 2>&1
	rc=$?
	sed "s/^/PT-$name /" /tmp/pt-$name.out
	pass=$(grep -c -- '--- PASS: TestDir/' /tmp/pt-$name.out)
	fail=$(grep -- '--- FAIL: TestDir/' /tmp/pt-$name.out | sed 's/.*TestDir\///; s/ .*//' | tr '\n' ',')
	if [ $rc -eq 0 ] && [ "$pass" -ge "$MEMFS_MIN_PASS" ]; then
		echo "FASTFS-RESULT name=posix:$name status=PASS detail=$pass cases passed"
	else
		echo "FASTFS-RESULT name=posix:$name status=FAIL detail=exit $rc, $pass cases passed, failed: $fail"
	fi
done
umount /mnt/p9 2>/dev/null
kill %1 2>/dev/null
true
`

// TestGuestMemfsPosix runs the conformance suite on examples/memfs
// through the two doors a guest has: virtio-fs (the host serves memfs to
// QEMU's vhost-user-fs-pci) and 9P (memfs serves 9P2000.L inside the
// guest to the guest kernel's v9fs; this host's kernel has no 9p). The
// /dev/fuse door is fs/memfs's TestPosixFUSE. Not with -short.
//
// The whole suite takes about 8 minutes under TCG, too long for every CI
// run: by default a subset runs (files, directories, names, links,
// xattrs, locks, statfs: a minute or two), and FASTFSD_VMTEST_MEMFS_FULL=1
// runs every case (all pass on virtio-fs; on 9P all but what the protocol
// or the guest's v9fs lacks, skipped in the script with the reason).
func TestGuestMemfsPosix(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU guest; not with -short")
	}
	testutil.RequireRoot(t)
	k := RequireGuest(t)
	testutil.RequireCommand(t, "go")
	tmp := t.TempDir()
	memfs, pt := filepath.Join(tmp, "memfs"), filepath.Join(tmp, "posixtest.test")
	for _, args := range [][]string{
		{"build", "-o", memfs, "./examples/memfs"},
		{"test", "-c", "-o", pt, "./internal/posixtest"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = "../.."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	dir := t.TempDir() // unused by memfs; the share wants one
	be := Backend{Name: "memfs", Args: func(socket, _ string) []string { return []string{memfs, "-virtiofs", socket} }}
	cases, minPass := "TestDir/(file_|dir_mkdir|link_|rename$|xattr|lock_posix|lock_flock|statfs|mknod_fifo)", "8"
	if os.Getenv("FASTFSD_VMTEST_MEMFS_FULL") == "1" {
		cases, minPass = "TestDir", "20"
	}
	res := RunT(t, Config{
		Kernel:  k,
		Env:     map[string]string{"MEMFS_CASES": cases, "MEMFS_MIN_PASS": minPass},
		Shares:  []Share{{Tag: "memfs", Dir: dir, Backend: &be, GuestPath: "/mnt/memfs"}},
		Files:   []File{{Host: pt, Guest: "/test/posixtest.test"}, {Host: memfs, Guest: "/bin/memfs"}},
		Script:  memfsPosixScript,
		Timeout: 22 * time.Minute,
	})
	for _, door := range []string{"virtiofs", "9p"} {
		r, ok := res.Result("posix:" + door)
		if ok && r.Status == "PASS" {
			t.Logf("%s: %s", door, r.Detail)
			continue
		}
		var out []string
		for _, l := range strings.Split(res.Console, "\n") {
			if s, ok := strings.CutPrefix(strings.TrimRight(l, "\r"), "PT-"+door+" "); ok {
				out = append(out, s)
			}
		}
		t.Errorf("posix suite on memfs over %s in the guest: %+v\n%s", door, r, tail(strings.Join(out, "\n"), 6000))
	}
}
