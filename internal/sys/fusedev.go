package sys

// /dev/fuse ioctls (include/uapi/linux/fuse.h; values for the generic _IOC
// encoding used by x86, arm64 and riscv). See /work/shared/ref/fuse.md §9.
const (
	// FuseDevIocClone is FUSE_DEV_IOC_CLONE, _IOR(229, 0, uint32_t): attach
	// a fresh /dev/fuse fd to the connection of another one.
	FuseDevIocClone = 0x8004e500
	// FuseDevIocBackingOpen is FUSE_DEV_IOC_BACKING_OPEN,
	// _IOW(229, 1, struct fuse_backing_map): register a backing file for
	// FUSE passthrough (Linux 6.9+); returns a positive backing id.
	FuseDevIocBackingOpen = 0x4010e501
	// FuseDevIocBackingClose is FUSE_DEV_IOC_BACKING_CLOSE,
	// _IOW(229, 2, uint32_t): drop the server's reference to a backing id.
	FuseDevIocBackingClose = 0x4004e502
	// FuseDevIocSyncInit is FUSE_DEV_IOC_SYNC_INIT, _IO(229, 3) (Linux
	// 6.18): make mount(2) wait for the INIT reply.
	FuseDevIocSyncInit = 0xe503
)

// FuseBackingMap is struct fuse_backing_map (16 bytes). Flags and the
// padding must be 0.
type FuseBackingMap struct {
	Fd      int32
	Flags   uint32
	Padding uint64
}
