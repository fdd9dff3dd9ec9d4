package nodefs

import "github.com/fastfsd/fastfsd/fs"

// open keeps f for an open of in and returns its handle; an open without a
// FileHandle is handle 0 and keeps nothing.
func (t *Tree) open(in *Inode, f FileHandle) fs.Handle {
	if f == nil {
		return 0
	}
	t.hmu.Lock()
	defer t.hmu.Unlock()
	var i uint32
	if n := len(t.free); n > 0 {
		i, t.free = t.free[n-1], t.free[:n-1]
	} else {
		t.handles = append(t.handles, openFile{})
		i = uint32(len(t.handles) - 1)
	}
	t.handles[i] = openFile{in: in, fh: f}
	return fs.Handle(i) + 1
}

// handle returns the FileHandle of open fh of in: nil for handle 0, EBADF
// for a handle that is not open or is another node's.
func (t *Tree) handle(in *Inode, fh fs.Handle) (FileHandle, fs.Errno) {
	if fh == 0 {
		return nil, 0
	}
	t.hmu.Lock()
	defer t.hmu.Unlock()
	if fh > fs.Handle(len(t.handles)) || t.handles[fh-1].in != in {
		return nil, eBadf
	}
	return t.handles[fh-1].fh, 0
}

// nodeHandle is node and handle in one.
func (t *Tree) nodeHandle(ino fs.Inode, fh fs.Handle) (*Inode, FileHandle, fs.Errno) {
	in, e := t.node(ino)
	if e != 0 {
		return nil, nil, e
	}
	f, e := t.handle(in, fh)
	return in, f, e
}

// closeHandle ends open fh of ino: the node's NodeReleaser is told, and
// the slot is freed for another open. The node is found through the
// handle, not the table: a door that forgets a node before releasing its
// opens still has them released.
func (t *Tree) closeHandle(ctx *fs.Context, ino fs.Inode, fh fs.Handle) fs.Errno {
	if fh == 0 {
		in, e := t.node(ino)
		if e != 0 {
			return e
		}
		return t.release(ctx, in, nil)
	}
	t.hmu.Lock()
	if fh > fs.Handle(len(t.handles)) || t.handles[fh-1].in == nil || t.handles[fh-1].in.ID() != ino {
		t.hmu.Unlock()
		return eBadf
	}
	of := t.handles[fh-1]
	t.handles[fh-1] = openFile{}
	t.free = append(t.free, uint32(fh-1))
	t.hmu.Unlock()
	return t.release(ctx, of.in, of.fh)
}

func (t *Tree) release(ctx *fs.Context, in *Inode, f FileHandle) fs.Errno {
	if r, ok := in.node.(NodeReleaser); ok {
		return r.Release(ctx, f)
	}
	return 0
}
