package p9

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	hp9 "github.com/hugelgupf/p9/p9"
)

// limitServer serves a memFS on a loopback tcp listener (peers counted
// by their address, ConnOwner's default) and on a unix socket whose
// peers Identify makes root (so that root's share needs no root test
// process). It returns both addresses and a log of Logf's lines.
func limitServer(t *testing.T, opts Options) (tcpAddr, sock string, s *Server, logs *logLines) {
	t.Helper()
	logs = &logLines{t: t}
	opts.Logf = logs.printf
	opts.Identify = func(nc net.Conn) (Peer, error) {
		if _, ok := nc.(*net.UnixConn); ok {
			return Peer{Trusted: true, Owner: UidOwner(0)}, nil
		}
		return Peer{Trusted: true}, nil // Owner: ConnOwner's, by address
	}
	sock, s = startServer(t, newMemFS(""), &opts)
	return serveTCP(t, s), sock, s, logs
}

// serveTCP serves s on a loopback tcp listener too and returns its
// address. The Serve ends when startServer's cleanup closes s.
func serveTCP(t *testing.T, s *Server) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	return l.Addr().String()
}

// logLines collects a server's log lines.
type logLines struct {
	t     *testing.T
	mu    sync.Mutex
	lines []string
}

func (l *logLines) printf(format string, args ...any) {
	l.t.Logf(format, args...)
	l.mu.Lock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
	l.mu.Unlock()
}

// count is how many lines hold every one of subs.
func (l *logLines) count(subs ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
next:
	for _, line := range l.lines {
		for _, s := range subs {
			if !strings.Contains(line, s) {
				continue next
			}
		}
		n++
	}
	return n
}

// dialFrom connects to a tcp address from local address src (any
// 127.0.0.0/8 address is the loopback on Linux).
func dialFrom(t *testing.T, addr, src string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// attach runs Tversion and Tattach on nc and fails the test unless both
// work.
func attach(t *testing.T, what string, nc net.Conn) *hp9.Client {
	t.Helper()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := hp9.NewClient(nc, hp9.WithMessageSize(64<<10))
	if err != nil {
		t.Fatalf("%s: Tversion: %v", what, err)
	}
	root, err := c.Attach("")
	if err != nil {
		t.Fatalf("%s: Tattach: %v", what, err)
	}
	if _, _, _, err := root.GetAttr(hp9.AttrMaskAll); err != nil {
		t.Fatalf("%s: Tgetattr: %v", what, err)
	}
	nc.SetDeadline(time.Time{})
	return c
}

// wantClosed fails unless the server closed nc without a byte, at once
// (within 2 s: well before any handshake timeout of these tests).
func wantClosed(t *testing.T, what string, nc net.Conn) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(2 * time.Second))
	var b [1]byte
	n, err := nc.Read(b[:])
	if n != 0 || !(errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		t.Errorf("%s: read %d bytes, %v; want the connection closed at once (EOF)", what, n, err)
	}
}

// wantEmpty waits for every connection's teardown and fails unless the
// server's accounting is back to empty.
func wantEmpty(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		nc, no := len(s.conns), len(s.perOwner)
		owners := make(map[string]int, no)
		for k, v := range s.perOwner {
			owners[k] = v
		}
		s.mu.Unlock()
		if nc == 0 && no == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("10 s after the clients closed: %d connections, per-owner counts %v; want none", nc, owners)
		}
		time.Sleep(5 * time.Millisecond) // teardown is asynchronous; nothing signals its end
	}
}

// TestMaxConnsPerPeer: one address gets MaxConnsPerPeer connections, the
// next is closed at accept with a log line naming it; other addresses
// and root are unaffected; closing releases the count and the map entry.
func TestMaxConnsPerPeer(t *testing.T) {
	addr, sock, s, logs := limitServer(t, Options{MaxConnsPerPeer: 3, HandshakeTimeout: -1})
	var conns []net.Conn
	for i := range 3 {
		nc := dialFrom(t, addr, "127.0.0.2")
		attach(t, fmt.Sprint("127.0.0.2 conn ", i), nc)
		conns = append(conns, nc)
	}
	for range 2 {
		wantClosed(t, "127.0.0.2 past its cap", dialFrom(t, addr, "127.0.0.2"))
	}
	if n := logs.count("ip 127.0.0.2", "refused", "Options.MaxConnsPerPeer"); n != 2 {
		t.Errorf("%d log lines refusing ip 127.0.0.2 and naming Options.MaxConnsPerPeer, want 2", n)
	}
	s.mu.Lock()
	if n := s.perOwner["ip 127.0.0.2"]; n != 3 {
		t.Errorf("ip 127.0.0.2 counted %d times, want 3 (refused connections must not count)", n)
	}
	s.mu.Unlock()
	// Another address, and root (exempt from the cap), get in.
	conns = append(conns, dialFrom(t, addr, "127.0.0.3"))
	attach(t, "127.0.0.3", conns[len(conns)-1])
	for i := range 4 {
		nc, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		attach(t, fmt.Sprint("root conn ", i), nc)
		conns = append(conns, nc)
	}
	// A slot freed is a slot to take again.
	conns[0].Close()
	for deadline := time.Now().Add(10 * time.Second); ; {
		s.mu.Lock()
		n := s.perOwner["ip 127.0.0.2"]
		s.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ip 127.0.0.2 still counted %d times 10 s after one of its connections closed, want 2", n)
		}
		time.Sleep(5 * time.Millisecond) // teardown is asynchronous
	}
	again := dialFrom(t, addr, "127.0.0.2")
	attach(t, "127.0.0.2 after one closed", again)
	for _, nc := range append(conns, again) {
		nc.Close()
	}
	wantEmpty(t, s)
}

// TestRootConns: once MaxConns-RootConns are open, only root gets in;
// MaxConns refuses root too.
func TestRootConns(t *testing.T) {
	addr, sock, s, logs := limitServer(t, Options{MaxConns: 4, RootConns: 2, MaxConnsPerPeer: -1, HandshakeTimeout: -1})
	attach(t, "127.0.0.2", dialFrom(t, addr, "127.0.0.2"))
	attach(t, "127.0.0.3", dialFrom(t, addr, "127.0.0.3"))
	wantClosed(t, "127.0.0.4 into root's reserve", dialFrom(t, addr, "127.0.0.4"))
	if n := logs.count("ip 127.0.0.4", "kept for root", "Options.RootConns"); n != 1 {
		t.Errorf("%d log lines refusing ip 127.0.0.4 for root's reserve, want 1", n)
	}
	for i := range 3 {
		nc, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if i < 2 {
			attach(t, "root in its reserve", nc)
		} else {
			wantClosed(t, "root past MaxConns", nc)
		}
	}
	if n := logs.count("uid 0", "Options.MaxConns"); n != 1 {
		t.Errorf("%d log lines refusing uid 0 past MaxConns, want 1", n)
	}
	if s.opts.RootConns != 2 {
		t.Errorf("RootConns in effect %d, want 2", s.opts.RootConns)
	}
	// RootConns keeps at most MaxConns-1; defaults are idempotent (a
	// limit turned off stays off when they are applied again).
	for _, tc := range []struct {
		in            Options
		root, perPeer int
		handshake     time.Duration
	}{
		{Options{MaxConns: 3, RootConns: 10}, 2, DefaultMaxConnsPerPeer, DefaultHandshakeTimeout},
		{Options{MaxConns: 3, RootConns: -1, MaxConnsPerPeer: -1, HandshakeTimeout: -1}, 0, -1, -1},
		{Options{MaxConns: 1}, 0, DefaultMaxConnsPerPeer, DefaultHandshakeTimeout},
		{Options{}, DefaultRootConns, DefaultMaxConnsPerPeer, DefaultHandshakeTimeout},
	} {
		d := tc.in.withDefaults()
		dd := d.withDefaults()
		for _, o := range []Options{d, dd} {
			if max(o.RootConns, 0) != tc.root || o.MaxConnsPerPeer != tc.perPeer || o.HandshakeTimeout != tc.handshake {
				t.Errorf("%+v with defaults (once or twice): RootConns %d, MaxConnsPerPeer %d, HandshakeTimeout %v; want %d, %d, %v",
					tc.in, o.RootConns, o.MaxConnsPerPeer, o.HandshakeTimeout, tc.root, tc.perPeer, tc.handshake)
			}
		}
	}
}

// TestHandshakeTimeout: a silent connection and one that sent Tversion
// but no Tattach are closed after the timeout; an attached one stays,
// idle, past several timeouts and still serves.
func TestHandshakeTimeout(t *testing.T) {
	const timeout = time.Second // the attached connection must attach well within it
	addr, _, s, logs := limitServer(t, Options{HandshakeTimeout: timeout})
	attached := attach(t, "attached", dialFrom(t, addr, "127.0.0.2"))
	silent := dialFrom(t, addr, "127.0.0.3")
	versioned := dialFrom(t, addr, "127.0.0.4")
	versioned.SetDeadline(time.Now().Add(5 * time.Second))
	tv, err := Encode(nil, 8192, NoTag, &Tversion{Msize: 8192, Version: []byte(Version)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := versioned.Write(tv); err != nil {
		t.Fatal(err)
	}
	rv := make([]byte, HeaderSize+4+2+len(Version))
	if _, err := io.ReadFull(versioned, rv); err != nil || MsgType(rv[4]) != MsgRversion {
		t.Fatalf("Tversion: %v, reply % x", err, rv)
	}
	start := time.Now()
	for _, nc := range []net.Conn{silent, versioned} {
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		var b [1]byte
		n, err := nc.Read(b[:])
		if n != 0 || !errors.Is(err, io.EOF) {
			t.Errorf("a connection without Tattach: read %d bytes, %v; want it closed (EOF)", n, err)
		}
	}
	if d := time.Since(start); d > timeout+5*time.Second {
		t.Errorf("silent connections closed after %v, want about %v", d, timeout)
	}
	if n := logs.count("Options.HandshakeTimeout"); n != 2 {
		t.Errorf("%d log lines naming Options.HandshakeTimeout, want 2", n)
	}
	time.Sleep(2 * timeout)
	root, err := attached.Attach("")
	if err != nil {
		t.Fatalf("the attached connection, idle for %v past the timeout: %v", 2*timeout, err)
	}
	if _, _, _, err := root.GetAttr(hp9.AttrMaskAll); err != nil {
		t.Fatalf("the attached connection: Tgetattr: %v", err)
	}
	s.mu.Lock()
	n, owners := len(s.conns), len(s.perOwner)
	s.mu.Unlock()
	if n != 1 || owners != 1 {
		t.Errorf("%d connections of %d owners left, want the attached one", n, owners)
	}
}

// TestConnOwner: a unix peer counts as its SO_PEERCRED uid, a tcp peer as
// its IPv4 address or IPv6 /64.
func TestConnOwner(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if nc, err := net.Dial("unix", sock); err == nil {
			defer nc.Close()
			time.Sleep(time.Second)
		}
	}()
	nc, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	o, err := ConnOwner(nc)
	if want := UidOwner(uint32(os.Getuid())); err != nil || o != want {
		t.Errorf("unix peer: %+v, %v; want %+v", o, err, want)
	}
	if o := UidOwner(0); !o.Root || o.Key != "uid 0" {
		t.Errorf("UidOwner(0) = %+v", o)
	}
	if o := UidOwner(65534); o.Root || o.Key != "uid 65534" {
		t.Errorf("UidOwner(65534) = %+v", o)
	}
	for in, want := range map[string]string{
		"192.0.2.7":            "ip 192.0.2.7",
		"::ffff:192.0.2.7":     "ip 192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "ip 2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "ip 2001:db8:1:2::/64",
		"::1":                  "ip ::/64",
	} {
		if o := addrOwner(netip.MustParseAddr(in)); o.Key != want || o.Root {
			t.Errorf("addrOwner(%s) = %+v, want key %q", in, o, want)
		}
	}
}

// TestConnAccountingNoLeak: many connections of many owners, refused and
// admitted, opened and closed: the per-owner map ends empty.
func TestConnAccountingNoLeak(t *testing.T) {
	addr, _, s, _ := limitServer(t, Options{MaxConns: 16, MaxConnsPerPeer: 2, HandshakeTimeout: -1})
	for round := range 3 {
		var conns []net.Conn
		for i := range 12 {
			src := fmt.Sprint("127.0.1.", 1+i%4)
			nc := dialFrom(t, addr, src)
			conns = append(conns, nc)
			if i < 8 {
				attach(t, src, nc)
			} else {
				wantClosed(t, src+" past its cap", nc)
			}
		}
		s.mu.Lock()
		if len(s.perOwner) != 4 || len(s.conns) != 8 {
			t.Errorf("round %d: %d owners, %d connections; want 4 and 8", round, len(s.perOwner), len(s.conns))
		}
		s.mu.Unlock()
		for _, nc := range conns {
			nc.Close()
		}
		wantEmpty(t, s)
	}
}

// TestPeerBufferBound: one owner's share of the buffer bound.
func TestPeerBufferBound(t *testing.T) {
	conn := uint64(DefaultMaxRequests+readAhead)*2*DefaultMaxMsize + xattrBudget
	if b := NewServer(nil, nil).PeerBufferBound(); b != DefaultMaxConnsPerPeer*conn {
		t.Errorf("default PeerBufferBound %d, want %d", b, DefaultMaxConnsPerPeer*conn)
	}
	// Without a per-peer cap, all but root's reserve.
	if b := (&Options{MaxConnsPerPeer: -1}).PeerBufferBound(); b != (DefaultMaxConns-DefaultRootConns)*conn {
		t.Errorf("uncapped PeerBufferBound %d, want %d", b, (DefaultMaxConns-DefaultRootConns)*conn)
	}
}

// TestRefusalLog: a refusal loop logs refusalBurst lines a second; the
// next line logged counts the ones that were not.
func TestRefusalLog(t *testing.T) {
	var l refusalLog
	t0 := time.Unix(1000, 0)
	for i := range refusalBurst + 5 {
		ok, skipped := l.allow(t0.Add(time.Duration(i) * time.Millisecond))
		if ok != (i < refusalBurst) || skipped != 0 {
			t.Fatalf("refusal %d in the first second: allow %v, skipped %d", i, ok, skipped)
		}
	}
	if ok, skipped := l.allow(t0.Add(time.Second)); !ok || skipped != 5 {
		t.Errorf("a second later: allow %v, skipped %d; want true, 5", ok, skipped)
	}
	if ok, skipped := l.allow(t0.Add(time.Second + 1)); !ok || skipped != 0 {
		t.Errorf("then: allow %v, skipped %d; want true, 0", ok, skipped)
	}
}

// TestIdentifyOffAcceptLoop: Identify runs in each connection's own
// goroutine, after the accept loop counted the connection against its
// Owner. Peers whose identification hangs hold only their owner's share
// (and count against MaxConns and root's reserve as open connections
// do): the owner's next connection is refused at once, another peer
// attaches at once, and the handshake timeout closes the hung ones and
// gives their counts back, though their Identify calls are still stuck.
func TestIdentifyOffAcceptLoop(t *testing.T) {
	const timeout = 2 * time.Second
	const perPeer = 3
	release := make(chan struct{})
	var stuck atomic.Int32 // Identify calls not returned
	logs := &logLines{t: t}
	opts := Options{Logf: logs.printf, HandshakeTimeout: timeout, MaxConns: perPeer + 3, RootConns: 2, MaxConnsPerPeer: perPeer,
		Identify: func(nc net.Conn) (Peer, error) {
			if strings.HasPrefix(nc.RemoteAddr().String(), "127.0.0.2:") {
				stuck.Add(1)
				defer stuck.Add(-1)
				<-release // a user database lookup that hangs
			}
			return Peer{Trusted: true}, nil
		}}
	_, s := startServer(t, newMemFS(""), &opts)
	addr := serveTCP(t, s)
	defer func() {
		close(release)
		for stuck.Load() != 0 {
			time.Sleep(time.Millisecond) // nothing signals their return
		}
	}()

	var hung []net.Conn
	for range perPeer {
		hung = append(hung, dialFrom(t, addr, "127.0.0.2"))
	}
	for deadline := time.Now().Add(5 * time.Second); stuck.Load() != perPeer; {
		if time.Now().After(deadline) {
			t.Fatalf("%d Identify calls entered, want %d", stuck.Load(), perPeer)
		}
		time.Sleep(5 * time.Millisecond) // nothing signals Identify was entered
	}
	start := time.Now()
	wantClosed(t, "127.0.0.2 past its share while its others are identified", dialFrom(t, addr, "127.0.0.2"))
	if n := logs.count("ip 127.0.0.2", "refused", "Options.MaxConnsPerPeer"); n != 1 {
		t.Errorf("%d log lines refusing ip 127.0.0.2 past its share, want 1", n)
	}
	attach(t, "a peer while another's Identify hangs", dialFrom(t, addr, "127.0.0.3"))
	if d := time.Since(start); d > timeout/2 {
		t.Errorf("refusing the hung owner and attaching another peer took %v; want it at once", d)
	}
	// 3 being identified and 1 served: the rest are root's.
	wantClosed(t, "127.0.0.4 into root's reserve", dialFrom(t, addr, "127.0.0.4"))
	if n := logs.count("ip 127.0.0.4", "kept for root"); n != 1 {
		t.Errorf("%d log lines refusing ip 127.0.0.4 for root's reserve, want 1 (connections being identified count)", n)
	}
	for _, nc := range hung {
		nc.SetReadDeadline(time.Now().Add(timeout + 5*time.Second))
		var b [1]byte
		if n, err := nc.Read(b[:]); n != 0 || !errors.Is(err, io.EOF) {
			t.Errorf("a peer not identified within the timeout: read %d bytes, %v; want it closed (EOF)", n, err)
		}
	}
	if d := time.Since(start); d > timeout+5*time.Second {
		t.Errorf("hung peers closed %v after they connected, want about %v", d, timeout)
	}
	if n := logs.count("not identified", "Options.HandshakeTimeout"); n != perPeer {
		t.Errorf("%d log lines closing a peer not identified, want %d", n, perPeer)
	}
	s.mu.Lock()
	n, conns, owners := s.pending, len(s.conns), len(s.perOwner)
	s.mu.Unlock()
	if n != 0 || conns != 1 || owners != 1 {
		t.Errorf("after the timeouts: %d being identified, %d connections of %d owners; want 0 and the 1 attached", n, conns, owners)
	}
	attach(t, "127.0.0.4 once the hung peers are gone", dialFrom(t, addr, "127.0.0.4"))
}

// TestIdentifyMovesOwner: an Owner that Identify sets takes the count
// from the accept loop's (the address here), and its share applies.
func TestIdentifyMovesOwner(t *testing.T) {
	logs := &logLines{t: t}
	opts := Options{Logf: logs.printf, MaxConnsPerPeer: 2, HandshakeTimeout: -1,
		Identify: func(nc net.Conn) (Peer, error) {
			return Peer{Trusted: true, Owner: Owner{Key: "uid 7"}}, nil // both addresses are one user
		}}
	_, s := startServer(t, newMemFS(""), &opts)
	addr := serveTCP(t, s)
	attach(t, "127.0.0.5 as uid 7", dialFrom(t, addr, "127.0.0.5"))
	attach(t, "127.0.0.6 as uid 7", dialFrom(t, addr, "127.0.0.6"))
	wantClosed(t, "127.0.0.7 as uid 7, past its share", dialFrom(t, addr, "127.0.0.7"))
	if n := logs.count("uid 7", "refused", "Options.MaxConnsPerPeer"); n != 1 {
		t.Errorf("%d log lines refusing uid 7 past its share, want 1", n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.perOwner) != 1 || s.perOwner["uid 7"] != 2 || s.pending != 0 {
		t.Errorf("counts %v, %d pending; want uid 7 counted twice and nothing else", s.perOwner, s.pending)
	}
}

// TestFidSharePerUid: on a trusted peer's connection (a shared v9fs
// mount, each user attached with its own n_uname), one uid other than 0
// holds at most an eighth of MaxFids (128: 16, the floor too) (EMFILE past it, on Tattach, Twalk
// and Txattrwalk alike), other uids and root still walk, non-root uids
// together stop at seven eighths (ENFILE), the last eighth is root's,
// and a clunk gives a uid its fid back. On a peer that is not trusted
// every fid is its identity's: there MaxFids is that uid's.
func TestFidSharePerUid(t *testing.T) {
	const maxFids, share = 128, 16
	m := newMemFS("")
	sock, s := startServer(t, m, &Options{MaxFids: maxFids})
	r := dialRaw(t, sock)
	r.version(8192)
	attachAs := func(fid, uid uint32) {
		t.Helper()
		r.ok(&Tattach{Fid: fid, Afid: NoFid, NUname: uid}, MsgRattach)
	}
	r.ok(&Tattach{Fid: 1, Afid: NoFid, NUname: 0}, MsgRattach)
	r.ok(&Tmkdir{Dfid: 1, Name: []byte("d"), Mode: 0o777}, MsgRmkdir)

	// uid 1000 (A): its attach and 15 walks are its share.
	const a = 1000
	attachAs(100, a)
	for i := range uint32(share - 1) {
		r.ok(walkMsg(100, 101+i, "d"), MsgRwalk)
	}
	r.errno("uid 1000's Twalk past its share", walkMsg(100, 150, "d"), syscall.EMFILE)
	r.errno("uid 1000's Tattach past its share", &Tattach{Fid: 151, Afid: NoFid, NUname: a}, syscall.EMFILE)
	r.errno("uid 1000's Txattrwalk past its share", &Txattrwalk{Fid: 100, Newfid: 152}, syscall.EMFILE)
	r.errno("uid 1000's clone past its share", walkMsg(100, 153), syscall.EMFILE)
	// The connection serves on: A's own requests that make no fid, and
	// uid 1001 and root, who walk.
	r.ok(&Tgetattr{Fid: 101, Mask: AttrBasic}, MsgRgetattr)
	r.ok(walkMsg(101, 101), MsgRwalk) // in place: no new fid
	attachAs(200, 1001)
	r.ok(walkMsg(200, 201, "d"), MsgRwalk)
	r.ok(walkMsg(1, 2, "d"), MsgRwalk)
	// A clunk gives A one fid back.
	r.ok(&Tclunk{Fid: 107}, MsgRclunk)
	r.ok(walkMsg(100, 107, "d"), MsgRwalk)
	r.errno("uid 1000's Twalk at its share again", walkMsg(100, 150, "d"), syscall.EMFILE)

	// Non-root uids stop once seven eighths (112) of the fids are taken,
	// root's 2 included: uid 1001's 14 more, four more uids' 16 each and a
	// fifth's 14 make 112; the fifth's next gets ENFILE (it holds less
	// than its share: the table is full for it), as does another uid's
	// Tattach; uid 1000 still gets EMFILE (its own share); root walks
	// into the last eighth, up to every fid.
	for i := range uint32(share - 2) {
		r.ok(walkMsg(200, 202+i, "d"), MsgRwalk)
	}
	for u := range uint32(5) {
		base := 300 + 20*u
		attachAs(base, 1002+u)
		walks := uint32(share - 1)
		if u == 4 {
			walks = share - 3
		}
		for i := range walks {
			r.ok(walkMsg(base, base+1+i, "d"), MsgRwalk)
		}
	}
	c := oneConn(t, s)
	if n, uids := c.fidShare.Waiting(); n != maxFids-share || uids != 7 {
		t.Fatalf("%d fids, %d non-root uids, want %d of 7 (and root's)", n, uids, maxFids-share)
	}
	r.errno("uid 1006's Twalk in root's reserve", walkMsg(380, 399, "d"), syscall.ENFILE)
	r.errno("a new uid's Tattach in root's reserve", &Tattach{Fid: 400, Afid: NoFid, NUname: 2000}, syscall.ENFILE)
	r.errno("uid 1000's Twalk in root's reserve", walkMsg(100, 150, "d"), syscall.EMFILE)
	for i := range uint32(share) {
		r.ok(walkMsg(1, 500+i, "d"), MsgRwalk)
	}
	r.errno("root's Twalk with every fid taken", walkMsg(1, 600), syscall.ENFILE)
	r.ok(&Tgetattr{Fid: 1, Mask: AttrBasic}, MsgRgetattr)

	// Tversion clunks everything: the counts go with the fids.
	r.version(8192)
	if n, uids := c.fidShare.Waiting(); n != 0 || uids != 0 {
		t.Errorf("after Tversion %d fids of %d uids still counted", n, uids)
	}

	// A peer that is not trusted: its fids are all uid 1000's, and it
	// may hold MaxFids of them.
	id := Identity{Uid: a, Gid: a}
	sock2, _ := startServer(t, m, &Options{MaxFids: maxFids, Identify: func(net.Conn) (Peer, error) { return Peer{Identity: id}, nil }})
	r2 := dialRaw(t, sock2)
	r2.version(8192)
	r2.ok(&Tattach{Fid: 1, Afid: NoFid, NUname: a}, MsgRattach)
	for i := range uint32(maxFids - 1) {
		r2.ok(walkMsg(1, 2+i), MsgRwalk)
	}
	r2.errno("an identified peer's Twalk past MaxFids", walkMsg(1, 1000), syscall.EMFILE)
}

// TestFidShareSmall: an eighth of a small MaxFids walks nowhere, so on a
// trusted peer's connection a uid other than 0 may hold 16 fids, or all
// root's reserve leaves (waitshare.NewFloor), and root keeps at least
// one from 2 fids on. At each size a user attaches and walks 4 levels
// (in place with one fid; to new fids while its share lasts), then
// EMFILE; other uids take what is left of all but the reserve, then
// ENFILE; root takes the rest, and nobody takes more than MaxFids. Before
// (an eighth, at least 1), a user's share below 16 fids was its attach.
func TestFidShareSmall(t *testing.T) {
	for _, c := range []struct{ maxFids, share, reserve int }{
		{1, 1, 0}, {2, 1, 1}, {4, 3, 1}, {8, 7, 1}, {15, 14, 1}, {16, 14, 2}, {64, 16, 8},
	} {
		t.Run(fmt.Sprint(c.maxFids), func(t *testing.T) {
			m := newMemFS("")
			sock, s := startServer(t, m, &Options{MaxFids: c.maxFids})
			r := dialRaw(t, sock)
			r.version(8192)
			// Root makes d/d/d/d with one fid walking down in place, and
			// gives it back.
			r.ok(&Tattach{Fid: 1, Afid: NoFid, NUname: 0}, MsgRattach)
			for range 4 {
				r.ok(&Tmkdir{Dfid: 1, Name: []byte("d"), Mode: 0o777}, MsgRmkdir)
				r.ok(walkMsg(1, 1, "d"), MsgRwalk)
			}
			r.ok(&Tclunk{Fid: 1}, MsgRclunk)
			co := oneConn(t, s)
			sh := co.fidShare
			if sh.Slots() != c.maxFids || sh.Share() != c.share || sh.Reserve() != c.reserve {
				t.Fatalf("fid share: slots %d share %d reserve %d, want %d %d %d",
					sh.Slots(), sh.Share(), sh.Reserve(), c.maxFids, c.share, c.reserve)
			}
			if c.share < min(16, c.maxFids-c.reserve) || c.maxFids >= 2 && c.reserve < 1 {
				t.Fatalf("share %d, reserve %d of %d fids: want a share of 16 or all but the reserve, and a reserve", c.share, c.reserve, c.maxFids)
			}

			// uid 1000: its attach, its new fids 4 levels down, then EMFILE;
			// its attach fid walks 4 levels in place (no new fid) even so.
			r.ok(&Tattach{Fid: 100, Afid: NoFid, NUname: 1000}, MsgRattach)
			for i := range uint32(c.share - 1) {
				r.ok(walkMsg(100, 101+i, "d", "d", "d", "d"), MsgRwalk)
			}
			r.errno("uid 1000's Twalk past its share", walkMsg(100, 99, "d"), syscall.EMFILE)
			r.errno("uid 1000's clone past its share", walkMsg(100, 99), syscall.EMFILE)
			r.ok(walkMsg(100, 100, "d", "d", "d", "d"), MsgRwalk)
			r.ok(&Tgetattr{Fid: 100, Mask: AttrBasic}, MsgRgetattr)
			taken := c.share

			// Other uids take what is left of all but root's reserve: each
			// its share (then EMFILE) or the rest (then ENFILE); a uid
			// finding none left gets ENFILE on its Tattach.
			for u := uint32(1001); ; u++ {
				base := 1000 * u
				left := c.maxFids - c.reserve - taken
				if left == 0 {
					r.errno(fmt.Sprintf("uid %d's Tattach in root's reserve", u), &Tattach{Fid: base, Afid: NoFid, NUname: u}, syscall.ENFILE)
					break
				}
				got := min(c.share, left)
				r.ok(&Tattach{Fid: base, Afid: NoFid, NUname: u}, MsgRattach)
				for i := range uint32(got - 1) {
					r.ok(walkMsg(base, base+1+i, "d", "d"), MsgRwalk)
				}
				want := syscall.ENFILE
				if got == c.share {
					want = syscall.EMFILE
				}
				r.errno(fmt.Sprintf("uid %d's Twalk past %d fids", u, got), walkMsg(base, base+999, "d"), want)
				taken += got
			}

			// Root takes the rest, its reserve at least, and no more.
			if rest := c.maxFids - taken; rest < c.reserve {
				t.Fatalf("%d fids left to root, want its reserve %d", rest, c.reserve)
			}
			if taken < c.maxFids {
				r.ok(&Tattach{Fid: 1, Afid: NoFid, NUname: 0}, MsgRattach)
				taken++
				for f := uint32(2); taken < c.maxFids; f++ {
					r.ok(walkMsg(1, f, "d"), MsgRwalk)
					taken++
				}
				r.errno("root's Twalk with every fid taken", walkMsg(1, 999), syscall.ENFILE)
			} else {
				r.errno("root's Tattach with every fid taken", &Tattach{Fid: 1, Afid: NoFid, NUname: 0}, syscall.ENFILE)
			}
			co.mu.Lock()
			nfids := co.nfids
			co.mu.Unlock()
			if n, _ := sh.Waiting(); n != c.maxFids || nfids != c.maxFids {
				t.Errorf("%d fids counted, %d in the table, want %d", n, nfids, c.maxFids)
			}
			// A clunk of a user's fid gives it back to the table, but with
			// root holding its reserve that fid is root's (non-root uids
			// stop at all but the reserve, root's counted).
			if c.share > 1 && c.reserve > 0 {
				r.ok(&Tclunk{Fid: 101}, MsgRclunk)
				r.errno("uid 1000's clone with root in its reserve", walkMsg(100, 101), syscall.ENFILE)
				r.ok(walkMsg(1, 999), MsgRwalk)
			}
		})
	}
}
