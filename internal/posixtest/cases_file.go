package posixtest

import (
	"bytes"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func init() {
	register("file_open_flags", func(t *testing.T, env Env) { twin(t, env, fileOpenFlags) })
	register("file_read_write", func(t *testing.T, env Env) { twin(t, env, fileReadWrite) })
	register("file_truncate", func(t *testing.T, env Env) { twin(t, env, fileTruncate) })
	register("file_unlink_open", func(t *testing.T, env Env) { twin(t, env, fileUnlinkOpen) })
}

// pattern is n deterministic, position-dependent bytes seeded by seed.
func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

func fileOpenFlags(s *Side) {
	f := s.P("f")
	fd, err := unix.Open(f, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o640)
	s.Must("create O_EXCL", err)
	s.Fstat("fstat new", fd)
	n, err := unix.Write(fd, []byte("hello world"))
	s.Err("write", err)
	s.Rec("write n", "%d", n)
	unix.Close(fd)
	s.Lstat("stat after write", "f")

	_, err = unix.Open(f, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o600)
	s.Err("create O_EXCL existing", err)
	s.Checkf(err == unix.EEXIST, "O_CREAT|O_EXCL on an existing file: got %v, want EEXIST", err)

	// O_CREAT without O_EXCL on an existing file keeps mode and data.
	fd, err = unix.Open(f, unix.O_CREAT|unix.O_RDWR, 0o600)
	s.Must("open O_CREAT existing", err)
	s.Fstat("fstat O_CREAT existing", fd)
	unix.Close(fd)

	_, err = unix.Open(s.P("missing"), unix.O_RDONLY, 0)
	s.Err("open missing", err)
	_, err = unix.Open(s.P("missing", "x"), unix.O_CREAT|unix.O_WRONLY, 0o644)
	s.Err("create in missing dir", err)
	_, err = unix.Open(s.P("f", "x"), unix.O_CREAT|unix.O_WRONLY, 0o644)
	s.Err("create under a file", err)
	_, err = unix.Open(f, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	s.Err("O_DIRECTORY on a file", err)
	_, err = unix.Open(s.Root, unix.O_WRONLY, 0)
	s.Err("open dir O_WRONLY", err)
	_, err = unix.Open(s.Root, unix.O_RDWR, 0)
	s.Err("open dir O_RDWR", err)
	fd, err = unix.Open(s.Root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if s.Err("open dir O_DIRECTORY", err) {
		unix.Close(fd)
	}

	// O_TRUNC empties, O_APPEND appends wherever the offset is.
	fd, err = unix.Open(f, unix.O_WRONLY|unix.O_TRUNC, 0)
	s.Must("open O_TRUNC", err)
	s.Fstat("fstat after O_TRUNC", fd)
	unix.Close(fd)
	s.Content("content after O_TRUNC", "f")

	os.WriteFile(f, []byte("0123456789"), 0)
	fd, err = unix.Open(f, unix.O_WRONLY|unix.O_APPEND, 0)
	s.Must("open O_APPEND", err)
	off, err := unix.Seek(fd, 0, unix.SEEK_SET)
	s.Err("seek 0", err)
	s.Rec("seek 0 off", "%d", off)
	_, err = unix.Write(fd, []byte("abc"))
	s.Err("append write", err)
	off, _ = unix.Seek(fd, 0, unix.SEEK_CUR)
	s.Rec("offset after append", "%d", off)
	s.Checkf(off == 13, "offset after O_APPEND write of 3 to a 10-byte file: %d, want 13", off)
	// pwrite on O_APPEND appends on Linux, whatever the offset.
	_, err = unix.Pwrite(fd, []byte("XY"), 2)
	s.Err("pwrite O_APPEND", err)
	unix.Close(fd)
	got := s.Content("content after appends", "f")
	s.Checkf(string(got) == "0123456789abcXY", "content after O_APPEND writes: %q", got)

	// Wrong access mode.
	fd, err = unix.Open(f, unix.O_RDONLY, 0)
	s.Must("open O_RDONLY", err)
	_, err = unix.Write(fd, []byte("x"))
	s.Err("write on O_RDONLY", err)
	unix.Close(fd)
	fd, err = unix.Open(f, unix.O_WRONLY, 0)
	s.Must("open O_WRONLY", err)
	_, err = unix.Read(fd, make([]byte, 4))
	s.Err("read on O_WRONLY", err)
	unix.Close(fd)

	// O_CREAT mode is filtered by the umask (the same on both sides) and
	// O_NOFOLLOW refuses a symlink.
	fd, err = unix.Open(s.P("g"), unix.O_CREAT|unix.O_WRONLY, 0o777)
	s.Must("create 0777", err)
	unix.Close(fd)
	s.Lstat("stat create 0777", "g")
	unix.Symlink("g", s.P("lg"))
	_, err = unix.Open(s.P("lg"), unix.O_RDONLY|unix.O_NOFOLLOW, 0)
	s.Err("O_NOFOLLOW on symlink", err)
	s.Checkf(err == unix.ELOOP, "O_NOFOLLOW on a symlink: %v, want ELOOP", err)
}

func fileReadWrite(s *Side) {
	const size = 1<<20 + 12345
	data := pattern(7, size)
	fd, err := unix.Open(s.P("f"), unix.O_CREAT|unix.O_RDWR, 0o644)
	s.Must("create", err)
	defer unix.Close(fd)
	// Sequential writes of odd sizes.
	for off, i := 0, 0; off < size; i++ {
		n := []int{1, 4095, 4097, 65536, 131072 + 3}[i%5]
		if off+n > size {
			n = size - off
		}
		w, err := unix.Write(fd, data[off:off+n])
		if err != nil || w != n {
			s.Fatalf("write %d bytes at %d: n=%d err=%v", n, off, w, err)
		}
		off += n
	}
	s.Fstat("fstat after writes", fd)
	// Read back whole through a fresh fd.
	back, err := os.ReadFile(s.P("f"))
	s.Err("read back", err)
	s.Checkf(bytes.Equal(back, data), "read back %d bytes differ from the %d written (first difference at %d)", len(back), len(data), firstDiff(back, data))
	// pread at assorted offsets and across EOF.
	for _, o := range []int64{0, 1, 4095, 4096, 65535, size - 10, size, size + 100} {
		buf := make([]byte, 8192)
		n, err := unix.Pread(fd, buf, o)
		s.Err("pread", err)
		s.Rec("pread n", "off=%d n=%d", o, n)
		if n > 0 {
			s.Checkf(bytes.Equal(buf[:n], data[o:o+int64(n)]), "pread at %d returned wrong bytes", o)
		}
	}
	// pwrite in the middle, and past EOF (makes a hole that reads as zeros).
	patch := pattern(9, 10000)
	_, err = unix.Pwrite(fd, patch, 500000)
	s.Err("pwrite middle", err)
	copy(data[500000:], patch)
	_, err = unix.Pwrite(fd, []byte("tail"), size+1<<20)
	s.Err("pwrite past EOF", err)
	data = append(data, make([]byte, 1<<20)...)
	data = append(data, "tail"...)
	off, _ := unix.Seek(fd, 0, unix.SEEK_CUR)
	s.Rec("offset unchanged by pwrite", "%d", off)
	s.Fstat("fstat after pwrite", fd)
	back = s.Content("content after pwrite", "f")
	s.Checkf(bytes.Equal(back, data), "content after pwrite differs at %d (len %d, want %d)", firstDiff(back, data), len(back), len(data))
	if s.Backing != "" {
		onDisk, err := os.ReadFile(s.Backing + "/f")
		s.Checkf(err == nil && bytes.Equal(onDisk, data), "the backing file differs from what was written through the mount (err %v, first difference at %d)", err, firstDiff(onDisk, data))
	}
	// Seek semantics.
	for _, c := range []struct {
		off    int64
		whence int
	}{{10, unix.SEEK_SET}, {5, unix.SEEK_CUR}, {-4, unix.SEEK_END}, {-1, unix.SEEK_SET}} {
		o, err := unix.Seek(fd, c.off, c.whence)
		s.Err("lseek", err)
		s.Rec("lseek off", "%d %d -> %d", c.off, c.whence, o)
	}
	buf := make([]byte, 10)
	n, err := unix.Read(fd, buf)
	s.Err("read at end-4", err)
	s.Rec("read at end-4", "%q", buf[:n])
	// fsync and fdatasync succeed.
	s.Err("fsync", unix.Fsync(fd))
	s.Err("fdatasync", unix.Fdatasync(fd))
}

func firstDiff(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}

func fileTruncate(s *Side) {
	os.WriteFile(s.P("f"), pattern(1, 100000), 0o644)
	s.Err("truncate shrink", unix.Truncate(s.P("f"), 4000))
	s.Lstat("stat shrink", "f")
	s.Err("truncate grow", unix.Truncate(s.P("f"), 300000))
	s.Lstat("stat grow", "f")
	b := s.Content("content grow", "f")
	s.Checkf(len(b) == 300000 && bytes.Equal(b[:4000], pattern(1, 100000)[:4000]) && bytes.Count(b[4000:], []byte{0}) == 296000,
		"truncate down then up must keep the first 4000 bytes and read zeros after")
	s.Err("truncate negative", unix.Truncate(s.P("f"), -1))
	s.Err("truncate missing", unix.Truncate(s.P("missing"), 0))
	s.Err("truncate dir", unix.Truncate(s.Root, 0))
	fd, err := unix.Open(s.P("f"), unix.O_RDWR, 0)
	s.Must("open", err)
	s.Err("ftruncate 10", unix.Ftruncate(fd, 10))
	s.Fstat("fstat ftruncate", fd)
	unix.Close(fd)
	fd, err = unix.Open(s.P("f"), unix.O_RDONLY, 0)
	s.Must("open ro", err)
	s.Err("ftruncate on O_RDONLY", unix.Ftruncate(fd, 0))
	unix.Close(fd)
	s.Content("content final", "f")
	// Truncate updates mtime: set an old one, truncate, compare.
	old := []unix.Timespec{{Sec: 1000000, Nsec: 0}, {Sec: 1000000, Nsec: 0}}
	unix.UtimesNanoAt(unix.AT_FDCWD, s.P("f"), old, 0)
	unix.Truncate(s.P("f"), 5)
	var st unix.Stat_t
	unix.Stat(s.P("f"), &st)
	s.Checkf(st.Mtim.Sec > 1000000, "truncate did not update mtime (still %d)", st.Mtim.Sec)
}

func fileUnlinkOpen(s *Side) {
	data := pattern(3, 70000)
	os.WriteFile(s.P("f"), data, 0o644)
	fd, err := unix.Open(s.P("f"), unix.O_RDWR, 0)
	s.Must("open", err)
	defer unix.Close(fd)
	s.Must("unlink", unix.Unlink(s.P("f")))
	s.Lstat("stat unlinked", "f")
	st := s.Fstat("fstat unlinked", fd)
	s.Checkf(st != nil && st.Nlink == 0, "fstat of an unlinked open file: nlink %v, want 0", st)
	buf := make([]byte, len(data)+10)
	n, err := unix.Pread(fd, buf, 0)
	s.Err("pread unlinked", err)
	s.Checkf(bytes.Equal(buf[:n], data), "reading an unlinked open file returned %d bytes that differ from the %d written", n, len(data))
	_, err = unix.Pwrite(fd, []byte("more"), int64(len(data)))
	s.Err("pwrite unlinked", err)
	s.Fstat("fstat after pwrite", fd)
	n, _ = unix.Pread(fd, buf, int64(len(data)))
	s.Rec("read back appended", "%q", buf[:n])
	// A new file of the same name is a different file.
	os.WriteFile(s.P("f"), []byte("new"), 0o644)
	s.Content("new file", "f")
	n, _ = unix.Pread(fd, buf[:4], 0)
	s.Checkf(bytes.Equal(buf[:n], data[:4]), "the open fd of the unlinked file now reads the new file's data")
}
