package nodefs_test

import (
	"bytes"
	"testing"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/nodefs"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/fusetest"
)

// hotPath serves a tree through the FUSE engine, looks up "f" and opens
// it, and returns the hot requests on it: GETATTR and READ of the open
// file, and a LOOKUP of it while the client holds it.
func hotPath(t testing.TB) (*fuse.Server, *fuse.Request, map[string][]byte, *nodefs.Tree) {
	root := newDir()
	root.children["f"] = &testFile{data: bytes.Repeat([]byte("x"), 4096)}
	tree := nodefs.New(root, nil)
	s := fuse.NewServer(tree, fuse.Options{})
	r := s.NewRequest()
	fusetest.Init(t, s, r)
	lookup := fusetest.Req(abi.OpLookup, 1, []byte("f\x00"))
	e, out := fusetest.Serve(t, s, r, lookup)
	var ent abi.EntryOut
	if e != 0 || !ent.Unmarshal(out) {
		t.Fatalf("LOOKUP f: %d", e)
	}
	e, out = fusetest.Serve(t, s, r, fusetest.Req(abi.OpOpen, ent.NodeID, fusetest.Enc(&abi.OpenIn{}, abi.OpenInSize)))
	var o abi.OpenOut
	if e != 0 || !o.Unmarshal(out) || o.Fh == 0 {
		t.Fatalf("OPEN f: %d, fh %d", e, o.Fh)
	}
	return s, r, map[string][]byte{
		"GETATTR": fusetest.Req(abi.OpGetattr, ent.NodeID, fusetest.Enc(&abi.GetattrIn{}, abi.GetattrInSize)),
		"LOOKUP":  lookup,
		"READ":    fusetest.Req(abi.OpRead, ent.NodeID, fusetest.Enc(&abi.ReadIn{Fh: o.Fh, Size: 4096}, abi.ReadInSize)),
	}, tree
}

// TestAllocs: GETATTR, LOOKUP of a node the client holds, and READ
// through an open handle allocate nothing, engine and Tree together.
func TestAllocs(t *testing.T) {
	s, r, reqs, _ := hotPath(t)
	for name, in := range reqs {
		t.Run(name, func(t *testing.T) {
			if e, _ := fusetest.Serve(t, s, r, in); e != 0 {
				t.Fatalf("%s: errno %d", name, -e)
			}
			if a := testing.AllocsPerRun(500, func() { r.In = in; s.Handle(r) }); a != 0 {
				t.Errorf("%s: %v allocs per request, want 0", name, a)
			}
		})
	}
}

// TestReaddirAllocs: a plain READDIR allocates one DirList per request,
// however many entries it lists (as the package comment says).
func TestReaddirAllocs(t *testing.T) {
	entries := map[string]nodefs.Node{}
	for _, n := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		entries[n] = &nodefs.File{Data: []byte(n)}
	}
	s := fuse.NewServer(nodefs.New(&nodefs.Dir{Entries: entries}, nil), fuse.Options{})
	r := s.NewRequest()
	fusetest.Init(t, s, r)
	readdir := fusetest.Req(abi.OpReaddir, 1, fusetest.Enc(&abi.ReadIn{Size: 4096}, abi.ReadInSize))
	if e, out := fusetest.Serve(t, s, r, readdir); e != 0 || len(out) == 0 {
		t.Fatalf("READDIR: errno %d, %d bytes", -e, len(out))
	}
	if a := testing.AllocsPerRun(500, func() { r.In = readdir; s.Handle(r) }); a != 1 {
		t.Errorf("READDIR of %d entries: %v allocs per request, want 1 (the DirList)", len(entries), a)
	}
}

func benchHot(b *testing.B, name string) {
	s, r, reqs, _ := hotPath(b)
	in := reqs[name]
	b.ReportAllocs()
	for b.Loop() {
		r.In = in
		s.Handle(r)
	}
}

func BenchmarkGetattr(b *testing.B) { benchHot(b, "GETATTR") }
func BenchmarkLookup(b *testing.B)  { benchHot(b, "LOOKUP") }
func BenchmarkRead4K(b *testing.B)  { benchHot(b, "READ") }

var _ fs.FileSystem = (*nodefs.Tree)(nil)
