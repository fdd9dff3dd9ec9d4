package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"os"
	"os/signal"
	"os/user"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fastfsd/fastfsd/dataplane"
	"github.com/fastfsd/fastfsd/fastfs"
	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/passthrough"
	"github.com/fastfsd/fastfsd/fs/xattrmap"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/sandbox"
	"github.com/fastfsd/fastfsd/internal/sockfile"
	"github.com/fastfsd/fastfsd/internal/stats"
	"github.com/fastfsd/fastfsd/vhostuser"
)

func init() {
	register(&command{
		name:    "virtiofs",
		summary: "serve a directory to VMs as a vhost-user-fs back-end (virtiofsd drop-in)",
		run:     runVirtiofs,
	})
}

const virtiofsUsage = `usage: fastfsd virtiofs --socket-path PATH --shared-dir DIR [flags]
       fastfsd virtiofs --socket-path PATH --shared-dir NAME=DIR… [--control-socket CTL --share-root ROOT] [flags]
       virtiofsd --socket-path=PATH -o source=DIR[,cache=auto|always|none] [flags]

Serves DIR to a VM's virtio-fs driver through a VMM (QEMU -device
vhost-user-fs-pci, Cloud Hypervisor --fs) over the vhost-user socket PATH.
QEMU needs shared guest memory (-object memory-backend-memfd,share=on and
-numa node,memdev=…). The guest mounts it with: mount -t virtiofs TAG /mnt
(TAG is QEMU's -device vhost-user-fs-pci,tag=…).

Like virtiofsd it serves one front-end connection and exits when the
front-end disconnects (status 0 after an orderly stop), or on SIGTERM/SIGINT.
Flags take --flag=value or --flag value. Invoked as "virtiofsd" (a link or
copy of the binary) it behaves as "fastfsd virtiofs".

flags:
  --socket-path PATH        vhost-user socket to listen on (created mode 0600, with no window
                            in which another user can connect; a stale one is replaced)
  --fd N                    inherited listening socket instead of --socket-path (libvirt)
  --socket-group GROUP      group owning the socket (mode 0660)
  --shared-dir DIR          directory to serve (also -o source=DIR)
  --shared-dir NAME=DIR     (repeatable) serve each DIR as the directory NAME of a read-only
                            root (fs/vfs); NAME: no '/', not . or ..; a plain DIR cannot sit
                            beside named shares. Under --sandbox=namespace the child's root is a
                            read-only tmpfs holding each DIR bind-mounted at /NAME; not with
                            --sandbox=chroot
  --control-socket PATH     add and remove shares under a running guest: a socket (mode 0600,
                            born private; peers of another uid are dropped) taking one JSON
                            request per line (see "fastfsd share --help"). Needs --share-root;
                            not with --sandbox=namespace or chroot (auto then means none)
  --share-root DIR          shares added through --control-socket must be directories under DIR
                            (resolved beneath it: no symlink leads out); Landlock allows it
  --tag TAG                 tag in the device config space (VMMs that read it; QEMU sets its own)
  --cache auto|always|metadata|never  client caching (also -o cache=…; none = never;
                            metadata: names and attributes a day, no file data)
  --num-request-queues N    request queues offered (default: CPUs, at most 16)
  --thread-pool-size N      helper goroutines per queue for READ/WRITE ≥ 64 KiB and, when the
                            blocking slots are busy, requests that may block; 0 (default, as
                            virtiofsd): those run on the queue's worker thread. Lock waits,
                            FSYNC, FALLOCATE, COPY_FILE_RANGE and SYNCFS always run off the
                            worker, on up to 32 blocking slots per queue; a lock wait past
                            them is refused with ENOLCK, and so is one of a guest uid other
                            than 0 past an eighth of the slots lock waits may take (4 of the
                            32, more with --thread-pool-size) or once all but an eighth wait
                            (kept for guest root). An open or truncate that must break a host
                            lease waits the same way, refused with EAGAIN. Stopping a queue
                            answers pending waits with EINTR
  --xattr / --no-xattr      serve extended attributes (default on; virtiofsd's is off, but
                            with KILLPRIV_V2 xattrs cost no extra round trip per write)
  --xattrmap RULES          xattr name mapping, virtiofsd's rule language (also -o xattrmap=);
                            "none" maps nothing. Default (no client sets an xattr the host acts on):
{{XATTRMAP}}
                            i.e. trusted.* and security.* are stored as user.virtiofs.<name> and
                            read back under their own names; the host's own stay hidden
  --translate-uid SPEC      translate UIDs guest<->host (repeatable): map:G:H:N, guest:G:H:N,
                            host:H:G:N, squash-guest:G:H:N, squash-host:H:G:N, forbid-guest:G:N
  --translate-gid SPEC      the same for GIDs
  --uid-map :NS:HOST:N:     virtiofsd's user-namespace map, served as --translate-uid map:NS:HOST:N;
                            IDs outside it are unusable and shown as 65534, as in a namespace
  --gid-map :NS:HOST:N:     the same for GIDs
  --readonly                refuse every change with EROFS
  --security-label          ask the guest for the security label (SELinux…) its LSM gives each new
                            inode (FUSE_SECURITY_CTX; also -o security_label) and store it as that
                            xattr through --xattrmap (default: as user.virtiofs.security.selinux…);
                            a label that cannot be stored fails the creation; needs --xattr
  --allow-devices           let the guest create character and block device nodes (fastfsd's own;
                            virtiofsd has none). Default: MKNOD of a device fails with EPERM, so
                            the guest cannot leave a node through which host processes reach a
                            host device; FIFOs, sockets and the 0:0 overlayfs whiteout are made
  --posix-acl               offer POSIX ACLs (FUSE_POSIX_ACL; implies --xattr; not with uid/gid translation)
  --no-readdirplus          list directories with READDIR only
  --allow-direct-io         honour the guest's O_DIRECT on host files
  --rlimit-nofile N         set RLIMIT_NOFILE to N (0: leave it)
  --syslog                  log to syslog instead of stderr
  -V, --version             print the version and exit
  --writeback               client write-back cache
  --posix-lock              serve POSIX and flock locks
  --no-killpriv-v2          do not offer HANDLE_KILLPRIV_V2
  --cpus LIST|auto|none     pin queue worker i to CPU LIST[i % len] (e.g. 0,1); auto (default):
                            by the CPU plan, one per physical core first, performance cores
                            before efficiency cores, SMT siblings last; none: unpinned
  --busy-poll auto|DURATION after a queue runs dry, poll it before sleeping on the kick, without
                            asking the guest to kick: auto (default) adapts the window to the
                            guest's pace, 0 to 64us, as QEMU's I/O threads do theirs (0 to 32us);
                            DURATION: always that long (e.g. 50us, up to 1s); 0: never poll
  --dax                     offer a DAX window (also -o dax): needs a front-end speaking vhost-user
                            SHMEM (GET_SHMEM_CONFIG, SHMEM_MAP/UNMAP); off by default
  --cache-size SIZE         DAX window size, a multiple of 2M (default 1G; e.g. 512M, 4G)
  --keep-listening          accept a new front-end after one disconnects
  --inode-file-handles MODE prefer (default, as virtiofsd): inodes held as file handles, their
                            O_PATH fds in a bounded cache; mandatory: fail if handles do not
                            work (needs CAP_DAC_READ_SEARCH); never: one open fd per inode
  --inode-fd-cache N        unused inode fds kept open with file handles (default 0: a quarter
                            of RLIMIT_NOFILE, at most 8192)
  --max-open-per-uid N      files, directories, lock owners and POSIX lock waits one guest uid
                            may hold (EMFILE, ENOLCK past it; uid 0 not counted): fairness among the
                            guest's users, not a security boundary, since the guest's kernel
                            names the uid and a guest may claim any; 0: automatic (as fastfsd
                            mount's, from RLIMIT_NOFILE); -1 (default): no limit
  --sandbox auto|namespace|chroot|none  confinement after the socket listens: namespace: serve
                            from new mount, pid and network namespaces whose root is DIR (root, a
                            CGO_ENABLED=0 build, Linux 6.13+); chroot: serve from a chroot into DIR
                            in the host's namespaces (one plain DIR; same build and kernel);
                            none: no namespace or chroot; auto (default): namespace where it can,
                            else none, and says why. With each, the capability drop,
                            no_new_privs, Landlock and the filter apply
  --seccomp kill|log|trap|none  action on a system call outside the allow-list (default kill;
                            log: allow and audit-log it; trap: SIGSYS, stack trace, exit)
  --modcaps +CAP:-CAP…      change the kept capabilities (default chown, dac_override,
                            dac_read_search, fowner, fsetid, setgid, setuid, setfcap; mknod
                            too with --allow-devices)
  --log-level LEVEL         error, warn, info (default), debug
  --metrics ADDR            serve per-opcode requests, errors by errno, bytes, service-time histograms, per-queue load and Go/process metrics at http://ADDR/metrics (Prometheus text, OpenMetrics if asked)
  --pprof ADDR              serve net/http/pprof at http://ADDR/debug/pprof/
  --print-capabilities      print the vhost-user back-end capabilities (JSON) and exit
  -o OPT[,OPT…]             virtiofsd options: source, cache, xattr, no_xattr, writeback,
                            no_writeback, posix_lock, no_posix_lock, flock, no_flock,
                            killpriv_v2, no_killpriv_v2, log_level, sandbox, modcaps, debug,
                            xattrmap, readdirplus, no_readdirplus, allow_direct_io,
                            no_allow_direct_io, posix_acl, no_posix_acl, security_label,
                            no_security_label, dax
  -d                        debug logging (as -o debug)

Every virtiofsd flag fastfsd does not implement is refused by name; see
docs/virtiofsd-flags.md for the whole table.
`

// capabilities is what --print-capabilities prints: the vhost-user back-end
// description libvirt reads (docs/interop/vhost-user.json in QEMU). Same as
// the C virtiofsd: no migration, no separate-options.
const capabilities = "{\n  \"type\": \"fs\"\n}\n"

type virtiofsConfig struct {
	socketPath    string
	fd            int
	socketGroup   string
	dir           string   // the one shared directory (a plain --shared-dir DIR), else ""
	shares        shareSet // every --shared-dir / -o source (shares.go)
	control       string   // --control-socket
	shareRoot     string   // --share-root
	tag           string
	cache         passthrough.CacheMode
	queues        int
	xattr         bool
	writeback     bool
	locks         bool
	noKillpriv    bool
	cpus          []int
	cpusAuto      bool // --cpus auto asked for: a topology that cannot be read is an error
	cpusNone      bool // --cpus none: queue workers unpinned
	helpers       int
	busyPoll      time.Duration
	adaptivePoll  time.Duration // --busy-poll auto (the default)
	dax           bool          // --dax, -o dax (virtiofs_dax.go)
	cacheSize     uint64        // --cache-size; 0: fastfs.DefaultDAXWindow
	keep          bool
	fileHandles   passthrough.FileHandleMode // --inode-file-handles (inodes.go)
	fdCache       int                        // --inode-fd-cache
	maxOpen       int                        // --max-open-per-uid; -1 (default): none, 0: automatic
	level         slog.Level
	printCaps     bool
	help          bool
	version       bool
	policy        fsPolicy     // --xattrmap, --translate-uid/gid, --uid-map/--gid-map, --posix-acl
	readOnly      bool         // --readonly
	allowDevices  bool         // --allow-devices
	securityLabel bool         // --security-label, -o security_label
	directIO      bool         // --allow-direct-io
	noReaddirplus bool         // --no-readdirplus
	syslog        bool         // --syslog
	rlimitNofile  uint64       // --rlimit-nofile; 0: unchanged
	noops         []string     // no-op flags given, with why (logged at debug level)
	observe       observeFlags // --metrics, --pprof
	sandbox       sandboxFlags // --sandbox, --seccomp, --modcaps (sandbox.go)
}

// noopFlags are virtiofsd flags asking for what fastfsd always does; the
// value says why (logged at debug level, and in docs/virtiofsd-flags.md).
var noopFlags = map[string]string{
	"f":                     "fastfsd always runs in the foreground",
	"foreground":            "fastfsd always runs in the foreground",
	"killpriv-v2":           "HANDLE_KILLPRIV_V2 is offered by default (--no-killpriv-v2 withholds it)",
	"readdirplus":           "READDIRPLUS is on by default (--no-readdirplus turns it off)",
	"allow-mmap":            "DIRECT_IO_ALLOW_MMAP is always offered: files opened with direct I/O (cache=never) can be mmap'd",
	"preserve-noatime":      "O_NOATIME is always passed through: fastfsd keeps CAP_FOWNER, so it cannot fail with EPERM as in virtiofsd",
	"no-announce-submounts": "submounts are not announced (the default)",
}

const noMigration = "not implemented: fastfsd does not support vhost-user migration (--print-capabilities offers none)"

// refusedFlags are virtiofsd flags fastfsd does not implement, with why.
// Every other virtiofsd flag works or is a no-op (noopFlags);
// docs/virtiofsd-flags.md lists them all.
var refusedFlags = map[string]string{
	"daemonize":                "fastfsd does not daemonize itself; run it under your service manager (it stays in the foreground)",
	"announce-submounts":       "not implemented: fastfsd reports host inode numbers without a device number per submount; export one filesystem per daemon",
	"watch":                    "not on this door: Linux's virtio-fs driver does not negotiate the notification queue (VIRTIO_FS_F_NOTIFICATION; its feature table is empty), so the host cannot invalidate what a guest caches; use --cache=auto (1 s) or never for a directory the host changes (fastfsd mount --watch serves this host's kernel)",
	"migration-mode":           noMigration,
	"migration-on-error":       noMigration,
	"migration-verify-handles": noMigration,
	"migration-confirm-paths":  noMigration,
}

// refusedOpts are -o options fastfsd does not implement.
var refusedOpts = map[string]string{
	"timeout":            "not implemented: cache timeouts follow --cache (auto 1 s, always 1 day, never 0)",
	"max_idle_threads":   "not implemented: helpers per queue are set with --thread-pool-size",
	"allow_root":         "not applicable: a VMM, not local users, is the only client of a vhost-user device",
	"announce_submounts": refusedFlags["announce-submounts"],
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "error", "err", "off":
		return slog.LevelError, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "debug", "trace":
		return slog.LevelDebug, nil
	}
	return 0, fmt.Errorf("log level %q: want error, warn, info or debug", s)
}

// parseVirtiofsArgs parses the virtiofsd-compatible command line. Warnings
// name settings that were adjusted (--cache-size without --dax, --writeback
// with cache=never).
func parseVirtiofsArgs(args []string) (*virtiofsConfig, []string, error) {
	c := &virtiofsConfig{fd: -1, tag: "fastfs", xattr: true, queues: min(max(runtime.NumCPU(), 1), 16), level: slog.LevelInfo, fileHandles: passthrough.FileHandlesPrefer, maxOpen: -1, adaptivePoll: fastfs.DefaultAdaptivePoll,
		sandbox: sandboxFlags{sandbox: "auto", seccomp: "kill"}}
	var warns []string
	applyOpt := func(o string) error {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "source":
			if err := c.shares.add(v); err != nil {
				return fmt.Errorf("-o source: %w", err)
			}
		case "cache":
			m, err := passthrough.ParseCacheMode(v)
			if err != nil {
				return fmt.Errorf("-o cache: %w", err)
			}
			c.cache = m
		case "xattr":
			c.xattr = true
		case "no_xattr":
			c.xattr = false
		case "writeback":
			c.writeback = true
		case "no_writeback":
			c.writeback = false
		case "posix_lock", "flock":
			c.locks = true
		case "no_posix_lock", "no_flock":
			c.locks = false
		case "killpriv_v2":
			c.noKillpriv = false
		case "no_killpriv_v2":
			c.noKillpriv = true
		case "log_level":
			l, err := parseLevel(v)
			if err != nil {
				return fmt.Errorf("-o %w", err)
			}
			c.level = l
		case "debug":
			c.level = slog.LevelDebug
		case "dax":
			c.dax = true
		case "sandbox":
			c.sandbox.sandbox = v
		case "modcaps":
			c.sandbox.modcaps = v
		case "xattrmap":
			if err := c.policy.setXattrmap(v); err != nil {
				return fmt.Errorf("-o xattrmap: %w", err)
			}
		case "readdirplus":
			c.noReaddirplus = false
		case "no_readdirplus":
			c.noReaddirplus = true
		case "allow_direct_io":
			c.directIO = true
		case "no_allow_direct_io":
			c.directIO = false
		case "posix_acl":
			c.policy.posixACL, c.xattr = true, true
		case "no_posix_acl":
			c.policy.posixACL = false
		case "security_label":
			c.securityLabel = true
		case "no_security_label":
			c.securityLabel = false
		default:
			if why, ok := refusedOpts[k]; ok {
				return fmt.Errorf("-o %s: %s", o, why)
			}
			return fmt.Errorf("-o %s: unknown option (see fastfsd virtiofs --help)", o)
		}
		return nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if i+1 < len(args) {
				return nil, nil, fmt.Errorf("unexpected argument %q", args[i+1])
			}
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			return nil, nil, fmt.Errorf("unexpected argument %q: flags only (the directory is --shared-dir DIR or -o source=DIR)", a)
		}
		name := strings.TrimLeft(a, "-")
		val, hasVal := "", false
		if k, v, ok := strings.Cut(name, "="); ok {
			name, val, hasVal = k, v, true
		}
		// value fetches the flag's argument: after '=' or the next arg.
		value := func() (string, error) {
			if hasVal {
				return val, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("%s needs a value", a)
			}
			i++
			return args[i], nil
		}
		noValue := func() error {
			if hasVal {
				return fmt.Errorf("%s takes no value", a)
			}
			return nil
		}
		var err error
		var v string
		switch name {
		case "h", "help":
			c.help = true
		case "print-capabilities":
			err = noValue()
			c.printCaps = true
		case "socket-path":
			c.socketPath, err = value()
		case "dax":
			err = noValue()
			c.dax = true
		case "cache-size":
			if v, err = value(); err == nil {
				c.cacheSize, err = parseCacheSize(v)
			}
		case "fd":
			if v, err = value(); err == nil {
				c.fd, err = strconv.Atoi(v)
				if err != nil || c.fd < 0 {
					err = fmt.Errorf("--fd %q: want a file descriptor number", v)
				}
			}
		case "socket-group":
			c.socketGroup, err = value()
		case "inode-file-handles":
			if v, err = value(); err == nil {
				c.fileHandles, err = parseFileHandles(v)
			}
		case "inode-fd-cache":
			if v, err = value(); err == nil {
				c.fdCache, err = parseFdCache(v)
			}
		case "max-open-per-uid":
			if v, err = value(); err == nil {
				c.maxOpen, err = parseMaxOpen(v)
			}
		case "metrics":
			c.observe.metrics, err = value()
		case "pprof":
			c.observe.pprof, err = value()
		case "shared-dir", "source":
			if v, err = value(); err == nil {
				err = c.shares.add(v)
			}
		case "control-socket":
			c.control, err = value()
		case "share-root":
			c.shareRoot, err = value()
		case "tag":
			if c.tag, err = value(); err == nil && (c.tag == "" || len(c.tag) > fastfs.MaxTagSize) {
				err = fmt.Errorf("--tag %q: want 1 to %d bytes", c.tag, fastfs.MaxTagSize)
			}
		case "cache":
			if v, err = value(); err == nil {
				c.cache, err = passthrough.ParseCacheMode(v)
				if err != nil {
					err = fmt.Errorf("--cache: %w", err)
				}
			}
		case "num-request-queues":
			if v, err = value(); err == nil {
				c.queues, err = strconv.Atoi(v)
				if err != nil || c.queues < 1 || c.queues > 254 {
					err = fmt.Errorf("--num-request-queues %q: want 1 to 254", v)
				}
			}
		case "thread-pool-size":
			if v, err = value(); err == nil {
				c.helpers, err = strconv.Atoi(v)
				if err != nil || c.helpers < 0 || c.helpers > 1024 {
					err = fmt.Errorf("--thread-pool-size %q: want 0 to 1024", v)
				}
			}
		case "xattr":
			err = noValue()
			c.xattr = true
		case "no-xattr":
			err = noValue()
			c.xattr = false
		case "writeback":
			err = noValue()
			c.writeback = true
		case "posix-lock":
			err = noValue()
			c.locks = true
		case "no-killpriv-v2":
			err = noValue()
			c.noKillpriv = true
		case "cpus":
			c.cpus, c.cpusAuto, c.cpusNone = nil, false, false
			if v, err = value(); err == nil && v == "auto" {
				c.cpusAuto = true
			} else if err == nil && v == "none" {
				c.cpusNone = true
			} else if err == nil {
				for _, f := range strings.Split(v, ",") {
					n, e := strconv.Atoi(strings.TrimSpace(f))
					if e != nil || n < 0 {
						err = fmt.Errorf("--cpus %q: want a comma-separated list of CPU numbers", v)
						break
					}
					c.cpus = append(c.cpus, n)
				}
			}
		case "busy-poll":
			if v, err = value(); err == nil {
				c.busyPoll, c.adaptivePoll = 0, fastfs.DefaultAdaptivePoll
				if v != "auto" {
					c.adaptivePoll = 0
					c.busyPoll, err = time.ParseDuration(v)
					if err != nil || c.busyPoll < 0 || c.busyPoll > time.Second {
						err = fmt.Errorf("--busy-poll %q: want auto, 0 or a duration up to 1s, e.g. 50us", v)
					}
				}
			}
		case "keep-listening":
			err = noValue()
			c.keep = true
		case "sandbox":
			c.sandbox.sandbox, err = value()
		case "seccomp":
			c.sandbox.seccomp, err = value()
		case "modcaps":
			c.sandbox.modcaps, err = value()
		case "log-level":
			if v, err = value(); err == nil {
				c.level, err = parseLevel(v)
			}
		case "d":
			c.level = slog.LevelDebug
		case "o":
			if v, err = value(); err == nil {
				for _, o := range strings.Split(v, ",") {
					if o == "" {
						continue
					}
					if err = applyOpt(o); err != nil {
						break
					}
				}
			}
		case "xattrmap":
			if v, err = value(); err == nil {
				err = c.policy.setXattrmap(v)
			}
		case "translate-uid", "translate-gid":
			if v, err = value(); err == nil {
				err = c.policy.addTranslate(name[len("translate-"):], v)
			}
		case "uid-map", "gid-map":
			if v, err = value(); err == nil {
				err = c.policy.addNamespaceMap(name[:3], v)
			}
		case "readonly":
			err = noValue()
			c.readOnly = true
		case "allow-devices":
			err = noValue()
			c.allowDevices = true
		case "security-label":
			err = noValue()
			c.securityLabel = true
		case "posix-acl":
			err = noValue()
			c.policy.posixACL, c.xattr = true, true // implies --xattr, as in virtiofsd
		case "no-readdirplus":
			err = noValue()
			c.noReaddirplus = true
		case "allow-direct-io":
			err = noValue()
			c.directIO = true
		case "syslog":
			err = noValue()
			c.syslog = true
		case "rlimit-nofile":
			if v, err = value(); err == nil {
				c.rlimitNofile, err = strconv.ParseUint(v, 10, 64)
				if err != nil {
					err = fmt.Errorf("--rlimit-nofile %q: want a number of file descriptors (0: leave the limit)", v)
				}
			}
		case "V", "version":
			err = noValue()
			c.version = true
		default:
			if why, ok := noopFlags[name]; ok {
				err = noValue()
				c.noops = append(c.noops, a+": "+why)
				break
			}
			if why, ok := refusedFlags[name]; ok {
				return nil, nil, fmt.Errorf("%s: %s", a, why)
			}
			return nil, nil, fmt.Errorf("unknown flag %s (see fastfsd virtiofs --help and docs/virtiofsd-flags.md)", a)
		}
		if err != nil {
			return nil, nil, err
		}
	}
	if c.help || c.printCaps || c.version {
		return c, warns, nil
	}
	if err := c.policy.check(); err != nil {
		return nil, nil, err
	}
	if c.securityLabel && !c.xattr {
		return nil, nil, errors.New("--security-label needs extended attributes (labels are stored as xattrs): drop --no-xattr")
	}
	if c.policy.posixACL && !c.xattr {
		return nil, nil, errors.New("--posix-acl needs extended attributes (ACLs are system.posix_acl_* xattrs): drop --no-xattr")
	}
	if err := c.shares.check(c.control != ""); err != nil {
		return nil, nil, err
	}
	if c.shares.plain(c.control != "") {
		c.dir = c.shares.specs[0].dir
	}
	if c.control != "" && (c.sandbox.sandbox == "namespace" || c.sandbox.sandbox == "chroot") {
		// The sandbox's root holds the shares it started with; a
		// directory added at run time could not be reached from it.
		return nil, nil, fmt.Errorf("--control-socket with --sandbox=%s: a directory added at run time would be outside the sandbox's root; pass --sandbox=none (the capability drop, no_new_privs, Landlock on the shares' directories and --share-root, and the seccomp filter still apply)", c.sandbox.sandbox)
	}
	if c.dir == "" && c.sandbox.sandbox == "chroot" {
		return nil, nil, c.shares.chrootRefused()
	}
	if (c.control == "") != (c.shareRoot == "") {
		return nil, nil, errors.New("--control-socket PATH and --share-root DIR go together: shares added at run time must lie under --share-root, the one place besides the initial shares that Landlock lets the daemon open")
	}
	if (c.socketPath == "") == (c.fd < 0) {
		return nil, nil, errors.New("pass exactly one of --socket-path PATH and --fd N: where the VMM connects")
	}
	if c.cacheSize != 0 && !c.dax {
		warns = append(warns, "--cache-size without --dax: no DAX window is offered")
	}
	if c.writeback && c.cache == passthrough.CacheNever {
		warns = append(warns, "--writeback with cache=never: write-back turned off")
		c.writeback = false
	}
	return c, warns, nil
}

func runVirtiofs(args []string) error {
	c, warns, err := parseVirtiofsArgs(args)
	if err != nil {
		return err
	}
	if c.help {
		fmt.Fprint(os.Stderr, strings.Replace(virtiofsUsage, "{{XATTRMAP}}", indentRules(xattrmap.MustParse(xattrmap.Default).String(), strings.Repeat(" ", 28)), 1))
		return nil
	}
	if c.printCaps {
		_, err := io.WriteString(os.Stdout, capabilities)
		return err
	}
	if c.version {
		_, err := fmt.Fprintf(os.Stdout, "fastfsd virtiofs (virtiofsd-compatible) %s\n", buildVersion())
		return err
	}
	var logOut io.Writer = os.Stderr
	if c.syslog {
		w, err := syslog.New(syslog.LOG_DAEMON|syslog.LOG_INFO, "fastfsd")
		if err != nil {
			return fmt.Errorf("--syslog: %w; is a syslog daemon listening on /dev/log?", err)
		}
		defer w.Close()
		logOut = w
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: c.level}))
	for _, w := range warns {
		log.Warn("virtiofs: " + w)
	}
	for _, n := range c.noops {
		log.Debug("virtiofs: " + n)
	}
	if c.rlimitNofile != 0 {
		lim := syscall.Rlimit{Cur: c.rlimitNofile, Max: c.rlimitNofile}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("--rlimit-nofile %d: %w (above the hard limit needs CAP_SYS_RESOURCE; see /proc/sys/fs/nr_open)", c.rlimitNofile, err)
		}
	}
	if c.control != "" && c.sandbox.sandbox == "auto" {
		c.sandbox.sandbox, c.sandbox.autoNone = "none", "--control-socket (a directory added at run time would be out of the namespace sandbox's reach)"
	}
	landlockDirs := c.shares.dirs()
	if c.shareRoot != "" {
		landlockDirs = append(landlockDirs, c.shareRoot)
	}
	c.sandbox.allowDevices = c.allowDevices
	sb, err := c.sandbox.options(sandbox.Virtiofs, landlockDirs...)
	if err != nil {
		return err
	}
	socketDir(&sb, c.socketPath)
	socketDir(&sb, c.control)
	if c.cpus == nil && !c.cpusNone {
		// Pinned by default, as the /dev/fuse workers are: hiprio and
		// each request queue get a CPU of the plan.
		topo, err := dataplane.ReadTopology()
		switch {
		case err != nil && c.cpusAuto:
			return fmt.Errorf("--cpus auto: %w; pass a CPU list, or --cpus none", err)
		case err != nil:
			log.Warn("virtiofs: queue workers unpinned: CPU topology unreadable", "err", err)
		default:
			c.cpus = topo.Plan(1 + c.queues)
		}
	}
	var set *stats.Set
	if c.observe.enabled() {
		set = stats.Default.NewSet("virtiofs", func(op uint32) string { return abi.Opcode(op).String() })
	}
	// Catch SIGTERM/SIGINT before the socket exists, so a signal as soon as
	// it appears still gets the clean stop (and the socket removed).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sig)
	// ln is the listener the VMM connects to: inherited (--fd, whose
	// permissions are the caller's business; or from a namespace
	// sandbox's supervisor) or created born private.
	var ln interface {
		fastfs.UnixListener
		File() (*os.File, error)
	}
	logf := func(f string, a ...any) { log.Info(fmt.Sprintf(f, a...)) }
	fds, child := sandboxChild()
	switch {
	case child:
		// The namespace sandbox's child (namespace.go): the supervisor
		// set the transport up. It exits if the supervisor dies.
		if _, err := supervisorLink(fds); err != nil {
			return err
		}
		if err := c.observe.inherit(fds); err != nil {
			return err
		}
		fd, ferr := inheritedFd(fds, "listen")
		if ferr != nil {
			return ferr
		}
		ln, err = vhostuser.FileListener(fd)
	case c.fd >= 0:
		if c.socketGroup != "" {
			return errors.New("--socket-group applies to a socket fastfsd creates (--socket-path); with --fd the socket's owner and mode are set by whoever created it")
		}
		if err := c.observe.listen(); err != nil {
			return err
		}
		ln, err = vhostuser.FileListener(c.fd)
	default:
		gid, gerr := lookupSocketGroup(c.socketGroup)
		if gerr != nil {
			return gerr
		}
		if err := c.observe.listen(); err != nil {
			return err
		}
		ln, err = vhostuser.Listen(c.socketPath, gid)
	}
	if err != nil {
		return err
	}
	defer ln.Close()
	// The control socket, born private like the vhost-user one, before
	// confinement (Landlock then forbids making files).
	var ctlLn *sockfile.Listener
	if c.control != "" {
		if ctlLn, err = listenControl(c.control); err != nil {
			return err
		}
		defer ctlLn.Close()
	}
	if c.sandbox.supervised() && !child {
		f, err := ln.File()
		if err != nil {
			return fmt.Errorf("--sandbox=%s: %w", c.sandbox.sandbox, err)
		}
		return superviseNamespace("listen", f, &c.observe, logf, supervision{mode: c.sandbox.sandbox})
	}
	c.observe.serve()
	procFd := 0
	if child {
		if procFd, err = c.sandbox.enterChildRoot(c.dir, c.shares.specs, &sb); err != nil {
			return err
		}
	} else {
		c.sandbox.logAuto(logf)
	}
	if err := confine(sb, logf); err != nil {
		return err
	}
	// Opened after confine: passthrough records the capability set its
	// identity switches restore, which must be the confined one.
	fsOpts := passthrough.Options{Cache: c.cache, Xattr: c.xattr, ReadOnly: c.readOnly, DirectIO: c.directIO,
		AllowDevices: c.allowDevices, FileHandles: c.fileHandles, FdCache: c.fdCache, ProcFd: procFd}
	// One budget for every share, those the control socket adds too
	// (counted as one for the automatic size).
	if note := openBudget(&fsOpts, c.maxOpen, max(len(c.shares.specs), 1)); c.maxOpen != -1 {
		log.Info("virtiofs: " + note)
	}
	mk := func(dir string) (fs.FileSystem, error) {
		pfs, err := passthrough.New(dir, fsOpts)
		if err != nil {
			return nil, fmt.Errorf("%w; check --shared-dir", err)
		}
		if n := fileHandlesNote(pfs, c.fileHandles); n != "" {
			log.Info("virtiofs: " + n)
		}
		return pfs, nil
	}
	inner, v, closeShares, err := c.shares.build(c.control != "", mk)
	if err != nil {
		return err
	}
	defer closeShares()
	fsys, err := c.policy.wrap(inner, c.xattr)
	if err != nil {
		return err
	}
	if ctlLn != nil {
		ctl, err := newControlServer(v, mk, log, c.shareRoot)
		if err != nil {
			return err
		}
		go ctl.Serve(ctlLn.UnixListener)
		log.Info("virtiofs: control socket listening", "path", c.control, "share-root", ctl.root)
	}
	// SIGTERM/SIGINT: stop accepting and drop the connection; serving
	// stops every ring and returns nil.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case s := <-sig:
			log.Info("virtiofs: stopping", "signal", s.String())
			cancel()
		case <-ctx.Done():
		}
	}()
	where := c.socketPath
	if where == "" {
		where = "fd " + strconv.Itoa(c.fd)
	}
	log.Info("virtiofs: waiting for the front-end", "socket", where, "shared-dir", c.shares.String(), "request-queues", c.queues)
	return fastfs.ServeVirtioFSListener(ctx, fsys, ln, &fastfs.VirtioFSOptions{
		Tag: c.tag, RequestQueues: c.queues, CPUs: c.cpus, BusyPoll: c.busyPoll, AdaptivePoll: c.adaptivePoll, Helpers: c.helpers,
		DAXWindow: c.daxWindow(), OneSession: !c.keep, KeepAfterError: c.keep, Stats: set, Log: log,
		Fuse: fuse.Options{Writeback: c.writeback, Locks: c.locks, NoKillPrivV2: c.noKillpriv,
			PosixACL: c.policy.posixACL, NoReaddirplus: c.noReaddirplus, SecurityLabel: c.securityLabel},
	})
}

// lookupSocketGroup resolves --socket-group (a name or a number) to a gid,
// or -1 when none was given (the socket is then 0600).
func lookupSocketGroup(group string) (int, error) {
	if group == "" {
		return -1, nil
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		if n, nerr := strconv.Atoi(group); nerr == nil && n >= 0 {
			return n, nil
		}
		return -1, fmt.Errorf("--socket-group %s: %w; give an existing group name or a numeric gid", group, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("--socket-group %s: gid %q is not a number", group, g.Gid)
	}
	return gid, nil
}
