package ringtest

import (
	"github.com/fastfsd/fastfsd/mem"
	"github.com/fastfsd/fastfsd/ring"
)

// GuestBase is where NewGuest puts guest memory: not 0, so an address that
// forgot its region's start shows up.
const GuestBase = 0x10000

// Guest is a fake guest: one region of memory holding a ring laid out by
// Layout at GuestBase, followed by a data area for buffers.
type Guest struct {
	Region  *mem.Region
	Table   *mem.Table
	Config  ring.Config // the ring; pass to ring.New and NewDriver
	Data    uint64      // guest-physical address of the data area (4 KiB aligned)
	DataLen uint64
}

// NewGuest builds a guest with a ring of size entries and dataLen bytes of
// buffer space. With heap it uses Go memory (the race detector sees it),
// else a memfd mapping, like a VM's.
func NewGuest(size uint32, features uint64, dataLen uint64, heap bool) (*Guest, error) {
	cfg, end := Layout(size, GuestBase, features)
	data := (end + 4095) &^ 4095
	d := mem.RegionDesc{GuestAddr: GuestBase, Size: data - GuestBase + dataLen, UserAddr: 0x7f00_0000_0000}
	var r *mem.Region
	var err error
	if heap {
		r, err = mem.NewHeapRegion(d)
	} else {
		r, err = mem.NewMemfdRegion(d)
	}
	if err != nil {
		return nil, err
	}
	t, err := mem.NewTable(r)
	if err != nil {
		r.Close()
		return nil, err
	}
	return &Guest{Region: r, Table: t, Config: cfg, Data: data, DataLen: dataLen}, nil
}

// Close unmaps the guest's memory.
func (g *Guest) Close() error { return g.Region.Close() }
