package fastfs_test

import (
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// refFS counts what the kernel holds: the lookups of each inode (raised
// by Lookup and Create, lowered by Forget) and the open handles. The
// first Lookup or Create of a name in block waits for release.
type refFS struct {
	fs.Base
	block   string
	entered chan struct{}
	release chan struct{}

	mu       sync.Mutex
	nlookup  map[fs.Inode]int64
	open     map[fs.Handle]bool
	nextFh   fs.Handle
	served   int // Lookups and Creates of block that returned
	blockedN int // of them, those that waited
}

const (
	refSlowIno fs.Inode = 7
	refNewIno  fs.Inode = 8
)

func newRefFS(block string) *refFS {
	return &refFS{block: block, entered: make(chan struct{}), release: make(chan struct{}),
		nlookup: map[fs.Inode]int64{}, open: map[fs.Handle]bool{}}
}

func (f *refFS) attr(ino fs.Inode) fs.Attr {
	if ino == 1 {
		return fs.Attr{Ino: 1, Mode: syscall.S_IFDIR | 0o755, Nlink: 2}
	}
	return fs.Attr{Ino: uint64(ino), Mode: syscall.S_IFREG | 0o644, Nlink: 1}
}

// wait blocks the first call for name f.block until release.
func (f *refFS) wait(name []byte) {
	if string(name) != f.block {
		return
	}
	f.mu.Lock()
	first := f.blockedN == 0
	f.blockedN++
	f.mu.Unlock()
	if first {
		close(f.entered)
		<-f.release
	}
}

func (f *refFS) count(ino fs.Inode, out *fs.Entry) {
	f.mu.Lock()
	f.nlookup[ino]++
	f.served++
	f.mu.Unlock()
	out.Ino, out.Attr = ino, f.attr(ino)
	out.EntryTimeout, out.AttrTimeout = time.Hour, time.Hour
}

func (f *refFS) Lookup(ctx *fs.Context, parent fs.Inode, name []byte, out *fs.Entry) fs.Errno {
	if parent != 1 || string(name) != "slow" {
		return syscall.ENOENT
	}
	f.wait(name)
	f.count(refSlowIno, out)
	return 0
}

func (f *refFS) Create(ctx *fs.Context, parent fs.Inode, name []byte, mode, flags uint32, out *fs.Entry, open *fs.OpenOut) fs.Errno {
	if parent != 1 || string(name) != "new" {
		return syscall.EACCES
	}
	f.wait(name)
	f.mu.Lock()
	f.nextFh++
	open.Handle = f.nextFh
	f.open[open.Handle] = true
	f.mu.Unlock()
	f.count(refNewIno, out)
	return 0
}

func (f *refFS) Forget(ino fs.Inode, n uint64) {
	f.mu.Lock()
	f.nlookup[ino] -= int64(n)
	f.mu.Unlock()
}

func (f *refFS) Release(ctx *fs.Context, ino fs.Inode, fh fs.Handle, flags uint32) fs.Errno {
	f.mu.Lock()
	delete(f.open, fh)
	f.mu.Unlock()
	return 0
}

func (f *refFS) GetAttr(ctx *fs.Context, ino fs.Inode, fh fs.Handle, hasFh bool, out *fs.AttrOut) fs.Errno {
	out.Attr, out.Timeout = f.attr(ino), time.Hour
	return 0
}

// state is the lookups of ino, the open handles and the served calls.
func (f *refFS) state(ino fs.Inode) (nlookup int64, open, served int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nlookup[ino], len(f.open), f.served
}

// TestResendGivesBackReferences: a LOOKUP or CREATE in flight when the
// server asks the kernel to resend (FUSE_NOTIFY_RESEND) is served twice;
// the kernel takes the second reply and refuses the first (ENOENT). The
// references the refused one carried (a lookup; for CREATE an open
// handle) must go back to the filesystem, which would otherwise keep
// the inode until unmount: after both replies the filesystem's count is
// the kernel's, 1, and one handle is open.
func TestResendGivesBackReferences(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireDevFuse(t)
	for _, c := range []struct {
		name   string
		ino    fs.Inode
		handle int // open handles the kernel holds afterwards
		do     func(path string) (int, error)
	}{
		{"slow", refSlowIno, 0, func(path string) (int, error) {
			var st unix.Stat_t
			return -1, unix.Stat(path, &st)
		}},
		{"new", refNewIno, 1, func(path string) (int, error) {
			return unix.Open(path, unix.O_CREAT|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newRefFS(c.name)
			mnt, m, release := mountHolding(t, f, f.release)
			type result struct {
				fd  int
				err error
			}
			done := make(chan result, 1)
			go func() {
				fd, err := c.do(filepath.Join(mnt, c.name))
				done <- result{fd, err}
			}()
			resendHeld(t, m, f.entered, "the request")
			var r result
			select {
			case r = <-done:
				if r.err != nil {
					t.Fatalf("%s after Resend: %v", c.name, r.err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("still waiting 5 s after Resend: the request was not sent again")
			}
			if r.fd >= 0 {
				defer unix.Close(r.fd)
			}
			release() // the first copy's reply: refused by the kernel
			var n int64
			var open, served int
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				if n, open, served = f.state(c.ino); served == 2 && n == 1 && open == c.handle {
					return
				}
			}
			t.Fatalf("after both copies' replies: %d calls served, inode %d counts %d lookups and %d handles are open; want 2, 1 (the kernel's) and %d: the refused reply's references were kept",
				served, c.ino, n, open, c.handle)
		})
	}
}
