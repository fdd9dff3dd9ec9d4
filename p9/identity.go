package p9

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Identity is a user as the server checks permissions for it: uid, primary
// gid and supplementary groups.
type Identity struct {
	Uid, Gid uint32
	Groups   []uint32 // supplementary groups, without Gid
}

// inGroup reports whether g is the identity's primary or a supplementary
// group (the kernel's in_group_p).
func (id *Identity) inGroup(g uint32) bool {
	if g == id.Gid {
		return true
	}
	for _, x := range id.Groups {
		if x == g {
			return true
		}
	}
	return false
}

// Peer is what the server may believe about the client at the other end
// of one connection. It is decided once, when the connection is accepted
// (Options.Identify), and never changes.
type Peer struct {
	// Trusted: the client may act as any uid it names in Tattach's
	// n_uname, and permissions are checked by the client (the Linux v9fs
	// client mounted by root checks them with the caller's credentials,
	// access=client). The server acts as that uid for ownership only.
	Trusted bool
	// Otherwise every request of the connection acts as Identity, and the
	// server checks permissions itself as the kernel would for it (see
	// perm.go). Squash says how Tattach's n_uname is treated: false (a
	// peer authenticated by its credentials) refuses an attach that names
	// another uid with EPERM; true (an operator's all-squash) accepts any
	// n_uname and acts as Identity anyway.
	Squash bool
	Identity
	// Owner is whom the connection counts against for the connection
	// limits (Options.MaxConnsPerPeer, Options.RootConns). Left zero by
	// Identify, it stays the one Serve's accept loop counted the
	// connection against (Options.Owner, else ConnOwner; ServeConn asks
	// the same after Identify); set to another, the count moves to it,
	// and the connection is refused if that owner is past its share.
	Owner Owner
}

// String describes the peer for logs.
func (p Peer) String() string {
	switch {
	case p.Trusted:
		return "trusted (acts as the uid it names)"
	case p.Squash:
		return fmt.Sprintf("squashed to uid %d gid %d", p.Uid, p.Gid)
	}
	return fmt.Sprintf("uid %d gid %d groups %v", p.Uid, p.Gid, p.Groups)
}

// ErrNoPeerCred is returned by PeerCred for a connection that is not a
// unix socket.
var ErrNoPeerCred = errors.New("p9: peer credentials need a unix socket connection")

// PeerCred identifies the client of a unix socket connection by the
// credentials the kernel recorded when it connected (SO_PEERCRED): a peer
// with uid 0 is Trusted (it could act as anyone on this host anyway, and
// it is how the kernel's v9fs client connects for a root mount); any other
// peer acts as its uid and gid, with the supplementary groups of its
// process (from /proc/PID/status, if that process still exists and still
// has the uid and gid it connected with; none otherwise). A confined
// server cannot read that file (Landlock, a pid namespace): it should
// identify peers itself (Options.Identify), as fastfsd 9p does with
// SO_PEERGROUPS.
func PeerCred(nc net.Conn) (Peer, error) {
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		return Peer{}, ErrNoPeerCred
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Peer{}, fmt.Errorf("p9: peer credentials: %w", err)
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return Peer{}, fmt.Errorf("p9: peer credentials: %w", err)
	}
	if cerr != nil {
		return Peer{}, fmt.Errorf("p9: SO_PEERCRED: %w", cerr)
	}
	if cred.Uid == 0 {
		return Peer{Trusted: true, Identity: Identity{Uid: 0, Gid: cred.Gid}, Owner: UidOwner(0)}, nil
	}
	p := Peer{Identity: Identity{Uid: cred.Uid, Gid: cred.Gid}, Owner: UidOwner(cred.Uid)}
	p.Groups = procGroups(cred.Pid, cred.Uid, cred.Gid)
	return p, nil
}

// procGroups reads the supplementary groups of process pid, if its
// effective uid and gid are still uid and gid (else the pid may have been
// reused by another process: no groups).
func procGroups(pid int32, uid, gid uint32) []uint32 {
	if pid <= 0 {
		return nil
	}
	f, err := os.Open("/proc/" + strconv.Itoa(int(pid)) + "/status")
	if err != nil {
		return nil
	}
	defer f.Close()
	var groups []uint32
	okUid, okGid := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, _ := strings.Cut(sc.Text(), ":")
		fields := strings.Fields(val)
		switch key {
		case "Uid", "Gid": // real, effective, saved, fs
			if len(fields) < 4 {
				return nil
			}
			want := strconv.FormatUint(uint64(uid), 10)
			if key == "Gid" {
				want = strconv.FormatUint(uint64(gid), 10)
			}
			if fields[1] != want || fields[3] != want {
				return nil
			}
			if key == "Uid" {
				okUid = true
			} else {
				okGid = true
			}
		case "Groups":
			for _, s := range fields {
				g, err := strconv.ParseUint(s, 10, 32)
				if err != nil {
					return nil
				}
				if uint32(g) != gid {
					groups = append(groups, uint32(g))
				}
			}
		}
	}
	if !okUid || !okGid {
		return nil
	}
	return groups
}

// identify decides the peer of a new connection: Options.Identify, or by
// default PeerCred for a unix socket and Trusted for anything else (the
// caller of Serve decides who can reach a tcp listener).
func (s *Server) identify(nc net.Conn) (Peer, error) {
	if s.opts.Identify != nil {
		return s.opts.Identify(nc)
	}
	if _, ok := nc.(*net.UnixConn); ok {
		return PeerCred(nc)
	}
	return Peer{Trusted: true}, nil
}
