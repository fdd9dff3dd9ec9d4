package vring

import (
	"math/bits"
	"sync/atomic"
	"unsafe"
)

// maxCASAttempts bounds Field.Store's compare-and-swap loop. Each failure
// means the guest wrote the other half of the word in between; a correct
// guest does that rarely, a hostile one may do it forever.
const maxCASAttempts = 128

// hostLittleEndian is fixed at init; the branch on it is always predicted.
var hostLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// le converts between a word as loaded from memory and its little-endian
// value (the conversion is its own inverse).
func le(w uint32) uint32 {
	if hostLittleEndian {
		return w
	}
	return bits.ReverseBytes32(w)
}

// wordPtr returns a pointer to the 32-bit word at word[0], or nil if word is
// shorter than 4 bytes or not 4-byte aligned in host memory.
func wordPtr(word []byte) *uint32 {
	if len(word) < 4 {
		return nil
	}
	p := unsafe.Pointer(unsafe.SliceData(word))
	if uintptr(p)%4 != 0 {
		return nil
	}
	return (*uint32)(p)
}

// Field is a little-endian 16-bit field of guest memory, reached through the
// aligned 32-bit word that contains it. The zero Field is invalid.
type Field struct {
	w     *uint32 // the word, inside a guest memory mapping
	shift uint32  // 0 if the field is bytes 0-1 of the word, 16 if bytes 2-3
}

// NewField returns the field at byte offset off (0 or 2) of the 4-byte,
// 4-aligned view word. It reports false if word is too short or misaligned
// or off is not 0 or 2.
func NewField(word []byte, off uint64) (Field, bool) {
	p := wordPtr(word)
	if p == nil || (off != 0 && off != 2) {
		return Field{}, false
	}
	return Field{w: p, shift: uint32(off * 8)}, true
}

// Load atomically loads the field (sequentially consistent, so at least
// acquire).
func (f Field) Load() uint16 {
	return uint16(le(atomic.LoadUint32(f.w)) >> f.shift)
}

// Store atomically replaces the field, leaving the other half of the word
// as it is (sequentially consistent, so at least release). It reports false
// if the other half kept changing for maxCASAttempts attempts; the field is
// then unchanged.
func (f Field) Store(v uint16) bool {
	mask := uint32(0xffff) << f.shift
	for range maxCASAttempts {
		old := atomic.LoadUint32(f.w)
		nv := le(old)&^mask | uint32(v)<<f.shift
		if atomic.CompareAndSwapUint32(f.w, old, le(nv)) {
			return true
		}
	}
	return false
}

// Word is a 32-bit word of guest memory holding two little-endian 16-bit
// fields that one side owns entirely, such as the used ring's {flags, idx}.
type Word struct {
	w *uint32
}

// NewWord returns the word at word[0], or false if word is shorter than 4
// bytes or misaligned.
func NewWord(word []byte) (Word, bool) {
	p := wordPtr(word)
	return Word{w: p}, p != nil
}

// Load atomically loads the word: lo is bytes 0-1, hi bytes 2-3.
func (w Word) Load() (lo, hi uint16) {
	v := le(atomic.LoadUint32(w.w))
	return uint16(v), uint16(v >> 16)
}

// Store atomically stores lo into bytes 0-1 and hi into bytes 2-3, and is
// a full barrier: no later load is satisfied before the store is visible
// (the store→load order virtio's notification suppression needs).
//
// It is a swap, not atomic.StoreUint32: built with -race, Go's atomic
// stores run through the ThreadSanitizer runtime, which makes them a plain
// MOV on amd64 with no fence after it (golang/go#58020), so a following
// load could pass the store and a notification be lost (a virtio-fs test
// saw the device load used_event before its used.idx store was visible,
// while the driver set used_event and read the old used.idx). A swap is
// an XCHG in both builds (the same instruction atomic.StoreUint32 is
// without -race) and SWPAL or LDAXR/STLXR on arm64.
func (w Word) Store(lo, hi uint16) {
	atomic.SwapUint32(w.w, le(uint32(lo)|uint32(hi)<<16))
}
