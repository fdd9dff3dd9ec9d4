package bench

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// DetachStale lazily unmounts (MNT_DETACH) every mount strictly beneath
// work, deepest first, with a line on log for each, and returns their
// mount points. A run that was killed leaves its tmpfs and FUSE mounts
// there; a FUSE mount whose daemon died answers ENOTCONN, so the next
// run's MkdirAll of it fails with "mkdir …: file exists". work itself is
// left alone even if it is a mount point (the caller may have put a
// tmpfs there on purpose). Mount points are read from
// /proc/self/mountinfo (moby/sys/mountinfo: it undoes the kernel's octal
// escapes of spaces and tabs in paths).
//
// Needs root (CAP_SYS_ADMIN) to unmount anything.
func DetachStale(work string, log io.Writer) ([]string, error) {
	work, err := filepath.Abs(work)
	if err != nil {
		return nil, fmt.Errorf("stale mounts under %s: %w", work, err)
	}
	work = filepath.Clean(work)
	// PrefixFilter matches work itself and paths beneath it, on whole
	// path components (/a/work2 is not beneath /a/work).
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(work))
	if err != nil {
		return nil, fmt.Errorf("stale mounts under %s: read /proc/self/mountinfo: %w", work, err)
	}
	var stale []*mountinfo.Info
	for _, m := range infos {
		if m.Mountpoint != work {
			stale = append(stale, m)
		}
	}
	// A mount goes before the mount it sits on (beneath it, or stacked
	// on the same point), so each unmount of a path finds the mount it
	// logs on top.
	var done []string
	for len(stale) > 0 {
		i := leaf(stale)
		m := stale[i]
		stale = slices.Delete(stale, i, i+1)
		if err := unix.Unmount(m.Mountpoint, unix.MNT_DETACH); err != nil {
			return done, fmt.Errorf("detach stale %s mount on %s (left by an earlier run): %w; unmount it by hand (umount -l)", m.FSType, m.Mountpoint, err)
		}
		fmt.Fprintf(log, "fastfs-bench: detached a stale %s mount on %s (left by an earlier run)\n", m.FSType, m.Mountpoint)
		done = append(done, m.Mountpoint)
	}
	return done, nil
}

// leaf returns the index of a mount in ms that no other mount in ms sits
// on, the deepest path first (then the greatest, for a stable order).
func leaf(ms []*mountinfo.Info) int {
	best := -1
	for i, m := range ms {
		if slices.ContainsFunc(ms, func(o *mountinfo.Info) bool { return o.Parent == m.ID }) {
			continue
		}
		if best < 0 || len(m.Mountpoint) > len(ms[best].Mountpoint) ||
			len(m.Mountpoint) == len(ms[best].Mountpoint) && m.Mountpoint > ms[best].Mountpoint {
			best = i
		}
	}
	if best < 0 {
		return 0 // a cycle cannot happen in the mount tree; do not loop
	}
	return best
}
