// Package sandbox confines a fastfsd door once its transport is set up:
// capabilities dropped to the door's set, no_new_privs, Landlock limiting
// file access to the shared directory, and a seccomp allow-list of
// system calls — in that order, each step needing calls the next may
// forbid. Confinement is for good and covers every thread of the process.
//
// # Why each piece is built this way
//
//   - Every thread. Capabilities, no_new_privs and Landlock domains are
//     per thread in Linux, and a Go program runs goroutines on threads it
//     made before main. Capability changes and no_new_privs go through
//     kernel.org/.../libcap/psx, which runs a system call on every thread
//     (syscall.AllThreadsSyscall without cgo; a signal-based mechanism
//     with cgo, so it also works in -race builds, where AllThreadsSyscall
//     refuses). Landlock goes through github.com/landlock-lsm/go-landlock,
//     which uses psx too. The seccomp filter is installed with
//     SECCOMP_FILTER_FLAG_TSYNC, so the kernel puts it on all threads at
//     once (and sets no_new_privs on each). Threads made later are cloned
//     from confined ones and inherit all of it.
//   - The filter is built in pure Go by github.com/elastic/go-seccomp-bpf:
//     it assembles a name list into classic BPF for the running
//     architecture (refusing x32 calls on amd64), supports TSYNC and the
//     kill/log/trap actions, and needs no libseccomp (cgo) — the daemon
//     must also build with CGO_ENABLED=0 for guests.
//   - One allow-list per door (Syscalls): the Go runtime's calls, the file
//     server's, the sockets', and each door's own (io_uring, mount and
//     umount2 for /dev/fuse only). Lists are names; a name the running
//     architecture lacks is left out.
//   - Capabilities: effective = permitted = bounding = the door's set
//     (DefaultCaps, changed by --modcaps); inheritable and ambient empty.
//     fs/passthrough's identity switches (setfsuid) lower and raise the
//     file-system capabilities within that set; fs/passthrough must be
//     opened after Apply, because it records the capability set a switched
//     thread runs with.
//   - Landlock is best effort: a kernel without it (or with an older ABI)
//     gets what it supports, and Report says what happened. It forbids
//     mount topology changes, so the mount door, which unmounts on exit,
//     runs without it.
//
// # Namespaces
//
// --sandbox=namespace (mount, pid and network namespaces, pivot_root into
// the shared directory) is set up by cmd/fastfsd (namespace.go): a Go
// process cannot unshare(CLONE_NEWNS), so it re-executes itself into a
// child made with the namespace clone flags, which calls Apply once its
// root is the shared directory.
package sandbox
