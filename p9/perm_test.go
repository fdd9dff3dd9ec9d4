package p9

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fs/passthrough"
	"github.com/fastfsd/fastfsd/internal/testutil"
)

// permTree is the host tree the permission tests run on (made as root):
//
//	/            0755 root        /secret   0600 root
//	/pub         0777 root        /shared   0644 root
//	/sticky     01777 root        /sticky/f 0666 root
//	/closed      0700 root        /grp      0060 root:2000
//	/suid       04777 root
func permTree(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	d := t.TempDir()
	os.Chmod(d, 0o755)
	mk := func(name string, mode os.FileMode, gid int) {
		p := filepath.Join(d, name)
		if mode.IsDir() {
			os.Mkdir(p, 0)
		} else {
			os.WriteFile(p, []byte("data"), 0)
		}
		os.Chown(p, 0, gid)
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	mk("pub", os.ModeDir|0o777, 0)
	mk("sticky", os.ModeDir|os.ModeSticky|0o777, 0)
	mk("sticky/f", 0o666, 0)
	mk("closed", os.ModeDir|0o700, 0)
	mk("secret", 0o600, 0)
	mk("shared", 0o644, 0)
	mk("grp", 0o060, 2000)
	mk("suid", os.ModeSetuid|0o777, 0)
	return d
}

// startPermServer serves dir through fs/passthrough to connections that
// all get peer.
func startPermServer(t *testing.T, dir string, peer Peer) string {
	t.Helper()
	fsys, err := passthrough.New(dir, passthrough.Options{Xattr: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close() }) // after the server's (cleanups run last first)
	sock, _ := startServer(t, fsys, &Options{Identify: func(net.Conn) (Peer, error) { return peer, nil }})
	return sock
}

func hostStat(t *testing.T, p string) (mode, uid, gid uint32) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatalf("stat %s: %v", p, err)
	}
	return st.Mode, st.Uid, st.Gid
}

// TestPeerActsAsItself: a peer identified as uid 1000 (groups 1000, 2000)
// cannot attach as another uid, and everything it does is checked as the
// kernel would check uid 1000.
func TestPeerActsAsItself(t *testing.T) {
	dir := permTree(t)
	sock := startPermServer(t, dir, Peer{Identity: Identity{Uid: 1000, Gid: 1000, Groups: []uint32{2000}}})
	r := dialRaw(t, sock)
	r.version(65536)

	r.errno("attach as uid 0", &Tattach{Fid: 1, Afid: NoFid, NUname: 0}, syscall.EPERM)
	r.errno("attach as uname root", &Tattach{Fid: 1, Afid: NoFid, Uname: []byte("root"), NUname: NoUid}, syscall.EPERM)
	r.errno("attach as uid 1001", &Tattach{Fid: 1, Afid: NoFid, NUname: 1001}, syscall.EPERM)
	r.ok(&Tattach{Fid: 1, Afid: NoFid, NUname: 1000}, MsgRattach)
	r.ok(&Tattach{Fid: 99, Afid: NoFid, Uname: []byte("someone"), NUname: NoUid}, MsgRattach)
	r.errno("aname through a 0700 dir", &Tattach{Fid: 98, Afid: NoFid, Aname: []byte("closed/x"), NUname: 1000}, syscall.EACCES)

	// Creating: not in a root 0755 directory; in /pub only with its groups.
	r.ok(walkMsg(1, 2), MsgRwalk)
	r.errno("create in root's 0755 dir", &Tlcreate{Fid: 2, Name: []byte("x"), Flags: 2, Mode: 0o644, Gid: 1000}, syscall.EACCES)
	r.ok(walkMsg(1, 3, "pub"), MsgRwalk)
	r.errno("create with gid 0", &Tlcreate{Fid: 3, Name: []byte("x"), Flags: 2, Mode: 0o644, Gid: 0}, syscall.EPERM)
	r.ok(&Tlcreate{Fid: 3, Name: []byte("mine"), Flags: 2, Mode: 0o4755, Gid: 2000}, MsgRlcreate)
	if m, u, g := hostStat(t, filepath.Join(dir, "pub/mine")); u != 1000 || g != 2000 || m&0o7777 != 0o4755 {
		t.Errorf("created file: mode %#o uid %d gid %d, want 04755 1000 2000 (setuid to itself only)", m&0o7777, u, g)
	}
	r.ok(walkMsg(1, 4, "pub"), MsgRwalk)
	r.errno("mknod a device", &Tmknod{Dfid: 4, Name: []byte("dev"), Mode: syscall.S_IFCHR | 0o666, Major: 1, Minor: 3, Gid: 1000}, syscall.EPERM)
	r.ok(&Tmkdir{Dfid: 4, Name: []byte("d"), Mode: 0o755, Gid: 1000}, MsgRmkdir)

	// Ownership: no chown away, chgrp only to its groups, no chmod of root's.
	r.ok(walkMsg(1, 5, "pub", "mine"), MsgRwalk)
	r.errno("chown own file to root", &Tsetattr{Fid: 5, Valid: SetAttrUID, UID: 0}, syscall.EPERM)
	r.errno("chgrp own file to 0", &Tsetattr{Fid: 5, Valid: SetAttrGID, GID: 0}, syscall.EPERM)
	r.ok(&Tsetattr{Fid: 5, Valid: SetAttrGID, GID: 1000}, MsgRsetattr)
	r.ok(walkMsg(1, 6, "shared"), MsgRwalk)
	r.errno("chmod root's file", &Tsetattr{Fid: 6, Valid: SetAttrMode, Mode: 0o4777}, syscall.EPERM)
	r.errno("set times of root's file", &Tsetattr{Fid: 6, Valid: SetAttrMtime | SetAttrMtimeSet, MtimeSec: 1}, syscall.EPERM)
	r.errno("touch root's 0644 file", &Tsetattr{Fid: 6, Valid: SetAttrMtime}, syscall.EACCES)
	r.errno("truncate root's 0644 file", &Tsetattr{Fid: 6, Valid: SetAttrSize}, syscall.EACCES)

	// Tlcreate of an existing name opens it only as Tlopen would.
	r.ok(walkMsg(1, 20), MsgRwalk)
	r.errno("lcreate of root's 0644 file for writing", &Tlcreate{Fid: 20, Name: []byte("shared"), Flags: 2, Mode: 0o644, Gid: 1000}, syscall.EACCES)
	r.errno("lcreate O_EXCL of an existing file", &Tlcreate{Fid: 20, Name: []byte("shared"), Flags: 0 | DotlExcl, Mode: 0o644, Gid: 1000}, syscall.EEXIST)
	r.ok(&Tlcreate{Fid: 20, Name: []byte("shared"), Flags: 0, Mode: 0o644, Gid: 1000}, MsgRlcreate)
	if rd := r.ok(&Tread{Fid: 20, Count: 100}, MsgRread).(*Rread); string(rd.Data) != "data" {
		t.Errorf("read through lcreate of an existing file: %q", rd.Data)
	}

	// Opening by mode bits, groups included.
	r.ok(walkMsg(1, 7, "secret"), MsgRwalk)
	r.errno("open root's 0600", &Tlopen{Fid: 7, Flags: 0}, syscall.EACCES)
	r.errno("open 0644 for writing", &Tlopen{Fid: 6, Flags: 2}, syscall.EACCES)
	r.ok(&Tlopen{Fid: 6, Flags: 0}, MsgRlopen)
	r.ok(walkMsg(1, 8, "grp"), MsgRwalk)
	r.ok(&Tlopen{Fid: 8, Flags: 2}, MsgRlopen) // 0060 root:2000, 2000 supplementary
	r.ok(walkMsg(1, 9, "closed"), MsgRwalk)
	r.errno("walk into 0700 dir", walkMsg(9, 15, "x"), syscall.EACCES)

	// Sticky directory: root's file cannot be removed or renamed away.
	r.ok(walkMsg(1, 10, "sticky"), MsgRwalk)
	r.errno("unlink root's file in sticky dir", &Tunlinkat{DirFid: 10, Name: []byte("f")}, syscall.EPERM)
	r.errno("rename root's file in sticky dir", &Trenameat{OldDirFid: 10, OldName: []byte("f"), NewDirFid: 10, NewName: []byte("g")}, syscall.EPERM)
	r.ok(&Tlcreate{Fid: 10, Name: []byte("own"), Flags: 2, Mode: 0o644, Gid: 1000}, MsgRlcreate)
	r.ok(walkMsg(1, 11, "sticky"), MsgRwalk)
	r.ok(&Tunlinkat{DirFid: 11, Name: []byte("own")}, MsgRunlinkat)

	// A write clears set-user-ID of root's 04777 file.
	r.ok(walkMsg(1, 12, "suid"), MsgRwalk)
	r.ok(&Tlopen{Fid: 12, Flags: 1}, MsgRlopen)
	r.ok(&Twrite{Fid: 12, Data: []byte("x")}, MsgRwrite)
	if m, _, _ := hostStat(t, filepath.Join(dir, "suid")); m&0o7777 != 0o777 {
		t.Errorf("after an unprivileged write: mode %#o, want 0777", m&0o7777)
	}

	// xattrs that change how the host treats a file are refused.
	r.ok(walkMsg(1, 13, "pub", "mine"), MsgRwalk)
	r.errno("set trusted.x", &Txattrcreate{Fid: 13, Name: []byte("trusted.x"), AttrSize: 1}, syscall.EPERM)
	r.errno("set security.capability", &Txattrcreate{Fid: 13, Name: []byte("security.capability"), AttrSize: 1}, syscall.EPERM)
	r.ok(walkMsg(1, 14, "shared"), MsgRwalk)
	r.errno("set user.x on root's 0644 file", &Txattrcreate{Fid: 14, Name: []byte("user.x"), AttrSize: 1}, syscall.EACCES)

	// The host's trusted.* names are not listed to a non-root peer, as
	// listxattr(2) does not list them to it natively.
	if err := unix.Setxattr(filepath.Join(dir, "shared"), "trusted.hostsecret", []byte("s"), 0); err != nil {
		t.Fatalf("setxattr trusted.* on the host: %v", err)
	}
	if err := unix.Setxattr(filepath.Join(dir, "shared"), "user.visible", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	r.ok(walkMsg(1, 16, "shared"), MsgRwalk)
	r.ok(&Txattrwalk{Fid: 16, Newfid: 17}, MsgRxattrwalk)
	list := r.ok(&Tread{Fid: 17, Count: 4096}, MsgRread).(*Rread).Data
	if bytes.Contains(list, []byte("trusted.")) || !bytes.Contains(list, []byte("user.visible\x00")) {
		t.Errorf("xattr list seen by uid 1000: %q; want user.visible and no trusted.*", list)
	}
}

// TestSquash: with all-squash any n_uname is accepted and acts as the
// squash identity.
func TestSquash(t *testing.T) {
	dir := permTree(t)
	sock := startPermServer(t, dir, Peer{Squash: true, Identity: Identity{Uid: 65534, Gid: 65534}})
	r := dialRaw(t, sock)
	r.version(65536)
	r.ok(&Tattach{Fid: 1, Afid: NoFid, NUname: 0}, MsgRattach)
	r.ok(walkMsg(1, 2, "pub"), MsgRwalk)
	r.ok(&Tlcreate{Fid: 2, Name: []byte("sq"), Flags: 2, Mode: 0o4755, Gid: 0}, MsgRlcreate)
	if m, u, g := hostStat(t, filepath.Join(dir, "pub/sq")); u != 65534 || g != 65534 {
		t.Errorf("squashed create: mode %#o uid %d gid %d, want uid and gid 65534", m&0o7777, u, g)
	}
	r.ok(walkMsg(1, 3, "secret"), MsgRwalk)
	r.errno("open root's 0600 as the squashed user", &Tlopen{Fid: 3, Flags: 0}, syscall.EACCES)
}

// TestTrustedPeerUnchanged: a trusted peer still acts as the uid it names.
func TestTrustedPeerUnchanged(t *testing.T) {
	dir := permTree(t)
	sock := startPermServer(t, dir, Peer{Trusted: true})
	r := dialRaw(t, sock)
	r.version(65536)
	r.ok(&Tattach{Fid: 1, Afid: NoFid, NUname: 0}, MsgRattach)
	r.ok(walkMsg(1, 2, "secret"), MsgRwalk)
	r.ok(&Tlopen{Fid: 2, Flags: 2}, MsgRlopen)
}

// TestPeerCredUnix: over a real unix socket, PeerCred reports this
// process (root: trusted) — the default Identify.
func TestPeerCredUnix(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := PeerCred(s)
	if err != nil {
		t.Fatal(err)
	}
	if uint32(os.Getuid()) == 0 && !p.Trusted || uint32(os.Getuid()) != 0 && (p.Trusted || p.Uid != uint32(os.Getuid())) {
		t.Errorf("PeerCred = %+v for uid %d", p, os.Getuid())
	}
	if _, err := PeerCred(&net.TCPConn{}); !errors.Is(err, ErrNoPeerCred) {
		t.Errorf("PeerCred of a tcp conn: %v", err)
	}
}

func TestProcGroups(t *testing.T) {
	gs, _ := os.Getgroups()
	got := procGroups(int32(os.Getpid()), uint32(os.Geteuid()), uint32(os.Getegid()))
	want := 0
	for _, g := range gs {
		if g != os.Getegid() {
			want++
		}
	}
	if len(got) != want {
		t.Errorf("procGroups = %v, getgroups = %v", got, gs)
	}
	if g := procGroups(int32(os.Getpid()), uint32(os.Geteuid())+1, uint32(os.Getegid())); g != nil {
		t.Errorf("groups of a pid whose uid does not match: %v, want none", g)
	}
}

// TestACLPermissionMalformed: an ACL the kernel would not have stored
// (truncated, another version, an unknown tag, no ACL_OTHER entry) fails
// the check with EIO rather than granting or denying on half of it; a
// long ACL (past the request's buffer) is read whole.
func TestACLPermissionMalformed(t *testing.T) {
	id := &Identity{Uid: 1005, Gid: 1005}
	a := &fs.Attr{Mode: syscall.S_IFREG | 0o660, Uid: 1002, Gid: 2000}
	good := aclXattr(aclEnt{aclUserObj, 6, 0}, aclEnt{aclUser, 6, 1005}, aclEnt{aclGroupObj, 6, 0}, aclEnt{aclMask, 6, 0}, aclEnt{aclOther, 0, 0})
	if e := aclPermission(id, a, good, mayRead|mayWrite); e != 0 {
		t.Fatalf("a named user's rw entry: %v, want success", e)
	}
	wrongVersion := append([]byte{}, good...)
	wrongVersion[0] = 1
	unknownTag := append([]byte{}, good...)
	unknownTag[aclHeader+aclEntry] = 0x40
	for name, acl := range map[string][]byte{
		"empty":         nil,
		"header only":   good[:aclHeader],
		"truncated":     good[:len(good)-3],
		"wrong version": wrongVersion,
		"unknown tag":   unknownTag,
		"no other":      aclXattr(aclEnt{aclUserObj, 6, 0}, aclEnt{aclGroupObj, 6, 0}),
	} {
		if e := aclPermission(&Identity{Uid: 1007, Gid: 1007}, a, acl, mayRead); e != syscall.EIO {
			t.Errorf("%s: %v, want EIO", name, e)
		}
	}

	// Through the server: 100 named users (more than the request's
	// buffer holds), the last of which grants write.
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	p := filepath.Join(dir, "f")
	os.WriteFile(p, nil, 0o600)
	os.Chown(p, 1002, 2000)
	ents := []aclEnt{{aclUserObj, 6, 0}}
	for u := uint32(3000); u < 3099; u++ {
		ents = append(ents, aclEnt{aclUser, 0, u})
	}
	ents = append(ents, aclEnt{aclUser, 6, 3100}, aclEnt{aclGroupObj, 0, 0}, aclEnt{aclMask, 6, 0}, aclEnt{aclOther, 0, 0})
	if err := unix.Setxattr(p, "system.posix_acl_access", aclXattr(ents...), 0); err != nil {
		t.Skipf("no POSIX ACLs on the test directory's filesystem: %v", err)
	}
	sock := startPermServer(t, dir, Peer{Identity: Identity{Uid: 3100, Gid: 3100}})
	r := dialRaw(t, sock)
	r.version(65536)
	r.ok(&Tattach{Fid: 1, Afid: NoFid, NUname: 3100}, MsgRattach)
	r.ok(walkMsg(1, 2, "f"), MsgRwalk)
	r.ok(&Tlopen{Fid: 2, Flags: syscall.O_RDWR}, MsgRlopen)
	sock2 := startPermServer(t, dir, Peer{Identity: Identity{Uid: 3050, Gid: 3050}})
	r2 := dialRaw(t, sock2)
	r2.version(65536)
	r2.ok(&Tattach{Fid: 1, Afid: NoFid, NUname: 3050}, MsgRattach)
	r2.ok(walkMsg(1, 2, "f"), MsgRwalk)
	r2.errno("open by a named user with no rights", &Tlopen{Fid: 2, Flags: syscall.O_RDONLY}, syscall.EACCES)
}

// TestACLWithoutXattrs: with extended attributes not served to clients
// (fs/passthrough Options.Xattr off, fastfsd 9p --xattr=false), the
// permission checks still read the host's ACLs through Options.ACLs: a
// named-user entry that denies what the group bits grant is honoured,
// and one that grants what the other bits deny.
func TestACLWithoutXattrs(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("data"), 0o600)
	os.Chown(p, 1002, 2000)
	acl := aclXattr(aclEnt{aclUserObj, 6, 0}, aclEnt{aclUser, 0, 1003}, aclEnt{aclUser, 6, 1005}, aclEnt{aclGroupObj, 6, 0}, aclEnt{aclMask, 6, 0}, aclEnt{aclOther, 0, 0})
	if err := unix.Setxattr(p, "system.posix_acl_access", acl, 0); err != nil {
		t.Skipf("no POSIX ACLs on the test directory's filesystem: %v", err)
	}
	fsys, err := passthrough.New(dir, passthrough.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	for _, c := range []struct {
		id   Identity
		want syscall.Errno
	}{
		{Identity{Uid: 1003, Gid: 2000}, syscall.EACCES}, // its group may; its named entry may not
		{Identity{Uid: 1005, Gid: 1005}, 0},              // others may not; its named entry may
		{Identity{Uid: 1004, Gid: 2000}, 0},              // the group
	} {
		var next atomic.Pointer[Identity]
		next.Store(&c.id)
		s := NewServer(fsys, &Options{Logf: t.Logf, ACLs: fsys, Identify: func(net.Conn) (Peer, error) {
			return Peer{Identity: *next.Load()}, nil
		}})
		sock := filepath.Join(t.TempDir(), "9p.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		go s.Serve(l)
		r := dialRaw(t, sock)
		r.version(65536)
		r.ok(&Tattach{Fid: 1, Afid: NoFid, NUname: c.id.Uid}, MsgRattach)
		r.ok(walkMsg(1, 2, "f"), MsgRwalk)
		if got := rpcErr(r, &Tlopen{Fid: 2, Flags: syscall.O_RDWR}); got != c.want {
			t.Errorf("uid %d gid %d: open O_RDWR: %v, want %v", c.id.Uid, c.id.Gid, errName(got), errName(c.want))
		}
		if got := rpcErr(r, &Txattrwalk{Fid: 1, Newfid: 3, Name: []byte("system.posix_acl_access")}); got != syscall.ENOSYS && got != syscall.EOPNOTSUPP {
			t.Errorf("Txattrwalk with xattrs off: %v, want ENOSYS or EOPNOTSUPP (the ACL is read for the checks, not served)", errName(got))
		}
		r.nc.Close()
		s.Close()
	}
}

// TestPeerMknodWhiteout: a non-root peer makes an overlayfs whiteout (a
// character device 0:0) as the kernel lets it natively since Linux 5.8
// (vfs_mknod's is_whiteout needs no CAP_MKNOD; overlayfs in a client
// makes them on copy-up and unlink), and still no other device. Both as
// a peer identified as uid 65534 and as uid 65534 on a trusted peer: the
// native answer is checked first as uid 65534 in the same directory.
func TestPeerMknodWhiteout(t *testing.T) {
	dir := permTree(t)
	os.Chmod(filepath.Dir(dir), 0o755) // uid 65534 must reach pub natively
	id := Identity{Uid: 65534, Gid: 65534}
	native := func(name string, dev int) error {
		return asCaller(id, func() error {
			return unix.Mknod(filepath.Join(dir, "pub", name), unix.S_IFCHR|0o644, dev)
		})
	}
	if err := native("native-wh", 0); err != nil {
		t.Skipf("natively uid 65534 cannot make a whiteout: %v (Linux 5.8 or later lets it)", err)
	}
	if err := native("native-null", int(unix.Mkdev(1, 3))); err != unix.EPERM {
		t.Fatalf("natively uid 65534 made c 1 3: %v, want EPERM", err)
	}
	for _, c := range []struct {
		name   string
		peer   Peer
		nuname uint32
	}{
		{"identified", Peer{Identity: id}, 65534},
		{"trusted", Peer{Trusted: true}, 65534},
	} {
		t.Run(c.name, func(t *testing.T) {
			sock := startPermServer(t, dir, c.peer)
			r := dialRaw(t, sock)
			r.version(65536)
			r.ok(&Tattach{Fid: 1, Afid: NoFid, NUname: c.nuname}, MsgRattach)
			r.ok(walkMsg(1, 2, "pub"), MsgRwalk)
			wh := "wh-" + c.name
			r.ok(&Tmknod{Dfid: 2, Name: []byte(wh), Mode: syscall.S_IFCHR | 0o644, Gid: 65534}, MsgRmknod)
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(dir, "pub", wh), &st); err != nil {
				t.Fatal(err)
			}
			if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 || st.Uid != 65534 || st.Gid != 65534 {
				t.Errorf("the whiteout on the host: mode %#o rdev %#x owner %d:%d, want a character device 0:0 of 65534:65534",
					st.Mode, st.Rdev, st.Uid, st.Gid)
			}
			r.errno("mknod c 1 3", &Tmknod{Dfid: 2, Name: []byte("null-" + c.name), Mode: syscall.S_IFCHR | 0o644, Major: 1, Minor: 3, Gid: 65534}, syscall.EPERM)
			r.errno("mknod b 0 0", &Tmknod{Dfid: 2, Name: []byte("blk-" + c.name), Mode: syscall.S_IFBLK | 0o644, Gid: 65534}, syscall.EPERM)
			if _, err := os.Lstat(filepath.Join(dir, "pub", "null-"+c.name)); !os.IsNotExist(err) {
				t.Errorf("c 1 3 after EPERM: %v, want no such file", err)
			}
		})
	}
}
