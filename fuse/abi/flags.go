package abi

import (
	"math/bits"
	"strings"
)

// InitFlags is the 64-bit INIT capability set: fuse_init_in/out.flags in
// the low 32 bits and, with InitExt, flags2 in the high 32 bits.
type InitFlags uint64

const (
	InitAsyncRead         InitFlags = 1 << 0  // FUSE_ASYNC_READ
	InitPosixLocks        InitFlags = 1 << 1  // FUSE_POSIX_LOCKS
	InitFileOps           InitFlags = 1 << 2  // FUSE_FILE_OPS (never implemented)
	InitAtomicOTrunc      InitFlags = 1 << 3  // FUSE_ATOMIC_O_TRUNC
	InitExportSupport     InitFlags = 1 << 4  // FUSE_EXPORT_SUPPORT
	InitBigWrites         InitFlags = 1 << 5  // FUSE_BIG_WRITES
	InitDontMask          InitFlags = 1 << 6  // FUSE_DONT_MASK
	InitSpliceWrite       InitFlags = 1 << 7  // FUSE_SPLICE_WRITE
	InitSpliceMove        InitFlags = 1 << 8  // FUSE_SPLICE_MOVE
	InitSpliceRead        InitFlags = 1 << 9  // FUSE_SPLICE_READ
	InitFlockLocks        InitFlags = 1 << 10 // FUSE_FLOCK_LOCKS
	InitHasIoctlDir       InitFlags = 1 << 11 // FUSE_HAS_IOCTL_DIR
	InitAutoInvalData     InitFlags = 1 << 12 // FUSE_AUTO_INVAL_DATA
	InitDoReaddirplus     InitFlags = 1 << 13 // FUSE_DO_READDIRPLUS
	InitReaddirplusAuto   InitFlags = 1 << 14 // FUSE_READDIRPLUS_AUTO
	InitAsyncDIO          InitFlags = 1 << 15 // FUSE_ASYNC_DIO
	InitWritebackCache    InitFlags = 1 << 16 // FUSE_WRITEBACK_CACHE
	InitNoOpenSupport     InitFlags = 1 << 17 // FUSE_NO_OPEN_SUPPORT
	InitParallelDirops    InitFlags = 1 << 18 // FUSE_PARALLEL_DIROPS
	InitHandleKillpriv    InitFlags = 1 << 19 // FUSE_HANDLE_KILLPRIV
	InitPosixACL          InitFlags = 1 << 20 // FUSE_POSIX_ACL
	InitAbortError        InitFlags = 1 << 21 // FUSE_ABORT_ERROR
	InitMaxPages          InitFlags = 1 << 22 // FUSE_MAX_PAGES
	InitCacheSymlinks     InitFlags = 1 << 23 // FUSE_CACHE_SYMLINKS
	InitNoOpendirSupport  InitFlags = 1 << 24 // FUSE_NO_OPENDIR_SUPPORT
	InitExplicitInvalData InitFlags = 1 << 25 // FUSE_EXPLICIT_INVAL_DATA
	InitMapAlignment      InitFlags = 1 << 26 // FUSE_MAP_ALIGNMENT
	InitSubmounts         InitFlags = 1 << 27 // FUSE_SUBMOUNTS
	InitHandleKillprivV2  InitFlags = 1 << 28 // FUSE_HANDLE_KILLPRIV_V2
	InitSetxattrExt       InitFlags = 1 << 29 // FUSE_SETXATTR_EXT
	InitExt               InitFlags = 1 << 30 // FUSE_INIT_EXT: flags2 is valid
	InitReserved          InitFlags = 1 << 31 // FUSE_INIT_RESERVED
	InitSecurityCtx       InitFlags = 1 << 32 // FUSE_SECURITY_CTX
	InitHasInodeDAX       InitFlags = 1 << 33 // FUSE_HAS_INODE_DAX
	InitCreateSuppGroup   InitFlags = 1 << 34 // FUSE_CREATE_SUPP_GROUP
	InitHasExpireOnly     InitFlags = 1 << 35 // FUSE_HAS_EXPIRE_ONLY
	InitDirectIOAllowMmap InitFlags = 1 << 36 // FUSE_DIRECT_IO_ALLOW_MMAP
	InitPassthrough       InitFlags = 1 << 37 // FUSE_PASSTHROUGH
	InitNoExportSupport   InitFlags = 1 << 38 // FUSE_NO_EXPORT_SUPPORT
	InitHasResend         InitFlags = 1 << 39 // FUSE_HAS_RESEND
	InitAllowIdmap        InitFlags = 1 << 40 // FUSE_ALLOW_IDMAP
	InitOverIoUring       InitFlags = 1 << 41 // FUSE_OVER_IO_URING
	InitRequestTimeout    InitFlags = 1 << 42 // FUSE_REQUEST_TIMEOUT

	// InitDirectIORelax is FUSE_DIRECT_IO_RELAX, the old name of
	// FUSE_DIRECT_IO_ALLOW_MMAP.
	InitDirectIORelax = InitDirectIOAllowMmap
)

var initNames = [...]string{
	"ASYNC_READ", "POSIX_LOCKS", "FILE_OPS", "ATOMIC_O_TRUNC",
	"EXPORT_SUPPORT", "BIG_WRITES", "DONT_MASK", "SPLICE_WRITE",
	"SPLICE_MOVE", "SPLICE_READ", "FLOCK_LOCKS", "HAS_IOCTL_DIR",
	"AUTO_INVAL_DATA", "DO_READDIRPLUS", "READDIRPLUS_AUTO", "ASYNC_DIO",
	"WRITEBACK_CACHE", "NO_OPEN_SUPPORT", "PARALLEL_DIROPS", "HANDLE_KILLPRIV",
	"POSIX_ACL", "ABORT_ERROR", "MAX_PAGES", "CACHE_SYMLINKS",
	"NO_OPENDIR_SUPPORT", "EXPLICIT_INVAL_DATA", "MAP_ALIGNMENT", "SUBMOUNTS",
	"HANDLE_KILLPRIV_V2", "SETXATTR_EXT", "INIT_EXT", "INIT_RESERVED",
	"SECURITY_CTX", "HAS_INODE_DAX", "CREATE_SUPP_GROUP", "HAS_EXPIRE_ONLY",
	"DIRECT_IO_ALLOW_MMAP", "PASSTHROUGH", "NO_EXPORT_SUPPORT", "HAS_RESEND",
	"ALLOW_IDMAP", "OVER_IO_URING", "REQUEST_TIMEOUT",
}

// MakeInitFlags joins fuse_init_in/out.flags and flags2.
func MakeInitFlags(flags, flags2 uint32) InitFlags {
	return InitFlags(flags) | InitFlags(flags2)<<32
}

// Split returns the flags and flags2 words.
func (f InitFlags) Split() (flags, flags2 uint32) { return uint32(f), uint32(f >> 32) }

// String lists the set bits by kernel name, "|"-separated; bits the
// protocol does not define print as "1<<n". For logs, not the hot path.
func (f InitFlags) String() string { return flagString(uint64(f), initNames[:]) }

func flagString(v uint64, names []string) string {
	if v == 0 {
		return "0"
	}
	var b strings.Builder
	for v != 0 {
		i := bits.TrailingZeros64(v)
		v &^= 1 << i
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		if i < len(names) && names[i] != "" {
			b.WriteString(names[i])
		} else {
			b.WriteString("1<<")
			b.WriteString(itoa(i))
		}
	}
	return b.String()
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return string(rune('0'+i/10)) + string(rune('0'+i%10))
}

// SetattrValid is the fuse_setattr_in.valid set (FATTR_*).
type SetattrValid uint32

const (
	FattrMode        SetattrValid = 1 << 0  // FATTR_MODE
	FattrUID         SetattrValid = 1 << 1  // FATTR_UID
	FattrGID         SetattrValid = 1 << 2  // FATTR_GID
	FattrSize        SetattrValid = 1 << 3  // FATTR_SIZE
	FattrAtime       SetattrValid = 1 << 4  // FATTR_ATIME
	FattrMtime       SetattrValid = 1 << 5  // FATTR_MTIME
	FattrFh          SetattrValid = 1 << 6  // FATTR_FH
	FattrAtimeNow    SetattrValid = 1 << 7  // FATTR_ATIME_NOW
	FattrMtimeNow    SetattrValid = 1 << 8  // FATTR_MTIME_NOW
	FattrLockOwner   SetattrValid = 1 << 9  // FATTR_LOCKOWNER
	FattrCtime       SetattrValid = 1 << 10 // FATTR_CTIME
	FattrKillSuidGID SetattrValid = 1 << 11 // FATTR_KILL_SUIDGID

	// FattrAll is every FATTR_* bit 7.45 defines.
	FattrAll SetattrValid = 1<<12 - 1
)

// OpenOutFlags is the fuse_open_out.open_flags set (FOPEN_*).
type OpenOutFlags uint32

const (
	FopenDirectIO             OpenOutFlags = 1 << 0 // FOPEN_DIRECT_IO
	FopenKeepCache            OpenOutFlags = 1 << 1 // FOPEN_KEEP_CACHE
	FopenNonseekable          OpenOutFlags = 1 << 2 // FOPEN_NONSEEKABLE
	FopenCacheDir             OpenOutFlags = 1 << 3 // FOPEN_CACHE_DIR
	FopenStream               OpenOutFlags = 1 << 4 // FOPEN_STREAM
	FopenNoflush              OpenOutFlags = 1 << 5 // FOPEN_NOFLUSH
	FopenParallelDirectWrites OpenOutFlags = 1 << 6 // FOPEN_PARALLEL_DIRECT_WRITES
	FopenPassthrough          OpenOutFlags = 1 << 7 // FOPEN_PASSTHROUGH

	// FopenAll is every FOPEN_* bit 7.45 defines.
	FopenAll OpenOutFlags = 1<<8 - 1
)

// OpenInFlags is the fuse_open_in/fuse_create_in.open_flags set
// (FUSE_OPEN_*).
type OpenInFlags uint32

// OpenKillSuidGID is FUSE_OPEN_KILL_SUIDGID.
const OpenKillSuidGID OpenInFlags = 1 << 0

// WriteFlags is the fuse_write_in.write_flags set (FUSE_WRITE_*).
type WriteFlags uint32

const (
	WriteCache       WriteFlags = 1 << 0 // FUSE_WRITE_CACHE: delayed page-cache write, fh guessed
	WriteLockOwner   WriteFlags = 1 << 1 // FUSE_WRITE_LOCKOWNER: lock_owner is valid
	WriteKillSuidGID WriteFlags = 1 << 2 // FUSE_WRITE_KILL_SUIDGID (old name FUSE_WRITE_KILL_PRIV)
)

// ReadFlags is the fuse_read_in.read_flags set (FUSE_READ_*).
type ReadFlags uint32

// ReadLockOwner is FUSE_READ_LOCKOWNER.
const ReadLockOwner ReadFlags = 1 << 1

// ReleaseFlags is the fuse_release_in.release_flags set (FUSE_RELEASE_*).
type ReleaseFlags uint32

const (
	ReleaseFlush       ReleaseFlags = 1 << 0 // FUSE_RELEASE_FLUSH
	ReleaseFlockUnlock ReleaseFlags = 1 << 1 // FUSE_RELEASE_FLOCK_UNLOCK
)

// GetattrFlags is the fuse_getattr_in/fuse_statx_in.getattr_flags set.
type GetattrFlags uint32

// GetattrFh is FUSE_GETATTR_FH: fh is valid.
const GetattrFh GetattrFlags = 1 << 0

// LkFlags is the fuse_lk_in.lk_flags set.
type LkFlags uint32

// LkFlock is FUSE_LK_FLOCK: flock(2) semantics.
const LkFlock LkFlags = 1 << 0

// IoctlFlags is the fuse_ioctl_in/out.flags set (FUSE_IOCTL_*).
type IoctlFlags uint32

const (
	IoctlCompat       IoctlFlags = 1 << 0 // FUSE_IOCTL_COMPAT
	IoctlUnrestricted IoctlFlags = 1 << 1 // FUSE_IOCTL_UNRESTRICTED
	IoctlRetry        IoctlFlags = 1 << 2 // FUSE_IOCTL_RETRY
	Ioctl32Bit        IoctlFlags = 1 << 3 // FUSE_IOCTL_32BIT
	IoctlDir          IoctlFlags = 1 << 4 // FUSE_IOCTL_DIR
	IoctlCompatX32    IoctlFlags = 1 << 5 // FUSE_IOCTL_COMPAT_X32
)

// PollFlags is the fuse_poll_in.flags set.
type PollFlags uint32

// PollScheduleNotify is FUSE_POLL_SCHEDULE_NOTIFY.
const PollScheduleNotify PollFlags = 1 << 0

// FsyncFlags is the fuse_fsync_in.fsync_flags set.
type FsyncFlags uint32

// FsyncFdatasync is FUSE_FSYNC_FDATASYNC.
const FsyncFdatasync FsyncFlags = 1 << 0

// SetupmappingFlags is the fuse_setupmapping_in.flags set.
type SetupmappingFlags uint64

const (
	SetupmappingWrite SetupmappingFlags = 1 << 0 // FUSE_SETUPMAPPING_FLAG_WRITE
	SetupmappingRead  SetupmappingFlags = 1 << 1 // FUSE_SETUPMAPPING_FLAG_READ
)

// SetxattrFlags is the fuse_setxattr_in.setxattr_flags set.
type SetxattrFlags uint32

// SetxattrACLKillSgid is FUSE_SETXATTR_ACL_KILL_SGID.
const SetxattrACLKillSgid SetxattrFlags = 1 << 0

// AttrFlags is the fuse_attr.flags set.
type AttrFlags uint32

const (
	AttrSubmount AttrFlags = 1 << 0 // FUSE_ATTR_SUBMOUNT
	AttrDAX      AttrFlags = 1 << 1 // FUSE_ATTR_DAX
)

// ExpireOnly is FUSE_EXPIRE_ONLY in fuse_notify_inval_entry_out.flags.
const ExpireOnly = 1 << 0

// CuseUnrestrictedIoctl is CUSE_UNRESTRICTED_IOCTL in cuse_init flags.
const CuseUnrestrictedIoctl = 1 << 0
