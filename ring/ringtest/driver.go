package ringtest

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/fastfsd/fastfsd/mem"
	"github.com/fastfsd/fastfsd/ring"
	"github.com/fastfsd/fastfsd/ring/internal/vring"
)

// Descriptor flags, for forging.
const (
	FlagNext     = vring.DescFlagNext
	FlagWrite    = vring.DescFlagWrite
	FlagIndirect = vring.DescFlagIndirect
)

// DescSize is the size of a descriptor table entry.
const DescSize = vring.DescSize

// Buf is one buffer of a chain to add.
type Buf struct {
	Addr  uint64 // guest-physical address
	Len   uint32
	Write bool // device-writable
}

// Desc is a raw descriptor, for forging.
type Desc struct {
	Addr  uint64
	Len   uint32
	Flags uint16
	Next  uint16
}

// Layout returns a ring configuration of size entries packed from guest
// address base (16-aligned): descriptor table, avail ring, used ring at the
// next 4-aligned address; and end, the first address after the used ring
// and a 4-byte pad (the 32-bit access to avail_event may read the word past
// it).
func Layout(size uint32, base uint64, features uint64) (cfg ring.Config, end uint64) {
	cfg = ring.Config{Size: size, Desc: base, Features: features | ring.FeatureVersion1}
	cfg.Avail = base + vring.DescTableSize(size)
	cfg.Used = (cfg.Avail + vring.AvailSize(size) + 3) &^ 3
	end = cfg.Used + vring.UsedSize(size) + 4
	return cfg, end
}

// ErrFull is returned when the ring has no free descriptors for a chain.
var ErrFull = errors.New("ringtest: not enough free descriptors")

// Driver is the guest side of one split virtqueue.
type Driver struct {
	t    *mem.Table
	cfg  ring.Config
	size uint32
	mask uint16

	desc      []byte
	availRing []byte
	usedRing  []byte

	availHdr   vring.Word  // avail.{flags, idx} when avail is 4-aligned
	availIdx   vring.Field // avail.idx
	availFlags vring.Field // avail.flags
	usedEvent  vring.Field // used_event (driver-written)
	usedIdx    vring.Field // used.idx
	usedFlags  vring.Field // used.flags
	availEvent vring.Field // avail_event (device-written)

	// Driver-private state.
	availNext  uint16   // next avail slot (free-running)
	availPub   uint16   // avail.idx as last stored
	usedLast   uint16   // next used element to read
	usedSeen   uint16   // used.idx as last loaded
	flags      uint16   // avail.flags as last stored
	free       []uint16 // stack of free descriptor indices
	chainLen   []uint16 // per head: descriptors owned by an added chain, 0 if forged
	nextOf     []uint16 // private copy of each descriptor's next
	eventIdx   bool
	hdrAligned bool
}

// NewDriver attaches a driver to the ring cfg in t and initialises the
// rings as a driver does at setup: flags and event fields 0, avail.idx and
// used.idx cfg.Base. Create it before the ring.Queue, which reads used.idx.
func NewDriver(t *mem.Table, cfg ring.Config) (*Driver, error) {
	n := cfg.Size
	if n == 0 || n > ring.MaxSize || n&(n-1) != 0 {
		return nil, fmt.Errorf("ringtest: bad queue size %d", n)
	}
	d := &Driver{t: t, cfg: cfg, size: n, mask: uint16(n - 1), eventIdx: cfg.Features&ring.FeatureEventIdx != 0}
	var ok bool
	if d.desc, ok = t.Slice(cfg.Desc, vring.DescTableSize(n)); !ok {
		return nil, errors.New("ringtest: descriptor table outside memory")
	}
	avail, ok := t.Slice(cfg.Avail, vring.AvailSize(n))
	if !ok {
		return nil, errors.New("ringtest: avail ring outside memory")
	}
	used, ok := t.Slice(cfg.Used, vring.UsedSize(n))
	if !ok {
		return nil, errors.New("ringtest: used ring outside memory")
	}
	d.availRing = avail[vring.AvailRingOff:]
	d.usedRing = used[vring.UsedRingOff:]
	fields := []*vring.Field{&d.availIdx, &d.availFlags, &d.usedEvent, &d.usedIdx, &d.usedFlags, &d.availEvent}
	for i, gpa := range []uint64{
		cfg.Avail + vring.AvailIdxOff, cfg.Avail + vring.AvailFlagsOff, cfg.Avail + vring.UsedEventOff(n),
		cfg.Used + vring.UsedIdxOff, cfg.Used + vring.UsedFlagsOff, cfg.Used + vring.AvailEventOff(n),
	} {
		w, ok := t.Slice(gpa&^3, 4)
		if !ok {
			return nil, fmt.Errorf("ringtest: word of field %#x outside memory", gpa)
		}
		if *fields[i], ok = vring.NewField(w, gpa&3); !ok {
			return nil, fmt.Errorf("ringtest: field %#x misaligned", gpa)
		}
	}
	if cfg.Avail%4 == 0 {
		w, _ := t.Slice(cfg.Avail, 4)
		d.availHdr, d.hdrAligned = vring.NewWord(w)
	}
	// Reset the shared state as a driver does at setup.
	d.availIdx.Store(0)
	d.availFlags.Store(0)
	d.usedEvent.Store(0)
	d.usedIdx.Store(0)
	d.usedFlags.Store(0)
	d.availEvent.Store(0)
	// A non-zero Base starts both indices there, as after a restart, so
	// tests can cross the 16-bit wrap quickly.
	d.availNext, d.availPub = cfg.Base, cfg.Base
	d.usedLast, d.usedSeen = cfg.Base, cfg.Base
	d.availIdx.Store(cfg.Base)
	d.usedIdx.Store(cfg.Base)
	d.free = make([]uint16, 0, n)
	for i := int(n) - 1; i >= 0; i-- {
		d.free = append(d.free, uint16(i))
	}
	d.chainLen = make([]uint16, n)
	d.nextOf = make([]uint16, n)
	return d, nil
}

// Config returns the ring configuration.
func (d *Driver) Config() ring.Config { return d.cfg }

// Free returns the number of free descriptors.
func (d *Driver) Free() int { return len(d.free) }

// Mem returns a view of guest memory, for filling request buffers and
// checking replies.
func (d *Driver) Mem(gpa, n uint64) []byte {
	b, ok := d.t.Slice(gpa, n)
	if !ok {
		panic(fmt.Sprintf("ringtest: Mem(%#x, %d) outside guest memory", gpa, n))
	}
	return b
}

// WriteDesc writes raw descriptor i of the descriptor table.
func (d *Driver) WriteDesc(i uint16, desc Desc) {
	putDesc(d.desc[vring.DescSize*uint32(i&d.mask):], desc)
}

// WriteTable writes descs as an indirect table at gpa.
func (d *Driver) WriteTable(gpa uint64, descs []Desc) {
	b := d.Mem(gpa, uint64(len(descs))*vring.DescSize)
	for i, desc := range descs {
		putDesc(b[vring.DescSize*i:], desc)
	}
}

func putDesc(b []byte, desc Desc) {
	binary.LittleEndian.PutUint64(b[0:8], desc.Addr)
	binary.LittleEndian.PutUint32(b[8:12], desc.Len)
	binary.LittleEndian.PutUint16(b[12:14], desc.Flags)
	binary.LittleEndian.PutUint16(b[14:16], desc.Next)
}

// PutAvail puts head in the next avail ring slot (not yet published).
func (d *Driver) PutAvail(head uint16) {
	slot := uint32(d.availNext & d.mask)
	binary.LittleEndian.PutUint16(d.availRing[2*slot:], head)
	d.availNext++
}

// SetAvailIdx publishes v as avail.idx, whatever was put (forging).
func (d *Driver) SetAvailIdx(v uint16) {
	d.storeAvailIdx(v)
	d.availNext, d.availPub = v, v
}

func (d *Driver) storeAvailIdx(v uint16) {
	if d.hdrAligned {
		d.availHdr.Store(d.flags, v) // driver owns both halves
		return
	}
	d.availIdx.Store(v)
}

// Add writes a chain of bufs into free descriptors and puts its head in
// the avail ring (visible to the device after Kick). It allocates nothing.
func (d *Driver) Add(bufs []Buf) (head uint16, err error) {
	if len(bufs) == 0 || len(bufs) > len(d.free) {
		return 0, ErrFull
	}
	// Take descriptors in chain order from the top of the free stack.
	pop := func() uint16 {
		i := d.free[len(d.free)-1]
		d.free = d.free[:len(d.free)-1]
		return i
	}
	head = pop()
	cur := head
	for i, b := range bufs {
		desc := Desc{Addr: b.Addr, Len: b.Len}
		if b.Write {
			desc.Flags |= FlagWrite
		}
		if i+1 < len(bufs) {
			desc.Flags |= FlagNext
			desc.Next = pop()
		}
		d.nextOf[cur] = desc.Next
		d.WriteDesc(cur, desc)
		cur = desc.Next
	}
	d.chainLen[head] = uint16(len(bufs))
	d.PutAvail(head)
	return head, nil
}

// AddIndirect writes bufs as an indirect table at tableGPA (16*len(bufs)
// bytes of guest memory the caller reserved) and adds one descriptor
// pointing at it.
func (d *Driver) AddIndirect(tableGPA uint64, bufs []Buf) (head uint16, err error) {
	if len(d.free) == 0 {
		return 0, ErrFull
	}
	tb := d.Mem(tableGPA, uint64(len(bufs))*vring.DescSize)
	for i, b := range bufs {
		desc := Desc{Addr: b.Addr, Len: b.Len}
		if b.Write {
			desc.Flags |= FlagWrite
		}
		if i+1 < len(bufs) {
			desc.Flags |= FlagNext
			desc.Next = uint16(i + 1)
		}
		putDesc(tb[vring.DescSize*i:], desc)
	}
	head = d.free[len(d.free)-1]
	d.free = d.free[:len(d.free)-1]
	d.WriteDesc(head, Desc{Addr: tableGPA, Len: uint32(len(bufs)) * vring.DescSize, Flags: FlagIndirect})
	d.chainLen[head] = 1
	d.PutAvail(head)
	return head, nil
}

// Kick publishes the put heads with one release store of avail.idx and
// reports whether the device wants a kick (avail_event with EVENT_IDX,
// else used.flags NO_NOTIFY).
func (d *Driver) Kick() (notify bool) {
	old, new := d.availPub, d.availNext
	if old == new {
		return false
	}
	d.storeAvailIdx(new) // release: descriptors and avail entries first
	d.availPub = new
	// Store→load (sequentially consistent atomics): virtio_mb.
	if d.eventIdx {
		return vring.NeedEvent(d.availEvent.Load(), new, old)
	}
	return d.usedFlags.Load()&vring.UsedFlagNoNotify == 0
}

// Used returns the next used element, if any, and gives the descriptors of
// a chain added by Add or AddIndirect back to the free list.
func (d *Driver) Used() (id uint16, length uint32, ok bool) {
	if d.usedLast == d.usedSeen {
		d.usedSeen = d.usedIdx.Load() // acquire: pairs with the device's Publish
		if d.usedLast == d.usedSeen {
			return 0, 0, false
		}
	}
	slot := uint32(d.usedLast & d.mask)
	e := d.usedRing[vring.UsedElemSize*slot:]
	id32 := binary.LittleEndian.Uint32(e[0:4])
	length = binary.LittleEndian.Uint32(e[4:8])
	d.usedLast++
	id = uint16(id32)
	if id32 < d.size {
		if n := d.chainLen[id]; n > 0 {
			d.chainLen[id] = 0
			i := id
			for range n {
				d.free = append(d.free, i)
				i = d.nextOf[i]
			}
		}
	}
	return id, length, true
}

// UsedIdx loads used.idx.
func (d *Driver) UsedIdx() uint16 { return d.usedIdx.Load() }

// UsedFlags loads used.flags.
func (d *Driver) UsedFlags() uint16 { return d.usedFlags.Load() }

// AvailEvent loads avail_event.
func (d *Driver) AvailEvent() uint16 { return d.availEvent.Load() }

// SetNoInterrupt sets or clears VRING_AVAIL_F_NO_INTERRUPT in avail.flags.
func (d *Driver) SetNoInterrupt(on bool) {
	if on {
		d.flags |= vring.AvailFlagNoInterrupt
	} else {
		d.flags &^= vring.AvailFlagNoInterrupt
	}
	d.availFlags.Store(d.flags)
}

// SetUsedEvent writes used_event: "interrupt me when used.idx passes v".
func (d *Driver) SetUsedEvent(v uint16) { d.usedEvent.Store(v) }

// UsedLast returns the index of the next used element Used will read.
func (d *Driver) UsedLast() uint16 { return d.usedLast }
