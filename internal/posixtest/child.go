package posixtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// childEnv carries a childSpec (JSON) to a re-executed test binary.
const childEnv = "FASTFS_POSIXTEST_CHILD"

// mainCalled records that the test binary routes TestMain through Main, so
// that re-executing it reaches the child code.
var mainCalled bool

// Main is for a door's TestMain:
//
//	func TestMain(m *testing.M) { posixtest.Main(m) }
//
// In a child started by a case it runs the child's part and exits; in the
// test process it runs the tests.
func Main(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(childMain(spec))
	}
	mainCalled = true
	before := openFiles()
	code := m.Run()
	// A file left open by a case keeps its mount busy: report it.
	for fd, path := range openFiles() {
		if before[fd] != path {
			fmt.Fprintf(os.Stderr, "posixtest: fd %d (%s) left open after the tests\n", fd, path)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// openFiles maps this process's open fds to the files they name (only
// those naming a path: sockets, pipes and the runtime's epoll are not
// the tests' business).
func openFiles() map[int]string {
	m := map[int]string{}
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		var fd int
		if _, err := fmt.Sscanf(e.Name(), "%d", &fd); err != nil {
			continue
		}
		if p, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "/proc/") {
			m[fd] = p
		}
	}
	return m
}

// childSpec says what a child does.
type childSpec struct {
	Action   string // a key of childActions
	Path     string
	Kind     string // lock kind: "posix", "ofd", "flock"
	Start    int64
	Len      int64
	Uid, Gid int // identity to drop to before acting (0: stay root)
}

// childActions are the parts children play. Each writes its results to
// stdout and returns the exit status.
var childActions = map[string]func(spec childSpec, out io.Writer, in io.Reader) int{}

func childMain(js string) int {
	var spec childSpec
	if err := json.Unmarshal([]byte(js), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "posixtest child: bad spec %q: %v\n", js, err)
		return 2
	}
	if spec.Uid != 0 || spec.Gid != 0 {
		// Drop identity here rather than with SysProcAttr.Credential:
		// the test binary usually sits in a 0700 build directory that
		// another user could not even execute. syscall.Set*id apply to
		// every thread of the process.
		if err := syscall.Setgroups(nil); err != nil {
			fmt.Fprintf(os.Stderr, "posixtest child: setgroups: %v\n", err)
			return 2
		}
		if err := syscall.Setgid(spec.Gid); err != nil {
			fmt.Fprintf(os.Stderr, "posixtest child: setgid: %v\n", err)
			return 2
		}
		if err := syscall.Setuid(spec.Uid); err != nil {
			fmt.Fprintf(os.Stderr, "posixtest child: setuid: %v\n", err)
			return 2
		}
	}
	f, ok := childActions[spec.Action]
	if !ok {
		fmt.Fprintf(os.Stderr, "posixtest child: unknown action %q\n", spec.Action)
		return 2
	}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	return f(spec, &flushWriter{w}, os.Stdin)
}

// flushWriter flushes after every write so the parent sees each line as
// it is written.
type flushWriter struct{ w *bufio.Writer }

func (f *flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.w.Flush()
	}
	return n, err
}

// child is a running child process.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	errb  *strings.Builder
}

// startChild re-executes the test binary as a child playing spec.
func startChild(t *testing.T, spec childSpec) *child {
	t.Helper()
	if !mainCalled {
		t.Fatalf("this case re-executes the test binary, but the test package's TestMain does not call posixtest.Main(m)")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("find the test binary: %v", err)
	}
	js, _ := json.Marshal(spec)
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(js))
	c := &child{cmd: cmd, errb: &strings.Builder{}}
	cmd.Stderr = c.errb
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.out = bufio.NewReader(stdout)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child %s: %v", spec.Action, err)
	}
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			c.cmd.Wait()
		}
	})
	return c
}

// line reads the child's next output line ("" at EOF).
func (c *child) line() string {
	l, _ := c.out.ReadString('\n')
	return strings.TrimSuffix(l, "\n")
}

// finish closes the child's stdin (its signal to let go and exit) and
// waits for it; it returns the rest of its output and its exit error.
func (c *child) finish() (string, error) {
	c.stdin.Close()
	rest, _ := io.ReadAll(c.out)
	err := c.cmd.Wait()
	if err != nil {
		err = fmt.Errorf("%v; stderr: %s", err, c.errb.String())
	}
	return string(rest), err
}
