// Package sys holds the raw system calls and ioctls that golang.org/x/sys
// lacks, one file per kernel interface (fusedev*.go: the /dev/fuse ioctls).
//
// Rules for every file here:
//   - Each wrapper returns a syscall.Errno (0 on success), never a wrapped
//     error: callers on the hot path compare it without allocating.
//   - Pointer arguments are kept alive across the system call with
//     runtime.KeepAlive; unsafe is used only in *_unsafe.go files, only to
//     build system-call arguments.
//   - A wrapper retries only what must be retried and says why.
//
// sys imports nothing of fastfs; every package that owns a kernel resource
// (dataplane/fusedev, splice, mem, vhostuser, fs/passthrough) may import it.
package sys
