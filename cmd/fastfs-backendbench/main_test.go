package main

import (
	"slices"
	"testing"

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
