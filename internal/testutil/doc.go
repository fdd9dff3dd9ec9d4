// Package testutil holds the helpers tests share: Require* checks that skip
// a test naming exactly what is missing (root, /dev/fuse, QEMU, a
// tracepoint), or fail it in strict mode.
//
// Strict mode is on when FASTFSD_TEST_STRICT=1 or CI=true: CI has every
// prerequisite installed, so there a missing one is a failure, not a skip,
// and a green run means the privileged tests really ran.
package testutil
