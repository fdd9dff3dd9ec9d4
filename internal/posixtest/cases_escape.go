package posixtest

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

func init() {
	register("escape_symlinks", escapeSymlinks)
	register("escape_race", func(t *testing.T, env Env) {
		env.need(t, CapEscape)
		escapeRace(t, env)
	})
}

// escapeSymlinks: symlinks that point out of the export are stored and
// reported as symlinks, never resolved by the server.
func escapeSymlinks(t *testing.T, env Env) {
	twin(t, env, func(s *Side) {
		targets := [][2]string{{"root", "/"}, {"passwd", "/etc/passwd"}, {"up", "../../.."}, {"upfile", "../../../../../../../etc/passwd"}, {"proc", "/proc/self/root"}}
		for _, nt := range targets {
			s.Must("symlink "+nt[0], unix.Symlink(nt[1], s.P(nt[0])))
		}
		buf := make([]byte, 256)
		for _, nt := range targets {
			name := nt[0]
			s.Lstat("lstat "+name, name)
			n, err := unix.Readlink(s.P(name), buf)
			s.Err("readlink "+name, err)
			s.Checkf(err == nil && string(buf[:n]) == nt[1], "readlink %s: %q (%v), want %q", name, buf[:max(n, 0)], err, nt[1])
			_, err = unix.Open(s.P(name), unix.O_RDONLY|unix.O_NOFOLLOW, 0)
			s.Err("open O_NOFOLLOW "+name, err)
			_, err = unix.Openat2(unix.AT_FDCWD, s.P(name, "etc", "passwd"), &unix.OpenHow{Flags: unix.O_RDONLY, Resolve: unix.RESOLVE_NO_SYMLINKS})
			s.Err("openat2 NO_SYMLINKS through "+name, err)
			_, err = unix.Openat2(mustOpenDir(s), name, &unix.OpenHow{Flags: unix.O_RDONLY, Resolve: unix.RESOLVE_BENEATH})
			s.Err("openat2 BENEATH "+name, err)
			n, err = unix.Lgetxattr(s.P(name), "user.x", buf)
			s.Err("lgetxattr "+name, err)
		}
		// Symlinks planted on the backing side look the same.
		if s.Backing != "" {
			os.Symlink("/etc", filepath.Join(s.Backing, "planted"))
			s.Lstat("lstat planted", "planted")
			_, err := unix.Openat2(unix.AT_FDCWD, s.P("planted", "passwd"), &unix.OpenHow{Flags: unix.O_RDONLY, Resolve: unix.RESOLVE_NO_SYMLINKS})
			s.Err("openat2 NO_SYMLINKS through planted", err)
		}
	})
}

// snapshot describes every entry under dir: type, mode, size, mtime,
// content digest and user xattrs.
func snapshot(dir string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		v := fmt.Sprintf("%s mtime=%d.%d ctime=%d.%d", statString(&st), st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += fmt.Sprintf(" sha=%x", sha256.Sum256(b))
		}
		buf := make([]byte, 4096)
		if n, err := unix.Llistxattr(p, buf); err == nil {
			v += fmt.Sprintf(" xattrs=%q", listNames(buf[:n]))
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = v
		return nil
	})
	return out, err
}

// escapeRace swaps, on the backing side, a directory with a symlink to a
// directory outside the export (and a file with a symlink to a file
// outside) as fast as it can, while lookers open, stat, list, create and
// write through the mount without ever following a symlink on the client
// side (openat2 RESOLVE_NO_SYMLINKS, O_NOFOLLOW, AT_SYMLINK_NOFOLLOW). Any
// outside content or metadata that comes back, and any change outside,
// is an escape by the server.
func escapeRace(t *testing.T, env Env) {
	if env.Backing == "" || env.Outside == "" {
		t.Skip("the escape race needs Env.Backing and Env.Outside (the backing side is not reachable from this door's test)")
	}
	mnt := newSide(t, "mount", env.Dir, env.Backing)
	if mnt.Backing == "" {
		t.Fatal("no backing directory")
	}
	out, err := os.MkdirTemp(env.Outside, "escape-outside-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(out) })
	const secretSize = 4242
	secret := bytes.Repeat([]byte("OUTSIDE-SECRET!"), secretSize/15+1)[:secretSize]
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(out, "secret"), secret, 0o644))
	must(os.WriteFile(filepath.Join(out, "only-outside"), secret, 0o644))
	must(unix.Setxattr(filepath.Join(out, "secret"), "user.outside", []byte("outside-marker"), 0))
	before, err := snapshot(out)
	must(err)

	B := mnt.Backing
	must(os.Mkdir(filepath.Join(B, "d"), 0o777))
	must(os.WriteFile(filepath.Join(B, "d", "secret"), []byte("INSIDE"), 0o666))
	must(os.Symlink(out, filepath.Join(B, "dl")))
	must(os.Symlink(filepath.Join(out, "secret"), filepath.Join(B, "d", "sl")))
	// Relative escape too: from B/d2, enough ".." to reach "/", then out.
	rel := strings.Repeat("../", strings.Count(filepath.Join(B, "d"), "/")) + strings.TrimPrefix(out, "/")
	must(os.Symlink(rel, filepath.Join(B, "dl2")))

	realD, err := unix.Open(filepath.Join(B, "d"), unix.O_PATH|unix.O_DIRECTORY, 0)
	must(err)
	defer unix.Close(realD)

	var stop atomic.Bool
	var swaps atomic.Int64
	var swapWG, lookWG sync.WaitGroup
	swapErr := make(chan error, 2)
	// swapper exchanges two names as fast as it can; the file pair is
	// named through an fd of the real directory, so it never touches a
	// path that may be the symlink out.
	swapper := func(dfd int, a, b string) {
		defer swapWG.Done()
		for !stop.Load() {
			if err := unix.Renameat2(dfd, a, dfd, b, unix.RENAME_EXCHANGE); err != nil {
				swapErr <- fmt.Errorf("exchange %s %s: %w", a, b, err)
				return
			}
			swaps.Add(1)
		}
	}
	bfd, err := unix.Open(B, unix.O_PATH|unix.O_DIRECTORY, 0)
	must(err)
	defer unix.Close(bfd)
	swapWG.Add(2)
	go swapper(bfd, "d", "dl")
	go swapper(realD, "secret", "sl")
	var escapes []string
	var emu sync.Mutex
	escape := func(format string, args ...any) {
		emu.Lock()
		defer emu.Unlock()
		if len(escapes) < 20 {
			escapes = append(escapes, fmt.Sprintf(format, args...))
		}
	}
	isSecret := func(b []byte) bool { return bytes.Contains(b, []byte("OUTSIDE-SECRET")) }
	noFollow := &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_NOFOLLOW, Resolve: unix.RESOLVE_NO_SYMLINKS}
	const iterations = 1500
	var ops atomic.Int64
	looker := func(id int) {
		defer lookWG.Done()
		buf := make([]byte, 8192)
		// At least iterations rounds, and on until the swappers have
		// really raced (a loaded machine may starve them at first).
		for i := 0; i < iterations || (swaps.Load() < 1000 && i < 50*iterations); i++ {
			for _, path := range []string{"d/secret", "dl2/secret", "d/sl"} {
				fd, err := unix.Openat2(unix.AT_FDCWD, mnt.P(path), noFollow)
				if err == nil {
					n, _ := unix.Pread(fd, buf, 0)
					if isSecret(buf[:max(n, 0)]) {
						escape("open+read %s returned the outside secret", path)
					}
					var st unix.Stat_t
					if unix.Fstat(fd, &st) == nil && st.Size == secretSize {
						escape("fstat of %s opened through the mount has the outside secret's size %d", path, st.Size)
					}
					if n, err := unix.Fgetxattr(fd, "user.outside", buf); err == nil {
						escape("fgetxattr %s returned the outside marker %q", path, buf[:n])
					}
					unix.Close(fd)
				}
				ops.Add(1)
			}
			dfd, err := unix.Openat2(unix.AT_FDCWD, mnt.P("d"), &unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY, Resolve: unix.RESOLVE_NO_SYMLINKS})
			if err != nil {
				continue
			}
			var st unix.Stat_t
			if unix.Fstatat(dfd, "secret", &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Size == secretSize {
				escape("fstatat(d, secret) has the outside secret's size")
			}
			if unix.Fstatat(dfd, "only-outside", &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
				escape("fstatat(d, only-outside) found a file that exists only outside")
			}
			if fd, err := unix.Openat(dfd, "secret", unix.O_WRONLY|unix.O_NOFOLLOW, 0); err == nil {
				unix.Pwrite(fd, []byte("INSIDE"), 0)
				unix.Close(fd)
			}
			if fd, err := unix.Openat(dfd, fmt.Sprintf("new-%d-%d", id, i), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW, 0o644); err == nil {
				unix.Close(fd)
			}
			unix.Mkdirat(dfd, fmt.Sprintf("nd-%d-%d", id, i), 0o755)
			if fd, err := unix.Openat(dfd, "secret", unix.O_RDONLY|unix.O_NOFOLLOW, 0); err == nil {
				unix.Fchmod(fd, 0o666)
				unix.Close(fd)
			}
			unix.Fsetxattr(dfd, "user.inside", []byte("x"), 0)
			if ds, err := readDirents(dfd, 8192); err == nil {
				for _, d := range ds {
					if d.name == "only-outside" {
						escape("readdir of d listed only-outside")
					}
				}
			}
			unix.Close(dfd)
			ops.Add(6)
		}
	}
	lookWG.Add(2)
	go looker(0)
	go looker(1)
	lookWG.Wait()
	stop.Store(true)
	swapWG.Wait()
	select {
	case err := <-swapErr:
		t.Logf("a swapper stopped early: %v", err)
	default:
	}
	t.Logf("%d swaps on the backing side during %d operations through the mount", swaps.Load(), ops.Load())
	if swaps.Load() < 100 {
		t.Errorf("only %d swaps happened: the race was not exercised", swaps.Load())
	}
	for _, e := range escapes {
		t.Errorf("ESCAPE: %s", e)
	}
	after, err := snapshot(out)
	must(err)
	var changed []string
	for k, v := range after {
		if before[k] != v {
			changed = append(changed, fmt.Sprintf("%s: %s (was %q)", k, v, before[k]))
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			changed = append(changed, k+": removed")
		}
	}
	sort.Strings(changed)
	for _, c := range changed {
		t.Errorf("ESCAPE: outside the export, changed through the mount: %s", c)
	}
}
