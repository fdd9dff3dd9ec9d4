// Package xattrmap translates extended-attribute names between what a client
// sees and what the host stores, with virtiofsd's rule language
// (--xattrmap), and wraps any fs.FileSystem with such a map.
//
// A map is a list of rules; the first rule that matches a name decides.
// Each rule is written with a separator of its choice, the first
// non-blank character of the rule:
//
//	:type:scope:key:prepend:
//	:map:key:prepend:
//
// type is prefix, ok, bad or unsupported; scope is client (names in
// GETXATTR, SETXATTR, REMOVEXATTR, matched against key), server (names the
// host returns for LISTXATTR, matched against prepend) or all.
//
//   - prefix: a client name starting with key is stored as prepend+name; a
//     host name starting with prepend is listed with prepend stripped.
//   - ok: the name passes unchanged.
//   - bad: a client name is refused with EPERM; a host name is hidden.
//   - unsupported: a client name is refused with EOPNOTSUPP; a host name is
//     hidden.
//
// map is shorthand for a set of rules and must be the last rule: with an
// empty key, ":map::P:" is ":prefix:all::P: :bad:all:::"; otherwise
// ":map:K:P:" is ":prefix:all:K:P: :bad:server::K: :bad:client:P:: :ok:all:::"
// (prefix K, hide the host's own K names, stop the client from naming P
// directly, pass the rest). A name no rule matches is refused (EPERM) or
// hidden, as in virtiofsd.
package xattrmap

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
)

// Default is the rule set every door applies when the operator gives none:
// what a client sets under trusted.* or security.* (file capabilities, LSM
// labels, overlayfs's trusted.overlay.*) is stored on the host under
// user.virtiofs.<name>, where the host kernel gives it no meaning, and
// reads back under its own name; the host's own trusted.* and security.*
// stay hidden and untouched; a client cannot name user.virtiofs.* itself
// (which would forge a mapped attribute); everything else (user.*,
// system.posix_acl_*) passes unchanged. It is virtiofsd's documented
// example 2 ("prefix trusted., allow others through") extended to
// security.*.
const Default = ":prefix:all:trusted.:user.virtiofs.: " +
	":prefix:all:security.:user.virtiofs.: " +
	":bad:server::trusted.: " +
	":bad:server::security.: " +
	":bad:client:user.virtiofs.:: " +
	":ok:all:::"

// Kind is a rule's type.
type Kind uint8

const (
	Prefix Kind = iota
	OK
	Bad
	Unsupported
)

var kindNames = [...]string{Prefix: "prefix", OK: "ok", Bad: "bad", Unsupported: "unsupported"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// Scope says which names a rule matches.
type Scope uint8

const (
	Client Scope = 1 << iota // names from the client, matched against Key
	Server                   // names from the host, matched against Prepend
	All    = Client | Server
)

func (s Scope) String() string {
	switch s {
	case Client:
		return "client"
	case Server:
		return "server"
	case All:
		return "all"
	}
	return fmt.Sprintf("Scope(%d)", s)
}

// Rule is one parsed rule (a map rule is stored expanded).
type Rule struct {
	Kind    Kind
	Scope   Scope
	Key     string
	Prepend string
}

// String returns the rule in Parse's syntax, with a separator that occurs
// in neither key nor prepend.
func (r Rule) String() string {
	sep := ":"
	for _, c := range ":/|#,;!@%^&*~=+-_?<>()[]{}$'\"`\\0123456789" {
		if !strings.ContainsRune(r.Key, c) && !strings.ContainsRune(r.Prepend, c) {
			sep = string(c)
			break
		}
	}
	return sep + r.Kind.String() + sep + r.Scope.String() + sep + r.Key + sep + r.Prepend + sep
}

// Map is a parsed rule set. It is immutable and safe for concurrent use.
type Map struct {
	rules []Rule
	// capName is the host name a client's security.capability is stored
	// under, or "" if it is stored unchanged or refused.
	capName string
}

// Rules returns the rules in order, map rules expanded.
func (m *Map) Rules() []Rule { return append([]Rule(nil), m.rules...) }

// String returns the rules in the syntax Parse reads, one per line.
func (m *Map) String() string {
	var b strings.Builder
	for i, r := range m.rules {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(r.String())
	}
	return b.String()
}

// maxField bounds one key or prepend: an xattr name is at most 255 bytes
// (XATTR_NAME_MAX), so a longer one could never match or fit.
const maxField = 255

// Parse reads a rule set in virtiofsd's syntax. Errors name the rule (by
// its 1-based position) and what is wrong with it.
func Parse(s string) (*Map, error) {
	var rules []Rule
	n := 0
	hadMap := false
	for {
		s = strings.TrimLeft(s, " \t\n\r\v\f")
		if s == "" {
			break
		}
		n++
		if hadMap {
			return nil, fmt.Errorf("xattrmap: rule %d: a map rule must be the last rule", n-1)
		}
		sep, size := rune(s[0]), 1
		if sep >= 0x80 {
			return nil, fmt.Errorf("xattrmap: rule %d: separator must be an ASCII character", n)
		}
		s = s[size:]
		field := func(what string) (string, error) {
			i := strings.IndexRune(s, sep)
			if i < 0 {
				return "", fmt.Errorf("xattrmap: rule %d: missing %s or its closing %q (each rule is %ctype%cscope%ckey%cprepend%c)", n, what, sep, sep, sep, sep, sep, sep)
			}
			f := s[:i]
			s = s[i+1:]
			if len(f) > maxField {
				return "", fmt.Errorf("xattrmap: rule %d: %s is %d bytes, more than an xattr name's %d", n, what, len(f), maxField)
			}
			if strings.IndexByte(f, 0) >= 0 {
				return "", fmt.Errorf("xattrmap: rule %d: %s contains a NUL byte", n, what)
			}
			return f, nil
		}
		typ, err := field("type")
		if err != nil {
			return nil, err
		}
		if typ == "map" {
			key, err := field("key")
			if err != nil {
				return nil, err
			}
			prepend, err := field("prepend")
			if err != nil {
				return nil, err
			}
			rules = append(rules, expandMap(key, prepend)...)
			hadMap = true
			continue
		}
		var r Rule
		switch typ {
		case "prefix":
			r.Kind = Prefix
		case "ok":
			r.Kind = OK
		case "bad":
			r.Kind = Bad
		case "unsupported":
			r.Kind = Unsupported
		default:
			return nil, fmt.Errorf("xattrmap: rule %d: type %q: want prefix, ok, bad, unsupported or map", n, typ)
		}
		scope, err := field("scope")
		if err != nil {
			return nil, err
		}
		switch scope {
		case "client":
			r.Scope = Client
		case "server":
			r.Scope = Server
		case "all":
			r.Scope = All
		default:
			return nil, fmt.Errorf("xattrmap: rule %d: scope %q: want client, server or all", n, scope)
		}
		if r.Key, err = field("key"); err != nil {
			return nil, err
		}
		if r.Prepend, err = field("prepend"); err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	if len(rules) == 0 {
		return nil, errors.New("xattrmap: no rules (end the list with a catch-all such as :ok:all::: or :bad:all:::)")
	}
	m := &Map{rules: rules}
	const capability = "security.capability"
	if name, e := m.Client([]byte(capability), make([]byte, 0, 2*maxField+1)); e == 0 && string(name) != capability {
		m.capName = string(name)
	}
	return m, nil
}

// MustParse is Parse for rule sets known to be valid (Default).
func MustParse(s string) *Map {
	m, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return m
}

func expandMap(key, prepend string) []Rule {
	if key == "" {
		return []Rule{
			{Kind: Prefix, Scope: All, Prepend: prepend},
			{Kind: Bad, Scope: All},
		}
	}
	return []Rule{
		{Kind: Prefix, Scope: All, Key: key, Prepend: prepend},
		{Kind: Bad, Scope: Server, Prepend: key},
		{Kind: Bad, Scope: Client, Key: prepend},
		{Kind: OK, Scope: All},
	}
}

// CapabilityName is the host name a client's security.capability is
// stored under, or "" if the map stores it unchanged or refuses it. A
// filesystem that clears file capabilities on write (as the host kernel
// does for the real name) must clear this one too.
func (m *Map) CapabilityName() string { return m.capName }

// Client maps a name from a client request (GETXATTR, SETXATTR,
// REMOVEXATTR) to the name to use on the host. A prefixed name is built in
// buf's spare capacity (buf[:0] is overwritten; it needs room for the
// longest prepend plus the name) and returned; otherwise name itself is
// returned. The errno is EPERM (bad rule, or no rule matched),
// EOPNOTSUPP (unsupported rule) or ERANGE (buf too small).
func (m *Map) Client(name, buf []byte) ([]byte, fs.Errno) {
	for i := range m.rules {
		r := &m.rules[i]
		if r.Scope&Client == 0 || !hasPrefix(name, r.Key) {
			continue
		}
		switch r.Kind {
		case OK:
			return name, 0
		case Bad:
			return nil, syscall.EPERM
		case Unsupported:
			return nil, syscall.EOPNOTSUPP
		}
		if len(r.Prepend)+len(name) > cap(buf) {
			return nil, syscall.ERANGE
		}
		out := append(buf[:0], r.Prepend...)
		return append(out, name...), 0
	}
	return nil, syscall.EPERM
}

// Server maps a name the host lists to the name the client sees (a
// sub-slice of name), or reports false if the client must not see it.
func (m *Map) Server(name []byte) ([]byte, bool) {
	for i := range m.rules {
		r := &m.rules[i]
		if r.Scope&Server == 0 || !hasPrefix(name, r.Prepend) {
			continue
		}
		switch r.Kind {
		case OK:
			return name, true
		case Bad, Unsupported:
			return nil, false
		}
		shown := name[len(r.Prepend):]
		if len(shown) == 0 {
			return nil, false // the bare prefix maps to no client name
		}
		return shown, true
	}
	return nil, false
}

func hasPrefix(b []byte, p string) bool {
	return len(b) >= len(p) && string(b[:len(p)]) == p
}
