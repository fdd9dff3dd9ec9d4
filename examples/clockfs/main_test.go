package main

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// TestClockFS mounts clockfs for real with a fast tick and reads the
// clock through a file held open: the time it shows changes, while only
// the first read reaches clockfs (the ticks store each new time in the
// kernel's page cache).
func TestClockFS(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	mnt := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := &clockFS{}
	c.set(time.Now())
	m, err := fastfs.Mount(ctx, c, mnt, &fastfs.MountOptions{FSName: "clockfs", Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Unmount()
	// Plain system calls: this process serves the mount (see package
	// fusedev on os.Open).
	fd, err := syscall.Open(filepath.Join(mnt, "clock"), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	buf := make([]byte, 64)
	read := func() string {
		n, err := syscall.Pread(fd, buf, 0)
		if err != nil {
			t.Fatalf("read clock: %v", err)
		}
		return string(buf[:n])
	}
	first := read()
	if _, err := time.Parse(layout, first); err != nil {
		t.Fatalf("clock reads %q: %v", first, err)
	}
	reads := c.reads.Load()
	go c.tick(ctx, m, 20*time.Millisecond)
	seen := map[string]bool{first: true}
	deadline := time.Now().Add(5 * time.Second)
	for len(seen) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("the clock showed %d distinct times in 5 s, want 4: %v", len(seen), seen)
		}
		seen[read()] = true
		time.Sleep(5 * time.Millisecond)
	}
	if n := c.reads.Load() - reads; n != 0 {
		t.Errorf("%d READs reached clockfs after the first read; want 0 (each time is stored in the page cache)", n)
	}
}
