package mem

import (
	"bufio"
	"bytes"
	"math/bits"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
)

// The mapping budget.
//
// Mapping a region costs address space, not memory: a front-end can hand
// over a sparse memfd of tens of TiB for free, and each Map of it takes
// that much of this process's address space. Once a front-end had taken
// nearly all of it, the Go runtime's next heap growth failed with "fatal
// error: out of memory" (not a panic: nothing recovers it) and every
// session of the daemon died. So Map counts the bytes of every live
// mapping it made in the process, all sessions together, and refuses one
// that would take the total past MaxMapped.

var (
	// mapped is the length of every live mapping Map made (a Region's
	// mapping from offset 0, so MmapOffset counts). Add'ed by Map before
	// it maps, subtracted when a mapping is released (Region.Close, or
	// the GC cleanup of a forgotten Region).
	mapped atomic.Int64
	// maxMapped is the budget set by SetMaxMapped; 0: the default.
	maxMapped atomic.Int64
)

// DefaultMaxMapped is the default mapping budget: half of this process's
// user address space (64 TiB with the usual 47-bit space of x86-64),
// leaving the other half to the Go heap, stacks and everything else. It
// is far beyond any guest's memory on such a host.
func DefaultMaxMapped() int64 { return int64(addressSpace() / 2) }

// MaxMapped returns the mapping budget: the most bytes of guest memory Map
// keeps mapped at once in this process.
func MaxMapped() int64 {
	if n := maxMapped.Load(); n > 0 {
		return n
	}
	return DefaultMaxMapped()
}

// SetMaxMapped sets the mapping budget (n <= 0: DefaultMaxMapped) and
// returns the previous setting (0 for the default). Lowering it unmaps
// nothing: later Maps are refused until enough is released.
func SetMaxMapped(n int64) int64 { return maxMapped.Swap(max(n, 0)) }

// Mapped returns how many bytes of guest memory Map has mapped now.
func Mapped() int64 { return mapped.Load() }

// charge takes n bytes of the budget; false (nothing taken) if that would
// pass it.
func charge(n int64) bool {
	limit := MaxMapped()
	for {
		cur := mapped.Load()
		if n > limit-cur {
			return false
		}
		if mapped.CompareAndSwap(cur, cur+n) {
			return true
		}
	}
}

// uncharge gives n bytes back.
func uncharge(n int64) { mapped.Add(-n) }

// fallbackAddressSpace is assumed when /proc/self/maps cannot be read (a
// sandbox without /proc): x86-64's 47-bit user address space.
const fallbackAddressSpace = 1 << 47

// addressSpace is the size of the user address space: the power of two at
// or above the end of the initial stack, which the kernel puts at the top
// of it (0x7ffc… on x86-64 with 4-level paging, and with 5-level paging
// unless a program asks for high addresses; 0xffff… on arm64 with 48-bit
// addresses).
var addressSpace = sync.OnceValue(func() uint64 {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return fallbackAddressSpace
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasSuffix(line, []byte("[stack]")) {
			continue
		}
		dash := bytes.IndexByte(line, '-')
		sp := bytes.IndexByte(line, ' ')
		if dash < 0 || sp < dash {
			break
		}
		end, err := strconv.ParseUint(string(line[dash+1:sp]), 16, 64)
		if err != nil || end < 1<<32 {
			break
		}
		return 1 << bits.Len64(end-1)
	}
	return fallbackAddressSpace
})
