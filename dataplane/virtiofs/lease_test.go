package virtiofs_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/dataplane/virtiofs"
	"github.com/fastfsd/fastfsd/fuse/abi"
	vt "github.com/fastfsd/fastfsd/vhostuser/vhostusertest"
)

// leasedNode makes name in the daemon's directory, takes a write lease on
// it from this process (F_SETLEASE F_WRLCK, as another host process
// would; no F_SETOWN, so the break notice is ignored) and looks it up.
// It returns the node and the lease fd.
func leasedNode(t *testing.T, d *daemon, q *vt.GuestQueue, name string) (uint64, int) {
	t.Helper()
	p := filepath.Join(d.dir, name)
	if err := os.WriteFile(p, []byte("leased"), 0o644); err != nil {
		t.Fatal(err)
	}
	nm := append([]byte(name), 0)
	r := call(t, q, vt.Buffers{In: [][]byte{inHeader(abi.OpLookup, 1, len(nm)), nm},
		Out: []int{abi.OutHeaderSize + abi.EntryOutSize}})
	var e abi.EntryOut
	if !e.Unmarshal(r.args) || e.NodeID == 0 {
		t.Fatalf("LOOKUP %s: %x", name, r.args)
	}
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETLEASE, unix.F_WRLCK); err != nil {
		t.Skipf("F_SETLEASE F_WRLCK: %v (needs to own the file or CAP_LEASE)", err)
	}
	return e.NodeID, fd
}

func openReq(node uint64, off uint64) vt.Buffers {
	a := make([]byte, abi.OpenInSize)
	(&abi.OpenIn{Flags: unix.O_RDONLY}).Marshal(a)
	return vt.Buffers{In: [][]byte{inHeader(abi.OpOpen, node, len(a)), a},
		Out: []int{abi.OutHeaderSize + abi.OpenOutSize}, Offset: off}
}

// TestLeaseOpenOffWorker: an OPEN of a file another host process holds a
// write lease on waits (until the lease is given up) on a blocking slot,
// not on the queue's worker: GETATTRs on the same queue answer at once
// meanwhile (hostile finding: on /dev/fuse such opens took every worker
// for up to lease-break-time, 45 s). Giving the lease up completes the
// open; stopping the queue answers a waiting open EINTR at once.
func TestLeaseOpenOffWorker(t *testing.T) {
	d := newDaemonOpts(t, virtiofs.Options{Tag: "l", RequestQueues: 1, BlockingHelpers: 4})
	g := d.guest(vt.GuestConfig{})
	node, _ := session(t, g, "f")
	q := g.Queues[1]
	lnode, lfd := leasedNode(t, d, q, "l")
	open := openReq(lnode, 256<<10)
	head, err := q.Add(open)
	if err != nil {
		t.Fatal(err)
	}
	q.Kick()
	time.Sleep(200 * time.Millisecond)
	t0 := time.Now()
	for range 20 {
		ga := getattrReq(node)
		ga.Offset = 512 << 10
		call(t, q, ga)
	}
	d20 := time.Since(t0)
	t.Logf("20 GETATTRs while an OPEN waits for a lease: %v", d20)
	if d20 > 2*time.Second {
		t.Errorf("20 GETATTRs took %v while an OPEN waited for a host lease, want < 2 s", d20)
	}
	if _, err := unix.FcntlInt(uintptr(lfd), unix.F_SETLEASE, unix.F_UNLCK); err != nil {
		t.Fatal(err)
	}
	if r := completion(t, q, head, open, "OPEN"); r.hdr.Error != 0 {
		t.Fatalf("OPEN after the lease was given up: %v", unix.Errno(-r.hdr.Error))
	}

	// A queue stop answers a waiting open.
	lnode, _ = leasedNode(t, d, q, "l2")
	open = openReq(lnode, 256<<10)
	if head, err = q.Add(open); err != nil {
		t.Fatal(err)
	}
	q.Kick()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if _, err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("GET_VRING_BASE with an OPEN waiting for a lease took %v", d)
	}
	if r := completion(t, q, head, open, "OPEN after stop"); r.hdr.Error != -int32(unix.EINTR) {
		t.Errorf("OPEN waiting for a lease after stop: error %d, want -EINTR", r.hdr.Error)
	}
}
