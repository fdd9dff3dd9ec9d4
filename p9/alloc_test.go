package p9

import (
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/stats"
)

// discardConn is a net.Conn whose writes vanish and whose reads block: the
// hot-path tests run requests straight through conn.run.
type discardConn struct {
	net.Conn // nil: any other method panics
	mu       sync.Mutex
	last     []byte
}

func (d *discardConn) Write(b []byte) (int, error) {
	d.mu.Lock()
	d.last = append(d.last[:0], b...)
	d.mu.Unlock()
	return len(b), nil
}
func (d *discardConn) Close() error         { return nil }
func (d *discardConn) RemoteAddr() net.Addr { return &net.UnixAddr{Name: "test", Net: "unix"} }

// hotConn is a versioned connection with fid 1 = root and fid 2 = an open
// file of 1 MiB backed by a real file (so Read and Write take the
// pread/pwrite path), served request by request without a reader.
type hotConn struct {
	c     *conn
	dc    *discardConn
	slots []*request // taken out of c.free: between runs the free list is empty
	obs   Counter    // nil: requests are not counted
}

func newHotConn(t testing.TB) *hotConn {
	m := newMemFS(t.TempDir())
	s := NewServer(m, &Options{MaxRequests: 1, Logf: t.Logf})
	s.init()
	dc := &discardConn{}
	c, err := s.newConn(dc, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.msize.Store(1 << 20)
	c.versioned.Store(true)
	h := &hotConn{c: c, dc: dc}
	for len(c.free) > 0 {
		h.slots = append(h.slots, <-c.free)
	}
	h.do(t, &Tattach{Fid: 1, Afid: NoFid, Aname: []byte{}}, MsgRattach)
	h.do(t, walkMsg(1, 2), MsgRwalk)
	h.do(t, &Tlcreate{Fid: 2, Name: []byte("data"), Flags: DotlRdwr, Mode: 0644}, MsgRlcreate)
	h.do(t, &Twrite{Fid: 2, Data: make([]byte, 1<<20-WriteHeaderSize)}, MsgRwrite)
	return h
}

// prepare encodes m into a request slot, ready for run. Slots are taken
// out of the free list for good, so run can take r back after its reply.
func (h *hotConn) prepare(t testing.TB, m Message) *request {
	b, err := Encode(nil, 1<<20, 1, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.slots) == 0 {
		h.slots = append(h.slots, h.c.newRequest())
	}
	r := h.slots[len(h.slots)-1]
	h.slots = h.slots[:len(h.slots)-1]
	r.hdr = Header{Size: uint32(len(b)), Type: m.Type(), Tag: 1}
	r.in = append(r.in[:0], b[HeaderSize:]...)
	return r
}

// run serves the request in slot r (prepared earlier) once.
func (h *hotConn) run(r *request) {
	h.c.busy.Add(1)
	h.c.run(r, h.obs)
	if <-h.c.free != r { // reply recycled r into the free list
		panic("hotConn: free list out of step")
	}
}

func (h *hotConn) do(t testing.TB, m Message, want MsgType) {
	t.Helper()
	r := h.prepare(t, m)
	h.run(r)
	h.slots = append(h.slots, r)
	_, rm, err := Decode(h.dc.last, 1<<20)
	if err != nil || rm.Type() != want {
		t.Fatalf("%v: reply %v %+v (%v), want %v", m.Type(), rm.Type(), rm, err, want)
	}
}

// TestHotPathAllocs: Tread, Twrite, Tgetattr, Twalk+Tclunk allocate
// nothing per request in the steady state.
func TestHotPathAllocs(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testHotPathAllocs(t, newHotConn(t)) })
	t.Run("stats", func(t *testing.T) {
		h := newHotConn(t)
		h.obs = new(stats.Set).NewWorker()
		testHotPathAllocs(t, h)
	})
}

func testHotPathAllocs(t *testing.T, h *hotConn) {
	for _, tc := range []struct {
		name string
		m    Message
		max  float64
	}{
		{"Tread 4K", &Tread{Fid: 2, Offset: 4096, Count: 4096}, 0},
		{"Tread 128K", &Tread{Fid: 2, Offset: 0, Count: 128 << 10}, 0},
		{"Twrite 4K", &Twrite{Fid: 2, Offset: 8192, Data: make([]byte, 4096)}, 0},
		{"Tgetattr", &Tgetattr{Fid: 2, Mask: AttrBasic}, 0},
		{"Tstatfs", &Tstatfs{Fid: 1}, 0},
	} {
		r := h.prepare(t, tc.m)
		h.run(r) // warm up: buffers grow once
		if got := testing.AllocsPerRun(200, func() { h.run(r) }); got > tc.max {
			t.Errorf("%s: %.1f allocs per request, want ≤ %.0f", tc.name, got, tc.max)
		}
		if rm := h.dc.last[4]; MsgType(rm) != tc.m.Type()+1 {
			t.Errorf("%s: reply type %v", tc.name, MsgType(rm))
		}
	}
}

func benchOp(b *testing.B, m Message, bytes int) {
	h := newHotConn(b)
	r := h.prepare(b, m)
	h.run(r)
	if MsgType(h.dc.last[4]) != m.Type()+1 {
		b.Fatalf("reply %v", MsgType(h.dc.last[4]))
	}
	b.ReportAllocs()
	if bytes > 0 {
		b.SetBytes(int64(bytes))
	}
	for b.Loop() {
		h.run(r)
	}
}

// Benchmarks of one request through decode → fs → encode → conn write,
// without a socket (the server's own cost).
func BenchmarkServeRead4K(b *testing.B) {
	benchOp(b, &Tread{Fid: 2, Offset: 4096, Count: 4096}, 4096)
}
func BenchmarkServeRead128K(b *testing.B) {
	benchOp(b, &Tread{Fid: 2, Offset: 0, Count: 128 << 10}, 128<<10)
}
func BenchmarkServeWrite4K(b *testing.B) {
	benchOp(b, &Twrite{Fid: 2, Offset: 4096, Data: make([]byte, 4096)}, 4096)
}
func BenchmarkServeGetattr(b *testing.B) { benchOp(b, &Tgetattr{Fid: 2, Mask: AttrBasic}, 0) }

// BenchmarkCodec: decode+encode of a Twalk, the codec's cost alone.
func BenchmarkCodecWalk(b *testing.B) {
	msg, _ := Encode(nil, 8192, 1, walkMsg(1, 2, "usr", "lib", "x86_64-linux-gnu", "libc.so.6"))
	out := make([]byte, 0, 8192)
	b.ReportAllocs()
	for b.Loop() {
		var m Twalk
		d := decoder{buf: msg[HeaderSize:]}
		if m.decode(&d); !d.done() {
			b.Fatal("decode")
		}
		e := encoder{buf: out[:0]}
		e.header(MsgTwalk, 1)
		m.encode(&e)
		if !e.finish() {
			b.Fatal("encode")
		}
	}
}

// BenchmarkRoundTripRead: Tread of 4 KiB over a unix socket with the
// hugelgupf/p9 client: what a client sees (its own allocations included).
func BenchmarkRoundTripRead4K(b *testing.B) {
	m := newMemFS(b.TempDir())
	sock, _ := startServer(b, m, &Options{Logf: func(string, ...any) {}})
	c, _ := dialClient(b, sock, 1<<20)
	root, err := c.Attach("")
	if err != nil {
		b.Fatal(err)
	}
	_, f, _ := root.Walk(nil)
	f, _, _, err = f.Create("data", 2, 0644, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("x", 1<<16)), 0); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 4096)
	b.SetBytes(4096)
	b.ReportAllocs()
	for b.Loop() {
		if n, err := f.ReadAt(buf, 4096); n != 4096 {
			b.Fatal(n, err)
		}
	}
}

// TestStatsCounts: with a stats.Worker, every request a worker serves is
// counted under its T-message, with Rread/Rwrite payload bytes and the
// errno of an Rlerror.
func TestStatsCounts(t *testing.T) {
	h := newHotConn(t)
	set := new(stats.Set)
	set.Name = StatsName
	h.obs = set.NewWorker()
	const n = 7
	for range n {
		h.do(t, &Tgetattr{Fid: 2, Mask: AttrBasic}, MsgRgetattr)
		h.do(t, &Tread{Fid: 2, Offset: 0, Count: 4096}, MsgRread)
		h.do(t, &Tgetattr{Fid: 99, Mask: AttrBasic}, MsgRlerror) // no such fid
	}
	got := map[string]stats.OpTotals{}
	for _, o := range set.Totals() {
		got[o.Name] = o
	}
	if g := got["Tgetattr"]; g.Count != 2*n || g.Errors != n {
		t.Errorf("Tgetattr: %d requests %d errors, want %d and %d", g.Count, g.Errors, 2*n, n)
	}
	if r := got["Tread"]; r.Count != n || r.Bytes != n*4096 || r.Errors != 0 {
		t.Errorf("Tread: %d requests %d bytes %d errors, want %d, %d, 0", r.Count, r.Bytes, r.Errors, n, n*4096)
	}
	errs := set.Errnos()
	if len(errs) != 1 || errs[0].Count != n || syscall.Errno(errs[0].Errno) != syscall.EBADF {
		t.Errorf("errnos %+v, want %d × EBADF", errs, n)
	}
}

// TestReaderPathAllocs: a connection's whole per-request path — the
// reader (header, request slot, body, in-flight table, hand-off to a
// worker) as well as the worker's run and reply — allocates nothing per
// request once its slots and buffers are made: a connection serving
// 2,000 Tgetattr allocates no more than one serving 20, within a
// per-connection slack (slots, a worker, a read buffer if the pool was
// emptied). TestHotPathAllocs covers run alone.
func TestReaderPathAllocs(t *testing.T) {
	s := NewServer(newMemFS(t.TempDir()), &Options{MaxRequests: 1, Logf: t.Logf})
	s.init()
	stream := func(n int) []byte {
		b, err := Encode(nil, 8192, NoTag, &Tversion{Msize: 8192, Version: []byte(Version)})
		if err != nil {
			t.Fatal(err)
		}
		if b, err = Encode(b, 8192, 1, &Tattach{Fid: 1, Afid: NoFid, Uname: []byte{}, Aname: []byte{}}); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if b, err = Encode(b, 8192, uint16(2+i), &Tgetattr{Fid: 1, Mask: AttrBasic}); err != nil {
				t.Fatal(err)
			}
		}
		return b
	}
	const few, many = 20, 2000
	nc := &countConn{}
	serve := func(in []byte) float64 {
		return testing.AllocsPerRun(5, func() {
			nc.in.Reset(in)
			nc.replies = [256]int{}
			c, err := s.newConn(nc, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.serve(time.Now()); err != nil {
				t.Fatal(err)
			}
		})
	}
	small, large := stream(few), stream(many)
	serve(large) // warm up: the read buffer pool, the memFS
	// AllocsPerRun counts the whole process's allocations: a goroutine
	// left by an earlier test may add some to one measure, never 2,000
	// to each of three, as one allocation per request would.
	var a, b, per float64
	for range 3 {
		a, b = serve(small), serve(large)
		// At EOF the connection's end interrupts what is still queued
		// (at most its MaxRequests+readAhead slots); every other
		// Tgetattr was served.
		if got := nc.replies[MsgRgetattr]; got < many-(1+readAhead) {
			t.Fatalf("%d of %d Tgetattr answered Rgetattr, replies by type %v", got, many, nc.replies)
		}
		t.Logf("a connection allocates %.0f times serving %d Tgetattr, %.0f serving %d", a, few, b, many)
		if per = (b - a) / (many - few); per < 0.5 {
			return
		}
	}
	t.Errorf("a connection allocates %.0f times serving %d Tgetattr, %.0f serving %d: %.2f per request, want 0", a, few, b, many, per)
}

// countConn is a scriptConn that counts the replies written to it by
// type (one reply per write).
type countConn struct {
	scriptConn
	replies [256]int
}

func (c *countConn) Write(b []byte) (int, error) {
	if len(b) > 4 {
		c.replies[b[4]]++
	}
	return len(b), nil
}
