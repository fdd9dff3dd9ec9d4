package p9

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// rawConn speaks 9P over a socket with this package's codec, to send what
// the peer client cannot (Tflush, Tgetlock, xattrs) and what no client
// should (malformed messages).
type rawConn struct {
	t     testing.TB
	nc    net.Conn
	msize uint32
}

func dialRaw(t testing.TB, sock string) *rawConn {
	t.Helper()
	nc, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, msize: 1 << 20}
}

func (r *rawConn) sendBytes(b []byte) {
	r.t.Helper()
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

func (r *rawConn) send(tag uint16, m Message) {
	r.t.Helper()
	b, err := Encode(nil, r.msize, tag, m)
	if err != nil {
		r.t.Fatalf("encode %v: %v", m.Type(), err)
	}
	r.sendBytes(b)
}

// recv reads one reply; err is set if the connection ended.
func (r *rawConn) recv() (uint16, Message, error) {
	var hb [4]byte
	if _, err := io.ReadFull(r.nc, hb[:]); err != nil {
		return 0, nil, err
	}
	size := binary.LittleEndian.Uint32(hb[:])
	if size < HeaderSize || size > r.msize {
		r.t.Fatalf("reply size %d", size)
	}
	b := make([]byte, size)
	copy(b, hb[:])
	if _, err := io.ReadFull(r.nc, b[4:]); err != nil {
		return 0, nil, err
	}
	tag, m, err := Decode(b, r.msize)
	if err != nil {
		r.t.Fatalf("decode reply: %v", err)
	}
	return tag, m, nil
}

// rpc sends m and returns the reply, which must carry the same tag.
func (r *rawConn) rpc(m Message) Message {
	r.t.Helper()
	r.send(1, m)
	tag, rm, err := r.recv()
	if err != nil {
		r.t.Fatalf("%v: %v", m.Type(), err)
	}
	if tag != 1 {
		r.t.Fatalf("%v: reply tag %d", m.Type(), tag)
	}
	return rm
}

// ok sends m and fails unless the reply has type want.
func (r *rawConn) ok(m Message, want MsgType) Message {
	r.t.Helper()
	rm := r.rpc(m)
	if rm.Type() != want {
		if e, ok := rm.(*Rlerror); ok {
			r.t.Fatalf("%v: Rlerror %v", m.Type(), syscall.Errno(e.Ecode))
		}
		r.t.Fatalf("%v: reply %v, want %v", m.Type(), rm.Type(), want)
	}
	return rm
}

// errno sends m and fails unless the reply is Rlerror want.
func (r *rawConn) errno(what string, m Message, want syscall.Errno) {
	r.t.Helper()
	rm := r.rpc(m)
	e, ok := rm.(*Rlerror)
	if !ok || syscall.Errno(e.Ecode) != want {
		r.t.Errorf("%s: reply %v %+v, want Rlerror %v", what, rm.Type(), rm, want)
	}
}

func (r *rawConn) version(msize uint32) {
	r.t.Helper()
	r.send(NoTag, &Tversion{Msize: msize, Version: []byte(Version)})
	_, rm, err := r.recv()
	if err != nil {
		r.t.Fatal(err)
	}
	rv, ok := rm.(*Rversion)
	if !ok || string(rv.Version) != Version {
		r.t.Fatalf("Tversion: %+v", rm)
	}
	r.msize = rv.Msize
}

func (r *rawConn) attach(fid uint32) {
	r.t.Helper()
	r.ok(&Tattach{Fid: fid, Afid: NoFid, NUname: 0, Aname: []byte{}}, MsgRattach)
}

func walkMsg(fid, newfid uint32, names ...string) *Twalk {
	m := &Twalk{Fid: fid, Newfid: newfid, NNames: len(names)}
	for i, n := range names {
		m.Names[i] = []byte(n)
	}
	return m
}

// alive checks that the connection was dropped, and that a new one is
// served: one bad client never stops the server.
func expectDropped(t *testing.T, r *rawConn, sock string) {
	t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, m, err := r.recv(); err == nil {
		t.Fatalf("connection not dropped; got %v %+v", m.Type(), m)
	}
	r2 := dialRaw(t, sock)
	r2.version(8192)
	r2.attach(1)
}

func TestFlushBlockedLock(t *testing.T) {
	m := newMemFS("")
	sock, _ := startServer(t, m, &Options{MaxRequests: 1}) // one worker: flush must not need one
	r := dialRaw(t, sock)
	r.version(8192)
	r.attach(1)
	r.ok(&Tlcreate{Fid: 1, Name: []byte("f"), Flags: DotlRdwr, Mode: 0644, Gid: 0}, MsgRlcreate)
	m.setLkBlocks.Store(true)
	r.send(7, &Tlock{Fid: 1, LockType: LockTypeWrlck, Flags: LockFlagBlock, ProcID: 1, ClientID: []byte("c")})
	select {
	case <-m.setLkEntered:
	case <-time.After(5 * time.Second):
		t.Fatal("SetLk not called")
	}
	r.send(8, &Tflush{OldTag: 7})
	// The flushed request's reply (EINTR) comes first, then Rflush.
	tag, rm, err := r.recv()
	if err != nil || tag != 7 {
		t.Fatalf("first reply: tag %d %v %v, want tag 7", tag, rm, err)
	}
	if e, ok := rm.(*Rlerror); !ok || syscall.Errno(e.Ecode) != syscall.EINTR {
		t.Errorf("flushed Tlock reply %+v, want Rlerror EINTR", rm)
	}
	tag, rm, err = r.recv()
	if err != nil || tag != 8 || rm.Type() != MsgRflush {
		t.Fatalf("second reply: tag %d %v %v, want Rflush tag 8", tag, rm, err)
	}
	m.setLkBlocks.Store(false)
	// Flush of a tag not in flight is answered at once.
	r.send(9, &Tflush{OldTag: 1234})
	if tag, rm, _ := r.recv(); tag != 9 || rm.Type() != MsgRflush {
		t.Errorf("flush of unknown tag: %d %v", tag, rm)
	}
	// The connection still serves, and locks work.
	if st := r.ok(&Tlock{Fid: 1, LockType: LockTypeWrlck, ProcID: 1, ClientID: []byte("c")}, MsgRlock).(*Rlock); st.Status != LockSuccess {
		t.Errorf("lock status %d", st.Status)
	}
}

// TestFlushQueued: with the only worker blocked, a request waits in the
// read-ahead queue; a Tflush naming it is answered after it, and a Tflush
// of the blocked one still gets through.
func TestFlushQueued(t *testing.T) {
	m := newMemFS("")
	sock, _ := startServer(t, m, &Options{MaxRequests: 1})
	r := dialRaw(t, sock)
	r.version(8192)
	r.attach(1)
	r.ok(&Tlcreate{Fid: 1, Name: []byte("f"), Flags: DotlRdwr, Mode: 0644}, MsgRlcreate)
	m.setLkBlocks.Store(true)
	r.send(7, &Tlock{Fid: 1, LockType: LockTypeWrlck, ProcID: 1, ClientID: []byte("c")})
	<-m.setLkEntered
	r.send(8, &Tgetattr{Fid: 1, Mask: AttrBasic}) // queued behind the lock
	r.send(9, &Tflush{OldTag: 8})
	r.send(10, &Tflush{OldTag: 7})
	want := []struct {
		tag uint16
		typ MsgType
	}{{7, MsgRlerror}, {10, MsgRflush}, {8, MsgRlerror}, {9, MsgRflush}}
	for i, w := range want {
		tag, rm, err := r.recv()
		if err != nil {
			t.Fatal(err)
		}
		if tag != w.tag || rm.Type() != w.typ {
			t.Fatalf("reply %d: tag %d %v %+v, want tag %d %v", i, tag, rm.Type(), rm, w.tag, w.typ)
		}
		if e, ok := rm.(*Rlerror); ok && syscall.Errno(e.Ecode) != syscall.EINTR {
			t.Errorf("reply %d: %v, want EINTR", i, syscall.Errno(e.Ecode))
		}
	}
	m.setLkBlocks.Store(false)
	r.ok(&Tgetattr{Fid: 1, Mask: AttrBasic}, MsgRgetattr)
}

func TestFlushOnDisconnect(t *testing.T) {
	m := newMemFS("")
	sock, _ := startServer(t, m, nil)
	r := dialRaw(t, sock)
	r.version(8192)
	r.attach(1)
	r.ok(&Tlcreate{Fid: 1, Name: []byte("f"), Flags: DotlRdwr, Mode: 0644}, MsgRlcreate)
	m.setLkBlocks.Store(true)
	r.send(7, &Tlock{Fid: 1, LockType: LockTypeWrlck, ProcID: 1, ClientID: []byte("c")})
	<-m.setLkEntered
	r.nc.Close() // teardown interrupts the blocked request and frees the fids
	waitOutstanding(t, m)
}

func TestLocks(t *testing.T) {
	m := newMemFS("")
	sock, _ := startServer(t, m, nil)
	r := dialRaw(t, sock)
	r.version(8192)
	r.attach(1)
	r.ok(&Tlcreate{Fid: 1, Name: []byte("f"), Flags: DotlRdwr, Mode: 0644}, MsgRlcreate)
	r.attach(2)
	r.ok(walkMsg(2, 3, "f"), MsgRwalk)
	r.ok(&Tlopen{Fid: 3, Flags: DotlRdwr}, MsgRlopen)

	st := r.ok(&Tlock{Fid: 1, LockType: LockTypeWrlck, Start: 100, Length: 50, ProcID: 11, ClientID: []byte("hostA")}, MsgRlock).(*Rlock)
	if st.Status != LockSuccess {
		t.Fatalf("lock: status %d", st.Status)
	}
	st = r.ok(&Tlock{Fid: 3, LockType: LockTypeRdlck, Start: 120, Length: 0, ProcID: 12, ClientID: []byte("hostB")}, MsgRlock).(*Rlock)
	if st.Status != LockBlocked {
		t.Errorf("conflicting lock: status %d, want BLOCKED", st.Status)
	}
	gl := r.ok(&Tgetlock{Fid: 3, LockType: LockTypeRdlck, Start: 0, Length: 0, ProcID: 12, ClientID: []byte("hostB")}, MsgRgetlock).(*Rgetlock)
	if gl.LockType != LockTypeWrlck || gl.Start != 100 || gl.Length != 50 || gl.ProcID != 11 {
		t.Errorf("getlock: %+v, want the write lock 100+50 of pid 11", gl)
	}
	gl = r.ok(&Tgetlock{Fid: 3, LockType: LockTypeRdlck, Start: 0, Length: 100, ProcID: 12, ClientID: []byte("hostB")}, MsgRgetlock).(*Rgetlock)
	if gl.LockType != LockTypeUnlck {
		t.Errorf("getlock without conflict: %+v, want UNLCK", gl)
	}
	r.errno("lock bad type", &Tlock{Fid: 3, LockType: 7, ClientID: []byte("x")}, syscall.EINVAL)
	r.errno("lock overflowing range", &Tlock{Fid: 3, LockType: LockTypeRdlck, Start: 1 << 63, Length: 1<<63 + 2, ClientID: []byte("x")}, syscall.EINVAL)
	r.errno("lock unopened fid", &Tlock{Fid: 2, LockType: LockTypeRdlck, ClientID: []byte("x")}, syscall.EBADF)
	r.errno("getlock bad fid", &Tgetlock{Fid: 99, LockType: LockTypeRdlck, ClientID: []byte("x")}, syscall.EBADF)
}

func TestXattrs(t *testing.T) {
	m := newMemFS("")
	sock, _ := startServer(t, m, nil)
	r := dialRaw(t, sock)
	r.version(8192)
	r.attach(1)
	r.ok(walkMsg(1, 2), MsgRwalk)
	val := []byte("hello xattr value")
	// Set: xattrcreate, write in two pieces, clunk.
	r.ok(&Txattrcreate{Fid: 2, Name: []byte("user.a"), AttrSize: uint64(len(val)), Flags: 0}, MsgRxattrcreate)
	r.errno("walk from xattr fid", walkMsg(2, 9), syscall.EBADF)
	r.ok(&Twrite{Fid: 2, Offset: 0, Data: val[:5]}, MsgRwrite)
	r.ok(&Twrite{Fid: 2, Offset: 5, Data: val[5:]}, MsgRwrite)
	r.errno("write past attr_size", &Twrite{Fid: 2, Offset: 5, Data: val}, syscall.ERANGE)
	r.ok(&Tclunk{Fid: 2}, MsgRclunk)
	// Get: xattrwalk then read.
	xw := r.ok(&Txattrwalk{Fid: 1, Newfid: 3, Name: []byte("user.a")}, MsgRxattrwalk).(*Rxattrwalk)
	if xw.Size != uint64(len(val)) {
		t.Errorf("xattrwalk size %d", xw.Size)
	}
	rd := r.ok(&Tread{Fid: 3, Offset: 6, Count: 100}, MsgRread).(*Rread)
	if !bytes.Equal(rd.Data, val[6:]) {
		t.Errorf("xattr read %q", rd.Data)
	}
	r.ok(&Tclunk{Fid: 3}, MsgRclunk)
	// List.
	r.ok(walkMsg(1, 2), MsgRwalk)
	r.ok(&Txattrcreate{Fid: 2, Name: []byte("user.b"), AttrSize: 0}, MsgRxattrcreate)
	r.ok(&Tclunk{Fid: 2}, MsgRclunk) // empty value
	r.ok(&Txattrwalk{Fid: 1, Newfid: 3, Name: []byte{}}, MsgRxattrwalk)
	rd = r.ok(&Tread{Fid: 3, Offset: 0, Count: 100}, MsgRread).(*Rread)
	if string(rd.Data) != "user.a\x00user.b\x00" {
		t.Errorf("xattr list %q", rd.Data)
	}
	r.ok(&Tclunk{Fid: 3}, MsgRclunk)
	// Remove: size 0 with XATTR_REPLACE (what Linux sends for removexattr).
	r.ok(walkMsg(1, 2), MsgRwalk)
	r.ok(&Txattrcreate{Fid: 2, Name: []byte("user.a"), AttrSize: 0, Flags: XattrReplace}, MsgRxattrcreate)
	r.ok(&Tclunk{Fid: 2}, MsgRclunk)
	r.errno("xattrwalk removed", &Txattrwalk{Fid: 1, Newfid: 3, Name: []byte("user.a")}, syscall.ENODATA)
	// Fewer bytes than announced: EINVAL at clunk, and the fid is gone.
	r.ok(walkMsg(1, 2), MsgRwalk)
	r.ok(&Txattrcreate{Fid: 2, Name: []byte("user.c"), AttrSize: 10}, MsgRxattrcreate)
	r.ok(&Twrite{Fid: 2, Offset: 0, Data: []byte("abc")}, MsgRwrite)
	r.errno("short xattr at clunk", &Tclunk{Fid: 2}, syscall.EINVAL)
	r.errno("clunk again", &Tclunk{Fid: 2}, syscall.EBADF)
	r.errno("xattrcreate too big", &Txattrcreate{Fid: 1, Name: []byte("user.d"), AttrSize: XattrSizeMax + 1}, syscall.E2BIG)
	r.errno("xattrcreate bad flags", &Txattrcreate{Fid: 1, Name: []byte("user.d"), Flags: 4}, syscall.EINVAL)
	r.ok(walkMsg(1, 2), MsgRwalk)
	r.ok(&Txattrcreate{Fid: 2, Name: []byte("user.b"), AttrSize: 1, Flags: XattrCreate}, MsgRxattrcreate)
	r.ok(&Twrite{Fid: 2, Data: []byte("z")}, MsgRwrite)
	r.errno("XATTR_CREATE of an existing name, at clunk", &Tclunk{Fid: 2}, syscall.EEXIST)
}

func TestFidRules(t *testing.T) {
	m := newMemFS("")
	sock, _ := startServer(t, m, &Options{MaxFids: 4})
	r := dialRaw(t, sock)
	r.version(8192)
	r.attach(1)
	r.errno("attach to used fid", &Tattach{Fid: 1, Afid: NoFid, Aname: []byte{}}, syscall.EBADF)
	r.errno("attach with afid", &Tattach{Fid: 5, Afid: 3, Aname: []byte{}}, syscall.EBADF)
	r.errno("auth", &Tauth{Afid: 5, Uname: []byte("u"), Aname: []byte{}, NUname: 0}, syscall.EOPNOTSUPP)
	r.ok(&Tmkdir{Dfid: 1, Name: []byte("d"), Mode: 0755}, MsgRmkdir)
	// Clone, then walk newfid already in use.
	r.ok(walkMsg(1, 2), MsgRwalk)
	r.errno("walk to used newfid", walkMsg(1, 2, "d"), syscall.EBADF)
	r.errno("walk bad fid", walkMsg(77, 78), syscall.EBADF)
	// Partial walk: Rwalk with fewer QIDs, newfid not created.
	rw := r.ok(walkMsg(1, 3, "d", "missing", "x"), MsgRwalk).(*Rwalk)
	if rw.NQIDs != 1 || rw.QIDs[0].Type != QTDir {
		t.Errorf("partial walk: %d qids %+v", rw.NQIDs, rw.QIDs[0])
	}
	r.errno("clunk of newfid after partial walk", &Tclunk{Fid: 3}, syscall.EBADF)
	r.errno("walk fails at first name", walkMsg(1, 3, "missing"), syscall.ENOENT)
	rw = r.ok(walkMsg(1, 3, "d", "x/y"), MsgRwalk).(*Rwalk)
	if rw.NQIDs != 1 {
		t.Errorf("walk stopping at an invalid name: %d qids, want 1", rw.NQIDs)
	}
	r.errno("newfid after a walk stopped at an invalid name", &Tclunk{Fid: 3}, syscall.EBADF)
	// Walk with newfid == fid moves the fid.
	r.ok(walkMsg(2, 2, "d"), MsgRwalk)
	ga := r.ok(&Tgetattr{Fid: 2, Mask: AttrAll}, MsgRgetattr).(*Rgetattr)
	if ga.Mode&syscall.S_IFMT != syscall.S_IFDIR || ga.Valid&AttrBasic != AttrBasic {
		t.Errorf("getattr after walk-in-place: %+v", ga)
	}
	// Opened fids cannot be walked or reopened.
	r.ok(&Tlopen{Fid: 2, Flags: DotlRdonly}, MsgRlopen)
	r.errno("walk opened", walkMsg(2, 3), syscall.EBADF)
	r.errno("reopen", &Tlopen{Fid: 2, Flags: DotlRdonly}, syscall.EBADF)
	r.errno("read dir fid", &Tread{Fid: 2, Count: 10}, syscall.EISDIR)
	r.errno("readdir unopened", &Treaddir{Fid: 1, Count: 100}, syscall.EBADF)
	r.errno("open dir for writing", &Tlopen{Fid: 1, Flags: DotlRdwr}, syscall.EISDIR)
	r.errno("open NOACCESS", &Tlopen{Fid: 1, Flags: DotlNoaccess}, syscall.EINVAL)
	r.errno("write unopened", &Twrite{Fid: 1, Data: []byte("x")}, syscall.EBADF)
	r.errno("fsync unopened", &Tfsync{Fid: 1}, syscall.EBADF)
	// Fid limit: 1, 2 are in use; 3 and 4 fit, 5 does not (a trusted
	// peer's table full: ENFILE, fid.go).
	r.ok(walkMsg(1, 3), MsgRwalk)
	r.ok(walkMsg(1, 4), MsgRwalk)
	r.errno("fid limit", walkMsg(1, 5), syscall.ENFILE)
	r.ok(&Tclunk{Fid: 4}, MsgRclunk)
	r.ok(walkMsg(1, 5), MsgRwalk)
	r.errno("NOFID as newfid", walkMsg(1, NoFid), syscall.EBADF)
	// Remove clunks even when it fails.
	r.ok(&Tclunk{Fid: 5}, MsgRclunk)
	r.ok(walkMsg(1, 5), MsgRwalk)
	r.errno("remove root", &Tremove{Fid: 5}, syscall.EBUSY)
	r.errno("fid gone after failed remove", &Tclunk{Fid: 5}, syscall.EBADF)
	// Tversion resets the session: every fid is gone.
	r.version(8192)
	r.errno("fid after Tversion", &Tclunk{Fid: 1}, syscall.EBADF)
	waitOutstanding(t, m)
}

func TestVersion(t *testing.T) {
	m := newMemFS("")
	sock, _ := startServer(t, m, &Options{MaxMsize: 8192})
	r := dialRaw(t, sock)
	r.errno("attach before Tversion", &Tattach{Fid: 1, Afid: NoFid, Aname: []byte{}}, syscall.EPROTO)
	for _, tc := range []struct{ in, out string }{
		{"9P2000", VersionUnknown},
		{"9P2000.u", VersionUnknown},
		{"9P2000.Lx", VersionUnknown},
		{"9P2000.L.Google.7", Version},
		{"9P2000.L", Version},
	} {
		r.send(NoTag, &Tversion{Msize: 1 << 20, Version: []byte(tc.in)})
		_, rm, err := r.recv()
		if err != nil {
			t.Fatal(err)
		}
		rv, ok := rm.(*Rversion)
		if !ok || string(rv.Version) != tc.out || rv.Msize != 8192 {
			t.Errorf("Tversion %q: %+v, want %q msize 8192", tc.in, rm, tc.out)
		}
		if tc.out == VersionUnknown {
			r.errno("attach after unknown version", &Tattach{Fid: 1, Afid: NoFid, Aname: []byte{}}, syscall.EPROTO)
		}
	}
	r.send(NoTag, &Tversion{Msize: 100, Version: []byte(Version)})
	if _, rm, _ := r.recv(); rm.Type() != MsgRlerror {
		t.Errorf("msize 100: %v, want Rlerror", rm.Type())
	}
	r.version(4096)
	if r.msize != 4096 {
		t.Errorf("msize %d, want the client's 4096", r.msize)
	}
}

func TestMsizeBounds(t *testing.T) {
	m := newMemFS(t.TempDir())
	sock, _ := startServer(t, m, &Options{MaxMsize: 4096})
	r := dialRaw(t, sock)
	r.version(1 << 20)
	if r.msize != 4096 {
		t.Fatalf("msize %d", r.msize)
	}
	r.attach(1)
	r.ok(&Tlcreate{Fid: 1, Name: []byte("f"), Flags: DotlRdwr, Mode: 0644}, MsgRlcreate)
	big := bytes.Repeat([]byte{'x'}, 4096-WriteHeaderSize)
	r.ok(&Twrite{Fid: 1, Data: big}, MsgRwrite)
	r.ok(&Twrite{Fid: 1, Offset: uint64(len(big)), Data: big}, MsgRwrite)
	// A read asking for more than fits gets msize - 11 bytes.
	rd := r.ok(&Tread{Fid: 1, Count: 1 << 30}, MsgRread).(*Rread)
	if len(rd.Data) != 4096-ReadHeaderSize {
		t.Errorf("Rread of %d bytes with msize 4096", len(rd.Data))
	}
	// Readdir likewise never exceeds msize, whole entries only.
	r.attach(2)
	for i := 0; i < 200; i++ {
		name := []byte{'n', byte('a' + i%26), byte('a' + i/26)}
		r.ok(&Tmkdir{Dfid: 2, Name: name, Mode: 0755}, MsgRmkdir)
	}
	r.ok(&Tlopen{Fid: 2, Flags: DotlRdonly}, MsgRlopen)
	var off uint64
	total := 0
	for {
		rd := r.ok(&Treaddir{Fid: 2, Offset: off, Count: 1 << 20}, MsgRreaddir).(*Rreaddir)
		if len(rd.Data) == 0 {
			break
		}
		if len(rd.Data) > 4096-ReadHeaderSize {
			t.Fatalf("Rreaddir of %d bytes", len(rd.Data))
		}
		for d := rd.Data; len(d) > 0; {
			if len(d) < 24 {
				t.Fatalf("partial dirent")
			}
			off = binary.LittleEndian.Uint64(d[13:])
			nl := int(binary.LittleEndian.Uint16(d[22:]))
			d = d[24+nl:]
			total++
		}
	}
	if total != 203 { // 200 dirs, "f", "." and ".."
		t.Errorf("readdir: %d entries, want 203", total)
	}
	// A message larger than msize drops the connection; others go on.
	b, _ := Encode(nil, 1<<20, 1, &Twrite{Fid: 1, Data: make([]byte, 5000)})
	r.sendBytes(b)
	expectDropped(t, r, sock)
}

// TestMalformed sends broken messages: each gets Rlerror, or the
// connection is dropped, and the server keeps serving.
func TestMalformed(t *testing.T) {
	m := newMemFS("")
	sock, _ := startServer(t, m, nil)
	hdr := func(size uint32, typ MsgType, tag uint16, body ...byte) []byte {
		b := binary.LittleEndian.AppendUint32(nil, size)
		b = append(b, byte(typ))
		b = binary.LittleEndian.AppendUint16(b, tag)
		return append(b, body...)
	}
	t.Run("rlerror", func(t *testing.T) {
		r := dialRaw(t, sock)
		r.version(8192)
		r.attach(1)
		cases := []struct {
			name string
			msg  []byte
			want syscall.Errno
		}{
			{"truncated Tgetattr", hdr(11, MsgTgetattr, 1, 1, 0, 0, 0), syscall.EINVAL},
			{"trailing bytes", hdr(12, MsgTclunk, 1, 9, 0, 0, 0, 0), syscall.EINVAL},
			{"unknown type", hdr(7, 99, 1), syscall.EOPNOTSUPP},
			{"9P2000 Topen", hdr(12, 112, 1, 1, 0, 0, 0, 0), syscall.EOPNOTSUPP},
			{"R message as request", hdr(7, MsgRclunk, 1), syscall.EOPNOTSUPP},
			{"Tlerror", hdr(11, MsgTlerror, 1, 0, 0, 0, 0), syscall.EOPNOTSUPP},
			{"bad fid", hdr(11, MsgTclunk, 1, 9, 9, 0, 0), syscall.EBADF},
			{"string length past end", hdr(21, MsgTmkdir, 1, 1, 0, 0, 0, 200, 0, 'a', 0, 0, 0, 0, 0, 0, 0), syscall.EINVAL},
		}
		for _, tc := range cases {
			r.sendBytes(tc.msg)
			tag, rm, err := r.recv()
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			e, ok := rm.(*Rlerror)
			if tag != 1 || !ok || syscall.Errno(e.Ecode) != tc.want {
				t.Errorf("%s: tag %d %v %+v, want Rlerror %v", tc.name, tag, rm.Type(), rm, tc.want)
			}
		}
		names := make([]string, 17)
		for i := range names {
			names[i] = "a"
		}
		w := walkMsg(1, 2, names[:16]...)
		b, _ := Encode(nil, r.msize, 1, w)
		// Patch nwname to 17 and append one more name: 17 names.
		binary.LittleEndian.PutUint16(b[15:], 17)
		b = append(b, 1, 0, 'a')
		binary.LittleEndian.PutUint32(b, uint32(len(b)))
		r.sendBytes(b)
		if _, rm, _ := r.recv(); rm.Type() != MsgRlerror || syscall.Errno(rm.(*Rlerror).Ecode) != syscall.EINVAL {
			t.Errorf("walk of 17 names: %+v", rm)
		}
		r.errno("name with NUL", walkMsg(1, 2, "a\x00b"), syscall.EINVAL)
		r.errno("name with slash", walkMsg(1, 2, "a/b"), syscall.EINVAL)
		r.errno("empty name", walkMsg(1, 2, ""), syscall.EINVAL)
		r.errno("mkdir NUL", &Tmkdir{Dfid: 1, Name: []byte("x\x00")}, syscall.EINVAL)
		r.errno("lcreate slash", &Tlcreate{Fid: 1, Name: []byte("x/y")}, syscall.EINVAL)
		r.errno("symlink empty target", &Tsymlink{Fid: 1, Name: []byte("s"), Target: []byte{}}, syscall.ENOENT)
		r.errno("renameat dot", &Trenameat{OldDirFid: 1, OldName: []byte("."), NewDirFid: 1, NewName: []byte("x")}, syscall.EINVAL)
		// Still serving this connection.
		r.ok(&Tgetattr{Fid: 1, Mask: AttrBasic}, MsgRgetattr)
	})
	drops := []struct {
		name string
		msg  []byte
	}{
		{"size below header", hdr(3, MsgTclunk, 1)},
		{"size above msize", hdr(1<<30, MsgTwrite, 1)},
		{"bad Tflush size", hdr(11, MsgTflush, 1, 0, 0, 0, 0)},
		{"malformed Tversion", hdr(9, MsgTversion, NoTag, 0, 0)},
	}
	for _, tc := range drops {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, sock)
			r.version(8192)
			r.sendBytes(tc.msg)
			expectDropped(t, r, sock)
		})
	}
	t.Run("tag reused in flight", func(t *testing.T) {
		m.setLkBlocks.Store(true)
		defer m.setLkBlocks.Store(false)
		r := dialRaw(t, sock)
		r.version(8192)
		r.attach(1)
		r.ok(&Tlcreate{Fid: 1, Name: []byte("lk"), Flags: DotlRdwr, Mode: 0644}, MsgRlcreate)
		r.send(5, &Tlock{Fid: 1, LockType: LockTypeWrlck, ClientID: []byte("c")})
		<-m.setLkEntered
		r.send(5, &Tclunk{Fid: 1})
		for {
			if _, _, err := r.recv(); err != nil {
				break // dropped (the EINTR reply of the lock may come first)
			}
		}
		r2 := dialRaw(t, sock)
		r2.version(8192)
		r2.attach(1)
	})
	waitOutstanding(t, m)
}

func TestDebugLog(t *testing.T) {
	m := newMemFS("")
	var mu sync.Mutex
	var lines []string
	sock, _ := startServer(t, m, &Options{Debug: func(format string, args ...any) {
		mu.Lock()
		lines = append(lines, fmt.Sprintf(format, args...))
		mu.Unlock()
	}})
	r := dialRaw(t, sock)
	r.version(8192)
	r.attach(1)
	r.errno("walk missing", walkMsg(1, 2, "nope"), syscall.ENOENT)
	mu.Lock()
	defer mu.Unlock()
	if len(lines) != 2 || !strings.Contains(lines[0], "Tattach tag 1") || !strings.Contains(lines[1], "Twalk tag 1") || !strings.Contains(lines[1], "Rlerror 2") {
		t.Errorf("debug log: %q", lines)
	}
}

func TestPanicBecomesEIO(t *testing.T) {
	m := newMemFS("")
	sock, _ := startServer(t, m, &Options{Logf: func(string, ...any) {}})
	r := dialRaw(t, sock)
	r.version(8192)
	r.attach(1)
	r.ok(&Tlcreate{Fid: 1, Name: []byte("f"), Flags: DotlRdwr, Mode: 0644}, MsgRlcreate)
	m.panicOn.Store("Read")
	r.errno("read that panics", &Tread{Fid: 1, Count: 10}, syscall.EIO)
	m.panicOn.Store("")
	r.ok(&Tread{Fid: 1, Count: 10}, MsgRread)
}

// TestOpenPanicLeavesFidWalked: a Tlopen or Tlcreate whose open panics
// answers EIO and leaves its fid as it was (walked), so the connection
// keeps serving it: it can be opened again, and its Tclunk interrupts
// nothing. Before, the panic skipped endOpen and left the fid in
// fidOpening for good (every later Tlopen or Tlcreate EBADF), its opener
// pointing at the request slot, which later requests reuse.
func TestOpenPanicLeavesFidWalked(t *testing.T) {
	m := newMemFS("")
	sock, _ := startServer(t, m, &Options{Logf: func(string, ...any) {}})
	r := dialRaw(t, sock)
	r.version(8192)
	r.attach(1)
	r.ok(walkMsg(1, 2), MsgRwalk)
	r.ok(&Tlcreate{Fid: 2, Name: []byte("f"), Flags: DotlRdwr, Mode: 0644}, MsgRlcreate)
	r.ok(walkMsg(1, 3, "f"), MsgRwalk)
	r.ok(walkMsg(1, 4), MsgRwalk)
	m.panicOn.Store("Open")
	r.errno("Tlopen whose open panics", &Tlopen{Fid: 3, Flags: syscall.O_RDONLY}, syscall.EIO)
	m.panicOn.Store("Create")
	r.errno("Tlcreate whose create panics", &Tlcreate{Fid: 4, Name: []byte("g"), Flags: DotlRdwr, Mode: 0644}, syscall.EIO)
	m.panicOn.Store("")
	r.ok(&Tlopen{Fid: 3, Flags: syscall.O_RDONLY}, MsgRlopen)
	r.ok(&Tlcreate{Fid: 4, Name: []byte("g"), Flags: DotlRdwr, Mode: 0644}, MsgRlcreate)
	r.ok(&Tclunk{Fid: 3}, MsgRclunk)
	r.ok(&Tclunk{Fid: 4}, MsgRclunk)
}

func TestShutdownDrains(t *testing.T) {
	m := newMemFS("")
	sock, s := startServer(t, m, nil)
	r := dialRaw(t, sock)
	r.version(8192)
	r.attach(1)
	r.ok(walkMsg(1, 2), MsgRwalk)
	done := make(chan error)
	go func() { done <- s.Shutdown(t.Context()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}
	waitOutstanding(t, m)
	if !m.destroyed.Load() {
		t.Error("Destroy not called")
	}
	if _, err := net.Dial("unix", sock); err == nil {
		t.Error("listener still accepting after Shutdown")
	} else if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOENT) {
		t.Logf("dial after shutdown: %v", err)
	}
}

// TestShutdownDeadline: a request that never finishes by itself is
// interrupted when Shutdown's context ends, and teardown completes.
func TestShutdownDeadline(t *testing.T) {
	m := newMemFS("")
	sock, s := startServer(t, m, nil)
	r := dialRaw(t, sock)
	r.version(8192)
	r.attach(1)
	r.ok(&Tlcreate{Fid: 1, Name: []byte("f"), Flags: DotlRdwr, Mode: 0644}, MsgRlcreate)
	m.setLkBlocks.Store(true)
	r.send(7, &Tlock{Fid: 1, LockType: LockTypeWrlck, ClientID: []byte("c")})
	<-m.setLkEntered
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Shutdown took %v", d)
	}
	waitOutstanding(t, m)
}

// TestVersionResetsInFlight: Tversion interrupts what runs (its reply comes
// first), then answers, and the fids are gone.
func TestVersionResetsInFlight(t *testing.T) {
	m := newMemFS("")
	sock, _ := startServer(t, m, nil)
	r := dialRaw(t, sock)
	r.version(8192)
	r.attach(1)
	r.ok(&Tlcreate{Fid: 1, Name: []byte("f"), Flags: DotlRdwr, Mode: 0644}, MsgRlcreate)
	m.setLkBlocks.Store(true)
	r.send(7, &Tlock{Fid: 1, LockType: LockTypeWrlck, ClientID: []byte("c")})
	<-m.setLkEntered
	r.send(NoTag, &Tversion{Msize: 8192, Version: []byte(Version)})
	tag, rm, err := r.recv()
	if err != nil || tag != 7 || rm.Type() != MsgRlerror {
		t.Fatalf("first reply: tag %d %+v %v, want the interrupted Tlock", tag, rm, err)
	}
	tag, rm, err = r.recv()
	if err != nil || tag != NoTag || rm.Type() != MsgRversion {
		t.Fatalf("second reply: tag %d %+v %v, want Rversion", tag, rm, err)
	}
	m.setLkBlocks.Store(false)
	r.errno("fid after reset", &Tgetattr{Fid: 1, Mask: AttrBasic}, syscall.EBADF)
	waitOutstanding(t, m)
}

// TestRemoveAfterRenameBehindBack: a fid whose name was taken over by
// another file (renamed through another fid) must not remove or rename
// that other file.
func TestRemoveAfterRenameBehindBack(t *testing.T) {
	m := newMemFS("")
	sock, _ := startServer(t, m, nil)
	r := dialRaw(t, sock)
	r.version(8192)
	r.attach(1)
	r.ok(walkMsg(1, 2), MsgRwalk)
	r.ok(&Tlcreate{Fid: 2, Name: []byte("x"), Flags: DotlRdwr, Mode: 0644}, MsgRlcreate)
	r.ok(walkMsg(1, 3, "x"), MsgRwalk)
	r.ok(&Trenameat{OldDirFid: 1, OldName: []byte("x"), NewDirFid: 1, NewName: []byte("y")}, MsgRrenameat)
	r.ok(walkMsg(1, 4), MsgRwalk)
	r.ok(&Tlcreate{Fid: 4, Name: []byte("x"), Flags: DotlRdwr, Mode: 0644}, MsgRlcreate) // a new "x"
	r.errno("rename of stale name", &Trename{Fid: 3, Dfid: 1, Name: []byte("z")}, syscall.ESTALE)
	r.errno("remove of stale name", &Tremove{Fid: 3}, syscall.ESTALE)
	r.ok(walkMsg(1, 5, "x"), MsgRwalk) // the new x survived
	r.ok(walkMsg(1, 6, "y"), MsgRwalk)
	r.ok(&Tremove{Fid: 6}, MsgRremove)
}

// TestXattrBudget: xattr buffers held by fids are bounded per connection,
// and clunking returns the budget.
func TestXattrBudget(t *testing.T) {
	m := newMemFS("")
	sock, _ := startServer(t, m, nil)
	r := dialRaw(t, sock)
	r.version(8192)
	r.attach(1)
	n := xattrBudget / XattrSizeMax
	for i := range n {
		r.ok(walkMsg(1, uint32(10+i)), MsgRwalk)
		r.ok(&Txattrcreate{Fid: uint32(10 + i), Name: []byte("user.x"), AttrSize: XattrSizeMax}, MsgRxattrcreate)
	}
	r.ok(walkMsg(1, 9), MsgRwalk)
	r.errno("past the budget", &Txattrcreate{Fid: 9, Name: []byte("user.x"), AttrSize: XattrSizeMax}, syscall.ENOMEM)
	r.errno("clunk of a short value", &Tclunk{Fid: 10}, syscall.EINVAL)
	r.ok(&Txattrcreate{Fid: 9, Name: []byte("user.x"), AttrSize: XattrSizeMax}, MsgRxattrcreate)
}
