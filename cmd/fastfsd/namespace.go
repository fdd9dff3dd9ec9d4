package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/internal/sandbox"
)

// --sandbox=namespace, as virtiofsd: the door serves from new mount, pid
// and network namespaces whose root is the shared directory.
//
// A multi-threaded Go process cannot unshare(CLONE_NEWNS) (its threads
// share one fs_struct) and CLONE_NEWPID only applies to children, so the
// door splits in two:
//
//   - The supervisor (the process started) parses the flags and sets up
//     the transport — the listening socket, the metrics/pprof listeners —
//     then re-executes /proc/self/exe with the same arguments as a child
//     made with CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWNET, handing the
//     listeners over as fds 3, 4, … (ExtraFiles) and naming them in
//     $FASTFSD_SANDBOX_FDS. It forwards SIGINT and SIGTERM to the child,
//     waits, and exits with the child's status; it serves nothing, and
//     drops every capability once the child runs (no_new_privs too). It
//     keeps its copy of the listening socket only so that closing it
//     removes the socket file on exit.
//   - The child (pid 1 of its pid namespace) makes its mounts private,
//     mounts a proc of its own pid namespace on /proc, opens /proc/self/fd
//     (fs/passthrough reopens inodes through it), bind-mounts the shared
//     directory on itself, pivot_roots into it and detaches the old root.
//     Then it confines itself as every door does (capabilities without
//     sys_admin, no_new_privs, Landlock on "/", the seccomp filter) and
//     serves "/" through fs/passthrough with that /proc/self/fd fd.
//     Sockets keep working in the new network namespace: a socket belongs
//     to the namespace it was made in.
//
// --sandbox=chroot is the same split without new namespaces (the child
// is made with no clone flags), for containers that forbid them: the
// child opens /proc/self/fd, chroots into the shared directory and
// confines itself as above. Like virtiofsd's chroot mode it does not
// hide the host's processes or network from the child.
//
// The mount door (as root) splits the same way, with the FUSE mount as
// its transport: the supervisor opens /dev/fuse and mounts, hands the fd
// over, keeps CAP_SYS_ADMIN alone, and unmounts — on SIGINT/SIGTERM, when
// the child asks (a byte on the supervisor link), and when the child has
// exited, so that a dead child leaves no mount behind. The umount2 runs
// in an unmount helper process the supervisor starts (unmount.go), which
// is left to wait for the kernel to free the mount's cache. The child
// prepares what serving needs outside the share (fastfs.Session.Prepare:
// cloned /dev/fuse fds, /sys, /dev/null) before it enters its root; see
// mount.go. With --sandbox=none the mount door splits too, without new
// namespaces or a new root: Landlock forbids unmounting, so only a child
// that leaves the unmount to another process can run under it.

const (
	sandboxFdsEnv = "FASTFSD_SANDBOX_FDS" // set in the child: "name=fd,…"
)

// sandboxChild reports whether this process is a namespace sandbox's
// child, and the fds it inherited by name.
func sandboxChild() (map[string]int, bool) {
	v, ok := os.LookupEnv(sandboxFdsEnv)
	if !ok {
		return nil, false
	}
	fds := map[string]int{}
	for _, kv := range strings.Split(v, ",") {
		if k, n, ok := strings.Cut(kv, "="); ok {
			if fd, err := strconv.Atoi(n); err == nil && fd > 2 {
				fds[k] = fd
			}
		}
	}
	return fds, true
}

// exitStatus is an error that makes main exit with this status and print
// nothing: the supervisor passing on its child's status.
type exitStatus int

func (e exitStatus) Error() string { return "exit status " + strconv.Itoa(int(e)) }

// supervision is what a door's supervisor does besides starting the
// child, forwarding signals and waiting. The zero value is the virtiofs
// and 9p doors' supervisor.
type supervision struct {
	// caps is the capability set the supervisor keeps once the child
	// runs (none by default).
	caps sandbox.CapSet
	// stop, if set, is called instead of forwarding SIGINT or SIGTERM,
	// when the child asks (supervisorLink), when stopped is closed, and
	// once the child has exited: the mount door's unmount, which needs
	// the host's mount namespace. It must be safe to call more than once.
	stop func()
	// stopped, when closed, means stop (a signal caught before the
	// supervisor started).
	stopped <-chan struct{}
	// mode is the --sandbox mode: "namespace" (also ""), "chroot" (no
	// new namespaces; the child chroots), or "none" (the mount door
	// only: no new namespaces and no new root, split only so that the
	// child may run under Landlock while the supervisor unmounts).
	mode string
}

// superviseNamespace starts the sandbox's child with the door's transport
// (tf, passed as name: its listening socket or /dev/fuse fd) and obs's
// metrics and pprof listeners, and waits for it; see the comment above and
// sv. The returned error is an exitStatus for a child that exited non-zero
// or was killed.
func superviseNamespace(name string, tf *os.File, obs *observeFlags, logf func(string, ...any), sv supervision) error {
	names, files, err := obs.files()
	if err != nil {
		tf.Close()
		return err
	}
	names, files = append([]string{name}, names...), append([]*os.File{tf}, files...)
	mode, flags := sv.mode, uintptr(unix.CLONE_NEWNS|unix.CLONE_NEWPID|unix.CLONE_NEWNET)
	switch mode {
	case "", "namespace":
		mode = "namespace"
	case "chroot", "none":
		flags = 0
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--sandbox=%s: find this program: %w", mode, err)
	}
	// The link (supervisorLink): a socket pair, one end for the child.
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sandbox: socketpair for the serving child: %w", err)
	}
	link := os.NewFile(uintptr(sp[0]), "supervisor link")
	defer link.Close()
	names = append(names, linkName)
	files = append(files, os.NewFile(uintptr(sp[1]), "supervisor link"))
	var env []string
	for i, n := range names {
		env = append(env, n+"="+strconv.Itoa(3+i))
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = exe
	cmd.Env = append(os.Environ(), sandboxFdsEnv+"="+strings.Join(env, ","))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = files
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: flags,
		// The child dies with the supervisor. Pdeathsig is bound to the
		// thread that forks: this goroutine keeps it locked until Wait.
		Pdeathsig: syscall.SIGKILL,
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		if mode != "namespace" {
			return fmt.Errorf("--sandbox=%s: start the sandboxed child: %w", mode, err)
		}
		return fmt.Errorf("--sandbox=namespace: start the sandboxed child: %w; the kernel must allow new mount, pid and network namespaces (or pass --sandbox=chroot or none)", err)
	}
	for _, f := range files {
		f.Close() // the child has them
	}
	switch mode {
	case "chroot":
		logf("sandbox: serving from pid %d chrooted into the shared directory", cmd.Process.Pid)
	case "none":
		logf("sandbox: serving from pid %d (no namespace: --sandbox=none)", cmd.Process.Pid)
	default:
		logf("sandbox: serving from pid %d in new mount, pid and network namespaces", cmd.Process.Pid)
	}
	// The supervisor only waits, forwards signals, removes the socket on
	// exit (which needs no capability: it made it) and, for the mount
	// door, unmounts: it keeps sv.caps and cannot gain any.
	if _, err := sandbox.Apply(sandbox.Options{Caps: sv.caps, Seccomp: sandbox.SeccompNone}); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		if sv.stop != nil {
			sv.stop()
		}
		return fmt.Errorf("--sandbox=%s: supervisor: %w", mode, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// A byte from the child asks for stop; EOF: the child is gone (done
	// says how).
	stopReq := make(chan struct{}, 1)
	go func() {
		var b [1]byte
		for {
			if n, err := link.Read(b[:]); n == 0 || err != nil {
				return
			}
			select {
			case stopReq <- struct{}{}:
			default:
			}
		}
	}()
	stopped := sv.stopped
	for {
		select {
		case s := <-sig:
			if sv.stop != nil && s != syscall.SIGHUP {
				sv.stop()
			} else {
				cmd.Process.Signal(s)
			}
		case <-stopped:
			stopped = nil
			sv.stop()
		case <-stopReq:
			if sv.stop != nil {
				sv.stop()
			}
		case err := <-done:
			if sv.stop != nil {
				sv.stop()
			}
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					return exitStatus(128 + int(ws.Signal()))
				}
				return exitStatus(ee.ExitCode())
			}
			return err
		}
	}
}

// linkName names the child's end of its link to the supervisor in
// $FASTFSD_SANDBOX_FDS.
const linkName = "supervisor"

// supervisorLink is the child's side of its link to the supervisor (a
// unix socket pair). It exits this process once the supervisor is gone:
// Pdeathsig alone does not do, because the kernel clears it
// (commit_creds) when the thread it was set on, the child's first,
// changes its fsuid or fsgid — which fs/passthrough's identity switches
// do on whichever thread they run. The returned ask asks the supervisor
// to stop (the mount door: unmount).
func supervisorLink(fds map[string]int) (ask func() error, err error) {
	f, err := inheritedFile(fds, linkName)
	if err != nil {
		return nil, err
	}
	go func() {
		var b [1]byte
		for {
			if n, err := f.Read(b[:]); n == 0 || err != nil {
				fmt.Fprintln(os.Stderr, "fastfsd: sandbox: the supervisor is gone; exiting")
				os.Exit(1)
			}
		}
	}()
	return func() error {
		if _, err := f.Write([]byte{1}); err != nil {
			return fmt.Errorf("ask the supervisor: %w", err)
		}
		return nil
	}, nil
}

// enterNamespaceRoot makes the shared directory dir this process's root,
// as the namespace child must (see above), and returns an O_PATH fd of
// /proc/self/fd of the child's own proc. The process must be alone in new
// mount and pid namespaces and hold CAP_SYS_ADMIN.
func enterNamespaceRoot(dir string) (procFd int, err error) {
	step := func(what string, err error) error {
		if err != nil {
			return fmt.Errorf("--sandbox=namespace: %s: %w", what, err)
		}
		return nil
	}
	// Nothing mounted or unmounted here reaches the host.
	if err := step("make mounts private", unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, "")); err != nil {
		return -1, err
	}
	if err := step("mount /proc", unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")); err != nil {
		return -1, err
	}
	procFd, err = unix.Open("/proc/self/fd", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err := step("open /proc/self/fd", err); err != nil {
		return -1, err
	}
	fail := func(e error) (int, error) {
		unix.Close(procFd)
		return -1, e
	}
	// pivot_root needs the new root to be a mount point.
	if err := step("bind-mount "+dir, unix.Mount(dir, dir, "", unix.MS_BIND|unix.MS_REC, "")); err != nil {
		return fail(err)
	}
	if err := step("chdir "+dir, unix.Chdir(dir)); err != nil {
		return fail(err)
	}
	// pivot_root(".", "."): the old root ends up stacked on the new one;
	// detaching it leaves the shared directory alone.
	if err := step("pivot_root", unix.PivotRoot(".", ".")); err != nil {
		return fail(err)
	}
	if err := step("detach the old root", unix.Unmount(".", unix.MNT_DETACH)); err != nil {
		return fail(err)
	}
	if err := step("chdir /", unix.Chdir("/")); err != nil {
		return fail(err)
	}
	return procFd, nil
}

// enterNamespaceShares is enterNamespaceRoot for several shares: the new
// root is a read-only tmpfs holding each share's directory bind-mounted
// at /NAME (the paths the door then serves). The tmpfs is mounted on the
// first share's directory, which exists and which nothing outside this
// mount namespace sees; every share's mount tree is cloned first
// (open_tree), and the clones are moved into the tmpfs, so that they are
// the directories themselves, whatever the tmpfs then hides. The process
// must be alone in new mount and pid namespaces and hold CAP_SYS_ADMIN.
func enterNamespaceShares(specs []shareSpec) (procFd int, err error) {
	step := func(what string, err error) error {
		if err != nil {
			return fmt.Errorf("--sandbox=namespace: %s: %w", what, err)
		}
		return nil
	}
	if len(specs) == 0 {
		return -1, errors.New("--sandbox=namespace: no share to serve")
	}
	if err := step("make mounts private", unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, "")); err != nil {
		return -1, err
	}
	if err := step("mount /proc", unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")); err != nil {
		return -1, err
	}
	procFd, err = unix.Open("/proc/self/fd", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err := step("open /proc/self/fd", err); err != nil {
		return -1, err
	}
	fds := make([]int, 0, len(specs))
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	fail := func(e error) (int, error) {
		unix.Close(procFd)
		return -1, e
	}
	// Each share's mount tree is cloned now (open_tree), before the
	// tmpfs covers the first one: a recursive bind of the first share's
	// directory made after would carry that tmpfs along on top of it.
	for _, sp := range specs {
		fd, err := unix.OpenTree(unix.AT_FDCWD, sp.dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err := step("clone share "+sp.name+" ("+sp.dir+")", err); err != nil {
			return fail(err)
		}
		fds = append(fds, fd)
	}
	top := specs[0].dir
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := step("mount the root's tmpfs on "+top, unix.Mount("fastfs-shares", top, "tmpfs", flags, "mode=0555,size=64k")); err != nil {
		return fail(err)
	}
	for i, sp := range specs {
		at := filepath.Join(top, sp.name)
		if err := step("mkdir "+at, unix.Mkdir(at, 0o555)); err != nil {
			return fail(err)
		}
		if err := step("mount share "+sp.name+" ("+sp.dir+")", unix.MoveMount(fds[i], "", unix.AT_FDCWD, at, unix.MOVE_MOUNT_F_EMPTY_PATH)); err != nil {
			return fail(err)
		}
	}
	if err := step("make the root read-only", unix.Mount("", top, "", unix.MS_REMOUNT|unix.MS_RDONLY|flags, "")); err != nil {
		return fail(err)
	}
	if err := step("chdir "+top, unix.Chdir(top)); err != nil {
		return fail(err)
	}
	if err := step("pivot_root", unix.PivotRoot(".", ".")); err != nil {
		return fail(err)
	}
	if err := step("detach the old root", unix.Unmount(".", unix.MNT_DETACH)); err != nil {
		return fail(err)
	}
	if err := step("chdir /", unix.Chdir("/")); err != nil {
		return fail(err)
	}
	return procFd, nil
}

// enterChrootRoot makes the shared directory dir this process's root by
// chroot(2), as the chroot child must, and returns an O_PATH fd of the
// host's /proc/self/fd, opened first (the chroot hides /proc). chroot
// changes the root of every thread: Go's threads share one fs_struct
// (CLONE_FS). The process must hold CAP_SYS_CHROOT, which confine then
// drops.
func enterChrootRoot(dir string) (procFd int, err error) {
	procFd, err = unix.Open("/proc/self/fd", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("--sandbox=chroot: open /proc/self/fd: %w", err)
	}
	if err := unix.Chroot(dir); err != nil {
		unix.Close(procFd)
		return -1, fmt.Errorf("--sandbox=chroot: chroot %s: %w", dir, err)
	}
	if err := unix.Chdir("/"); err != nil {
		unix.Close(procFd)
		return -1, fmt.Errorf("--sandbox=chroot: chdir /: %w", err)
	}
	return procFd, nil
}

// enterChildRoot is every door's serving child's step into its root:
// dir, the one plain share ("" with named shares), by the mode's means
// (enterChrootRoot, enterNamespaceRoot), or a new root holding each of
// specs at /NAME (enterNamespaceShares). It then points specs at their
// paths in the new root and adapts o to it (inNamespace).
func (s *sandboxFlags) enterChildRoot(dir string, specs []shareSpec, o *sandbox.Options) (procFd int, err error) {
	switch {
	case dir == "":
		procFd, err = enterNamespaceShares(specs)
	case s.chroot():
		procFd, err = enterChrootRoot(dir)
	default:
		procFd, err = enterNamespaceRoot(dir)
	}
	if err != nil {
		return -1, err
	}
	// The sandbox's root is the one share, or holds each at /NAME.
	for i := range specs {
		specs[i].dir = "/" + specs[i].name
	}
	inNamespace(o)
	return procFd, nil
}

// inheritedFd returns the inherited fd named name, close-on-exec.
func inheritedFd(fds map[string]int, name string) (int, error) {
	fd, ok := fds[name]
	if !ok {
		return -1, fmt.Errorf("sandbox: the supervisor passed no %s fd", name)
	}
	unix.CloseOnExec(fd)
	return fd, nil
}

// inheritedFile returns the inherited fd named name as a file.
func inheritedFile(fds map[string]int, name string) (*os.File, error) {
	fd, err := inheritedFd(fds, name)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}
