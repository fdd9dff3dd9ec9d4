// Command fastfs-run is the README's main job (`make run`): it boots a QEMU
// guest with fastfsd as the vhost-user-fs (virtio-fs) backend for a host
// directory, runs the fio suite inside the guest with fastfsd's eBPF probe
// timing every FUSE round trip in the guest kernel, and prints the fio
// results, the guest-side round-trip latency histograms, and the daemon's
// own per-opcode statistics scraped from its --metrics endpoint.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fastfsd/fastfsd/internal/vmtest"
	"github.com/fastfsd/fastfsd/perf/bench"
	"github.com/fastfsd/fastfsd/perf/probe"
)

func main() {
	fastfsd := flag.String("fastfsd", "bin/fastfsd", "fastfsd binary for the host (the virtio-fs backend)")
	guestBin := flag.String("guest-fastfsd", "bin/fastfsd-static", "statically linked fastfsd for the guest (runs the probe there)")
	fioScript := flag.String("fio-script", "test/guest/fio.sh", "the guest fio suite")
	dir := flag.String("dir", "", "host directory to share (default: a fresh temporary directory)")
	queues := flag.Int("queues", 2, "virtio-fs request queues (num-request-queues)")
	runtime := flag.Int("runtime", 5, "seconds per timed fio job")
	size := flag.String("size", "64M", "fio file size per job")
	metricsAddr := flag.String("metrics", "127.0.0.1:9187", "where the host fastfsd serves --metrics")
	jsonOut := flag.String("json", "", "also write everything measured as JSON here")
	smoke := flag.Bool("smoke", false, "replace the fio suite by a few seconds of metadata calls (to check the set-up)")
	flag.Parse()
	if err := run(*fastfsd, *guestBin, *fioScript, *dir, *queues, *runtime, *size, *metricsAddr, *jsonOut, *smoke); err != nil {
		fmt.Fprintf(os.Stderr, "fastfs-run: %v\n", err)
		os.Exit(1)
	}
}

func run(fastfsd, guestBin, fioScript, dir string, queues, runtime int, size, metricsAddr, jsonOut string, smoke bool) error {
	for _, f := range []string{fastfsd, guestBin, fioScript} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%v; run it through make run, which builds it", err)
		}
	}
	k, err := vmtest.FindKernel()
	if err != nil {
		return fmt.Errorf("%v; make deps installs the guest kernel", err)
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "fastfs-run-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	backendArgs := []string{"--cache", "never"}
	if metricsAddr != "" {
		backendArgs = append(backendArgs, "--metrics", metricsAddr)
	}
	backend := vmtest.Fastfsd(fastfsd, backendArgs...)
	script := fmt.Sprintf(`
echo "FASTFS-STEP probe: attaching fastfsd probe in the guest"
/bin/fastfsd probe --mount /mnt/fastfs --json > /tmp/probe.json 2>/tmp/probe.err &
PP=$!
sleep 1
echo "FASTFS-STEP fio: running the suite on virtio-fs (%ds per job)"
if [ -n "$FASTFS_SMOKE" ]; then
	i=0; while [ $i -lt 300 ]; do stat /mnt/fastfs >/dev/null; ls /mnt/fastfs >/dev/null; i=$((i+1)); done; RC=0
else
	FIO_RUNTIME=%d FIO_SIZE=%s sh /fio.sh /mnt/fastfs fastfsd
	RC=$?
fi
kill -INT $PP 2>/dev/null; wait $PP
echo "FASTFS-PROBE $(tr -d '\n' < /tmp/probe.json)"
[ -s /tmp/probe.err ] && sed 's/^/probe: /' /tmp/probe.err
exit $RC
`, runtime, runtime, size)
	cfg := vmtest.Config{
		Kernel: k,
		Files: []vmtest.File{
			{Host: guestBin, Guest: "/bin/fastfsd", Mode: 0o755},
			{Host: fioScript, Guest: "/fio.sh", Mode: 0o755},
		},
		Shares:  []vmtest.Share{{Tag: "fastfs", Dir: dir, Backend: &backend, Queues: queues, GuestPath: "/mnt/fastfs"}},
		Script:  script,
		Timeout: 10 * time.Minute,
	}
	if smoke {
		cfg.Env = map[string]string{"FASTFS_SMOKE": "1"}
	}
	// Progress: the guest's step lines and results as they come.
	pr, pw := io.Pipe()
	cfg.Console = pw
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			l := sc.Text()
			switch {
			case strings.Contains(l, "FASTFS-READY"):
				fmt.Fprintln(os.Stderr, "run: guest booted, share mounted")
			case strings.Contains(l, "FASTFS-STEP "):
				fmt.Fprintln(os.Stderr, "run: "+l[strings.Index(l, "FASTFS-STEP ")+12:])
			case strings.HasPrefix(l, "probe: "):
				fmt.Fprintln(os.Stderr, "run: guest "+l)
			case strings.Contains(l, "FASTFS-RESULT "):
				r := l[strings.Index(l, "FASTFS-RESULT ")+14:]
				fmt.Fprintln(os.Stderr, "run:   "+r[:min(len(r), 100)])
			}
		}
	}()
	// Daemon metrics: scrape while the guest runs (the backend exits with
	// the guest, like virtiofsd) and keep the last good scrape.
	var (
		mu      sync.Mutex
		metrics string
	)
	stopScrape := make(chan struct{})
	go func() {
		for {
			select {
			case <-stopScrape:
				return
			case <-time.After(500 * time.Millisecond):
			}
			resp, err := http.Get("http://" + metricsAddr + "/metrics")
			if err != nil {
				continue
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == 200 && bytes.Contains(b, []byte("fastfsd_requests_total")) {
				mu.Lock()
				metrics = string(b)
				mu.Unlock()
			}
		}
	}()
	fmt.Fprintf(os.Stderr, "run: booting QEMU (TCG) with fastfsd serving %s over virtio-fs, %d request queues; a few minutes\n", dir, queues)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := vmtest.Run(ctx, cfg)
	close(stopScrape)
	pw.Close()
	if err != nil {
		return err
	}
	if p := res.Problems(); len(p) > 0 {
		return fmt.Errorf("guest run failed:\n  %s\n(console tail)\n%s", strings.Join(p, "\n  "), tail(res.Console, 40))
	}

	var table bench.GuestTable
	for _, f := range res.FIO {
		if err := table.Add(f.Name, f.JSON); err != nil {
			return err
		}
	}
	fmt.Printf("\n== fio in the guest (QEMU TCG, fastfsd virtio-fs, %d queues; boot %.1fs, run %.1fs) ==\n", queues, res.BootTime.Seconds(), res.RunTime.Seconds())
	table.WriteText(os.Stdout)
	fmt.Printf("\n== fio completion latency in the guest ==\n")
	table.WriteLatency(os.Stdout)

	var snap *probe.Snapshot
	if i := strings.Index(res.Console, "FASTFS-PROBE "); i >= 0 {
		line := res.Console[i+len("FASTFS-PROBE "):]
		if j := strings.IndexByte(line, '\n'); j >= 0 {
			line = line[:j]
		}
		snap = new(probe.Snapshot)
		if os.Getenv("FASTFS_RUN_DEBUG") != "" {
			fmt.Fprintf(os.Stderr, "probe output: %s\n", line)
		}
		if err := json.Unmarshal([]byte(strings.TrimSpace(line)), snap); err != nil || len(snap.Fuse) == 0 {
			fmt.Printf("\n== guest FUSE round trips: probe gave no data (%v); see the console for probe: lines ==\n", err)
			snap = nil
		}
	}
	if snap != nil {
		fmt.Printf("\n== FUSE request round trips measured in the guest kernel by fastfsd probe (eBPF) ==\n")
		snap.WriteText(os.Stdout)
	}
	mu.Lock()
	m := metrics
	mu.Unlock()
	ops := parseMetrics(m)
	fmt.Printf("\n== fastfsd per-opcode statistics (host daemon, --metrics) ==\n")
	if len(ops) == 0 {
		fmt.Println("no metrics scraped (was fastfsd virtiofs started with --metrics?)")
	} else {
		fmt.Printf("%-16s %10s %8s %12s %12s\n", "op", "requests", "errors", "bytes", "mean")
		for _, o := range ops {
			fmt.Printf("%-16s %10d %8d %12d %12s\n", o.op, o.count, o.errors, o.bytes, o.mean.Round(100*time.Nanosecond))
		}
	}
	if jsonOut != "" {
		b, _ := json.MarshalIndent(struct {
			FIO   bench.GuestTable `json:"fio"`
			Probe *probe.Snapshot  `json:"probe"`
		}{table, snap}, "", "  ")
		os.MkdirAll(filepath.Dir(jsonOut), 0o755)
		if err := os.WriteFile(jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

type opStat struct {
	op                   string
	count, errors, bytes uint64
	mean                 time.Duration
}

// parseMetrics reads the counters fastfsd's /metrics serves, by op.
func parseMetrics(text string) []opStat {
	by := map[string]*opStat{}
	sums := map[string]float64{}
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		name, rest, ok := strings.Cut(l, "{")
		if !ok {
			continue
		}
		labels, val, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		op := ""
		for _, kv := range strings.Split(labels, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok && k == "op" {
				op = strings.Trim(v, `"`)
			}
		}
		if op == "" {
			continue
		}
		o := by[op]
		if o == nil {
			o = &opStat{op: op}
			by[op] = o
		}
		f, _ := strconv.ParseFloat(strings.TrimSpace(val), 64)
		switch name {
		case "fastfsd_requests_total":
			o.count = uint64(f)
		case "fastfsd_request_errors_total":
			o.errors = uint64(f)
		case "fastfsd_bytes_total":
			o.bytes = uint64(f)
		case "fastfsd_request_duration_seconds_sum":
			sums[op] = f
		}
	}
	var out []opStat
	for op, o := range by {
		if o.count > 0 {
			o.mean = time.Duration(sums[op] / float64(o.count) * 1e9)
		}
		out = append(out, *o)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].count > out[b].count })
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
