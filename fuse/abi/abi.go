package abi

// Protocol version this package describes.
const (
	// KernelVersion is FUSE_KERNEL_VERSION, the protocol major.
	KernelVersion = 7
	// KernelMinorVersion is FUSE_KERNEL_MINOR_VERSION, the newest minor.
	KernelMinorVersion = 45
)

// RootID is FUSE_ROOT_ID, the node ID of the root directory.
const RootID = 1

// MinReadBuffer is FUSE_MIN_READ_BUFFER: a read of /dev/fuse needs a buffer
// at least this large.
const MinReadBuffer = 8192

// IntReqBit is FUSE_INT_REQ_BIT (kernel-internal, fs/fuse/fuse_dev_i.h): set
// in in_header.unique of an INTERRUPT request. Ordinary uniques are even.
const IntReqBit = 1

// UniqueResend is FUSE_UNIQUE_RESEND: bit 63 of in_header.unique marks a
// request re-sent after FUSE_NOTIFY_RESEND.
const UniqueResend = 1 << 63

// InvalidUIDGID is FUSE_INVALID_UIDGID: the uid/gid of a request that carries
// none (with FUSE_ALLOW_IDMAP).
const InvalidUIDGID = 0xFFFFFFFF

// NameMax is FUSE_NAME_MAX (PATH_MAX - 1): the longest name the kernel
// accepts in a dirent or notification since Linux 6.15. NameLowMax is
// FUSE_NAME_LOW_MAX, the limit before that (and without MAX_PAGES > 1).
const (
	NameMax    = 4095
	NameLowMax = 1024
)

// DefaultMaxPagesPerReq is FUSE_DEFAULT_MAX_PAGES_PER_REQ, the request page
// limit without FUSE_MAX_PAGES; MaxMaxPages is FUSE_MAX_MAX_PAGES, the
// default of the fs.fuse.max_pages_limit sysctl.
const (
	DefaultMaxPagesPerReq = 32
	MaxMaxPages           = 256
)

// MaxStackDepth is FILESYSTEM_MAX_STACK_DEPTH: the largest
// init_out.max_stack_depth the kernel accepts with FUSE_PASSTHROUGH.
const MaxStackDepth = 2

// IoctlMaxIOV is FUSE_IOCTL_MAX_IOV: the most in_iovs + out_iovs of a
// retried ioctl.
const IoctlMaxIOV = 256

// CuseInitInfoMax is CUSE_INIT_INFO_MAX.
const CuseInitInfoMax = 4096

// Extension types (enum fuse_ext_type): types 0..MaxNrSecctx are a
// security-context block, ExtGroups the supplementary groups.
const (
	// MaxNrSecctx is FUSE_MAX_NR_SECCTX.
	MaxNrSecctx = 31
	// ExtGroups is FUSE_EXT_GROUPS.
	ExtGroups = 32
)

// Device ioctl numbers (generic _IOC encoding: x86, arm64, riscv). The
// calls themselves live in internal/sys.
const (
	// DevIocMagic is FUSE_DEV_IOC_MAGIC.
	DevIocMagic = 229
	// DevIocClone is FUSE_DEV_IOC_CLONE, _IOR(229, 0, uint32_t).
	DevIocClone = 0x8004E500
	// DevIocBackingOpen is FUSE_DEV_IOC_BACKING_OPEN,
	// _IOW(229, 1, struct fuse_backing_map).
	DevIocBackingOpen = 0x4010E501
	// DevIocBackingClose is FUSE_DEV_IOC_BACKING_CLOSE, _IOW(229, 2, uint32_t).
	DevIocBackingClose = 0x4004E502
	// DevIocSyncInit is FUSE_DEV_IOC_SYNC_INIT, _IO(229, 3) (Linux 6.18).
	DevIocSyncInit = 0xE503
)

// FUSE over io_uring (7.42).
const (
	// UringInOutHeaderSize is FUSE_URING_IN_OUT_HEADER_SZ.
	UringInOutHeaderSize = 128
	// UringOpInOutSize is FUSE_URING_OP_IN_OUT_SZ.
	UringOpInOutSize = 128
)

// UringCmd is enum fuse_uring_cmd, the cmd_op of an IORING_OP_URING_CMD SQE.
type UringCmd uint32

const (
	// UringCmdInvalid is FUSE_IO_URING_CMD_INVALID.
	UringCmdInvalid UringCmd = 0
	// UringCmdRegister is FUSE_IO_URING_CMD_REGISTER: register a ring entry.
	UringCmdRegister UringCmd = 1
	// UringCmdCommitAndFetch is FUSE_IO_URING_CMD_COMMIT_AND_FETCH: commit a
	// reply and re-arm the entry.
	UringCmdCommitAndFetch UringCmd = 2
)

// DirentAlign is FUSE_DIRENT_ALIGN / FUSE_REC_ALIGN: the size of a dirent
// record rounded up to 8 bytes.
func DirentAlign(n int) int { return (n + 7) &^ 7 }

// DirentRecordSize is FUSE_DIRENT_SIZE for a name of namelen bytes.
func DirentRecordSize(namelen int) int { return DirentAlign(NameOffset + namelen) }

// DirentplusRecordSize is FUSE_DIRENTPLUS_SIZE for a name of namelen bytes.
func DirentplusRecordSize(namelen int) int { return DirentAlign(NameOffsetDirentplus + namelen) }

// NameOffset is FUSE_NAME_OFFSET, where the name starts in a fuse_dirent;
// NameOffsetDirentplus is FUSE_NAME_OFFSET_DIRENTPLUS.
const (
	NameOffset           = DirentHeaderSize
	NameOffsetDirentplus = EntryOutSize + DirentHeaderSize
)
