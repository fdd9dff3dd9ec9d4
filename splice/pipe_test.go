package splice

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func newPipe(t testing.TB, size int) *Pipe {
	t.Helper()
	p, err := New(size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestPipeSize(t *testing.T) {
	p := newPipe(t, 256<<10)
	if p.Cap() < 256<<10 {
		t.Fatalf("Cap() = %d, want >= %d", p.Cap(), 256<<10)
	}
	d := newPipe(t, 0)
	if d.Cap() <= 0 {
		t.Fatalf("default Cap() = %d", d.Cap())
	}
}

func TestPipeFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("0123456789abcdef"), 8192) // 128 KiB
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(filepath.Join(dir, "dst"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()

	p := newPipe(t, 256<<10)
	q := newPipe(t, 256<<10)
	// header by copy, then file data by splice at an offset, then move it
	// to a second pipe behind another header: the /dev/fuse READ pattern.
	if n, e := q.Write([]byte("HDR:")); e != 0 || n != 4 {
		t.Fatalf("Write = %d, %v", n, e)
	}
	off := int64(16)
	n, e := p.SpliceFrom(int(in.Fd()), &off, len(data)-16)
	if e != 0 || n != len(data)-16 || off != int64(len(data)) || p.Len() != n {
		t.Fatalf("SpliceFrom = %d, %v (off %d, Len %d)", n, e, off, p.Len())
	}
	if m, e := q.MoveFrom(p, n); e != 0 || m != n || p.Len() != 0 || q.Len() != n+4 {
		t.Fatalf("MoveFrom = %d, %v; Len %d/%d", m, e, p.Len(), q.Len())
	}
	var woff int64
	if m, e := q.SpliceToAll(int(out.Fd()), &woff, q.Len()); e != 0 || m != n+4 {
		t.Fatalf("SpliceToAll = %d, %v", m, e)
	}
	got, _ := os.ReadFile(out.Name())
	want := append([]byte("HDR:"), data[16:]...)
	if !bytes.Equal(got, want) {
		t.Fatalf("file content differs: got %d bytes, want %d", len(got), len(want))
	}
}

func TestPipeReadDrain(t *testing.T) {
	p := newPipe(t, 0)
	p.Write([]byte("hello world"))
	var b [5]byte
	if e := p.ReadFull(b[:]); e != 0 || string(b[:]) != "hello" || p.Len() != 6 {
		t.Fatalf("ReadFull: %v %q Len %d", e, b, p.Len())
	}
	if e := p.Drain(); e != 0 || p.Len() != 0 {
		t.Fatalf("Drain: %v, Len %d", e, p.Len())
	}
	// Empty and non-blocking: a read must say EAGAIN, not hang.
	if _, e := p.Read(b[:]); e != syscall.EAGAIN {
		t.Fatalf("read of empty pipe: %v, want EAGAIN", e)
	}
	// ReadFull of more than the pipe holds fails instead of blocking.
	p.Write([]byte("ab"))
	if e := p.ReadFull(b[:]); e == 0 {
		t.Fatalf("ReadFull past the end succeeded")
	}
}

func TestPool(t *testing.T) {
	pl := NewPool(128<<10, 1)
	defer pl.Close()
	a, err := pl.Get()
	if err != nil {
		t.Fatal(err)
	}
	a.Write([]byte("left over"))
	pl.Put(a)
	b, _ := pl.Get()
	if b != a || b.Len() != 0 {
		t.Fatalf("pool did not reuse the drained pipe (same=%v Len=%d)", b == a, b.Len())
	}
	var rb [1]byte
	if _, e := b.Read(rb[:]); e != syscall.EAGAIN {
		t.Fatalf("reused pipe not empty: %v", e)
	}
	c, _ := pl.Get()
	pl.Put(b)
	pl.Put(c) // over maxIdle: closed
	if c.r != -1 {
		t.Fatalf("pipe beyond maxIdle not closed")
	}
}

func TestPipeAllocs(t *testing.T) {
	p := newPipe(t, 0)
	q := newPipe(t, 0)
	buf := make([]byte, 64)
	n := testing.AllocsPerRun(200, func() {
		p.Write(buf)
		q.MoveFrom(p, 32)
		p.Read(buf[:32])
		q.Drain()
	})
	if n != 0 {
		t.Fatalf("pipe ops allocate %v per run, want 0", n)
	}
}

func BenchmarkSpliceFileToPipe(b *testing.B) {
	f, err := os.CreateTemp(b.TempDir(), "f")
	if err != nil {
		b.Fatal(err)
	}
	const size = 128 << 10
	f.Write(make([]byte, size))
	p := newPipe(b, size)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		var off int64
		if n, e := p.SpliceFrom(int(f.Fd()), &off, size); e != 0 || n != size {
			b.Fatalf("%d %v", n, e)
		}
		p.Drain()
	}
}

func BenchmarkPreadCopy(b *testing.B) {
	f, err := os.CreateTemp(b.TempDir(), "f")
	if err != nil {
		b.Fatal(err)
	}
	const size = 128 << 10
	f.Write(make([]byte, size))
	buf := make([]byte, size)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		if n, err := syscall.Pread(int(f.Fd()), buf, 0); err != nil || n != size {
			b.Fatal(n, err)
		}
	}
}

func TestMaxSize(t *testing.T) {
	m, err := MaxSize()
	if err != nil {
		t.Fatal(err)
	}
	p := newPipe(t, m) // always allowed, with or without CAP_SYS_RESOURCE
	if p.Cap() != m {
		t.Fatalf("pipe of MaxSize %d has Cap %d", m, p.Cap())
	}
}
