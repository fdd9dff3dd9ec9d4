package ring

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/fastfsd/fastfsd/mem"
	"github.com/fastfsd/fastfsd/ring/internal/vring"
)

// Feature bits (virtio 1.x §6) the queue acts on. Others are ignored.
const (
	FeatureIndirectDesc uint64 = 1 << 28 // VIRTIO_RING_F_INDIRECT_DESC
	FeatureEventIdx     uint64 = 1 << 29 // VIRTIO_RING_F_EVENT_IDX
	FeatureVersion1     uint64 = 1 << 32 // VIRTIO_F_VERSION_1
)

// MaxSize is the largest split-ring queue size.
const MaxSize = vring.MaxSize

// DefaultMaxChainBytes is the chain length limit when Config.MaxChainBytes
// is 0: the spec's 2^32 bytes, less one so a used length always fits u32.
const DefaultMaxChainBytes = 1<<32 - 1

// Config describes a split virtqueue as the driver set it up.
type Config struct {
	// Size is the number of entries (vhost-user SET_VRING_NUM): a power of
	// two, 1 to MaxSize.
	Size uint32
	// Desc, Avail and Used are the guest-physical addresses of the
	// descriptor table (16-byte aligned), the available ring (2-byte
	// aligned) and the used ring (4-byte aligned). vhost-user sends user
	// addresses: translate them with mem.Table.UserToGuest.
	Desc, Avail, Used uint64
	// Features are the negotiated virtio feature bits. VERSION_1 is
	// required (virtio-fs is a modern-only device; legacy rings have
	// guest-endian fields).
	Features uint64
	// Base is the next available index to process (SET_VRING_BASE).
	Base uint16
	// MaxChainBytes caps the total length of a chain's buffers; 0 means
	// DefaultMaxChainBytes.
	MaxChainBytes uint64
}

// Queue is the device side of one split virtqueue. It is owned by one
// worker goroutine: no method may be called concurrently with another.
// Pop, Push and Publish allocate nothing.
//
// Shared fields, each in guest memory (the driver is the other party):
//
//	avail.idx    driver writes, device loads (acquire) once per batch in Pop,
//	             in EnableNotify and in Ready (a Pop after Ready reports
//	             true reads entries under Ready's load).
//	avail.ring   driver writes before its avail.idx store; device reads each
//	             entry once, after the avail.idx load.
//	descriptors  driver writes before its avail.idx store; device reads each
//	             entry once into locals, after the avail.idx load.
//	avail.flags  driver writes; device loads in Publish (no EVENT_IDX).
//	used_event   driver writes; device loads in Publish (EVENT_IDX).
//	used.ring    device writes in Push; driver reads after loading used.idx.
//	used.idx     device stores (release) in Publish, with used.flags in the
//	  +flags     same 32-bit word; used.flags also from En/DisableNotify.
//	avail_event  device stores in EnableNotify (EVENT_IDX).
//
// See the package documentation for the ordering argument.
type Queue struct {
	t   *mem.Table
	cfg Config

	// Immutable after bind: views and fields in guest memory.
	mask       uint16 // Size-1
	size       uint32
	desc       []byte      // 16*Size bytes
	availRing  []byte      // 2*Size bytes
	usedRing   []byte      // 8*Size bytes
	availIdx   vring.Field // avail.idx
	availFlags vring.Field // avail.flags
	usedEvent  vring.Field // avail ring's used_event
	usedHdr    vring.Word  // used.{flags, idx}
	availEvent vring.Field // used ring's avail_event
	eventIdx   bool
	indirect   bool
	maxBytes   uint64

	// Worker-private state.
	lastAvail uint16 // next avail slot to consume (free-running)
	availSeen uint16 // avail.idx as last loaded
	usedNext  uint16 // next used slot to fill (free-running)
	usedPub   uint16 // used.idx as last stored
	usedFlags uint16 // used.flags as last stored
	err       error  // sticky ring error (ErrAvailIndex, ErrHead)

	// hot is the guest memory region of the last buffer, hotStart its
	// guest-physical address: most buffers fall in the same region, and
	// checking it first saves a table search. Reset by bind.
	hot      []byte
	hotStart uint64
}

// New validates cfg against the guest memory t and returns the queue. It
// reads used.idx from guest memory as the first used index (the driver
// zeroes it on setup; after a stop it holds what the device published).
// Nothing is written to guest memory until the first Publish or
// En/DisableNotify.
func New(t *mem.Table, cfg Config) (*Queue, error) {
	q := &Queue{cfg: cfg}
	if err := q.bind(t); err != nil {
		return nil, err
	}
	q.lastAvail, q.availSeen = cfg.Base, cfg.Base
	// used.flags is the device's: start from 0 (EVENT_IDX requires it),
	// whatever the guest left there.
	_, q.usedPub = q.usedHdr.Load()
	q.usedNext = q.usedPub
	return q, nil
}

// bind checks the configuration against t and translates the rings.
func (q *Queue) bind(t *mem.Table) error {
	c := q.cfg
	if c.Size == 0 || c.Size > MaxSize || c.Size&(c.Size-1) != 0 {
		return fmt.Errorf("ring: queue size %d: must be a power of two from 1 to %d", c.Size, MaxSize)
	}
	if c.Features&FeatureVersion1 == 0 {
		return errors.New("ring: VIRTIO_F_VERSION_1 not negotiated: legacy rings are not supported")
	}
	switch {
	case c.Desc%vring.DescAlign != 0:
		return fmt.Errorf("ring: descriptor table at %#x: not %d-byte aligned", c.Desc, vring.DescAlign)
	case c.Avail%vring.AvailAlign != 0:
		return fmt.Errorf("ring: avail ring at %#x: not %d-byte aligned", c.Avail, vring.AvailAlign)
	case c.Used%vring.UsedAlign != 0:
		return fmt.Errorf("ring: used ring at %#x: not %d-byte aligned", c.Used, vring.UsedAlign)
	}
	n := c.Size
	desc, ok := t.Slice(c.Desc, vring.DescTableSize(n))
	if !ok {
		return fmt.Errorf("ring: descriptor table %#x+%#x not inside one guest memory region", c.Desc, vring.DescTableSize(n))
	}
	avail, ok := t.Slice(c.Avail, vring.AvailSize(n))
	if !ok {
		return fmt.Errorf("ring: avail ring %#x+%#x not inside one guest memory region", c.Avail, vring.AvailSize(n))
	}
	used, ok := t.Slice(c.Used, vring.UsedSize(n))
	if !ok {
		return fmt.Errorf("ring: used ring %#x+%#x not inside one guest memory region", c.Used, vring.UsedSize(n))
	}
	// The device writes the used ring; a used ring overlapping what it reads
	// is a broken driver, refused up front.
	if overlaps(c.Used, vring.UsedSize(n), c.Desc, vring.DescTableSize(n)) ||
		overlaps(c.Used, vring.UsedSize(n), c.Avail, vring.AvailSize(n)) {
		return errors.New("ring: used ring overlaps the descriptor table or the avail ring")
	}
	var fields [4]vring.Field
	for i, gpa := range [4]uint64{
		c.Avail + vring.AvailIdxOff,
		c.Avail + vring.AvailFlagsOff,
		c.Avail + vring.UsedEventOff(n),
		c.Used + vring.AvailEventOff(n),
	} {
		f, err := field(t, gpa)
		if err != nil {
			return err
		}
		fields[i] = f
	}
	hdr, ok := t.Slice(c.Used, 4)
	if !ok {
		return errors.New("ring: used ring header outside guest memory")
	}
	w, ok := vring.NewWord(hdr)
	if !ok {
		return fmt.Errorf("ring: used ring at %#x is not 4-byte aligned in host memory (region mapped at an odd offset)", c.Used)
	}
	q.t = t
	q.hot, q.hotStart = nil, 0
	q.size = n
	q.mask = uint16(n - 1)
	q.desc = desc
	q.availRing = avail[vring.AvailRingOff : vring.AvailRingOff+vring.AvailElemSize*n]
	q.usedRing = used[vring.UsedRingOff : vring.UsedRingOff+vring.UsedElemSize*n]
	q.availIdx, q.availFlags, q.usedEvent, q.availEvent = fields[0], fields[1], fields[2], fields[3]
	q.usedHdr = w
	q.eventIdx = c.Features&FeatureEventIdx != 0
	q.indirect = c.Features&FeatureIndirectDesc != 0
	q.maxBytes = c.MaxChainBytes
	if q.maxBytes == 0 {
		q.maxBytes = DefaultMaxChainBytes
	}
	return nil
}

// field returns the 16-bit field at gpa through its aligned 32-bit word,
// which must be inside guest memory and 4-byte aligned in host memory.
func field(t *mem.Table, gpa uint64) (vring.Field, error) {
	word, ok := t.Slice(gpa&^3, 4)
	if !ok {
		return vring.Field{}, fmt.Errorf("ring: the 32-bit word holding the ring field at %#x is not inside guest memory", gpa)
	}
	f, ok := vring.NewField(word, gpa&3)
	if !ok {
		return vring.Field{}, fmt.Errorf("ring: ring field at %#x is not aligned in host memory (region mapped at an odd offset)", gpa)
	}
	return f, nil
}

func overlaps(a, alen, b, blen uint64) bool {
	return a < b+blen && b < a+alen // sizes are small and inside regions: no overflow
}

// SetMemory re-translates the rings in a new table (after a guest memory
// update), keeping the queue's indices. On error the queue is unchanged
// and must not be used with the new table.
//
// Preconditions: no Chain popped from the old table is still in use.
func (q *Queue) SetMemory(t *mem.Table) error {
	if t == q.t {
		return nil
	}
	nq := *q
	if err := nq.bind(t); err != nil {
		return err
	}
	*q = nq
	return nil
}

// Table returns the guest memory the queue currently uses.
func (q *Queue) Table() *mem.Table { return q.t }

// Size returns the queue size.
func (q *Queue) Size() uint32 { return q.size }

// Base returns the next available index the device will process: the
// answer to GET_VRING_BASE. Chains popped but not yet pushed are not
// accounted for: complete (or abandon) them first.
func (q *Queue) Base() uint16 { return q.lastAvail }

// Ready reports whether the driver has made chains available beyond the
// ones popped, with one load of avail.idx and without asking for a kick
// (EnableNotify does that): a busy-polling consumer calls it in its loop,
// so a driver that sees the old avail_event (or NO_NOTIFY) does not kick
// a consumer that is looking anyway. It also reports true once the ring is
// broken (Err), so that the caller's next Pop sees it. Only the consumer
// may call it.
func (q *Queue) Ready() bool {
	if q.err != nil || !q.loadAvail() {
		return true
	}
	return q.availSeen != q.lastAvail
}

// Pending is how many chains the last load of avail.idx showed beyond the
// ones popped: a lower bound of the driver's queue depth, costing no shared
// load. Only the consumer may call it.
func (q *Queue) Pending() int { return int(q.availSeen - q.lastAvail) }

// SetBase sets the next available index (SET_VRING_BASE) and clears the
// cached avail.idx so the next Pop reloads it.
func (q *Queue) SetBase(idx uint16) {
	q.lastAvail, q.availSeen = idx, idx
}

// Err returns the sticky ring error (ErrAvailIndex, ErrHead), or nil.
func (q *Queue) Err() error { return q.err }

// Pop takes the next available chain and walks it into c.
//
//   - ok == false, err == nil: no chain is available.
//   - ok == true, err == nil: c holds a valid chain.
//   - ok == true, err != nil: the chain is malformed (ErrLoop, ErrAddress,
//     …). c holds no buffers; c.Head is a valid head index. The caller must
//     complete it with Push(c.Head, 0) so the driver gets its descriptors
//     back, and may count or log the error; the queue goes on.
//   - ok == false, err != nil: the ring itself is corrupt (ErrAvailIndex,
//     ErrHead). The error is sticky; stop the queue.
//
// avail.idx is loaded (acquire) only when every entry seen by the previous
// load has been consumed, so a batch of chains costs one shared load.
func (q *Queue) Pop(c *Chain) (ok bool, err error) {
	if q.err != nil {
		return false, q.err
	}
	if q.lastAvail == q.availSeen {
		if !q.loadAvail() {
			return false, q.err
		}
		if q.lastAvail == q.availSeen {
			return false, nil
		}
	}
	// Read once: this entry is the head for good, whatever the driver
	// writes there next.
	slot := uint32(q.lastAvail & q.mask)
	head := binary.LittleEndian.Uint16(q.availRing[2*slot:])
	q.lastAvail++
	if uint32(head) >= q.size {
		q.err = ErrHead
		return false, q.err
	}
	c.reset(head)
	if err := q.walk(c, head); err != nil {
		c.reset(head)
		return true, err
	}
	return true, nil
}

// loadAvail loads avail.idx into availSeen, or sets the sticky error and
// reports false if the driver moved it more than a queue's worth ahead.
func (q *Queue) loadAvail() bool {
	// Acquire (sequentially consistent) load: pairs with the driver's
	// release of avail.idx (virtio_wmb before the idx store), so every
	// avail.ring entry and descriptor the driver wrote before it is
	// visible to the plain reads that follow.
	idx := q.availIdx.Load()
	if uint32(idx-q.lastAvail) > q.size {
		q.err = ErrAvailIndex
		return false
	}
	q.availSeen = idx
	return true
}

// walk follows the chain from head into c. Each descriptor is read once into
// locals and only the locals are validated and used.
func (q *Queue) walk(c *Chain, head uint16) error {
	table := q.desc
	limit := q.size // entries in table
	idx := uint32(head)
	inIndirect := false
	var total uint64
	for seen := uint32(0); ; {
		// At most limit descriptors of one table: a chain visiting more must
		// revisit one (a loop) or is longer than the spec allows.
		if seen == limit {
			return ErrLoop
		}
		seen++
		d := table[vring.DescSize*idx : vring.DescSize*idx+vring.DescSize]
		addr := binary.LittleEndian.Uint64(d[0:8])
		length := binary.LittleEndian.Uint32(d[8:12])
		flags := binary.LittleEndian.Uint16(d[12:14])
		next := binary.LittleEndian.Uint16(d[14:16])

		if flags&vring.DescFlagIndirect != 0 {
			switch {
			case !q.indirect:
				return ErrIndirect
			case inIndirect:
				return ErrIndirectNested
			case flags&vring.DescFlagNext != 0:
				return ErrIndirectNext
			case length == 0 || length%vring.DescSize != 0 || length/vring.DescSize > q.size:
				return ErrIndirectSize
			}
			// WRITE on the descriptor pointing to the table is ignored (spec).
			t, ok := q.t.Slice(addr, uint64(length))
			if !ok {
				return ErrAddress
			}
			table, limit, idx, seen, inIndirect = t, length/vring.DescSize, 0, 0, true
			continue
		}

		write := flags&vring.DescFlagWrite != 0
		if !write && c.n > c.nr {
			return ErrOrder
		}
		total += uint64(length)
		if total > q.maxBytes {
			return ErrTooLarge
		}
		if write {
			c.writeLen += uint64(length)
		} else {
			c.readLen += uint64(length)
		}
		// One buffer per guest memory region the descriptor touches.
		for rem := uint64(length); rem > 0; {
			off := addr - q.hotStart // wraps to a huge value below hotStart
			if off >= uint64(len(q.hot)) {
				start, view, ok := q.t.Containing(addr)
				if !ok {
					return ErrAddress
				}
				q.hot, q.hotStart, off = view, start, addr-start
			}
			n := min(rem, uint64(len(q.hot))-off) // off < len(q.hot): n >= 1
			if c.n == MaxBuffers {
				return ErrTooManyBuffers
			}
			c.buf[c.n] = Buffer{Bytes: q.hot[off : off+n : off+n], GPA: addr}
			c.n++
			if !write {
				c.nr++
			}
			addr += n // the buffer ends inside a region: no overflow
			rem -= n
		}

		if flags&vring.DescFlagNext == 0 {
			return nil
		}
		idx = uint32(next)
		if idx >= limit {
			return ErrNext
		}
	}
}

// Push records that the chain at head is complete with written bytes
// written into its writable buffers. The driver sees it after Publish.
//
// Preconditions: head came from Pop; written is at most the chain's
// WritableLen (the spec allows under-, never over-estimating); fewer than
// Size chains are pushed between two Publishes.
func (q *Queue) Push(head uint16, written uint32) {
	slot := uint32(q.usedNext & q.mask)
	e := q.usedRing[vring.UsedElemSize*slot : vring.UsedElemSize*slot+vring.UsedElemSize]
	binary.LittleEndian.PutUint32(e[0:4], uint32(head))
	binary.LittleEndian.PutUint32(e[4:8], written)
	q.usedNext++
}

// Publish makes every pushed element visible to the driver with one store
// of used.idx and reports whether the driver asked to be notified (write
// the call eventfd). It does nothing and returns false if nothing was
// pushed since the last Publish.
func (q *Queue) Publish() (notify bool) {
	old, new := q.usedPub, q.usedNext
	if old == new {
		return false
	}
	// Release (sequentially consistent) store of used.idx, with used.flags
	// unchanged in the same word: the used elements written by Push and the
	// reply bytes written into the buffers (by us or by the kernel in
	// preadv, earlier on this thread) are visible to the driver before it
	// can see the new idx. Pairs with the driver's read barrier after its
	// load of used.idx.
	q.usedHdr.Store(q.usedFlags, new)
	q.usedPub = new

	// Store→load: the loads below must not be satisfied before the store
	// above is visible, or we could miss a driver that concurrently set
	// used_event / cleared NO_INTERRUPT after reading the old used.idx, and
	// neither side would act (a lost interrupt). Both accesses are
	// sequentially consistent atomics (XCHG then MOV on amd64; STLR then
	// LDAR on arm64), which orders them: the full barrier virtio asks for
	// (virtio_mb in the driver pairs with it).
	if q.eventIdx {
		return vring.NeedEvent(q.usedEvent.Load(), new, old)
	}
	return q.availFlags.Load()&vring.AvailFlagNoInterrupt == 0
}

// EnableNotify asks the driver to kick after it adds buffers (write
// avail_event with EVENT_IDX, else clear used.flags NO_NOTIFY), then
// re-checks avail.idx. If it returns true, buffers arrived meanwhile (or the
// ring broke): call Pop again instead of sleeping, or a kick may be lost.
//
// The loop of a kick-driven worker is:
//
//	for {
//		for { ok, err := q.Pop(&c); if !ok { break }; …; q.Push(c.Head, n) }
//		if q.Publish() { signal call }
//		if q.EnableNotify() { continue }
//		wait for kick
//		q.DisableNotify()
//	}
func (q *Queue) EnableNotify() (pending bool) {
	if q.eventIdx {
		// "Kick me when avail.idx passes lastAvail." If the guest kept the
		// word's other half busy and the store failed, do not sleep.
		if !q.availEvent.Store(q.lastAvail) {
			return true
		}
	} else {
		q.usedFlags &^= vring.UsedFlagNoNotify
		q.usedHdr.Store(q.usedFlags, q.usedPub)
	}
	// Store→load again: the avail.idx load must follow the store above.
	// Otherwise: we load the old idx; the driver adds a buffer, reads the
	// old avail_event / NO_NOTIFY and skips the kick; we sleep forever.
	// Both are sequentially consistent atomics, so the load comes after
	// (Ready's load of avail.idx).
	return q.Ready()
}

// DisableNotify tells the driver that kicks are not needed (busy polling).
// Without EVENT_IDX it sets used.flags NO_NOTIFY; with EVENT_IDX it does
// nothing: avail_event stays where EnableNotify put it, so the driver kicks
// at most once more, and spurious kicks are harmless.
func (q *Queue) DisableNotify() {
	if q.eventIdx {
		return
	}
	q.usedFlags |= vring.UsedFlagNoNotify
	q.usedHdr.Store(q.usedFlags, q.usedPub)
}
