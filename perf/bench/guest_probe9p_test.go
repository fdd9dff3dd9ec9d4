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

// TestGuestProbe9P boots a guest that serves a directory with `fastfsd 9p`
// on a unix socket, mounts it with the guest kernel's v9fs client
// (cache=none: every stat asks the server), and runs `fastfsd probe
// --mount` on that 9P mount (chosen by mount type: the 9p tracepoints)
// around a loop of n stat calls. Each stat walks to the file and gets its
// attributes, so the probe must count at least n Twalk and n Tgetattr (on
// the Linux 6.x guest here: exactly n Twalk and 2n Tgetattr, the lookup's
// and the stat's own).
func TestGuestProbe9P(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU guest")
	}
	k := vmtest.RequireGuest(t)
	bin, err := testutil.BuildFastfsd(t.TempDir(), "fastfsd-static", []string{"CGO_ENABLED=0"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	// One vCPU, a TCG workaround as in TestGuestProbe: enabling the 9P
	// tracepoints patches kernel text, which text_poke_bp makes safe on
	// real CPUs, but a TCG guest once crashed on another vCPU right after
	// the FUSE probe did so; with one vCPU no other CPU runs that text.
	res := vmtest.RunT(t, vmtest.Config{
		Kernel: k,
		CPUs:   1,
		Files:  []vmtest.File{{Host: bin, Guest: "/bin/fastfsd", Mode: 0o755}},
		Script: `
mkdir -p /srv/p9 /mnt/p9
/bin/fastfsd 9p --listen unix:/run/p9.sock --shared-dir /srv/p9 >/tmp/9p.log 2>&1 &
try() { i=0; while [ $i -lt 100 ]; do "$@" 2>/dev/null && return 0; sleep 0.1; i=$((i+1)); done; "$@"; }
try mount -t 9p -o trans=unix,version=9p2000.L,cache=none /run/p9.sock /mnt/p9 || { echo "FASTFS-PROBE mount failed: $(tr '\n' ' ' </tmp/9p.log)"; exit 1; }
touch /mnt/p9/f
/bin/fastfsd probe --mount /mnt/p9 --json > /tmp/probe.json 2>/tmp/probe.err &
PP=$!
i=0; while [ $i -lt 600 ] && ! grep -q 'Ctrl-C' /tmp/probe.err; do sleep 0.1; i=$((i+1)); done
i=0; while [ $i -lt ` + strconv.Itoa(n) + ` ]; do stat /mnt/p9/f >/dev/null || exit 1; i=$((i+1)); done
kill -INT $PP; wait $PP
echo "FASTFS-PROBE $(tr -d '\n' < /tmp/probe.json)"
sed 's/^/probe: /' /tmp/probe.err
`,
		Timeout: 5 * time.Minute,
	})
	for _, l := range strings.Split(res.Console, "\n") {
		if strings.HasPrefix(l, "probe: ") { // the probe's stderr, for a failure's why
			t.Log(l)
		}
	}
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
	if s.Mode != probe.Mode9P {
		t.Fatalf("probe chose %q mode on a 9P mount, want 9p", s.Mode)
	}
	got := map[string]probe.Stats{}
	for _, o := range s.P9 {
		got[o.Name] = o
	}
	for _, m := range []string{"Twalk", "Tgetattr"} {
		o := got[m]
		if o.Count < n {
			t.Errorf("%s: probe counted %d for %d stat calls, want ≥ %d; probe said %+v", m, o.Count, n, n, s.P9)
		}
		if o.P50.Value <= 0 || o.P50.Value > time.Second || o.Max < o.P50.Value {
			t.Errorf("implausible %s latencies in the guest: %+v", m, o)
		}
	}
	t.Logf("guest 9P probe: %d Twalk, %d Tgetattr for %d stat calls (p50 %v / %v)", got["Twalk"].Count, got["Tgetattr"].Count, n, got["Twalk"].P50.Value, got["Tgetattr"].P50.Value)
}
