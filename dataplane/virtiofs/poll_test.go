package virtiofs

import (
	"testing"
	"time"
)

// TestAdaptWindow: the adaptive poll window doubles (from 4 µs) on a gap
// it did not cover but the maximum would, stays put on a gap it covered,
// and halves down to nothing on gaps beyond the maximum; without
// AdaptivePoll (a zero dry time) it never moves. The gaps are given, not
// timed, so that a test thread descheduled for a few µs on a loaded
// machine cannot turn a 20 µs gap into one beyond the 32 µs maximum.
func TestAdaptWindow(t *testing.T) {
	w := &worker{d: &Device{opts: Options{AdaptivePoll: 32 * time.Microsecond}}}
	gap := func(g time.Duration) time.Duration {
		w.adapt(g)
		return w.window
	}
	const us = time.Microsecond
	for i, want := range []time.Duration{4 * us, 8 * us, 16 * us, 32 * us, 32 * us} {
		if got := gap(20 * us); got != want {
			t.Fatalf("step %d: 20 µs gaps: window %v, want %v", i, got, want)
		}
	}
	if got := gap(0); got != 32*us {
		t.Fatalf("a covered gap moved the window to %v", got)
	}
	for i, want := range []time.Duration{16 * us, 8 * us, 4 * us, 0, 0} {
		if got := gap(time.Millisecond); got != want {
			t.Fatalf("step %d: 1 ms gaps: window %v, want %v", i, got, want)
		}
	}
	if got := gap(32 * us); got != 4*us {
		t.Fatalf("a gap of the maximum itself: window %v, want 4µs (grown)", got)
	}
	// adaptSince measures the gap from when the ring ran dry: one an hour
	// ago is beyond the maximum however late this runs.
	w.adaptSince(time.Now().Add(-time.Hour))
	if w.window != 0 {
		t.Fatalf("a gap of an hour left the window at %v, want 0 (halved from 4 µs)", w.window)
	}
	w.window = 8 * us
	w.adaptSince(time.Time{})
	if w.window != 8*us {
		t.Fatal("a zero dry time moved the window")
	}
	w.window = 0
	if w.pollWindow() != 0 {
		t.Fatalf("pollWindow = %v with the adaptive window at 0", w.pollWindow())
	}
	w.d.opts.BusyPoll = 7 * us
	if w.pollWindow() != 7*us {
		t.Fatalf("pollWindow = %v, want BusyPoll's 7 µs", w.pollWindow())
	}
}

// TestPollTurns: at most maxAdaptivePollers workers poll adaptively at
// once; a fixed BusyPoll is never refused and takes no turn.
func TestPollTurns(t *testing.T) {
	adaptive := &worker{d: &Device{opts: Options{AdaptivePoll: time.Millisecond}}}
	fixed := &worker{d: &Device{opts: Options{BusyPoll: time.Millisecond}}}
	for i := range maxAdaptivePollers {
		if !adaptive.pollTurn() {
			t.Fatalf("turn %d of %d refused", i+1, maxAdaptivePollers)
		}
	}
	if adaptive.pollTurn() {
		t.Fatalf("a turn beyond maxAdaptivePollers (%d) was given", maxAdaptivePollers)
	}
	if !fixed.pollTurn() {
		t.Fatal("a fixed BusyPoll was refused its turn")
	}
	fixed.endTurn()
	if got := adaptivePollers.Load(); got != maxAdaptivePollers {
		t.Fatalf("a fixed poll's turn moved the count to %d", got)
	}
	adaptive.endTurn()
	if !adaptive.pollTurn() {
		t.Fatal("a turn given back was not given again")
	}
	for range maxAdaptivePollers {
		adaptive.endTurn()
	}
	if got := adaptivePollers.Load(); got != 0 {
		t.Fatalf("%d turns left after all ended", got)
	}
}
