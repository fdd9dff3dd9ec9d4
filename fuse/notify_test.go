package fuse

import (
	"syscall"
	"testing"

	"github.com/fastfsd/fastfsd/fuse/abi"
)

// retrieveReply is the kernel's NOTIFY_REPLY for retrieval id: data from
// off; size is what the header claims.
func retrieveReply(id, off uint64, size uint32, data string) []byte {
	in := abi.NotifyRetrieveIn{Offset: off, Size: size}
	return mkReq(abi.OpNotifyReply, id, 2, enc(&in, abi.NotifyRetrieveInSize), []byte(data))
}

// TestRetrieveRouting: a NOTIFY_REPLY goes to the Retrieval with its
// unique, copied into the caller's buffer, and never to another; a reply
// nobody waits for, or one that claims more than it carries, is dropped;
// none has a reply of its own.
func TestRetrieveRouting(t *testing.T) {
	h := newHarness(t, Options{})
	a, err := h.s.BeginRetrieve(make([]byte, 4))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := h.s.BeginRetrieve(make([]byte, 64))
	if a.ID() == b.ID() {
		t.Fatal("two retrievals with one ID")
	}
	if n := h.do(retrieveReply(b.ID(), 4096, 5, "hello")); n != 0 {
		t.Fatalf("NOTIFY_REPLY got a %d-byte reply, want none", n)
	}
	select {
	case <-b.Done():
	default:
		t.Fatal("retrieval b not done after its reply")
	}
	if off, n := b.Result(); off != 4096 || n != 5 || string(b.dst[:n]) != "hello" {
		t.Fatalf("b: off %d, %q", off, b.dst[:n])
	}
	select {
	case <-a.Done():
		t.Fatal("retrieval a done by b's reply")
	default:
	}
	// Claims 10 bytes, carries 3: dropped, a still waits.
	h.do(retrieveReply(a.ID(), 0, 10, "abc"))
	select {
	case <-a.Done():
		t.Fatal("a done by a reply shorter than it claims")
	default:
	}
	// More than the buffer holds: cut to the buffer.
	h.do(retrieveReply(a.ID(), 0, 6, "abcdef"))
	if _, n := a.Result(); n != 4 || string(a.dst) != "abcd" {
		t.Fatalf("a: %d bytes %q, want the 4 its buffer holds", n, a.dst[:n])
	}
	// No taker (a finished, unknown ID, an ended retrieval): dropped.
	c, _ := h.s.BeginRetrieve(make([]byte, 4))
	h.s.EndRetrieve(c)
	for _, id := range []uint64{a.ID(), 999, c.ID()} {
		if n := h.do(retrieveReply(id, 0, 1, "z")); n != 0 {
			t.Fatalf("NOTIFY_REPLY for %d got a reply", id)
		}
	}
	if c.dst[0] != 0 {
		t.Fatal("an ended retrieval's buffer was written")
	}
	if n := h.do(mkReq(abi.OpNotifyReply, 5, 2, []byte{1, 2})); n != 0 {
		t.Fatal("a truncated NOTIFY_REPLY got a reply")
	}
}

// TestRetrieveBound: at most maxRetrievals wait at once.
func TestRetrieveBound(t *testing.T) {
	h := newHarness(t, Options{})
	var rs []*Retrieval
	for range maxRetrievals {
		r, err := h.s.BeginRetrieve(nil)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	if _, err := h.s.BeginRetrieve(nil); err != syscall.EAGAIN {
		t.Fatalf("retrieval %d: %v, want EAGAIN", maxRetrievals+1, err)
	}
	h.s.EndRetrieve(rs[0])
	if _, err := h.s.BeginRetrieve(nil); err != nil {
		t.Fatalf("after one ended: %v", err)
	}
}

// TestPollWithoutPoller: POLL on a filesystem without fs.Poller is
// ENOSYS (the kernel then takes files as always ready).
func TestPollWithoutPoller(t *testing.T) {
	h := newHarness(t, Options{})
	in := abi.PollIn{Fh: 1, Kh: 7, Flags: abi.PollScheduleNotify, Events: 1}
	h.fails(mkReq(abi.OpPoll, 9, 2, enc(&in, abi.PollInSize)), syscall.ENOSYS)
}
