package nodefs

import "github.com/fastfsd/fastfsd/fs"

// Node is a file, directory, symlink or other inode of a tree: any type
// that embeds Inode (by value, as its first field or not). The methods a
// node has beyond that are its capabilities, the Node* interfaces below;
// the Tree answers everything a node leaves out (see the package comment
// for each default).
type Node interface {
	embedded() *Inode
}

// FileHandle is what a node's Open, Opendir or Create returns to stand for
// one open file: any value, typically a pointer to the node's own state for
// that open (nil when the node keeps no per-open state). The Tree keeps it
// until Release and hands it back to every request on that open.
type FileHandle any

// NodeLookuper finds the child called name in a directory. The Tree counts
// the lookup, gives the child its ID and asks it for its attributes.
type NodeLookuper interface {
	Lookup(ctx *fs.Context, name []byte) (Node, fs.Errno)
}

// NodeGetattrer fills a node's attributes. fh is the open it is asked
// through (fstat), or nil. The Tree sets out.Ino to the node's ID.
type NodeGetattrer interface {
	Getattr(ctx *fs.Context, fh FileHandle, out *fs.Attr) fs.Errno
}

// NodeSetattrer changes the attributes in.Valid names and fills the new
// attributes into out. fh is the open it is asked through, or nil.
type NodeSetattrer interface {
	Setattr(ctx *fs.Context, fh FileHandle, in *fs.SetAttrIn, out *fs.Attr) fs.Errno
}

// NodeReadlinker copies a symlink's target into buf and returns its length
// (ENAMETOOLONG if it does not fit).
type NodeReadlinker interface {
	Readlink(ctx *fs.Context, buf []byte) (int, fs.Errno)
}

// NodeOpener opens a file: flags are open(2) flags, openFlags fs.Open*
// request bits; the node may set fs.Open* reply bits in out.Flags (the Tree
// sets out.Handle). A node without Open opens with a nil FileHandle.
type NodeOpener interface {
	Open(ctx *fs.Context, flags, openFlags uint32, out *fs.OpenOut) (FileHandle, fs.Errno)
}

// NodeReader appends up to size bytes at off to dst.
type NodeReader interface {
	Read(ctx *fs.Context, fh FileHandle, off int64, size uint32, dst fs.Sink) fs.Errno
}

// NodeWriter writes src at off and returns the count; flags holds
// fs.WriteKillSuidGid when the node must clear suid/sgid as it writes.
type NodeWriter interface {
	Write(ctx *fs.Context, fh FileHandle, off int64, src fs.Source, flags uint32) (uint32, fs.Errno)
}

// NodeFlusher is called at each close(2) of an open (fs.FileSystem.Flush).
type NodeFlusher interface {
	Flush(ctx *fs.Context, fh FileHandle, lockOwner uint64) fs.Errno
}

// NodeFsyncer makes a file's (or directory's) data durable.
type NodeFsyncer interface {
	Fsync(ctx *fs.Context, fh FileHandle, datasync bool) fs.Errno
}

// NodeReleaser is told that an open of the node (file or directory) ended;
// the Tree forgets fh after it returns.
type NodeReleaser interface {
	Release(ctx *fs.Context, fh FileHandle) fs.Errno
}

// NodeFallocater is fallocate(2).
type NodeFallocater interface {
	Fallocate(ctx *fs.Context, fh FileHandle, off, length uint64, mode uint32) fs.Errno
}

// NodeLseeker answers SEEK_DATA and SEEK_HOLE.
type NodeLseeker interface {
	Lseek(ctx *fs.Context, fh FileHandle, off int64, whence uint32) (int64, fs.Errno)
}

// NodeOpendirer opens a directory, as NodeOpener a file. A directory
// without it opens with a nil FileHandle.
type NodeOpendirer interface {
	Opendir(ctx *fs.Context, flags uint32, out *fs.OpenOut) (FileHandle, fs.Errno)
}

// NodeReaddirer lists a directory into dst from after cookie off (0: from
// the start), until Add reports the reply full or the directory ends. The
// node chooses the cookies; a directory changing between calls must keep
// the cookies of its remaining entries, so a listing neither repeats nor
// skips them. The node lists "." and ".." itself, if at all.
type NodeReaddirer interface {
	Readdir(ctx *fs.Context, fh FileHandle, off uint64, dst *DirList) fs.Errno
}

// NodeMkdirer creates directory name.
type NodeMkdirer interface {
	Mkdir(ctx *fs.Context, name []byte, mode uint32) (Node, fs.Errno)
}

// NodeMknoder creates a special file (or a regular one) called name.
type NodeMknoder interface {
	Mknod(ctx *fs.Context, name []byte, mode, rdev uint32) (Node, fs.Errno)
}

// NodeCreater creates and opens file name, as NodeOpener.Open would open it.
type NodeCreater interface {
	Create(ctx *fs.Context, name []byte, mode, flags uint32, out *fs.OpenOut) (Node, FileHandle, fs.Errno)
}

// NodeTmpfiler creates and opens a file with no name in this directory,
// as open(2) with O_TMPFILE does.
type NodeTmpfiler interface {
	Tmpfile(ctx *fs.Context, mode, flags uint32, out *fs.OpenOut) (Node, FileHandle, fs.Errno)
}

// NodeSymlinker creates symlink name pointing at target.
type NodeSymlinker interface {
	Symlink(ctx *fs.Context, name, target []byte) (Node, fs.Errno)
}

// NodeLinker makes name in this directory another name of target (a node
// of the same tree).
type NodeLinker interface {
	Link(ctx *fs.Context, target Node, name []byte) fs.Errno
}

// NodeUnlinker removes the name of a non-directory.
type NodeUnlinker interface {
	Unlink(ctx *fs.Context, name []byte) fs.Errno
}

// NodeRmdirer removes an empty directory.
type NodeRmdirer interface {
	Rmdir(ctx *fs.Context, name []byte) fs.Errno
}

// NodeRenamer moves name to newName in directory newParent (a node of the
// same tree, possibly this one), with renameat2 flags.
type NodeRenamer interface {
	Rename(ctx *fs.Context, name []byte, newParent Node, newName []byte, flags uint32) fs.Errno
}

// NodeStatfser answers statfs(2) for the filesystem the node is in.
type NodeStatfser interface {
	Statfs(ctx *fs.Context, out *fs.StatFs) fs.Errno
}

// NodeXattrer has extended attributes; see fs.FileSystem's GetXattr and
// ListXattr for the size rules.
type NodeXattrer interface {
	Getxattr(ctx *fs.Context, name, dst []byte) (int, fs.Errno)
	Setxattr(ctx *fs.Context, name, value []byte, flags uint32) fs.Errno
	Listxattr(ctx *fs.Context, dst []byte) (int, fs.Errno)
	Removexattr(ctx *fs.Context, name []byte) fs.Errno
}

// NodeLocker keeps POSIX record locks and flock locks on its node, as
// fs.FileSystem's GetLk and SetLk.
type NodeLocker interface {
	Getlk(ctx *fs.Context, fh FileHandle, owner uint64, lk *fs.Lock, out *fs.Lock) fs.Errno
	Setlk(ctx *fs.Context, fh FileHandle, owner uint64, lk *fs.Lock, wait, flock bool) fs.Errno
}
