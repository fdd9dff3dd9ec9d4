package virtiofs

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/fastfsd/fastfsd/fs/passthrough"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/mem"
	"github.com/fastfsd/fastfsd/ring"
	"github.com/fastfsd/fastfsd/ring/ringtest"
	"github.com/fastfsd/fastfsd/vhostuser"
	"golang.org/x/sys/unix"
)

// bench drives one worker synchronously (no goroutine, no eventfds): the
// driver adds a chain, drainRing serves it, the driver takes it back. It
// measures exactly the per-request path of a worker.
type bench struct {
	w    *worker
	d    *ringtest.Driver
	g    *ringtest.Guest
	node uint64
	fh   uint64
}

func newBench(tb testing.TB) *bench { return newBenchOpts(tb, 0) }

func newBenchOpts(tb testing.TB, helpers int) *bench {
	tb.Helper()
	dir := tb.TempDir()
	content := make([]byte, 1<<20)
	for i := range content {
		content[i] = byte(i % 251)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), content, 0o644); err != nil {
		tb.Fatal(err)
	}
	fsys, err := passthrough.New(dir, passthrough.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { fsys.Close() })
	dev, err := New(fsys, Options{Tag: "t", Helpers: helpers, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	g, err := ringtest.NewGuest(128, ring.FeatureEventIdx|ring.FeatureIndirectDesc, 1<<20, false)
	if err != nil {
		tb.Fatal(err)
	}
	m := mem.NewMemory()
	if err := m.SetRegions(context.Background(), []*mem.Region{g.Region}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close(context.Background()) })
	d, err := ringtest.NewDriver(m.Table(), g.Config)
	if err != nil {
		tb.Fatal(err)
	}
	rq, err := ring.New(m.Table(), g.Config)
	if err != nil {
		tb.Fatal(err)
	}
	q := &vhostuser.Queue{Index: 1, Size: 128, Kick: -1, Call: -1, Err: -1, Memory: m}
	w, err := newWorker(dev, q, rq, -1)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(w.close)
	b := &bench{w: w, d: d, g: g}

	in := abi.InitIn{Major: 7, Minor: abi.KernelMinorVersion, Flags: uint32(abi.InitMaxPages | abi.InitBigWrites)}
	a := make([]byte, abi.InitInSize)
	in.Marshal(a)
	b.put(0, hdr(abi.OpInit, 0, len(a)), a)
	if r := b.run(tb, 2, 0, 256); r.Error != 0 {
		tb.Fatalf("INIT: %d", r.Error)
	}
	name := []byte("f\x00")
	b.put(0, hdr(abi.OpLookup, 1, len(name)), name)
	var e abi.EntryOut
	r := b.run(tb, 2, 0, 256)
	if r.Error != 0 || !e.Unmarshal(b.g.Table.Segment(b.g.Data+8192+65536, 128)) {
		tb.Fatalf("LOOKUP: %d", r.Error)
	}
	b.node = e.NodeID
	oa := make([]byte, abi.OpenInSize)
	(&abi.OpenIn{Flags: unix.O_RDWR}).Marshal(oa)
	b.put(0, hdr(abi.OpOpen, b.node, len(oa)), oa)
	var o abi.OpenOut
	if r := b.run(tb, 2, 0, 256); r.Error != 0 || !o.Unmarshal(b.g.Table.Segment(b.g.Data+8192+65536, 16)) {
		tb.Fatalf("OPEN: %d", r.Error)
	}
	b.fh = o.Fh
	return b
}

func hdr(op abi.Opcode, node uint64, argLen int) []byte {
	h := abi.InHeader{Len: uint32(abi.InHeaderSize + argLen), Opcode: op, Unique: 2, NodeID: node, PID: 1}
	b := make([]byte, abi.InHeaderSize)
	h.Marshal(b)
	return b
}

// put writes header and args at the start of the data area.
func (b *bench) put(extra int, h, args []byte) {
	m := b.g.Table.Segment(b.g.Data, 4096)
	copy(m, h)
	copy(m[len(h):], args)
	_ = extra
}

var bufs [4]ringtest.Buf

// run adds [request (reqLen bytes at Data)] [payload of payload bytes]
// [reply of outLen bytes at Data+4096], serves it and returns the reply
// header.
func (b *bench) run(tb testing.TB, nIn int, payload, outLen uint32) abi.OutHeader {
	data := b.g.Data
	h := b.g.Table.Segment(data, 40)
	reqLen := ne32(h)
	n := 0
	if payload > 0 {
		bufs[n] = ringtest.Buf{Addr: data, Len: reqLen - payload}
		n++
		bufs[n] = ringtest.Buf{Addr: data + 8192, Len: payload}
		n++
	} else {
		bufs[n] = ringtest.Buf{Addr: data, Len: reqLen}
		n++
	}
	bufs[n] = ringtest.Buf{Addr: data + 4096, Len: min(outLen, 16)}
	n++
	if outLen > 16 {
		bufs[n] = ringtest.Buf{Addr: data + 8192 + 65536, Len: outLen - 16, Write: true}
		n++
	}
	bufs[n-1].Write = true
	if outLen > 16 {
		bufs[n-2].Write = true
	}
	if _, err := b.d.Add(bufs[:n]); err != nil {
		tb.Fatal(err)
	}
	b.d.Kick()
	b.w.drainRing()
	b.w.quiesce() // requests handed to helpers: wait and push them
	if _, _, ok := b.d.Used(); !ok {
		tb.Fatal("no completion")
	}
	var oh abi.OutHeader
	oh.Unmarshal(b.g.Table.Segment(data+4096, 16))
	return oh
}

func ne32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func (b *bench) getattr() {
	b.put(0, hdr(abi.OpGetattr, b.node, abi.GetattrInSize), make([]byte, abi.GetattrInSize))
}

func (b *bench) read(size uint32) {
	a := make([]byte, abi.ReadInSize)
	(&abi.ReadIn{Fh: b.fh, Size: size}).Marshal(a)
	b.put(0, hdr(abi.OpRead, b.node, len(a)), a)
}

func (b *bench) write(size uint32) {
	a := make([]byte, abi.WriteInSize)
	(&abi.WriteIn{Fh: b.fh, Size: size}).Marshal(a)
	b.put(0, hdr(abi.OpWrite, b.node, len(a)+int(size)), a)
}

func TestHotPathAllocs(t *testing.T) {
	b := newBench(t)
	for _, tc := range []struct {
		name    string
		setup   func()
		payload uint32
		out     uint32
	}{
		{"getattr", b.getattr, 0, 16 + abi.AttrOutSize},
		{"read 4k", func() { b.read(4096) }, 0, 16 + 4096},
		{"write 4k", func() { b.write(4096) }, 4096, 16 + abi.WriteOutSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			reply := b.g.Table.Segment(b.g.Data+8192+65536, 4096)
			for i := range reply {
				reply[i] = 0xff
			}
			r := b.run(t, 1, tc.payload, tc.out)
			if r.Error != 0 || r.Len != tc.out {
				t.Fatalf("reply error %d len %d, want 0 and %d", r.Error, r.Len, tc.out)
			}
			if tc.name == "read 4k" {
				for i, c := range reply {
					if c != byte(i%251) {
						t.Fatalf("READ data byte %d = %d, want %d", i, c, i%251)
					}
				}
			}
			allocs := testing.AllocsPerRun(200, func() { b.run(t, 1, tc.payload, tc.out) })
			if allocs != 0 {
				t.Errorf("%v allocations per request, want 0", allocs)
			}
		})
	}
}

// TestHelperPathAllocs: the hand-off to a helper and back allocates
// nothing either.
func TestHelperPathAllocs(t *testing.T) {
	b := newBenchOpts(t, 2)
	t.Cleanup(func() { close(b.w.work); b.w.helpers.Wait() })
	b.read(128 << 10)
	if r := b.run(t, 1, 0, 16+128<<10); r.Error != 0 {
		t.Fatalf("READ 128k: error %d", r.Error)
	}
	if allocs := testing.AllocsPerRun(100, func() { b.run(t, 1, 0, 16+128<<10) }); allocs != 0 {
		t.Errorf("READ 128k through a helper: %v allocations per request, want 0", allocs)
	}
}

func BenchmarkRequest(bb *testing.B) {
	b := newBench(bb)
	for _, tc := range []struct {
		name    string
		setup   func()
		payload uint32
		out     uint32
		bytes   int64
	}{
		{"getattr", b.getattr, 0, 16 + abi.AttrOutSize, 0},
		{"read-4k", func() { b.read(4096) }, 0, 16 + 4096, 4096},
		{"read-64k", func() { b.read(65536) }, 0, 16 + 65536, 65536},
		{"write-4k", func() { b.write(4096) }, 4096, 16 + abi.WriteOutSize, 4096},
		{"write-64k", func() { b.write(65536) }, 65536, 16 + abi.WriteOutSize, 65536},
	} {
		bb.Run(tc.name, func(bb *testing.B) {
			tc.setup()
			bb.ReportAllocs()
			bb.SetBytes(tc.bytes)
			for bb.Loop() {
				b.run(bb, 1, tc.payload, tc.out)
			}
		})
	}
}
