package mem

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// MaxRegions bounds the regions of one Table. vhost-user front-ends send at
// most 8 regions in SET_MEM_TABLE and ask GET_MAX_MEM_SLOTS (QEMU caps it at
// 509) before using ADD_MEM_REG.
const MaxRegions = 512

// entry is one region of a Table, flattened for lookups.
type entry struct {
	start uint64 // guest-physical address of b[0]
	size  uint64 // len(b), as uint64
	user  uint64 // front-end user address of b[0]
	b     []byte // the region's bytes, cap == len
	r     *Region
}

// Table is an immutable set of regions sorted by guest-physical address,
// with no two overlapping in guest-physical or in front-end user address
// space. All methods are safe for concurrent use and allocate nothing.
//
// A Table keeps its regions reachable (so the GC safety net never unmaps
// them under a view) but does not own them: whoever built it (usually a
// [Memory]) closes them.
type Table struct {
	e []entry
}

// NewTable builds a table of regions. It fails if a region is closed, if two
// regions overlap in guest-physical or user address space, or if there are
// more than MaxRegions.
func NewTable(regions ...*Region) (*Table, error) {
	if len(regions) > MaxRegions {
		return nil, fmt.Errorf("mem: table: %d regions, at most %d", len(regions), MaxRegions)
	}
	e := make([]entry, 0, len(regions))
	for i, r := range regions {
		if r == nil || r.closed.Load() {
			return nil, fmt.Errorf("mem: table: region %d is closed", i)
		}
		d := r.desc
		e = append(e, entry{start: d.GuestAddr, size: d.Size, user: d.UserAddr, b: r.b, r: r})
	}
	slices.SortFunc(e, func(a, b entry) int {
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	})
	for i := 1; i < len(e); i++ {
		// Sizes were validated not to overflow in RegionDesc.validate.
		if e[i].start-e[i-1].start < e[i-1].size {
			return nil, fmt.Errorf("mem: table: regions %v and %v overlap in guest memory", e[i-1].r.desc, e[i].r.desc)
		}
	}
	for i := range e {
		for j := i + 1; j < len(e); j++ {
			a, b := &e[i], &e[j]
			if a.user < b.user+b.size && b.user < a.user+a.size {
				return nil, fmt.Errorf("mem: table: regions %v and %v overlap in user address space", a.r.desc, b.r.desc)
			}
		}
	}
	return &Table{e: e}, nil
}

// Len returns the number of regions.
func (t *Table) Len() int { return len(t.e) }

// Region returns the i'th region in guest-physical order.
func (t *Table) Region(i int) *Region { return t.e[i].r }

// find returns the index of the region whose start is the greatest one
// <= gpa, or -1. It does not check that gpa is inside that region.
func (t *Table) find(gpa uint64) int {
	e := t.e
	// Few regions (usually 1 to 3): a binary search without a closure.
	lo, hi := 0, len(e)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if e[m].start <= gpa {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

// Slice returns the n bytes of guest memory at gpa, or false if they are not
// all inside one region. The view's cap equals its len, so it cannot be
// extended past what was checked. n == 0 yields an empty view if gpa is
// inside a region or at its end.
func (t *Table) Slice(gpa, n uint64) ([]byte, bool) {
	i := t.find(gpa)
	if i < 0 {
		return nil, false
	}
	e := &t.e[i]
	off := gpa - e.start // gpa >= e.start: no underflow
	if off > e.size || n > e.size-off {
		return nil, false
	}
	return e.b[off : off+n : off+n], true
}

// Segment returns the longest view that starts at gpa, stays inside one
// region and is at most max bytes long; it is empty if gpa is in no region
// (or max is 0). Callers walk a buffer that may span adjacent regions by
// calling Segment again at gpa+len(view).
func (t *Table) Segment(gpa, max uint64) []byte {
	i := t.find(gpa)
	if i < 0 {
		return nil
	}
	e := &t.e[i]
	off := gpa - e.start
	if off >= e.size {
		return nil
	}
	n := min(e.size-off, max)
	return e.b[off : off+n : off+n]
}

// Containing returns the whole region that contains gpa: the guest-physical
// address of its first byte and a view of all of it (cap == len). Callers
// that look up many nearby addresses (a virtqueue walking descriptors) keep
// it to check later addresses without a search. ok is false if gpa is in
// no region.
func (t *Table) Containing(gpa uint64) (start uint64, view []byte, ok bool) {
	i := t.find(gpa)
	if i < 0 || gpa-t.e[i].start >= t.e[i].size {
		return 0, nil, false
	}
	return t.e[i].start, t.e[i].b, true
}

// AppendIovecs appends to dst iovecs covering the n bytes of guest memory at
// gpa, one per region the range touches (the range may span regions that are
// adjacent in guest-physical space). It returns dst unchanged and false if
// any byte of the range is outside guest memory or gpa+n overflows. It
// allocates only if dst lacks capacity. n == 0 appends nothing.
//
// The iovecs point into the mappings: they are valid under the same rule as
// any view of this table.
func (t *Table) AppendIovecs(dst []unix.Iovec, gpa, n uint64) ([]unix.Iovec, bool) {
	orig := len(dst)
	for n > 0 {
		b := t.Segment(gpa, n)
		if len(b) == 0 {
			return dst[:orig], false
		}
		var iov unix.Iovec
		iov.Base = &b[0]
		iov.SetLen(len(b))
		dst = append(dst, iov)
		gpa += uint64(len(b)) // cannot overflow: b ends inside a region
		n -= uint64(len(b))
	}
	return dst, true
}

// UserToGuest translates a front-end user address into a guest-physical
// address. vhost-user gives ring addresses (SET_VRING_ADDR) as user
// addresses; the ring package takes guest-physical ones.
func (t *Table) UserToGuest(ua uint64) (uint64, bool) {
	for i := range t.e {
		e := &t.e[i]
		if ua >= e.user && ua-e.user < e.size {
			return e.start + (ua - e.user), true
		}
	}
	return 0, false
}

// GuestToUser is the inverse of UserToGuest.
func (t *Table) GuestToUser(gpa uint64) (uint64, bool) {
	i := t.find(gpa)
	if i < 0 || gpa-t.e[i].start >= t.e[i].size {
		return 0, false
	}
	return t.e[i].user + (gpa - t.e[i].start), true
}

// contains reports whether r is one of t's regions.
func (t *Table) contains(r *Region) bool {
	for i := range t.e {
		if t.e[i].r == r {
			return true
		}
	}
	return false
}
