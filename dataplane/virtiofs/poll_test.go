package virtiofs

import (
	"strings"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/fs/passthrough"
	"github.com/fastfsd/fastfsd/ring"
	"github.com/fastfsd/fastfsd/ring/ringtest"
)

// TestNewPollOptions: New takes a fixed or an adaptive poll window, or
// neither, and refuses both at once or a negative one (a window it would
// otherwise ignore).
func TestNewPollOptions(t *testing.T) {
	fsys, err := passthrough.New(t.TempDir(), passthrough.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	const us = time.Microsecond
	for _, tc := range []struct {
		busy, adaptive time.Duration
		ok             bool
	}{
		{0, 0, true}, {50 * us, 0, true}, {0, DefaultAdaptivePoll, true},
		{50 * us, DefaultAdaptivePoll, false}, {-us, 0, false}, {0, -us, false},
	} {
		_, err := New(fsys, Options{Tag: "t", BusyPoll: tc.busy, AdaptivePoll: tc.adaptive})
		if tc.ok != (err == nil) || err != nil && !strings.Contains(err.Error(), "set at most one, neither negative") {
			t.Errorf("BusyPoll %v, AdaptivePoll %v: err %v, want ok %v", tc.busy, tc.adaptive, err, tc.ok)
		}
	}
}

// TestAdaptWindow: the adaptive poll window doubles (from 4 µs) on a gap
// it did not cover but the maximum would, stays put on a gap it covered,
// and halves down to nothing on gaps beyond the maximum; without
// AdaptivePoll (a zero dry time) it never moves. The gaps are given, not
// timed, so that a test thread descheduled for a few µs on a loaded
// machine cannot turn a 20 µs gap into one beyond the 32 µs maximum.
func TestAdaptWindow(t *testing.T) {
	// A large last batch: the budget per request served does not bound
	// the window here (TestAdaptBudget).
	w := &worker{d: &Device{opts: Options{AdaptivePoll: 32 * time.Microsecond}}, batch: 1000}
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

// TestAskKickWithdrawn: a worker whose poll window ended asks for a kick
// (askKick) and finds a chain that came in meanwhile; it serves it and
// polls again without having slept, and a driver adding chains then must
// not be asked to kick (without EVENT_IDX: NO_NOTIFY set again). Once the
// ring is dry askKick lets the worker sleep, and the next chain kicks.
func TestAskKickWithdrawn(t *testing.T) {
	for _, tc := range []struct {
		name     string
		features uint64
	}{{"flags", ring.FeatureVersion1}, {"event idx", ring.FeatureVersion1 | ring.FeatureEventIdx}} {
		t.Run(tc.name, func(t *testing.T) {
			g, drv, q := testRing(t, tc.features, 1<<16)
			w := &worker{q: q}
			add := func() bool {
				if _, err := drv.Add([]ringtest.Buf{{Addr: g.Data, Len: 1}}); err != nil {
					t.Fatal(err)
				}
				return drv.Kick()
			}
			pop := func() { serveOne(t, q, drv) }
			if !w.askKick() {
				t.Fatal("askKick on an empty ring: a chain pending")
			}
			if !add() {
				t.Fatal("the first chain after askKick must kick")
			}
			q.DisableNotify() // woken by the kick, as loop does
			pop()
			// Polling (Ready asks for nothing): a chain arrives just
			// before the window ends, without a kick.
			if add() {
				t.Fatal("a chain added while the worker polls kicked")
			}
			if w.askKick() {
				t.Fatal("askKick missed the chain that arrived before it")
			}
			pop()
			for i := range 3 { // serving and polling again, awake
				if add() {
					t.Fatalf("chain %d after askKick found work: the driver was asked to kick a worker that did not sleep", i)
				}
				pop()
			}
			if !w.askKick() {
				t.Fatal("askKick on a dry ring: a chain pending")
			}
			if !add() {
				t.Fatal("a chain added after askKick let the worker sleep did not kick: a lost wake-up")
			}
		})
	}
}

// TestAdaptBudget: the adaptive window never exceeds spinPerRequest per
// request the last drain served: one request per gap of 20 µs is never
// polled for (the spin would cost more than the sleep it saves), one
// per gap just under the budget is, up to the budget; four per 30 µs
// gap are, up to theirs, and eight per 50 µs gap up to the maximum.
func TestAdaptBudget(t *testing.T) {
	const us = time.Microsecond
	w := &worker{d: &Device{opts: Options{AdaptivePoll: DefaultAdaptivePoll}}, batch: 1}
	for range 5 {
		if w.adapt(20 * us); w.window != 0 {
			t.Fatalf("one request per 20 µs gap: window %v, want 0", w.window)
		}
	}
	for range 5 {
		w.adapt(spinPerRequest - us)
	}
	if w.window != spinPerRequest {
		t.Fatalf("one request per %v gap: window %v, want the budget %v", spinPerRequest-us, w.window, spinPerRequest)
	}
	// Four requests per gap grow the window to their budget, eight to
	// the maximum, DefaultAdaptivePoll (a driver answering a batch later
	// than a 32 µs maximum waits).
	w.batch = 4
	for range 5 {
		w.adapt(30 * us)
	}
	if w.window != 4*spinPerRequest {
		t.Fatalf("four requests per 30 µs gap: window %v, want their budget %v", w.window, 4*spinPerRequest)
	}
	w.batch = 8
	for range 5 {
		w.adapt(50 * us)
	}
	if w.window != DefaultAdaptivePoll || DefaultAdaptivePoll != 8*spinPerRequest {
		t.Fatalf("eight requests per 50 µs gap: window %v, want the maximum %v (eight requests' budget)", w.window, DefaultAdaptivePoll)
	}
	w.batch = 1 // the pace drops to one request per gap
	if got := w.pollWindow(); got != spinPerRequest {
		t.Fatalf("after a batch of one the worker would poll %v, want the budget %v", got, spinPerRequest)
	}
	w.adapt(20 * us) // cut to the budget, then halved
	if w.adapt(20 * us); w.window != 0 {
		t.Fatalf("two gaps of 20 µs for one request each after eight: window %v, want 0 (cut to the budget, then halved twice)", w.window)
	}
	w.batch = 0 // a wake-up that served nothing counts as one
	if got := w.pollWindow(); got != 0 {
		t.Fatalf("pollWindow %v, want 0", got)
	}
}

// TestBusyPass: a worker whose ring never runs dry passes through the
// scheduler after busyPassWork units of work (one per request, one more
// per 32 KiB of its buffers): after 64 small requests, after 2 of 1 MiB,
// and not before.
func TestBusyPass(t *testing.T) {
	g, drv, q := testRing(t, ring.FeatureVersion1, 2<<20)
	serve := func(w *worker, n int, size uint32) (passedAt int) {
		for i := 1; i <= n; i++ {
			if _, err := drv.Add([]ringtest.Buf{{Addr: g.Data, Len: 40}, {Addr: g.Data + 4096, Len: size, Write: true}}); err != nil {
				t.Fatal(err)
			}
			drv.Kick() // publishes the chain
			c := serveOne(t, q, drv)
			w.busyPass(&c)
			if passedAt == 0 && !w.sched.Due() {
				passedAt = i
			}
		}
		return passedAt
	}
	if at := serve(&worker{q: q}, 100, 16); at != busyPassWork {
		t.Errorf("small requests: passed after %d, want %d", at, busyPassWork)
	}
	if at := serve(&worker{q: q}, 4, 1<<20); at != 2 {
		t.Errorf("1 MiB READs: passed after %d, want 2", at)
	}
}

// testRing makes a guest of 8 ring entries and dataLen bytes of buffers
// (Go memory), its driver, and the device's queue on it; the guest is
// closed when the test ends.
func testRing(t *testing.T, features uint64, dataLen uint64) (*ringtest.Guest, *ringtest.Driver, *ring.Queue) {
	t.Helper()
	g, err := ringtest.NewGuest(8, features, dataLen, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	drv, err := ringtest.NewDriver(g.Table, g.Config)
	if err != nil {
		t.Fatal(err)
	}
	q, err := ring.New(g.Table, g.Config)
	if err != nil {
		t.Fatal(err)
	}
	return g, drv, q
}

// serveOne pops the chain the driver added, completes it empty, and has
// the driver take the completion; it returns the chain.
func serveOne(t *testing.T, q *ring.Queue, drv *ringtest.Driver) ring.Chain {
	t.Helper()
	var c ring.Chain
	if ok, err := q.Pop(&c); !ok || err != nil {
		t.Fatalf("Pop = %v, %v", ok, err)
	}
	q.Push(c.Head, 0)
	q.Publish()
	drv.Used()
	return c
}
