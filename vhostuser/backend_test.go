package vhostuser_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/vhostuser"
	vt "github.com/fastfsd/fastfsd/vhostuser/vhostusertest"
	"golang.org/x/sys/unix"
)

// fakeDevice records what the back-end asks of it.
type fakeDevice struct {
	mu      sync.Mutex
	queues  int
	running map[int]*vhostuser.Queue
	events  []string
	resets  int
	// advance is added to NextAvail on stop, to check GET_VRING_BASE
	// returns what the device says.
	advance uint16
	channel *vhostuser.Channel
}

func newFake(queues int) *fakeDevice {
	return &fakeDevice{queues: queues, running: map[int]*vhostuser.Queue{}, advance: 3}
}

const fakeFeatures = 1<<vhostuser.VIRTIO_F_VERSION_1 | 1<<vhostuser.VIRTIO_RING_F_EVENT_IDX

func (d *fakeDevice) Features() uint64  { return fakeFeatures }
func (d *fakeDevice) QueueCount() int   { return d.queues }
func (d *fakeDevice) MaxQueueSize() int { return 1024 }
func (d *fakeDevice) Config() []byte {
	c := make([]byte, 40)
	copy(c, "myfs")
	c[36] = byte(d.queues - 1)
	return c
}

func (d *fakeDevice) StartQueue(q *vhostuser.Queue) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.running[q.Index] != nil {
		return fmt.Errorf("queue %d started twice", q.Index)
	}
	for _, fd := range []int{q.Kick, q.Call} {
		if fd >= 0 {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
				return fmt.Errorf("queue %d: fd %d not open", q.Index, fd)
			}
		}
	}
	if _, ok := q.Memory.Table().Slice(q.Desc, 16*uint64(q.Size)); !ok {
		return fmt.Errorf("queue %d: desc not in memory", q.Index)
	}
	c := *q
	d.running[q.Index] = &c
	d.events = append(d.events, fmt.Sprintf("start %d base %d", q.Index, q.NextAvail))
	return nil
}

func (d *fakeDevice) StopQueue(i int) uint16 {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.running[i]
	if q == nil {
		panic("stop of a queue not running")
	}
	delete(d.running, i)
	d.events = append(d.events, fmt.Sprintf("stop %d", i))
	return q.NextAvail + d.advance
}

func (d *fakeDevice) Reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.running) != 0 {
		panic("reset with queues running")
	}
	d.resets++
}

func (d *fakeDevice) since(n int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.events[n:]...)
}

func (d *fakeDevice) nevents() int { d.mu.Lock(); defer d.mu.Unlock(); return len(d.events) }

func (d *fakeDevice) SetChannel(c *vhostuser.Channel) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.channel = c
	d.events = append(d.events, fmt.Sprintf("channel %v", c != nil))
}

func (d *fakeDevice) getChannel() *vhostuser.Channel {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.channel
}

func (d *fakeDevice) nrunning() int { d.mu.Lock(); defer d.mu.Unlock(); return len(d.running) }

const allProtocol = 1<<vhostuser.VHOST_USER_PROTOCOL_F_MQ | 1<<vhostuser.VHOST_USER_PROTOCOL_F_REPLY_ACK |
	1<<vhostuser.VHOST_USER_PROTOCOL_F_BACKEND_REQ |
	1<<vhostuser.VHOST_USER_PROTOCOL_F_MEM_SLOTS | 1<<vhostuser.VHOST_USER_PROTOCOL_F_STATUS |
	1<<vhostuser.VHOST_USER_PROTOCOL_F_RESET_DEVICE

type harness struct {
	t   *testing.T
	dev *fakeDevice
	f   *vt.Frontend
	g   *vt.GuestMemory
	err chan error
	fds []vt.Eventfds
	log *logBuf
}

type logBuf struct {
	mu sync.Mutex
	b  []byte
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b = append(l.b, p...)
	l.mu.Unlock()
	return len(p), nil
}

func (l *logBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return string(l.b) }

func start(t *testing.T, queues int) *harness {
	t.Helper()
	h := &harness{t: t, dev: newFake(queues), err: make(chan error, 1), log: &logBuf{}}
	b := vhostuser.NewBackend(h.dev)
	b.Log = slog.New(slog.NewTextHandler(h.log, nil))
	f, c, err := vt.Pair()
	if err != nil {
		t.Fatal(err)
	}
	h.f = f
	go func() { h.err <- b.Serve(c) }()
	g, err := vt.NewGuestMemory(0, 1<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	h.g = g
	t.Cleanup(func() {
		f.Close()
		g.Close()
		for _, e := range h.fds {
			unix.Close(e.Kick)
			unix.Close(e.Call)
		}
		if t.Failed() {
			t.Logf("back-end log:\n%s", h.log)
		}
	})
	return h
}

// qemuStart runs QEMU's init + start sequence for all queues.
func (h *harness) qemuStart() {
	t := h.t
	t.Helper()
	feat, proto, q, err := h.f.Init(allProtocol)
	if err != nil {
		t.Fatal(err)
	}
	if feat != fakeFeatures|1<<vhostuser.VHOST_USER_F_PROTOCOL_FEATURES || proto != allProtocol || q != h.dev.queues {
		t.Fatalf("negotiated features %#x protocol %#x queues %d", feat, proto, q)
	}
	if n, err := h.f.GetU64(vhostuser.VHOST_USER_GET_MAX_MEM_SLOTS); err != nil || n < 8 {
		t.Fatalf("GET_MAX_MEM_SLOTS = %d, %v", n, err)
	}
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sp[0])
	defer unix.Close(sp[1])
	if err := h.f.Do(vhostuser.VHOST_USER_SET_BACKEND_REQ_FD, nil, sp[1]); err != nil {
		t.Fatal(err)
	}
	if err := h.f.Do(vhostuser.VHOST_USER_SET_FEATURES, vt.U64(feat)); err != nil {
		t.Fatal(err)
	}
	if err := h.f.SetMemTable(h.g.Regions, h.g.Fds()); err != nil {
		t.Fatal(err)
	}
	gpa := uint64(0x1000)
	for i := 0; i < h.dev.queues; i++ {
		var v vt.Vring
		v, gpa = vt.Layout(uint32(i), 256, gpa)
		v.Base = uint16(10 * i)
		e, err := h.f.StartVring(h.g, v, false)
		if err != nil {
			t.Fatal(err)
		}
		h.fds = append(h.fds, e)
	}
	if n := h.dev.nrunning(); n != 0 {
		t.Fatalf("%d queues run before SET_VRING_ENABLE", n)
	}
	for i := 0; i < h.dev.queues; i++ {
		if err := h.f.Do(vhostuser.VHOST_USER_SET_VRING_ENABLE, vt.State(uint32(i), 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.f.Do(vhostuser.VHOST_USER_SET_STATUS, vt.U64(15)); err != nil {
		t.Fatal(err)
	}
	if n := h.dev.nrunning(); n != h.dev.queues {
		t.Fatalf("%d queues running, want %d", n, h.dev.queues)
	}
}

func (h *harness) stopAll() {
	h.t.Helper()
	for i := 0; i < h.dev.queues; i++ {
		base, err := h.f.GetVringBase(uint32(i))
		if err != nil {
			h.t.Fatal(err)
		}
		if want := uint32(10*i) + uint32(h.dev.advance); base != want {
			h.t.Fatalf("GET_VRING_BASE(%d) = %d, want %d", i, base, want)
		}
	}
	if n := h.dev.nrunning(); n != 0 {
		h.t.Fatalf("%d queues still running after GET_VRING_BASE", n)
	}
}

func (h *harness) wait() error {
	h.t.Helper()
	select {
	case err := <-h.err:
		return err
	case <-time.After(10 * time.Second):
		h.t.Fatal("Serve did not return")
		return nil
	}
}

func TestQEMUSequence(t *testing.T) {
	h := start(t, 3)
	h.qemuStart()
	p, err := h.f.Call(vhostuser.VHOST_USER_GET_CONFIG, append([]byte{0, 0, 0, 0, 40, 0, 0, 0, 0, 0, 0, 0}, make([]byte, 40)...))
	if err != nil || len(p) != 52 || string(p[12:16]) != "myfs" || p[12+36] != 2 {
		t.Fatalf("GET_CONFIG = %x, %v", p, err)
	}
	if st, err := h.f.GetU64(vhostuser.VHOST_USER_GET_STATUS); err != nil || st != 15 {
		t.Fatalf("GET_STATUS = %d, %v", st, err)
	}
	h.stopAll()
	// A second start on the same connection, as after a guest reboot.
	for i := 0; i < h.dev.queues; i++ {
		k, _ := vt.NewEventfd()
		if err := h.f.SetVringFd(vhostuser.VHOST_USER_SET_VRING_KICK, uint32(i), k); err != nil {
			t.Fatal(err)
		}
		unix.Close(k)
	}
	if n := h.dev.nrunning(); n != h.dev.queues {
		t.Fatalf("%d queues running after re-kick, want %d", n, h.dev.queues)
	}
	// A call fd swap restarts the ring around the change.
	c, _ := vt.NewEventfd()
	defer unix.Close(c)
	if err := h.f.SetVringFd(vhostuser.VHOST_USER_SET_VRING_CALL, 1, c); err != nil {
		t.Fatal(err)
	}
	if n := h.dev.nrunning(); n != h.dev.queues {
		t.Fatalf("%d queues running after call swap", n)
	}
	for i := 0; i < h.dev.queues; i++ {
		if _, err := h.f.GetVringBase(uint32(i)); err != nil {
			t.Fatal(err)
		}
	}
	h.f.Close()
	if err := h.wait(); !errors.Is(err, vhostuser.ErrClosed) {
		t.Fatalf("Serve = %v, want ErrClosed", err)
	}
	if h.dev.resets == 0 {
		t.Fatal("device not reset at disconnect")
	}
}

func TestDisconnectWithRingsRunning(t *testing.T) {
	h := start(t, 2)
	h.qemuStart()
	h.f.Close()
	err := h.wait()
	if !errors.Is(err, vhostuser.ErrDisconnected) || errors.Is(err, vhostuser.ErrClosed) {
		t.Fatalf("Serve = %v, want ErrDisconnected", err)
	}
	if n := h.dev.nrunning(); n != 0 {
		t.Fatalf("%d queues running after disconnect", n)
	}
}

func TestDisconnectMidMessage(t *testing.T) {
	h := start(t, 1)
	h.f.SendRaw([]byte{2, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 1, 2})
	h.f.Close()
	if err := h.wait(); !errors.Is(err, vhostuser.ErrDisconnected) {
		t.Fatalf("Serve = %v, want ErrDisconnected", err)
	}
}

// TestRefused sends malformed messages that keep the stream in sync: each
// is refused (non-zero ack) and the session goes on.
func TestRefused(t *testing.T) {
	h := start(t, 2)
	h.qemuStart()
	ev, _ := vt.NewEventfd()
	defer unix.Close(ev)
	f := h.f
	for _, tc := range []struct {
		name string
		req  vhostuser.Request
		p    []byte
		fds  []int
	}{
		{"features not offered", vhostuser.VHOST_USER_SET_FEATURES, vt.U64(1 << 60), nil},
		{"protocol not offered", vhostuser.VHOST_USER_SET_PROTOCOL_FEATURES, vt.U64(1 << 1), nil},
		{"num short", vhostuser.VHOST_USER_SET_VRING_NUM, []byte{0, 0, 0, 0}, nil},
		{"num index", vhostuser.VHOST_USER_SET_VRING_NUM, vt.State(2, 256), nil},
		{"num huge index", vhostuser.VHOST_USER_SET_VRING_NUM, vt.State(1<<31, 256), nil},
		{"num not pow2", vhostuser.VHOST_USER_SET_VRING_NUM, vt.State(0, 100), nil},
		{"num above max", vhostuser.VHOST_USER_SET_VRING_NUM, vt.State(0, 2048), nil},
		{"num while running", vhostuser.VHOST_USER_SET_VRING_NUM, vt.State(0, 128), nil},
		{"base while running", vhostuser.VHOST_USER_SET_VRING_BASE, vt.State(0, 1), nil},
		{"kick index", vhostuser.VHOST_USER_SET_VRING_KICK, vt.U64(7), []int{ev}},
		{"kick two fds", vhostuser.VHOST_USER_SET_VRING_KICK, vt.U64(0), []int{ev, ev}},
		{"call no fd", vhostuser.VHOST_USER_SET_VRING_CALL, vt.U64(0), nil},
		{"enable 2", vhostuser.VHOST_USER_SET_VRING_ENABLE, vt.State(0, 2), nil},
		{"addr misaligned", vhostuser.VHOST_USER_SET_VRING_ADDR, addr(0, vt.UserBase+8, vt.UserBase+0x2000, vt.UserBase+0x3000), nil},
		{"addr outside memory", vhostuser.VHOST_USER_SET_VRING_ADDR, addr(0, 0x1000, vt.UserBase+0x2000, vt.UserBase+0x3000), nil},
		{"addr log", vhostuser.VHOST_USER_SET_VRING_ADDR, func() []byte { b := addr(0, vt.UserBase, vt.UserBase, vt.UserBase); b[4] = 1; return b }(), nil},
		{"log base", vhostuser.VHOST_USER_SET_LOG_BASE, make([]byte, 16), []int{ev}},
		{"log fd", vhostuser.VHOST_USER_SET_LOG_FD, nil, []int{ev}},
		{"set config", vhostuser.VHOST_USER_SET_CONFIG, []byte{0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, nil},
		{"mem table fds", vhostuser.VHOST_USER_SET_MEM_TABLE, memTable(h.g.Regions...), []int{ev}},
		{"mem table overlap", vhostuser.VHOST_USER_SET_MEM_TABLE, memTable(h.g.Regions[0], h.g.Regions[0]), []int{ev, ev}},
		{"mem table fd too small", vhostuser.VHOST_USER_SET_MEM_TABLE, memTable(vt.Region{Size: 1 << 30, UserAddr: 1 << 40}), []int{int(h.g.Files[0].Fd())}},
		{"add mem reg overlap", vhostuser.VHOST_USER_ADD_MEM_REG, append(make([]byte, 8), vt.RegionBytes(h.g.Regions[0])...), []int{int(h.g.Files[0].Fd())}},
		{"add mem reg two fds", vhostuser.VHOST_USER_ADD_MEM_REG, append(make([]byte, 8), vt.RegionBytes(h.g.Regions[0])...), []int{ev, ev}},
		{"rem mem reg unknown", vhostuser.VHOST_USER_REM_MEM_REG, append(make([]byte, 8), vt.RegionBytes(vt.Region{GuestAddr: 1 << 40, Size: 4096})...), nil},
		{"status not a byte", vhostuser.VHOST_USER_SET_STATUS, vt.U64(0x100), nil},
		{"owner with payload", vhostuser.VHOST_USER_SET_OWNER, vt.U64(0), nil},
		{"in-band kick", vhostuser.VHOST_USER_VRING_KICK, vt.State(0, 0), nil},
		{"unknown request", 99, make([]byte, 20), []int{ev}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := f.Do(tc.req, tc.p, tc.fds...)
			var nack *vt.NackError
			if !errors.As(err, &nack) {
				t.Fatalf("%v: %v, want a refusal", tc.req, err)
			}
		})
	}
	if n := h.dev.nrunning(); n != 2 {
		t.Fatalf("%d queues running after the refusals, want 2", n)
	}
	if testing.Verbose() {
		t.Logf("log:\n%s", h.log)
	}
	// The session still works.
	if _, err := f.GetU64(vhostuser.VHOST_USER_GET_FEATURES); err != nil {
		t.Fatal(err)
	}
	// No fd leaked by refusals: ev is ours; the back-end closed its copies.
	h.stopAll()
}

func addr(i uint32, desc, used, avail uint64) []byte {
	b := make([]byte, 40)
	le.PutUint32(b, i)
	le.PutUint64(b[8:], desc)
	le.PutUint64(b[16:], used)
	le.PutUint64(b[24:], avail)
	return b
}

func memTable(regs ...vt.Region) []byte {
	b := make([]byte, 8)
	le.PutUint32(b, uint32(len(regs)))
	for _, r := range regs {
		b = append(b, vt.RegionBytes(r)...)
	}
	return b
}

// TestFatal sends messages after which the session cannot go on.
func TestFatal(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"bad version", []byte{1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0}},
		{"reply flag", []byte{1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0}},
		{"huge size", []byte{1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x10}},
		{"get with payload", []byte{1, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"get vring base bad index", []byte{11, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0}},
		{"get inflight fd", []byte{31, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, 1)
			h.f.SendRaw(tc.b)
			err := h.wait()
			if !errors.Is(err, vhostuser.ErrInvalidMessage) {
				t.Fatalf("Serve = %v, want ErrInvalidMessage", err)
			}
		})
	}
}

// TestGetConfigRefused: a refused GET_CONFIG is answered with an empty
// payload (the spec's failure reply), and the session goes on.
func TestGetConfigRefused(t *testing.T) {
	h := start(t, 1)
	p, err := h.f.Call(vhostuser.VHOST_USER_GET_CONFIG, append([]byte{30, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0}, make([]byte, 20)...))
	if err != nil || len(p) != 0 {
		t.Fatalf("GET_CONFIG out of range = %x, %v; want empty reply", p, err)
	}
	if _, err := h.f.GetU64(vhostuser.VHOST_USER_GET_FEATURES); err != nil {
		t.Fatal(err)
	}
}

// TestMemoryUnderLoad adds and removes regions while rings run: rings whose
// areas do not move keep running.
func TestMemoryUpdates(t *testing.T) {
	h := start(t, 2)
	h.qemuStart()
	r := vt.Region{GuestAddr: 1 << 30, Size: 1 << 20, UserAddr: vt.UserBase + 1<<30}
	if err := h.g.Add(r); err != nil {
		t.Fatal(err)
	}
	before := h.dev.nevents()
	for i := 0; i < 20; i++ {
		if err := h.f.AddMemReg(r, int(h.g.Files[2].Fd())); err != nil {
			t.Fatal(err)
		}
		if err := h.f.RemMemReg(r); err != nil {
			t.Fatal(err)
		}
	}
	if ev := h.dev.since(before); len(ev) != 0 {
		t.Fatalf("rings restarted by unrelated memory updates: %v", ev)
	}
	// Removing the region that holds the rings stops them.
	if err := h.f.RemMemReg(h.g.Regions[0]); err != nil {
		t.Fatal(err)
	}
	if n := h.dev.nrunning(); n != 0 {
		t.Fatalf("%d rings run without their memory", n)
	}
	// Putting it back restarts them.
	if err := h.f.AddMemReg(h.g.Regions[0], int(h.g.Files[0].Fd())); err != nil {
		t.Fatal(err)
	}
	if n := h.dev.nrunning(); n != 2 {
		t.Fatalf("%d rings run after memory came back, want 2", n)
	}
}

func TestNoProtocolFeatures(t *testing.T) {
	// A front-end that does not ack PROTOCOL_FEATURES: rings run as soon as
	// they are kicked.
	h := start(t, 1)
	if err := h.f.Do(vhostuser.VHOST_USER_SET_FEATURES, vt.U64(1<<vhostuser.VIRTIO_F_VERSION_1)); err != nil {
		t.Fatal(err)
	}
	if err := h.f.SetMemTable(h.g.Regions, h.g.Fds()); err != nil {
		t.Fatal(err)
	}
	v, _ := vt.Layout(0, 64, 0)
	e, err := h.f.StartVring(h.g, v, false)
	if err != nil {
		t.Fatal(err)
	}
	h.fds = append(h.fds, e)
	// Round trip to be sure the back-end handled everything.
	if _, err := h.f.GetU64(vhostuser.VHOST_USER_GET_FEATURES); err != nil {
		t.Fatal(err)
	}
	if n := h.dev.nrunning(); n != 1 {
		t.Fatalf("%d rings running, want 1", n)
	}
}

func TestListen(t *testing.T) {
	p := t.TempDir() + "/s"
	ln, err := vhostuser.Listen(p, -1)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v %v: want mode 0600", st, err)
	}
	if _, err := vhostuser.Listen(p, -1); err == nil {
		t.Fatal("second Listen on a live socket succeeded")
	}
	f, err := ln.File()
	if err != nil {
		t.Fatal(err)
	}
	// FileListener takes ownership of the fd it is given: hand it a
	// duplicate and close f, or f's finalizer closes the same number
	// again later, by then another test's fd (seen: a session socket of
	// a later test closed under it after a GC).
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	ln2, err := vhostuser.FileListener(fd)
	if err != nil {
		t.Fatal(err)
	}
	ln2.Close()
	ln.Close()
	os.WriteFile(p, nil, 0o600)
	if _, err := vhostuser.Listen(p, -1); err == nil {
		t.Fatal("Listen over a regular file succeeded")
	}
	// A pipe is not a socket: refused (and the fd, handed over, closed).
	var pp [2]int
	if err := unix.Pipe2(pp[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pp[1])
	if _, err := vhostuser.FileListener(pp[0]); err == nil {
		t.Fatal("FileListener accepted a pipe")
	}
	_ = net.ErrClosed
}

// TestBackendChannel: the device gets the back-end request channel and can
// ask the front-end (REPLY_ACK answered); it loses it at disconnect.
func TestBackendChannel(t *testing.T) {
	h := start(t, 1)
	if _, _, _, err := h.f.Init(allProtocol); err != nil {
		t.Fatal(err)
	}
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sp[0])
	if err := h.f.Do(vhostuser.VHOST_USER_SET_BACKEND_REQ_FD, nil, sp[1]); err != nil {
		t.Fatal(err)
	}
	unix.Close(sp[1])
	ch := h.dev.getChannel()
	if ch == nil {
		t.Fatal("device got no channel")
	}
	// The front-end side: read one message, check it, answer 0.
	go func() {
		var b [12 + 40]byte
		n, _ := unix.Read(sp[0], b[:])
		if n != len(b) || le.Uint32(b[0:]) != uint32(vhostuser.VHOST_USER_BACKEND_SHMEM_UNMAP) || le.Uint32(b[4:]) != 1|vhostuser.VHOST_USER_NEED_REPLY {
			return
		}
		var r [20]byte
		le.PutUint32(r[0:], uint32(vhostuser.VHOST_USER_BACKEND_SHMEM_UNMAP))
		le.PutUint32(r[4:], 1|vhostuser.VHOST_USER_REPLY_MASK)
		le.PutUint32(r[8:], 8)
		unix.Write(sp[0], r[:])
	}()
	v, err := ch.Call(vhostuser.VHOST_USER_BACKEND_SHMEM_UNMAP, make([]byte, 40), nil)
	if err != nil || v != 0 {
		t.Fatalf("Call = %d, %v", v, err)
	}
	if _, err := ch.Call(vhostuser.VHOST_USER_BACKEND_SHMEM_MAP, make([]byte, 40), []int{sp[0]}); !errors.Is(err, vhostuser.ErrNoFdPassing) {
		t.Fatalf("Call with fds = %v, want ErrNoFdPassing", err)
	}
	h.f.Close()
	h.wait()
	if h.dev.getChannel() != nil {
		t.Fatal("device keeps the channel after disconnect")
	}
	if _, err := ch.Call(vhostuser.VHOST_USER_BACKEND_SHMEM_UNMAP, nil, nil); err == nil {
		t.Fatal("Call on a closed channel succeeded")
	}
}

func TestServeBusy(t *testing.T) {
	h := start(t, 1)
	if _, err := h.f.GetU64(vhostuser.VHOST_USER_GET_FEATURES); err != nil {
		t.Fatal(err)
	}
	// start's Backend is not reachable here; build a second session on a
	// backend that is serving.
	b := vhostuser.NewBackend(newFake(1))
	f1, c1, _ := vt.Pair()
	defer f1.Close()
	go b.Serve(c1)
	if _, err := f1.GetU64(vhostuser.VHOST_USER_GET_FEATURES); err != nil {
		t.Fatal(err)
	}
	f2, c2, _ := vt.Pair()
	defer f2.Close()
	if err := b.Serve(c2); !errors.Is(err, vhostuser.ErrBusy) {
		t.Fatalf("second Serve = %v, want ErrBusy", err)
	}
}
