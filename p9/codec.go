package p9

import (
	"encoding/binary"
	"errors"
)

// Message is the body of one 9P2000.L message (every field after
// size[4] type[1] tag[2]). Strings and data are []byte views: a decoded
// message points into the buffer it was decoded from.
type Message interface {
	// Type is the message's type byte.
	Type() MsgType
	decode(d *decoder)
	encode(e *encoder)
}

// Errors of the codec. They are values, so the decode path never allocates.
var (
	// ErrShort: fewer bytes than the size field (or the header) says.
	ErrShort = errors.New("p9: message truncated")
	// ErrTooBig: the size field exceeds msize, or a reply would.
	ErrTooBig = errors.New("p9: message larger than msize")
	// ErrMalformed: the body does not parse as its type (a field runs past
	// the end, trailing bytes, a string holding NUL, more than MaxWalkElem
	// walk names).
	ErrMalformed = errors.New("p9: malformed message")
	// ErrUnknownType: a type byte this package does not know.
	ErrUnknownType = errors.New("p9: unknown message type")
)

// Header is the fixed part of every message.
type Header struct {
	Size uint32
	Type MsgType
	Tag  uint16
}

// ParseHeader reads the header at the start of b. It checks that the
// message's size is sane (≥ HeaderSize and ≤ msize) but not that b holds the
// whole message.
func ParseHeader(b []byte, msize uint32) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrShort
	}
	h := Header{
		Size: binary.LittleEndian.Uint32(b),
		Type: MsgType(b[4]),
		Tag:  binary.LittleEndian.Uint16(b[5:]),
	}
	if h.Size < HeaderSize {
		return h, ErrMalformed
	}
	if h.Size > msize {
		return h, ErrTooBig
	}
	return h, nil
}

// DecodeBody decodes body (the bytes after the header, exactly size - 7 of
// them) into m. It never panics; on error m's content is unspecified.
func DecodeBody(body []byte, m Message) error {
	d := decoder{buf: body}
	m.decode(&d)
	if !d.done() {
		return ErrMalformed
	}
	return nil
}

// Decode decodes one whole message from b, which must hold exactly one
// message of at most msize bytes. It allocates the message (use DecodeBody
// with a reused Message on hot paths); its strings and data are views into b.
func Decode(b []byte, msize uint32) (tag uint16, m Message, err error) {
	h, err := ParseHeader(b, msize)
	if err != nil {
		return h.Tag, nil, err
	}
	if int(h.Size) != len(b) {
		if int(h.Size) > len(b) {
			return h.Tag, nil, ErrShort
		}
		return h.Tag, nil, ErrMalformed
	}
	m = newMessage(h.Type)
	if m == nil {
		return h.Tag, nil, ErrUnknownType
	}
	if err := DecodeBody(b[HeaderSize:], m); err != nil {
		return h.Tag, nil, err
	}
	return h.Tag, m, nil
}

// Encode appends the message (header included) to dst, failing with
// ErrTooBig if it would exceed msize bytes or a field cannot be represented
// (a string over 64 KiB, more than MaxWalkElem names).
func Encode(dst []byte, msize uint32, tag uint16, m Message) ([]byte, error) {
	start := len(dst)
	if cap(dst)-start < int(msize) {
		nd := make([]byte, start, start+int(msize))
		copy(nd, dst)
		dst = nd
	}
	e := encoder{buf: dst[start : start : start+int(msize)]}
	e.header(m.Type(), tag)
	m.encode(&e)
	if !e.finish() {
		return dst[:start], ErrTooBig
	}
	return dst[:start+len(e.buf)], nil
}
