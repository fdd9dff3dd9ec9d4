package ring

// MaxBuffers is how many buffers a Chain holds: IOV_MAX (UIO_MAXIOV), so a
// chain's buffers always fit one preadv/pwritev. A descriptor whose buffer
// spans two adjacent guest memory regions takes one buffer per region.
const MaxBuffers = 1024

// Buffer is one contiguous piece of a chain.
type Buffer struct {
	// Bytes is a view of guest memory, with cap == len. It is valid while
	// the mem.Table the queue uses stays mapped (see package mem: until the
	// worker's next quiescent point). Device-readable buffers must not be
	// written.
	Bytes []byte
	// GPA is the guest-physical address of Bytes[0].
	GPA uint64
}

// Chain is one descriptor chain, walked and validated by Queue.Pop. A Chain
// is large (MaxBuffers entries) and meant to be reused: keep one per worker,
// or one per in-flight request in an arena, never allocate one per request.
//
// The readable buffers come first, then the writable ones, exactly in
// descriptor order.
type Chain struct {
	// Head is the head descriptor index: pass it to Queue.Push.
	Head uint16

	nr       int    // readable buffers: buf[:nr]
	n        int    // all buffers: buf[:n]
	readLen  uint64 // total bytes of buf[:nr]
	writeLen uint64 // total bytes of buf[nr:n]
	buf      [MaxBuffers]Buffer
}

func (c *Chain) reset(head uint16) {
	c.Head = head
	c.nr, c.n = 0, 0
	c.readLen, c.writeLen = 0, 0
}

// CopyFrom makes c a copy of src (the same head and buffers), copying
// only src's buffers in use rather than the whole array: moving a chain
// to another Chain costs what it holds, not MaxBuffers entries.
func (c *Chain) CopyFrom(src *Chain) {
	c.Head = src.Head
	c.nr, c.n = src.nr, src.n
	c.readLen, c.writeLen = src.readLen, src.writeLen
	copy(c.buf[:src.n], src.buf[:src.n])
}

// Readable returns the device-readable buffers (the request).
func (c *Chain) Readable() []Buffer { return c.buf[:c.nr:c.nr] }

// Writable returns the device-writable buffers (room for the reply).
func (c *Chain) Writable() []Buffer { return c.buf[c.nr:c.n:c.n] }

// ReadableLen returns the total length of the readable buffers.
func (c *Chain) ReadableLen() uint64 { return c.readLen }

// WritableLen returns the total length of the writable buffers.
func (c *Chain) WritableLen() uint64 { return c.writeLen }

// ReadAt copies into p the readable bytes of the chain starting at byte off
// of its readable part, gathering across buffers. It returns how many bytes
// it copied: less than len(p) only at the end of the readable part.
//
// Guest memory may change under the copy; callers decode from p, which
// they own, so every field is read once.
func (c *Chain) ReadAt(p []byte, off uint64) int {
	return Gather(c.buf[:c.nr], p, off)
}

// WriteAt copies p into the writable part of the chain at byte off,
// scattering across buffers. It returns how many bytes it copied: less than
// len(p) only at the end of the writable part.
func (c *Chain) WriteAt(p []byte, off uint64) int {
	return Scatter(c.buf[c.nr:c.n], p, off)
}

// Gather copies into p the bytes of bufs starting at byte off of their
// concatenation, and returns the count (short at their end).
func Gather(bufs []Buffer, p []byte, off uint64) int {
	n := 0
	for i := range bufs {
		b := bufs[i].Bytes
		if off >= uint64(len(b)) {
			off -= uint64(len(b))
			continue
		}
		n += copy(p[n:], b[off:])
		off = 0
		if n == len(p) {
			break
		}
	}
	return n
}

// Scatter copies p into bufs starting at byte off of their concatenation,
// and returns the count (short at their end).
func Scatter(bufs []Buffer, p []byte, off uint64) int {
	n := 0
	for i := range bufs {
		b := bufs[i].Bytes
		if off >= uint64(len(b)) {
			off -= uint64(len(b))
			continue
		}
		n += copy(b[off:], p[n:])
		off = 0
		if n == len(p) {
			break
		}
	}
	return n
}
