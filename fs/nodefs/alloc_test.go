package nodefs_test

import (
	"bytes"
	"testing"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/nodefs"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/fuse/abi"
)

type marshaler interface{ Marshal([]byte) bool }

func enc(m marshaler, n int) []byte {
	b := make([]byte, n)
	if !m.Marshal(b) {
		panic("enc: short buffer")
	}
	return b
}

func mkReq(op abi.Opcode, node uint64, parts ...[]byte) []byte {
	body := bytes.Join(parts, nil)
	h := abi.InHeader{Len: uint32(abi.InHeaderSize + len(body)), Opcode: op, Unique: 10, NodeID: node, UID: 1000, GID: 100, PID: 42}
	return append(enc(&h, abi.InHeaderSize), body...)
}

// serve runs one request through the engine and returns the reply's
// errno and arguments.
func serve(t testing.TB, s *fuse.Server, r *fuse.Request, in []byte) (int32, []byte) {
	t.Helper()
	r.In = in
	n := s.Handle(r)
	var h abi.OutHeader
	if n < abi.OutHeaderSize || !h.Unmarshal(r.Out[:n]) {
		t.Fatalf("reply of %d bytes has no header", n)
	}
	return h.Error, r.Out[abi.OutHeaderSize:n]
}

// hotPath serves a tree through the FUSE engine, looks up "f" and opens
// it, and returns the hot requests on it: GETATTR and READ of the open
// file, and a LOOKUP of it while the client holds it.
func hotPath(t testing.TB) (*fuse.Server, *fuse.Request, map[string][]byte, *nodefs.Tree) {
	root := newDir()
	root.children["f"] = &testFile{data: bytes.Repeat([]byte("x"), 4096)}
	tree := nodefs.New(root, nil)
	s := fuse.NewServer(tree, fuse.Options{})
	r := s.NewRequest()
	lo, hi := (abi.InitFlags(1<<43-1) &^ abi.InitReserved).Split()
	if e, _ := serve(t, s, r, mkReq(abi.OpInit, 0, enc(&abi.InitIn{Major: 7, Minor: 45, MaxReadahead: 128 << 10, Flags: lo, Flags2: hi}, abi.InitInSize))); e != 0 {
		t.Fatalf("INIT: %d", e)
	}
	lookup := mkReq(abi.OpLookup, 1, []byte("f\x00"))
	e, out := serve(t, s, r, lookup)
	var ent abi.EntryOut
	if e != 0 || !ent.Unmarshal(out) {
		t.Fatalf("LOOKUP f: %d", e)
	}
	e, out = serve(t, s, r, mkReq(abi.OpOpen, ent.NodeID, enc(&abi.OpenIn{}, abi.OpenInSize)))
	var o abi.OpenOut
	if e != 0 || !o.Unmarshal(out) || o.Fh == 0 {
		t.Fatalf("OPEN f: %d, fh %d", e, o.Fh)
	}
	return s, r, map[string][]byte{
		"GETATTR": mkReq(abi.OpGetattr, ent.NodeID, enc(&abi.GetattrIn{}, abi.GetattrInSize)),
		"LOOKUP":  lookup,
		"READ":    mkReq(abi.OpRead, ent.NodeID, enc(&abi.ReadIn{Fh: o.Fh, Size: 4096}, abi.ReadInSize)),
	}, tree
}

// TestAllocs: GETATTR, LOOKUP of a node the client holds, and READ
// through an open handle allocate nothing, engine and Tree together.
func TestAllocs(t *testing.T) {
	s, r, reqs, _ := hotPath(t)
	for name, in := range reqs {
		t.Run(name, func(t *testing.T) {
			if e, _ := serve(t, s, r, in); e != 0 {
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
	lo, hi := (abi.InitFlags(1<<43-1) &^ abi.InitReserved).Split()
	if e, _ := serve(t, s, r, mkReq(abi.OpInit, 0, enc(&abi.InitIn{Major: 7, Minor: 45, MaxReadahead: 128 << 10, Flags: lo, Flags2: hi}, abi.InitInSize))); e != 0 {
		t.Fatalf("INIT: %d", e)
	}
	readdir := mkReq(abi.OpReaddir, 1, enc(&abi.ReadIn{Size: 4096}, abi.ReadInSize))
	if e, out := serve(t, s, r, readdir); e != 0 || len(out) == 0 {
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
