package nodefs

import (
	"bytes"
	"slices"
	"sync"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
)

// File is a read-only regular file holding Data: a node ready to be
// returned from a Lookup or listed in a Dir. Data must not change once the
// file is served (a changing file is a type with its own Read, and tells
// the client's cache through the session's notifications).
type File struct {
	Inode
	Data []byte
	Mode uint32 // permission bits; 0 means 0444
}

// Getattr reports a regular file of len(Data) bytes.
func (f *File) Getattr(_ *fs.Context, _ FileHandle, out *fs.Attr) fs.Errno {
	mode := f.Mode & 0o7777
	if mode == 0 {
		mode = 0o444
	}
	*out = fs.Attr{Mode: syscall.S_IFREG | mode, Nlink: 1, Size: uint64(len(f.Data))}
	return 0
}

// Read copies Data from off (nothing past its end).
func (f *File) Read(_ *fs.Context, _ FileHandle, off int64, _ uint32, dst fs.Sink) fs.Errno {
	dst.Append(f.Data[min(max(off, 0), int64(len(f.Data))):]) // Append takes what fits
	return 0
}

// Dir is a read-only directory of fixed Entries (name → node), listed in
// name order. Entries must not change once the directory is served.
type Dir struct {
	Inode
	Entries map[string]Node
	Mode    uint32 // permission bits; 0 means 0555

	once  sync.Once
	names [][]byte // Entries' names, sorted, made at first Readdir
}

// Getattr reports a directory.
func (d *Dir) Getattr(_ *fs.Context, _ FileHandle, out *fs.Attr) fs.Errno {
	mode := d.Mode & 0o7777
	if mode == 0 {
		mode = 0o555
	}
	*out = fs.Attr{Mode: syscall.S_IFDIR | mode, Nlink: 2}
	return 0
}

// Lookup finds name in Entries.
func (d *Dir) Lookup(_ *fs.Context, name []byte) (Node, fs.Errno) {
	if n, ok := d.Entries[string(name)]; ok { // no allocation: the compiler converts in place
		return n, 0
	}
	return nil, syscall.ENOENT
}

// Readdir lists Entries in name order; entry i's cookie is i+1. It lists
// no "." or ".." (a Dir does not know its parent); ls, find and
// readdir(3) do without them.
func (d *Dir) Readdir(_ *fs.Context, _ FileHandle, off uint64, dst *DirList) fs.Errno {
	d.once.Do(func() {
		for name := range d.Entries {
			d.names = append(d.names, []byte(name))
		}
		slices.SortFunc(d.names, bytes.Compare)
	})
	for i := off; i < uint64(len(d.names)); i++ {
		name := d.names[i]
		if !dst.Add(name, d.Entries[string(name)], i+1) {
			break
		}
	}
	return 0
}
