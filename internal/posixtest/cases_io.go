package posixtest

import (
	"bytes"
	"testing"

	"golang.org/x/sys/unix"
)

func init() {
	register("file_large_offsets", func(t *testing.T, env Env) { twin(t, env, largeOffsets) })
	register("file_o_direct", func(t *testing.T, env Env) { twin(t, env, oDirect) })
}

// largeOffsets: offsets past 4 GiB and far beyond, in sparse files.
func largeOffsets(s *Side) {
	fd, err := unix.Open(s.P("sparse"), unix.O_CREAT|unix.O_RDWR, 0o644)
	s.Must("create", err)
	defer unix.Close(fd)
	for _, off := range []int64{1<<32 - 3, 1<<32 + 5, 1 << 40} {
		msg := []byte("at-offset")
		n, err := unix.Pwrite(fd, msg, off)
		s.Err("pwrite", err)
		s.Rec("pwrite", "off=%d n=%d", off, n)
		buf := make([]byte, 16)
		n, err = unix.Pread(fd, buf, off)
		s.Err("pread", err)
		s.Checkf(err == nil && bytes.Equal(buf[:n], msg), "pread at %d: %q (%v), want %q", off, buf[:max(n, 0)], err, msg)
		s.Fstat("fstat", fd)
		end, err := unix.Seek(fd, 0, unix.SEEK_END)
		s.Err("seek end", err)
		s.Rec("seek end", "%d", end)
	}
	// Zeros in the middle of the hole.
	buf := make([]byte, 4096)
	n, err := unix.Pread(fd, buf, 1<<35)
	s.Err("pread hole", err)
	s.Checkf(n == 4096 && bytes.Count(buf, []byte{0}) == 4096, "a hole at 32 GiB does not read as 4096 zeros (n=%d)", n)
	s.Err("ftruncate 5GiB", unix.Ftruncate(fd, 5<<30))
	s.Fstat("after ftruncate 5GiB", fd)
	n, _ = unix.Pread(fd, buf[:16], 1<<32-3)
	s.Rec("kept below the cut", "%q", buf[:n])
	s.Err("pwrite past the max file size", errOnly(unix.Pwrite(fd, []byte("x"), 1<<62)))
}

func errOnly(_ int, err error) error { return err }

// oDirect: aligned O_DIRECT writes and reads (buffers from mmap, which
// are page-aligned).
func oDirect(s *Side) {
	fd, err := unix.Open(s.P("f"), unix.O_CREAT|unix.O_RDWR|unix.O_DIRECT, 0o644)
	s.Err("open O_DIRECT", err)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	const size = 1 << 20
	wbuf, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		s.Fatalf("mmap: %v", err)
	}
	defer unix.Munmap(wbuf)
	rbuf, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		s.Fatalf("mmap: %v", err)
	}
	defer unix.Munmap(rbuf)
	copy(wbuf, pattern(31, size))
	n, err := unix.Pwrite(fd, wbuf, 0)
	s.Err("pwrite 1MiB direct", err)
	s.Rec("pwrite n", "%d", n)
	n, err = unix.Pwrite(fd, wbuf[:4096], 3*size)
	s.Err("pwrite 4KiB direct at 3MiB", err)
	n, err = unix.Pread(fd, rbuf, 0)
	s.Err("pread 1MiB direct", err)
	s.Rec("pread n", "%d", n)
	s.Checkf(bytes.Equal(rbuf[:max(n, 0)], wbuf[:max(n, 0)]) && n == size, "O_DIRECT read back %d bytes that differ from what was written", n)
	n, err = unix.Pread(fd, rbuf[:8192], 3*size)
	s.Err("pread across EOF direct", err)
	s.Rec("pread across EOF n", "%d", n)
	s.Fstat("fstat", fd)
	// Buffered readers see the direct writes.
	b := s.Content("buffered read", "f")
	s.Checkf(len(b) == 3*size+4096 && bytes.Equal(b[:size], wbuf), "a buffered read after O_DIRECT writes differs")
}
