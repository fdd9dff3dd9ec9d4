// Package vmtest boots throw-away QEMU guests for end-to-end tests of
// fastfsd's doors (virtio-fs, 9P) and reports what the guest saw.
//
// The guest is a busybox-static initramfs built on the host: the guest
// kernel's modules (virtio_pci, virtiofs, fuse, 9p, 9pnet_virtio, 9pnet_fd,
// netfs… decompressed, with a modules.dep), fio and the attr tools with
// their shared libraries, and an /init that mounts proc/sys/dev, loads the
// modules, brings up lo, mounts the shares, runs the caller's script and
// powers off. The base image is cached (keyed by its inputs) under
// /var/cache/fastfsd/initramfs; per-run files (a static fastfsd, a
// `go test -c` binary, scripts) go into a small second cpio appended to it.
//
// The guest kernel comes from scripts/deps.sh (Debian's newest 6.12
// linux-image, unpacked into /var/cache/fastfsd/guest-kernel/current, never
// installed on the host); FASTFSD_GUEST_KERNEL_DIR overrides it.
//
// QEMU runs with TCG (KVM does not work on the CI machines), 1 GiB in a
// shared memfd (vhost-user needs it), 2 vCPUs. Each virtio-fs Share starts
// its Backend (C virtiofsd, `fastfsd virtiofs`, anything virtiofsd-like)
// on a socket before QEMU and stops it after; a Share without a Backend is
// QEMU's built-in virtio-9p (-virtfs local).
//
// Results protocol, one line each on the serial console:
//
//	FASTFS-RESULT name=N status=PASS|FAIL|SKIP detail=free text
//	FASTFS-FIO name=BACKEND/JOB {fio JSON on one line}
//	FASTFS-DONE rc=N            (the final marker, printed by /init)
//
// Any other line (test/guest/fio.sh's FASTFS-JOB and FASTFS-TIMED markers,
// say) reaches Config.OnLine as it arrives, with each virtio-fs share's
// back-end PID: fastfs-run reads a back-end's CPU time over a guest step
// that way.
//
// A run fails (Result.Problems) on any FAIL, a missing final marker, a
// non-zero script status, a timeout, QEMU not exiting after the guest's
// power-off (a backend that never answers the stop sequence), or a kernel
// oops/BUG/panic on the console or in dmesg.
//
// Typical use in a test:
//
//	be := vmtest.Fastfsd(bin)
//	res := vmtest.RunT(t, vmtest.Config{
//		Shares: []vmtest.Share{{Tag: "fs", Dir: dir, Backend: &be, GuestPath: "/mnt/fs"}},
//		Files:  []vmtest.File{{Host: "../../test/guest/correctness.sh", Guest: "/test/correctness.sh"}},
//		Script: "sh /test/correctness.sh /mnt/fs\n",
//	})
//
// A server inside the guest (e.g. `fastfsd 9p` on 127.0.0.1 and a unix
// socket, mounted with trans=tcp / trans=unix): add the static binary to
// Files and start it from Script; see TestGuest9PInGuest. A 9P server on
// the host, for the guest's v9fs at native speed: QEMU's user-mode network
// with a guestfwd rule to the server's unix socket (ExtraQEMUArgs, the
// virtio_net module in Modules), mounted with trans=tcp; see
// TestGuestPosixMatrix9P.
//
// Set FASTFSD_VMTEST_VERBOSE=1 to stream the guest console to stderr.
package vmtest
