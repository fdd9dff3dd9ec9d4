package virtiofs_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/dataplane/virtiofs"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/fusetest"
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
	stopAnswersWait(t, g, q, openReq(lnode, 256<<10), "OPEN")
}

// stopAnswersWait adds req, which waits for a host lease, and stops the
// guest's queues: GET_VRING_BASE must come back within 2 s and req be
// answered EINTR.
func stopAnswersWait(t *testing.T, g *vt.Guest, q *vt.GuestQueue, req vt.Buffers, what string) {
	t.Helper()
	head, err := q.Add(req)
	if err != nil {
		t.Fatal(err)
	}
	q.Kick()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if _, err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("GET_VRING_BASE with a %s waiting for a lease took %v", what, d)
	}
	if r := completion(t, q, head, req, what+" after stop"); r.hdr.Error != -int32(unix.EINTR) {
		t.Errorf("%s waiting for a lease after stop: error %d, want -EINTR", what, r.hdr.Error)
	}
}

// longCreateReq is a CREATE (O_WRONLY|O_CREAT, no O_EXCL) of name in the
// root directory carrying request extensions as a Linux guest sends them
// for a labelled create by a caller in the parent's group through a
// supplementary group: a security context block (FUSE_SECURITY_CTX, a
// label of labelLen bytes: skipped unread, since the session did not ask
// for labels) and FUSE_EXT_GROUPS.
func longCreateReq(name string, labelLen int, off uint64) vt.Buffers {
	le := binary.LittleEndian
	a := make([]byte, abi.CreateInSize+len(name)+1)
	(&abi.CreateIn{Flags: unix.O_WRONLY | unix.O_CREAT, Mode: 0o644}).Marshal(a)
	copy(a[abi.CreateInSize:], name)
	ext := append(fusetest.SecctxExt("security.selinux", labelLen), fusetest.GroupsExt(4242)...)
	h := inHeader(abi.OpCreate, 1, len(a)+len(ext))
	le.PutUint16(h[36:], uint16(len(ext)/8)) // total_extlen
	return vt.Buffers{In: [][]byte{h, a, ext},
		Out: []int{abi.OutHeaderSize + abi.EntryOutSize + abi.OpenOutSize}, Offset: off}
}

// TestLeaseCreateLongOffWorker: a CREATE of an existing 255-byte name a
// host process holds a write lease on, longer than a blocking slot's own
// 1 KiB copy (a 900-byte security label and a group: 1,3xx bytes), waits
// on a blocking slot with a copy of its own, not on the queue's worker:
// GETATTRs on the same queue answer at once meanwhile. Giving the lease
// up completes it (the existing file opened, not replaced); stopping the
// queue answers a waiting one EINTR at once. Before, the worker served
// it again itself and slept in the lease break: the queue answered
// nothing until the lease went (up to lease-break-time, 45 s), nor
// GET_VRING_BASE.
func TestLeaseCreateLongOffWorker(t *testing.T) {
	d := newDaemonOpts(t, virtiofs.Options{Tag: "l", RequestQueues: 1, BlockingHelpers: 4})
	g := d.guest(vt.GuestConfig{})
	g.Timeout = 3 * time.Second // a GETATTR behind a waiting worker fails in 3 s, not 10
	node, _ := session(t, g, "f")
	q := g.Queues[1]
	name := strings.Repeat("c", 255)
	lnode, lfd := leasedNode(t, d, q, name)
	create := longCreateReq(name, 900, 256<<10)
	if n := len(create.In[0]) + len(create.In[1]) + len(create.In[2]); n <= 1024 {
		t.Fatalf("a %d-byte CREATE tests nothing (blocking slots hold 1 KiB)", n)
	}
	head, err := q.Add(create)
	if err != nil {
		t.Fatal(err)
	}
	q.Kick()
	time.Sleep(200 * time.Millisecond) // on its blocking slot, in the lease break
	var slowest time.Duration
	for range 10 {
		ga := getattrReq(node)
		ga.Offset = 512 << 10
		t0 := time.Now()
		if _, err := q.Submit(ga); err != nil {
			t.Fatalf("GETATTR while a long CREATE waits for a lease: %v (the queue's worker waits)", err)
		}
		slowest = max(slowest, time.Since(t0))
	}
	t.Logf("slowest of 10 GETATTRs while a long CREATE waits for a lease: %v", slowest)
	if slowest > 500*time.Millisecond {
		t.Errorf("a GETATTR took %v while a long CREATE waited for a host lease, want < 100 ms or so", slowest)
	}
	if _, err := unix.FcntlInt(uintptr(lfd), unix.F_SETLEASE, unix.F_UNLCK); err != nil {
		t.Fatal(err)
	}
	r := completion(t, q, head, create, "long CREATE")
	if r.hdr.Error != 0 {
		t.Fatalf("long CREATE after the lease was given up: %v", unix.Errno(-r.hdr.Error))
	}
	var e abi.EntryOut
	if !e.Unmarshal(r.args) || e.NodeID != lnode {
		t.Fatalf("long CREATE: node %d, want the existing file's %d", e.NodeID, lnode)
	}
	if b, err := os.ReadFile(filepath.Join(d.dir, name)); err != nil || string(b) != "leased" {
		t.Fatalf("the existing file after the CREATE: %q, %v; want it untouched", b, err)
	}

	// A queue stop answers a waiting one.
	name2 := strings.Repeat("d", 255)
	leasedNode(t, d, q, name2)
	stopAnswersWait(t, g, q, longCreateReq(name2, 900, 256<<10), "long CREATE")
}
