// Command fastfs-backendbench measures vhost-user-fs back-ends without a
// guest: for each back-end and each request-queue count it starts the
// back-end on a fresh socket, drives it with internal/vhostload (the
// project's Go vhost-user front-end playing QEMU and the guest driver) with
// a fixed request mix, and reports requests/s and the back-end's CPU time
// per request (utime+stime, /proc/PID/stat). Back-ends are alternated over
// rounds and the table shows medians.
//
//	sudo bin/fastfs-backendbench            # fastfsd, the C virtiofsd, go-fuse's virtio-fs
//
// A back-end is NAME=COMMAND with {sock} and {dir} standing for the socket
// path and the shared directory.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/internal/vhostload"
)

const defaultBackends = "fastfsd=bin/fastfsd virtiofs --socket-path={sock} --shared-dir={dir} --cache=auto --num-request-queues=2 --log-level=warn;" +
	"virtiofsd=/usr/lib/qemu/virtiofsd --socket-path={sock} -o source={dir} -o cache=auto;" +
	"go-fuse=bin/peers/gofuse-virtiofs {sock} {dir}"

type backend struct{ name, cmd string }

// kinds are the request kinds measured (-kinds), in vhostload.Kinds'
// order; set once by main before run.
var kinds = vhostload.Kinds

// parseKinds parses -kinds: "all", or names of vhostload.Kinds without
// spaces, any case ("read4k"), "create" for CREATE+RELEASE+FORGET.
func parseKinds(spec string) ([]vhostload.Kind, error) {
	if strings.TrimSpace(spec) == "all" {
		return vhostload.Kinds, nil
	}
	want := map[vhostload.Kind]bool{}
	for _, name := range strings.Split(spec, ",") {
		name = strings.ToLower(strings.ReplaceAll(strings.TrimSpace(name), " ", ""))
		found := false
		for _, k := range vhostload.Kinds {
			kn := strings.ToLower(strings.ReplaceAll(k.String(), " ", ""))
			if name == kn || (k == vhostload.CreateRelease && name == "create") {
				want[k], found = true, true
			}
		}
		if !found {
			return nil, fmt.Errorf("-kinds: unknown kind %q: want getattr, lookup, read4k, read128k, read1m, create, readdirplus or all", name)
		}
	}
	var out []vhostload.Kind
	for _, k := range vhostload.Kinds {
		if want[k] {
			out = append(out, k)
		}
	}
	return out, nil
}

// cell is one back-end × queue count × kind over the rounds.
type cell struct {
	Backend string             `json:"backend"`
	Queues  int                `json:"queues"`
	Kind    string             `json:"kind"`
	Runs    []vhostload.Result `json:"runs"`
	Failed  string             `json:"failed,omitempty"` // the back-end could not run this row
	kind    vhostload.Kind
}

func main() {
	backends := flag.String("backends", defaultBackends, "back-ends to measure: NAME=COMMAND;… with {sock} and {dir}; a missing binary skips its back-end with a note")
	queues := flag.String("queues", "1,2", "request-queue counts to measure, comma-separated")
	rounds := flag.Int("rounds", 3, "alternated rounds (medians over them)")
	dur := flag.Duration("duration", time.Second, "time per kind, round, back-end and queue count")
	ops := flag.Int("ops", 0, "stop each kind after this many operations per queue (0: run for -duration); for smoke runs")
	depth := flag.Int("depth", 8, "requests in flight per queue")
	gap := flag.Duration("gap", 0, "pause after each completion before the next request (with -depth 1: a guest's think time between requests; 0: none)")
	work := flag.String("work", "/tmp/fastfs-backendbench", "working directory (a tmpfs is mounted on its tree/ as root)")
	out := flag.String("json", "", "also write every run as JSON here")
	kindSpec := flag.String("kinds", "all", "request kinds to run, comma-separated: getattr, lookup, read4k, read128k, read1m, create, readdirplus (or all)")
	flag.Parse()
	var err error
	if kinds, err = parseKinds(*kindSpec); err != nil {
		fmt.Fprintln(os.Stderr, "fastfs-backendbench:", err)
		os.Exit(2)
	}
	if err := run(*backends, *queues, *rounds, *dur, *ops, *depth, *gap, *work, *out, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fastfs-backendbench:", err)
		os.Exit(1)
	}
}

func run(backendSpec, queueSpec string, rounds int, dur time.Duration, ops, depth int, gap time.Duration, work, jsonOut string, w io.Writer) error {
	var bs []backend
	for _, b := range strings.Split(backendSpec, ";") {
		name, cmd, ok := strings.Cut(strings.TrimSpace(b), "=")
		if !ok || name == "" || cmd == "" {
			return fmt.Errorf("-backends: %q is not NAME=COMMAND", b)
		}
		bin := strings.Fields(cmd)[0]
		if _, err := exec.LookPath(bin); err != nil {
			fmt.Fprintf(os.Stderr, "fastfs-backendbench: %s: %v; skipping it (make build peers builds the project's)\n", name, err)
			continue
		}
		bs = append(bs, backend{name, cmd})
	}
	if len(bs) == 0 {
		return errors.New("no back-end to measure")
	}
	var qs []int
	for _, q := range strings.Split(queueSpec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(q))
		if err != nil || n < 1 || n > 16 {
			return fmt.Errorf("-queues: %q: want 1 to 16", q)
		}
		qs = append(qs, n)
	}
	if rounds < 1 {
		return fmt.Errorf("-rounds %d: want at least 1", rounds)
	}
	if depth < 1 {
		return fmt.Errorf("-depth %d: want at least 1 request in flight per queue", depth)
	}
	if gap < 0 {
		return fmt.Errorf("-gap %v: want 0 (no pause) or a positive pause", gap)
	}
	tree := filepath.Join(work, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		return err
	}
	// Every back-end serves the same tmpfs, so all read from memory alike.
	if os.Geteuid() == 0 {
		if err := unix.Mount("tmpfs", tree, "tmpfs", 0, "size=2g,mode=0755"); err != nil {
			return fmt.Errorf("mount tmpfs on %s: %w", tree, err)
		}
		defer unix.Unmount(tree, unix.MNT_DETACH)
	}
	t, err := vhostload.MakeTree(tree)
	if err != nil {
		return fmt.Errorf("make the shared tree: %w", err)
	}
	cells := map[string]*cell{}
	key := func(b string, q int, k vhostload.Kind) string { return fmt.Sprintf("%s/%d/%d", b, q, k) }
	for _, b := range bs {
		for _, q := range qs {
			for _, k := range kinds {
				cells[key(b.name, q, k)] = &cell{Backend: b.name, Queues: q, Kind: k.String(), kind: k}
			}
		}
	}
	for r := 0; r < rounds; r++ {
		for i := range bs {
			b := bs[(i+r)%len(bs)] // rotate the order each round
			for _, q := range qs {
				prefix := fmt.Sprintf("%s-r%d-q%d", b.name, r, q)
				res, failed := session(b, q, depth, gap, dur, ops, t, tree, work, prefix)
				for _, k := range kinds {
					c := cells[key(b.name, q, k)]
					if failed != "" {
						if c.Failed == "" {
							c.Failed = failed
						}
						continue
					}
					c.Runs = append(c.Runs, res[k])
				}
				fmt.Fprintf(os.Stderr, "round %d %-10s %d queue(s): %s\n", r+1, b.name, q, orOK(failed))
			}
		}
	}
	var all []*cell
	for _, c := range cells {
		all = append(all, c)
	}
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i], all[j]
		if a.kind != b.kind {
			return a.kind < b.kind
		}
		return a.Queues < b.Queues
	})
	writeTable(w, bs, qs, all, rounds, dur, ops, depth, gap)
	if jsonOut != "" {
		b, _ := json.MarshalIndent(all, "", "  ")
		return os.WriteFile(jsonOut, b, 0o644)
	}
	return nil
}

func orOK(s string) string {
	if s == "" {
		return "ok"
	}
	return s
}

// session starts the back-end, runs every kind on q request queues, and
// stops it. failed is set when the back-end could not serve q queues.
func session(b backend, q, depth int, gap, dur time.Duration, ops int, t vhostload.Tree, tree, work, prefix string) (map[vhostload.Kind]vhostload.Result, string) {
	sock := filepath.Join(work, b.name+".sock")
	os.Remove(sock)
	args := strings.Fields(strings.NewReplacer("{sock}", sock, "{dir}", tree).Replace(b.cmd))
	cmd := exec.Command(args[0], args[1:]...)
	stderr := new(syncBuffer)
	cmd.Stderr = stderr
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Sprintf("start: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop := func() {
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		}
		os.Remove(sock)
	}
	died := func(err error) string {
		// Give a crashing back-end a moment to finish its last words.
		select {
		case <-exited:
		case <-time.After(500 * time.Millisecond):
		}
		msg := err.Error()
		if tail := lastLine(stderr.String()); tail != "" {
			msg += "; back-end said: " + tail
		}
		select {
		case <-exited:
			msg += " (back-end exited: " + cmd.ProcessState.String() + ")"
		default:
		}
		return msg
	}
	s, err := vhostload.Connect(vhostload.Config{Socket: sock, Queues: q, Depth: depth, Gap: gap, Tree: t, Prefix: prefix, PID: cmd.Process.Pid})
	if err != nil {
		msg := ""
		if errors.Is(err, vhostload.ErrQueues) {
			msg = err.Error()
		} else {
			msg = died(err)
		}
		cmd.Process.Kill()
		stop()
		return nil, msg
	}
	res := map[vhostload.Kind]vhostload.Result{}
	for _, k := range kinds {
		r, err := s.Run(k, dur, ops)
		if err != nil {
			msg := died(fmt.Errorf("%v: %w", k, err))
			cmd.Process.Kill()
			stop()
			return nil, msg
		}
		res[k] = r
	}
	s.Close()
	stop()
	return res, ""
}

// syncBuffer collects a back-end's stderr: os/exec's copy goroutine
// writes while died() reads. (testutil.Buffer's shape; a command does not
// import the test helpers.)
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer // guarded by mu
}

func (l *syncBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			if len(l) > 200 {
				l = l[:200] + "…"
			}
			return l
		}
	}
	return ""
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func writeTable(w io.Writer, bs []backend, qs []int, cells []*cell, rounds int, dur time.Duration, ops, depth int, gap time.Duration) {
	byKey := map[string]*cell{}
	for _, c := range cells {
		byKey[fmt.Sprintf("%s/%d/%s", c.Backend, c.Queues, c.Kind)] = c
	}
	limit := dur.String() + " per kind"
	if ops > 0 {
		limit = fmt.Sprintf("%d ops per queue per kind", ops)
	}
	paced := ""
	if gap > 0 {
		paced = fmt.Sprintf(", each sent %v after the completion before it", gap)
	}
	fmt.Fprintf(w, "vhost-user-fs back-ends without a guest: %d requests in flight per queue%s, %s, medians of %d alternated rounds.\n", depth, paced, limit, rounds)
	fmt.Fprintf(w, "Each cell: operations/s, back-end CPU µs per operation (utime+stime). CREATE+RELEASE+FORGET counts one file (three requests) as one operation.\n\n")
	fmt.Fprintf(w, "| request | queues |")
	for _, b := range bs {
		fmt.Fprintf(w, " %s |", b.name)
	}
	fmt.Fprintf(w, "\n|---|---|")
	for range bs {
		fmt.Fprintf(w, "---|")
	}
	fmt.Fprintln(w)
	for _, k := range kinds {
		for _, q := range qs {
			fmt.Fprintf(w, "| %v | %d |", k, q)
			for _, b := range bs {
				c := byKey[fmt.Sprintf("%s/%d/%s", b.name, q, k)]
				switch {
				case c == nil:
					fmt.Fprintf(w, " — |")
				case c.Failed != "" && len(c.Runs) == 0:
					fmt.Fprintf(w, " fails: %s |", strings.ReplaceAll(c.Failed, "|", "/"))
				default:
					var rate, cpu []float64
					var errs uint64
					first := ""
					for _, r := range c.Runs {
						rate = append(rate, r.PerSec())
						cpu = append(cpu, float64(r.CPUPerOp())/1e3)
						errs += r.Errors
						if first == "" {
							first = r.FirstError
						}
					}
					fmt.Fprintf(w, " %.0f/s, %.1f µs", median(rate), median(cpu))
					if errs > 0 {
						fmt.Fprintf(w, " (%d errors: %s)", errs, strings.ReplaceAll(first, "|", "/"))
					}
					fmt.Fprintf(w, " |")
				}
			}
			fmt.Fprintln(w)
		}
	}
}
