package sys

import (
	"os"
	"syscall"
	"testing"
	"unsafe"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

func TestFuseBackingMapSize(t *testing.T) {
	if s := unsafe.Sizeof(FuseBackingMap{}); s != 16 {
		t.Fatalf("sizeof(fuse_backing_map) = %d, kernel has 16", s)
	}
}

// An unattached /dev/fuse fd exercises the ioctls' plumbing without a
// mount: the kernel answers with the errno its checks give for that state.
func TestFuseIoctlsUnattached(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	a, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
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
	a, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
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
	a, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
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
