package abi

import "strconv"

// Opcode is enum fuse_opcode, in_header.opcode.
type Opcode uint32

const (
	OpLookup          Opcode = 1         // FUSE_LOOKUP
	OpForget          Opcode = 2         // FUSE_FORGET (no reply)
	OpGetattr         Opcode = 3         // FUSE_GETATTR
	OpSetattr         Opcode = 4         // FUSE_SETATTR
	OpReadlink        Opcode = 5         // FUSE_READLINK
	OpSymlink         Opcode = 6         // FUSE_SYMLINK
	OpMknod           Opcode = 8         // FUSE_MKNOD
	OpMkdir           Opcode = 9         // FUSE_MKDIR
	OpUnlink          Opcode = 10        // FUSE_UNLINK
	OpRmdir           Opcode = 11        // FUSE_RMDIR
	OpRename          Opcode = 12        // FUSE_RENAME
	OpLink            Opcode = 13        // FUSE_LINK
	OpOpen            Opcode = 14        // FUSE_OPEN
	OpRead            Opcode = 15        // FUSE_READ
	OpWrite           Opcode = 16        // FUSE_WRITE
	OpStatfs          Opcode = 17        // FUSE_STATFS
	OpRelease         Opcode = 18        // FUSE_RELEASE
	OpFsync           Opcode = 20        // FUSE_FSYNC
	OpSetxattr        Opcode = 21        // FUSE_SETXATTR
	OpGetxattr        Opcode = 22        // FUSE_GETXATTR
	OpListxattr       Opcode = 23        // FUSE_LISTXATTR
	OpRemovexattr     Opcode = 24        // FUSE_REMOVEXATTR
	OpFlush           Opcode = 25        // FUSE_FLUSH
	OpInit            Opcode = 26        // FUSE_INIT
	OpOpendir         Opcode = 27        // FUSE_OPENDIR
	OpReaddir         Opcode = 28        // FUSE_READDIR
	OpReleasedir      Opcode = 29        // FUSE_RELEASEDIR
	OpFsyncdir        Opcode = 30        // FUSE_FSYNCDIR
	OpGetlk           Opcode = 31        // FUSE_GETLK
	OpSetlk           Opcode = 32        // FUSE_SETLK
	OpSetlkw          Opcode = 33        // FUSE_SETLKW
	OpAccess          Opcode = 34        // FUSE_ACCESS
	OpCreate          Opcode = 35        // FUSE_CREATE
	OpInterrupt       Opcode = 36        // FUSE_INTERRUPT
	OpBmap            Opcode = 37        // FUSE_BMAP
	OpDestroy         Opcode = 38        // FUSE_DESTROY
	OpIoctl           Opcode = 39        // FUSE_IOCTL
	OpPoll            Opcode = 40        // FUSE_POLL
	OpNotifyReply     Opcode = 41        // FUSE_NOTIFY_REPLY (no reply)
	OpBatchForget     Opcode = 42        // FUSE_BATCH_FORGET (no reply)
	OpFallocate       Opcode = 43        // FUSE_FALLOCATE
	OpReaddirplus     Opcode = 44        // FUSE_READDIRPLUS
	OpRename2         Opcode = 45        // FUSE_RENAME2
	OpLseek           Opcode = 46        // FUSE_LSEEK
	OpCopyFileRange   Opcode = 47        // FUSE_COPY_FILE_RANGE
	OpSetupmapping    Opcode = 48        // FUSE_SETUPMAPPING (virtio-fs DAX)
	OpRemovemapping   Opcode = 49        // FUSE_REMOVEMAPPING (virtio-fs DAX)
	OpSyncfs          Opcode = 50        // FUSE_SYNCFS
	OpTmpfile         Opcode = 51        // FUSE_TMPFILE
	OpStatx           Opcode = 52        // FUSE_STATX
	OpCopyFileRange64 Opcode = 53        // FUSE_COPY_FILE_RANGE_64
	OpCuseInit        Opcode = 4096      // CUSE_INIT
	OpCuseInitBswap   Opcode = 1048576   // CUSE_INIT_BSWAP_RESERVED (CUSE_INIT << 8)
	OpInitBswap       Opcode = 436207616 // FUSE_INIT_BSWAP_RESERVED (FUSE_INIT << 24)
)

var opNames = [...]string{
	OpLookup:          "LOOKUP",
	OpForget:          "FORGET",
	OpGetattr:         "GETATTR",
	OpSetattr:         "SETATTR",
	OpReadlink:        "READLINK",
	OpSymlink:         "SYMLINK",
	OpMknod:           "MKNOD",
	OpMkdir:           "MKDIR",
	OpUnlink:          "UNLINK",
	OpRmdir:           "RMDIR",
	OpRename:          "RENAME",
	OpLink:            "LINK",
	OpOpen:            "OPEN",
	OpRead:            "READ",
	OpWrite:           "WRITE",
	OpStatfs:          "STATFS",
	OpRelease:         "RELEASE",
	OpFsync:           "FSYNC",
	OpSetxattr:        "SETXATTR",
	OpGetxattr:        "GETXATTR",
	OpListxattr:       "LISTXATTR",
	OpRemovexattr:     "REMOVEXATTR",
	OpFlush:           "FLUSH",
	OpInit:            "INIT",
	OpOpendir:         "OPENDIR",
	OpReaddir:         "READDIR",
	OpReleasedir:      "RELEASEDIR",
	OpFsyncdir:        "FSYNCDIR",
	OpGetlk:           "GETLK",
	OpSetlk:           "SETLK",
	OpSetlkw:          "SETLKW",
	OpAccess:          "ACCESS",
	OpCreate:          "CREATE",
	OpInterrupt:       "INTERRUPT",
	OpBmap:            "BMAP",
	OpDestroy:         "DESTROY",
	OpIoctl:           "IOCTL",
	OpPoll:            "POLL",
	OpNotifyReply:     "NOTIFY_REPLY",
	OpBatchForget:     "BATCH_FORGET",
	OpFallocate:       "FALLOCATE",
	OpReaddirplus:     "READDIRPLUS",
	OpRename2:         "RENAME2",
	OpLseek:           "LSEEK",
	OpCopyFileRange:   "COPY_FILE_RANGE",
	OpSetupmapping:    "SETUPMAPPING",
	OpRemovemapping:   "REMOVEMAPPING",
	OpSyncfs:          "SYNCFS",
	OpTmpfile:         "TMPFILE",
	OpStatx:           "STATX",
	OpCopyFileRange64: "COPY_FILE_RANGE_64",
}

// String returns the kernel name without the FUSE_ prefix ("LOOKUP"), or
// "OPCODE(n)" for a number the protocol does not define. It does not
// allocate for defined opcodes.
func (o Opcode) String() string {
	if int(o) < len(opNames) && opNames[o] != "" {
		return opNames[o]
	}
	switch o {
	case OpCuseInit:
		return "CUSE_INIT"
	case OpCuseInitBswap:
		return "CUSE_INIT_BSWAP_RESERVED"
	case OpInitBswap:
		return "FUSE_INIT_BSWAP_RESERVED"
	}
	return "OPCODE(" + strconv.FormatUint(uint64(o), 10) + ")"
}

// NotifyCode is enum fuse_notify_code: out_header.error of an unsolicited
// notification (out_header.unique == 0).
type NotifyCode int32

const (
	NotifyPoll       NotifyCode = 1 // FUSE_NOTIFY_POLL
	NotifyInvalInode NotifyCode = 2 // FUSE_NOTIFY_INVAL_INODE
	NotifyInvalEntry NotifyCode = 3 // FUSE_NOTIFY_INVAL_ENTRY
	NotifyStore      NotifyCode = 4 // FUSE_NOTIFY_STORE
	NotifyRetrieve   NotifyCode = 5 // FUSE_NOTIFY_RETRIEVE
	NotifyDelete     NotifyCode = 6 // FUSE_NOTIFY_DELETE
	NotifyResend     NotifyCode = 7 // FUSE_NOTIFY_RESEND
	NotifyIncEpoch   NotifyCode = 8 // FUSE_NOTIFY_INC_EPOCH
	NotifyPrune      NotifyCode = 9 // FUSE_NOTIFY_PRUNE
)

var notifyNames = [...]string{
	NotifyPoll:       "POLL",
	NotifyInvalInode: "INVAL_INODE",
	NotifyInvalEntry: "INVAL_ENTRY",
	NotifyStore:      "STORE",
	NotifyRetrieve:   "RETRIEVE",
	NotifyDelete:     "DELETE",
	NotifyResend:     "RESEND",
	NotifyIncEpoch:   "INC_EPOCH",
	NotifyPrune:      "PRUNE",
}

// String returns the kernel name without the FUSE_NOTIFY_ prefix.
func (c NotifyCode) String() string {
	if c > 0 && int(c) < len(notifyNames) {
		return notifyNames[c]
	}
	return "NOTIFY(" + strconv.FormatInt(int64(c), 10) + ")"
}
