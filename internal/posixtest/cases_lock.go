package posixtest

import (
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	childActions["lock"] = childLock
	register("lock_posix", func(t *testing.T, env Env) {
		env.need(t, CapPosixLocks)
		twin(t, env, func(s *Side) { lockCase(s, "posix") })
	})
	register("lock_ofd", func(t *testing.T, env Env) {
		env.need(t, CapOFDLocks)
		twin(t, env, func(s *Side) { lockCase(s, "ofd"); ofdSameProcess(s) })
	})
	register("lock_flock", func(t *testing.T, env Env) {
		env.need(t, CapFlock)
		twin(t, env, func(s *Side) { lockCase(s, "flock") })
	})
}

// childLock takes a write lock of spec.Kind on spec.Path, prints
// "locked PID" (or "error ERRNO"), and holds it until stdin closes.
func childLock(spec childSpec, out io.Writer, in io.Reader) int {
	fd, err := unix.Open(spec.Path, unix.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(out, "error %s\n", errnoString(err))
		return 1
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: spec.Start, Len: spec.Len}
	switch spec.Kind {
	case "posix":
		err = unix.FcntlFlock(uintptr(fd), unix.F_SETLK, &lk)
	case "ofd":
		err = unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk)
	case "flock":
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	}
	if err != nil {
		fmt.Fprintf(out, "error %s\n", errnoString(err))
		return 1
	}
	fmt.Fprintf(out, "locked %d\n", os.Getpid())
	io.Copy(io.Discard, in) // hold until the parent closes stdin
	return 0
}

func lockCase(s *Side, kind string) {
	f := s.P("f")
	os.WriteFile(f, make([]byte, 1000), 0o644)
	c := startChild(s.t, childSpec{Action: "lock", Path: f, Kind: kind, Start: 100, Len: 200})
	line := c.line()
	var pid int
	if _, err := fmt.Sscanf(line, "locked %d", &pid); err != nil {
		rest, werr := c.finish()
		s.Fatalf("child could not take its %s lock: %q %s (exit: %v)", kind, line, rest, werr)
	}
	s.Rec("child locked", "ok")
	fd, err := unix.Open(f, unix.O_RDWR, 0)
	s.Must("open", err)
	defer unix.Close(fd)

	getCmd, setCmd := unix.F_GETLK, unix.F_SETLK
	if kind == "ofd" {
		getCmd, setCmd = unix.F_OFD_GETLK, unix.F_OFD_SETLK
	}
	if kind == "flock" {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		s.Err("flock LOCK_EX|LOCK_NB while child holds it", err)
		s.Checkf(err == unix.EWOULDBLOCK, "flock while another process holds LOCK_EX: %v, want EWOULDBLOCK", err)
		s.Err("flock LOCK_SH|LOCK_NB while child holds it", unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB))
	} else {
		// F_GETLK over the whole file reports the child's lock.
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
		err := unix.FcntlFlock(uintptr(fd), getCmd, &lk)
		s.Err("getlk", err)
		wantPid := int32(pid)
		if kind == "ofd" {
			wantPid = -1 // an OFD lock has no owning process
		}
		s.Rec("getlk result", "type=%d start=%d len=%d pid-is-child=%v", lk.Type, lk.Start, lk.Len, lk.Pid == wantPid)
		s.Checkf(err == nil && lk.Type == unix.F_WRLCK && lk.Start == 100 && lk.Len == 200 && lk.Pid == wantPid,
			"%s getlk while child %d holds [100,300): type=%d start=%d len=%d pid=%d (err %v), want F_WRLCK 100 200 pid %d",
			kind, pid, lk.Type, lk.Start, lk.Len, lk.Pid, err, wantPid)
		// A range that does not overlap is free.
		lk = unix.Flock_t{Type: unix.F_WRLCK, Start: 300, Len: 50}
		s.Err("getlk free range", unix.FcntlFlock(uintptr(fd), getCmd, &lk))
		s.Rec("getlk free range type", "%d", lk.Type)
		s.Checkf(lk.Type == unix.F_UNLCK, "%s getlk of a free range: type %d, want F_UNLCK", kind, lk.Type)
		lk = unix.Flock_t{Type: unix.F_WRLCK, Start: 150, Len: 10}
		err = unix.FcntlFlock(uintptr(fd), setCmd, &lk)
		s.Err("setlk conflicting", err)
		s.Checkf(err == unix.EAGAIN || err == unix.EACCES, "%s setlk on a range the child holds: %v, want EAGAIN", kind, err)
		lk = unix.Flock_t{Type: unix.F_RDLCK, Start: 299, Len: 1}
		s.Err("setlk read conflicting", unix.FcntlFlock(uintptr(fd), setCmd, &lk))
		lk = unix.Flock_t{Type: unix.F_WRLCK, Start: 300, Len: 100}
		s.Err("setlk free range", unix.FcntlFlock(uintptr(fd), setCmd, &lk))
	}
	if _, err := c.finish(); err != nil {
		s.Fatalf("lock child: %v", err)
	}
	// The child is gone: its lock with it. FUSE sends RELEASE (which
	// drops flock and OFD locks) in the background after the last close,
	// so the release may trail the exit by a moment: retry for up to
	// 10 s, and say how long it took.
	err = afterRelease(s, kind+" lock of the exited child", func() error {
		if kind == "flock" {
			return unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		}
		return unix.FcntlFlock(uintptr(fd), setCmd, &unix.Flock_t{Type: unix.F_WRLCK, Start: 150, Len: 10})
	})
	s.Err("lock after child exit", err)
	s.Checkf(err == nil, "%s lock after the holder exited: %v, want success", kind, err)
	if kind == "flock" {
		s.Err("unlock", unix.Flock(fd, unix.LOCK_UN))
		return
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Start: 0, Len: 0}
	s.Err("getlk after child exit", unix.FcntlFlock(uintptr(fd), getCmd, &lk))
	s.Rec("getlk after child exit type (own lock does not conflict)", "%d", lk.Type)
	s.Err("unlock", unix.FcntlFlock(uintptr(fd), setCmd, &unix.Flock_t{Type: unix.F_UNLCK, Start: 0, Len: 0}))
}

// ofdSameProcess: OFD locks on two open file descriptions of one process
// conflict (POSIX process locks would not).
func ofdSameProcess(s *Side) {
	f := s.P("f")
	a, err := unix.Open(f, unix.O_RDWR, 0)
	s.Must("open a", err)
	defer func() {
		if a >= 0 {
			unix.Close(a)
		}
	}()
	b, err := unix.Open(f, unix.O_RDWR, 0)
	s.Must("open b", err)
	defer unix.Close(b)
	s.Err("ofd lock a", unix.FcntlFlock(uintptr(a), unix.F_OFD_SETLK, &unix.Flock_t{Type: unix.F_WRLCK, Start: 0, Len: 10}))
	err = unix.FcntlFlock(uintptr(b), unix.F_OFD_SETLK, &unix.Flock_t{Type: unix.F_WRLCK, Start: 5, Len: 10})
	s.Err("ofd lock b conflicting", err)
	s.Checkf(err == unix.EAGAIN, "OFD lock on a second description of the same file: %v, want EAGAIN", err)
	lk := unix.Flock_t{Type: unix.F_RDLCK, Start: 0, Len: 0}
	s.Err("ofd getlk b", unix.FcntlFlock(uintptr(b), unix.F_OFD_GETLK, &lk))
	s.Rec("ofd getlk b", "type=%d start=%d len=%d pid=%d", lk.Type, lk.Start, lk.Len, lk.Pid)
	unix.Close(a)
	a = -1
	s.Err("ofd lock b after close a", afterRelease(s, "OFD lock of the closed description", func() error {
		return unix.FcntlFlock(uintptr(b), unix.F_OFD_SETLK, &unix.Flock_t{Type: unix.F_WRLCK, Start: 5, Len: 10})
	}))
	// F_OFD_SETLK needs l_pid = 0.
	s.Err("ofd setlk with pid", unix.FcntlFlock(uintptr(b), unix.F_OFD_SETLK, &unix.Flock_t{Type: unix.F_WRLCK, Start: 50, Len: 1, Pid: 1}))
}

// afterRelease retries a non-blocking lock attempt while it meets a
// conflict, for up to 10 s, and logs when it had to: FUSE sends RELEASE
// (which drops flock and OFD locks) in the background after the last
// close, so a release may trail the close or the holder's exit by a
// moment. Natively the first attempt succeeds.
func afterRelease(s *Side, what string, try func() error) error {
	start := time.Now()
	err := try()
	tries := 1
	for deadline := start.Add(10 * time.Second); (err == unix.EAGAIN || err == unix.EACCES) && time.Now().Before(deadline); err = try() {
		time.Sleep(time.Millisecond)
		tries++
	}
	if tries > 1 {
		s.t.Logf("[%s] the %s was still held %v after release (%d tries)", s.Name, what, time.Since(start), tries)
	}
	return err
}
