package fuse

import (
	"bytes"
	"log"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/fastfsd/fastfsd/fuse/abi"
)

// TestConcurrent serves every valid request from several workers at once,
// each with its own Request (run it with -race): the engine's shared state
// (agreement, interrupt registry, passthrough table) must hold up.
func TestConcurrent(t *testing.T) {
	fake := newFakeFS()
	fake.pfd = 3
	s := NewServer(fake, Options{Locks: true, Backing: &fakeBacking{}, DAX: &fakeDAX{}})
	r := s.NewRequest()
	r.In = initReq(45, allKernelFlags)
	if outHdr(t, r.Out, s.Handle(r)).Error != 0 {
		t.Fatal("INIT")
	}
	var reqs [][]byte
	for _, c := range validRequests() {
		if c.name != "DESTROY" {
			reqs = append(reqs, c.in)
		}
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.NewRequest()
			for i := range 300 {
				in := reqs[(i+w)%len(reqs)]
				r.In = in
				n := s.Handle(r)
				if n > 0 {
					var h abi.OutHeader
					h.Unmarshal(r.Out)
					if int(h.Len) != n+r.DataLen() || h.Error > 0 || h.Error < -511 {
						t.Errorf("worker %d: bad reply %+v (n %d)", w, h, n)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if s.Panics() != 0 {
		t.Errorf("%d panics", s.Panics())
	}
}

// TestLogger: with a Logger every request is logged, rejected ones with
// the reason.
func TestLogger(t *testing.T) {
	var buf bytes.Buffer
	h := newHarness(t, Options{Logger: log.New(&buf, "", 0)})
	h.ok(mkReq(abi.OpGetattr, 10, 5, enc(&abi.GetattrIn{}, abi.GetattrInSize)))
	h.do(mkReq(abi.OpLookup, 12, 1, []byte("no-nul")))
	out := buf.String()
	for _, want := range []string{"INIT: kernel 7.45", "unique 10 GETATTR node 5: error 0", "unique 12 LOOKUP node 1: error -22"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestPollHack(t *testing.T) {
	h := newHarness(t, Options{PollHack: true})
	h.fs.reset()
	var eo abi.EntryOut
	eo.Unmarshal(h.ok(mkReq(abi.OpLookup, 10, abi.RootID, cstr(PollHackName))))
	if eo.NodeID != uint64(PollHackInode) || eo.Attr.Mode&syscall.S_IFMT != syscall.S_IFREG {
		t.Fatalf("entry %+v", eo)
	}
	node := uint64(PollHackInode)
	h.ok(mkReq(abi.OpGetattr, 12, node, enc(&abi.GetattrIn{}, abi.GetattrInSize)))
	h.ok(mkReq(abi.OpOpen, 14, node, enc(&abi.OpenIn{}, abi.OpenInSize)))
	h.fails(mkReq(abi.OpPoll, 16, node, enc(&abi.PollIn{}, abi.PollInSize)), syscall.ENOSYS)
	h.fails(mkReq(abi.OpWrite, 17, node, enc(&abi.WriteIn{Size: 1}, abi.WriteInSize), []byte("x")), syscall.EPERM)
	h.ok(mkReq(abi.OpRelease, 18, node, enc(&abi.ReleaseIn{}, abi.ReleaseInSize)))
	if n := h.do(mkReq(abi.OpForget, 20, node, enc(&abi.ForgetIn{Nlookup: 1}, 8))); n != 0 {
		t.Errorf("FORGET answered")
	}
	list := append(enc(&abi.ForgetOne{NodeID: node, Nlookup: 1}, 16), enc(&abi.ForgetOne{NodeID: 6, Nlookup: 1}, 16)...)
	h.do(mkReq(abi.OpBatchForget, 22, 0, enc(&abi.BatchForgetIn{Count: 2}, 8), list))
	if len(h.fs.calls) != 1 || h.fs.calls[0].ino != 6 {
		t.Errorf("the filesystem saw %+v, want only the forget of 6", h.fs.calls)
	}
	// Without the option the name is the filesystem's.
	h2 := newHarness(t, Options{})
	h2.ok(mkReq(abi.OpLookup, 10, abi.RootID, cstr(PollHackName)))
	if c := h2.fs.last(); c.op != "lookup" || c.name != PollHackName {
		t.Errorf("call %+v", c)
	}
}
