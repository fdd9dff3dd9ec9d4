package p9

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// sampleMessages holds one valid message of every type, with distinct
// non-zero field values so a swapped or dropped field shows.
func sampleMessages() []Message {
	q := QID{Type: QTDir, Version: 0x01020304, Path: 0x1122334455667788}
	w := &Twalk{Fid: 1, Newfid: 2, NNames: 3}
	w.Names[0], w.Names[1], w.Names[2] = []byte("a"), []byte(".."), []byte("long-name.txt")
	rw := &Rwalk{NQIDs: 2}
	rw.QIDs[0], rw.QIDs[1] = q, QID{Path: 9}
	return []Message{
		&Rlerror{Ecode: 2},
		&Tstatfs{Fid: 3}, &Rstatfs{FsType: V9fsMagic, Bsize: 4096, Blocks: 1, Bfree: 2, Bavail: 3, Files: 4, Ffree: 5, Fsid: 6, Namelen: 255},
		&Tlopen{Fid: 3, Flags: DotlRdwr | DotlTrunc}, &Rlopen{QID: q, Iounit: 8192},
		&Tlcreate{Fid: 3, Name: []byte("f"), Flags: DotlCreate, Mode: 0644, Gid: 100}, &Rlcreate{QID: q, Iounit: 1},
		&Tsymlink{Fid: 3, Name: []byte("l"), Target: []byte("../t"), Gid: 5}, &Rsymlink{QID: q},
		&Tmknod{Dfid: 3, Name: []byte("n"), Mode: 0o20644, Major: 1, Minor: 3, Gid: 6}, &Rmknod{QID: q},
		&Trename{Fid: 3, Dfid: 4, Name: []byte("r")}, &Rrename{},
		&Treadlink{Fid: 3}, &Rreadlink{Target: []byte("/x/y")},
		&Tgetattr{Fid: 3, Mask: AttrAll}, &Rgetattr{Valid: AttrBasic, QID: q, Mode: 0o100644, UID: 1, GID: 2, Nlink: 3, Rdev: 4, Size: 5,
			Blksize: 6, Blocks: 7, AtimeSec: 8, AtimeNsec: 9, MtimeSec: 10, MtimeNsec: 11, CtimeSec: 12, CtimeNsec: 13,
			BtimeSec: 14, BtimeNsec: 15, Gen: 16, DataVersion: 17},
		&Tsetattr{Fid: 3, Valid: SetAttrMode | SetAttrSize, Mode: 0600, UID: 1, GID: 2, Size: 3, AtimeSec: 4, AtimeNsec: 5, MtimeSec: 6, MtimeNsec: 7}, &Rsetattr{},
		&Txattrwalk{Fid: 3, Newfid: 4, Name: []byte("user.x")}, &Rxattrwalk{Size: 77},
		&Txattrcreate{Fid: 3, Name: []byte("user.y"), AttrSize: 5, Flags: XattrCreate}, &Rxattrcreate{},
		&Treaddir{Fid: 3, Offset: 99, Count: 4000}, &Rreaddir{Data: []byte("dirent bytes")},
		&Tfsync{Fid: 3, Datasync: 1}, &Rfsync{},
		&Tlock{Fid: 3, LockType: LockTypeWrlck, Flags: LockFlagBlock, Start: 1, Length: 2, ProcID: 3, ClientID: []byte("host")}, &Rlock{Status: LockBlocked},
		&Tgetlock{Fid: 3, LockType: LockTypeRdlck, Start: 1, Length: 2, ProcID: 3, ClientID: []byte("host")},
		&Rgetlock{LockType: LockTypeWrlck, Start: 4, Length: 5, ProcID: 6, ClientID: []byte("other")},
		&Tlink{Dfid: 3, Fid: 4, Name: []byte("hl")}, &Rlink{},
		&Tmkdir{Dfid: 3, Name: []byte("d"), Mode: 0755, Gid: 7}, &Rmkdir{QID: q},
		&Trenameat{OldDirFid: 3, OldName: []byte("o"), NewDirFid: 4, NewName: []byte("n")}, &Rrenameat{},
		&Tunlinkat{DirFid: 3, Name: []byte("u"), Flags: AtRemoveDir}, &Runlinkat{},
		&Tversion{Msize: 8192, Version: []byte(Version)}, &Rversion{Msize: 4096, Version: []byte(Version)},
		&Tauth{Afid: 5, Uname: []byte("u"), Aname: []byte("a"), NUname: 1000}, &Rauth{QID: q},
		&Tattach{Fid: 1, Afid: NoFid, Uname: []byte("root"), Aname: []byte(""), NUname: 0}, &Rattach{QID: q},
		&Tflush{OldTag: 7}, &Rflush{},
		w, rw,
		&Tread{Fid: 3, Offset: 1 << 40, Count: 4096}, &Rread{Data: []byte("file data")},
		&Twrite{Fid: 3, Offset: 5, Data: []byte("payload")}, &Rwrite{Count: 7},
		&Tclunk{Fid: 3}, &Rclunk{},
		&Tremove{Fid: 3}, &Rremove{},
	}
}

func TestSamplesCoverEveryType(t *testing.T) {
	seen := map[MsgType]bool{}
	for _, m := range sampleMessages() {
		seen[m.Type()] = true
	}
	for _, typ := range allTypes {
		if !seen[typ] {
			t.Errorf("no sample message of %v", typ)
		}
	}
	if len(seen) != len(allTypes) {
		t.Errorf("%d sample types, %d known types", len(seen), len(allTypes))
	}
}

func TestRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		t.Run(m.Type().String(), func(t *testing.T) {
			b, err := Encode(nil, 1<<16, 42, m)
			if err != nil {
				t.Fatal(err)
			}
			if got := binary.LittleEndian.Uint32(b); int(got) != len(b) {
				t.Fatalf("size field %d, message %d bytes", got, len(b))
			}
			tag, m2, err := Decode(b, 1<<16)
			if err != nil || tag != 42 {
				t.Fatalf("decode: tag %d err %v", tag, err)
			}
			if !reflect.DeepEqual(m, m2) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", m2, m)
			}
			// Every strict prefix of the body is malformed, never a panic.
			for n := HeaderSize; n < len(b); n++ {
				if DecodeBody(b[HeaderSize:n], newMessage(m.Type())) == nil {
					t.Fatalf("prefix of %d bytes decoded", n)
				}
			}
			// So is one trailing byte.
			if DecodeBody(append(b[HeaderSize:len(b):len(b)], 0), newMessage(m.Type())) == nil {
				t.Fatal("trailing byte accepted")
			}
			// An msize one byte short refuses to encode.
			if _, err := Encode(nil, uint32(len(b)-1), 42, m); !errors.Is(err, ErrTooBig) {
				t.Fatalf("encode into msize %d: %v", len(b)-1, err)
			}
		})
	}
}

// Fixed sizes from the protocol reference, to pin the layouts.
func TestFixedSizes(t *testing.T) {
	for _, tc := range []struct {
		m    Message
		size int
	}{
		{&Rlerror{}, 11}, {&Rstatfs{}, 67}, {&Rlopen{}, 24}, {&Rgetattr{}, 160}, {&Tsetattr{}, 67},
		{&Rattach{}, 20}, {&Tflush{}, 9}, {&Tread{}, 23}, {&Tclunk{}, 11}, {&Rwrite{}, 11},
		{&Treaddir{}, 23}, {&Twrite{}, WriteHeaderSize}, {&Rread{}, ReadHeaderSize},
	} {
		b, err := Encode(nil, 1<<16, 0, tc.m)
		if err != nil || len(b) != tc.size {
			t.Errorf("%v: %d bytes (%v), want %d", tc.m.Type(), len(b), err, tc.size)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	enc := func(m Message) []byte { b, _ := Encode(nil, 1<<16, 1, m); return b }
	w := walkMsg(1, 2, "a")
	nul := enc(w)
	nul[len(nul)-1] = 0
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"size 3", []byte{3, 0, 0, 0, 120, 0, 0}, ErrMalformed},
		{"size over msize", []byte{1, 0, 1, 0, 120, 0, 0}, ErrTooBig},
		{"size over buffer", []byte{20, 0, 0, 0, 120, 0, 0, 1, 0, 0, 0}, ErrShort},
		{"unknown type", []byte{7, 0, 0, 0, 99, 0, 0}, ErrUnknownType},
		{"NUL in name", nul, ErrMalformed},
		{"17 names", func() []byte {
			b := enc(walkMsg(1, 2))
			binary.LittleEndian.PutUint16(b[15:], 17)
			for range 17 {
				b = append(b, 1, 0, 'a')
			}
			binary.LittleEndian.PutUint32(b, uint32(len(b)))
			return b
		}(), ErrMalformed},
	} {
		if _, m, err := Decode(tc.b, 1<<16); !errors.Is(err, tc.want) || m != nil {
			t.Errorf("%s: %v %v, want %v and no message", tc.name, m, err, tc.want)
		}
	}
}

// FuzzDecode: no input panics; an error means no message; a message that
// decodes re-encodes to the very same bytes.
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		b, err := Encode(nil, 1<<16, 3, m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tag, m, err := Decode(b, 1<<16)
		if err != nil {
			if m != nil {
				t.Fatalf("error %v with a message", err)
			}
			return
		}
		out, err := Encode(nil, 1<<16, tag, m)
		if err != nil {
			t.Fatalf("re-encode %v: %v", m.Type(), err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip of %v:\n in  %x\n out %x", m.Type(), b, out)
		}
	})
}

// FuzzServe feeds arbitrary bytes to a server after a valid handshake
// (fid 1 = root, fid 2 = an open file). Invariants: no panic while serving
// (a recovered one is logged and fails the run), the connection ends when
// the input does, and its teardown returns every lookup and handle.
func FuzzServe(f *testing.F) {
	for _, m := range sampleMessages() {
		if m.Type()%2 == 0 {
			b, _ := Encode(nil, 8192, 1, m)
			f.Add(b)
		}
	}
	seq := func(ms ...Message) []byte {
		var out []byte
		for i, m := range ms {
			out, _ = Encode(out, 8192, uint16(i+1), m)
		}
		return out
	}
	f.Add(seq(walkMsg(1, 3, "d"), &Tmkdir{Dfid: 1, Name: []byte("d"), Mode: 0755}, walkMsg(1, 3, "d", ".."),
		&Tlopen{Fid: 3}, &Treaddir{Fid: 3, Count: 100}, &Tclunk{Fid: 3}, &Tremove{Fid: 2}))
	f.Add(seq(&Txattrcreate{Fid: 1, Name: []byte("user.x"), AttrSize: 3}, &Twrite{Fid: 1, Data: []byte("abc")},
		&Txattrwalk{Fid: 2, Newfid: 4, Name: []byte("user.x")}, &Tread{Fid: 4, Count: 10}, &Tflush{OldTag: 3}))
	prelude := seq(&Tversion{Msize: 8192, Version: []byte(Version)},
		&Tattach{Fid: 1, Afid: NoFid, Aname: []byte{}}, walkMsg(1, 2),
		&Tlcreate{Fid: 2, Name: []byte("f"), Flags: DotlRdwr, Mode: 0644})
	f.Fuzz(func(t *testing.T, b []byte) {
		m := newMemFS("")
		var panics atomic.Int32
		s := NewServer(m, &Options{MaxRequests: 2, Logf: func(format string, args ...any) {
			if strings.Contains(format, "panic") {
				panics.Add(1)
				t.Logf(format, args...)
			}
		}})
		cli, srv := net.Pipe()
		done := make(chan error, 1)
		go func() { done <- s.ServeConn(srv) }()
		go io.Copy(io.Discard, cli)
		cli.Write(prelude)
		cli.Write(b)
		cli.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("connection not torn down after the input ended")
		}
		if panics.Load() != 0 {
			t.Fatal("panic while serving")
		}
		if l, h := m.outstanding(); l != 0 || h != 0 {
			t.Fatalf("after teardown: %d lookups, %d handles outstanding", l, h)
		}
	})
}
