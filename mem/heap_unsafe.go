package mem

import "unsafe"

// heapBytes returns the first n bytes of words as a byte slice with cap n.
// words gives 8-byte alignment, which the 32- and 64-bit atomics rings use on
// guest memory need. Preconditions: n <= 8*len(words).
func heapBytes(words []uint64, n uint64) []byte {
	if n == 0 {
		return []byte{}
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), 8*len(words))
	return b[:n:n]
}
