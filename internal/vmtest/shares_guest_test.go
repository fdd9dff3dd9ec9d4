package vmtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// shareSteps is how many times TestGuestShareAddRemove adds and removes
// the share b.
const shareSteps = 3

// sharesScript runs in the guest. /mnt/vfs is fastfsd virtiofs serving a
// VFS with the share a. A reader loops over a (reads a file, lists the
// directory) until told to stop and counts its errors. Meanwhile, for each
// step i, the script asks the host (a FASTFS-STEP line on the console) to
// add b as the host directory b<i>, waits until b/f reads "b<i>" (the
// right directory, not a stale one of an earlier step), asks the host to
// remove b, and waits until b is gone.
const sharesScript = `
V=/mnt/vfs
result() { echo "FASTFS-RESULT name=$1 status=$2 detail=$3"; }
if [ "$(cat $V/a/fa)" != a ]; then result start FAIL "a/fa: $(cat $V/a/fa 2>&1); root: $(ls $V 2>&1)"; fi
(
	n=0; bad=0
	while [ ! -e /tmp/stop ]; do
		if [ "$(cat $V/a/fa 2>>/tmp/rerr)" != a ] || ! ls $V/a >/dev/null 2>>/tmp/rerr; then
			bad=$((bad+1))
		fi
		n=$((n+1))
		echo $n >/tmp/rn.new && mv /tmp/rn.new /tmp/rn # never read half-written
	done
	echo "$n $bad" >/tmp/reader
) &
# wait_for COND: poll COND (eval'd) every 0.1 s for at most 20 s.
wait_for() { w=0; while [ $w -lt 200 ]; do eval "$1" && return 0; sleep 0.1; w=$((w+1)); done; return 1; }
wait_for '[ -s /tmp/rn ]'
n0=$(cat /tmp/rn)
i=1
while [ $i -le $STEPS ]; do
	echo "FASTFS-STEP add $i"
	if wait_for '[ "$(cat $V/b/f 2>/dev/null)" = b$i ]'; then
		result add-$i PASS "b/f reads b$i"
	else
		result add-$i FAIL "b/f: $(cat $V/b/f 2>&1); root: $(ls $V 2>&1)"
	fi
	echo "FASTFS-STEP remove $i"
	if wait_for '[ ! -e $V/b ] && ! ls $V | grep -qx b'; then
		result remove-$i PASS "b gone"
	else
		result remove-$i FAIL "b still there: $(ls -la $V/b 2>&1); root: $(ls $V 2>&1)"
	fi
	i=$((i+1))
done
n1=$(cat /tmp/rn)
touch /tmp/stop
wait
set -- $(cat /tmp/reader)
if [ "$2" = 0 ] && [ "$n1" -gt "$n0" ]; then
	result reader PASS "$1 rounds over a, $((n1-n0)) during the steps, no error"
else
	result reader FAIL "$1 rounds, $2 failed ($((n1-n0)) during the steps): $(head -c 400 /tmp/rerr)"
fi
`

// TestGuestShareAddRemove boots a guest on fastfsd virtiofs serving a VFS
// (--shared-dir a=DIR --control-socket --share-root) and, while a reader
// in the guest loops over the share a, adds and removes the share b
// shareSteps times with `fastfsd share add|remove` on the host: the guest
// sees b appear with the right contents and disappear, and the reader
// sees no error.
func TestGuestShareAddRemove(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a QEMU guest; not with -short")
	}
	testutil.RequireRoot(t)
	k := RequireGuest(t)
	bin := buildFastfsd(t)

	root := t.TempDir()
	os.Chmod(root, 0o755)
	mk := func(dir, content string) {
		if err := os.Mkdir(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
		name := "f"
		if dir == "a" {
			name = "fa"
		}
		if err := os.WriteFile(filepath.Join(root, dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mk("a", "a")
	for i := 1; i <= shareSteps; i++ {
		mk(fmt.Sprintf("b%d", i), fmt.Sprintf("b%d", i))
	}
	// Short directory: unix socket paths are limited to 108 bytes.
	ctlDir, err := os.MkdirTemp("", "vmctl")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(ctlDir)
	ctl := filepath.Join(ctlDir, "ctl.sock")
	be := Backend{Name: "fastfsd", Args: func(sock, _ string) []string {
		return []string{bin, "virtiofs", "--socket-path", sock, "--shared-dir", "a=" + filepath.Join(root, "a"),
			"--control-socket", ctl, "--share-root", root}
	}}

	h := &shareHost{t: t, bin: bin, ctl: ctl, root: root, last: time.Now()}
	res := RunT(t, Config{
		Kernel:  k,
		Shares:  []Share{{Tag: "vfs", Dir: root, Backend: &be, GuestPath: "/mnt/vfs"}},
		Script:  ". /etc/fastfs/env\n" + sharesScript,
		Env:     map[string]string{"STEPS": fmt.Sprint(shareSteps)},
		Console: h,
		Timeout: 3 * time.Minute,
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.adds != shareSteps || h.removes != shareSteps {
		t.Errorf("host ran %d adds and %d removes, want %d each", h.adds, h.removes, shareSteps)
	}
	names := []string{"reader"}
	for i := 1; i <= shareSteps; i++ {
		names = append(names, fmt.Sprintf("add-%d", i), fmt.Sprintf("remove-%d", i))
	}
	for _, name := range names {
		if r, ok := res.Result(name); !ok || r.Status != "PASS" {
			t.Errorf("guest result %s: %+v (found %v), want PASS", name, r, ok)
		}
	}
	t.Logf("host share add → guest sees b: %v; share remove → b gone: %v", h.addSeen, h.removeSeen)
}

// shareHost is the console writer of TestGuestShareAddRemove: it runs
// `fastfsd share` for each FASTFS-STEP line the guest prints, and times
// each step from the host's request to the guest's next step line.
type shareHost struct {
	t          *testing.T
	bin, ctl   string
	root       string
	buf        []byte
	mu         sync.Mutex
	adds       int
	removes    int
	last       time.Time
	lastOp     string
	addSeen    []time.Duration
	removeSeen []time.Duration
}

func (h *shareHost) Write(p []byte) (int, error) {
	if os.Getenv("FASTFSD_VMTEST_VERBOSE") == "1" {
		os.Stderr.Write(p)
	}
	h.buf = append(h.buf, p...)
	for {
		i := bytes.IndexByte(h.buf, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSpace(string(h.buf[:i]))
		h.buf = h.buf[i+1:]
		h.step(line)
	}
	return len(p), nil
}

// step acts on one console line. It runs in the harness's console reader:
// the guest waits for the share to appear before printing more, so a
// blocking call here holds nothing up.
func (h *shareHost) step(line string) {
	_, rest, ok := strings.Cut(line, "FASTFS-STEP ")
	h.mu.Lock()
	defer h.mu.Unlock()
	if !ok && !strings.HasPrefix(line, "FASTFS-DONE") {
		return
	}
	// The time since the last request is how long the guest took to see it.
	switch h.lastOp {
	case "add":
		h.addSeen = append(h.addSeen, time.Since(h.last).Round(time.Millisecond))
	case "remove":
		h.removeSeen = append(h.removeSeen, time.Since(h.last).Round(time.Millisecond))
	}
	h.lastOp = ""
	if !ok {
		return
	}
	var args []string
	var op string
	var i int
	if _, err := fmt.Sscanf(rest, "%s %d", &op, &i); err != nil {
		h.t.Errorf("guest step %q: %v", line, err)
		return
	}
	switch op {
	case "add":
		args = []string{"add", "b", filepath.Join(h.root, fmt.Sprintf("b%d", i))}
		h.adds++
	case "remove":
		args = []string{"remove", "b"}
		h.removes++
	default:
		h.t.Errorf("guest step %q: unknown", line)
		return
	}
	out, err := exec.Command(h.bin, append([]string{"share", "--control-socket", h.ctl}, args...)...).CombinedOutput()
	if err != nil {
		h.t.Errorf("fastfsd share %s: %v: %s", strings.Join(args, " "), err, out)
	}
	h.last, h.lastOp = time.Now(), op
}
