// Package vhostusertest is a vhost-user front-end in Go for tests: it plays
// the VMM (QEMU's message sequences, memfd guest memory shared by fd,
// eventfds) and the guest's virtio driver (rings driven by ring/ringtest
// over the same memory), so a back-end can be tested end to end without a
// VM, and attacked: raw messages of any shape (Frontend.SendRaw, Send),
// forged descriptor chains (GuestQueue.D), memory-table changes while
// requests flow (Frontend.AddMemReg/RemMemReg from another goroutine than
// the one submitting), disconnects at any point.
//
// Pieces: Frontend (one connection: Send/Call/Do with REPLY_ACK checking,
// typed helpers per message), GuestMemory (memfd regions mapped here and
// passed to the back-end), Guest (NewGuest runs QEMU's whole start
// sequence; Stop is QEMU's stop sequence; Restart a rebooted guest's) and
// GuestQueue (Submit one chain and wait for its completion, insisting on
// the interrupt the driver asked for with used_event).
//
// It knows nothing of FUSE: callers build request bytes (with fuse/abi for
// virtio-fs). A Frontend, a Guest and each GuestQueue belong to one
// goroutine, except that different GuestQueues may be driven from
// different goroutines.
package vhostusertest
