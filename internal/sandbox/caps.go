package sandbox

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"kernel.org/pub/linux/libs/security/libcap/psx"
)

// capNames maps the capability names --modcaps takes (without the "cap_"
// prefix, lower case, as virtiofsd and capsh spell them) to numbers.
var capNames = map[string]int{
	"chown": unix.CAP_CHOWN, "dac_override": unix.CAP_DAC_OVERRIDE,
	"dac_read_search": unix.CAP_DAC_READ_SEARCH, "fowner": unix.CAP_FOWNER,
	"fsetid": unix.CAP_FSETID, "kill": unix.CAP_KILL, "setgid": unix.CAP_SETGID,
	"setuid": unix.CAP_SETUID, "setpcap": unix.CAP_SETPCAP,
	"linux_immutable": unix.CAP_LINUX_IMMUTABLE, "net_bind_service": unix.CAP_NET_BIND_SERVICE,
	"net_broadcast": unix.CAP_NET_BROADCAST, "net_admin": unix.CAP_NET_ADMIN,
	"net_raw": unix.CAP_NET_RAW, "ipc_lock": unix.CAP_IPC_LOCK, "ipc_owner": unix.CAP_IPC_OWNER,
	"sys_module": unix.CAP_SYS_MODULE, "sys_rawio": unix.CAP_SYS_RAWIO,
	"sys_chroot": unix.CAP_SYS_CHROOT, "sys_ptrace": unix.CAP_SYS_PTRACE,
	"sys_pacct": unix.CAP_SYS_PACCT, "sys_admin": unix.CAP_SYS_ADMIN,
	"sys_boot": unix.CAP_SYS_BOOT, "sys_nice": unix.CAP_SYS_NICE,
	"sys_resource": unix.CAP_SYS_RESOURCE, "sys_time": unix.CAP_SYS_TIME,
	"sys_tty_config": unix.CAP_SYS_TTY_CONFIG, "mknod": unix.CAP_MKNOD, "lease": unix.CAP_LEASE,
	"audit_write": unix.CAP_AUDIT_WRITE, "audit_control": unix.CAP_AUDIT_CONTROL,
	"setfcap": unix.CAP_SETFCAP, "mac_override": unix.CAP_MAC_OVERRIDE,
	"mac_admin": unix.CAP_MAC_ADMIN, "syslog": unix.CAP_SYSLOG, "wake_alarm": unix.CAP_WAKE_ALARM,
	"block_suspend": unix.CAP_BLOCK_SUSPEND, "audit_read": unix.CAP_AUDIT_READ,
	"perfmon": unix.CAP_PERFMON, "bpf": unix.CAP_BPF, "checkpoint_restore": unix.CAP_CHECKPOINT_RESTORE,
}

// CapSet is a set of capabilities, bit n for capability n.
type CapSet uint64

// Has reports whether c holds capability n.
func (c CapSet) Has(n int) bool { return n >= 0 && n < 64 && c&(1<<uint(n)) != 0 }

// String lists the set as "chown,dac_override,…" in number order.
func (c CapSet) String() string {
	var names []string
	for name, n := range capNames {
		if c.Has(n) {
			names = append(names, name)
		}
	}
	sort.Slice(names, func(i, j int) bool { return capNames[names[i]] < capNames[names[j]] })
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ",")
}

func capsOf(ns ...int) CapSet {
	var c CapSet
	for _, n := range ns {
		c |= 1 << uint(n)
	}
	return c
}

// fileCaps is what every door's file server needs: virtiofsd's default
// set (chown, dac_override, fowner, fsetid, setgid, setuid, mknod,
// setfcap) without mknod, plus dac_read_search, which fs/passthrough
// keeps on a thread switched to a caller's fsuid (its asCaller) and which
// open_by_handle_at(2) requires. mknod is needed only to make character
// and block devices (FIFOs, sockets and, since Linux 5.8, whiteouts need
// none), which the doors refuse unless --allow-devices: DeviceCaps.
var fileCaps = capsOf(unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_DAC_READ_SEARCH,
	unix.CAP_FOWNER, unix.CAP_FSETID, unix.CAP_SETGID, unix.CAP_SETUID,
	unix.CAP_SETFCAP)

// DeviceCaps is what a door adds to DefaultCaps when it lets clients
// create device nodes (--allow-devices): mknod.
var DeviceCaps = capsOf(unix.CAP_MKNOD)

// DefaultCaps is the capability set a door keeps: the file server's set;
// the mount door adds sys_admin, which FUSE passthrough's
// FUSE_DEV_IOC_BACKING_OPEN requires (the kernel checks it in the initial
// user namespace on every open of a passed-through file). The mount
// door's unmount is its supervisor's, which keeps sys_admin alone.
func DefaultCaps(d Door) CapSet {
	if d == Mount {
		return fileCaps | capsOf(unix.CAP_SYS_ADMIN)
	}
	return fileCaps
}

// ParseModcaps applies a virtiofsd --modcaps value to base: a list of
// "+cap" (add) and "-cap" (remove) items separated by ':' (virtiofsd's
// separator), ';' or ',', names with or without the "cap_" prefix, e.g.
// "+sys_admin:-mknod".
func ParseModcaps(base CapSet, s string) (CapSet, error) {
	for _, item := range strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == ';' || r == ',' }) {
		item = strings.TrimSpace(item)
		if len(item) < 2 || (item[0] != '+' && item[0] != '-') {
			return 0, fmt.Errorf("--modcaps item %q: want +CAP or -CAP (e.g. +sys_admin:-mknod)", item)
		}
		name := strings.TrimPrefix(strings.ToLower(item[1:]), "cap_")
		n, ok := capNames[name]
		if !ok {
			return 0, fmt.Errorf("--modcaps item %q: unknown capability %q (names as in capabilities(7), e.g. chown, sys_admin)", item, name)
		}
		if item[0] == '+' {
			base |= 1 << uint(n)
		} else {
			base &^= 1 << uint(n)
		}
	}
	return base, nil
}

// lastCap is the highest capability number the kernel knows.
func lastCap() int {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 0 && n < 64 {
			return n
		}
	}
	return unix.CAP_LAST_CAP
}

// dropCaps leaves every thread of the process with keep ∩ (its permitted
// set) as effective and permitted set, an empty inheritable and ambient
// set, and a bounding set of keep (so that no exec regains more). The
// calls go through psx: capabilities are per thread, and the Go runtime
// runs goroutines on threads it made before this point, so each thread
// must make the calls itself (psx runs a system call on all of them, with
// or without cgo). Threads made later are cloned from one of these and
// inherit the sets. It returns the set kept.
func dropCaps(keep CapSet) (CapSet, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("capget: %w", err)
	}
	have := CapSet(data[0].Permitted) | CapSet(data[1].Permitted)<<32
	kept := keep & have
	// The bounding set first: dropping from it needs CAP_SETPCAP, which
	// the capset below may remove. A process without CAP_SETPCAP (not
	// root) cannot shrink it; its permitted set is then what limits it.
	if have.Has(unix.CAP_SETPCAP) {
		for n := 0; n <= lastCap(); n++ {
			if keep.Has(n) {
				continue
			}
			if _, _, e := psx.Syscall6(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, uintptr(n), 0, 0, 0, 0); e != 0 && e != unix.EINVAL {
				return 0, fmt.Errorf("prctl(PR_CAPBSET_DROP, %d): %w", n, e)
			}
		}
	}
	if _, _, e := psx.Syscall6(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0, 0); e != 0 && e != unix.EINVAL {
		return 0, fmt.Errorf("prctl(PR_CAP_AMBIENT_CLEAR_ALL): %w", e)
	}
	data[0] = unix.CapUserData{Effective: uint32(kept), Permitted: uint32(kept)}
	data[1] = unix.CapUserData{Effective: uint32(kept >> 32), Permitted: uint32(kept >> 32)}
	if e := capsetAllThreads(&hdr, &data); e != 0 {
		return 0, fmt.Errorf("capset: %w", e)
	}
	return kept, nil
}
