package sys

import (
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PeerGroups returns the supplementary groups the kernel recorded for the
// peer of unix socket fd when it connected (getsockopt SO_PEERGROUPS,
// Linux 4.13). x/sys's GetsockoptString cannot read them: it stops at the
// first zero byte of the native-endian gids.
func PeerGroups(fd int) ([]uint32, syscall.Errno) {
	buf := make([]uint32, 32)
	for {
		n := uint32(4 * len(buf))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		runtime.KeepAlive(buf)
		// ERANGE: the buffer is too small; n is the size needed (a peer
		// may have up to 65536 groups).
		if e == unix.ERANGE && int(n/4) > len(buf) {
			buf = make([]uint32, n/4)
			continue
		}
		if e != 0 {
			return nil, e
		}
		return buf[:n/4], 0
	}
}
