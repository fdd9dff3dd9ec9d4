package vfs

import (
	"sync"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
)

// The pseudo root: a read-only directory whose entries are the shares.

// rootAttr fills the pseudo root's attributes.
func (v *VFS) rootAttr(a *fs.Attr) {
	t := v.birth
	sec, nsec := uint64(t.Unix()), uint32(t.Nanosecond())
	*a = fs.Attr{
		Ino: uint64(fs.RootInode), Mode: syscall.S_IFDIR | v.opts.Mode, Nlink: 2,
		Uid: v.opts.Uid, Gid: v.opts.Gid, Blksize: 4096,
		Atime: sec, Mtime: sec, Ctime: sec, AtimeNsec: nsec, MtimeNsec: nsec, CtimeNsec: nsec,
	}
}

// rootSelf answers a lookup that names the pseudo root ("." or ".." in it,
// ".." in a share's root). The kernel never forgets the root.
func (v *VFS) rootSelf(out *fs.Entry) {
	out.Ino = fs.RootInode
	v.rootAttr(&out.Attr)
	out.EntryTimeout, out.AttrTimeout = v.opts.EntryTimeout, v.opts.AttrTimeout
}

// enterSlot admits a request to slot i if a share is mounted there.
func (v *VFS) enterSlot(i int) (share, bool) {
	s := &v.slots[i]
	st := s.state.Add(1)
	if st&stateOpen == 0 {
		v.leaveSlot(s)
		return share{}, false
	}
	return share{s: s, slot: uint64(i), gen: stateGen(st)}, true
}

// attrOuts holds scratch AttrOuts for the backend calls the VFS makes on
// its own (a pointer handed to an interface method escapes).
var attrOuts = sync.Pool{New: func() any { return new(fs.AttrOut) }}

// shareRoot fills out with the root of the share sh and counts the lookup
// if count.
func (v *VFS) shareRoot(ctx *fs.Context, sh share, out *fs.Entry) fs.Errno {
	a := attrOuts.Get().(*fs.AttrOut)
	defer attrOuts.Put(a)
	*a = fs.AttrOut{}
	if e := sh.s.fsys.GetAttr(ctx, fs.RootInode, 0, false, a); e != 0 {
		return fix(e)
	}
	out.Ino = sh.id(fs.RootInode)
	out.Attr = a.Attr
	out.Attr.Ino = sh.stIno(a.Attr.Ino)
	out.AttrTimeout = a.Timeout
	out.EntryTimeout = v.opts.EntryTimeout
	return 0
}

func (v *VFS) rootLookup(ctx *fs.Context, name []byte, out *fs.Entry) fs.Errno {
	if string(name) == "." || string(name) == ".." {
		v.rootSelf(out)
		return 0
	}
	v.mu.RLock()
	i, ok := v.names[string(name)]
	var sh share
	if ok {
		sh, ok = v.enterSlot(i)
	}
	v.mu.RUnlock()
	if !ok {
		return syscall.ENOENT
	}
	defer v.leave(sh)
	if e := v.shareRoot(ctx, sh, out); e != 0 {
		return e
	}
	sh.s.rootLookups.Add(1)
	return 0
}

// entries holds scratch Entries for the pseudo root's READDIRPLUS.
var entries = sync.Pool{New: func() any { return new(fs.Entry) }}

// Directory cookies of the pseudo root: "." is followed by cookie 1, ".."
// by 2, the share in slot i by i+2. A share mounted between two READDIRs
// in a slot already passed is not listed by that pass, as POSIX allows.
func (v *VFS) rootReadDir(ctx *fs.Context, off uint64, dst fs.DirSink) fs.Errno {
	dot := fs.DirEntry{Ino: uint64(fs.RootInode), Type: syscall.DT_DIR}
	if off < 1 {
		dot.Off, dot.Name = 1, []byte(".")
		if !dst.Add(dot, nil) {
			return 0
		}
	}
	if off < 2 {
		dot.Off, dot.Name = 2, []byte("..")
		if !dst.Add(dot, nil) {
			return 0
		}
	}
	first := 1
	if off > 2 {
		if off-1 > MaxShares {
			return 0
		}
		first = int(off - 1)
	}
	plus := dst.Plus()
	ent := entries.Get().(*fs.Entry)
	defer entries.Put(ent)
	for i := first; i <= MaxShares; i++ {
		sh, ok := v.enterSlot(i)
		if !ok {
			continue
		}
		*ent = fs.Entry{}
		e := v.shareRoot(ctx, sh, ent)
		d := fs.DirEntry{Ino: ent.Attr.Ino, Off: uint64(i) + 2, Type: syscall.DT_DIR, Name: []byte(sh.s.name)}
		if e != 0 {
			d.Ino = sh.stIno(uint64(fs.RootInode))
		}
		var p *fs.Entry
		if plus && e == 0 {
			p = ent
		}
		added := dst.Add(d, p)
		if added && p != nil {
			sh.s.rootLookups.Add(1)
		}
		v.leave(sh)
		if !added {
			break
		}
	}
	return 0
}

// statxOf fills out from a.
func statxOf(a *fs.Attr, out *fs.StatxOut) {
	const basicStats = 0x7ff // STATX_BASIC_STATS
	out.Statx = fs.Statx{
		Mask: basicStats, Blksize: a.Blksize, Nlink: a.Nlink, Uid: a.Uid, Gid: a.Gid,
		Mode: uint16(a.Mode), Ino: a.Ino, Size: a.Size, Blocks: a.Blocks,
		Atime:     fs.StatxTime{Sec: int64(a.Atime), Nsec: a.AtimeNsec},
		Mtime:     fs.StatxTime{Sec: int64(a.Mtime), Nsec: a.MtimeNsec},
		Ctime:     fs.StatxTime{Sec: int64(a.Ctime), Nsec: a.CtimeNsec},
		RdevMajor: (a.Rdev >> 8) & 0xfff, RdevMinor: a.Rdev&0xff | (a.Rdev>>12)&0xfff00,
	}
}

func (v *VFS) rootStatx(out *fs.StatxOut) {
	var a fs.Attr
	v.rootAttr(&a)
	statxOf(&a, out)
	out.Timeout = v.opts.AttrTimeout
}

// dirSink wraps the transport's DirSink for a share's READDIR(PLUS):
// inode numbers of the share's inode space, and the lookup count of every
// entry the transport accepted. Pooled; valid during one ReadDir.
type dirSink struct {
	inner fs.DirSink
	sh    share
}

var dirSinks = sync.Pool{New: func() any { return new(dirSink) }}

func (d *dirSink) Plus() bool { return d.inner.Plus() }

func (d *dirSink) Add(e fs.DirEntry, plus *fs.Entry) bool {
	e.Ino = d.sh.stIno(e.Ino)
	if plus == nil || plus.Ino == 0 {
		return d.inner.Add(e, plus)
	}
	orig, origSt := plus.Ino, plus.Attr.Ino
	if orig > MaxBackendIno {
		// Not representable: hand the entry over without attributes,
		// and give the backend back the count it will take.
		ok := d.inner.Add(e, nil)
		if ok {
			d.sh.s.fsys.Forget(orig, 1)
		}
		return ok
	}
	plus.Ino, plus.Attr.Ino = d.sh.id(orig), d.sh.stIno(origSt)
	ok := d.inner.Add(e, plus)
	plus.Ino, plus.Attr.Ino = orig, origSt
	if ok {
		if orig == fs.RootInode {
			d.sh.s.rootLookups.Add(1)
		} else {
			d.sh.s.lookups.Add(1)
		}
	}
	return ok
}
