// Command clockfs mounts a filesystem holding one file, clock, whose
// content is the current time, at the directory given as its argument.
// It is the example of a filesystem that changes on its own and tells the
// kernel: the kernel may cache the file for an hour (attributes, names and
// data, kept across opens), and every tick clockfs stores the new time in
// the kernel's page cache itself (fastfs.Mounted.Store), so readers see
// it change each second without a single READ reaching clockfs.
//
//	go run ./examples/clockfs /mnt & sleep 1; cat /mnt/clock; sleep 1; cat /mnt/clock
package main

import (
	"context"
	"errors"
	"log"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/fs"
)

// layout gives every time the same length, so that a new time overwrites
// the cached one exactly.
const layout = "2006-01-02T15:04:05.000Z07:00\n"

const clockIno fs.Inode = 2

type clockFS struct {
	fs.Base
	now   atomic.Pointer[[]byte] // the file's content
	reads atomic.Int64           // READs that reached clockfs
}

func (c *clockFS) set(t time.Time) []byte {
	b := []byte(t.UTC().Format(layout))
	c.now.Store(&b)
	return b
}

func (c *clockFS) attr(ino fs.Inode) fs.Attr {
	if ino == fs.RootInode {
		return fs.Attr{Ino: 1, Mode: syscall.S_IFDIR | 0o555, Nlink: 2}
	}
	return fs.Attr{Ino: 2, Mode: syscall.S_IFREG | 0o444, Nlink: 1, Size: uint64(len(*c.now.Load()))}
}

func (c *clockFS) Lookup(_ *fs.Context, _ fs.Inode, name []byte, out *fs.Entry) fs.Errno {
	if string(name) != "clock" {
		return syscall.ENOENT
	}
	out.Ino, out.Attr, out.EntryTimeout, out.AttrTimeout = clockIno, c.attr(clockIno), time.Hour, time.Hour
	return 0
}

func (c *clockFS) GetAttr(_ *fs.Context, ino fs.Inode, _ fs.Handle, _ bool, out *fs.AttrOut) fs.Errno {
	out.Attr, out.Timeout = c.attr(ino), time.Hour
	return 0
}

func (c *clockFS) Open(_ *fs.Context, _ fs.Inode, _, _ uint32, out *fs.OpenOut) fs.Errno {
	out.Flags = fs.OpenKeepCache // the page cache survives opens: only clockfs updates it
	return 0
}

func (c *clockFS) Read(_ *fs.Context, _ fs.Inode, _ fs.Handle, off int64, _ uint32, dst fs.Sink) fs.Errno {
	c.reads.Add(1)
	b := *c.now.Load()
	dst.Append(b[min(off, int64(len(b))):])
	return 0
}

// tick sets the time every interval and stores it in the kernel's cache,
// until ctx ends or the mount is gone. ENOENT is the kernel having nothing
// of the file yet (nobody looked it up): the first read will ask.
func (c *clockFS) tick(ctx context.Context, m *fastfs.Mounted, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.Done():
			return
		case now := <-t.C:
			b := c.set(now)
			if err := m.Store(clockIno, 0, b); err != nil && !errors.Is(err, syscall.ENOENT) {
				log.Printf("clockfs: store: %v", err)
			}
		}
	}
}

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: clockfs MOUNTPOINT")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &clockFS{}
	c.set(time.Now())
	m, err := fastfs.Mount(ctx, c, os.Args[1], &fastfs.MountOptions{FSName: "clockfs"})
	if err != nil {
		log.Fatal(err)
	}
	go c.tick(ctx, m, time.Second)
	if err := m.Wait(); err != nil {
		log.Fatal(err)
	}
}
