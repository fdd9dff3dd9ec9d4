package p9

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// logCapture collects a server's connection log.
type logCapture struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logCapture) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(strings.TrimSpace(fmt.Sprintf(format, args...)) + "\n")
}

func (l *logCapture) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestFlushFlood: Tflushes at a request whose reply cannot be written
// (the client stopped reading) used to queue their Rflushes without bound
// (2,000,000 in issue 10). Past maxFlushers for one request the
// connection is dropped with a clear log line, the heap does not grow,
// and a new connection is served.
func TestFlushFlood(t *testing.T) {
	m := newMemFS("")
	var lg logCapture
	const workers = 4
	sock, _ := startServer(t, m, &Options{MaxRequests: workers, Logf: lg.logf})
	r := dialRaw(t, sock)
	r.version(1 << 20)
	r.attach(1)
	r.ok(&Tlcreate{Fid: 1, Name: []byte("f"), Flags: DotlRdwr, Mode: 0644}, MsgRlcreate)
	for off := 0; off < 1<<20; off += 64 << 10 {
		r.ok(&Twrite{Fid: 1, Offset: uint64(off), Data: bytes.Repeat([]byte{'x'}, 64<<10)}, MsgRwrite)
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	// As many 1 MiB reads as the connection has slots, never read: the
	// first reply fills the socket (its writer holds the write lock), the
	// rest wait to be written.
	last := uint16(10 + workers + readAhead - 1)
	for tag := uint16(10); tag <= last; tag++ {
		r.send(tag, &Tread{Fid: 1, Offset: 0, Count: 1<<20 - 64})
	}
	time.Sleep(300 * time.Millisecond)
	// 100,000 Tflush of the last one.
	one, err := Encode(nil, 64, 0, &Tflush{OldTag: last})
	if err != nil {
		t.Fatal(err)
	}
	one = bytes.Clone(one)
	var buf bytes.Buffer
	for i := range 100000 {
		binary.LittleEndian.PutUint16(one[5:], uint16(100+i%60000)) // size[4] type[1] tag[2]
		buf.Write(one)
	}
	go r.nc.Write(buf.Bytes()) // fails once the server drops us
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(lg.String(), "Tflush") {
		if time.Now().After(deadline) {
			t.Fatalf("connection not dropped after the flood; log:\n%s", lg.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	if grow := int64(ms.HeapAlloc) - int64(before); grow > 16<<20 {
		t.Errorf("heap grew by %d bytes during the flood", grow)
	}
	t.Logf("dropped: %s", strings.TrimSpace(lg.String()))
	r2 := dialRaw(t, sock)
	r2.version(8192)
	r2.attach(1)
}

// TestShutdownStalledReader: a client that stops reading its replies
// holds its workers in write; Shutdown drops it within seconds instead of
// waiting out the drain (SIGTERM would hang as long).
func TestShutdownStalledReader(t *testing.T) {
	m := newMemFS("")
	sock, s := startServer(t, m, &Options{MaxRequests: 4})
	r := dialRaw(t, sock)
	r.version(1 << 20)
	r.attach(1)
	r.ok(&Tlcreate{Fid: 1, Name: []byte("f"), Flags: DotlRdwr, Mode: 0644}, MsgRlcreate)
	data := bytes.Repeat([]byte{'x'}, 60000)
	r.ok(&Twrite{Fid: 1, Offset: 0, Data: data}, MsgRwrite)
	// Ask for far more than the socket buffers hold, read nothing.
	go func() {
		for i := range 400 {
			b, _ := Encode(nil, r.msize, uint16(10+i), &Tread{Fid: 1, Offset: 0, Count: 60000})
			if _, err := r.nc.Write(b); err != nil {
				return
			}
		}
	}()
	time.Sleep(500 * time.Millisecond)
	// Another client is still served meanwhile.
	r2 := dialRaw(t, sock)
	r2.version(8192)
	r2.attach(1)
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- s.Shutdown(t.Context()) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown with a stalled reader still running after 10 s")
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Shutdown with a stalled reader took %v", d)
	}
}
