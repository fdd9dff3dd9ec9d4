package vhostuser

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// BackendRequest is a back-end → front-end message id, sent on the socket
// the front-end gave with SET_BACKEND_REQ_FD.
type BackendRequest uint32

// Back-end message ids (vhost-user.rst "Back-end message types").
const (
	VHOST_USER_BACKEND_IOTLB_MSG               BackendRequest = 1
	VHOST_USER_BACKEND_CONFIG_CHANGE_MSG       BackendRequest = 2
	VHOST_USER_BACKEND_VRING_HOST_NOTIFIER_MSG BackendRequest = 3
	VHOST_USER_BACKEND_VRING_CALL              BackendRequest = 4
	VHOST_USER_BACKEND_VRING_ERR               BackendRequest = 5
	// VHOST_USER_BACKEND_SHMEM_MAP and _UNMAP map and unmap file ranges in
	// a VIRTIO Shared Memory Region (the DAX window), with protocol feature
	// SHMEM; same numbers in QEMU's merged vhost-user.rst and rust-vmm.
	// See shmem.go.
	VHOST_USER_BACKEND_SHMEM_MAP   BackendRequest = 9
	VHOST_USER_BACKEND_SHMEM_UNMAP BackendRequest = 10
)

// channelTimeout bounds the wait for the front-end's answer.
const channelTimeout = 10 * time.Second

// ErrNoFdPassing: a back-end message with fds, but the front-end did not
// negotiate BACKEND_SEND_FD.
var ErrNoFdPassing = errors.New("vhostuser: front-end did not negotiate BACKEND_SEND_FD")

// Channel is the back-end request channel of a session (SET_BACKEND_REQ_FD):
// what a device uses to ask the front-end for things, e.g. to map file
// ranges into a DAX window. Safe for concurrent use; calls are serialised.
type Channel struct {
	mu sync.Mutex
	c  *net.UnixConn // guarded by mu
	// replyAck: REPLY_ACK was negotiated, so Call asks for and waits on an
	// answer. sendFds: BACKEND_SEND_FD was negotiated.
	replyAck, sendFds bool
	protocol          uint64 // the negotiated protocol features (shmem.go)
}

// ChannelUser is implemented by devices that use the back-end channel. The
// session calls SetChannel when the front-end provides one and with nil when
// it goes away; a Channel must not be used after that.
type ChannelUser interface {
	SetChannel(c *Channel)
}

// newChannel takes ownership of fd.
func newChannel(fd int, protocol uint64) (*Channel, error) {
	f := os.NewFile(uintptr(fd), "backend-req")
	defer f.Close()
	nc, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		nc.Close()
		return nil, errors.New("not a unix socket")
	}
	return &Channel{c: uc,
		replyAck: protocol&(1<<VHOST_USER_PROTOCOL_F_REPLY_ACK) != 0,
		sendFds:  protocol&(1<<VHOST_USER_PROTOCOL_F_BACKEND_FD) != 0, protocol: protocol}, nil
}

// Call sends req with payload (and fds, which need BACKEND_SEND_FD) and,
// with REPLY_ACK negotiated, waits for the front-end's u64 answer: 0 is
// success. Without REPLY_ACK it returns 0 once the message is sent.
func (c *Channel) Call(req BackendRequest, payload []byte, fds []int) (uint64, error) {
	if len(fds) > 0 && !c.sendFds {
		return 0, ErrNoFdPassing
	}
	if len(payload) > maxPayload || len(fds) > maxFds {
		return 0, fmt.Errorf("vhostuser: backend request %d: %d bytes, %d fds: too large", req, len(payload), len(fds))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c == nil {
		return 0, net.ErrClosed
	}
	b := make([]byte, headerSize+len(payload))
	flags := uint32(VHOST_USER_VERSION)
	if c.replyAck {
		flags |= VHOST_USER_NEED_REPLY
	}
	le.PutUint32(b[0:], uint32(req))
	le.PutUint32(b[4:], flags)
	le.PutUint32(b[8:], uint32(len(payload)))
	copy(b[headerSize:], payload)
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	c.c.SetDeadline(time.Now().Add(channelTimeout))
	defer c.c.SetDeadline(time.Time{})
	if _, _, err := c.c.WriteMsgUnix(b, oob, nil); err != nil {
		return 0, fmt.Errorf("vhostuser: backend request %d: %w", req, err)
	}
	if !c.replyAck {
		return 0, nil
	}
	var r [headerSize + 8]byte
	if _, err := io.ReadFull(c.c, r[:]); err != nil {
		return 0, fmt.Errorf("vhostuser: backend request %d: reading the answer: %w", req, err)
	}
	h := decodeHeader(r[:])
	if uint32(h.Request) != uint32(req) || h.Flags&VHOST_USER_REPLY_MASK == 0 || h.Size != 8 {
		return 0, fmt.Errorf("vhostuser: backend request %d: bad answer header %+v", req, h)
	}
	return le.Uint64(r[headerSize:]), nil
}

// close closes the channel; Calls in progress fail.
func (c *Channel) close() {
	c.c.Close() // unblocks a Call waiting for an answer
	c.mu.Lock()
	c.c = nil
	c.mu.Unlock()
}
