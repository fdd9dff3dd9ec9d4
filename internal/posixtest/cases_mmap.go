package posixtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/fastfsd/fastfsd/internal/testutil"
	"golang.org/x/sys/unix"
)

func init() {
	register("mmap", func(t *testing.T, env Env) { twin(t, env, mmapCase) })
	register("exec_binary", func(t *testing.T, env Env) {
		testutil.RequireCommand(t, "busybox")
		twin(t, env, execCase)
	})
	register("concurrent_namespace", func(t *testing.T, env Env) { twin(t, env, concurrentCase) })
}

func mmapCase(s *Side) {
	const size = 3*4096 + 100
	fd, err := unix.Open(s.P("f"), unix.O_CREAT|unix.O_RDWR, 0o644)
	s.Must("create", err)
	defer unix.Close(fd)
	s.Must("ftruncate", unix.Ftruncate(fd, size))
	m, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	s.Err("mmap shared rw", err)
	want := pattern(12, size)
	if err == nil {
		copy(m, want)
		s.Err("msync", unix.Msync(m, unix.MS_SYNC))
		s.Err("munmap", unix.Munmap(m))
		got := s.Content("content after mmap write", "f")
		s.Checkf(bytes.Equal(got, want), "a MAP_SHARED write then msync reads back wrong through read(2) (first difference at %d)", firstDiff(got, want))
	}
	// A write(2) is seen through a mapping made before it.
	m, err = unix.Mmap(fd, 0, size, unix.PROT_READ, unix.MAP_SHARED)
	s.Err("mmap shared ro", err)
	if err == nil {
		unix.Pwrite(fd, []byte("NEWDATA"), 4096)
		s.Rec("mapping sees pwrite", "%q", m[4096:4103])
		unix.Munmap(m)
	}
	m, err = unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	s.Err("mmap private", err)
	if err == nil {
		m[0] = 'P'
		unix.Munmap(m)
		b := make([]byte, 1)
		unix.Pread(fd, b, 0)
		s.Rec("private write stays private", "%v", b[0] == want[0])
	}
}

// execCase runs a static binary copied into the directory (the kernel's
// loader maps it privately).
func execCase(s *Side) {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		s.Fatalf("busybox: %v", err)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		s.Fatalf("read %s: %v", bb, err)
	}
	s.Err("copy busybox", os.WriteFile(s.P("bb"), data, 0o755))
	out, err := exec.Command(s.P("bb"), "echo", "ran from the door").CombinedOutput()
	s.Err("exec", err)
	s.Rec("exec output", "%q", out)

}

// concurrentCase: goroutines create, write, rename, link and unlink files
// in one directory at once; the result must be exactly what each did.
func concurrentCase(s *Side) {
	const workers, files = 4, 150
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < files; i++ {
				name := s.P(fmt.Sprintf("w%d-%03d", w, i))
				if err := os.WriteFile(name+".tmp", pattern(byte(w*files+i), 100+i*37), 0o644); err != nil {
					errs[w] = fmt.Errorf("write %s.tmp: %w", name, err)
					return
				}
				if err := os.Rename(name+".tmp", name); err != nil {
					errs[w] = fmt.Errorf("rename %s: %w", name, err)
					return
				}
				if i%3 == 0 {
					if err := os.Link(name, name+".link"); err != nil {
						errs[w] = fmt.Errorf("link %s: %w", name, err)
						return
					}
				}
				if i%5 == 0 {
					if err := os.Remove(name); err != nil {
						errs[w] = fmt.Errorf("unlink %s: %w", name, err)
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	for w, err := range errs {
		s.Err(fmt.Sprintf("worker %d", w), err)
		s.Checkf(err == nil, "worker %d: %v", w, err)
	}
	names, err := readAllNames(mustOpenDir(s), 8192)
	s.Err("readdir", err)
	s.Rec("entries", "%d", len(names))
	bad := 0
	for w := 0; w < workers; w++ {
		for i := 0; i < files; i++ {
			name := fmt.Sprintf("w%d-%03d", w, i)
			want := pattern(byte(w*files+i), 100+i*37)
			for _, n := range []string{name, name + ".link"} {
				b, err := os.ReadFile(s.P(n))
				exists := !(i%5 == 0 && n == name) && !(i%3 != 0 && n != name)
				if exists != (err == nil) || (err == nil && !bytes.Equal(b, want)) {
					if bad++; bad <= 5 {
						s.Checkf(false, "%s: exists=%v (err %v), content ok=%v; want exists=%v with its data", n, err == nil, err, bytes.Equal(b, want), exists)
					}
				}
			}
		}
	}
	s.Rec("bad entries", "%d", bad)
}
