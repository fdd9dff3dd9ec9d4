package vring

// Descriptor table entry (virtq_desc): addr u64 @0, len u32 @8, flags u16
// @12, next u16 @14, all little-endian.
const (
	DescSize = 16

	DescFlagNext     = 1 // VIRTQ_DESC_F_NEXT: next is valid
	DescFlagWrite    = 2 // VIRTQ_DESC_F_WRITE: device-writable buffer
	DescFlagIndirect = 4 // VIRTQ_DESC_F_INDIRECT: buffer is a descriptor table
)

// Available ring (virtq_avail): flags u16 @0, idx u16 @2, ring[N] u16 @4,
// used_event u16 @4+2N. Driver-written; 2-byte aligned.
const (
	AvailFlagsOff = 0
	AvailIdxOff   = 2
	AvailRingOff  = 4
	AvailElemSize = 2

	AvailFlagNoInterrupt = 1 // VRING_AVAIL_F_NO_INTERRUPT
	AvailAlign           = 2
)

// Used ring (virtq_used): flags u16 @0, idx u16 @2, ring[N] {id u32, len
// u32} @4, avail_event u16 @4+8N. Device-written; 4-byte aligned.
const (
	UsedFlagsOff = 0
	UsedIdxOff   = 2
	UsedRingOff  = 4
	UsedElemSize = 8

	UsedFlagNoNotify = 1 // VRING_USED_F_NO_NOTIFY
	UsedAlign        = 4
	DescAlign        = 16
)

// MaxSize is the largest split-ring queue size.
const MaxSize = 32768

// DescTableSize, AvailSize and UsedSize are the byte sizes of the three
// parts of a ring of n entries, event fields included.
func DescTableSize(n uint32) uint64 { return DescSize * uint64(n) }
func AvailSize(n uint32) uint64     { return AvailRingOff + AvailElemSize*uint64(n) + 2 }
func UsedSize(n uint32) uint64      { return UsedRingOff + UsedElemSize*uint64(n) + 2 }

// UsedEventOff and AvailEventOff are the offsets of the trailing event
// fields (VIRTIO_F_EVENT_IDX) in the avail and used rings.
func UsedEventOff(n uint32) uint64  { return AvailRingOff + AvailElemSize*uint64(n) }
func AvailEventOff(n uint32) uint64 { return UsedRingOff + UsedElemSize*uint64(n) }

// NeedEvent is vring_need_event: whether moving an index from old to new
// crossed event, i.e. the other side asked to be notified when the index
// passes event. All arithmetic is modulo 2^16.
func NeedEvent(event, new, old uint16) bool {
	return new-event-1 < new-old
}
