package posixtest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Side is one half of a twin run: the case body runs once with a Side on
// the reference directory and once with a Side on the directory under test,
// and what each step records must match.
type Side struct {
	t *testing.T
	// Name is "ref" or "mount".
	Name string
	// Root is this case's fresh directory on this side (mode 0755).
	Root string
	// Backing is Root on the backing filesystem when reachable: Root
	// itself on the reference side, "" on a mount whose backing the test
	// cannot see.
	Backing string
	// serverPid is Env.ServerPid on the mount side, 0 on the reference.
	serverPid int
	log       []step
}

type step struct{ name, val string }

// sideAbort is panicked by Fatalf and recovered by twin.
type sideAbort struct{}

// P joins rel onto Root.
func (s *Side) P(rel ...string) string {
	return filepath.Join(append([]string{s.Root}, rel...)...)
}

// Rec records a value for a step; values must be equal on both sides.
func (s *Side) Rec(name string, format string, args ...any) {
	s.log = append(s.log, step{name, fmt.Sprintf(format, args...)})
}

// Err records the errno of err ("OK" for nil) and reports err == nil.
func (s *Side) Err(name string, err error) bool {
	s.log = append(s.log, step{name, errnoString(err)})
	return err == nil
}

// Must records err like Err and aborts this side's run if it is not nil.
func (s *Side) Must(name string, err error) {
	if s.t != nil {
		s.t.Helper()
	}
	if !s.Err(name, err) {
		s.Fatalf("%s: %v", name, err)
	}
}

// Checkf fails the test (naming this side) unless ok: a fact that holds
// on any POSIX filesystem, whatever the reference says.
func (s *Side) Checkf(ok bool, format string, args ...any) bool {
	if s.t == nil { // in a child: the parent reports it
		if !ok {
			s.log = append(s.log, step{"!check", fmt.Sprintf(format, args...)})
		}
		return ok
	}
	s.t.Helper()
	if !ok {
		s.t.Errorf("[%s %s] "+format, append([]any{s.Name, s.Root}, args...)...)
	}
	return ok
}

// Fatalf fails the test and ends this side's run (the other side still
// runs, and the records up to here are compared).
func (s *Side) Fatalf(format string, args ...any) {
	if s.t == nil { // in a child: the parent reports it
		s.log = append(s.log, step{"!check", "fatal: " + fmt.Sprintf(format, args...)})
		panic(sideAbort{})
	}
	s.t.Helper()
	s.t.Errorf("[%s %s] fatal: "+format, append([]any{s.Name, s.Root}, args...)...)
	panic(sideAbort{})
}

// Lstat records type, permission bits, nlink, owner and (for files and
// symlinks) size of rel, or the errno.
func (s *Side) Lstat(name, rel string) *unix.Stat_t {
	var st unix.Stat_t
	if err := unix.Lstat(s.P(rel), &st); err != nil {
		s.Err(name, err)
		return nil
	}
	s.Rec(name, "%s", statString(&st))
	return &st
}

// Fstat records what Lstat records, for an open fd.
func (s *Side) Fstat(name string, fd int) *unix.Stat_t {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		s.Err(name, err)
		return nil
	}
	s.Rec(name, "%s", statString(&st))
	return &st
}

// Times records atime and mtime of rel to the nanosecond: only for steps
// that set them explicitly.
func (s *Side) Times(name, rel string) {
	var st unix.Stat_t
	if err := unix.Lstat(s.P(rel), &st); err != nil {
		s.Err(name, err)
		return
	}
	s.Rec(name, "atime=%d.%09d mtime=%d.%09d", st.Atim.Sec, st.Atim.Nsec, st.Mtim.Sec, st.Mtim.Nsec)
}

// Content records the length and digest of rel's content, or the errno,
// and returns the content.
func (s *Side) Content(name, rel string) []byte {
	b, err := os.ReadFile(s.P(rel))
	if err != nil {
		s.Err(name, err)
		return nil
	}
	s.Rec(name, "%s", digest(b))
	return b
}

// digest is a short, comparable summary of b.
func digest(b []byte) string {
	h := sha256.Sum256(b)
	return fmt.Sprintf("len=%d sha256=%s", len(b), hex.EncodeToString(h[:8]))
}

func statString(st *unix.Stat_t) string {
	typ := st.Mode & unix.S_IFMT
	s := fmt.Sprintf("%s mode=%04o nlink=%d uid=%d gid=%d", typeName(typ), st.Mode&07777, st.Nlink, st.Uid, st.Gid)
	switch typ {
	case unix.S_IFREG, unix.S_IFLNK:
		// Directory sizes are the backing filesystem's business and
		// differ with history; file and symlink sizes do not.
		s += fmt.Sprintf(" size=%d", st.Size)
	case unix.S_IFCHR, unix.S_IFBLK:
		s += fmt.Sprintf(" rdev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	return s
}

func typeName(t uint32) string {
	switch t {
	case unix.S_IFREG:
		return "reg"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "lnk"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "sock"
	case unix.S_IFCHR:
		return "chr"
	case unix.S_IFBLK:
		return "blk"
	}
	return fmt.Sprintf("type%o", t)
}

// errnoString names err's errno: "OK", "ENOENT", …; a non-errno error is
// recorded as such (and will rarely match).
func errnoString(err error) string {
	if err == nil {
		return "OK"
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		if n := unix.ErrnoName(e); n != "" {
			return n
		}
		return fmt.Sprintf("errno%d", int(e))
	}
	return "error: " + err.Error()
}

// twin runs body on a fresh directory under env.Ref, then on one under
// env.Dir, and compares their records step by step.
func twin(t *testing.T, env Env, body func(s *Side)) {
	t.Helper()
	ref := newSide(t, "ref", env.Ref, "")
	mnt := newSide(t, "mount", env.Dir, env.Backing)
	if mnt.Backing == "" {
		// A door whose backing side the test cannot reach (a guest, an
		// in-memory filesystem): the reference skips the backing-side
		// steps too, or the twins' records differ by those.
		ref.Backing = ""
	}
	mnt.serverPid = env.ServerPid
	if !runSide(t, ref, body) {
		t.Fatalf("the reference (native) run aborted: the case is wrong, not the door")
	}
	runSide(t, mnt, body)
	compareLogs(t, ref.log, mnt.log)
}

// newSide makes a fresh directory for one side and removes it when the
// test ends (a failure to remove it from the mount is a failure too).
func newSide(t *testing.T, name, parent, backingParent string) *Side {
	t.Helper()
	base := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	if len(base) > 60 {
		base = base[len(base)-60:]
	}
	dir, err := os.MkdirTemp(parent, base+"-")
	if err != nil {
		t.Fatalf("%s: make case directory in %s: %v", name, parent, err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("%s: chmod %s: %v", name, dir, err)
	}
	s := &Side{t: t, Name: name, Root: dir}
	switch {
	case name == "ref":
		s.Backing = dir
	case backingParent != "":
		s.Backing = filepath.Join(backingParent, filepath.Base(dir))
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s: leaving %s for inspection", name, dir)
			return
		}
		if err := removeAll(dir); err != nil {
			t.Errorf("%s: removing the case directory: %v", name, err)
		}
	})
	return s
}

// removeAll is os.RemoveAll after making every directory writable (cases
// leave read-only and sticky directories behind).
func removeAll(dir string) error {
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o755)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

// runSide runs body, turning a Side.Fatalf into a false return.
func runSide(t *testing.T, s *Side, body func(s *Side)) (ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, abort := r.(sideAbort); !abort {
				panic(r)
			}
			ok = false
		}
	}()
	body(s)
	return true
}

// compareLogs reports where the mount's record departs from the reference.
func compareLogs(t *testing.T, ref, mnt []step) {
	t.Helper()
	t.Logf("comparing %d recorded steps with the reference's %d", len(mnt), len(ref))
	if os.Getenv("POSIXTEST_DUMP") == "1" { // debugging a case: show the reference's record
		for i, st := range ref {
			t.Logf("  %3d %s: %s", i, st.name, st.val)
		}
	}
	for _, d := range diffLogs(ref, mnt) {
		t.Error(d)
	}
}

// diffLogs lists the differences between two records: every differing
// value (up to a limit), or the first place where the runs diverged.
func diffLogs(ref, mnt []step) []string {
	const maxDiffs = 15
	var out []string
	for i := 0; i < len(ref) || i < len(mnt); i++ {
		switch {
		case i >= len(mnt):
			return append(out, fmt.Sprintf("step %d %q: missing on the mount (its run stopped early); reference got %q", i, ref[i].name, ref[i].val))
		case i >= len(ref):
			return append(out, fmt.Sprintf("step %d %q: the mount recorded more steps than the reference (got %q)", i, mnt[i].name, mnt[i].val))
		case ref[i].name != mnt[i].name:
			return append(out, fmt.Sprintf("step %d: the runs diverged: mount at %q, reference at %q", i, mnt[i].name, ref[i].name))
		case ref[i].val != mnt[i].val:
			out = append(out, fmt.Sprintf("%s: mount got %q, reference (native) got %q", ref[i].name, mnt[i].val, ref[i].val))
			if len(out) == maxDiffs {
				return append(out, fmt.Sprintf("stopping after %d differences", maxDiffs))
			}
		}
	}
	return out
}
