package fusedev

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fuse"
)

// A SOCK_SEQPACKET socketpair keeps message boundaries as /dev/fuse does
// (one read = one request, one write = one reply), so a worker can be
// driven without a mount and without root.
type fakeDev struct {
	w      *worker
	client int // the kernel's side
	req    []byte
	reply  []byte
}

func newFakeDev(t testing.TB) *fakeDev {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[0]); unix.Close(fds[1]) })
	// SEQPACKET messages of ~1 MiB need large socket buffers.
	for _, fd := range fds {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	}
	fsys := newTestFS(t)
	srv := fuse.NewServer(fsys, fuse.Options{MaxWrite: 128 << 10})
	c := &Conn{fd: fds[0], mountpoint: "fake"}
	d := &fakeDev{
		w:      newWorker(c, srv, fds[0], 0, inHeaderSize+writeInSize+128<<10, nil),
		client: fds[1],
		req:    make([]byte, 4096),
		reply:  make([]byte, 256<<10),
	}
	d.init(t, initExt|initSpliceRead|initSpliceWrite|1<<5 /* BIG_WRITES */)
	return d
}

// init sends INIT with flags, as a 7.45 kernel does, and checks that the
// worker's server accepted it.
func (d *fakeDev) init(t testing.TB, flags uint32) {
	t.Helper()
	n := d.put(opInit, 0, 64)
	ne := binary.NativeEndian
	ne.PutUint32(d.req[40:], 7)
	ne.PutUint32(d.req[44:], 45)
	ne.PutUint32(d.req[48:], 128<<10)
	ne.PutUint32(d.req[52:], flags)
	out := d.roundTrip(t, n)
	if len(out) < outHeaderSize || ne.Uint32(out[4:]) != 0 {
		t.Fatalf("INIT reply %x", out)
	}
}

// useServer makes the worker serve srv, past an INIT with flags.
func (d *fakeDev) useServer(t testing.TB, srv *fuse.Server, flags uint32) {
	t.Helper()
	d.w.srv = srv
	d.w.req = srv.NewRequest()
	d.init(t, flags)
}

// put writes an in_header for op on node with argLen bytes of arguments
// after it and returns the request's length.
func (d *fakeDev) put(op uint32, node uint64, argLen int) int {
	ne := binary.NativeEndian
	clear(d.req[:inHeaderSize+argLen])
	n := inHeaderSize + argLen
	ne.PutUint32(d.req[0:], uint32(n))
	ne.PutUint32(d.req[4:], op)
	ne.PutUint64(d.req[8:], 2)
	ne.PutUint64(d.req[16:], node)
	return n
}

// roundTrip sends d.req[:n] as the kernel would, lets the worker serve
// it, and returns the reply.
func (d *fakeDev) roundTrip(t testing.TB, n int) []byte {
	d.feed(t, n)
	r, err := unix.Read(d.client, d.reply)
	if err != nil {
		t.Fatal(err)
	}
	return d.reply[:r]
}

// feed sends d.req[:n] as the kernel would and lets the worker serve it;
// the reply, if any, is left to read.
func (d *fakeDev) feed(t testing.TB, n int) {
	if _, err := unix.Write(d.client, d.req[:n]); err != nil {
		t.Fatal(err)
	}
	m, e := readDev(d.w.fd, d.w.buf)
	if e != 0 {
		t.Fatal(e)
	}
	if _, stop := d.w.serve(d.w.buf[:m]); stop {
		t.Fatal("worker stopped")
	}
}

// nextReply reads one reply, waiting up to 5 s: its unique and error.
func (d *fakeDev) nextReply(t testing.TB) (uint64, int32) {
	t.Helper()
	unix.SetsockoptTimeval(d.client, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
	r, err := unix.Read(d.client, d.reply)
	if err != nil || r < outHeaderSize {
		t.Fatalf("no reply: %v", err)
	}
	ne := binary.NativeEndian
	return ne.Uint64(d.reply[8:]), int32(ne.Uint32(d.reply[4:]))
}

func TestWorkerServeAllocs(t *testing.T) {
	d := newFakeDev(t)
	ne := binary.NativeEndian
	getattr := d.put(3, 1, 16)
	out := d.roundTrip(t, getattr)
	if len(out) != outHeaderSize+104 || ne.Uint32(out[4:]) != 0 {
		t.Fatalf("GETATTR root: reply of %d bytes, error %d", len(out), int32(ne.Uint32(out[4:])))
	}
	if n := testing.AllocsPerRun(200, func() { d.put(3, 1, 16); d.roundTrip(t, getattr) }); n != 0 {
		t.Errorf("GETATTR round trip allocates %v times, want 0", n)
	}
	// READ of 64 KiB from the fd-backed file: pread into the reply buffer.
	read := func() int {
		n := d.put(opRead, inoData, 40)
		ne.PutUint64(d.req[48:], 4096)   // offset
		ne.PutUint32(d.req[56:], 64<<10) // size
		return n
	}
	out = d.roundTrip(t, read())
	if len(out) != outHeaderSize+64<<10 {
		t.Fatalf("READ: reply of %d bytes, error %d", len(out), int32(ne.Uint32(out[4:])))
	}
	if n := testing.AllocsPerRun(200, func() { d.roundTrip(t, read()) }); n != 0 {
		t.Errorf("READ round trip allocates %v times, want 0", n)
	}
}

func TestSpliceSinkSourceAllocs(t *testing.T) {
	dir := t.TempDir()
	f, err := os.OpenFile(filepath.Join(dir, "f"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(make([]byte, 256<<10))
	fd := int(f.Fd())
	w := &worker{stats: new(workerStats)}
	if err := w.setupSplice(inHeaderSize+writeInSize+128<<10, true, true); err != nil {
		t.Fatal(err)
	}
	defer w.close()
	payload := make([]byte, 64<<10)
	out := make([]byte, 256<<10)
	run := func() {
		w.sink.reset(out)
		if n, e := w.sink.ReadFrom(fd, 4096, 128<<10); e != 0 || n != 128<<10 || w.sink.Len() != n {
			t.Fatalf("sink ReadFrom = %d, %v", n, e)
		}
		w.data.Drain()
		w.in.Write(payload)
		w.src.n = len(payload)
		if n, e := w.src.WriteTo(fd, 8192); e != 0 || n != len(payload) || w.in.Len() != 0 {
			t.Fatalf("source WriteTo = %d, %v", n, e)
		}
	}
	run()
	if n := testing.AllocsPerRun(100, run); n != 0 {
		t.Errorf("splice sink+source allocate %v times per request, want 0", n)
	}
}

// BenchmarkWorkerRoundTrip is one request through the transport and the
// engine over the fake device (socket syscalls included).
func BenchmarkWorkerRoundTrip(b *testing.B) {
	for _, bc := range []struct {
		name string
		op   uint32
		node uint64
		arg  int
		size uint32
	}{{"getattr", 3, 1, 16, 0}, {"read64k", opRead, inoData, 40, 64 << 10}} {
		b.Run(bc.name, func(b *testing.B) {
			d := newFakeDev(b)
			b.ReportAllocs()
			if bc.size > 0 {
				b.SetBytes(int64(bc.size))
			}
			for b.Loop() {
				n := d.put(bc.op, bc.node, bc.arg)
				if bc.op == opRead {
					binary.NativeEndian.PutUint32(d.req[56:], bc.size)
				}
				d.roundTrip(b, n)
			}
		})
	}
}
