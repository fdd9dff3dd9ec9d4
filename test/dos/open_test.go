package dos

import (
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
)

// asUser runs name args as uid/gid uid with no groups, in dir.
func asUser(uid uint32, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
	return cmd
}

// flooder is one running "openflood" child.
type flooder struct {
	stdin  io.WriteCloser
	opened int
	stop   string // the errno that ended its opens, "none"
	cmd    *exec.Cmd
}

// startFlood starts a child that opens path up to n times as uid and
// waits for its report.
func startFlood(t *testing.T, self string, uid uint32, dir, path string, n int) *flooder {
	t.Helper()
	return startFloodRole(t, self, "openflood", uid, dir, path, n)
}

// startFloodRole is startFlood with the child's role: "openflood" or
// "tmpflood" (O_TMPFILE in the directory path).
func startFloodRole(t *testing.T, self, role string, uid uint32, dir, path string, n int) *flooder {
	t.Helper()
	c := asUser(uid, dir, self, path, strconv.Itoa(n))
	stdin, out := startChild(t, c, role)
	l, _ := out.ReadString('\n')
	var f flooder
	if _, err := fmt.Sscanf(l, "opened %d %s", &f.opened, &f.stop); err != nil {
		t.Fatalf("uid %d flood child: %q", uid, l)
	}
	f.stdin, f.cmd = stdin, c
	return &f
}

// end closes the child's files (it exits).
func (f *flooder) end() { f.stdin.Close(); f.cmd.Wait() }

// TestOpenFloodPerUid: the issue 10 attack on the open files. Three uid
// 65534 processes each try to open one file 19,000 times on an
// --allow-other mount (on main before the per-uid budget, the serving
// child reached its 20,000-fd limit and root's cat and ls failed with
// EMFILE until the attacker exited). With --max-open-per-uid 200 the
// three get 200 opens between them, then EMFILE; root opens, stats and
// lists as before, another uid opens its own 200, uid 65534's further
// opens fail, fastfsd's fds stay under base + 200×3 (a handle holds at
// most its fd, its inode's and a passthrough file), and once the
// attackers exit uid 65534 has its budget back.
func TestOpenFloodPerUid(t *testing.T) {
	const budget, tries, other = 200, 19000, 65533
	m := startMount(t, "--cache", "never", "--max-open-per-uid", strconv.Itoa(budget))
	for _, d := range []string{"d"} {
		os.Mkdir(filepath.Join(m.src, d), 0o777)
		os.Chmod(filepath.Join(m.src, d), 0o777)
	}
	for i := 0; i < 3; i++ {
		os.WriteFile(filepath.Join(m.src, "d", fmt.Sprint("e", i)), nil, 0o666)
	}
	f := filepath.Join(m.mnt, "f")
	stat := statOp(f)
	idle := measureIdle(t, time.Second, stat)
	base := m.fds()
	self := childBinary(t)

	p := startProbe(stat)
	t0 := time.Now()
	floods := make([]*flooder, 3)
	total := 0
	for i := range floods {
		floods[i] = startFlood(t, self, nobody, m.mnt, f, tries)
		total += floods[i].opened
		if floods[i].stop != "EMFILE" {
			t.Errorf("attacker %d: opened %d of %d, stopped by %s, want EMFILE", i, floods[i].opened, tries, floods[i].stop)
		}
	}
	t.Logf("three uid %d processes trying %d opens each: %d opened in all, then EMFILE (%v)", nobody, tries, total, time.Since(t0))
	if total != budget {
		t.Errorf("uid %d opened %d files in all, want its budget %d", nobody, total, budget)
	}
	bound := base + 3*budget + 32
	checkBounds(t, "uid 65534 at its budget", m.daemon, bound, 256<<20)

	// Its further opens and directory listings fail, for it alone.
	more := startFlood(t, self, nobody, m.mnt, f, 1)
	if more.opened != 0 || more.stop != "EMFILE" {
		t.Errorf("uid %d at its budget: opened %d, stopped by %s, want 0 and EMFILE", nobody, more.opened, more.stop)
	}
	more.end()
	if out, err := asUser(nobody, m.mnt, "ls", "d").CombinedOutput(); err == nil || !strings.Contains(string(out), "Too many open files") {
		t.Errorf("ls as uid %d at its budget: %v %q, want EMFILE", nobody, err, out)
	}

	// Root: exempt, opens twice the budget; stat and readdir work.
	var mine []*os.File
	for i := 0; i < 2*budget; i++ {
		fh, err := os.Open(f)
		if err != nil {
			t.Fatalf("root's open %d while uid %d is at its budget: %v", i, nobody, err)
		}
		mine = append(mine, fh)
	}
	if ents, err := os.ReadDir(filepath.Join(m.mnt, "d")); err != nil || len(ents) != 3 {
		t.Errorf("root's readdir: %d entries, %v", len(ents), err)
	}
	if err := stat(); err != nil {
		t.Errorf("root's stat: %v", err)
	}
	for _, fh := range mine {
		fh.Close()
	}
	// Another uid lists, stats and opens its own whole budget.
	if out, err := asUser(other, m.mnt, "ls", "d").CombinedOutput(); err != nil || len(strings.Fields(string(out))) != 3 {
		t.Errorf("ls as uid %d: %v %q", other, err, out)
	}
	if out, err := asUser(other, m.mnt, "stat", "f").CombinedOutput(); err != nil {
		t.Errorf("stat as uid %d: %v %q", other, err, out)
	}
	o := startFlood(t, self, other, m.mnt, f, budget+1)
	if o.opened != budget || o.stop != "EMFILE" {
		t.Errorf("uid %d while uid %d is at its budget: opened %d, stopped by %s, want its own %d, then EMFILE", other, nobody, o.opened, o.stop, budget)
	}
	checkBounds(t, "two uids at their budgets", m.daemon, base+2*3*budget+32, 256<<20)
	o.end()
	checkProbe(t, "open flood", p, idle)

	// The attackers exit: RELEASE gives uid 65534 its budget back (the
	// kernel sends RELEASE after the close returns, so allow it a moment).
	for _, fl := range floods {
		fl.end()
	}
	var again *flooder
	for deadline := time.Now().Add(10 * time.Second); ; {
		again = startFlood(t, self, nobody, m.mnt, f, budget)
		again.end()
		if again.opened == budget || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if again.opened != budget {
		t.Errorf("after the attackers exited uid %d opened %d (%s), want its budget %d back", nobody, again.opened, again.stop, budget)
	}
	time.Sleep(200 * time.Millisecond)
	checkBounds(t, "after the attack", m.daemon, base+16, 256<<20)
	if d := m.sigterm(5 * time.Second); d > 5*time.Second {
		t.Errorf("SIGTERM took %v", d)
	}
}
