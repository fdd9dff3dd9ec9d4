package dos

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/p9"
)

// p9Client is a minimal 9P2000.L client over a unix socket.
type p9Client struct {
	t     *testing.T
	nc    net.Conn
	msize uint32
	tag   uint16
}

func dial9p(t *testing.T, sock string) *p9Client {
	t.Helper()
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := &p9Client{t: t, nc: nc, msize: 1 << 20}
	rv := c.rpc(&p9.Tversion{Msize: 1 << 20, Version: []byte(p9.Version)}).(*p9.Rversion)
	c.msize = rv.Msize
	c.rpc(&p9.Tattach{Fid: 1, Afid: p9.NoFid, NUname: 0, Aname: []byte{}})
	return c
}

func (c *p9Client) send(tag uint16, m p9.Message) error {
	b, err := p9.Encode(nil, c.msize, tag, m)
	if err != nil {
		c.t.Fatal(err)
	}
	_, err = c.nc.Write(b)
	return err
}

func (c *p9Client) recv() (p9.Message, error) {
	var hb [4]byte
	if _, err := io.ReadFull(c.nc, hb[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.LittleEndian.Uint32(hb[:]))
	copy(b, hb[:])
	if _, err := io.ReadFull(c.nc, b[4:]); err != nil {
		return nil, err
	}
	_, m, err := p9.Decode(b, c.msize)
	return m, err
}

// rpc sends m and returns its reply, failing the test on an Rlerror.
func (c *p9Client) rpc(m p9.Message) p9.Message {
	c.t.Helper()
	rm, err := c.call(m)
	if err != nil {
		c.t.Fatalf("%v: %v", m.Type(), err)
	}
	return rm
}

func (c *p9Client) call(m p9.Message) (p9.Message, error) {
	c.tag++
	tag := c.tag
	if m.Type() == p9.MsgTversion {
		tag = p9.NoTag
	}
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.send(tag, m); err != nil {
		return nil, err
	}
	rm, err := c.recv()
	if err != nil {
		return nil, err
	}
	if e, ok := rm.(*p9.Rlerror); ok {
		return rm, fmt.Errorf("Rlerror %d: %w", e.Ecode, syscall.Errno(e.Ecode))
	}
	return rm, nil
}

// start9p runs fastfsd 9p on a fresh directory with a 1 MiB file "f".
func start9p(t *testing.T, flags ...string) (*daemon, string) {
	t.Helper()
	top := t.TempDir()
	src := filepath.Join(top, "src")
	os.Mkdir(src, 0o755)
	if err := os.WriteFile(filepath.Join(src, "f"), bytes.Repeat([]byte{'x'}, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(top, "9p.sock")
	d := startDaemon(t, append([]string{"9p", "--listen", "unix:" + sock, "--shared-dir", src}, flags...)...)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if nc, err := net.Dial("unix", sock); err == nil {
			nc.Close()
			return d, sock
		}
		select {
		case <-d.exited:
			t.Fatalf("fastfsd 9p exited: %v\n%s", d.waitErr, d.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("fastfsd 9p not listening after 30 s\n%s", d.out.String())
		}
		time.Sleep(10 * time.Millisecond) // no event tells the socket is ready
	}
}

// getattrLoop is the second client's probe over its own connection:
// walk to "f" once, then Tgetattr.
func getattrLoop(t *testing.T, sock string) func() error {
	c := dial9p(t, sock)
	c.rpc(&p9.Twalk{Fid: 1, Newfid: 2, NNames: 1, Names: [p9.MaxWalkElem][]byte{[]byte("f")}})
	return func() error {
		_, err := c.call(&p9.Tgetattr{Fid: 2, Mask: p9.AttrBasic})
		return err
	}
}

// stalledReader makes a client that asks for 1 MiB reads and never reads
// the replies, then floods Tflush at the last one: fastfsd must drop it
// (at most 16 Tflush pending per request), keep its memory flat and keep
// serving the other client.
func stalledReader(t *testing.T, sock string, flood bool) {
	a := dial9p(t, sock)
	a.rpc(&p9.Twalk{Fid: 1, Newfid: 2, NNames: 1, Names: [p9.MaxWalkElem][]byte{[]byte("f")}})
	a.rpc(&p9.Tlopen{Fid: 2, Flags: p9.DotlRdonly})
	a.nc.SetDeadline(time.Time{})
	// Fill the request slots (16 workers + 4 read ahead) with reads.
	for tag := uint16(10); tag < 30; tag++ {
		if err := a.send(tag, &p9.Tread{Fid: 2, Offset: 0, Count: 1<<20 - 64}); err != nil {
			t.Fatal(err)
		}
	}
	if !flood {
		return
	}
	time.Sleep(300 * time.Millisecond)
	one, _ := p9.Encode(nil, 64, 0, &p9.Tflush{OldTag: 29})
	one = bytes.Clone(one)
	var buf bytes.Buffer
	for i := range 100000 {
		binary.LittleEndian.PutUint16(one[5:], uint16(100+i%60000))
		buf.Write(one)
	}
	go a.nc.Write(buf.Bytes()) // fails once fastfsd drops the connection
}

// TestP9TflushFlood: a client that stops reading and floods Tflush is
// dropped; a second client's Tgetattr loop is unaffected; fastfsd's RSS
// stays bounded; SIGTERM then ends it within 5 s.
func TestP9TflushFlood(t *testing.T) {
	d, sock := start9p(t)
	probeOp := getattrLoop(t, sock)
	idle := measureIdle(t, time.Second, probeOp)
	p := startProbe(probeOp)
	stalledReader(t, sock, true)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(d.out.String(), "Tflush"); {
		if time.Now().After(deadline) {
			t.Fatalf("the flooding connection was not dropped")
		}
		time.Sleep(20 * time.Millisecond) // polling fastfsd's log: no event for it
	}
	time.Sleep(500 * time.Millisecond)
	checkProbe(t, "Tflush flood", p, idle)
	checkBounds(t, "Tflush flood", d, 64, 256<<20)
	dt := d.sigterm(10 * time.Second)
	t.Logf("SIGTERM after the flood: exited in %v", dt)
	if dt > 5*time.Second {
		t.Errorf("SIGTERM took %v, want < 5 s", dt)
	}
}

// TestP9StalledReaderSIGTERM: with a client that stopped reading (its
// workers blocked writing replies), the other client keeps being served,
// and SIGTERM ends fastfsd within 5 s (the default --drain is 10 s).
func TestP9StalledReaderSIGTERM(t *testing.T) {
	d, sock := start9p(t)
	probeOp := getattrLoop(t, sock)
	idle := measureIdle(t, time.Second, probeOp)
	p := startProbe(probeOp)
	stalledReader(t, sock, false)
	time.Sleep(2 * time.Second)
	checkProbe(t, "stalled reader", p, idle)
	// 20 slots × 2 MiB of buffers at most for the stalled connection.
	checkBounds(t, "stalled reader", d, 64, 256<<20)
	dt := d.sigterm(10 * time.Second)
	t.Logf("SIGTERM with a stalled reader: exited in %v", dt)
	if dt > 5*time.Second {
		t.Errorf("SIGTERM took %v, want < 5 s", dt)
	}
}
