package probe

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// opNames are the FUSE opcodes' names (include/uapi/linux/fuse.h). probe
// keeps its own table: it must not import the data plane's fuse/abi.
var opNames = map[uint32]string{
	1: "LOOKUP", 2: "FORGET", 3: "GETATTR", 4: "SETATTR", 5: "READLINK",
	6: "SYMLINK", 8: "MKNOD", 9: "MKDIR", 10: "UNLINK", 11: "RMDIR",
	12: "RENAME", 13: "LINK", 14: "OPEN", 15: "READ", 16: "WRITE",
	17: "STATFS", 18: "RELEASE", 20: "FSYNC", 21: "SETXATTR", 22: "GETXATTR",
	23: "LISTXATTR", 24: "REMOVEXATTR", 25: "FLUSH", 26: "INIT", 27: "OPENDIR",
	28: "READDIR", 29: "RELEASEDIR", 30: "FSYNCDIR", 31: "GETLK", 32: "SETLK",
	33: "SETLKW", 34: "ACCESS", 35: "CREATE", 36: "INTERRUPT", 37: "BMAP",
	38: "DESTROY", 39: "IOCTL", 40: "POLL", 41: "NOTIFY_REPLY", 42: "BATCH_FORGET",
	43: "FALLOCATE", 44: "READDIRPLUS", 45: "RENAME2", 46: "LSEEK",
	47: "COPY_FILE_RANGE", 48: "SETUPMAPPING", 49: "REMOVEMAPPING", 50: "SYNCFS",
	51: "TMPFILE", 52: "STATX", 53: "COPY_FILE_RANGE_64", 63: "OTHER",
}

// OpName names a FUSE opcode.
func OpName(op uint32) string {
	if n, ok := opNames[op]; ok {
		return n
	}
	return fmt.Sprintf("OP_%d", op)
}

// sysNames names the system calls a file server makes, for this GOARCH
// (the numbers differ between architectures; unix.SYS_* are per-arch).
var sysNames = map[uint32]string{
	unix.SYS_READ: "read", unix.SYS_WRITE: "write", unix.SYS_PREAD64: "pread64",
	unix.SYS_PWRITE64: "pwrite64", unix.SYS_READV: "readv", unix.SYS_WRITEV: "writev",
	unix.SYS_PREADV: "preadv", unix.SYS_PWRITEV: "pwritev", unix.SYS_PREADV2: "preadv2",
	unix.SYS_PWRITEV2: "pwritev2", unix.SYS_SPLICE: "splice", unix.SYS_VMSPLICE: "vmsplice",
	unix.SYS_TEE: "tee", unix.SYS_OPENAT: "openat", unix.SYS_OPENAT2: "openat2",
	unix.SYS_CLOSE: "close", unix.SYS_FSTATFS: "fstatfs", unix.SYS_STATX: "statx",
	unix.SYS_GETDENTS64: "getdents64", unix.SYS_FSYNC: "fsync", unix.SYS_FDATASYNC: "fdatasync",
	unix.SYS_FALLOCATE: "fallocate", unix.SYS_COPY_FILE_RANGE: "copy_file_range",
	unix.SYS_IOCTL: "ioctl", unix.SYS_IO_URING_ENTER: "io_uring_enter",
	unix.SYS_EPOLL_PWAIT: "epoll_pwait", unix.SYS_PPOLL: "ppoll", unix.SYS_FUTEX: "futex",
	unix.SYS_RENAMEAT2: "renameat2", unix.SYS_UNLINKAT: "unlinkat", unix.SYS_MKDIRAT: "mkdirat",
	unix.SYS_LINKAT: "linkat", unix.SYS_SYMLINKAT: "symlinkat", unix.SYS_READLINKAT: "readlinkat",
	unix.SYS_FCHMODAT: "fchmodat", unix.SYS_FCHOWNAT: "fchownat", unix.SYS_UTIMENSAT: "utimensat",
	unix.SYS_FGETXATTR: "fgetxattr", unix.SYS_GETXATTR: "getxattr", unix.SYS_LGETXATTR: "lgetxattr",
	unix.SYS_SETXATTR: "setxattr", unix.SYS_LISTXATTR: "listxattr", unix.SYS_REMOVEXATTR: "removexattr",
	unix.SYS_FCNTL: "fcntl", unix.SYS_FLOCK: "flock", unix.SYS_LSEEK: "lseek",
	unix.SYS_FTRUNCATE: "ftruncate", unix.SYS_MKNODAT: "mknodat", unix.SYS_SYNCFS: "syncfs",
	unix.SYS_SCHED_YIELD: "sched_yield", unix.SYS_NANOSLEEP: "nanosleep", unix.SYS_MMAP: "mmap",
	unix.SYS_MUNMAP: "munmap", unix.SYS_RECVMSG: "recvmsg", unix.SYS_SENDMSG: "sendmsg",
	unix.SYS_EPOLL_CTL: "epoll_ctl", unix.SYS_GETTID: "gettid", unix.SYS_TGKILL: "tgkill",
	unix.SYS_RT_SIGRETURN: "rt_sigreturn", unix.SYS_MADVISE: "madvise", unix.SYS_SETFSUID: "setfsuid",
	unix.SYS_SETFSGID: "setfsgid", unix.SYS_NEWFSTATAT: "newfstatat",
}

// SyscallName names a system call number of this architecture.
func SyscallName(nr uint32) string {
	if n, ok := sysNames[nr]; ok {
		return n
	}
	return fmt.Sprintf("sys_%d", nr)
}

// p9Names are the 9P2000.L T-messages' names by type/2, the index the 9P
// probe counts under (the types are even and below 128).
var p9Names = map[uint32]string{
	8 / 2: "Tstatfs", 12 / 2: "Tlopen", 14 / 2: "Tlcreate", 16 / 2: "Tsymlink",
	18 / 2: "Tmknod", 20 / 2: "Trename", 22 / 2: "Treadlink", 24 / 2: "Tgetattr",
	26 / 2: "Tsetattr", 30 / 2: "Txattrwalk", 32 / 2: "Txattrcreate",
	40 / 2: "Treaddir", 50 / 2: "Tfsync", 52 / 2: "Tlock", 54 / 2: "Tgetlock",
	70 / 2: "Tlink", 72 / 2: "Tmkdir", 74 / 2: "Trenameat", 76 / 2: "Tunlinkat",
	100 / 2: "Tversion", 102 / 2: "Tauth", 104 / 2: "Tattach", 108 / 2: "Tflush",
	110 / 2: "Twalk", 112 / 2: "Topen", 114 / 2: "Tcreate", 116 / 2: "Tread",
	118 / 2: "Twrite", 120 / 2: "Tclunk", 122 / 2: "Tremove", 124 / 2: "Tstat",
	126 / 2: "Twstat",
}

// P9Name names a 9P message type index (type/2).
func P9Name(op uint32) string {
	if n, ok := p9Names[op]; ok {
		return n
	}
	return fmt.Sprintf("T%d", op*2)
}
