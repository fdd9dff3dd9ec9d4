package posixtest

import (
	"bytes"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func init() {
	register("fallocate", func(t *testing.T, env Env) {
		env.need(t, CapFallocate)
		twin(t, env, fallocateCase)
	})
	register("seek_data_hole", func(t *testing.T, env Env) {
		env.need(t, CapSeekHole)
		twin(t, env, seekHoleCase)
	})
	register("copy_file_range", func(t *testing.T, env Env) {
		env.need(t, CapCopyRange)
		twin(t, env, copyRangeCase)
	})
}

func fallocateCase(s *Side) {
	fd, err := unix.Open(s.P("f"), unix.O_CREAT|unix.O_RDWR, 0o644)
	s.Must("create", err)
	defer unix.Close(fd)
	s.Err("fallocate 0..1MiB", unix.Fallocate(fd, 0, 0, 1<<20))
	s.Fstat("after fallocate", fd)
	s.Err("fallocate KEEP_SIZE beyond EOF", unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, 1<<20, 1<<20))
	st := s.Fstat("after KEEP_SIZE", fd)
	s.Checkf(st != nil && st.Size == 1<<20, "FALLOC_FL_KEEP_SIZE changed the size to %v", st)
	data := pattern(11, 1<<20)
	unix.Pwrite(fd, data, 0)
	s.Err("punch hole 64KiB..192KiB", unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 64<<10, 128<<10))
	st = s.Fstat("after punch", fd)
	s.Checkf(st != nil && st.Size == 1<<20, "punch hole with KEEP_SIZE changed the size: %v", st)
	copy(data[64<<10:192<<10], make([]byte, 128<<10))
	back := make([]byte, 1<<20)
	n, err := unix.Pread(fd, back, 0)
	s.Err("read back", err)
	s.Checkf(n == len(data) && bytes.Equal(back, data), "after punching [64KiB,192KiB) the file reads wrong (first difference at %d)", firstDiff(back[:n], data))
	s.Err("punch hole without KEEP_SIZE", unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE, 0, 4096))
	s.Err("zero range", unix.Fallocate(fd, unix.FALLOC_FL_ZERO_RANGE, 4096, 4096))
	s.Err("fallocate negative length", unix.Fallocate(fd, 0, 0, -1))
	s.Err("fallocate extend", unix.Fallocate(fd, 0, 2<<20, 4096))
	s.Fstat("after extend", fd)
	b := s.Content("content", "f")
	s.Checkf(len(b) == 2<<20+4096 && bytes.Count(b[1<<20:], []byte{0}) == 1<<20+4096, "fallocate past EOF must read as zeros up to the new size %d (got len %d)", 2<<20+4096, len(b))
	ro, err := unix.Open(s.P("f"), unix.O_RDONLY, 0)
	s.Must("open ro", err)
	s.Err("fallocate on O_RDONLY", unix.Fallocate(ro, 0, 0, 4096))
	unix.Close(ro)
}

func seekHoleCase(s *Side) {
	fd, err := unix.Open(s.P("f"), unix.O_CREAT|unix.O_RDWR, 0o644)
	s.Must("create", err)
	defer unix.Close(fd)
	// data [0,64K), hole, data [1M,1M+64K), hole to 3M.
	unix.Pwrite(fd, pattern(1, 64<<10), 0)
	unix.Pwrite(fd, pattern(2, 64<<10), 1<<20)
	unix.Ftruncate(fd, 3<<20)
	unix.Fsync(fd)
	for _, o := range []int64{0, 100, 64 << 10, 500 << 10, 1 << 20, 1<<20 + 64<<10, 2 << 20, 3<<20 - 1, 3 << 20, 4 << 20} {
		d, err := unix.Seek(fd, o, unix.SEEK_DATA)
		s.Err("SEEK_DATA", err)
		s.Rec("SEEK_DATA", "%d -> %d", o, d)
		h, err := unix.Seek(fd, o, unix.SEEK_HOLE)
		s.Err("SEEK_HOLE", err)
		s.Rec("SEEK_HOLE", "%d -> %d", o, h)
	}
	// Facts any filesystem with hole support keeps: data at 0, and the
	// region at 1MiB is data; a hole is reported by EOF at the latest.
	d, _ := unix.Seek(fd, 500<<10, unix.SEEK_DATA)
	s.Checkf(d > 500<<10 && d <= 1<<20, "SEEK_DATA from 500KiB: %d, want the data at 1MiB (or earlier if the hole is not tracked)", d)
	h, _ := unix.Seek(fd, 0, unix.SEEK_HOLE)
	s.Checkf(h >= 64<<10 && h <= 3<<20, "SEEK_HOLE from 0: %d, want between 64KiB and EOF", h)
}

func copyRangeCase(s *Side) {
	src := pattern(21, 3<<20+777)
	os.WriteFile(s.P("src"), src, 0o644)
	in, err := unix.Open(s.P("src"), unix.O_RDONLY, 0)
	s.Must("open src", err)
	defer unix.Close(in)
	out, err := unix.Open(s.P("dst"), unix.O_CREAT|unix.O_RDWR, 0o644)
	s.Must("open dst", err)
	defer unix.Close(out)
	// Whole file, looping on short copies.
	var total int
	for total < len(src) {
		n, err := unix.CopyFileRange(in, nil, out, nil, len(src)-total, 0)
		if err != nil {
			s.Err("copy_file_range", err)
			break
		}
		if n == 0 {
			break
		}
		total += n
	}
	s.Rec("copied", "%d", total)
	b := s.Content("dst content", "dst")
	s.Checkf(bytes.Equal(b, src), "copy_file_range: destination differs from source (len %d vs %d, first difference at %d)", len(b), len(src), firstDiff(b, src))
	// With explicit offsets: the fds' offsets do not move.
	roff, woff := int64(1000), int64(5<<20)
	n, err := unix.CopyFileRange(in, &roff, out, &woff, 100000, 0)
	s.Err("copy with offsets", err)
	s.Rec("copy with offsets", "n=%d roff=%d woff=%d", n, roff, woff)
	cur, _ := unix.Seek(in, 0, unix.SEEK_CUR)
	s.Rec("src offset", "%d", cur)
	s.Fstat("dst after offset copy", out)
	got := make([]byte, 100000)
	unix.Pread(out, got, 5<<20)
	s.Checkf(bytes.Equal(got[:max(n, 0)], src[1000:1000+max(n, 0)]), "copy_file_range with offsets put the wrong bytes at 5MiB")
	// Past the end of the source: 0 bytes.
	roff = int64(len(src) + 10)
	n, err = unix.CopyFileRange(in, &roff, out, nil, 100, 0)
	s.Err("copy past src EOF", err)
	s.Rec("copy past src EOF n", "%d", n)
	// Errors.
	_, err = unix.CopyFileRange(in, nil, in, nil, 10, 0)
	s.Err("copy to O_RDONLY", err)
	_, err = unix.CopyFileRange(out, nil, in, nil, 10, 0)
	s.Err("copy from dst to ro src", err)
	_, err = unix.CopyFileRange(in, nil, out, nil, 10, 1)
	s.Err("copy with flags", err)
	ro, wo := int64(0), int64(100)
	_, err = unix.CopyFileRange(out, &ro, out, &wo, 1000, 0)
	s.Err("copy overlapping in one file", err)
	dfd, _ := unix.Open(s.Root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	_, err = unix.CopyFileRange(dfd, nil, out, nil, 10, 0)
	s.Err("copy from a directory", err)
	unix.Close(dfd)
}
