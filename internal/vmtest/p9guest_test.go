package vmtest

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// p9GuestScript starts `fastfsd 9p` inside the guest on 127.0.0.1:5640 and
// on a unix socket (each serving a tmpfs directory), mounts both with the
// guest's v9fs client (trans=tcp, trans=unix) and runs correctness.sh on
// each. No host backend: the guest is client and server at once.
const p9GuestScript = `
mkdir -p /srv/tcp /srv/unix /mnt/tcp /mnt/unix
fastfsd 9p --listen tcp:127.0.0.1:5640 --shared-dir /srv/tcp >/tmp/9p-tcp.log 2>&1 &
fastfsd 9p --listen unix:/run/fastfs-9p.sock --shared-dir /srv/unix >/tmp/9p-unix.log 2>&1 &
try() { i=0; while [ $i -lt 100 ]; do "$@" 2>/dev/null && return 0; sleep 0.1; i=$((i+1)); done; "$@"; }
if try mount -t 9p -o trans=tcp,port=5640,version=9p2000.L,msize=524288 127.0.0.1 /mnt/tcp; then
	echo "FASTFS-RESULT name=mount:tcp status=PASS detail=trans=tcp 127.0.0.1:5640"
	NAME_PREFIX=tcp/ sh /test/correctness.sh /mnt/tcp
	umount /mnt/tcp
else
	echo "FASTFS-RESULT name=mount:tcp status=FAIL detail=$(tr '\n' ' ' </tmp/9p-tcp.log)"
fi
if try mount -t 9p -o trans=unix,version=9p2000.L,msize=524288 /run/fastfs-9p.sock /mnt/unix; then
	echo "FASTFS-RESULT name=mount:unix status=PASS detail=trans=unix /run/fastfs-9p.sock"
	# The heavy steps ran over tcp already; the server and client are both
	# emulated here, so keep the second pass short.
	SKIP="bigdir fio-seq-verify fio-rand-verify md5" NAME_PREFIX=unix/ sh /test/correctness.sh /mnt/unix
	umount /mnt/unix
else
	echo "FASTFS-RESULT name=mount:unix status=FAIL detail=$(tr '\n' ' ' </tmp/9p-unix.log)"
fi
kill %1 %2 2>/dev/null
wait
true
`

// TestGuest9PInGuest runs fastfsd's 9P server inside the guest and mounts
// it over tcp and unix sockets with the guest kernel's v9fs. Client and
// server both run emulated (about 45 s on a quiet 2-CPU host, minutes when
// loaded); the sizes are kept small. Not with -short.
func TestGuest9PInGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU guest running client and server; not with -short")
	}
	testutil.RequireRoot(t)
	k := RequireGuest(t)
	bin := buildFastfsd(t)
	if out, err := exec.Command(bin, "9p", "--help").CombinedOutput(); err != nil && !strings.Contains(string(out), "--listen") {
		t.Fatalf("fastfsd 9p --help: %v: %s", err, firstLine(string(out)))
	}
	res := RunT(t, Config{
		Kernel: k,
		Files: []File{
			{Host: bin, Guest: "/bin/fastfsd"}, // static: CGO_ENABLED=0
			{Host: filepath.Join(guestScripts, "correctness.sh"), Guest: "/test/correctness.sh"},
		},
		// Guest-side tmpfs: keep the sizes small (1 GiB of guest RAM).
		Env:     map[string]string{"BIGDIR_FILES": "300", "FIO_SIZE": "8M", "MD5_MB": "8"},
		Script:  p9GuestScript,
		Timeout: 6 * time.Minute,
	})
	for _, m := range []string{"mount:tcp", "mount:unix"} {
		if r, ok := res.Result(m); !ok || r.Status != "PASS" {
			t.Errorf("%s: %+v", m, r)
		}
	}
}
