package fusemount

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/internal/posixtest"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

func TestMain(m *testing.M) { posixtest.Main(m) }

// fastfsd builds ./cmd/fastfsd into t.TempDir() (the go build cache makes
// every build after the first a link) and returns its path. Tests that
// mount several times share one build through bin.
func fastfsd(t *testing.T) string {
	t.Helper()
	testutil.RequireCommand(t, "go")
	var flags []string
	if raceBuild {
		flags = append(flags, "-race")
	}
	bin, err := testutil.BuildFastfsd(t.TempDir(), "fastfsd", nil, flags...)
	if err != nil {
		t.Fatal(err)
	}
	// A tree where the mount command has not landed yet builds a
	// fastfsd that does not know it: say so rather than fail obscurely.
	out, _ := exec.Command(bin, "mount", "--help").CombinedOutput()
	if bytes.Contains(out, []byte("unknown command")) {
		msg := "this fastfsd has no mount subcommand (cmd/fastfsd/mount.go is not in the tree): nothing to test yet"
		if testutil.Strict() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return bin
}

// mountInfo returns the fstype of the mount at mnt in /proc/self/mountinfo
// (the last one, if stacked), or "".
func mountInfo(t *testing.T, mnt string) string {
	t.Helper()
	fstype, err := mountFSType(mnt)
	if err != nil {
		t.Fatal(err)
	}
	return fstype
}

// mountFSType is mountInfo for any goroutine: the fstype of the mount at
// mnt, or "".
func mountFSType(mnt string) (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	fstype := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 10 || unescapeMount(f[4]) != mnt {
			continue
		}
		for i, x := range f {
			if x == "-" && i+1 < len(f) {
				fstype = f[i+1]
			}
		}
	}
	return fstype, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for space, …).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c int
			if _, err := fmt.Sscanf(s[i+1:i+4], "%3o", &c); err == nil {
				b.WriteByte(byte(c))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// requirements skips unless the machine can run the mount tests, and
// returns a fresh fastfsd.
func requirements(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	return fastfsd(t)
}

// mount is one running "fastfsd mount".
type mount struct {
	top, export, mnt, ref, outside string
	cmd                            *exec.Cmd
	out                            *testutil.Buffer
	exited                         chan struct{}
	waitErr                        error
	// exitExpected: the test itself ended fastfsd and checked how.
	exitExpected bool
}

// startMount mounts a fresh export with fastfsd and the given flags, and
// waits until the kernel shows the FUSE mount: it watches
// /proc/self/mountinfo with poll (the kernel signals every change of the
// mount table) rather than sleeping, and gives up if fastfsd exits.
func startMount(t *testing.T, bin string, flags ...string) *mount {
	t.Helper()
	return startMountWith(t, 0, bin, flags...)
}

// startMountWith is startMount with fastfsd's RLIMIT_NOFILE set to nofile
// (soft and hard, as "ulimit -n" in a shell does) unless it is 0.
func startMountWith(t *testing.T, nofile int, bin string, flags ...string) *mount {
	t.Helper()
	top := t.TempDir()
	// uid 1000 (the non-root section) must reach the mount and the twin.
	for _, d := range []string{filepath.Dir(top), top} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m := &mount{
		top: top,
		// The export sits deeper than the mount point, so that a
		// relative symlink means different places through each.
		export:  filepath.Join(top, "backing", "export"),
		mnt:     filepath.Join(top, "mnt"),
		ref:     filepath.Join(top, "backing", "ref"),
		outside: filepath.Join(top, "backing", "outside"),
		out:     &testutil.Buffer{},
		exited:  make(chan struct{}),
	}
	for _, d := range []string{m.export, m.mnt, m.ref, m.outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { m.stop(t) })
	m.start(t, nofile, bin, flags...)
	return m
}

// start runs fastfsd on m's export and mount point (again, after it
// ended: a restart) and waits for the mount.
func (m *mount) start(t *testing.T, nofile int, bin string, flags ...string) {
	t.Helper()
	top := m.top
	m.out, m.exited, m.waitErr, m.exitExpected = &testutil.Buffer{}, make(chan struct{}), nil, false
	args := append([]string{"mount", "--source", m.export, "--allow-other"}, flags...)
	if os.Getenv("FASTFSD_TEST_DEBUG") == "1" {
		args = append(args, "--debug") // every request and reply, saved on failure
	}
	args = append(args, m.mnt)
	m.cmd = exec.Command(bin, args...)
	if nofile > 0 {
		// The shell execs fastfsd: same pid, with the limit in place
		// before the Go runtime reads it.
		m.cmd = exec.Command("sh", append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile), bin}, args...)...)
	}
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := m.exited
	go func() {
		m.waitErr = m.cmd.Wait()
		close(exited)
	}()

	mi, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer mi.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if fst := mountInfo(t, m.mnt); strings.HasPrefix(fst, "fuse") {
			var a, b unix.Stat_t
			if err := unix.Stat(m.mnt, &a); err != nil {
				t.Fatalf("stat of the fresh mount %s: %v\nfastfsd output:\n%s", m.mnt, err, m.out.String())
			}
			unix.Stat(top, &b)
			if a.Dev == b.Dev {
				t.Fatalf("mountinfo lists %s as %s but its st_dev is that of its parent", m.mnt, fst)
			}
			t.Logf("fastfsd %s: mounted (%s)", strings.Join(flags, " "), fst)
			return
		}
		select {
		case <-m.exited:
			t.Fatalf("fastfsd %s exited before mounting: %v\noutput:\n%s", strings.Join(args, " "), m.waitErr, m.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not a FUSE mount 30 s after starting fastfsd\noutput:\n%s", m.mnt, m.out.String())
		}
		// Wake on a mount table change; the timeout only bounds how
		// late we notice fastfsd exiting.
		fds := []unix.PollFd{{Fd: int32(mi.Fd()), Events: unix.POLLPRI}}
		unix.Poll(fds, 100)
		mi.Seek(0, 0)
		mi.Read(make([]byte, 1<<16)) // re-arm
	}
}

// pid is the serving process: as root, fastfsd mount serves from a child
// (its sandbox, docs/sandbox.md) while the process started unmounts; the
// child serves once the mount answers, which startMount waited for.
func (m *mount) pid() int {
	pid := m.cmd.Process.Pid
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

// fds lists fastfsd's open file descriptors (fd → what it names).
func (m *mount) fds(t *testing.T) map[string]string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", m.pid())
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("list fastfsd's fds: %v", err)
	}
	out := map[string]string{}
	for _, e := range ents {
		out[e.Name()], _ = os.Readlink(filepath.Join(dir, e.Name()))
	}
	return out
}

// checkFdsBack checks that once every file the suite made is removed,
// fastfsd holds no more descriptors than it did before (a few of slack):
// the kernel forgets a removed inode and closes its handles, and the
// daemon must close what it kept for them. FORGETs arrive in the
// background, so it looks again for up to 10 s.
func (m *mount) checkFdsBack(t *testing.T, base map[string]string) {
	t.Helper()
	const slack = 8
	var now map[string]string
	for deadline := time.Now().Add(10 * time.Second); ; {
		now = m.fds(t)
		if len(now) <= len(base)+slack || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // waiting on the kernel's FORGETs: no event to wait for
	}
	if len(now) <= len(base)+slack {
		t.Logf("fastfsd fds: %d before the suite, %d after", len(base), len(now))
		return
	}
	var extra []string
	for fd, target := range now {
		if base[fd] != target && len(extra) < 20 {
			extra = append(extra, fd+" -> "+target)
		}
	}
	t.Errorf("fastfsd holds %d fds after the suite removed everything it made, %d before: leaked descriptors, e.g.\n%s",
		len(now), len(base), strings.Join(extra, "\n"))
}

// stop ends fastfsd with SIGTERM (which must unmount), and fails the test
// if it does not exit cleanly within 20 s or leaves the mount behind.
func (m *mount) stop(t *testing.T) {
	select {
	case <-m.exited:
		if !m.exitExpected {
			t.Errorf("fastfsd exited while the test was running: %v\noutput:\n%s", m.waitErr, m.out.String())
		}
	default:
		m.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.exited:
			if m.waitErr != nil {
				t.Errorf("fastfsd exited with %v after SIGTERM; output:\n%s", m.waitErr, tail(m.out.String(), 4000))
			}
		case <-time.After(20 * time.Second):
			m.cmd.Process.Kill()
			<-m.exited
			t.Errorf("fastfsd did not exit within 20 s of SIGTERM; output:\n%s", tail(m.out.String(), 4000))
		}
	}
	if t.Failed() && os.Getenv("FASTFSD_TEST_DEBUG") == "1" {
		if f, err := os.CreateTemp("", "fastfsd-debug-*.log"); err == nil {
			f.WriteString(m.out.String())
			f.Close()
			t.Logf("fastfsd --debug output saved in %s", f.Name())
		}
	}
	if out := m.out.String(); strings.Contains(out, "panic:") || strings.Contains(out, "DATA RACE") {
		t.Errorf("fastfsd output reports a panic or race:\n%s", tail(out, 8000))
	}
	if fst := mountInfo(t, m.mnt); fst != "" {
		t.Errorf("%s is still mounted (%s) after fastfsd exited; detaching it", m.mnt, fst)
		unix.Unmount(m.mnt, unix.MNT_DETACH)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// door is one fastfsd configuration under test.
type door struct {
	name  string
	flags []string
	lacks map[posixtest.Cap]string
	// known: cases failing on a reported bug of another package (see
	// posixtest.Env.Known); broken: the whole configuration is.
	known  map[string]string
	broken string
}

// Bugs this suite found and that are fixed: DIRECT_IO_ALLOW_MMAP not
// negotiated (shared mmap failed ENODEV with cache=never), and
// KEEP_CACHE|PASSTHROUGH refused by the kernel (every open failed EIO with
// cache=always). A new one goes in a door's known map with its report.

var doors = []door{
	{name: "cache=auto", flags: []string{"--cache=auto"}},
	{name: "cache=auto,passthrough=off", flags: []string{"--cache=auto", "--passthrough=false"}},
	{name: "cache=auto,passthrough=off,splice=on", flags: []string{"--cache=auto", "--passthrough=false", "--splice=on"}},
	{name: "cache=never", flags: []string{"--cache=never"}},
	{name: "cache=always", flags: []string{"--cache=always"}},
	{name: "cache=always,passthrough=off", flags: []string{"--cache=always", "--passthrough=false"}},
	// FUSE over io_uring (the test turns the fuse module's enable_uring
	// on): every request but FORGET and INTERRUPT travels on the rings.
	{name: "uring,passthrough=off", flags: []string{"--uring", "--passthrough=false"}},
	{name: "uring", flags: []string{"--uring"}},
}

// TestPosix runs the whole conformance suite through the mount in each
// configuration.
func TestPosix(t *testing.T) {
	bin := requirements(t)
	for _, d := range doors {
		t.Run(d.name, func(t *testing.T) {
			if d.broken != "" && os.Getenv("POSIXTEST_RUN_KNOWN") != "1" {
				t.Skipf("KNOWN BUG, not run (POSIXTEST_RUN_KNOWN=1 runs it): %s", d.broken)
			}
			// The suite makes character and block devices as root
			// (cases_meta, cases_matrix): the daemon refuses them
			// without --allow-devices (cmd/fastfsd's
			// TestDevicesRefusedByDefault checks that default).
			m := startMount(t, bin, append(append([]string(nil), d.flags...), "--allow-devices")...)
			env := posixtest.Env{
				Dir:     m.mnt,
				Ref:     m.ref,
				Backing: m.export,
				Outside: m.outside,
				Lacks:   d.lacks,
				Known:   d.known,
				// The lock cases wait for the daemon's own lock wait
				// before killing a waiter (posixtest.Env.ServerPid).
				ServerPid: m.pid(),
			}
			if testing.Short() {
				env.FioJobMiB, env.TarFiles = 16, 500
			}
			base := m.fds(t)
			posixtest.Run(t, env)
			if !t.Failed() {
				m.checkFdsBack(t, base)
			}
		})
	}
}

// TestUnmountByUmount: an external umount ends fastfsd with status 0.
func TestUnmountByUmount(t *testing.T) {
	m := startMount(t, requirements(t))
	if err := unix.Unmount(m.mnt, 0); err != nil {
		t.Fatalf("umount %s: %v", m.mnt, err)
	}
	select {
	case <-m.exited:
		if m.waitErr != nil {
			t.Errorf("fastfsd exited with %v after umount; output:\n%s", m.waitErr, m.out.String())
		}
	case <-time.After(20 * time.Second):
		t.Errorf("fastfsd still running 20 s after umount; output:\n%s", m.out.String())
	}
	m.exitExpected = true
}

// TestCacheNeverCoherent: with --cache=never every read and stat goes to
// the export, so a change made directly on the backing directory shows
// through the mount at once (no timeouts involved, so no waiting).
func TestCacheNeverCoherent(t *testing.T) {
	m := startMount(t, requirements(t), "--cache=never")
	back, front := filepath.Join(m.export, "f"), filepath.Join(m.mnt, "f")
	if err := os.WriteFile(front, []byte("written through the mount"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, content := range []string{"changed on the backing side", "shorter", "", "grown again on the backing side, longer than before"} {
		if err := os.WriteFile(back, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(front)
		if err != nil || string(got) != content {
			t.Errorf("change %d: read through the mount %q (%v), backing has %q", i, got, err, content)
		}
		var st unix.Stat_t
		if err := unix.Stat(front, &st); err != nil || st.Size != int64(len(content)) {
			t.Errorf("change %d: stat through the mount: size %d (%v), backing has %d", i, st.Size, err, len(content))
		}
	}
	// New and removed names show at once too.
	os.WriteFile(filepath.Join(m.export, "new"), []byte("x"), 0o644)
	if _, err := os.Stat(filepath.Join(m.mnt, "new")); err != nil {
		t.Errorf("a file created on the backing side is not visible through the mount: %v", err)
	}
	os.Remove(filepath.Join(m.export, "new"))
	if _, err := os.Stat(filepath.Join(m.mnt, "new")); err == nil {
		t.Errorf("a file removed on the backing side is still visible through the mount")
	}
}
