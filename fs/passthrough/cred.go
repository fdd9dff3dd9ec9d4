package passthrough

import (
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
)

// asCaller runs op on a locked OS thread whose fsuid and fsgid are the
// caller's, so that the inode op creates belongs to the caller. The
// thread's effective CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, which the
// kernel drops when the fsuid leaves 0, are raised again: the client
// kernel checked permissions (see the package comment). The thread's
// identity is restored before it is unlocked; if that fails the thread is
// left locked, so the Go runtime destroys it with its goroutine rather
// than reuse a thread with the wrong identity.
//
// setfsuid and setfsgid change only the calling thread (they are raw
// system calls, not the runtime's all-threads setuid).
func (f *FS) asCaller(ctx *fs.Context, op func() error) fs.Errno {
	if !f.switchIDs || ctx == nil || (int(ctx.Uid) == f.daemonUid && int(ctx.Gid) == f.daemonGid) {
		return errno(op())
	}
	runtime.LockOSThread()
	if e := setfsids(int(ctx.Uid), int(ctx.Gid)); e != 0 {
		if setfsids(f.daemonUid, f.daemonGid) == 0 {
			runtime.UnlockOSThread()
		}
		return e
	}
	err := raiseDACCaps()
	if err == nil {
		err = op()
	}
	if setfsids(f.daemonUid, f.daemonGid) == 0 {
		runtime.UnlockOSThread()
	}
	return errno(err)
}

// setfsids sets the thread's fsgid then fsuid and checks that both took:
// setfsuid(2) reports no error, only the previous value, so each is read
// back by setting an invalid ID (-1), which changes nothing.
func setfsids(uid, gid int) fs.Errno {
	unix.SetfsgidRetGid(gid)
	if cur, _ := unix.SetfsgidRetGid(-1); cur != gid {
		return syscall.EPERM
	}
	unix.SetfsuidRetUid(uid)
	if cur, _ := unix.SetfsuidRetUid(-1); cur != uid {
		return syscall.EPERM
	}
	return fs.OK
}

// raiseDACCaps raises CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH in the
// calling thread's effective set (they are in its permitted set: the
// daemon is root). capset with pid 0 changes the calling thread only.
func raiseDACCaps() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	const want = 1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_DAC_READ_SEARCH
	if data[0].Effective&want == want {
		return nil
	}
	data[0].Effective |= want & data[0].Permitted
	return unix.Capset(&hdr, &data[0])
}
