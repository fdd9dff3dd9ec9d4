package idmap

import (
	"strings"
	"syscall"
	"testing"

	"github.com/fastfsd/fastfsd/fs"
)

func TestParseTranslate(t *testing.T) {
	tests := []struct {
		in   string
		want Entry
		err  string
	}{
		{in: "guest:1000:2000:10", want: Entry{Guest, 1000, 2000, 10}},
		{in: "host:2000:1000:10", want: Entry{Host, 2000, 1000, 10}},
		{in: "squash-guest:0:1001:4294967295", want: Entry{SquashGuest, 0, 1001, 4294967295}},
		{in: "squash-host:0:65534:4294967295", want: Entry{SquashHost, 0, 65534, 4294967295}},
		{in: "forbid-guest:0:1000", want: Entry{ForbidGuest, 0, 0, 1000}},
		{in: "map:0:100000:65536", want: Entry{Bidi, 0, 100000, 65536}},
		{in: "map:0:100000", err: "want map:SOURCE_BASE:TARGET_BASE:COUNT"},
		{in: "forbid-guest:0:1:2", err: "want forbid-guest:GUEST_BASE:COUNT"},
		{in: "swap:0:1:2", err: `type "swap"`},
		{in: "map:0:x:2", err: `field 3 ("x")`},
		{in: "map:-1:0:2", err: "field 2"},
		{in: "map:0:0:0", err: "count must be at least 1"},
		{in: "guest:4294967295:0:2", err: "goes past"},
		{in: "guest:0:4294967295:2", err: "target range"},
		{in: "map:0:0:4294967296", err: "field 4"},
		{in: "", err: "type"},
	}
	for _, tc := range tests {
		got, err := ParseTranslate(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseTranslate(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseTranslate(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseNamespaceMap(t *testing.T) {
	tests := []struct {
		in   string
		want Entry
		err  string
	}{
		{in: ":0:100000:65536:", want: Entry{Bidi, 0, 100000, 65536}},
		{in: "/0/1000/1/", want: Entry{Bidi, 0, 1000, 1}},
		{in: ":0:1000:1", err: "must end with the separator"},
		{in: "0:1000:1:", err: "want :NAMESPACE_ID"},
		{in: ":0:1000:", err: "want 3 fields"},
		{in: ":0:1000:1:2:", err: "want 3 fields"},
		{in: ":0/1000:1:", err: "want 3 fields"},
		{in: ":a:1000:1:", err: "field 2"},
		{in: ":", err: "must end"},
		{in: "", err: "want :NAMESPACE_ID"},
		{in: ":0:0:0:", err: "count"},
	}
	for _, tc := range tests {
		got, err := ParseNamespaceMap(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseNamespaceMap(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseNamespaceMap(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func mustMap(t *testing.T, specs ...string) *Map {
	t.Helper()
	var es []Entry
	for _, s := range specs {
		e, err := ParseTranslate(s)
		if err != nil {
			t.Fatal(err)
		}
		es = append(es, e)
	}
	m, err := New(es)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMap(t *testing.T) {
	// virtiofsd's README example: squash every guest UID to 1001 on the
	// host, show 1001 as 1000 in the guest, the rest unchanged.
	m := mustMap(t, "squash-guest:0:1001:4294967295", "host:1001:1000:1")
	for _, c := range []struct{ guest, host uint32 }{{0, 1001}, {1000, 1001}, {4294967294, 1001}, {4294967295, 4294967295}} {
		if h, ok := m.ToHost(c.guest); !ok || h != c.host {
			t.Errorf("ToHost(%d) = %d, %v; want %d", c.guest, h, ok, c.host)
		}
	}
	for _, c := range []struct{ host, guest uint32 }{{1001, 1000}, {0, 0}, {1002, 1002}} {
		if g := m.ToGuest(c.host); g != c.guest {
			t.Errorf("ToGuest(%d) = %d; want %d", c.host, g, c.guest)
		}
	}
	b := mustMap(t, "map:0:100000:65536", "forbid-guest:65536:100")
	if h, _ := b.ToHost(5); h != 100005 {
		t.Errorf("map: ToHost(5) = %d", h)
	}
	if g := b.ToGuest(100005); g != 5 {
		t.Errorf("map: ToGuest(100005) = %d", g)
	}
	if _, ok := b.ToHost(65600); ok {
		t.Error("forbidden guest ID allowed")
	}
	if h, ok := b.ToHost(65636); !ok || h != 65636 {
		t.Errorf("ID after the forbidden range: %d, %v", h, ok)
	}
	var nilMap *Map
	if h, ok := nilMap.ToHost(7); !ok || h != 7 || nilMap.ToGuest(7) != 7 || !nilMap.Empty() {
		t.Error("nil map is not the identity")
	}
}

func TestNewOverlap(t *testing.T) {
	for _, specs := range [][]string{
		{"guest:0:1000:10", "squash-guest:9:5:1"},
		{"map:0:1000:10", "host:1005:0:1"},
		{"forbid-guest:0:1000", "map:999:5000:1"},
	} {
		var es []Entry
		for _, s := range specs {
			e, _ := ParseTranslate(s)
			es = append(es, e)
		}
		if _, err := New(es); err == nil || !strings.Contains(err.Error(), "overlaps") {
			t.Errorf("New(%v) = %v, want an overlap error", specs, err)
		}
	}
	// Adjacent ranges are fine (virtiofsd issue 198: [0,1000) then 1000).
	es := []Entry{{ForbidGuest, 0, 0, 1000}, {Bidi, 1000, 1000, 1}, {ForbidGuest, 1001, 0, 999}}
	if _, err := New(es); err != nil {
		t.Errorf("adjacent ranges: %v", err)
	}
}

// recFS records the identity each call ran with and answers with fixed
// host owners.
type recFS struct {
	fs.Base
	seen    fs.Caller
	setattr fs.SetAttrIn
	ent     fs.Entry
	supp    uint32
	hasSupp bool
}

func (r *recFS) GetAttr(ctx *fs.Context, ino fs.Inode, fh fs.Handle, hasHandle bool, out *fs.AttrOut) fs.Errno {
	r.seen = ctx.Caller
	out.Attr.Uid, out.Attr.Gid = 100005, 100007
	return 0
}

func (r *recFS) Lookup(ctx *fs.Context, parent fs.Inode, name []byte, out *fs.Entry) fs.Errno {
	r.seen = ctx.Caller
	out.Ino = 5
	out.Attr.Uid, out.Attr.Gid = 100005, 100007
	return 0
}

func (r *recFS) Mkdir(ctx *fs.Context, parent fs.Inode, name []byte, mode uint32, out *fs.Entry) fs.Errno {
	r.seen = ctx.Caller
	r.supp, r.hasSupp = ctx.SuppGid, ctx.HasSuppGid
	out.Ino = 6
	out.Attr.Uid, out.Attr.Gid = ctx.Uid, ctx.Gid
	return 0
}

func (r *recFS) SetAttr(ctx *fs.Context, ino fs.Inode, in *fs.SetAttrIn, out *fs.AttrOut) fs.Errno {
	r.seen = ctx.Caller
	r.setattr = *in
	out.Attr.Uid, out.Attr.Gid = in.Uid, in.Gid
	return 0
}

func (r *recFS) Statx(ctx *fs.Context, ino fs.Inode, fh fs.Handle, hasHandle bool, flags, mask uint32, out *fs.StatxOut) fs.Errno {
	out.Statx.Uid, out.Statx.Gid = 100005, 3
	return 0
}

type sliceSink struct {
	plus    bool
	entries []fs.Entry
}

func (s *sliceSink) Add(e fs.DirEntry, plus *fs.Entry) bool {
	if plus != nil {
		s.entries = append(s.entries, *plus)
	}
	return true
}
func (s *sliceSink) Plus() bool { return s.plus }

// The entry lives in r so that ReadDir itself allocates nothing.
func (r *recFS) ReadDir(ctx *fs.Context, ino fs.Inode, fh fs.Handle, off uint64, dst fs.DirSink) fs.Errno {
	r.ent = fs.Entry{Ino: 9}
	r.ent.Attr.Uid, r.ent.Attr.Gid = 100001, 100002
	dst.Add(fs.DirEntry{Ino: 9, Off: 1, Name: dirName}, &r.ent)
	return 0
}

var dirName = []byte("a")

func TestWrap(t *testing.T) {
	uids := mustMap(t, "map:0:100000:65536", "forbid-guest:65536:1000")
	gids := mustMap(t, "map:0:100000:65536")
	inner := &recFS{}
	w := Wrap(inner, uids, gids)
	ctx := &fs.Context{Caller: fs.Caller{Uid: 5, Gid: 7, Pid: 99}}

	var ao fs.AttrOut
	if e := w.GetAttr(ctx, 2, 0, false, &ao); e != 0 {
		t.Fatal(e)
	}
	if inner.seen != (fs.Caller{Uid: 100005, Gid: 100007, Pid: 99}) {
		t.Errorf("inner ran as %+v", inner.seen)
	}
	if ctx.Caller != (fs.Caller{Uid: 5, Gid: 7, Pid: 99}) {
		t.Errorf("ctx not restored: %+v", ctx.Caller)
	}
	if ao.Attr.Uid != 5 || ao.Attr.Gid != 7 {
		t.Errorf("attr owner %d:%d, want 5:7", ao.Attr.Uid, ao.Attr.Gid)
	}
	var ent fs.Entry
	if e := w.Lookup(ctx, 1, []byte("x"), &ent); e != 0 || ent.Attr.Uid != 5 || ent.Attr.Gid != 7 {
		t.Errorf("lookup owner %d:%d, %v", ent.Attr.Uid, ent.Attr.Gid, e)
	}
	var sx fs.StatxOut
	if e := w.Statx(ctx, 2, 0, false, 0, 0, &sx); e != 0 || sx.Statx.Uid != 5 || sx.Statx.Gid != 3 {
		t.Errorf("statx owner %d:%d, %v", sx.Statx.Uid, sx.Statx.Gid, e)
	}
	sink := &sliceSink{plus: true}
	if e := w.ReadDir(ctx, 2, 0, 0, sink); e != 0 || len(sink.entries) != 1 || sink.entries[0].Attr.Uid != 1 || sink.entries[0].Attr.Gid != 2 {
		t.Errorf("readdirplus owners %+v, %v", sink.entries, e)
	}

	// chown to guest 10 lands as host 100010; a forbidden owner is EPERM.
	in := &fs.SetAttrIn{Valid: fs.SetUid | fs.SetGid, Uid: 10, Gid: 11}
	if e := w.SetAttr(ctx, 2, in, &ao); e != 0 {
		t.Fatal(e)
	}
	if inner.setattr.Uid != 100010 || inner.setattr.Gid != 100011 || ao.Attr.Uid != 10 || ao.Attr.Gid != 11 {
		t.Errorf("chown: host %d:%d, reply %d:%d", inner.setattr.Uid, inner.setattr.Gid, ao.Attr.Uid, ao.Attr.Gid)
	}
	if in.Uid != 10 || in.Gid != 11 {
		t.Errorf("request not restored: %+v", in)
	}
	inner.setattr = fs.SetAttrIn{}
	if e := w.SetAttr(ctx, 2, &fs.SetAttrIn{Valid: fs.SetUid, Uid: 65600}, &ao); e != syscall.EPERM || inner.setattr.Valid != 0 {
		t.Errorf("chown to forbidden uid: %v (inner saw %+v)", e, inner.setattr)
	}

	// A forbidden caller cannot create, and is nobody for everything else.
	bad := &fs.Context{Caller: fs.Caller{Uid: 65600, Gid: 7}}
	if e := w.Mkdir(bad, 1, []byte("d"), 0o755, &ent); e != syscall.EPERM {
		t.Errorf("mkdir by forbidden uid: %v", e)
	}
	if bad.Uid != 65600 {
		t.Errorf("ctx not restored after refusal: %+v", bad.Caller)
	}
	if e := w.GetAttr(bad, 2, 0, false, &ao); e != 0 || inner.seen.Uid != Overflow {
		t.Errorf("forbidden caller ran as %+v, %v", inner.seen, e)
	}
	ctx.SuppGid, ctx.HasSuppGid = 40, true
	if e := w.Mkdir(ctx, 1, []byte("d"), 0o755, &ent); e != 0 || inner.seen.Uid != 100005 || ent.Attr.Uid != 5 {
		t.Errorf("mkdir: ran as %+v, owner %d, %v", inner.seen, ent.Attr.Uid, e)
	}
	if inner.supp != 100040 || !inner.hasSupp || ctx.SuppGid != 40 || !ctx.HasSuppGid {
		t.Errorf("supplementary group: inner saw %d/%v, ctx restored to %d/%v", inner.supp, inner.hasSupp, ctx.SuppGid, ctx.HasSuppGid)
	}
}

func TestWrapIdentityAndMapper(t *testing.T) {
	inner := &recFS{}
	if w := Wrap(inner, nil, &Map{}); w != fs.FileSystem(inner) {
		t.Error("empty maps should not wrap")
	}
	m := mustMap(t, "map:0:1000:1")
	if _, ok := Wrap(inner, m, nil).(fs.Mapper); ok {
		t.Error("wrapper of a non-Mapper claims fs.Mapper")
	}
	if _, ok := Wrap(&mapperRec{}, m, nil).(fs.Mapper); !ok {
		t.Error("wrapper hides fs.Mapper")
	}
}

type mapperRec struct{ recFS }

func (*mapperRec) MapFd(ctx *fs.Context, ino fs.Inode, fh fs.Handle, writable bool) (int, fs.Errno) {
	return 3, 0
}

func TestWrapAllocs(t *testing.T) {
	w := Wrap(&recFS{}, mustMap(t, "map:0:100000:65536"), mustMap(t, "map:0:100000:65536"))
	ctx := &fs.Context{Caller: fs.Caller{Uid: 5, Gid: 7}}
	var ao fs.AttrOut
	var ent fs.Entry
	sink := &sliceSink{plus: true, entries: make([]fs.Entry, 0, 1000)}
	name := []byte("x")
	if a := testing.AllocsPerRun(200, func() {
		w.GetAttr(ctx, 2, 0, false, &ao)
		w.Lookup(ctx, 1, name, &ent)
		w.ReadDir(ctx, 2, 0, 0, sink)
		sink.entries = sink.entries[:0]
	}); a != 0 {
		t.Errorf("GetAttr+Lookup+ReadDir: %v allocs/op", a)
	}
}

// FuzzParse: the command-line parsers reject or accept any input without
// panicking, and what they accept builds a map whose lookups stay in range.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"map:0:100000:65536", "squash-guest:0:1001:4294967295", "forbid-guest:5:1", ":0:1000:1:", "/0/1/2/", "guest:4294967295:0:1", ":"} {
		f.Add(s, uint32(5))
	}
	f.Fuzz(func(t *testing.T, s string, id uint32) {
		for _, parse := range []func(string) (Entry, error){ParseTranslate, ParseNamespaceMap} {
			e, err := parse(s)
			if err != nil {
				continue
			}
			if e.Count == 0 || uint64(e.From)+uint64(e.Count) > 1<<32 {
				t.Fatalf("%q parsed to an invalid range %v", s, e)
			}
			m, err := New([]Entry{e})
			if err != nil {
				t.Fatalf("one entry %v: %v", e, err)
			}
			m.ToHost(id)
			m.ToGuest(id)
		}
	})
}

// TestConfine: a --uid-map leaves no ID outside it usable or visible. With
// :1000:1000:1: guest root (uncovered) must not map to host root, and host
// root's files must not look like guest root's.
func TestConfine(t *testing.T) {
	e, err := ParseNamespaceMap(":1000:1000:1:")
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Confine([]Entry{e}))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []uint32{0, 1, 999, 1001, 65534, 4294967295} {
		if h, ok := m.ToHost(g); ok {
			t.Errorf("unmapped guest ID %d usable as host %d", g, h)
		}
	}
	if h, ok := m.ToHost(1000); !ok || h != 1000 {
		t.Errorf("ToHost(1000) = %d, %v; want 1000", h, ok)
	}
	for _, h := range []uint32{0, 999, 1001, 4294967295} {
		if g := m.ToGuest(h); g != Overflow {
			t.Errorf("unmapped host ID %d shown as %d, want %d", h, g, Overflow)
		}
	}
	if g := m.ToGuest(1000); g != 1000 {
		t.Errorf("ToGuest(1000) = %d", g)
	}
	// The common rootless form: guest 0..65535 is host 100000..; guest
	// 100000 (outside) must not reach the host ID guest root has.
	e, _ = ParseNamespaceMap(":0:100000:65536:")
	m, err = New(Confine([]Entry{e}))
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := m.ToHost(0); !ok || h != 100000 {
		t.Errorf("ToHost(0) = %d, %v", h, ok)
	}
	if _, ok := m.ToHost(100000); ok {
		t.Error("guest 100000 (unmapped) usable")
	}
	if g := m.ToGuest(0); g != Overflow {
		t.Errorf("host root shown as guest %d", g)
	}
	// No entries: everything forbidden and hidden, in ranges New accepts.
	if _, err := New(Confine(nil)); err != nil {
		t.Errorf("Confine(nil): %v", err)
	}
}
