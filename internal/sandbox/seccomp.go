package sandbox

import (
	"fmt"
	"runtime"
	"sort"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
)

// SeccompAction is what the filter does with a system call outside the
// door's allow-list (--seccomp).
type SeccompAction int

const (
	// SeccompKill kills the whole process (SECCOMP_RET_KILL_PROCESS); the
	// kernel logs the call to the audit log / dmesg. The default.
	SeccompKill SeccompAction = iota
	// SeccompLog lets the call run and logs it (SECCOMP_RET_LOG): to find
	// what a list lacks.
	SeccompLog
	// SeccompTrap sends SIGSYS to the calling thread (SECCOMP_RET_TRAP);
	// the Go runtime then prints the goroutine's stack and exits with
	// status 2, which names the call site.
	SeccompTrap
	// SeccompNone installs no filter.
	SeccompNone
)

// ParseSeccomp parses --seccomp's value: kill, log, trap or none.
func ParseSeccomp(s string) (SeccompAction, error) {
	switch s {
	case "kill", "":
		return SeccompKill, nil
	case "log":
		return SeccompLog, nil
	case "trap":
		return SeccompTrap, nil
	case "none":
		return SeccompNone, nil
	}
	return 0, fmt.Errorf("--seccomp %q: want kill, log, trap or none", s)
}

func (a SeccompAction) String() string {
	return [...]string{"kill", "log", "trap", "none"}[a]
}

// The allow-lists. A name the running architecture lacks (open on arm64,
// say) is left out when the filter is built, so one list serves every
// architecture; the lists are what the daemon calls on amd64 and arm64.
// They come from the call sites of the daemon and the Go runtime, checked
// by the test suites run with the filter killing (conformance suite in
// every mode, vhost-user with DAX, 9P, QEMU guests), --seccomp=trap, the
// audit log and strace (docs/sandbox.md says how).
var (
	// goRuntime: the Go runtime and standard library (scheduler, signals,
	// timers, memory, netpoller, os/exec's pidfd probe), and what glibc's
	// thread start-up calls in a cgo (e.g. -race) build.
	goRuntime = []string{
		"arch_prctl", "brk", "clock_getres", "clock_gettime", "clock_nanosleep", "clone", "clone3",
		"close", "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait",
		"epoll_pwait2", "epoll_wait", "eventfd2", "exit", "exit_group", "fcntl", "fstat", "futex",
		"getcwd", "getegid", "geteuid", "getgid", "getpgrp", "getpid", "getppid", "getrandom",
		"getrlimit", "getrusage", "gettid", "gettimeofday", "getuid", "madvise", "membarrier",
		"mincore", "mlock", "mmap", "mprotect", "mremap", "munlock", "munmap", "nanosleep",
		"newfstatat", "pipe", "pipe2", "poll", "ppoll", "prctl", "prlimit64", "pselect6",
		"read", "readlinkat", "readlink", "restart_syscall", "rseq", "rt_sigaction",
		"rt_sigprocmask", "rt_sigreturn", "sched_getaffinity", "sched_setaffinity", "sched_yield",
		"set_robust_list", "set_tid_address", "setitimer", "sigaltstack", "sysinfo", "tgkill",
		"timer_create", "timer_delete", "timer_settime", "tkill", "uname", "write", "lseek",
		"openat", "open", "statx", "fstatfs", "getdents64", "waitid", "wait4",
	}
	// files: what fs/passthrough calls to serve a directory (openat2
	// containment, O_PATH inodes reopened through /proc/self/fd, file
	// handles, xattrs, locks, identity switches: setfsuid/setfsgid,
	// setgroups for the caller's supplementary group, capset to restore
	// the thread's capabilities) and what the data paths
	// call on file fds.
	files = []string{
		"openat2", "open_by_handle_at", "name_to_handle_at", "fsync", "fdatasync", "syncfs",
		"sync_file_range", "fallocate", "ftruncate", "truncate", "flock", "copy_file_range",
		"pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2", "readv", "writev",
		"sendfile", "mkdirat", "mknodat", "symlinkat", "linkat", "unlinkat", "renameat",
		"renameat2", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchownat", "utimensat",
		"statfs", "faccessat", "faccessat2", "fgetxattr", "fsetxattr", "flistxattr",
		"fremovexattr", "getxattr", "setxattr", "listxattr", "removexattr", "lgetxattr",
		"lsetxattr", "llistxattr", "lremovexattr", "getxattrat", "setxattrat", "listxattrat",
		"removexattrat", "setfsuid", "setfsgid", "capget", "capset", "umask", "ioctl",
		"getgroups", "setgroups", "getresuid", "getresgid",
		"lseek", "fadvise64", "readahead", "splice", "tee", "vmsplice", "fchdir", "chdir",
	}
	// network: sockets of the listener and the metrics/pprof HTTP server.
	network = []string{
		"socket", "bind", "listen", "accept", "accept4", "connect", "getsockname",
		"getpeername", "getsockopt", "setsockopt", "recvfrom", "recvmsg", "sendto", "sendmsg",
		"shutdown", "socketpair",
	}
	// doorCalls: what only one door calls.
	doorCalls = map[Door][]string{
		// /dev/fuse: io_uring for --uring. No mount or umount2: the
		// confined process is a child that leaves the unmount to its
		// unconfined supervisor (cmd/fastfsd/mount.go).
		Mount: {"io_uring_setup", "io_uring_enter", "io_uring_register"},
		// vhost-user: guest memory and DAX windows arrive as fds to
		// mmap, kicks as eventfds: nothing beyond the common list.
		Virtiofs: {},
		P9:       {},
	}
)

// Syscalls returns door's allow-list, sorted, with the names the running
// architecture lacks left out.
func Syscalls(d Door) []string {
	info, err := arch.GetInfo("")
	seen := map[string]bool{}
	var out []string
	for _, list := range [][]string{goRuntime, files, network, doorCalls[d]} {
		for _, n := range list {
			if seen[n] {
				continue
			}
			seen[n] = true
			if err == nil {
				if _, ok := info.SyscallNames[n]; !ok {
					continue
				}
			}
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// filter builds door's seccomp filter. The allow-list's calls are allowed;
// everything else gets action's return.
func filter(d Door, action SeccompAction) seccomp.Filter {
	def := seccomp.ActionKillProcess
	switch action {
	case SeccompLog:
		def = seccomp.ActionLog
	case SeccompTrap:
		def = seccomp.ActionTrap
	}
	return seccomp.Filter{
		// no_new_privs is set separately, before Landlock; setting it
		// again here costs nothing and keeps the filter self-contained.
		NoNewPrivs: true,
		// TSYNC: the kernel installs the filter on every thread of the
		// process at once (and fails if one has a diverging filter), so
		// no goroutine keeps running unfiltered on a thread made earlier.
		Flag: seccomp.FilterFlagTSync,
		Policy: seccomp.Policy{
			DefaultAction: def,
			Syscalls:      []seccomp.SyscallGroup{{Names: Syscalls(d), Action: seccomp.ActionAllow}},
		},
	}
}

// SeccompSupported reports whether the kernel has seccomp filters.
func SeccompSupported() bool { return seccomp.Supported() }

// loadFilter installs door's filter on all threads.
func loadFilter(d Door, action SeccompAction) error {
	if action == SeccompNone {
		return nil
	}
	if _, err := arch.GetInfo(""); err != nil {
		return fmt.Errorf("seccomp: no system call table for %s: %w; pass --seccomp=none", runtime.GOARCH, err)
	}
	if err := seccomp.LoadFilter(filter(d, action)); err != nil {
		return fmt.Errorf("seccomp: %w; pass --seccomp=none to run without a filter", err)
	}
	return nil
}
