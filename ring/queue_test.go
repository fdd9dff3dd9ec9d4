package ring_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/fastfsd/fastfsd/mem"
	"github.com/fastfsd/fastfsd/ring"
	"github.com/fastfsd/fastfsd/ring/ringtest"
)

const allFeatures = ring.FeatureVersion1 | ring.FeatureIndirectDesc | ring.FeatureEventIdx

// env is a guest with a driver and a queue over the same memory.
type env struct {
	g *ringtest.Guest
	d *ringtest.Driver
	q *ring.Queue
}

func newEnv(t testing.TB, size uint32, features uint64, mutate func(*ring.Config)) *env {
	t.Helper()
	g, err := ringtest.NewGuest(size, features, 1<<20, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	if mutate != nil {
		mutate(&g.Config)
	}
	d, err := ringtest.NewDriver(g.Table, g.Config)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ring.New(g.Table, g.Config)
	if err != nil {
		t.Fatal(err)
	}
	return &env{g: g, d: d, q: q}
}

// data returns the guest address of the i'th 4 KiB page of the data area.
func (e *env) data(i int) uint64 { return e.g.Data + uint64(i)*4096 }

func TestPopPushPublishDirect(t *testing.T) {
	e := newEnv(t, 8, allFeatures, nil)
	copy(e.d.Mem(e.data(0), 5), "hello")
	copy(e.d.Mem(e.data(1), 3), "abc")
	head, err := e.d.Add([]ringtest.Buf{
		{Addr: e.data(0), Len: 5},
		{Addr: e.data(1), Len: 3},
		{Addr: e.data(2), Len: 100, Write: true},
		{Addr: e.data(3), Len: 0, Write: true}, // zero-length: no buffer
	})
	if err != nil {
		t.Fatal(err)
	}
	var c ring.Chain
	if ok, err := e.q.Pop(&c); ok {
		t.Fatalf("Pop before Kick = %v, %v", ok, err)
	}
	e.d.Kick()
	ok, err := e.q.Pop(&c)
	if !ok || err != nil {
		t.Fatalf("Pop = %v, %v", ok, err)
	}
	if c.Head != head || len(c.Readable()) != 2 || len(c.Writable()) != 1 {
		t.Fatalf("chain head %d, %d readable, %d writable", c.Head, len(c.Readable()), len(c.Writable()))
	}
	if c.ReadableLen() != 8 || c.WritableLen() != 100 {
		t.Fatalf("lengths %d/%d", c.ReadableLen(), c.WritableLen())
	}
	req := make([]byte, 10)
	if n := c.ReadAt(req, 0); n != 8 || string(req[:n]) != "helloabc" {
		t.Fatalf("ReadAt = %q", req[:n])
	}
	if n := c.ReadAt(req[:4], 3); n != 4 || string(req[:4]) != "loab" {
		t.Fatalf("ReadAt(off 3) = %q", req[:4])
	}
	if c.Readable()[1].GPA != e.data(1) {
		t.Fatalf("GPA %#x", c.Readable()[1].GPA)
	}
	if n := c.WriteAt([]byte("reply"), 2); n != 5 {
		t.Fatalf("WriteAt = %d", n)
	}
	if n := c.WriteAt(make([]byte, 200), 0); n != 100 {
		t.Fatalf("WriteAt past the end copied %d, want 100", n)
	}
	c.WriteAt([]byte("reply"), 2)
	if ok, _ := e.q.Pop(&c); ok {
		t.Fatal("second Pop found a chain")
	}
	e.q.Push(head, 7)
	if _, _, ok := e.d.Used(); ok {
		t.Fatal("used element visible before Publish")
	}
	if !e.q.Publish() {
		t.Fatal("Publish: no notify though used_event is 0 and used.idx went 0->1")
	}
	id, n, ok := e.d.Used()
	if !ok || id != head || n != 7 {
		t.Fatalf("Used = %d, %d, %v", id, n, ok)
	}
	if got := e.d.Mem(e.data(2)+2, 5); string(got) != "reply" {
		t.Fatalf("reply in guest memory = %q", got)
	}
	if e.d.Free() != 8 {
		t.Fatalf("driver has %d free descriptors, want 8", e.d.Free())
	}
	if e.q.Publish() {
		t.Fatal("empty Publish notified")
	}
}

func TestIndirect(t *testing.T) {
	e := newEnv(t, 4, allFeatures, nil)
	tbl := e.data(10)
	copy(e.d.Mem(e.data(0), 4), "ping")
	head, err := e.d.AddIndirect(tbl, []ringtest.Buf{
		{Addr: e.data(0), Len: 4},
		{Addr: e.data(1), Len: 16, Write: true},
		{Addr: e.data(2), Len: 16, Write: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.d.Kick()
	var c ring.Chain
	if ok, err := e.q.Pop(&c); !ok || err != nil {
		t.Fatalf("Pop = %v, %v", ok, err)
	}
	if c.Head != head || len(c.Readable()) != 1 || len(c.Writable()) != 2 || c.WritableLen() != 32 {
		t.Fatalf("indirect chain: head %d, %d/%d buffers", c.Head, len(c.Readable()), len(c.Writable()))
	}
	if n := c.WriteAt(bytes.Repeat([]byte{'x'}, 20), 0); n != 20 {
		t.Fatal(n)
	}
	if got := e.d.Mem(e.data(2), 5); string(got) != "xxxx\x00" {
		t.Fatalf("scatter into second writable = %q", got)
	}
}

// TestDirectThenIndirect: "zero or more normal chained descriptors followed
// by a single INDIRECT descriptor" (spec) must work, with WRITE on the
// INDIRECT descriptor ignored.
func TestDirectThenIndirect(t *testing.T) {
	e := newEnv(t, 8, allFeatures, nil)
	tbl := e.data(10)
	e.d.WriteTable(tbl, []ringtest.Desc{
		{Addr: e.data(1), Len: 10, Flags: ringtest.FlagNext, Next: 1},
		{Addr: e.data(2), Len: 20, Flags: ringtest.FlagWrite},
	})
	e.d.WriteDesc(3, ringtest.Desc{Addr: e.data(0), Len: 5, Flags: ringtest.FlagNext, Next: 6})
	e.d.WriteDesc(6, ringtest.Desc{Addr: tbl, Len: 32, Flags: ringtest.FlagIndirect | ringtest.FlagWrite})
	e.d.PutAvail(3)
	e.d.Kick()
	var c ring.Chain
	if ok, err := e.q.Pop(&c); !ok || err != nil {
		t.Fatalf("Pop = %v, %v", ok, err)
	}
	if c.Head != 3 || c.ReadableLen() != 15 || c.WritableLen() != 20 {
		t.Fatalf("head %d lens %d/%d", c.Head, c.ReadableLen(), c.WritableLen())
	}
}

// TestBufferSpansRegions: a descriptor over two adjacent regions becomes
// two buffers; over a gap it is rejected.
func TestBufferSpansRegions(t *testing.T) {
	g, err := ringtest.NewGuest(4, allFeatures, 8192, true)
	if err != nil {
		t.Fatal(err)
	}
	end := g.Region.Desc().GuestEnd()
	next, err := mem.NewHeapRegion(mem.RegionDesc{GuestAddr: end, Size: 8192, UserAddr: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	far, err := mem.NewHeapRegion(mem.RegionDesc{GuestAddr: end + 1<<20, Size: 8192, UserAddr: 2 << 40})
	if err != nil {
		t.Fatal(err)
	}
	tb, err := mem.NewTable(g.Region, next, far)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ringtest.NewDriver(tb, g.Config)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ring.New(tb, g.Config)
	if err != nil {
		t.Fatal(err)
	}
	d.Add([]ringtest.Buf{{Addr: end - 100, Len: 300, Write: true}})
	d.Add([]ringtest.Buf{{Addr: end + 8192 - 10, Len: 20}})
	d.Kick()
	var c ring.Chain
	if ok, err := q.Pop(&c); !ok || err != nil {
		t.Fatalf("Pop = %v, %v", ok, err)
	}
	w := c.Writable()
	if len(w) != 2 || len(w[0].Bytes) != 100 || len(w[1].Bytes) != 200 || w[1].GPA != end {
		t.Fatalf("spanning buffer split wrong: %d buffers", len(w))
	}
	if ok, err := q.Pop(&c); !ok || !errors.Is(err, ring.ErrAddress) {
		t.Fatalf("buffer over a gap: Pop = %v, %v; want ErrAddress", ok, err)
	}
}

// forge describes one hostile chain: setup writes descriptors and returns
// the head to put in the avail ring.
type forge struct {
	name     string
	features uint64
	size     uint32
	maxBytes uint64
	setup    func(e *env) uint16
	want     error
}

func TestRejectChains(t *testing.T) {
	desc := func(e *env, i uint16, addr uint64, n uint32, flags, next uint16) {
		e.d.WriteDesc(i, ringtest.Desc{Addr: addr, Len: n, Flags: flags, Next: next})
	}
	const (
		N = ringtest.FlagNext
		W = ringtest.FlagWrite
		I = ringtest.FlagIndirect
	)
	cases := []forge{
		{name: "self loop", setup: func(e *env) uint16 {
			desc(e, 0, e.data(0), 8, N, 0)
			return 0
		}, want: ring.ErrLoop},
		{name: "two-descriptor loop", setup: func(e *env) uint16 {
			desc(e, 1, e.data(0), 8, N, 2)
			desc(e, 2, e.data(0), 8, N, 1)
			return 1
		}, want: ring.ErrLoop},
		{name: "loop through every descriptor", setup: func(e *env) uint16 {
			for i := range uint16(8) {
				desc(e, i, e.data(0), 1, N, (i+1)%8)
			}
			return 5
		}, want: ring.ErrLoop},
		{name: "next out of range", setup: func(e *env) uint16 {
			desc(e, 0, e.data(0), 8, N, 8)
			return 0
		}, want: ring.ErrNext},
		{name: "next 0xffff", setup: func(e *env) uint16 {
			desc(e, 0, e.data(0), 8, N, 0xffff)
			return 0
		}, want: ring.ErrNext},
		{name: "address below memory", setup: func(e *env) uint16 {
			desc(e, 0, 0x100, 8, 0, 0)
			return 0
		}, want: ring.ErrAddress},
		{name: "address past memory", setup: func(e *env) uint16 {
			desc(e, 0, e.g.Region.Desc().GuestEnd()-4, 8, 0, 0)
			return 0
		}, want: ring.ErrAddress},
		{name: "address+len overflows", setup: func(e *env) uint16 {
			desc(e, 0, math.MaxUint64-3, 16, W, 0)
			return 0
		}, want: ring.ErrAddress},
		{name: "len 4 GiB-1", setup: func(e *env) uint16 {
			desc(e, 0, e.data(0), math.MaxUint32, W, 0)
			return 0
		}, want: ring.ErrAddress},
		{name: "total over MaxChainBytes", maxBytes: 4096, setup: func(e *env) uint16 {
			desc(e, 0, e.data(0), 4000, N, 1)
			desc(e, 1, e.data(1), 97, W, 0)
			return 0
		}, want: ring.ErrTooLarge},
		{name: "readable after writable", setup: func(e *env) uint16 {
			desc(e, 0, e.data(0), 8, W|N, 1)
			desc(e, 1, e.data(1), 8, 0, 0)
			return 0
		}, want: ring.ErrOrder},
		{name: "readable in indirect after writable direct", setup: func(e *env) uint16 {
			e.d.WriteTable(e.data(9), []ringtest.Desc{{Addr: e.data(1), Len: 8}})
			desc(e, 0, e.data(0), 8, W|N, 1)
			desc(e, 1, e.data(9), 16, I, 0)
			return 0
		}, want: ring.ErrOrder},
		{name: "indirect not negotiated", features: ring.FeatureVersion1, setup: func(e *env) uint16 {
			e.d.WriteTable(e.data(9), []ringtest.Desc{{Addr: e.data(1), Len: 8}})
			desc(e, 0, e.data(9), 16, I, 0)
			return 0
		}, want: ring.ErrIndirect},
		{name: "nested indirect", setup: func(e *env) uint16 {
			e.d.WriteTable(e.data(8), []ringtest.Desc{{Addr: e.data(1), Len: 8}})
			e.d.WriteTable(e.data(9), []ringtest.Desc{{Addr: e.data(8), Len: 16, Flags: I}})
			desc(e, 0, e.data(9), 16, I, 0)
			return 0
		}, want: ring.ErrIndirectNested},
		{name: "indirect with next", setup: func(e *env) uint16 {
			e.d.WriteTable(e.data(9), []ringtest.Desc{{Addr: e.data(1), Len: 8}})
			desc(e, 0, e.data(9), 16, I|N, 1)
			desc(e, 1, e.data(1), 8, W, 0)
			return 0
		}, want: ring.ErrIndirectNext},
		{name: "indirect len 0", setup: func(e *env) uint16 {
			desc(e, 0, e.data(9), 0, I, 0)
			return 0
		}, want: ring.ErrIndirectSize},
		{name: "indirect len not multiple of 16", setup: func(e *env) uint16 {
			desc(e, 0, e.data(9), 24, I, 0)
			return 0
		}, want: ring.ErrIndirectSize},
		{name: "indirect table larger than queue", setup: func(e *env) uint16 {
			desc(e, 0, e.data(9), 16*9, I, 0)
			return 0
		}, want: ring.ErrIndirectSize},
		{name: "indirect table outside memory", setup: func(e *env) uint16 {
			desc(e, 0, e.g.Region.Desc().GuestEnd()-16, 32, I, 0)
			return 0
		}, want: ring.ErrAddress},
		{name: "indirect loop", setup: func(e *env) uint16 {
			e.d.WriteTable(e.data(9), []ringtest.Desc{
				{Addr: e.data(1), Len: 8, Flags: N, Next: 1},
				{Addr: e.data(1), Len: 8, Flags: N, Next: 0},
			})
			desc(e, 0, e.data(9), 32, I, 0)
			return 0
		}, want: ring.ErrLoop},
		{name: "indirect next out of table", setup: func(e *env) uint16 {
			e.d.WriteTable(e.data(9), []ringtest.Desc{
				{Addr: e.data(1), Len: 8, Flags: N, Next: 2},
				{Addr: e.data(1), Len: 8},
			})
			desc(e, 0, e.data(9), 32, I, 0)
			return 0
		}, want: ring.ErrNext},
		{name: "more buffers than MaxBuffers", size: 2048, setup: func(e *env) uint16 {
			tbl := make([]ringtest.Desc, ring.MaxBuffers+1)
			for i := range tbl {
				tbl[i] = ringtest.Desc{Addr: e.data(0), Len: 1, Flags: N, Next: uint16(i + 1)}
			}
			tbl[len(tbl)-1].Flags = 0
			e.d.WriteTable(e.data(16), tbl)
			desc(e, 0, e.data(16), uint32(16*len(tbl)), I, 0)
			return 0
		}, want: ring.ErrTooManyBuffers},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			features := tc.features
			if features == 0 {
				features = allFeatures
			}
			size := tc.size
			if size == 0 {
				size = 8
			}
			e := newEnv(t, size, features, func(c *ring.Config) { c.MaxChainBytes = tc.maxBytes })
			head := tc.setup(e)
			e.d.PutAvail(head)
			e.d.Kick()
			var c ring.Chain
			ok, err := e.q.Pop(&c)
			if !ok || !errors.Is(err, tc.want) {
				t.Fatalf("Pop = %v, %v; want true, %v", ok, err, tc.want)
			}
			if c.Head != head || len(c.Readable())+len(c.Writable()) != 0 || c.ReadableLen()+c.WritableLen() != 0 {
				t.Fatalf("rejected chain: head %d (want %d), %d buffers", c.Head, head, len(c.Readable())+len(c.Writable()))
			}
			// Policy: complete it with 0 bytes; the queue goes on.
			e.q.Push(c.Head, 0)
			e.q.Publish()
			if id, n, ok := e.d.Used(); !ok || id != head || n != 0 {
				t.Fatalf("used = %d, %d, %v", id, n, ok)
			}
			if e.q.Err() != nil {
				t.Fatalf("chain error broke the queue: %v", e.q.Err())
			}
			good, err := e.d.Add([]ringtest.Buf{{Addr: e.data(0), Len: 8}})
			if err != nil {
				t.Fatal(err)
			}
			e.d.Kick()
			if ok, err := e.q.Pop(&c); !ok || err != nil || c.Head != good {
				t.Fatalf("Pop after a bad chain = %v, %v", ok, err)
			}
		})
	}
}

func TestBrokenRing(t *testing.T) {
	t.Run("head out of range", func(t *testing.T) {
		e := newEnv(t, 8, allFeatures, nil)
		e.d.PutAvail(8)
		e.d.Kick()
		var c ring.Chain
		for range 2 { // sticky
			if ok, err := e.q.Pop(&c); ok || !errors.Is(err, ring.ErrHead) {
				t.Fatalf("Pop = %v, %v; want false, ErrHead", ok, err)
			}
		}
		if e.q.Base() != 1 {
			t.Fatalf("Base = %d, want 1 (the bad entry is consumed)", e.q.Base())
		}
		if !e.q.EnableNotify() {
			t.Fatal("EnableNotify on a broken ring must say pending so the owner sees the error")
		}
	})
	t.Run("avail index jumps", func(t *testing.T) {
		e := newEnv(t, 8, allFeatures, nil)
		e.d.SetAvailIdx(9)
		var c ring.Chain
		if ok, err := e.q.Pop(&c); ok || !errors.Is(err, ring.ErrAvailIndex) {
			t.Fatalf("Pop = %v, %v; want false, ErrAvailIndex", ok, err)
		}
		if !errors.Is(e.q.Err(), ring.ErrAvailIndex) {
			t.Fatal("not sticky")
		}
	})
	t.Run("avail index goes back", func(t *testing.T) {
		e := newEnv(t, 8, allFeatures, nil)
		e.d.SetAvailIdx(0xffff)
		var c ring.Chain
		if ok, err := e.q.Pop(&c); ok || !errors.Is(err, ring.ErrAvailIndex) {
			t.Fatalf("Pop = %v, %v; want false, ErrAvailIndex", ok, err)
		}
	})
	t.Run("exactly a full ring is fine", func(t *testing.T) {
		e := newEnv(t, 8, allFeatures, nil)
		for range 8 {
			e.d.Add([]ringtest.Buf{{Addr: e.data(0), Len: 1}})
		}
		e.d.Kick()
		var c ring.Chain
		for i := range 8 {
			if ok, err := e.q.Pop(&c); !ok || err != nil {
				t.Fatalf("Pop %d = %v, %v", i, ok, err)
			}
		}
	})
}

// TestWrap runs chains across the 16-bit wrap of avail.idx and used.idx,
// with batches that straddle it.
func TestWrap(t *testing.T) {
	for _, base := range []uint16{0, 65530, 65535, 32768 - 3} {
		e := newEnv(t, 8, allFeatures, func(c *ring.Config) { c.Base = base })
		var c ring.Chain
		seq := 0
		for round := range 8 {
			batch := 1 + round%4
			heads := make([]uint16, batch)
			for i := range batch {
				b := e.d.Mem(e.data(i), 4)
				binary.LittleEndian.PutUint32(b, uint32(seq+i))
				h, err := e.d.Add([]ringtest.Buf{{Addr: e.data(i), Len: 4}, {Addr: e.data(8 + i), Len: 4, Write: true}})
				if err != nil {
					t.Fatal(err)
				}
				heads[i] = h
			}
			e.d.Kick()
			for i := range batch {
				ok, err := e.q.Pop(&c)
				if !ok || err != nil || c.Head != heads[i] {
					t.Fatalf("base %d round %d: Pop = %v, %v, head %d want %d", base, round, ok, err, c.Head, heads[i])
				}
				var v [4]byte
				c.ReadAt(v[:], 0)
				c.WriteAt(v[:], 0)
				e.q.Push(c.Head, 4)
			}
			if ok, _ := e.q.Pop(&c); ok {
				t.Fatal("extra chain")
			}
			e.q.Publish()
			for i := range batch {
				id, n, ok := e.d.Used()
				if !ok || id != heads[i] || n != 4 {
					t.Fatalf("Used = %d, %d, %v", id, n, ok)
				}
				if got := binary.LittleEndian.Uint32(e.d.Mem(e.data(8+i), 4)); got != uint32(seq+i) {
					t.Fatalf("reply %d, want %d", got, seq+i)
				}
			}
			seq += batch
		}
		want := base + uint16(seq)
		if e.q.Base() != want || e.d.UsedIdx() != want {
			t.Fatalf("base %d: Base %d, used.idx %d, want %d", base, e.q.Base(), e.d.UsedIdx(), want)
		}
	}
}

func TestPublishNotifyEventIdx(t *testing.T) {
	e := newEnv(t, 8, allFeatures, nil)
	var c ring.Chain
	complete := func(k int) bool {
		t.Helper()
		for range k {
			e.d.Add([]ringtest.Buf{{Addr: e.data(0), Len: 1}})
		}
		e.d.Kick()
		for range k {
			if ok, err := e.q.Pop(&c); !ok || err != nil {
				t.Fatalf("Pop = %v, %v", ok, err)
			}
			e.q.Push(c.Head, 0)
		}
		notify := e.q.Publish()
		for range k {
			e.d.Used()
		}
		return notify
	}
	// used_event 0: notify when used.idx passes 0.
	if !complete(1) { // 0 -> 1
		t.Fatal("0->1 with used_event 0: want notify")
	}
	if complete(1) { // 1 -> 2
		t.Fatal("1->2 with used_event 0: want no notify")
	}
	e.d.SetUsedEvent(4)
	if complete(2) { // 2 -> 4: reaches 4, does not pass it
		t.Fatal("2->4 with used_event 4: want no notify")
	}
	if !complete(3) { // 4 -> 7 passes 4
		t.Fatal("4->7 with used_event 4: want notify")
	}
	// The device ignores NO_INTERRUPT under EVENT_IDX.
	e.d.SetNoInterrupt(true)
	e.d.SetUsedEvent(7)
	if !complete(1) {
		t.Fatal("7->8 with used_event 7 and NO_INTERRUPT: want notify (flag ignored)")
	}
	if e.d.UsedFlags() != 0 {
		t.Fatal("used.flags must stay 0 under EVENT_IDX")
	}
}

func TestPublishNotifyFlags(t *testing.T) {
	e := newEnv(t, 8, ring.FeatureVersion1|ring.FeatureIndirectDesc, nil)
	var c ring.Chain
	one := func() bool {
		e.d.Add([]ringtest.Buf{{Addr: e.data(0), Len: 1}})
		e.d.Kick()
		e.q.Pop(&c)
		e.q.Push(c.Head, 0)
		n := e.q.Publish()
		e.d.Used()
		return n
	}
	if !one() {
		t.Fatal("no EVENT_IDX, NO_INTERRUPT clear: want notify")
	}
	e.d.SetNoInterrupt(true)
	if one() {
		t.Fatal("NO_INTERRUPT set: want no notify")
	}
	e.d.SetUsedEvent(100) // ignored without EVENT_IDX
	e.d.SetNoInterrupt(false)
	if !one() {
		t.Fatal("NO_INTERRUPT cleared: want notify")
	}
}

func TestNotifySuppressionFlags(t *testing.T) {
	e := newEnv(t, 8, ring.FeatureVersion1, nil)
	var c ring.Chain
	e.q.DisableNotify()
	if e.d.UsedFlags() != 1 {
		t.Fatal("DisableNotify did not set NO_NOTIFY")
	}
	e.d.Add([]ringtest.Buf{{Addr: e.data(0), Len: 1}})
	if e.d.Kick() {
		t.Fatal("driver kicks despite NO_NOTIFY")
	}
	// A pending chain: EnableNotify must say so (do not sleep).
	if !e.q.EnableNotify() {
		t.Fatal("EnableNotify missed a pending chain")
	}
	if e.d.UsedFlags() != 0 {
		t.Fatal("EnableNotify did not clear NO_NOTIFY")
	}
	e.q.Pop(&c)
	e.q.Push(c.Head, 0)
	// used.flags updates must not publish unpublished used elements.
	e.q.DisableNotify()
	if e.d.UsedIdx() != 0 {
		t.Fatal("DisableNotify published a pushed element")
	}
	e.q.Publish()
	if e.q.EnableNotify() {
		t.Fatal("EnableNotify reports pending on an empty ring")
	}
	e.d.Add([]ringtest.Buf{{Addr: e.data(0), Len: 1}})
	if !e.d.Kick() {
		t.Fatal("driver does not kick after EnableNotify")
	}
}

func TestNotifySuppressionEventIdx(t *testing.T) {
	e := newEnv(t, 8, allFeatures, nil)
	var c ring.Chain
	for range 3 {
		e.d.Add([]ringtest.Buf{{Addr: e.data(0), Len: 1}})
	}
	e.d.Kick()
	for range 3 {
		e.q.Pop(&c)
		e.q.Push(c.Head, 0)
	}
	e.q.Publish()
	for range 3 {
		e.d.Used()
	}
	if e.q.EnableNotify() {
		t.Fatal("EnableNotify pending on an empty ring")
	}
	if e.d.AvailEvent() != 3 {
		t.Fatalf("avail_event = %d, want 3 (last_avail)", e.d.AvailEvent())
	}
	e.d.Add([]ringtest.Buf{{Addr: e.data(0), Len: 1}})
	if !e.d.Kick() {
		t.Fatal("3->4 passes avail_event 3: driver must kick")
	}
	e.d.Add([]ringtest.Buf{{Addr: e.data(0), Len: 1}})
	if e.d.Kick() {
		t.Fatal("4->5 does not pass avail_event 3: no kick")
	}
	e.q.DisableNotify() // no-op under EVENT_IDX
	if e.d.UsedFlags() != 0 {
		t.Fatal("used.flags set under EVENT_IDX")
	}
	if !e.q.EnableNotify() {
		t.Fatal("EnableNotify missed two pending chains")
	}
}

func TestBaseAndSetBase(t *testing.T) {
	e := newEnv(t, 8, allFeatures, nil)
	var c ring.Chain
	for range 3 {
		e.d.Add([]ringtest.Buf{{Addr: e.data(0), Len: 1}})
	}
	e.d.Kick()
	e.q.Pop(&c)
	if e.q.Base() != 1 {
		t.Fatalf("Base = %d", e.q.Base())
	}
	// GET_VRING_BASE then SET_VRING_BASE on a new queue over the same
	// memory: processing resumes at the next chain.
	q2, err := ring.New(e.g.Table, e.g.Config)
	if err != nil {
		t.Fatal(err)
	}
	q2.SetBase(e.q.Base())
	if ok, err := q2.Pop(&c); !ok || err != nil || c.Head != 1 {
		t.Fatalf("resumed Pop = %v, %v head %d", ok, err, c.Head)
	}
}

func TestSetMemory(t *testing.T) {
	e := newEnv(t, 8, allFeatures, nil)
	// A new table with the same region plus another one: rings stay.
	extra, _ := mem.NewHeapRegion(mem.RegionDesc{GuestAddr: 1 << 32, Size: 4096, UserAddr: 1 << 44})
	t2, err := mem.NewTable(e.g.Region, extra)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.q.SetMemory(t2); err != nil {
		t.Fatal(err)
	}
	e.d.Add([]ringtest.Buf{{Addr: 1 << 32, Len: 16}})
	e.d.Kick()
	var c ring.Chain
	if ok, err := e.q.Pop(&c); !ok || err != nil {
		t.Fatalf("Pop after SetMemory = %v, %v", ok, err)
	}
	// A table without the rings is refused and leaves the queue as it was.
	t3, _ := mem.NewTable(extra)
	if err := e.q.SetMemory(t3); err == nil {
		t.Fatal("SetMemory accepted a table without the rings")
	}
	if e.q.Table() != t2 {
		t.Fatal("failed SetMemory changed the table")
	}
}

func TestNewRejectsConfig(t *testing.T) {
	g, err := ringtest.NewGuest(8, allFeatures, 4096, true)
	if err != nil {
		t.Fatal(err)
	}
	good := g.Config
	end := g.Region.Desc().GuestEnd()
	for _, tc := range []struct {
		name string
		mut  func(c *ring.Config)
	}{
		{"size 0", func(c *ring.Config) { c.Size = 0 }},
		{"size not power of two", func(c *ring.Config) { c.Size = 6 }},
		{"size too large", func(c *ring.Config) { c.Size = 65536 }},
		{"no VERSION_1", func(c *ring.Config) { c.Features = ring.FeatureEventIdx }},
		{"desc misaligned", func(c *ring.Config) { c.Desc += 8 }},
		{"avail misaligned", func(c *ring.Config) { c.Avail++ }},
		{"used misaligned", func(c *ring.Config) { c.Used += 2 }},
		{"desc outside", func(c *ring.Config) { c.Desc = end - 16 }},
		{"desc overflow", func(c *ring.Config) { c.Desc = math.MaxUint64 &^ 15 }},
		{"avail outside", func(c *ring.Config) { c.Avail = end - 4 }},
		{"used outside", func(c *ring.Config) { c.Used = end - 8 }},
		{"used overlaps desc", func(c *ring.Config) { c.Used = c.Desc + 16 }},
		{"used overlaps avail", func(c *ring.Config) { c.Used = c.Avail &^ 3 }},
		{"avail_event word past memory", func(c *ring.Config) { c.Used = end - (4 + 8*8 + 2) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mut(&c)
			if _, err := ring.New(g.Table, c); err == nil {
				t.Fatalf("New accepted %+v", c)
			}
		})
	}
	if _, err := ring.New(g.Table, good); err != nil {
		t.Fatalf("New rejected the good config: %v", err)
	}
}

// TestAvailNotFourAligned: the spec only promises 2-byte alignment of the
// avail ring; the 32-bit accesses must still work (over a memfd region:
// the idx word then shares bytes with ring[0], which the race detector
// would flag on heap memory although the hardware does not care).
func TestAvailNotFourAligned(t *testing.T) {
	g, err := ringtest.NewGuest(8, allFeatures, 1<<16, false)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	cfg := g.Config
	cfg.Avail = g.Data + 2
	cfg.Used = g.Data + 256
	d, err := ringtest.NewDriver(g.Table, cfg)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ring.New(g.Table, cfg)
	if err != nil {
		t.Fatal(err)
	}
	buf := g.Data + 4096
	var c ring.Chain
	for i := range 20 {
		d.Add([]ringtest.Buf{{Addr: buf, Len: 8}})
		d.SetUsedEvent(uint16(i))
		d.Kick()
		if ok, err := q.Pop(&c); !ok || err != nil {
			t.Fatalf("Pop %d = %v, %v", i, ok, err)
		}
		q.Push(c.Head, 0)
		if !q.Publish() {
			t.Fatalf("Publish %d: used_event %d passed, want notify", i, i)
		}
		if _, _, ok := d.Used(); !ok {
			t.Fatal("no used element")
		}
	}
}

// TestUsedFlagsStartClear: used.flags belongs to the device; garbage the
// guest left there is not carried into the first store (EVENT_IDX requires
// used.flags == 0), while used.idx is taken over.
func TestUsedFlagsStartClear(t *testing.T) {
	g, err := ringtest.NewGuest(8, allFeatures, 1<<16, true)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ringtest.NewDriver(g.Table, g.Config)
	if err != nil {
		t.Fatal(err)
	}
	hdr := d.Mem(g.Config.Used, 4)
	binary.LittleEndian.PutUint16(hdr[0:], 0xffff) // flags
	binary.LittleEndian.PutUint16(hdr[2:], 5)      // idx
	q, err := ring.New(g.Table, g.Config)
	if err != nil {
		t.Fatal(err)
	}
	q.Push(0, 0)
	q.Publish()
	if got := d.UsedFlags(); got != 0 {
		t.Fatalf("used.flags = %#x after Publish, want 0", got)
	}
	if got := d.UsedIdx(); got != 6 {
		t.Fatalf("used.idx = %d, want 6 (taken over from memory)", got)
	}
}

// TestChainCopyFrom: a copy has the source's head, buffers and lengths,
// whatever the destination held before.
func TestChainCopyFrom(t *testing.T) {
	e := newEnv(t, 8, allFeatures, nil)
	var big, small, dst ring.Chain
	if _, err := e.d.Add([]ringtest.Buf{
		{Addr: e.data(0), Len: 10}, {Addr: e.data(1), Len: 20}, {Addr: e.data(2), Len: 30},
		{Addr: e.data(3), Len: 40, Write: true}, {Addr: e.data(4), Len: 50, Write: true},
	}); err != nil {
		t.Fatal(err)
	}
	head, err := e.d.Add([]ringtest.Buf{{Addr: e.data(5), Len: 5}, {Addr: e.data(6), Len: 6, Write: true}})
	if err != nil {
		t.Fatal(err)
	}
	e.d.Kick()
	for _, c := range []*ring.Chain{&big, &small} {
		if ok, err := e.q.Pop(c); !ok || err != nil {
			t.Fatalf("Pop = %v, %v", ok, err)
		}
	}
	dst.CopyFrom(&big)
	dst.CopyFrom(&small)
	if dst.Head != head || dst.ReadableLen() != 5 || dst.WritableLen() != 6 {
		t.Fatalf("copy: head %d lengths %d/%d, want %d 5/6", dst.Head, dst.ReadableLen(), dst.WritableLen(), head)
	}
	r, w := dst.Readable(), dst.Writable()
	if len(r) != 1 || len(w) != 1 || r[0].GPA != e.data(5) || len(r[0].Bytes) != 5 || w[0].GPA != e.data(6) || len(w[0].Bytes) != 6 {
		t.Fatalf("copy: readable %v writable %v", r, w)
	}
}

// TestReadyAsksNoKick: Ready sees chains the driver made available, and
// unlike EnableNotify it neither moves avail_event (EVENT_IDX) nor clears
// NO_NOTIFY, so a driver adding more while the device polls does not kick.
func TestReadyAsksNoKick(t *testing.T) {
	for _, tc := range []struct {
		name     string
		features uint64
	}{{"event idx", allFeatures}, {"flags", ring.FeatureVersion1}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, 8, tc.features, nil)
			if e.q.Ready() {
				t.Fatal("Ready on an empty ring")
			}
			if e.q.EnableNotify() {
				t.Fatal("EnableNotify pending on an empty ring")
			}
			e.d.Add([]ringtest.Buf{{Addr: e.data(0), Len: 1}})
			if !e.d.Kick() {
				t.Fatal("first chain after EnableNotify: the driver must kick")
			}
			e.q.DisableNotify() // as the worker does once awake
			var c ring.Chain
			if !e.q.Ready() {
				t.Fatal("Ready missed an available chain")
			}
			if ok, err := e.q.Pop(&c); !ok || err != nil {
				t.Fatalf("Pop = %v, %v", ok, err)
			}
			for i := range 3 { // the device polls: Ready, never EnableNotify
				if e.q.Ready() {
					t.Fatalf("round %d: Ready with nothing available", i)
				}
				e.d.Add([]ringtest.Buf{{Addr: e.data(0), Len: 1}})
				if e.d.Kick() {
					t.Fatalf("round %d: the driver was asked to kick a polling device", i)
				}
				if !e.q.Ready() {
					t.Fatalf("round %d: Ready missed an available chain", i)
				}
				if ok, err := e.q.Pop(&c); !ok || err != nil {
					t.Fatalf("round %d: Pop = %v, %v", i, ok, err)
				}
			}
		})
	}
	t.Run("broken", func(t *testing.T) {
		e := newEnv(t, 8, allFeatures, nil)
		e.d.SetAvailIdx(9)
		if !e.q.Ready() {
			t.Fatal("Ready must report a broken ring so that the owner's Pop sees it")
		}
		if !errors.Is(e.q.Err(), ring.ErrAvailIndex) {
			t.Fatalf("Err = %v, want ErrAvailIndex", e.q.Err())
		}
	})
}
