package fuse

import (
	"fmt"
	"syscall"
	"testing"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse/abi"
)

// TestNotDelivered: a reply the kernel never took gives back exactly the
// references it carried (a lookup per entry, an open handle), and no
// other reply gives back anything.
func TestNotDelivered(t *testing.T) {
	create := enc(&abi.CreateIn{Mode: 0o600, Flags: syscall.O_RDWR}, abi.CreateInSize)
	mknod := enc(&abi.MknodIn{Mode: syscall.S_IFIFO | 0o600}, abi.MknodInSize)
	mkdir := enc(&abi.MkdirIn{Mode: 0o700}, abi.MkdirInSize)
	link := enc(&abi.LinkIn{OldNodeID: 5}, abi.LinkInSize)
	readIn := enc(&abi.ReadIn{Fh: 88, Size: 4096}, abi.ReadInSize)
	for _, c := range []struct {
		name string
		req  []byte
		want []string // the filesystem calls NotDelivered makes
	}{
		{"LOOKUP", mkReq(abi.OpLookup, 10, 1, cstr("f")), []string{"forget 5 1"}},
		{"negative LOOKUP", mkReq(abi.OpLookup, 10, 1, cstr("missing")), nil},
		{"MKNOD", mkReq(abi.OpMknod, 10, 1, mknod, cstr("p")), []string{"forget 9 1"}},
		{"MKDIR", mkReq(abi.OpMkdir, 10, 1, mkdir, cstr("d")), []string{"forget 9 1"}},
		{"SYMLINK", mkReq(abi.OpSymlink, 10, 1, cstr("l"), cstr("target")), []string{"forget 9 1"}},
		{"LINK", mkReq(abi.OpLink, 10, 1, link, cstr("h")), []string{"forget 5 1"}},
		{"CREATE", mkReq(abi.OpCreate, 10, 1, create, cstr("new")), []string{"forget 9 1", fmt.Sprintf("release 9 fh 78 flags %#o", syscall.O_RDWR)}},
		{"TMPFILE", mkReq(abi.OpTmpfile, 10, 1, create, cstr("/")), []string{"forget 9 1", fmt.Sprintf("release 9 fh 79 flags %#o", syscall.O_RDWR)}},
		{"OPEN", mkReq(abi.OpOpen, 10, 5, enc(&abi.OpenIn{Flags: syscall.O_WRONLY}, abi.OpenInSize)), []string{fmt.Sprintf("release 5 fh 77 flags %#o", syscall.O_WRONLY)}},
		{"OPENDIR", mkReq(abi.OpOpendir, 10, 1, enc(&abi.OpenIn{}, abi.OpenInSize)), []string{"releasedir 1 fh 88"}},
		// The fake hands entries for "." and ".." too; the kernel ignores
		// them, so the filesystem counts none (fs.DirSink.Plus).
		{"READDIRPLUS", mkReq(abi.OpReaddirplus, 10, 1, readIn), []string{"forget 102 1", "forget 103 1"}},
		{"READDIR", mkReq(abi.OpReaddir, 10, 1, readIn), nil},
		{"GETATTR", mkReq(abi.OpGetattr, 10, 5, enc(&abi.GetattrIn{}, abi.GetattrInSize)), nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			h.fs.dir = []string{".", "..", "a", "b"}
			h.ok(c.req)
			h.fs.reset()
			h.s.NotDelivered(h.r, h.out)
			if got := undeliveredCalls(h.fs); fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("calls %q, want %q", got, c.want)
			}
		})
	}

	t.Run("error reply", func(t *testing.T) {
		h := newHarness(t, Options{})
		h.fs.fail = syscall.EACCES
		h.fails(mkReq(abi.OpLookup, 10, 1, cstr("f")), syscall.EACCES)
		h.fs.fail = 0
		h.fs.reset()
		h.s.NotDelivered(h.r, h.out)
		if got := undeliveredCalls(h.fs); len(got) != 0 {
			t.Errorf("calls %q for an error reply", got)
		}
	})
	t.Run("another request's reply", func(t *testing.T) {
		// A transport's own error reply, or a reply written before the
		// Request served another request, names another unique.
		h := newHarness(t, Options{})
		h.ok(mkReq(abi.OpLookup, 10, 1, cstr("f")))
		old := append([]byte(nil), h.out...)
		h.ok(mkReq(abi.OpLookup, 12, 1, cstr("g")))
		h.fs.reset()
		h.s.NotDelivered(h.r, old)
		if got := undeliveredCalls(h.fs); len(got) != 0 {
			t.Errorf("calls %q for a stale reply", got)
		}
	})
	t.Run("poll hack", func(t *testing.T) {
		h := newHarness(t, Options{PollHack: true})
		h.ok(mkReq(abi.OpLookup, 10, 1, cstr(PollHackName)))
		h.fs.reset()
		h.s.NotDelivered(h.r, h.out)
		if got := undeliveredCalls(h.fs); len(got) != 0 {
			t.Errorf("calls %q for the engine's own file", got)
		}
	})
	t.Run("passthrough backing id", func(t *testing.T) {
		back := &fakeBacking{}
		h := newHarness(t, Options{Backing: back})
		h.fs.pfd = 33
		h.ok(mkReq(abi.OpOpen, 10, 5, enc(&abi.OpenIn{}, abi.OpenInSize)))
		if len(back.open) != 1 {
			t.Fatalf("registrations %v", back.open)
		}
		h.s.NotDelivered(h.r, h.out)
		if len(back.open) != 0 || len(back.closed) != 1 {
			t.Errorf("after an undelivered OPEN: open %v, closed %v; want the id closed", back.open, back.closed)
		}
	})
}

// undeliveredCalls lists the forget and release calls f recorded.
func undeliveredCalls(f *fakeFS) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		switch c.op {
		case "forget":
			out = append(out, fmt.Sprintf("forget %d %d", c.ino, c.a))
		case "release":
			out = append(out, fmt.Sprintf("release %d fh %d flags %#o", c.ino, c.fh, c.flags))
		case "releasedir":
			out = append(out, fmt.Sprintf("releasedir %d fh %d", c.ino, c.fh))
		default:
			out = append(out, c.op)
		}
	}
	return out
}

var _ fs.FileSystem = (*fakeFS)(nil)
