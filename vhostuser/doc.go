// Package vhostuser is the back-end side of the vhost-user protocol
// (QEMU docs/interop/vhost-user.rst): it accepts a VMM's connection on a
// unix socket, reads its messages with their SCM_RIGHTS fds, validates each
// one, negotiates features and protocol features, keeps the guest memory
// table and each virtqueue's state, and tells a Device when a queue may run
// and when it must stop. It knows nothing of FUSE or of how rings are
// walked: the virtio-fs device (dataplane/virtiofs) plugs in behind Device.
//
// # Imports
//
// vhostuser imports mem (guest memory) and x/sys/unix (the socket it owns).
// It never imports fuse, fs or ring.
//
// # Concurrency
//
// Backend.Serve runs one session on the calling goroutine; every Device
// method is called from it, one at a time. Queue workers belong to the
// device. A ring's parameters are immutable while the device runs it: any
// change (new call fd, new address, new memory table, disable) is applied as
// StopQueue, change, StartQueue. GET_VRING_BASE returns only after StopQueue
// has returned, so QEMU's stop sequence completes: QEMU waits for every
// GET_VRING_BASE reply when the guest powers off, and a back-end that does
// not answer it (go-fuse's virtio-fs) leaves QEMU hung, ignoring SIGTERM.
//
// # Validation
//
// Every message is checked before any state changes: header version and
// flags, payload size for its type, fd count (unexpected fds are closed),
// ring index below the queue count, ring size a power of two up to the
// device's maximum, ring addresses aligned and inside the memory table,
// memory regions non-empty, non-wrapping, non-overlapping and within the
// process's mapping budget (mem.MaxMapped), ring notifiers eventfds (made
// non-blocking, so no write to one can hang a worker). A bad message
// is refused with one log line (and a non-zero REPLY_ACK when asked for);
// only broken framing, or a refused request the front-end waits on an answer
// for, ends the session. Serve's error says which of ErrClosed,
// ErrDisconnected or ErrInvalidMessage ended it.
//
// # Ownership
//
// fds received are owned by the session: ring eventfds until they are
// replaced or the ring is reset, region fds by the memory table, the
// back-end request socket until replaced. A device may use a Queue's fds
// only between StartQueue and the return of StopQueue.
package vhostuser
