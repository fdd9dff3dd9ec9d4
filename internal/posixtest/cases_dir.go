package posixtest

import (
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"testing"

	"golang.org/x/sys/unix"
)

func init() {
	register("dir_mkdir_rmdir", func(t *testing.T, env Env) { twin(t, env, dirMkdirRmdir) })
	register("dir_readdir_10000_seekdir", func(t *testing.T, env Env) {
		env.need(t, CapBigDir)
		twin(t, env, dirBig)
	})
}

func dirMkdirRmdir(s *Side) {
	s.Must("mkdir", unix.Mkdir(s.P("d"), 0o777))
	s.Lstat("stat d", "d")
	s.Err("mkdir existing", unix.Mkdir(s.P("d"), 0o755))
	s.Err("mkdir in missing", unix.Mkdir(s.P("nope", "d"), 0o755))
	os.WriteFile(s.P("f"), nil, 0o644)
	s.Err("mkdir under file", unix.Mkdir(s.P("f", "d"), 0o755))
	s.Err("mkdir over file", unix.Mkdir(s.P("f"), 0o755))
	s.Must("mkdir 0700", unix.Mkdir(s.P("d", "a"), 0o700))
	s.Must("mkdir sticky setgid", unix.Mkdir(s.P("d", "b"), 0o3777))
	s.Lstat("stat d/a", "d/a")
	s.Lstat("stat d/b", "d/b")
	s.Lstat("stat d (nlink counts subdirs)", "d")
	os.WriteFile(s.P("d", "a", "x"), nil, 0o644)
	s.Err("rmdir nonempty", unix.Rmdir(s.P("d", "a")))
	s.Err("rmdir file", unix.Rmdir(s.P("f")))
	s.Err("rmdir missing", unix.Rmdir(s.P("missing")))
	s.Err("rmdir dot", unix.Rmdir(s.P("d", "b", ".")))
	s.Err("unlink dir", unix.Unlink(s.P("d", "b")))
	s.Err("unlink missing", unix.Unlink(s.P("missing")))
	s.Err("unlink under file", unix.Unlink(s.P("f", "x")))
	s.Err("rmdir empty", unix.Rmdir(s.P("d", "b")))
	s.Lstat("stat removed", "d/b")
	s.Lstat("stat d after rmdir", "d")
	// A removed directory that is still open lists nothing and takes no
	// new entries.
	unix.Mkdir(s.P("gone"), 0o755)
	fd, err := unix.Open(s.P("gone"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	s.Must("open dir", err)
	s.Err("rmdir open dir", unix.Rmdir(s.P("gone")))
	names, err := readAllNames(fd, 4096)
	s.Err("readdir of removed dir", err)
	s.Rec("names of removed dir", "%v", names)
	s.Err("create in removed dir", createAt(fd, "x"))
	unix.Close(fd)
	// Names: long, odd bytes, too long.
	long := make([]byte, 255)
	for i := range long {
		long[i] = 'a' + byte(i%26)
	}
	s.Err("create 255-byte name", os.WriteFile(s.P(string(long)), nil, 0o644))
	s.Err("create 256-byte name", os.WriteFile(s.P(string(long)+"z"), nil, 0o644))
	s.Err("create odd bytes", os.WriteFile(s.P("sp ace\ttab\x01\xffé"), []byte("x"), 0o644))
	fd, _ = unix.Open(s.Root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	names, err = readAllNames(fd, 4096)
	unix.Close(fd)
	s.Err("readdir root", err)
	sort.Strings(names)
	s.Rec("root names", "%q", names)
}

func createAt(dirfd int, name string) error {
	fd, err := unix.Openat(dirfd, name, unix.O_CREAT|unix.O_WRONLY, 0o644)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

// dirent is one linux_dirent64.
type dirent struct {
	ino  uint64
	off  int64
	typ  uint8
	name string
}

// parseDirents decodes a getdents64 buffer.
func parseDirents(b []byte) ([]dirent, error) {
	var out []dirent
	for len(b) > 0 {
		if len(b) < 19 {
			return out, fmt.Errorf("short dirent: %d bytes left", len(b))
		}
		reclen := int(binary.NativeEndian.Uint16(b[16:18]))
		if reclen < 19 || reclen > len(b) {
			return out, fmt.Errorf("bad reclen %d with %d bytes left", reclen, len(b))
		}
		name := b[19:reclen]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		out = append(out, dirent{
			ino:  binary.NativeEndian.Uint64(b[0:8]),
			off:  int64(binary.NativeEndian.Uint64(b[8:16])),
			typ:  b[18],
			name: string(name),
		})
		b = b[reclen:]
	}
	return out, nil
}

// readDirents reads from fd's current position to the end, in calls of
// bufSize bytes.
func readDirents(fd, bufSize int) ([]dirent, error) {
	buf := make([]byte, bufSize)
	var all []dirent
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return all, err
		}
		if n == 0 {
			return all, nil
		}
		ds, err := parseDirents(buf[:n])
		all = append(all, ds...)
		if err != nil {
			return all, err
		}
	}
}

// readAllNames lists fd from the start without "." and "..".
func readAllNames(fd, bufSize int) ([]string, error) {
	if _, err := unix.Seek(fd, 0, unix.SEEK_SET); err != nil {
		return nil, err
	}
	ds, err := readDirents(fd, bufSize)
	var names []string
	for _, d := range ds {
		if d.name != "." && d.name != ".." {
			names = append(names, d.name)
		}
	}
	return names, err
}

func dirBig(s *Side) {
	const n = 10000
	s.Must("mkdir", unix.Mkdir(s.P("big"), 0o755))
	dfd, err := unix.Open(s.P("big"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	s.Must("open dir", err)
	defer unix.Close(dfd)
	want := map[string]bool{".": true, "..": true}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("entry-%05d-%s", i, "abcdefghijklmnopqrstuvwxyz"[:i%27])
		want[name] = true
		var err error
		if i%10 == 0 {
			err = unix.Mkdirat(dfd, name, 0o755)
		} else {
			err = createAt(dfd, name)
		}
		if err != nil {
			s.Fatalf("create entry %d of %d: %v", i, n, err)
		}
	}
	s.Lstat("stat big", "big")

	// Pass 1: read everything in small getdents calls, saving the offset
	// (telldir) after every call.
	buf := make([]byte, 4096)
	var seq []dirent
	type mark struct {
		pos int   // entries seen before this offset
		off int64 // lseek(fd, 0, SEEK_CUR) there
	}
	marks := []mark{{0, 0}}
	for {
		nb, err := unix.Getdents(dfd, buf)
		if err != nil {
			s.Fatalf("getdents after %d entries: %v", len(seq), err)
		}
		if nb == 0 {
			break
		}
		ds, err := parseDirents(buf[:nb])
		if err != nil {
			s.Fatalf("parse getdents after %d entries: %v", len(seq), err)
		}
		seq = append(seq, ds...)
		off, err := unix.Seek(dfd, 0, unix.SEEK_CUR)
		if err != nil {
			s.Fatalf("telldir after %d entries: %v", len(seq), err)
		}
		marks = append(marks, mark{len(seq), off})
		if len(seq) > 3*n {
			s.Fatalf("readdir does not end: %d entries read from a %d-entry directory", len(seq), n+2)
		}
	}
	seen := map[string]int{}
	for _, d := range seq {
		seen[d.name]++
	}
	var dup, missing, extra []string
	for name, c := range seen {
		if c > 1 {
			dup = append(dup, fmt.Sprintf("%s×%d", name, c))
		}
		if !want[name] {
			extra = append(extra, name)
		}
	}
	for name := range want {
		if seen[name] == 0 {
			missing = append(missing, name)
		}
	}
	s.Rec("pass 1", "entries=%d dup=%d missing=%d extra=%d", len(seq), len(dup), len(missing), len(extra))
	s.Checkf(len(dup) == 0 && len(missing) == 0 && len(extra) == 0,
		"readdir of %d entries: %d duplicated (%.5v), %d missing (%.5v), %d unknown (%.5v)",
		n+2, len(dup), dup, len(missing), missing, len(extra), extra)

	// Each d_off is the position after its entry: seekdir to it and the
	// next entry comes next.
	for _, i := range []int{0, 1, 2, 17, 500, n / 2, n - 1, n, len(seq) - 2} {
		if i < 0 || i >= len(seq)-1 {
			continue
		}
		if _, err := unix.Seek(dfd, seq[i].off, unix.SEEK_SET); err != nil {
			s.Fatalf("seekdir to d_off of entry %d: %v", i, err)
		}
		nb, err := unix.Getdents(dfd, buf)
		ds, _ := parseDirents(buf[:max(nb, 0)])
		if !s.Checkf(err == nil && len(ds) > 0 && ds[0].name == seq[i+1].name,
			"seekdir(d_off of entry %d %q) then getdents: got %v (err %v), want entry %d %q first", i, seq[i].name, firstName(ds), err, i+1, seq[i+1].name) {
			break
		}
	}
	// Resume from every fifth saved telldir: the rest must be exactly
	// what pass 1 saw after that point.
	bad := 0
	for k := 0; k < len(marks); k += 5 {
		m := marks[k]
		if _, err := unix.Seek(dfd, m.off, unix.SEEK_SET); err != nil {
			s.Fatalf("seekdir to saved offset %d: %v", m.off, err)
		}
		rest, err := readDirents(dfd, 4096)
		if err != nil {
			s.Fatalf("read after seekdir to saved offset %d: %v", m.off, err)
		}
		if !sameNames(rest, seq[m.pos:]) {
			bad++
			s.Checkf(false, "after seekdir to the offset saved after %d entries: read %d entries, want the %d that followed in pass 1 (first %v, want %v)",
				m.pos, len(rest), len(seq)-m.pos, firstName(rest), firstName(seq[m.pos:]))
			if bad > 3 {
				break
			}
		}
	}
	s.Rec("resume", "bad=%d", bad)
	// Rewind and read again in one big buffer: same set.
	names, err := readAllNames(dfd, 1<<16)
	s.Err("rewinddir", err)
	s.Rec("pass 2 count", "%d", len(names))
}

func firstName(ds []dirent) string {
	if len(ds) == 0 {
		return "<none>"
	}
	return ds[0].name
}

func sameNames(a, b []dirent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].name != b[i].name {
			return false
		}
	}
	return true
}

func init() {
	register("dir_readdir_while_changing", func(t *testing.T, env Env) { twin(t, env, dirWhileChanging) })
}

// dirWhileChanging: POSIX leaves it open whether entries added or removed
// during a listing are returned, but every entry neither added nor removed
// must be returned exactly once. rm -rf depends on it: it unlinks what it
// has read and reads on.
func dirWhileChanging(s *Side) {
	const n = 2000
	s.Must("mkdir", unix.Mkdir(s.P("d"), 0o755))
	for i := 0; i < n; i++ {
		if err := os.WriteFile(s.P("d", fmt.Sprintf("f%04d", i)), nil, 0o644); err != nil {
			s.Fatalf("create %d: %v", i, err)
		}
	}
	fd, err := unix.Open(s.P("d"), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	s.Must("open", err)
	defer unix.Close(fd)
	// Pass 1: unlink every entry right after it is read (rm -rf).
	seen := map[string]int{}
	buf := make([]byte, 2048)
	for {
		nb, err := unix.Getdents(fd, buf)
		if err != nil {
			s.Fatalf("getdents after %d entries: %v", len(seen), err)
		}
		if nb == 0 {
			break
		}
		ds, _ := parseDirents(buf[:nb])
		for _, d := range ds {
			seen[d.name]++
			if d.name != "." && d.name != ".." {
				if err := unix.Unlinkat(fd, d.name, 0); err != nil {
					s.Checkf(false, "unlink %s just read from the directory: %v", d.name, err)
				}
			}
		}
		if len(seen) > 3*n {
			s.Fatalf("the listing does not end")
		}
	}
	dup := 0
	for _, c := range seen {
		if c > 1 {
			dup++
		}
	}
	left, _ := readAllNames(fd, 8192)
	s.Rec("rm -rf pass", "distinct=%d dup=%d left=%d", len(seen), dup, len(left))
	s.Checkf(dup == 0 && len(seen) == n+2 && len(left) == 0,
		"unlinking entries while listing: %d distinct names seen of %d, %d seen twice, %d left after the pass (%.5v)", len(seen), n+2, dup, len(left), left)

	// Pass 2: create while listing; the old entries come exactly once.
	for i := 0; i < n; i++ {
		os.WriteFile(s.P("d", fmt.Sprintf("old%04d", i)), nil, 0o644)
	}
	unix.Seek(fd, 0, unix.SEEK_SET)
	seen = map[string]int{}
	created := 0
	for {
		nb, err := unix.Getdents(fd, buf)
		if err != nil || nb == 0 {
			break
		}
		ds, _ := parseDirents(buf[:nb])
		for _, d := range ds {
			seen[d.name]++
		}
		for k := 0; k < 5; k++ {
			os.WriteFile(s.P("d", fmt.Sprintf("new%05d", created)), nil, 0o644)
			created++
		}
		if len(seen) > 10*n {
			s.Fatalf("the listing does not end")
		}
	}
	bad := 0
	for i := 0; i < n; i++ {
		if seen[fmt.Sprintf("old%04d", i)] != 1 {
			bad++
		}
	}
	s.Rec("create-while-listing pass", "old entries not seen exactly once: %d", bad)
	s.Checkf(bad == 0, "creating while listing: %d of %d pre-existing entries were not returned exactly once", bad, n)
}
