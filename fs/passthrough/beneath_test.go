package passthrough

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// mkChain makes a chain of depth directories "a" in dir, with *at calls
// (its paths are longer than PATH_MAX), and returns an O_PATH fd of the
// deepest.
func mkChain(t *testing.T, dir string, depth int) int {
	t.Helper()
	cur, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range depth {
		if err := unix.Mkdirat(cur, "a", 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(cur, "a", unix.O_PATH|unix.O_DIRECTORY, 0)
		unix.Close(cur)
		if err != nil {
			t.Fatal(err)
		}
		cur = next
	}
	return cur
}

// TestBeneathRootDepths: beneathRoot against the definition (the root is
// an ancestor) at depths around its one-at-a-time climb and its strides,
// beneath the root and in a chain as deep outside it, and with "/" as the
// root.
func TestBeneathRootDepths(t *testing.T) {
	top := t.TempDir()
	root, outside := join(top, "share"), join(top, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const depth = 2*dotdotStride + 100
	in, out := mkChain(t, root, depth), mkChain(t, outside, depth)
	defer unix.Close(in)
	defer unix.Close(out)
	f, err := New(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// check asserts fsys.beneathRoot of the directory up levels above
	// the directory fd.
	check := func(fsys *FS, fd, up int, want fs.Errno, what string) {
		t.Helper()
		ufd, err := openUp(fd, up)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(ufd)
		if got := fsys.beneathRoot(ufd); got != want {
			t.Errorf("beneathRoot of %s: %v, want %v", what, got, want)
		}
	}
	for _, up := range []int{0, 1, 50, 83, 84, 99, 100, 101, depth - dotdotStride, depth - linearDepth - 1, depth - linearDepth, depth - 1, depth} {
		d := depth - up // how deep the directory up levels above the bottom is
		for _, c := range []struct {
			name string
			fd   int
			want fs.Errno
		}{{"share", in, fs.OK}, {"outside", out, syscall.EACCES}} {
			check(f, c.fd, up, c.want, fmt.Sprintf("a directory %d deep in %s", d, c.name))
		}
	}
	// A root that is the top of its tree, as in the namespace and chroot
	// sandboxes, where the deep case only compares the tops.
	top0, err := New("/", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer top0.Close()
	for _, up := range []int{0, 1000, depth} {
		check(top0, in, up, fs.OK, fmt.Sprintf("a directory beneath / (%d levels above the chain's bottom)", up))
	}
	// The root's parent and the top are not beneath it.
	for _, up := range []int{depth + 1, depth + 100} {
		check(f, in, up, syscall.EACCES, fmt.Sprintf("the directory %d levels above the root", up-depth))
	}
}

// TestDeepDirectoryReopen: a directory 4,200 levels beneath the root,
// reopened from its handle once the fd cache has dropped it, is served
// (it was EACCES past 4,096 levels, the old climb's bound) and costs
// little (the old climb took four system calls a level: about 150 ms at
// depth 4,000 under load, a hostile client's cheap way to burn the
// daemon's CPU); moved out of the share, it is refused.
func TestDeepDirectoryReopen(t *testing.T) { deepDirectoryReopen(t, false) }

// TestDeepDirectoryReopenBindMount: TestDeepDirectoryReopen with the root
// a bind mount of the share, as the namespace sandbox serves it, where
// the kernel checks every ".." against the mount's root (O(depth) each):
// climbing made a reopen at depth 4,000 cost about 100 ms there; the
// single ".." that beneathMountRoot asks costs one such check. Moved out
// of the share on the host, the directory is refused (the kernel finds it
// disconnected from the mount), and moved back, served again.
func TestDeepDirectoryReopenBindMount(t *testing.T) { deepDirectoryReopen(t, true) }

func deepDirectoryReopen(t *testing.T, bind bool) {
	const cache, depth = 16, 4200
	top := t.TempDir()
	share, outside := join(top, "share"), join(top, "outside")
	for _, d := range []string{share, outside, join(share, "deep")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	root := share
	if bind {
		testutil.RequireRoot(t)
		root = join(top, "mnt")
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(share, root, "", unix.MS_BIND, ""); err != nil {
			t.Fatalf("bind mount %s on %s: %v", share, root, err)
		}
		t.Cleanup(func() { unix.Unmount(root, unix.MNT_DETACH) })
	}
	bottom := mkChain(t, join(share, "deep"), depth)
	fd, err := unix.Openat(bottom, "f", unix.O_CREAT|unix.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	unix.Close(bottom)
	f, err := New(root, Options{FileHandles: FileHandlesPrefer, FdCache: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if bind && f.rootMnt == 0 {
		t.Fatalf("the root %s, a bind mount, is not seen as its mount's root", root)
	}
	ino := lookup(t, f, fs.RootInode, "deep").Ino
	for range depth {
		ino = lookup(t, f, ino, "a").Ino
	}
	evict := func() { churn(t, f, share, cache, mkDir) }
	var out fs.Entry
	const rounds = 5
	var took time.Duration
	for range rounds {
		evict()
		start := time.Now()
		e := f.Lookup(rootCtx, ino, []byte("f"), &out)
		took += time.Since(start)
		if e != 0 {
			t.Fatalf("Lookup in a directory %d levels deep, its fd dropped from the cache: %v", depth, e)
		}
		f.Forget(out.Ino, 1)
	}
	t.Logf("Lookup in a directory %d deep whose fd was dropped (bind mount %v): %v each", depth, bind, took/rounds)
	if bind && took/rounds > 20*time.Millisecond {
		t.Errorf("Lookup in a directory %d deep whose fd was dropped took %v on a bind mount, want one check (well under 20 ms)", depth, took/rounds)
	}
	evict()
	if err := os.Rename(join(share, "deep"), join(outside, "deep")); err != nil {
		t.Fatal(err)
	}
	if e := f.Lookup(rootCtx, ino, []byte("f"), &out); e != syscall.EACCES {
		t.Errorf("Lookup in a directory %d deep moved out of the share: %v, want EACCES", depth, e)
	}
	if err := os.Rename(join(outside, "deep"), join(share, "deep")); err != nil {
		t.Fatal(err)
	}
	evict()
	if e := f.Lookup(rootCtx, ino, []byte("f"), &out); e != 0 {
		t.Errorf("Lookup in a directory %d deep moved back into the share: %v", depth, e)
	} else {
		f.Forget(out.Ino, 1)
	}
}
