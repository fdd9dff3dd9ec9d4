package vhostusertest

import (
	"errors"
	"fmt"
	"time"

	"github.com/fastfsd/fastfsd/ring"
	"github.com/fastfsd/fastfsd/ring/ringtest"
	"github.com/fastfsd/fastfsd/vhostuser"
	"golang.org/x/sys/unix"
)

// Guest plays the VMM and the guest driver at once: it connects, negotiates
// as QEMU does, shares memfd memory, sets up every queue with a
// ringtest.Driver over that memory, and submits buffers the way a virtio
// driver does (add chain, kick if asked, wait on the call eventfd, read the
// used ring). It is owned by one goroutine.
type Guest struct {
	F        *Frontend
	Mem      *GuestMemory
	Queues   []*GuestQueue
	Features uint64 // acked virtio features
	Protocol uint64
	// Timeout bounds each wait for a used element (default 10 s).
	Timeout time.Duration
	// LaxInterrupts accepts completions the device did not signal on the
	// call eventfd (by default Wait fails with ErrNoInterrupt).
	LaxInterrupts bool
}

// GuestQueue is one virtqueue as the driver sees it.
type GuestQueue struct {
	g      *Guest
	Index  int
	Config ring.Config
	D      *ringtest.Driver
	Ev     Eventfds
	// Data is this queue's buffer area in guest memory [Data, Data+DataLen);
	// Submit hands it out from the start for each chain.
	Data, DataLen uint64
}

// GuestConfig says how to build a Guest.
type GuestConfig struct {
	Queues   int    // queues to set up (≤ the back-end's count); 0: all
	Size     uint32 // ring size (default 128, QEMU's default)
	DataLen  uint64 // buffer bytes per queue (default 4 MiB)
	Features uint64 // virtio features to ack, of those offered (default all offered)
	Protocol uint64 // protocol features to ask for (default all known)
	// AddMemReg sets memory up with one ADD_MEM_REG per region when
	// CONFIGURE_MEM_SLOTS is negotiated, as QEMU does (some back-ends,
	// go-fuse's among them, accept nothing else); by default SET_MEM_TABLE.
	AddMemReg bool
}

// AllProtocol is every protocol feature a vhost-user-fs front-end may use.
const AllProtocol = 1<<vhostuser.VHOST_USER_PROTOCOL_F_MQ | 1<<vhostuser.VHOST_USER_PROTOCOL_F_REPLY_ACK |
	1<<vhostuser.VHOST_USER_PROTOCOL_F_BACKEND_REQ |
	1<<vhostuser.VHOST_USER_PROTOCOL_F_MEM_SLOTS | 1<<vhostuser.VHOST_USER_PROTOCOL_F_STATUS |
	1<<vhostuser.VHOST_USER_PROTOCOL_F_RESET_DEVICE

// NewGuest runs QEMU's whole start sequence on f: init, SET_FEATURES,
// SET_MEM_TABLE, each ring (NUM, BASE, ADDR, KICK, CALL), SET_VRING_ENABLE,
// SET_STATUS(DRIVER_OK).
func NewGuest(f *Frontend, c GuestConfig) (*Guest, error) {
	if c.Size == 0 {
		c.Size = 128
	}
	if c.DataLen == 0 {
		c.DataLen = 4 << 20
	}
	if c.Protocol == 0 {
		c.Protocol = AllProtocol
	}
	feat, proto, nq, err := f.Init(c.Protocol)
	if err != nil {
		return nil, err
	}
	if c.Queues == 0 || c.Queues > nq {
		c.Queues = nq
	}
	ack := feat
	if c.Features != 0 {
		ack = feat & (c.Features | 1<<vhostuser.VHOST_USER_F_PROTOCOL_FEATURES)
	}
	if err := f.Do(vhostuser.VHOST_USER_SET_FEATURES, U64(ack)); err != nil {
		return nil, err
	}
	// Layout: rings first, then each queue's data area, page aligned.
	var ringsEnd uint64 = 0x1000
	cfgs := make([]ring.Config, c.Queues)
	for i := range cfgs {
		cfgs[i], ringsEnd = ringtest.Layout(c.Size, ringsEnd, ack&^(1<<vhostuser.VHOST_USER_F_PROTOCOL_FEATURES))
		ringsEnd = (ringsEnd + 4095) &^ 4095
	}
	total := ringsEnd + uint64(c.Queues)*c.DataLen
	m, err := NewGuestMemory(0, (total+0xfffff)&^0xfffff)
	if err != nil {
		return nil, err
	}
	g := &Guest{F: f, Mem: m, Features: ack, Protocol: proto, Timeout: 10 * time.Second}
	fail := func(err error) (*Guest, error) { g.Close(); return nil, err }
	if c.AddMemReg && proto&(1<<vhostuser.VHOST_USER_PROTOCOL_F_MEM_SLOTS) != 0 {
		for i, r := range m.Regions {
			if err := f.AddMemReg(r, m.Fds()[i]); err != nil {
				return fail(err)
			}
		}
	} else if err := f.SetMemTable(m.Regions, m.Fds()); err != nil {
		return fail(err)
	}
	for i := range cfgs {
		d, err := ringtest.NewDriver(m.Table, cfgs[i])
		if err != nil {
			return fail(err)
		}
		q := &GuestQueue{g: g, Index: i, Config: cfgs[i], D: d, Ev: Eventfds{-1, -1},
			Data: ringsEnd + uint64(i)*c.DataLen, DataLen: c.DataLen}
		g.Queues = append(g.Queues, q)
		v := Vring{Index: uint32(i), Size: c.Size, Desc: cfgs[i].Desc, Avail: cfgs[i].Avail, Used: cfgs[i].Used}
		if q.Ev, err = f.StartVring(m, v, false); err != nil {
			return fail(err)
		}
	}
	if err := g.start(f, proto); err != nil {
		return fail(err)
	}
	return g, nil
}

// start ends the start sequence on f once every ring is set up:
// SET_VRING_ENABLE for each (with VHOST_USER_F_PROTOCOL_FEATURES acked)
// and SET_STATUS(DRIVER_OK) (with protocol feature STATUS in proto).
func (g *Guest) start(f *Frontend, proto uint64) error {
	if g.Features&(1<<vhostuser.VHOST_USER_F_PROTOCOL_FEATURES) != 0 {
		for i := range g.Queues {
			if err := f.Do(vhostuser.VHOST_USER_SET_VRING_ENABLE, State(uint32(i), 1)); err != nil {
				return err
			}
		}
	}
	if proto&(1<<vhostuser.VHOST_USER_PROTOCOL_F_STATUS) != 0 {
		return f.Do(vhostuser.VHOST_USER_SET_STATUS, U64(0xf))
	}
	return nil
}

// Stop sends GET_VRING_BASE for every queue, as QEMU does when the VM
// stops, and returns the indices.
func (g *Guest) Stop() ([]uint32, error) {
	var bases []uint32
	for i := range g.Queues {
		b, err := g.F.GetVringBase(uint32(i))
		if err != nil {
			return bases, err
		}
		bases = append(bases, b)
	}
	return bases, nil
}

// Close closes the eventfds and guest memory (not the connection).
func (g *Guest) Close() {
	for _, q := range g.Queues {
		for _, fd := range []int{q.Ev.Kick, q.Ev.Call} {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	}
	g.Queues = nil
	g.Mem.Close()
}

// Mem returns n bytes of guest memory at gpa.
func (q *GuestQueue) Mem(gpa, n uint64) []byte { return q.D.Mem(gpa, n) }

// Buffers describes one chain to submit: readable pieces (copied into guest
// memory, one descriptor each) and writable lengths (one descriptor each).
type Buffers struct {
	In  [][]byte
	Out []int
	// Indirect puts the chain in an indirect table.
	Indirect bool
	// Offset places the chain's buffers at this offset of the queue's data
	// area, so several chains can be in flight at once.
	Offset uint64
}

// ErrTimeout is returned when no used element arrives in time.
var ErrTimeout = errors.New("vhostusertest: no completion before the timeout")

// Submit places a chain in the queue's data area, kicks if the device asks,
// waits for its completion and returns the writable buffers' contents
// joined, cut to the used length. Submit handles one chain at a time.
func (q *GuestQueue) Submit(b Buffers) ([]byte, error) {
	head, err := q.Add(b)
	if err != nil {
		return nil, err
	}
	q.Kick()
	id, n, err := q.Wait()
	if err != nil {
		return nil, err
	}
	if id != head {
		return nil, fmt.Errorf("used id %d, want head %d", id, head)
	}
	return q.Reply(b, n)
}

// Add writes b into the data area and adds the chain without kicking.
func (q *GuestQueue) Add(b Buffers) (uint16, error) {
	var bufs []ringtest.Buf
	at := q.Data + b.Offset
	if b.Indirect {
		at += 16 * uint64(len(b.In)+len(b.Out))
	}
	for _, p := range b.In {
		copy(q.Mem(at, uint64(len(p))), p)
		bufs = append(bufs, ringtest.Buf{Addr: at, Len: uint32(len(p))})
		at = (at + uint64(len(p)) + 7) &^ 7
	}
	for _, n := range b.Out {
		clear(q.Mem(at, uint64(n)))
		bufs = append(bufs, ringtest.Buf{Addr: at, Len: uint32(n), Write: true})
		at = (at + uint64(n) + 7) &^ 7
	}
	if at > q.Data+q.DataLen {
		return 0, fmt.Errorf("chain of %d bytes does not fit the %d-byte data area", at-q.Data, q.DataLen)
	}
	if b.Indirect {
		return q.D.AddIndirect(q.Data, bufs)
	}
	return q.D.Add(bufs)
}

// Kick publishes added chains and signals the kick eventfd if the device
// asked for it.
func (q *GuestQueue) Kick() {
	if q.D.Kick() {
		Kick(q.Ev.Kick)
	}
}

// Wait waits for the next used element.
func (q *GuestQueue) Wait() (id uint16, n uint32, err error) {
	deadline := time.Now().Add(q.g.Timeout)
	for {
		if id, n, ok := q.D.Used(); ok {
			return id, n, nil
		}
		// As a Linux driver does before sleeping (virtqueue_enable_cb):
		// ask for an interrupt at the next used element (used_event with
		// EVENT_IDX), then look again, or a completion published in
		// between would not interrupt us.
		q.D.SetUsedEvent(q.D.UsedLast())
		if id, n, ok := q.D.Used(); ok {
			return id, n, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return 0, 0, ErrTimeout
		}
		// Sleep on the call eventfd; wake at least every 10 ms to look
		// at the used ring anyway, and then insist the interrupt comes.
		called, err := WaitCall(q.Ev.Call, int(min(left, 10*time.Millisecond)/time.Millisecond)+1)
		if err != nil {
			return 0, 0, err
		}
		if called || q.g.LaxInterrupts {
			continue
		}
		if id, n, ok := q.D.Used(); ok {
			// Published but not signalled (yet): the device must signal,
			// we asked for it with used_event. It stores used.idx before
			// it writes the call eventfd, so a device thread descheduled
			// in between (a loaded CI machine) shows this state for a
			// while: allow it the rest of the timeout, as a lost
			// interrupt never comes at all. (The lost interrupts once
			// seen here under -race were real: an atomic store without a
			// fence, see ring/internal/vring TestStoreLoadOrder.)
			wait := max(int(time.Until(deadline)/time.Millisecond), 1000)
			if c, err := WaitCall(q.Ev.Call, wait); err != nil || !c {
				return 0, 0, fmt.Errorf("%w (used id %d)", ErrNoInterrupt, id)
			}
			return id, n, nil
		}
	}
}

// ErrNoInterrupt: a completion was published but the call eventfd was not
// signalled although the driver asked for it.
var ErrNoInterrupt = errors.New("vhostusertest: completion published without the interrupt the driver asked for")

// Reply returns the writable buffers of b (as laid out by Add) joined and
// cut to n bytes.
func (q *GuestQueue) Reply(b Buffers, n uint32) ([]byte, error) {
	at := q.Data + b.Offset
	if b.Indirect {
		at += 16 * uint64(len(b.In)+len(b.Out))
	}
	for _, p := range b.In {
		at = (at + uint64(len(p)) + 7) &^ 7
	}
	var out []byte
	for _, l := range b.Out {
		out = append(out, q.Mem(at, uint64(l))...)
		at = (at + uint64(l) + 7) &^ 7
	}
	if int(n) > len(out) {
		return nil, fmt.Errorf("used length %d exceeds the %d writable bytes", n, len(out))
	}
	return out[:n], nil
}

// Restart sets every queue up again from scratch after Stop, as a guest
// that rebooted does: fresh rings (indices 0), new eventfds, enabled.
func (g *Guest) Restart() error {
	for _, q := range g.Queues {
		unix.Close(q.Ev.Kick)
		unix.Close(q.Ev.Call)
		q.Ev = Eventfds{-1, -1}
		d, err := ringtest.NewDriver(g.Mem.Table, q.Config)
		if err != nil {
			return err
		}
		q.D = d
		v := Vring{Index: uint32(q.Index), Size: q.Config.Size, Desc: q.Config.Desc, Avail: q.Config.Avail, Used: q.Config.Used}
		enable := g.Features&(1<<vhostuser.VHOST_USER_F_PROTOCOL_FEATURES) != 0
		if q.Ev, err = g.F.StartVring(g.Mem, v, enable); err != nil {
			return err
		}
	}
	return nil
}

// Reconnect attaches the guest to a new back-end on f after the old one
// died without a word (kill -9), as a VMM that reconnects would: the same
// acked features, the same guest memory, and every ring where the driver
// left it, with new eventfds. No GET_VRING_BASE answer came from the dead
// back-end, so each ring restarts at its used index (virtio's recovery
// without one): a chain the old back-end popped but never completed is
// popped again and served by the new one. That is exact while at most one
// chain per queue is in flight; with more, chains completed out of order
// would need the in-flight tracking this front-end does not offer
// (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD). The old connection is closed.
func (g *Guest) Reconnect(f *Frontend) error {
	_, proto, nq, err := f.Init(g.Protocol)
	if err != nil {
		return err
	}
	if nq < len(g.Queues) {
		return fmt.Errorf("vhostusertest: reconnect: the new back-end offers %d queues, the guest uses %d", nq, len(g.Queues))
	}
	if err := f.Do(vhostuser.VHOST_USER_SET_FEATURES, U64(g.Features)); err != nil {
		return err
	}
	if err := f.SetMemTable(g.Mem.Regions, g.Mem.Fds()); err != nil {
		return err
	}
	for _, q := range g.Queues {
		unix.Close(q.Ev.Kick)
		unix.Close(q.Ev.Call)
		q.Ev = Eventfds{-1, -1}
		v := Vring{Index: uint32(q.Index), Size: q.Config.Size, Desc: q.Config.Desc, Avail: q.Config.Avail, Used: q.Config.Used,
			Base: q.D.UsedIdx()}
		if q.Ev, err = f.StartVring(g.Mem, v, false); err != nil {
			return err
		}
	}
	if err := g.start(f, proto); err != nil {
		return err
	}
	if g.F != nil && g.F != f {
		g.F.Close()
	}
	g.F, g.Protocol = f, proto
	return nil
}
