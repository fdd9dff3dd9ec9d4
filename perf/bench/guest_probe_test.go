package bench

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/testutil"
	"github.com/fastfsd/fastfsd/internal/vmtest"
	"github.com/fastfsd/fastfsd/perf/probe"
)

// TestGuestProbe boots a guest with fastfsd as its virtio-fs backend, runs
// `fastfsd probe` inside the guest around a known number of stat calls on
// the share, and checks the probe counted at least as many LOOKUP+GETATTR
// round trips on that mount, with plausible latencies — the same probe
// output `make run` prints.
func TestGuestProbe(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU guest")
	}
	k := vmtest.RequireGuest(t)
	dir := t.TempDir()
	host, err := testutil.BuildFastfsd(dir, "fastfsd", nil)
	if err != nil {
		t.Fatal(err)
	}
	guest, err := testutil.BuildFastfsd(dir, "fastfsd-static", []string{"CGO_ENABLED=0"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 400
	backend := vmtest.Fastfsd(host, "--cache", "never")
	// One vCPU, a TCG workaround: enabling the probe's tracepoints
	// patches kernel text. text_poke_bp makes that safe on real CPUs, yet
	// a TCG guest once called address 0 from __fuse_simple_request on the
	// other vCPU right after (QEMU's cross-vCPU handling of modified code,
	// or a bug not found); with one vCPU no other CPU runs that text. The
	// guests of internal/vmtest and make run keep 2 vCPUs.
	res := vmtest.RunT(t, vmtest.Config{
		Kernel: k,
		CPUs:   1,
		Files:  []vmtest.File{{Host: guest, Guest: "/bin/fastfsd", Mode: 0o755}},
		Shares: []vmtest.Share{{Tag: "fastfs", Dir: t.TempDir(), Backend: &backend, Queues: 1, GuestPath: "/mnt/fastfs"}},
		Script: `
touch /mnt/fastfs/f
/bin/fastfsd probe --mount /mnt/fastfs --json > /tmp/probe.json 2>/tmp/probe.err &
PP=$!
sleep 1
i=0; while [ $i -lt ` + strconv.Itoa(n) + ` ]; do stat /mnt/fastfs/f >/dev/null || exit 1; i=$((i+1)); done
kill -INT $PP; wait $PP
echo "FASTFS-PROBE $(tr -d '\n' < /tmp/probe.json)"
sed 's/^/probe: /' /tmp/probe.err
`,
		Timeout: 5 * time.Minute,
	})
	i := strings.Index(res.Console, "FASTFS-PROBE ")
	if i < 0 {
		t.Fatal("the guest printed no probe output")
	}
	line := res.Console[i+len("FASTFS-PROBE "):]
	if j := strings.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	var s probe.Snapshot
	if err := json.Unmarshal([]byte(strings.TrimSpace(line)), &s); err != nil {
		t.Fatalf("probe JSON: %v: %q", err, line)
	}
	var count uint64
	for _, o := range s.Fuse {
		if o.Name == "GETATTR" || o.Name == "LOOKUP" {
			count += o.Count
			if o.P50.Value <= 0 || o.P50.Value > time.Second || o.Max < o.P50.Value {
				t.Errorf("implausible %s latencies in the guest: %+v", o.Name, o)
			}
		}
	}
	if count < n {
		t.Fatalf("guest probe (%s mode) counted %d LOOKUP+GETATTR, want ≥ %d; probe said %+v", s.Mode, count, n, s.Fuse)
	}
	t.Logf("guest probe, %s mode: %d LOOKUP+GETATTR round trips for %d stat calls", s.Mode, count, n)
}
