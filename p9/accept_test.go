package p9

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// scriptConn is a net.Conn whose reads return what in holds, then EOF,
// and whose writes vanish.
type scriptConn struct {
	discardConn
	in bytes.Reader
}

func (c *scriptConn) Read(b []byte) (int, error) { return c.in.Read(b) }

// TestAcceptRefusalAllocs: refusing a connection past its owner's share
// on the accept loop allocates nothing (once the refusal log's burst is
// spent): a client connecting in a loop costs an accept and a close.
func TestAcceptRefusalAllocs(t *testing.T) {
	s := NewServer(newMemFS(""), &Options{MaxConnsPerPeer: 1, Logf: func(string, ...any) {},
		Owner: func(net.Conn) (Owner, error) { return Owner{Key: "uid 65534"}, nil }})
	s.perOwner["uid 65534"] = 1 // its one connection is open
	nc := &discardConn{}
	for range refusalBurst {
		s.refusals.allow(time.Now())
	}
	if n := testing.AllocsPerRun(100, func() { s.accept(nc) }); n != 0 {
		t.Errorf("refusing a connection past its share allocates %v times, want 0", n)
	}
	if s.pending != 0 || s.perOwner["uid 65534"] != 1 {
		t.Errorf("after the refusals: %d pending, the owner counted %d times; want 0 and 1", s.pending, s.perOwner["uid 65534"])
	}
}

// TestConnBuffersLazy: a connection that closes without a message never
// takes a read buffer or makes a request slot; one that sends Tversion
// takes a read buffer and gives it back when it ends, and makes no
// request slot for it.
func TestConnBuffersLazy(t *testing.T) {
	s := NewServer(newMemFS(""), &Options{Logf: t.Logf})
	s.init()
	tv, err := Encode(nil, 8192, NoTag, &Tversion{Msize: 8192, Version: []byte(Version)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{{"closed at once", nil}, {"Tversion then closed", tv}} {
		nc := &scriptConn{}
		nc.in.Reset(tc.in)
		c, err := s.newConn(nc, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.serve(time.Now()); err != nil && err != io.EOF {
			t.Errorf("%s: serve: %v", tc.name, err)
		}
		replied := nc.last != nil // Rversion
		if c.br != nil || c.slots != 0 {
			t.Errorf("%s: after serve, read buffer %v, %d request slots made; want none kept, none made", tc.name, c.br != nil, c.slots)
		}
		if want := tc.in != nil; replied != want {
			t.Errorf("%s: replied %v, want %v", tc.name, replied, want)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) != 0 || len(s.perOwner) != 0 {
		t.Errorf("%d connections, owners %v left; want none", len(s.conns), s.perOwner)
	}
}
