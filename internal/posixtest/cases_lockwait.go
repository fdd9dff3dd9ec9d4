package posixtest

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	childActions["lockwait"] = childLockWait
	register("lock_wait_and_kill", func(t *testing.T, env Env) {
		env.need(t, CapPosixLocks)
		twin(t, env, func(s *Side) { lockWait(s, "posix") })
	})
	register("flock_wait_and_kill", func(t *testing.T, env Env) {
		env.need(t, CapFlock)
		twin(t, env, func(s *Side) { lockWait(s, "flock") })
	})
}

// childLockWait prints "waiting PID", takes a write lock of spec.Kind
// with the blocking call, prints "locked", and holds it until stdin
// closes.
func childLockWait(spec childSpec, out io.Writer, in io.Reader) int {
	fd, err := unix.Open(spec.Path, unix.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(out, "error %s\n", errnoString(err))
		return 1
	}
	fmt.Fprintf(out, "waiting %d\n", os.Getpid())
	if spec.Kind == "flock" {
		err = unix.Flock(fd, unix.LOCK_EX)
	} else {
		err = unix.FcntlFlock(uintptr(fd), unix.F_SETLKW, &unix.Flock_t{Type: unix.F_WRLCK, Start: spec.Start, Len: spec.Len})
	}
	if err != nil {
		fmt.Fprintf(out, "error %s\n", errnoString(err))
		return 1
	}
	fmt.Fprintf(out, "locked\n")
	io.Copy(io.Discard, in)
	return 0
}

// blockedIn waits until a thread of process pid sits in system call nr
// (per /proc/PID/task/*/syscall: a Go program may make the call on any of
// its threads), so that what follows meets a blocked waiter, not one still
// on its way. It gives up after 20 s.
func blockedIn(pid int, nr uintptr) bool {
	want := strconv.FormatUint(uint64(nr), 10) + " "
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return false
		}
		for _, task := range tasks {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
			if strings.HasPrefix(string(b), want) {
				return true
			}
		}
		// Polling the process state: there is no event for "entered a
		// system call"; yield the CPU between looks.
		time.Sleep(time.Millisecond)
	}
	return false
}

// lockWait: a waiter blocked in F_SETLKW (or flock) gets the lock when the
// holder exits; a waiter killed while blocked leaves no lock behind and
// the filesystem keeps serving.
func lockWait(s *Side, kind string) {
	f := s.P("f")
	os.WriteFile(f, make([]byte, 100), 0o644)
	holder := startChild(s.t, childSpec{Action: "lock", Path: f, Kind: kind, Start: 0, Len: 50})
	if l := holder.line(); !strings.HasPrefix(l, "locked ") {
		s.Fatalf("holder: %q", l)
	}
	nr := uintptr(unix.SYS_FCNTL)
	if kind == "flock" {
		nr = unix.SYS_FLOCK
	}
	// A waiter killed while it waits.
	victim := startChild(s.t, childSpec{Action: "lockwait", Path: f, Kind: kind, Start: 10, Len: 10})
	var vpid int
	fmt.Sscanf(victim.line(), "waiting %d", &vpid)
	s.Rec("victim blocked", "%v", blockedIn(vpid, nr))
	if s.serverPid != 0 && !blockedIn(s.serverPid, nr) {
		// The daemon waits in the same call as the client (F_OFD_SETLKW
		// or flock) once it has the request: see Env.ServerPid.
		s.Fatalf("daemon %d never waited for the %s lock the victim asked for", s.serverPid, kind)
	}
	victim.cmd.Process.Signal(syscall.SIGKILL)
	_, err := victim.finish()
	s.Rec("victim killed", "%v", err != nil && strings.Contains(err.Error(), "killed"))
	// A waiter that will get the lock.
	waiter := startChild(s.t, childSpec{Action: "lockwait", Path: f, Kind: kind, Start: 10, Len: 10})
	var wpid int
	fmt.Sscanf(waiter.line(), "waiting %d", &wpid)
	s.Rec("waiter blocked", "%v", blockedIn(wpid, nr))
	if _, err := holder.finish(); err != nil {
		s.Fatalf("holder: %v", err)
	}
	got := waiter.line()
	s.Rec("waiter after holder exit", "%s", got)
	s.Checkf(got == "locked", "the blocked %s waiter did not get the lock when the holder exited: %q", kind, got)
	// Now the waiter holds it: we may not.
	fd, err := unix.Open(f, unix.O_RDWR, 0)
	s.Must("open", err)
	defer unix.Close(fd)
	if kind == "flock" {
		s.Err("flock while waiter holds", unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB))
	} else {
		s.Err("setlk while waiter holds", unix.FcntlFlock(uintptr(fd), unix.F_SETLK, &unix.Flock_t{Type: unix.F_WRLCK, Start: 0, Len: 100}))
	}
	if _, err := waiter.finish(); err != nil {
		s.Fatalf("waiter: %v", err)
	}
	// Everyone is gone (the killed victim included): the lock is free
	// (once the trailing FUSE release is in, see afterRelease).
	err = afterRelease(s, kind+" lock of the exited waiter", func() error {
		if kind == "flock" {
			return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		}
		return unix.FcntlFlock(uintptr(fd), unix.F_SETLK, &unix.Flock_t{Type: unix.F_WRLCK, Start: 0, Len: 100})
	})
	s.Err("lock after all exited", err)
	s.Content("still serving", "f")
}
