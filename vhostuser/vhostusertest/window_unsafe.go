package vhostusertest

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The window's MAP_FIXED mmaps: the only casts of window memory. Both
// replace [off, off+n) of w.mem in place, which stays inside the window's
// own mapping (the caller checked off+n ≤ Size), so no other mapping of the
// process is touched.

// mapFile maps [fdOff, fdOff+n) of fd at off, shared, read-only or
// read-write.
func (w *Window) mapFile(off, n uint64, fd int, fdOff uint64, writable bool) error {
	prot := unix.PROT_READ
	if writable {
		prot |= unix.PROT_WRITE
	}
	addr := unsafe.Pointer(&w.mem[off])
	if _, err := unix.MmapPtr(fd, int64(fdOff), addr, uintptr(n), prot, unix.MAP_SHARED|unix.MAP_FIXED); err != nil {
		return fmt.Errorf("vhostusertest: window map [%#x,+%#x): %w", off, n, err)
	}
	return nil
}

// mapAnon puts fresh anonymous memory (zeros) back at [off, off+n).
func (w *Window) mapAnon(off, n uint64) error {
	addr := unsafe.Pointer(&w.mem[off])
	if _, err := unix.MmapPtr(-1, 0, addr, uintptr(n), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED); err != nil {
		return fmt.Errorf("vhostusertest: window unmap [%#x,+%#x): %w", off, n, err)
	}
	return nil
}
