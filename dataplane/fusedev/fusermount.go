package fusedev

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

const fusermountProg = "fusermount3"

// mountFusermount mounts through the setuid helper fusermount3: it opens
// /dev/fuse, mounts, and sends the fd back over the socket named by
// _FUSE_COMMFD (one byte of data plus SCM_RIGHTS).
func mountFusermount(mountpoint string, opts MountOptions) (*Conn, error) {
	prog, err := exec.LookPath(fusermountProg)
	if err != nil {
		return nil, fmt.Errorf("mount %s: not root and %s not found: %w; run as root or install fuse3", mountpoint, fusermountProg, err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("mount %s: socketpair: %w", mountpoint, err)
	}
	local := os.NewFile(uintptr(fds[0]), "fusermount-local")
	remote := os.NewFile(uintptr(fds[1]), "fusermount-remote")
	defer local.Close()

	o := "fsname=" + opts.Source + ",subtype=" + opts.Subtype
	if opts.DefaultPermissions {
		o += ",default_permissions"
	}
	if opts.AllowOther {
		o += ",allow_other"
	}
	if opts.MaxRead > 0 {
		o += ",max_read=" + strconv.Itoa(opts.MaxRead)
	}
	cmd := exec.Command(prog, "-o", o, "--", mountpoint)
	cmd.ExtraFiles = []*os.File{remote} // fd 3 in the child
	cmd.Env = append(os.Environ(), "_FUSE_COMMFD=3")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		remote.Close()
		return nil, fmt.Errorf("mount %s: start %s: %w", mountpoint, prog, err)
	}
	remote.Close()

	fd, rerr := recvFd(fds[0])
	werr := cmd.Wait()
	if rerr != nil || werr != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		msg := bytes.TrimSpace(stderr.Bytes())
		return nil, fmt.Errorf("mount %s: %s -o %s: %v %v: %s; check the mountpoint is an empty directory you own, and user_allow_other in /etc/fuse.conf for --allow-other", mountpoint, prog, o, werr, rerr, msg)
	}
	unix.CloseOnExec(fd)
	return &Conn{fd: fd, mountpoint: mountpoint, fusermount: true}, nil
}

// recvFd receives one fd sent with SCM_RIGHTS on socket s.
func recvFd(s int) (int, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		_, oobn, _, _, err := unix.Recvmsg(s, buf, oob, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return -1, fmt.Errorf("receive /dev/fuse fd: %w", err)
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) == 0 {
			return -1, errors.New("receive /dev/fuse fd: helper sent no fd")
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) == 0 {
			return -1, errors.New("receive /dev/fuse fd: helper sent no fd")
		}
		for _, extra := range fds[1:] {
			unix.Close(extra)
		}
		return fds[0], nil
	}
}

// fusermountUnmount runs fusermount3 -u, then -u -z (lazy) if busy.
func fusermountUnmount(mountpoint string) error {
	out, err := exec.Command(fusermountProg, "-u", "--", mountpoint).CombinedOutput()
	if err == nil {
		return nil
	}
	out2, err2 := exec.Command(fusermountProg, "-u", "-z", "--", mountpoint).CombinedOutput()
	if err2 == nil {
		return nil
	}
	return fmt.Errorf("unmount %s: %s -u: %v: %s; %s -u -z: %v: %s", mountpoint, fusermountProg, err, bytes.TrimSpace(out), fusermountProg, err2, bytes.TrimSpace(out2))
}
