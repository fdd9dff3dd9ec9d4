package p9

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Owner is whom a connection counts against for the connection limits
// that keep one client from taking the server from the others
// (Options.MaxConnsPerPeer, Options.RootConns).
type Owner struct {
	// Key names the owner in the server's accounting and in its log
	// lines: "uid N" for a peer whose uid the kernel told (UidOwner),
	// "ip ADDR" for a tcp peer counted by its address. Connections
	// with the same Key count together.
	Key string
	// Root: the owner is uid 0 on this host. Root is not held to
	// MaxConnsPerPeer (it could act as anyone anyway, and the kernel's
	// v9fs client of a root mount holds one connection per mount) and
	// may use the RootConns connections kept for it.
	Root bool
}

// UidOwner is the Owner of a connection whose peer the kernel says is uid.
func UidOwner(uid uint32) Owner {
	return Owner{Key: "uid " + strconv.FormatUint(uint64(uid), 10), Root: uid == 0}
}

// ConnOwner is whom nc counts against by default (Options.Owner nil):
//
//   - a unix socket: the uid of the process that connected (SO_PEERCRED),
//     whatever Identify made of it (a squashed peer still counts as
//     itself);
//   - a tcp connection: the remote IPv4 address, or the /64 prefix of a
//     remote IPv6 address (one host is commonly given a whole /64, so
//     counting single addresses would bound nothing). Every local user
//     of a loopback address shares it: an Options.Owner that can tell
//     the user should say so (fastfsd 9p's does, from the kernel's
//     socket table);
//   - anything else: its remote address as a string.
func ConnOwner(nc net.Conn) (Owner, error) {
	switch c := nc.(type) {
	case *net.UnixConn:
		raw, err := c.SyscallConn()
		if err != nil {
			return Owner{}, fmt.Errorf("p9: peer credentials: %w", err)
		}
		var cred *syscall.Ucred
		var cerr error
		if err := raw.Control(func(fd uintptr) {
			cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
		}); err != nil {
			return Owner{}, fmt.Errorf("p9: peer credentials: %w", err)
		}
		if cerr != nil {
			return Owner{}, fmt.Errorf("p9: SO_PEERCRED: %w", cerr)
		}
		return UidOwner(cred.Uid), nil
	case *net.TCPConn:
		if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			if ip, ok := netip.AddrFromSlice(a.IP); ok {
				return addrOwner(ip), nil
			}
		}
	}
	return Owner{Key: "addr " + nc.RemoteAddr().String()}, nil
}

// addrOwner counts an IPv4 address alone and an IPv6 address by its /64.
func addrOwner(ip netip.Addr) Owner {
	ip = ip.Unmap()
	if ip.Is4() {
		return Owner{Key: "ip " + ip.String()}
	}
	p, _ := ip.Prefix(64)
	return Owner{Key: "ip " + p.String()}
}

// Errors of a connection refused at accept by a connection limit.
var (
	errTooManyConns  = errors.New("p9: too many connections")
	errConnsReserved = errors.New("p9: the connections left are kept for root")
	errPeerConns     = errors.New("p9: too many connections from one peer")
	errNotIdentified = errors.New("p9: peer not identified")
)

// admit counts a new connection of o against o's share, or says which
// limit refuses it (a limitError with a nil err: admitted). The caller
// counts the connection in s.pending or s.conns, which the limits count
// together.
//
// Preconditions: s.mu is held.
func (s *Server) admit(o Owner) limitError {
	n := len(s.conns) + s.pending
	reserved := max(s.opts.RootConns, 0)
	switch {
	case n >= s.opts.MaxConns:
		return limitError{err: errTooManyConns, owner: o.Key, open: n, max: s.opts.MaxConns}
	case !o.Root && n >= s.opts.MaxConns-reserved:
		return limitError{err: errConnsReserved, owner: o.Key, open: n, max: s.opts.MaxConns, kept: reserved}
	case !o.Root && s.opts.MaxConnsPerPeer > 0 && s.perOwner[o.Key] >= s.opts.MaxConnsPerPeer:
		return limitError{err: errPeerConns, owner: o.Key, open: s.perOwner[o.Key]}
	}
	s.perOwner[o.Key]++
	return limitError{}
}

// limitError is a connection refused by a limit (or by the server
// closing). Admitting is on the accept loop's path: it is a value, and
// its text is made only when it is logged or returned.
type limitError struct {
	err   error // errTooManyConns, errConnsReserved, errPeerConns, ErrServerClosed; nil: admitted
	owner string
	open  int // connections open: in all (MaxConns, RootConns) or the owner's
	max   int // MaxConns
	kept  int // RootConns in effect
}

func (e *limitError) Unwrap() error { return e.err }

// Error names the Options field that raises the limit.
func (e *limitError) Error() string { return e.text(optionField) }

// text is the error's message, naming the limit as name does.
func (e limitError) text(name func(string) string) string {
	switch e.err {
	case errTooManyConns:
		return fmt.Sprintf("%v: %s refused, all %d are open (raise %s)", e.err, e.owner, e.max, name("MaxConns"))
	case errConnsReserved:
		return fmt.Sprintf("%v: %s refused, %d of %d are open and the last %d are kept for root (%s; or raise %s)",
			e.err, e.owner, e.open, e.max, e.kept, name("RootConns"), name("MaxConns"))
	case errPeerConns:
		return fmt.Sprintf("%v: %s refused, it has %d open or being identified, the most one peer may have (raise %s)",
			e.err, e.owner, e.open, name("MaxConnsPerPeer"))
	}
	return fmt.Sprintf("%v: %s refused", e.err, e.owner)
}

// optionField names an Options field as a Go program sets it.
func optionField(option string) string { return "Options." + option }

// limitName names the option that sets a limit for the log
// (Options.LimitName).
func (s *Server) limitName(option string) string {
	if s.opts.LimitName != nil {
		return s.opts.LimitName(option)
	}
	return optionField(option)
}

// releaseOwner undoes admit's count of an owner: an owner without
// connections leaves the map.
//
// Preconditions: s.mu is held.
func (s *Server) releaseOwner(k string) {
	if s.perOwner[k]--; s.perOwner[k] <= 0 {
		delete(s.perOwner, k)
	}
}

// release forgets a conn that ends.
//
// Preconditions: s.mu is held.
func (s *Server) release(c *conn) {
	delete(s.conns, c)
	s.releaseOwner(c.peer.Owner.Key)
}

// logLimit logs a limit's refusal as logRefusal does; le's text is
// made only if the line is logged, so a refusal the burst does not log
// allocates nothing.
func (s *Server) logLimit(le limitError) {
	if ok, skipped := s.refusals.allow(time.Now()); ok {
		s.logLine(le.text(s.limitName), skipped)
	}
}

// logRefusal logs why a connection was refused at accept, unless more
// than refusalBurst were logged in the last second: a client that
// connects in a loop must not flood the log. The next line logged says
// how many were not.
func (s *Server) logRefusal(nc net.Conn, err error) {
	ok, skipped := s.refusals.allow(time.Now())
	if !ok {
		return
	}
	var le *limitError
	switch {
	case errors.As(err, &le):
		s.logLine(le.text(s.limitName), skipped)
	case errors.Is(err, errNotIdentified):
		s.logLine(err.Error(), skipped)
	default:
		s.logLine(fmt.Sprintf("p9: %v: refusing %v", err, nc.RemoteAddr()), skipped)
	}
}

// logLine logs a refusal's line, with the count of those not logged
// before it.
func (s *Server) logLine(msg string, skipped int) {
	if skipped > 0 {
		msg += fmt.Sprintf(" (and %d more refused connections not logged)", skipped)
	}
	s.opts.Logf("%s", msg)
}

// refusalBurst is how many refusals are logged in a second.
const refusalBurst = 20

// refusalLog counts refusals logged in the current one-second window.
type refusalLog struct {
	mu sync.Mutex
	// Guarded by mu.
	start   time.Time // of the window
	n       int       // lines logged in it
	skipped int       // refusals not logged since the last line
}

// allow reports whether a refusal at now may be logged and, if so, how
// many were not since the last one that was.
func (l *refusalLog) allow(now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= time.Second {
		l.start, l.n = now, 0
	}
	if l.n >= refusalBurst {
		l.skipped++
		return false, 0
	}
	l.n++
	skipped := l.skipped
	l.skipped = 0
	return true, skipped
}
