package posixtest

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func init() {
	register("attr_chmod_chown_utimens", func(t *testing.T, env Env) { twin(t, env, attrCase) })
	register("statx", func(t *testing.T, env Env) { twin(t, env, func(s *Side) { statxCase(s, env) }) })
	register("mknod_fifo", func(t *testing.T, env Env) {
		env.need(t, CapFifo)
		twin(t, env, fifoCase)
	})
	register("o_tmpfile", func(t *testing.T, env Env) {
		env.need(t, CapTmpfile)
		twin(t, env, tmpfileCase)
	})
}

func attrCase(s *Side) {
	f := s.P("f")
	os.WriteFile(f, []byte("data"), 0o644)
	for _, m := range []uint32{0o754, 0, 0o4755, 0o2755, 0o1777, 0o7777, 0o600} {
		s.Err(fmt.Sprintf("chmod %04o", m), unix.Chmod(f, m))
		s.Lstat(fmt.Sprintf("after chmod %04o", m), "f")
	}
	s.Err("chmod missing", unix.Chmod(s.P("missing"), 0o644))
	s.Err("chown 1234:5678", unix.Chown(f, 1234, 5678))
	s.Lstat("after chown", "f")
	s.Err("chown -1:-1", unix.Chown(f, -1, -1))
	s.Lstat("after chown -1:-1", "f")
	s.Err("chown gid only", unix.Chown(f, -1, 42))
	s.Lstat("after chown gid only", "f")
	// chown clears set-id bits of an executable file (root too).
	unix.Chmod(f, 0o6755)
	s.Err("chown set-id file", unix.Chown(f, 0, 0))
	s.Lstat("set-id bits after chown", "f")
	// A write by root clears suid as well (kill_priv).
	unix.Chmod(f, 0o4755)
	unix.Chown(f, 1234, 1234)
	unix.Chmod(f, 0o4755)
	fd, err := unix.Open(f, unix.O_WRONLY, 0)
	s.Must("open", err)
	unix.Write(fd, []byte("w"))
	s.Fstat("suid after write", fd)
	s.Err("fchmod", unix.Fchmod(fd, 0o640))
	s.Err("fchown", unix.Fchown(fd, 7, 8))
	s.Fstat("after fchmod fchown", fd)
	unix.Close(fd)

	// Explicit times, UTIME_OMIT and UTIME_NOW.
	ts := []unix.Timespec{{Sec: 1_000_000_000, Nsec: 123456789}, {Sec: 1_200_000_000, Nsec: 987654321}}
	s.Err("utimensat explicit", unix.UtimesNanoAt(unix.AT_FDCWD, f, ts, 0))
	s.Times("times explicit", "f")
	ts2 := []unix.Timespec{{Sec: 1_300_000_000, Nsec: 5}, {Nsec: unix.UTIME_OMIT}}
	s.Err("utimensat omit mtime", unix.UtimesNanoAt(unix.AT_FDCWD, f, ts2, 0))
	s.Times("times after omit", "f")
	before := time.Now().Add(-2 * time.Second)
	ts3 := []unix.Timespec{{Nsec: unix.UTIME_NOW}, {Nsec: unix.UTIME_OMIT}}
	s.Err("utimensat atime now", unix.UtimesNanoAt(unix.AT_FDCWD, f, ts3, 0))
	var st unix.Stat_t
	unix.Stat(f, &st)
	s.Rec("mtime kept", "%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
	s.Checkf(time.Unix(st.Atim.Unix()).After(before) && st.Mtim.Sec == 1_200_000_000,
		"UTIME_NOW atime %v must be now and UTIME_OMIT keep mtime 1200000000 (got %d)", time.Unix(st.Atim.Unix()), st.Mtim.Sec)
	s.Err("utimensat both now", unix.UtimesNanoAt(unix.AT_FDCWD, f, nil, 0))
	unix.Stat(f, &st)
	s.Checkf(time.Unix(st.Mtim.Unix()).After(before), "utimensat(NULL) must set mtime to now, got %v", time.Unix(st.Mtim.Unix()))
	// ctime moves on a metadata change.
	unix.Stat(f, &st)
	c0 := st.Ctim
	s.Err("chmod for ctime", unix.Chmod(f, 0o611))
	unix.Stat(f, &st)
	s.Checkf(st.Ctim.Sec > c0.Sec || (st.Ctim.Sec == c0.Sec && st.Ctim.Nsec >= c0.Nsec), "ctime went backwards on chmod")
	// On a symlink: lutimes sets the link's own times.
	unix.Symlink("f", s.P("l"))
	s.Err("utimensat nofollow", unix.UtimesNanoAt(unix.AT_FDCWD, s.P("l"), ts, unix.AT_SYMLINK_NOFOLLOW))
	s.Times("symlink times", "l")
	s.Err("utimensat bad nsec", unix.UtimesNanoAt(unix.AT_FDCWD, f, []unix.Timespec{{Nsec: 2_000_000_000}, {}}, 0))
	// Directory.
	unix.Mkdir(s.P("d"), 0o755)
	s.Err("chmod dir", unix.Chmod(s.P("d"), 0o2711))
	s.Err("utimensat dir", unix.UtimesNanoAt(unix.AT_FDCWD, s.P("d"), ts, 0))
	s.Lstat("dir after chmod", "d")
	s.Times("dir times", "d")
	// mtime changes on write, even inside the same second as a set one.
	unix.UtimesNanoAt(unix.AT_FDCWD, f, ts, 0)
	os.WriteFile(f, []byte("again"), 0)
	unix.Stat(f, &st)
	s.Checkf(st.Mtim.Sec > 1_200_000_000, "write did not update mtime (still %d)", st.Mtim.Sec)
}

func statxCase(s *Side, env Env) {
	os.WriteFile(s.P("f"), []byte("0123456789"), 0o640)
	var sx unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, s.P("f"), unix.AT_STATX_SYNC_AS_STAT, unix.STATX_ALL, &sx)
	s.Err("statx", err)
	s.Rec("statx basic mask", "%#x", sx.Mask&unix.STATX_BASIC_STATS)
	s.Rec("statx fields", "mode=%o nlink=%d uid=%d gid=%d size=%d", sx.Mode, sx.Nlink, sx.Uid, sx.Gid, sx.Size)
	s.Checkf(sx.Mask&unix.STATX_BASIC_STATS == unix.STATX_BASIC_STATS, "statx mask %#x lacks basic stats", sx.Mask)
	var st unix.Stat_t
	unix.Stat(s.P("f"), &st)
	s.Checkf(sx.Ino == st.Ino && int64(sx.Size) == st.Size && sx.Mtime.Sec == st.Mtim.Sec && uint32(sx.Mode) == st.Mode,
		"statx and stat disagree: statx ino=%d size=%d mtime=%d mode=%o, stat ino=%d size=%d mtime=%d mode=%o",
		sx.Ino, sx.Size, sx.Mtime.Sec, sx.Mode, st.Ino, st.Size, st.Mtim.Sec, st.Mode)
	if _, lacks := env.Lacks[CapBtime]; !lacks {
		s.Rec("btime present", "%v", sx.Mask&unix.STATX_BTIME != 0)
	}
	if sx.Mask&unix.STATX_BTIME != 0 {
		now := time.Now().Unix()
		s.Checkf(sx.Btime.Sec > now-300 && sx.Btime.Sec <= now+1 && sx.Btime.Sec <= sx.Mtime.Sec+1,
			"btime %d of a file created just now (now %d, mtime %d)", sx.Btime.Sec, now, sx.Mtime.Sec)
	}
	// Only the size asked for: the basic fields still come.
	err = unix.Statx(unix.AT_FDCWD, s.P("f"), 0, unix.STATX_SIZE, &sx)
	s.Err("statx size only", err)
	s.Rec("statx size only", "size=%d has-size=%v", sx.Size, sx.Mask&unix.STATX_SIZE != 0)
	unix.Symlink("f", s.P("l"))
	err = unix.Statx(unix.AT_FDCWD, s.P("l"), unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS, &sx)
	s.Err("statx nofollow", err)
	s.Rec("statx nofollow", "mode=%o size=%d", sx.Mode, sx.Size)
	fd, _ := unix.Open(s.P("f"), unix.O_RDONLY, 0)
	err = unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_BASIC_STATS, &sx)
	s.Err("statx empty path", err)
	s.Rec("statx empty path", "size=%d", sx.Size)
	unix.Close(fd)
	s.Err("statx missing", unix.Statx(unix.AT_FDCWD, s.P("missing"), 0, unix.STATX_BASIC_STATS, &sx))
	s.Err("statx bad flags", unix.Statx(unix.AT_FDCWD, s.P("f"), 0x7fff0000, unix.STATX_BASIC_STATS, &sx))
}

func fifoCase(s *Side) {
	p := s.P("fifo")
	s.Must("mknod fifo", unix.Mknod(p, unix.S_IFIFO|0o640, 0))
	s.Lstat("stat fifo", "fifo")
	s.Err("mknod existing", unix.Mknod(p, unix.S_IFIFO|0o640, 0))
	s.Err("mkfifo via mkfifoat", unix.Mkfifoat(unix.AT_FDCWD, s.P("fifo2"), 0o600))
	s.Lstat("stat fifo2", "fifo2")
	msg := pattern(4, 100000) // larger than a pipe buffer: the two ends must interleave
	got := make(chan []byte, 1)
	errc := make(chan error, 1)
	go func() {
		fd, err := unix.Open(p, unix.O_RDONLY, 0) // blocks until a writer opens
		if err != nil {
			errc <- err
			got <- nil
			return
		}
		var all []byte
		var rerr error
		buf := make([]byte, 8192)
		for {
			n, err := unix.Read(fd, buf)
			if err != nil {
				rerr = err
				break
			}
			if n == 0 {
				break
			}
			all = append(all, buf[:n]...)
		}
		// Close before reporting: the no-reader open below must not race
		// with this reader still holding the FIFO.
		unix.Close(fd)
		errc <- rerr
		got <- all
	}()
	wfd, err := unix.Open(p, unix.O_WRONLY, 0)
	if err != nil {
		// Release the reader blocked in open: O_RDWR on a FIFO does
		// not block on Linux.
		if fd, err := unix.Open(p, unix.O_RDWR|unix.O_NONBLOCK, 0); err == nil {
			unix.Close(fd)
		}
	}
	s.Must("open fifo for writing", err)
	for off := 0; off < len(msg); {
		n, err := unix.Write(wfd, msg[off:])
		if err != nil {
			unix.Close(wfd)
			s.Fatalf("write to fifo at %d: %v", off, err)
		}
		off += n
	}
	unix.Close(wfd)
	rerr := <-errc
	b := <-got
	s.Err("fifo reader", rerr)
	s.Checkf(bytes.Equal(b, msg), "fifo carried %d bytes that differ from the %d written (first difference at %d)", len(b), len(msg), firstDiff(b, msg))
	s.Lstat("fifo size stays 0", "fifo")
	// Non-blocking open for writing with no reader: ENXIO.
	if fd, err := unix.Open(p, unix.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
		unix.Close(fd)
		s.Err("nonblocking write open without reader", nil)
	} else {
		s.Err("nonblocking write open without reader", err)
	}
	s.Err("mknod regular", unix.Mknod(s.P("reg"), unix.S_IFREG|0o600, 0))
	s.Lstat("stat mknod regular", "reg")
	s.Err("mknod char dev", unix.Mknod(s.P("null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	s.Lstat("stat char dev", "null")
	s.Err("mknod socket", unix.Mknod(s.P("sock"), unix.S_IFSOCK|0o600, 0))
	s.Lstat("stat socket", "sock")
}

func tmpfileCase(s *Side) {
	fd, err := unix.Open(s.Root, unix.O_TMPFILE|unix.O_RDWR, 0o640)
	s.Must("open O_TMPFILE", err)
	defer unix.Close(fd)
	st := s.Fstat("fstat tmpfile", fd)
	s.Checkf(st != nil && st.Nlink == 0, "an O_TMPFILE file has nlink %v, want 0", st)
	data := pattern(8, 50000)
	n, err := unix.Write(fd, data)
	s.Err("write tmpfile", err)
	s.Rec("write n", "%d", n)
	names, _ := readAllNames(mustOpenDir(s), 4096)
	s.Rec("dir is empty", "%v", names)
	s.Err("linkat from /proc/self/fd", unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", fd), unix.AT_FDCWD, s.P("linked"), unix.AT_SYMLINK_FOLLOW))
	s.Lstat("stat linked", "linked")
	b := s.Content("content linked", "linked")
	s.Checkf(bytes.Equal(b, data), "the linked O_TMPFILE file reads %d bytes that differ from the %d written", len(b), len(data))
	s.Fstat("fstat after link", fd)
	// O_EXCL: may never be linked.
	xfd, err := unix.Open(s.Root, unix.O_TMPFILE|unix.O_RDWR|unix.O_EXCL, 0o600)
	s.Must("open O_TMPFILE|O_EXCL", err)
	s.Err("linkat O_EXCL tmpfile", unix.Linkat(unix.AT_FDCWD, fmt.Sprintf("/proc/self/fd/%d", xfd), unix.AT_FDCWD, s.P("linked2"), unix.AT_SYMLINK_FOLLOW))
	unix.Close(xfd)
	_, err = unix.Open(s.Root, unix.O_TMPFILE|unix.O_RDONLY, 0o600)
	s.Err("O_TMPFILE read-only", err)
	_, err = unix.Open(s.P("linked"), unix.O_TMPFILE|unix.O_RDWR, 0o600)
	s.Err("O_TMPFILE on a file", err)
}

// mustOpenDir opens s.Root; the fd is closed when the test ends.
func mustOpenDir(s *Side) int {
	fd, err := unix.Open(s.Root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		s.Fatalf("open %s: %v", s.Root, err)
	}
	s.t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func init() {
	register("statfs", func(t *testing.T, env Env) { twin(t, env, statfsCase) })
}

// statfsCase: the block size and name length of the backing filesystem
// come through; counts change under other writers, so only their sanity is
// checked.
func statfsCase(s *Side) {
	var st unix.Statfs_t
	err := unix.Statfs(s.Root, &st)
	s.Err("statfs", err)
	s.Rec("statfs", "namelen=%d", st.Namelen)
	s.Checkf(err == nil && st.Blocks > 0 && st.Bfree <= st.Blocks && st.Bavail <= st.Bfree && st.Bsize > 0 && st.Files >= st.Ffree,
		"statfs: blocks=%d bfree=%d bavail=%d bsize=%d files=%d ffree=%d (%v)", st.Blocks, st.Bfree, st.Bavail, st.Bsize, st.Files, st.Ffree, err)
	fd, _ := unix.Open(s.Root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	var fst unix.Statfs_t
	s.Err("fstatfs", unix.Fstatfs(fd, &fst))
	unix.Close(fd)
	s.Err("statfs missing", unix.Statfs(s.P("missing"), &st))
}
