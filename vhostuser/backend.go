package vhostuser

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync/atomic"

	"github.com/fastfsd/fastfsd/mem"
	"golang.org/x/sys/unix"
)

// Protocol features this back-end honours. Anything else is not offered.
// CONFIG is honoured (GET_CONFIG reads Device.Config) but not offered:
// QEMU's vhost-user-fs fills the config space itself and warns at start-up
// when a back-end offers CONFIG; GET_CONFIG is still answered if sent.
const offeredProtocol = 1<<VHOST_USER_PROTOCOL_F_MQ |
	1<<VHOST_USER_PROTOCOL_F_REPLY_ACK |
	1<<VHOST_USER_PROTOCOL_F_BACKEND_REQ |
	1<<VHOST_USER_PROTOCOL_F_RESET_DEVICE |
	1<<VHOST_USER_PROTOCOL_F_MEM_SLOTS |
	1<<VHOST_USER_PROTOCOL_F_STATUS

// Backend serves the vhost-user protocol for one Device, one front-end
// connection at a time.
type Backend struct {
	dev Device
	// Log receives one line per refused message and per session; nil
	// means slog.Default().
	Log *slog.Logger
	// MaxMemSlots bounds the regions ADD_MEM_REG may build up (default
	// DefaultMaxMemSlots, at most what mem supports).
	MaxMemSlots int
	// OnMessage, if set, is called with each request before it is handled
	// (tests and --log-level=debug use it to trace the front-end's sequence).
	OnMessage func(Header)

	// serving is set while Serve runs: one device serves one front-end.
	serving atomic.Bool
}

// ErrBusy is returned by Serve when another connection is being served.
var ErrBusy = errors.New("vhostuser: the device already serves a front-end; one connection at a time")

// NewBackend returns a back-end serving dev.
func NewBackend(dev Device) *Backend {
	return &Backend{dev: dev, MaxMemSlots: DefaultMaxMemSlots}
}

// vring is the back-end's view of one ring. Owned by the session goroutine.
type vring struct {
	num     uint32 // 0 until SET_VRING_NUM
	addr    VringAddr
	hasAddr bool
	base    uint16
	kick    int  // -1: none
	kickSet bool // SET_VRING_KICK seen since the last stop (kick may be -1: polling)
	call    int
	err     int
	enabled bool
	running bool // the device runs it (StartQueue succeeded, no StopQueue yet)
}

// session is the state of one connection. Only its goroutine touches it.
type session struct {
	b        *Backend
	c        *conn
	log      *slog.Logger
	offered  uint64 // features offered in GET_FEATURES
	features uint64 // acked by SET_FEATURES
	protocol uint64 // acked by SET_PROTOCOL_FEATURES
	owner    bool
	status   uint64
	vrings   []vring
	mem      *mem.Memory
	channel  *Channel // SET_BACKEND_REQ_FD socket, nil: none
}

// Serve runs the protocol on c until the connection ends, and returns why:
// an error matching ErrClosed (orderly close with every ring stopped),
// ErrDisconnected (broken connection, or closed with rings running) or
// ErrInvalidMessage (a message that made the session impossible to
// continue). Malformed messages that leave the stream in sync are refused
// and logged, and serving goes on. On return every ring is stopped, the
// device is reset, and every fd and mapping of the session is released; c is
// closed. Serve returns ErrBusy (and closes c) if the Backend is already
// serving a connection.
func (b *Backend) Serve(c *net.UnixConn) (err error) {
	if !b.serving.CompareAndSwap(false, true) {
		c.Close()
		return ErrBusy
	}
	defer b.serving.Store(false)
	// The device reads guest memory on this goroutine (a ring's used.idx
	// when a queue starts): a front-end that shrank its memory file makes
	// that a fault, which must drop this connection, not kill the
	// process (the recover below). Restored on return: the caller's
	// goroutine is not ours.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	s := &session{b: b, c: newConn(c), log: b.Log, mem: mem.NewMemory()}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.offered = b.dev.Features() | 1<<VHOST_USER_F_PROTOCOL_FEATURES
	s.vrings = make([]vring, b.dev.QueueCount())
	for i := range s.vrings {
		s.vrings[i] = vring{kick: -1, call: -1, err: -1}
	}
	defer func() {
		if p := recover(); p != nil {
			if f := mem.AsFault(p); f != nil {
				s.log.Error("vhostuser: fault on guest memory (front-end shrank its memory file?), dropping the connection", "addr", f.Addr(), "panic", p)
			} else {
				s.log.Error("vhostuser: internal error, dropping the connection", "panic", p, "stack", string(debug.Stack()))
			}
			err = &ConnError{Err: ErrDisconnected, Cause: fmt.Errorf("internal error: %v", p)}
		}
		running := s.teardown()
		c.Close()
		var ce *ConnError
		if errors.As(err, &ce) && ce.Err == ErrClosed && running > 0 {
			ce.Err, ce.Running = ErrDisconnected, running
		}
	}()
	for {
		m, err := s.c.read()
		if err != nil {
			if err == io.EOF {
				return &ConnError{Err: ErrClosed}
			}
			var me *MessageError
			if errors.As(err, &me) {
				s.log.Error("vhostuser: refusing message, closing the connection", "err", err)
				return err
			}
			return &ConnError{Err: ErrDisconnected, Cause: err}
		}
		if b.OnMessage != nil {
			b.OnMessage(m.Header)
		}
		if err := s.handle(m); err != nil {
			return err
		}
	}
}

// handle validates and applies one message, sends its reply, and returns a
// non-nil error only when the session must end.
func (s *session) handle(m Message) error {
	defer s.c.closeFds()
	h := m.Header
	var err error
	if s.c.excess {
		err = invalid(h.Request, "more fds than any message carries (closed them all)")
	} else {
		err = checkShape(h, len(m.Fds))
	}
	var reply []byte
	var rbuf [maxReplyPayload]byte
	if err == nil {
		reply, err = s.apply(m, rbuf[:])
	}
	if err != nil {
		var me *MessageError
		if !errors.As(err, &me) {
			return err // I/O error from a reply inside apply
		}
		s.log.Warn("vhostuser: refused message", "request", h.Request.String(), "err", err)
		if hasOwnReply(h.Request) {
			if h.Request == VHOST_USER_GET_CONFIG {
				// vhost-user.rst: a GET_CONFIG reply of size 0 reports failure.
				return s.sendErr(s.c.reply(h, nil))
			}
			// The front-end waits for a reply we cannot give: end the
			// session rather than leave it hanging.
			s.log.Error("vhostuser: closing the connection: cannot answer refused request", "request", h.Request.String())
			return err
		}
		if h.needReply() && s.protocol&(1<<VHOST_USER_PROTOCOL_F_REPLY_ACK) != 0 {
			return s.sendErr(s.c.replyU64(h, 1))
		}
		return nil
	}
	if hasOwnReply(h.Request) {
		return s.sendErr(s.c.reply(h, reply))
	}
	if h.needReply() && s.protocol&(1<<VHOST_USER_PROTOCOL_F_REPLY_ACK) != 0 {
		return s.sendErr(s.c.replyU64(h, 0))
	}
	return nil
}

func (s *session) sendErr(err error) error {
	if err == nil {
		return nil
	}
	return &ConnError{Err: ErrDisconnected, Cause: err}
}

// apply acts on a message whose size and fd count were checked. It returns
// the reply payload (for requests with their own reply) built in rbuf.
func (s *session) apply(m Message, rbuf []byte) ([]byte, error) {
	h, p := m.Header, m.Payload
	r := h.Request
	u64 := func(v uint64) []byte { le.PutUint64(rbuf, v); return rbuf[:8] }
	switch r {
	case VHOST_USER_GET_FEATURES:
		return u64(s.offered), nil

	case VHOST_USER_SET_FEATURES:
		v := le.Uint64(p)
		if v&^s.offered != 0 {
			return nil, invalid(r, "features %#x not offered (offered %#x)", v&^s.offered, s.offered)
		}
		old := s.features
		s.features = v
		if v&(1<<VHOST_USER_F_PROTOCOL_FEATURES) == 0 {
			// vhost-user.rst: without PROTOCOL_FEATURES rings are enabled
			// as soon as they start.
			for i := range s.vrings {
				s.vrings[i].enabled = true
			}
		}
		if old != v {
			for i := range s.vrings {
				s.reconfigure(i, func(*vring) {})
			}
		}
		for i := range s.vrings {
			s.maybeStart(i)
		}
		return nil, nil

	case VHOST_USER_SET_OWNER:
		s.owner = true
		return nil, nil

	case VHOST_USER_RESET_OWNER, VHOST_USER_RESET_DEVICE:
		s.resetDevice()
		if r == VHOST_USER_RESET_OWNER {
			s.owner = false
		}
		return nil, nil

	case VHOST_USER_GET_PROTOCOL_FEATURES:
		return u64(s.b.protocolOffered()), nil

	case VHOST_USER_SET_PROTOCOL_FEATURES:
		v := le.Uint64(p)
		if offered := s.b.protocolOffered(); v&^offered != 0 {
			return nil, invalid(r, "protocol features %#x not offered (offered %#x)", v&^offered, offered)
		}
		s.protocol = v
		return nil, nil

	case VHOST_USER_GET_QUEUE_NUM:
		return u64(uint64(len(s.vrings))), nil

	case VHOST_USER_GET_MAX_MEM_SLOTS:
		return u64(uint64(s.b.maxMemSlots())), nil

	case VHOST_USER_SET_MEM_TABLE:
		var regs [baselineRegions]Region
		list, err := decodeMemTable(p, len(m.Fds), regs[:0])
		if err != nil {
			return nil, err
		}
		return nil, s.setMemTable(list, m.Fds)

	case VHOST_USER_ADD_MEM_REG:
		g, err := decodeMemReg(r, p)
		if err != nil {
			return nil, err
		}
		return nil, s.addRegion(g)

	case VHOST_USER_REM_MEM_REG:
		g, err := decodeMemReg(r, p)
		if err != nil {
			return nil, err
		}
		return nil, s.removeRegion(g)

	case VHOST_USER_SET_LOG_BASE, VHOST_USER_SET_LOG_FD:
		return nil, unsupported(r, "dirty logging (migration) is not supported; VHOST_F_LOG_ALL and LOG_SHMFD were not offered")

	case VHOST_USER_SET_VRING_NUM:
		st := decodeVringState(p)
		if err := s.checkIndex(r, st.Index); err != nil {
			return nil, err
		}
		if !checkQueueSize(st.Num, s.b.dev.MaxQueueSize()) {
			return nil, invalid(r, "ring %d: num %d is not a power of two from 1 to %d", st.Index, st.Num, s.b.dev.MaxQueueSize())
		}
		if s.vrings[st.Index].running {
			return nil, invalid(r, "ring %d is running; stop it with GET_VRING_BASE first", st.Index)
		}
		s.vrings[st.Index].num = st.Num
		return nil, nil

	case VHOST_USER_SET_VRING_BASE:
		st := decodeVringState(p)
		if err := s.checkIndex(r, st.Index); err != nil {
			return nil, err
		}
		if st.Num > 0xffff {
			return nil, invalid(r, "ring %d: base %#x has reserved bits set (split rings only)", st.Index, st.Num)
		}
		if s.vrings[st.Index].running {
			return nil, invalid(r, "ring %d is running; stop it with GET_VRING_BASE first", st.Index)
		}
		s.vrings[st.Index].base = uint16(st.Num)
		return nil, nil

	case VHOST_USER_GET_VRING_BASE:
		st := decodeVringState(p)
		if err := s.checkIndex(r, st.Index); err != nil {
			return nil, err
		}
		v := &s.vrings[st.Index]
		s.stop(int(st.Index))
		// The ring stays stopped until the next SET_VRING_KICK
		// (libvhost-user and rust-vmm alike drop the kick fd here).
		closeFd(&v.kick)
		v.kickSet = false
		le.PutUint32(rbuf[0:], st.Index)
		le.PutUint32(rbuf[4:], uint32(v.base))
		return rbuf[:8], nil

	case VHOST_USER_SET_VRING_ADDR:
		a := decodeVringAddr(p)
		if err := s.checkIndex(r, a.Index); err != nil {
			return nil, err
		}
		if a.Flags&^uint32(vringFLog) != 0 {
			return nil, invalid(r, "ring %d: unknown flags %#x", a.Index, a.Flags)
		}
		if a.Flags&vringFLog != 0 {
			return nil, unsupported(r, "ring %d: dirty logging of the used ring is not supported", a.Index)
		}
		if a.Desc%16 != 0 || a.Avail%2 != 0 || a.Used%4 != 0 {
			return nil, invalid(r, "ring %d: misaligned ring (desc %#x, avail %#x, used %#x)", a.Index, a.Desc, a.Avail, a.Used)
		}
		if s.memEmpty() {
			return nil, invalid(r, "ring %d: no memory table yet", a.Index)
		}
		for _, x := range [...]uint64{a.Desc, a.Avail, a.Used} {
			if _, ok := s.mem.Table().UserToGuest(x); !ok {
				return nil, invalid(r, "ring %d: address %#x is in no memory region", a.Index, x)
			}
		}
		s.reconfigure(int(a.Index), func(v *vring) { v.addr, v.hasAddr = a, true })
		return nil, nil

	case VHOST_USER_SET_VRING_KICK, VHOST_USER_SET_VRING_CALL, VHOST_USER_SET_VRING_ERR:
		v := le.Uint64(p)
		if err := checkVringFd(r, v, len(m.Fds)); err != nil {
			return nil, err
		}
		idx := uint32(v & vringIdxMask)
		if err := s.checkIndex(r, idx); err != nil {
			return nil, err
		}
		fd := -1
		if v&vringNoFd == 0 {
			if err := checkNotifier(s.c.fds[0]); err != nil {
				return nil, invalid(r, "ring %d: notifier fd: %v (want an eventfd)", idx, err)
			}
			fd = s.c.take(0)
		}
		switch r {
		case VHOST_USER_SET_VRING_KICK:
			s.reconfigure(int(idx), func(v *vring) { closeFd(&v.kick); v.kick, v.kickSet = fd, true })
		case VHOST_USER_SET_VRING_CALL:
			s.reconfigure(int(idx), func(v *vring) { closeFd(&v.call); v.call = fd })
		default:
			s.reconfigure(int(idx), func(v *vring) { closeFd(&v.err); v.err = fd })
		}
		return nil, nil

	case VHOST_USER_SET_VRING_ENABLE:
		st := decodeVringState(p)
		if err := s.checkIndex(r, st.Index); err != nil {
			return nil, err
		}
		if st.Num > 1 {
			return nil, invalid(r, "ring %d: enable %d, want 0 or 1", st.Index, st.Num)
		}
		if s.features&(1<<VHOST_USER_F_PROTOCOL_FEATURES) == 0 && s.vrings[st.Index].enabled && st.Num == 0 {
			// Allowed but odd: rings were enabled implicitly.
			s.log.Debug("vhostuser: SET_VRING_ENABLE without PROTOCOL_FEATURES acked", "ring", st.Index)
		}
		s.reconfigure(int(st.Index), func(v *vring) { v.enabled = st.Num == 1 })
		return nil, nil

	case VHOST_USER_SET_VRING_ENDIAN:
		return nil, unsupported(r, "legacy (cross-endian) rings are not supported")

	case VHOST_USER_VRING_KICK:
		return nil, unsupported(r, "in-band notifications were not offered")

	case VHOST_USER_SET_BACKEND_REQ_FD:
		if s.protocol&(1<<VHOST_USER_PROTOCOL_F_BACKEND_REQ) == 0 {
			return nil, invalid(r, "BACKEND_REQ protocol feature not negotiated")
		}
		s.closeChannel()
		ch, err := newChannel(s.c.take(0), s.protocol)
		if err != nil {
			return nil, invalid(r, "back-end request fd: %v", err)
		}
		s.channel = ch
		if u, ok := s.b.dev.(ChannelUser); ok {
			u.SetChannel(ch)
		}
		return nil, nil

	case VHOST_USER_GET_CONFIG:
		c, err := decodeConfig(r, p)
		if err != nil {
			return nil, err
		}
		cfg := s.b.dev.Config()
		if int(c.Offset)+int(c.Size) > len(cfg) {
			return nil, invalid(r, "config range %d+%d beyond the device's %d bytes", c.Offset, c.Size, len(cfg))
		}
		le.PutUint32(rbuf[0:], c.Offset)
		le.PutUint32(rbuf[4:], c.Size)
		le.PutUint32(rbuf[8:], c.Flags)
		n := copy(rbuf[configHdrSize:], cfg[c.Offset:c.Offset+c.Size])
		return rbuf[:configHdrSize+n], nil

	case VHOST_USER_SET_CONFIG:
		if _, err := decodeConfig(r, p); err != nil {
			return nil, err
		}
		return nil, unsupported(r, "the device's config space is read-only")

	case VHOST_USER_SET_STATUS:
		v := le.Uint64(p)
		if v > 0xff {
			return nil, invalid(r, "status %#x is not a byte", v)
		}
		s.status = v
		return nil, nil

	case VHOST_USER_GET_STATUS:
		return u64(s.status), nil

	case VHOST_USER_GET_SHMEM_CONFIG:
		return s.shmemConfig(rbuf), nil
	}
	return nil, unsupported(r, "request not implemented (payload %d bytes, %d fds)", h.Size, len(m.Fds))
}

func (b *Backend) maxMemSlots() int {
	if b.MaxMemSlots <= 0 {
		return DefaultMaxMemSlots
	}
	return min(b.MaxMemSlots, maxMemRegions)
}

func (s *session) checkIndex(r Request, idx uint32) error {
	if idx >= uint32(len(s.vrings)) {
		return invalid(r, "ring index %d out of range (the device has %d)", idx, len(s.vrings))
	}
	return nil
}

// stop stops ring i if it runs and records where it stopped.
func (s *session) stop(i int) {
	v := &s.vrings[i]
	if !v.running {
		return
	}
	v.base = s.b.dev.StopQueue(i)
	v.running = false
}

// reconfigure applies change to ring i, stopping the ring around it if it
// runs (the device sees each ring's parameters as immutable while it runs),
// then starts it if it now can.
func (s *session) reconfigure(i int, change func(*vring)) {
	s.stop(i)
	change(&s.vrings[i])
	s.maybeStart(i)
}

// maybeStart starts ring i when it is fully set up, enabled, kicked and its
// areas lie in guest memory.
func (s *session) maybeStart(i int) {
	v := &s.vrings[i]
	if v.running || !v.enabled || !v.kickSet || !v.hasAddr || v.num == 0 || s.memEmpty() {
		return
	}
	desc, avail, used, ok := s.ringAreas(v)
	if !ok {
		s.log.Warn("vhostuser: not starting ring: its areas are not inside guest memory", "ring", i,
			"desc", v.addr.Desc, "avail", v.addr.Avail, "used", v.addr.Used, "num", v.num)
		s.signalErr(v)
		return
	}
	q := &Queue{
		Index: i, Size: int(v.num), Desc: desc, Avail: avail, Used: used,
		NextAvail: v.base, Features: s.features, Kick: v.kick, Call: v.call, Err: v.err,
		Memory: s.mem,
	}
	if err := s.b.dev.StartQueue(q); err != nil {
		s.log.Warn("vhostuser: device refused to start ring", "ring", i, "err", err)
		s.signalErr(v)
		return
	}
	v.running = true
}

func (s *session) signalErr(v *vring) {
	if v.err >= 0 {
		var one [8]byte
		le.PutUint64(one[:], 1)
		unix.Write(v.err, one[:])
	}
}

// resetDevice stops every ring, resets the device and forgets ring and
// feature state (RESET_DEVICE, RESET_OWNER). Memory and protocol features
// stay.
func (s *session) resetDevice() {
	for i := range s.vrings {
		s.stop(i)
	}
	s.b.dev.Reset()
	for i := range s.vrings {
		v := &s.vrings[i]
		closeFd(&v.kick)
		closeFd(&v.call)
		closeFd(&v.err)
		*v = vring{kick: -1, call: -1, err: -1}
	}
	s.features = 0
	s.status = 0
}

// teardown releases everything of the session and returns how many rings
// were running.
func (s *session) teardown() int {
	running := 0
	for i := range s.vrings {
		if s.vrings[i].running {
			running++
		}
	}
	s.resetDevice()
	s.closeChannel()
	s.closeMemory()
	s.c.closeFds()
	return running
}

// closeChannel takes the back-end channel from the device and closes it.
func (s *session) closeChannel() {
	if s.channel == nil {
		return
	}
	if u, ok := s.b.dev.(ChannelUser); ok {
		u.SetChannel(nil)
	}
	s.channel.close()
	s.channel = nil
}

func closeFd(fd *int) {
	if *fd >= 0 {
		unix.Close(*fd)
		*fd = -1
	}
}
