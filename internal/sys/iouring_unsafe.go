package sys

import (
	"golang.org/x/sys/unix"
	"syscall"
	"unsafe"
)

// io_uring ABI (include/uapi/linux/io_uring.h), only what fastfs uses: one
// ring per FUSE queue, carrying IORING_OP_URING_CMD to /dev/fuse.

// IoUringParams is struct io_uring_params (120 bytes).
type IoUringParams struct {
	SqEntries    uint32
	CqEntries    uint32
	Flags        uint32
	SqThreadCPU  uint32
	SqThreadIdle uint32
	Features     uint32
	WqFd         uint32
	Resv         [3]uint32
	SqOff        IoSqringOffsets
	CqOff        IoCqringOffsets
}

// IoSqringOffsets is struct io_sqring_offsets (40 bytes).
type IoSqringOffsets struct {
	Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
	UserAddr                                                        uint64
}

// IoCqringOffsets is struct io_cqring_offsets (40 bytes).
type IoCqringOffsets struct {
	Head, Tail, RingMask, RingEntries, Overflow, Cqes, Flags, Resv1 uint32
	UserAddr                                                        uint64
}

const (
	IoringSetupSQE128       = 1 << 10 // IORING_SETUP_SQE128: 128-byte SQEs (URING_CMD payload)
	IoringSetupCqsize       = 1 << 3  // IORING_SETUP_CQSIZE
	IoringSetupSingleIssuer = 1 << 12 // IORING_SETUP_SINGLE_ISSUER
	IoringFeatSingleMmap    = 1 << 0  // IORING_FEAT_SINGLE_MMAP
	IoringEnterGetevents    = 1 << 0  // IORING_ENTER_GETEVENTS
	IoringOpUringCmd        = 46      // IORING_OP_URING_CMD

	IoringOffSqRing = 0          // IORING_OFF_SQ_RING
	IoringOffCqRing = 0x8000000  // IORING_OFF_CQ_RING
	IoringOffSqes   = 0x10000000 // IORING_OFF_SQES

	IoUringSqeSize128 = 128 // with IORING_SETUP_SQE128
	IoUringCqeSize    = 16  // struct io_uring_cqe
)

// IoUringSetup is io_uring_setup(2).
func IoUringSetup(entries uint32, p *IoUringParams) (int, syscall.Errno) {
	fd, _, e := syscall.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(p)), 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), 0
}

// IoUringEnter is io_uring_enter(2) without a signal mask. It blocks when
// minComplete > 0 with IoringEnterGetevents, so it is a Syscall, not a
// RawSyscall.
func IoUringEnter(fd int, toSubmit, minComplete, flags uint32) (int, syscall.Errno) {
	n, _, e := syscall.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(fd), uintptr(toSubmit), uintptr(minComplete), uintptr(flags), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}
