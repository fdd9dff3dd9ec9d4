package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fastfsd/fastfsd/fuse/abi"
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
	defer unix.Umask(unix.Umask(0o022)) // the modes below
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
	// O_TRUNC (ATOMIC_O_TRUNC: the OPEN carries it), RENAME_NOREPLACE,
	// and a file unlinked while open, which stays until closed.
	f6 := filepath.Join(d, "f00006")
	if f, err := os.OpenFile(f6, os.O_WRONLY|os.O_TRUNC, 0); err != nil {
		t.Fatal(err)
	} else if fi, err := f.Stat(); err != nil || fi.Size() != 0 {
		t.Errorf("after open(O_TRUNC): %v %v, want 0 bytes", fi, err)
		f.Close()
	} else {
		f.Close()
	}
	if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(d, "f00002"), unix.AT_FDCWD, filepath.Join(d, "f00003"), unix.RENAME_NOREPLACE); err != unix.EEXIST {
		t.Errorf("renameat2(RENAME_NOREPLACE) onto an existing name: %v, want EEXIST", err)
	}
	f, err := os.OpenFile(filepath.Join(d, "f00005"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(d, "f00005")); err != nil {
		t.Fatal(err)
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != 5 {
		t.Errorf("fstat of an open, unlinked file: %v %v, want its 5 bytes", fi, err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("close of an open, unlinked file: %v", err)
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

// TestShortRequests: a request too short for what its opcode carries
// gets an answer (EIO where parsing it ran off its end), not a panic that
// would end the server and leave a dead mount; and the server serves on.
func TestShortRequests(t *testing.T) {
	s := newServer()
	out := make([]byte, maxWrite+abi.OutHeaderSize)
	req := func(op abi.Opcode, body string) []byte {
		r := make([]byte, abi.InHeaderSize+len(body))
		le.PutUint32(r[0:], uint32(len(r)))
		le.PutUint32(r[4:], uint32(op))
		le.PutUint64(r[16:], 1) // the root
		copy(r[abi.InHeaderSize:], body)
		return r
	}
	eio := 0
	for _, op := range []abi.Opcode{abi.OpLookup, abi.OpSetattr, abi.OpSymlink, abi.OpMkdir, abi.OpMknod, abi.OpCreate, abi.OpRename, abi.OpRename2, abi.OpLink, abi.OpRead, abi.OpWrite, abi.OpReaddir, abi.OpForget, abi.OpBatchForget, abi.OpOpen, abi.OpGetxattr, abi.OpListxattr, abi.OpInit} {
		if _, e, _ := s.handleOrEIO(req(op, "ab"), out); e == unix.EIO {
			eio++
		}
	}
	if eio == 0 {
		t.Error("no 2-byte body ran off its end: the test no longer tests the guard")
	}
	mkdir := req(abi.OpMkdir, "\x00\x00\x00\x00\x00\x00\x00\x00d\x00")
	le.PutUint32(mkdir[abi.InHeaderSize:], 0o755)
	if n, e, _ := s.handleOrEIO(mkdir, out); e != 0 || n != abi.EntryOutSize {
		t.Fatalf("MKDIR after the short requests: %d bytes, errno %v", n, e)
	}
	if n, e, _ := s.handleOrEIO(req(abi.OpLookup, "d\x00"), out); e != 0 || n != abi.EntryOutSize {
		t.Fatalf("LOOKUP after the short requests: %d bytes, errno %v", n, e)
	}
}
