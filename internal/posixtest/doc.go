// Package posixtest is fastfs's conformance suite: one suite, run through
// many doors. Suite maps a case name to a func(t, Env); Run runs every case
// against the directory an Env names — a FUSE mount of fastfsd, a virtio-fs
// or 9P mount inside a guest, or a plain directory (the self-test, which
// must pass: a case that fails natively is a wrong case).
//
// # Ground truth
//
// Most cases are twins: the case body is written once against a Side and
// runs twice, first in a fresh directory under Env.Ref (a native directory
// on the same kind of filesystem as the export, never the export itself),
// then in a fresh directory under Env.Dir. Every step records what it saw —
// the errno, data digests, mode/size/nlink/uid/gid, times where a step set
// them explicitly — and the two records must be equal, step by step. On top
// of that, bodies assert facts that hold on any POSIX filesystem (data read
// back equals data written, every name is listed exactly once), so a door
// that agrees with a broken reference still fails.
//
// # Doors and capabilities
//
// Nothing here knows which door it runs through. What a door cannot offer
// (no xattrs over some 9P servers, no allow_other so no non-root checks, no
// O_TMPFILE in an older guest kernel) is declared in Env.Lacks with a
// reason, and the cases that need it skip saying so. A case that fails
// through a door because of a known, reported bug is listed in Env.Known
// and skipped with the bug's description (POSIXTEST_RUN_KNOWN=1 runs it
// anyway, to check a fix). Prerequisites of the
// machine (fio, tar) are checked with internal/testutil, which fails instead
// of skipping under CI=true.
//
// TestDir in this package runs the suite on any mount named by
// POSIXTEST_DIR, so the compiled test binary (go test -c) runs inside a
// guest over virtio-fs or 9P; see its comment for the variables.
//
// # Other identities
//
// The permission and times matrix (cases_matrix.go, docs/posix-parity.md)
// runs each caller on a locked OS thread whose ids and groups are switched
// with raw per-thread system calls (runAs), so a door sees every caller
// without a process start per identity; no user database is needed.
//
// # Child processes
//
// Lock cases and the non-root section re-execute the test binary. A test
// package that runs the suite must route its TestMain through Main, which
// turns the process into the requested child when the environment asks for
// one; without it those cases fail with a message saying so.
//
// # Concurrency
//
// Run runs the cases one after another (their subtests may run goroutines
// of their own). Env is read-only. The suite must run as root; cases that
// need another identity drop to it in a child.
//
// posixtest is test support: it imports golang.org/x/sys/unix and
// internal/testutil and nothing of the data plane, so it tests a door only
// through the kernel's system-call interface.
package posixtest
