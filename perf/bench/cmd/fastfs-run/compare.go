package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fastfsd/fastfsd/internal/vmtest"
	"golang.org/x/sys/unix"
)

// target is one filesystem the guest suite runs on: its row label, the
// mount's tag (/mnt/TAG) and any guest shell that must run first.
type target struct{ label, tag, setup string }

// compareSet is the subjects of -compare (make bench-guest), like with
// like: every share is a fresh subdirectory of base, so every back-end
// serves the same host filesystem (a back-end that passes the guest's
// O_DIRECT to the host — the C virtiofsd with allow_direct_io, go-fuse's
// loopback — would otherwise read a disk while fastfsd and virtio-9p,
// which drop it, read the host page cache); each virtio-fs subject gets
// one request queue, no --metrics and no client caching (fastfsd --cache
// never, the C virtiofsd cache=none, go-fuse's zero timeouts, virtio-9p
// cache=none); with queues > 1 fastfsd's multi-queue run is its own row,
// fastfsd-<queues>q. The last row is fastfsd's 9P door inside the guest
// (server and client both in the guest, on its loopback).
func compareSet(base, fastfsd, gofuse string, queues int) ([]vmtest.Share, []target, error) {
	type subject struct {
		label, tag string
		backend    *vmtest.Backend // nil: QEMU's virtio-9p
		queues     int
	}
	ff := vmtest.Fastfsd(fastfsd, "--cache", "never")
	cv := vmtest.CVirtiofsd
	gf := vmtest.Backend{Name: "go-fuse", Args: func(sock, d string) []string { return []string{gofuse, sock, d} }}
	subjects := []subject{{"fastfsd", "fastfs", &ff, 1}}
	if queues > 1 {
		mq := vmtest.Fastfsd(fastfsd, "--cache", "never")
		subjects = append(subjects, subject{fmt.Sprintf("fastfsd-%dq", queues), "fastfsmq", &mq, queues})
	}
	subjects = append(subjects, subject{"c-virtiofsd", "cvfs", &cv, 1}, subject{"go-fuse", "gofuse", &gf, 1}, subject{"virtio-9p", "ninep", nil, 0})
	var shares []vmtest.Share
	var targets []target
	for _, s := range subjects {
		d := filepath.Join(base, s.tag)
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, nil, fmt.Errorf("share directory for %s: %w", s.label, err)
		}
		shares = append(shares, vmtest.Share{Tag: s.tag, Dir: d, Backend: s.backend, Queues: s.queues, GuestPath: "/mnt/" + s.tag})
		targets = append(targets, target{s.label, s.tag, ""})
	}
	// fastfsd's 9P door, inside the guest: it serves a guest tmpfs
	// directory on the guest's loopback and the v9fs client mounts it.
	targets = append(targets, target{"fastfsd-9p", "f9p", `mkdir -p /srv9p /mnt/f9p && mount -t tmpfs tmpfs /srv9p
/bin/fastfsd 9p --listen tcp:127.0.0.1:5640 --shared-dir /srv9p > /tmp/9p.log 2>&1 &
sleep 1
mount -t 9p -o trans=tcp,port=5640,version=9p2000.L,msize=524288,cache=none 127.0.0.1 /mnt/f9p || echo "FASTFS-RESULT name=mount:f9p status=FAIL detail=$(cat /tmp/9p.log | tr '\n' ' ')"
`})
	return shares, targets, nil
}

// keepSubjects keeps the rows named in labels (-subjects), with their
// shares; a name that is no row is an error, not an empty table.
func keepSubjects(shares []vmtest.Share, targets []target, labels []string) ([]vmtest.Share, []target, error) {
	want := map[string]bool{}
	for _, l := range labels {
		want[strings.TrimSpace(l)] = true
	}
	var ks []vmtest.Share
	var kt []target
	for _, t := range targets {
		if !want[t.label] {
			continue
		}
		delete(want, t.label)
		kt = append(kt, t)
		for _, s := range shares {
			if s.Tag == t.tag {
				ks = append(ks, s)
			}
		}
	}
	for l := range want {
		var names []string
		for _, t := range targets {
			names = append(names, t.label)
		}
		return nil, nil, fmt.Errorf("-subjects: no row %q; the rows are %s", l, strings.Join(names, ", "))
	}
	return ks, kt, nil
}

// tmpfsDir mounts a fresh tmpfs for -compare's shares: memory, as the
// host benchmark uses, so no back-end's host I/O waits on a disk.
func tmpfsDir() (string, func(), error) {
	d, err := os.MkdirTemp("", "fastfs-run-")
	if err != nil {
		return "", nil, err
	}
	if err := unix.Mount("tmpfs", d, "tmpfs", 0, "size=8g,mode=0755"); err != nil {
		os.Remove(d)
		return "", nil, fmt.Errorf("mount a tmpfs at %s for the shares: %w; run as root (sudo make bench-guest), or give -dir DIR to put every share in a subdirectory of DIR", d, err)
	}
	return d, func() { unix.Unmount(d, unix.MNT_DETACH); os.Remove(d) }, nil
}

// guestScript is the guest's run: each target's setup, then rounds of
// the fio suite over every target, each round starting one target later
// (A B C, B C A, C A B) so that none always runs first or after the same
// neighbour. With probe, `fastfsd probe` times each FUSE mount's round
// trips during its suite; without, nothing runs beside the suite.
func guestScript(targets []target, rounds, runtime int, size string, probe bool) string {
	var script strings.Builder
	for _, t := range targets {
		script.WriteString(t.setup)
	}
	for r := 0; r < rounds; r++ {
		for i := range targets {
			t := targets[(i+r)%len(targets)]
			fmt.Fprintf(&script, "\necho \"FASTFS-STEP %s: fio suite (%ds per job), round %d of %d\"\n", t.label, runtime, r+1, rounds)
			if probe {
				fmt.Fprintf(&script, `PP=
if [ "$(stat -f -c %%T /mnt/%[2]s)" = fuseblk ] || grep -q " /mnt/%[2]s virtiofs " /proc/mounts; then
	/bin/fastfsd probe --mount /mnt/%[2]s --json > /tmp/probe.json 2>/tmp/probe.err &
	PP=$!
else
	echo '{"fuse":null}' > /tmp/probe.json; : > /tmp/probe.err
fi
`, t.label, t.tag)
			}
			fmt.Fprintf(&script, `sleep 1
if [ -n "$FASTFS_SMOKE" ]; then
	i=0; while [ $i -lt 300 ]; do stat /mnt/%[2]s >/dev/null; ls /mnt/%[2]s >/dev/null; i=$((i+1)); done
else
	FIO_RUNTIME=%[3]d FIO_SIZE=%[4]s sh /fio.sh /mnt/%[2]s %[1]s || RC=1
fi
`, t.label, t.tag, runtime, size)
			if probe {
				fmt.Fprintf(&script, `[ -n "$PP" ] && { kill -INT $PP 2>/dev/null; wait $PP; }
echo "FASTFS-PROBE %[1]s $(tr -d '\n' < /tmp/probe.json)"
[ -s /tmp/probe.err ] && sed 's/^/probe: /' /tmp/probe.err
`, t.label)
			}
		}
	}
	script.WriteString("exit ${RC:-0}\n")
	return script.String()
}
