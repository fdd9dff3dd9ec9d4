package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/passthrough"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/sandbox"
	"github.com/fastfsd/fastfsd/internal/stats"
)

func init() {
	register(&command{
		name:    "mount",
		summary: "serve a directory to this host's kernel through /dev/fuse",
		run:     runMount,
	})
}

const mountUsage = `usage: fastfsd mount --source DIR [flags] MOUNTPOINT
       fastfsd mount --source NAME=DIR --source NAME2=DIR2… [flags] MOUNTPOINT

Mounts DIR at MOUNTPOINT through /dev/fuse and serves it in the foreground
until the filesystem is unmounted (umount MOUNTPOINT, or fusermount3 -u) or
fastfsd gets SIGINT/SIGTERM, which unmount it. The exit status is 0 after a
clean unmount. Mounting needs root, or fusermount3 (package fuse3) for an
unprivileged user. The mount is ready once MOUNTPOINT is a fuse.fastfs mount
(stat shows a new st_dev).

As root, a child process serves, confined (--sandbox, --seccomp,
--modcaps; docs/sandbox.md): in new mount, pid and network namespaces
whose root is DIR where it can (or chrooted into DIR), under Landlock
limited to DIR, the seccomp filter and the capability drop. This process
keeps CAP_SYS_ADMIN alone and unmounts: on SIGINT/SIGTERM, and if the
child dies. The unmount runs in a helper process ("fastfsd unmount-helper
MOUNTPOINT" in ps) that stays behind while the kernel frees what it
cached for the mount (seconds for millions of inodes): fastfsd exits
once MOUNTPOINT is unmounted and the child has stopped, and MOUNTPOINT
can be mounted again at once. An unprivileged mount is one process, not
confined, and unmounts itself (fusermount3 -u) before it exits.

flags:
`

func runMount(args []string) error {
	fl := flag.NewFlagSet("mount", flag.ContinueOnError)
	sources := shareSet{flag: "--source"}
	fl.Func("source", "directory to serve (required); NAME=DIR, repeatable, serves each DIR as the directory NAME of a read-only root (fs/vfs; NAME: no '/', not . or ..)", sources.add)
	workers := fl.Int("workers", 0, "number of workers, each with its own cloned /dev/fuse fd and pinned to one CPU; 0 = one per CPU this process may run on")
	cache := fl.String("cache", "auto", "client caching: auto (names and attributes 1 s, data until the file changes), always (1 day; only this client changes DIR), metadata (names and attributes 1 day, no file data: direct I/O), never (no caching, direct I/O)")
	allowOther := fl.Bool("allow-other", false, "let users other than the mounting one access the mount (unprivileged: needs user_allow_other in /etc/fuse.conf)")
	pass := fl.Bool("passthrough", true, "FUSE passthrough: the kernel reads and writes opened regular files directly (needs root and Linux 6.9+; not with --cache=never or metadata)")
	spliceMode := fl.String("splice", "auto", "data path for READ and WRITE payloads that are not passed through: on (splice through pipes; READs under 32 KiB are copied), off (read/write with buffers), auto (on without --passthrough, where large payloads reach the server; off with it, where requests are mostly small). With --uring requests arrive in the ring's buffers and are never spliced: on is refused there")
	xattr := fl.Bool("xattr", true, "serve extended attributes (off: the client stops asking, and stops asking for security.capability before the first write to each file)")
	locks := fl.Bool("locks", true, "serve POSIX and flock locks on the host files, so that processes on the host see them; off, the kernel keeps the mount's locks itself (exact among the mount's users, unseen on the host) and close(2) costs no FLUSH round trip")
	fsname := fl.String("fsname", "fastfs", "source name shown in /proc/mounts and df")
	debug := fl.Bool("debug", false, "log every request and reply to stderr (slow)")
	useUring := fl.Bool("uring", false, "serve FUSE over io_uring (Linux 6.14+): one ring per CPU, one system call per batch of requests; turns the fuse module's enable_uring parameter on if needed (root). A lock wait holds its ring entry: a CPU's ring holds at most 8 lock waits (half its 16 entries), at most 1 per uid other than 0, the last kept for root; past them flock and F_SETLKW get ENOLCK. An open or truncate that must break a host lease waits in the same slots, refused with EAGAIN past them")
	readOnly := fl.Bool("read-only", false, "refuse every change with EROFS")
	allowDevices := fl.Bool("allow-devices", false, allowDevicesHelp)
	watch := fl.Bool("watch", false, "watch DIR's filesystem for changes other processes make on the host (fanotify) and invalidate the kernel's cached names, attributes and data of what changed, so that --cache=always serves fresh data; root only (CAP_SYS_ADMIN), not with --cache=never (nothing is cached); with several --source NAME=DIR each directory is watched, shares on one filesystem by one fanotify group")
	secLabel := fl.Bool("security-label", false, securityLabelHelp)
	posixACL := fl.Bool("posix-acl", true, "offer FUSE_POSIX_ACL: the kernel enforces the POSIX ACLs of DIR's files for the mount's users, as it does natively (it reads system.posix_acl_access through GETXATTR, and again after each change to a directory for callers other than its owner: two more round trips per create in a shared directory, docs/roundtrips.md). Off (--posix-acl=false), only the mode bits count: with --allow-other a user a host ACL denies gets in where the mode allows, and one an ACL grants is refused. Needs --xattr and no uid/gid translation: by default it is then off, with a warning")
	var policy fsPolicy
	policy.addFlags(fl)
	obs := addObserveFlags(fl)
	inodes := addInodeFlags(fl)
	sbf := addSandboxFlags(fl, sandbox.Mount)
	fl.Usage = func() {
		fmt.Fprint(fl.Output(), mountUsage)
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 1 {
		fl.Usage()
		return fmt.Errorf("want exactly one MOUNTPOINT after the flags, got %d arguments; flags go before MOUNTPOINT", fl.NArg())
	}
	mnt := fl.Arg(0)
	if len(sources.specs) == 0 {
		return errors.New("--source DIR is required: the directory to serve (or --source NAME=DIR for each of several)")
	}
	if err := sources.check(false); err != nil {
		return err
	}
	plain := sources.plain(false)
	if *workers < 0 || *workers > 1024 {
		return fmt.Errorf("--workers %d: want 0 (one per CPU) to 1024", *workers)
	}
	cm, err := passthrough.ParseCacheMode(*cache)
	if err != nil {
		return fmt.Errorf("--cache: %w", err)
	}
	var sm fastfs.SpliceMode
	switch *spliceMode {
	case "auto":
		sm = fastfs.SpliceAuto
	case "on":
		sm = fastfs.SpliceOn
	case "off":
		sm = fastfs.SpliceOff
	default:
		return fmt.Errorf("--splice %q: want auto, on or off", *spliceMode)
	}
	if sm == fastfs.SpliceOn && *useUring {
		// dataplane/uring reads each request from its ring entry's
		// buffer and answers in it (pread/pwrite, no pipe): splicing
		// would be asked for and not done.
		return errors.New("--splice=on with --uring: requests served over io_uring arrive in the ring's own buffers and are never spliced; drop --splice=on (or --uring)")
	}
	// given holds the flags on the command line: a default that cannot
	// apply is dropped quietly, a flag asked for that cannot is refused.
	given := map[string]bool{}
	fl.Visit(func(f *flag.Flag) { given[f.Name] = true })
	usePass := *pass
	if usePass && os.Geteuid() != 0 {
		if given["passthrough"] {
			return errors.New("--passthrough needs root (CAP_SYS_ADMIN, for FUSE_DEV_IOC_BACKING_OPEN); run as root or drop the flag")
		}
		fmt.Fprintln(os.Stderr, "fastfsd mount: FUSE passthrough (on by default) needs root (CAP_SYS_ADMIN); serving without it")
		usePass = false
	}
	if usePass && (cm == passthrough.CacheNever || cm == passthrough.CacheMetadata) {
		if given["passthrough"] {
			return fmt.Errorf("--passthrough with --cache=%s: every open is direct I/O there, so nothing would be passed through; drop one of them", cm)
		}
		usePass = false // direct I/O on every open: nothing to pass through
	}
	if *watch && os.Geteuid() != 0 {
		return errors.New("--watch needs root: fanotify's filesystem mark needs CAP_SYS_ADMIN; run as root, or drop --watch and use --cache=auto (1 s) or never to see host changes")
	}
	if *watch && cm == passthrough.CacheNever {
		return errors.New("--watch with --cache=never: the client caches nothing, so there is nothing to invalidate; drop --watch, or use --cache=always --watch")
	}
	if err := sources.statDirs(); err != nil {
		return err
	}
	if strings.ContainsAny(*fsname, ", \x00") {
		return fmt.Errorf("--fsname %q: must not contain a comma, space or NUL", *fsname)
	}

	useACL := *posixACL
	if useACL && !*xattr {
		if given["posix-acl"] {
			return errors.New("--posix-acl needs --xattr: the kernel reads and sets ACLs as system.posix_acl_* xattrs")
		}
		useACL = false
	}
	if useACL && policy.translates() && !given["posix-acl"] {
		useACL = false // policy.check refuses it when asked for
	}
	policy.posixACL = useACL
	if *allowOther && !useACL {
		why := "--posix-acl=false"
		switch {
		case !*posixACL:
		case !*xattr:
			why = "--xattr=false"
		default:
			why = "uid/gid translation: the IDs inside ACLs would not be translated"
		}
		stderrf("mount: --allow-other without POSIX ACLs (%s): the mount's users are checked by mode bits alone; host POSIX ACLs on the source are not enforced for them", why)
	}
	if err := policy.check(); err != nil {
		return err
	}
	if *secLabel && !*xattr {
		return errors.New("--security-label needs --xattr: labels are stored as extended attributes")
	}
	fsOpts := passthrough.Options{Cache: cm, Xattr: *xattr, Passthrough: usePass, ReadOnly: *readOnly, AllowDevices: *allowDevices}
	if err := inodes.apply(&fsOpts); err != nil {
		return err
	}
	sbf.allowDevices = *allowDevices
	sb, err := sbf.options(sandbox.Mount, sources.dirs()...)
	if err != nil {
		return err
	}
	unprivileged := os.Geteuid() != 0
	if unprivileged {
		// No confinement is applied to an unprivileged mount (below): a
		// confinement flag asked for explicitly would be ignored, so it
		// is refused instead.
		var asked []string
		if given["seccomp"] && sbf.seccomp != "none" {
			asked = append(asked, "--seccomp="+sbf.seccomp)
		}
		if given["modcaps"] {
			asked = append(asked, "--modcaps="+sbf.modcaps)
		}
		if given["sandbox"] && sbf.supervised() {
			asked = append(asked, "--sandbox="+sbf.sandbox)
		}
		if len(asked) > 0 {
			return fmt.Errorf("%s: an unprivileged mount is not confined (its unmount runs the setuid fusermount3, which no_new_privs and the system-call filter forbid); run as root, or drop the flag", strings.Join(asked, " "))
		}
	}
	if *watch && !sb.Caps.Has(unix.CAP_DAC_READ_SEARCH) {
		return errors.New("--watch with --modcaps=-dac_read_search: the watcher opens the file handles fanotify reports (open_by_handle_at), which needs it; keep dac_read_search or drop --watch")
	}
	if !plain && sbf.chroot() {
		return sources.chrootRefused()
	}
	opts := fastfs.MountOptions{FSName: *fsname, AllowOther: *allowOther, Workers: *workers, Splice: sm, Passthrough: usePass, IOUring: *useUring,
		Fuse: fuse.Options{Locks: *locks, SecurityLabel: *secLabel, PosixACL: policy.posixACL}}
	if *debug {
		opts.Debug = log.New(os.Stderr, "fastfsd: ", log.Lmicroseconds)
	}
	if obs.enabled() {
		opts.Stats = stats.Default.NewSet("fuse", func(op uint32) string { return abi.Opcode(op).String() })
	}

	// Catch SIGINT/SIGTERM before the mount exists: one that arrives
	// while the daemon confines itself and opens the directory must still
	// unmount (Serve sees ctx done at once), not leave a dead mount.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	// conn is the mount, mounted (fastfs.Open) or handed over by the
	// supervisor (fastfs.Adopt), served below (conn.Serve).
	var conn *fastfs.Session
	fds, child := sandboxChild()
	if child {
		// The sandbox's serving child (namespace.go, superviseMount):
		// the supervisor mounted, and unmounts.
		if err := obs.inherit(fds); err != nil {
			return err
		}
		if conn, err = adoptMount(fds, mnt, &opts); err != nil {
			return err
		}
	} else {
		if err := obs.listen(); err != nil {
			return err
		}
		// With --uring, Open turns the fuse module's enable_uring on.
		if conn, err = fastfs.Open(mnt, &opts); err != nil {
			return err
		}
		if !unprivileged {
			// Root: a child serves, confined, and this process
			// unmounts (superviseMount).
			err := superviseMount(ctx, conn, obs, sbf.sandbox)
			conn.Close()
			return err
		}
	}
	// A no-op once served: the fastfs.Mounted closes the fd then.
	defer conn.Close()

	var watchMetrics *watchCollector // --watch's counts at --metrics
	if *watch && obs.enabled() {
		watchMetrics = new(watchCollector)
		obs.extra = append(obs.extra, watchMetrics)
	}
	obs.serve()

	// --watch (root: in the child): one watcher per filesystem holding
	// shares (watchOf[i] is the index in watchers of sources.specs[i]'s).
	// Shares on one filesystem share its watcher, which reads and decodes
	// each event once for all of them.
	var watchers []*passthrough.Watcher
	var watchOf []int
	if child {
		// Everything serving needs outside the shares is opened now,
		// before Landlock and the new root keep it out of reach.
		if err := conn.Prepare(); err != nil {
			conn.Unmount()
			return err
		}
		// The watcher marks the filesystem now, while the process has
		// CAP_SYS_ADMIN and sees the host's tree: after confine it only
		// reads events and opens handles, so the system-call filter
		// need not allow fanotify_init or fanotify_mark.
		if *watch {
			if watchers, watchOf, err = newWatchers(sources.specs, stderrf); err != nil {
				conn.Unmount()
				return err
			}
			for _, w := range watchers {
				defer w.Close()
			}
			if watchMetrics != nil {
				watchMetrics.set(watchers)
			}
		}
		if sbf.supervised() {
			dir := "" // named shares
			if plain {
				dir = sources.specs[0].dir
			}
			if fsOpts.ProcFd, err = sbf.enterChildRoot(dir, sources.specs, &sb); err != nil {
				conn.Unmount()
				return err
			}
		} else {
			sbf.logAuto(stderrf)
		}
		if err := confine(sb, stderrf); err != nil {
			conn.Unmount()
			return err
		}
	} else {
		stderrf("sandbox (mount door): not applied: an unprivileged mount is unmounted by the setuid fusermount3, which no_new_privs and the system-call filter forbid")
	}
	// One budget for every --source, sized by this (the serving)
	// process's fd limit.
	stderrf("mount: %s", openBudget(&fsOpts, inodes.maxOpen, len(sources.specs)))
	// Opened after confine: passthrough records the capability set its
	// identity switches restore, which must be the confined one.
	// pfss are the shares' backends in sources.specs' order (build makes
	// them in that order): the watchers'.
	var pfss []*passthrough.FS
	inner, vfsys, _, err := sources.build(false, func(dir string) (fs.FileSystem, error) {
		p, err := passthrough.New(dir, fsOpts)
		if err != nil {
			return nil, err
		}
		if n := fileHandlesNote(p, fsOpts.FileHandles); n != "" {
			fmt.Fprintln(os.Stderr, "fastfsd mount: "+n)
		}
		pfss = append(pfss, p)
		return p, nil
	})
	if err != nil {
		conn.Unmount()
		return err
	}
	// The backends are not closed: runMount returns only for the process
	// to exit, and exit closes every fd the inode tables hold at once,
	// where Close would release each inode the client ever looked up, one
	// by one (about 0.5 s of CPU for 2,000,000, after the unmount; SIGTERM
	// must end the daemon in seconds whatever the kernel remembers, issue
	// 10).
	fsys, err := policy.wrap(inner, *xattr)
	if err != nil {
		conn.Unmount()
		return err
	}

	// A watcher's notifications about a share name the share backend's
	// inode IDs, which the policy wrappers pass through unchanged; with
	// named shares the VFS's IDs of them (shareNotifier), looked up
	// before serving starts.
	shareIDs := make([]func(fs.Inode) (fs.Inode, bool), len(watchOf))
	if vfsys != nil {
		for i := range watchOf {
			if shareIDs[i], err = vfsys.ClientIDs(sources.specs[i].name); err != nil {
				conn.Unmount()
				return fmt.Errorf("--watch: %w", err)
			}
		}
	}
	m, err := conn.Serve(ctx, fsys)
	if err != nil {
		conn.Unmount()
		return err
	}
	var watchWG sync.WaitGroup
	targets := make([][]passthrough.WatchTarget, len(watchers))
	for i, wi := range watchOf {
		var n passthrough.Notifier = mountNotifier{m}
		if shareIDs[i] != nil {
			n = shareNotifier{n: n, ids: shareIDs[i]}
		}
		targets[wi] = append(targets[wi], passthrough.WatchTarget{FS: pfss[i], Notifier: n})
	}
	for i, w := range watchers {
		// RunTargets stops with the session (ENODEV or EBADF from the
		// notifications) or when closed below.
		watchWG.Add(1)
		go func(w *passthrough.Watcher, ts []passthrough.WatchTarget, dir string) {
			defer watchWG.Done()
			err := w.RunTargets(ts)
			// ENODEV, EBADF: the session ended (unmounted); Serve says why.
			if err != nil && !errors.Is(err, syscall.ENODEV) && !errors.Is(err, syscall.EBADF) {
				fmt.Fprintf(os.Stderr, "fastfsd mount: --watch %s: %v; host changes are no longer seen before the cache timeouts\n", dir, err)
			}
		}(w, targets[i], sources.specs[slices.Index(watchOf, i)].dir)
	}
	// Wait returns once the mount is gone (or serving unmounted it on an
	// error), after the fd is closed: nothing is left behind.
	serveErr := m.Wait()
	if watchers != nil {
		for _, w := range watchers {
			w.Close()
		}
		watchWG.Wait()
		ws := sumWatchStats(watchers)
		fmt.Fprintf(os.Stderr, "fastfsd mount: --watch: %d events (%d of this daemon's own changes, %d about inodes the client did not know), %d notifications sent (%d entry, %d data, %d attr), %d failed, %d queue overflows\n",
			ws.Events, ws.Own, ws.Unknown, ws.Notified, ws.Entries, ws.Data, ws.Attrs, ws.Errors, ws.Overflows)
	}
	return serveErr
}

// mountNotifier sends a passthrough.Watcher's notifications through the
// served mount.
type mountNotifier struct{ m *fastfs.Mounted }

func (n mountNotifier) NotifyInvalInode(ino uint64, off, length int64) error {
	return n.m.InvalidateInode(fs.Inode(ino), off, length)
}

// NotifyInvalEntry: the watcher never asks for expireOnly (it drops the
// entry); fastfs.Mounted offers only that.
func (n mountNotifier) NotifyInvalEntry(parent uint64, name []byte, expireOnly bool) error {
	if expireOnly {
		return errors.New("mount: --watch: FUSE_EXPIRE_ONLY invalidation is not offered by fastfs.Mounted")
	}
	return n.m.InvalidateEntry(fs.Inode(parent), string(name))
}

// superviseMount is the mount door's supervisor as root (namespace.go;
// mode is --sandbox: namespace, chroot, or none):
// it hands conn's fd and the metrics and pprof listeners to the child
// (which asks for the unmount over its supervisorLink), keeps
// CAP_SYS_ADMIN alone (for the unmount helper it starts, which inherits
// it: umount2, and fusectl to abort a busy connection; unmount.go), and
// unmounts on SIGINT/SIGTERM
// (ctx), when the child asks, and when the child has exited — cleanly or
// killed — so that no mount outlives the daemon.
func superviseMount(ctx context.Context, conn *fastfs.Session, obs *observeFlags, mode string) error {
	fail := func(err error) error {
		conn.Unmount()
		return fmt.Errorf("sandbox: start the serving child: %w", err)
	}
	fd, err := unix.Dup(conn.Fd())
	if err != nil {
		return fail(fmt.Errorf("dup the /dev/fuse fd: %w", err))
	}
	unix.CloseOnExec(fd)
	fuseFile := os.NewFile(uintptr(fd), "/dev/fuse")
	// The unmount runs in a helper process (unmount.go), so that this
	// one exits without waiting for the kernel to free the mount's cache.
	unmount := newUnmounter(conn).stop
	// Also when no child could start: closing the fd of a live mount
	// would leave a dead one.
	defer unmount()
	return superviseNamespace("fuse", fuseFile, obs, stderrf,
		supervision{caps: sandbox.CapSet(1) << unix.CAP_SYS_ADMIN, stop: unmount, stopped: ctx.Done(), mode: mode})
}

// adoptMount is the serving child's connection: the /dev/fuse fd the
// supervisor mounted, whose Unmount asks the supervisor to unmount (a
// byte on the supervisorLink): the mount lives in the host's mount
// namespace, which a namespace child has left, and Landlock forbids the
// child to unmount anyway.
func adoptMount(fds map[string]int, mnt string, opts *fastfs.MountOptions) (*fastfs.Session, error) {
	fd, err := inheritedFd(fds, "fuse")
	if err != nil {
		return nil, err
	}
	ask, err := supervisorLink(fds)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(mnt)
	if err != nil {
		abs = mnt
	}
	return fastfs.Adopt(fd, abs, func() error {
		if err := ask(); err != nil {
			return fmt.Errorf("unmount %s: %w", abs, err)
		}
		return nil
	}, opts)
}
