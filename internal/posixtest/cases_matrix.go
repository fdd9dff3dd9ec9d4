package posixtest

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The permission matrix (issue 11): every caller kind × every directory
// kind × every object type × every operation, run natively and through
// the door, comparing errno, then owner, group and mode of everything left.
//
// Identities. The objects under test belong to mxOwner; the directories
// to root with group mxGroup, except the sticky directory owned by
// mxOther ("1777o"), whose owner may remove what is not its own.
//
//	caller  uid   gid   supplementary  relation to an object (0640, owner:mxGroup)
//	root-g  0     1005  —              root, with another group
//	root    0     0     —              root
//	owner   1000  1000  1005           owner; 1005 is a group it may chown to
//	group   1001  1000  —              member through its primary group
//	supp    1002  1002  1000           member through a supplementary group
//	other   1003  1003  —              nobody (and owner of the 1777o directory)
const (
	mxOwner  = 1000
	mxGroup  = 1000
	mxOther  = 1003
	mxSupp2  = 1005 // the owner's supplementary group
	mxRootTS = 1_000_000_000
)

type mxCaller struct {
	name     string
	uid, gid int
	groups   []int
}

var mxCallers = []mxCaller{
	// Root with another group first: a daemon that leaves a worker
	// thread without its capabilities after such a request (issue 9)
	// then fails root's own requests that follow.
	{"root-g", 0, mxSupp2, nil},
	{"root", 0, 0, nil},
	{"owner", mxOwner, mxGroup, []int{mxSupp2}},
	{"group", 1001, mxGroup, nil},
	{"supp", 1002, 1002, []int{mxGroup}},
	{"other", mxOther, mxOther, nil},
}

// mxDirs are the directory kinds: mode and owner.
var mxDirs = []struct {
	name string
	mode uint32
	uid  int
}{
	{"0755", 0o755, 0},
	{"0777", 0o777, 0},
	{"1777", 0o1777, 0},
	{"2775", 0o2775, 0},
	{"1777o", 0o1777, mxOther},
}

// mxTypes are the object types, each made by root and given to mxOwner.
var mxTypes = []string{"reg", "dir", "lnk", "fifo", "sock", "chr", "blk"}

func init() {
	register("matrix_permissions", func(t *testing.T, env Env) {
		env.need(t, CapNonRoot)
		twin(t, env, matrixPermCase)
	})
	register("matrix_times", func(t *testing.T, env Env) {
		env.need(t, CapNonRoot)
		twin(t, env, matrixTimesCase)
	})
}

// mkObj makes an object of type typ at p as root (see mxTypes).
func mkObj(s *Side, typ, p string) {
	var err error
	switch typ {
	case "reg":
		err = os.WriteFile(p, []byte("twelve bytes"), 0o640)
	case "dir":
		err = unix.Mkdir(p, 0o750)
	case "lnk":
		err = unix.Symlink("reg", p)
	case "fifo":
		err = unix.Mknod(p, unix.S_IFIFO|0o640, 0)
	case "sock":
		err = unix.Mknod(p, unix.S_IFSOCK|0o640, 0)
	case "chr":
		err = unix.Mknod(p, unix.S_IFCHR|0o640, int(unix.Mkdev(1, 3)))
	case "blk":
		err = unix.Mknod(p, unix.S_IFBLK|0o640, int(unix.Mkdev(7, 0)))
	}
	if err != nil {
		s.Fatalf("setup: make %s %s: %v", typ, p, err)
	}
	if err := unix.Lchown(p, mxOwner, mxGroup); err != nil {
		s.Fatalf("setup: chown %s: %v", p, err)
	}
	if typ != "lnk" {
		mode := uint32(0o640)
		if typ == "dir" {
			mode = 0o750
		}
		if err := unix.Chmod(p, mode); err != nil {
			s.Fatalf("setup: chmod %s: %v", p, err)
		}
	}
}

// mkDir makes directory p as root with mode and owner uid:gid.
func mkDir(s *Side, p string, mode uint32, uid, gid int) {
	if err := unix.Mkdir(p, 0o700); err != nil {
		s.Fatalf("setup: mkdir %s: %v", p, err)
	}
	if err := unix.Chown(p, uid, gid); err != nil {
		s.Fatalf("setup: chown %s: %v", p, err)
	}
	if err := unix.Chmod(p, mode); err != nil {
		s.Fatalf("setup: chmod %s: %v", p, err)
	}
}

// matrixPermCase builds, for each caller, a tree of every directory kind
// holding every object type, runs mxPermOps as that caller, and records
// what is left.
func matrixPermCase(s *Side) {
	for _, c := range mxCallers {
		base := s.P(c.name)
		mkDir(s, base, 0o755, 0, 0)
		mkDir(s, filepath.Join(base, "x"), 0o777, 0, 0) // neutral ground for renames across
		for _, d := range mxDirs {
			dir := filepath.Join(base, d.name)
			mkDir(s, dir, 0o755, 0, mxGroup)
			for _, typ := range mxTypes {
				mkObj(s, typ, filepath.Join(dir, typ))
			}
			if err := os.WriteFile(filepath.Join(dir, "rootreg"), []byte("root's"), 0o644); err != nil {
				s.Fatalf("setup: %v", err)
			}
			// Set-ID files everyone may write: a write, a truncate and
			// an O_TRUNC open by a caller without CAP_FSETID clear the
			// bits (set-group-ID only with group execute).
			for name, mode := range map[string]uint32{"suid": 0o6777, "sgid": 0o2777, "sgidnx": 0o2767, "suidt": 0o4777, "suido": 0o6777} {
				p := filepath.Join(dir, name)
				mkObj(s, "reg", p)
				if err := unix.Chmod(p, mode); err != nil {
					s.Fatalf("setup: %v", err)
				}
			}
			// The mode last: a sticky or read-only directory does not
			// stop root's setup anyway, but the owner change would
			// clear a set-group-ID bit set before it.
			if err := unix.Chown(dir, d.uid, mxGroup); err != nil {
				s.Fatalf("setup: %v", err)
			}
			if err := unix.Chmod(dir, d.mode); err != nil {
				s.Fatalf("setup: %v", err)
			}
		}
	}
	s.Rec("setup", "done")
	for _, c := range mxCallers {
		s.asCaller(c, "perm", c.name)
	}
	// What every caller left, seen by root.
	for _, c := range mxCallers {
		s.lstatTree(c.name)
	}
}

// lstatTree records Lstat of every entry under rel, in name order.
func (s *Side) lstatTree(rel string) {
	var names []string
	filepath.WalkDir(s.P(rel), func(p string, d os.DirEntry, err error) error {
		if err == nil {
			r, _ := filepath.Rel(s.Root, p)
			names = append(names, r)
		}
		return nil
	})
	sort.Strings(names)
	s.Rec("tree "+rel, "%d entries", len(names))
	for _, n := range names {
		s.Lstat("left: "+n, n)
	}
}

// asCaller runs the matrix part "part" on rel as caller c, and merges its
// record into s's, each step prefixed with the caller's name. A non-root
// caller's part runs in this process on a locked OS thread whose real,
// effective and fs ids and groups are c's (raw per-thread system calls:
// Go's syscall.Setuid would change every thread); the saved ids stay 0 so
// the thread can come back, and its effective capabilities are gone while
// it runs as c, as for any process of c's. No child process: the matrix
// has dozens of identities per door and a re-executed (race-built) test
// binary costs a lot to start. The runtime never clones a locked thread
// (newm uses its template thread), so no other thread inherits c's ids.
func (s *Side) asCaller(c mxCaller, part, rel string) {
	sub := &Side{t: s.t, Name: s.Name, Root: s.P(rel), Backing: s.Backing}
	if err := runAs(c, func() { mxParts[part](sub) }); err != nil {
		s.Fatalf("run as %s: %v", c.name, err)
	}
	for _, st := range sub.log {
		s.log = append(s.log, step{c.name + ": " + st.name, st.val})
	}
}

// runAs runs fn on a locked thread switched to c's identity (see
// asCaller) and switches back, also when fn panics (Side.Fatalf). If the
// thread cannot be switched back it stays locked, so the runtime ends it
// with this goroutine, and runAs runs fn in a fresh goroutine for that.
func runAs(c mxCaller, fn func()) error {
	if c.uid == 0 && c.gid == 0 && c.groups == nil {
		fn()
		return nil
	}
	var err error
	var panicked any
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		gs := make([]uint32, len(c.groups))
		for i, g := range c.groups {
			gs[i] = uint32(g)
		}
		if err = threadCreds(gs, c.uid, c.gid); err != nil {
			return // the thread stays locked and dies
		}
		func() {
			defer func() { panicked = recover() }()
			fn()
		}()
		if err = threadCreds(nil, 0, 0); err == nil {
			runtime.UnlockOSThread()
		}
	}()
	<-done
	if panicked != nil {
		panic(panicked)
	}
	return err
}

// threadCreds sets this thread's groups, then gid, then uid (real,
// effective and fs; saved stays 0), with raw system calls that change
// only the calling thread.
func threadCreds(groups []uint32, uid, gid int) error {
	var p unsafe.Pointer
	if len(groups) > 0 {
		p = unsafe.Pointer(&groups[0])
	}
	if uid == 0 { // back to root: uid first, it gives back the right to change the rest
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, 0, 0, 0); e != 0 {
			return fmt.Errorf("setresuid(0): %w", e)
		}
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(p), 0); e != 0 {
		return fmt.Errorf("setgroups: %w", e)
	}
	runtime.KeepAlive(groups)
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(gid), uintptr(gid), 0); e != 0 {
		return fmt.Errorf("setresgid(%d): %w", gid, e)
	}
	if uid != 0 {
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), 0); e != 0 {
			return fmt.Errorf("setresuid(%d): %w", uid, e)
		}
	}
	return nil
}

// mxParts are what a caller runs on its directory.
var mxParts = map[string]func(s *Side){
	"perm":  mxPermOps,
	"times": mxTimesOps,
}

// mxPermOps is one caller's turn in its own tree (s.Root): in every
// directory kind, create each type, open, truncate, link, change mode,
// owner and times, then rename each object within, out of and back into
// the directory, and remove it.
func mxPermOps(s *Side) {
	s.Rec("identity", "groups %v", groupsString())
	for _, d := range mxDirs {
		p := func(name string) string { return filepath.Join(s.Root, d.name, name) }
		op := func(name string, err error) { s.Err(d.name+" "+name, err) }
		fd, err := unix.Open(p("n.reg"), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o2755)
		op("create", err)
		if err == nil {
			unix.Close(fd)
		}
		op("mkdir", unix.Mkdir(p("n.dir"), 0o2755))
		op("mknod fifo", unix.Mknod(p("n.fifo"), unix.S_IFIFO|0o644, 0))
		op("mknod sock", unix.Mknod(p("n.sock"), unix.S_IFSOCK|0o644, 0))
		op("mknod chr", unix.Mknod(p("n.chr"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))))
		op("mknod blk", unix.Mknod(p("n.blk"), unix.S_IFBLK|0o644, int(unix.Mkdev(7, 0))))
		op("symlink", unix.Symlink("reg", p("n.lnk")))
		for _, o := range []struct {
			name  string
			flags int
		}{{"rd", unix.O_RDONLY}, {"wr", unix.O_WRONLY}, {"rdwr", unix.O_RDWR}, {"dir rd", unix.O_RDONLY | unix.O_DIRECTORY}} {
			target := "reg"
			if strings.HasPrefix(o.name, "dir") {
				target = "dir"
			}
			fd, err := unix.Open(p(target), o.flags|unix.O_NOFOLLOW, 0)
			op("open "+o.name, err)
			if err == nil {
				unix.Close(fd)
			}
		}
		fd, err = unix.Open(p("reg"), unix.O_WRONLY|unix.O_CREAT, 0o600) // existing: O_CREAT opens
		op("open O_CREAT existing wr", err)
		if err == nil {
			unix.Close(fd)
		}
		op("truncate", unix.Truncate(p("reg"), 4))
		op("link", unix.Link(p("reg"), p("reg.link")))
		op("link other's", unix.Link(p("rootreg"), p("rootreg.link")))
		op("chmod own", unix.Chmod(p("reg"), 0o660))
		op("chmod root's", unix.Chmod(p("rootreg"), 0o666))
		op("chmod g+s", unix.Chmod(p("fifo"), 0o2640))
		op("chown uid", unix.Lchown(p("reg"), mxOther, -1))
		op("chown gid primary", unix.Lchown(p("reg"), -1, mxGroup))
		op("chown gid supplementary", unix.Lchown(p("reg"), -1, mxSupp2))
		op("chown gid foreign", unix.Lchown(p("reg"), -1, 1004))
		op("chown root's", unix.Lchown(p("rootreg"), -1, mxGroup))
		op("chown -1 -1 symlink", unix.Lchown(p("lnk"), -1, -1))
		ts := []unix.Timespec{{Sec: mxRootTS}, {Sec: mxRootTS}}
		op("utimensat explicit", unix.UtimesNanoAt(unix.AT_FDCWD, p("reg"), ts, unix.AT_SYMLINK_NOFOLLOW))
		op("utimensat now", unix.UtimesNanoAt(unix.AT_FDCWD, p("reg"), nil, unix.AT_SYMLINK_NOFOLLOW))
		op("utimensat omit/now", unix.UtimesNanoAt(unix.AT_FDCWD, p("fifo"), []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_NOW}}, unix.AT_SYMLINK_NOFOLLOW))
		op("utimensat explicit root's", unix.UtimesNanoAt(unix.AT_FDCWD, p("rootreg"), ts, 0))
		for _, typ := range mxTypes {
			x := filepath.Join(s.Root, "x", d.name+"."+typ)
			op("rename within "+typ, unix.Rename(p(typ), p(typ+".mv")))
			op("rename out "+typ, unix.Rename(p(typ+".mv"), x))
			op("rename in "+typ, unix.Rename(x, p(typ+".back")))
			for _, n := range []string{typ, typ + ".mv", typ + ".back"} {
				if typ == "dir" {
					op("rmdir "+n, unix.Rmdir(p(n)))
				} else {
					op("unlink "+n, unix.Unlink(p(n)))
				}
			}
		}
		setID := []string{"suid", "sgid", "sgidnx"}
		if gs, _ := unix.Getgroups(); len(gs) > 0 && os.Getgid() != mxGroup && os.Getuid() != 0 {
			// A member of the file's group through a supplementary group
			// keeps a set-group-ID bit without group execute natively;
			// a FUSE WRITE carries no supplementary groups, so a server
			// cannot know (docs/posix-parity.md; test/fusemount
			// TestParityLimits pins it).
			setID = setID[:2]
		}
		for _, n := range setID {
			fd, err := unix.Open(p(n), unix.O_WRONLY|unix.O_APPEND, 0)
			if op("write "+n, err); err == nil {
				_, err = unix.Write(fd, []byte("appended"))
				op("write "+n+" data", err)
				unix.Close(fd)
			}
		}
		op("truncate suidt", unix.Truncate(p("suidt"), 1))
		fd, err = unix.Open(p("suido"), unix.O_WRONLY|unix.O_TRUNC, 0)
		if op("open O_TRUNC suido", err); err == nil {
			unix.Close(fd)
		}
		op("unlink root's", unix.Unlink(p("rootreg")))
		op("rename root's over", unix.Rename(p("n.reg"), p("rootreg")))
	}
}

// groupsString lists the calling process's groups, for the record.
func groupsString() string {
	gs, _ := unix.Getgroups()
	sort.Ints(gs)
	return fmt.Sprint(gs)
}

// The times matrix: each operation on its own fresh directory and object,
// every atime and mtime set to mxRootTS first, and the operation run at
// least one clock tick after the setup; then, for the parent(s) and the
// object, which of atime, mtime and ctime changed. Absolute times differ
// between the twins; which ones an operation changes must not.

// mxTimeOps names each times-matrix operation and what it needs.
var mxTimeOps = []string{
	"create", "mkdir", "mknod", "symlink", "link", "unlink", "rmdir",
	"rename within", "rename across", "chmod", "chown", "truncate",
	"write", "read", "utimes now", "readdir",
}

// mxTimesCallers are root and the owner.
var mxTimesCallers = []mxCaller{mxCallers[1], mxCallers[2]}

// matrixTimesCase sets up a fixture per operation for root and for the
// owner (both own the fixtures' directories and objects in their turn),
// waits a clock tick, and runs mxTimesOps as each.
func matrixTimesCase(s *Side) {
	for _, c := range mxTimesCallers {
		base := s.P("t-" + c.name)
		mkDir(s, base, 0o755, 0, 0)
		for i := range mxTimeOps {
			dir := filepath.Join(base, fmt.Sprint(i))
			mkDir(s, dir, 0o755, c.uid, c.gid)
			mkDir(s, dir+".q", 0o755, c.uid, c.gid)
			o := filepath.Join(dir, "o")
			if err := os.WriteFile(o, []byte("twelve bytes"), 0o644); err != nil {
				s.Fatalf("setup: %v", err)
			}
			mkDir(s, filepath.Join(dir, "d"), 0o755, c.uid, c.gid)
			for _, p := range []string{o, filepath.Join(dir, "d"), dir, dir + ".q"} {
				unix.Lchown(p, c.uid, c.gid)
				ts := []unix.Timespec{{Sec: mxRootTS}, {Sec: mxRootTS}}
				if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
					s.Fatalf("setup: utimes %s: %v", p, err)
				}
			}
		}
	}
	// Every change below must be at least one tick of the file time
	// clock (a jiffy) after the setup's ctimes: coarse timestamps would
	// otherwise make a change look like none.
	time.Sleep(25 * time.Millisecond)
	s.Rec("setup", "done")
	for _, c := range mxTimesCallers {
		s.asCaller(c, "times", "t-"+c.name)
	}
}

// mxTimesOps runs each times operation in its fixture directory (s.Root/N,
// holding file o and directory d, with s.Root/N.q beside it) and records
// which times changed.
func mxTimesOps(s *Side) {
	type snap struct {
		ok         bool
		a, m, c, b unix.Timespec
	}
	get := func(p string) snap {
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil {
			return snap{}
		}
		return snap{ok: true, a: st.Atim, m: st.Mtim, c: st.Ctim}
	}
	diff := func(before, after snap) string {
		if !before.ok || !after.ok {
			return fmt.Sprintf("present %v→%v", before.ok, after.ok)
		}
		r := ""
		for _, x := range []struct {
			n    string
			b, a unix.Timespec
		}{{"a", before.a, after.a}, {"m", before.m, after.m}, {"c", before.c, after.c}} {
			if x.b != x.a {
				r += x.n
			}
		}
		if r == "" {
			return "-"
		}
		return r
	}
	for i, name := range mxTimeOps {
		dir := filepath.Join(s.Root, fmt.Sprint(i))
		q := dir + ".q"
		o := filepath.Join(dir, "o")
		// The object whose times are watched after the operation: o, or
		// where the operation moved it.
		after := o
		pb, qb, ob := get(dir), get(q), get(o)
		var err error
		switch name {
		case "create":
			var fd int
			if fd, err = unix.Open(filepath.Join(dir, "n"), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644); err == nil {
				unix.Close(fd)
			}
		case "mkdir":
			err = unix.Mkdir(filepath.Join(dir, "n"), 0o755)
		case "mknod":
			err = unix.Mknod(filepath.Join(dir, "n"), unix.S_IFIFO|0o644, 0)
		case "symlink":
			err = unix.Symlink("o", filepath.Join(dir, "n"))
		case "link":
			err = unix.Link(o, filepath.Join(q, "n"))
		case "unlink":
			err = unix.Unlink(o)
		case "rmdir":
			err = unix.Rmdir(filepath.Join(dir, "d"))
		case "rename within":
			after = filepath.Join(dir, "n")
			err = unix.Rename(o, after)
		case "rename across":
			after = filepath.Join(q, "n")
			err = unix.Rename(o, after)
		case "chmod":
			err = unix.Chmod(o, 0o600)
		case "chown":
			err = unix.Lchown(o, -1, os.Getgid())
		case "truncate":
			err = unix.Truncate(o, 3)
		case "write":
			var fd int
			if fd, err = unix.Open(o, unix.O_WRONLY|unix.O_APPEND, 0); err == nil {
				_, err = unix.Write(fd, []byte("more"))
				unix.Close(fd)
			}
		case "read":
			var b []byte
			b, err = os.ReadFile(o)
			s.Rec(name+" content", "%s", digest(b))
		case "utimes now":
			err = unix.UtimesNanoAt(unix.AT_FDCWD, o, nil, 0)
		case "readdir":
			var ents []os.DirEntry
			ents, err = os.ReadDir(dir)
			s.Rec(name+" entries", "%d", len(ents))
		}
		s.Err(name, err)
		s.Rec(name+": parent", "%s", diff(pb, get(dir)))
		s.Rec(name+": other dir", "%s", diff(qb, get(q)))
		s.Rec(name+": object", "%s", diff(ob, get(after)))
	}
}
