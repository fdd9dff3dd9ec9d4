package virtiofs

import (
	"errors"
	"fmt"

	"github.com/fastfsd/fastfsd/dax"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/vhostuser"
)

// DAX window wiring: the device owns a dax.Window (shared memory region 0,
// VIRTIO_FS_SHMCAP_ID_CACHE), hands it to the FUSE engine as its DAX hook,
// reports its size to the back-end (GET_SHMEM_CONFIG; SHMEM is offered
// only then), and gives it the back-end request channel as its Mapper when
// the front-end negotiated SHMEM. Without that, SETUPMAPPING answers
// EOPNOTSUPP; a front-end disconnect drops every mapping; a device reset
// unmaps them.

// DefaultCacheSize is the DAX window size fastfsd offers with --dax.
const DefaultCacheSize = 1 << 30

// EnableDAX gives the device a DAX window of size bytes (a non-zero
// multiple of 2 MiB). The filesystem must implement fs.Mapper (dax.FS). The engine
// then offers MAP_ALIGNMENT with map_alignment 21 (the kernel's 2 MiB
// granule, so the table holds at most size/2 MiB mappings). Call it once,
// before serving.
func (d *Device) EnableDAX(size uint64) error {
	m, ok := d.fsys.(dax.FS)
	if !ok {
		return errors.New("virtiofs: dax: the filesystem does not implement fs.Mapper (it cannot hand out fds to map) and Open/Release")
	}
	w, err := dax.New(size, dax.MaxAlignShift, m)
	if err != nil {
		return fmt.Errorf("virtiofs: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, wk := range d.workers {
		if wk != nil {
			return errors.New("virtiofs: dax: enable it before serving")
		}
	}
	if d.dax != nil {
		return errors.New("virtiofs: dax: already enabled")
	}
	d.dax = w
	d.opts.Fuse.DAX = w
	d.opts.Fuse.MapAlignment = w.AlignShift()
	// No INIT was served yet: replace the engine with one that has the hook.
	d.sess.Store(&session{srv: fuse.NewServer(d.fsys, d.opts.Fuse)})
	return nil
}

// DAX returns the device's DAX window, nil without one.
func (d *Device) DAX() *dax.Window { return d.dax }

// SharedMemoryRegions implements vhostuser.SharedMemory: region 0 is the
// DAX window; none without one (SHMEM is then not offered).
func (d *Device) SharedMemoryRegions() []uint64 {
	if d.dax == nil {
		return nil
	}
	return []uint64{d.dax.Size()}
}

var _ vhostuser.SharedMemory = (*Device)(nil)

// setDAXChannel attaches the back-end channel to the window if it can
// map, and detaches the old one (dropping the table) in any case.
func (d *Device) setDAXChannel(c *vhostuser.Channel) {
	if d.dax == nil {
		return
	}
	if c != nil && c.Shmem() {
		d.dax.SetMapper(channelMapper{c})
	} else {
		d.dax.SetMapper(nil)
	}
}

// resetDAX unmaps every mapping (virtio reset: the guest's window is gone).
func (d *Device) resetDAX() {
	if d.dax == nil {
		return
	}
	if n := d.dax.Reset(); n > 0 {
		d.log.Warn("virtiofs: dax: front-end refused to unmap at reset", "mappings", n)
	}
}

// channelMapper is dax.Mapper over the vhost-user back-end channel:
// SHMEM_MAP / SHMEM_UNMAP of shared memory region 0.
type channelMapper struct{ c *vhostuser.Channel }

func (m channelMapper) Map(off, n uint64, fd int, fdOff uint64, writable bool) error {
	var flags uint64
	if writable {
		flags = vhostuser.VHOST_USER_FLAG_MAP_RW
	}
	return m.c.ShmemMap(vhostuser.MMap{ShmID: 0, FdOffset: fdOff, ShmOffset: off, Len: n, Flags: flags}, fd)
}

func (m channelMapper) Unmap(off, n uint64) error {
	return m.c.ShmemUnmap(vhostuser.MMap{ShmID: 0, ShmOffset: off, Len: n})
}
