package posixtest

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// Cap names something a door may not offer.
type Cap string

// Capabilities a door can declare missing in Env.Lacks.
const (
	CapXattr      Cap = "xattr"        // user.* extended attributes
	CapPosixLocks Cap = "posix-locks"  // fcntl F_SETLK/F_GETLK across processes
	CapOFDLocks   Cap = "ofd-locks"    // F_OFD_SETLK/F_OFD_GETLK
	CapFlock      Cap = "flock"        // flock(2) across processes
	CapTmpfile    Cap = "tmpfile"      // open(O_TMPFILE) and linkat of the result
	CapNonRoot    Cap = "non-root"     // other users reach the mount (FUSE allow_other) and permissions are enforced
	CapFallocate  Cap = "fallocate"    // fallocate(2) including PUNCH_HOLE|KEEP_SIZE
	CapSeekHole   Cap = "seek-hole"    // lseek SEEK_DATA/SEEK_HOLE reporting real holes
	CapCopyRange  Cap = "copy-range"   // copy_file_range(2)
	CapFifo       Cap = "fifo"         // mknod of a FIFO that works as a pipe
	CapBtime      Cap = "btime"        // statx reports STATX_BTIME when the backing filesystem does
	CapEscape     Cap = "escape-race"  // concurrent symlink swaps on the backing side (needs Env.Backing and Env.Outside)
	CapFio        Cap = "fio"          // fio data integrity run
	CapTar        Cap = "tar"          // tar round trip of a few thousand files
	CapBigDir     Cap = "bigdir"       // 10,000-entry directories
	CapHardlink   Cap = "hardlink"     // link(2)
	CapRenameFlag Cap = "rename-flags" // renameat2 RENAME_NOREPLACE/RENAME_EXCHANGE
)

// Env says where and how the suite runs.
type Env struct {
	// Dir is the directory under test (on the mount). Each case works in a
	// fresh subdirectory of it and leaves nothing behind on success.
	Dir string
	// Ref is a native directory on the same kind of filesystem as the
	// export, not inside the export, where the twin of each case runs for
	// reference. Empty: a t.TempDir() (of the machine running the tests).
	Ref string
	// Backing is Dir as seen on the backing filesystem (the exported
	// directory), when the test can reach it; empty inside a guest. Cases
	// use it to check that data really landed and for the escape race.
	Backing string
	// Outside is a directory outside the export, on the backing side,
	// where the escape case plants markers that must never be read or
	// touched through the mount. Empty disables the escape race.
	Outside string
	// Lacks lists what this door does not offer, with the reason; cases
	// needing it skip with that reason.
	Lacks map[Cap]string
	// Known lists cases that fail through this door because of a known,
	// reported bug (case name → the bug). They are skipped saying so,
	// unless POSIXTEST_RUN_KNOWN=1, which runs them to see if the bug is
	// fixed. Remove an entry with the fix.
	Known map[string]string
	// FioJobMiB is the size of each of the four fio jobs (default 64).
	FioJobMiB int
	// TarFiles is the number of files in the tar round trip (default 3000).
	TarFiles int
	// ServerPid is the serving daemon's pid when the test can see it (0:
	// unknown, e.g. inside a guest). Lock cases use it to wait until the
	// daemon itself waits for a lock before they signal the waiter: over
	// FUSE io_uring the kernel loses an INTERRUPT for a signal that
	// arrives before the request reached the ring entry (fs/fuse/dev_uring.c
	// fuse_uring_prepare_send sets FR_SENT without the FR_INTERRUPTED
	// re-check that the /dev/fuse read path makes), so a waiter killed in
	// that window stays until the lock is granted.
	ServerPid int
}

// need skips t when the door lacks c.
func (e Env) need(t *testing.T, c Cap) {
	t.Helper()
	if why, ok := e.Lacks[c]; ok {
		t.Skipf("door lacks %s: %s", c, why)
	}
}

// Suite is every case, by name.
var Suite = map[string]func(t *testing.T, env Env){}

// register adds a case; called from init in each cases_*.go.
func register(name string, f func(t *testing.T, env Env)) {
	if _, dup := Suite[name]; dup {
		panic("posixtest: case registered twice: " + name)
	}
	Suite[name] = f
}

// Run runs every case of Suite as a subtest of t, in name order, against
// env. It needs root (cases create files for other owners).
func Run(t *testing.T, env Env) {
	t.Helper()
	testutil.RequireRoot(t)
	if env.Dir == "" {
		t.Fatal("posixtest: Env.Dir is empty")
	}
	if fi, err := os.Stat(env.Dir); err != nil || !fi.IsDir() {
		t.Fatalf("posixtest: Env.Dir %q is not a directory: %v", env.Dir, err)
	}
	if env.Ref == "" {
		env.Ref = t.TempDir()
	}
	if a, _ := filepath.Abs(env.Ref); a == env.Dir || a == env.Backing {
		t.Fatalf("posixtest: Env.Ref %q must be a directory of its own, not the one under test", env.Ref)
	}
	names := make([]string, 0, len(Suite))
	for n := range Suite {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		f := Suite[n]
		t.Run(n, func(t *testing.T) {
			if bug, ok := env.Known[n]; ok && os.Getenv("POSIXTEST_RUN_KNOWN") != "1" {
				t.Skipf("KNOWN BUG, not run (POSIXTEST_RUN_KNOWN=1 runs it): %s", bug)
			}
			f(t, env)
		})
	}
}
