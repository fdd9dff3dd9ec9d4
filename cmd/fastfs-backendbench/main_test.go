package main

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/internal/vhostload"
)

func TestParseKinds(t *testing.T) {
	for spec, want := range map[string][]vhostload.Kind{
		"all":                         vhostload.Kinds,
		"getattr":                     {vhostload.Getattr},
		"Create, GETATTR":             {vhostload.Getattr, vhostload.CreateRelease},
		"read4k,READ 1M":              {vhostload.Read4K, vhostload.Read1M},
		"create+release+forget":       {vhostload.CreateRelease},
		"readdirplus,lookup,read128k": {vhostload.Lookup, vhostload.Read128K, vhostload.Readdirplus},
	} {
		got, err := parseKinds(spec)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseKinds(%q) = %v, %v; want %v", spec, got, err, want)
		}
	}
	for _, bad := range []string{"", "stat", "getattr,", "read"} {
		if got, err := parseKinds(bad); err == nil {
			t.Errorf("parseKinds(%q) = %v, no error", bad, got)
		}
	}
}

// TestRunRefusesBadFlags: -rounds, -depth and -gap out of range fail
// before anything is started, instead of being replaced by a default
// (vhostload takes a depth of 0 for 8) or ignored (a negative gap).
func TestRunRefusesBadFlags(t *testing.T) {
	for _, c := range []struct {
		name          string
		rounds, depth int
		gap           time.Duration
	}{
		{"-rounds", 0, 8, 0},
		{"-depth", 1, 0, 0},
		{"-depth", 1, -3, 0},
		{"-gap", 1, 1, -time.Microsecond},
	} {
		err := run("x=/bin/true", "1", c.rounds, time.Second, 0, c.depth, c.gap, t.TempDir(), "", io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.name) {
			t.Errorf("rounds %d, depth %d, gap %v: %v, want a %s error", c.rounds, c.depth, c.gap, err, c.name)
		}
	}
}
