package testutil

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Strict reports whether a missing prerequisite fails a test instead of
// skipping it (FASTFSD_TEST_STRICT=1 or CI=true).
func Strict() bool {
	return os.Getenv("FASTFSD_TEST_STRICT") == "1" || os.Getenv("CI") == "true"
}

// skipOrFail skips t with msg, or fails it in strict mode.
func skipOrFail(t testing.TB, msg string) {
	t.Helper()
	if Strict() {
		t.Fatalf("prerequisite missing (strict mode: CI=true or FASTFSD_TEST_STRICT=1): %s", msg)
		return // real tests stop in Fatalf; fakes in this package's tests do not
	}
	t.Skip(msg)
}

// RequireRoot skips unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root; run: go test -exec sudo")
	}
}

// RequireLoopDevice skips unless /dev/loop-control can be opened
// read-write (loop devices: a block device over a file).
func RequireLoopDevice(t testing.TB) {
	t.Helper()
	requireDevice(t, "/dev/loop-control", "loop devices", "loop")
}

// RequireDevFuse skips unless /dev/fuse can be opened read-write.
func RequireDevFuse(t testing.TB) {
	t.Helper()
	requireDevice(t, "/dev/fuse", "/dev/fuse", "fuse")
}

// requireDevice skips unless the device path can be opened read-write;
// what names it in the message, module is the kernel module that
// provides it.
func requireDevice(t testing.TB, path, what, module string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		skipOrFail(t, fmt.Sprintf("needs %s: %v; load the %s module (modprobe %s) and run as root", what, err, module, module))
		return
	}
	f.Close()
}

// RequireCommand skips unless every named program is on PATH (or is an
// existing absolute path).
func RequireCommand(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			skipOrFail(t, fmt.Sprintf("needs %s: %v; run make deps", n, err))
			return
		}
	}
}

// RequireQEMU skips unless qemu-system-x86_64 is installed.
func RequireQEMU(t testing.TB) {
	t.Helper()
	RequireCommand(t, "qemu-system-x86_64")
}

// RequireTracepoint skips unless the kernel has the tracepoint
// (e.g. "fuse/fuse_request_send") and tracefs is readable.
func RequireTracepoint(t testing.TB, name string) {
	t.Helper()
	for _, dir := range []string{"/sys/kernel/tracing/events/", "/sys/kernel/debug/tracing/events/"} {
		if _, err := os.Stat(dir + name + "/id"); err == nil {
			return
		}
	}
	skipOrFail(t, fmt.Sprintf("needs tracepoint %s in tracefs; mount tracefs (mount -t tracefs tracefs /sys/kernel/tracing) and load the fuse module", name))
}
