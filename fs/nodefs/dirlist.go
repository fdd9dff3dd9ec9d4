package nodefs

import (
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
)

// DirList is where a node's Readdir lists its entries. It is valid only
// during that call.
type DirList struct {
	t    *Tree
	ctx  *fs.Context
	sink fs.DirSink
	// plus is the entry Add fills (for a plain listing, only its Attr):
	// here, in the DirList the request allocates anyway, not per entry.
	plus fs.Entry
}

// Add lists name, which names child, and reports whether it fit; when it
// did not, Readdir stops (and lists name first next time). off is the
// cookie of the entry after this one (never 0): a Readdir from off lists
// what follows name. "." and ".." are listed as any other name with the
// directory and its parent as child. For READDIRPLUS the Tree fills in the
// child's attributes and counts the lookup; the node need not know.
func (d *DirList) Add(name []byte, child Node, off uint64) bool {
	in, ok := d.t.assign(child)
	if !ok {
		return false
	}
	e := fs.DirEntry{Ino: in.id.Load(), Off: off, Name: name}
	dot := string(name) == "." || string(name) == ".."
	// A plain entry's type comes from d.plus.Attr too: a local fs.Attr
	// would escape into the node's Getattr, one allocation per entry.
	d.plus = fs.Entry{}
	if !d.sink.Plus() || dot {
		a := &d.plus.Attr
		if d.t.getattr(d.ctx, in, nil, a) != 0 {
			a.Mode = 0 // DT_UNKNOWN
		}
		e.Type = a.Mode & syscall.S_IFMT >> 12
		return d.sink.Add(e, nil) // "." and "..": no entry, no lookup
	}
	if d.t.getattr(d.ctx, in, nil, &d.plus.Attr) != 0 {
		return true // vanished while listed: skip it
	}
	e.Type = d.plus.Attr.Mode & syscall.S_IFMT >> 12
	d.plus.Ino = fs.Inode(e.Ino)
	d.plus.Generation = Generation
	d.plus.EntryTimeout, d.plus.AttrTimeout = d.t.opts.EntryTimeout, d.t.opts.AttrTimeout
	if !d.sink.Add(e, &d.plus) {
		return false
	}
	d.t.ref(in)
	return true
}
