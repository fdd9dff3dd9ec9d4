package p9

import (
	"bytes"
	"encoding/binary"
)

// decoder reads little-endian fields from a message body.
//
// Invariant: once bad is set it stays set, every later read returns zero
// values and advances nothing, so a message decoder reads all its fields
// unconditionally and checks bad once at the end (the sticky overflow flag:
// a truncated or malformed message can never make a decoder index out of
// range). Strings are views into buf, never copies.
type decoder struct {
	buf []byte
	bad bool
}

func (d *decoder) take(n int) []byte {
	if d.bad || n < 0 || n > len(d.buf) {
		d.bad = true
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

func (d *decoder) u8() uint8 {
	b := d.take(1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (d *decoder) u16() uint16 {
	b := d.take(2)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint16(b)
}

func (d *decoder) u32() uint32 {
	b := d.take(4)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

func (d *decoder) u64() uint64 {
	b := d.take(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

// str reads a string len[2] bytes[len]. A string holding a NUL byte is
// malformed: no 9P2000.L string (name, path, xattr name, version, client
// id) may contain one, and the host's C interfaces would truncate it.
func (d *decoder) str() []byte {
	n := int(d.u16())
	b := d.take(n)
	if b != nil && bytes.IndexByte(b, 0) >= 0 {
		d.bad = true
		return nil
	}
	if b == nil && !d.bad {
		return []byte{}
	}
	return b
}

func (d *decoder) qid(q *QID) {
	q.Type = d.u8()
	q.Version = d.u32()
	q.Path = d.u64()
}

// done reports whether the whole body was read and well-formed: trailing
// bytes make a message malformed as much as missing ones.
func (d *decoder) done() bool {
	if len(d.buf) != 0 {
		d.bad = true
	}
	return !d.bad
}

// encoder writes little-endian fields into buf[:cap(buf)], never growing
// it: cap(buf) is the negotiated msize, so a reply can never exceed it.
//
// Invariant: like decoder, bad is sticky; after an overflow nothing more is
// written and the caller replies with an error instead.
type encoder struct {
	buf []byte
	bad bool
}

func (e *encoder) grow(n int) []byte {
	if e.bad || n < 0 || n > cap(e.buf)-len(e.buf) {
		e.bad = true
		return nil
	}
	l := len(e.buf)
	e.buf = e.buf[:l+n]
	return e.buf[l:]
}

func (e *encoder) u8(v uint8) {
	if b := e.grow(1); b != nil {
		b[0] = v
	}
}

func (e *encoder) u16(v uint16) {
	if b := e.grow(2); b != nil {
		binary.LittleEndian.PutUint16(b, v)
	}
}

func (e *encoder) u32(v uint32) {
	if b := e.grow(4); b != nil {
		binary.LittleEndian.PutUint32(b, v)
	}
}

func (e *encoder) u64(v uint64) {
	if b := e.grow(8); b != nil {
		binary.LittleEndian.PutUint64(b, v)
	}
}

func (e *encoder) str(s []byte) {
	if len(s) > 0xFFFF {
		e.bad = true
		return
	}
	e.u16(uint16(len(s)))
	if b := e.grow(len(s)); b != nil {
		copy(b, s)
	}
}

func (e *encoder) bytes(s []byte) {
	if b := e.grow(len(s)); b != nil {
		copy(b, s)
	}
}

func (e *encoder) qid(q *QID) {
	if b := e.grow(QIDSize); b != nil {
		putQID(b, q)
	}
}

func putQID(b []byte, q *QID) {
	b[0] = q.Type
	binary.LittleEndian.PutUint32(b[1:], q.Version)
	binary.LittleEndian.PutUint64(b[5:], q.Path)
}

// header starts a message: size (patched by finish), type, tag.
func (e *encoder) header(t MsgType, tag uint16) {
	e.buf = e.buf[:0]
	e.bad = false
	e.u32(0)
	e.u8(uint8(t))
	e.u16(tag)
}

// finish patches the size field and reports whether the message fit.
func (e *encoder) finish() bool {
	if e.bad || len(e.buf) < HeaderSize {
		return false
	}
	binary.LittleEndian.PutUint32(e.buf, uint32(len(e.buf)))
	return true
}
