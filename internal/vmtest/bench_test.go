package vmtest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// fioJob is the part of fio's JSON report the comparison reads
// (group_reporting: jobs[0] is the whole group).
type fioJob struct {
	Jobs []struct {
		Read  fioDir `json:"read"`
		Write fioDir `json:"write"`
	} `json:"jobs"`
}

type fioDir struct {
	BW   float64 `json:"bw"` // KiB/s
	IOPS float64 `json:"iops"`
}

// Figure is one benchmark number of one backend.
type Figure struct {
	Backend, Job, Unit string
	Value              float64
}

// FIOFigures extracts one figure per FASTFS-FIO line named BACKEND/JOB:
// MiB/s for seq*, IOPS for randread, files/s for create and stat.
func FIOFigures(fios []FIO) ([]Figure, error) {
	var out []Figure
	for _, f := range fios {
		be, job, ok := strings.Cut(f.Name, "/")
		if !ok {
			continue
		}
		var r fioJob
		if err := json.Unmarshal(f.JSON, &r); err != nil || len(r.Jobs) == 0 {
			return nil, fmt.Errorf("%s: bad fio JSON: %v", f.Name, err)
		}
		j := r.Jobs[0]
		fig := Figure{Backend: be, Job: job}
		switch {
		case strings.HasPrefix(job, "seqwrite"):
			fig.Unit, fig.Value = "MiB/s", j.Write.BW/1024
		case strings.HasPrefix(job, "seq"):
			fig.Unit, fig.Value = "MiB/s", j.Read.BW/1024
		case job == "create":
			fig.Unit, fig.Value = "files/s", j.Write.IOPS
		default:
			fig.Unit, fig.Value = "IOPS", j.Read.IOPS+j.Write.IOPS
		}
		out = append(out, fig)
	}
	return out, nil
}

// RatioTable formats figures as ratios to base (e.g. "virtio-9p").
func RatioTable(figs []Figure, base string) string {
	jobs := []string{}
	backends := []string{}
	val := map[[2]string]Figure{}
	for _, f := range figs {
		if _, ok := val[[2]string{f.Backend, ""}]; !ok {
			val[[2]string{f.Backend, ""}] = f
			backends = append(backends, f.Backend)
		}
		if _, ok := val[[2]string{"", f.Job}]; !ok {
			val[[2]string{"", f.Job}] = f
			jobs = append(jobs, f.Job)
		}
		val[[2]string{f.Backend, f.Job}] = f
	}
	sort.SliceStable(backends, func(i, j int) bool { return backends[i] == base && backends[j] != base })
	var b strings.Builder
	fmt.Fprintf(&b, "%-14s", "backend")
	for _, j := range jobs {
		fmt.Fprintf(&b, " %22s", j+" ("+val[[2]string{"", j}].Unit+")")
	}
	b.WriteString("\n")
	for _, be := range backends {
		fmt.Fprintf(&b, "%-14s", be)
		for _, j := range jobs {
			f, ok := val[[2]string{be, j}]
			bf, bok := val[[2]string{base, j}]
			switch {
			case !ok:
				fmt.Fprintf(&b, " %22s", "-")
			case bok && bf.Value > 0:
				fmt.Fprintf(&b, " %13.1f (%5.2fx)", f.Value, f.Value/bf.Value)
			default:
				fmt.Fprintf(&b, " %22.1f", f.Value)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestGuestFIO runs test/guest/fio.sh in ONE boot on every available
// virtio-fs peer and on virtio-9p, and reports the figures as ratios to
// virtio-9p. Slow (about a minute per backend): only with
// FASTFSD_GUEST_BENCH=1. FASTFSD_BENCH_OUT=FILE also writes the table there.
func TestGuestFIO(t *testing.T) {
	if os.Getenv("FASTFSD_GUEST_BENCH") != "1" {
		t.Skip("benchmark; run with FASTFSD_GUEST_BENCH=1")
	}
	testutil.RequireRoot(t)
	k := RequireGuest(t)
	var shares []Share
	var script strings.Builder
	add := func(name string, sh Share) {
		sh.Tag, sh.GuestPath = name, "/mnt/"+name
		sh.Dir = t.TempDir()
		shares = append(shares, sh)
		fmt.Fprintf(&script, "sh /test/fio.sh /mnt/%s %s\n", name, name)
	}
	add("virtio-9p", Share{SecurityModel: "passthrough"})
	c := CVirtiofsd
	add("c-virtiofsd", Share{Backend: &c})
	bin := buildFastfsd(t)
	if _, err := os.Stat(bin); err == nil {
		f := Fastfsd(bin, "--cache", "never")
		add("fastfsd", Share{Backend: &f})
		if q := os.Getenv("FASTFSD_BENCH_QUEUES"); q == "2" {
			f2 := Fastfsd(bin, "--cache", "never", "--num-request-queues", "2")
			add("fastfsd-2q", Share{Backend: &f2, Queues: 2})
		}
	}
	env := map[string]string{}
	for _, v := range []string{"FIO_RUNTIME", "FIO_SIZE", "FIO_FILES"} {
		if x := os.Getenv(v); x != "" {
			env[v] = x
		}
	}
	res := RunT(t, Config{
		Kernel:  k,
		Env:     env,
		Shares:  shares,
		Files:   []File{{Host: filepath.Join(guestScripts, "fio.sh"), Guest: "/test/fio.sh"}},
		Script:  script.String(),
		Timeout: 15 * time.Minute,
	})
	figs, err := FIOFigures(res.FIO)
	if err != nil {
		t.Fatal(err)
	}
	tab := RatioTable(figs, "virtio-9p")
	t.Logf("guest fio (kernel %s, TCG), ratio to virtio-9p in the same boot:\n%s", k.Release, tab)
	if out := os.Getenv("FASTFSD_BENCH_OUT"); out != "" {
		os.WriteFile(out, []byte(tab), 0o644)
	}
}
