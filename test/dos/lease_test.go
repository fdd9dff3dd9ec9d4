package dos

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// leaseWaiters is how many opens wait for a host lease at once: more than
// the mount's workers (one per CPU), so that on a daemon that waits on
// its workers every worker is taken.
const leaseWaiters = 4

// leased creates n files name0… in dir and takes a write lease on each
// (F_SETLEASE F_WRLCK; the test runs as root, which has CAP_LEASE) from
// this process, which is not the daemon, as another host process would.
// It returns the lease fds; closing one (or F_UNLCK) gives the lease up.
// The test process ignores the lease-break notice (no F_SETOWN: no
// SIGIO), so a lease lasts until given up or lease-break-time (45 s).
func leased(t *testing.T, dir, name string, n int) []int {
	t.Helper()
	fds := make([]int, n)
	for i := range fds {
		p := filepath.Join(dir, fmt.Sprintf("%s%d", name, i))
		if err := os.WriteFile(p, []byte("leased"), 0o666); err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_WRLCK); err != nil {
			t.Fatalf("F_SETLEASE F_WRLCK on %s: %v", p, err)
		}
		fds[i] = fd
		t.Cleanup(func() { unix.Close(fd) })
	}
	return fds
}

// waitOnLeases opens (or, for the last one, truncates: a SETATTR size)
// name0… through the mount, each from its own goroutine, and returns the
// channel each reports its result on.
func waitOnLeases(mnt, name string, n int) chan error {
	res := make(chan error, n)
	for i := range n {
		p := filepath.Join(mnt, fmt.Sprintf("%s%d", name, i))
		go func() {
			// The daemon answers a waiting open EINTR when the kernel
			// sends FUSE_INTERRUPT (a signal to the caller: here the Go
			// runtime's preemption signal): retried, as os.Open does.
			for {
				var err error
				if i == n-1 {
					err = unix.Truncate(p, 6)
				} else {
					var fd int
					if fd, err = unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
						unix.Close(fd)
					}
				}
				if err != unix.EINTR {
					res <- err
					return
				}
			}
		}()
	}
	return res
}

// statMax times k stats of path, each bounded by limit (a stat still
// pending then counts as limit), and returns the slowest.
func statMax(path string, k int, limit time.Duration) time.Duration {
	var worst time.Duration
	for range k {
		done := make(chan time.Duration, 1)
		go func() {
			t0 := time.Now()
			statOp(path)()
			done <- time.Since(t0)
		}()
		select {
		case d := <-done:
			worst = max(worst, d)
		case <-time.After(limit):
			return limit
		}
		time.Sleep(20 * time.Millisecond)
	}
	return worst
}

// TestLeaseOpenWaits: opens and a truncate through the mount of files on
// which another host process holds write leases wait (as they would
// natively, until the lease is given up), but they wait on helpers: root's
// stat of another file keeps answering at once (hostile finding: the
// opens slept in the kernel's lease break on the per-CPU workers, and a
// stat took 58 s). Giving the leases up lets the opens complete; SIGTERM
// with such opens pending ends fastfsd within 5 s.
func TestLeaseOpenWaits(t *testing.T) { leaseOpenWaits(t) }

// TestLeaseOpenWaitsUring is TestLeaseOpenWaits over FUSE io_uring: the
// opens wait on helpers holding their ring entries (root's waits are not
// capped per uid), not on the queue's worker.
func TestLeaseOpenWaitsUring(t *testing.T) {
	requireFuseUring(t)
	leaseOpenWaits(t, "--uring")
}

func leaseOpenWaits(t *testing.T, flags ...string) {
	m := startMount(t, append([]string{"--cache", "never"}, flags...)...) // every stat reaches the daemon
	stat := filepath.Join(m.mnt, "f")
	fds := leased(t, m.src, "leased", leaseWaiters)
	res := waitOnLeases(m.mnt, "leased", leaseWaiters)
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-res:
		t.Fatalf("an open of a leased file returned before the lease was given up: %v", err)
	default:
	}
	worst := statMax(stat, 10, 2*time.Second)
	t.Logf("root's stat of another file while %d opens wait for leases: slowest of 10 took %v", leaseWaiters, worst)
	if worst > 500*time.Millisecond {
		t.Errorf("root's stat took %v while opens waited for host leases, want < 500 ms", worst)
	}
	unlease(t, fds...)
	for range leaseWaiters {
		select {
		case err := <-res:
			if err != nil {
				t.Errorf("open or truncate after the lease was given up: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("opens still waiting 5 s after the leases were given up")
		}
	}

	// SIGTERM with opens waiting for leases.
	leased(t, m.src, "again", leaseWaiters)
	res = waitOnLeases(m.mnt, "again", leaseWaiters)
	time.Sleep(300 * time.Millisecond)
	d := m.sigterm(10 * time.Second)
	t.Logf("SIGTERM with %d opens waiting for leases: fastfsd exited in %v", leaseWaiters, d)
	if d > 5*time.Second {
		t.Errorf("SIGTERM with opens waiting for leases took %v, want < 5 s", d)
	}
	for range leaseWaiters {
		select {
		case <-res:
		case <-time.After(5 * time.Second):
			t.Fatalf("opens through the mount still blocked 5 s after fastfsd exited")
		}
	}
}

// TestLeaseWaitsPerUid: a lease wait holds a helper as a lock wait does,
// so it takes a slot of its uid's share (an eighth of the 1,024, as
// TestLockWaitsPerUid). uid 65534 opens more leased files than its share:
// its share waits, the rest get EAGAIN at once (what an O_NONBLOCK open
// gets from a lease); meanwhile uid 65533's open of a leased file still
// waits (its own share) and root's stat answers at once. Giving the
// leases up lets every waiting open through.
func TestLeaseWaitsPerUid(t *testing.T) {
	const share = 128 // fusedev.DefaultBlockingHelpers / 8
	const waiters = share + 16
	m := startMount(t, "--cache", "never")
	fds := leased(t, m.src, "leased", waiters+1)
	type opener struct {
		cmd *exec.Cmd
		out *bytes.Buffer
	}
	done := make(chan opener, waiters+1)
	open := func(uid uint32, i int) {
		c := exec.Command("cat", fmt.Sprintf("leased%d", i))
		c.Dir = m.mnt
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
		o := opener{c, new(bytes.Buffer)}
		c.Stdout, c.Stderr = o.out, o.out
		start(t, c)
		go func() { c.Wait(); done <- o }()
	}
	for i := range waiters {
		open(nobody, i)
	}
	// The refused ones end at once; the others wait for the leases.
	refused := 0
	for quiet := time.After(3 * time.Second); ; {
		select {
		case o := <-done:
			if !strings.Contains(o.out.String(), "Resource temporarily unavailable") {
				t.Errorf("uid %d's open ended while its file is leased: %v %q", nobody, o.cmd.ProcessState, o.out.String())
			}
			refused++
			continue
		case <-quiet:
		}
		break
	}
	if refused != waiters-share {
		t.Errorf("%d of uid %d's %d opens of leased files refused, want %d (its share of %d waits)", refused, nobody, waiters, waiters-share, share)
	}
	open(65533, waiters)
	select {
	case o := <-done:
		t.Errorf("uid 65533's open of a leased file, uid %d's share of waits taken: ended before the lease was given up: %v %q", nobody, o.cmd.ProcessState, o.out.String())
	case <-time.After(500 * time.Millisecond):
	}
	if worst := statMax(filepath.Join(m.mnt, "f"), 10, 2*time.Second); worst > 500*time.Millisecond {
		t.Errorf("root's stat took %v while uid %d's share of waits was taken, want < 500 ms", worst, nobody)
	}
	unlease(t, fds...)
	for range share + 1 {
		select {
		case o := <-done:
			if !o.cmd.ProcessState.Success() || o.out.String() != "leased" {
				t.Errorf("an open that waited for a lease, after the lease was given up: %v %q", o.cmd.ProcessState, o.out.String())
			}
		case <-time.After(10 * time.Second):
			t.Fatal("opens still waiting 10 s after the leases were given up")
		}
	}
}

// TestLeaseCreateLongUring: over FUSE io_uring, a CREATE (O_CREAT
// without O_EXCL) of an existing file another uid holds a write lease on
// waits for the lease on a helper even when its payload is larger than
// the helper's small copy: a 255-byte name with its NUL is 256 bytes and
// the kernel's FUSE_EXT_GROUPS extension (the caller is in the parent's
// group through a supplementary group) adds 16, 272 in all. Before, such
// a request waited on its queue's worker, and the stats of a process on
// the same CPU (so on the same queue) waited with it until the lease
// went. Stats pinned to that CPU answer at once while the create waits,
// and the create completes, opening the existing file, once the lease is
// given up.
//
// The kernel sends CREATE for a name that exists only where its dentry
// is negative and still valid (fuse_atomic_open looks a name up first
// otherwise, and then sends OPEN): the name is looked up through the
// mount while absent (--cache always keeps the negative entry for a day,
// and nothing watches the host), then made and leased on the host, as a
// host process racing the client's create would.
func TestLeaseCreateLongUring(t *testing.T) {
	requireFuseUring(t)
	testutil.RequireCommand(t, "taskset", "sh")
	const group = 4242 // the directory's group: the creator's supplementary one
	cpu := firstCPU(t)
	m := startMount(t, "--cache", "always", "--uring")
	dir := filepath.Join(m.src, "d")
	if err := os.Mkdir(dir, 0o770); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 0, group); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o770)
	// The stats' targets: each is looked up once (a LOOKUP the queue
	// must answer; --cache always keeps its answer).
	const stats, limit = 10, 100 * time.Millisecond
	for i := range stats {
		sharedFile(t, filepath.Join(m.src, fmt.Sprintf("probe%d", i)))
	}
	name := strings.Repeat("n", 255)
	if err := unix.Stat(filepath.Join(m.mnt, "d", name), new(unix.Stat_t)); err != unix.ENOENT {
		t.Fatalf("stat of the absent name through the mount: %v, want ENOENT", err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("leased"), 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o666)
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_WRLCK); err != nil {
		t.Fatalf("F_SETLEASE F_WRLCK: %v", err)
	}
	// uid 65533, in group 4242 only through its supplementary groups,
	// pinned to cpu: the shell's >> is open(O_WRONLY|O_CREAT|O_APPEND).
	c := exec.Command("taskset", "-c", strconv.Itoa(cpu), "sh", "-c", `exec 3>>"$1"`, "sh", "d/"+name)
	c.Dir = m.mnt
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65533, Gid: 65533, Groups: []uint32{group}}}
	out := new(bytes.Buffer)
	c.Stdout, c.Stderr = out, out
	start(t, c)
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("the create of a leased file returned before the lease was given up: %v %q", err, out.String())
	default:
	}
	// Stats from this process, on a thread pinned to the same CPU; each
	// must answer within limit (one still pending after 2 s ends the
	// measure, and giving the lease up below ends the stat).
	type result struct {
		d   time.Duration
		err error
	}
	lat := make(chan result, stats) // never blocks: the goroutine may outlive a failed test
	go func() {
		defer close(lat)
		runtime.LockOSThread() // never unlocked: the thread and its affinity end with the goroutine
		var one unix.CPUSet
		one.Set(cpu)
		if err := unix.SchedSetaffinity(0, &one); err != nil {
			lat <- result{err: fmt.Errorf("sched_setaffinity to CPU %d: %w", cpu, err)}
			return
		}
		for i := range stats {
			f := filepath.Join(m.mnt, fmt.Sprintf("probe%d", i))
			t0 := time.Now()
			err := unix.Stat(f, new(unix.Stat_t))
			if err != nil {
				err = fmt.Errorf("stat %s: %w", f, err)
			}
			lat <- result{time.Since(t0), err}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var worst time.Duration
	check := func(r result) {
		if r.err != nil {
			t.Error(r.err)
		}
		worst = max(worst, r.d)
	}
measure:
	for {
		select {
		case r, ok := <-lat:
			if !ok {
				break measure
			}
			check(r)
		case <-time.After(2 * time.Second):
			worst = 2 * time.Second
			break measure
		}
	}
	t.Logf("stats on CPU %d while a CREATE of a %d-byte name waits for a lease on that CPU's queue: slowest of %d took %v (2 s: still pending)", cpu, len(name), stats, worst)
	if worst > limit {
		t.Errorf("a stat on CPU %d took %v while a CREATE waited for a host lease on that CPU's queue, want < %v", cpu, worst, limit)
	}
	select {
	case err := <-done:
		t.Fatalf("the create of a leased file returned before the lease was given up: %v %q", err, out.String())
	default:
	}
	unlease(t, fd)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the create after the lease was given up: %v %q", err, out.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the create still waiting 5 s after the lease was given up")
	}
	// The stats end too (before the mount does).
	for r := range lat {
		check(r)
	}
	var st unix.Stat_t
	if b, err := os.ReadFile(p); err != nil || string(b) != "leased" {
		t.Errorf("the existing file after its create: %q, %v; want its content kept", b, err)
	} else if err := unix.Stat(p, &st); err != nil || st.Uid != 0 {
		t.Errorf("the existing file after its create: owner %d, %v; want root's file opened, not replaced", st.Uid, err)
	}
}

// TestLockKeepsReadLease: a POSIX read lock taken through the mount
// leaves a host process's read lease on the file alone, as a native lock
// does. Before, the daemon opened the lock owner's fd read-write, which
// broke the lease: its holder got SIGIO and F_GETLEASE said F_UNLCK.
// With --cache never (no passthrough) and --cache auto (passthrough: the
// open itself used to break the lease, TestPassthroughKeepsReadLease).
func TestLockKeepsReadLease(t *testing.T) {
	for _, cache := range []string{"never", "auto"} {
		t.Run(cache, func(t *testing.T) { lockKeepsReadLease(t, cache) })
	}
}

func lockKeepsReadLease(t *testing.T, cache string) {
	m := startMount(t, "--cache", cache)
	p := filepath.Join(m.src, "r")
	if err := os.WriteFile(p, []byte("leased"), 0o644); err != nil {
		t.Fatal(err)
	}
	sigio := make(chan os.Signal, 1)
	signal.Notify(sigio, syscall.SIGIO)
	defer signal.Stop(sigio)
	// The lease is this process's, which is not the daemon: a host
	// process's (root has CAP_LEASE).
	lfd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	if _, err := unix.FcntlInt(uintptr(lfd), unix.F_SETOWN, unix.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(lfd), unix.F_SETLEASE, unix.F_RDLCK); err != nil {
		t.Fatalf("F_SETLEASE F_RDLCK: %v", err)
	}
	fd, err := unix.Open(filepath.Join(m.mnt, "r"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: io.SeekStart, Start: 0, Len: 2}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_SETLK, &lk); err != nil {
		t.Fatalf("read lock through the mount: %v", err)
	}
	if got, err := unix.FcntlInt(uintptr(lfd), unix.F_GETLEASE, 0); err != nil || got != unix.F_RDLCK {
		t.Errorf("after a read lock through the mount F_GETLEASE = %d, %v; want F_RDLCK (%d): the lease was broken", got, err, unix.F_RDLCK)
	}
	select {
	case <-sigio:
		t.Error("the lease holder got SIGIO: its lease is being broken")
	case <-time.After(200 * time.Millisecond):
	}
	// The lock is the host's: a write lock on the backing file is refused.
	probe := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: 1, Len: 1}
	if err := unix.FcntlFlock(uintptr(lfd), unix.F_OFD_GETLK, &probe); err != nil || probe.Type != unix.F_RDLCK {
		t.Errorf("F_OFD_GETLK on the backing file: %v, type %d; want the read lock (F_RDLCK)", err, probe.Type)
	}
}

// TestPassthroughKeepsReadLease: with FUSE passthrough (--cache auto, the
// default), a read-only open and read through the mount leave a host
// process's read lease alone, as a native read-only open does. Before,
// the daemon opened the inode's passthrough backing file read-write for
// every first open: that open failed with EWOULDBLOCK, but the kernel had
// started the break, so the holder got SIGIO and F_GETLEASE said F_UNLCK.
// Then, with those read-only opens still open (their inodes' backing
// files registered read-only), a write open of each file breaks the lease
// as natively (F_GETLEASE F_UNLCK while it waits), waits until the holder
// gives the lease up, and on helpers: root's open of another file keeps
// answering while leaseWaiters (more than the workers) wait. Once the
// leases go the writes work: their data is on the host and reads through
// the read-only opens see it.
func TestPassthroughKeepsReadLease(t *testing.T) {
	m := startMount(t, "--cache", "auto")
	sigio := make(chan os.Signal, 1)
	signal.Notify(sigio, syscall.SIGIO)
	defer signal.Stop(sigio)
	lfds := make([]int, leaseWaiters)
	rfds := make([]int, leaseWaiters)
	for i := range leaseWaiters {
		p := filepath.Join(m.src, fmt.Sprintf("r%d", i))
		if err := os.WriteFile(p, []byte("leased"), 0o644); err != nil {
			t.Fatal(err)
		}
		// The lease is this process's, which is not the daemon: a host
		// process's (root has CAP_LEASE).
		lfd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(lfd) })
		lfds[i] = lfd
		if _, err := unix.FcntlInt(uintptr(lfd), unix.F_SETOWN, unix.Getpid()); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.FcntlInt(uintptr(lfd), unix.F_SETLEASE, unix.F_RDLCK); err != nil {
			t.Fatalf("F_SETLEASE F_RDLCK: %v", err)
		}
		fd, err := unix.Open(filepath.Join(m.mnt, fmt.Sprintf("r%d", i)), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatalf("read-only open through the mount: %v", err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		rfds[i] = fd
		buf := make([]byte, 16)
		if n, err := unix.Pread(fd, buf, 0); err != nil || string(buf[:n]) != "leased" {
			t.Fatalf("read through the mount: %q, %v", buf[:n], err)
		}
	}
	for i, lfd := range lfds {
		if got, err := unix.FcntlInt(uintptr(lfd), unix.F_GETLEASE, 0); err != nil || got != unix.F_RDLCK {
			t.Errorf("r%d: after a read-only open and read through the mount F_GETLEASE = %d, %v; want F_RDLCK (%d): the lease is being broken", i, got, err, unix.F_RDLCK)
		}
	}
	select {
	case <-sigio:
		t.Fatal("the lease holder got SIGIO after read-only opens: a lease is being broken")
	case <-time.After(200 * time.Millisecond):
	}

	// Write opens of the same files while the read-only ones are open.
	type opened struct {
		fd  int
		err error
	}
	res := make(chan opened, leaseWaiters)
	for i := range leaseWaiters {
		p := filepath.Join(m.mnt, fmt.Sprintf("r%d", i))
		go func() {
			for { // EINTR: the Go runtime's preemption signal (waitOnLeases)
				fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
				if err != unix.EINTR {
					res <- opened{fd, err}
					return
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	select {
	case o := <-res:
		t.Fatalf("a write open of a read-leased file returned before the lease was given up: %v", o.err)
	default:
	}
	for i, lfd := range lfds {
		if got, err := unix.FcntlInt(uintptr(lfd), unix.F_GETLEASE, 0); err != nil || got != unix.F_UNLCK {
			t.Errorf("r%d: while a write open waits F_GETLEASE = %d, %v; want F_UNLCK (%d): the lease being broken, as a native write open breaks it", i, got, err, unix.F_UNLCK)
		}
	}
	// OPEN always reaches the daemon, whatever the cache mode.
	probe := filepath.Join(m.mnt, "f")
	var worst time.Duration
	for range 10 {
		done := make(chan error, 1)
		t0 := time.Now()
		go func() {
			fd, err := unix.Open(probe, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err == nil {
				unix.Close(fd)
			}
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("root's open of another file: %v", err)
			}
			worst = max(worst, time.Since(t0))
		case <-time.After(2 * time.Second):
			t.Fatalf("root's open of another file took more than 2 s while %d write opens waited for leases", leaseWaiters)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("root's open of another file while %d write opens wait for read leases: slowest of 10 took %v", leaseWaiters, worst)
	if worst > 500*time.Millisecond {
		t.Errorf("root's open took %v while write opens waited for host leases, want < 500 ms", worst)
	}
	unlease(t, lfds...)
	var wfds []int
	for range leaseWaiters {
		select {
		case o := <-res:
			if o.err != nil {
				t.Fatalf("write open after the lease was given up: %v", o.err)
			}
			wfds = append(wfds, o.fd)
		case <-time.After(5 * time.Second):
			t.Fatal("a write open still waits 5 s after the leases were given up")
		}
	}
	for _, fd := range wfds {
		if n, err := unix.Pwrite(fd, []byte("written"), 0); err != nil || n != 7 {
			t.Errorf("write through the mount: %d, %v", n, err)
		}
		if err := unix.Close(fd); err != nil {
			t.Errorf("close after the write: %v", err)
		}
	}
	for i, fd := range rfds {
		if b, err := os.ReadFile(filepath.Join(m.src, fmt.Sprintf("r%d", i))); err != nil || string(b) != "written" {
			t.Errorf("r%d on the host after the write through the mount: %q, %v; want %q", i, b, err, "written")
		}
		buf := make([]byte, 16)
		if n, err := unix.Pread(fd, buf, 0); err != nil || string(buf[:n]) != "written" {
			t.Errorf("r%d read through the read-only open after the write: %q, %v; want %q", i, buf[:n], err, "written")
		}
	}
	// A shared writable mapping of a read-write open (mmap goes to the
	// open's own backing file too) while the read-only opens hold r0's.
	fd, err := unix.Open(filepath.Join(m.mnt, "r0"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	mem, err := unix.Mmap(fd, 0, 7, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatalf("shared writable mmap through the mount: %v", err)
	}
	copy(mem, "mmapped")
	if err := unix.Msync(mem, unix.MS_SYNC); err != nil {
		t.Errorf("msync: %v", err)
	}
	unix.Munmap(mem)
	if b, err := os.ReadFile(filepath.Join(m.src, "r0")); err != nil || string(b) != "mmapped" {
		t.Errorf("r0 on the host after a write through a shared mapping: %q, %v; want %q", b, err, "mmapped")
	}
}

// TestPassthroughReadOpenNoWriter: a read-only open through a passthrough
// mount (--cache auto) leaves the host file as a native read-only open
// does: the host may still exec it and take a read lease on it, and the
// open cannot write (write EBADF, a shared writable mapping EACCES).
// Before, the inode's registered backing file was open read-write while
// any client had the file open: exec failed with ETXTBSY and F_SETLEASE
// F_RDLCK with EAGAIN. A write open through the mount makes the host's
// exec fail with ETXTBSY, as a native one does, and closing it (the
// read-only open still open) lets exec work again.
func TestPassthroughReadOpenNoWriter(t *testing.T) {
	m := startMount(t, "--cache", "auto")
	exe, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skipf("no /bin/true to exec: %v", err)
	}
	host := filepath.Join(m.src, "prog")
	if err := os.WriteFile(host, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func() error { return exec.Command(host).Run() }
	rfd, err := unix.Open(filepath.Join(m.mnt, "prog"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rfd)
	if n, err := unix.Pread(rfd, make([]byte, 4), 0); err != nil || n != 4 {
		t.Fatalf("read through the mount: %d, %v", n, err)
	}
	if err := run(); err != nil {
		t.Errorf("exec of the host file while a client has it open read-only: %v; want it to run, as with a native read-only open", err)
	}
	lfd, err := unix.Open(host, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unix.FcntlInt(uintptr(lfd), unix.F_SETLEASE, unix.F_RDLCK); err != nil {
		t.Errorf("host F_SETLEASE F_RDLCK while a client has the file open read-only: %v; want it granted", err)
	}
	unix.Close(lfd)
	if _, err := unix.Pwrite(rfd, []byte("x"), 0); err != unix.EBADF {
		t.Errorf("write through a read-only open: %v, want EBADF", err)
	}
	if mem, err := unix.Mmap(rfd, 0, 4, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err != unix.EACCES {
		if err == nil {
			unix.Munmap(mem)
		}
		t.Errorf("shared writable mapping of a read-only open: %v, want EACCES", err)
	}

	wfd, err := unix.Open(filepath.Join(m.mnt, "prog"), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := run(); !errors.Is(err, unix.ETXTBSY) {
		t.Errorf("exec of the host file while a client has it open for writing: %v, want ETXTBSY as natively", err)
	}
	unix.Close(wfd)
	// The kernel sends RELEASE after close returns, and the daemon
	// closes the handle's write fd then: give it a moment.
	err = run()
	for deadline := time.Now().Add(2 * time.Second); errors.Is(err, unix.ETXTBSY) && time.Now().Before(deadline); err = run() {
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Errorf("exec of the host file 2 s after the write open closed (a read-only one still open): %v", err)
	}
	if b, err := os.ReadFile(host); err != nil || !bytes.Equal(b, exe) {
		t.Errorf("the host file changed: %v", err)
	}
}
