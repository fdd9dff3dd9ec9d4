#!/bin/sh
# scripts/guest-bench.sh — boot one QEMU guest with virtio-9p, the C
# virtiofsd and fastfsd virtiofs side by side, run test/guest/fio.sh on
# each, and print the figures as ratios to virtio-9p (same boot).
# Needs root and scripts/deps.sh. Takes a few minutes under TCG.
# Environment: FIO_RUNTIME (seconds per timed job, default 8), FIO_SIZE,
# FIO_FILES (passed to the guest's fio.sh); FASTFSD_BENCH_QUEUES=2 adds a
# fastfsd device with 2 request queues; FASTFSD_BENCH_OUT=FILE saves the table.
set -eu
cd "$(dirname "$0")/.."
FASTFSD_GUEST_BENCH=1 exec go test -count=1 -v -run '^TestGuestFIO$' -timeout 30m ./internal/vmtest/
