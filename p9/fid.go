package p9

import (
	"sync"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
)

// node is one fs inode as a connection sees it, with the path it was
// reached by. Nodes form a tree per connection: each holds a reference on
// its parent, so ".." is answered from the chain without asking the
// filesystem, and the attach root is never walked above.
//
// A node made by Lookup holds exactly one lookup count of ino, returned by
// one Forget(ino, 1) when its last reference goes. Attach roots of the
// whole tree hold none (fs.RootInode is never looked up nor forgotten).
//
// Limitation: the chain records the path at walk time. A rename done
// through another fid, another connection or on the host leaves ".." of a
// moved node pointing at its old parent; Trename through the node's own fid
// updates it.
type node struct {
	ino    fs.Inode
	mode   uint32 // S_IFMT and permission bits at lookup time
	forget bool   // holds one lookup count (see above)

	// Guarded by conn.mu.
	parent *node  // nil for an attach root
	name   []byte // name in parent (a copy); nil for an attach root
	refs   int32  // fids (as their node or their root) + child nodes
}

func (n *node) isDir() bool { return n.mode&syscall.S_IFMT == syscall.S_IFDIR }

// fidState is what a fid can be used for.
type fidState uint8

const (
	fidWalked     fidState = iota // names a file; may be walked, opened, …
	fidOpenFile                   // Tlopen/Tlcreate of a non-directory: fh is valid
	fidOpenDir                    // Tlopen of a directory: fh is valid
	fidXattrRead                  // Txattrwalk's newfid: reads come from xattr
	fidXattrWrite                 // Txattrcreate: writes collect in xattr until clunk
	// fidOpening: a Tlopen or Tlcreate is opening the fid's file without
	// holding mu (beginOpen): the open may wait for a host lease (wait.go)
	// for up to lease-break-time, and no other request on the fid may
	// wait for it meanwhile. Requests that need an opened or a walked fid
	// get EBADF; those that need only its file (Tgetattr, Tsetattr,
	// Tstatfs, Txattrwalk, Tclunk, Tremove) are served from n. Only the
	// opening request leaves the state (endOpen).
	fidOpening
)

// fid is one client fid. The table holds one reference; every request
// using the fid holds one more for its duration, so a Tclunk racing with a
// Tread frees the fid only when the read is done: Release of the handle and
// the node's Forget happen when the last reference goes.
type fid struct {
	id   uint32
	uid  uint32
	root *node // the attach root: ".." never goes above it
	refs int32 // guarded by conn.mu

	// opener is the request opening the fid (fidOpening), so that a
	// Tclunk or Tremove of the fid interrupts its wait. Guarded by
	// conn.mu.
	opener *request

	mu sync.Mutex
	// Guarded by mu.
	n      *node
	state  fidState
	fh     fs.Handle
	xattr  []byte // fidXattrRead: the value or list; fidXattrWrite: the buffer (len = attr_size)
	xname  []byte // fidXattrWrite: the name (a copy)
	xflags uint32 // fidXattrWrite: setxattr flags
	xlen   int    // fidXattrWrite: bytes written so far (the highest end offset)
	xcost  int    // bytes of xattr charged to conn.xattrBytes; guarded by conn.mu
}

// xattrBudget bounds the xattr buffers one connection holds at once
// (values fetched by Txattrwalk, collected by Txattrcreate): without it a
// client could pin MaxFids × 64 KiB.
const xattrBudget = 16 << 20

// chargeXattr reserves n bytes of the connection's xattr budget for f (nil:
// for a fid not yet created, which addFid then charges), or fails with
// ENOMEM.
func (c *conn) chargeXattr(f *fid, n int) fs.Errno {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.xattrBytes+n > xattrBudget {
		return syscall.ENOMEM
	}
	c.xattrBytes += n
	if f != nil {
		f.xcost += n
	}
	return 0
}

// unchargeXattr returns n reserved bytes that no fid took.
func (c *conn) unchargeXattr(n int) {
	c.mu.Lock()
	c.xattrBytes -= n
	c.mu.Unlock()
}

// snapshot returns what a request needs of f, read under f.mu.
func (f *fid) snapshot() (n *node, st fidState, fh fs.Handle) {
	f.mu.Lock()
	n, st, fh = f.n, f.state, f.fh
	f.mu.Unlock()
	return
}

// getFid returns the fid with a request reference, or nil.
func (c *conn) getFid(id uint32) *fid {
	c.mu.Lock()
	f := c.fids[id]
	if f != nil {
		f.refs++
	}
	c.mu.Unlock()
	return f
}

// putFid drops a reference; the last one releases the fid's resources,
// calling Release with ctx (the dropping request's; nil at teardown).
func (c *conn) putFid(f *fid, ctx *fs.Context) {
	c.mu.Lock()
	f.refs--
	last := f.refs == 0
	c.mu.Unlock()
	if last {
		c.releaseFid(f, ctx)
	}
}

// releaseFid frees a fid nobody references any more.
func (c *conn) releaseFid(f *fid, ctx *fs.Context) {
	f.mu.Lock()
	n, st, fh := f.n, f.state, f.fh
	f.n = nil
	f.xattr, f.xname = nil, nil
	f.mu.Unlock()
	if n != nil && (st == fidOpenFile || st == fidOpenDir) {
		if ctx == nil {
			ctx = &fs.Context{}
		}
		ctx.Caller = fs.Caller{Uid: f.uid, Gid: nobody}
		if st == fidOpenFile {
			c.s.fs.Release(ctx, n.ino, fh, 0)
		} else {
			c.s.fs.ReleaseDir(ctx, n.ino, fh)
		}
	}
	c.mu.Lock()
	c.nfids--
	if c.fidShare != nil {
		c.fidShare.Put(f.uid)
	}
	c.xattrBytes -= f.xcost
	f.xcost = 0
	c.unrefLocked(n)
	c.unrefLocked(f.root)
	c.mu.Unlock()
}

// addFid inserts a new fid holding the table's reference, n and root
// already referenced by the caller (the references pass to the fid). It
// fails with EBADF if id is in use, and past the fid bounds (fidRefused)
// with EMFILE or ENFILE; then the caller still owns its references.
func (c *conn) addFid(id uint32, uid uint32, root, n *node, st fidState, fh fs.Handle) (*fid, fs.Errno) {
	return c.addFidXattr(id, uid, root, n, st, fh, nil)
}

// addFidXattr is addFid for a Txattrwalk fid holding xattr, whose length
// the caller charged (chargeXattr(nil, len)): the charge passes to the fid
// as it is inserted, so no clunk can slip in between.
func (c *conn) addFidXattr(id uint32, uid uint32, root, n *node, st fidState, fh fs.Handle, xattr []byte) (*fid, fs.Errno) {
	if id == NoFid {
		return nil, syscall.EBADF
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.fids[id]; ok {
		return nil, syscall.EBADF
	}
	if c.fidShare != nil {
		if !c.fidShare.Take(uid) {
			return nil, c.fidRefused(uid)
		}
	} else if c.nfids >= c.s.opts.MaxFids {
		return nil, syscall.EMFILE
	}
	f := &fid{id: id, uid: uid, root: root, refs: 1, n: n, state: st, fh: fh, xattr: xattr, xcost: len(xattr)}
	c.fids[id] = f
	c.nfids++
	return f, 0
}

// A connection that may carry several uids' fids (a Trusted peer: a
// Linux v9fs mount with access=user, shared by every user of the mount,
// each Tattaching with its own n_uname; with cache=loose the client keeps
// a fid per cached dentry and user) shares its MaxFids among them by the
// rule of its lease waits (internal/waitshare): a uid other than 0 holds
// at most an eighth of them (8,192 of the default 65,536: more than a
// user's cached tree of a v9fs mount usually needs, and eight such users
// are needed to use up what non-root uids may hold), and other uids
// stop at seven eighths, the last eighth kept for root (a mount's own
// root attach, and what root must still do on a mount every user of
// which is at its share). So one user cannot make every other user's
// Twalk and Tattach fail. The fids of a peer that is not Trusted are all
// its identity's (ctxFor), so there the connection's MaxFids is that
// uid's, bounded across connections by MaxConnsPerPeer. The uid is the
// fid's (its Tattach's n_uname, or the identity), which is what a fid
// acts as; a Trusted peer may name any uid, so this is fairness among
// the users of an honest client, not a bound against the client.
//
// An eighth of a small MaxFids walks nowhere (of 15, 1 fid: the uid's
// attach), so a uid's share is at least fidShareFloor, and root keeps at
// least one fid (waitshare.NewFloor). Linux's v9fs keeps a fid per
// dentry and uid (v9fs_fid_add), made by walking from the parent's, and
// a dentry pins its parent; with cache=none a user with a file open d
// directories down holds its attach, a fid per directory of the path and
// the file's, and one more the open cloned (clone_fid): 16 is a file open
// 13 directories down. Below 8 × fidShareFloor (128) fewer uids then
// fill what root leaves (four of 64, where an eighth took seven), and
// up to 18 fids one uid may take all of it: so small a table is too
// small to share, but it still bounds the connection.

// fidShareFloor is the fewest fids a uid other than 0 may hold on a
// connection whose fids are shared (above), root's reserve permitting.
const fidShareFloor = 16

// fidRefused is the errno of a fid fidShare refused to uid: EMFILE if
// uid holds its share (the limit is its own: as with RLIMIT_NOFILE, or
// inotify_init(2)'s per-user limit, what the caller holds is what it
// may give back), ENFILE if the connection's fids are all taken for it
// (root's reserve or the whole table: as ENFILE is for the system's file
// table, and inotify_init(2)'s system-wide limit, the shortage is not the
// caller's alone). Linux's v9fs client returns a Twalk's Rlerror errno
// to the system call that walked (open, stat, …), so a user sees "Too
// many open files" or "Too many open files in system".
//
// Preconditions: c.mu is held.
func (c *conn) fidRefused(uid uint32) fs.Errno {
	if uid != 0 && c.fidShare.Held(uid) >= c.fidShare.Share() {
		return syscall.EMFILE
	}
	return syscall.ENFILE
}

// fidInUse reports whether id names a fid now.
func (c *conn) fidInUse(id uint32) bool {
	c.mu.Lock()
	_, ok := c.fids[id]
	c.mu.Unlock()
	return ok
}

// removeFid takes id out of the table and returns it with the table's
// reference, which the caller drops with putFid. An open in progress on
// the fid (fidOpening) is interrupted: if it waits for a host lease, the
// wait ends with EINTR at once; if its file was opened all the same, the
// opening request installs the handle and answers EINTR, and the handle
// is released with the fid's last reference, the opening request's (so
// no fd and no count of the open budget outlives the fid).
func (c *conn) removeFid(id uint32) *fid {
	c.mu.Lock()
	f := c.fids[id]
	delete(c.fids, id)
	if f != nil && f.opener != nil {
		f.opener.intr.Set()
	}
	c.mu.Unlock()
	return f
}

// beginOpen moves f, which must be walked and name want (nil: any file),
// to fidOpening for r and returns its node, or EBADF. The caller opens
// without f.mu held, then calls endOpen whatever the outcome.
func (c *conn) beginOpen(r *request, f *fid, want *node) (*node, fs.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state != fidWalked || f.n == nil || want != nil && f.n != want {
		return nil, eBadf // opened already, being opened, or an xattr fid
	}
	f.state = fidOpening
	c.mu.Lock()
	f.opener = r
	c.mu.Unlock()
	return f.n, 0
}

// endOpen ends what beginOpen began. On failure (e, fs.WouldWait
// included) f is walked again and e is returned. On success f becomes st
// with node n and handle fh; if n is not f's node, f's reference on its
// old node (the directory of a Tlcreate) moves to n, which the caller
// referenced. If f left the table meanwhile (removeFid: a fid never
// returns to it, and its id may name a new fid by now) the result is
// installed all the same, so that the fid's last reference releases it,
// and endOpen returns EINTR: the client gave the fid up while it was
// being opened.
func (c *conn) endOpen(f *fid, n *node, st fidState, fh fs.Handle, e fs.Errno) fs.Errno {
	f.mu.Lock()
	c.mu.Lock()
	gone := c.fids[f.id] != f
	f.opener = nil
	c.mu.Unlock()
	if e != 0 {
		f.state = fidWalked
		f.mu.Unlock()
		return e
	}
	old := f.n
	f.n, f.state, f.fh = n, st, fh
	f.mu.Unlock()
	if old != n {
		c.unrefNode(old)
	}
	if gone {
		return syscall.EINTR
	}
	return 0
}

// endPanickedOpen, deferred by the opener after beginOpen, ends the open
// as failed (f walked again, its opener cleared) if the opener never got
// to endOpen (*ended false): the filesystem panicked, and call answers
// EIO. Without it f would stay fidOpening for good (every later open
// EBADF) with its opener pointing at a request slot that later requests
// reuse, which a Tclunk of f would then interrupt.
func (c *conn) endPanickedOpen(f *fid, ended *bool) {
	if !*ended {
		c.endOpen(f, nil, 0, 0, syscall.EIO)
	}
}

// refNode adds a reference to n.
func (c *conn) refNode(n *node) {
	c.mu.Lock()
	n.refs++
	c.mu.Unlock()
}

// unrefNode drops a reference to n.
func (c *conn) unrefNode(n *node) {
	c.mu.Lock()
	c.unrefLocked(n)
	c.mu.Unlock()
}

// unrefLocked drops a reference to n and, when it was the last, Forgets
// its inode and drops its reference on its parent, up the chain.
//
// Preconditions: c.mu is held. fs.Forget is called under it: Forget is a
// counter decrement in every filesystem and never calls back into p9.
func (c *conn) unrefLocked(n *node) {
	for n != nil {
		n.refs--
		if n.refs > 0 {
			return
		}
		if n.forget {
			c.s.fs.Forget(n.ino, 1)
		}
		parent := n.parent
		n.parent = nil
		n = parent
	}
}

// newChild makes the node for a name found in parent (its Entry raised a
// lookup count that the node now owns) with one reference for the caller.
func (c *conn) newChild(parent *node, name []byte, e *fs.Entry) *node {
	n := &node{ino: e.Ino, mode: e.Attr.Mode, forget: true, name: append([]byte(nil), name...), refs: 1}
	c.mu.Lock()
	n.parent = parent
	parent.refs++
	c.mu.Unlock()
	return n
}

// clunkAll frees every fid (Tversion, connection teardown). No request is
// in flight when it runs, so every fid holds only the table's reference.
func (c *conn) clunkAll() {
	c.mu.Lock()
	fids := make([]*fid, 0, len(c.fids))
	for id, f := range c.fids {
		fids = append(fids, f)
		delete(c.fids, id)
	}
	c.mu.Unlock()
	for _, f := range fids {
		c.commitXattr(f)
		c.putFid(f, nil)
	}
}
