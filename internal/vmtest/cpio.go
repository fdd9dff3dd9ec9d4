package vmtest

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
)

// File modes for cpio entries (the S_IF* values of stat(2)).
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
)

// cpioEntry is one member of a newc archive.
type cpioEntry struct {
	name         string // without leading "/"
	mode         uint32 // type bits | permission bits
	data         []byte // file content, or a symlink's target
	rmajor, rmin uint32 // device numbers of a device node
}

// cpioWriter writes a cpio "newc" (SVR4, no CRC) archive, the format the
// kernel unpacks as an initramfs. Parent directories are emitted before
// their children (the kernel does not create them), each name once.
type cpioWriter struct {
	w    *bufio.Writer
	n    int64 // bytes written, for 4-byte alignment
	ino  uint32
	seen map[string]bool
	err  error
}

func newCpioWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: bufio.NewWriterSize(w, 1<<20), seen: map[string]bool{}, ino: 300000}
}

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	var k int
	k, c.err = c.w.Write(b)
	c.n += int64(k)
}

func (c *cpioWriter) pad() {
	if r := c.n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

func (c *cpioWriter) header(name string, mode uint32, size int, rmajor, rminor uint32) {
	c.ino++
	nlink := 1
	if mode&0o170000 == modeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, rmajor, rminor, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write([]byte(name))
	c.write([]byte{0})
	c.pad()
}

// mkdirAll emits every missing parent directory of name.
func (c *cpioWriter) mkdirAll(dir string) {
	if dir == "." || dir == "/" || dir == "" || c.seen[dir] {
		return
	}
	c.mkdirAll(path.Dir(dir))
	c.seen[dir] = true
	c.header(dir, modeDir|0o755, 0, 0, 0)
}

// add writes one entry (and its missing parents). A name already written is
// skipped, except a later regular file replaces nothing: first one wins, so
// callers add overrides first.
func (c *cpioWriter) add(e cpioEntry) {
	name := strings.TrimPrefix(path.Clean("/"+e.name), "/")
	if name == "" || c.seen[name] {
		return
	}
	c.mkdirAll(path.Dir(name))
	c.seen[name] = true
	c.header(name, e.mode, len(e.data), e.rmajor, e.rmin)
	c.write(e.data)
	c.pad()
}

// close writes the trailer and flushes.
func (c *cpioWriter) close() error {
	c.header("TRAILER!!!", 0, 0, 0, 0)
	if c.err != nil {
		return c.err
	}
	return c.w.Flush()
}

// writeCpio writes entries sorted by name (deterministic output for the
// cache key and for diffing two images).
func writeCpio(w io.Writer, entries []cpioEntry) error {
	sort.SliceStable(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	c := newCpioWriter(w)
	for _, e := range entries {
		c.add(e)
	}
	return c.close()
}
