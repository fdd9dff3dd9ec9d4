// Package dos is the denial-of-service suite (issue 10): a built fastfsd
// is attacked the way an unprivileged local user or a hostile 9P client
// would — lock storms, GETLK owner storms, open floods (also of files
// that end up deleted, and of files a host process holds a lease on),
// lookups in evicted directories thousands of levels deep, Tflush floods,
// a client that stops reading —
// while a second client's stat loop keeps running. The floods assert
// that the stat loop never stalls for a second, that its p99 stays within
// 5× the idle p99, that the daemon's fd count and RSS stay under stated
// bounds, and that SIGTERM ends the daemon within 5 s. The per-uid cases
// assert shares instead: TestLockWaitsPerUid* and TestLeaseWaitsPerUid
// that one uid's lock and lease waits stop at its share of the wait
// slots (ENOLCK, EAGAIN past it) while other users' still wait; on 9P,
// TestP9OpenBudgetDisconnect that a client that fills the per-uid open
// budget with opens and lock owners, then vanishes without clunking,
// gives its fds and budget back.
//
// The tests need root (they mount, and run the attackers as uid 65534)
// and /dev/fuse; they skip otherwise (fail under FASTFSD_TEST_STRICT=1).
package dos
