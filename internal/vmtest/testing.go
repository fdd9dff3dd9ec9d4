package vmtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// RequireGuest skips t (fails in strict mode) unless QEMU, busybox-static
// and the guest kernel are present, and returns the kernel.
func RequireGuest(t testing.TB) *Kernel {
	t.Helper()
	testutil.RequireQEMU(t)
	testutil.RequireCommand(t, Busybox)
	k, err := FindKernel()
	if err != nil {
		msg := fmt.Sprintf("needs the guest kernel: %v", err)
		if testutil.Strict() {
			t.Fatalf("prerequisite missing (strict mode: CI=true or FASTFSD_TEST_STRICT=1): %s", msg)
		}
		t.Skip(msg)
	}
	return k
}

// RunT boots the guest for a test and fails t on any problem (a FAIL
// result, a missing final marker, a timeout, a hang at exit, a kernel
// oops). The console is logged when the run fails or with
// FASTFSD_VMTEST_VERBOSE=1 it streams to stderr.
func RunT(t testing.TB, cfg Config) *Result {
	t.Helper()
	if cfg.Kernel == nil {
		cfg.Kernel = RequireGuest(t)
	}
	if os.Getenv("FASTFSD_VMTEST_VERBOSE") == "1" && cfg.Console == nil {
		cfg.Console = os.Stderr
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("vmtest: %v", err)
	}
	t.Logf("guest: boot %.1fs (guest uptime %.1fs at ready), run %.1fs, total %.1fs",
		res.BootTime.Seconds(), res.GuestBoot, res.RunTime.Seconds(), res.Total.Seconds())
	if res.RetriedBoot != "" {
		t.Logf("guest: the first boot's kernel died before FASTFS-READY; booted again. First boot's console:\n%s", res.RetriedBoot)
	}
	for _, r := range res.Results {
		t.Logf("  %-4s %-24s %s", r.Status, r.Name, r.Detail)
	}
	if p := res.Problems(); len(p) > 0 {
		t.Errorf("guest run failed:\n  %s\n--- console ---\n%s", strings.Join(p, "\n  "), tail(res.Console, 200))
		for name, log := range res.BackendLogs {
			t.Errorf("--- %s output ---\n%s", name, tail(log, 100))
		}
	}
	return res
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines cut ...]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
