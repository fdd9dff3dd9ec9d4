package fusedev

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

const fuseSuperMagic = 0x65735546

// rawServe answers requests on fd by hand, without the engine: INIT,
// GETATTR of the root, ENOENT for LOOKUP, ENOSYS otherwise. It returns
// the errno that ended the read loop and counts served requests.
func rawServe(fd int, served *int) syscall.Errno { return rawServeN(fd, served, -1) }

// rawServeN is rawServe that returns 0 after limit requests (< 0: no limit).
func rawServeN(fd int, served *int, limit int) syscall.Errno {
	buf := make([]byte, 1<<20+4096)
	out := make([]byte, 256)
	ne := binary.NativeEndian
	for limit < 0 || *served < limit {
		n, err := unix.Read(fd, buf)
		if err != nil {
			if err == syscall.EINTR || err == syscall.ENOENT {
				continue
			}
			return err.(syscall.Errno)
		}
		h, ok := readHdr(buf[:n])
		if !ok {
			continue
		}
		*served++
		clear(out)
		size := outHeaderSize
		errno := int32(0)
		switch h.opcode {
		case opInit:
			o := out[outHeaderSize:]
			ne.PutUint32(o[0:], 7)
			ne.PutUint32(o[4:], 45)
			ne.PutUint32(o[20:], 1<<20) // max_write
			size += 64
		case 3: // GETATTR
			o := out[outHeaderSize:]
			ne.PutUint64(o[0:], 0) // attr_valid
			a := o[16:]
			ne.PutUint64(a[0:], 1)                      // ino
			ne.PutUint32(a[60:], syscall.S_IFDIR|0o755) // mode
			ne.PutUint32(a[64:], 2)                     // nlink
			ne.PutUint32(a[84:], 4096)                  // blksize
			size += 104
		case 17: // STATFS
			ne.PutUint32(out[outHeaderSize+40:], 4096) // bsize
			ne.PutUint32(out[outHeaderSize+44:], 255)  // namelen
			size += 80
		case 1: // LOOKUP
			errno = -int32(syscall.ENOENT)
		case opForget, opBatchForget, opInterrupt:
			continue
		default:
			errno = -int32(syscall.ENOSYS)
		}
		ne.PutUint32(out[0:], uint32(size))
		ne.PutUint32(out[4:], uint32(errno))
		ne.PutUint64(out[8:], h.unique)
		if _, err := unix.Write(fd, out[:size]); err != nil && err != syscall.ENOENT {
			return err.(syscall.Errno)
		}
	}
	return 0
}

func isMounted(t *testing.T, mnt string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && f[4] == mnt {
			return true
		}
	}
	return false
}

// mountRaw mounts a fresh temp dir and serves it with rawServe.
func mountRaw(t *testing.T, opts MountOptions) (*Conn, chan syscall.Errno) {
	return mountRawAt(t, t.TempDir(), opts)
}

// mountRawAt is mountRaw at the directory mnt.
func mountRawAt(t *testing.T, mnt string, opts MountOptions) (*Conn, chan syscall.Errno) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	c, err := Mount(mnt, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if isMounted(t, mnt) {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
		c.Close()
	})
	done := make(chan syscall.Errno, 1)
	go func() {
		var n int
		done <- rawServe(c.Fd(), &n)
	}()
	return c, done
}

func waitErrno(t *testing.T, done chan syscall.Errno) syscall.Errno {
	t.Helper()
	select {
	case e := <-done:
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("reader still blocked 5 s after unmount")
		return 0
	}
}

func TestMountStatUnmount(t *testing.T) {
	c, done := mountRaw(t, MountOptions{DefaultPermissions: true, Source: "fastfs-test"})
	mnt := c.Mountpoint()
	var sfs unix.Statfs_t
	if err := unix.Statfs(mnt, &sfs); err != nil {
		t.Fatalf("statfs %s: %v", mnt, err)
	}
	if sfs.Type != fuseSuperMagic {
		t.Fatalf("statfs type %#x, want FUSE %#x", sfs.Type, fuseSuperMagic)
	}
	st, err := os.Stat(mnt)
	if err != nil || !st.IsDir() {
		t.Fatalf("stat %s: %v (dir %v)", mnt, err, err == nil && st.IsDir())
	}
	if _, err := os.Stat(mnt + "/nope"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat of a missing name: %v, want ENOENT", err)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if !strings.Contains(string(mi), "fuse.fastfs fastfs-test") {
		t.Errorf("mountinfo lacks type fuse.fastfs with source fastfs-test")
	}
	if err := c.Unmount(); err != nil {
		t.Fatal(err)
	}
	if e := waitErrno(t, done); e != syscall.ENODEV {
		t.Fatalf("read after Unmount: %v, want ENODEV", e)
	}
	if isMounted(t, mnt) {
		t.Fatalf("%s still mounted after Unmount", mnt)
	}
	if err := c.Unmount(); err != nil {
		t.Fatalf("second Unmount: %v", err)
	}
}

func TestExternalUmountGivesENODEV(t *testing.T) {
	c, done := mountRaw(t, MountOptions{})
	if _, err := os.Stat(c.Mountpoint()); err != nil {
		t.Fatal(err)
	}
	if err := unix.Unmount(c.Mountpoint(), 0); err != nil {
		t.Fatal(err)
	}
	if e := waitErrno(t, done); e != syscall.ENODEV {
		t.Fatalf("read after external umount: %v, want ENODEV", e)
	}
	if err := c.Unmount(); err != nil {
		t.Fatalf("Unmount after external umount: %v", err)
	}
}

func TestUnmountBusyAborts(t *testing.T) {
	c, done := mountRaw(t, MountOptions{})
	// Hold the mount busy: a cwd inside it.
	f, err := os.Open(c.Mountpoint())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := c.Unmount(); err != nil {
		t.Fatalf("Unmount of a busy mount: %v", err)
	}
	if e := waitErrno(t, done); e != syscall.ENODEV && e != syscall.ECONNABORTED {
		t.Fatalf("read after busy Unmount: %v, want ENODEV", e)
	}
	if isMounted(t, c.Mountpoint()) {
		t.Fatalf("still in mountinfo after lazy unmount")
	}
}

func TestCloneFdServes(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	c, err := Mount(t.TempDir(), MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	defer c.Unmount()
	// Answer INIT on the mount's fd, then serve only on a clone: every
	// reply must go back on the clone the request came from.
	initDone := make(chan syscall.Errno, 1)
	go func() {
		var n int
		initDone <- rawServeN(c.Fd(), &n, 1)
	}()
	if e := waitErrno(t, initDone); e != 0 {
		t.Fatalf("INIT: %v", e)
	}
	nfd, err := cloneFd(c.Fd())
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nfd)
	served := 0
	cdone := make(chan syscall.Errno, 1)
	go func() { cdone <- rawServe(nfd, &served) }()
	for i := 0; i < 50; i++ {
		if _, err := os.Stat(c.Mountpoint() + "/x"); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("stat through the clone: %v, want ENOENT", err)
		}
	}
	c.Unmount()
	if e := waitErrno(t, cdone); e != syscall.ENODEV {
		t.Fatalf("clone read after unmount: %v", e)
	}
	if served < 50 {
		t.Errorf("the cloned fd served %d requests, want >= 50", served)
	}
}

func TestMountErrors(t *testing.T) {
	if _, err := Mount("/nonexistent/dir", MountOptions{}); err == nil || !strings.Contains(err.Error(), "mkdir") {
		t.Errorf("missing mountpoint: %v", err)
	}
	if _, err := Mount("/etc/hostname", MountOptions{}); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file mountpoint: %v", err)
	}
	if _, err := Mount(t.TempDir(), MountOptions{Source: "a,b"}); err == nil {
		t.Errorf("source with a comma accepted")
	}
	if _, err := Mount(t.TempDir(), MountOptions{MaxRead: 100}); err == nil {
		t.Errorf("max_read 100 accepted")
	}
}

// A mountpoint with characters mountinfo escapes (space: \040,
// backslash: \134) is still found by its path.
func TestConnectionIDEscapedPath(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), `a b\c`)
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	c, done := mountRawAt(t, mnt, MountOptions{})
	id, err := c.ConnectionID()
	if err != nil {
		t.Fatalf("ConnectionID of a mount at %q: %v", mnt, err)
	}
	if ok, err := ConnectionMounted(mnt, id); err != nil || !ok {
		t.Fatalf("ConnectionMounted(%q, %d) = %v, %v; want true", mnt, id, ok, err)
	}
	if ok, err := ConnectionMounted(mnt, id+1); err != nil || ok {
		t.Errorf("ConnectionMounted(%q, %d), another connection = %v, %v; want false", mnt, id+1, ok, err)
	}
	if err := c.Unmount(); err != nil {
		t.Fatal(err)
	}
	waitErrno(t, done)
	if ok, err := ConnectionMounted(mnt, id); err != nil || ok {
		t.Errorf("ConnectionMounted(%q, %d) after Unmount = %v, %v; want false", mnt, id, ok, err)
	}
}

// The unprivileged path: fusermount3 mounts and passes the fd back over a
// socket (exercised as root with ForceFusermount).
func TestFusermountMount(t *testing.T) {
	testutil.RequireCommand(t, "fusermount3")
	c, done := mountRaw(t, MountOptions{ForceFusermount: true, Source: "fastfs-fm"})
	if !c.fusermount {
		t.Fatal("ForceFusermount did not use fusermount3")
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(c.Mountpoint(), &sfs); err != nil || sfs.Type != fuseSuperMagic {
		t.Fatalf("statfs through fusermount3 mount: %v, type %#x", err, sfs.Type)
	}
	if err := c.Unmount(); err != nil {
		t.Fatal(err)
	}
	if e := waitErrno(t, done); e != syscall.ENODEV {
		t.Fatalf("read after fusermount3 -u: %v, want ENODEV", e)
	}
	if isMounted(t, c.Mountpoint()) {
		t.Fatal("still mounted after fusermount3 -u")
	}
}
