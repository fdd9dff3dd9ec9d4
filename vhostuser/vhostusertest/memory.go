package vhostusertest

import (
	"fmt"
	"os"

	"github.com/fastfsd/fastfsd/mem"
)

// GuestMemory is guest RAM as a VMM has it: memfd-backed regions it maps
// itself (to play the guest driver) and shares with the back-end by fd.
type GuestMemory struct {
	Regions []Region
	Files   []*os.File
	// Table maps the same memory in this process, for the driver side.
	Table  *mem.Table
	mapped []*mem.Region
}

// UserBase is the front-end virtual address the first test region claims
// to be mapped at (any value works: the back-end only uses it to translate
// ring addresses).
const UserBase = 0x7f0000000000

// NewGuestMemory creates one memfd region per size, laid out back to back
// from guest-physical address 0 (user addresses from UserBase), each with
// mmap offset off.
func NewGuestMemory(off uint64, sizes ...uint64) (*GuestMemory, error) {
	g := &GuestMemory{}
	var gpa uint64
	for i, size := range sizes {
		r := Region{GuestAddr: gpa, Size: size, UserAddr: UserBase + gpa, MmapOffset: off}
		if err := g.add(fmt.Sprintf("guest%d", i), r); err != nil {
			g.Close()
			return nil, err
		}
		gpa += size
	}
	return g, nil
}

// Add adds a region (memory hot-plug) and returns it; its fd is in Files.
func (g *GuestMemory) Add(r Region) error { return g.add("hotplug", r) }

func (g *GuestMemory) add(name string, r Region) error {
	f, err := mem.NewMemfd(name, r.MmapOffset+r.Size)
	if err != nil {
		return err
	}
	m, err := mem.Map(int(f.Fd()), mem.RegionDesc{GuestAddr: r.GuestAddr, Size: r.Size, UserAddr: r.UserAddr, MmapOffset: r.MmapOffset})
	if err != nil {
		f.Close()
		return err
	}
	t, err := mem.NewTable(append(g.mapped[:len(g.mapped):len(g.mapped)], m)...)
	if err != nil {
		m.Close()
		f.Close()
		return err
	}
	g.Regions = append(g.Regions, r)
	g.Files = append(g.Files, f)
	g.mapped = append(g.mapped, m)
	g.Table = t
	return nil
}

// Fds returns the region fds in order.
func (g *GuestMemory) Fds() []int {
	fds := make([]int, len(g.Files))
	for i, f := range g.Files {
		fds[i] = int(f.Fd())
	}
	return fds
}

// UserAddr translates a guest-physical address to the front-end's user
// address (what SET_VRING_ADDR carries).
func (g *GuestMemory) UserAddr(gpa uint64) uint64 {
	for _, r := range g.Regions {
		if gpa >= r.GuestAddr && gpa-r.GuestAddr < r.Size {
			return r.UserAddr + gpa - r.GuestAddr
		}
	}
	panic(fmt.Sprintf("vhostusertest: gpa %#x in no region", gpa))
}

// Close unmaps and closes everything.
func (g *GuestMemory) Close() {
	for _, m := range g.mapped {
		m.Close()
	}
	for _, f := range g.Files {
		f.Close()
	}
	g.mapped, g.Files = nil, nil
}
