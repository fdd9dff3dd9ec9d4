package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os/user"
	"strconv"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/internal/sys"
	"github.com/fastfsd/fastfsd/p9"
)

// p9Identify returns the Options.Identify of `fastfsd 9p`:
//
//   - with --all-squash, every connection acts as that uid and gid (no
//     supplementary groups), whatever it names in Tattach;
//   - a unix socket peer is who SO_PEERCRED says (p9.PeerCred), with the
//     supplementary groups it connected with (SO_PEERGROUPS: the confined
//     daemon cannot read the /proc entry p9.PeerCred would, nor name the
//     peer's pid from the namespace sandbox);
//   - a tcp peer on the loopback is identified by the owner of its own
//     socket, which the kernel reports (NETLINK_SOCK_DIAG, as `ss -e`
//     shows it), with the groups the host's group database gives that
//     uid; uid 0 is trusted as on a unix socket;
//   - a tcp peer from elsewhere (only with --insecure-tcp) cannot be
//     identified: it is trusted with the uid it names — the documented
//     meaning of the opt-in — unless --all-squash is given.
//
// With a uid/gid translation (translate), only trusted peers are served:
// the server's own checks of an untrusted peer would compare its host
// credentials and the host IDs inside POSIX ACLs with the translated
// (client) owners the wrapped filesystem reports, and grant or refuse
// the wrong caller.
func p9Identify(squash *p9.Identity, translate bool) func(net.Conn) (p9.Peer, error) {
	identify := func(nc net.Conn) (p9.Peer, error) {
		if c, ok := nc.(*net.TCPConn); ok {
			// listenP9 leaves keepalive off on accept, for the
			// connections refused there: an admitted one gets Go's
			// default, so a peer that vanished is found out.
			c.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true})
		}
		if squash != nil {
			// Squashed, a peer still counts as who it is for the
			// connection limits: p9Owner, on the accept loop.
			return p9.Peer{Squash: true, Identity: *squash}, nil
		}
		return identifyPeer(nc)
	}
	if !translate {
		return identify
	}
	return func(nc net.Conn) (p9.Peer, error) {
		p, err := identify(nc)
		if err == nil && !p.Trusted {
			return p9.Peer{}, fmt.Errorf("peer uid %d refused: with --translate-uid/--translate-gid/--uid-map/--gid-map only a trusted client (root, e.g. the VMM) is served, since the server cannot check an untrusted one's permissions across the translation", p.Identity.Uid)
		}
		return p, err
	}
}

// p9Owner returns the Options.Owner of `fastfsd 9p`, whom a connection
// counts against for the connection limits, decided on the accept loop
// from what the kernel says (no user database):
//
//   - a unix socket peer: its uid (SO_PEERCRED, p9.ConnOwner);
//   - a loopback tcp peer: the uid owning its socket (tcpPeerUid). A
//     peer the kernel no longer knows (it closed its socket already, as
//     a client connecting and closing in a loop does) is refused at once.
//     With --all-squash the query may not work at all (the namespace
//     sandbox's network namespace cannot see the peer's socket): the
//     peer then counts by its address, which every local user shares;
//   - a network tcp peer (--insecure-tcp): its address (an IPv6 /64).
func p9Owner(squash bool) func(net.Conn) (p9.Owner, error) {
	return func(nc net.Conn) (p9.Owner, error) {
		c, ok := nc.(*net.TCPConn)
		if !ok {
			return p9.ConnOwner(nc)
		}
		local, _ := c.LocalAddr().(*net.TCPAddr)
		remote, _ := c.RemoteAddr().(*net.TCPAddr)
		if local == nil || remote == nil || !remote.IP.IsLoopback() {
			return p9.ConnOwner(nc)
		}
		uid, err := tcpPeerUid(local, remote)
		switch {
		case err == errPeerClosed:
			return p9.Owner{}, err // p9 logs it with the address
		case err != nil && squash:
			return p9.ConnOwner(nc)
		case err != nil:
			return p9.Owner{}, fmt.Errorf("identify loopback peer %v: %w", remote, err)
		}
		return p9.UidOwner(uid), nil
	}
}

// p9LimitName is the Options.LimitName of `fastfsd 9p`: its log lines
// name the flag that raises a limit.
func p9LimitName(option string) string {
	switch option {
	case "MaxConns":
		return "--max-conns"
	case "RootConns":
		return "--root-conns"
	case "MaxConnsPerPeer":
		return "--max-conns-per-uid"
	case "HandshakeTimeout":
		return "--handshake-timeout"
	}
	return "p9.Options." + option // a limit without a flag: a bug here
}

// identifyPeer identifies a unix or tcp peer (see p9Identify). It
// leaves Peer.Owner zero: whom the connection counts against is
// p9Owner's answer on the accept loop, the same uid from the same
// kernel source.
func identifyPeer(nc net.Conn) (p9.Peer, error) {
	switch c := nc.(type) {
	case *net.UnixConn:
		return unixPeer(c)
	case *net.TCPConn:
		local, _ := c.LocalAddr().(*net.TCPAddr)
		remote, _ := c.RemoteAddr().(*net.TCPAddr)
		if local == nil || remote == nil {
			return p9.Peer{}, errors.New("tcp connection without addresses")
		}
		if !remote.IP.IsLoopback() {
			// --insecure-tcp: the operator's choice. It counts against
			// its address for the connection limits (p9.ConnOwner).
			return p9.Peer{Trusted: true}, nil
		}
		uid, err := tcpPeerUid(local, remote)
		if err != nil {
			return p9.Peer{}, fmt.Errorf("identify loopback peer %v: %w", remote, err)
		}
		if uid == 0 {
			return p9.Peer{Trusted: true}, nil
		}
		return p9.Peer{Identity: userIdentity(uid)}, nil
	}
	return p9.Peer{}, fmt.Errorf("cannot identify a %T peer", nc)
}

// unixPeer is p9.PeerCred with the groups from SO_PEERGROUPS (not
// from /proc/PID/status, which the confined daemon cannot read: both
// are read from the socket in one go).
func unixPeer(c *net.UnixConn) (p9.Peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return p9.Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Ucred
	var cerr error
	var gs []uint32
	var e syscall.Errno
	if err := raw.Control(func(fd uintptr) {
		if cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); cerr == nil && cred.Uid != 0 {
			gs, e = sys.PeerGroups(int(fd))
		}
	}); err != nil {
		return p9.Peer{}, fmt.Errorf("peer credentials: %w", err)
	}
	if cerr != nil {
		return p9.Peer{}, fmt.Errorf("SO_PEERCRED: %w", cerr)
	}
	if cred.Uid == 0 {
		return p9.Peer{Trusted: true, Identity: p9.Identity{Uid: 0, Gid: cred.Gid}}, nil
	}
	if e != 0 {
		return p9.Peer{}, fmt.Errorf("SO_PEERGROUPS: %w", e)
	}
	p := p9.Peer{Identity: p9.Identity{Uid: cred.Uid, Gid: cred.Gid}}
	for _, g := range gs {
		if g != p.Gid {
			p.Groups = append(p.Groups, g)
		}
	}
	return p, nil
}

// userIdentity is uid with its primary group and supplementary groups
// from the host's user and group databases (getgrouplist); an unknown uid
// gets gid 65534 and no groups.
func userIdentity(uid uint32) p9.Identity {
	id := p9.Identity{Uid: uid, Gid: 65534}
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return id
	}
	if g, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
		id.Gid = uint32(g)
	}
	gs, _ := u.GroupIds()
	for _, s := range gs {
		if g, err := strconv.ParseUint(s, 10, 32); err == nil && uint32(g) != id.Gid {
			id.Groups = append(id.Groups, uint32(g))
		}
	}
	return id
}

// diagSock keeps one NETLINK_SOCK_DIAG socket between tcpPeerUid's
// queries, which run on the accept loop for every loopback tcp
// connection: a socket and its bind per query would cost as much as the
// query. A query takes it (or makes one while it is taken) and gives it
// back only if its reply was read whole, so no late reply of one query
// can be read by the next (which checks the sequence number anyway).
var diagSock = make(chan int, 1)

// diagSeq numbers the queries.
var diagSeq atomic.Uint32

func takeDiagSock() (int, error) {
	select {
	case fd := <-diagSock:
		return fd, nil
	default:
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return -1, fmt.Errorf("netlink socket: %w", err)
	}
	tv := unix.Timeval{Sec: 1}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	return fd, nil
}

// giveDiagSock keeps fd for the next query if ok and none is kept, else
// closes it.
func giveDiagSock(fd int, ok bool) {
	if ok {
		select {
		case diagSock <- fd:
			return
		default:
		}
	}
	unix.Close(fd)
}

// errPeerClosed: the loopback tcp peer closed its socket before it could
// be identified. A client connecting and closing in a loop gets it for
// each connection, on the accept loop: it is made once.
var errPeerClosed = errors.New("the loopback peer closed its socket before it could be identified (sock_diag reports no socket file)")

// tcpPeerUid asks the kernel (NETLINK_SOCK_DIAG, inet_diag exact lookup)
// for the uid owning the peer's end of a loopback tcp connection: the
// socket whose local address is remote and whose peer is local.
func tcpPeerUid(local, remote *net.TCPAddr) (uint32, error) {
	family := uint8(unix.AF_INET6)
	lip, rip := local.IP.To16(), remote.IP.To16()
	if l4, r4 := local.IP.To4(), remote.IP.To4(); l4 != nil && r4 != nil {
		family, lip, rip = unix.AF_INET, l4, r4
	}
	fd, err := takeDiagSock()
	if err != nil {
		return 0, err
	}
	ok := false
	defer func() { giveDiagSock(fd, ok) }()

	// nlmsghdr (16) + inet_diag_req_v2 (56).
	const reqLen = 16 + 56
	var b [reqLen]byte
	ne := binary.NativeEndian
	seq := diagSeq.Add(1)
	ne.PutUint32(b[0:], reqLen)
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(b[8:], seq)
	q := b[16:]
	q[0] = family
	q[1] = unix.IPPROTO_TCP
	ne.PutUint32(q[4:], 0xffffffff) // every state
	id := q[8:]                     // inet_diag_sockid: ports and addresses big-endian
	binary.BigEndian.PutUint16(id[0:], uint16(remote.Port))
	binary.BigEndian.PutUint16(id[2:], uint16(local.Port))
	copy(id[4:20], rip)
	copy(id[20:36], lip)
	ne.PutUint32(id[40:], 0xffffffff) // INET_DIAG_NOCOOKIE
	ne.PutUint32(id[44:], 0xffffffff)
	if err := unix.Sendto(fd, b[:], 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, fmt.Errorf("sock_diag request: %w", err)
	}
	var rb [1024]byte
	n, _, err := unix.Recvfrom(fd, rb[:], 0)
	if err != nil {
		return 0, fmt.Errorf("sock_diag reply: %w", err)
	}
	if n < 16 {
		return 0, errors.New("sock_diag: short reply")
	}
	if got := ne.Uint32(rb[8:]); got != seq {
		return 0, fmt.Errorf("sock_diag: reply to request %d, want %d", got, seq)
	}
	// The exact lookup answers with one message, read whole (it is far
	// smaller than rb): nothing is left for the next query.
	ok = true
	switch typ := ne.Uint16(rb[4:]); typ {
	case unix.NLMSG_ERROR:
		if n >= 20 {
			if e := int32(ne.Uint32(rb[16:])); e < 0 {
				return 0, fmt.Errorf("sock_diag: %w", unix.Errno(-e))
			}
		}
		return 0, errors.New("sock_diag: error reply")
	case unix.SOCK_DIAG_BY_FAMILY:
	default:
		return 0, fmt.Errorf("sock_diag: unexpected reply type %d", typ)
	}
	// inet_diag_msg: family, state, timer, retrans (4), sockid (48),
	// expires, rqueue, wqueue (12), uid at 64, inode.
	if n < 16+72 {
		return 0, errors.New("sock_diag: short inet_diag_msg")
	}
	// A peer that closed its end before it was identified leaves an
	// orphaned socket or a time-wait mini-socket (reported in state
	// TIME_WAIT or FIN_WAIT2), which sock_diag reports with uid 0 and
	// inode 0: it would be trusted as root, and the requests it queued
	// before closing would run as any uid it named. A live peer's socket
	// has a socket file (inode); without one there is no owner to trust.
	if ino := ne.Uint32(rb[16+68:]); ino == 0 {
		return 0, errPeerClosed
	}
	return ne.Uint32(rb[16+64:]), nil
}
