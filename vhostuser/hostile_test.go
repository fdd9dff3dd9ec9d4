package vhostuser_test

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/mem"
	"github.com/fastfsd/fastfsd/vhostuser"
	vt "github.com/fastfsd/fastfsd/vhostuser/vhostusertest"
	"golang.org/x/sys/unix"
)

// TestHugeSparseRegions plays a front-end that claims more guest memory
// than the daemon's address space holds: a sparse memfd of 64 TiB (costs
// the front-end nothing) offered as regions of 32 TiB, 16 TiB, … 1 GiB.
// Each mapping the back-end accepted used address space without using
// memory; once the front-end had taken nearly all of it, the Go runtime's
// next heap growth failed with "fatal error: out of memory" and the whole
// daemon died. The back-end must refuse regions past its mapping budget
// (mem.MaxMapped), keep serving, and the process must still be able to
// allocate.
func TestHugeSparseRegions(t *testing.T) {
	h := start(t, 1)
	h.qemuStart()
	const fileSize = 1 << 46 // 64 TiB, sparse
	f, err := mem.NewMemfd("huge", fileSize)
	if err != nil {
		t.Skipf("a 64 TiB sparse memfd: %v", err)
	}
	defer f.Close()
	var accepted, refused uint64
	gpa := uint64(1 << 52)
	for size := uint64(fileSize / 2); size >= 1<<30; {
		r := vt.Region{GuestAddr: gpa, Size: size, UserAddr: gpa}
		err := h.f.AddMemReg(r, int(f.Fd()))
		var nack *vt.NackError
		switch {
		case err == nil:
			accepted += size
			gpa += size
		case errors.As(err, &nack):
			refused++
			size /= 2
		default:
			t.Fatalf("ADD_MEM_REG of %d GiB: %v (want acceptance or a refusal)", size>>30, err)
		}
	}
	t.Logf("accepted %d GiB of sparse regions, %d refusals; budget %d GiB", accepted>>30, refused, mem.MaxMapped()>>30)
	if accepted > uint64(mem.MaxMapped()) {
		t.Fatalf("accepted %d GiB of regions, more than the mapping budget of %d GiB", accepted>>30, mem.MaxMapped()>>30)
	}
	// The process can still grow its heap.
	b := make([]byte, 1<<30)
	b[len(b)-1] = 1
	// And the session still serves.
	if _, err := h.f.GetU64(vhostuser.VHOST_USER_GET_FEATURES); err != nil {
		t.Fatal(err)
	}
	h.stopAll()
}

// fullBlockingEventfd returns a blocking eventfd whose counter is at its
// maximum (0xfffffffffffffffe): a write of 1 to it blocks for ever. A
// front-end can hand the back-end such a notifier; QEMU's are non-blocking.
func fullBlockingEventfd(t *testing.T) int {
	t.Helper()
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if _, err := unix.Write(fd, vt.U64(0xfffffffffffffffe)); err != nil {
		t.Fatal(err)
	}
	return fd
}

// TestVringFdsHostile: the notifier fds a front-end passes with
// SET_VRING_KICK, CALL and ERR must be eventfds, and the back-end must
// never block on one. A blocking eventfd at its maximum as the error
// notifier used to hang the session goroutine in write(2) the first time
// a ring could not start (every later message unanswered, GET_VRING_BASE
// included, and the device busy for the next front-end); a pipe, a
// regular file or a socket used to be taken as a notifier (a pipe kick fd
// whose writer closed reads as always ready: a worker spinning for ever).
func TestVringFdsHostile(t *testing.T) {
	h := start(t, 1)
	h.qemuStart()
	f := h.f
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	file, err := os.CreateTemp(t.TempDir(), "notifier")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	// Files of the kernel's anonymous inode, as an eventfd is, that poll
	// readable for ever while a read of 8 bytes fails (EINVAL) and
	// consumes nothing: as a kick fd, a worker spinning for ever. An
	// epoll instance watching a signalled eventfd, an inotify instance
	// with an event queued.
	ready, _ := vt.NewEventfd()
	defer unix.Close(ready)
	if _, err := unix.Write(ready, vt.U64(1)); err != nil {
		t.Fatal(err)
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ep)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, ready, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(ready)}); err != nil {
		t.Fatal(err)
	}
	ino, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ino)
	if _, err := unix.InotifyAddWatch(ino, file.Name(), unix.IN_ATTRIB); err != nil {
		t.Fatal(err)
	}
	if err := file.Chmod(0o640); err != nil {
		t.Fatal(err)
	}
	for name, fd := range map[string]int{"epoll": ep, "inotify": ino} {
		var b [8]byte
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, _ := unix.Poll(pfd, 0); n != 1 {
			t.Fatalf("the %s fd does not poll readable", name)
		}
		if _, err := unix.Read(fd, b[:]); err != unix.EINVAL {
			t.Fatalf("read of 8 bytes from the %s fd: %v, want EINVAL", name, err)
		}
	}
	for _, req := range []vhostuser.Request{vhostuser.VHOST_USER_SET_VRING_KICK, vhostuser.VHOST_USER_SET_VRING_CALL, vhostuser.VHOST_USER_SET_VRING_ERR} {
		for name, fd := range map[string]int{"pipe": p[0], "file": int(file.Fd()), "memfd": int(h.g.Files[0].Fd()), "epoll": ep, "inotify": ino} {
			err := f.SetVringFd(req, 0, fd)
			var nack *vt.NackError
			if !errors.As(err, &nack) {
				t.Errorf("%v with a %s: %v, want a refusal", req, name, err)
			}
		}
	}
	if n := h.dev.nrunning(); n != 1 {
		t.Fatalf("%d rings running after refused notifiers, want 1 (a refused fd changes nothing)", n)
	}

	// A blocking, full eventfd as the error notifier, then a ring that
	// cannot start (its descriptor table runs past guest memory): the
	// back-end signals the error eventfd and must not block on it.
	errFd := fullBlockingEventfd(t)
	if err := f.SetVringFd(vhostuser.VHOST_USER_SET_VRING_ERR, 0, errFd); err != nil {
		t.Fatal(err)
	}
	f.Conn().SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := f.GetVringBase(0); err != nil {
		t.Fatal(err)
	}
	end := h.g.Regions[0].UserAddr + h.g.Regions[0].Size
	if err := f.SetVringAddr(0, end-16, end-0x800, end-0x1000); err != nil {
		t.Fatalf("SET_VRING_ADDR: %v", err)
	}
	ev, _ := vt.NewEventfd()
	defer unix.Close(ev)
	done := make(chan error, 1)
	go func() { done <- f.SetVringFd(vhostuser.VHOST_USER_SET_VRING_KICK, 0, ev) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("SET_VRING_KICK: %v", err)
		}
	case <-time.After(6 * time.Second):
		t.Fatal("the back-end hung on a front-end's full, blocking error eventfd")
	}
	if _, err := f.GetU64(vhostuser.VHOST_USER_GET_FEATURES); err != nil {
		t.Fatalf("session after a full error eventfd: %v", err)
	}
	f.Conn().SetDeadline(time.Time{})
}

// openFds counts this process's open fds.
func openFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("counting fds: %v", err)
	}
	return len(ents)
}

// TestBadMessagesLeakNoFds sends 1000 refused messages carrying fds (too
// many, of the wrong kind, for the wrong request, with a bad index or
// shape) and checks the back-end closed every one it was given.
func TestBadMessagesLeakNoFds(t *testing.T) {
	h := start(t, 2)
	h.qemuStart()
	f := h.f
	ev, _ := vt.NewEventfd()
	defer unix.Close(ev)
	memfd := int(h.g.Files[0].Fd())
	eight := []int{ev, ev, ev, ev, ev, ev, ev, ev}
	bad := []struct {
		req vhostuser.Request
		p   []byte
		fds []int
	}{
		{vhostuser.VHOST_USER_SET_VRING_KICK, vt.U64(7), []int{ev}},
		{vhostuser.VHOST_USER_SET_VRING_CALL, vt.U64(0), []int{ev, ev}},
		{vhostuser.VHOST_USER_SET_VRING_ERR, vt.U64(0 | 1<<8), []int{ev}},
		{vhostuser.VHOST_USER_SET_LOG_FD, nil, []int{ev}},
		{vhostuser.VHOST_USER_SET_MEM_TABLE, memTable(h.g.Regions...), eight},
		{vhostuser.VHOST_USER_SET_MEM_TABLE, memTable(vt.Region{Size: 1 << 30, UserAddr: 1 << 40}), []int{memfd}},
		{vhostuser.VHOST_USER_ADD_MEM_REG, append(make([]byte, 8), vt.RegionBytes(h.g.Regions[0])...), []int{memfd}},
		{vhostuser.VHOST_USER_ADD_MEM_REG, append(make([]byte, 8), vt.RegionBytes(vt.Region{GuestAddr: 1 << 40, Size: 4096, UserAddr: 1 << 41})...), []int{ev}},
		{vhostuser.VHOST_USER_SET_VRING_NUM, vt.State(0, 100), []int{ev}},
		{99, make([]byte, 20), eight},
	}
	// Warm up (lazily opened fds of the runtime and test), then count.
	for _, b := range bad {
		f.Do(b.req, b.p, b.fds...)
	}
	before := openFds(t)
	for i := 0; i < 1000; i++ {
		b := bad[i%len(bad)]
		var nack *vt.NackError
		if err := f.Do(b.req, b.p, b.fds...); !errors.As(err, &nack) {
			t.Fatalf("message %d (%v): %v, want a refusal", i, b.req, err)
		}
	}
	// The back-end closes a message's fds after its reply: allow it a
	// moment for the last one. (Earlier tests' sessions may still be
	// closing theirs, so fewer than before is fine; a leak of 1000
	// messages' fds is not.)
	after := openFds(t)
	for deadline := time.Now().Add(2 * time.Second); after > before && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		after = openFds(t)
	}
	if after > before {
		t.Fatalf("%d fds open after 1000 refused messages, %d before", after, before)
	}
	h.stopAll()
}

// TestVringMessagesHostile: ring and memory messages with absurd values
// are refused or leave the ring stopped; the session goes on.
func TestVringMessagesHostile(t *testing.T) {
	h := start(t, 2)
	f := h.f
	// GET_VRING_BASE on a ring never set up answers its base (0).
	if _, _, _, err := f.Init(allProtocol); err != nil {
		t.Fatal(err)
	}
	if base, err := f.GetVringBase(1); err != nil || base != 0 {
		t.Fatalf("GET_VRING_BASE of a ring never started = %d, %v; want 0", base, err)
	}
	h.f.Close()
	h.wait()

	h = start(t, 2)
	f = h.f
	h.qemuStart()
	ev, _ := vt.NewEventfd()
	defer unix.Close(ev)
	nine := make([]vt.Region, 9)
	nineFds := make([]int, 9)
	for i := range nine {
		nine[i] = vt.Region{GuestAddr: uint64(i) << 30, Size: 4096, UserAddr: 1<<44 + uint64(i)<<30}
		nineFds[i] = int(h.g.Files[0].Fd())
	}
	for _, tc := range []struct {
		name string
		req  vhostuser.Request
		p    []byte
		fds  []int
	}{
		{"num 0", vhostuser.VHOST_USER_SET_VRING_NUM, vt.State(0, 0), nil},
		{"num 2^31", vhostuser.VHOST_USER_SET_VRING_NUM, vt.State(0, 1<<31), nil},
		{"base index", vhostuser.VHOST_USER_SET_VRING_BASE, vt.State(5, 0), nil},
		{"base above 16 bits", vhostuser.VHOST_USER_SET_VRING_BASE, vt.State(0, 1<<16), nil},
		{"enable index", vhostuser.VHOST_USER_SET_VRING_ENABLE, vt.State(1<<31, 1), nil},
		{"mem table 0 regions", vhostuser.VHOST_USER_SET_MEM_TABLE, memTable(), nil},
		{"mem table 9 regions", vhostuser.VHOST_USER_SET_MEM_TABLE, memTable(nine...), nineFds[:8]},
		{"region gpa wraps", vhostuser.VHOST_USER_ADD_MEM_REG, append(make([]byte, 8), vt.RegionBytes(vt.Region{GuestAddr: 1<<64 - 4096, Size: 8192, UserAddr: 1 << 44})...), []int{ev}},
		{"region empty", vhostuser.VHOST_USER_ADD_MEM_REG, append(make([]byte, 8), vt.RegionBytes(vt.Region{GuestAddr: 1 << 40, Size: 0, UserAddr: 1 << 44})...), []int{int(h.g.Files[0].Fd())}},
		{"region user overlap", vhostuser.VHOST_USER_ADD_MEM_REG, append(make([]byte, 8), vt.RegionBytes(vt.Region{GuestAddr: 1 << 40, Size: 4096, UserAddr: h.g.Regions[0].UserAddr})...), []int{int(h.g.Files[0].Fd())}},
		{"addr index", vhostuser.VHOST_USER_SET_VRING_ADDR, addr(9, vt.UserBase, vt.UserBase, vt.UserBase), nil},
	} {
		err := f.Do(tc.req, tc.p, tc.fds...)
		var nack *vt.NackError
		if !errors.As(err, &nack) {
			t.Errorf("%s: %v, want a refusal", tc.name, err)
		}
	}
	if n := h.dev.nrunning(); n != 2 {
		t.Fatalf("%d rings running after the refusals, want 2", n)
	}
	// A descriptor table straddling two regions adjacent in both address
	// spaces (each ring area must lie in one region): accepted as an
	// address, but the ring does not start, and the error eventfd says so.
	errFd, _ := vt.NewEventfd()
	defer unix.Close(errFd)
	if err := f.SetVringFd(vhostuser.VHOST_USER_SET_VRING_ERR, 0, errFd); err != nil {
		t.Fatal(err)
	}
	if _, err := f.GetVringBase(0); err != nil {
		t.Fatal(err)
	}
	r0 := h.g.Regions[0]
	if r1 := h.g.Regions[1]; r1.GuestAddr != r0.GuestAddr+r0.Size || r1.UserAddr != r0.UserAddr+r0.Size {
		t.Fatalf("test set-up: regions 0 and 1 not adjacent: %+v %+v", r0, r1)
	}
	end := r0.UserAddr + r0.Size
	if err := f.SetVringAddr(0, end-2048, vt.UserBase+0x2000, vt.UserBase+0x3000); err != nil {
		t.Fatalf("SET_VRING_ADDR straddling: %v", err)
	}
	if err := f.SetVringFd(vhostuser.VHOST_USER_SET_VRING_KICK, 0, ev); err != nil {
		t.Fatal(err)
	}
	if n := h.dev.nrunning(); n != 1 {
		t.Fatalf("%d rings running, want 1: a ring straddling two regions must not start", n)
	}
	if ok, err := vt.WaitCall(errFd, 1000); !ok || err != nil {
		t.Fatalf("error eventfd not signalled for the ring that could not start: %v", err)
	}
	if _, err := f.GetU64(vhostuser.VHOST_USER_GET_FEATURES); err != nil {
		t.Fatal(err)
	}
}
