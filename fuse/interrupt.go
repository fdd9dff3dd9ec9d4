package fuse

import (
	"encoding/binary"
	"sync"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse/abi"
)

// interrupts tracks the requests that may block for long, so that
// FUSE_INTERRUPT can reach them. Only such requests (Blocking) register:
// READ, WRITE, GETATTR and the like never take the lock.
//
// An INTERRUPT may be read by one worker before another worker that read
// the original request has registered it; the kernel sends it only after
// the original was read, so such an early interrupt is remembered in a
// small ring and applied at registration. Uniques are never reused while a
// request is in flight, so a stale ring entry is harmless and is simply
// overwritten.
type interrupts struct {
	mu sync.Mutex
	// inflight maps a registered request's unique to its flag. +checklocks:mu
	inflight map[uint64]*fs.Interrupt
	// early holds uniques interrupted before they registered. +checklocks:mu
	early [32]uint64
	// next is the ring slot early writes next. +checklocks:mu
	next int
	// closed is set by InterruptAll: every registration from then on is
	// interrupted at once (the connection is ending). +checklocks:mu
	closed bool
}

func (t *interrupts) init() { t.inflight = make(map[uint64]*fs.Interrupt) }

// WaitingLock reports whether a request with op and body (the bytes after
// the in header) is a lock request that may wait: SETLKW asking for a read
// or a write lock. SETLKW with F_UNLCK never waits — the kernel sends it
// for an unlock through F_SETLKW and for flock's LOCK_UN — so a transport
// serves it like a quick request, whatever its lock waiters hold. A body
// too short to say is no wait either: the engine refuses it at once.
func WaitingLock(op abi.Opcode, body []byte) bool {
	// fuse_lk_in: fh, owner, then fuse_file_lock{start, end, type, pid}.
	const typeOff = 32
	if op != abi.OpSetlkw || len(body) < typeOff+4 {
		return false
	}
	return binary.NativeEndian.Uint32(body[typeOff:]) != syscall.F_UNLCK
}

// Blocking reports whether a request with op may block for long in the
// filesystem — a lock wait (SETLKW, blocking flock), FSYNC, FSYNCDIR,
// SYNCFS, FALLOCATE, COPY_FILE_RANGE — so that a transport serves it on a
// helper, never on a worker that other requests wait behind (DESIGN.md,
// Concurrency). These are also the requests that register for
// FUSE_INTERRUPT.
func Blocking(op abi.Opcode) bool {
	switch op {
	case abi.OpSetlkw, abi.OpFsync, abi.OpFsyncdir, abi.OpSyncfs,
		abi.OpFallocate, abi.OpCopyFileRange, abi.OpCopyFileRange64:
		return true
	}
	return false
}

// register makes unique interruptible through f; the caller must
// unregister it before its reply is sent.
func (t *interrupts) register(unique uint64, f *fs.Interrupt) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, u := range t.early {
		if u == unique && u != 0 {
			t.early[i] = 0
			f.Set()
		}
	}
	if t.closed {
		f.Set()
	}
	t.inflight[unique] = f
}

// unregister ends unique's registration and clears its flag. Once it is
// out of inflight nothing else writes the flag, so the Request's next
// request starts uninterrupted.
func (t *interrupts) unregister(unique uint64) {
	t.mu.Lock()
	if f, ok := t.inflight[unique]; ok {
		delete(t.inflight, unique)
		f.Clear()
	}
	t.mu.Unlock()
}

// interrupt sets the flag of the request unique, or remembers unique if it
// has not registered (yet, or ever: ops that do not block never do).
func (t *interrupts) interrupt(unique uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f, ok := t.inflight[unique]; ok {
		f.Set()
		return
	}
	t.early[t.next] = unique
	t.next = (t.next + 1) % len(t.early)
}

// all interrupts every registered request and every one that registers
// from now on.
func (t *interrupts) all() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for _, f := range t.inflight {
		f.Set()
	}
}

// InterruptAll interrupts every request that may block (a lock wait, an
// fsync…) now in flight and every one that starts later: they answer
// EINTR soon. A transport calls it when the connection ends (unmount,
// SIGTERM) so that no helper stays blocked; the engine calls it itself
// on DESTROY.
func (s *Server) InterruptAll() { s.intr.all() }

// Interrupt interrupts the request r is serving, as FUSE_INTERRUPT would:
// for transports without FUSE_INTERRUPT (virtio-fs stopping a queue).
// Handle clears the state when it returns; a transport that may call
// Interrupt after that (racing the end of the request) calls
// ClearInterrupt before reusing r.
func (r *Request) Interrupt() { r.req.intr.Set() }

// ClearInterrupt readies r for its next request after an Interrupt.
func (r *Request) ClearInterrupt() { r.req.intr.Clear() }
