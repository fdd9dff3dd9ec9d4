// Package p9 is the 9P2000.L door of fastfs: the wire format of every
// 9P2000.L message and a server that maps a client's fids onto the inodes
// and handles of an fs.FileSystem.
//
// The reference for the protocol is shared/ref/9p2000L.md (diod's
// protocol.md, Linux net/9p and fs/9p, QEMU hw/9pfs).
//
// # Import rules
//
// p9 imports fs, the leaf internal/waitshare (the per-uid share of wait
// slots every door applies) and the standard library only: never fuse,
// ring, vhostuser or golang.org/x/sys/unix. The only system calls it makes are
// pread(2)/pwrite(2) through package syscall, in the Sink and Source it
// hands to the filesystem.
//
// # Codec
//
// Every message type has a struct (Tversion … Rremove) whose strings and
// payloads are []byte views into the buffer it was decoded from. Decoders
// never panic: fields are read through a decoder with a sticky overflow
// flag checked once per message; a field running past the end, trailing
// bytes, a string holding NUL, or a Twalk of more than MaxWalkElem names
// make the message malformed (ErrMalformed). Encoders write into a buffer
// whose capacity is the negotiated msize and never grow it, so no reply can
// exceed msize. Decode / Encode / DecodeBody are the API for tests, fuzzing
// and clients; the server decodes each T message with its concrete type on
// the stack.
//
// # Server
//
// Per connection, one reader goroutine reads messages and a bounded pool of
// workers (Options.MaxRequests) serves them concurrently, replies written
// whole in any order (tags pair them). The reader queues up to readAhead
// requests beyond the workers' and answers Tversion and Tflush itself, so a
// pool full of blocked requests can still be flushed (a queued request that
// is flushed is answered EINTR without being started). A client that fills
// the queue too makes the reader wait for a worker before it reads on.
// No request waits on a worker for another process: workers serve with
// fs.Context.NoWait, and a request the filesystem says would wait
// (fs.WouldWait: an open breaking a host lease) is served again, allowed
// to wait, on a goroutine of its own, at most MaxRequests per connection
// and an eighth of them per uid other than 0 (else EAGAIN); see wait.go.
// What the reader answers itself:
//
//   - Tversion resets the session: it interrupts and waits for every
//     request in flight, clunks every fid, then agrees msize = min(client,
//     Options.MaxMsize) (at least MinMsize, else Rlerror EINVAL) and
//     "9P2000.L" for any version string that is "9P2000.L" or starts with
//     "9P2000.L." (so gVisor-style "9P2000.L.Google.N" clients get plain
//     .L); anything else gets "unknown" and every later request EPROTO
//     until a Tversion succeeds.
//   - Tflush sets the fs.Context interrupt flag of the request it names
//     and answers Rflush only after that request's reply was written (or at
//     once if the tag is not in flight); never Rlerror.
//
// A size field below 7 or above msize, a malformed Tflush/Tversion, or a
// tag reused while in flight make the framing untrustworthy: the connection
// is dropped. Any other malformed message gets Rlerror EINVAL; an unknown
// type or a 9P2000-only message (Topen, Tcreate, Tstat, Twstat) EOPNOTSUPP;
// Tauth EOPNOTSUPP (attach with afid = NOFID). A panic while serving a
// request is recovered into Rlerror EIO and the connection keeps serving.
//
// # Fids
//
// Fids are per connection: unknown fid → EBADF; a newfid already in use →
// EBADF; more than Options.MaxFids → EMFILE (on a Trusted peer's
// connection, which may carry many uids' fids, one uid other than 0 holds
// at most an eighth of them, EMFILE past it, but at least 16 (or all
// root's reserve leaves), and the last eighth, at least 1, is kept for
// uid 0, ENFILE: see fid.go). Twalk with no names clones;
// a walk failing at the first name is Rlerror, at a later name a short
// Rwalk with newfid not created. An opened fid (Tlopen, Tlcreate) or an
// xattr fid cannot be walked or opened again (EBADF). Each fid points at a
// node holding one lookup count of its inode and a reference on its parent
// node, so ".." is answered from the chain and never climbs above the
// fid's attach root (see node). Tclunk and Tremove free the fid (Tremove
// even when the unlink fails); the last reference Releases the open handle
// and Forgets the inode. When a connection ends, every request in flight
// is interrupted and waited for and every fid is freed.
//
// Tattach's aname selects the tree: "" or "/" is the filesystem's root,
// any other path (relative to it, without "..") is walked — with the
// connection's search permission — and becomes the attach root, which ".."
// never leaves. An aname can select only a directory inside the served
// tree; it never names a host path.
//
// # Identity
//
// Who a connection's client is gets decided once, when it is accepted, by
// Options.Identify (default: PeerCred on a unix socket, Trusted on any
// other connection), as a Peer:
//
//   - Trusted (PeerCred: a peer with uid 0, such as the kernel's v9fs
//     client of a root mount): n_uname is the caller's uid for the
//     filesystem (NONUNAME: 0 for uname "root", else 65534); creating
//     messages carry their gid. Permission checks are the client's, as
//     with the Linux client's default access=client mode.
//   - Authenticated (PeerCred of any other uid: SO_PEERCRED's uid and gid,
//     and the supplementary groups of the peer's process from
//     /proc/PID/status): the connection acts as that identity only. A
//     Tattach naming another uid (or uname "root" with NONUNAME) is
//     refused with EPERM; NONUNAME or the peer's own uid attach as the
//     peer. A creating message's gid must be one of its groups (EPERM).
//   - Squashed (Peer.Squash, e.g. fastfsd 9p --all-squash): every Tattach
//     is accepted and every request acts as the squash identity.
//
// For the last two the server checks every request itself before the
// filesystem performs it (the filesystem runs with the daemon's rights),
// as the kernel would for that identity (perm.go): search permission on
// every directory walked, mode bits on Tlopen and Tlcreate of an existing
// file (supplementary groups counted; for a non-owner, an inode's POSIX
// access ACL too, read at each check from Options.ACLs or else the
// filesystem's GetXattr), write and search on the directory
// to create, remove or rename, the sticky-directory rule (EPERM), chown
// only by root, chgrp by the owner to its own groups, chmod and explicit
// times by the owner (EPERM), "now" times and truncation with write
// permission (EACCES), no device nodes, xattrs only in user.* (with the
// mode bits) and POSIX ACLs by the owner, protected hard links. A write or
// truncate by a non-root identity clears set-user-ID and set-group-ID.
// Tlcreate of a name that does not exist creates with O_EXCL, so a file
// appearing in between is never opened unchecked. TestPermMatrix runs
// every caller class (directory owner, file owner, group member through
// the primary and through a supplementary group, other) × directory mode
// (0755, 0775, 0777, 1777, 2775, 1770) × operation natively and over 9P on
// twin trees and requires the same errno, owner, group and mode.
//
// Names: a name that is empty or holds '/' is EINVAL; creating "." or ".."
// is EEXIST, removing or renaming them EINVAL; in Twalk "." stays and ".."
// goes up. Tremove and Trename act on the name a fid was walked by; they
// first check that the name still leads to the fid's inode (ESTALE if it
// was renamed away), so they never hit another file that took the name.
//
// Limits per connection: MaxFids fids (an eighth, at least 16, per uid
// other than 0 on a Trusted peer's), MaxRequests+readAhead request slots
// of at most 2×msize each, and 16 MiB of xattr buffers held by xattr fids
// (ENOMEM beyond). There is no 9P authentication (Tauth): who a client is
// comes from the transport (see Identity).
//
// # Connections
//
// Every accepted connection counts against an Owner, decided on the
// accept loop by Options.Owner (default ConnOwner: the uid of a unix
// socket's peer from SO_PEERCRED, the address of a tcp peer, an IPv6
// peer's /64), or by Peer.Owner if Identify sets another. Three limits
// keep one client from taking the server from the others; a connection
// one refuses is closed at once, with a log line naming its owner, the
// limit and what raises it (Options.LimitName; at most 20 such lines a
// second; the next line logged counts the others):
//
//   - Options.MaxConns connections in all (default 64);
//   - Options.RootConns of them kept for root (default 4): any other
//     owner is refused once MaxConns-RootConns are open, so root — the
//     kernel's v9fs client of a root mount, a VMM — still gets in when
//     others filled the rest;
//   - Options.MaxConnsPerPeer for each owner but root (default 8).
//
// Connections being identified count as open ones of their owner. The
// kernel queues new connections in the listen backlog first come first
// served, so Serve's accept loop does the least it can per connection:
// it accepts, asks Options.Owner, applies the limits and either closes
// the connection or hands it to its own goroutine. A client connecting
// in a loop past its share thus costs an accept, an Owner call and a
// close (no allocation). An admitted connection takes no buffer until
// it sends its first message (its read buffer, from a pool, then; its
// request slots as its requests need them). Identify runs in the connection's goroutine, so
// a slow Identify delays only its own connection. A connection not
// identified within Options.HandshakeTimeout of its accept is closed
// and its count given back, even if Identify is stuck.
//
// A connection that has not completed Tversion and a Tattach within
// Options.HandshakeTimeout (default 10 s) of its accept is closed, so a
// client that connects and stays silent holds its slot only that long.
// An attached connection is never closed for idleness (the Linux client
// keeps one per mount, idle for as long as the mount is). A connection's
// buffers are bounded as below; Server.BufferBound is the bound for all
// connections and Server.PeerBufferBound for one owner other than root.
//
// # Hot path
//
// Tread, Twrite, Tgetattr, Twalk and Tclunk allocate nothing per request in
// the steady state: each connection has MaxRequests request slots whose
// receive and reply buffers grow to at most msize and are reused. Tread
// hands the filesystem a Sink that preads into the reply buffer right after
// the Rread header; Twrite hands it a Source whose bytes are the payload in
// the receive buffer; Treaddir encodes dirents straight into the reply.
// Memory per connection is bounded by MaxRequests × 2 × msize.
//
// # Concurrency
//
// A Server may serve any number of listeners and connections. Lock order:
// fid.mu, then conn.wmu, then conn.mu. fs methods are called without
// conn.mu held, except Forget (a counter decrement).
package p9
