package virtiofs_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/testutil"
	"github.com/fastfsd/fastfsd/internal/vmtest"
)

// TestQEMUGuest boots a real QEMU guest on `fastfsd virtiofs` with two
// request queues, reads and writes through the mount, powers off, and
// checks QEMU's vhost-user message sequence as the back-end saw it: the
// start sequence, then GET_VRING_BASE for every started ring (the stop
// sequence QEMU waits on at power-off), then an orderly close.
func TestQEMUGuest(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []string
	}{{"inline", nil}, {"helpers", []string{"--thread-pool-size", "4"}}} {
		t.Run(tc.name, func(t *testing.T) { qemuGuest(t, tc.extra) })
	}
}

func qemuGuest(t *testing.T, extra []string) {
	if testing.Short() {
		t.Skip("boots a VM (~30 s under TCG)")
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
	be := vmtest.Fastfsd(bin, append([]string{"--log-level", "debug", "--num-request-queues", "2"}, extra...)...)
	res := vmtest.RunT(t, vmtest.Config{
		Kernel: k,
		Shares: []vmtest.Share{{Tag: "fs", Dir: dir, GuestPath: "/mnt/fs", Backend: &be, Queues: 2}},
		Script: `
r() { if eval "$2"; then echo "FASTFS-RESULT name=$1 status=PASS detail="; else echo "FASTFS-RESULT name=$1 status=FAIL detail=$2"; fi; }
r read '[ "$(cat /mnt/fs/hello)" = "from the host" ]'
r write 'dd if=/dev/urandom of=/tmp/x bs=64k count=64 2>/dev/null && cp /tmp/x /mnt/fs/x && cmp /tmp/x /mnt/fs/x'
r direct 'dd if=/mnt/fs/x of=/dev/null bs=1M iflag=direct 2>/dev/null'
r parallel '(for i in 1 2 3 4; do cat /mnt/fs/x > /dev/null & done; wait)'
r cpu0 '(i=0; while [ $i -lt 100 ]; do taskset -c 0 stat /mnt/fs/x >/dev/null; i=$((i+1)); done)'
r cpu1 '(i=0; while [ $i -lt 100 ]; do taskset -c 1 stat /mnt/fs/x >/dev/null; i=$((i+1)); done)'
r rm 'rm /mnt/fs/x && [ ! -e /mnt/fs/x ]'
`,
		Timeout: 3 * time.Minute,
	})
	log := res.BackendLogs["fastfsd[fs]"]
	if log == "" {
		for _, l := range res.BackendLogs {
			log = l
		}
	}
	var seq []string
	for _, m := range regexp.MustCompile(`msg="vhostuser: message" request=(\w+)`).FindAllStringSubmatch(log, -1) {
		seq = append(seq, m[1])
	}
	t.Logf("QEMU sent %d messages: %s", len(seq), compress(seq))
	if len(seq) == 0 {
		t.Fatalf("no vhost-user messages logged; backend log:\n%s", log)
	}
	last := strings.LastIndex(strings.Join(seq, " "), "SET_VRING_KICK")
	stops := strings.Count(strings.Join(seq, " ")[max(last, 0):], "GET_VRING_BASE")
	if stops < 2 {
		t.Errorf("only %d GET_VRING_BASE after the last SET_VRING_KICK: the stop sequence did not happen", stops)
	}
	// The guest's virtio-fs driver queues a request on the request queue
	// of the CPU it runs on; the steps pinned to CPU 0 and CPU 1 must have
	// reached both request queues (1 and 2), each served by its worker.
	perQueue := map[string]int{}
	for _, m := range regexp.MustCompile(`msg="virtiofs: queue stopped" queue=(\d+) requests=(\d+)`).FindAllStringSubmatch(log, -1) {
		n, _ := strconv.Atoi(m[2])
		perQueue[m[1]] += n
	}
	t.Logf("requests per queue (0 = hiprio): %v", perQueue)
	if perQueue["1"] < 10 || perQueue["2"] < 10 {
		t.Errorf("requests did not reach both request queues: %v", perQueue)
	}
	if !strings.Contains(log, "front-end closed the connection") {
		t.Errorf("session did not end with an orderly close:\n%s", log)
	}
	if strings.Contains(log, "refused") {
		t.Errorf("the back-end refused a message QEMU sent:\n%s", log)
	}
}

// compress writes runs of the same message as NAME×n.
func compress(seq []string) string {
	var b strings.Builder
	for i := 0; i < len(seq); {
		j := i
		for j < len(seq) && seq[j] == seq[i] {
			j++
		}
		if b.Len() > 0 {
			b.WriteString(" ")
		}
		b.WriteString(seq[i])
		if j-i > 1 {
			b.WriteString("×" + strconv.Itoa(j-i))
		}
		i = j
	}
	return b.String()
}
