package vhostuser

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/fastfsd/fastfsd/internal/sockfile"
)

// Listen listens on a unix socket at path, as virtiofsd --socket-path does.
// The socket is born private (internal/sockfile): mode 0600, or 0660 owned
// by group gid when gid >= 0 (--socket-group), with no moment in which
// another user could connect and play the VMM. A socket file left by a dead
// process is replaced; a live one (someone accepts on it) or a file that is
// not a socket is an error.
func Listen(path string, gid int) (*sockfile.Listener, error) {
	return sockfile.Listen(path, sockfile.GroupOptions("vhostuser: --socket-path", gid))
}

// FileListener adopts an inherited listening unix socket (virtiofsd --fd=N,
// as libvirt passes it). It takes ownership of fd: the listener holds a
// duplicate and fd itself is closed, on success and on error alike.
func FileListener(fd int) (*net.UnixListener, error) {
	f := os.NewFile(uintptr(fd), fmt.Sprintf("fd %d", fd))
	if f == nil {
		return nil, fmt.Errorf("vhostuser: --fd %d is not a valid file descriptor", fd)
	}
	defer f.Close() // net.FileListener dups it
	l, err := net.FileListener(f)
	if err != nil {
		if errors.Is(err, syscall.ENOTSOCK) {
			return nil, fmt.Errorf("vhostuser: --fd %d is not a socket; pass a listening unix socket", fd)
		}
		return nil, fmt.Errorf("vhostuser: --fd %d: %w", fd, err)
	}
	ul, ok := l.(*net.UnixListener)
	if !ok {
		l.Close()
		return nil, fmt.Errorf("vhostuser: --fd %d is not a unix socket", fd)
	}
	return ul, nil
}
