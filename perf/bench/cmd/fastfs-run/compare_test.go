package main

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestCompareSetLikeWithLike pins what make bench-guest gives each
// subject: one host filesystem (every share a subdirectory of the same
// base), one request queue for every virtio-fs subject but the labelled
// multi-queue row, no --metrics, no client caching, and the same guest
// mount defaults for virtio-9p.
func TestCompareSetLikeWithLike(t *testing.T) {
	base := t.TempDir()
	shares, targets, err := compareSet(base, "/bin/fastfsd", "/bin/gofuse", 2)
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, tg := range targets {
		labels = append(labels, tg.label)
	}
	if got, want := strings.Join(labels, ","), "fastfsd,fastfsd-2q,c-virtiofsd,go-fuse,virtio-9p,fastfsd-9p"; got != want {
		t.Fatalf("targets %s, want %s", got, want)
	}
	if len(shares) != 5 {
		t.Fatalf("%d shares, want 5 (fastfsd-9p is served inside the guest)", len(shares))
	}
	dirs := map[string]bool{}
	for i, s := range shares {
		label := targets[i].label
		if targets[i].tag != s.Tag || s.GuestPath != "/mnt/"+s.Tag || s.MountOptions != "" {
			t.Errorf("%s: tag %s, guest path %s, mount options %q: want target tag %s at /mnt/%[1]s with the default options", label, s.Tag, s.GuestPath, s.MountOptions, targets[i].tag)
		}
		if filepath.Dir(s.Dir) != base || dirs[s.Dir] {
			t.Errorf("%s serves %s: want its own subdirectory of %s", label, s.Dir, base)
		}
		dirs[s.Dir] = true
		if s.Backend == nil {
			if label != "virtio-9p" {
				t.Errorf("%s has no back-end", label)
			}
			continue
		}
		wantQ := 1
		if label == "fastfsd-2q" {
			wantQ = 2
		}
		if s.Queues != wantQ {
			t.Errorf("%s: %d request queues, want %d", label, s.Queues, wantQ)
		}
		argv := s.Backend.Args("/run/x.sock", s.Dir)
		if slices.Contains(argv, "--metrics") || slices.Contains(argv, "--pprof") {
			t.Errorf("%s is observed: %q", label, argv)
		}
		if !slices.Contains(argv, s.Dir) && !slices.Contains(argv, "source="+s.Dir) {
			t.Errorf("%s does not serve its share directory %s: %q", label, s.Dir, argv)
		}
		switch label {
		case "fastfsd", "fastfsd-2q":
			if i := slices.Index(argv, "--cache"); i < 0 || argv[i+1] != "never" {
				t.Errorf("%s: %q, want --cache never", label, argv)
			}
		case "c-virtiofsd":
			if !slices.Contains(argv, "cache=none") {
				t.Errorf("%s: %q, want cache=none", label, argv)
			}
		}
	}
	// No more than one multi-queue row, and none without it.
	_, targets, err = compareSet(t.TempDir(), "/bin/fastfsd", "/bin/gofuse", 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if strings.HasSuffix(tg.label, "q") {
			t.Errorf("-queues 1 gave a multi-queue row %s", tg.label)
		}
	}
}

// TestGuestScriptRotatesWithoutProbe pins that compared subjects run the
// same suite with nothing beside it, in an order that rotates each round.
func TestGuestScriptRotatesWithoutProbe(t *testing.T) {
	targets := []target{{"a", "ta", ""}, {"b", "tb", ""}, {"c", "tc", "echo setup-c\n"}}
	script := guestScript(targets, 3, 7, "32M", false)
	if strings.Contains(script, "probe") {
		t.Errorf("compared script starts the probe:\n%s", script)
	}
	if !strings.HasPrefix(script, "echo setup-c\n") {
		t.Errorf("setup does not come first:\n%s", script)
	}
	var order []string
	for _, m := range regexp.MustCompile(`FASTFS-STEP (\w+): fio suite \(7s per job\), round (\d) of 3`).FindAllStringSubmatch(script, -1) {
		order = append(order, m[2]+m[1])
	}
	if got, want := strings.Join(order, " "), "1a 1b 1c 2b 2c 2a 3c 3a 3b"; got != want {
		t.Errorf("order %s, want %s", got, want)
	}
	for _, tg := range targets {
		if n := strings.Count(script, "FIO_RUNTIME=7 FIO_SIZE=32M sh /fio.sh /mnt/"+tg.tag+" "+tg.label+" "); n != 3 {
			t.Errorf("%s runs the suite %d times with the common settings, want 3", tg.label, n)
		}
	}
	if probed := guestScript(targets, 1, 7, "32M", true); strings.Count(probed, "/bin/fastfsd probe --mount") != 3 {
		t.Errorf("make run's script does not probe every FUSE mount:\n%s", probed)
	}
}

// TestKeepSubjects pins -subjects: the rows named, with their shares and
// in the harness's order, and an error for a name that is no row.
func TestKeepSubjects(t *testing.T) {
	shares, targets, err := compareSet(t.TempDir(), "/bin/fastfsd", "/bin/gofuse", 2)
	if err != nil {
		t.Fatal(err)
	}
	ks, kt, err := keepSubjects(shares, targets, []string{"virtio-9p", "fastfsd", "fastfsd-9p"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tg := range kt {
		got = append(got, tg.label)
	}
	for _, s := range ks {
		got = append(got, s.Tag)
	}
	if g, want := strings.Join(got, ","), "fastfsd,virtio-9p,fastfsd-9p,fastfs,ninep"; g != want {
		t.Errorf("kept %s, want %s", g, want)
	}
	if _, _, err := keepSubjects(shares, targets, []string{"fastfsd", "virtiofsd"}); err == nil || !strings.Contains(err.Error(), `"virtiofsd"`) {
		t.Errorf("unknown row: err %v, want one naming it", err)
	}
}

// TestRunRefusesOtherModesFlags: a flag of one mode given in the other is
// refused, not ignored, before anything is looked up or booted.
func TestRunRefusesOtherModesFlags(t *testing.T) {
	for _, c := range []struct {
		name                string
		compare, metricsSet bool
		out, only, want     string
	}{
		{name: "subjects without compare", only: "fastfsd", want: "-subjects fastfsd: only with -compare"},
		{name: "out without compare", out: "out/x", want: "-out out/x: only with -compare"},
		{name: "metrics with compare", compare: true, metricsSet: true, want: "-metrics 127.0.0.1:1: not with -compare"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := run("/nonexistent/fastfsd", "", "", "", 2, 1, 5, "64M", "127.0.0.1:1", "", false, c.compare, "", c.out, c.only, c.metricsSet)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("run: %v, want an error containing %q", err, c.want)
			}
		})
	}
	// The same flags in their own mode pass these checks: the error is
	// then the missing binary's.
	err := run("/nonexistent/fastfsd", "", "", "", 2, 1, 5, "64M", "127.0.0.1:1", "", false, true, "", "out/x", "fastfsd", false)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/fastfsd") {
		t.Fatalf("run -compare -out -subjects: %v, want the missing fastfsd binary's error", err)
	}
}
