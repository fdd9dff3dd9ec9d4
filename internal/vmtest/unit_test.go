package vmtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	var r Result
	for _, l := range []string{
		"[    1.0] random kernel line",
		"FASTFS-RESULT name=create status=PASS detail=create+read ok (0s)",
		"garbage before FASTFS-RESULT name=x status=FAIL detail=got 'a b', want 'c'",
		`FASTFS-FIO name=p9/seqread {"jobs":[{"read":{"bw":2048,"iops":2}}]}`,
		`FASTFS-FIO name=p9/broken {"jobs":[`,
		"FASTFS-READY uptime=2.50",
		"FASTFS-DONE rc=3 uptime=9.1",
	} {
		r.parseLine(l)
	}
	if len(r.Results) != 3 {
		t.Fatalf("results: %+v", r.Results)
	}
	if got := r.Results[1]; got.Name != "x" || got.Status != "FAIL" || got.Detail != "got 'a b', want 'c'" {
		t.Errorf("result 1: %+v", got)
	}
	if r.Results[2].Name != "fio:p9/broken" || r.Results[2].Status != "FAIL" {
		t.Errorf("unparseable fio JSON not reported: %+v", r.Results[2])
	}
	if !r.Done || r.ScriptRC != 3 || r.GuestBoot != 2.5 {
		t.Errorf("done=%v rc=%d boot=%v", r.Done, r.ScriptRC, r.GuestBoot)
	}
	figs, err := FIOFigures(r.FIO)
	if err != nil || len(figs) != 1 || figs[0].Value != 2 || figs[0].Unit != "MiB/s" {
		t.Errorf("figures %+v, %v", figs, err)
	}
}

func TestProblems(t *testing.T) {
	for _, c := range []struct {
		name string
		r    Result
		want string // substring of the problems; "" = none
	}{
		{"clean", Result{Done: true, Results: []TestResult{{Name: "a", Status: "PASS"}, {Name: "b", Status: "SKIP"}}}, ""},
		{"fail", Result{Done: true, Results: []TestResult{{Name: "a", Status: "FAIL", Detail: "boom"}}}, "a: FAIL boom"},
		{"no marker", Result{}, "FASTFS-DONE"},
		{"rc", Result{Done: true, ScriptRC: 1}, "exited 1"},
		{"timeout", Result{Done: false, TimedOut: true}, "timed out"},
		{"hang", Result{Done: true, HungOnExit: true}, "GET_VRING_BASE"},
		{"backend died", Result{BackendDied: "x[fs]"}, "backend x[fs] exited"},
		{"oops", Result{Done: true, Console: "[ 3.1] BUG: kernel NULL pointer dereference\n"}, "kernel trouble"},
		{"panic", Result{Done: true, Console: "Kernel panic - not syncing\n"}, "kernel trouble"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := strings.Join(c.r.Problems(), "; ")
			if (c.want == "") != (p == "") || !strings.Contains(p, c.want) {
				t.Errorf("problems %q, want %q", p, c.want)
			}
		})
	}
}

// TestCpio checks the archive with the host's cpio, if installed.
func TestCpio(t *testing.T) {
	var buf bytes.Buffer
	err := writeCpio(&buf, []cpioEntry{
		{name: "bin/sh", mode: modeSymlink | 0o777, data: []byte("busybox")},
		{name: "a/b/c.txt", mode: modeRegular | 0o644, data: []byte("hello")},
		{name: "a/b/c.txt", mode: modeRegular | 0o644, data: []byte("dup: first wins")},
		{name: "dev/console", mode: modeCharDev | 0o600, rmajor: 5, rmin: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d not 4-aligned", buf.Len())
	}
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("no cpio to cross-check with")
	}
	dir := t.TempDir()
	cmd := exec.Command("cpio", "-idm", "--quiet", "--no-absolute-filenames")
	cmd.Dir, cmd.Stdin = dir, &buf
	if out, err := cmd.CombinedOutput(); err != nil && os.Geteuid() == 0 {
		t.Fatalf("cpio: %v: %s", err, out)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "a/b/c.txt")); err != nil || string(b) != "hello" {
		t.Errorf("a/b/c.txt = %q, %v", b, err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "bin/sh")); err != nil || l != "busybox" {
		t.Errorf("bin/sh -> %q, %v", l, err)
	}
}

func TestResolveModules(t *testing.T) {
	d := t.TempDir()
	k := &Kernel{Release: "test", ModulesDir: d}
	os.WriteFile(filepath.Join(d, "modules.dep"), []byte(
		"kernel/fs/netfs/netfs.ko.xz:\n"+
			"kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz\n"+
			"kernel/net/9p/9pnet.ko.xz: kernel/fs/netfs/netfs.ko.xz\n"+
			"kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz\n"), 0o644)
	os.WriteFile(filepath.Join(d, "modules.builtin"), []byte("kernel/fs/fuse/virtiofs.ko\n"), 0o644)
	got, err := k.resolveModules([]string{"virtiofs", "9p", "9pnet-virtio"})
	if err != nil {
		t.Fatal(err)
	}
	want := "kernel/fs/netfs/netfs.ko.xz kernel/net/9p/9pnet.ko.xz kernel/fs/9p/9p.ko.xz kernel/net/9p/9pnet_virtio.ko.xz"
	if strings.Join(got, " ") != want {
		t.Errorf("order %q\nwant  %q", got, want)
	}
	if _, err := k.resolveModules([]string{"nosuch"}); err == nil {
		t.Error("unknown module accepted")
	}
}
