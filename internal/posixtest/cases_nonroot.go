package posixtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The identities of the non-root section. 1001 and 2000 only own files.
const (
	userUID  = 1000
	userGID  = 1000
	otherUID = 1001
	sgGID    = 2000
)

func init() {
	childActions["nonroot"] = childNonRoot
	register("nonroot_permissions", func(t *testing.T, env Env) {
		env.need(t, CapNonRoot)
		twin(t, env, nonRootCase)
	})
}

// nonRootCase builds, as root, a tree with files of several owners, runs
// nonRootBody as uid 1000 in a child, merges its record, then looks at
// the result as root.
func nonRootCase(s *Side) {
	mk := func(rel string, mode uint32, uid, gid int) {
		if err := unix.Mkdir(s.P(rel), 0o700); err != nil {
			s.Fatalf("mkdir %s: %v", rel, err)
		}
		unix.Chown(s.P(rel), uid, gid)
		if err := unix.Chmod(s.P(rel), mode); err != nil {
			s.Fatalf("chmod %s: %v", rel, err)
		}
	}
	wr := func(rel string, mode uint32, uid, gid int) {
		if err := os.WriteFile(s.P(rel), []byte("content of "+rel), 0o600); err != nil {
			s.Fatalf("write %s: %v", rel, err)
		}
		unix.Chown(s.P(rel), uid, gid)
		if err := unix.Chmod(s.P(rel), mode); err != nil {
			s.Fatalf("chmod %s: %v", rel, err)
		}
	}
	mk("sticky", 0o1777, 0, 0)
	wr("sticky/rootfile", 0o666, 0, 0)
	wr("sticky/otherfile", 0o666, otherUID, otherUID)
	mk("sticky/otherdir", 0o777, otherUID, otherUID)
	wr("secret", 0o600, 0, 0)
	wr("pub", 0o644, 0, 0)
	wr("groupw", 0o664, 0, userGID)
	mk("sg", 0o2777, 0, sgGID)
	mk("ro", 0o555, 0, 0)
	mk("mine", 0o755, userUID, userGID)
	mk("closed", 0o700, 0, 0)
	wr("closed/inner", 0o666, 0, 0)
	s.Rec("setup", "done")

	c := startChild(s.t, childSpec{Action: "nonroot", Path: s.Root, Uid: userUID, Gid: userGID})
	rest, err := c.finish()
	if err != nil {
		s.Fatalf("non-root child: %v", err)
	}
	sc := bufio.NewScanner(strings.NewReader(rest))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var st [2]string
		if err := json.Unmarshal(sc.Bytes(), &st); err != nil {
			s.Fatalf("non-root child wrote %q: %v", sc.Text(), err)
		}
		if st[0] == "!check" {
			s.Checkf(false, "as uid %d: %s", userUID, st[1])
			continue
		}
		s.log = append(s.log, step{"uid1000: " + st[0], st[1]})
	}
	// What the child left, seen by root.
	for _, rel := range []string{"sticky/own", "sticky/own2", "sticky/rootfile", "sticky/otherfile", "sg/f", "sg/d", "sg/d/f", "mine/f", "pub"} {
		s.Lstat("as root: "+rel, rel)
	}
}

// childNonRoot runs nonRootBody as the (already dropped) child identity
// and prints its record as JSON pairs, one a line.
func childNonRoot(spec childSpec, out io.Writer, in io.Reader) int {
	s := &Side{Name: "uid1000", Root: spec.Path}
	code := 0
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(sideAbort); !ok {
					panic(r)
				}
				code = 1
			}
		}()
		nonRootBody(s)
	}()
	for _, st := range s.log {
		b, _ := json.Marshal([2]string{st.name, st.val})
		fmt.Fprintf(out, "%s\n", b)
	}
	return code
}

func nonRootBody(s *Side) {
	s.Rec("identity", "uid=%d gid=%d", os.Getuid(), os.Getgid())
	var st unix.Stat_t
	if err := unix.Stat(s.Root, &st); err != nil {
		s.Checkf(false, "cannot reach the case directory %s: %v (make its ancestors 0755, and mount with allow_other)", s.Root, err)
		s.Fatalf("unreachable")
	}
	open := func(step, rel string, flags int, mode uint32) {
		fd, err := unix.Open(s.P(rel), flags, mode)
		s.Err(step, err)
		if err == nil {
			unix.Close(fd)
		}
	}
	// Creating: the new file is ours.
	open("create sticky/own", "sticky/own", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o644)
	s.Lstat("stat sticky/own", "sticky/own")
	st2 := s.Lstat("stat sticky/own again", "sticky/own")
	s.Checkf(st2 != nil && st2.Uid == userUID && st2.Gid == userGID, "a file created by %d:%d is owned by %v", userUID, userGID, st2)
	s.Err("write own", os.WriteFile(s.P("sticky/own"), []byte("mine"), 0))
	s.Content("read own", "sticky/own")
	open("create in mine", "mine/f", unix.O_CREAT|unix.O_WRONLY, 0o600)
	// chmod: own yes, others' no.
	s.Err("chmod own", unix.Chmod(s.P("sticky/own"), 0o600))
	s.Err("chmod root's file", unix.Chmod(s.P("pub"), 0o666))
	s.Err("chmod other's file", unix.Chmod(s.P("sticky/otherfile"), 0o600))
	// chown: never to another user, only to our own groups.
	s.Err("chown own to root", unix.Chown(s.P("sticky/own"), 0, -1))
	s.Err("chown own to own group", unix.Chown(s.P("sticky/own"), -1, userGID))
	s.Err("chown own to foreign group", unix.Chown(s.P("sticky/own"), -1, sgGID))
	s.Err("chown root's file to us", unix.Chown(s.P("pub"), userUID, -1))
	// Opening: permission bits apply.
	open("open 0600 root file", "secret", unix.O_RDONLY, 0)
	open("open 0644 root file for writing", "pub", unix.O_WRONLY, 0)
	open("open 0644 root file for reading", "pub", unix.O_RDONLY, 0)
	open("open group-writable file for writing", "groupw", unix.O_WRONLY, 0)
	open("open in 0700 root dir", "closed/inner", unix.O_RDONLY, 0)
	s.Lstat("stat in 0700 root dir", "closed/inner")
	open("O_TRUNC root file", "pub", unix.O_WRONLY|unix.O_TRUNC, 0)
	s.Err("truncate root file", unix.Truncate(s.P("pub"), 0))
	s.Err("access R_OK secret", unix.Access(s.P("secret"), unix.R_OK))
	s.Err("access W_OK groupw", unix.Access(s.P("groupw"), unix.W_OK))
	// Directories we may not write.
	open("create in 0555 dir", "ro/f", unix.O_CREAT|unix.O_WRONLY, 0o644)
	s.Err("mkdir in 0555 dir", unix.Mkdir(s.P("ro", "d"), 0o755))
	s.Err("unlink root file in non-sticky 0755 dir", unix.Unlink(s.P("pub")))
	// Sticky directory: only the owner of a file (or of the dir) removes
	// or renames it.
	s.Err("unlink other's file in sticky", unix.Unlink(s.P("sticky/otherfile")))
	s.Err("unlink root's file in sticky", unix.Unlink(s.P("sticky/rootfile")))
	s.Err("rename other's file in sticky", unix.Rename(s.P("sticky/otherfile"), s.P("sticky/taken")))
	s.Err("rename own over other's file in sticky", unix.Rename(s.P("sticky/own"), s.P("sticky/otherfile")))
	s.Err("rmdir other's dir in sticky", unix.Rmdir(s.P("sticky/otherdir")))
	s.Err("rename own in sticky", unix.Rename(s.P("sticky/own"), s.P("sticky/own2")))
	open("create to unlink", "sticky/gone", unix.O_CREAT|unix.O_WRONLY, 0o644)
	s.Err("unlink own in sticky", unix.Unlink(s.P("sticky/gone")))
	open("O_CREAT on other's file in sticky", "sticky/otherfile", unix.O_CREAT|unix.O_WRONLY, 0o644)
	s.Err("hard link to root's file", unix.Link(s.P("secret"), s.P("mine/secretlink")))
	// Times and xattrs of files we do not own.
	s.Err("utimensat explicit on root file", unix.UtimesNanoAt(unix.AT_FDCWD, s.P("pub"), []unix.Timespec{{Sec: 5}, {Sec: 5}}, 0))
	s.Err("utimensat now on root file", unix.UtimesNanoAt(unix.AT_FDCWD, s.P("pub"), nil, 0))
	s.Err("utimensat now on group-writable file", unix.UtimesNanoAt(unix.AT_FDCWD, s.P("groupw"), nil, 0))
	s.Err("setxattr on root file", unix.Setxattr(s.P("pub"), "user.x", []byte("v"), 0))
	s.Err("setxattr on own file", unix.Setxattr(s.P("sticky/own2"), "user.x", []byte("v"), 0))
	s.Err("setxattr trusted.* as user", unix.Setxattr(s.P("sticky/own2"), "trusted.x", []byte("v"), 0))
	// Set-group-ID directory: new entries take its group, subdirectories
	// its bit.
	open("create in setgid dir", "sg/f", unix.O_CREAT|unix.O_WRONLY, 0o2755)
	s.Lstat("stat sg/f", "sg/f")
	s.Err("mkdir in setgid dir", unix.Mkdir(s.P("sg", "d"), 0o755))
	s.Lstat("stat sg/d", "sg/d")
	open("create in setgid subdir", "sg/d/f", unix.O_CREAT|unix.O_WRONLY, 0o644)
	st3 := s.Lstat("stat sg/d/f", "sg/d/f")
	s.Checkf(st3 != nil && st3.Gid == sgGID, "a file created in a set-group-ID directory of group %d has %v", sgGID, st3)
	// chmod g+s on a file of a group we are not in drops the bit.
	s.Err("chmod g+s foreign group", unix.Chmod(s.P("sg/f"), 0o2755))
	s.Lstat("stat sg/f after chmod", "sg/f")
	// Writing to our own set-user-ID file clears the bit.
	s.Err("chmod u+s own", unix.Chmod(s.P("mine/f"), 0o4755))
	s.Err("write own suid", os.WriteFile(s.P("mine/f"), []byte("w"), 0))
	s.Lstat("suid after write", "mine/f")
}
