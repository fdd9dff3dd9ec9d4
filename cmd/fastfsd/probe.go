package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fastfsd/fastfsd/perf/probe"
)

func init() {
	register(&command{
		name:    "probe",
		summary: "time FUSE and 9P round trips in the kernel (eBPF) and a daemon's syscalls",
		run:     runProbe,
	})
}

func runProbe(args []string) error {
	fl := flag.NewFlagSet("fastfsd probe", flag.ContinueOnError)
	duration := fl.Duration("duration", 0, "how long to measure; 0 runs until Ctrl-C (SIGINT/SIGTERM)")
	mount := fl.String("mount", "", "time the filesystem mounted here: a FUSE or virtio-fs mount (only its requests), or a 9P mount (--mode 9p: every 9P mount of this kernel)")
	conn := fl.Uint("conn", 0, "only time requests of this FUSE connection (the mount's st_dev, as in /sys/fs/fuse/connections); 0 = all")
	pid := fl.Int("pid", 0, "also time this process's system calls by number (e.g. fastfsd's pid)")
	mode := fl.String("mode", "auto", "how to time requests: auto (with --mount on a 9P mount: 9p; else FUSE with kprobes on the kernel's fuse queueing functions if they attach, since they see every transport, else the fuse:fuse_request_send/_end tracepoints), kprobe, tracepoint, 9p (the v9fs client's 9p:9p_client_req/_res tracepoints, per message type), off")
	asJSON := fl.Bool("json", false, "print the result as JSON instead of tables and histograms")
	pin := fl.Bool("pin", false, "pin programs, maps and links under "+probe.DefaultPinDir+" while running, for bpftool")
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), `usage: fastfsd probe [flags]

Attaches eBPF programs that time every FUSE request's kernel round trip
(from queueing to reply) per opcode — or, on a 9P mount (--mode 9p), every
9P request of the kernel's v9fs client from send to reply per message type
— and optionally a process's system calls, then prints count, errors,
mean, p50/p90/p99 and max per opcode, and a histogram per opcode (one line
per power of two).

Latencies are counted in log-linear buckets, 16 per power of two, so a
percentile is within 6.25 %% of the exact value; each is printed with the
bucket it came from, "12.3µs [12.2µs,13.0µs)": the exact value lies in it.
--json prints the same as JSON (schema: docs/probe.md in the source).
Needs root (or CAP_BPF and CAP_PERFMON). Runs on the host and inside a guest.

flags:
`)
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 0 {
		return fmt.Errorf("unexpected argument %q; see fastfsd probe --help", fl.Arg(0))
	}
	opts := probe.Options{Conn: uint32(*conn), Pid: *pid}
	switch *mode {
	case "auto":
	case "tracepoint", "kprobe", "off", "9p":
		opts.Mode = probe.Mode(*mode)
	default:
		return fmt.Errorf("--mode %q: want auto, tracepoint, kprobe, 9p or off", *mode)
	}
	if *mount != "" {
		if *conn != 0 {
			return errors.New("give --mount or --conn, not both")
		}
		kind, err := probe.MountKind(*mount)
		if err != nil {
			return err
		}
		switch {
		case kind == "9p" && (opts.Mode == probe.ModeAuto || opts.Mode == probe.Mode9P):
			opts.Mode = probe.Mode9P
		case kind == "9p":
			return fmt.Errorf("--mount %s is a 9P mount; --mode %s times FUSE requests: use --mode 9p (or auto)", *mount, *mode)
		case opts.Mode == probe.Mode9P:
			return fmt.Errorf("--mount %s is a FUSE mount; --mode 9p times 9P requests: use --mode auto, kprobe or tracepoint", *mount)
		default:
			c, err := probe.ConnOf(*mount)
			if err != nil {
				return err
			}
			opts.Conn = c
		}
	} else if opts.Mode == probe.Mode9P && *conn != 0 {
		return errors.New("--conn selects a FUSE connection; --mode 9p times every 9P mount")
	}
	if *pin {
		opts.PinDir = probe.DefaultPinDir
	}
	p, err := probe.Attach(opts)
	if err != nil {
		return err
	}
	defer p.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	// On stderr, also with --json: a script waits for this line to know
	// the programs are attached.
	what := "FUSE"
	if p.Mode() == probe.Mode9P {
		what = "9P"
	}
	fmt.Fprintf(os.Stderr, "fastfsd probe: timing %s requests (%s mode)%s; Ctrl-C to stop\n", what, p.Mode(),
		map[bool]string{true: fmt.Sprintf(" and pid %d's syscalls", *pid), false: ""}[*pid != 0])
	start := time.Now()
	<-ctx.Done()
	s, err := p.Snapshot()
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Seconds float64 `json:"seconds"`
			*probe.Snapshot
		}{time.Since(start).Seconds(), s})
	}
	fmt.Printf("measured for %.1fs\n", time.Since(start).Seconds())
	s.WriteText(os.Stdout)
	return nil
}
