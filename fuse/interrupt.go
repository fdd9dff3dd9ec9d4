package fuse

import (
	"sync"
	"sync/atomic"

	"github.com/fastfsd/fastfsd/fuse/abi"
)

// interrupts tracks the requests that may block for long, so that
// FUSE_INTERRUPT can reach them. Only such requests (mayBlock) register:
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
	inflight map[uint64]*atomic.Bool
	// early holds uniques interrupted before they registered. +checklocks:mu
	early [32]uint64
	// next is the ring slot early writes next. +checklocks:mu
	next int
}

func (t *interrupts) init() { t.inflight = make(map[uint64]*atomic.Bool) }

// mayBlock reports whether requests with op register for interrupts.
func mayBlock(op abi.Opcode) bool {
	switch op {
	case abi.OpSetlkw, abi.OpFsync, abi.OpFsyncdir, abi.OpSyncfs,
		abi.OpFallocate, abi.OpCopyFileRange, abi.OpCopyFileRange64:
		return true
	}
	return false
}

// register makes unique interruptible through f; the caller must
// unregister it before its reply is sent.
func (t *interrupts) register(unique uint64, f *atomic.Bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, u := range t.early {
		if u == unique && u != 0 {
			t.early[i] = 0
			f.Store(true)
		}
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
		f.Store(false)
	}
	t.mu.Unlock()
}

// interrupt sets the flag of the request unique, or remembers unique if it
// has not registered (yet, or ever: ops that do not block never do).
func (t *interrupts) interrupt(unique uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if f, ok := t.inflight[unique]; ok {
		f.Store(true)
		return
	}
	t.early[t.next] = unique
	t.next = (t.next + 1) % len(t.early)
}
