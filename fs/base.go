package fs

import "syscall"

// Base answers ENOSYS for every FileSystem method (Init succeeds, Forget and
// Destroy do nothing). Embed it and override what your filesystem does.
type Base struct{}

var _ FileSystem = Base{}

const enosys = syscall.ENOSYS

func (Base) Init(*Context, *InitInfo) Errno                              { return OK }
func (Base) Destroy()                                                    {}
func (Base) Lookup(*Context, Inode, []byte, *Entry) Errno                { return enosys }
func (Base) Forget(Inode, uint64)                                        {}
func (Base) GetAttr(*Context, Inode, Handle, bool, *AttrOut) Errno       { return enosys }
func (Base) SetAttr(*Context, Inode, *SetAttrIn, *AttrOut) Errno         { return enosys }
func (Base) Readlink(*Context, Inode, []byte) (int, Errno)               { return 0, enosys }
func (Base) Symlink(*Context, Inode, []byte, []byte, *Entry) Errno       { return enosys }
func (Base) Mknod(*Context, Inode, []byte, uint32, uint32, *Entry) Errno { return enosys }
func (Base) Mkdir(*Context, Inode, []byte, uint32, *Entry) Errno         { return enosys }
func (Base) Unlink(*Context, Inode, []byte) Errno                        { return enosys }
func (Base) Rmdir(*Context, Inode, []byte) Errno                         { return enosys }
func (Base) Rename(*Context, Inode, []byte, Inode, []byte, uint32) Errno {
	return enosys
}
func (Base) Link(*Context, Inode, Inode, []byte, *Entry) Errno { return enosys }
func (Base) Open(*Context, Inode, uint32, uint32, *OpenOut) Errno {
	return enosys
}
func (Base) Create(*Context, Inode, []byte, uint32, uint32, *Entry, *OpenOut) Errno {
	return enosys
}
func (Base) Tmpfile(*Context, Inode, uint32, uint32, *Entry, *OpenOut) Errno {
	return enosys
}
func (Base) Read(*Context, Inode, Handle, int64, uint32, Sink) Errno { return enosys }
func (Base) Write(*Context, Inode, Handle, int64, Source, uint32) (uint32, Errno) {
	return 0, enosys
}
func (Base) Flush(*Context, Inode, Handle, uint64) Errno   { return enosys }
func (Base) Fsync(*Context, Inode, Handle, bool) Errno     { return enosys }
func (Base) Release(*Context, Inode, Handle, uint32) Errno { return OK }
func (Base) Fallocate(*Context, Inode, Handle, uint64, uint64, uint32) Errno {
	return enosys
}
func (Base) Lseek(*Context, Inode, Handle, int64, uint32) (int64, Errno) { return 0, enosys }
func (Base) CopyFileRange(*Context, Inode, Handle, int64, Inode, Handle, int64, uint64, uint64) (uint64, Errno) {
	return 0, enosys
}
func (Base) OpenDir(*Context, Inode, uint32, *OpenOut) Errno        { return enosys }
func (Base) ReadDir(*Context, Inode, Handle, uint64, DirSink) Errno { return enosys }
func (Base) ReleaseDir(*Context, Inode, Handle) Errno               { return OK }
func (Base) FsyncDir(*Context, Inode, Handle, bool) Errno           { return enosys }
func (Base) StatFs(*Context, Inode, *StatFs) Errno                  { return enosys }
func (Base) Access(*Context, Inode, uint32) Errno                   { return enosys }
func (Base) Statx(*Context, Inode, Handle, bool, uint32, uint32, *StatxOut) Errno {
	return enosys
}
func (Base) SyncFs(*Context, Inode) Errno                           { return enosys }
func (Base) SetXattr(*Context, Inode, []byte, []byte, uint32) Errno { return enosys }
func (Base) GetXattr(*Context, Inode, []byte, []byte) (int, Errno)  { return 0, enosys }
func (Base) ListXattr(*Context, Inode, []byte) (int, Errno)         { return 0, enosys }
func (Base) RemoveXattr(*Context, Inode, []byte) Errno              { return enosys }
func (Base) GetLk(*Context, Inode, Handle, uint64, *Lock, *Lock) Errno {
	return enosys
}
func (Base) SetLk(*Context, Inode, Handle, uint64, *Lock, bool, bool) Errno {
	return enosys
}
