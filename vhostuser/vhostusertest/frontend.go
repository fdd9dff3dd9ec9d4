package vhostusertest

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/fastfsd/fastfsd/vhostuser"
	"golang.org/x/sys/unix"
)

var le = binary.LittleEndian

// Frontend speaks the front-end (VMM) side of vhost-user to a back-end over
// one connection. It is not safe for concurrent use.
type Frontend struct {
	c *net.UnixConn
	// Timeout bounds each reply wait (default 10 s) so a back-end that
	// never answers fails the test instead of hanging it.
	Timeout time.Duration
	// ReplyAck: set NEED_REPLY on requests without a reply of their own
	// and check the back-end's u64 answer (needs REPLY_ACK negotiated).
	ReplyAck bool
}

// Dial connects to a back-end listening at path.
func Dial(path string) (*Frontend, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	return &Frontend{c: c, Timeout: 10 * time.Second}, nil
}

// Pair returns a connected front-end and the back-end's end of the socket.
func Pair() (*Frontend, *net.UnixConn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	conv := func(fd int) (*net.UnixConn, error) {
		f := osFile(fd)
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			return nil, err
		}
		return c.(*net.UnixConn), nil
	}
	a, err := conv(fds[0])
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	b, err := conv(fds[1])
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return &Frontend{c: a, Timeout: 10 * time.Second}, b, nil
}

// Close closes the connection (a front-end disconnect).
func (f *Frontend) Close() error { return f.c.Close() }

// Conn is the underlying socket, for adversarial writes.
func (f *Frontend) Conn() *net.UnixConn { return f.c }

// SendRaw writes b with fds attached, as is.
func (f *Frontend) SendRaw(b []byte, fds ...int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	_, _, err := f.c.WriteMsgUnix(b, oob, nil)
	return err
}

// Send writes one message.
func (f *Frontend) Send(req vhostuser.Request, flags uint32, payload []byte, fds ...int) error {
	b := make([]byte, 12+len(payload))
	le.PutUint32(b[0:], uint32(req))
	le.PutUint32(b[4:], flags|vhostuser.VHOST_USER_VERSION)
	le.PutUint32(b[8:], uint32(len(payload)))
	copy(b[12:], payload)
	return f.SendRaw(b, fds...)
}

// ReadReply reads one reply and checks it answers req.
func (f *Frontend) ReadReply(req vhostuser.Request) ([]byte, error) {
	if f.Timeout > 0 {
		f.c.SetReadDeadline(time.Now().Add(f.Timeout))
		defer f.c.SetReadDeadline(time.Time{})
	}
	var h [12]byte
	if _, err := io.ReadFull(f.c, h[:]); err != nil {
		return nil, fmt.Errorf("%v: reading reply: %w", req, err)
	}
	r, flags, size := vhostuser.Request(le.Uint32(h[0:])), le.Uint32(h[4:]), le.Uint32(h[8:])
	if r != req || flags != vhostuser.VHOST_USER_VERSION|vhostuser.VHOST_USER_REPLY_MASK || size > 4096 {
		return nil, fmt.Errorf("%v: bad reply header: request %v flags %#x size %d", req, r, flags, size)
	}
	p := make([]byte, size)
	if _, err := io.ReadFull(f.c, p); err != nil {
		return nil, fmt.Errorf("%v: reading reply payload: %w", req, err)
	}
	return p, nil
}

// Call sends a request that has a reply of its own and returns the reply.
func (f *Frontend) Call(req vhostuser.Request, payload []byte, fds ...int) ([]byte, error) {
	if err := f.Send(req, 0, payload, fds...); err != nil {
		return nil, err
	}
	return f.ReadReply(req)
}

// Do sends a request without a reply of its own; with ReplyAck it asks for
// and checks the back-end's acknowledgement (a non-zero one is an error).
func (f *Frontend) Do(req vhostuser.Request, payload []byte, fds ...int) error {
	var flags uint32
	if f.ReplyAck {
		flags = vhostuser.VHOST_USER_NEED_REPLY
	}
	if err := f.Send(req, flags, payload, fds...); err != nil {
		return err
	}
	if !f.ReplyAck {
		return nil
	}
	p, err := f.ReadReply(req)
	if err != nil {
		return err
	}
	if len(p) != 8 {
		return fmt.Errorf("%v: ack of %d bytes", req, len(p))
	}
	if v := le.Uint64(p); v != 0 {
		return &NackError{Request: req, Value: v}
	}
	return nil
}

// NackError is a non-zero REPLY_ACK.
type NackError struct {
	Request vhostuser.Request
	Value   uint64
}

func (e *NackError) Error() string {
	return fmt.Sprintf("%v: back-end refused (ack %d)", e.Request, e.Value)
}

// U64 builds a u64 payload.
func U64(v uint64) []byte { b := make([]byte, 8); le.PutUint64(b, v); return b }

// State builds a vring state payload.
func State(index, num uint32) []byte {
	b := make([]byte, 8)
	le.PutUint32(b[0:], index)
	le.PutUint32(b[4:], num)
	return b
}

// GetU64 calls a request whose reply is a u64.
func (f *Frontend) GetU64(req vhostuser.Request) (uint64, error) {
	p, err := f.Call(req, nil)
	if err != nil {
		return 0, err
	}
	if len(p) != 8 {
		return 0, fmt.Errorf("%v: reply of %d bytes, want 8", req, len(p))
	}
	return le.Uint64(p), nil
}

// GetVringBase stops ring index and returns its next avail index.
func (f *Frontend) GetVringBase(index uint32) (uint32, error) {
	p, err := f.Call(vhostuser.VHOST_USER_GET_VRING_BASE, State(index, 0))
	if err != nil {
		return 0, err
	}
	if len(p) != 8 || le.Uint32(p) != index {
		return 0, fmt.Errorf("GET_VRING_BASE: bad reply %x", p)
	}
	return le.Uint32(p[4:]), nil
}

// SetVringAddr sends SET_VRING_ADDR with front-end virtual addresses.
func (f *Frontend) SetVringAddr(index uint32, desc, used, avail uint64) error {
	b := make([]byte, 40)
	le.PutUint32(b[0:], index)
	le.PutUint64(b[8:], desc)
	le.PutUint64(b[16:], used)
	le.PutUint64(b[24:], avail)
	return f.Do(vhostuser.VHOST_USER_SET_VRING_ADDR, b)
}

// Region is one memory region as the front-end describes it.
type Region = vhostuser.Region

// RegionBytes encodes a region (32 bytes).
func RegionBytes(r Region) []byte {
	b := make([]byte, 32)
	le.PutUint64(b[0:], r.GuestAddr)
	le.PutUint64(b[8:], r.Size)
	le.PutUint64(b[16:], r.UserAddr)
	le.PutUint64(b[24:], r.MmapOffset)
	return b
}

// SetMemTable sends SET_MEM_TABLE with one fd per region.
func (f *Frontend) SetMemTable(regs []Region, fds []int) error {
	b := make([]byte, 8, 8+32*len(regs))
	le.PutUint32(b, uint32(len(regs)))
	for _, r := range regs {
		b = append(b, RegionBytes(r)...)
	}
	return f.Do(vhostuser.VHOST_USER_SET_MEM_TABLE, b, fds...)
}

// AddMemReg sends ADD_MEM_REG.
func (f *Frontend) AddMemReg(r Region, fd int) error {
	return f.Do(vhostuser.VHOST_USER_ADD_MEM_REG, append(make([]byte, 8), RegionBytes(r)...), fd)
}

// RemMemReg sends REM_MEM_REG.
func (f *Frontend) RemMemReg(r Region) error {
	return f.Do(vhostuser.VHOST_USER_REM_MEM_REG, append(make([]byte, 8), RegionBytes(r)...))
}

// SetVringFd sends SET_VRING_KICK/CALL/ERR; fd < 0 sends the no-fd bit.
func (f *Frontend) SetVringFd(req vhostuser.Request, index uint32, fd int) error {
	if fd < 0 {
		return f.Do(req, U64(uint64(index)|1<<8))
	}
	return f.Do(req, U64(uint64(index)), fd)
}
