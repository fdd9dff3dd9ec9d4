package vhostuser

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// Listen listens on a unix socket at path, as virtiofsd --socket-path does.
// A socket file left by a dead process is replaced; a live one (someone
// accepts on it) or a file that is not a socket is an error.
func Listen(path string) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("vhostuser: listen %s: exists and is not a socket; remove it or choose another --socket-path", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("vhostuser: listen %s: another back-end is serving this socket; stop it or choose another --socket-path", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("vhostuser: remove stale socket: %w", err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("vhostuser: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	return ln, nil
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
