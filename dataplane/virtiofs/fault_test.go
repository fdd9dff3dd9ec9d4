package virtiofs_test

import (
	"fmt"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/dataplane/virtiofs"
	"github.com/fastfsd/fastfsd/vhostuser"
	vt "github.com/fastfsd/fastfsd/vhostuser/vhostusertest"
)

// TestShrunkGuestMemory plays a front-end that truncates its guest memory
// file after SET_MEM_TABLE (issue 9: the daemon died of SIGBUS). A request
// whose buffers are gone fails (used length 0) and the other queue serves
// on; a ring that is gone breaks its queue (error eventfd) without killing
// the process; a queue started on memory that is gone drops that
// connection; and the next front-end is served.
func TestShrunkGuestMemory(t *testing.T) {
	for _, helpers := range []int{0, 2} {
		t.Run(fmt.Sprintf("helpers=%d", helpers), func(t *testing.T) {
			shrunkGuestMemory(t, helpers)
		})
	}
}

func shrunkGuestMemory(t *testing.T, helpers int) {
	// The test's own mapping of the shrunk file faults as well: make a
	// mistake here a test failure rather than a crash of the test binary.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	d := newDaemonOpts(t, virtiofs.Options{Tag: "myfs", RequestQueues: 2, Helpers: helpers})
	g := d.guest(vt.GuestConfig{Size: 16})
	var errFds [3]int
	for i := range errFds {
		fd, err := vt.NewEventfd()
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		errFds[i] = fd
		if err := g.F.SetVringFd(vhostuser.VHOST_USER_SET_VRING_ERR, uint32(i), fd); err != nil {
			t.Fatal(err)
		}
	}
	node, fh := session(t, g, "f")
	q1, q2 := g.Queues[1], g.Queues[2]
	memfd := g.Mem.Files[0]

	// 1. Queue 2's data area (the last one) is cut off with a request in
	// it. With helpers, a 128 KiB WRITE (offloaded) is the victim.
	b := getattrReq(node)
	if helpers > 0 {
		b = writeReq(node, fh, 0, pattern(128<<10, 1), 4)
	}
	head, err := q2.Add(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := memfd.Truncate(int64(q2.Data)); err != nil {
		t.Fatal(err)
	}
	q2.Kick()
	id, n, err := q2.Wait()
	if err != nil {
		t.Fatalf("request on shrunk memory: %v (the daemon must answer it)", err)
	}
	if id != head || n != 0 {
		t.Fatalf("request on shrunk memory: used id %d len %d, want id %d len 0 (failed)", id, n, head)
	}
	if ok, _ := vt.WaitCall(errFds[2], 0); ok {
		t.Fatal("queue 2 signalled an error for a request fault; only its request should fail")
	}
	// The other queue serves on, reads and writes included.
	call(t, q1, getattrReq(node))
	call(t, q1, writeReq(node, fh, 0, []byte("still serving"), 1))
	if !strings.Contains(d.log.String(), "no longer backs") {
		t.Errorf("fault not logged; log:\n%s", d.log)
	}

	// 2. All of guest memory goes, rings included: the woken worker
	// faults on its ring and breaks that queue only.
	if _, err := q1.Add(getattrReq(node)); err != nil {
		t.Fatal(err)
	}
	q1.D.Kick() // publish while the ring is still there; the eventfd kick follows
	if err := memfd.Truncate(0); err != nil {
		t.Fatal(err)
	}
	vt.Kick(q1.Ev.Kick)
	if ok, err := vt.WaitCall(errFds[1], 5000); !ok || err != nil {
		t.Fatalf("queue 1: error eventfd not signalled after its ring faulted: %v", err)
	}
	// GET_VRING_BASE is answered for every queue; the session ends cleanly.
	if _, err := g.Stop(); err != nil {
		t.Fatalf("stopping queues after the faults: %v", err)
	}

	// 3. A queue started on memory that is gone (ring.New reads used.idx
	// on the vhost-user goroutine): that connection is dropped.
	v := vt.Vring{Index: 1, Size: q1.Config.Size, Desc: q1.Config.Desc, Avail: q1.Config.Avail, Used: q1.Config.Used}
	ev, err := g.F.StartVring(g.Mem, v, true)
	if err == nil {
		unix.Close(ev.Kick)
		unix.Close(ev.Call)
		// Without REPLY_ACK on the failing message the error shows as
		// the connection closing.
		_, err = g.F.GetVringBase(1)
	}
	if err == nil {
		t.Fatal("starting a ring on memory that is gone succeeded")
	}
	g.F.Close()
	d.sessionEnd()

	// 4. The next front-end is served.
	g2 := d.guest(vt.GuestConfig{})
	node2, fh2 := session(t, g2, "g")
	call(t, g2.Queues[2], writeReq(node2, fh2, 0, []byte("next front-end"), 1))
	call(t, g2.Queues[1], getattrReq(node2))
}

// TestShrunkBlockingRequest: an FSYNC (a blocking op, not a wait) whose
// header is in guest memory but whose arguments are past the end of a
// shrunk memory file. The worker reads the header to place it, then
// copies the request into a blocking slot (toBlocking), which faults:
// the request must fail (used length 0) and the queue serve on. It used
// to give back a lock-wait count the FSYNC never took (panic "waitshare:
// more put back than taken", the daemon gone).
func TestShrunkBlockingRequest(t *testing.T) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	d := newDaemonOpts(t, virtiofs.Options{Tag: "myfs", RequestQueues: 2})
	g := d.guest(vt.GuestConfig{Size: 16})
	node, fh := session(t, g, "f")
	q2 := g.Queues[2] // its data area is the last of guest memory
	page := uint64(unix.Getpagesize())
	cut := (q2.Data + page + page - 1) &^ (page - 1)
	b := fsyncReq(node, fh)
	b.Offset = cut - q2.Data - uint64(len(b.In[0])) // header just below the cut, arguments above
	head, err := q2.Add(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Mem.Files[0].Truncate(int64(cut)); err != nil {
		t.Fatal(err)
	}
	q2.Kick()
	id, n, err := q2.Wait()
	if err != nil {
		t.Fatalf("FSYNC with its arguments on shrunk memory: %v (the daemon must answer it)", err)
	}
	if id != head || n != 0 {
		t.Fatalf("FSYNC with its arguments on shrunk memory: used id %d len %d, want id %d len 0", id, n, head)
	}
	call(t, q2, getattrReq(node)) // the queue serves on (below the cut)
	call(t, g.Queues[1], getattrReq(node))
}

// TestShrunkRingWhilePolling: a ring that faults while its worker polls
// it in an adaptive window breaks that queue, and the worker gives its
// poll turn back: the turns are shared by every device of the process
// (at most NumCPU/2 adaptive pollers), so one kept by a dead worker
// would stop adaptive polling for every queue for good (on 2 CPUs, the
// only turn there is).
func TestShrunkRingWhilePolling(t *testing.T) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	if n := virtiofs.AdaptivePollers(); n != 0 {
		t.Fatalf("%d adaptive poll turns held before the test", n)
	}
	// One request per pause: let the window grow anyway.
	d := newDaemonOpts(t, virtiofs.WithSpinPerRequest(virtiofs.Options{Tag: "myfs", RequestQueues: 2, AdaptivePoll: 5 * time.Second}, time.Hour))
	g := d.guest(vt.GuestConfig{Size: 16})
	errFd, err := vt.NewEventfd()
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(errFd)
	if err := g.F.SetVringFd(vhostuser.VHOST_USER_SET_VRING_ERR, 2, errFd); err != nil {
		t.Fatal(err)
	}
	session(t, g, "f") // on queue 1: queue 2's worker has served nothing, its window is 0
	q2 := g.Queues[2]
	// Each request after a pause longer than the window (and within the
	// 5 s maximum) doubles queue 2's window: 4 µs after the first, 4 µs
	// × 2^15 ≈ 131 ms after the 16th, for about 0.3 s of pauses.
	win := time.Duration(0)
	for range 16 {
		time.Sleep(2 * win)
		call(t, q2, getattrReq(1))
		win = max(2*win, 4*time.Microsecond)
	}
	// The worker now polls the dry ring for ~131 ms: take the ring away
	// under it.
	t0 := time.Now()
	if err := g.Mem.Files[0].Truncate(0); err != nil {
		t.Fatal(err)
	}
	t.Logf("ring cut within %v of the last reply; window ~%v", time.Since(t0), win)
	if ok, err := vt.WaitCall(errFd, 5000); !ok || err != nil {
		t.Fatalf("queue 2: error eventfd not signalled after its ring faulted: %v", err)
	}
	if _, err := g.Stop(); err != nil {
		t.Fatalf("stopping queues after the fault: %v", err)
	}
	if n := virtiofs.AdaptivePollers(); n != 0 {
		t.Fatalf("%d adaptive poll turns held after every worker stopped (a faulted worker kept its turn)", n)
	}
}
