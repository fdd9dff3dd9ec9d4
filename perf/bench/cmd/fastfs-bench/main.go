// Command fastfs-bench runs the side-by-side benchmark on the host: the fio
// suite and the metadata tests on a native tmpfs directory, through
// `fastfsd mount` of a tmpfs directory, and through the go-fuse loopback
// peer, alternating them round by round, and prints medians with ratios to
// native. `make bench` builds the binaries and runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"github.com/fastfsd/fastfsd/perf/bench"
	"golang.org/x/sys/unix"
)

func main() {
	fastfsd := flag.String("fastfsd", "bin/fastfsd", "the fastfsd binary")
	fastfsdArgs := flag.String("fastfsd-flags", "", "extra flags for fastfsd mount (e.g. --passthrough=false)")
	variants := flag.String("variants", "", "measure several fastfsd configurations instead of one: NAME=FLAGS;NAME=FLAGS (e.g. 'devfuse=--passthrough=false;uring=--passthrough=false --uring'); NAME=bin:PATH FLAGS runs another fastfsd build (a baseline)")
	gofuse := flag.String("gofuse", "bin/peers/gofuse-loopback", "go-fuse's loopback (make peers: bin/peers/gofuse-loopback, which takes -passthrough); measured with passthrough and without; empty to skip the peer")
	nullfuse := flag.String("nullfuse", "bin/fastfs-nullfuse", "the FUSE server that does no work (make build), measured as the floor under every FUSE subject's metadata rows (\"fuse-floor\"); empty, or a binary that is not there, skips it")
	work := flag.String("work", "/tmp/fastfs-bench", "working directory (tmpfs and FUSE mounts go under it; mounts left there by a killed run are detached at start)")
	out := flag.String("out", "out/bench", "where to write bench.json, bench.svg and bench.txt")
	rounds := flag.Int("rounds", 3, "alternated rounds per job (medians over them)")
	size := flag.String("size", "256M", "fio file size per job")
	rt := flag.String("runtime", "4s", "fio time per job and round")
	files := flag.Int("files", 10000, "files for the create/stat/unlink test")
	jobs := flag.Int("jobs", runtime.NumCPU(), "jobs for the N-job random read")
	only := flag.String("only", "", "run only jobs whose name contains this (or any of these, comma-separated)")
	flames := flag.String("flamegraphs", "", "instead of comparing, profile fastfsd under each job and write flame graphs into this directory")
	pprofAddr := flag.String("pprof-addr", "127.0.0.1:6061", "where fastfsd serves pprof for -flamegraphs")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "fastfs-bench: needs root (it mounts tmpfs and FUSE filesystems); run with sudo")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A run that was killed leaves its mounts under -work; a dead FUSE
	// mount there would fail this run's MkdirAll ("file exists").
	if _, err := bench.DetachStale(*work, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "fastfs-bench: %v\n", err)
		os.Exit(1)
	}

	// Every subject's backing store is its own tmpfs, so all are measured
	// against memory alike.
	src := func(name string) string {
		d := filepath.Join(*work, "src-"+name)
		os.MkdirAll(d, 0o755)
		if err := unix.Mount("tmpfs", d, "tmpfs", 0, "size=8g,mode=0755"); err != nil {
			fmt.Fprintf(os.Stderr, "fastfs-bench: mount tmpfs on %s: %v\n", d, err)
			os.Exit(1)
		}
		return d
	}
	subjects := []bench.Subject{bench.Tmpfs("native", filepath.Join(*work, "native"))}
	type variant struct{ name, bin, flags string }
	// By default every subject runs with FUSE passthrough (its default)
	// and without: file data through the daemon is what tells daemons
	// apart, and a table with only one of them compares unlike things.
	vs := []variant{{"fastfsd", *fastfsd, *fastfsdArgs}, {"fastfsd-nopt", *fastfsd, strings.TrimSpace(*fastfsdArgs + " --passthrough=false")}}
	if *variants != "" {
		vs = nil
		for _, v := range strings.Split(*variants, ";") {
			name, flags, _ := strings.Cut(strings.TrimSpace(v), "=")
			bin := *fastfsd
			if rest, ok := strings.CutPrefix(flags, "bin:"); ok {
				// NAME=bin:PATH FLAGS: another fastfsd build (a baseline).
				bin, flags, _ = strings.Cut(rest, " ")
			}
			vs = append(vs, variant{name, bin, flags})
		}
	}
	var argv []string
	for _, v := range vs {
		fsrc := src(v.name)
		defer unix.Unmount(fsrc, unix.MNT_DETACH)
		mnt := filepath.Join(*work, "mnt-"+v.name)
		a := append([]string{v.bin, "mount", "--source", fsrc}, strings.Fields(v.flags)...)
		if argv == nil {
			argv = a
		}
		subjects = append(subjects, bench.FUSEDaemon(v.name, mnt, append(a, mnt)...))
	}
	if *gofuse != "" {
		for _, g := range []struct{ name, pass string }{{"go-fuse", "-passthrough=true"}, {"go-fuse-nopt", "-passthrough=false"}} {
			gsrc := src(g.name)
			defer unix.Unmount(gsrc, unix.MNT_DETACH)
			gmnt := filepath.Join(*work, "mnt-"+g.name)
			subjects = append(subjects, bench.FUSEDaemon(g.name, gmnt, *gofuse, "-q", "-directmount", g.pass, gmnt, gsrc))
		}
	}
	if *nullfuse != "" {
		if _, err := os.Stat(*nullfuse); err == nil {
			nmnt := filepath.Join(*work, "mnt-fuse-floor")
			floor := bench.FUSEDaemon("fuse-floor", nmnt, *nullfuse, nmnt)
			floor.MetaOnly = true
			subjects = append(subjects, floor)
		} else {
			fmt.Fprintf(os.Stderr, "fastfs-bench: no %s (make build): the fuse-floor subject is skipped\n", *nullfuse)
		}
	}
	var suite []bench.Job
	for _, j := range bench.Suite(*size, *rt, *jobs, *files) {
		for _, o := range strings.Split(*only, ",") {
			if strings.Contains(j.Name, o) {
				suite = append(suite, j)
				break
			}
		}
	}
	if *flames != "" {
		fsub := bench.FUSEDaemon("fastfsd", filepath.Join(*work, "mnt-fastfsd"),
			append(append(argv, "--pprof", *pprofAddr), filepath.Join(*work, "mnt-fastfsd"))...)
		cmdline := "fastfsd mount " + strings.Join(argv[2:], " ")
		cmdline = strings.Replace(cmdline, filepath.Join(*work, "src-fastfsd"), "SRC", 1)
		if err := bench.FlameGraphs(ctx, fsub, cmdline+" MNT", *pprofAddr, suite, *flames, os.Stderr); err != nil {
			fmt.Fprintf(os.Stderr, "fastfs-bench: %v\n", err)
			os.Exit(1)
		}
		return
	}
	res, err := bench.Run(ctx, bench.Config{Subjects: subjects, Jobs: suite, Rounds: *rounds, Log: os.Stderr})
	if err != nil {
		fmt.Fprintf(os.Stderr, "fastfs-bench: %v\n", err)
		os.Exit(1)
	}
	if err := bench.WriteAll(res, *out, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "fastfs-bench: %v\n", err)
		os.Exit(1)
	}
}
