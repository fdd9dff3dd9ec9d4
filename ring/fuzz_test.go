package ring_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fastfsd/fastfsd/mem"
	"github.com/fastfsd/fastfsd/ring"
)

// Fuzz guest memory: region A holds the rings, an indirect-table area and
// data; region B is adjacent to A (buffers may span them); region C lies
// after a gap.
const (
	fzA        = 0x10000
	fzASize    = 0x10000
	fzDesc     = fzA
	fzAvail    = fzA + 0x400
	fzUsed     = fzA + 0x800
	fzIndirect = fzA + 0x1000 // fuzz bytes after the rings land here
	fzData     = fzA + 0x2000
	fzB        = fzA + fzASize
	fzBSize    = 0x1000
	fzC        = 0x100000
	fzCSize    = 0x1000
)

// fuzzInput is the layout of a FuzzChain input:
//
//	[0]    log2 of the queue size, mod 7 (1 to 64 entries)
//	[1]    bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 avail ring only
//	       2-byte aligned
//	[2:4]  avail.idx
//	[4:6]  the device's base (next avail index)
//	[6:]   the descriptor table (16*size bytes), then the avail ring
//	       entries (2*size), then up to 4 KiB copied to fzIndirect
type fuzzInput struct {
	sizeLog, flags uint8
	availIdx, base uint16
	descs          [][4]uint64 // addr, len, flags, next
	avail          []uint16
	indirect       [][4]uint64
}

func (in fuzzInput) bytes() []byte {
	size := 1 << (in.sizeLog % 7)
	b := []byte{in.sizeLog, in.flags, 0, 0, 0, 0}
	binary.LittleEndian.PutUint16(b[2:], in.availIdx)
	binary.LittleEndian.PutUint16(b[4:], in.base)
	put := func(descs [][4]uint64, n int) {
		for i := range n {
			var e [16]byte
			if i < len(descs) {
				binary.LittleEndian.PutUint64(e[0:], descs[i][0])
				binary.LittleEndian.PutUint32(e[8:], uint32(descs[i][1]))
				binary.LittleEndian.PutUint16(e[12:], uint16(descs[i][2]))
				binary.LittleEndian.PutUint16(e[14:], uint16(descs[i][3]))
			}
			b = append(b, e[:]...)
		}
	}
	put(in.descs, size)
	for i := range size {
		var v uint16
		if i < len(in.avail) {
			v = in.avail[i]
		}
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	put(in.indirect, len(in.indirect))
	return b
}

func fuzzSeeds() map[string][]byte {
	const N, W, I = 1, 2, 4
	return map[string][]byte{
		"direct": fuzzInput{sizeLog: 3, flags: 3, availIdx: 2, descs: [][4]uint64{
			{fzData, 40, N, 1}, {fzData + 64, 16, W | N, 2}, {fzData + 128, 100, W, 0},
			{fzData + 512, 48, 0, 0},
		}, avail: []uint16{0, 3}}.bytes(),
		"indirect": fuzzInput{sizeLog: 4, flags: 2, availIdx: 1, descs: [][4]uint64{
			{fzIndirect, 48, I, 0},
		}, avail: []uint16{0}, indirect: [][4]uint64{
			{fzData, 40, N, 1}, {fzData + 64, 8, N, 2}, {fzData + 4096, 4096, W, 0},
		}}.bytes(),
		"direct then indirect": fuzzInput{sizeLog: 2, flags: 7, availIdx: 1, descs: [][4]uint64{
			{fzData, 40, N, 3}, {}, {}, {fzIndirect, 32, I | W, 0},
		}, avail: []uint16{0}, indirect: [][4]uint64{
			{fzData + 64, 8, N, 1}, {fzData + 4096, 4096, W, 0},
		}}.bytes(),
		"spans regions": fuzzInput{sizeLog: 1, flags: 0, availIdx: 1, descs: [][4]uint64{
			{fzB - 16, 64, W, 0},
		}, avail: []uint16{0}}.bytes(),
		"loop": fuzzInput{sizeLog: 2, flags: 3, availIdx: 1, descs: [][4]uint64{
			{fzData, 1, N, 1}, {fzData, 1, N, 0},
		}, avail: []uint16{0}}.bytes(),
		"nested indirect": fuzzInput{sizeLog: 2, flags: 3, availIdx: 1, descs: [][4]uint64{
			{fzIndirect, 16, I, 0},
		}, avail: []uint16{0}, indirect: [][4]uint64{{fzIndirect, 16, I, 0}}}.bytes(),
		"wrap": fuzzInput{sizeLog: 1, flags: 1, availIdx: 1, base: 0xffff, descs: [][4]uint64{
			{fzC, 16, 0, 0}, {fzC + 16, 16, W, 0},
		}, avail: []uint16{0, 1}}.bytes(),
		"bad head": fuzzInput{sizeLog: 1, flags: 1, availIdx: 2, descs: [][4]uint64{
			{fzData, 16, 0, 0},
		}, avail: []uint16{0, 9}}.bytes(),
	}
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzChain from fuzzSeeds
// when RING_WRITE_SEEDS=1; otherwise it checks the committed corpus exists.
func TestWriteFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzChain")
	if os.Getenv("RING_WRITE_SEEDS") != "1" {
		if ents, err := os.ReadDir(dir); err != nil || len(ents) < len(fuzzSeeds()) {
			t.Fatalf("seed corpus %s missing or short (%v); run RING_WRITE_SEEDS=1 go test -run WriteFuzzSeeds", dir, err)
		}
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range fuzzSeeds() {
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		file := filepath.Join(dir, "seed-"+strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func fuzzMemory(t testing.TB) (*mem.Table, *mem.Region) {
	a, err := mem.NewHeapRegion(mem.RegionDesc{GuestAddr: fzA, Size: fzASize, UserAddr: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := mem.NewHeapRegion(mem.RegionDesc{GuestAddr: fzB, Size: fzBSize, UserAddr: 2 << 40})
	c, _ := mem.NewHeapRegion(mem.RegionDesc{GuestAddr: fzC, Size: fzCSize, UserAddr: 3 << 40})
	tb, err := mem.NewTable(a, b, c)
	if err != nil {
		t.Fatal(err)
	}
	return tb, a
}

// FuzzChain lays arbitrary descriptor tables, avail rings and indices into
// fake guest memory and pops every chain. Invariants: no panic; a valid
// chain's buffers are views of guest memory exactly where their GPAs say,
// within the chain's limits; a rejected chain has no buffers and a head
// below the queue size; a broken ring stays broken.
func FuzzChain(f *testing.F) {
	for _, b := range fuzzSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) { runChainInput(t, in) })
}

// runChainInput runs one FuzzChain input and returns the outcome of each
// Pop: nil for a valid chain, else the error.
func runChainInput(t *testing.T, in []byte) (outcomes []error) {
	if len(in) < 6 {
		return nil
	}
	size := uint32(1) << (in[0] % 7)
	features := ring.FeatureVersion1
	if in[1]&1 != 0 {
		features |= ring.FeatureEventIdx
	}
	if in[1]&2 != 0 {
		features |= ring.FeatureIndirectDesc
	}
	avail := uint64(fzAvail)
	if in[1]&4 != 0 {
		avail += 2
	}
	tb, a := fuzzMemory(t)
	rest := in[6:]
	descBytes := min(len(rest), int(16*size))
	a.WriteAt(rest[:descBytes], fzDesc-fzA)
	rest = rest[descBytes:]
	availBytes := min(len(rest), int(2*size))
	a.WriteAt(rest[:availBytes], int64(avail-fzA+4))
	rest = rest[availBytes:]
	a.WriteAt(rest[:min(len(rest), 4096)], fzIndirect-fzA)
	a.WriteAt(in[2:4], int64(avail-fzA+2)) // avail.idx

	cfg := ring.Config{Size: size, Desc: fzDesc, Avail: avail, Used: fzUsed, Features: features,
		Base: binary.LittleEndian.Uint16(in[4:6]), MaxChainBytes: 1 << 20}
	q, err := ring.New(tb, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var c ring.Chain
	for range 2*size + 2 {
		ok, err := q.Pop(&c)
		if !ok {
			if err != nil {
				outcomes = append(outcomes, err)
				if ok2, err2 := q.Pop(&c); ok2 || !errors.Is(err2, err) {
					t.Fatalf("ring error %v not sticky: %v, %v", err, ok2, err2)
				}
			}
			break
		}
		outcomes = append(outcomes, err)
		if uint32(c.Head) >= size {
			t.Fatalf("head %d >= size %d", c.Head, size)
		}
		if err != nil {
			if len(c.Readable())+len(c.Writable()) != 0 {
				t.Fatalf("rejected chain (%v) has buffers", err)
			}
			q.Push(c.Head, 0)
			continue
		}
		checkChain(t, tb, &c)
		q.Push(c.Head, uint32(c.WritableLen()))
		q.Publish()
	}
	q.Publish()
	q.EnableNotify()
	q.DisableNotify()
	return outcomes
}

// TestFuzzSeedOutcomes pins what each seed exercises, so a change to the
// input layout cannot quietly turn the corpus into noise.
func TestFuzzSeedOutcomes(t *testing.T) {
	want := map[string][]error{
		"direct":               {nil, nil},
		"indirect":             {nil},
		"direct then indirect": {nil},
		"spans regions":        {nil},
		"loop":                 {ring.ErrLoop},
		"nested indirect":      {ring.ErrIndirectNested},
		"wrap":                 {nil, nil},
		"bad head":             {nil, ring.ErrHead},
	}
	for name, in := range fuzzSeeds() {
		got := runChainInput(t, in)
		if fmt.Sprint(got) != fmt.Sprint(want[name]) {
			t.Errorf("seed %q: outcomes %v, want %v", name, got, want[name])
		}
	}
}

func checkChain(t *testing.T, tb *mem.Table, c *ring.Chain) {
	t.Helper()
	var rl, wl uint64
	for i, bufs := range [][]ring.Buffer{c.Readable(), c.Writable()} {
		for _, b := range bufs {
			if len(b.Bytes) == 0 || cap(b.Bytes) != len(b.Bytes) {
				t.Fatalf("buffer len %d cap %d", len(b.Bytes), cap(b.Bytes))
			}
			view, ok := tb.Slice(b.GPA, uint64(len(b.Bytes)))
			if !ok || &view[0] != &b.Bytes[0] {
				t.Fatalf("buffer at %#x+%d is not the guest memory it claims", b.GPA, len(b.Bytes))
			}
			if i == 0 {
				rl += uint64(len(b.Bytes))
			} else {
				wl += uint64(len(b.Bytes))
			}
		}
	}
	if rl != c.ReadableLen() || wl != c.WritableLen() || rl+wl > 1<<20 {
		t.Fatalf("lengths %d/%d, chain says %d/%d", rl, wl, c.ReadableLen(), c.WritableLen())
	}
	if len(c.Readable())+len(c.Writable()) > ring.MaxBuffers {
		t.Fatal("more than MaxBuffers buffers")
	}
}
