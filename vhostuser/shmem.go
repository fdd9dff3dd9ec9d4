package vhostuser

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// VIRTIO Shared Memory Regions over vhost-user (QEMU docs/interop/
// vhost-user.rst, "MMAP request", "VIRTIO Shared Memory Region
// configuration", VHOST_USER_GET_SHMEM_CONFIG and
// VHOST_USER_BACKEND_SHMEM_MAP/UNMAP): the back-end asks the front-end to
// map a file range into a shared memory region of the device (virtio-fs:
// region 0, the DAX window) and to unmap it again.

// VHOST_USER_PROTOCOL_F_SHMEM is the protocol feature that enables
// GET_SHMEM_CONFIG and the back-end's SHMEM_MAP/UNMAP. Its bit moved while
// the proposal was reviewed: 20 in the 2024-2025 drafts (rust-vmm/vhost
// before v0.16), 21 once GET_VRING_BASE_INFLIGHT took 20 (rust-vmm/vhost
// v0.16.0, #347), and 22 in the text QEMU merged, where 21 is
// GPA_ADDRESSES (rust-vmm/vhost #367 realigned to 22). Only 22 is offered:
// offering 20 or 21 would claim features this back-end does not have.
const VHOST_USER_PROTOCOL_F_SHMEM = 22

// VhostUserMMap flags: bit 0 set maps read-write, clear read-only.
const VHOST_USER_FLAG_MAP_RW = 1 << 0

const (
	// mmapSize is the VhostUserMMap payload: shmid u8, padding[7],
	// fd_offset u64, shm_offset u64, len u64, flags u64.
	mmapSize = 40
	// MaxShmemRegions is the number of shmids GET_SHMEM_CONFIG describes.
	MaxShmemRegions = 256
	// shmemConfigSize is the GET_SHMEM_CONFIG reply: nregions u32,
	// padding u32, memory_sizes[256] u64.
	shmemConfigSize = 8 + 8*MaxShmemRegions
	// maxReplyPayload is the largest reply the back-end sends.
	maxReplyPayload = max(shmemConfigSize, configHdrSize+maxConfigSize)
)

// DefaultShmemTimeout bounds the wait for the front-end's answer to
// SHMEM_MAP and SHMEM_UNMAP unless SetShmemTimeout changed it. A front-end
// that does not answer in time fails the request with ETIMEDOUT and the
// channel is closed (a late answer would otherwise be taken for the next
// one's).
const DefaultShmemTimeout = 10 * time.Second

var shmemTimeout atomic.Int64 // ns; 0: DefaultShmemTimeout

// SetShmemTimeout sets the SHMEM answer timeout for every channel (d ≤ 0
// restores the default) and returns the previous one.
func SetShmemTimeout(d time.Duration) time.Duration {
	return time.Duration(shmemTimeout.Swap(int64(max(d, 0))))
}

// ShmemTimeout returns the SHMEM answer timeout in force.
func ShmemTimeout() time.Duration {
	if d := time.Duration(shmemTimeout.Load()); d > 0 {
		return d
	}
	return DefaultShmemTimeout
}

// ErrShmemNotNegotiated: SHMEM_MAP/UNMAP were asked for, but the front-end
// did not negotiate SHMEM together with BACKEND_SEND_FD and REPLY_ACK
// (without an answer a failed map could not be reported). Errors wrapping
// it also match syscall.EOPNOTSUPP.
var ErrShmemNotNegotiated = errors.New("vhostuser: front-end did not negotiate SHMEM, BACKEND_SEND_FD and REPLY_ACK")

// SharedMemory is implemented by devices that have VIRTIO Shared Memory
// Regions. If SharedMemoryRegions returns any non-zero size, the back-end
// offers SHMEM (and BACKEND_SEND_FD, to pass the fds to map) and answers
// GET_SHMEM_CONFIG with the sizes, indexed by shmid.
type SharedMemory interface {
	SharedMemoryRegions() []uint64
}

// MMap is the VhostUserMMap payload of SHMEM_MAP and SHMEM_UNMAP.
type MMap struct {
	ShmID     uint8
	FdOffset  uint64 // offset in the file (SHMEM_MAP)
	ShmOffset uint64 // offset in the region
	Len       uint64
	Flags     uint64 // VHOST_USER_FLAG_MAP_RW
}

// Put encodes m into b (at least 40 bytes).
func (m MMap) Put(b []byte) {
	b[0] = m.ShmID
	clear(b[1:8])
	le.PutUint64(b[8:], m.FdOffset)
	le.PutUint64(b[16:], m.ShmOffset)
	le.PutUint64(b[24:], m.Len)
	le.PutUint64(b[32:], m.Flags)
}

// DecodeMMap decodes and validates a VhostUserMMap payload: exactly 40
// bytes, zero padding, known flags, a non-empty length, and offsets that
// do not wrap with it. A front-end checks the range against its region.
func DecodeMMap(p []byte) (MMap, error) {
	if len(p) != mmapSize {
		return MMap{}, fmt.Errorf("vhostuser: mmap request of %d bytes, want %d", len(p), mmapSize)
	}
	for _, b := range p[1:8] {
		if b != 0 {
			return MMap{}, errors.New("vhostuser: mmap request: non-zero padding")
		}
	}
	m := MMap{ShmID: p[0], FdOffset: le.Uint64(p[8:]), ShmOffset: le.Uint64(p[16:]), Len: le.Uint64(p[24:]), Flags: le.Uint64(p[32:])}
	switch {
	case m.Flags&^VHOST_USER_FLAG_MAP_RW != 0:
		return MMap{}, fmt.Errorf("vhostuser: mmap request: unknown flags %#x", m.Flags)
	case m.Len == 0:
		return MMap{}, errors.New("vhostuser: mmap request: zero length")
	case m.ShmOffset+m.Len < m.ShmOffset || m.FdOffset+m.Len < m.FdOffset:
		return MMap{}, fmt.Errorf("vhostuser: mmap request: range wraps (shm %#x, fd %#x, len %#x)", m.ShmOffset, m.FdOffset, m.Len)
	}
	return m, nil
}

// protocolOffered is what GET_PROTOCOL_FEATURES returns: offeredProtocol,
// plus, for a device with shared memory, SHMEM, BACKEND_SEND_FD (to pass
// the fds to map) and CONFIG. QEMU gives VIRTIO Shared Memory Regions to
// its generic vhost-user-base devices (-device vhost-user-device-pci,
// virtio-id=26,config_size=40), which read the config space from the
// back-end and refuse a back-end without CONFIG; its vhost-user-fs-pci
// only warns about CONFIG, and has no window to offer anyway.
func (b *Backend) protocolOffered() uint64 {
	p := uint64(offeredProtocol)
	if sm, ok := b.dev.(SharedMemory); ok {
		for _, size := range sm.SharedMemoryRegions() {
			if size != 0 {
				p |= 1<<VHOST_USER_PROTOCOL_F_SHMEM | 1<<VHOST_USER_PROTOCOL_F_BACKEND_FD |
					1<<VHOST_USER_PROTOCOL_F_CONFIG
				break
			}
		}
	}
	return p
}

// shmemConfig builds the GET_SHMEM_CONFIG reply in rbuf (maxReplyPayload
// bytes): the device's region sizes, or no region.
func (s *session) shmemConfig(rbuf []byte) []byte {
	p := rbuf[:shmemConfigSize]
	clear(p)
	var sizes []uint64
	if sm, ok := s.b.dev.(SharedMemory); ok {
		sizes = sm.SharedMemoryRegions()
	}
	n := 0
	for i, size := range sizes[:min(len(sizes), MaxShmemRegions)] {
		le.PutUint64(p[8+8*i:], size)
		if size != 0 {
			n++
		}
	}
	le.PutUint32(p, uint32(n))
	return p
}

// Shmem reports whether the front-end negotiated what SHMEM_MAP/UNMAP
// need: SHMEM, BACKEND_SEND_FD and REPLY_ACK.
func (c *Channel) Shmem() bool {
	const need = 1<<VHOST_USER_PROTOCOL_F_SHMEM | 1<<VHOST_USER_PROTOCOL_F_BACKEND_FD | 1<<VHOST_USER_PROTOCOL_F_REPLY_ACK
	return c.protocol&need == need
}

// RefusedError is a front-end's non-zero answer to a back-end request.
// QEMU answers 1 for any failure; other values are taken as an errno
// (positive, or negated as a kernel-style -errno).
type RefusedError struct {
	Request BackendRequest
	Value   uint64
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("vhostuser: front-end refused back-end request %d (answer %d)", e.Request, int64(e.Value))
}

// Unwrap returns the errno the answer carries, EIO when it carries none.
func (e *RefusedError) Unwrap() error {
	v := int64(e.Value)
	if v < 0 {
		v = -v
	}
	if v > 1 && v < 4096 {
		return syscall.Errno(v)
	}
	return syscall.EIO
}

// ShmemMap asks the front-end to map [m.FdOffset, +m.Len) of fd at
// m.ShmOffset of region m.ShmID, and waits for its answer (at most
// ShmemTimeout()). fd stays the caller's. Errors wrap a syscall.Errno:
// EOPNOTSUPP (not negotiated), the front-end's refusal (*RefusedError),
// ETIMEDOUT, or EIO for a broken channel.
func (c *Channel) ShmemMap(m MMap, fd int) error {
	return c.shmemCall(VHOST_USER_BACKEND_SHMEM_MAP, m, fd)
}

// ShmemUnmap asks the front-end to unmap [m.ShmOffset, +m.Len) of region
// m.ShmID (FdOffset and Flags are sent as given; front-ends ignore them),
// with the errors of ShmemMap.
func (c *Channel) ShmemUnmap(m MMap) error {
	return c.shmemCall(VHOST_USER_BACKEND_SHMEM_UNMAP, m, -1)
}

func (c *Channel) shmemCall(req BackendRequest, m MMap, fd int) error {
	name := "SHMEM_MAP"
	if req == VHOST_USER_BACKEND_SHMEM_UNMAP {
		name = "SHMEM_UNMAP"
	}
	if !c.Shmem() {
		return fmt.Errorf("vhostuser: %s: %w (%w)", name, ErrShmemNotNegotiated, syscall.EOPNOTSUPP)
	}
	var b [headerSize + mmapSize]byte
	le.PutUint32(b[0:], uint32(req))
	le.PutUint32(b[4:], VHOST_USER_VERSION|VHOST_USER_NEED_REPLY)
	le.PutUint32(b[8:], mmapSize)
	m.Put(b[headerSize:])
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.c == nil {
		return fmt.Errorf("vhostuser: %s: back-end channel closed: %w", name, syscall.EIO)
	}
	timeout := ShmemTimeout()
	// broken closes the socket (but leaves c.c for close to close again,
	// harmlessly): after a timeout or a bad answer the stream is out of
	// step, and every later request fails fast instead of misreading.
	broken := func(what string, err error) error {
		c.c.Close()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("vhostuser: %s: %s: no answer within %v, channel closed: %w", name, what, timeout, syscall.ETIMEDOUT)
		}
		return fmt.Errorf("vhostuser: %s: %s: %v, channel closed: %w", name, what, err, syscall.EIO)
	}
	c.c.SetDeadline(time.Now().Add(timeout))
	if _, _, err := c.c.WriteMsgUnix(b[:], oob, nil); err != nil {
		return broken("sending", err)
	}
	var r [headerSize + 8]byte
	if _, err := io.ReadFull(c.c, r[:]); err != nil {
		return broken("reading the answer", err)
	}
	c.c.SetDeadline(time.Time{})
	h := decodeHeader(r[:])
	if uint32(h.Request) != uint32(req) || h.Flags&VHOST_USER_VERSION_MASK != VHOST_USER_VERSION ||
		h.Flags&VHOST_USER_REPLY_MASK == 0 || h.Size != 8 {
		return broken("answer", fmt.Errorf("bad header (request %d, flags %#x, size %d)", h.Request, h.Flags, h.Size))
	}
	if v := le.Uint64(r[headerSize:]); v != 0 {
		return fmt.Errorf("vhostuser: %s [%#x,+%#x): %w", name, m.ShmOffset, m.Len, &RefusedError{Request: req, Value: v})
	}
	return nil
}
