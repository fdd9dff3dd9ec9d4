// Command fastfs-run is the README's main job (`make run`): it boots a QEMU
// guest with fastfsd as the vhost-user-fs (virtio-fs) backend for a host
// directory, runs the fio suite inside the guest with fastfsd's eBPF probe
// timing every FUSE round trip in the guest kernel, and prints the fio
// results, each host back-end's CPU time per fio operation (cpu.go), the
// guest-side round-trip latency histograms, and the daemon's own
// per-opcode statistics scraped from its --metrics endpoint. With
// -json FILE (and without -compare, where no subject is observed) it also
// writes run-top.svg beside FILE: each operation's
// request rate and mean service time in every second of the run, as
// `fastfsd top --metrics` shows them live.
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
	dir := flag.String("dir", "", "host directory to share (default: a fresh temporary directory); with -compare, each subject shares a fresh subdirectory of it (default: a fresh tmpfs)")
	queues := flag.Int("queues", 2, "virtio-fs request queues (num-request-queues)")
	runtime := flag.Int("runtime", 5, "seconds per timed fio job")
	size := flag.String("size", "64M", "fio file size per job")
	metricsAddr := flag.String("metrics", "127.0.0.1:9187", "where the host fastfsd serves --metrics (not with -compare: no subject serves metrics)")
	jsonOut := flag.String("json", "", "also write everything measured as JSON here")
	smoke := flag.Bool("smoke", false, "replace the fio suite by a few seconds of metadata calls (to check the set-up)")
	compare := flag.Bool("compare", false, "bench-guest: also run the suite, in the same boot, on the C virtiofsd, go-fuse's virtio-fs backend, QEMU's virtio-9p and fastfsd's 9P door inside the guest, and print ratios to the C virtiofsd and to virtio-9p; every subject gets one request queue and no probe or metrics, fastfsd with -queues is a separate row")
	rounds := flag.Int("rounds", 0, "alternated rounds of the suite over the subjects, medians reported (0: 3 with -compare, else 1)")
	gofuse := flag.String("gofuse", "bin/peers/gofuse-virtiofs", "go-fuse's virtio-fs backend for -compare (make peers)")
	outDir := flag.String("out", "", "write bench.txt, bench.json and bench.svg here (with -compare)")
	only := flag.String("subjects", "", "with -compare: only these rows, comma-separated (fastfsd, fastfsd-<queues>q, c-virtiofsd, go-fuse, virtio-9p, fastfsd-9p); default all")
	flag.Parse()
	metricsSet := false
	flag.Visit(func(f *flag.Flag) { metricsSet = metricsSet || f.Name == "metrics" })
	if *rounds == 0 {
		*rounds = 1
		if *compare {
			*rounds = 3
		}
	}
	if err := run(*fastfsd, *guestBin, *fioScript, *dir, *queues, *rounds, *runtime, *size, *metricsAddr, *jsonOut, *smoke, *compare, *gofuse, *outDir, *only, metricsSet); err != nil {
		fmt.Fprintf(os.Stderr, "fastfs-run: %v\n", err)
		os.Exit(1)
	}
}

func run(fastfsd, guestBin, fioScript, dir string, queues, rounds, runtime int, size, metricsAddr, jsonOut string, smoke, compare bool, gofuse, outDir, only string, metricsSet bool) error {
	if only != "" && !compare {
		return fmt.Errorf("-subjects %s: only with -compare", only)
	}
	if outDir != "" && !compare {
		return fmt.Errorf("-out %s: only with -compare (use -json without it)", outDir)
	}
	if metricsSet && compare {
		return fmt.Errorf("-metrics %s: not with -compare, whose subjects serve no metrics", metricsAddr)
	}
	for _, f := range []string{fastfsd, guestBin, fioScript} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%v; run it through make run, which builds it", err)
		}
	}
	k, err := vmtest.FindKernel()
	if err != nil {
		return fmt.Errorf("%v; make deps installs the guest kernel", err)
	}
	var (
		shares  []vmtest.Share
		targets []target
	)
	mainQueues := queues
	if compare {
		// Like with like: every subject one request queue (the C
		// virtiofsd cannot serve more); fastfsd's multi-queue run is
		// its own labelled row.
		mainQueues = 1
		// No subject is observed (the peers have no metrics), and no
		// scrape picks up another daemon serving that address.
		metricsAddr = ""
		if _, err := os.Stat(gofuse); err != nil {
			return fmt.Errorf("%v; make peers builds it", err)
		}
		base := dir
		if base == "" {
			var unmount func()
			if base, unmount, err = tmpfsDir(); err != nil {
				return err
			}
			defer unmount()
		}
		if shares, targets, err = compareSet(base, fastfsd, gofuse, queues); err != nil {
			return err
		}
		if only != "" {
			if shares, targets, err = keepSubjects(shares, targets, strings.Split(only, ",")); err != nil {
				return err
			}
		}
	} else {
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
		shares = []vmtest.Share{{Tag: "fastfs", Dir: dir, Backend: &backend, Queues: queues, GuestPath: "/mnt/fastfs"}}
		targets = []target{{"fastfsd", "fastfs", ""}}
	}
	// Compared, no subject is probed: the in-guest probe times FUSE
	// mounts only, so it would slow the virtio-fs subjects and not 9P.
	script := guestScript(targets, rounds, runtime, size, !compare)
	cfg := vmtest.Config{
		Kernel: k,
		Files: []vmtest.File{
			{Host: guestBin, Guest: "/bin/fastfsd", Mode: 0o755},
			{Host: fioScript, Guest: "/fio.sh", Mode: 0o755},
		},
		Shares:  shares,
		Script:  script,
		Timeout: 10 * time.Minute * time.Duration(len(targets)*rounds),
	}
	if compare {
		// go-fuse's backend never answers QEMU's stop sequence: do not
		// wait the default grace for QEMU to exit (see below).
		cfg.ExitGrace = 5 * time.Second
	}
	if smoke {
		cfg.Env = map[string]string{"FASTFS_SMOKE": "1"}
	}
	// Each host back-end's CPU time over each fio job's timed phase
	// (fio.sh's FASTFS-JOB, FASTFS-TIMED and FASTFS-FIO lines).
	meter := newCPUMeter(shares, targets)
	cfg.OnLine = meter.line
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
		samples []topSample // one per second, for the run-top.svg chart
	)
	stopScrape := make(chan struct{})
	go func() {
		if metricsAddr == "" {
			return
		}
		for {
			select {
			case <-stopScrape:
				return
			case <-time.After(time.Second):
			}
			resp, err := http.Get("http://" + metricsAddr + "/metrics")
			if err != nil {
				continue
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && resp.StatusCode == 200 && bytes.Contains(b, []byte("fastfsd_requests_total")) {
				at := time.Now()
				mu.Lock()
				metrics = string(b)
				// What `fastfsd top --metrics` shows each second, kept
				// for the chart: a few minutes of scrapes, a few KiB.
				samples = append(samples, sampleOf(at, parseMetrics(metrics)))
				mu.Unlock()
			}
		}
	}()
	fmt.Fprintf(os.Stderr, "run: booting QEMU (TCG) with fastfsd serving %s over virtio-fs, %d request queue(s); a few minutes\n", shares[0].Dir, mainQueues)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := vmtest.Run(ctx, cfg)
	close(stopScrape)
	pw.Close()
	if err != nil {
		return err
	}
	if compare && res.HungOnExit {
		// go-fuse's virtio-fs backend does not answer QEMU's stop sequence
		// (GET_VRING_BASE), so QEMU hangs at power-off and the harness
		// kills it; fastfsd and the C virtiofsd answer it.
		fmt.Fprintln(os.Stderr, "run: note: QEMU hung at power-off and was killed (go-fuse's backend ignores GET_VRING_BASE); results are complete")
		res.HungOnExit = false
	}
	if p := res.Problems(); len(p) > 0 {
		return fmt.Errorf("guest run failed:\n  %s\n(console tail)\n%s", strings.Join(p, "\n  "), tail(res.Console, 40))
	}

	var table bench.GuestTable
	if err := meter.fill(&table, res.FIO); err != nil {
		return err
	}
	for _, e := range meter.errs {
		fmt.Fprintln(os.Stderr, "run: back-end CPU not read: "+e)
	}
	fmt.Printf("\n== fio in the guest (QEMU TCG, fastfsd virtio-fs, %d request queue(s); boot %.1fs, run %.1fs) ==\n", mainQueues, res.BootTime.Seconds(), res.RunTime.Seconds())
	table.WriteText(os.Stdout)
	var cpuText bytes.Buffer
	if len(res.FIO) > 0 {
		// Against the C virtiofsd when it ran: the pair most asked about.
		baseline := ""
		if _, ok := table.Figures["c-virtiofsd"]; ok {
			baseline = "c-virtiofsd"
		}
		fmt.Fprintf(&cpuText, "\n== host back-end CPU per operation (µs/op) in the same jobs ==\n")
		table.WriteCPU(&cpuText, baseline)
		os.Stdout.Write(cpuText.Bytes())
	}
	fmt.Printf("\n== fio completion latency in the guest ==\n")
	table.WriteLatency(os.Stdout)

	snaps := map[string]*probe.Snapshot{}
	for _, l := range strings.Split(res.Console, "\n") {
		i := strings.Index(l, "FASTFS-PROBE ")
		if i < 0 {
			continue
		}
		label, js, _ := strings.Cut(strings.TrimSpace(l[i+len("FASTFS-PROBE "):]), " ")
		if os.Getenv("FASTFS_RUN_DEBUG") != "" {
			fmt.Fprintf(os.Stderr, "probe output %s: %s\n", label, js)
		}
		s := new(probe.Snapshot)
		if err := json.Unmarshal([]byte(js), s); err == nil && len(s.Fuse) > 0 {
			snaps[label] = s
		}
	}
	for _, t := range targets {
		s := snaps[t.label]
		if s == nil && compare {
			continue // compared, no subject is probed
		}
		if s == nil {
			fmt.Printf("\n== %s: guest FUSE round trips: the probe gave no data; see probe: lines in the console ==\n", t.label)
			continue
		}
		fmt.Printf("\n== %s: FUSE request round trips measured in the guest kernel by fastfsd probe (eBPF, %s mode) ==\n", t.label, s.Mode)
		s.WriteText(os.Stdout)
	}
	if compare {
		// Against the C virtiofsd too: the two back-ends the guest
		// comparison is usually asked about, side by side.
		table.Baseline = "c-virtiofsd"
		fmt.Printf("\n== ratios to the C virtiofsd in the same boot ==\n")
		table.WriteText(os.Stdout)
		table.Baseline = "virtio-9p"
		fmt.Printf("\n== ratios to virtio-9p in the same boot ==\n")
		table.WriteText(os.Stdout)
		if outDir != "" {
			if err := bench.WriteAll(table.Result(), outDir, io.Discard); err != nil {
				return err
			}
			// bench.{txt,json,svg} hold the fio figures (higher is
			// better); the back-end CPU goes beside them.
			if err := os.WriteFile(filepath.Join(outDir, "backend-cpu.txt"), cpuText.Bytes(), 0o644); err != nil {
				return err
			}
			fmt.Printf("wrote %s/bench.{txt,json,svg} and backend-cpu.txt\n", outDir)
		}
	}
	snap := snaps["fastfsd"]
	mu.Lock()
	m := metrics
	mu.Unlock()
	ops := parseMetrics(m)
	// Compared, nothing was scraped: no subject serves metrics.
	if !compare {
		fmt.Printf("\n== fastfsd per-opcode statistics (host daemon, --metrics) ==\n")
		if len(ops) == 0 {
			fmt.Println("no metrics scraped (was fastfsd virtiofs started with --metrics?)")
		} else {
			fmt.Printf("%-16s %10s %8s %12s %12s\n", "op", "requests", "errors", "bytes", "mean")
		}
		for _, o := range ops {
			fmt.Printf("%-16s %10d %8d %12d %12s\n", o.op, o.count, o.errors, o.bytes, o.mean.Round(100*time.Nanosecond))
		}
	}
	if jsonOut != "" && !compare {
		mu.Lock()
		ts := seriesOf(samples, 8)
		mu.Unlock()
		svg := filepath.Join(filepath.Dir(jsonOut), "run-top.svg")
		var buf bytes.Buffer
		writeTopSVG(&buf, ts, fmt.Sprintf("fastfsd virtio-fs, guest fio suite: per-op rate and service time each second (--metrics), %s", time.Now().UTC().Format("2006-01-02 15:04")))
		os.MkdirAll(filepath.Dir(svg), 0o755)
		if err := os.WriteFile(svg, buf.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Printf("\nwrote %s: per-operation requests/s and mean service time each second of the run (%d intervals, %d operations)\n", svg, len(ts.at), len(ts.ops))
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
	sum                  float64 // service time, seconds, since the daemon started
	mean                 time.Duration
}

// parseMetrics reads the counters fastfsd's /metrics serves, by op.
func parseMetrics(text string) []opStat {
	by := map[string]*opStat{}
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
			o.sum = f
		}
	}
	var out []opStat
	for _, o := range by {
		if o.count > 0 {
			o.mean = time.Duration(o.sum / float64(o.count) * 1e9)
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
