package main

import (
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	hp9 "github.com/hugelgupf/p9/p9"

	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/metrics/metricstest"
	vt "github.com/fastfsd/fastfsd/vhostuser/vhostusertest"
)

// The --metrics/--pprof tests run a daemon as a child process: this test
// binary re-executed with FASTFSD_TEST_CHILD=NAME runs subcommand NAME on
// its arguments and exits with the status main would give.
// (The unmount helper is dispatched by mount_test.go's init, which every
// re-executed test binary runs too.)
func init() {
	name := os.Getenv("FASTFSD_TEST_CHILD")
	if name == "" {
		return
	}
	args := os.Args[1:]
	for len(args) > 0 && strings.HasPrefix(args[0], "-test.") {
		args = args[1:]
	}
	if err := commands[name].run(args); err != nil {
		var st exitStatus
		if errors.As(err, &st) {
			os.Exit(int(st)) // a namespace sandbox's child said why
		}
		os.Stderr.WriteString("fastfsd " + name + ": " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Exit(0)
}

// freeAddr returns a loopback address nobody listens on (just now).
func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// observed is a daemon's --metrics and --pprof endpoints.
type observed struct {
	metrics, pprof string // http://ADDR
}

// observeArgs returns --metrics and --pprof flags on free ports.
func observeArgs(t *testing.T) (observed, []string) {
	m, p := freeAddr(t), freeAddr(t)
	return observed{"http://" + m, "http://" + p}, []string{"--metrics", m, "--pprof", p}
}

// startChild runs "fastfsd NAME ARGS" as a child process, killed at the
// end of the test.
func startChild(t *testing.T, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$"}, args...)...)
	cmd.Env = append(os.Environ(), "FASTFSD_TEST_CHILD="+name)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}
	})
	return cmd
}

// waitHTTP waits until url answers 200.
func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not answer within 10 s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// delta is a counter's growth between two scrapes.
func delta(before, after metricstest.Families, name string, labels ...string) float64 {
	a, _ := after.Value(name, labels...)
	b, _ := before.Value(name, labels...)
	return a - b
}

// check scrapes o after a workload and asserts each want[op] is the
// growth of fastfsd_requests_total{door,op} since before, that every
// counted operation has a histogram with as many samples, and that the
// pprof endpoint returns a CPU profile.
func (o observed) check(t *testing.T, door string, before metricstest.Families, want map[string]float64) metricstest.Families {
	t.Helper()
	after := metricstest.Scrape(t, o.metrics+"/metrics")
	for op, n := range want {
		if got := delta(before, after, "fastfsd_requests_total", "door="+door, "op="+op); got != n {
			t.Errorf("fastfsd_requests_total{door=%q,op=%q} grew by %v during the workload, want %v", door, op, got, n)
		}
		h := after.Histogram("fastfsd_request_duration_seconds", "door="+door, "op="+op)
		c, _ := after.Value("fastfsd_requests_total", "door="+door, "op="+op)
		if h == nil || float64(h.GetSampleCount()) != c {
			t.Errorf("%s %s: histogram %v, want %v samples", door, op, h, c)
		}
	}
	if after["go_goroutines"] == nil || after["process_cpu_seconds_total"] == nil {
		t.Errorf("no Go runtime or process metrics")
	}
	metricstest.Profile(t, o.pprof, 1)
	return after
}

// TestMountMetrics: fastfsd mount --metrics --pprof counts N direct-I/O
// reads through a real FUSE mount as N READs moving the file's bytes.
func TestMountMetrics(t *testing.T) {
	o, args := observeArgs(t)
	// --cache=never: every read reaches the daemon (direct I/O), no
	// passthrough, no readahead.
	_, _, mnt := startMount(t, append(args, "--cache=never")...)
	waitHTTP(t, o.metrics+"/metrics")
	f, err := os.Open(filepath.Join(mnt, "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	before := metricstest.Scrape(t, o.metrics+"/metrics")
	const n = 200
	// Exactly the file's size: a short direct-I/O read would make the
	// kernel send a second READ to find the end of file.
	buf := make([]byte, len("contents of a\n"))
	for range n {
		if k, err := f.ReadAt(buf, 0); k != len("contents of a\n") {
			t.Fatalf("read through the mount: %d bytes, %v", k, err)
		}
	}
	after := o.check(t, "fuse", before, map[string]float64{"READ": n})
	if got := delta(before, after, "fastfsd_bytes_total", "door=fuse", "op=READ"); got != n*14 {
		t.Errorf("READ bytes grew by %v, want %d", got, n*14)
	}
	if got := delta(before, after, "fastfsd_request_errors_total", "door=fuse", "op=READ"); got != 0 {
		t.Errorf("READ errors grew by %v, want 0", got)
	}
	// Failures are counted by errno: stat of missing names.
	before = after
	for range 10 {
		if _, err := os.Stat(filepath.Join(mnt, "missing")); !os.IsNotExist(err) {
			t.Fatalf("stat missing: %v", err)
		}
	}
	after = metricstest.Scrape(t, o.metrics+"/metrics")
	// The kernel sends one LOOKUP per stat (entry timeout 0 with
	// --cache=never; no negative entries cached).
	if got := delta(before, after, "fastfsd_request_errno_total", "door=fuse", "errno=ENOENT"); got != 10 {
		t.Errorf("ENOENT errors grew by %v after 10 stats of a missing name, want 10", got)
	}
	if after["fastfsd_watch_events_total"] != nil {
		t.Errorf("fastfsd_watch_events_total served without --watch")
	}
	if w := after.Sum("fastfsd_worker_requests_total", "door=fuse"); w < n {
		t.Errorf("workers served %v requests in all, want ≥ %d", w, n)
	}
}

// TestVirtiofsMetrics: fastfsd virtiofs --metrics --pprof counts the
// requests a guest (vhostusertest) sends: INIT once, then N LOOKUPs, of
// which M name a missing file.
func TestVirtiofsMetrics(t *testing.T) {
	o, args := observeArgs(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello"), []byte("hi"), 0o644)
	sock := filepath.Join(t.TempDir(), "vfs.sock")
	startChild(t, "virtiofs", append(args, "--socket-path="+sock, "-o", "source="+dir+",cache=none", "--log-level", "warn")...)
	waitHTTP(t, o.metrics+"/metrics")
	g := dialGuest(t, sock)
	before := metricstest.Scrape(t, o.metrics+"/metrics")
	hdr := func(op abi.Opcode, node uint64, n int) []byte {
		b := make([]byte, abi.InHeaderSize)
		(&abi.InHeader{Len: uint32(abi.InHeaderSize + n), Opcode: op, Unique: 2, NodeID: node}).Marshal(b)
		return b
	}
	in := abi.InitIn{Major: 7, Minor: abi.KernelMinorVersion, Flags: uint32(abi.InitMaxPages)}
	a := make([]byte, abi.InitInSize)
	in.Marshal(a)
	if out, err := g.Queues[1].Submit(vt.Buffers{In: [][]byte{hdr(abi.OpInit, 0, len(a)), a}, Out: []int{16 + abi.InitOutSize}}); err != nil || len(out) < 16 {
		t.Fatalf("INIT: %x %v", out, err)
	}
	const n, missing = 100, 7
	for i := range n {
		name := []byte("hello\x00")
		if i < missing {
			name = []byte("nope\x00")
		}
		out, err := g.Queues[1].Submit(vt.Buffers{In: [][]byte{hdr(abi.OpLookup, 1, len(name)), name}, Out: []int{16 + abi.EntryOutSize}})
		var oh abi.OutHeader
		if err != nil || !oh.Unmarshal(out) || (oh.Error != 0) != (i < missing) {
			t.Fatalf("LOOKUP %d: %x %v", i, out, err)
		}
	}
	after := o.check(t, "virtiofs", before, map[string]float64{"INIT": 1, "LOOKUP": n})
	if got := delta(before, after, "fastfsd_request_errno_total", "door=virtiofs", "errno=ENOENT"); got != missing {
		t.Errorf("ENOENT grew by %v, want %d", got, missing)
	}
	if got := delta(before, after, "fastfsd_request_errors_total", "door=virtiofs", "op=LOOKUP"); got != missing {
		t.Errorf("LOOKUP errors grew by %v, want %d", got, missing)
	}
	if _, ok := after.Value("fastfsd_worker_queue_depth", "door=virtiofs"); !ok {
		t.Errorf("no fastfsd_worker_queue_depth for the virtqueue workers")
	}
}

// TestP9Metrics: fastfsd 9p --metrics --pprof counts what a 9P client
// (hugelgupf/p9) sends: after Tversion and Tattach (not part of the
// workload; Tversion is answered by the reader and not counted), N rounds
// of Twalk + Tgetattr + Tclunk, and one Tread of the file.
func TestP9Metrics(t *testing.T) {
	o, args := observeArgs(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello"), []byte("hello, 9p\n"), 0o644)
	sock := filepath.Join(t.TempDir(), "9p.sock")
	startChild(t, "9p", append(args, "--listen", "unix:"+sock, "--shared-dir", dir)...)
	waitHTTP(t, o.metrics+"/metrics")
	var nc net.Conn
	var err error
	for range 500 {
		if nc, err = net.Dial("unix", sock); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", sock, err)
	}
	c, err := hp9.NewClient(nc, hp9.WithMessageSize(128<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	root, err := c.Attach("")
	if err != nil {
		t.Fatal(err)
	}
	before := metricstest.Scrape(t, o.metrics+"/metrics")
	const n = 100
	for range n {
		_, f, err := root.Walk([]string{"hello"})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := f.GetAttr(hp9.AttrMaskAll); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	_, f, err := root.Walk([]string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Open(hp9.ReadOnly); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if k, _ := f.ReadAt(buf, 0); k != 10 {
		t.Fatalf("read %d bytes, want 10", k)
	}
	f.Close()
	after := o.check(t, "9p", before, map[string]float64{"Twalk": n + 1, "Tgetattr": n, "Tclunk": n + 1, "Tlopen": 1})
	if got := delta(before, after, "fastfsd_bytes_total", "door=9p", "op=Tread"); got != 10 {
		t.Errorf("Tread bytes grew by %v, want 10", got)
	}
	if _, _, err := root.Walk([]string{"nope"}); err == nil {
		t.Fatal("walk to a missing name succeeded")
	}
	final := metricstest.Scrape(t, o.metrics+"/metrics")
	if got := delta(after, final, "fastfsd_request_errno_total", "door=9p", "errno=ENOENT"); got != 1 {
		t.Errorf("ENOENT grew by %v after one failed walk, want 1", got)
	}
}
