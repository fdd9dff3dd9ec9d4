package vhostuser_test

import (
	"errors"
	"testing"

	"github.com/fastfsd/fastfsd/mem"
	"github.com/fastfsd/fastfsd/vhostuser"
	vt "github.com/fastfsd/fastfsd/vhostuser/vhostusertest"
)

// TestHugeSparseRegions plays a front-end that claims more guest memory
// than the daemon's address space holds: a sparse memfd of 64 TiB (costs
// the front-end nothing) offered as regions of 32 TiB, 16 TiB, … 1 GiB.
// Each mapping the back-end accepted used address space without using
// memory; once the front-end had taken nearly all of it, the Go runtime's
// next heap growth failed with "fatal error: out of memory" and the whole
// daemon died. The back-end must refuse regions past its mapping budget
// (mem.MaxMapped), keep serving, and the process must still be able to
// allocate.
func TestHugeSparseRegions(t *testing.T) {
	h := start(t, 1)
	h.qemuStart()
	const fileSize = 1 << 46 // 64 TiB, sparse
	f, err := mem.NewMemfd("huge", fileSize)
	if err != nil {
		t.Skipf("a 64 TiB sparse memfd: %v", err)
	}
	defer f.Close()
	var accepted, refused uint64
	gpa := uint64(1 << 52)
	for size := uint64(fileSize / 2); size >= 1<<30; {
		r := vt.Region{GuestAddr: gpa, Size: size, UserAddr: gpa}
		err := h.f.AddMemReg(r, int(f.Fd()))
		var nack *vt.NackError
		switch {
		case err == nil:
			accepted += size
			gpa += size
		case errors.As(err, &nack):
			refused++
			size /= 2
		default:
			t.Fatalf("ADD_MEM_REG of %d GiB: %v (want acceptance or a refusal)", size>>30, err)
		}
	}
	t.Logf("accepted %d GiB of sparse regions, %d refusals; budget %d GiB", accepted>>30, refused, mem.MaxMapped()>>30)
	if accepted > uint64(mem.MaxMapped()) {
		t.Fatalf("accepted %d GiB of regions, more than the mapping budget of %d GiB", accepted>>30, mem.MaxMapped()>>30)
	}
	// The process can still grow its heap.
	b := make([]byte, 1<<30)
	b[len(b)-1] = 1
	// And the session still serves.
	if _, err := h.f.GetU64(vhostuser.VHOST_USER_GET_FEATURES); err != nil {
		t.Fatal(err)
	}
	h.stopAll()
}
