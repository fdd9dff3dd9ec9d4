package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fastfsd/fastfsd/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestServes mounts the null server and checks that what fastfs-bench's
// metadata jobs do to it gives the answers a filesystem gives: a listing
// longer than one READDIR reply, sizes after writes, rename, hard and
// symbolic links, and a recursive removal that leaves nothing.
func TestServes(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	mnt := t.TempDir()
	fd, err := mount(mnt)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- newServer().serve(fd) }()
	t.Cleanup(func() {
		unix.Unmount(mnt, unix.MNT_DETACH)
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	d := filepath.Join(mnt, "d")
	if err := os.Mkdir(d, 0o750); err != nil {
		t.Fatal(err)
	}
	const n = 3000 // several READDIR replies' worth
	var want []string
	for i := range n {
		name := fmt.Sprintf("f%05d", i)
		want = append(want, name)
		f, err := os.OpenFile(filepath.Join(d, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(make([]byte, i%7)); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	if _, err := os.OpenFile(filepath.Join(d, "f00000"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640); !os.IsExist(err) {
		t.Errorf("O_EXCL create of an existing name: %v, want EEXIST", err)
	}
	got, err := testutil.ReadDir(d)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("listing has %d names, want %d (first %q)", len(got), len(want), got[:min(3, len(got))])
	}
	if fi, err := os.Stat(filepath.Join(d, "f00006")); err != nil || fi.Size() != 6 || fi.Mode() != 0o640 {
		t.Errorf("stat f00006: %v %v, want 6 bytes, mode 0640", fi, err)
	}
	if err := os.Rename(filepath.Join(d, "f00001"), filepath.Join(mnt, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(mnt, "moved"), filepath.Join(mnt, "hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("moved", filepath.Join(mnt, "sym")); err != nil {
		t.Fatal(err)
	}
	if l, err := os.Readlink(filepath.Join(mnt, "sym")); err != nil || l != "moved" {
		t.Errorf("readlink: %q %v", l, err)
	}
	if fi, err := os.Stat(filepath.Join(mnt, "sym")); err != nil || fi.Size() != 1 {
		t.Errorf("stat through the symlink: %v %v, want the 1-byte file", fi, err)
	}
	if err := os.Remove(d); err == nil {
		t.Error("rmdir of a full directory succeeded")
	}
	for _, p := range []string{d, filepath.Join(mnt, "moved"), filepath.Join(mnt, "hard"), filepath.Join(mnt, "sym")} {
		if err := os.RemoveAll(p); err != nil {
			t.Fatal(err)
		}
	}
	if left, err := testutil.ReadDir(mnt); err != nil || len(left) != 0 {
		t.Errorf("after removing everything the root lists %q (%v)", left, err)
	}
}
