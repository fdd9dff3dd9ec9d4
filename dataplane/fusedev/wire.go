package fusedev

import "encoding/binary"

// The few kernel ABI facts the transport itself needs (the engine decodes
// everything else). Offsets per include/uapi/linux/fuse.h, protocol 7.45;
// see /work/shared/ref/fuse.md §1, §4.
const (
	inHeaderSize  = 40 // fuse_in_header
	outHeaderSize = 16 // fuse_out_header
	writeInSize   = 40 // fuse_write_in (protocol ≥ 7.9)
	minReadBuffer = 8192

	opRead        = 15
	opWrite       = 16
	opInit        = 26
	opForget      = 2
	opInterrupt   = 36
	opNotifyReply = 41
	opBatchForget = 42

	initSpliceWrite = 1 << 7
	initSpliceMove  = 1 << 8
	initSpliceRead  = 1 << 9
	initExt         = 1 << 30
	initPassthrough = 1 << 37

	// DefaultMaxWrite is what the transport sizes its buffers for unless
	// told otherwise: the kernel's default page limit (fuse_max_pages_limit
	// 256) times 4 KiB.
	DefaultMaxWrite = 1 << 20
)

// hdr is the part of fuse_in_header the transport reads, copied out of the
// buffer once.
type hdr struct {
	len    uint32
	opcode uint32
	unique uint64
	nodeid uint64
	uid    uint32
}

func readHdr(b []byte) (h hdr, ok bool) {
	if len(b) < inHeaderSize {
		return h, false
	}
	ne := binary.NativeEndian
	return hdr{len: ne.Uint32(b[0:]), opcode: ne.Uint32(b[4:]), unique: ne.Uint64(b[8:]), nodeid: ne.Uint64(b[16:]), uid: ne.Uint32(b[24:])}, true
}

// noReply reports whether the kernel expects no reply to opcode.
func noReply(op uint32) bool {
	return op == opForget || op == opBatchForget || op == opInterrupt || op == opNotifyReply
}

// putErrReply fills b[:16] with a header-only error reply.
func putErrReply(b []byte, unique uint64, errno int32) {
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], outHeaderSize)
	ne.PutUint32(b[4:], uint32(-errno))
	ne.PutUint64(b[8:], unique)
}

// initResult is what INIT settled, read from the request and the engine's
// reply.
type initResult struct {
	kernelFlags uint64 // what the kernel offered
	replyFlags  uint64 // what the engine selected
	maxWrite    uint32 // negotiated (the kernel uses max(4096, this))
	major       uint32
	minor       uint32
}

// parseInit reads fuse_init_in from req and fuse_init_out from reply.
func parseInit(req, reply []byte) (r initResult, ok bool) {
	ne := binary.NativeEndian
	in := req[inHeaderSize:]
	if len(in) < 16 || len(reply) < outHeaderSize+24 {
		return r, false
	}
	r.kernelFlags = uint64(ne.Uint32(in[12:]))
	if r.kernelFlags&initExt != 0 && len(in) >= 20 {
		r.kernelFlags |= uint64(ne.Uint32(in[16:])) << 32
	}
	out := reply[outHeaderSize:]
	r.major = ne.Uint32(out[0:])
	r.minor = ne.Uint32(out[4:])
	r.replyFlags = uint64(ne.Uint32(out[12:]))
	r.maxWrite = ne.Uint32(out[20:])
	if r.replyFlags&initExt != 0 && len(out) >= 36 {
		r.replyFlags |= uint64(ne.Uint32(out[32:])) << 32
	}
	return r, true
}
