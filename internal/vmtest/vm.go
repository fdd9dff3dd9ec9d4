package vmtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// QEMU is the emulator binary.
var QEMU = "qemu-system-x86_64"

// Backend is a vhost-user-fs server the host starts for a virtio-fs share.
type Backend struct {
	Name string
	// Args returns the command line serving dir on the vhost-user socket.
	Args func(socket, dir string) []string
}

// CVirtiofsd is QEMU's C virtiofsd (Debian's qemu-system-x86 ships it).
// cache=none so every guest operation reaches the server; xattrs on.
var CVirtiofsd = Backend{
	Name: "c-virtiofsd",
	Args: func(socket, dir string) []string {
		return []string{"/usr/lib/qemu/virtiofsd", "--socket-path=" + socket,
			"-o", "source=" + dir, "-o", "cache=none", "-o", "xattr", "-o", "allow_direct_io"}
	},
}

// Fastfsd is `fastfsd virtiofs` (virtiofsd-compatible flags) from bin.
func Fastfsd(bin string, extra ...string) Backend {
	return Backend{
		Name: "fastfsd",
		Args: func(socket, dir string) []string {
			return append([]string{bin, "virtiofs", "--socket-path", socket, "--shared-dir", dir}, extra...)
		},
	}
}

// Share is one filesystem device given to the guest.
type Share struct {
	Tag string
	// Dir is the host directory served.
	Dir string
	// Backend serves a virtio-fs device; nil means QEMU's built-in
	// virtio-9p (-virtfs local) on Dir.
	Backend *Backend
	// Queues is num-request-queues for virtio-fs (0 = QEMU's default, 1).
	Queues int
	// SecurityModel for virtio-9p: "none" (default) or "passthrough".
	SecurityModel string
	// GuestPath is where init mounts the share ("" = not mounted; the
	// script mounts it itself).
	GuestPath string
	// MountOptions overrides the default mount options
	// (virtio-fs: "rw"; 9p: trans=virtio,version=9p2000.L,msize=524288,cache=none).
	MountOptions string
}

// Config describes one guest boot.
type Config struct {
	Kernel *Kernel // nil = FindKernel()
	// Modules to load (nil = DefaultModules).
	Modules []string
	// BaseFiles go into the cached base image (nil = BaseFiles).
	BaseFiles []File
	// Files go into the per-run overlay (binaries that change per build:
	// a static fastfsd, a `go test -c` binary, scripts).
	Files  []File
	Shares []Share
	// Script is the shell script the guest runs after mounting the shares
	// (busybox sh, as root, cwd /). Its exit status is reported in
	// FASTFS-DONE.
	Script string
	// Env is exported to the script.
	Env map[string]string
	// MemoryMiB (default 1024) and CPUs (default 2).
	MemoryMiB, CPUs int
	// Timeout for the whole boot (default 3 minutes).
	Timeout time.Duration
	// ExitGrace is how long QEMU may take to exit after the guest's final
	// marker (default 20 s); beyond it QEMU is killed and the run fails
	// (a backend that never answers the stop sequence hangs QEMU).
	ExitGrace time.Duration
	// Console, if set, receives the console output as it arrives.
	Console io.Writer
	// ExtraQEMUArgs are appended to QEMU's command line.
	ExtraQEMUArgs []string
	// KernelArgs are appended to the kernel command line.
	KernelArgs string
	// OnLine, if set, is called with each console line as it arrives,
	// before the line is folded into the Result, from the one goroutine
	// that reads the console (so calls never overlap, and the guest's
	// output waits while it runs: keep it short). backendPID maps each
	// virtio-fs share's tag to the PID of the back-end process the host
	// started for it (shares served by QEMU's virtio-9p are absent); it
	// is filled before QEMU starts and never written afterwards, so
	// OnLine may read it freely but must not change it. A timestamped
	// marker a guest script echoes thus reaches the host within the
	// serial console's latency (milliseconds), which is what lets the
	// caller read a back-end's CPU time over one guest step.
	OnLine func(line string, backendPID map[string]int)
}

// TestResult is one FASTFS-RESULT line.
type TestResult struct {
	Name, Status, Detail string
}

// FIO is one FASTFS-FIO line: a named fio JSON report.
type FIO struct {
	Name string
	JSON json.RawMessage
}

// Result is what a boot produced.
type Result struct {
	Console     string // serial console (kernel + guest output)
	BackendLogs map[string]string
	Results     []TestResult
	FIO         []FIO
	Done        bool // FASTFS-DONE seen
	ScriptRC    int
	BootTime    time.Duration // host time from QEMU start to FASTFS-READY
	RunTime     time.Duration // host time from FASTFS-READY to FASTFS-DONE
	Total       time.Duration
	GuestBoot   float64 // guest uptime at FASTFS-READY, seconds
	TimedOut    bool
	// RetriedBoot is the console tail of a first boot whose kernel died
	// before FASTFS-READY and was booted again (see Run); "" if none.
	RetriedBoot string
	HungOnExit  bool // QEMU did not exit within ExitGrace after FASTFS-DONE
	// BackendDied names a backend that exited while the guest was still
	// running (QEMU is then stopped at once instead of waiting for the
	// timeout: the guest would hang on its requests).
	BackendDied string
	QEMUErr     error
}

var oopsRE = regexp.MustCompile(`(?m)(Kernel panic|Oops:|BUG: |WARNING: CPU|general protection fault|Call Trace:)`)

// Problems lists why the run failed: FAIL results, a missing final marker,
// a timeout, a hang at exit, a kernel oops or panic. Empty = passed.
func (r *Result) Problems() []string {
	var p []string
	for _, t := range r.Results {
		if t.Status != "PASS" && t.Status != "SKIP" {
			p = append(p, fmt.Sprintf("%s: %s %s", t.Name, t.Status, t.Detail))
		}
	}
	if r.TimedOut {
		p = append(p, "timed out")
	}
	if !r.Done {
		p = append(p, "guest never printed the final FASTFS-DONE marker")
	} else if r.ScriptRC != 0 {
		p = append(p, fmt.Sprintf("guest script exited %d", r.ScriptRC))
	}
	if r.BackendDied != "" {
		p = append(p, "backend "+r.BackendDied+" exited while the guest was running (see its output)")
	}
	if r.HungOnExit {
		p = append(p, "QEMU did not exit after the guest powered off (does the backend answer GET_VRING_BASE?)")
	}
	if m := oopsRE.FindString(r.Console); m != "" {
		p = append(p, "kernel trouble on the console: "+m)
	}
	return p
}

// Result looks up a named result.
func (r *Result) Result(name string) (TestResult, bool) {
	for _, t := range r.Results {
		if t.Name == name {
			return t, true
		}
	}
	return TestResult{}, false
}

// parseLine folds one console line into r.
func (r *Result) parseLine(line string) {
	i := strings.Index(line, "FASTFS-")
	if i < 0 {
		return
	}
	line = line[i:]
	word, rest, _ := strings.Cut(line, " ")
	switch word {
	case "FASTFS-RESULT":
		var t TestResult
		// name=N status=S detail=free text
		for rest != "" {
			kv, tail, _ := strings.Cut(rest, " ")
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "name":
				t.Name = v
			case "status":
				t.Status = v
			case "detail":
				t.Detail = strings.TrimPrefix(rest, "detail=")
				tail = ""
			}
			rest = tail
		}
		r.Results = append(r.Results, t)
	case "FASTFS-FIO":
		kv, js, _ := strings.Cut(rest, " ")
		name := strings.TrimPrefix(kv, "name=")
		if json.Valid([]byte(js)) {
			r.FIO = append(r.FIO, FIO{Name: name, JSON: json.RawMessage(js)})
		} else {
			r.Results = append(r.Results, TestResult{Name: "fio:" + name, Status: "FAIL", Detail: "unparseable fio JSON on the console"})
		}
	case "FASTFS-READY":
		r.GuestBoot = uptime(rest)
	case "FASTFS-DONE":
		r.Done = true
		for _, kv := range strings.Fields(rest) {
			if v, ok := strings.CutPrefix(kv, "rc="); ok {
				r.ScriptRC, _ = strconv.Atoi(v)
			}
		}
	}
}

func uptime(s string) float64 {
	for _, kv := range strings.Fields(s) {
		if v, ok := strings.CutPrefix(kv, "uptime="); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// proc is a host child bound to the VM's life.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *testutil.Buffer
	done chan struct{}
}

func startProc(name string, argv []string) (*proc, error) {
	p := &proc{name: name, log: &testutil.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	// Own process group (so a kill reaches its children) and die with us.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %v", name, err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	return p, nil
}

// stop waits up to grace for a clean exit, then SIGTERMs, then SIGKILLs.
func (p *proc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(3 * time.Second):
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Run boots a guest as described and returns what it reported. The error
// is for harness failures (no kernel, a backend that never opened its
// socket, QEMU not starting); guest failures are in Result.Problems.
//
// A guest kernel that dies while booting, before the guest's init printed
// FASTFS-READY, is booted once more (Result.RetriedBoot keeps that boot's
// console tail): under
// TCG on a loaded host the Debian guest kernel has been seen to take an
// int3 Oops while patching its own text at boot, before anything of ours
// ran in the guest. A second boot failure is returned as it is.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	res, err := runOnce(ctx, cfg)
	if err == nil && ctx.Err() == nil && res.BootTime == 0 && oopsRE.MatchString(res.Console) {
		first := res.Console
		if res, err = runOnce(ctx, cfg); err == nil {
			res.RetriedBoot = tail(first, 40)
		}
	}
	return res, err
}

// runOnce is one boot of Run.
func runOnce(ctx context.Context, cfg Config) (*Result, error) {
	start := time.Now()
	k := cfg.Kernel
	if k == nil {
		var err error
		if k, err = FindKernel(); err != nil {
			return nil, err
		}
	}
	mods := cfg.Modules
	if mods == nil {
		mods = DefaultModules
	}
	baseFiles := cfg.BaseFiles
	if baseFiles == nil {
		baseFiles = BaseFiles
	}
	base, err := BuildBase(k, mods, baseFiles)
	if err != nil {
		return nil, fmt.Errorf("guest image: %v", err)
	}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = 1024
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 2
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 3 * time.Minute
	}
	if cfg.ExitGrace == 0 {
		cfg.ExitGrace = 20 * time.Second
	}

	// Short directory: unix socket paths are limited to 108 bytes.
	work, err := os.MkdirTemp("", "vmt")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	// Per-run overlay: mounts, env, script.
	var mounts, env strings.Builder
	for _, s := range cfg.Shares {
		if s.GuestPath == "" {
			continue
		}
		fstype, opts := "virtiofs", s.MountOptions
		if s.Backend == nil {
			fstype = "9p"
			if opts == "" {
				opts = "trans=virtio,version=9p2000.L,msize=524288,cache=none"
			}
		} else if opts == "" {
			opts = "rw"
		}
		fmt.Fprintf(&mounts, "%s %s %s %s\n", fstype, s.Tag, s.GuestPath, opts)
	}
	for k, v := range cfg.Env {
		fmt.Fprintf(&env, "export %s=%s\n", k, shellQuote(v))
	}
	extra := []cpioEntry{
		{name: "etc/fastfs/mounts", mode: modeRegular | 0o644, data: []byte(mounts.String())},
		{name: "etc/fastfs/env", mode: modeRegular | 0o644, data: []byte(env.String())},
	}
	if cfg.Script != "" {
		extra = append(extra, cpioEntry{name: "etc/fastfs/run.sh", mode: modeRegular | 0o755, data: []byte(cfg.Script)})
	}
	ov, err := overlay(cfg.Files, extra)
	if err != nil {
		return nil, fmt.Errorf("guest overlay: %v", err)
	}
	initrd := filepath.Join(work, "initrd.cpio")
	if err := concatFiles(initrd, base, ov); err != nil {
		return nil, err
	}

	res := &Result{BackendLogs: map[string]string{}}
	var procs []*proc
	backendPID := map[string]int{} // share tag → back-end PID, for OnLine
	defer func() {
		for _, p := range procs {
			p.stop(5 * time.Second)
			res.BackendLogs[p.name] = p.log.String()
		}
	}()

	args := []string{
		"-accel", "tcg", "-cpu", "max", "-m", strconv.Itoa(cfg.MemoryMiB), "-smp", strconv.Itoa(cfg.CPUs),
		"-nographic", "-no-reboot", "-nic", "none",
		"-object", fmt.Sprintf("memory-backend-memfd,id=mem,size=%dM,share=on", cfg.MemoryMiB),
		"-numa", "node,memdev=mem",
		"-kernel", k.Vmlinuz, "-initrd", initrd,
		// nosoftlockup: under TCG on a loaded host a vCPU thread can be
		// descheduled for tens of seconds, and the guest's soft-lockup
		// watchdog then reports a "BUG" that only says the host was busy
		// (seen at boot, in swapper, before anything of ours ran), which
		// failed the run through the dmesg check.
		"-append", strings.TrimSpace("console=ttyS0 quiet panic=-1 nosoftlockup rdinit=/init " + cfg.KernelArgs),
	}
	for i, s := range cfg.Shares {
		if s.Backend == nil {
			sm := s.SecurityModel
			if sm == "" {
				sm = "none"
			}
			args = append(args, "-virtfs", fmt.Sprintf("local,path=%s,mount_tag=%s,security_model=%s", s.Dir, s.Tag, sm))
			continue
		}
		sock := filepath.Join(work, fmt.Sprintf("fs%d.sock", i))
		name := fmt.Sprintf("%s[%s]", s.Backend.Name, s.Tag)
		p, err := startProc(name, s.Backend.Args(sock, s.Dir))
		if err != nil {
			return res, err
		}
		procs = append(procs, p)
		backendPID[s.Tag] = p.cmd.Process.Pid
		if err := waitSocket(sock, p, 15*time.Second); err != nil {
			return res, fmt.Errorf("%s: %v; its output:\n%s", name, err, p.log.String())
		}
		dev := fmt.Sprintf("vhost-user-fs-pci,queue-size=1024,chardev=char%d,tag=%s", i, s.Tag)
		if s.Queues > 1 {
			dev += fmt.Sprintf(",num-request-queues=%d", s.Queues)
		}
		args = append(args, "-chardev", fmt.Sprintf("socket,id=char%d,path=%s", i, sock), "-device", dev)
	}
	args = append(args, cfg.ExtraQEMUArgs...)

	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	q := exec.Command(QEMU, args...)
	q.Stdin = nil
	pr, pw := io.Pipe()
	q.Stdout, q.Stderr = pw, pw
	q.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	qstart := time.Now()
	if err := q.Start(); err != nil {
		return res, fmt.Errorf("start %s: %v", QEMU, err)
	}
	qdone := make(chan error, 1)
	go func() { qdone <- q.Wait(); pw.Close() }()

	var console bytes.Buffer
	doneSeen := make(chan struct{})
	scanDone := make(chan struct{})
	var ready, finished time.Time
	go func() {
		defer close(scanDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<16), 16<<20)
		seen := false
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			console.WriteString(line + "\n")
			if cfg.OnLine != nil {
				cfg.OnLine(line, backendPID)
			}
			if cfg.Console != nil {
				fmt.Fprintln(cfg.Console, line)
			}
			wasReady := res.GuestBoot != 0
			res.parseLine(line)
			if !wasReady && strings.Contains(line, "FASTFS-READY") {
				ready = time.Now()
			}
			if res.Done && !seen {
				seen = true
				finished = time.Now()
				close(doneSeen)
			}
		}
		io.Copy(io.Discard, pr)
	}()

	kill := func() { syscall.Kill(-q.Process.Pid, syscall.SIGKILL) }
	// A backend exiting before the guest is done: stop QEMU (after a
	// moment for the guest to report) rather than wait for the timeout.
	died := make(chan string, 1)
	for _, p := range procs {
		go func(p *proc) {
			select {
			case <-p.done:
			case <-doneSeen:
				return
			case <-ctx.Done():
				return
			}
			select {
			case <-doneSeen:
			case <-time.After(5 * time.Second):
				select {
				case died <- p.name:
				default:
				}
			}
		}(p)
	}
	select {
	case res.QEMUErr = <-qdone:
	case name := <-died:
		res.BackendDied = name
		kill()
		res.QEMUErr = <-qdone
	case <-ctx.Done():
		res.TimedOut = true
		kill()
		res.QEMUErr = <-qdone
	case <-doneSeen:
		select {
		case res.QEMUErr = <-qdone:
		case <-time.After(cfg.ExitGrace):
			res.HungOnExit = true
			kill()
			res.QEMUErr = <-qdone
		case <-ctx.Done():
			res.TimedOut = true
			kill()
			res.QEMUErr = <-qdone
		}
	}
	<-scanDone
	res.Console = console.String()
	if !ready.IsZero() {
		res.BootTime = ready.Sub(qstart)
		if !finished.IsZero() {
			res.RunTime = finished.Sub(ready)
		}
	}
	res.Total = time.Since(start)
	return res, nil
}

func waitSocket(sock string, p *proc, max time.Duration) error {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		if st, err := os.Stat(sock); err == nil && st.Mode()&os.ModeSocket != 0 {
			time.Sleep(50 * time.Millisecond) // bind happens just before listen
			return nil
		}
		select {
		case <-p.done:
			return errors.New("exited before opening its socket")
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("no socket at %s after %v", sock, max)
}

func concatFiles(dst, base string, tail []byte) error {
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	in, err := os.Open(base)
	if err != nil {
		out.Close()
		return err
	}
	defer in.Close()
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if _, err := out.Write(tail); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
