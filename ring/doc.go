// Package ring is the device side of a virtio split virtqueue (virtio 1.x
// §2.7): it takes descriptor chains the guest driver made available, walks
// and validates them into views of guest memory, and returns them through
// the used ring with notification suppression (VIRTIO_F_EVENT_IDX,
// VRING_AVAIL_F_NO_INTERRUPT / VRING_USED_F_NO_NOTIFY) and indirect
// descriptors (VIRTIO_RING_F_INDIRECT_DESC).
//
// ring imports only mem. It makes no system calls: the owner signals the
// call eventfd when Publish says so and waits on the kick eventfd. The test
// driver (the guest side) is package ringtest.
//
// # Ownership and concurrency
//
// One Queue is owned by one worker goroutine and used without locks. The
// worker keeps the queue's mem.Table mapped: it calls mem.Reader.Enter at
// the start of a batch, Queue.SetMemory if the table changed, and
// mem.Reader.Exit only after the batch's chains are complete — a Chain's
// views are dead after that. A Chain belongs to the caller; Pop fills it.
//
// # A hostile guest
//
// Guest memory is shared with a guest that may change it at any time. Every
// descriptor, avail ring entry and index is read once into a local, and only
// the local is checked and used. Addresses and lengths are checked without
// overflow against the memory table, a chain never yields a view outside
// guest memory, and a chain is bounded by its table size (loops), by
// MaxBuffers and by Config.MaxChainBytes. An indirect table holds at most
// Size entries: the spec forbids chains longer than the queue size, and
// Linux's virtio-fs caps a request at queue size - 4 pages to honour it. Nothing the guest writes makes
// Pop panic or allocate.
//
// Policy for bad input: a malformed chain fails that request only. Pop
// returns the error with ok == true and the chain's head; the caller
// completes the head with 0 bytes written, so the driver gets its
// descriptors back and the queue keeps serving. A corrupt ring — avail.idx
// more than a queue's worth ahead, or a head index out of range — leaves no
// chain to complete: Pop returns ok == false with a sticky error and the
// owner stops the queue (vhost-user: signal the error eventfd).
//
// # Memory ordering
//
// The 16-bit idx and event fields are accessed with 32-bit sync/atomic
// operations on the aligned word that holds them (package
// ring/internal/vring explains how, and why that never writes a byte outside
// the field). Go atomics are sequentially consistent; what the code relies
// on, each stated where it is done:
//
//   - Pop loads avail.idx (acquire) once per batch, before reading avail
//     ring entries and descriptors; pairs with the driver's write barrier
//     before its avail.idx store.
//   - Publish stores used.idx (release) once per batch, after Push wrote the
//     used elements and the reply bytes were written; pairs with the
//     driver's read barrier after its used.idx load.
//   - Publish then loads used_event (EVENT_IDX) or avail.flags; the
//     store→load order (a full barrier, given by two sequentially consistent
//     atomics) keeps an interrupt from being lost.
//   - EnableNotify stores avail_event (or clears used.flags NO_NOTIFY) then
//     loads avail.idx, again store→load, so a kick is never lost.
//
// Data the device reads (descriptors, avail entries, request bytes) and
// writes (used elements, reply bytes) are plain accesses ordered by those
// atomics.
package ring
