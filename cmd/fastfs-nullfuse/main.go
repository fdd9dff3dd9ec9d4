// Command fastfs-nullfuse is the floor under every FUSE server's metadata
// figures on a machine: a /dev/fuse server that keeps its namespace in a
// map and does no other work, so that what a client measures through it
// is the kernel's FUSE round trips and the scheduler's wake-ups alone.
//
//	fastfs-nullfuse [-threads N] MOUNTPOINT
//
// It answers each request in a few hundred nanoseconds with no system
// call but the read of the request and the write of the reply. For what
// fastfs-bench's metadata jobs do as root (create, stat, unlink, untar)
// it costs the kernel the round trips `fastfsd mount` costs with its
// defaults (the create of an empty file: LOOKUP, CREATE, FLUSH, RELEASE
// and the directory's GETATTR; docs/roundtrips.md): it asks for
// default_permissions and 1 s entry and attribute validity, answers no
// open with FOPEN_NOFLUSH, and answers GETXATTR (security.capability
// before a file's first write) with ENODATA. It does not offer what those
// jobs do not use and fastfsd does: READDIRPLUS (a listing followed by a
// stat of each entry costs it one LOOKUP per entry), POSIX ACLs (a
// non-owner's create costs it two GETXATTRs fewer), passthrough, locks.
// File data is not kept: a WRITE only moves the size, a READ returns
// zeros. Nodes live until they are unlinked and forgotten. It is a
// measuring instrument, not a filesystem: a request it cannot parse gets
// EIO.
//
// One thread per -threads reads /dev/fuse (default 1: the least waking a
// server can do). The mount is removed on SIGINT/SIGTERM. Root only.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fuse/abi"
)

var le = binary.LittleEndian

// What INIT asks for: async reads, O_TRUNC in OPEN, writes above 4 KiB.
const (
	initFlags = abi.InitAsyncRead | abi.InitAtomicOTrunc | abi.InitBigWrites
	maxWrite  = 128 << 10
)

type node struct {
	mode     uint32
	nlink    uint32 // 0 once unlinked (a directory: removed)
	lookups  uint64 // entry replies the kernel has not forgotten
	size     uint64
	mtime    int64
	target   string            // a symlink's
	children map[string]uint64 // a directory's; nil otherwise
}

type server struct {
	mu       sync.Mutex
	nodes    map[uint64]*node
	next     uint64
	listings map[uint64][]dirent // by OPENDIR handle: the directory as it was then
	nextFh   uint64
}

type dirent struct {
	name string
	ino  uint64
	typ  uint32
}

func newServer() *server {
	now := time.Now().Unix()
	return &server{
		nodes:    map[uint64]*node{1: {mode: unix.S_IFDIR | 0o755, nlink: 2, mtime: now, children: map[string]uint64{}}},
		next:     2,
		listings: map[uint64][]dirent{},
		nextFh:   1,
	}
}

func attrOf(ino uint64, n *node) abi.Attr {
	t := uint64(n.mtime)
	return abi.Attr{Ino: ino, Size: n.size, Blocks: (n.size + 511) / 512, Atime: t, Mtime: t, Ctime: t,
		Mode: n.mode, Nlink: n.nlink, Blksize: 4096}
}

// entry writes a fuse_entry_out for ino, valid 1 s, and returns its size.
func (s *server) entry(out []byte, ino uint64) int {
	n := s.nodes[ino]
	n.lookups++
	e := abi.EntryOut{NodeID: ino, EntryValid: 1, AttrValid: 1, Attr: attrOf(ino, n)}
	e.Marshal(out)
	return abi.EntryOutSize
}

func name(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// add makes a node named nm in dir; EEXIST if the name is taken.
func (s *server) add(dir uint64, nm string, n *node) (uint64, syscall.Errno) {
	d := s.nodes[dir]
	if d == nil || d.children == nil {
		return 0, unix.ENOTDIR
	}
	if d.nlink == 0 {
		return 0, unix.ENOENT // a removed directory
	}
	if _, ok := d.children[nm]; ok {
		return 0, unix.EEXIST
	}
	ino := s.next
	s.next++
	n.mtime = time.Now().Unix()
	s.nodes[ino] = n
	d.children[nm] = ino
	d.mtime = n.mtime
	if n.children != nil {
		d.nlink++
	}
	return ino, 0
}

func (s *server) remove(dir uint64, nm string, wantDir bool) syscall.Errno {
	d := s.nodes[dir]
	if d == nil || d.children == nil {
		return unix.ENOTDIR
	}
	ino, ok := d.children[nm]
	if !ok {
		return unix.ENOENT
	}
	n := s.nodes[ino]
	switch {
	case wantDir && n.children == nil:
		return unix.ENOTDIR
	case wantDir && len(n.children) > 0:
		return unix.ENOTEMPTY
	case !wantDir && n.children != nil:
		return unix.EISDIR
	}
	delete(d.children, nm)
	d.mtime = time.Now().Unix()
	if n.children != nil {
		d.nlink--
		n.nlink = 0
	} else {
		n.nlink--
	}
	s.release(ino)
	return 0
}

// forget drops k of ino's lookups (FORGET, BATCH_FORGET).
func (s *server) forget(ino, k uint64) {
	if n := s.nodes[ino]; n != nil {
		n.lookups -= min(k, n.lookups)
		s.release(ino)
	}
}

// release frees ino once it is unlinked and the kernel forgot it: open
// files and the kernel's inode keep it until then (fstat after unlink).
func (s *server) release(ino uint64) {
	if n := s.nodes[ino]; n != nil && ino != 1 && n.nlink == 0 && n.lookups == 0 {
		delete(s.nodes, ino)
	}
}

// twoNames splits the NUL-terminated names of RENAME, RENAME2 and
// SYMLINK; ok is false if b does not hold two.
func twoNames(b []byte) (a, c string, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return "", "", false
	}
	j := bytes.IndexByte(b[i+1:], 0)
	if j < 0 {
		return "", "", false
	}
	return string(b[:i]), string(b[i+1 : i+1+j]), true
}

// handle serves the request in req, writing the reply body after the
// header in out; it returns the body's length, an errno, and false for
// a request that gets no reply.
func (s *server) handle(req, out []byte) (int, syscall.Errno, bool) {
	op := abi.Opcode(le.Uint32(req[4:]))
	nodeid := le.Uint64(req[16:])
	in := req[abi.InHeaderSize:]
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[nodeid]
	switch op {
	case abi.OpForget:
		s.forget(nodeid, le.Uint64(in[0:]))
		return 0, 0, false
	case abi.OpBatchForget:
		count := int(le.Uint32(in[0:]))
		for i := 0; i < count && 8+16*(i+1) <= len(in); i++ {
			s.forget(le.Uint64(in[8+16*i:]), le.Uint64(in[8+16*i+8:]))
		}
		return 0, 0, false
	case abi.OpInterrupt:
		return 0, 0, false
	case abi.OpRelease, abi.OpFlush, abi.OpFsync, abi.OpFsyncdir:
		return 0, 0, true // by handle: the node may be unlinked
	case abi.OpReleasedir:
		delete(s.listings, le.Uint64(in[0:]))
		return 0, 0, true
	case abi.OpInit:
		var ini abi.InitIn
		ini.Unmarshal(in)
		o := abi.InitOut{Major: 7, Minor: 31, MaxReadahead: ini.MaxReadahead, Flags: uint32(initFlags) & ini.Flags,
			MaxBackground: 16, CongestionThreshold: 12, MaxWrite: maxWrite, TimeGran: 1}
		o.Marshal(out)
		return abi.InitOutSize, 0, true
	case abi.OpDestroy, abi.OpStatfs:
		if op == abi.OpStatfs {
			clear(out[:80])
			le.PutUint32(out[40:], 4096) // bsize
			le.PutUint32(out[44:], 255)  // namelen
			return 80, 0, true
		}
		return 0, 0, true
	}
	if n == nil {
		return 0, unix.ENOENT, true
	}
	switch op {
	case abi.OpLookup:
		if n.children == nil {
			return 0, unix.ENOTDIR, true
		}
		ino, ok := n.children[name(in)]
		if !ok {
			return 0, unix.ENOENT, true
		}
		return s.entry(out, ino), 0, true
	case abi.OpGetattr, abi.OpSetattr:
		if op == abi.OpSetattr {
			valid := abi.SetattrValid(le.Uint32(in[0:]))
			if valid&abi.FattrMode != 0 {
				n.mode = n.mode&unix.S_IFMT | le.Uint32(in[68:])&0o7777
			}
			if valid&abi.FattrSize != 0 {
				n.size = le.Uint64(in[16:])
			}
			if valid&(abi.FattrMtime|abi.FattrAtime) != 0 {
				n.mtime = time.Now().Unix()
			}
		}
		o := abi.AttrOut{AttrValid: 1, Attr: attrOf(nodeid, n)}
		o.Marshal(out)
		return abi.AttrOutSize, 0, true
	case abi.OpReadlink:
		if n.mode&unix.S_IFMT != unix.S_IFLNK {
			return 0, unix.EINVAL, true
		}
		return copy(out, n.target), 0, true
	case abi.OpMkdir, abi.OpMknod, abi.OpSymlink:
		nn := &node{nlink: 1}
		var nm string
		switch op {
		case abi.OpMkdir:
			nn.mode, nn.nlink, nn.children = unix.S_IFDIR|le.Uint32(in[0:])&^le.Uint32(in[4:])&0o7777, 2, map[string]uint64{}
			nm = name(in[8:])
		case abi.OpMknod:
			nn.mode = le.Uint32(in[0:]) &^ (le.Uint32(in[8:]) & 0o7777)
			nm = name(in[16:])
		case abi.OpSymlink:
			var ok bool
			if nm, nn.target, ok = twoNames(in); !ok {
				return 0, unix.EIO, true
			}
			nn.mode, nn.size = unix.S_IFLNK|0o777, uint64(len(nn.target))
		}
		ino, e := s.add(nodeid, nm, nn)
		if e != 0 {
			return 0, e, true
		}
		return s.entry(out, ino), 0, true
	case abi.OpCreate:
		mode := unix.S_IFREG | le.Uint32(in[4:])&^le.Uint32(in[8:])&0o7777
		ino, e := s.add(nodeid, name(in[16:]), &node{mode: mode, nlink: 1})
		if e != 0 {
			return 0, e, true
		}
		k := s.entry(out, ino)
		clear(out[k : k+abi.OpenOutSize])
		return k + abi.OpenOutSize, 0, true
	case abi.OpUnlink, abi.OpRmdir:
		return 0, s.remove(nodeid, name(in), op == abi.OpRmdir), true
	case abi.OpOpen:
		if le.Uint32(in[0:])&unix.O_TRUNC != 0 { // ATOMIC_O_TRUNC: no SETATTR follows
			n.size = 0
		}
		clear(out[:abi.OpenOutSize])
		return abi.OpenOutSize, 0, true
	case abi.OpOpendir:
		if n.children == nil {
			return 0, unix.ENOTDIR, true
		}
		l := []dirent{{".", nodeid, unix.DT_DIR}, {"..", nodeid, unix.DT_DIR}}
		for nm, ino := range n.children {
			l = append(l, dirent{nm, ino, s.nodes[ino].mode >> 12})
		}
		fh := s.nextFh
		s.nextFh++
		s.listings[fh] = l
		clear(out[:abi.OpenOutSize])
		le.PutUint64(out[0:], fh)
		return abi.OpenOutSize, 0, true
	case abi.OpAccess, abi.OpSetxattr:
		return 0, 0, true
	case abi.OpGetxattr, abi.OpListxattr, abi.OpRemovexattr:
		if op == abi.OpListxattr && le.Uint32(in[0:]) == 0 {
			clear(out[:8]) // size 0: no names
			return 8, 0, true
		}
		if op == abi.OpListxattr {
			return 0, 0, true
		}
		return 0, unix.ENODATA, true
	case abi.OpWrite:
		off, size := le.Uint64(in[8:]), le.Uint32(in[16:])
		n.size = max(n.size, off+uint64(size))
		clear(out[:8])
		le.PutUint32(out[0:], size)
		return 8, 0, true
	case abi.OpRead:
		off, size := le.Uint64(in[8:]), uint64(le.Uint32(in[16:]))
		if n.children != nil {
			return 0, unix.EISDIR, true
		}
		if off >= n.size {
			return 0, 0, true
		}
		k := min(size, n.size-off, uint64(len(out)))
		clear(out[:k])
		return int(k), 0, true
	case abi.OpReaddir:
		return readdir(s.listings[le.Uint64(in[0:])], le.Uint64(in[8:]), int(le.Uint32(in[16:])), out), 0, true
	case abi.OpRename, abi.OpRename2:
		// rename_in (8 bytes) and rename2_in (16: flags at 8), then two
		// names. Of rename2's flags only RENAME_NOREPLACE is served.
		hdr, flags := 8, uint32(0)
		if op == abi.OpRename2 {
			hdr, flags = 16, le.Uint32(in[8:])
			if flags&^unix.RENAME_NOREPLACE != 0 {
				return 0, unix.EINVAL, true
			}
		}
		from, to, ok := twoNames(in[hdr:])
		if !ok {
			return 0, unix.EIO, true
		}
		newdir := le.Uint64(in[0:])
		d, nd := n, s.nodes[newdir]
		if d.children == nil || nd == nil || nd.children == nil {
			return 0, unix.ENOTDIR, true
		}
		ino, ok := d.children[from]
		if !ok {
			return 0, unix.ENOENT, true
		}
		if old, ok := nd.children[to]; ok && old != ino {
			if flags&unix.RENAME_NOREPLACE != 0 {
				return 0, unix.EEXIST, true
			}
			if e := s.remove(newdir, to, s.nodes[old].children != nil); e != 0 {
				return 0, e, true
			}
		}
		delete(d.children, from)
		nd.children[to] = ino
		if s.nodes[ino].children != nil && d != nd {
			d.nlink--
			nd.nlink++
		}
		return 0, 0, true
	case abi.OpLink:
		ino := le.Uint64(in[0:])
		t := s.nodes[ino]
		if t == nil || t.children != nil {
			return 0, unix.EPERM, true
		}
		if n.children == nil {
			return 0, unix.ENOTDIR, true
		}
		nm := name(in[8:])
		if _, ok := n.children[nm]; ok {
			return 0, unix.EEXIST, true
		}
		n.children[nm] = ino
		t.nlink++
		return s.entry(out, ino), 0, true
	}
	return 0, unix.ENOSYS, true
}

// handleOrEIO is handle, answering EIO to a request too short for what
// it parses (an index out of range) instead of ending the process and
// leaving a dead mount.
func (s *server) handleOrEIO(req, out []byte) (n int, e syscall.Errno, reply bool) {
	defer func() {
		if recover() != nil {
			n, e, reply = 0, unix.EIO, true
		}
	}()
	return s.handle(req, out)
}

// readdir writes the entries of listing l from index off on, as many
// as fit in size bytes.
func readdir(l []dirent, off uint64, size int, out []byte) int {
	size = min(size, len(out))
	at := 0
	for i := off; i < uint64(len(l)); i++ {
		e := l[i]
		rec := (24 + len(e.name) + 7) &^ 7
		if at+rec > size {
			break
		}
		clear(out[at : at+rec])
		le.PutUint64(out[at:], e.ino)
		le.PutUint64(out[at+8:], i+1)
		le.PutUint32(out[at+16:], uint32(len(e.name)))
		le.PutUint32(out[at+20:], e.typ)
		copy(out[at+24:], e.name)
		at += rec
	}
	return at
}

// serve reads requests from fd and answers them until the mount goes.
func (s *server) serve(fd int) error {
	runtime.LockOSThread()
	req := make([]byte, maxWrite+64<<10)
	out := make([]byte, maxWrite+abi.OutHeaderSize)
	for {
		k, err := unix.Read(fd, req)
		switch err {
		case nil:
		case unix.EINTR, unix.EAGAIN, unix.ENOENT:
			continue // ENOENT: the request was interrupted before we read it
		case unix.ENODEV:
			return nil // unmounted
		default:
			return fmt.Errorf("read /dev/fuse: %w", err)
		}
		if k < abi.InHeaderSize {
			return fmt.Errorf("read /dev/fuse: %d-byte request", k)
		}
		body, e, reply := s.handleOrEIO(req[:k], out[abi.OutHeaderSize:])
		if !reply {
			continue
		}
		if e != 0 {
			body = 0
		}
		le.PutUint32(out[0:], uint32(abi.OutHeaderSize+body))
		le.PutUint32(out[4:], uint32(-int32(e)))
		le.PutUint64(out[8:], le.Uint64(req[8:]))
		if _, err := unix.Write(fd, out[:abi.OutHeaderSize+body]); err != nil && err != unix.ENOENT {
			return fmt.Errorf("write /dev/fuse: %w", err)
		}
	}
}

// mount mounts a fuse.nullfuse filesystem on mnt and returns its
// /dev/fuse fd.
func mount(mnt string) (int, error) {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/fuse: %w (run as root)", err)
	}
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=0,group_id=0,default_permissions,allow_other", fd)
	if err := unix.Mount("nullfuse", mnt, "fuse.nullfuse", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("mount on %s: %w (run as root)", mnt, err)
	}
	return fd, nil
}

func main() {
	threads := flag.Int("threads", 1, "threads reading /dev/fuse")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: fastfs-nullfuse [-threads N] MOUNTPOINT\n\n"+
			"A FUSE server that does no work: the floor under any server's metadata figures here.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || *threads < 1 {
		flag.Usage()
		os.Exit(2)
	}
	mnt := flag.Arg(0)
	fd, err := mount(mnt)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fastfs-nullfuse:", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, unix.SIGINT, unix.SIGTERM)
	go func() { <-sig; unix.Unmount(mnt, unix.MNT_DETACH) }()
	s := newServer()
	errs := make(chan error, *threads)
	for range *threads {
		go func() { errs <- s.serve(fd) }()
	}
	if err := <-errs; err != nil {
		unix.Unmount(mnt, unix.MNT_DETACH)
		fmt.Fprintln(os.Stderr, "fastfs-nullfuse:", err)
		os.Exit(1)
	}
}
