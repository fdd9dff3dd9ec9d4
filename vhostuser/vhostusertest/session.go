package vhostusertest

import (
	"fmt"

	"github.com/fastfsd/fastfsd/vhostuser"
	"golang.org/x/sys/unix"
)

// Init runs QEMU's connection sequence (vhost-user.rst; QEMU's
// vhost_user_backend_init): GET_FEATURES, GET/SET_PROTOCOL_FEATURES (all
// the back-end offers of want), GET_QUEUE_NUM, SET_OWNER. It turns ReplyAck
// on when REPLY_ACK was negotiated and returns the back-end's features, the
// negotiated protocol features and its queue count.
func (f *Frontend) Init(want uint64) (features, protocol uint64, queues int, err error) {
	if features, err = f.GetU64(vhostuser.VHOST_USER_GET_FEATURES); err != nil {
		return
	}
	if features&(1<<vhostuser.VHOST_USER_F_PROTOCOL_FEATURES) != 0 {
		var offered uint64
		if offered, err = f.GetU64(vhostuser.VHOST_USER_GET_PROTOCOL_FEATURES); err != nil {
			return
		}
		protocol = offered & want
		if err = f.Do(vhostuser.VHOST_USER_SET_PROTOCOL_FEATURES, U64(protocol)); err != nil {
			return
		}
		f.ReplyAck = protocol&(1<<vhostuser.VHOST_USER_PROTOCOL_F_REPLY_ACK) != 0
	}
	q := uint64(1)
	if protocol&(1<<vhostuser.VHOST_USER_PROTOCOL_F_MQ) != 0 {
		if q, err = f.GetU64(vhostuser.VHOST_USER_GET_QUEUE_NUM); err != nil {
			return
		}
	}
	err = f.Do(vhostuser.VHOST_USER_SET_OWNER, nil)
	return features, protocol, int(q), err
}

// Vring places one split ring in guest memory.
type Vring struct {
	Index             uint32
	Size              uint32
	Desc, Avail, Used uint64 // guest-physical
	Base              uint16
}

// Layout returns a ring of size entries laid out at gpa (descriptors, then
// the avail ring, then the used ring at the next 4-aligned address) and the
// first guest address after it, 4096-aligned.
func Layout(index, size uint32, gpa uint64) (Vring, uint64) {
	v := Vring{Index: index, Size: size, Desc: gpa}
	v.Avail = gpa + 16*uint64(size)
	v.Used = (v.Avail + 6 + 2*uint64(size) + 3) &^ 3
	end := v.Used + 6 + 8*uint64(size)
	return v, (end + 4095) &^ 4095
}

// Eventfds of one started ring (owned by the test, close them).
type Eventfds struct{ Kick, Call int }

// NewEventfd returns a non-blocking eventfd.
func NewEventfd() (int, error) { return unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK) }

// StartVring sends what QEMU's vhost_virtqueue_start does for one ring:
// SET_VRING_NUM, SET_VRING_BASE, SET_VRING_ADDR, SET_VRING_KICK,
// SET_VRING_CALL, then SET_VRING_ENABLE(1) if enable. It creates the
// eventfds and returns them.
func (f *Frontend) StartVring(g *GuestMemory, v Vring, enable bool) (Eventfds, error) {
	e := Eventfds{Kick: -1, Call: -1}
	var err error
	if e.Kick, err = NewEventfd(); err != nil {
		return e, err
	}
	if e.Call, err = NewEventfd(); err != nil {
		unix.Close(e.Kick)
		return Eventfds{-1, -1}, err
	}
	fail := func(err error) (Eventfds, error) {
		unix.Close(e.Kick)
		unix.Close(e.Call)
		return Eventfds{-1, -1}, fmt.Errorf("ring %d: %w", v.Index, err)
	}
	if err := f.Do(vhostuser.VHOST_USER_SET_VRING_NUM, State(v.Index, v.Size)); err != nil {
		return fail(err)
	}
	if err := f.Do(vhostuser.VHOST_USER_SET_VRING_BASE, State(v.Index, uint32(v.Base))); err != nil {
		return fail(err)
	}
	if err := f.SetVringAddr(v.Index, g.UserAddr(v.Desc), g.UserAddr(v.Used), g.UserAddr(v.Avail)); err != nil {
		return fail(err)
	}
	if err := f.SetVringFd(vhostuser.VHOST_USER_SET_VRING_KICK, v.Index, e.Kick); err != nil {
		return fail(err)
	}
	if err := f.SetVringFd(vhostuser.VHOST_USER_SET_VRING_CALL, v.Index, e.Call); err != nil {
		return fail(err)
	}
	if enable {
		if err := f.Do(vhostuser.VHOST_USER_SET_VRING_ENABLE, State(v.Index, 1)); err != nil {
			return fail(err)
		}
	}
	return e, nil
}

// Kick signals an eventfd.
func Kick(fd int) error {
	var b [8]byte
	le.PutUint64(b[:], 1)
	_, err := unix.Write(fd, b[:])
	return err
}

// WaitCall waits up to timeoutMs for fd to be signalled and consumes the
// count; it reports whether it was.
func WaitCall(fd int, timeoutMs int) (bool, error) {
	p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(p, timeoutMs)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return false, err
		}
		var b [8]byte
		_, err = unix.Read(fd, b[:])
		if err == unix.EAGAIN {
			continue
		}
		return err == nil, err
	}
}
