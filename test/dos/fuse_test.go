package dos

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// childEnv makes the test binary run a child role instead of the tests.
const childEnv = "FASTFSD_DOS_CHILD"

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(child(role, os.Args[len(os.Args)-2:]))
	}
	os.Exit(m.Run())
}

// child runs a role as the unprivileged attacker. "getlk PATH N": open
// PATH N times, say "opened", wait for a line, F_OFD_GETLK through every
// fd (N distinct lock owners), say "done", wait for stdin to close.
func child(role string, args []string) int {
	switch role {
	case "getlk":
		n, _ := strconv.Atoi(args[1])
		lim := unix.Rlimit{Cur: uint64(n + 100), Max: uint64(n + 100)}
		var cur unix.Rlimit
		unix.Getrlimit(unix.RLIMIT_NOFILE, &cur)
		if cur.Max < lim.Max {
			lim.Max = cur.Max
			lim.Cur = cur.Max
		}
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Println("setrlimit:", err)
			return 1
		}
		fds := make([]int, n)
		for i := range fds {
			fd, err := unix.Open(args[0], unix.O_RDWR, 0)
			if err != nil {
				fmt.Println("open:", err)
				return 1
			}
			fds[i] = fd
		}
		in := bufio.NewReader(os.Stdin)
		fmt.Println("opened")
		in.ReadString('\n')
		for _, fd := range fds {
			l := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
			if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &l); err != nil {
				fmt.Println("F_OFD_GETLK:", err)
				return 1
			}
		}
		fmt.Println("done")
		io.Copy(io.Discard, in)
		return 0
	}
	if role == "openflood" {
		return openFlood(args[0], args[1], unix.O_RDONLY)
	}
	if role == "tmpflood" {
		return openFlood(args[0], args[1], unix.O_TMPFILE|unix.O_RDWR)
	}
	if role == "createflood" {
		return openFlood(args[0], args[1], unix.O_CREAT|unix.O_RDWR)
	}
	if role == "deepdir" {
		return deepDirChild(args[0], args[1])
	}
	if role == "p9openlock" {
		return p9OpenLock(args[0], args[1])
	}
	if rc, ok := p9ConnChild(role, args); ok {
		return rc
	}
	fmt.Println("unknown role", role)
	return 2
}

// openFlood is the "openflood PATH N" role: open PATH with flags until
// an open fails or N are open (its own fd limit raised to allow N), say
// "opened K ERR" (ERR the errno that stopped it, or "none"), and keep the
// files open until stdin closes. "tmpflood DIR N" is the same with
// O_TMPFILE: each open makes a new unnamed file in DIR, and it writes a
// page into each, so that each holds storage on the host. "createflood
// DIR N" creates DIR/c0, DIR/c1, … (O_CREAT) and writes a page into each.
func openFlood(path, count string, flags int) int {
	n, _ := strconv.Atoi(count)
	var cur unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_NOFILE, &cur)
	lim := unix.Rlimit{Cur: min(uint64(n+100), cur.Max), Max: cur.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		return 1
	}
	opened, stop := 0, "none"
	for ; opened < n; opened++ {
		name := path
		if flags&unix.O_CREAT != 0 {
			name = fmt.Sprintf("%s/c%d", path, opened)
		}
		fd, err := unix.Open(name, flags, 0o600)
		if err != nil {
			stop = unix.ErrnoName(err.(syscall.Errno))
			break
		}
		if flags&unix.O_TMPFILE == unix.O_TMPFILE || flags&unix.O_CREAT != 0 {
			if _, err := unix.Pwrite(fd, page[:], 0); err != nil {
				fmt.Println("write:", err)
				return 1
			}
		}
	}
	fmt.Println("opened", opened, stop)
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// page is what the tmpflood role writes into each file.
var page [4096]byte

// startChild starts c, a command of childBinary, as role with a pipe to
// its stdin (the roles that wait read it to EOF) and a reader of its
// stdout (their reports); in its own process group, killed at cleanup.
func startChild(t *testing.T, c *exec.Cmd, role string) (io.WriteCloser, *bufio.Reader) {
	t.Helper()
	c.Env = append(os.Environ(), childEnv+"="+role)
	stdin, _ := c.StdinPipe()
	stdout, _ := c.StdoutPipe()
	start(t, c)
	return stdin, bufio.NewReader(stdout)
}

// start starts cmd in its own process group, killed at cleanup.
func start(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
}

func statOp(path string) func() error {
	return func() error {
		var st unix.Stat_t
		return unix.Stat(path, &st)
	}
}

// flockWaiters is the lock storm's size (issue 10: four processes hung a
// mount; the suite uses a hundred).
const flockWaiters = 100

// TestFlockStorm: uid 65534 holds flock on a file for 3 s while 100 more
// processes of its wait for it. The mount keeps serving root's stat loop,
// every waiter gets the lock once the holder lets go, and fastfsd's fds
// and memory stay bounded.
func TestFlockStorm(t *testing.T) {
	m := startMount(t, "--cache", "never") // every stat reaches the daemon
	stat := statOp(filepath.Join(m.mnt, "f"))
	idle := measureIdle(t, time.Second, stat)
	baseFds := m.fds()

	holder := holdF(t, m, "3")
	p := startProbe(stat)
	t0 := time.Now()
	waiters := make([]*exec.Cmd, flockWaiters)
	for i := range waiters {
		waiters[i] = asNobody(m.mnt, "flock", "f", "true")
		start(t, waiters[i])
	}
	time.Sleep(time.Second)
	// Each waiter holds one open file (one fd in fastfsd) while it waits.
	checkBounds(t, "100 flock waiters", m.daemon, baseFds+flockWaiters+32, 256<<20)
	for i, w := range waiters {
		if err := w.Wait(); err != nil {
			t.Errorf("waiter %d: %v", i, err)
		}
	}
	t.Logf("all %d waiters got the lock %v after they started (the holder keeps it ~2.7 s)", flockWaiters, time.Since(t0))
	if d := time.Since(t0); d > 20*time.Second {
		t.Errorf("waiters took %v", d)
	}
	checkProbe(t, "flock storm", p, idle)
	holder.Wait()
	if d := m.sigterm(5 * time.Second); d > 5*time.Second {
		t.Errorf("SIGTERM took %v", d)
	} else {
		t.Logf("SIGTERM after the storm: exited in %v", d)
	}
}

// TestFlockStormSIGTERM: SIGTERM with 100 lock waits pending ends fastfsd
// within 5 s (issue 10: it did not end at all), and the waiters end too.
func TestFlockStormSIGTERM(t *testing.T) {
	m := startMount(t)
	holdF(t, m, "60")
	waiters := make([]*exec.Cmd, flockWaiters)
	for i := range waiters {
		waiters[i] = asNobody(m.mnt, "flock", "f", "true")
		start(t, waiters[i])
	}
	time.Sleep(time.Second)
	d := m.sigterm(10 * time.Second)
	t.Logf("SIGTERM with %d lock waits pending: fastfsd exited in %v", flockWaiters, d)
	if d > 5*time.Second {
		t.Errorf("SIGTERM with lock waits pending took %v, want < 5 s", d)
	}
	if err := m.waitErr; err != nil {
		t.Errorf("fastfsd exit after SIGTERM: %v", err)
	}
	done := make(chan struct{})
	go func() {
		for _, w := range waiters {
			w.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Errorf("lock waiters still blocked 5 s after fastfsd exited")
	}
}

// TestGetlkOwnerStorm: 5,000 GETLK with distinct lock owners (one
// F_OFD_GETLK through each of 5,000 open files) must not add 5,000 fds to
// fastfsd (issue 10: each opened a lock fd kept until FLUSH/RELEASE).
func TestGetlkOwnerStorm(t *testing.T) {
	const owners = 5000
	// Its 5,000 opens as one uid are past the automatic per-uid budget
	// of a 20,000-fd limit (TestOpenFloodPerUid tests that).
	m := startMount(t, "--cache", "never", "--max-open-per-uid", strconv.Itoa(owners+100))
	stat := statOp(filepath.Join(m.mnt, "f"))
	idle := measureIdle(t, time.Second, stat)
	self := childBinary(t)
	c := asNobody(m.mnt, self, filepath.Join(m.mnt, "f"), strconv.Itoa(owners))
	stdin, out := startChild(t, c, "getlk")
	if l, _ := out.ReadString('\n'); l != "opened\n" {
		t.Fatalf("child: %q", l)
	}
	opened := m.fds() // one per open file: the client's own resource
	p := startProbe(stat)
	io.WriteString(stdin, "go\n")
	if l, _ := out.ReadString('\n'); l != "done\n" {
		t.Fatalf("child: %q", l)
	}
	checkProbe(t, "GETLK storm", p, idle)
	after := m.fds()
	t.Logf("fastfsd fds: %d with %d files open, %d after %d GETLK with distinct owners", opened, owners, after, owners)
	if after > opened+16 {
		t.Errorf("%d GETLK with distinct owners added %d fds to fastfsd", owners, after-opened)
	}
	checkBounds(t, "GETLK storm", m.daemon, opened+16, 256<<20)
	// SIGTERM with the 5,000 files still open.
	d := m.sigterm(10 * time.Second)
	t.Logf("SIGTERM with %d files open: exited in %v", owners, d)
	if d > 5*time.Second {
		t.Errorf("SIGTERM took %v, want < 5 s", d)
	}
	stdin.Close()
	c.Wait()
}

// childBinary copies the test binary where uid 65534 may run it (go
// test's build directory is private).
func childBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	p := filepath.Join(dir, "dos-child")
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFlockStormUring: the lock storm over FUSE io_uring (--uring). A lock
// waiter holds its ring entry until granted, so at most half a queue's
// entries wait for locks, and one uid in an eighth of those (one per CPU
// with the default depth); waits past that are refused with ENOLCK ("No
// locks available" from flock) rather than queued. The mount keeps
// serving, every waiter ends (granted or refused), SIGTERM is prompt.
func TestFlockStormUring(t *testing.T) {
	requireFuseUring(t)
	m := startMount(t, "--cache", "never", "--uring")
	stat := statOp(filepath.Join(m.mnt, "f"))
	idle := measureIdle(t, time.Second, stat)
	holder := holdF(t, m, "3")
	p := startProbe(stat)
	waiters := make([]*exec.Cmd, flockWaiters)
	outs := make([]*testutil.Buffer, flockWaiters)
	for i := range waiters {
		waiters[i] = asNobody(m.mnt, "flock", "f", "true")
		outs[i] = &testutil.Buffer{}
		waiters[i].Stderr = outs[i]
		start(t, waiters[i])
	}
	granted, refused := 0, 0
	for i, w := range waiters {
		if err := w.Wait(); err == nil {
			granted++
		} else if strings.Contains(outs[i].String(), "No locks available") {
			refused++
		} else {
			t.Errorf("waiter %d: %v: %s", i, err, outs[i].String())
		}
	}
	t.Logf("io_uring: %d waiters granted, %d refused with ENOLCK", granted, refused)
	if granted == 0 {
		t.Errorf("no waiter got the lock")
	}
	checkProbe(t, "flock storm over io_uring", p, idle)
	holder.Wait()
	if d := m.sigterm(5 * time.Second); d > 5*time.Second {
		t.Errorf("SIGTERM took %v", d)
	}
}

// TestLockWaitsPerUid: uid 65534 holds a lock and starts more waiters for
// it than its share of the mount's lock-wait slots (a hostile try took
// all 128 slots of the old pool this way, and with them every other
// user's blocking locks, root's unlocks included). Its share waits, the
// rest get ENOLCK ("No locks available") at once, and meanwhile root and
// uid 65533 still take blocking locks on another file.
func TestLockWaitsPerUid(t *testing.T) {
	const share = 128 // fusedev.DefaultBlockingHelpers / 8
	const waiters = share + 24
	m := startMount(t, "--cache", "never")
	sharedFile(t, filepath.Join(m.src, "g"))
	holder := holdF(t, m, "30")
	ws := make([]*exec.Cmd, waiters)
	outs := make([]*bytes.Buffer, waiters)
	done := make(chan int, waiters)
	for i := range ws {
		ws[i] = asNobody(m.mnt, "flock", "f", "true")
		outs[i] = new(bytes.Buffer)
		ws[i].Stderr = outs[i]
		start(t, ws[i])
		go func() { ws[i].Wait(); done <- i }()
	}
	// The refused ones end at once; the others wait for the holder.
	refused := 0
	for quiet := time.After(5 * time.Second); ; {
		select {
		case i := <-done:
			if !strings.Contains(outs[i].String(), "No locks available") {
				t.Errorf("waiter %d ended while the lock is held: %v %q", i, ws[i].ProcessState, outs[i].String())
			}
			refused++
			continue
		case <-quiet:
		}
		break
	}
	if refused != waiters-share {
		t.Errorf("%d of %d waiters refused, want %d (its share of %d waits)", refused, waiters, waiters-share, share)
	}
	// Others still wait for and take blocking locks.
	for _, who := range []struct {
		name string
		cmd  *exec.Cmd
	}{
		{"root", exec.Command("flock", "g", "true")},
		{"uid 65533", func() *exec.Cmd {
			c := exec.Command("flock", "g", "true")
			c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65533, Gid: 65533, Groups: []uint32{}}}
			return c
		}()},
	} {
		who.cmd.Dir = m.mnt
		t0 := time.Now()
		if out, err := who.cmd.CombinedOutput(); err != nil {
			t.Errorf("%s's blocking flock with uid 65534's share of waits taken: %v %q", who.name, err, out)
		} else if d := time.Since(t0); d > 5*time.Second {
			t.Errorf("%s's flock took %v", who.name, d)
		}
	}
	syscall.Kill(-holder.Process.Pid, syscall.SIGKILL) // flock and its sleep, which shares the locked file
	for range share {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("waiters still blocked 20 s after the holder was killed")
		}
	}
}

// TestLockWaitsPerUidUring: TestLockWaitsPerUid over FUSE io_uring. A
// lock wait holds its ring entry, and the kernel queues a request on its
// caller's CPU, so one user pinning its waiters to one CPU could take
// that queue's wait slots (half its 16 entries) and with them every other
// user's blocking locks there. Each queue shares them as /dev/fuse shares
// its pool: uid 65534 waits in one (an eighth of 8), its other waiters
// get ENOLCK at once; six more uids wait in one each; the next uid is
// refused (the eighth kept for root); root's blocking flock on that CPU
// still works.
func TestLockWaitsPerUidUring(t *testing.T) {
	requireFuseUring(t)
	testutil.RequireCommand(t, "taskset")
	const slots, share = 8, 1 // half the 16 entries of a queue; an eighth of them
	cpu := firstCPU(t)
	pin := strconv.Itoa(cpu)
	m := startMount(t, "--cache", "never", "--uring")
	sharedFile(t, filepath.Join(m.src, "g"))
	holder := holdF(t, m, "30")
	// as runs flock on file as uid, pinned to cpu (so on that CPU's queue).
	as := func(uid uint32, file string) *exec.Cmd {
		c := exec.Command("taskset", "-c", pin, "flock", file, "true")
		c.Dir = m.mnt
		if uid != 0 {
			c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
		}
		return c
	}
	type waiter struct {
		cmd *exec.Cmd
		out *bytes.Buffer
		uid uint32
	}
	done := make(chan waiter, 64)
	run := func(uid uint32) {
		w := waiter{cmd: as(uid, "f"), out: new(bytes.Buffer), uid: uid}
		w.cmd.Stderr = w.out
		start(t, w.cmd)
		go func() { w.cmd.Wait(); done <- w }()
	}
	// refusals counts the waiters that end within 3 s (all must say
	// ENOLCK: the lock is held).
	refusals := func() int {
		n := 0
		for quiet := time.After(3 * time.Second); ; {
			select {
			case w := <-done:
				if !strings.Contains(w.out.String(), "No locks available") {
					t.Errorf("uid %d's waiter ended while the lock is held: %v %q", w.uid, w.cmd.ProcessState, w.out.String())
				}
				n++
				continue
			case <-quiet:
			}
			return n
		}
	}
	const more = 12
	for range share + more {
		run(nobody)
	}
	if n := refusals(); n != more {
		t.Fatalf("uid %d: %d of %d waiters on CPU %d refused, want %d (its share of %d waits)", nobody, n, share+more, cpu, more, share)
	}
	// Six more uids wait, one each: slots − reserve non-root waits.
	for uid := uint32(65000); uid < 65000+slots-1-share; uid++ {
		run(uid)
	}
	if n := refusals(); n != 0 {
		t.Fatalf("%d of six other uids' waiters refused, want none", n)
	}
	run(65010)
	if n := refusals(); n != 1 {
		t.Fatalf("a waiter past all but root's eighth: %d refused, want 1", n)
	}
	// Root's blocking lock (on another file) still works on that CPU.
	t0 := time.Now()
	if out, err := as(0, "g").CombinedOutput(); err != nil {
		t.Errorf("root's blocking flock on CPU %d with every other wait slot taken: %v %q", cpu, err, out)
	} else if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("root's flock took %v", d)
	}
	syscall.Kill(-holder.Process.Pid, syscall.SIGKILL)
	for range slots - 1 {
		select {
		case w := <-done:
			if w.cmd.ProcessState.ExitCode() != 0 {
				t.Errorf("uid %d's waiter after the holder was killed: %v %q", w.uid, w.cmd.ProcessState, w.out.String())
			}
		case <-time.After(20 * time.Second):
			t.Fatal("waiters still blocked 20 s after the holder was killed")
		}
	}
	if d := m.sigterm(5 * time.Second); d > 5*time.Second {
		t.Errorf("SIGTERM took %v", d)
	}
}
