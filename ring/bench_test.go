package ring_test

import (
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/ring"
	"github.com/fastfsd/fastfsd/ring/ringtest"
)

// A FUSE-like chain: in header + args readable, out header + data writable.
func fuseLikeBufs(e *env, i int) [4]ringtest.Buf {
	return [4]ringtest.Buf{
		{Addr: e.data(4 * i), Len: 40},
		{Addr: e.data(4*i) + 64, Len: 24},
		{Addr: e.data(4*i + 1), Len: 16, Write: true},
		{Addr: e.data(4*i + 2), Len: 4096, Write: true},
	}
}

// roundTrip adds batch chains (every other one indirect), kicks, and has
// the device pop, complete and publish them, then reaps them on the driver.
func roundTrip(tb testing.TB, e *env, c *ring.Chain, batch int) {
	for i := range batch {
		bufs := fuseLikeBufs(e, i)
		var err error
		if i%2 == 1 {
			_, err = e.d.AddIndirect(e.data(4*i+3), bufs[:])
		} else {
			_, err = e.d.Add(bufs[:])
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	e.d.Kick()
	for {
		ok, err := e.q.Pop(c)
		if !ok {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		e.q.Push(c.Head, 16)
	}
	e.q.Publish()
	for range batch {
		if _, _, ok := e.d.Used(); !ok {
			tb.Fatal("missing used element")
		}
	}
}

// TestHotPathAllocs: the device side (Pop, Push, Publish, EnableNotify,
// DisableNotify) and the test driver allocate nothing per chain.
func TestHotPathAllocs(t *testing.T) {
	for _, features := range []uint64{allFeatures, ring.FeatureVersion1 | ring.FeatureIndirectDesc} {
		e := newEnv(t, 128, features, nil)
		var c ring.Chain
		n := testing.AllocsPerRun(200, func() {
			roundTrip(t, e, &c, 32)
			e.q.EnableNotify()
			e.q.DisableNotify()
		})
		if n != 0 {
			t.Fatalf("features %#x: %v allocs per batch, want 0", features, n)
		}
	}
}

// BenchmarkDevice measures the device side alone: the ring is filled once
// with size FUSE-like chains (half indirect); each iteration pops one chain
// and pushes it; Publish runs every 32 chains; when the ring is drained the
// device rewinds its base and walks the same chains again.
func BenchmarkDevice(b *testing.B) {
	const size = 256
	e := newEnv(b, size, allFeatures, nil)
	var c ring.Chain
	for i := range size / 4 {
		bufs := fuseLikeBufs(e, i%64)
		if i%2 == 1 {
			e.d.AddIndirect(e.data(4*(i%64)+3)+uint64(i/64)*64, bufs[:])
		} else {
			e.d.Add(bufs[:])
		}
	}
	e.d.Kick()
	base := e.q.Base()
	n := 0
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		ok, err := e.q.Pop(&c)
		if !ok {
			e.q.SetBase(base)
			ok, err = e.q.Pop(&c)
		}
		if !ok || err != nil {
			b.Fatal(ok, err)
		}
		e.q.Push(c.Head, 16)
		if n++; n%32 == 0 {
			e.q.Publish()
		}
	}
	cpu.report(b, b.N)
}

// BenchmarkRoundTrip measures driver and device together in one goroutine:
// add 32 chains, kick, pop/push all, publish, reap. Per-chain cost of both
// sides; chains/s is per core.
func BenchmarkRoundTrip(b *testing.B) {
	const batch = 32
	e := newEnv(b, 256, allFeatures, nil)
	var c ring.Chain
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		roundTrip(b, e, &c, batch)
	}
	cpu.report(b, b.N*batch)
}

// cpuClock measures the benchmark goroutine's thread CPU time, so chains/s
// is per core even on a loaded machine where wall time includes waiting
// for a CPU.
type cpuClock struct{ start time.Duration }

func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

func startCPU() cpuClock {
	runtime.LockOSThread()
	return cpuClock{threadCPU()}
}

// report adds cpu-ns/chain and chains/cpu-s (chains per second of one core).
func (c cpuClock) report(b *testing.B, chains int) {
	used := threadCPU() - c.start
	runtime.UnlockOSThread()
	if used <= 0 || chains == 0 {
		return
	}
	b.ReportMetric(float64(used.Nanoseconds())/float64(chains), "cpu-ns/chain")
	b.ReportMetric(float64(chains)/used.Seconds(), "chains/cpu-s")
	b.ReportMetric(float64(chains)/b.Elapsed().Seconds(), "chains/s")
}
