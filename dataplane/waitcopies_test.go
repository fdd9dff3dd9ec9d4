package dataplane

import (
	"sync"
	"testing"
)

// TestWaitCopies: copies are sized to the request rounded up to a page
// and at most Max, reused when large enough, never more than Slots at
// once (nil past it, and past Max), and a copy too small is replaced
// only once every slot's copy exists.
func TestWaitCopies(t *testing.T) {
	c := NewWaitCopies(3, 10000)
	if b := c.Get(10001); b != nil {
		t.Fatalf("Get past Max: %d bytes, want nil", len(b))
	}
	a := c.Get(1500)
	if len(a) != 4096 {
		t.Fatalf("Get(1500): %d bytes, want 4096", len(a))
	}
	big := c.Get(9000)
	if len(big) != 10000 {
		t.Fatalf("Get(9000): %d bytes, want 10000 (rounded up, capped at Max)", len(big))
	}
	third := c.Get(100)
	if c.Get(100) != nil {
		t.Fatal("a fourth copy out of 3 slots")
	}
	c.Put(big)
	if b := c.Get(5000); &b[0] != &big[0] {
		t.Fatal("Get(5000) made a copy while a free one holds 10000 bytes")
	}
	c.Put(a)
	c.Put(third)
	if out, free := c.Counts(); out != 1 || free != 2 {
		t.Fatalf("counts %d out, %d free; want 1, 2", out, free)
	}
	// Three copies exist, the free ones of 4 KiB: a larger request
	// replaces one of them rather than making a fourth.
	b := c.Get(8000)
	if len(b) != 8192 {
		t.Fatalf("Get(8000): %d bytes, want 8192", len(b))
	}
	if out, free := c.Counts(); out != 2 || free != 1 {
		t.Fatalf("after replacing a small copy: %d out, %d free; want 2, 1 (3 in all)", out, free)
	}
	if cap(c.free) != 3 {
		t.Fatalf("free list grew to capacity %d, want 3", cap(c.free))
	}
	defer func() {
		if recover() == nil {
			t.Error("Put of more copies than taken did not panic")
		}
	}()
	c.Put(b)
	c.Put(b)
	c.Put(b)
}

// TestWaitCopiesConcurrent: takers and givers on many goroutines never
// see more than Slots copies out (run with -race).
func TestWaitCopiesConcurrent(t *testing.T) {
	const slots = 4
	c := NewWaitCopies(slots, 1<<16)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				b := c.Get(1000 + (g*997+i*131)%60000)
				if b == nil {
					continue // every copy out: the door would refuse
				}
				if out, free := c.Counts(); out > slots || out+free > slots {
					t.Errorf("%d copies out, %d free, of %d slots", out, free, slots)
				}
				c.Put(b)
			}
		}()
	}
	wg.Wait()
	if out, free := c.Counts(); out != 0 || free > slots {
		t.Errorf("at the end: %d out, %d free; want 0 out, at most %d", out, free, slots)
	}
}
