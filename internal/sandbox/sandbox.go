package sandbox

import (
	"errors"
	"fmt"
	"strings"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// Door is one of fastfsd's serving commands; each has its own capability
// set and system-call list.
type Door int

const (
	Mount    Door = iota // fastfsd mount: /dev/fuse (read/writev, splice, io_uring)
	Virtiofs             // fastfsd virtiofs: vhost-user-fs back-end
	P9                   // fastfsd 9p: 9P2000.L over tcp or unix sockets
)

func (d Door) String() string { return [...]string{"mount", "virtiofs", "9p"}[d] }

// Options says how to confine the calling process.
type Options struct {
	Door Door
	// Caps is the capability set to keep (DefaultCaps, changed by
	// --modcaps). Capabilities the process does not hold stay absent.
	Caps CapSet
	// Seccomp is the filter's action on a call outside the allow-list.
	Seccomp SeccompAction
	// Landlock, when not empty, restricts file access to the directory
	// trees named (the shared directory). Best effort: a kernel without
	// Landlock, or with an older ABI, gets what it supports.
	Landlock []string
	// LandlockRO are trees opened read-only besides (e.g. /proc/self for
	// /proc/self/fd and mountinfo).
	LandlockRO []string
	// LandlockROFiles are single files opened read-only besides (e.g. the
	// user and group databases); missing ones are skipped.
	LandlockROFiles []string
	// LandlockUnlink are directories in which files may be removed (and
	// nothing else): where the listening socket is, so that it can be
	// removed on exit.
	LandlockUnlink []string
}

// Report says what Apply did, for the daemon's log.
type Report struct {
	Caps     CapSet // capabilities kept (effective = permitted = bounding)
	Landlock string // "ABI vN", or why it was not applied
	Seccomp  string // the action, and the number of calls allowed
}

func (r Report) String() string {
	return fmt.Sprintf("capabilities %s; no_new_privs; landlock %s; seccomp %s", r.Caps, r.Landlock, r.Seccomp)
}

// Apply confines the calling process, all of its threads, for good:
// capabilities dropped to o.Caps, no_new_privs, Landlock, then the seccomp
// filter — in that order, because each step needs system calls the next
// one may forbid. Call it after the transport is set up (the FUSE fd is
// open, the socket listens) and before serving. An error leaves the
// process partly confined; the caller must exit.
func Apply(o Options) (Report, error) {
	var r Report
	kept, err := dropCaps(o.Caps)
	if err != nil {
		return r, fmt.Errorf("sandbox: drop capabilities: %w", err)
	}
	r.Caps = kept
	if _, _, e := psx.Syscall6(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0, 0); e != 0 {
		return r, fmt.Errorf("sandbox: prctl(PR_SET_NO_NEW_PRIVS): %w", e)
	}
	r.Landlock = "off"
	if len(o.Landlock) > 0 {
		r.Landlock, err = restrictPaths(o.Landlock, o.LandlockRO, o.LandlockROFiles, o.LandlockUnlink)
		if err != nil {
			return r, fmt.Errorf("sandbox: landlock: %w", err)
		}
	}
	if err := loadFilter(o.Door, o.Seccomp); err != nil {
		return r, fmt.Errorf("sandbox: %w", err)
	}
	r.Seccomp = o.Seccomp.String()
	if o.Seccomp != SeccompNone {
		r.Seccomp += fmt.Sprintf(" (%d calls allowed)", len(Syscalls(o.Door)))
	}
	return r, nil
}

// restrictPaths restricts file access of all threads to rw (all rights)
// and ro (read files and directories). Where the kernel has no Landlock it
// does nothing and says so.
func restrictPaths(rw, ro, roFiles, unlink []string) (string, error) {
	abi, err := llsys.LandlockGetABIVersion()
	if err != nil || abi < 1 {
		if err == nil {
			err = errors.New("ABI version 0")
		}
		return fmt.Sprintf("unavailable (%v): file access not restricted beyond openat2 containment", err), nil
	}
	rules := []landlock.Rule{landlock.RWDirs(rw...).WithRefer().WithIoctlDev()}
	if len(ro) > 0 {
		rules = append(rules, landlock.RODirs(ro...).IgnoreIfMissing())
	}
	if len(roFiles) > 0 {
		rules = append(rules, landlock.ROFiles(roFiles...).IgnoreIfMissing())
	}
	if len(unlink) > 0 {
		rules = append(rules, landlock.PathAccess(llsys.AccessFSRemoveFile, unlink...))
	}
	// BestEffort: on an older ABI, the rights it lacks (refer before v2,
	// truncate before v3, ioctl before v5) stay unrestricted.
	if err := landlock.V6.BestEffort().RestrictPaths(rules...); err != nil {
		return "", err
	}
	msg := fmt.Sprintf("ABI v%d: files under %s", abi, strings.Join(rw, ", "))
	if len(ro) > 0 {
		msg += "; read-only " + strings.Join(ro, ", ")
	}
	if len(roFiles) > 0 {
		msg += "; read-only files " + strings.Join(roFiles, ", ")
	}
	if len(unlink) > 0 {
		msg += "; unlink in " + strings.Join(unlink, ", ")
	}
	return msg, nil
}
