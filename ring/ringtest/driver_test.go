package ringtest_test

import (
	"errors"
	"testing"

	"github.com/fastfsd/fastfsd/ring"
	"github.com/fastfsd/fastfsd/ring/ringtest"
)

func TestDriverFreeList(t *testing.T) {
	g, err := ringtest.NewGuest(4, ring.FeatureVersion1|ring.FeatureIndirectDesc, 1<<16, true)
	if err != nil {
		t.Fatal(err)
	}
	d, err := ringtest.NewDriver(g.Table, g.Config)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ring.New(g.Table, g.Config)
	if err != nil {
		t.Fatal(err)
	}
	buf := ringtest.Buf{Addr: g.Data, Len: 8}
	if _, err := d.Add([]ringtest.Buf{buf, buf, buf, buf, buf}); !errors.Is(err, ringtest.ErrFull) {
		t.Fatalf("Add of 5 on a 4-entry ring = %v, want ErrFull", err)
	}
	if _, err := d.Add(nil); !errors.Is(err, ringtest.ErrFull) {
		t.Fatalf("Add of nothing = %v, want an error", err)
	}
	h1, _ := d.Add([]ringtest.Buf{buf, buf, buf})
	h2, err := d.AddIndirect(g.Data+4096, []ringtest.Buf{buf, buf, buf, buf}) // table <= queue size
	if err != nil || d.Free() != 0 {
		t.Fatalf("AddIndirect = %v, %d free", err, d.Free())
	}
	if _, err := d.AddIndirect(g.Data+8192, []ringtest.Buf{buf}); !errors.Is(err, ringtest.ErrFull) {
		t.Fatalf("AddIndirect on a full ring = %v, want ErrFull", err)
	}
	d.Kick()
	var c ring.Chain
	for _, want := range []uint16{h1, h2} {
		if ok, err := q.Pop(&c); !ok || err != nil || c.Head != want {
			t.Fatalf("Pop = %v, %v, head %d want %d", ok, err, c.Head, want)
		}
		q.Push(c.Head, 0)
	}
	q.Publish()
	for range 2 {
		if _, _, ok := d.Used(); !ok {
			t.Fatal("missing used element")
		}
	}
	if d.Free() != 4 {
		t.Fatalf("%d free after completion, want 4", d.Free())
	}
	// Forged completions of unknown heads do not corrupt the free list.
	if _, _, ok := d.Used(); ok {
		t.Fatal("phantom used element")
	}
}
