package ring

import "errors"

// Errors of one chain. Pop returns one of these with ok == true: the chain
// is rejected, the caller completes Chain.Head with 0 bytes written, and the
// queue goes on. They are pre-built so the hot path never allocates.
var (
	// ErrLoop: a chain visited more descriptors than its table holds, so it
	// loops (or is longer than the queue size, which the spec forbids).
	ErrLoop = errors.New("ring: descriptor chain loops or is longer than its table")
	// ErrNext: a descriptor's next index is outside its table.
	ErrNext = errors.New("ring: descriptor next index out of range")
	// ErrAddress: a buffer (or an indirect table) is not inside guest memory.
	ErrAddress = errors.New("ring: descriptor buffer outside guest memory")
	// ErrOrder: a device-readable descriptor follows a device-writable one.
	ErrOrder = errors.New("ring: readable descriptor after a writable one")
	// ErrIndirect: INDIRECT used though VIRTIO_F_INDIRECT_DESC was not
	// negotiated.
	ErrIndirect = errors.New("ring: indirect descriptor without VIRTIO_F_INDIRECT_DESC")
	// ErrIndirectNested: INDIRECT inside an indirect table.
	ErrIndirectNested = errors.New("ring: nested indirect descriptor table")
	// ErrIndirectNext: INDIRECT and NEXT on the same descriptor.
	ErrIndirectNext = errors.New("ring: indirect descriptor with NEXT")
	// ErrIndirectSize: an indirect table's length is 0, not a multiple of
	// 16, or holds more entries than the queue size.
	ErrIndirectSize = errors.New("ring: bad indirect descriptor table length")
	// ErrTooManyBuffers: the chain needs more than MaxBuffers buffers.
	ErrTooManyBuffers = errors.New("ring: chain has more buffers than ring.MaxBuffers")
	// ErrTooLarge: the chain's total length exceeds Config.MaxChainBytes.
	ErrTooLarge = errors.New("ring: chain longer than the byte limit")
)

// Errors that break the whole ring. Pop returns one of these with
// ok == false, and keeps returning it: there is no chain to complete, the
// driver's ring state is corrupt. The owner should stop the queue and report
// it (vhost-user: the error eventfd, or the device's NEEDS_RESET).
var (
	// ErrAvailIndex: avail.idx moved more than the queue size past the
	// device's next index (the spec forbids it; the ring is corrupt).
	ErrAvailIndex = errors.New("ring: avail index moved more than the queue size")
	// ErrHead: a head index in the available ring is not below the queue
	// size, so there is no descriptor to complete.
	ErrHead = errors.New("ring: available ring head out of range")
)
