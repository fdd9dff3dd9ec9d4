package fusedev

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/dataplane/uring"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/stats"
	"github.com/fastfsd/fastfsd/internal/testutil"
	"golang.org/x/sys/unix"
)

// requireURing turns FUSE over io_uring on, or skips (fails under CI).
func requireURing(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	if !uring.Enabled() {
		if err := uring.Enable(); err != nil {
			if testutil.Strict() {
				t.Fatalf("FUSE over io_uring unavailable (strict mode): %v", err)
			}
			t.Skip(err)
		}
	}
}

// TestServeIOUring serves the test filesystem over io_uring and checks that
// data, reads at odd offsets, writes and readdir work, that the requests
// really travelled on the rings (the /dev/fuse workers saw only INIT and
// what came before the queues registered), and that it ends cleanly.
func TestServeIOUring(t *testing.T) {
	requireURing(t)
	set := stats.Default.NewSet("fuse-uring-test", func(op uint32) string { return abi.Opcode(op).String() })
	// requireURing turned the parameter on before this mount, so its
	// INIT offers io_uring (fusedev refuses to serve a mount whose INIT
	// did not agree on it).
	s := serveTest(t, ServeOptions{Workers: 1, Splice: SpliceOff, IOUring: true, Stats: set})
	waitURing(t, s)
	// Give the queues time to register every entry: until then requests
	// still come through /dev/fuse.
	time.Sleep(200 * time.Millisecond)
	before := s.c.WorkerStats()[0].Requests
	checkFiles(t, s)
	payload := bytes.Repeat([]byte("uring!"), 100000)
	if err := rawWriteAt(filepath.Join(s.mnt, "out"), payload, 4096); err != nil {
		t.Fatalf("write through io_uring: %v", err)
	}
	got := make([]byte, len(payload))
	if n, err := s.fsys.out.ReadAt(got, 4096); err != nil || n != len(payload) || !bytes.Equal(got, payload) {
		t.Fatalf("backing file after write: %d bytes, %v, equal %v", n, err, bytes.Equal(got, payload))
	}
	dev := s.c.WorkerStats()[0].Requests - before
	var ringed uint64
	for _, o := range set.Totals() {
		ringed += o.Count
	}
	t.Logf("requests: %d on io_uring queues, %d on /dev/fuse after registration", ringed, dev)
	if ringed < 10 {
		t.Errorf("only %d requests were served on io_uring queues", ringed)
	}
	if dev > 2 {
		t.Errorf("%d requests still came through /dev/fuse after the queues registered", dev)
	}
}

func agreedOK(srv *fuse.Server) bool { _, ok := srv.Agreed(); return ok }

// waitURing waits (up to 5 s) for s's INIT and fails the test unless it
// agreed on io_uring.
func waitURing(t *testing.T, s *served) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if srv := s.c.Server(); (srv != nil && agreedOK(srv)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if srv := s.c.Server(); srv == nil || !agreedURing(srv) {
		t.Fatal("INIT did not agree OVER_IO_URING with enable_uring on")
	}
}

func agreedURing(srv *fuse.Server) bool {
	ag, ok := srv.Agreed()
	return ok && ag.Flags&abi.InitOverIoUring != 0
}

// TestNotifyIOUring: notifications reach a connection served over
// io_uring, and the kernel's NOTIFY_REPLY to a RETRIEVE (which it queues
// like a request, so it arrives on a ring) finds its caller: what STORE
// put in the page cache comes back.
func TestNotifyIOUring(t *testing.T) {
	requireURing(t)
	s := serveTest(t, ServeOptions{Workers: 1, Splice: SpliceOff, IOUring: true})
	waitURing(t, s)
	time.Sleep(200 * time.Millisecond) // the queues register their entries
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(s.mnt, "hello"), &st); err != nil {
		t.Fatal(err)
	}
	if err := s.c.NotifyStore(uint64(inoHello), 0, []byte("HELLO, FUSE\n")); err != nil {
		t.Fatalf("NotifyStore: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	buf := make([]byte, 64)
	off, n, err := s.c.NotifyRetrieve(ctx, uint64(inoHello), 0, buf)
	if err != nil || off != 0 || string(buf[:n]) != "HELLO, FUSE\n" {
		t.Fatalf("NotifyRetrieve over io_uring: off %d, %q, %v; want the stored data", off, buf[:n], err)
	}
	if err := s.c.NotifyInvalInode(uint64(inoHello), 0, 0); err != nil {
		t.Fatalf("NotifyInvalInode: %v", err)
	}
	if _, n, err = s.c.NotifyRetrieve(ctx, uint64(inoHello), 0, buf); err != nil || n != 0 {
		t.Fatalf("NotifyRetrieve after the invalidation: %q, %v; want nothing cached", buf[:n], err)
	}
}
