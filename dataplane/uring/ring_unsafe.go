package uring

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/sys"
	"golang.org/x/sys/unix"
)

// ring is one io_uring instance with 128-byte SQEs, owned by one worker.
//
// Shared memory protocol (io_uring(7)): the worker is the only producer of
// SQEs and the only consumer of CQEs.
//   - SQ: the worker writes SQEs and the index array, then publishes them
//     with a release store of *sqTail (atomic.StoreUint32); the kernel
//     pairs it with an acquire load (smp_load_acquire(&rings->sq.tail)).
//     The kernel advances *sqHead (inside io_uring_enter: no SQPOLL); the
//     worker reads it with an acquire load to know how many slots are
//     free and how many published SQEs the kernel has not consumed yet.
//   - CQ: the kernel writes CQEs then publishes *cqTail with a release
//     store; the worker reads it with an acquire load (atomic.LoadUint32)
//     before reading the CQEs, and hands the slots back with a release
//     store of *cqHead after it has read them.
//
// Go's sync/atomic is sequentially consistent, stronger than needed.
type ring struct {
	fd int

	sqMem, cqMem, sqeMem []byte // the three mmaps (cqMem may alias sqMem)

	sqHead, sqTail, sqMask *uint32
	sqArray                []uint32
	sqEntries              uint32
	sqLocalTail            uint32 // next SQ slot the worker fills (not yet published)

	cqHead, cqTail, cqMask *uint32
	cqes                   []byte
}

func newRing(entries uint32) (*ring, error) {
	var p sys.IoUringParams
	p.Flags = sys.IoringSetupSQE128 | sys.IoringSetupCqsize
	p.CqEntries = entries * 2
	fd, errno := sys.IoUringSetup(entries, &p)
	if errno == syscall.EINVAL {
		// Older kernels refuse flags they do not know; SQE128 is a must.
		p = sys.IoUringParams{Flags: sys.IoringSetupSQE128}
		fd, errno = sys.IoUringSetup(entries, &p)
	}
	if errno != 0 {
		return nil, fmt.Errorf("io_uring_setup(%d, SQE128): %w", entries, errno)
	}
	r := &ring{fd: fd, sqEntries: p.SqEntries}
	fail := func(what string, err error) (*ring, error) {
		r.close()
		return nil, fmt.Errorf("io_uring: mmap %s: %w", what, err)
	}
	sqSize := int(p.SqOff.Array) + int(p.SqEntries)*4
	cqSize := int(p.CqOff.Cqes) + int(p.CqEntries)*sys.IoUringCqeSize
	single := p.Features&sys.IoringFeatSingleMmap != 0
	if single {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	if r.sqMem, err = unix.Mmap(fd, sys.IoringOffSqRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fail("sq ring", err)
	}
	if single {
		r.cqMem = r.sqMem
	} else if r.cqMem, err = unix.Mmap(fd, sys.IoringOffCqRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fail("cq ring", err)
	}
	if r.sqeMem, err = unix.Mmap(fd, sys.IoringOffSqes, int(p.SqEntries)*sys.IoUringSqeSize128, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE); err != nil {
		return fail("sqes", err)
	}
	u32 := func(b []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&b[off])) }
	r.sqHead, r.sqTail, r.sqMask = u32(r.sqMem, p.SqOff.Head), u32(r.sqMem, p.SqOff.Tail), u32(r.sqMem, p.SqOff.RingMask)
	r.sqArray = unsafe.Slice(u32(r.sqMem, p.SqOff.Array), p.SqEntries)
	r.cqHead, r.cqTail, r.cqMask = u32(r.cqMem, p.CqOff.Head), u32(r.cqMem, p.CqOff.Tail), u32(r.cqMem, p.CqOff.RingMask)
	r.cqes = r.cqMem[p.CqOff.Cqes : p.CqOff.Cqes+p.CqEntries*sys.IoUringCqeSize]
	r.sqLocalTail = atomic.LoadUint32(r.sqTail)
	return r, nil
}

// nextSQE returns the next free SQE, zeroed, or nil when the SQ is full.
func (r *ring) nextSQE() []byte {
	head := atomic.LoadUint32(r.sqHead) // acquire: the kernel is done with slots before head
	if r.sqLocalTail-head >= r.sqEntries {
		return nil
	}
	idx := r.sqLocalTail & *r.sqMask
	r.sqArray[idx] = idx
	r.sqLocalTail++
	sqe := r.sqeMem[int(idx)*sys.IoUringSqeSize128 : int(idx+1)*sys.IoUringSqeSize128]
	clear(sqe)
	return sqe
}

// submitAndWait publishes the SQEs filled since the last call and waits
// until at least minComplete CQEs are ready. EINTR is retried: the call is
// idempotent once the tail is published (the kernel consumes what it has
// not yet consumed).
//
// What to submit is every published SQE the kernel has not consumed
// (tail - *sqHead, read with an acquire load), not only the new ones:
// without SQPOLL the kernel consumes SQEs only inside io_uring_enter, and
// it may stop short (at the first SQE that fails to submit, or on
// EAGAIN/EBUSY); the ones it left are counted by the next call, which
// would otherwise ask for none of them and wait for completions that
// never come.
func (r *ring) submitAndWait(minComplete uint32) error {
	atomic.StoreUint32(r.sqTail, r.sqLocalTail) // release: SQEs before tail
	flags := uint32(0)
	if minComplete > 0 {
		flags |= sys.IoringEnterGetevents
	}
	for {
		toSubmit := r.sqLocalTail - atomic.LoadUint32(r.sqHead)
		n, errno := sys.IoUringEnter(r.fd, toSubmit, minComplete, flags)
		switch errno {
		case 0:
			if uint32(n) >= toSubmit || minComplete > 0 || n == 0 {
				return nil // n == 0: the kernel took none; the next call tries again
			}
		case syscall.EINTR:
		case syscall.EAGAIN, syscall.EBUSY:
			// CQ overflow or kernel memory pressure: reap, then retry.
			return nil
		default:
			return fmt.Errorf("io_uring_enter: %w", errno)
		}
	}
}

// reap calls fn for every ready CQE, in order, and hands the slots back.
func (r *ring) reap(fn func(userData uint64, res int32)) int {
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail) // acquire: CQEs before tail are written
	n := 0
	for ; head != tail; head++ {
		off := int(head&*r.cqMask) * sys.IoUringCqeSize
		cqe := r.cqes[off : off+sys.IoUringCqeSize]
		userData := *(*uint64)(unsafe.Pointer(&cqe[0]))
		res := *(*int32)(unsafe.Pointer(&cqe[8]))
		fn(userData, res)
		n++
	}
	atomic.StoreUint32(r.cqHead, head) // release: we are done reading them
	return n
}

func (r *ring) close() {
	if r.sqeMem != nil {
		unix.Munmap(r.sqeMem)
	}
	if r.cqMem != nil && unsafe.SliceData(r.cqMem) != unsafe.SliceData(r.sqMem) {
		unix.Munmap(r.cqMem)
	}
	if r.sqMem != nil {
		unix.Munmap(r.sqMem)
	}
	r.sqeMem, r.cqMem, r.sqMem = nil, nil, nil
	if r.fd >= 0 {
		unix.Close(r.fd)
		r.fd = -1
	}
}

// putUringCmd fills sqe as IORING_OP_URING_CMD on fd with cmdOp, addr/len
// and the fuse_uring_cmd_req {flags, commit_id, qid} in the command area.
func putUringCmd(sqe []byte, fd int, cmdOp uint32, addr uintptr, length uint32, commitID uint64, qid uint16, userData uint64) {
	sqe[0] = sys.IoringOpUringCmd
	*(*int32)(unsafe.Pointer(&sqe[4])) = int32(fd)
	*(*uint32)(unsafe.Pointer(&sqe[8])) = cmdOp
	*(*uint64)(unsafe.Pointer(&sqe[16])) = uint64(addr)
	*(*uint32)(unsafe.Pointer(&sqe[24])) = length
	*(*uint64)(unsafe.Pointer(&sqe[32])) = userData
	// struct fuse_uring_cmd_req at SQE offset 48 (sqe->cmd).
	*(*uint64)(unsafe.Pointer(&sqe[48])) = 0
	*(*uint64)(unsafe.Pointer(&sqe[56])) = commitID
	*(*uint16)(unsafe.Pointer(&sqe[64])) = qid
}

// entryMem is one ring entry's memory, one anonymous mmap so that the
// kernel's view of it can never move and it is page-aligned:
//
//	[0, 288)              fuse_uring_req_header (iov[0])
//	[512, 544)            the iovec[2] REGISTER points at
//	[4096-16, 4096)       the reply's fuse_out_header, written by the engine
//	[4096, 4096+payload)  the payload buffer (iov[1])
//
// so that Out = mem[4096-16:] puts the engine's reply arguments (and READ
// data) straight into the payload buffer.
type entryMem struct {
	mem     []byte
	hdr     []byte // fuse_uring_req_header
	out     []byte // reply buffer: out header then payload
	payload []byte
	iovAddr uintptr
}

const (
	entryHdrOff     = 0
	entryIovOff     = 512
	entryPayloadOff = 4096
)

func newEntryMem(payloadSize int) (*entryMem, error) {
	m, err := unix.Mmap(-1, 0, entryPayloadOff+payloadSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("mmap %d-byte ring entry: %w", entryPayloadOff+payloadSize, err)
	}
	e := &entryMem{mem: m, hdr: m[entryHdrOff : entryHdrOff+abi.UringReqHeaderSize],
		out: m[entryPayloadOff-16:], payload: m[entryPayloadOff:]}
	iov := (*[2]unix.Iovec)(unsafe.Pointer(&m[entryIovOff]))
	iov[0].Base, iov[1].Base = &e.hdr[0], &e.payload[0]
	iov[0].SetLen(len(e.hdr))
	iov[1].SetLen(len(e.payload))
	e.iovAddr = uintptr(unsafe.Pointer(iov))
	return e, nil
}

func (e *entryMem) close() { unix.Munmap(e.mem) }

// ioringOpRead is IORING_OP_READ.
const ioringOpRead = 22

// putRead fills sqe as IORING_OP_READ of len(buf) bytes from fd into buf,
// which must stay mapped until the CQE (mmapped memory the queue owns).
func putRead(sqe []byte, fd int, buf []byte, userData uint64) {
	sqe[0] = ioringOpRead
	*(*int32)(unsafe.Pointer(&sqe[4])) = int32(fd)
	*(*uint64)(unsafe.Pointer(&sqe[16])) = uint64(uintptr(unsafe.Pointer(&buf[0])))
	*(*uint32)(unsafe.Pointer(&sqe[24])) = uint32(len(buf))
	*(*uint64)(unsafe.Pointer(&sqe[32])) = userData
}
