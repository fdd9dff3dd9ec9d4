// Package sockfile creates listening unix sockets that are born private:
// the socket file appears at its path already carrying its final owner,
// group and mode, so no other user ever has a moment in which it may
// connect.
//
// A plain bind(2) creates the socket file with mode 0777 &^ umask and a
// chmod afterwards leaves a window (a connect loop as another user wins it
// within a few daemon starts). Listen instead binds inside a fresh
// directory of mode 0700 made next to the target (so on the same file
// system), sets the socket's group and mode there, where nobody else can
// reach it, and then moves it into place with rename(2), which is atomic:
// the name refers either to the old entry or to the finished socket. The
// private directory is pinned by an O_PATH fd as soon as it is made (and
// checked to be this user's, mode 0700) and reached only through
// /proc/self/fd/N: in a directory other users may write without the sticky
// bit, they could otherwise swap in a world-writable one of their own and
// connect to the socket before its mode is set.
//
// Replacing a stale socket never follows a symbolic link and never clobbers
// something that is not a socket: the new socket is swapped in with
// renameat2(RENAME_EXCHANGE) and the entry swapped out is checked inside
// the private directory, where nobody else can change it; if it is not a
// socket, the swap is undone and Listen fails.
//
// The process umask plays no part: the modes are set explicitly.
package sockfile

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Options say who may connect.
type Options struct {
	// Mode is the socket file's permission bits: 0600 (only the daemon's
	// user) when zero. Bits beyond 0777 are refused.
	Mode os.FileMode
	// Gid, if SetGid, is the socket file's group (virtiofsd
	// --socket-group); Mode should then grant the group rw (0660).
	// Otherwise the group is the one bind(2) gave (the daemon's).
	Gid    int
	SetGid bool
	// What names the socket in errors ("--socket-path", "--listen").
	What string
}

// GroupOptions are the Options of a daemon's --socket-group flag: mode
// 0600, or 0660 owned by group gid when gid >= 0. what names the socket in
// errors.
func GroupOptions(what string, gid int) Options {
	if gid < 0 {
		return Options{Mode: 0o600, What: what}
	}
	return Options{Mode: 0o660, Gid: gid, SetGid: true, What: what}
}

// Listener is a listening unix socket whose file is removed by Close if it
// is still the one Listen created (a later daemon may have replaced it).
type Listener struct {
	*net.UnixListener
	path     string
	dev, ino uint64
}

// Close stops listening and removes the socket file if it is still ours.
func (l *Listener) Close() error {
	err := l.UnixListener.Close()
	var st unix.Stat_t
	if unix.Lstat(l.path, &st) == nil && st.Dev == l.dev && st.Ino == l.ino {
		unix.Unlink(l.path)
	}
	return err
}

// Addr is the socket's final path (not the private name it was bound at).
func (l *Listener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

// Path is the socket file's path as given to Listen.
func (l *Listener) Path() string { return l.path }

// Listen creates a listening unix socket at path with opts' mode and
// group, with no window in which anyone else can connect (see the package
// comment). A socket file left by a process that is gone is replaced; a
// live one (something accepts on it) or anything that is not a socket is
// an error naming opts.What.
func Listen(path string, opts Options) (*Listener, error) {
	what := opts.What
	if what == "" {
		what = "socket"
	}
	mode := opts.Mode
	if mode == 0 {
		mode = 0o600
	}
	if mode&^0o777 != 0 {
		return nil, fmt.Errorf("%s %s: mode %#o: only permission bits (0777) are allowed", what, path, mode)
	}
	if err := checkStale(path, what); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	// MkdirTemp makes the directory with mode 0700 &^ umask: never more
	// than 0700, so only this user (and root) can reach what is inside.
	realPriv, err := os.MkdirTemp(dir, ".sock-")
	if err != nil {
		return nil, fmt.Errorf("%s %s: make a private directory next to it: %w; the directory must be writable by fastfsd", what, path, err)
	}
	// Pin the directory just made and use it only through that fd
	// (/proc/self/fd/N): if dir is writable by someone else (not sticky),
	// they could rename it away and put their own in its place, and the
	// socket would be bound where they can connect before its mode is set.
	privFd, err := unix.Open(realPriv, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		os.Remove(realPriv)
		return nil, fmt.Errorf("%s %s: open the private directory %s: %w", what, path, realPriv, err)
	}
	defer unix.Close(privFd)
	var pst unix.Stat_t
	if err := unix.Fstat(privFd, &pst); err != nil || pst.Uid != uint32(os.Geteuid()) || pst.Mode&0o077 != 0 {
		return nil, fmt.Errorf("%s %s: the private directory %s was replaced before it could be used (is %s writable by other users? put the socket in a directory only fastfsd's user can write)", what, path, realPriv, dir)
	}
	if testHookPrivate != nil {
		testHookPrivate(realPriv)
	}
	priv := "/proc/self/fd/" + strconv.Itoa(privFd)
	keep := false // set if priv holds someone else's file (see place)
	defer func() {
		if keep {
			return
		}
		unix.Unlinkat(privFd, "s", 0)
		// Remove the directory by name only if the name is still ours.
		var st unix.Stat_t
		if unix.Lstat(realPriv, &st) == nil && st.Dev == pst.Dev && st.Ino == pst.Ino {
			unix.Rmdir(realPriv)
		}
	}()
	tmp := filepath.Join(priv, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	// The name Go would unlink on Close is the temporary one; Listener.Close
	// removes the final name instead.
	ln.SetUnlinkOnClose(false)
	if testHookBound != nil {
		testHookBound()
	}
	fail := func(err error) (*Listener, error) {
		ln.Close()
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	if opts.SetGid {
		if err := unix.Lchown(tmp, -1, opts.Gid); err != nil {
			return fail(fmt.Errorf("chown to group %d: %w", opts.Gid, err))
		}
	}
	// Fchmodat follows a final symlink, but tmp is ours in a directory
	// nobody else can write: it is the socket.
	if err := unix.Fchmodat(unix.AT_FDCWD, tmp, uint32(mode), 0); err != nil {
		return fail(fmt.Errorf("chmod %#o: %w", mode, err))
	}
	var st unix.Stat_t
	if err := unix.Lstat(tmp, &st); err != nil {
		return fail(err)
	}
	if err := place(tmp, path, realPriv, &keep); err != nil {
		return fail(err)
	}
	return &Listener{UnixListener: ln, path: path, dev: st.Dev, ino: st.Ino}, nil
}

// checkStale fails if path holds a live socket or something that is not a
// socket. What is left may be replaced by place.
func checkStale(path, what string) error {
	var st unix.Stat_t
	err := unix.Lstat(path, &st)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("%s %s: exists and is not a socket; remove it or choose another path", what, path)
	}
	// Only a socket reaches here (lstat: not a symlink to one). If it was
	// swapped for a symlink since, the dial may reach another socket and
	// fail the start; it cannot make place() clobber anything.
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("%s %s: another server is accepting on it; stop it or choose another path", what, path)
	}
	return nil
}

// Test hooks: after the private directory is made and pinned, and after
// the socket is bound in it.
var testHookPrivate func(priv string)
var testHookBound func()

// place moves the socket tmp (inside the private directory priv) to path.
// If path does not exist, a no-replace rename does it. If it exists (a
// stale socket, checked by checkStale — or whatever replaced it since),
// the two are exchanged atomically and what came out is examined inside
// priv: a socket is dropped; anything else is swapped back and refused.
// If that fails, *keep is set: priv then holds the foreign entry and must
// not be removed.
func place(tmp, path, priv string, keep *bool) error {
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// A file system without renameat2 flags: the stale entry was
		// checked to be a socket; rename(2) replaces it (never following a
		// symlink). A narrow race remains only on such file systems.
		return os.Rename(tmp, path)
	}
	if !errors.Is(err, unix.EEXIST) {
		return err
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_EXCHANGE); err != nil {
		return fmt.Errorf("replace the stale socket: %w", err)
	}
	// tmp now names what was at path.
	var st unix.Stat_t
	if err := unix.Lstat(tmp, &st); err != nil {
		*keep = true
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_EXCHANGE); err != nil {
			*keep = true
			return fmt.Errorf("something that is not a socket appeared at the path and could not be put back (it is in %s): %w", priv, err)
		}
		return errors.New("something that is not a socket appeared at the path while starting; remove it or choose another path")
	}
	return nil // the stale socket goes with priv
}
