// Package dax keeps a virtio-fs DAX window: the table of file ranges mapped
// into the device's shared memory region 0 (the "cache" window the guest
// maps as RAM), and the FUSE_SETUPMAPPING / FUSE_REMOVEMAPPING logic that
// changes it. A *Window implements the fuse engine's fuse.DAX hook.
//
// # What it needs, and from whom
//
// A back-end cannot map anything into a guest itself: it asks the VMM (the
// vhost-user front-end) to mmap a file range at an offset of the window and
// to unmap it again. dax states that as the small Mapper interface, where
// it is used; dataplane/virtiofs implements it with the vhost-user back-end
// request channel (SHMEM_MAP / SHMEM_UNMAP), tests with a fake. The fd to
// map comes from the filesystem (FS): fs.Mapper.MapFd of the request's
// handle, or, since Linux sends every SETUPMAPPING with fh = -1 (NoHandle)
// and the inode in the header, of a handle the window opens with
// fs.FileSystem's Open (read-write only for a writable mapping) and
// releases as soon as it holds its own duplicate of the fd.
//
// dax imports fs and the standard library only: never vhostuser, ring,
// dataplane or golang.org/x/sys/unix.
//
// # Contract
//
//   - Every request is validated before anything changes: a zero length, a
//     range that wraps, an offset or length that is not a multiple of the
//     negotiated alignment (the map_alignment the engine offers in INIT),
//     or a range that does not lie inside the window is EINVAL.
//   - A SETUPMAPPING over ranges that are already mapped replaces them,
//     as the kernel expects: mappings inside the new range are dropped,
//     mappings that straddle its edges are split and keep their parts
//     outside it. REMOVEMAPPING punches the range the same way; removing a
//     range where nothing is mapped succeeds.
//   - The table mirrors the front-end exactly. Front-ends (QEMU's SHMEM
//     implementation among them) refuse a map over an existing mapping and
//     an unmap that is not exactly one existing mapping, so a replacement
//     is sent as: unmap each overlapped mapping whole, map back the parts
//     of it that survive, map the new range. An entry enters the table
//     only after the front-end accepted its map, and leaves it only after
//     the front-end accepted its unmap, so a refused step leaves the table
//     equal to what the front-end holds (possibly with a split remainder
//     gone), and the error is returned.
//   - Errors to the guest: EINVAL for invalid requests; EOPNOTSUPP when no
//     front-end that can map is attached (none, or it did not negotiate
//     the feature); otherwise the front-end's or the filesystem's errno
//     (EIO when an error carries none). Nothing waits without bound: the
//     Mapper must return (the vhost-user channel has a timeout).
//   - SetMapper(nil) (front-end disconnect) drops every mapping without
//     telling anyone: the front-end's mappings died with it. Reset (device
//     reset with the front-end still there) unmaps what it can and drops
//     the table either way.
//
// # Concurrency
//
// A Window is safe for concurrent use by every queue worker. Requests are
// serialised by one mutex held across the front-end round trips: map
// requests are rare (the kernel maps 2 MiB at a time and keeps them) and
// the vhost-user channel serialises them anyway.
//
// # File descriptors
//
// The fd MapFd returns stays the filesystem's. The window duplicates it
// (close-on-exec) for as long as some mapping made from it remains, because
// splitting a mapping maps its surviving parts again. All the pieces of one
// SETUPMAPPING share one duplicate. With map_alignment 21 (2 MiB, the
// kernel's own granule) a window of S bytes holds at most S/2 MiB entries,
// and so at most that many fds.
package dax
