package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/perf/probe"
)

func init() {
	register(&command{
		name:    "top",
		summary: "live per-operation request rates and latencies, from a daemon's --metrics or the kernel (probe)",
		run:     runTop,
	})
}

const topUsage = `usage: fastfsd top (--metrics ADDR | --mount MOUNTPOINT) [flags]

Shows, refreshed every --interval, each operation's request rate, error
rate and latency over the last interval, busiest first:

  --metrics ADDR   scrape a fastfsd daemon's --metrics endpoint
                   (http://ADDR/metrics): the daemon's service time, mean
                   and p99 from its power-of-two histogram (within 2x);
  --mount DIR      attach the eBPF probe (as fastfsd probe --mount does) to
                   a FUSE or 9P mount: the kernel's round trip, p50/p99
                   from 16-per-power-of-two buckets (within 6.25 %); root.

flags:
`

func runTop(args []string) error {
	fl := flag.NewFlagSet("top", flag.ContinueOnError)
	metricsAddr := fl.String("metrics", "", "HOST:PORT of a daemon started with --metrics")
	mount := fl.String("mount", "", "a FUSE or 9P mountpoint to probe in the kernel (root)")
	interval := fl.Duration("interval", time.Second, "refresh period")
	count := fl.Int("count", 0, "stop after this many refreshes; 0 = until Ctrl-C")
	rows := fl.Int("rows", 20, "operations shown per refresh")
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), topUsage)
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 0 || (*metricsAddr == "") == (*mount == "") {
		fl.Usage()
		return errors.New("give exactly one of --metrics ADDR and --mount MOUNTPOINT")
	}
	if *interval < 100*time.Millisecond || *count < 0 || *rows < 1 {
		return errors.New("--interval must be at least 100ms, --count at least 0, --rows at least 1")
	}
	var src topSource
	if *metricsAddr != "" {
		src = &metricsSource{url: "http://" + strings.TrimPrefix(*metricsAddr, "http://") + "/metrics", client: &http.Client{Timeout: *interval}}
	} else {
		p, err := attachMountProbe(*mount)
		if err != nil {
			return err
		}
		defer p.Close()
		src = &probeSource{p: p}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	clear := isTerminal(os.Stdout)
	if _, err := src.sample(); err != nil { // baseline
		return err
	}
	t := time.NewTicker(*interval)
	defer t.Stop()
	for n := 0; *count == 0 || n < *count; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		frame, err := src.sample()
		if err != nil {
			return err
		}
		if clear {
			fmt.Print("\033[H\033[2J")
		}
		frame.write(os.Stdout, *rows)
	}
	return nil
}

// attachMountProbe attaches the probe that fits the mount's type.
func attachMountProbe(mnt string) (*probe.Probe, error) {
	kind, err := probe.MountKind(mnt)
	if err != nil {
		return nil, err
	}
	opts := probe.Options{Mode: probe.Mode9P}
	if kind == "fuse" {
		c, err := probe.ConnOf(mnt)
		if err != nil {
			return nil, err
		}
		opts = probe.Options{Conn: c}
	}
	return probe.Attach(opts)
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// topRow is one operation over one interval.
type topRow struct {
	name           string
	rate, errRate  float64 // per second
	p50, mean, p99 time.Duration
}

type topFrame struct {
	title string
	rows  []topRow
}

func (f *topFrame) write(w io.Writer, max int) {
	fmt.Fprintf(w, "%s — %s\n%-24s %10s %9s %10s %10s %10s\n", f.title, time.Now().Format("15:04:05"), "operation", "req/s", "err/s", "p50", "mean", "p99")
	sort.Slice(f.rows, func(a, b int) bool { return f.rows[a].rate > f.rows[b].rate })
	for i, r := range f.rows {
		if i == max {
			fmt.Fprintf(w, "… %d more\n", len(f.rows)-max)
			break
		}
		fmt.Fprintf(w, "%-24s %10.1f %9.1f %10s %10s %10s\n", r.name, r.rate, r.errRate, probe.FormatDuration(r.p50), probe.FormatDuration(r.mean), probe.FormatDuration(r.p99))
	}
	if len(f.rows) == 0 {
		fmt.Fprintln(w, "(no requests in this interval)")
	}
	fmt.Fprintln(w)
}

// topSource yields the interval since its previous sample.
type topSource interface {
	sample() (*topFrame, error)
}

// metricsSource scrapes a daemon's /metrics with the Prometheus text parser.
type metricsSource struct {
	url    string
	client *http.Client
	prev   map[string]opSample
	at     time.Time
}

type opSample struct {
	count, errors float64
	sum           float64 // seconds
	buckets       []*dto.Bucket
}

func (m *metricsSource) sample() (*topFrame, error) {
	resp, err := m.client.Get(m.url)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w; is the daemon running with --metrics?", m.url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", m.url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", m.url, err)
	}
	now := time.Now()
	cur := map[string]opSample{}
	key := func(mt *dto.Metric) string {
		var door, op string
		for _, l := range mt.Label {
			switch l.GetName() {
			case "door":
				door = l.GetValue()
			case "op":
				op = l.GetValue()
			}
		}
		return door + " " + op
	}
	if f := fams["fastfsd_request_duration_seconds"]; f != nil {
		for _, mt := range f.Metric {
			h := mt.GetHistogram()
			s := cur[key(mt)]
			s.count, s.sum, s.buckets = float64(h.GetSampleCount()), h.GetSampleSum(), h.Bucket
			cur[key(mt)] = s
		}
	}
	if f := fams["fastfsd_request_errors_total"]; f != nil {
		for _, mt := range f.Metric {
			s := cur[key(mt)]
			s.errors = mt.GetCounter().GetValue()
			cur[key(mt)] = s
		}
	}
	frame := &topFrame{title: "fastfsd top: daemon service time (" + m.url + ")"}
	if m.prev != nil {
		dt := now.Sub(m.at).Seconds()
		for k, s := range cur {
			p := m.prev[k]
			dc := s.count - p.count
			if dc <= 0 {
				continue
			}
			r := topRow{name: k, rate: dc / dt, errRate: (s.errors - p.errors) / dt,
				mean: time.Duration((s.sum - p.sum) / dc * 1e9),
				p50:  bucketQuantile(0.5, s.buckets, p.buckets, dc),
				p99:  bucketQuantile(0.99, s.buckets, p.buckets, dc)}
			frame.rows = append(frame.rows, r)
		}
	}
	m.prev, m.at = cur, now
	return frame, nil
}

// bucketQuantile is histogram_quantile over the growth of cumulative
// buckets (cur - prev) holding n samples: linear inside the bucket.
func bucketQuantile(q float64, cur, prev []*dto.Bucket, n float64) time.Duration {
	rank := q * n
	lower, below := 0.0, 0.0
	for i, b := range cur {
		c := float64(b.GetCumulativeCount())
		if i < len(prev) {
			c -= float64(prev[i].GetCumulativeCount())
		}
		ub := b.GetUpperBound()
		if c >= rank {
			if math.IsInf(ub, 1) {
				return time.Duration(lower * 1e9)
			}
			frac := 0.0
			if c > below {
				frac = (rank - below) / (c - below)
			}
			return time.Duration((lower + frac*(ub-lower)) * 1e9)
		}
		lower, below = ub, c
	}
	return time.Duration(lower * 1e9)
}

// probeSource reads the eBPF probe's maps.
type probeSource struct {
	p    *probe.Probe
	prev *probe.Snapshot
	at   time.Time
}

func (s *probeSource) sample() (*topFrame, error) {
	snap, err := s.p.Snapshot()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	frame := &topFrame{title: fmt.Sprintf("fastfsd top: kernel round trips (probe, %s mode)", snap.Mode)}
	if s.prev != nil {
		d := snap.Sub(s.prev)
		dt := now.Sub(s.at).Seconds()
		rows := d.Fuse
		if snap.Mode == probe.Mode9P {
			rows = d.P9
		}
		for _, o := range rows {
			frame.rows = append(frame.rows, topRow{name: o.Name, rate: float64(o.Count) / dt, errRate: float64(o.Errors) / dt,
				p50: o.P50.Value, mean: o.Mean, p99: o.P99.Value})
		}
	}
	s.prev, s.at = snap, now
	return frame, nil
}
