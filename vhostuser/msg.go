package vhostuser

import (
	"encoding/binary"
	"math/bits"
)

// The decoders below are pure: they take the bytes and the fd count the
// socket delivered and return a validated value or a *MessageError. They
// never panic and never keep a reference to the payload. vhost-user is in
// the host's byte order; this package supports little-endian hosts only
// (amd64, arm64), where that is binary.LittleEndian.

var le = binary.LittleEndian

// Header is the 12-byte vhost-user message header.
type Header struct {
	Request Request
	Flags   uint32
	Size    uint32
}

func decodeHeader(b []byte) Header {
	return Header{Request: Request(le.Uint32(b[0:])), Flags: le.Uint32(b[4:]), Size: le.Uint32(b[8:])}
}

func (h Header) put(b []byte) {
	le.PutUint32(b[0:], uint32(h.Request))
	le.PutUint32(b[4:], h.Flags)
	le.PutUint32(b[8:], h.Size)
}

// needReply reports whether the front-end set NEED_REPLY.
func (h Header) needReply() bool { return h.Flags&VHOST_USER_NEED_REPLY != 0 }

// checkHeader validates the framing: version 1, not a reply, a payload we
// are willing to read. A failure here ends the session (we cannot trust the
// stream after it).
func checkHeader(h Header) error {
	if h.Flags&VHOST_USER_VERSION_MASK != VHOST_USER_VERSION {
		return invalid(h.Request, "header version %d, want 1 (flags %#x)", h.Flags&VHOST_USER_VERSION_MASK, h.Flags)
	}
	if h.Flags&VHOST_USER_REPLY_MASK != 0 {
		return invalid(h.Request, "reply flag set on a front-end request (flags %#x)", h.Flags)
	}
	if h.Flags&^uint32(VHOST_USER_VERSION_MASK|VHOST_USER_REPLY_MASK|VHOST_USER_NEED_REPLY) != 0 {
		return invalid(h.Request, "unknown header flags %#x", h.Flags)
	}
	if h.Size > maxPayload {
		return invalid(h.Request, "payload size %d exceeds %d", h.Size, maxPayload)
	}
	return nil
}

// spec says what a request must carry.
type spec struct {
	size    int  // exact payload size, or -1: the request's decoder checks it
	minFds  int  // fds required
	maxFds  int  // fds allowed
	reply   bool // the request has a reply of its own (GET_*)
	known   bool
	noReply bool // never acked even with NEED_REPLY (none today)
}

var specs = [...]spec{
	VHOST_USER_GET_FEATURES:          {size: 0, reply: true, known: true},
	VHOST_USER_SET_FEATURES:          {size: u64Size, known: true},
	VHOST_USER_SET_OWNER:             {size: 0, known: true},
	VHOST_USER_RESET_OWNER:           {size: 0, known: true},
	VHOST_USER_SET_MEM_TABLE:         {size: -1, minFds: 0, maxFds: maxFds, known: true},
	VHOST_USER_SET_LOG_BASE:          {size: logSize, maxFds: 1, known: true},
	VHOST_USER_SET_LOG_FD:            {size: -1, maxFds: 1, known: true},
	VHOST_USER_SET_VRING_NUM:         {size: vringStateSize, known: true},
	VHOST_USER_SET_VRING_ADDR:        {size: vringAddrSize, known: true},
	VHOST_USER_SET_VRING_BASE:        {size: vringStateSize, known: true},
	VHOST_USER_GET_VRING_BASE:        {size: vringStateSize, reply: true, known: true},
	VHOST_USER_SET_VRING_KICK:        {size: u64Size, maxFds: 1, known: true},
	VHOST_USER_SET_VRING_CALL:        {size: u64Size, maxFds: 1, known: true},
	VHOST_USER_SET_VRING_ERR:         {size: u64Size, maxFds: 1, known: true},
	VHOST_USER_GET_PROTOCOL_FEATURES: {size: 0, reply: true, known: true},
	VHOST_USER_SET_PROTOCOL_FEATURES: {size: u64Size, known: true},
	VHOST_USER_GET_QUEUE_NUM:         {size: 0, reply: true, known: true},
	VHOST_USER_SET_VRING_ENABLE:      {size: vringStateSize, known: true},
	VHOST_USER_SET_BACKEND_REQ_FD:    {size: 0, minFds: 1, maxFds: 1, known: true},
	VHOST_USER_SET_VRING_ENDIAN:      {size: vringStateSize, known: true},
	VHOST_USER_GET_CONFIG:            {size: -1, reply: true, known: true},
	VHOST_USER_SET_CONFIG:            {size: -1, known: true},
	VHOST_USER_RESET_DEVICE:          {size: 0, known: true},
	VHOST_USER_VRING_KICK:            {size: vringStateSize, known: true},
	VHOST_USER_GET_MAX_MEM_SLOTS:     {size: 0, reply: true, known: true},
	VHOST_USER_ADD_MEM_REG:           {size: memRegMsgSize, minFds: 1, maxFds: 1, known: true},
	VHOST_USER_REM_MEM_REG:           {size: memRegMsgSize, maxFds: 1, known: true},
	VHOST_USER_SET_STATUS:            {size: u64Size, known: true},
	VHOST_USER_GET_STATUS:            {size: 0, reply: true, known: true},
	VHOST_USER_GET_SHMEM_CONFIG:      {size: 0, reply: true, known: true},
}

// replyExpected reports whether the front-end waits for an answer to h
// besides a REPLY_ACK: requests with a reply of their own, and requests of
// types we do not know that we must assume do (GET_INFLIGHT_FD, …).
func hasOwnReply(r Request) bool {
	if int(r) < len(specs) && specs[r].known {
		return specs[r].reply
	}
	switch r {
	case VHOST_USER_IOTLB_MSG, VHOST_USER_CREATE_CRYPTO_SESSION, VHOST_USER_POSTCOPY_ADVISE,
		VHOST_USER_POSTCOPY_END, VHOST_USER_GET_INFLIGHT_FD, VHOST_USER_GET_SHARED_OBJECT,
		VHOST_USER_SET_DEVICE_STATE_FD, VHOST_USER_CHECK_DEVICE_STATE, VHOST_USER_GET_SHMEM_CONFIG:
		return true
	}
	return false
}

// checkShape validates a message's payload size and fd count against its
// type. Unknown types pass (they are refused as unsupported later).
func checkShape(h Header, nfds int) error {
	if int(h.Request) >= len(specs) || !specs[h.Request].known {
		return nil
	}
	s := specs[h.Request]
	if s.size >= 0 && int(h.Size) != s.size {
		return invalid(h.Request, "payload is %d bytes, want %d", h.Size, s.size)
	}
	if nfds < s.minFds || nfds > s.maxFds {
		if s.minFds == s.maxFds {
			return invalid(h.Request, "carries %d fds, want %d", nfds, s.minFds)
		}
		return invalid(h.Request, "carries %d fds, want %d to %d", nfds, s.minFds, s.maxFds)
	}
	return nil
}

// VringState is the payload of SET_VRING_NUM, SET/GET_VRING_BASE,
// SET_VRING_ENABLE: a ring index and a number.
type VringState struct {
	Index uint32
	Num   uint32
}

func decodeVringState(p []byte) VringState {
	return VringState{Index: le.Uint32(p[0:]), Num: le.Uint32(p[4:])}
}

// VringAddr is the payload of SET_VRING_ADDR. The addresses are the
// front-end's user virtual addresses (not guest-physical).
type VringAddr struct {
	Index uint32
	Flags uint32 // VHOST_VRING_F_LOG (bit 0)
	Desc  uint64
	Used  uint64
	Avail uint64
	Log   uint64
}

// vringFLog is VHOST_VRING_F_LOG.
const vringFLog = 1

func decodeVringAddr(p []byte) VringAddr {
	return VringAddr{
		Index: le.Uint32(p[0:]), Flags: le.Uint32(p[4:]),
		Desc: le.Uint64(p[8:]), Used: le.Uint64(p[16:]), Avail: le.Uint64(p[24:]), Log: le.Uint64(p[32:]),
	}
}

// Region is one guest memory region as the front-end describes it.
type Region struct {
	GuestAddr  uint64 // guest-physical address of the first byte
	Size       uint64 // bytes
	UserAddr   uint64 // the front-end's virtual address of the first byte
	MmapOffset uint64 // offset of the first byte in the region's fd
}

func decodeRegion(p []byte) Region {
	return Region{GuestAddr: le.Uint64(p[0:]), Size: le.Uint64(p[8:]), UserAddr: le.Uint64(p[16:]), MmapOffset: le.Uint64(p[24:])}
}

func (r Region) put(p []byte) {
	le.PutUint64(p[0:], r.GuestAddr)
	le.PutUint64(p[8:], r.Size)
	le.PutUint64(p[16:], r.UserAddr)
	le.PutUint64(p[24:], r.MmapOffset)
}

// check validates one region on its own: non-empty, no wrap-around of the
// guest, user or file range.
func (r Region) check(req Request, i int) error {
	if r.Size == 0 {
		return invalid(req, "region %d: size 0", i)
	}
	if r.GuestAddr+r.Size < r.GuestAddr || r.UserAddr+r.Size < r.UserAddr || r.MmapOffset+r.Size < r.MmapOffset {
		return invalid(req, "region %d: range wraps around (gpa %#x uva %#x offset %#x size %#x)", i, r.GuestAddr, r.UserAddr, r.MmapOffset, r.Size)
	}
	if r.MmapOffset+r.Size > 1<<62 {
		return invalid(req, "region %d: file range %#x+%#x too large", i, r.MmapOffset, r.Size)
	}
	return nil
}

// overlaps reports whether a and b share guest-physical or user addresses.
func overlaps(a, b Region) bool {
	return a.GuestAddr < b.GuestAddr+b.Size && b.GuestAddr < a.GuestAddr+a.Size ||
		a.UserAddr < b.UserAddr+b.Size && b.UserAddr < a.UserAddr+a.Size
}

// decodeMemTable decodes SET_MEM_TABLE: nregions u32, padding u32, then
// nregions × 32 bytes, with exactly one fd per region. Regions must be valid
// and must not overlap each other.
func decodeMemTable(p []byte, nfds int, regs []Region) ([]Region, error) {
	const r = VHOST_USER_SET_MEM_TABLE
	if len(p) < memTableHdrSize {
		return nil, invalid(r, "payload is %d bytes, want at least %d", len(p), memTableHdrSize)
	}
	n := le.Uint32(p)
	if n == 0 || n > baselineRegions {
		return nil, invalid(r, "%d regions, want 1 to %d", n, baselineRegions)
	}
	// QEMU sends exactly 8 + 32·n bytes; older front-ends sent the whole
	// 8-region array. Accept both, refuse anything else.
	if want := memTableHdrSize + regionSize*int(n); len(p) != want && len(p) != memTableHdrSize+regionSize*baselineRegions {
		return nil, invalid(r, "payload is %d bytes for %d regions, want %d", len(p), n, want)
	}
	if nfds != int(n) {
		return nil, invalid(r, "carries %d fds for %d regions", nfds, n)
	}
	regs = regs[:0]
	for i := 0; i < int(n); i++ {
		g := decodeRegion(p[memTableHdrSize+regionSize*i:])
		if err := g.check(r, i); err != nil {
			return nil, err
		}
		for j, o := range regs {
			if overlaps(g, o) {
				return nil, invalid(r, "region %d overlaps region %d", i, j)
			}
		}
		regs = append(regs, g)
	}
	return regs, nil
}

// decodeMemReg decodes ADD_MEM_REG / REM_MEM_REG: padding u64, region.
func decodeMemReg(req Request, p []byte) (Region, error) {
	g := decodeRegion(p[8:])
	if err := g.check(req, 0); err != nil {
		return Region{}, err
	}
	return g, nil
}

// ConfigMsg is the payload of GET_CONFIG/SET_CONFIG.
type ConfigMsg struct {
	Offset uint32
	Size   uint32
	Flags  uint32
	Data   []byte // view into the payload, len == Size
}

func decodeConfig(req Request, p []byte) (ConfigMsg, error) {
	if len(p) < configHdrSize {
		return ConfigMsg{}, invalid(req, "payload is %d bytes, want at least %d", len(p), configHdrSize)
	}
	c := ConfigMsg{Offset: le.Uint32(p[0:]), Size: le.Uint32(p[4:]), Flags: le.Uint32(p[8:])}
	if c.Size == 0 || c.Size > maxConfigSize {
		return ConfigMsg{}, invalid(req, "config size %d, want 1 to %d", c.Size, maxConfigSize)
	}
	if c.Offset > maxConfigSize || c.Offset+c.Size > maxConfigSize {
		return ConfigMsg{}, invalid(req, "config range %d+%d beyond %d", c.Offset, c.Size, maxConfigSize)
	}
	if len(p) != configHdrSize+int(c.Size) {
		return ConfigMsg{}, invalid(req, "payload is %d bytes for %d config bytes, want %d", len(p), c.Size, configHdrSize+int(c.Size))
	}
	if c.Flags > 1 {
		return ConfigMsg{}, invalid(req, "unknown config flags %#x", c.Flags)
	}
	c.Data = p[configHdrSize:]
	return c, nil
}

// checkQueueSize validates SET_VRING_NUM's num: a power of two from 1 to max.
func checkQueueSize(num uint32, max int) bool {
	return num != 0 && int64(num) <= int64(max) && bits.OnesCount32(num) == 1
}

// Message is one decoded front-end message; Payload is a view into the
// connection's buffer, valid until the next message is read.
type Message struct {
	Header
	Payload []byte
	Fds     []int
}

// DecodeMessage validates a message as it came off the socket (header and
// payload bytes in b, nfds descriptors attached) without acting on it: the
// framing, the payload size and fd count for its type, and the type's own
// layout rules (region tables, config ranges, queue sizes up to 32768). It is
// what the back-end checks before any state is touched, exported for
// fuzzing and for front-end tests.
func DecodeMessage(b []byte, nfds int) (Header, error) {
	if len(b) < headerSize {
		return Header{}, invalid(0, "short header: %d bytes", len(b))
	}
	h := decodeHeader(b)
	if err := checkHeader(h); err != nil {
		return h, err
	}
	p := b[headerSize:]
	if int(h.Size) != len(p) {
		return h, invalid(h.Request, "header says %d payload bytes, got %d", h.Size, len(p))
	}
	if err := checkShape(h, nfds); err != nil {
		return h, err
	}
	var regs [baselineRegions]Region
	var err error
	switch h.Request {
	case VHOST_USER_SET_MEM_TABLE:
		_, err = decodeMemTable(p, nfds, regs[:0])
	case VHOST_USER_ADD_MEM_REG, VHOST_USER_REM_MEM_REG:
		_, err = decodeMemReg(h.Request, p)
	case VHOST_USER_GET_CONFIG, VHOST_USER_SET_CONFIG:
		_, err = decodeConfig(h.Request, p)
	case VHOST_USER_SET_VRING_NUM:
		if s := decodeVringState(p); !checkQueueSize(s.Num, maxQueueSize) {
			err = invalid(h.Request, "num %d is not a power of two from 1 to %d", s.Num, maxQueueSize)
		}
	case VHOST_USER_SET_VRING_KICK, VHOST_USER_SET_VRING_CALL, VHOST_USER_SET_VRING_ERR:
		err = checkVringFd(h.Request, le.Uint64(p), nfds)
	}
	return h, err
}

// checkVringFd validates SET_VRING_KICK/CALL/ERR's u64 against the fds:
// bits 0-7 index, bit 8 "no fd", nothing else; one fd unless bit 8.
func checkVringFd(r Request, v uint64, nfds int) error {
	if v&^uint64(vringIdxMask|vringNoFd) != 0 {
		return invalid(r, "unknown bits in %#x", v)
	}
	if v&vringNoFd != 0 && nfds != 0 {
		return invalid(r, "no-fd bit set but %d fd(s) attached", nfds)
	}
	if v&vringNoFd == 0 && nfds != 1 {
		return invalid(r, "carries %d fds, want 1", nfds)
	}
	return nil
}
