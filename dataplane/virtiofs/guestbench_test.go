package virtiofs_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/testutil"
	"github.com/fastfsd/fastfsd/internal/vmtest"
)

// TestGuestBenchHelpers compares, in one QEMU boot (one request queue, as
// QEMU's default), C virtiofsd with fastfsd without and with helper
// goroutines (--thread-pool-size), running test/guest/fio.sh. Slow: only
// with FASTFSD_GUEST_BENCH=1. Under TCG only ratios within the boot mean
// anything.
func TestGuestBenchHelpers(t *testing.T) {
	if os.Getenv("FASTFSD_GUEST_BENCH") != "1" {
		t.Skip("benchmark; run with FASTFSD_GUEST_BENCH=1")
	}
	testutil.RequireRoot(t)
	k := vmtest.RequireGuest(t)
	testutil.RequireCommand(t, "go")
	bin, err := testutil.BuildFastfsd(t.TempDir(), "fastfsd", []string{"CGO_ENABLED=0"})
	if err != nil {
		t.Fatal(err)
	}
	var shares []vmtest.Share
	var script strings.Builder
	add := func(name string, be vmtest.Backend) {
		shares = append(shares, vmtest.Share{Tag: name, GuestPath: "/mnt/" + name, Dir: t.TempDir(), Backend: &be})
		fmt.Fprintf(&script, "sh /test/fio.sh /mnt/%s %s\n", name, name)
	}
	add("c-virtiofsd", vmtest.CVirtiofsd)
	add("fastfsd", vmtest.Fastfsd(bin, "--cache", "never"))
	add("fastfsd-pool4", vmtest.Fastfsd(bin, "--cache", "never", "--thread-pool-size", "4"))
	env := map[string]string{"FIO_RUNTIME": "4", "FIO_SIZE": "32M", "FIO_FILES": "500"}
	res := vmtest.RunT(t, vmtest.Config{
		Kernel: k, Env: env, Shares: shares,
		Files:   []vmtest.File{{Host: "../../test/guest/fio.sh", Guest: "/test/fio.sh"}},
		Script:  script.String(),
		Timeout: 12 * time.Minute,
	})
	type dir struct {
		BW   float64 `json:"bw"`
		IOPS float64 `json:"iops"`
	}
	var rows []string
	for _, f := range res.FIO {
		var r struct {
			Jobs []struct{ Read, Write dir } `json:"jobs"`
		}
		if json.Unmarshal(f.JSON, &r) != nil || len(r.Jobs) == 0 {
			continue
		}
		j := r.Jobs[0]
		rows = append(rows, fmt.Sprintf("%-28s read %8.1f MiB/s %9.0f IOPS   write %8.1f MiB/s %9.0f IOPS",
			f.Name, j.Read.BW/1024, j.Read.IOPS, j.Write.BW/1024, j.Write.IOPS))
	}
	t.Logf("guest fio (TCG, one boot, 1 request queue):\n%s", strings.Join(rows, "\n"))
}
