package posixtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/fastfsd/fastfsd/internal/testutil"
	"golang.org/x/sys/unix"
)

func init() {
	register("fio_verify", func(t *testing.T, env Env) {
		env.need(t, CapFio)
		testutil.RequireCommand(t, "fio")
		fioVerify(t, env)
	})
	register("tar_roundtrip", func(t *testing.T, env Env) {
		env.need(t, CapTar)
		testutil.RequireCommand(t, "tar")
		tarRoundTrip(t, env)
	})
}

// fioJobs are four jobs of different shapes, each writing its own file
// and reading it back with crc32c verification.
func fioJobs(dir string, mib int, verifyOnly bool) []string {
	args := []string{"--output-format=json", "--directory=" + dir, fmt.Sprintf("--size=%dM", mib),
		"--verify=crc32c", "--verify_fatal=1", "--do_verify=1", "--randrepeat=1", "--group_reporting=0",
		"--verify_state_save=0"} // no local-*-verify.state files in the working directory
	if verifyOnly {
		args = append(args, "--verify_only")
	}
	return append(args,
		"--name=seq-1m", "--rw=write", "--bs=1M", "--ioengine=psync",
		"--name=rand-4k", "--rw=randwrite", "--bs=4k", "--ioengine=psync",
		"--name=seq-64k-aio", "--rw=write", "--bs=64k", "--ioengine=libaio", "--iodepth=8",
		"--name=rand-16k-aio", "--rw=randwrite", "--bs=16k", "--ioengine=libaio", "--iodepth=8",
	)
}

type fioReport struct {
	Jobs []struct {
		Jobname string `json:"jobname"`
		Error   int    `json:"error"`
		Read    struct {
			IOBytes int64 `json:"io_bytes"`
		} `json:"read"`
		Write struct {
			IOBytes int64 `json:"io_bytes"`
			BW      int64 `json:"bw"`
		} `json:"write"`
	} `json:"jobs"`
}

// runFio runs fio and checks every job finished without error and read
// back (verified) all it should.
func runFio(t *testing.T, what string, args []string, mib int, wantWrite bool) {
	t.Helper()
	cmd := exec.Command("fio", args...)
	cmd.Dir = t.TempDir() // whatever fio leaves in its working directory goes away
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	// fio prints notes before the JSON; start at the first '{'.
	if i := bytes.IndexByte(out, '{'); i > 0 {
		out = out[i:]
	}
	var rep fioReport
	if jerr := json.Unmarshal(out, &rep); jerr != nil {
		t.Fatalf("%s: fio: %v (exit %v); stderr:\n%s\nstdout:\n%.2000s", what, jerr, err, stderr.String(), out)
	}
	if err != nil {
		t.Errorf("%s: fio exited with %v; stderr:\n%s", what, err, stderr.String())
	}
	if len(rep.Jobs) != 4 {
		t.Fatalf("%s: fio reported %d jobs, want 4", what, len(rep.Jobs))
	}
	size := int64(mib) << 20
	for _, j := range rep.Jobs {
		if j.Error != 0 {
			t.Errorf("%s: fio job %s: error %d (%s) — with verify_fatal a verify mismatch ends the job with EILSEQ (84); stderr:\n%s",
				what, j.Jobname, j.Error, unix.ErrnoName(unix.Errno(j.Error)), stderr.String())
		}
		if j.Read.IOBytes != size {
			t.Errorf("%s: fio job %s verified %d bytes, want %d", what, j.Jobname, j.Read.IOBytes, size)
		}
		if wantWrite && j.Write.IOBytes != size {
			t.Errorf("%s: fio job %s wrote %d bytes, want %d", what, j.Jobname, j.Write.IOBytes, size)
		}
		t.Logf("%s: %s wrote %d MiB at %d KiB/s, verified %d MiB, error %d", what, j.Jobname, j.Write.IOBytes>>20, j.Write.BW, j.Read.IOBytes>>20, j.Error)
	}
}

// fioVerify writes 4 jobs' files through the door with crc32c
// verification on read-back, then, when the backing side is reachable,
// verifies the same files again on the backing directory.
func fioVerify(t *testing.T, env Env) {
	mib := env.FioJobMiB
	if mib == 0 {
		mib = 64
	}
	s := newSide(t, "mount", env.Dir, env.Backing)
	runFio(t, "through the door", fioJobs(s.Root, mib, false), mib, true)
	if s.Backing != "" && !t.Failed() {
		runFio(t, "backing files, verify only", fioJobs(s.Backing, mib, true), mib, false)
	}
}

// entryInfo is what a tar round trip must keep of one entry.
func entryInfo(root, p string, d fs.DirEntry) (string, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return "", err
	}
	v := fmt.Sprintf("%s mode=%04o uid=%d gid=%d", typeName(st.Mode&unix.S_IFMT), st.Mode&07777, st.Uid, st.Gid)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		b, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		v += fmt.Sprintf(" nlink=%d size=%d sha=%x mtime=%d", st.Nlink, len(b), sha256.Sum256(b), st.Mtim.Sec)
	case unix.S_IFLNK:
		tgt, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		v += " -> " + tgt
	case unix.S_IFDIR:
		v += fmt.Sprintf(" mtime=%d", st.Mtim.Sec)
	}
	return v, nil
}

func treeInfo(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		v, err := entryInfo(root, p, d)
		m[rel] = v
		return err
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return m
}

// makeTree creates n files with random sizes, modes, owners and times in
// nested directories, plus symlinks and hard links, from a fixed seed.
func makeTree(t *testing.T, root string, n int) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	modes := []uint32{0o644, 0o600, 0o755, 0o444, 0o640, 0o700, 0o4755, 0o2750, 0o1644, 0o666}
	var dirs []string
	for i := 0; i < n/50+1; i++ {
		d := fmt.Sprintf("d%02d", i)
		if i > 0 && r.IntN(3) == 0 {
			d = filepath.Join(dirs[r.IntN(len(dirs))], d)
		}
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	var files []string
	for i := 0; i < n; i++ {
		rel := filepath.Join(dirs[r.IntN(len(dirs))], fmt.Sprintf("f%04d", i))
		p := filepath.Join(root, rel)
		switch {
		case i%20 == 7 && len(files) > 0: // symlink, relative or dangling
			tgt := "../" + filepath.Base(files[r.IntN(len(files))])
			if i%40 == 7 {
				tgt = "dangling/target/" + rel
			}
			if err := os.Symlink(tgt, p); err != nil {
				t.Fatal(err)
			}
			continue
		case i%50 == 13 && len(files) > 0: // hard link
			if err := os.Link(filepath.Join(root, files[r.IntN(len(files))]), p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var size int
		switch x := r.IntN(100); {
		case x < 70:
			size = r.IntN(8 << 10)
		case x < 95:
			size = r.IntN(128 << 10)
		default:
			size = r.IntN(1 << 20)
		}
		if err := os.WriteFile(p, pattern(byte(i), size), 0o600); err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			os.Chown(p, 1000+i%5, 2000+i%3)
		}
		if err := os.Chmod(p, fs.FileMode(modes[r.IntN(len(modes))]&0o777)|modeBits(modes[r.IntN(len(modes))])); err != nil {
			t.Fatal(err)
		}
		mt := int64(1_000_000_000 + r.IntN(500_000_000))
		unix.UtimesNano(p, []unix.Timespec{{Sec: mt}, {Sec: mt}})
		files = append(files, rel)
	}
	for _, d := range dirs {
		unix.UtimesNano(filepath.Join(root, d), []unix.Timespec{{Sec: 1_400_000_000}, {Sec: 1_400_000_000}})
	}
}

// modeBits turns the set-id/sticky bits of a Unix mode into fs.FileMode.
func modeBits(m uint32) fs.FileMode {
	var b fs.FileMode
	if m&0o4000 != 0 {
		b |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		b |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		b |= fs.ModeSticky
	}
	return b
}

// pipeTar runs "tar -C from -cf - ." | "tar -C to -xpf -".
func pipeTar(t *testing.T, from, to string) {
	t.Helper()
	c := exec.Command("tar", "-C", from, "--numeric-owner", "-cf", "-", ".")
	x := exec.Command("tar", "-C", to, "--numeric-owner", "-xpf", "-")
	var cerr, xerr bytes.Buffer
	c.Stderr, x.Stderr = &cerr, &xerr
	pr, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	x.Stdin = pr
	if err := x.Start(); err != nil {
		t.Fatal(err)
	}
	if err := c.Run(); err != nil {
		t.Errorf("tar -c in %s: %v: %s", from, err, cerr.String())
	}
	if err := x.Wait(); err != nil {
		t.Errorf("tar -x into %s: %v: %s", to, err, xerr.String())
	}
}

// tarRoundTrip: a tree of a few thousand files goes into the door with
// tar, is archived from the door into a file on the door, and that
// archive is extracted natively; all three trees must be identical.
func tarRoundTrip(t *testing.T, env Env) {
	n := env.TarFiles
	if n == 0 {
		n = 3000
	}
	s := newSide(t, "mount", env.Dir, env.Backing)
	src, out := t.TempDir(), t.TempDir()
	makeTree(t, src, n)
	want := treeInfo(t, src)
	t.Logf("tree: %d entries", len(want))

	tree := s.P("tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	pipeTar(t, src, tree)
	compareTrees(t, "extracted into the door", want, treeInfo(t, tree))

	archive := s.P("tree.tar")
	c := exec.Command("tar", "-C", tree, "--numeric-owner", "-cf", archive, ".")
	if b, err := c.CombinedOutput(); err != nil {
		t.Fatalf("tar -c from the door into %s: %v: %s", archive, err, b)
	}
	x := exec.Command("tar", "-C", out, "--numeric-owner", "-xpf", archive)
	if b, err := x.CombinedOutput(); err != nil {
		t.Fatalf("tar -x of the archive on the door: %v: %s", err, b)
	}
	compareTrees(t, "archived on the door and extracted natively", want, treeInfo(t, out))
}

func compareTrees(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	var diffs []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: missing (want %s)", k, v))
		} else if g != v {
			diffs = append(diffs, fmt.Sprintf("%s: got %s, want %s", k, g, v))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: unexpected %s", k, g))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("%s: %d of %d entries differ:\n%s", what, len(diffs), len(want), strings.Join(diffs[:min(len(diffs), 20)], "\n"))
	}
}
