package memfs_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/fastfsd/fastfsd/fs/memfs"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/fusetest"
)

// TestAllocs: GETATTR, LOOKUP of a file the client holds and a 4 KiB READ
// of it allocate nothing in the fuse engine and memfs together.
func TestAllocs(t *testing.T) {
	fsys := memfs.New(nil)
	if err := fsys.WriteFile("d/f", bytes.Repeat([]byte("x"), 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	s := fuse.NewServer(fsys, fuse.Options{})
	r := s.NewRequest()
	fusetest.Init(t, s, r)
	var d, f abi.EntryOut
	if e, out := fusetest.Serve(t, s, r, fusetest.Req(abi.OpLookup, 1, []byte("d\x00"))); e != 0 || !d.Unmarshal(out) {
		t.Fatalf("LOOKUP d: %d", e)
	}
	lookup := fusetest.Req(abi.OpLookup, d.NodeID, []byte("f\x00"))
	if e, out := fusetest.Serve(t, s, r, lookup); e != 0 || !f.Unmarshal(out) {
		t.Fatalf("LOOKUP f: %d", e)
	}
	var o abi.OpenOut
	if e, out := fusetest.Serve(t, s, r, fusetest.Req(abi.OpOpen, f.NodeID, fusetest.Enc(&abi.OpenIn{}, abi.OpenInSize))); e != 0 || !o.Unmarshal(out) {
		t.Fatalf("OPEN f: %d", e)
	}
	for name, in := range map[string][]byte{
		"GETATTR": fusetest.Req(abi.OpGetattr, f.NodeID, fusetest.Enc(&abi.GetattrIn{}, abi.GetattrInSize)),
		"LOOKUP":  lookup,
		"READ":    fusetest.Req(abi.OpRead, f.NodeID, fusetest.Enc(&abi.ReadIn{Fh: o.Fh, Offset: 2048, Size: 4096}, abi.ReadInSize)),
	} {
		if e, _ := fusetest.Serve(t, s, r, in); e != 0 {
			t.Fatalf("%s: errno %d", name, -e)
		}
		if a := testing.AllocsPerRun(500, func() { r.In = in; s.Handle(r) }); a != 0 {
			t.Errorf("%s: %v allocs per request, want 0", name, a)
		}
	}
}

// TestReaddirAllocs: a READDIR allocates the same whatever the number of
// entries it lists (nothing per entry).
func TestReaddirAllocs(t *testing.T) {
	fsys := memfs.New(nil)
	for i := range 20 {
		if err := fsys.WriteFile(fmt.Sprintf("d%d/f%d", i%2, i), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := fsys.WriteFile("d2/f", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := fuse.NewServer(fsys, fuse.Options{})
	r := s.NewRequest()
	fusetest.Init(t, s, r)
	allocs := func(name string) float64 {
		var d abi.EntryOut
		if e, out := fusetest.Serve(t, s, r, fusetest.Req(abi.OpLookup, 1, []byte(name+"\x00"))); e != 0 || !d.Unmarshal(out) {
			t.Fatalf("LOOKUP %s: %d", name, e)
		}
		var o abi.OpenOut
		if e, out := fusetest.Serve(t, s, r, fusetest.Req(abi.OpOpendir, d.NodeID, fusetest.Enc(&abi.OpenIn{}, abi.OpenInSize))); e != 0 || !o.Unmarshal(out) {
			t.Fatalf("OPENDIR %s: %d", name, e)
		}
		in := fusetest.Req(abi.OpReaddir, d.NodeID, fusetest.Enc(&abi.ReadIn{Fh: o.Fh, Size: 4096}, abi.ReadInSize))
		if e, out := fusetest.Serve(t, s, r, in); e != 0 || len(out) == 0 {
			t.Fatalf("READDIR %s: errno %d, %d bytes", name, -e, len(out))
		}
		return testing.AllocsPerRun(200, func() { r.In = in; s.Handle(r) })
	}
	if one, ten := allocs("d2"), allocs("d0"); ten != one {
		t.Errorf("READDIR: %v allocs per request for 10 entries, %v for 1: want the same", ten, one)
	}
}
