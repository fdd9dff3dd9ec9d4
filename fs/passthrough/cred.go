package passthrough

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
)

// creds is what switching to a caller's identity needs, computed once by
// probeCreds. Immutable after New.
type creds struct {
	// ok: the daemon can set its fsuid/fsgid (CAP_SETUID/CAP_SETGID).
	ok       bool
	uid, gid int // the daemon's, restored after each switch

	hdr unix.CapUserHeader
	// orig is the daemon's capability set, restored after each switch.
	orig [2]unix.CapUserData
	// caps is the set a thread switched to a non-root caller runs with:
	// orig without the file-system capabilities the kernel drops when the
	// fsuid leaves 0, plus CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (see
	// asCaller).
	caps [2]unix.CapUserData
	// strict is caps without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH: the
	// host checks permissions with the thread's fsuid and fsgid.
	strict [2]unix.CapUserData
	// fixupRestores: the daemon's fsuid is 0 and its effective set holds
	// every file-system capability it is permitted, so the kernel's own
	// fix-up when the fsuid returns to 0 (cap_task_fix_setuid raises
	// CAP_FS_MASK ∩ permitted) restores orig exactly and no capset is
	// needed afterwards.
	fixupRestores bool

	// groups are the daemon's supplementary groups, put back after a
	// switch that replaced them; nil when it has none.
	groups []uint32
}

// capFSMask is the kernel's CAP_FS_MASK: the capabilities a thread loses
// from its effective set when its fsuid changes from 0 to non-zero (and
// regains, as far as permitted, when it changes back).
var capFSMask = [2]uint32{
	1<<unix.CAP_CHOWN | 1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_DAC_READ_SEARCH |
		1<<unix.CAP_FOWNER | 1<<unix.CAP_FSETID | 1<<unix.CAP_LINUX_IMMUTABLE,
	1 << (unix.CAP_MAC_OVERRIDE - 32),
}

// probeCreds finds out, on a locked thread, whether this process can
// switch its fsuid and fsgid (it needs CAP_SETUID and CAP_SETGID, which
// root usually but not always has), and precomputes the capability sets of
// a switched thread.
func probeCreds(uid, gid int) creds {
	c := creds{uid: uid, gid: gid}
	c.hdr.Version = unix.LINUX_CAPABILITY_VERSION_3
	if unix.Capget(&c.hdr, &c.orig[0]) != nil {
		return c
	}
	c.caps = c.orig
	for i := range c.caps {
		c.caps[i].Effective &^= capFSMask[i]
	}
	c.strict = c.caps
	dac := uint32(1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_DAC_READ_SEARCH)
	c.caps[0].Effective |= dac & c.orig[0].Permitted
	c.fixupRestores = uid == 0
	for i := range c.orig {
		if c.orig[i].Effective&capFSMask[i] != c.orig[i].Permitted&capFSMask[i] {
			c.fixupRestores = false
		}
	}
	if gs, err := unix.Getgroups(); err == nil && len(gs) > 0 {
		c.groups = make([]uint32, len(gs))
		for i, g := range gs {
			c.groups[i] = uint32(g)
		}
	}

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
	restored := u2 == uid && g2 == gid
	if c.orig != c.current() {
		restored = restored && unix.Capset(&c.hdr, &c.orig[0]) == nil
	}
	if restored {
		runtime.UnlockOSThread() // else the thread dies with its goroutine
	}
	c.ok = g == nobody && u == nobody && restored
	return c
}

// current returns the calling thread's capability sets (zero on error).
func (c *creds) current() [2]unix.CapUserData {
	var d [2]unix.CapUserData
	hdr := c.hdr
	unix.Capget(&hdr, &d[0])
	return d
}

// setgroups sets the calling thread's supplementary groups (the raw system
// call changes only this thread, unlike syscall.Setgroups). No allocation.
func setgroups(gs []uint32) error {
	var p unsafe.Pointer
	if len(gs) > 0 {
		p = unsafe.Pointer(&gs[0])
	}
	_, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(gs)), uintptr(p), 0)
	runtime.KeepAlive(gs)
	if e != 0 {
		return e
	}
	return nil
}

// asCaller runs op on a locked OS thread whose fsuid and fsgid are the
// caller's, so that the inode op creates belongs to the caller.
//
// Capabilities. A root caller (uid 0, whatever its gid) keeps the
// daemon's full set, as root keeps its capabilities natively. A non-root
// caller runs with caps: the kernel drops the file-system capabilities
// when the fsuid leaves 0 and asCaller gives back CAP_DAC_OVERRIDE and
// CAP_DAC_READ_SEARCH, because the client kernel checked permission with
// the caller's full credentials (see the package comment); CAP_FSETID and
// CAP_FOWNER stay dropped, so the host decides a new inode's set-group-ID
// bit as it would for the caller. op may lower the set further (to
// c.strict); whatever op did, the thread leaves asCaller with the daemon's
// exact set — restored by the kernel's fix-up when the fsuid returns to 0
// (fixupRestores), else by capset.
//
// Groups. A non-root caller's thread runs with no supplementary groups,
// or with the one the client sent (ctx.HasSuppGid), never with the
// daemon's, which would wrongly count as the caller's.
//
// setfsuid, setfsgid, setgroups and capset change only the calling
// thread (raw system calls, not the runtime's all-threads setuid). If
// restoring fails the thread stays locked, so the runtime destroys it
// with its goroutine instead of reusing a thread with the wrong identity.
//
// Cost in system calls around op: none for the daemon's own identity; 2
// for root with another group; 5 for another user (setfsgid, setfsuid,
// capset, and back with setfsuid, setfsgid), plus 2 when groups change.
func (f *FS) asCaller(ctx *fs.Context, op func() error) fs.Errno {
	c := &f.creds
	if !c.ok || ctx == nil {
		return errno(op())
	}
	uid, gid := int(ctx.Uid), int(ctx.Gid)
	var sg [1]uint32
	var groups []uint32 // the switched thread's, when they change
	switch {
	case ctx.HasSuppGid && uid != 0:
		sg[0] = ctx.SuppGid
		groups = sg[:]
	case len(c.groups) > 0 && uid != 0:
		groups = sg[:0]
	}
	if uid == c.uid && gid == c.gid && groups == nil {
		return errno(op())
	}
	runtime.LockOSThread()
	ok := true
	// setfsuid/setfsgid cannot fail for a process probeCreds vouched for:
	// they fail only without CAP_SETUID/CAP_SETGID, which no capset here
	// removes (they are not file-system capabilities).
	if gid != c.gid {
		unix.SetfsgidRetGid(gid)
	}
	if groups != nil && setgroups(groups) != nil {
		ok = false
	}
	var err error
	if uid != c.uid {
		unix.SetfsuidRetUid(uid)
		want := &c.caps
		if uid == 0 {
			want = &c.orig
		}
		err = unix.Capset(&c.hdr, &want[0])
	}
	if err == nil && ok {
		err = op()
	} else if err == nil {
		err = syscall.EPERM
	}
	if uid != c.uid {
		unix.SetfsuidRetUid(c.uid)
		if !(c.fixupRestores && uid != 0) && unix.Capset(&c.hdr, &c.orig[0]) != nil {
			ok = false
		}
	}
	if groups != nil && setgroups(c.groups) != nil {
		ok = false
	}
	if gid != c.gid {
		unix.SetfsgidRetGid(c.gid)
	}
	if ok {
		runtime.UnlockOSThread()
	} else if err == nil {
		err = syscall.EIO
	}
	return errno(err)
}

// strictPerms lowers the calling thread, inside asCaller's op, to c.strict:
// the host then checks permission with the caller's fsuid and fsgid (and
// the supplementary group the client sent). For a caller asCaller did not
// switch it does nothing: the daemon's and root's rights are the same.
// asCaller restores the daemon's set afterwards.
func (f *FS) strictPerms(ctx *fs.Context) error {
	c := &f.creds
	if !c.ok || ctx == nil || ctx.Uid == 0 || int(ctx.Uid) == c.uid {
		return nil
	}
	return unix.Capset(&c.hdr, &c.strict[0])
}

// processUmask reads the process umask from /proc/self/status without
// changing it (umask(2) cannot read it without a window in which another
// thread would create files with the wrong mode). 022 if unknown.
func processUmask() uint32 {
	fh, err := os.Open("/proc/self/status")
	if err != nil {
		return 0o022
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return uint32(m)
			}
		}
	}
	return 0o022
}
