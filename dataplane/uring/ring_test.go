package uring

import (
	"testing"
	"time"
	"unsafe"

	"github.com/fastfsd/fastfsd/internal/testutil"
)

// TestRingResubmitsLeftSQEs: the kernel stops submitting at the first SQE
// that fails (an unknown opcode here; no IORING_SETUP_SUBMIT_ALL) and
// leaves the rest in the ring; the next submitAndWait submits them. It
// used to count only SQEs filled since the last call, so the NOP behind the
// bad SQE was never submitted and a worker waiting for its completion
// would wait for ever.
func TestRingResubmitsLeftSQEs(t *testing.T) {
	r, err := newRing(8)
	if err != nil {
		if testutil.Strict() {
			t.Fatalf("io_uring: %v", err)
		}
		t.Skipf("needs io_uring (io_uring_setup; kernel.io_uring_disabled 0): %v", err)
	}
	defer r.close()
	bad := r.nextSQE()
	bad[0] = 0xfe // no such opcode: fails at submission, consumed with an error CQE
	*(*uint64)(unsafe.Pointer(&bad[32])) = 1
	nop := r.nextSQE()
	nop[0] = 0 // IORING_OP_NOP
	*(*uint64)(unsafe.Pointer(&nop[32])) = 2
	if err := r.submitAndWait(1); err != nil {
		t.Fatal(err)
	}
	got := map[uint64]int32{}
	collect := func() { r.reap(func(ud uint64, res int32) { got[ud] = res }) }
	collect()
	if _, ok := got[1]; !ok {
		t.Fatalf("no completion for the bad SQE: %v", got)
	}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		if _, ok := got[2]; ok {
			break
		}
		if err := r.submitAndWait(0); err != nil {
			t.Fatal(err)
		}
		collect()
		time.Sleep(time.Millisecond)
	}
	if res, ok := got[2]; !ok {
		t.Fatalf("the NOP behind the failed SQE never completed (completions %v): it was left unsubmitted", got)
	} else if res != 0 {
		t.Fatalf("NOP: result %d, want 0", res)
	}
	if got[1] >= 0 {
		t.Errorf("bad opcode: result %d, want an error", got[1])
	}
}
