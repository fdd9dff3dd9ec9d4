package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/passthrough"
	"github.com/fastfsd/fastfsd/internal/sandbox"
	"github.com/fastfsd/fastfsd/internal/sockfile"
	"github.com/fastfsd/fastfsd/internal/stats"
	"github.com/fastfsd/fastfsd/p9"
)

func init() {
	register(&command{
		name:    "9p",
		summary: "serve a directory over 9P2000.L (tcp or unix socket)",
		run:     runP9,
	})
}

const p9Usage = `usage: fastfsd 9p --listen ADDR --shared-dir DIR [flags]
       fastfsd 9p --listen ADDR --shared-dir NAME=DIR --shared-dir NAME2=DIR2… [flags]

Serves DIR over 9P2000.L until SIGINT or SIGTERM, which stop accepting,
let the requests being served finish (at most --drain), and exit 0. A
request waiting for a host lease holder to give the file up (a Tlopen,
Tlcreate or truncating Tsetattr) is not left to finish: it is answered
EINTR at once.

ADDR is tcp:HOST:PORT, unix:PATH, or the Plan 9 dial form tcp!HOST!PORT or
unix!PATH. A Linux client mounts it with
  mount -t 9p -o trans=tcp,port=PORT,version=9p2000.L HOST /mnt
  mount -t 9p -o trans=unix,version=9p2000.L PATH /mnt
The attach name (mount -o aname=SUB) selects a subdirectory of DIR as the
root, walked with the client's permissions; ".." never leaves it, and no
aname reaches outside DIR.

Who a client is (the server performs every request itself, as root):
  unix:PATH   the socket is created mode 0600 (0660 with --socket-group),
              so only fastfsd's user (and that group) can connect. The
              kernel tells who connected, with its groups (SO_PEERCRED,
              SO_PEERGROUPS). Root is trusted:
              it acts as the uid it names in Tattach, and its client
              checks permissions (the Linux default, access=client). Any
              other user acts as itself with its own groups, whatever
              Tattach names (naming another uid is refused with EPERM),
              and the server checks every request's permissions as the
              kernel would for it (modes, groups, sticky directories,
              ownership; EACCES or EPERM as the kernel answers).
  tcp         loopback addresses only, unless --insecure-tcp. A loopback
              peer is identified by the kernel's record of who owns its
              socket, with its groups from the host's user and group
              databases, then treated as on a unix socket. A peer from the
              network cannot be identified: with --insecure-tcp it acts as
              any uid it names (no authentication), so use --all-squash.
  --all-squash UID:GID makes every connection act as UID:GID (no
              supplementary groups), checked by the server as above.

Bounds (a client past one gets that request refused, or its connection
dropped with a log line; the daemon keeps serving everyone else):
  connections      --max-conns in all; one more is closed at once on
                   accept, with a log line naming its uid or address and
                   the flag to raise (at most 20 such lines a second; the
                   next counts the rest). Connections still being
                   identified count as open ones of their uid or address
                   (the kernel's answer, read on accept), so a user
                   connecting in a loop is refused past its share at the
                   cost of an accept and a close; what the rest of the
                   identification needs (the user database for a tcp
                   peer's groups) is looked up off the accept loop
  per user         --max-conns-per-uid for one peer: a unix socket's uid
                   (SO_PEERCRED), a loopback tcp peer's uid, a network tcp
                   peer's address (an IPv6 peer's /64). Root (uid 0) is
                   exempt: it can act as anyone, and the kernel's v9fs
                   client of a root mount holds one connection per mount.
                   With --all-squash over tcp in --sandbox=namespace a
                   loopback peer's uid cannot be read (another network
                   namespace): all local users count as 127.0.0.1 and share
                   one cap (use unix:PATH or --sandbox=none to count uids)
  kept for root    --root-conns of --max-conns: any other peer is refused
                   once max-conns − root-conns are open, so root still
                   gets in when users (or network peers) took the rest
  handshake        a connection not identified, or that has not finished
                   Tversion and Tattach, within --handshake-timeout of its
                   accept is closed; an attached one is
                   never closed for being idle (a v9fs mount may idle for
                   hours on its one connection)
  fids             --max-fids per connection (EMFILE past it; ENFILE on a
                   trusted peer's connection, below). On a connection
                   of a trusted peer (root's: a v9fs mount, each user attached
                   with its own uid under access=user) one uid other than 0
                   holds at most an eighth (8,192 of the default 65,536; more:
                   EMFILE), and other uids stop at seven eighths, the last
                   kept for root (ENFILE), so one user's fids (with cache=loose
                   one per cached dentry) cannot make everyone's walks fail.
                   Below --max-fids 128 a uid may hold 16 even so (v9fs needs a
                   fid per directory of a path a user has open), or all but
                   root's reserve up to 18, and root keeps at least 1: so
                   fewer users fill the table, and up to 18 one user may
                   take all that root leaves (with --max-fids 1, all of it).
                   A full table answers ENFILE, root's requests included.
                   A peer that is not trusted acts as one uid: its connection's
                   --max-fids are its own
  requests         --max-requests served at once per connection, 4 more read
                   ahead; each holds up to 2×msize of buffers, so a connection
                   holds at most (max-requests+4)×2×msize
  lease waits      an open (Tlopen, Tlcreate of an existing name, truncating
                   Tsetattr) that must break a host lease (F_SETLEASE, up to
                   45 s) waits off the workers: at most --max-requests per
                   connection, an eighth of them (at least 1) per uid other
                   than 0, an eighth kept for root, a few KiB each; past
                   that EAGAIN. Tflush or the connection's end: EINTR
  xattr buffers    16 MiB per connection (Txattrwalk/Txattrcreate: ENOMEM)
  in all           --max-conns times a connection's: at most
                   max-conns×((max-requests+4)×2×msize + 16 MiB) of buffers,
                   3.5 GiB with the defaults (logged at start for the flags
                   given); lower --max-conns, --max-requests or --msize to
                   bound the daemon's memory tighter
  one user         --max-conns-per-uid times a connection's: 448 MiB with
                   the defaults (also logged); root is not capped
  Tflush           16 pending for one request; more drops the connection
  locks            Tlock never waits in the server (status BLOCKED: the Linux
                   client retries, interruptibly), so no worker waits on a lock
  stalled reader   a client that stops reading holds only its own requests;
                   at shutdown it is dropped after 1 s without progress

flags:
`

// p9Config is what runP9 parsed from its flags.
type p9Config struct {
	network, addr string
	dir           string   // the one shared directory, "" with named shares
	shares        shareSet // every --shared-dir (shares.go)
	socketGroup   string   // --socket-group: "" for a 0600 socket
	// sandbox, if not nil, confines the process once the listener is
	// up and before the shared directory is opened.
	sandbox *sandbox.Options
	// ln, if not nil, is the listener to serve (a namespace sandbox's
	// child inherits it) instead of listening on network, addr.
	ln     net.Listener
	fsOpts passthrough.Options
	// maxOpen is --max-open-per-uid (0: automatic, -1: none), sized in
	// the serving process (openBudget).
	maxOpen int
	srvOpts p9.Options
	drain   time.Duration
	policy  fsPolicy
}

func runP9(args []string) error {
	fl := flag.NewFlagSet("9p", flag.ContinueOnError)
	listen := fl.String("listen", "", "address to listen on: tcp:HOST:PORT, unix:PATH, tcp!HOST!PORT or unix!PATH (required)")
	var shares shareSet
	fl.Func("shared-dir", "directory to serve (required); NAME=DIR, repeatable, serves each DIR as the directory NAME of a read-only root (fs/vfs; NAME: no '/', not . or ..; not with --sandbox=chroot)", shares.add)
	cache := fl.String("cache", "", "refused on this door: a cache mode sets FUSE's entry and attribute timeouts and open flags, which 9P does not carry; 9P clients choose their own caching (mount -o cache=)")
	maxConns := fl.Int("max-conns", p9.DefaultMaxConns, "most client connections at once; more are closed on accept")
	maxConnsPerUid := fl.Int("max-conns-per-uid", p9.DefaultMaxConnsPerPeer, "most connections of one peer other than root (a unix socket's or loopback tcp peer's uid, a network peer's address); more are closed on accept. The default: a user's 9P programs need few (the kernel's v9fs client connects as root), and 8 keeps one user to an eighth of the default --max-conns and 448 MiB of buffers; 0: no cap")
	rootConns := fl.Int("root-conns", p9.DefaultRootConns, "of --max-conns, how many are kept for root (uid 0): other peers are refused once max-conns − root-conns are open (at most max-conns − 1 are kept); 0: none")
	handshake := fl.Duration("handshake-timeout", p9.DefaultHandshakeTimeout, "close a connection that has not completed Tversion and Tattach within this long of connecting (an attached connection is never closed for idleness); 0: never")
	msize := fl.Uint("msize", p9.DefaultMaxMsize, "largest message size to agree on in Tversion (bytes, at least 512)")
	maxFids := fl.Int("max-fids", p9.DefaultMaxFids, "most fids one connection may hold (EMFILE beyond); on a trusted peer's connection a uid other than 0 holds at most an eighth (at least 16, or all but root's reserve up to 18; past its share EMFILE), and the last eighth (at least 1 of 2 or more) is kept for uid 0 (ENFILE, as for a full table)")
	maxReqs := fl.Int("max-requests", p9.DefaultMaxRequests, "requests of one connection served at once; each holds up to 2×msize of buffers")
	xattr := fl.Bool("xattr", true, "serve extended attributes to clients; off, the host's POSIX ACLs still count in the server's permission checks of the clients it does not trust when it serves one directory, but not with several shares")
	readOnly := fl.Bool("read-only", false, "refuse every change with EROFS")
	allowDevices := fl.Bool("allow-devices", false, allowDevicesHelp)
	fl.BoolFunc("security-label", "not on this door (refused): 9P2000.L sends no security context with a creating request; a label a client sets afterwards with Txattrcreate goes through --xattrmap", func(string) error {
		return errors.New("not on the 9p door: 9P2000.L carries no security context with Tlcreate/Tmkdir/Tmknod/Tsymlink (labels a client sets with Txattrcreate go through --xattrmap); --security-label is for fastfsd virtiofs and mount")
	})
	drain := fl.Duration("drain", 10*time.Second, "on SIGINT/SIGTERM, how long to let running requests finish before closing connections (a request waiting for a host lease holder is answered EINTR at once)")
	socketGroup := fl.String("socket-group", "", "with --listen unix:PATH, make the socket mode 0660 owned by this group (name or gid), so its members may connect; default mode 0600 (only fastfsd's user)")
	insecureTCP := fl.Bool("insecure-tcp", false, "allow --listen tcp on an address that is not loopback: network clients are NOT authenticated and act as the uid they name unless --all-squash is given")
	allSquash := fl.String("all-squash", "", "UID:GID: every client acts as this user and group (no supplementary groups), whatever it names in Tattach; the server checks permissions for it")
	debug := fl.Bool("debug", false, "log every request and its reply to stderr (slow)")
	watch := fl.Bool("watch", false, "refused on this door: 9P has no message from server to client, so the server cannot invalidate a client's cache (fastfsd mount --watch has them)")
	var policy fsPolicy
	policy.addFlags(fl)
	obs := addObserveFlags(fl)
	inodes := addInodeFlags(fl)
	sbf := addSandboxFlags(fl, sandbox.P9)
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), p9Usage)
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 0 {
		fl.Usage()
		return fmt.Errorf("unexpected arguments %q; everything is a flag", fl.Args())
	}
	if *watch {
		return errors.New("--watch: not on the 9p door: 9P has no message from server to client, so a client's cache cannot be invalidated; mount the client with cache=none (v9fs's default) to see host changes, or use fastfsd mount --watch")
	}
	if *listen == "" || len(shares.specs) == 0 {
		fl.Usage()
		return errors.New("--listen ADDR and --shared-dir DIR are required")
	}
	if err := shares.check(false); err != nil {
		return err
	}
	dir := ""
	if shares.plain(false) {
		dir = shares.specs[0].dir
	} else if sbf.chroot() {
		return shares.chrootRefused()
	}
	network, addr, err := parseP9Addr(*listen)
	if err != nil {
		return err
	}
	if *cache != "" {
		return errors.New("--cache: not on the 9p door: the mode sets FUSE's entry and attribute timeouts and open flags, which 9P does not carry; choose the client's caching when it mounts (v9fs: mount -o cache=none|loose|fscache|mmap)")
	}
	if *msize < p9.MinMsize || *msize > 1<<30 {
		return fmt.Errorf("--msize %d: want %d to %d", *msize, p9.MinMsize, 1<<30)
	}
	if *drain < 0 {
		return fmt.Errorf("--drain %v: want 0 (close the connections at once) or more", *drain)
	}
	if *maxConns < 1 || *maxFids < 1 || *maxReqs < 1 {
		return errors.New("--max-conns, --max-fids and --max-requests must be at least 1")
	}
	if *maxConnsPerUid < 0 || *rootConns < 0 || *handshake < 0 {
		return errors.New("--max-conns-per-uid, --root-conns and --handshake-timeout must not be negative (0 turns each off)")
	}
	if flagSet(fl, "root-conns") && *rootConns > 0 && *rootConns >= *maxConns {
		return fmt.Errorf("--root-conns %d keeps every one of --max-conns %d for root: no other user could connect; give fewer than --max-conns (or 0 for none)", *rootConns, *maxConns)
	}
	if err := shares.statDirs(); err != nil {
		return err
	}
	if network == "tcp" && !*insecureTCP {
		if err := requireLoopback(addr); err != nil {
			return err
		}
	}
	var squash *p9.Identity
	if *allSquash != "" {
		uid, gid, ok := strings.Cut(*allSquash, ":")
		u, err1 := strconv.ParseUint(uid, 10, 32)
		g, err2 := strconv.ParseUint(gid, 10, 32)
		if !ok || err1 != nil || err2 != nil || u == 1<<32-1 || g == 1<<32-1 {
			return fmt.Errorf("--all-squash %q: want UID:GID, two numbers (e.g. 65534:65534)", *allSquash)
		}
		squash = &p9.Identity{Uid: uint32(u), Gid: uint32(g)}
	}
	if *socketGroup != "" && network != "unix" {
		return errors.New("--socket-group applies to --listen unix:PATH only")
	}
	if network == "tcp" && squash == nil {
		// A tcp peer is identified by NETLINK_SOCK_DIAG, which answers for
		// the network namespace the asking process is in: from the
		// sandbox's new one it finds no peer and every client, root
		// included, would be refused.
		// With chroot the peer is found, but its groups would be read
		// from the chroot's /etc/passwd and /etc/group: the shared
		// directory's, which a client may write.
		switch sbf.sandbox {
		case "namespace":
			return errors.New("--sandbox=namespace cannot serve --listen tcp: the sandbox's network namespace cannot see who owns a loopback peer's socket, so every client would be refused; use --listen unix:PATH, or --all-squash UID:GID (no peer to identify), or --sandbox=none")
		case "chroot":
			return errors.New("--sandbox=chroot cannot serve --listen tcp: a loopback peer's groups come from /etc/passwd and /etc/group, which inside the chroot are the shared directory's own files (a client could write itself into any group); use --listen unix:PATH, or --all-squash UID:GID (no peer to identify), or --sandbox=none")
		case "auto":
			sbf.sandbox, sbf.autoNone = "none", "--listen tcp identifies peers from the host's network namespace (use unix:PATH or --all-squash for a namespace)"
		}
	}
	sbf.allowDevices = *allowDevices
	sb, err := sbf.options(sandbox.P9, shares.dirs()...)
	if err != nil {
		return err
	}
	if network == "unix" {
		socketDir(&sb, addr)
	}
	if network == "tcp" && squash == nil {
		// A loopback peer's groups come from the host's user and group
		// databases (p9peer.go userIdentity), read when it connects.
		sb.LandlockROFiles = []string{"/etc/passwd", "/etc/group", "/etc/nsswitch.conf"}
	}
	cfg := p9Config{
		network: network, addr: addr, dir: dir, shares: shares, socketGroup: *socketGroup,
		fsOpts: passthrough.Options{Xattr: *xattr, ReadOnly: *readOnly, AllowDevices: *allowDevices},
		srvOpts: p9.Options{MaxMsize: uint32(*msize), MaxConns: *maxConns, MaxFids: *maxFids,
			MaxRequests: *maxReqs, Identify: p9Identify(squash, policy.translates()),
			Owner: p9Owner(squash != nil), LimitName: p9LimitName,
			// p9's zero means its default; the flags' 0 means off.
			MaxConnsPerPeer: offIfZero(*maxConnsPerUid), RootConns: offIfZero(*rootConns),
			HandshakeTimeout: offIfZero(*handshake)},
		drain:   *drain,
		policy:  policy,
		sandbox: &sb,
	}
	if err := policy.check(); err != nil {
		return err
	}
	if squash != nil && policy.translates() {
		return errors.New("--all-squash cannot be combined with --translate-uid/--translate-gid/--uid-map/--gid-map: the server checks the squashed identity's permissions against translated owners but host IDs inside POSIX ACLs; serve translated IDs to a trusted client (a VMM connecting as root) instead")
	}
	if obs.enabled() {
		cfg.srvOpts.Stats = p9Meter{stats.Default.NewSet("9p", p9.StatsName)}
	}
	if err := inodes.apply(&cfg.fsOpts); err != nil {
		return err
	}
	cfg.maxOpen = inodes.maxOpen
	if *debug {
		cfg.srvOpts.Debug = log.New(os.Stderr, "", log.Lmicroseconds).Printf
	}
	if fds, child := sandboxChild(); child {
		// The namespace sandbox's child (namespace.go): the supervisor
		// set the transport up. It exits if the supervisor dies.
		if _, err := supervisorLink(fds); err != nil {
			return err
		}
		if err := obs.inherit(fds); err != nil {
			return err
		}
		f, err := inheritedFile(fds, "listen")
		if err != nil {
			return err
		}
		cfg.ln, err = net.FileListener(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("sandbox: inherited listener: %w", err)
		}
		if cfg.fsOpts.ProcFd, err = sbf.enterChildRoot(cfg.dir, cfg.shares.specs, cfg.sandbox); err != nil {
			return err
		}
		cfg.dir = "/"
	} else {
		sbf.logAuto(log.Printf)
		if err := obs.listen(); err != nil {
			return err
		}
		if sbf.supervised() {
			gid, err := lookupSocketGroup(cfg.socketGroup)
			if err != nil {
				return err
			}
			l, err := listenP9(network, addr, gid)
			if err != nil {
				return err
			}
			defer l.Close() // removes a unix socket once the child is gone
			f, err := l.(interface{ File() (*os.File, error) }).File()
			if err != nil {
				return fmt.Errorf("--sandbox=%s: %w", sbf.sandbox, err)
			}
			log.Printf("fastfsd 9p: listening on %s:%s", network, l.Addr())
			return superviseNamespace("listen", f, obs, log.Printf, supervision{mode: sbf.sandbox})
		}
	}
	obs.serve()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return serveP9(ctx, cfg, nil)
}

// parseP9Addr splits a listen address into a net.Listen network and
// address: tcp:HOST:PORT, unix:PATH, tcp!HOST!PORT, unix!PATH.
func parseP9Addr(s string) (network, addr string, err error) {
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("--listen %q: %s; want tcp:HOST:PORT, unix:PATH, tcp!HOST!PORT or unix!PATH", s, why)
	}
	var rest string
	switch {
	case strings.HasPrefix(s, "tcp:"), strings.HasPrefix(s, "unix:"):
		network, rest, _ = strings.Cut(s, ":")
		if network == "tcp" {
			host, port, err := net.SplitHostPort(rest)
			if err != nil || port == "" {
				return bad("no port")
			}
			return "tcp", net.JoinHostPort(host, port), nil
		}
	case strings.HasPrefix(s, "tcp!"), strings.HasPrefix(s, "unix!"):
		network, rest, _ = strings.Cut(s, "!")
		if network == "tcp" {
			host, port, ok := strings.Cut(rest, "!")
			if !ok || port == "" || strings.Contains(port, "!") {
				return bad("want tcp!HOST!PORT")
			}
			if host == "*" {
				host = "" // Plan 9's "any address"
			}
			return "tcp", net.JoinHostPort(host, port), nil
		}
	default:
		return bad("unknown network")
	}
	if rest == "" {
		return bad("empty socket path")
	}
	return "unix", rest, nil
}

// listenP9 listens on the address. A unix socket is born private
// (internal/sockfile): mode 0600, or 0660 owned by group gid when gid >= 0
// (--socket-group), with no moment in which another user could connect.
// One left by a daemon that is gone (nobody accepts on it) is replaced; a
// live one is an error.
func listenP9(network, addr string, gid int) (net.Listener, error) {
	if network == "unix" {
		return sockfile.Listen(addr, sockfile.GroupOptions("--listen unix", gid))
	}
	// No TCP keepalive set up on accept (Go's default: four setsockopts
	// on the accept loop for every connection, even one refused at
	// once); p9Identify turns it on for the connections admitted.
	lc := net.ListenConfig{KeepAlive: -1}
	l, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		return nil, fmt.Errorf("%w; pick a free address", err)
	}
	return l, nil
}

// requireLoopback refuses a tcp listen address that is not loopback: a
// host name must resolve to loopback addresses only, and an empty or
// unspecified host (every address) is refused.
func requireLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--listen tcp %s: %w", addr, err)
	}
	refuse := fmt.Errorf("--listen tcp %s: not a loopback address; 9P has no authentication, so a network listener needs the explicit --insecure-tcp (and, to keep clients from acting as any uid, --all-squash UID:GID)", addr)
	if host == "" {
		return refuse
	}
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return refuse
		}
		return nil
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return fmt.Errorf("--listen tcp %s: resolve %s: %v", addr, host, err)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return refuse
		}
	}
	return nil
}

// serveP9 serves cfg until ctx ends, then drains. ready, if not nil,
// receives the listener's address once it accepts.
func serveP9(ctx context.Context, cfg p9Config, ready chan<- net.Addr) error {
	l := cfg.ln
	if l == nil {
		gid, err := lookupSocketGroup(cfg.socketGroup)
		if err != nil {
			return err
		}
		if l, err = listenP9(cfg.network, cfg.addr, gid); err != nil {
			return err
		}
	}
	// Removes a unix socket file if it is still ours (Landlock allows it:
	// see socketDir); an inherited listener removes nothing.
	defer l.Close()
	if cfg.sandbox != nil {
		if err := confine(*cfg.sandbox, log.Printf); err != nil {
			return err
		}
	}
	// Opened after confine: passthrough records the capability set its
	// identity switches restore, which must be the confined one.
	if len(cfg.shares.specs) == 0 {
		cfg.shares.specs = []shareSpec{{dir: cfg.dir}} // a p9Config made with dir alone
	}
	fmt.Fprintln(os.Stderr, "fastfsd 9p: "+openBudget(&cfg.fsOpts, cfg.maxOpen, len(cfg.shares.specs)))
	inner, _, closeShares, err := cfg.shares.build(false, func(dir string) (fs.FileSystem, error) {
		pfs, err := passthrough.New(dir, cfg.fsOpts)
		if err != nil {
			return nil, err
		}
		if n := fileHandlesNote(pfs, cfg.fsOpts.FileHandles); n != "" {
			fmt.Fprintln(os.Stderr, "fastfsd 9p: "+n)
		}
		return pfs, nil
	})
	if err != nil {
		return err
	}
	defer closeShares()
	fsys, err := cfg.policy.wrap(inner, cfg.fsOpts.Xattr)
	if err != nil {
		return err
	}
	// The permission checks of untrusted clients read ACLs from the
	// host, beneath the xattr map and whatever --xattr says. Several
	// shares (fs/vfs, inode numbers of its own): through GetXattr.
	if a, ok := inner.(p9.ACLReader); ok {
		cfg.srvOpts.ACLs = a
	}
	log.Printf("fastfsd 9p: serving %s on %s:%s; request and xattr buffers bounded at %s (--max-conns × ((--max-requests+4) × 2×msize + 16 MiB)), %s for one uid or address other than root (--max-conns-per-uid × the same)",
		cfg.shares.String(), cfg.network, l.Addr(), fmtBytes(cfg.srvOpts.BufferBound()), fmtBytes(cfg.srvOpts.PeerBufferBound()))
	if ready != nil {
		ready <- l.Addr() // l accepts already: a client may connect now
	}
	return fastfs.Serve9P(ctx, fsys, l, &fastfs.P9Options{Options: cfg.srvOpts, Drain: cfg.drain})
}

// offIfZero maps a flag's 0 (off) to p9.Options' negative (off; its
// zero is the default).
func offIfZero[T int | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// flagSet reports whether the flag name was given on the command line.
func flagSet(fl *flag.FlagSet, name string) bool {
	set := false
	fl.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// p9Meter plugs a stats.Set in behind the counter interface p9 states.
type p9Meter struct{ s *stats.Set }

func (m p9Meter) Take() p9.Counter  { return m.s.NewWorker() }
func (m p9Meter) Give(c p9.Counter) { m.s.Release(c.(*stats.Worker)) }

// fmtBytes prints n in the largest binary unit that keeps one decimal.
func fmtBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
}
