package dos

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// nobody is the unprivileged identity the attackers run as.
const nobody = 65534

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// fastfsd builds ./cmd/fastfsd once per test binary.
func fastfsd(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireCommand(t, "go")
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dos-fastfsd-")
		if err != nil {
			buildErr = err
			return
		}
		// As make build does (CGO_ENABLED=0): a cgo build falls back
		// to no namespace, and the suite must attack what users run.
		binPath, buildErr = testutil.BuildFastfsd(dir, "fastfsd", []string{"CGO_ENABLED=0"})
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// daemon is one running fastfsd.
type daemon struct {
	t       *testing.T
	cmd     *exec.Cmd
	out     *testutil.Buffer
	exited  chan struct{}
	waitErr error
	stopped bool
}

func startDaemon(t *testing.T, args ...string) *daemon {
	t.Helper()
	d := &daemon{t: t, out: &testutil.Buffer{}, exited: make(chan struct{})}
	d.cmd = exec.Command(fastfsd(t), args...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		if !d.stopped {
			d.sigterm(20 * time.Second)
		}
		if t.Failed() {
			t.Logf("fastfsd output:\n%s", tail(d.out.String(), 6000))
		}
	})
	return d
}

// sigterm sends SIGTERM and returns how long fastfsd took to exit
// (killing it after limit).
func (d *daemon) sigterm(limit time.Duration) time.Duration {
	d.stopped = true
	start := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return time.Since(start)
	case <-time.After(limit):
		d.cmd.Process.Kill()
		<-d.exited
		d.t.Errorf("fastfsd still running %v after SIGTERM; killed", limit)
		return time.Since(start)
	}
}

// pid is the serving process: fastfsd mount as root (and any door with
// --sandbox=namespace or chroot) serves from a child of the process
// started, which only supervises (docs/sandbox.md).
func (d *daemon) pid() int {
	pid := d.cmd.Process.Pid
	var kids []string
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, task := range tasks {
		b, _ := os.ReadFile(task)
		kids = append(kids, strings.Fields(string(b))...)
	}
	if len(kids) == 1 {
		if c, err := strconv.Atoi(kids[0]); err == nil {
			return c
		}
	}
	return pid
}

// fds is fastfsd's open fd count.
func (d *daemon) fds() int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", d.pid()))
	return len(ents)
}

// rss is fastfsd's resident set in bytes.
func (d *daemon) rss() int64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.pid()))
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// fuseMount is a fastfsd mount of a fresh directory, open to every user.
type fuseMount struct {
	*daemon
	src, mnt string
}

func startMount(t *testing.T, flags ...string) *fuseMount {
	t.Helper()
	// The FUSE attacks need the device and flock(1); the 9P ones neither.
	testutil.RequireDevFuse(t)
	testutil.RequireCommand(t, "flock")
	top := t.TempDir()
	m := &fuseMount{src: filepath.Join(top, "src"), mnt: filepath.Join(top, "mnt")}
	for _, d := range []string{top, m.src, m.mnt} {
		os.MkdirAll(d, 0o755)
		os.Chmod(d, 0o777)
	}
	os.Chmod(filepath.Dir(top), 0o755)
	sharedFile(t, filepath.Join(m.src, "f"))
	args := append([]string{"mount", "--source", m.src, "--allow-other"}, flags...)
	m.daemon = startDaemon(t, append(args, m.mnt)...)
	var parent unix.Stat_t
	unix.Stat(top, &parent)
	for deadline := time.Now().Add(30 * time.Second); ; {
		var st unix.Stat_t
		if unix.Stat(m.mnt, &st) == nil && st.Dev != parent.Dev {
			return m
		}
		select {
		case <-m.exited:
			t.Fatalf("fastfsd exited before mounting: %v\n%s", m.waitErr, m.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not mounted 30 s after starting fastfsd\n%s", m.mnt, m.out.String())
		}
		time.Sleep(10 * time.Millisecond) // no event tells a FUSE mount is ready
	}
}

// sharedFile makes the empty file path, mode 0666 whatever the umask, for
// every user's locks.
func sharedFile(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o666)
}

// holdF starts uid 65534 holding a flock on m's file f for secs seconds
// and gives it 300 ms to take the lock.
func holdF(t *testing.T, m *fuseMount, secs string) *exec.Cmd {
	t.Helper()
	holder := asNobody(m.mnt, "flock", "f", "sleep", secs)
	start(t, holder)
	time.Sleep(300 * time.Millisecond)
	return holder
}

// asNobody runs name args as uid/gid 65534 with no groups, in dir.
func asNobody(dir, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	return cmd
}

// probe is the second client: it times one operation in a loop.
type probe struct {
	stop chan struct{}
	done chan struct{}
	lat  []time.Duration
	err  error
}

func startProbe(op func() error) *probe {
	p := &probe{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			t0 := time.Now()
			if err := op(); err != nil && p.err == nil {
				p.err = err
			}
			p.lat = append(p.lat, time.Since(t0))
			time.Sleep(200 * time.Microsecond) // a client, not a spinner
		}
	}()
	return p
}

// result ends the loop and returns its max and p99.
func (p *probe) result() (n int, maxLat, p99 time.Duration, err error) {
	close(p.stop)
	<-p.done
	if len(p.lat) == 0 {
		return 0, 0, 0, p.err
	}
	s := slices.Clone(p.lat)
	slices.Sort(s)
	return len(s), s[len(s)-1], s[len(s)*99/100], p.err
}

// idleFloor is the smallest idle p99 the 5× rule is applied to: below a
// millisecond the figure measures the scheduler of a shared 2-CPU VM, not
// the daemon (the raw figures are logged).
const idleFloor = time.Millisecond

// measureIdle runs op's loop for d with nothing else going on.
func measureIdle(t *testing.T, d time.Duration, op func() error) time.Duration {
	t.Helper()
	p := startProbe(op)
	time.Sleep(d)
	n, mx, p99, err := p.result()
	if err != nil {
		t.Fatalf("idle probe: %v", err)
	}
	t.Logf("idle: %d ops, p99 %v, max %v", n, p99, mx)
	return p99
}

// checkProbe asserts the probe's figures under attack.
func checkProbe(t *testing.T, what string, p *probe, idle time.Duration) {
	t.Helper()
	checkProbeBy(t, t.Errorf, what, p, idle)
}

// checkProbeBy is checkProbe reporting a failed criterion through errorf.
func checkProbeBy(t *testing.T, errorf func(string, ...any), what string, p *probe, idle time.Duration) {
	t.Helper()
	n, mx, p99, err := p.result()
	if err != nil {
		errorf("%s: the second client's operation failed: %v", what, err)
	}
	t.Logf("%s: second client %d ops, p99 %v (idle %v), max %v", what, n, p99, idle, mx)
	if n == 0 || mx > time.Second {
		errorf("%s: the second client stalled (max %v over %d ops), want < 1 s", what, mx, n)
	}
	if limit := 5 * max(idle, idleFloor); p99 > limit {
		errorf("%s: the second client's p99 %v exceeds 5× the idle p99 (%v)", what, p99, limit)
	}
}

// checkBounds asserts fastfsd's fd count and RSS.
func checkBounds(t *testing.T, what string, d *daemon, maxFds int, maxRSS int64) {
	t.Helper()
	fds, rss := d.fds(), d.rss()
	t.Logf("%s: fastfsd holds %d fds, RSS %d MiB", what, fds, rss>>20)
	if fds > maxFds {
		t.Errorf("%s: fastfsd holds %d fds, bound %d", what, fds, maxFds)
	}
	if rss > maxRSS {
		t.Errorf("%s: fastfsd RSS %d MiB, bound %d MiB", what, rss>>20, maxRSS>>20)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// requireFuseUring skips unless the kernel has FUSE over io_uring.
func requireFuseUring(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/sys/module/fuse/parameters/enable_uring"); err != nil {
		t.Skip("no FUSE over io_uring in this kernel (CONFIG_FUSE_IO_URING, 6.14+): nothing to test")
	}
}

// firstCPU returns the lowest CPU this process may run on.
func firstCPU(t *testing.T) int {
	t.Helper()
	var mask unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mask); err != nil {
		t.Fatal(err)
	}
	cpu := 0
	for !mask.IsSet(cpu) {
		cpu++
	}
	return cpu
}

// unlease gives up the host leases on fds (F_SETLEASE F_UNLCK).
func unlease(t *testing.T, fds ...int) {
	t.Helper()
	for _, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_UNLCK); err != nil {
			t.Fatalf("F_SETLEASE F_UNLCK: %v", err)
		}
	}
}
