package xattrmap

import (
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want []Rule
		err  string // substring of the error; "" = must parse
	}{
		{in: ":prefix:all::user.virtiofs.::bad:all:::", want: []Rule{
			{Prefix, All, "", "user.virtiofs."},
			{Bad, All, "", ""},
		}},
		{in: "\n /prefix/all/trusted./user.virtiofs./\n /bad/server//trusted./\n\t/bad/client/user.virtiofs.//\n /ok/all///\n", want: []Rule{
			{Prefix, All, "trusted.", "user.virtiofs."},
			{Bad, Server, "", "trusted."},
			{Bad, Client, "user.virtiofs.", ""},
			{OK, All, "", ""},
		}},
		{in: ":prefix:client:trusted.:user.virtiofs.: |unsupported|server||security.|", want: []Rule{
			{Prefix, Client, "trusted.", "user.virtiofs."},
			{Unsupported, Server, "", "security."},
		}},
		// map expands as virtiofsd documents it.
		{in: ":map:trusted.:user.virtiofs.:", want: []Rule{
			{Prefix, All, "trusted.", "user.virtiofs."},
			{Bad, Server, "", "trusted."},
			{Bad, Client, "user.virtiofs.", ""},
			{OK, All, "", ""},
		}},
		{in: ":ok:client:user.:: :map::user.virtiofs.:", want: []Rule{
			{OK, Client, "user.", ""},
			{Prefix, All, "", "user.virtiofs."},
			{Bad, All, "", ""},
		}},
		{in: "", err: "no rules"},
		{in: "  \n ", err: "no rules"},
		{in: ":prefix:client:hi", err: "rule 1: missing key"},
		{in: ":prefix:all:a:b", err: "rule 1: missing prepend"},
		{in: ":ok:all::: :tomato:all:::", err: `rule 2: type "tomato"`},
		{in: "/prefix/helloworld///", err: `scope "helloworld"`},
		{in: ":map:a:b: :ok:all:::", err: "map rule must be the last"},
		{in: ":map:a:b: :map:a:b:", err: "map rule must be the last"},
		{in: ":ok:all:" + strings.Repeat("k", 256) + "::", err: "more than an xattr name"},
		{in: ":ok:all:a\x00b::", err: "NUL"},
		{in: "\xc3\xa9ok\xc3\xa9all\xc3\xa9\xc3\xa9\xc3\xa9", err: "ASCII"},
	}
	for _, tc := range tests {
		m, err := Parse(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) = %v, want error containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := m.Rules(); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%q) = %v, want %v", tc.in, got, tc.want)
		}
		// String is parseable and means the same.
		again, err := Parse(m.String())
		if err != nil || !reflect.DeepEqual(again.Rules(), m.Rules()) {
			t.Errorf("Parse(String()) of %q = %v, %v", tc.in, again, err)
		}
	}
}

func TestDefaultMapping(t *testing.T) {
	m := MustParse(Default)
	buf := make([]byte, 0, 2*maxField+1)
	client := []struct {
		name, host string
		errno      syscall.Errno
	}{
		{"security.capability", "user.virtiofs.security.capability", 0},
		{"security.selinux", "user.virtiofs.security.selinux", 0},
		{"trusted.overlay.opaque", "user.virtiofs.trusted.overlay.opaque", 0},
		{"user.foo", "user.foo", 0},
		{"system.posix_acl_access", "system.posix_acl_access", 0},
		// Forging the mapped namespace directly is refused.
		{"user.virtiofs.security.capability", "", syscall.EPERM},
		{"user.virtiofs.x", "", syscall.EPERM},
	}
	for _, c := range client {
		got, e := m.Client([]byte(c.name), buf)
		if e != c.errno || (e == 0 && string(got) != c.host) {
			t.Errorf("Client(%q) = %q, %v; want %q, %v", c.name, got, e, c.host, c.errno)
		}
	}
	server := []struct {
		host, shown string
		ok          bool
	}{
		{"user.virtiofs.security.capability", "security.capability", true},
		{"user.virtiofs.trusted.overlay.opaque", "trusted.overlay.opaque", true},
		{"user.foo", "user.foo", true},
		{"security.selinux", "", false}, // the host's own label stays hidden
		{"security.capability", "", false},
		{"trusted.x", "", false},
		{"user.virtiofs.", "", false},
	}
	for _, s := range server {
		got, ok := m.Server([]byte(s.host))
		if ok != s.ok || string(got) != s.shown {
			t.Errorf("Server(%q) = %q, %v; want %q, %v", s.host, got, ok, s.shown, s.ok)
		}
	}
	if got := m.CapabilityName(); got != "user.virtiofs.security.capability" {
		t.Errorf("CapabilityName = %q", got)
	}
}

func TestRuleKinds(t *testing.T) {
	m := MustParse(":unsupported:client:system.:: :bad:client:trusted.:: :ok:client:user.:: :bad:server:::")
	buf := make([]byte, 0, 2*maxField+1)
	for name, want := range map[string]syscall.Errno{
		"system.posix_acl_access": syscall.EOPNOTSUPP,
		"trusted.x":               syscall.EPERM,
		"user.x":                  0,
		"other.x":                 syscall.EPERM, // no rule matched
	} {
		if _, e := m.Client([]byte(name), buf); e != want {
			t.Errorf("Client(%q) errno %v, want %v", name, e, want)
		}
	}
	if _, ok := m.Server([]byte("user.x")); ok {
		t.Error("bad server rule did not hide user.x")
	}
	if m.CapabilityName() != "" {
		t.Errorf("CapabilityName = %q for a map that refuses it", m.CapabilityName())
	}
	// A buffer too small for the mapped name is ERANGE, not a panic.
	p := MustParse(":prefix:all::user.long.prefix.:")
	if _, e := p.Client([]byte("user.x"), make([]byte, 0, 4)); e != syscall.ERANGE {
		t.Errorf("small buffer: errno %v, want ERANGE", e)
	}
}

// FuzzParse: any input either fails with an error or yields rules whose
// String form parses back to the same rules; mapping never panics.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		Default,
		":prefix:all::user.virtiofs.::bad:all:::",
		"/prefix/all/trusted./user.virtiofs./ /bad/server//trusted./ /bad/client/user.virtiofs.// /ok/all///",
		":map:security.selinux:trusted.virtiofs.:",
		":map::user.virtiofs.:",
		":prefix:client:hi",
		"::::::",
		"xokxallxxx",
	} {
		f.Add(s, "security.capability")
	}
	f.Fuzz(func(t *testing.T, s, name string) {
		m, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(m.String())
		if err != nil {
			t.Fatalf("String() %q of %q does not parse: %v", m.String(), s, err)
		}
		if !reflect.DeepEqual(again.Rules(), m.Rules()) {
			t.Fatalf("round trip changed rules: %v -> %v", m.Rules(), again.Rules())
		}
		buf := make([]byte, 0, 2*maxField+1)
		if len(name) <= maxField {
			if host, e := m.Client([]byte(name), buf); e == 0 && len(host) < len(name) {
				t.Fatalf("Client(%q) = %q shorter than the name", name, host)
			}
		}
		if shown, ok := m.Server([]byte(name)); ok && len(shown) > len(name) {
			t.Fatalf("Server(%q) = %q longer than the name", name, shown)
		}
	})
}
