package vmtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// guestScripts is test/guest, relative to this package.
const guestScripts = "../../test/guest"

// peer is one way to serve a host directory to the guest. Adding a backend
// to the end-to-end tests is one line in peers.
type peer struct {
	name string
	// share returns the share for dir, or why the peer cannot run here:
	// missing is a missing prerequisite (fails in strict mode), notYet a
	// feature fastfsd does not have yet (always a skip).
	share func(t *testing.T, dir string) (sh Share, missing, notYet string)
	// skip lists correctness.sh steps the peer is known not to support.
	skip string
	// reference peers (not fastfsd) prove the harness and the script; they
	// run reduced sizes unless FASTFSD_E2E_FULL=1, to keep CI near 2 min.
	reference bool
}

var peers = []peer{
	{name: "c-virtiofsd", reference: true, share: func(t *testing.T, dir string) (Share, string, string) {
		if _, err := os.Stat("/usr/lib/qemu/virtiofsd"); err != nil {
			return Share{}, "needs /usr/lib/qemu/virtiofsd (qemu-system-x86 on Debian 12); run scripts/deps.sh", ""
		}
		be := CVirtiofsd
		return Share{Dir: dir, Backend: &be}, "", ""
	}},
	{name: "fastfsd", share: func(t *testing.T, dir string) (Share, string, string) {
		bin := buildFastfsd(t)
		if out, err := exec.Command(bin, "virtiofs", "--help").CombinedOutput(); err != nil {
			return Share{}, "", fmt.Sprintf("fastfsd has no working `virtiofs` subcommand yet (`fastfsd virtiofs --help`: %v: %s)",
				err, firstLine(string(out)))
		}
		be := Fastfsd(bin)
		return Share{Dir: dir, Backend: &be}, "", ""
	}},
	{name: "virtio-9p", reference: true, share: func(t *testing.T, dir string) (Share, string, string) {
		return Share{Dir: dir, SecurityModel: "passthrough"}, "", ""
	}},
}

// buildFastfsd builds ./cmd/fastfsd statically (usable in the guest too)
// into t's temp dir.
func buildFastfsd(t testing.TB) string {
	t.Helper()
	testutil.RequireCommand(t, "go")
	bin, err := testutil.BuildFastfsd(t.TempDir(), "fastfsd", []string{"CGO_ENABLED=0"})
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// quickSizes shrink correctness.sh for the reference peers.
var quickSizes = "BIGDIR_FILES=500 FIO_SIZE=8M MD5_MB=8"

// TestGuestCorrectness boots ONE guest with every peer's share mounted at
// /mnt/<peer> and runs test/guest/correctness.sh on each in turn; each
// peer's results are judged in its own subtest. FASTFSD_E2E_PEERS=a,b
// limits the peers (one peer = one boot with only its device, to isolate
// a crash); FASTFSD_E2E_FULL=1 runs full sizes on the reference peers too.
func TestGuestCorrectness(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU guest (a minute or more under TCG); not with -short")
	}
	testutil.RequireRoot(t)
	k := RequireGuest(t)
	only := os.Getenv("FASTFSD_E2E_PEERS")
	full := os.Getenv("FASTFSD_E2E_FULL") == "1"

	type run struct {
		p               peer
		missing, notYet string
	}
	var runs []run
	var shares []Share
	var script strings.Builder
	for _, p := range peers {
		if only != "" && !strings.Contains(","+only+",", ","+p.name+",") {
			continue
		}
		dir := t.TempDir()
		os.Chmod(dir, 0o777)
		sh, missing, notYet := p.share(t, dir)
		runs = append(runs, run{p, missing, notYet})
		if missing != "" || notYet != "" {
			continue
		}
		sh.Tag, sh.GuestPath = p.name, "/mnt/"+p.name
		shares = append(shares, sh)
		sizes := ""
		if p.reference && !full {
			sizes = quickSizes
		}
		fmt.Fprintf(&script, "NAME_PREFIX=%s/ SKIP=%s %s sh /test/correctness.sh /mnt/%s\n",
			p.name, shellQuote(p.skip), sizes, p.name)
	}
	var res *Result
	if len(shares) > 0 {
		cfg := Config{
			Kernel:  k,
			Shares:  shares,
			Files:   []File{{Host: filepath.Join(guestScripts, "correctness.sh"), Guest: "/test/correctness.sh"}},
			Script:  script.String(),
			Timeout: 8 * time.Minute,
		}
		if os.Getenv("FASTFSD_VMTEST_VERBOSE") == "1" {
			cfg.Console = os.Stderr
		}
		var err error
		if res, err = Run(context.Background(), cfg); err != nil {
			t.Fatalf("vmtest: %v", err)
		}
		t.Logf("guest: boot %.1fs (guest uptime %.1fs at ready), run %.1fs, total %.1fs, %d peers",
			res.BootTime.Seconds(), res.GuestBoot, res.RunTime.Seconds(), res.Total.Seconds(), len(shares))
	}
	for _, r := range runs {
		t.Run(r.p.name, func(t *testing.T) {
			if r.missing != "" {
				if testutil.Strict() {
					t.Fatalf("prerequisite missing (strict mode): %s", r.missing)
				}
				t.Skip(r.missing)
			}
			if r.notYet != "" {
				t.Skip(r.notYet)
			}
			prefix := r.p.name + "/"
			n := 0
			for _, x := range res.Results {
				name, ok := strings.CutPrefix(x.Name, prefix)
				if !ok && x.Name != "mount:"+r.p.name {
					continue
				}
				if !ok {
					name = x.Name
				}
				n++
				t.Logf("  %-4s %-16s %s", x.Status, name, x.Detail)
				if x.Status != "PASS" && x.Status != "SKIP" {
					t.Errorf("%s: %s %s", name, x.Status, x.Detail)
				}
			}
			if n < 10 {
				t.Errorf("only %d results; correctness.sh did not run through on %s", n, r.p.name)
			}
			if t.Failed() {
				for name, log := range res.BackendLogs {
					if strings.HasPrefix(name, r.p.name) || strings.Contains(name, "["+r.p.name+"]") {
						t.Logf("--- %s output ---\n%s", name, tail(log, 60))
					}
				}
			}
		})
	}
	if res == nil {
		return
	}
	// Whole-run problems (timeout, no final marker, hang at exit, oops).
	var global []string
	for _, p := range res.Problems() {
		if !strings.Contains(p, ": FAIL ") {
			global = append(global, p)
		}
	}
	if len(global) > 0 {
		t.Errorf("guest run failed:\n  %s\n--- console ---\n%s", strings.Join(global, "\n  "), tail(res.Console, 150))
		for name, log := range res.BackendLogs {
			t.Logf("--- %s output ---\n%s", name, tail(log, 60))
		}
	}
}
