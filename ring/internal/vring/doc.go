// Package vring holds what the device side (package ring) and the test
// driver side (package ringtest) of a split virtqueue share: the layout
// constants of virtio 1.x §2.7 and the one way this module accesses the
// 16-bit shared index and event fields of a ring.
//
// # 16-bit fields through 32-bit atomics
//
// Go's sync/atomic has no 16-bit operations, and a split ring's idx, flags
// and event fields are 16 bits wide. A [Field] reaches a 16-bit field through
// the naturally aligned 32-bit word that contains it:
//
//   - Load is an atomic 32-bit load of that word; the field is one half.
//     Loading the other half, even bytes just past the end of a ring, has no
//     effect on the guest, and New requires the whole word to be inside guest
//     memory.
//   - Store is an atomic compare-and-swap loop that replaces only the
//     field's half and writes the other half back with the value it had, so
//     it never changes a byte outside the field, even one the guest is
//     writing at the same moment (the CAS then fails and is retried). It
//     gives up after maxCASAttempts and reports false. For avail_event
//     package ring then reports work pending rather than risk a lost kick,
//     so a guest that kept the bytes next to it changing (past the used
//     ring's end) would keep that queue's worker from sleeping: a CPU of
//     the host's for one of its own vCPUs, spinning. Not seen: with a
//     goroutine adding to that half in a tight loop on the other CPU of a
//     2-CPU machine, none of 15 million EnableNotify calls failed its
//     store. A timed sleep after a failed store would bound it.
//   - [Word] is a plain atomic 32-bit access to a whole {flags, idx} header
//     word that one side owns entirely (the device owns used.flags and
//     used.idx).
//
// All sync/atomic operations are sequentially consistent (the Go memory
// model); on amd64 a store is an XCHG and a CAS a LOCK CMPXCHG (full
// barriers), on arm64 they are STLR / LDAXR-STLXR or CASAL and loads are LDAR.
// Under -race a plain atomic store loses its fence (golang/go#58020), so
// the stores here that a load of the other side's field follows are swaps
// ([Word.Store]) or CASes ([Field.Store]), full barriers in every build.
// This is stronger than virtio needs: acquire for avail.idx, release for
// used.idx, and a store→load barrier before reading an event field or the
// other side's idx after publishing (see package ring).
//
// The words are decoded as little-endian (virtio 1.x) on any host.
package vring
