package sys

import (
	"os"
	"syscall"
	"testing"
	"unsafe"

	"github.com/fastfsd/fastfsd/internal/testutil"
	"golang.org/x/sys/unix"
)

func TestFuseBackingMapSize(t *testing.T) {
	if s := unsafe.Sizeof(FuseBackingMap{}); s != 16 {
		t.Fatalf("sizeof(fuse_backing_map) = %d, kernel has 16", s)
	}
}

// openDevFuse opens /dev/fuse as a blocking fd that Go's netpoller does
// not watch (os.OpenFile would add it to the runtime's epoll set). On 6.18
// polling an unattached /dev/fuse fd can sleep in the kernel
// (fuse_dev_poll → fuse_get_dev, notably after SYNC_INIT) while holding
// the epoll set's mutex, and the close's epoll_ctl then waits for ever: a
// clean-clone CI run hung here for the whole 25-minute timeout with one
// thread in fuse_get_dev under epoll_wait and one in do_epoll_ctl.
func openDevFuse() (*os.File, error) {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "/dev/fuse"), nil
}

// An unattached /dev/fuse fd exercises the ioctls' plumbing without a
// mount: the kernel answers with the errno its checks give for that state.
func TestFuseIoctlsUnattached(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	a, err := openDevFuse()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := openDevFuse()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Cloning from an fd that has no connection is refused (EPERM on
	// 6.18: the old fd has no fuse_dev yet; EINVAL on older kernels).
	if e := FuseDevClone(int(b.Fd()), int(a.Fd())); e != syscall.EPERM && e != syscall.EINVAL {
		t.Errorf("clone from unattached fd: errno %v, want EPERM or EINVAL", e)
	}
	// Cloning from something that is not /dev/fuse at all.
	if e := FuseDevClone(int(b.Fd()), int(os.Stdin.Fd())); e == 0 {
		t.Errorf("clone from stdin succeeded")
	}
	// BACKING_OPEN on an fd without a connection is refused, not a crash.
	if _, e := FuseBackingOpen(int(a.Fd()), int(a.Fd())); e == 0 {
		t.Errorf("backing open on unattached fd succeeded")
	}
	if e := FuseBackingClose(int(a.Fd()), 1); e == 0 {
		t.Errorf("backing close on unattached fd succeeded")
	}
}

func TestFuseIoctlAllocs(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	a, err := openDevFuse()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	fd := int(a.Fd())
	if n := testing.AllocsPerRun(100, func() { FuseBackingClose(fd, 1); FuseBackingOpen(fd, fd) }); n != 0 {
		t.Fatalf("ioctl wrappers allocate %v times per call, want 0", n)
	}
}

func TestFuseSyncInit(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	a, err := openDevFuse()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	switch e := FuseSyncInit(int(a.Fd())); e {
	case 0:
	case syscall.ENOTTY:
		t.Skip("kernel without FUSE_DEV_IOC_SYNC_INIT (Linux < 6.18)")
	default:
		t.Fatalf("SYNC_INIT on a fresh fd: %v", e)
	}
}
