package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fastfs"
)

// The mount door's unmount, as root, runs in a helper process.
//
// A plain umount2(2) of a FUSE mount frees every dentry and inode the
// kernel cached for it (about 2 µs each: 4 s of CPU for 2,000,000, and
// 9-30 s of wall time on a loaded machine), and it does so in the task
// that drops the mount's last reference — the one calling umount2: the
// kernel detaches the mount from the namespace in the call, then runs
// cleanup_mnt as task work before the call returns to user space (or in
// the task's exit, before it becomes a zombie). No process that calls
// umount2 can exit before that is done, however little it does itself, so
// SIGTERM could not end the daemon within seconds (issue 10).
//
// So the supervisor (namespace.go) does not call umount2 itself: it
// starts this program again (/proc/self/exe) as a helper, selected by
// $FASTFSD_UNMOUNT_CONN (the FUSE connection's number) with the
// mountpoint in its argv, which runs fastfs.UnmountConnection — the same
// umount2, lazy detach and fusectl abort as the in-process Unmount — and
// exits. The supervisor waits until the connection has left its
// mountinfo (the detach, which comes before the freeing), or the helper
// has ended, then carries on as before: it waits for the serving child,
// whose reads of /dev/fuse fail with ENODEV once the kernel aborts the
// connection at the start of the cleanup, and exits with the child's
// status. The helper, reparented, finishes the kernel's work.
//
// What does not change: the child serves until the unmount has detached
// the mount (the supervisor never exits before the child, and the child
// stops only on ENODEV or when the supervisor is gone), so anything the
// kernel sends while unmounting still reaches a server; a busy mount
// still gets the lazy detach and the abort; an unprivileged mount
// (fusermount3) still unmounts in-process.
//
// Why a process, and one started by exec: nothing else moves the work
// out of the daemon's exit. A lazy umount2 (MNT_DETACH) of an idle mount
// drops the last reference in the same call and frees in the same task;
// a umount2 on another thread only moves it to that thread, whose exit
// the process's exit waits for; the kernel hands the freeing to a work
// queue only for kernel threads. The serving child cannot unmount
// (Landlock, and with --sandbox=namespace another mount namespace), and
// a Go process cannot fork without exec.
//
// The helper's privileges: the supervisor keeps CAP_SYS_ADMIN alone,
// with no_new_privs, no seccomp filter and no Landlock
// (superviseNamespace: sandbox.Apply with SeccompNone and no paths), so
// it may exec. Root's exec under no_new_privs gets at most the old
// permitted set, here CAP_SYS_ADMIN (also the bounding set), which is
// what umount2 and fusectl need; the helper gains nothing the supervisor
// did not hold. It runs in a session of its own with SIGINT, SIGTERM and
// SIGHUP ignored, so that a second Ctrl-C or the terminal's hangup cannot
// stop it between a lazy detach and the abort; stdin, stdout and stderr
// are /dev/null — it must not hold the daemon's stderr open after the
// daemon exits (a pipe reader such as "fastfsd mount … | tee" would wait
// for it) — and it reports an error on fd 3, a pipe the supervisor reads
// while it runs. It cannot hang for ever: if its connection is still
// mounted helperAbortAfter after umount2 began (the call is blocked
// before the detach), it aborts the connection through fusectl, which
// fails whatever the unmount waits for.

// unmountHelperEnv selects the unmount helper: the FUSE connection's
// number (fastfs.Session.ConnectionID); os.Args[2] is the mountpoint.
const unmountHelperEnv = "FASTFSD_UNMOUNT_CONN"

// unmountHelperArg is the helper's os.Args[1], and what ps shows.
const unmountHelperArg = "unmount-helper"

const (
	// helperAbortAfter: the helper aborts a connection still mounted
	// this long after its unmount began.
	helperAbortAfter = 3 * time.Second
	// stopWait bounds the supervisor's wait for the detach.
	stopWait = 4 * time.Second
)

// unmountHelperMain runs the unmount helper and exits if this process is
// one ($FASTFSD_UNMOUNT_CONN set, argv "unmount-helper MOUNTPOINT"); main
// calls it first, and so does the tests' re-executed daemon.
func unmountHelperMain() {
	if id, ok := os.LookupEnv(unmountHelperEnv); ok && len(os.Args) == 3 && os.Args[1] == unmountHelperArg {
		os.Exit(unmountHelper(id, os.Args[2]))
	}
}

// unmountHelper is the helper's main: it unmounts connection idStr from
// mnt and exits 0, or reports why not on fd 3 and exits 1.
func unmountHelper(idStr, mnt string) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	report := os.NewFile(3, "unmount report") // a pipe; EPIPE once the supervisor is gone
	fail := func(err error) int {
		fmt.Fprintf(report, "%v", err)
		return 1
	}
	id, err := strconv.ParseUint(idStr, 10, 32)
	if err != nil || !strings.HasPrefix(mnt, "/") {
		return fail(fmt.Errorf("unmount helper: $%s=%q and mountpoint %q: want a connection number and an absolute path", unmountHelperEnv, idStr, mnt))
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
			return
		case <-time.After(helperAbortAfter):
		}
		if mounted, err := fastfs.ConnectionMounted(mnt, uint32(id)); err == nil && mounted {
			err := fastfs.AbortConnection(uint32(id))
			fmt.Fprintf(report, "unmount %s: still mounted %v after umount2 began; aborted the connection (%v); ", mnt, helperAbortAfter, err)
		}
	}()
	err = fastfs.UnmountConnection(mnt, uint32(id))
	close(done)
	if err != nil {
		return fail(err)
	}
	return 0
}

// unmounter is the mount door supervisor's stop (supervision.stop): it
// unmounts the served connection through an unmount helper (above). Not
// safe for concurrent use: the supervisor calls it from its one loop.
type unmounter struct {
	conn  *fastfs.Session
	mnt   string // absolute
	id    uint32 // the connection's number
	idErr error  // the connection was not found in mountinfo: unmount in-process
	// helper, while a helper runs, gets its outcome once.
	helper <-chan error
}

func newUnmounter(conn *fastfs.Session) *unmounter {
	u := &unmounter{conn: conn, mnt: conn.Mountpoint()}
	u.id, u.idErr = conn.ConnectionID()
	return u
}

// stop unmounts unless the connection has already left the mountpoint,
// and returns once it has (or the helper failed, or stopWait passed).
// Safe to call again: a running helper is waited for, not started twice.
func (u *unmounter) stop() {
	if u.idErr != nil {
		// Not found in mountinfo (a mountpoint through a symbolic link,
		// say): the in-process unmount, which copes.
		if err := u.conn.Unmount(); err != nil {
			stderrf("sandbox: %v", err)
		}
		return
	}
	if mounted, err := fastfs.ConnectionMounted(u.mnt, u.id); err == nil && !mounted {
		return // unmounted (from outside, or by an earlier stop)
	}
	if u.helper == nil {
		h, pid, err := startUnmountHelper(u.mnt, u.id)
		if err != nil {
			stderrf("sandbox: %v; unmounting in this process (its exit waits for the kernel to free the mount's cache)", err)
			if err := u.conn.Unmount(); err != nil {
				stderrf("sandbox: %v", err)
			}
			return
		}
		u.helper = h
		stderrf("unmounting %s in pid %d (fastfsd's unmount helper, which then waits for the kernel to free the mount's cache)", u.mnt, pid)
	}
	detached, err := u.waitDetached(stopWait)
	switch {
	case err != nil:
		stderrf("sandbox: %v", err)
	case !detached:
		stderrf("sandbox: %s still mounted %v after its unmount began; unmount it by hand (umount -l %s)", u.mnt, stopWait, u.mnt)
	}
}

// waitDetached waits up to limit for the connection to leave the
// mountpoint — woken by the kernel's poll notice of every change of the
// mount table — or for the helper to end; it returns whether it left, and
// the helper's error.
func (u *unmounter) waitDetached(limit time.Duration) (bool, error) {
	mi, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, fmt.Errorf("wait for the unmount of %s: %w", u.mnt, err)
	}
	defer mi.Close()
	// poll on mi reports a change of the mount table made since it was
	// opened or last polled, so none made after a check below is missed.
	for deadline := time.Now().Add(limit); ; {
		if mounted, err := fastfs.ConnectionMounted(u.mnt, u.id); err == nil && !mounted {
			return true, nil
		}
		select {
		case err := <-u.helper:
			u.helper = nil
			mounted, merr := fastfs.ConnectionMounted(u.mnt, u.id)
			return merr == nil && !mounted, err
		default:
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		// The timeout only bounds how late the helper's end is noticed.
		fds := []unix.PollFd{{Fd: int32(mi.Fd()), Events: unix.POLLPRI}}
		unix.Poll(fds, int(min(left, 50*time.Millisecond)/time.Millisecond)+1)
	}
}

// startUnmountHelper starts the unmount helper for connection id at mnt;
// the channel gets its outcome once it has ended (and been reaped).
func startUnmountHelper(mnt string, id uint32) (<-chan error, int, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, 0, fmt.Errorf("unmount helper: pipe: %w", err)
	}
	cmd := exec.Command("/proc/self/exe", unmountHelperArg, mnt)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), unmountHelperEnv+"="+strconv.FormatUint(uint64(id), 10))
	// stdin, stdout, stderr: /dev/null (see above).
	cmd.ExtraFiles = []*os.File{w}
	// No Pdeathsig: the helper outlives the supervisor on purpose.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, 0, fmt.Errorf("start the unmount helper: %w", err)
	}
	ch := make(chan error, 1)
	go func() {
		msg, _ := io.ReadAll(r)
		r.Close()
		err := cmd.Wait()
		switch {
		case len(msg) > 0:
			err = errors.New(strings.TrimSpace(string(msg)))
		case err != nil:
			err = fmt.Errorf("unmount helper: %w", err)
		}
		ch <- err
	}()
	return ch, cmd.Process.Pid, nil
}
