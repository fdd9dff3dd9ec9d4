package passthrough

import (
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
)

// creds is what switching to a caller's identity needs, computed once by
// probeCreds.
type creds struct {
	// ok: the daemon can set its fsuid/fsgid (CAP_SETUID/CAP_SETGID).
	ok       bool
	uid, gid int // the daemon's, restored after each switch
	// caps is the capability set a switched thread runs with: the
	// daemon's effective set without the file-system capabilities the
	// kernel drops when the fsuid leaves 0, plus CAP_DAC_OVERRIDE and
	// CAP_DAC_READ_SEARCH (see asCaller).
	hdr  unix.CapUserHeader
	caps [2]unix.CapUserData
}

// capFSMask is the kernel's CAP_FS_MASK: the capabilities a thread loses
// from its effective set when its fsuid changes from 0 to non-zero (and
// regains when it changes back).
var capFSMask = [2]uint32{
	1<<unix.CAP_CHOWN | 1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_DAC_READ_SEARCH |
		1<<unix.CAP_FOWNER | 1<<unix.CAP_FSETID | 1<<unix.CAP_LINUX_IMMUTABLE,
	1 << (unix.CAP_MAC_OVERRIDE - 32),
}

// probeCreds finds out, on a locked thread, whether this process can
// switch its fsuid and fsgid (it needs CAP_SETUID and CAP_SETGID, which
// root usually but not always has), and precomputes the capability set of
// a switched thread.
func probeCreds(uid, gid int) creds {
	c := creds{uid: uid, gid: gid}
	c.hdr.Version = unix.LINUX_CAPABILITY_VERSION_3
	if unix.Capget(&c.hdr, &c.caps[0]) != nil {
		return c
	}
	for i := range c.caps {
		c.caps[i].Effective &^= capFSMask[i]
	}
	want := uint32(1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_DAC_READ_SEARCH)
	c.caps[0].Effective |= want & c.caps[0].Permitted

	runtime.LockOSThread()
	const nobody = 65534
	unix.SetfsgidRetGid(nobody)
	g, _ := unix.SetfsgidRetGid(-1)
	unix.SetfsuidRetUid(nobody)
	u, _ := unix.SetfsuidRetUid(-1)
	unix.SetfsuidRetUid(uid)
	unix.SetfsgidRetGid(gid)
	u2, _ := unix.SetfsuidRetUid(-1)
	g2, _ := unix.SetfsgidRetGid(-1)
	if u2 == uid && g2 == gid {
		runtime.UnlockOSThread() // else the thread dies with its goroutine
	}
	c.ok = g == nobody && u == nobody && u2 == uid && g2 == gid
	return c
}

// asCaller runs op on a locked OS thread whose fsuid and fsgid are the
// caller's, so that the inode op creates belongs to the caller. While it
// runs, the thread keeps CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, which
// the kernel drops with the fsuid: the client kernel checked permissions
// (see the package comment); CAP_FSETID and CAP_FOWNER stay dropped, so
// that setgid inheritance treats the new inode as the caller's. Setting
// the fsuid back to the daemon's (0) raises the dropped capabilities again.
//
// setfsuid, setfsgid and capset change only the calling thread (raw
// system calls, not the runtime's all-threads setuid). If restoring fails
// the thread stays locked, so the runtime destroys it with its goroutine
// instead of reusing a thread with the wrong identity.
//
// Cost: six system calls around op.
func (f *FS) asCaller(ctx *fs.Context, op func() error) fs.Errno {
	c := &f.creds
	if !c.ok || ctx == nil || (int(ctx.Uid) == c.uid && int(ctx.Gid) == c.gid) {
		return errno(op())
	}
	runtime.LockOSThread()
	// setfsuid/setfsgid cannot fail for a process probeCreds vouched for:
	// they fail only without CAP_SETUID/CAP_SETGID.
	unix.SetfsgidRetGid(int(ctx.Gid))
	unix.SetfsuidRetUid(int(ctx.Uid))
	err := unix.Capset(&c.hdr, &c.caps[0])
	if err == nil {
		err = op()
	}
	unix.SetfsuidRetUid(c.uid)
	unix.SetfsgidRetGid(c.gid)
	if u, _ := unix.SetfsuidRetUid(-1); u == c.uid {
		runtime.UnlockOSThread()
	} else if err == nil {
		err = syscall.EIO
	}
	return errno(err)
}
