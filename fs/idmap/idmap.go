// Package idmap translates user and group IDs between a client (a VM's
// guest, a 9P client, a FUSE mount's callers) and the host, as virtiofsd's
// --translate-uid / --translate-gid do, and wraps any fs.FileSystem with
// such a translation.
//
// Guest-to-host and host-to-guest are independent tables of ranges; an ID
// no range covers maps to itself. A guest ID in a forbidden range fails the
// request that would give a file that owner (EPERM).
package idmap

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Kind is the type of one --translate-uid/--translate-gid entry.
type Kind uint8

const (
	// Guest maps guest [From, From+Count) 1:1 onto host [To, …).
	Guest Kind = iota
	// Host maps host [From, From+Count) 1:1 onto guest [To, …).
	Host
	// SquashGuest maps every guest ID in [From, From+Count) to host To.
	SquashGuest
	// SquashHost maps every host ID in [From, From+Count) to guest To.
	SquashHost
	// ForbidGuest refuses guest IDs in [From, From+Count).
	ForbidGuest
	// Bidi is "map": Guest and Host together.
	Bidi
)

var kindNames = [...]string{Guest: "guest", Host: "host", SquashGuest: "squash-guest", SquashHost: "squash-host", ForbidGuest: "forbid-guest", Bidi: "map"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// Entry is one parsed translation.
type Entry struct {
	Kind  Kind
	From  uint32 // first source ID
	To    uint32 // first target ID (single target for squash kinds; unused for ForbidGuest)
	Count uint32
}

func (e Entry) String() string {
	if e.Kind == ForbidGuest {
		return fmt.Sprintf("%s:%d:%d", e.Kind, e.From, e.Count)
	}
	return fmt.Sprintf("%s:%d:%d:%d", e.Kind, e.From, e.To, e.Count)
}

// ParseTranslate parses one --translate-uid/--translate-gid value:
//
//	guest:GUEST:HOST:COUNT   host:HOST:GUEST:COUNT   map:GUEST:HOST:COUNT
//	squash-guest:GUEST:HOST:COUNT   squash-host:HOST:GUEST:COUNT
//	forbid-guest:GUEST:COUNT
func ParseTranslate(s string) (Entry, error) {
	f := strings.Split(s, ":")
	var e Entry
	switch f[0] {
	case "guest":
		e.Kind = Guest
	case "host":
		e.Kind = Host
	case "squash-guest":
		e.Kind = SquashGuest
	case "squash-host":
		e.Kind = SquashHost
	case "forbid-guest":
		e.Kind = ForbidGuest
	case "map":
		e.Kind = Bidi
	default:
		return e, fmt.Errorf("translation %q: type %q: want guest, host, squash-guest, squash-host, forbid-guest or map", s, f[0])
	}
	want := 4
	if e.Kind == ForbidGuest {
		want = 3
	}
	if len(f) != want {
		if e.Kind == ForbidGuest {
			return e, fmt.Errorf("translation %q: want forbid-guest:GUEST_BASE:COUNT", s)
		}
		return e, fmt.Errorf("translation %q: want %s:SOURCE_BASE:TARGET_BASE:COUNT", s, f[0])
	}
	nums, err := parseIDs(s, f[1:])
	if err != nil {
		return e, err
	}
	if e.Kind == ForbidGuest {
		e.From, e.Count = nums[0], nums[1]
	} else {
		e.From, e.To, e.Count = nums[0], nums[1], nums[2]
	}
	return e, e.check(s)
}

// ParseNamespaceMap parses virtiofsd's --uid-map/--gid-map value
// ":NAMESPACE_ID:HOST_ID:COUNT:" (the first character is the separator and
// must close the value). fastfsd serves it as the bidirectional
// translation map:NAMESPACE_ID:HOST_ID:COUNT, since the guest sees the IDs
// of virtiofsd's user namespace.
func ParseNamespaceMap(s string) (Entry, error) {
	if s == "" {
		return Entry{}, fmt.Errorf("id map %q: want :NAMESPACE_ID:HOST_ID:COUNT:", s)
	}
	sep := s[0]
	if sep >= '0' && sep <= '9' {
		return Entry{}, fmt.Errorf("id map %q: want :NAMESPACE_ID:HOST_ID:COUNT: (any separator, also at the start and the end)", s)
	}
	if len(s) < 2 || s[len(s)-1] != sep {
		return Entry{}, fmt.Errorf("id map %q: must end with the separator %q: want %cNAMESPACE_ID%cHOST_ID%cCOUNT%c", s, sep, sep, sep, sep, sep)
	}
	f := strings.Split(s[1:len(s)-1], string(sep))
	if len(f) != 3 {
		return Entry{}, fmt.Errorf("id map %q: want 3 fields, got %d: %cNAMESPACE_ID%cHOST_ID%cCOUNT%c", s, len(f), sep, sep, sep, sep)
	}
	nums, err := parseIDs(s, f)
	if err != nil {
		return Entry{}, err
	}
	e := Entry{Kind: Bidi, From: nums[0], To: nums[1], Count: nums[2]}
	return e, e.check(s)
}

func parseIDs(s string, f []string) ([]uint32, error) {
	nums := make([]uint32, len(f))
	for i, v := range f {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("translation %q: field %d (%q): want a decimal number up to %d", s, i+2, v, uint32(math.MaxUint32))
		}
		nums[i] = uint32(n)
	}
	return nums, nil
}

func (e Entry) check(s string) error {
	if e.Count == 0 {
		return fmt.Errorf("translation %q: count must be at least 1", s)
	}
	if uint64(e.From)+uint64(e.Count) > 1<<32 {
		return fmt.Errorf("translation %q: range %d+%d goes past 4294967295", s, e.From, e.Count)
	}
	if (e.Kind == Guest || e.Kind == Host || e.Kind == Bidi) && uint64(e.To)+uint64(e.Count) > 1<<32 {
		return fmt.Errorf("translation %q: target range %d+%d goes past 4294967295", s, e.To, e.Count)
	}
	return nil
}

// span is one range of a direction's table.
type span struct {
	lo, hi uint64 // [lo, hi)
	to     uint32 // target base, or the single target when squash
	squash bool
	forbid bool
	src    Entry
}

// Table is one direction of one ID kind, sorted by lo, ranges disjoint.
type table []span

func (t table) lookup(id uint32) (uint32, bool) {
	// Few entries in practice; a binary search keeps it O(log n) anyway.
	i := sort.Search(len(t), func(i int) bool { return t[i].hi > uint64(id) })
	if i == len(t) || uint64(id) < t[i].lo {
		return id, true
	}
	s := &t[i]
	switch {
	case s.forbid:
		return 0, false
	case s.squash:
		return s.to, true
	}
	return s.to + uint32(uint64(id)-s.lo), true
}

// Map is the translation of one ID kind (UIDs or GIDs). The zero Map (and
// a nil *Map) maps every ID to itself.
type Map struct {
	toHost  table
	toGuest table
}

// New builds a Map from entries. Source ranges in one direction must not
// overlap (virtiofsd's rule): the error names both entries.
func New(entries []Entry) (*Map, error) {
	m := &Map{}
	add := func(t *table, s span) error {
		for _, o := range *t {
			if s.lo < o.hi && o.lo < s.hi {
				return fmt.Errorf("translation %s overlaps %s", s.src, o.src)
			}
		}
		*t = append(*t, s)
		return nil
	}
	for _, e := range entries {
		lo, hi := uint64(e.From), uint64(e.From)+uint64(e.Count)
		var err error
		switch e.Kind {
		case Guest:
			err = add(&m.toHost, span{lo: lo, hi: hi, to: e.To, src: e})
		case Host:
			err = add(&m.toGuest, span{lo: lo, hi: hi, to: e.To, src: e})
		case SquashGuest:
			err = add(&m.toHost, span{lo: lo, hi: hi, to: e.To, squash: true, src: e})
		case SquashHost:
			err = add(&m.toGuest, span{lo: lo, hi: hi, to: e.To, squash: true, src: e})
		case ForbidGuest:
			err = add(&m.toHost, span{lo: lo, hi: hi, forbid: true, src: e})
		case Bidi:
			if err = add(&m.toHost, span{lo: lo, hi: hi, to: e.To, src: e}); err == nil {
				err = add(&m.toGuest, span{lo: uint64(e.To), hi: uint64(e.To) + uint64(e.Count), to: e.From, src: e})
			}
		default:
			err = fmt.Errorf("translation %s: unknown kind", e)
		}
		if err != nil {
			return nil, err
		}
	}
	sort.Slice(m.toHost, func(i, j int) bool { return m.toHost[i].lo < m.toHost[j].lo })
	sort.Slice(m.toGuest, func(i, j int) bool { return m.toGuest[i].lo < m.toGuest[j].lo })
	return m, nil
}

// Empty reports whether m maps every ID to itself.
func (m *Map) Empty() bool { return m == nil || len(m.toHost) == 0 && len(m.toGuest) == 0 }

// ToHost maps a guest ID to the host; false if the ID is forbidden.
func (m *Map) ToHost(id uint32) (uint32, bool) {
	if m == nil {
		return id, true
	}
	return m.toHost.lookup(id)
}

// ToGuest maps a host ID to the ID the guest sees.
func (m *Map) ToGuest(id uint32) uint32 {
	if m == nil {
		return id
	}
	v, _ := m.toGuest.lookup(id)
	return v
}

// Confine returns entries completed with the meaning of a user namespace's
// map (virtiofsd --uid-map/--gid-map): a guest ID no entry covers cannot be
// used (ForbidGuest: it owns nothing it creates or is given, and its other
// requests run as Overflow), and a host ID no entry covers is shown to the
// guest as Overflow (SquashHost), as the kernel shows an unmapped ID inside
// a namespace. Without this an unmapped guest ID would map to itself: with
// --uid-map=:1000:1000:1: guest root would create files as host root.
func Confine(entries []Entry) []Entry {
	var guest, host [][2]uint64 // covered [lo, hi) per direction
	for _, e := range entries {
		lo, hi := uint64(e.From), uint64(e.From)+uint64(e.Count)
		switch e.Kind {
		case Guest, SquashGuest, ForbidGuest:
			guest = append(guest, [2]uint64{lo, hi})
		case Host, SquashHost:
			host = append(host, [2]uint64{lo, hi})
		case Bidi:
			guest = append(guest, [2]uint64{lo, hi})
			host = append(host, [2]uint64{uint64(e.To), uint64(e.To) + uint64(e.Count)})
		}
	}
	out := append([]Entry(nil), entries...)
	for _, g := range gaps(guest) {
		out = append(out, Entry{Kind: ForbidGuest, From: uint32(g[0]), Count: uint32(g[1] - g[0])})
	}
	for _, g := range gaps(host) {
		out = append(out, Entry{Kind: SquashHost, From: uint32(g[0]), To: Overflow, Count: uint32(g[1] - g[0])})
	}
	return out
}

// gaps returns the parts of [0, 1<<32) that no range covers. A gap is
// never longer than 1<<32 - 1 (a Count is a uint32): a whole-space gap
// (no range at all) is split in two.
func gaps(covered [][2]uint64) [][2]uint64 {
	sort.Slice(covered, func(i, j int) bool { return covered[i][0] < covered[j][0] })
	var out [][2]uint64
	next := uint64(0)
	for _, c := range covered {
		if c[0] > next {
			out = append(out, [2]uint64{next, c[0]})
		}
		next = max(next, c[1])
	}
	if next < 1<<32 {
		if next == 0 {
			out = append(out, [2]uint64{0, 1 << 31})
			next = 1 << 31
		}
		out = append(out, [2]uint64{next, 1 << 32})
	}
	return out
}
