package fuse

import (
	"bytes"
	"testing"

	"github.com/fastfsd/fastfsd/fuse/abi"
)

// FuzzHandle serves arbitrary bytes as a request to an initialised engine
// with every optional feature on. Invariants: no panic (the engine's
// recover would hide one, so Panics must stay 0 with a filesystem that
// never panics); In is not written; the reply fits Out; the header's len
// equals n (+ DataLen with Dst); errors are header-only and in [-511, 0];
// the reply echoes the request's unique; NotDelivered of the reply does not
// panic.
func FuzzHandle(f *testing.F) {
	for _, c := range validRequests() {
		f.Add(c.in, false)
	}
	f.Add(mkReq(abi.OpRead, 10, 5, enc(&abi.ReadIn{Fh: 77, Size: 4096}, abi.ReadInSize)), true)
	f.Add(initReq(45, allKernelFlags), false)
	f.Add([]byte{}, false)
	f.Add(mkReq(abi.OpPoll, 10, uint64(PollHackInode), enc(&abi.PollIn{}, abi.PollInSize)), false)
	for _, req := range labelledRequests() {
		f.Add(withExt(req, append(secctxExt(selinux), suppGroupExt(7)...)), false)
	}
	f.Fuzz(func(t *testing.T, in []byte, useDst bool) {
		fake := newFakeFS()
		fake.pfd = 3
		s := NewServer(fake, Options{MaxWrite: 64 << 10, Locks: true, Backing: &fakeBacking{}, DAX: &fakeDAX{}, PollHack: true, SecurityLabel: true})
		r := s.NewRequest()
		r.In = initReq(45, allKernelFlags)
		if n := s.Handle(r); n == 0 || outHdr(t, r.Out, n).Error != 0 {
			t.Fatal("INIT failed")
		}
		orig := bytes.Clone(in)
		r.In = in
		var dst bufSink
		if useDst {
			dst.buf = make([]byte, 0, 8192)
			r.Dst = &dst
		}
		n := s.Handle(r)
		if s.Panics() != 0 {
			t.Fatalf("engine panicked on %x", in)
		}
		if !bytes.Equal(in, orig) {
			t.Fatal("Handle wrote into In")
		}
		if n < 0 || n > len(r.Out) {
			t.Fatalf("n = %d, len(Out) = %d", n, len(r.Out))
		}
		if n == 0 {
			if r.DataLen() != 0 {
				t.Fatalf("no reply but DataLen %d", r.DataLen())
			}
			return
		}
		var h abi.OutHeader
		if n < abi.OutHeaderSize || !h.Unmarshal(r.Out[:n]) {
			t.Fatalf("reply of %d bytes", n)
		}
		if int(h.Len) != n+r.DataLen() {
			t.Fatalf("header len %d, n %d, DataLen %d", h.Len, n, r.DataLen())
		}
		if h.Error > 0 || h.Error < -511 {
			t.Fatalf("error %d outside [-511, 0]", h.Error)
		}
		if h.Error != 0 && (n != abi.OutHeaderSize || r.DataLen() != 0) {
			t.Fatalf("error reply of %d bytes + %d data", n, r.DataLen())
		}
		var ih abi.InHeader
		ih.Unmarshal(in)
		if h.Unique != ih.Unique {
			t.Fatalf("reply unique %d, request unique %d", h.Unique, ih.Unique)
		}
		if noReply(ih.Opcode) {
			t.Fatalf("%v answered", ih.Opcode)
		}
		// The reply, refused by the client, gives back what it carried
		// (NotDelivered decodes it) without a panic.
		s.NotDelivered(r, r.Out[:n])
		if s.Panics() != 0 {
			t.Fatalf("NotDelivered panicked on the reply to %x", in)
		}
	})
}
