package vring

import (
	"encoding/binary"
	"sync"
	"testing"
)

func TestFieldHalves(t *testing.T) {
	buf := make([]uint32, 2)
	b := unsafeBytes(buf)
	lo, ok := NewField(b[4:8], 0)
	if !ok {
		t.Fatal("NewField lo")
	}
	hi, ok := NewField(b[4:8], 2)
	if !ok {
		t.Fatal("NewField hi")
	}
	binary.LittleEndian.PutUint16(b[4:], 0x1234)
	binary.LittleEndian.PutUint16(b[6:], 0xabcd)
	if lo.Load() != 0x1234 || hi.Load() != 0xabcd {
		t.Fatalf("Load = %#x %#x", lo.Load(), hi.Load())
	}
	if !lo.Store(0x5678) {
		t.Fatal("Store failed without contention")
	}
	if got := binary.LittleEndian.Uint16(b[6:]); got != 0xabcd {
		t.Fatalf("Store of low half changed high half to %#x", got)
	}
	if got := binary.LittleEndian.Uint16(b[4:]); got != 0x5678 {
		t.Fatalf("low half = %#x", got)
	}
	hi.Store(0xfeed)
	if got := binary.LittleEndian.Uint16(b[4:]); got != 0x5678 {
		t.Fatalf("Store of high half changed low half to %#x", got)
	}
	w, ok := NewWord(b[4:8])
	if !ok {
		t.Fatal("NewWord")
	}
	if l, h := w.Load(); l != 0x5678 || h != 0xfeed {
		t.Fatalf("Word.Load = %#x %#x", l, h)
	}
	w.Store(1, 2)
	if binary.LittleEndian.Uint32(b[4:]) != 0x00020001 {
		t.Fatalf("Word.Store wrote %#x", binary.LittleEndian.Uint32(b[4:]))
	}
	if binary.LittleEndian.Uint32(b[0:]) != 0 {
		t.Fatal("Word.Store wrote outside its word")
	}
}

func TestNewFieldRejects(t *testing.T) {
	buf := make([]uint32, 2)
	b := unsafeBytes(buf)
	if _, ok := NewField(b[2:6], 0); ok {
		t.Fatal("accepted a misaligned word")
	}
	if _, ok := NewField(b[0:3], 0); ok {
		t.Fatal("accepted a short word")
	}
	if _, ok := NewField(b[0:4], 1); ok {
		t.Fatal("accepted an odd offset")
	}
	if _, ok := NewWord(b[1:5]); ok {
		t.Fatal("NewWord accepted a misaligned word")
	}
}

// TestFieldStoreConcurrentHalves: two goroutines each own one half of a word
// and update it with Store; neither may ever clobber the other's half. Run
// with -race.
func TestFieldStoreConcurrentHalves(t *testing.T) {
	buf := make([]uint32, 1)
	b := unsafeBytes(buf)
	lo, _ := NewField(b, 0)
	hi, _ := NewField(b, 2)
	const n = 100000
	var wg sync.WaitGroup
	run := func(f Field) {
		defer wg.Done()
		for i := range n {
			v := uint16(i)
			for !f.Store(v) {
			}
			if got := f.Load(); got != v {
				t.Errorf("field = %d after storing %d", got, v)
				return
			}
		}
	}
	wg.Add(2)
	go run(lo)
	go run(hi)
	wg.Wait()
}

func TestNeedEvent(t *testing.T) {
	for _, tc := range []struct {
		event, new, old uint16
		want            bool
	}{
		{0, 1, 0, true},         // event 0 passed going 0→1
		{0, 2, 1, false},        // already past
		{5, 6, 0, true},         // batch crossing event
		{5, 5, 0, false},        // reaches but does not pass
		{65535, 0, 65535, true}, // wrap
		{65535, 1, 65534, true},
		{10, 3, 65530, false},
		{2, 3, 65530, true},
		{7, 7, 7, false}, // nothing moved
	} {
		if got := NeedEvent(tc.event, tc.new, tc.old); got != tc.want {
			t.Errorf("NeedEvent(%d, %d, %d) = %v, want %v", tc.event, tc.new, tc.old, got, tc.want)
		}
	}
}
