package vhostusertest

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"github.com/fastfsd/fastfsd/mem"
	"github.com/fastfsd/fastfsd/vhostuser"
	"golang.org/x/sys/unix"
)

// Window is the VMM side of a VIRTIO Shared Memory Region (virtio-fs: the
// DAX window, shmid 0) as a front-end implementing SHMEM has it: Size bytes
// of memfd-backed memory mapped in this process (the guest sees the same
// pages through a BAR), into which the back-end's SHMEM_MAP requests are
// mmapped with MAP_FIXED, and over which SHMEM_UNMAP maps anonymous memory
// back. It is as strict as QEMU's implementation: a map over an existing
// mapping, an unmap that is not exactly one mapping, a range outside the
// window or not page-aligned, or a shmid other than 0 is refused (answer
// 1). Every request with NEED_REPLY is answered.
//
// Attach it with Frontend.AttachWindow; it serves the back-end request
// socket on a goroutine of its own until Close.
type Window struct {
	Size uint64

	// Silent makes the window read requests and never answer (a hung
	// front-end).
	Silent atomic.Bool

	mem []byte
	mf  *os.File

	mu sync.Mutex
	// maps is the front-end's table: offset → mapping. +checklocks:mu
	maps map[uint64]WindowMapping
	// err is the first protocol error the serving goroutine met. +checklocks:mu
	err      error
	requests int // +checklocks:mu
	// refuse: see SetRefuse. +checklocks:mu
	refuse func(req vhostuser.BackendRequest, m vhostuser.MMap) uint64

	conn *net.UnixConn
	done chan struct{}
}

// WindowMapping is one mapping the window holds.
type WindowMapping struct {
	Len, FdOffset uint64
	Writable      bool
}

// NewWindow creates a window of size bytes (a multiple of the page size).
func NewWindow(size uint64) (*Window, error) {
	if size == 0 || size%uint64(os.Getpagesize()) != 0 {
		return nil, fmt.Errorf("vhostusertest: window size %d: not a page multiple", size)
	}
	f, err := mem.NewMemfd("dax-window", size)
	if err != nil {
		return nil, err
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("vhostusertest: mmap window: %w", err)
	}
	return &Window{Size: size, mem: b, mf: f, maps: map[uint64]WindowMapping{}}, nil
}

// Bytes is the window's memory [off, off+n) as the guest sees it. The view
// is valid until Close; what it shows changes with every map and unmap.
func (w *Window) Bytes(off, n uint64) []byte { return w.mem[off : off+n] }

// Mappings returns a copy of the window's table.
func (w *Window) Mappings() map[uint64]WindowMapping {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := make(map[uint64]WindowMapping, len(w.maps))
	for k, v := range w.maps {
		m[k] = v
	}
	return m
}

// SetRefuse installs fn (nil removes it), asked first for each SHMEM
// request: a non-zero result is sent as the answer and nothing changes.
func (w *Window) SetRefuse(fn func(req vhostuser.BackendRequest, m vhostuser.MMap) uint64) {
	w.mu.Lock()
	w.refuse = fn
	w.mu.Unlock()
}

// Requests counts the SHMEM requests received.
func (w *Window) Requests() int { w.mu.Lock(); defer w.mu.Unlock(); return w.requests }

// Err returns the first protocol error met while serving (a malformed
// request), or nil.
func (w *Window) Err() error { w.mu.Lock(); defer w.mu.Unlock(); return w.err }

// AttachWindow gives the back-end its request channel (SET_BACKEND_REQ_FD)
// and serves the window's side of it. The protocol features must include
// BACKEND_REQ; SHMEM, BACKEND_SEND_FD and REPLY_ACK for the back-end to
// use the window.
func (f *Frontend) AttachWindow(w *Window) error {
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(sp[1])
	file := os.NewFile(uintptr(sp[0]), "backend-req")
	c, err := net.FileConn(file)
	file.Close()
	if err != nil {
		return err
	}
	if err := f.Do(vhostuser.VHOST_USER_SET_BACKEND_REQ_FD, nil, sp[1]); err != nil {
		c.Close()
		return err
	}
	w.conn = c.(*net.UnixConn)
	w.done = make(chan struct{})
	go w.serve()
	return nil
}

// GetShmemConfig asks for the device's shared memory region sizes
// (GET_SHMEM_CONFIG) and returns them by shmid, up to the last non-zero.
func (f *Frontend) GetShmemConfig() ([]uint64, error) {
	p, err := f.Call(vhostuser.VHOST_USER_GET_SHMEM_CONFIG, nil)
	if err != nil {
		return nil, err
	}
	if len(p) != 8+8*vhostuser.MaxShmemRegions {
		return nil, fmt.Errorf("GET_SHMEM_CONFIG: reply of %d bytes", len(p))
	}
	var sizes []uint64
	n := 0
	for i := 0; i < vhostuser.MaxShmemRegions; i++ {
		if v := le.Uint64(p[8+8*i:]); v != 0 {
			sizes = append(sizes, make([]uint64, i+1-len(sizes))...)
			sizes[i] = v
			n++
		}
	}
	if uint32(n) != le.Uint32(p) {
		return nil, fmt.Errorf("GET_SHMEM_CONFIG: nregions %d, %d sizes non-zero", le.Uint32(p), n)
	}
	return sizes, nil
}

// Close stops serving (the front-end's end of the channel closes) and
// unmaps the window.
func (w *Window) Close() error {
	if w.conn != nil {
		w.conn.Close()
		<-w.done
	}
	err := unix.Munmap(w.mem)
	w.mf.Close()
	return err
}

func (w *Window) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

func (w *Window) serve() {
	defer close(w.done)
	var hdr [12]byte
	oob := make([]byte, unix.CmsgSpace(4*8))
	for {
		n, oobn, _, _, err := w.conn.ReadMsgUnix(hdr[:], oob)
		if err != nil || n == 0 {
			return
		}
		var fds []int
		if oobn > 0 {
			if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil {
				for _, m := range msgs {
					if r, err := unix.ParseUnixRights(&m); err == nil {
						fds = append(fds, r...)
					}
				}
			}
		}
		if n < len(hdr) {
			if _, err := io.ReadFull(w.conn, hdr[n:]); err != nil {
				closeAll(fds)
				return
			}
		}
		req, flags, size := vhostuser.BackendRequest(le.Uint32(hdr[0:])), le.Uint32(hdr[4:]), le.Uint32(hdr[8:])
		if size > 4096 {
			w.fail(fmt.Errorf("back-end request %d: size %d", req, size))
			closeAll(fds)
			return
		}
		p := make([]byte, size)
		if _, err := io.ReadFull(w.conn, p); err != nil {
			closeAll(fds)
			return
		}
		ans := w.handle(req, p, fds)
		closeAll(fds)
		if flags&vhostuser.VHOST_USER_NEED_REPLY == 0 || w.Silent.Load() {
			continue
		}
		var r [20]byte
		le.PutUint32(r[0:], uint32(req))
		le.PutUint32(r[4:], vhostuser.VHOST_USER_VERSION|vhostuser.VHOST_USER_REPLY_MASK)
		le.PutUint32(r[8:], 8)
		le.PutUint64(r[12:], ans)
		if _, err := w.conn.Write(r[:]); err != nil {
			return
		}
	}
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// handle applies one request and returns the answer (0 success, 1 failure,
// as QEMU's !!ret).
func (w *Window) handle(req vhostuser.BackendRequest, p []byte, fds []int) uint64 {
	if req != vhostuser.VHOST_USER_BACKEND_SHMEM_MAP && req != vhostuser.VHOST_USER_BACKEND_SHMEM_UNMAP {
		w.fail(fmt.Errorf("unexpected back-end request %d", req))
		return 1
	}
	w.mu.Lock()
	w.requests++
	refuse := w.refuse
	w.mu.Unlock()
	m, err := vhostuser.DecodeMMap(p)
	if err != nil {
		w.fail(err)
		return 1
	}
	if refuse != nil {
		if v := refuse(req, m); v != 0 {
			return v
		}
	}
	ps := uint64(os.Getpagesize())
	if m.ShmID != 0 || m.ShmOffset+m.Len > w.Size || (m.ShmOffset|m.Len)%ps != 0 {
		return 1
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if req == vhostuser.VHOST_USER_BACKEND_SHMEM_UNMAP {
		old, ok := w.maps[m.ShmOffset]
		if len(fds) != 0 || !ok || old.Len != m.Len {
			return 1
		}
		if err := w.mapAnon(m.ShmOffset, m.Len); err != nil {
			w.err = err
			return 1
		}
		delete(w.maps, m.ShmOffset)
		return 0
	}
	if len(fds) != 1 || m.FdOffset%ps != 0 {
		return 1
	}
	for off, old := range w.maps {
		if m.ShmOffset < off+old.Len && off < m.ShmOffset+m.Len {
			return 1
		}
	}
	if err := w.mapFile(m.ShmOffset, m.Len, fds[0], m.FdOffset, m.Flags&vhostuser.VHOST_USER_FLAG_MAP_RW != 0); err != nil {
		return 1
	}
	w.maps[m.ShmOffset] = WindowMapping{Len: m.Len, FdOffset: m.FdOffset, Writable: m.Flags&vhostuser.VHOST_USER_FLAG_MAP_RW != 0}
	return 0
}
