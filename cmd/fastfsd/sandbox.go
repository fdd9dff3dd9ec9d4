package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"

	"github.com/fastfsd/fastfsd/internal/sandbox"
	"github.com/fastfsd/fastfsd/internal/sys"
	"golang.org/x/sys/unix"
)

// sandboxFlags are the confinement flags every serving door takes, with
// virtiofsd's names: --sandbox, --seccomp, --modcaps.
type sandboxFlags struct {
	sandbox string
	seccomp string
	modcaps string
	// allowDevices adds sandbox.DeviceCaps (mknod) to the door's
	// default set: the door lets clients make device nodes.
	allowDevices bool
	// autoNone says why --sandbox=auto resolved to none ("" if it did
	// not); logged by the door.
	autoNone string
}

const (
	sandboxHelp      = "confinement entered after the transport is set up: none (no namespace or chroot; the capability drop, no_new_privs, Landlock and the seccomp filter still apply), namespace (besides, serve from new mount, pid and network namespaces whose root is the shared directory; a CGO_ENABLED=0 build, Linux 6.13+), chroot (serve from a chroot into the shared directory, without new namespaces, for containers that forbid them; as namespace's build and kernel), auto (namespace where those hold and this is root, else none; says which)"
	mountSandboxHelp = "confinement entered once the mount is made, as root (an unprivileged mount is not confined, and refuses --sandbox=namespace/chroot, --seccomp, --modcaps): namespace (a child serves from new mount, pid and network namespaces whose root is the source directory, under Landlock, while this process keeps only CAP_SYS_ADMIN and unmounts on exit or if the child dies; a CGO_ENABLED=0 build, Linux 6.13+), chroot (the same, chrooted into the source directory without new namespaces), none (the same split, without namespaces or a new root: the child serves under Landlock limited to the source directory, the capability drop, no_new_privs and the seccomp filter), auto (namespace where it can run, else none; says which)"
	seccompHelp      = "action on a system call outside this door's allow-list (docs/sandbox.md): kill (the process), log (allow, log to the audit log), trap (SIGSYS: the Go runtime prints the stack and exits), none (no filter)"
	modcapsHelp      = "change the kept capability set, virtiofsd style: +CAP:-CAP… (e.g. +sys_admin:-mknod); the defaults per door are in docs/sandbox.md"
)

func addSandboxFlags(fl *flag.FlagSet, door sandbox.Door) *sandboxFlags {
	s := new(sandboxFlags)
	help := sandboxHelp
	if door == sandbox.Mount {
		help = mountSandboxHelp
	}
	fl.StringVar(&s.sandbox, "sandbox", "auto", help)
	fl.StringVar(&s.seccomp, "seccomp", "kill", seccompHelp)
	fl.StringVar(&s.modcaps, "modcaps", "", modcapsHelp)
	return s
}

// options checks the flags (before anything is set up, so a typo fails
// early) and returns door's sandbox options for the shared directories
// dirs (Landlock allows each). The mount door applies them in its serving
// child only (mount.go): Landlock forbids unmounting, which its
// supervisor does.
func (s *sandboxFlags) options(door sandbox.Door, dirs ...string) (sandbox.Options, error) {
	o := sandbox.Options{Door: door}
	if s.sandbox == "auto" {
		s.sandbox, s.autoNone = "namespace", namespaceUnavailable(door)
		if s.autoNone != "" {
			s.sandbox = "none"
		}
	}
	switch s.sandbox {
	case "none", "":
	case "namespace":
		if cgoBuild() {
			return o, errors.New("--sandbox=namespace: this fastfsd was built with cgo, whose all-threads calls (libpsx) read /proc/PID/task, which the sandbox's root does not show; use a CGO_ENABLED=0 build (make build's bin/fastfsd) or --sandbox=none")
		}
	case "chroot":
		if cgoBuild() {
			return o, errors.New("--sandbox=chroot: this fastfsd was built with cgo, whose all-threads calls (libpsx) read /proc/PID/task, which the chroot does not show; use a CGO_ENABLED=0 build (make build's bin/fastfsd) or --sandbox=none")
		}
	default:
		return o, fmt.Errorf("--sandbox %q: want auto, namespace, chroot or none", s.sandbox)
	}
	var err error
	if o.Seccomp, err = sandbox.ParseSeccomp(s.seccomp); err != nil {
		return o, err
	}
	base := sandbox.DefaultCaps(door)
	if s.allowDevices {
		base |= sandbox.DeviceCaps
	}
	if o.Caps, err = sandbox.ParseModcaps(base, s.modcaps); err != nil {
		return o, err
	}
	for _, dir := range dirs {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return o, fmt.Errorf("shared directory %s: %w", dir, err)
		}
		if abs, err = filepath.EvalSymlinks(abs); err != nil {
			return o, fmt.Errorf("shared directory %s: %w", dir, err)
		}
		o.Landlock = append(o.Landlock, abs)
	}
	// /proc/self: mountinfo, and the /proc/self/fd magic links
	// fs/passthrough reopens inodes through (Landlock checks the file
	// they land on, which is under the shared directory).
	o.LandlockRO = []string{"/proc/self"}
	return o, nil
}

// namespaceUnavailable says why --sandbox=namespace cannot serve door
// here, or "" if it can (the test --sandbox=auto makes).
func namespaceUnavailable(door sandbox.Door) string {
	switch {
	case os.Geteuid() != 0:
		return "not root"
	case cgoBuild():
		return "a cgo build (its libpsx reads /proc/PID/task, which the sandbox's root does not show)"
	case !xattrAtSupported():
		return "the kernel lacks the *xattrat calls (Linux 6.13) that extended attributes need inside it"
	}
	return ""
}

// xattrAtSupported reports whether the kernel has getxattrat(2).
func xattrAtSupported() bool {
	path, name := [...]byte{'/', 0}, [...]byte{'u', 's', 'e', 'r', '.', 'x', 0}
	_, e := sys.Getxattrat(unix.AT_FDCWD, &path[0], &name[0], nil)
	return e != unix.ENOSYS
}

// cgoBuild reports whether this binary was built with cgo.
func cgoBuild() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "CGO_ENABLED" {
			return s.Value == "1"
		}
	}
	return false
}

// namespace reports whether the door serves from a namespace sandbox.
func (s *sandboxFlags) namespace() bool { return s.sandbox == "namespace" }

// chroot reports whether the door serves from a chroot into the shared
// directory (no new namespaces: for containers that forbid them).
func (s *sandboxFlags) chroot() bool { return s.sandbox == "chroot" }

// supervised reports whether the door serves from a re-executed child
// (namespace.go), namespace or chroot.
func (s *sandboxFlags) supervised() bool { return s.namespace() || s.chroot() }

// inNamespace adapts o for the namespace sandbox's child, whose root is
// the shared directory: Landlock allows "/" and nothing else.
func inNamespace(o *sandbox.Options) {
	o.Landlock, o.LandlockRO, o.LandlockROFiles, o.LandlockUnlink = []string{"/"}, nil, nil, nil
}

// socketDir lets the daemon remove its listening socket at path on exit
// under Landlock (the right to remove files in the socket's directory,
// nothing else).
func socketDir(o *sandbox.Options, path string) {
	if path == "" {
		return
	}
	if abs, err := filepath.Abs(path); err == nil {
		o.LandlockUnlink = append(o.LandlockUnlink, filepath.Dir(abs))
	}
}

// logAuto logs why --sandbox=auto resolved to none, if it did.
func (s *sandboxFlags) logAuto(logf func(string, ...any)) {
	if s.autoNone != "" {
		logf("sandbox: --sandbox=auto: no namespace: %s", s.autoNone)
	}
}

// confine applies o to this process and logs what it did with logf.
func confine(o sandbox.Options, logf func(string, ...any)) error {
	r, err := sandbox.Apply(o)
	if err != nil {
		return fmt.Errorf("%w; run with --seccomp=none or --modcaps to narrow down the cause", err)
	}
	logf("sandbox (%s door): %s", o.Door, r)
	return nil
}

// stderrf logs to stderr, a line per call.
func stderrf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "fastfsd: "+format+"\n", args...)
}
