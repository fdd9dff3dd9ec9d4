package vhostuser

import (
	"errors"
	"io"
	"net"

	"golang.org/x/sys/unix"
)

// conn reads front-end messages with their fds and writes replies. It is
// used by one goroutine (the session's) only.
type conn struct {
	c *net.UnixConn
	// buf holds the message being handled: header then payload.
	buf [headerSize + maxPayload]byte
	oob []byte
	// fds received with the current message; owned by the session until it
	// takes them (sets the entry to -1) or closeFds closes the rest.
	fds    [maxFds + 1]int
	nfds   int
	excess bool // more fds came than fit; all were closed
}

func newConn(c *net.UnixConn) *conn {
	// Room for more fds than any message may carry, so a message with too
	// many is seen and refused rather than silently truncated.
	return &conn{c: c, oob: make([]byte, unix.CmsgSpace(4*(maxFds+4)))}
}

// readFull reads len(b) bytes, collecting any fds that come along. atStart
// says b is the start of a message: EOF before its first byte is a clean
// close (io.EOF), anywhere else it is io.ErrUnexpectedEOF.
func (c *conn) readFull(b []byte, atStart bool) error {
	got := 0
	for got < len(b) {
		n, oobn, flags, _, err := c.c.ReadMsgUnix(b[got:], c.oob)
		if oobn > 0 {
			c.takeFds(c.oob[:oobn])
		}
		if flags&unix.MSG_CTRUNC != 0 {
			c.excess = true
		}
		got += n
		if err != nil {
			if errors.Is(err, io.EOF) {
				if atStart && got == 0 {
					return io.EOF
				}
				return io.ErrUnexpectedEOF
			}
			return err
		}
		if n == 0 {
			if atStart && got == 0 {
				return io.EOF
			}
			return io.ErrUnexpectedEOF
		}
	}
	return nil
}

// takeFds records the SCM_RIGHTS fds in oob; any beyond the array are
// closed at once and flagged.
func (c *conn) takeFds(oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		c.excess = true
		return
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if c.nfds < len(c.fds) {
				c.fds[c.nfds] = fd
				c.nfds++
			} else {
				unix.Close(fd)
				c.excess = true
			}
		}
	}
}

// closeFds closes every received fd the session did not take.
func (c *conn) closeFds() {
	for i := 0; i < c.nfds; i++ {
		if c.fds[i] >= 0 {
			unix.Close(c.fds[i])
		}
		c.fds[i] = -1
	}
	c.nfds = 0
	c.excess = false
}

// take hands fd i to the caller, who then owns it.
func (c *conn) take(i int) int {
	fd := c.fds[i]
	c.fds[i] = -1
	return fd
}

// read reads one message. The payload is a view into c.buf. Framing errors
// (bad header) are returned as *MessageError: the stream cannot be trusted
// after them.
func (c *conn) read() (Message, error) {
	c.closeFds()
	if err := c.readFull(c.buf[:headerSize], true); err != nil {
		return Message{}, err
	}
	h := decodeHeader(c.buf[:])
	if err := checkHeader(h); err != nil {
		return Message{Header: h}, err
	}
	p := c.buf[headerSize : headerSize+int(h.Size)]
	if err := c.readFull(p, false); err != nil {
		return Message{Header: h}, err
	}
	return Message{Header: h, Payload: p, Fds: c.fds[:c.nfds]}, nil
}

// reply sends a reply to h with payload p.
func (c *conn) reply(h Header, p []byte) error {
	var b [headerSize + maxReplyPayload]byte
	Header{Request: h.Request, Flags: VHOST_USER_VERSION | VHOST_USER_REPLY_MASK, Size: uint32(len(p))}.put(b[:])
	n := copy(b[headerSize:], p)
	_, err := c.c.Write(b[:headerSize+n])
	return err
}

// replyU64 sends a u64 reply.
func (c *conn) replyU64(h Header, v uint64) error {
	var p [8]byte
	le.PutUint64(p[:], v)
	return c.reply(h, p[:])
}
