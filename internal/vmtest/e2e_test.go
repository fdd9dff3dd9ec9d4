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

// guestScripts is test/guest, relative to this package.
const guestScripts = "../../test/guest"

// peer is one way to serve a host directory to the guest. Adding a backend
// to the end-to-end tests is one line in peers.
type peer struct {
	name string
	// share returns the share for dir (tag "fs"); it may skip t.
	share func(t *testing.T, dir string) Share
	// skip lists correctness.sh steps the peer is known not to support.
	skip string
	// reference peers (not fastfsd) prove the harness and the script; they
	// run reduced sizes unless FASTFSD_E2E_FULL=1, to keep CI near 2 min.
	reference bool
}

var peers = []peer{
	{name: "c-virtiofsd", share: virtiofsShare(func(t *testing.T) Backend {
		testutil.RequireCommand(t, "/usr/lib/qemu/virtiofsd")
		return CVirtiofsd
	}), reference: true},
	{name: "fastfsd", share: virtiofsShare(fastfsdBackend)},
	{name: "virtio-9p", share: func(t *testing.T, dir string) Share {
		return Share{Tag: "fs", Dir: dir, GuestPath: "/mnt/fs", SecurityModel: "passthrough"}
	}, reference: true},
}

func virtiofsShare(b func(t *testing.T) Backend) func(t *testing.T, dir string) Share {
	return func(t *testing.T, dir string) Share {
		be := b(t)
		return Share{Tag: "fs", Dir: dir, GuestPath: "/mnt/fs", Backend: &be}
	}
}

// buildFastfsd builds ./cmd/fastfsd statically (usable in the guest too)
// into t's temp dir.
func buildFastfsd(t testing.TB) string {
	t.Helper()
	testutil.RequireCommand(t, "go")
	bin := filepath.Join(t.TempDir(), "fastfsd")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/fastfsd")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/fastfsd: %v\n%s", err, out)
	}
	return bin
}

// fastfsdBackend builds fastfsd and skips (even in CI) while its
// `virtiofs` subcommand does not exist yet.
func fastfsdBackend(t *testing.T) Backend {
	bin := buildFastfsd(t)
	if out, err := exec.Command(bin, "virtiofs", "--help").CombinedOutput(); err != nil {
		t.Skipf("fastfsd has no working `virtiofs` subcommand yet (`fastfsd virtiofs --help`: %v: %s)",
			err, strings.TrimSpace(firstLine(string(out))))
	}
	return Fastfsd(bin)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// quickSizes shrink correctness.sh for the reference peers.
var quickSizes = map[string]string{"BIGDIR_FILES": "1000", "FIO_SIZE": "16M", "MD5_MB": "16"}

// TestGuestCorrectness boots the guest once per peer and runs
// test/guest/correctness.sh on the share. FASTFSD_E2E_PEERS=a,b limits the
// peers; FASTFSD_E2E_FULL=1 runs full sizes on the reference peers too.
func TestGuestCorrectness(t *testing.T) {
	if testing.Short() {
		t.Skip("boots QEMU guests (minutes under TCG); not with -short")
	}
	only := os.Getenv("FASTFSD_E2E_PEERS")
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			if only != "" && !strings.Contains(","+only+",", ","+p.name+",") {
				t.Skipf("not in FASTFSD_E2E_PEERS=%s", only)
			}
			testutil.RequireRoot(t)
			k := RequireGuest(t)
			dir := t.TempDir()
			os.Chmod(dir, 0o777)
			sh := p.share(t, dir)
			env := map[string]string{"SKIP": p.skip}
			if p.reference && os.Getenv("FASTFSD_E2E_FULL") != "1" {
				for k, v := range quickSizes {
					env[k] = v
				}
			}
			res := RunT(t, Config{
				Kernel:  k,
				Shares:  []Share{sh},
				Files:   []File{{Host: filepath.Join(guestScripts, "correctness.sh"), Guest: "/test/correctness.sh"}},
				Env:     env,
				Script:  "sh /test/correctness.sh /mnt/fs\n",
				Timeout: 4 * time.Minute,
			})
			if len(res.Results) < 10 {
				t.Errorf("only %d results; correctness.sh did not run through", len(res.Results))
			}
		})
	}
}
