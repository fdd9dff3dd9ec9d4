package fuse

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestReadSinkReadFrom(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	content := bytes.Repeat([]byte("0123456789"), 1000)
	if _, err := f.Write(content); err != nil {
		t.Fatal(err)
	}
	fd := int(f.Fd())
	var k readSink
	k.reset(make([]byte, 100))
	if n := k.Append([]byte("hdr:")); n != 4 || k.Len() != 4 || k.Cap() != 96 {
		t.Fatalf("Append: n %d len %d cap %d", n, k.Len(), k.Cap())
	}
	n, e := k.ReadFrom(fd, 10, 50)
	if e != 0 || n != 50 || string(k.buf[:k.n]) != "hdr:"+string(content[10:60]) {
		t.Fatalf("ReadFrom: %d %v %q", n, e, k.buf[:k.n])
	}
	// Capped by the room left, then short at end of file.
	if n, e := k.ReadFrom(fd, 0, 1000); e != 0 || n != 46 || k.Cap() != 0 {
		t.Fatalf("ReadFrom past Cap: %d %v cap %d", n, e, k.Cap())
	}
	k.reset(make([]byte, 100))
	if n, e := k.ReadFrom(fd, int64(len(content))-3, 10); e != 0 || n != 3 {
		t.Fatalf("ReadFrom at EOF: %d %v", n, e)
	}
	if _, e := k.ReadFrom(-1, 0, 10); e != syscall.EBADF {
		t.Fatalf("ReadFrom(-1): %v", e)
	}
	if _, e := k.ReadFrom(fd, -1, 10); e != syscall.EINVAL {
		t.Fatalf("ReadFrom negative offset: %v", e)
	}
	if n := testing.AllocsPerRun(100, func() { k.reset(k.buf); k.ReadFrom(fd, 0, 64) }); n != 0 {
		t.Errorf("ReadFrom allocates %v", n)
	}
}

func TestWriteSourceWriteTo(t *testing.T) {
	name := filepath.Join(t.TempDir(), "out")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := BytesSource{B: []byte("payload bytes")}
	if n, e := w.WriteTo(int(f.Fd()), 5); e != 0 || n != 13 {
		t.Fatalf("WriteTo: %d %v", n, e)
	}
	got, _ := os.ReadFile(name)
	if string(got) != "\x00\x00\x00\x00\x00payload bytes" {
		t.Errorf("file %q", got)
	}
	dst := make([]byte, 7)
	if n := w.CopyTo(dst); n != 7 || string(dst) != "payload" || w.Len() != 13 {
		t.Errorf("CopyTo %d %q", n, dst)
	}
	if _, e := w.WriteTo(-1, 0); e != syscall.EBADF {
		t.Errorf("WriteTo(-1): %v", e)
	}
}
