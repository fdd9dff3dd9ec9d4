package p9

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/internal/waitshare"
)

// Defaults of Options.
const (
	DefaultMaxMsize    = 1 << 20 // the Linux tcp/unix transport's maximum
	DefaultMaxConns    = 64
	DefaultMaxFids     = 1 << 16
	DefaultMaxRequests = 16
	// DefaultMaxConnsPerPeer: a user's 9P programs rarely need more than
	// a few connections (the kernel's v9fs client, one per mount,
	// connects as root, which the cap exempts), and 8 keeps one user to
	// an eighth of DefaultMaxConns.
	DefaultMaxConnsPerPeer = 8
	// DefaultRootConns of the MaxConns are kept for root.
	DefaultRootConns = 4
	// DefaultHandshakeTimeout is how long a connection may take to
	// complete Tversion and its first Tattach.
	DefaultHandshakeTimeout = 10 * time.Second
	// MinMsize is the smallest msize the server accepts in Tversion: every
	// fixed-size reply and a Twalk of MaxWalkElem short names fit in it.
	MinMsize = 512
)

// readAhead is how many requests a connection's reader queues beyond the
// ones its workers are serving.
const readAhead = 4

// nobody is the uid and gid of a request whose user is unknown.
const nobody = 65534

// Options configure a Server. The zero value means the defaults.
type Options struct {
	// MaxMsize caps the msize negotiated in Tversion (default 1 MiB).
	MaxMsize uint32
	// MaxConns bounds concurrent connections; one more is accepted and
	// closed at once (default 64).
	MaxConns int
	// MaxConnsPerPeer bounds the connections of one Owner (a uid on a
	// unix socket, an address on tcp: see ConnOwner); one more is
	// accepted and closed at once, with a log line naming the owner.
	// Root is exempt. 0 means DefaultMaxConnsPerPeer; negative, no cap.
	MaxConnsPerPeer int
	// RootConns of the MaxConns are kept for root (Owner.Root): any
	// other peer is refused once MaxConns-RootConns connections are
	// open, so root (the kernel's v9fs client of a root mount, a VMM)
	// still gets in when other users have filled the rest. At most
	// MaxConns-1 are kept. 0 means DefaultRootConns; negative, none.
	RootConns int
	// HandshakeTimeout closes a connection that has not completed
	// Tversion and a Tattach within it of being accepted (a client that
	// connects and stays silent holds a slot of MaxConns). A connection
	// that attached is never closed for idleness: the Linux client keeps
	// one per mount, idle for as long as the mount is. 0 means
	// DefaultHandshakeTimeout; negative, no timeout.
	HandshakeTimeout time.Duration
	// MaxFids bounds the fids of one connection; Tattach/Twalk/Txattrwalk
	// beyond it fail with EMFILE (default 65536). On a Trusted peer's
	// connection, whose fids may be many uids' (a shared v9fs mount), a
	// uid other than 0 holds at most an eighth of them (past that its
	// Tattach/Twalk/Txattrwalk fail with EMFILE), and the last eighth is
	// kept for uid 0 (others get ENFILE there, as everyone does once all
	// are taken). Below 128 a uid's share is 16 fids even so (all that
	// root's reserve leaves, up to 18), so that each user can still walk,
	// and root keeps at least 1 (from 2 fids on); see fid.go.
	MaxFids int
	// MaxRequests bounds the requests of one connection served at once
	// (its workers). The reader reads up to readAhead more into a queue, so
	// a Tflush behind them still arrives while every worker is blocked;
	// beyond that it stops reading until one finishes. Each request slot
	// holds buffers of up to 2×msize (default 16). A request that would
	// wait for another process (an open breaking a host lease) waits off
	// the workers: at most MaxRequests of them per connection, an eighth
	// (at least 1) per uid other than 0 with an eighth kept for root,
	// each holding a few KiB; past that it is answered EAGAIN (wait.go).
	MaxRequests int
	// Logf logs connection-level events (never per request). Default
	// log.Printf.
	Logf func(format string, args ...any)
	// Owner says whom an accepted connection counts against for the
	// connection limits (see Owner). Serve calls it on its accept loop,
	// before anything else is done for the connection, and applies the
	// limits to its answer at once: a client past its share costs an
	// accept, this call and a close. It must therefore be quick and
	// must not block (a kernel query, never a user database); an error
	// refuses the connection. nil: ConnOwner.
	Owner func(nc net.Conn) (Owner, error)
	// Identify decides, once per accepted connection, who its client is
	// and what it may claim (see Peer); an error refuses the connection.
	// Serve calls it in the connection's own goroutine (never on the
	// accept loop), once the connection has passed the limits as its
	// Owner's, so it may block (a user database lookup); past
	// HandshakeTimeout the connection is closed whatever it returns.
	// nil: PeerCred for a unix socket, Trusted for anything else.
	Identify func(nc net.Conn) (Peer, error)
	// LimitName names a limit in the log lines of the connections it
	// refuses or closes, to tell the operator what raises it: given an
	// Options field ("MaxConns", "RootConns", "MaxConnsPerPeer",
	// "HandshakeTimeout"), a program's flag say. nil: "Options." and
	// the field. Errors returned to the caller (ServeConn) always name
	// the field.
	LimitName func(option string) string
	// Debug, if set, logs every request and its reply's size or errno
	// (slow: for debugging a client).
	Debug func(format string, args ...any)
	// Stats, if set, counts every request a worker serves, with its
	// service time, errno and payload bytes (fastfsd 9p --metrics); see
	// metrics.go. Nil costs one comparison per request.
	Stats Meter
	// ACLs, if set, is where the permission checks of connections that
	// are not Trusted read an inode's POSIX access ACL (perm.go): the
	// filesystem under the served one's wrappers, so that an xattr map
	// or extended attributes turned off for clients do not hide the
	// host's ACLs from the checks. Its inode numbers must be the served
	// filesystem's. Nil: the served filesystem's GetXattr of
	// system.posix_acl_access.
	ACLs ACLReader
}

// Server serves an fs.FileSystem over 9P2000.L. See the package comment.
type Server struct {
	fs   fs.FileSystem
	opts Options

	initOnce sync.Once
	initErr  fs.Errno
	nextConn atomic.Uint64

	mu sync.Mutex
	// Guarded by mu.
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	// perOwner counts the connections in conns by Owner.Key; an owner
	// with none has no entry.
	perOwner map[string]int
	closed   bool

	// pending counts the accepted connections not yet in conns (their
	// handshake goroutine is identifying them). They count against the
	// limits as conns do, by the Owner the accept loop gave them (in
	// perOwner too), so the connections of one peer being identified
	// take its share, not everyone's. Guarded by mu.
	pending int

	refusals refusalLog

	connWG sync.WaitGroup // running connections
}

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("p9: server closed")

// NewServer returns a server of fsys. opts may be nil. fsys.Init is called
// before the first connection is served; Destroy by Close/Shutdown.
func NewServer(fsys fs.FileSystem, opts *Options) *Server {
	return &Server{fs: fsys, opts: opts.withDefaults(), listeners: map[net.Listener]struct{}{}, conns: map[*conn]struct{}{}, perOwner: map[string]int{}}
}

// withDefaults returns a copy of o (nil: the zero value) with every
// default applied, as a Server uses it. It is idempotent: a limit turned
// off stays negative, and RootConns ends at most MaxConns-1.
func (o *Options) withDefaults() Options {
	var d Options
	if o != nil {
		d = *o
	}
	if d.MaxMsize == 0 {
		d.MaxMsize = DefaultMaxMsize
	}
	if d.MaxMsize < MinMsize {
		d.MaxMsize = MinMsize
	}
	if d.MaxConns <= 0 {
		d.MaxConns = DefaultMaxConns
	}
	if d.MaxConnsPerPeer == 0 {
		d.MaxConnsPerPeer = DefaultMaxConnsPerPeer
	}
	if d.RootConns == 0 {
		d.RootConns = DefaultRootConns
	}
	d.RootConns = min(d.RootConns, d.MaxConns-1) // negative: none
	if d.HandshakeTimeout == 0 {
		d.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if d.MaxFids <= 0 {
		d.MaxFids = DefaultMaxFids
	}
	if d.MaxRequests <= 0 {
		d.MaxRequests = DefaultMaxRequests
	}
	if d.Logf == nil {
		d.Logf = log.Printf
	}
	return d
}

func (s *Server) init() fs.Errno {
	s.initOnce.Do(func() {
		var ctx fs.Context
		s.initErr = s.fs.Init(&ctx, &fs.InitInfo{})
	})
	return s.initErr
}

// Serve accepts connections on l and serves each in its own goroutine until
// l fails or the server is shut down (then it returns ErrServerClosed).
// A connection that a limit refuses (MaxConns, RootConns,
// MaxConnsPerPeer) is closed at once, on the accept loop, with a log
// line saying which.
func (s *Server) Serve(l net.Listener) error {
	if e := s.init(); e != 0 {
		return fmt.Errorf("p9: filesystem init: %w", e)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		// The accept loop only accepts, counts and hands off (accept):
		// the kernel queues connections in the listen backlog first
		// come first served, so every microsecond spent here per
		// connection is one more a client connecting in a loop makes
		// everyone else's connection wait in it.
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.opts.Logf("p9: accept: %v; retrying in %v", err, backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.accept(nc)
	}
}

// accept counts a connection Serve accepted against its Owner
// (Options.Owner, a kernel query) and hands it to its own goroutine, or
// closes it at once if a limit refuses it. Nothing is allocated for a
// refused connection but its log line (when one is logged), and nothing
// is done for it that can block.
func (s *Server) accept(nc net.Conn) {
	o, err := s.owner(nc)
	if err != nil {
		s.logRefusal(nc, err) // before the close: the peer sees it logged
		nc.Close()
		return
	}
	s.mu.Lock()
	le := s.admitPending(o)
	s.mu.Unlock()
	if le.err != nil {
		s.logLimit(le)
		nc.Close()
		return
	}
	go s.handshake(nc, &pendingConn{accepted: time.Now(), owner: o, held: true})
}

// owner is whom nc counts against: Options.Owner, else ConnOwner.
func (s *Server) owner(nc net.Conn) (Owner, error) {
	if s.opts.Owner != nil {
		return s.opts.Owner(nc)
	}
	return ConnOwner(nc)
}

// pendingConn is an accepted connection being identified (handshake).
type pendingConn struct {
	accepted time.Time
	// owner is whom it counts against in s.perOwner while held.
	owner Owner
	// held: it counts in s.pending and in s.perOwner[owner.Key].
	// Guarded by s.mu.
	held bool
}

// admitPending counts an accepted connection of o, not yet identified,
// in s.pending and against o's share, or says which limit (or the
// server closing) refuses it. The caller marks its pendingConn held.
//
// Preconditions: s.mu is held.
func (s *Server) admitPending(o Owner) limitError {
	if s.closed {
		return limitError{err: ErrServerClosed, owner: o.Key}
	}
	if le := s.admit(o); le.err != nil {
		return le
	}
	s.pending++
	return limitError{}
}

// unpend gives back what p held: its count in s.pending and its
// owner's.
//
// Preconditions: s.mu is held; p.held.
func (s *Server) unpend(p *pendingConn) {
	p.held = false
	s.pending--
	s.releaseOwner(p.owner.Key)
}

// handshake is the goroutine of a connection Serve accepted: it
// identifies the peer, applies the per-peer limits and serves it. A peer
// not identified within HandshakeTimeout of its accept is closed (and its
// count given back even if Identify is still stuck, in a user database
// lookup say: that goroutine then only finds its connection closed).
func (s *Server) handshake(nc net.Conn, p *pendingConn) {
	var t *time.Timer
	if d := s.opts.HandshakeTimeout; d > 0 {
		t = time.AfterFunc(d, func() {
			s.mu.Lock()
			held := p.held
			if held {
				s.unpend(p)
			}
			s.mu.Unlock()
			if held {
				s.logRefusal(nc, fmt.Errorf("%w within %v of its accept (%s): %v closed", errNotIdentified, d, s.limitName("HandshakeTimeout"), nc.RemoteAddr()))
				nc.Close()
			}
		})
	}
	c, err := s.newConn(nc, p)
	if t != nil {
		t.Stop() // serve times the rest of the handshake
	}
	if err != nil {
		if !errors.Is(err, errNotIdentified) { // the timer logged it
			s.logRefusal(nc, err)
		}
		// The count is given back once the fd is closed: the
		// connections being identified or refused hold at most their
		// owners' shares of fds.
		nc.Close()
		s.mu.Lock()
		if p.held {
			s.unpend(p)
		}
		s.mu.Unlock()
		return
	}
	c.serve(p.accepted)
}

// ServeConn serves one connection until it closes, and closes it.
func (s *Server) ServeConn(nc net.Conn) error {
	if e := s.init(); e != 0 {
		nc.Close()
		return fmt.Errorf("p9: filesystem init: %w", e)
	}
	start := time.Now()
	c, err := s.newConn(nc, nil)
	if err != nil {
		nc.Close()
		return err
	}
	return c.serve(start)
}

// newConn identifies nc's peer and admits it under the connection limits.
// p is the pending connection of Serve's accept (nil for ServeConn),
// counted against p.owner: if Identify names another Owner, the count
// moves to it (and the limits are applied to it); if nc is admitted, p's
// count becomes its conn's under the same lock; if refused, p keeps what
// it still holds (the caller closes nc, then gives it back);
// errNotIdentified if its handshake timeout already closed nc and took
// it.
func (s *Server) newConn(nc net.Conn, p *pendingConn) (*conn, error) {
	peer, err := s.identify(nc)
	if err == nil && peer.Owner.Key == "" {
		if p != nil {
			peer.Owner = p.owner
		} else {
			peer.Owner, err = s.owner(nc)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p != nil && !p.held {
		return nil, errNotIdentified
	}
	if err != nil {
		return nil, err
	}
	if s.closed {
		return nil, ErrServerClosed
	}
	switch {
	case p != nil && peer.Owner == p.owner:
		// Its counts become the conn's: perOwner stays, pending → conns.
		p.held = false
		s.pending--
	case p != nil:
		// Identify knows better whom it counts against: p's count
		// moves to that owner, if its share has room.
		s.unpend(p)
		fallthrough
	default:
		if le := s.admit(peer.Owner); le.err != nil {
			return nil, &le
		}
	}
	c := &conn{
		peer:     peer,
		s:        s,
		nc:       nc,
		id:       s.nextConn.Add(1),
		fids:     map[uint32]*fid{},
		inflight: map[uint16]*request{},
		free:     make(chan *request, s.opts.MaxRequests+readAhead),
		work:     make(chan *request, s.opts.MaxRequests+readAhead),
		waits:    waitshare.New(s.opts.MaxRequests),
	}
	if peer.Trusted {
		c.fidShare = waitshare.NewFloor(s.opts.MaxFids, fidShareFloor)
	}
	c.msize.Store(s.opts.MaxMsize)
	s.conns[c] = struct{}{}
	s.connWG.Add(1)
	return c, nil
}

// Shutdown stops accepting, lets every connection finish the requests it
// is serving (reading no new ones), closes them and calls the filesystem's
// Destroy. If ctx ends first, it closes what remains as Close does.
func (s *Server) Shutdown(ctx context.Context) error {
	conns := s.stop()
	for _, c := range conns {
		c.draining.Store(true)
		c.nc.SetReadDeadline(time.Now())
		// A request waiting for another process (a host lease holder)
		// is not work to finish: it could hold the shutdown for 45 s.
		c.interruptWaits()
	}
	done := make(chan struct{})
	go func() { s.connWG.Wait(); close(done) }()
	go dropStalled(conns, done)
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		for _, c := range conns {
			c.interruptAll() // the reader, already draining, will not
			c.nc.Close()
		}
		<-done
	}
	s.fs.Destroy()
	return err
}

// BufferBound is the most request and xattr buffer memory s holds, with
// its options as in effect (defaults applied): every connection with every
// request slot, served and read ahead, at 2×msize, and its whole xattr
// budget. Nothing is shared between connections.
func (s *Server) BufferBound() uint64 { return s.opts.BufferBound() }

// BufferBound is Server.BufferBound of a server made with o (nil: the
// defaults), known before there is one (to log it, or to refuse options
// whose bound is too high).
func (o *Options) BufferBound() uint64 {
	d := o.withDefaults()
	return uint64(d.MaxConns) * d.connBufferBound()
}

// PeerBufferBound is the part of BufferBound one peer other than root can
// hold: its MaxConnsPerPeer connections' (without a per-peer cap, all but
// the RootConns kept for root). Root is not capped.
func (s *Server) PeerBufferBound() uint64 { return s.opts.PeerBufferBound() }

// PeerBufferBound is Server.PeerBufferBound of a server made with o.
func (o *Options) PeerBufferBound() uint64 {
	d := o.withDefaults()
	n := d.MaxConns - max(d.RootConns, 0)
	if d.MaxConnsPerPeer > 0 {
		n = min(n, d.MaxConnsPerPeer)
	}
	return uint64(n) * d.connBufferBound()
}

// connBufferBound is one connection's share of BufferBound.
//
// Preconditions: o has its defaults applied.
func (o *Options) connBufferBound() uint64 {
	return uint64(o.MaxRequests+readAhead)*2*uint64(o.MaxMsize) + xattrBudget
}

// Close closes the listeners and every connection at once (in-flight
// requests are interrupted), waits for their teardown and calls Destroy.
func (s *Server) Close() error {
	for _, c := range s.stop() {
		c.nc.Close()
	}
	s.connWG.Wait()
	s.fs.Destroy()
	return nil
}

func (s *Server) stop() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for l := range s.listeners {
		l.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

// conn is one client connection.
//
// Goroutines: one reader (serve) reads messages, answers Tversion and
// Tflush itself, and hands every other request to one of MaxRequests
// workers, each of which runs a request to completion and writes its reply.
// Replies are written whole, one Write under wmu each.
type conn struct {
	s  *Server
	nc net.Conn
	id uint64
	// br buffers the reader's reads: nil until the first message header
	// arrives (read from nc directly), then one of readerPool's, given
	// back when the connection ends, so a client that connects and
	// closes costs no read buffer. Reader goroutine only.
	br *bufio.Reader
	// slots counts the request slots made (newRequest), at most
	// MaxRequests+readAhead: they are made as requests need them, not
	// with the connection. Reader goroutine only.
	slots int

	// msize is the negotiated message size. Written only by the reader in
	// Tversion while no request is in flight; read by workers.
	msize     atomic.Uint32
	versioned atomic.Bool // a Tversion succeeded (9P2000.L was agreed)
	attached  atomic.Bool // a Tattach succeeded: the handshake is over
	draining  atomic.Bool // Shutdown: stop reading, finish what runs

	// wmu serializes writes to nc, and orders a reply before the Rflush of
	// a Tflush naming it (lock order: wmu before mu).
	wmu  sync.Mutex
	wbuf [16]byte // guarded by wmu: small replies of the reader (Rflush, Rlerror)
	// writing is set while a write is in progress and writes counts the
	// finished ones: Shutdown tells a client that stopped reading by them.
	writing atomic.Bool
	writes  atomic.Uint64

	mu sync.Mutex
	// Guarded by mu.
	fids  map[uint32]*fid
	nfids int
	// xattrBytes is the xattr buffer memory held by the fids (≤ xattrBudget).
	xattrBytes int
	inflight   map[uint16]*request // tag → request whose reply is not yet written

	free chan *request // idle request slots
	work chan *request // slots holding a request for a worker
	busy sync.WaitGroup
	// waits counts the requests handed off to wait (wait.go).
	waits *waitshare.Counter
	// fidShare counts the fids per uid on a Trusted peer's connection
	// (nil otherwise): MaxFids slots shared among uids (fid.go). Take
	// and Put under mu.
	fidShare *waitshare.Counter
	// idle counts the workers that finished a request and wait for the
	// next, less those the reader claimed for a request it sent.
	idle atomic.Int32

	// peer is who the client is, with the Owner it counts against: set
	// before the conn is served, then read-only.
	peer Peer
}

// request is one request slot, reused: it owns its buffers, which grow to
// at most msize and stay, so the steady state allocates nothing.
type request struct {
	c    *conn
	hdr  Header
	in   []byte // body: in[:hdr.Size-HeaderSize]
	out  []byte // reply, cap ≤ msize while in use
	e    encoder
	intr fs.Interrupt // set by Tflush, Tversion or teardown
	ctx  fs.Context
	// waiting: r was handed off to wait (handOff) and is no longer one of
	// the pool's slots. Guarded by c.mu.
	waiting bool

	// Guarded by c.mu: tags of Tflush requests to answer after this reply.
	flushers []uint16

	sink  readSink
	src   writeSource
	dsink dirSink

	// Out parameters of hot-path fs calls. They live here, not on the
	// handler's stack, because passing a pointer to an interface method
	// moves a local to the heap. Zeroed before each call (fs contract).
	attr  fs.AttrOut
	entry fs.Entry
	statx fs.StatxOut
	stfs  fs.StatFs
	// acl receives an inode's access ACL for a permission check
	// (accessACL).
	acl [aclBufSize]byte
}

func (c *conn) logf(format string, args ...any) {
	who := c.peer.Owner.Key
	if a := c.nc.RemoteAddr(); a != nil && a.String() != "" && a.String() != "@" {
		who += ", " + a.String()
	}
	c.s.opts.Logf("p9: conn %d (%s): "+format, append([]any{c.id, who}, args...)...)
}

// serve is the reader goroutine; it returns when the connection ends,
// after every request finished and every fid was freed. The handshake
// timeout runs from accepted, when the connection was accepted.
func (c *conn) serve(accepted time.Time) (err error) {
	defer func() {
		// Teardown: interrupt what runs unless draining, wait for it, free
		// every fid (Release handles, Forget inodes), close.
		if !c.draining.Load() {
			c.interruptAll()
		}
		close(c.work)
		c.busy.Wait()
		c.clunkAll()
		c.nc.Close()
		if c.br != nil {
			c.br.Reset(nil)
			readerPool.Put(c.br)
			c.br = nil
		}
		c.s.mu.Lock()
		c.s.release(c)
		c.s.mu.Unlock()
		c.s.connWG.Done()
	}()
	if d := c.s.opts.HandshakeTimeout; d > 0 {
		// A client that stays silent (or never attaches) holds a slot
		// of MaxConns and of its owner's MaxConnsPerPeer: it has d to
		// finish the handshake. Closing nc ends the reader.
		t := time.AfterFunc(d-time.Since(accepted), func() {
			if !c.attached.Load() {
				c.logf("handshake (Tversion, Tattach) not done within %v (%s); closing", d, c.s.limitName("HandshakeTimeout"))
				c.nc.Close()
			}
		})
		defer t.Stop() // before the teardown above
	}
	// Workers start as requests need them (one per request in flight,
	// up to MaxRequests), not with the connection: a client that
	// connects and closes in a loop costs no goroutines.
	workers := 0 // reader goroutine only
	var hb [HeaderSize]byte
	for {
		var rd io.Reader = c.br
		if c.br == nil {
			rd = c.nc
		}
		if _, err := io.ReadFull(rd, hb[:]); err != nil {
			if err == io.EOF || c.draining.Load() {
				return nil
			}
			return err
		}
		if c.br == nil {
			// A client that sends something gets a read buffer: until
			// now nothing was read past the header.
			c.br = readerPool.Get().(*bufio.Reader)
			c.br.Reset(c.nc)
		}
		h, err := ParseHeader(hb[:], c.msize.Load())
		if err != nil {
			// The framing cannot be trusted any more: drop the connection.
			c.logf("%v (size %d, type %v); closing", err, h.Size, h.Type)
			return err
		}
		n := int(h.Size) - HeaderSize
		switch h.Type {
		case MsgTflush:
			var b [2]byte
			if n != 2 {
				c.logf("Tflush of size %d; closing", h.Size)
				return ErrMalformed
			}
			if _, err := io.ReadFull(c.br, b[:]); err != nil {
				return err
			}
			if err := c.flush(h.Tag, binary.LittleEndian.Uint16(b[:])); err != nil {
				c.logf("%v; closing", err)
				return err
			}
			continue
		case MsgTversion:
			body := make([]byte, n)
			if _, err := io.ReadFull(c.br, body); err != nil {
				return err
			}
			if err := c.version(h.Tag, body); err != nil {
				return err
			}
			continue
		}
		r := c.slot()
		if cap(r.in) < n {
			r.in = make([]byte, n)
		}
		r.in = r.in[:n]
		if _, err := io.ReadFull(c.br, r.in); err != nil {
			c.free <- r
			return err
		}
		r.hdr = h
		c.mu.Lock()
		if _, dup := c.inflight[h.Tag]; dup {
			c.mu.Unlock()
			c.free <- r
			c.logf("tag %d reused while in flight; closing", h.Tag)
			return ErrMalformed
		}
		c.inflight[h.Tag] = r
		c.mu.Unlock()
		c.busy.Add(1)
		// Claim an idle worker for r, or start one: every request sent
		// is matched by a worker that will receive, so r never waits
		// behind a busy one while fewer than MaxRequests run.
		if c.idle.Add(-1) < 0 {
			c.idle.Add(1)
			if workers < c.s.opts.MaxRequests {
				workers++
				go c.worker()
			}
		}
		c.work <- r
	}
}

// slot returns an idle request slot, made if every one made is busy
// and fewer than MaxRequests+readAhead exist, else the next to be freed
// (reader goroutine).
func (c *conn) slot() *request {
	select {
	case r := <-c.free:
		return r
	default:
	}
	if c.slots < cap(c.free) {
		c.slots++
		return c.newRequest()
	}
	return <-c.free
}

// newRequest makes a request slot of c.
func (c *conn) newRequest() *request {
	r := &request{c: c}
	r.ctx.SetInterrupt(&r.intr)
	return r
}

// readBufSize is the size of a connection's read buffer: enough for
// many small requests per read; a larger message is read straight into
// its request slot's buffer (bufio reads past its buffer directly).
const readBufSize = 64 << 10

// readerPool holds read buffers (*bufio.Reader of readBufSize) between
// connections: a connection takes one when its first message arrives
// and puts it back when it ends (serve), so a client connecting and
// closing in a loop costs the daemon no allocation and no zeroing of
// 64 KiB per connection. Any GC may empty it; it is no memory bound
// (the connection limits are).
var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufSize) }}

func (c *conn) worker() {
	obs := c.s.takeCounter() // nil without Options.Stats
	defer c.s.giveCounter(obs)
	for r := range c.work {
		c.run(r, obs)
		c.idle.Add(1) // ready for the next request: the reader may claim it
	}
}

// run serves one request and writes its reply, or hands it to a goroutine
// of its own if it would wait (wait.go): the worker never waits for a host
// lease. A panic while dispatching (the filesystem included, call)
// becomes EIO for this request; the connection keeps serving.
func (c *conn) run(r *request, obs Counter) {
	t0 := now(obs)
	r.ctx.Caller = fs.Caller{Uid: nobody, Gid: nobody}
	r.ctx.Unique = uint64(r.hdr.Tag)
	r.ctx.NoWait = true
	e := c.call(r)
	if e == fs.WouldWait {
		if c.handOff(r) {
			return
		}
		e = syscall.EAGAIN // c's waits are at their bound (wait.go)
	}
	c.complete(r, e, obs, t0)
}

// now is time.Now if obs counts, else the zero time (nothing to time).
func now(obs Counter) time.Time {
	if obs != nil {
		return time.Now()
	}
	return time.Time{}
}

// call dispatches r; a panic becomes EIO.
func (c *conn) call(r *request) (e fs.Errno) {
	defer func() {
		if p := recover(); p != nil {
			c.logf("panic serving %v tag %d: %v\n%s", r.hdr.Type, r.hdr.Tag, p, debug.Stack())
			e = syscall.EIO
		}
	}()
	if !c.versioned.Load() {
		return syscall.EPROTO // Tversion must come first
	}
	if r.intr.IsSet() {
		return syscall.EINTR // flushed while queued: not started at all
	}
	return c.dispatch(r)
}

// complete encodes r's reply (Rlerror if e is set), counts it and writes
// it.
func (c *conn) complete(r *request, e fs.Errno, obs Counter, t0 time.Time) {
	if e == 0 && !r.e.finish() {
		c.logf("%v reply overflowed msize", r.hdr.Type)
		e = syscall.EIO
	}
	if e != 0 {
		r.rlerror(e)
	}
	if c.s.opts.Debug != nil {
		c.debugf(r, e)
	}
	if obs != nil {
		observe(obs, r, t0)
	}
	c.reply(r)
}

// debugf logs one request and its reply (Options.Debug).
func (c *conn) debugf(r *request, e fs.Errno) {
	if e != 0 {
		c.s.opts.Debug("p9: conn %d: %v tag %d (%d bytes) -> Rlerror %d (%v)", c.id, r.hdr.Type, r.hdr.Tag, r.hdr.Size, int(e), e)
		return
	}
	c.s.opts.Debug("p9: conn %d: %v tag %d (%d bytes) -> %d bytes", c.id, r.hdr.Type, r.hdr.Tag, r.hdr.Size, len(r.e.buf))
}

// begin starts the reply of r as type t in a buffer of at least need bytes
// (capped at msize) and returns its encoder.
func (r *request) begin(t MsgType, need int) *encoder {
	msize := int(r.c.msize.Load())
	need = min(max(need, 256), msize)
	if cap(r.out) < need {
		r.out = make([]byte, 0, max(need, min(4096, msize)))
	}
	r.e = encoder{buf: r.out[:0:min(cap(r.out), msize)]}
	r.e.header(t, r.hdr.Tag)
	return &r.e
}

func (r *request) rlerror(e fs.Errno) {
	if e == 0 {
		e = syscall.EIO
	}
	enc := r.begin(MsgRlerror, 11)
	enc.u32(uint32(e))
	enc.finish()
}

// reply writes r's reply, then the Rflush of every Tflush waiting for it,
// and recycles the slot.
func (c *conn) reply(r *request) {
	// The tag leaves the in-flight table before the reply is written (the
	// client may reuse it as soon as it reads the reply), but under wmu: a
	// Tflush that no longer finds it waits for wmu, so its Rflush still
	// follows this reply.
	c.wmu.Lock()
	c.mu.Lock()
	delete(c.inflight, r.hdr.Tag)
	fl := r.flushers
	r.flushers = r.flushers[:0]
	waiting := r.waiting
	r.waiting = false
	c.mu.Unlock()
	c.write(r.e.buf)
	for _, tag := range fl {
		c.writeRflushLocked(tag)
	}
	c.wmu.Unlock()
	r.intr.Clear()
	r.e = encoder{}
	if !waiting { // a waiting request left the pool (handOff): dropped
		c.free <- r
	}
	c.busy.Done()
}

// write writes one whole message. A failed write kills the connection:
// closing nc ends the reader, which tears everything down.
//
// Preconditions: c.wmu is held.
func (c *conn) write(b []byte) {
	c.writing.Store(true)
	if _, err := c.nc.Write(b); err != nil {
		c.nc.Close()
	}
	c.writing.Store(false)
	c.writes.Add(1)
}

// dropStalled, during a Shutdown, drops every connection whose reply
// write has not moved for stallLimit (a client that stopped reading):
// draining it would take for ever, and so would SIGTERM.
func dropStalled(conns []*conn, done <-chan struct{}) {
	const stallLimit = time.Second
	last := make([]uint64, len(conns))
	t := time.NewTicker(stallLimit)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		for i, c := range conns {
			n := c.writes.Load()
			if c.writing.Load() && n == last[i] {
				c.logf("shutdown: client has not read its replies for %v; closing", stallLimit)
				c.nc.Close()
			}
			last[i] = n
		}
	}
}

// writeRflushLocked writes Rflush for tag. Preconditions: c.wmu is held.
func (c *conn) writeRflushLocked(tag uint16) {
	e := encoder{buf: c.wbuf[:0]}
	e.header(MsgRflush, tag)
	e.finish()
	c.write(e.buf)
}

// flush answers Tflush (reader goroutine). The request it names is asked
// to stop; Rflush goes out after that request's reply (run's reply writes
// it), or at once if oldtag is not in flight. Per the protocol, Tflush is
// always answered with Rflush, never Rlerror.
//
// The Rflushes owed for one request are bounded (maxFlushers): a client
// that floods Tflush at a request whose reply cannot be written (it
// stopped reading) would otherwise grow the list for ever. Past the bound
// the connection is dropped with errFlushFlood.
func (c *conn) flush(tag, oldtag uint16) error {
	c.mu.Lock()
	if r, ok := c.inflight[oldtag]; ok && oldtag != tag {
		if len(r.flushers) >= maxFlushers {
			c.mu.Unlock()
			return fmt.Errorf("%w (tag %d)", errFlushFlood, oldtag)
		}
		r.intr.Set()
		r.flushers = append(r.flushers, tag)
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	c.wmu.Lock()
	c.writeRflushLocked(tag)
	c.wmu.Unlock()
	return nil
}

// maxFlushers bounds the Tflushes naming one request that wait for its
// reply. Linux sends one per interrupted request (and one more if that
// flush is interrupted in turn); 16 is far above any honest client.
const maxFlushers = 16

// errFlushFlood drops a connection that sent more than maxFlushers
// Tflushes for one request.
var errFlushFlood = errors.New("p9: more than 16 Tflush for one request in flight (a flood)")

// interruptAll sets the interrupt flag of every request in flight.
func (c *conn) interruptAll() {
	c.mu.Lock()
	for _, r := range c.inflight {
		r.intr.Set()
	}
	c.mu.Unlock()
}

// interruptWaits sets the interrupt flag of every waiting request
// (handOff).
func (c *conn) interruptWaits() {
	c.mu.Lock()
	for _, r := range c.inflight {
		if r.waiting {
			r.intr.Set()
		}
	}
	c.mu.Unlock()
}

// version answers Tversion (reader goroutine): it resets the session —
// outstanding requests are interrupted and waited for, every fid is
// clunked — and agrees on msize and the protocol.
func (c *conn) version(tag uint16, body []byte) error {
	var m Tversion
	d := decoder{buf: body}
	m.decode(&d)
	if !d.done() {
		c.logf("malformed Tversion; closing")
		return ErrMalformed
	}
	c.interruptAll()
	c.busy.Wait()
	c.clunkAll()

	rv := Rversion{Msize: min(m.Msize, c.s.opts.MaxMsize), Version: []byte(Version)}
	ok := string(m.Version) == Version || len(m.Version) > len(Version) && string(m.Version[:len(Version)+1]) == Version+"."
	if !ok {
		rv.Version = []byte(VersionUnknown)
	}
	c.versioned.Store(false)
	var buf [64]byte
	if m.Msize < MinMsize {
		// Too small for our replies: refuse the session.
		e := encoder{buf: buf[:0]}
		e.header(MsgRlerror, tag)
		e.u32(uint32(syscall.EINVAL))
		e.finish()
		c.wmu.Lock()
		c.write(e.buf)
		c.wmu.Unlock()
		return nil
	}
	if ok {
		c.msize.Store(rv.Msize)
		c.versioned.Store(true)
	}
	e := encoder{buf: buf[:0]}
	e.header(MsgRversion, tag)
	rv.encode(&e)
	e.finish()
	c.wmu.Lock()
	c.write(e.buf)
	c.wmu.Unlock()
	return nil
}
