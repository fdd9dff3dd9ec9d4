package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/vfs"
	"github.com/fastfsd/fastfsd/internal/sockfile"
)

// Several shares under one mount or device (fs/vfs): --shared-dir
// NAME=DIR, repeatable, serves each DIR as the directory NAME of a
// read-only pseudo root; a plain --shared-dir DIR serves DIR itself, as
// before. fastfsd virtiofs adds and removes shares under a running guest
// through --control-socket, for directories under --share-root.

// shareSpec is one --shared-dir value.
type shareSpec struct {
	name string // "" for a plain DIR
	dir  string
}

// parseShareSpec reads DIR or NAME=DIR, a value of the flag named flag
// (for errors). A value whose part before the first '=' holds a '/' (an
// absolute or relative path with '=' in it) is a plain DIR; write ./a=b
// for a relative directory named a=b.
func parseShareSpec(flag, v string) (shareSpec, error) {
	if v == "" {
		return shareSpec{}, fmt.Errorf("%s: empty; give DIR or NAME=DIR", flag)
	}
	name, dir, ok := strings.Cut(v, "=")
	if !ok || strings.Contains(name, "/") {
		return shareSpec{dir: v}, nil
	}
	if err := vfs.CheckName(name); err != nil {
		return shareSpec{}, fmt.Errorf("%s %s: %w", flag, v, err)
	}
	if dir == "" {
		return shareSpec{}, fmt.Errorf("%s %s: no directory after '='", flag, v)
	}
	return shareSpec{name: name, dir: dir}, nil
}

// shareSet is a door's shares: one plain directory, or named ones served
// through a VFS.
type shareSet struct {
	specs []shareSpec
	// flag names the door's flag in errors: "--shared-dir" if "".
	flag string
}

func (s *shareSet) flagName() string {
	if s.flag == "" {
		return "--shared-dir"
	}
	return s.flag
}

func (s *shareSet) add(v string) error {
	sp, err := parseShareSpec(s.flagName(), v)
	if err != nil {
		return err
	}
	s.specs = append(s.specs, sp)
	return nil
}

// plain reports whether the door serves one directory as its root (no
// VFS): a single --shared-dir DIR and no control socket.
func (s *shareSet) plain(control bool) bool {
	return !control && len(s.specs) == 1 && s.specs[0].name == ""
}

// check validates the combination: a plain DIR cannot sit beside named
// shares, and a name appears once.
func (s *shareSet) check(control bool) error {
	if len(s.specs) == 0 && !control {
		return errors.New("no shared directory: pass --shared-dir DIR (or -o source=DIR), or --shared-dir NAME=DIR for each share")
	}
	if s.plain(control) {
		return nil
	}
	seen := map[string]bool{}
	f := s.flagName()
	for _, sp := range s.specs {
		if sp.name == "" {
			if control {
				return fmt.Errorf("%s %s: with --control-socket every share needs a name: %s NAME=%s", f, sp.dir, f, sp.dir)
			}
			return fmt.Errorf("%s %s: with several shares each needs a name: %s NAME=%s", f, sp.dir, f, sp.dir)
		}
		if seen[sp.name] {
			return fmt.Errorf("%s %s=…: the name %q is given twice", f, sp.name, sp.name)
		}
		seen[sp.name] = true
	}
	return nil
}

// statDirs checks that every share's directory exists and is one.
func (s *shareSet) statDirs() error {
	for _, sp := range s.specs {
		if st, err := os.Stat(sp.dir); err != nil || !st.IsDir() {
			if err == nil {
				err = errors.New("not a directory")
			}
			return fmt.Errorf("%s %s: %v; give an existing directory", s.flagName(), sp.dir, err)
		}
	}
	return nil
}

// chrootRefused is the error of --sandbox=chroot with named shares: the
// chroot child's root is the one shared directory.
func (s *shareSet) chrootRefused() error {
	return fmt.Errorf("--sandbox=chroot serves one shared directory as its root (it makes no mount namespace to gather several in): with several %s NAME=DIR pass --sandbox=namespace or none", s.flagName())
}

// dirs lists the shares' directories (for Landlock and logs).
func (s *shareSet) dirs() []string {
	d := make([]string, len(s.specs))
	for i, sp := range s.specs {
		d[i] = sp.dir
	}
	return d
}

// String is for logs: DIR, or NAME=DIR,….
func (s *shareSet) String() string {
	var b strings.Builder
	for i, sp := range s.specs {
		if i > 0 {
			b.WriteByte(',')
		}
		if sp.name != "" {
			b.WriteString(sp.name + "=")
		}
		b.WriteString(sp.dir)
	}
	return b.String()
}

// backendFunc makes the backend of one share directory (passthrough with
// the door's options). The caller owns the result.
type backendFunc func(dir string) (fs.FileSystem, error)

// build returns the filesystem the door serves: the one backend for a
// plain DIR, else a VFS with every named share mounted (returned too, for
// the control socket). close releases whatever build made.
func (s *shareSet) build(control bool, mk backendFunc) (fsys fs.FileSystem, v *vfs.VFS, close func(), err error) {
	if s.plain(control) {
		b, err := mk(s.specs[0].dir)
		if err != nil {
			return nil, nil, nil, err
		}
		return b, nil, func() { closeBackend(b) }, nil
	}
	v = vfs.New(vfs.Options{})
	for _, sp := range s.specs {
		b, err := mk(sp.dir)
		if err != nil {
			unmountAll(v)
			return nil, nil, nil, fmt.Errorf("share %s: %w", sp.name, err)
		}
		if err := v.Mount(sp.name, b); err != nil {
			closeBackend(b)
			unmountAll(v)
			return nil, nil, nil, err
		}
	}
	return v, v, func() { unmountAll(v) }, nil
}

func closeBackend(b fs.FileSystem) {
	if c, ok := b.(interface{ Close() error }); ok {
		c.Close()
	}
}

// unmountAll unmounts every share of v, waiting at most a few seconds.
func unmountAll(v *vfs.VFS) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range v.Shares() {
		v.Unmount(ctx, s.Name)
	}
}

// The control socket: one JSON object per line each way.
//
//	{"op":"add","name":"NAME","dir":"/abs/dir"}  → {"ok":true}
//	{"op":"remove","name":"NAME"}               → {"ok":true}
//	{"op":"list"}                               → {"ok":true,"shares":[{"name":…,"lookups":…}]}
//	anything wrong                              → {"ok":false,"error":"…"}
//
// It is created like the vhost-user socket (internal/sockfile: mode 0600,
// no window in which another user can connect) and a peer whose uid
// (SO_PEERCRED) is not the daemon's is dropped unanswered.

// Control protocol bounds.
const (
	controlMaxLine    = 8 << 10          // bytes in one request line
	controlIdle       = 30 * time.Second // a connection silent this long is closed
	controlMaxPath    = 4096             // PATH_MAX
	controlRemoveWait = 5 * time.Second  // how long remove waits for requests inside the share
)

type controlRequest struct {
	Op   string `json:"op"`
	Name string `json:"name,omitempty"`
	Dir  string `json:"dir,omitempty"`
}

type controlShare struct {
	Name    string `json:"name"`
	Lookups int64  `json:"lookups"`
}

type controlReply struct {
	OK     bool           `json:"ok"`
	Error  string         `json:"error,omitempty"`
	Shares []controlShare `json:"shares,omitempty"`
}

// decodeControl parses and validates one request line (without its
// newline). Every field is checked here: the handlers trust the result.
func decodeControl(line []byte) (controlRequest, error) {
	var r controlRequest
	if len(line) > controlMaxLine {
		return r, fmt.Errorf("request longer than %d bytes", controlMaxLine)
	}
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	if err := d.Decode(&r); err != nil {
		return controlRequest{}, fmt.Errorf("bad request: %v; want one JSON object per line", err)
	}
	if d.More() {
		return controlRequest{}, errors.New("bad request: more than one JSON value on the line")
	}
	switch r.Op {
	case "add":
		if err := vfs.CheckName(r.Name); err != nil {
			return controlRequest{}, err
		}
		if r.Dir == "" || !filepath.IsAbs(r.Dir) || len(r.Dir) > controlMaxPath || strings.IndexByte(r.Dir, 0) >= 0 {
			return controlRequest{}, fmt.Errorf("add: dir %q: want an absolute path of at most %d bytes", r.Dir, controlMaxPath)
		}
	case "remove":
		if err := vfs.CheckName(r.Name); err != nil {
			return controlRequest{}, err
		}
		if r.Dir != "" {
			return controlRequest{}, errors.New("remove takes a name only")
		}
	case "list":
		if r.Name != "" || r.Dir != "" {
			return controlRequest{}, errors.New("list takes no arguments")
		}
	default:
		return controlRequest{}, fmt.Errorf("unknown op %q: want add, remove or list", r.Op)
	}
	return r, nil
}

// controlServer serves the control socket of a door's VFS.
type controlServer struct {
	v    *vfs.VFS
	mk   backendFunc
	log  *slog.Logger
	root string // --share-root, absolute, symlinks resolved
	// given is --share-root absolute as given (symlinks kept): a client
	// names directories through it.
	given string
	// rootFd is an O_PATH fd of root: added directories are resolved
	// beneath it (openat2 RESOLVE_BENEATH), so no symlink leads out.
	rootFd int
	mu     sync.Mutex // one request at a time
}

func newControlServer(v *vfs.VFS, mk backendFunc, log *slog.Logger, root string) (*controlServer, error) {
	given, err := filepath.Abs(root)
	abs := given
	if err == nil {
		abs, err = filepath.EvalSymlinks(given)
	}
	if err != nil {
		return nil, fmt.Errorf("--share-root %s: %w", root, err)
	}
	fd, err := unix.Open(abs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("--share-root %s: %w; give an existing directory", root, err)
	}
	return &controlServer{v: v, mk: mk, log: log, root: abs, given: given, rootFd: fd}, nil
}

// Serve accepts connections on ln until it is closed, one at a time.
func (c *controlServer) Serve(ln *net.UnixListener) {
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				c.log.Warn("control: accept", "err", err)
			}
			return
		}
		c.serveConn(conn)
	}
}

func (c *controlServer) serveConn(conn *net.UnixConn) {
	defer conn.Close()
	if uid, err := peerUid(conn); err != nil || uid != uint32(os.Geteuid()) {
		c.log.Warn("control: connection from another user dropped", "uid", uid, "err", err)
		return
	}
	rd := bufio.NewReaderSize(conn, controlMaxLine+1)
	enc := json.NewEncoder(conn)
	for {
		conn.SetDeadline(time.Now().Add(controlIdle))
		line, err := rd.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			enc.Encode(controlReply{Error: fmt.Sprintf("request longer than %d bytes", controlMaxLine)})
			return
		}
		if err != nil {
			return // EOF, idle or closed
		}
		rep := c.handle(bytes.TrimSpace(line))
		if err := enc.Encode(rep); err != nil {
			return
		}
	}
}

func peerUid(conn *net.UnixConn) (uint32, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, cerr
	}
	return cred.Uid, nil
}

func (c *controlServer) handle(line []byte) controlReply {
	r, err := decodeControl(line)
	if err != nil {
		return controlReply{Error: err.Error()}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch r.Op {
	case "add":
		err = c.add(r.Name, r.Dir)
	case "remove":
		ctx, cancel := context.WithTimeout(context.Background(), controlRemoveWait)
		err = c.v.Unmount(ctx, r.Name)
		cancel()
		if err == nil {
			c.log.Info("control: share removed", "name", r.Name)
		}
	case "list":
		rep := controlReply{OK: true}
		for _, s := range c.v.Shares() {
			rep.Shares = append(rep.Shares, controlShare{Name: s.Name, Lookups: s.Lookups})
		}
		return rep
	}
	if err != nil {
		c.log.Warn("control: "+r.Op+" failed", "name", r.Name, "err", err)
		return controlReply{Error: err.Error()}
	}
	return controlReply{OK: true}
}

// beneath returns dir relative to root, ok false if it is not under it.
func beneath(root, dir string) (string, bool) {
	rel, err := filepath.Rel(root, dir)
	return rel, err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

// add serves dir, which must lie under --share-root (named through the
// root's resolved path or as it was given), as share name.
func (c *controlServer) add(name, dir string) error {
	clean := filepath.Clean(dir)
	rel, ok := beneath(c.root, clean)
	if !ok {
		rel, ok = beneath(c.given, clean)
	}
	if !ok {
		return fmt.Errorf("add %s: %s is not under --share-root %s; only directories under it may be added at run time", name, dir, c.root)
	}
	// Resolve beneath the share root: a symlink on the way cannot lead
	// out, and the backend opens the very directory checked here.
	fd, err := unix.Openat2(c.rootFd, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err == unix.EXDEV {
		return fmt.Errorf("add %s: %s leads outside --share-root %s (through a symbolic link or a mount); give the real directory under it", name, dir, c.root)
	}
	if err != nil {
		return fmt.Errorf("add %s: open %s beneath --share-root %s: %w", name, dir, c.root, err)
	}
	defer unix.Close(fd)
	b, err := c.mk("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return fmt.Errorf("add %s: %s: %w", name, dir, err)
	}
	if err := c.v.Mount(name, b); err != nil {
		closeBackend(b)
		return err
	}
	c.log.Info("control: share added", "name", name, "dir", dir)
	return nil
}

// listenControl creates the control socket at path, born 0600.
func listenControl(path string) (*sockfile.Listener, error) {
	return sockfile.Listen(path, sockfile.Options{Mode: 0o600, What: "--control-socket"})
}

// The client: fastfsd share.

func init() {
	register(&command{
		name:    "share",
		summary: "add, remove or list the shares of a running fastfsd virtiofs (--control-socket)",
		run:     runShare,
	})
}

const shareUsage = `usage: fastfsd share --control-socket PATH add NAME DIR
       fastfsd share --control-socket PATH remove NAME
       fastfsd share --control-socket PATH list

Talks to the control socket of a running "fastfsd virtiofs
--control-socket PATH --share-root ROOT": add serves DIR (under ROOT) as
the directory NAME of the guest's mount; remove takes it away (the
guest's open files of it then fail with ESTALE); list prints the shares
and the lookup count the guest holds on each.

flags:
`

func runShare(args []string) error {
	fl := flag.NewFlagSet("share", flag.ContinueOnError)
	sock := fl.String("control-socket", "", "the daemon's --control-socket (required)")
	fl.Usage = func() { fmt.Fprint(os.Stderr, shareUsage); fl.PrintDefaults() }
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *sock == "" {
		return errors.New("--control-socket PATH is required")
	}
	var r controlRequest
	a := fl.Args()
	switch {
	case len(a) == 3 && a[0] == "add":
		dir, err := filepath.Abs(a[2])
		if err != nil {
			return err
		}
		r = controlRequest{Op: "add", Name: a[1], Dir: dir}
	case len(a) == 2 && a[0] == "remove":
		r = controlRequest{Op: "remove", Name: a[1]}
	case len(a) == 1 && a[0] == "list":
		r = controlRequest{Op: "list"}
	default:
		fl.Usage()
		return errors.New("want add NAME DIR, remove NAME or list")
	}
	rep, err := controlCall(*sock, r)
	if err != nil {
		return err
	}
	for _, s := range rep.Shares {
		fmt.Printf("%s\t%d\n", s.Name, s.Lookups)
	}
	return nil
}

// controlCall sends one request and returns the reply; a reply with an
// error is returned as that error.
func controlCall(sock string, r controlRequest) (controlReply, error) {
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return controlReply{}, fmt.Errorf("connect to %s: %w; is fastfsd virtiofs running with --control-socket %s (as this user)?", sock, err, sock)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(controlRemoveWait + 10*time.Second))
	if err := json.NewEncoder(conn).Encode(r); err != nil {
		return controlReply{}, err
	}
	var rep controlReply
	if err := json.NewDecoder(conn).Decode(&rep); err != nil {
		return controlReply{}, fmt.Errorf("%s: no reply: %w", sock, err)
	}
	if !rep.OK {
		return rep, fmt.Errorf("%s", rep.Error)
	}
	return rep, nil
}
