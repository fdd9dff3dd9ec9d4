package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const metaDir = "meta"

// metaCreate creates n empty files in a fresh directory: files/s.
func metaCreate(dir string, n int) (float64, error) {
	d := filepath.Join(dir, metaDir)
	os.RemoveAll(d)
	if err := os.Mkdir(d, 0o755); err != nil {
		return 0, err
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		fd, err := unix.Open(filepath.Join(d, fmt.Sprintf("f%06d", i)), unix.O_CREAT|unix.O_WRONLY|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return 0, fmt.Errorf("create file %d: %w", i, err)
		}
		unix.Close(fd)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// metaStat stats the n files metaCreate made: files/s. cold first
// evicts every unused dentry and inode the kernel caches (drop_caches=2,
// which needs root), so a FUSE subject answers each stat with a LOOKUP
// round trip while native tmpfs, whose dentries are its files, stays as
// it is; warm stats every file once untimed and then times a second
// pass, so each subject serves from whatever its cache mode keeps.
// Either way the result no longer depends on how long ago, and in which
// order, the create job ran: with cache=auto's 1 s entry timeout that
// decided between a cached and a round-tripped stat before.
func metaStat(dir string, n int, cold bool) (float64, error) {
	d := filepath.Join(dir, metaDir)
	if _, err := os.Stat(filepath.Join(d, fmt.Sprintf("f%06d", n-1))); err != nil {
		if _, err := metaCreate(dir, n); err != nil {
			return 0, err
		}
	}
	var st unix.Stat_t
	pass := func() error {
		for i := 0; i < n; i++ {
			if err := unix.Stat(filepath.Join(d, fmt.Sprintf("f%06d", i)), &st); err != nil {
				return fmt.Errorf("stat file %d: %w", i, err)
			}
		}
		return nil
	}
	if cold {
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0); err != nil {
			return 0, fmt.Errorf("cold stat: evict cached dentries (run as root): %w", err)
		}
	} else if err := pass(); err != nil {
		return 0, err
	}
	start := time.Now()
	if err := pass(); err != nil {
		return 0, err
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// metaUnlink removes the n files: files/s.
func metaUnlink(dir string, n int) (float64, error) {
	d := filepath.Join(dir, metaDir)
	if _, err := os.Stat(filepath.Join(d, fmt.Sprintf("f%06d", n-1))); err != nil {
		if _, err := metaCreate(dir, n); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if err := unix.Unlink(filepath.Join(d, fmt.Sprintf("f%06d", i))); err != nil {
			return 0, fmt.Errorf("unlink file %d: %w", i, err)
		}
	}
	el := time.Since(start)
	os.Remove(d)
	return float64(n) / el.Seconds(), nil
}

// tarball is a tar of a generated tree, made once per process.
var tarball struct {
	path  string
	files int
}

// untar extracts a tree of ~3,000 files (sources-like sizes) into dir:
// files/s.
func untar(ctx context.Context, dir string) (float64, error) {
	if tarball.path == "" {
		src, err := os.MkdirTemp("", "fastfs-bench-tree")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(src)
		n := 0
		for d := 0; d < 30; d++ {
			sub := filepath.Join(src, fmt.Sprintf("dir%02d", d))
			os.Mkdir(sub, 0o755)
			for f := 0; f < 100; f++ {
				size := 512 + (d*7919+f*104729)%16384
				if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("file%03d.c", f)), []byte(strings.Repeat("x", size)), 0o644); err != nil {
					return 0, err
				}
				n++
			}
		}
		tf, err := os.CreateTemp("", "fastfs-bench-*.tar")
		if err != nil {
			return 0, err
		}
		tf.Close()
		if out, err := exec.CommandContext(ctx, "tar", "-cf", tf.Name(), "-C", src, ".").CombinedOutput(); err != nil {
			return 0, fmt.Errorf("tar -c: %v: %s", err, out)
		}
		tarball.path, tarball.files = tf.Name(), n
	}
	d := filepath.Join(dir, "untar")
	os.RemoveAll(d)
	if err := os.Mkdir(d, 0o755); err != nil {
		return 0, err
	}
	start := time.Now()
	if out, err := exec.CommandContext(ctx, "tar", "-xf", tarball.path, "-C", d).CombinedOutput(); err != nil {
		return 0, fmt.Errorf("tar -x into %s: %v: %s", d, err, out)
	}
	el := time.Since(start)
	os.RemoveAll(d)
	return float64(tarball.files) / el.Seconds(), nil
}
