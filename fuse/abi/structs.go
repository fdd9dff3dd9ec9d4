package abi

import "structs"

// Sizes of the structs, as sizeof in the 7.45 kernel header. TestSizes
// checks each against unsafe.Sizeof of the Go type.
const (
	InHeaderSize         = 40  // sizeof(struct fuse_in_header)
	OutHeaderSize        = 16  // sizeof(struct fuse_out_header)
	AttrSize             = 88  // sizeof(struct fuse_attr)
	SxTimeSize           = 16  // sizeof(struct fuse_sx_time)
	StatxSize            = 256 // sizeof(struct fuse_statx)
	KstatfsSize          = 80  // sizeof(struct fuse_kstatfs)
	FileLockSize         = 24  // sizeof(struct fuse_file_lock)
	EntryOutSize         = 128 // sizeof(struct fuse_entry_out)
	ForgetInSize         = 8   // sizeof(struct fuse_forget_in)
	ForgetOneSize        = 16  // sizeof(struct fuse_forget_one)
	BatchForgetInSize    = 8   // sizeof(struct fuse_batch_forget_in)
	GetattrInSize        = 16  // sizeof(struct fuse_getattr_in)
	AttrOutSize          = 104 // sizeof(struct fuse_attr_out)
	StatxInSize          = 24  // sizeof(struct fuse_statx_in)
	StatxOutSize         = 288 // sizeof(struct fuse_statx_out)
	MknodInSize          = 16  // sizeof(struct fuse_mknod_in)
	MkdirInSize          = 8   // sizeof(struct fuse_mkdir_in)
	RenameInSize         = 8   // sizeof(struct fuse_rename_in)
	Rename2InSize        = 16  // sizeof(struct fuse_rename2_in)
	LinkInSize           = 8   // sizeof(struct fuse_link_in)
	SetattrInSize        = 88  // sizeof(struct fuse_setattr_in)
	OpenInSize           = 8   // sizeof(struct fuse_open_in)
	CreateInSize         = 16  // sizeof(struct fuse_create_in)
	OpenOutSize          = 16  // sizeof(struct fuse_open_out)
	ReleaseInSize        = 24  // sizeof(struct fuse_release_in)
	FlushInSize          = 24  // sizeof(struct fuse_flush_in)
	ReadInSize           = 40  // sizeof(struct fuse_read_in)
	WriteInSize          = 40  // sizeof(struct fuse_write_in)
	WriteOutSize         = 8   // sizeof(struct fuse_write_out)
	StatfsOutSize        = 80  // sizeof(struct fuse_statfs_out)
	FsyncInSize          = 16  // sizeof(struct fuse_fsync_in)
	SetxattrInSize       = 16  // sizeof(struct fuse_setxattr_in)
	GetxattrInSize       = 8   // sizeof(struct fuse_getxattr_in)
	GetxattrOutSize      = 8   // sizeof(struct fuse_getxattr_out)
	LkInSize             = 48  // sizeof(struct fuse_lk_in)
	LkOutSize            = 24  // sizeof(struct fuse_lk_out)
	AccessInSize         = 8   // sizeof(struct fuse_access_in)
	InitInSize           = 64  // sizeof(struct fuse_init_in)
	InitOutSize          = 64  // sizeof(struct fuse_init_out)
	CuseInitInSize       = 16  // sizeof(struct cuse_init_in)
	CuseInitOutSize      = 72  // sizeof(struct cuse_init_out)
	InterruptInSize      = 8   // sizeof(struct fuse_interrupt_in)
	BmapInSize           = 16  // sizeof(struct fuse_bmap_in)
	BmapOutSize          = 8   // sizeof(struct fuse_bmap_out)
	IoctlInSize          = 32  // sizeof(struct fuse_ioctl_in)
	IoctlIovecSize       = 16  // sizeof(struct fuse_ioctl_iovec)
	IoctlOutSize         = 16  // sizeof(struct fuse_ioctl_out)
	PollInSize           = 24  // sizeof(struct fuse_poll_in)
	PollOutSize          = 8   // sizeof(struct fuse_poll_out)
	NotifyPollWakeupSize = 8   // sizeof(struct fuse_notify_poll_wakeup_out)
	FallocateInSize      = 32  // sizeof(struct fuse_fallocate_in)
	DirentHeaderSize     = 24  // sizeof(struct fuse_dirent) without the name (FUSE_NAME_OFFSET)
	DirentplusHeaderSize = 152 // sizeof(struct fuse_direntplus) without the name
	NotifyInvalInodeSize = 24  // sizeof(struct fuse_notify_inval_inode_out)
	NotifyInvalEntrySize = 16  // sizeof(struct fuse_notify_inval_entry_out)
	NotifyDeleteSize     = 24  // sizeof(struct fuse_notify_delete_out)
	NotifyStoreSize      = 24  // sizeof(struct fuse_notify_store_out)
	NotifyRetrieveSize   = 32  // sizeof(struct fuse_notify_retrieve_out)
	NotifyRetrieveInSize = 40  // sizeof(struct fuse_notify_retrieve_in)
	NotifyPruneSize      = 16  // sizeof(struct fuse_notify_prune_out)
	BackingMapSize       = 16  // sizeof(struct fuse_backing_map)
	LseekInSize          = 24  // sizeof(struct fuse_lseek_in)
	LseekOutSize         = 8   // sizeof(struct fuse_lseek_out)
	CopyFileRangeInSize  = 56  // sizeof(struct fuse_copy_file_range_in)
	CopyFileRangeOutSize = 8   // sizeof(struct fuse_copy_file_range_out)
	SetupmappingInSize   = 40  // sizeof(struct fuse_setupmapping_in)
	RemovemappingInSize  = 4   // sizeof(struct fuse_removemapping_in)
	RemovemappingOneSize = 16  // sizeof(struct fuse_removemapping_one)
	SyncfsInSize         = 8   // sizeof(struct fuse_syncfs_in)
	SecctxSize           = 8   // sizeof(struct fuse_secctx)
	SecctxHeaderSize     = 8   // sizeof(struct fuse_secctx_header)
	ExtHeaderSize        = 8   // sizeof(struct fuse_ext_header)
	SuppGroupsSize       = 4   // sizeof(struct fuse_supp_groups) without groups[]
	UringEntInOutSize    = 32  // sizeof(struct fuse_uring_ent_in_out)
	UringReqHeaderSize   = 288 // sizeof(struct fuse_uring_req_header)
	UringCmdReqSize      = 24  // sizeof(struct fuse_uring_cmd_req)
)

// Compat sizes: what older minors send or expect in place of the full
// struct.
const (
	CompatEntryOutSize   = 120 // FUSE_COMPAT_ENTRY_OUT_SIZE, minor < 9
	CompatAttrOutSize    = 96  // FUSE_COMPAT_ATTR_OUT_SIZE, minor < 9
	CompatMknodInSize    = 8   // FUSE_COMPAT_MKNOD_IN_SIZE, minor < 12
	CompatWriteInSize    = 24  // FUSE_COMPAT_WRITE_IN_SIZE, minor < 9
	CompatStatfsSize     = 48  // FUSE_COMPAT_STATFS_SIZE, minor < 4
	CompatSetxattrInSize = 8   // FUSE_COMPAT_SETXATTR_IN_SIZE, without FUSE_SETXATTR_EXT
	CompatInitInSize     = 16  // fuse_init_in before 7.36 (no flags2)
	CompatInitOutSize    = 8   // FUSE_COMPAT_INIT_OUT_SIZE, minor < 5
	Compat22InitOutSize  = 24  // FUSE_COMPAT_22_INIT_OUT_SIZE, minor < 23
	// RemovemappingArrayOffset is where the fuse_removemapping_one array
	// starts in a REMOVEMAPPING request: not 8-aligned.
	RemovemappingArrayOffset = InHeaderSize + RemovemappingInSize
)

// InHeader is struct fuse_in_header, in front of every request.
type InHeader struct {
	_           structs.HostLayout
	Len         uint32 // total length, header and extensions included
	Opcode      Opcode
	Unique      uint64
	NodeID      uint64
	UID         uint32
	GID         uint32
	PID         uint32
	TotalExtlen uint16 // extension length in 8-byte units (7.38)
	_           uint16 // padding
}

// OutHeader is struct fuse_out_header, in front of every reply.
type OutHeader struct {
	_      structs.HostLayout
	Len    uint32
	Error  int32 // 0 or -errno; a notification's code when Unique is 0
	Unique uint64
}

// Attr is struct fuse_attr.
type Attr struct {
	_         structs.HostLayout
	Ino       uint64
	Size      uint64
	Blocks    uint64
	Atime     uint64
	Mtime     uint64
	Ctime     uint64
	AtimeNsec uint32 // atimensec
	MtimeNsec uint32 // mtimensec
	CtimeNsec uint32 // ctimensec
	Mode      uint32
	Nlink     uint32
	UID       uint32
	GID       uint32
	Rdev      uint32
	Blksize   uint32
	Flags     AttrFlags
}

// SxTime is struct fuse_sx_time.
type SxTime struct {
	_    structs.HostLayout
	Sec  int64 // tv_sec
	Nsec uint32
	_    int32 // __reserved
}

// Statx is struct fuse_statx, bit-compatible with struct statx.
type Statx struct {
	_              structs.HostLayout
	Mask           uint32
	Blksize        uint32
	Attributes     uint64
	Nlink          uint32
	UID            uint32
	GID            uint32
	Mode           uint16
	_              uint16 // __spare0
	Ino            uint64
	Size           uint64
	Blocks         uint64
	AttributesMask uint64
	Atime          SxTime
	Btime          SxTime
	Ctime          SxTime
	Mtime          SxTime
	RdevMajor      uint32
	RdevMinor      uint32
	DevMajor       uint32
	DevMinor       uint32
	_              [14]uint64 // __spare2
}

// Kstatfs is struct fuse_kstatfs; StatfsOut (struct fuse_statfs_out) is
// the same bytes.
type Kstatfs struct {
	_       structs.HostLayout
	Blocks  uint64
	Bfree   uint64
	Bavail  uint64
	Files   uint64
	Ffree   uint64
	Bsize   uint32
	NameLen uint32 // namelen
	Frsize  uint32
	_       uint32    // padding
	_       [6]uint32 // spare
}

// StatfsOut is struct fuse_statfs_out.
type StatfsOut struct {
	_  structs.HostLayout
	St Kstatfs
}

// FileLock is struct fuse_file_lock.
type FileLock struct {
	_     structs.HostLayout
	Start uint64
	End   uint64 // inclusive; OFFSET_MAX for end of file
	Type  uint32 // F_RDLCK, F_WRLCK, F_UNLCK
	PID   uint32 // tgid
}

// EntryOut is struct fuse_entry_out.
type EntryOut struct {
	_              structs.HostLayout
	NodeID         uint64
	Generation     uint64
	EntryValid     uint64 // seconds
	AttrValid      uint64 // seconds
	EntryValidNsec uint32
	AttrValidNsec  uint32
	Attr           Attr
}

// ForgetIn is struct fuse_forget_in.
type ForgetIn struct {
	_       structs.HostLayout
	Nlookup uint64
}

// ForgetOne is struct fuse_forget_one.
type ForgetOne struct {
	_       structs.HostLayout
	NodeID  uint64
	Nlookup uint64
}

// BatchForgetIn is struct fuse_batch_forget_in.
type BatchForgetIn struct {
	_     structs.HostLayout
	Count uint32
	_     uint32 // dummy
}

// GetattrIn is struct fuse_getattr_in.
type GetattrIn struct {
	_            structs.HostLayout
	GetattrFlags GetattrFlags
	_            uint32 // dummy
	Fh           uint64
}

// AttrOut is struct fuse_attr_out.
type AttrOut struct {
	_             structs.HostLayout
	AttrValid     uint64 // seconds
	AttrValidNsec uint32
	_             uint32 // dummy
	Attr          Attr
}

// StatxIn is struct fuse_statx_in.
type StatxIn struct {
	_            structs.HostLayout
	GetattrFlags GetattrFlags
	_            uint32 // reserved
	Fh           uint64
	SxFlags      uint32
	SxMask       uint32
}

// StatxOut is struct fuse_statx_out.
type StatxOut struct {
	_             structs.HostLayout
	AttrValid     uint64
	AttrValidNsec uint32
	Flags         uint32
	_             [2]uint64 // spare
	Stat          Statx
}

// MknodIn is struct fuse_mknod_in.
type MknodIn struct {
	_     structs.HostLayout
	Mode  uint32
	Rdev  uint32
	Umask uint32
	_     uint32 // padding
}

// MkdirIn is struct fuse_mkdir_in.
type MkdirIn struct {
	_     structs.HostLayout
	Mode  uint32
	Umask uint32
}

// RenameIn is struct fuse_rename_in.
type RenameIn struct {
	_      structs.HostLayout
	Newdir uint64
}

// Rename2In is struct fuse_rename2_in.
type Rename2In struct {
	_      structs.HostLayout
	Newdir uint64
	Flags  uint32 // RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT
	_      uint32 // padding
}

// LinkIn is struct fuse_link_in.
type LinkIn struct {
	_         structs.HostLayout
	OldNodeID uint64 // oldnodeid
}

// SetattrIn is struct fuse_setattr_in.
type SetattrIn struct {
	_         structs.HostLayout
	Valid     SetattrValid
	_         uint32 // padding
	Fh        uint64
	Size      uint64
	LockOwner uint64
	Atime     uint64
	Mtime     uint64
	Ctime     uint64
	AtimeNsec uint32
	MtimeNsec uint32
	CtimeNsec uint32
	Mode      uint32
	_         uint32 // unused4
	UID       uint32
	GID       uint32
	_         uint32 // unused5
}

// OpenIn is struct fuse_open_in.
type OpenIn struct {
	_         structs.HostLayout
	Flags     uint32 // open(2) flags
	OpenFlags OpenInFlags
}

// CreateIn is struct fuse_create_in (CREATE and TMPFILE).
type CreateIn struct {
	_         structs.HostLayout
	Flags     uint32 // open(2) flags
	Mode      uint32
	Umask     uint32
	OpenFlags OpenInFlags
}

// OpenOut is struct fuse_open_out.
type OpenOut struct {
	_         structs.HostLayout
	Fh        uint64
	OpenFlags OpenOutFlags
	BackingID int32 // with FOPEN_PASSTHROUGH (7.40)
}

// ReleaseIn is struct fuse_release_in (RELEASE and RELEASEDIR).
type ReleaseIn struct {
	_            structs.HostLayout
	Fh           uint64
	Flags        uint32
	ReleaseFlags ReleaseFlags
	LockOwner    uint64
}

// FlushIn is struct fuse_flush_in.
type FlushIn struct {
	_         structs.HostLayout
	Fh        uint64
	_         uint32 // unused
	_         uint32 // padding
	LockOwner uint64
}

// ReadIn is struct fuse_read_in (READ, READDIR, READDIRPLUS).
type ReadIn struct {
	_         structs.HostLayout
	Fh        uint64
	Offset    uint64
	Size      uint32
	ReadFlags ReadFlags
	LockOwner uint64
	Flags     uint32 // file open flags
	_         uint32 // padding
}

// WriteIn is struct fuse_write_in.
type WriteIn struct {
	_          structs.HostLayout
	Fh         uint64
	Offset     uint64
	Size       uint32
	WriteFlags WriteFlags
	LockOwner  uint64
	Flags      uint32 // file open flags
	_          uint32 // padding
}

// WriteOut is struct fuse_write_out (WRITE, COPY_FILE_RANGE).
type WriteOut struct {
	_    structs.HostLayout
	Size uint32
	_    uint32 // padding
}

// FsyncIn is struct fuse_fsync_in (FSYNC, FSYNCDIR).
type FsyncIn struct {
	_          structs.HostLayout
	Fh         uint64
	FsyncFlags FsyncFlags
	_          uint32 // padding
}

// SetxattrIn is struct fuse_setxattr_in. Only its first
// CompatSetxattrInSize bytes are sent without FUSE_SETXATTR_EXT.
type SetxattrIn struct {
	_             structs.HostLayout
	Size          uint32
	Flags         uint32 // XATTR_CREATE, XATTR_REPLACE
	SetxattrFlags SetxattrFlags
	_             uint32 // padding
}

// GetxattrIn is struct fuse_getxattr_in (GETXATTR, LISTXATTR).
type GetxattrIn struct {
	_    structs.HostLayout
	Size uint32
	_    uint32 // padding
}

// GetxattrOut is struct fuse_getxattr_out.
type GetxattrOut struct {
	_    structs.HostLayout
	Size uint32
	_    uint32 // padding
}

// LkIn is struct fuse_lk_in (GETLK, SETLK, SETLKW).
type LkIn struct {
	_       structs.HostLayout
	Fh      uint64
	Owner   uint64
	Lk      FileLock
	LkFlags LkFlags
	_       uint32 // padding
}

// LkOut is struct fuse_lk_out.
type LkOut struct {
	_  structs.HostLayout
	Lk FileLock
}

// AccessIn is struct fuse_access_in.
type AccessIn struct {
	_    structs.HostLayout
	Mask uint32
	_    uint32 // padding
}

// InitIn is struct fuse_init_in. Kernels before 7.36 send only the first
// CompatInitInSize bytes.
type InitIn struct {
	_            structs.HostLayout
	Major        uint32
	Minor        uint32
	MaxReadahead uint32
	Flags        uint32
	Flags2       uint32     // with FUSE_INIT_EXT
	_            [11]uint32 // unused
}

// InitOut is struct fuse_init_out.
type InitOut struct {
	_                   structs.HostLayout
	Major               uint32
	Minor               uint32
	MaxReadahead        uint32
	Flags               uint32
	MaxBackground       uint16
	CongestionThreshold uint16
	MaxWrite            uint32
	TimeGran            uint32
	MaxPages            uint16
	MapAlignment        uint16
	Flags2              uint32
	MaxStackDepth       uint32
	RequestTimeout      uint16
	_                   [11]uint16 // unused
}

// CuseInitIn is struct cuse_init_in.
type CuseInitIn struct {
	_     structs.HostLayout
	Major uint32
	Minor uint32
	_     uint32 // unused
	Flags uint32
}

// CuseInitOut is struct cuse_init_out.
type CuseInitOut struct {
	_        structs.HostLayout
	Major    uint32
	Minor    uint32
	_        uint32 // unused
	Flags    uint32
	MaxRead  uint32
	MaxWrite uint32
	DevMajor uint32
	DevMinor uint32
	_        [10]uint32 // spare
}

// InterruptIn is struct fuse_interrupt_in.
type InterruptIn struct {
	_      structs.HostLayout
	Unique uint64 // of the request to interrupt
}

// BmapIn is struct fuse_bmap_in.
type BmapIn struct {
	_         structs.HostLayout
	Block     uint64
	Blocksize uint32
	_         uint32 // padding
}

// BmapOut is struct fuse_bmap_out.
type BmapOut struct {
	_     structs.HostLayout
	Block uint64
}

// IoctlIn is struct fuse_ioctl_in.
type IoctlIn struct {
	_       structs.HostLayout
	Fh      uint64
	Flags   IoctlFlags
	Cmd     uint32
	Arg     uint64
	InSize  uint32
	OutSize uint32
}

// IoctlIovec is struct fuse_ioctl_iovec.
type IoctlIovec struct {
	_    structs.HostLayout
	Base uint64
	Len  uint64
}

// IoctlOut is struct fuse_ioctl_out.
type IoctlOut struct {
	_       structs.HostLayout
	Result  int32
	Flags   IoctlFlags
	InIovs  uint32
	OutIovs uint32
}

// PollIn is struct fuse_poll_in.
type PollIn struct {
	_      structs.HostLayout
	Fh     uint64
	Kh     uint64
	Flags  PollFlags
	Events uint32
}

// PollOut is struct fuse_poll_out.
type PollOut struct {
	_       structs.HostLayout
	Revents uint32
	_       uint32 // padding
}

// NotifyPollWakeupOut is struct fuse_notify_poll_wakeup_out.
type NotifyPollWakeupOut struct {
	_  structs.HostLayout
	Kh uint64
}

// FallocateIn is struct fuse_fallocate_in.
type FallocateIn struct {
	_      structs.HostLayout
	Fh     uint64
	Offset uint64
	Length uint64
	Mode   uint32
	_      uint32 // padding
}

// Dirent is struct fuse_dirent without its name, which follows at
// NameOffset and is not NUL-terminated; the record is padded to
// DirentRecordSize(Namelen).
type Dirent struct {
	_       structs.HostLayout
	Ino     uint64
	Off     uint64 // cookie of the next entry
	Namelen uint32
	Type    uint32 // DT_*
}

// Direntplus is struct fuse_direntplus without the name, which follows at
// NameOffsetDirentplus; the record is padded to DirentplusRecordSize(Namelen).
type Direntplus struct {
	_        structs.HostLayout
	EntryOut EntryOut
	Dirent   Dirent
}

// NotifyInvalInodeOut is struct fuse_notify_inval_inode_out.
type NotifyInvalInodeOut struct {
	_   structs.HostLayout
	Ino uint64
	Off int64
	Len int64
}

// NotifyInvalEntryOut is struct fuse_notify_inval_entry_out; the name and a
// NUL follow.
type NotifyInvalEntryOut struct {
	_       structs.HostLayout
	Parent  uint64
	Namelen uint32
	Flags   uint32 // FUSE_EXPIRE_ONLY
}

// NotifyDeleteOut is struct fuse_notify_delete_out; the name and a NUL
// follow.
type NotifyDeleteOut struct {
	_       structs.HostLayout
	Parent  uint64
	Child   uint64
	Namelen uint32
	_       uint32 // padding
}

// NotifyStoreOut is struct fuse_notify_store_out; Size data bytes follow.
type NotifyStoreOut struct {
	_      structs.HostLayout
	NodeID uint64
	Offset uint64
	Size   uint32
	_      uint32 // padding
}

// NotifyRetrieveOut is struct fuse_notify_retrieve_out.
type NotifyRetrieveOut struct {
	_            structs.HostLayout
	NotifyUnique uint64
	NodeID       uint64
	Offset       uint64
	Size         uint32
	_            uint32 // padding
}

// NotifyRetrieveIn is struct fuse_notify_retrieve_in, the argument of
// NOTIFY_REPLY; it matches the size of fuse_write_in.
type NotifyRetrieveIn struct {
	_      structs.HostLayout
	_      uint64 // dummy1
	Offset uint64
	Size   uint32
	_      uint32 // dummy2
	_      uint64 // dummy3
	_      uint64 // dummy4
}

// NotifyPruneOut is struct fuse_notify_prune_out; Count u64 node IDs
// follow.
type NotifyPruneOut struct {
	_     structs.HostLayout
	Count uint32
	_     uint32 // padding
	_     uint64 // spare
}

// BackingMap is struct fuse_backing_map, the argument of
// FUSE_DEV_IOC_BACKING_OPEN. Flags and the padding must be 0.
type BackingMap struct {
	_     structs.HostLayout
	Fd    int32
	Flags uint32
	_     uint64 // padding
}

// LseekIn is struct fuse_lseek_in.
type LseekIn struct {
	_      structs.HostLayout
	Fh     uint64
	Offset uint64
	Whence uint32
	_      uint32 // padding
}

// LseekOut is struct fuse_lseek_out.
type LseekOut struct {
	_      structs.HostLayout
	Offset uint64
}

// CopyFileRangeIn is struct fuse_copy_file_range_in (COPY_FILE_RANGE and
// COPY_FILE_RANGE_64).
type CopyFileRangeIn struct {
	_         structs.HostLayout
	FhIn      uint64
	OffIn     uint64
	NodeIDOut uint64
	FhOut     uint64
	OffOut    uint64
	Len       uint64
	Flags     uint64
}

// CopyFileRangeOut is struct fuse_copy_file_range_out (COPY_FILE_RANGE_64).
type CopyFileRangeOut struct {
	_           structs.HostLayout
	BytesCopied uint64
}

// SetupmappingIn is struct fuse_setupmapping_in.
type SetupmappingIn struct {
	_       structs.HostLayout
	Fh      uint64 // an already open handle
	Foffset uint64 // offset into the file
	Len     uint64
	Flags   SetupmappingFlags
	Moffset uint64 // offset into the DAX window
}

// RemovemappingIn is struct fuse_removemapping_in; Count
// RemovemappingOne follow (unaligned, at offset 44 of the request).
type RemovemappingIn struct {
	_     structs.HostLayout
	Count uint32
}

// RemovemappingOne is struct fuse_removemapping_one.
type RemovemappingOne struct {
	_       structs.HostLayout
	Moffset uint64
	Len     uint64
}

// SyncfsIn is struct fuse_syncfs_in.
type SyncfsIn struct {
	_ structs.HostLayout
	_ uint64 // padding
}

// Secctx is struct fuse_secctx; a NUL-terminated xattr name and Size
// context bytes follow.
type Secctx struct {
	_    structs.HostLayout
	Size uint32
	_    uint32 // padding
}

// SecctxHeader is struct fuse_secctx_header.
type SecctxHeader struct {
	_        structs.HostLayout
	Size     uint32
	NrSecctx uint32
}

// ExtHeader is struct fuse_ext_header, in front of each request extension.
type ExtHeader struct {
	_    structs.HostLayout
	Size uint32 // including this header, 8-aligned
	Type uint32 // enum fuse_ext_type
}

// SuppGroups is struct fuse_supp_groups; NrGroups u32 group IDs follow.
type SuppGroups struct {
	_        structs.HostLayout
	NrGroups uint32
}

// UringEntInOut is struct fuse_uring_ent_in_out.
type UringEntInOut struct {
	_         structs.HostLayout
	Flags     uint64
	CommitID  uint64 // the request's unique, echoed in COMMIT_AND_FETCH
	PayloadSz uint32
	_         uint32 // padding
	_         uint64 // reserved
}

// UringReqHeader is struct fuse_uring_req_header, the header buffer
// (iov[0]) of an io_uring ring entry.
type UringReqHeader struct {
	_            structs.HostLayout
	InOut        [UringInOutHeaderSize]byte // fuse_in_header in, fuse_out_header out
	OpIn         [UringOpInOutSize]byte     // the request's first argument
	RingEntInOut UringEntInOut
}

// UringCmdReq is struct fuse_uring_cmd_req, in the SQE command area.
type UringCmdReq struct {
	_        structs.HostLayout
	Flags    uint64
	CommitID uint64
	QID      uint16
	_        [6]uint8 // padding
}
