package fastfs_test

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hp9 "github.com/hugelgupf/p9/p9"

	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/fs"
)

// stallFS is helloFS whose Read tells started and waits for release.
type stallFS struct {
	helloFS
	started chan struct{}
	release chan struct{}
}

func (s stallFS) Read(c *fs.Context, ino fs.Inode, h fs.Handle, off int64, size uint32, dst fs.Sink) fs.Errno {
	s.started <- struct{}{}
	<-s.release
	return s.helloFS.Read(c, ino, h, off, size, dst)
}

// TestServe9PDrain: with P9Options.Drain, cancelling Serve9P lets a
// request being served finish and reach its client before the
// connection is closed; Serve9P returns only then, with nil.
func TestServe9PDrain(t *testing.T) {
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "9p.sock"))
	if err != nil {
		t.Fatal(err)
	}
	fsys := stallFS{started: make(chan struct{}, 1), release: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- fastfs.Serve9P(ctx, fsys, l, &fastfs.P9Options{Drain: 30 * time.Second})
	}()
	nc, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := hp9.NewClient(nc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	root, err := c.Attach("")
	if err != nil {
		t.Fatal(err)
	}
	_, f, err := root.Walk([]string{"hello"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Open(hp9.ReadOnly); err != nil {
		t.Fatal(err)
	}
	type result struct {
		n   int
		err error
	}
	read := make(chan result, 1)
	buf := make([]byte, len(greeting)) // one Tread: ReadAt reads until buf is full
	go func() {
		n, err := f.ReadAt(buf, 0)
		read <- result{n, err}
	}()
	<-fsys.started
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Serve9P returned (%v) while a request was being served, before Drain", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(fsys.release)
	r := <-read
	if r.err != nil || string(buf[:r.n]) != string(greeting) {
		t.Errorf("read being served when Serve9P was cancelled: %q, %v; want %q (drained)", buf[:r.n], r.err, greeting)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve9P after a drain: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve9P did not return within 10 s of the last request finishing")
	}
}

func TestServe9PRefusesBadOptions(t *testing.T) {
	l, err := net.Listen("unix", filepath.Join(t.TempDir(), "9p.sock"))
	if err != nil {
		t.Fatal(err)
	}
	err = fastfs.Serve9P(context.Background(), helloFS{}, l, &fastfs.P9Options{Drain: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "Drain") {
		t.Errorf("Serve9P with a negative Drain: %v, want an error naming Drain", err)
	}
	if _, err := l.Accept(); err == nil {
		t.Error("Serve9P refused its options but left the listener open")
	}
}
