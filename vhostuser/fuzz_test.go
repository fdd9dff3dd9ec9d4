package vhostuser_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/vhostuser"
	vt "github.com/fastfsd/fastfsd/vhostuser/vhostusertest"
)

// FuzzServe feeds a byte stream (any sequence of messages, no fds) to a
// session with a fake device. Invariants: Serve returns, with an error
// matching exactly one of the three sentinels; no internal error (panic)
// is logged; the device is left with no queue running.
func FuzzServe(f *testing.F) {
	m := func(req vhostuser.Request, flags uint32, p []byte) []byte {
		b := make([]byte, 12+len(p))
		le.PutUint32(b, uint32(req))
		le.PutUint32(b[4:], flags|1)
		le.PutUint32(b[8:], uint32(len(p)))
		copy(b[12:], p)
		return b
	}
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	const ack = vhostuser.VHOST_USER_NEED_REPLY
	f.Add(cat(m(1, 0, nil), m(15, 0, nil), m(16, 0, vt.U64(1<<3|1<<0)), m(17, 0, nil), m(3, ack, nil)))
	f.Add(cat(m(16, 0, vt.U64(8)), m(2, ack, vt.U64(1<<32|1<<30)), m(8, ack, vt.State(1, 64)), m(10, ack, vt.State(1, 5)),
		m(18, ack, vt.State(1, 1)), m(11, 0, vt.State(1, 0))))
	f.Add(cat(m(16, 0, vt.U64(8)), m(12, ack, vt.U64(1|1<<8)), m(13, ack, vt.U64(1|1<<8)), m(9, ack, addr(1, 0, 0, 0))))
	f.Add(cat(m(24, 0, append([]byte{0, 0, 0, 0, 40, 0, 0, 0, 0, 0, 0, 0}, make([]byte, 40)...)), m(40, 0, nil), m(39, 0, vt.U64(15))))
	f.Add(cat(m(37, ack, make([]byte, 40)), m(38, ack, make([]byte, 40)), m(5, ack, memTable(vt.Region{Size: 4096}))))
	f.Add(cat(m(34, 0, nil), m(4, 0, nil), m(6, 0, make([]byte, 16)), m(99, 0, []byte("junk"))))
	f.Fuzz(func(t *testing.T, stream []byte) {
		dev := newFake(2)
		var log strings.Builder
		b := vhostuser.NewBackend(dev)
		b.Log = slog.New(slog.NewTextHandler(&log, nil))
		fe, c, err := vt.Pair()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- b.Serve(c) }()
		// Drain replies so the back-end never blocks writing them.
		go func() {
			buf := make([]byte, 4096)
			for {
				if _, err := fe.Conn().Read(buf); err != nil {
					return
				}
			}
		}()
		fe.SendRaw(stream)
		fe.Conn().CloseWrite()
		var serr error
		select {
		case serr = <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return")
		}
		fe.Close()
		n := 0
		for _, s := range []error{vhostuser.ErrClosed, vhostuser.ErrDisconnected, vhostuser.ErrInvalidMessage} {
			if errors.Is(serr, s) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("Serve = %v: matches %d sentinels, want 1", serr, n)
		}
		if strings.Contains(log.String(), "internal error") {
			t.Fatalf("internal error:\n%s", log.String())
		}
		if dev.nrunning() != 0 {
			t.Fatal("queues left running")
		}
	})
}
