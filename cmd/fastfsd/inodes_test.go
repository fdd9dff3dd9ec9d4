package main

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/fastfsd/fastfsd/fs/passthrough"
)

// TestMaxOpenPerUidFlag: --max-open-per-uid reaches the backend options
// on every door (mount and 9p through inodeFlags, virtiofs through its
// own parser, off by default there), and bad values are refused.
func TestMaxOpenPerUidFlag(t *testing.T) {
	for _, v := range []string{"-2", "x", "1073741825"} {
		if _, err := parseMaxOpen(v); err == nil {
			t.Errorf("parseMaxOpen(%q): no error", v)
		}
	}
	fl := flag.NewFlagSet("mount", flag.ContinueOnError)
	fl.SetOutput(io.Discard)
	inodes := addInodeFlags(fl)
	if err := fl.Parse([]string{"--max-open-per-uid", "-3"}); err != nil {
		t.Fatal(err)
	}
	var o passthrough.Options
	if err := inodes.apply(&o); err == nil {
		t.Errorf("--max-open-per-uid -3 accepted")
	}

	o = passthrough.Options{}
	if note := openBudget(&o, 7, 2); o.OpenBudget.Max() != 7 || !strings.Contains(note, "at most 7 ") {
		t.Errorf("openBudget(7): budget %d, note %q", o.OpenBudget.Max(), note)
	}
	o = passthrough.Options{}
	openBudget(&o, -1, 1)
	if o.OpenBudget != nil || o.MaxOpenPerUid >= 0 {
		t.Errorf("openBudget(-1): budget %v, MaxOpenPerUid %d, want none", o.OpenBudget, o.MaxOpenPerUid)
	}
	o = passthrough.Options{FileHandles: passthrough.FileHandlesPrefer, Passthrough: true}
	openBudget(&o, 0, 1)
	if got, want := o.OpenBudget.Max(), o.AutoOpenBudget(1); got != want || got < passthrough.MinOpenPerUid {
		t.Errorf("openBudget(0): %d, want the automatic %d", got, want)
	}
	// Several shares leave each one's fd cache out of the automatic size.
	if one, three := o.AutoOpenBudget(1), o.AutoOpenBudget(3); three > one {
		t.Errorf("AutoOpenBudget: 3 shares %d > 1 share %d", three, one)
	}

	dir := t.TempDir()
	c, _, err := parseVirtiofsArgs([]string{"--socket-path", dir + "/s", "--shared-dir", dir})
	if err != nil {
		t.Fatal(err)
	}
	if c.maxOpen != -1 {
		t.Errorf("virtiofs default --max-open-per-uid %d, want -1 (none)", c.maxOpen)
	}
	c, _, err = parseVirtiofsArgs([]string{"--socket-path", dir + "/s", "--shared-dir", dir, "--max-open-per-uid=50"})
	if err != nil || c.maxOpen != 50 {
		t.Errorf("virtiofs --max-open-per-uid=50: %v, %+v", err, c)
	}
	if _, _, err := parseVirtiofsArgs([]string{"--socket-path", dir + "/s", "--shared-dir", dir, "--max-open-per-uid=-5"}); err == nil {
		t.Errorf("virtiofs --max-open-per-uid=-5 accepted")
	}
}
