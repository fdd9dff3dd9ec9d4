package vfs_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/fs/passthrough"
	"github.com/fastfsd/fastfsd/fs/vfs"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// listDir lists a directory as testutil.ReadDir does (no netpoller: this
// process serves the mount), sorted.
func listDir(path string) ([]string, error) {
	names, err := testutil.ReadDir(path)
	sort.Strings(names)
	return names, err
}

func share(t *testing.T, dir string) *passthrough.FS {
	t.Helper()
	p, err := passthrough.New(dir, passthrough.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestVFSMount serves two passthrough shares under one /dev/fuse mount: a
// reader loops over share a while share b is mounted and unmounted under
// the running session 20 times; the reader never sees an error, b's file
// is readable while b is mounted and gone after, the pseudo root lists
// the shares, a rename between shares is EXDEV, statfs answers per share.
func TestVFSMount(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	dirA, dirB, mnt := t.TempDir(), t.TempDir(), t.TempDir()
	// b on its own tmpfs, so that statfs tells the shares apart.
	if err := syscall.Mount("tmpfs", dirB, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs for share b: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dirB, syscall.MNT_DETACH) })
	dataA := bytes.Repeat([]byte("a"), 1000)
	dataB := []byte("share b\n")
	if err := os.WriteFile(filepath.Join(dirA, "data"), dataA, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dirB, "data"), dataB, 0o644); err != nil {
		t.Fatal(err)
	}

	v := vfs.New(vfs.Options{})
	if err := v.Mount("a", share(t, dirA)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m, err := fastfs.Mount(ctx, v, mnt, &fastfs.MountOptions{FSName: "vfstest", Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()

	if names, err := listDir(mnt); err != nil || len(names) != 1 || names[0] != "a" {
		t.Fatalf("ls %s: %q %v, want [a]", mnt, names, err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads atomic.Int64
	var readErr atomic.Value
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := testutil.ReadFile(filepath.Join(mnt, "a", "data"))
			if err == nil && !bytes.Equal(got, dataA) {
				err = errors.New("wrong contents")
			}
			var st syscall.Stat_t
			if err == nil {
				err = syscall.Stat(filepath.Join(mnt, "a"), &st)
			}
			if err != nil {
				readErr.Store(err)
				return
			}
			reads.Add(1)
		}
	}()

	pathB := filepath.Join(mnt, "b", "data")
	const rounds = 20
	for i := range rounds {
		if err := v.Mount("b", share(t, dirB)); err != nil {
			t.Fatalf("round %d: mount b: %v", i, err)
		}
		got, err := testutil.ReadFile(pathB)
		if err != nil || !bytes.Equal(got, dataB) {
			t.Fatalf("round %d: read b/data: %q %v", i, got, err)
		}
		if i == 0 {
			if names, err := listDir(mnt); err != nil || len(names) != 2 || names[1] != "b" {
				t.Errorf("ls with two shares: %q %v", names, err)
			}
			if err := syscall.Rename(filepath.Join(mnt, "a", "data"), filepath.Join(mnt, "b", "moved")); err != syscall.EXDEV {
				t.Errorf("rename a/data → b/moved: %v, want EXDEV", err)
			}
			if err := syscall.Mkdir(filepath.Join(mnt, "c"), 0o755); err != syscall.EPERM {
				t.Errorf("mkdir in the pseudo root: %v, want EPERM", err)
			}
			var sa, sb, host syscall.Statfs_t
			if err := syscall.Statfs(filepath.Join(mnt, "a"), &sa); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Statfs(filepath.Join(mnt, "b"), &sb); err != nil {
				t.Fatal(err)
			}
			syscall.Statfs(dirA, &host)
			if sb.Blocks*uint64(sb.Bsize) != 1<<20 || sa.Blocks != host.Blocks {
				t.Errorf("statfs: a %d×%d (host %d blocks), b %d×%d (want 1 MiB, its tmpfs)", sa.Blocks, sa.Bsize, host.Blocks, sb.Blocks, sb.Bsize)
			}
			var st1, st2 syscall.Stat_t
			syscall.Stat(filepath.Join(mnt, "a", "data"), &st1)
			syscall.Stat(pathB, &st2)
			if st1.Ino == st2.Ino {
				t.Errorf("a/data and b/data share st_ino %d", st1.Ino)
			}
		}
		// The reader must be reading while b comes and goes (with
		// GOMAXPROCS=1 it would otherwise wait for the loop to end).
		for n, deadline := reads.Load(), time.Now().Add(10*time.Second); reads.Load() == n && readErr.Load() == nil; {
			if time.Now().After(deadline) {
				t.Fatalf("round %d: the reader of a made no progress in 10 s", i)
			}
			runtime.Gosched()
			time.Sleep(time.Millisecond)
		}
		// A file of b kept open across the unmount reads ESTALE after it.
		fd, err := syscall.Open(pathB, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_DIRECT, 0)
		if err != nil {
			t.Fatalf("round %d: open b/data: %v", i, err)
		}
		uctx, ucancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = v.Unmount(uctx, "b")
		ucancel()
		if err != nil {
			t.Fatalf("round %d: unmount b: %v", i, err)
		}
		buf := make([]byte, 4096)
		if _, err := syscall.Pread(fd, buf, 0); err != syscall.ESTALE {
			t.Errorf("round %d: read of an open b/data after unmount: %v, want ESTALE", i, err)
		}
		syscall.Close(fd)
		if _, err := testutil.ReadFile(pathB); err != syscall.ENOENT {
			t.Fatalf("round %d: read b/data after unmount: %v, want ENOENT", i, err)
		}
	}
	close(stop)
	wg.Wait()
	if err, _ := readErr.Load().(error); err != nil {
		t.Fatalf("the reader of share a failed: %v", err)
	}
	if reads.Load() == 0 {
		t.Fatal("the reader of share a never finished a read")
	}
	t.Logf("%d mounts and unmounts of b while %d reads of a succeeded", rounds, reads.Load())
}
