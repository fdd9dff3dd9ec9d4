package ring_test

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/ring"
	"github.com/fastfsd/fastfsd/ring/ringtest"
)

// TestHostileGuestScribbles: while the device pops, a "guest" goroutine
// keeps overwriting the descriptor table, the avail ring (idx included),
// indirect tables and the used ring with random bytes. The device must
// never panic, never yield a view outside guest memory, and keep every
// chain within its limits. The memory is a memfd mapping: these races are
// the point, so the race detector (which does not track mmapped memory)
// stays out of it.
func TestHostileGuestScribbles(t *testing.T) {
	const size = 64
	g, err := ringtest.NewGuest(size, allFeatures, 64<<10, false)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	cfg := g.Config
	cfg.MaxChainBytes = 1 << 20
	d, err := ringtest.NewDriver(g.Table, cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.SetAvailIdx(size)
	q, err := ring.New(g.Table, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The scribbler writes descriptors whose addresses mostly fall in guest
	// memory (so walks go deep) and sometimes anywhere.
	ringBytes := g.Table
	lo := uint64(ringtest.GuestBase)
	hi := g.Data + g.DataLen
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(1, 2))
		region, _ := ringBytes.Slice(lo, hi-lo)
		for !stop.Load() {
			var desc [16]byte
			addr := lo + r.Uint64N(hi-lo)
			if r.IntN(8) == 0 {
				addr = r.Uint64()
			}
			for i := range 8 {
				desc[i] = byte(addr >> (8 * i))
			}
			l := r.Uint32N(8192)
			if r.IntN(4) == 0 {
				l = uint32(16 * r.IntN(size+2))
			}
			desc[8], desc[9], desc[10], desc[11] = byte(l), byte(l>>8), byte(l>>16), byte(l>>24)
			desc[12] = byte(r.IntN(8))
			desc[14] = byte(r.IntN(size + 4))
			off := r.Uint64N(uint64(len(region)) - 16)
			if r.IntN(2) == 0 { // aim at the descriptor table and rings
				off = r.Uint64N(cfg.Used + 8*size - lo)
			}
			copy(region[off:], desc[:])
			if r.IntN(64) == 0 {
				runtime.Gosched()
			}
		}
	}()
	var c ring.Chain
	deadline := time.Now().Add(time.Second)
	chains, rejected, broken := 0, 0, 0
	for time.Now().Before(deadline) {
		ok, err := q.Pop(&c)
		if !ok {
			if err != nil {
				broken++
				// Start over, as the owner and the guest would after a
				// device reset: a fresh queue, a full avail ring.
				d.SetAvailIdx(size)
				if q, err = ring.New(g.Table, cfg); err != nil {
					t.Fatal(err)
				}
			}
			q.Publish()
			q.EnableNotify()
			runtime.Gosched() // let the scribbler run, even with GOMAXPROCS=1
			continue
		}
		if uint32(c.Head) >= size {
			t.Fatalf("head %d", c.Head)
		}
		if err != nil {
			rejected++
			if len(c.Readable())+len(c.Writable()) != 0 {
				t.Fatal("rejected chain has buffers")
			}
		} else {
			chains++
			checkChainBounds(t, g, &c, cfg.MaxChainBytes)
		}
		q.Push(c.Head, 0)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d chains accepted, %d rejected, %d ring resets", chains, rejected, broken)
	if chains+rejected == 0 {
		t.Fatal("the device never popped a chain")
	}
}

func checkChainBounds(t *testing.T, g *ringtest.Guest, c *ring.Chain, max uint64) {
	t.Helper()
	d := g.Region.Desc()
	var total uint64
	for _, bufs := range [][]ring.Buffer{c.Readable(), c.Writable()} {
		for _, b := range bufs {
			n := uint64(len(b.Bytes))
			if b.GPA < d.GuestAddr || b.GPA-d.GuestAddr > d.Size || n > d.Size-(b.GPA-d.GuestAddr) {
				t.Fatalf("buffer %#x+%d outside guest memory", b.GPA, n)
			}
			view, _ := g.Table.Slice(b.GPA, n)
			if &view[0] != &b.Bytes[0] {
				t.Fatalf("buffer %#x is not where its GPA says", b.GPA)
			}
			total += n
		}
	}
	if total > max || total != c.ReadableLen()+c.WritableLen() {
		t.Fatalf("chain of %d bytes (limit %d, says %d)", total, max, c.ReadableLen()+c.WritableLen())
	}
}
