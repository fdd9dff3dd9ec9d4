package waitshare

import (
	"sync"
	"testing"
)

// TestCounter: a uid other than 0 takes at most its share, non-root
// waits stop at all but the reserve, root waits in the reserve but not
// past the slots, and Put gives each back to the uid that took it.
func TestCounter(t *testing.T) {
	for _, c := range []struct{ slots, share, reserve int }{
		{1024, 128, 128}, {32, 4, 4}, {16, 2, 2}, {8, 1, 1}, {4, 1, 0}, {1, 1, 0},
	} {
		l := New(c.slots)
		if l.Slots() != c.slots || l.Share() != c.share || l.Reserve() != c.reserve {
			t.Fatalf("New(%d): slots %d share %d reserve %d, want %d %d %d",
				c.slots, l.Slots(), l.Share(), l.Reserve(), c.slots, c.share, c.reserve)
		}
		checkCounter(t, l, c.slots, c.share, c.reserve)
	}
}

// TestNewFloor: with a floor of 16 (p9's fids) a uid other than 0 may
// hold 16 slots, or all that root's reserve leaves when that is fewer,
// root keeps at least one slot once there are two, and from 128 slots
// on the bounds are New's; the rule holds as TestCounter's does.
func TestNewFloor(t *testing.T) {
	for _, c := range []struct{ slots, share, reserve int }{
		{1, 1, 0}, {2, 1, 1}, {4, 3, 1}, {8, 7, 1}, {15, 14, 1}, {16, 14, 2},
		{18, 16, 2}, {64, 16, 8}, {127, 16, 15}, {128, 16, 16}, {1024, 128, 128},
		{65536, 8192, 8192},
	} {
		l := NewFloor(c.slots, 16)
		if l.Slots() != c.slots || l.Share() != c.share || l.Reserve() != c.reserve {
			t.Fatalf("NewFloor(%d, 16): slots %d share %d reserve %d, want %d %d %d",
				c.slots, l.Slots(), l.Share(), l.Reserve(), c.slots, c.share, c.reserve)
		}
		if c.slots <= 1024 {
			checkCounter(t, l, c.slots, c.share, c.reserve)
		}
	}
}

// checkCounter runs l, fresh, through its bounds: one uid's share, other
// uids up to all but the reserve, root's reserve, and back to zero.
func checkCounter(t *testing.T, l *Counter, slots, share, reserve int) {
	t.Helper()
	// One uid: its share, then refused.
	for i := range share {
		if !l.Take(65534) {
			t.Fatalf("%d slots: uid 65534's wait %d refused within its share %d", slots, i, share)
		}
	}
	if l.Take(65534) {
		t.Fatalf("%d slots: uid 65534 waits past its share %d", slots, share)
	}
	// Other uids fill all but the reserve.
	uid := uint32(1000)
	for n := share; n < slots-reserve; uid++ {
		for range share {
			if n == slots-reserve {
				break
			}
			if !l.Take(uid) {
				t.Fatalf("%d slots: uid %d refused with %d waiting", slots, uid, n)
			}
			n++
		}
	}
	if l.Take(uid + 1) {
		t.Fatalf("%d slots: a new uid waits in root's reserve", slots)
	}
	// Root takes the reserve, and no more.
	for i := range reserve {
		if !l.Take(0) {
			t.Fatalf("%d slots: root's wait %d in the reserve refused", slots, i)
		}
	}
	if l.Take(0) {
		t.Fatalf("%d slots: root waits past the slots", slots)
	}
	if w, _ := l.Waiting(); w != slots {
		t.Fatalf("%d slots: %d waiting, want every slot", slots, w)
	}
	// A wait put back frees a slot for its uid only within the rules:
	// root's for root (non-root still at slots − reserve), 65534's
	// for 65534.
	if reserve > 0 {
		l.Put(0)
		if l.Take(uid + 1) {
			t.Fatalf("%d slots: root's freed slot went to uid %d", slots, uid+1)
		}
		if !l.Take(0) {
			t.Fatalf("%d slots: root refused its freed slot", slots)
		}
	}
	// A non-root slot put back while root waits in the reserve stays
	// free (non-root waits stop at slots − reserve, root's counted);
	// once root's waits end, it is the uid's again.
	l.Put(65534)
	if reserve > 0 && l.Take(65534) {
		t.Fatalf("%d slots: a non-root wait while root's fill the reserve", slots)
	}
	for range reserve {
		l.Put(0)
	}
	if !l.Take(65534) {
		t.Fatalf("%d slots: uid 65534 refused after putting one back", slots)
	}
	// Give everything back: the counts empty.
	for range share {
		l.Put(65534)
	}
	for u := uint32(1000); u <= uid; u++ {
		for {
			l.mu.Lock()
			n := l.byUid[u]
			l.mu.Unlock()
			if n == 0 {
				break
			}
			l.Put(u)
		}
	}
	if w, u := l.Waiting(); w != 0 || u != 0 {
		t.Fatalf("%d slots: after every Put %d waits of %d uids counted", slots, w, u)
	}
}

// TestCounterPutTooMany: a Put without its Take is a bug, caught.
func TestCounterPutTooMany(t *testing.T) {
	l := New(16)
	l.Take(0)
	defer func() {
		if recover() == nil {
			t.Fatal("Put of a uid that took nothing did not panic")
		}
	}()
	l.Put(1000)
}

// TestCounterConcurrent: Take and Put from many goroutines keep the
// bounds and end at zero (run with -race).
func TestCounterConcurrent(t *testing.T) {
	l := New(64) // share 8, reserve 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	over := 0
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			uid := uint32(g % 4) // root and three users
			for range 2000 {
				if !l.Take(uid) {
					continue
				}
				l.mu.Lock()
				if l.waiting > l.slots || uid != 0 && l.byUid[uid] > l.perUid {
					mu.Lock()
					over++
					mu.Unlock()
				}
				l.mu.Unlock()
				l.Put(uid)
			}
		}()
	}
	wg.Wait()
	if over != 0 {
		t.Errorf("%d times a bound was passed", over)
	}
	if w, u := l.Waiting(); w != 0 || u != 0 {
		t.Errorf("after the run: %d waits of %d uids counted", w, u)
	}
}

// TestCounterAllocs: counting a wait allocates nothing once the map has
// held that many uids.
func TestCounterAllocs(t *testing.T) {
	l := New(1024)
	l.Take(1000)
	l.Put(1000)
	if n := testing.AllocsPerRun(100, func() {
		l.Take(1000)
		l.Take(0)
		l.Put(0)
		l.Put(1000)
	}); n != 0 {
		t.Errorf("Take/Put: %v allocs, want 0", n)
	}
}

// TestCounterHeld: Held counts what a non-root uid took and has not put
// back, and reaches Share when that uid's own share refuses it; root is
// not counted per uid.
func TestCounterHeld(t *testing.T) {
	l := New(64) // share 8
	for i := range l.Share() {
		if got := l.Held(1000); got != i {
			t.Fatalf("uid 1000 holds %d after %d takes", got, i)
		}
		l.Take(1000)
	}
	if l.Take(1000) || l.Held(1000) != l.Share() {
		t.Fatalf("uid 1000 past its share: held %d, want refused at %d", l.Held(1000), l.Share())
	}
	l.Take(0)
	if l.Held(0) != 0 || l.Held(1001) != 0 {
		t.Errorf("Held(0) %d, Held(1001) %d, want 0 and 0", l.Held(0), l.Held(1001))
	}
	l.Put(1000)
	if l.Held(1000) != l.Share()-1 {
		t.Errorf("after a Put uid 1000 holds %d, want %d", l.Held(1000), l.Share()-1)
	}
}
