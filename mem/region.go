package mem

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/fastfsd/fastfsd/internal/sys"
	"golang.org/x/sys/unix"
)

// RegionDesc describes one region of guest memory as the front-end sends it
// (vhost-user memory region: guest_phys_addr, memory_size, userspace_addr,
// mmap_offset).
type RegionDesc struct {
	// GuestAddr is the guest-physical address (GPA) of the first byte.
	// Descriptor addresses in a virtqueue are GPAs.
	GuestAddr uint64
	// Size is the length of the region in bytes.
	Size uint64
	// UserAddr is the front-end's virtual address of the first byte.
	// SET_VRING_ADDR gives ring addresses in this space.
	UserAddr uint64
	// MmapOffset is where the region starts in the file descriptor.
	MmapOffset uint64
}

// GuestEnd returns the first guest-physical address past the region. It is
// only meaningful for a validated descriptor (no overflow).
func (d RegionDesc) GuestEnd() uint64 { return d.GuestAddr + d.Size }

func (d RegionDesc) String() string {
	return fmt.Sprintf("gpa %#x+%#x uva %#x off %#x", d.GuestAddr, d.Size, d.UserAddr, d.MmapOffset)
}

// validate checks d for what the front-end can get wrong: empty, or an end
// that does not fit in 64 bits (GPA, user address or file offset), or a
// mapping too big for this process.
func (d RegionDesc) validate() error {
	switch {
	case d.Size == 0:
		return errors.New("empty region")
	case d.GuestAddr > math.MaxUint64-d.Size:
		return errors.New("guest address range overflows")
	case d.UserAddr > math.MaxUint64-d.Size:
		return errors.New("user address range overflows")
	case d.MmapOffset > math.MaxInt64-d.Size:
		return errors.New("mmap offset + size overflows")
	case d.MmapOffset+d.Size > uint64(math.MaxInt):
		return errors.New("region larger than the address space")
	}
	return nil
}

// Region is one shared, read-write mapping of guest memory.
//
// The mapping covers the fd from offset 0 to MmapOffset+Size (as
// libvhost-user does, which avoids any alignment assumption on MmapOffset);
// the region is the part from MmapOffset on.
//
// A Region is safe for concurrent use. Close must not race with users of
// its views; [Memory] arranges that.
type Region struct {
	desc RegionDesc
	// b is the region's bytes: mapping[MmapOffset:MmapOffset+Size] with cap
	// equal to len. Immutable after construction; the memory it points to is
	// unmapped by Close.
	b []byte

	closeOnce sync.Once
	// closed is set by Close before it unmaps; tests use it to prove no
	// reader is handed a closed region.
	closed atomic.Bool
	// unmap releases the mapping; nil for heap-backed regions.
	unmap   func() error
	cleanup runtime.Cleanup
}

// Map maps the region d of fd. It does not take ownership of fd: the caller
// may close it afterwards (the mapping stays). If fd is a regular file (a
// memfd, a hugetlbfs or tmpfs file) it must be at least MmapOffset+Size
// bytes long (so must a block device), so that touching guest memory
// cannot raise SIGBUS. The mapping (MmapOffset+Size bytes) counts against
// the process's mapping budget (MaxMapped) until the Region is closed; Map
// refuses one past it.
func Map(fd int, d RegionDesc) (*Region, error) {
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("mem: map %v: %w", d, err)
	}
	length := d.MmapOffset + d.Size
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("mem: map %v: fstat: %w", d, err)
	}
	// Touching a shared mapping past the end of its file or block device
	// raises SIGBUS. A fault is survived (see the virtiofs device), but a
	// region that claims more than its fd holds is refused here.
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		if uint64(st.Size) < length {
			return nil, fmt.Errorf("mem: map %v: fd is %d bytes, region needs %d", d, st.Size, length)
		}
	case unix.S_IFBLK:
		n, e := sys.BlockDeviceSize(fd)
		if e != 0 {
			return nil, fmt.Errorf("mem: map %v: size of the block device: %w", d, e)
		}
		if n < length {
			return nil, fmt.Errorf("mem: map %v: block device is %d bytes, region needs %d", d, n, length)
		}
	}
	// The mapping budget (budget.go): address space is not free, and a
	// front-end that takes all of it kills the process.
	if !charge(int64(length)) {
		return nil, fmt.Errorf("mem: map %v: %d bytes (offset included) would pass the process's guest memory budget of %d bytes (%d mapped now): the front-end claims more memory than this address space can hold",
			d, length, MaxMapped(), Mapped())
	}
	m, err := unix.Mmap(fd, 0, int(length), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		uncharge(int64(length))
		return nil, fmt.Errorf("mem: map %v: mmap: %w", d, err)
	}
	r := &Region{desc: d, b: m[d.MmapOffset:length:length]}
	r.unmap = func() error { return release(m) }
	// Safety net: a Region dropped without Close is unmapped by the GC. The
	// cleanup must not reference r, only the mapping.
	r.cleanup = runtime.AddCleanup(r, func(m []byte) { _ = release(m) }, m)
	return r, nil
}

// release unmaps a mapping Map made and gives its bytes back to the
// budget. The bytes stay charged if munmap fails (they are still mapped).
func release(m []byte) error {
	if err := unix.Munmap(m); err != nil {
		return err
	}
	uncharge(int64(len(m)))
	return nil
}

// NewMemfd creates an anonymous memory file (memfd_create) of size bytes,
// for tests and for the test front-end, which maps it itself and passes its
// fd to the back-end. The caller owns the returned file.
func NewMemfd(name string, size uint64) (*os.File, error) {
	if size > math.MaxInt64 {
		return nil, fmt.Errorf("mem: memfd %q: size %d too large", name, size)
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("mem: memfd_create %q: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	if err := f.Truncate(int64(size)); err != nil {
		f.Close()
		return nil, fmt.Errorf("mem: memfd %q: %w", name, err)
	}
	return f, nil
}

// NewMemfdRegion creates a memfd of d.MmapOffset+d.Size bytes and maps d of
// it. The memfd is closed; the mapping keeps the memory.
func NewMemfdRegion(d RegionDesc) (*Region, error) {
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("mem: memfd region %v: %w", d, err)
	}
	f, err := NewMemfd("fastfs-guest", d.MmapOffset+d.Size)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Map(int(f.Fd()), d)
}

// maxHeapRegion bounds test regions on the Go heap.
const maxHeapRegion = 1 << 30

// NewHeapRegion returns a region backed by ordinary Go memory (8-byte
// aligned), for tests: the race detector sees every access to it, which it
// does not for mmapped memory, so ring tests over a heap region check the
// virtqueue's memory ordering too. d.MmapOffset is ignored.
func NewHeapRegion(d RegionDesc) (*Region, error) {
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("mem: heap region %v: %w", d, err)
	}
	if d.Size > maxHeapRegion {
		return nil, fmt.Errorf("mem: heap region %v: larger than %d bytes", d, maxHeapRegion)
	}
	words := make([]uint64, (d.Size+7)/8)
	return &Region{desc: d, b: heapBytes(words, d.Size)}, nil
}

// Desc returns the region's descriptor.
func (r *Region) Desc() RegionDesc { return r.desc }

// Len returns the size of the region in bytes.
func (r *Region) Len() int { return len(r.b) }

// ReadAt copies from the region at offset off (relative to the region's
// start), implementing io.ReaderAt.
func (r *Region) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(r.b)) {
		return 0, fmt.Errorf("mem: read at %d: outside region of %d bytes", off, len(r.b))
	}
	n := copy(p, r.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt copies p into the region at offset off, implementing io.WriterAt.
func (r *Region) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(r.b)) {
		return 0, fmt.Errorf("mem: write at %d: outside region of %d bytes", off, len(r.b))
	}
	n := copy(r.b[off:], p)
	if n < len(p) {
		return n, errors.New("mem: write past end of region")
	}
	return n, nil
}

// Close unmaps the region. Every view of it must be dead by then. Close is
// idempotent.
func (r *Region) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		if r.unmap != nil {
			r.cleanup.Stop()
			err = r.unmap()
		}
		r.b = nil
	})
	return err
}
