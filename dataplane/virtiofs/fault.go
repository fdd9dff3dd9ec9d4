package virtiofs

import (
	"runtime/debug"

	"github.com/fastfsd/fastfsd/mem"
)

// Guest memory faults.
//
// Guest RAM is a file the front-end shares (a memfd or a file in
// /dev/shm) and mapped here with MAP_SHARED. A front-end that truncates
// the file after SET_MEM_TABLE leaves our mapping pointing past its end,
// and the next load or store there raises SIGBUS, which the Go runtime
// turns into a fatal error that kills every queue and every session.
// Sealing (F_SEAL_SHRINK) would rule this out, but QEMU seals only
// memory-backend-memfd with seal=on; memory-backend-file in /dev/shm, the
// usual vhost-user set-up, carries no seals, so it cannot be required.
//
// Instead every goroutine that touches guest memory runs with
// debug.SetPanicOnFault(true), which makes such a fault a run-time panic
// whose value has an Addr method, and recovers it at two boundaries:
//   - the request (serveGuarded): a fault while copying a request's header
//     and arguments in or its reply out fails that request; the worker
//     pushes its chain with used length 0 (as for a refused chain) and
//     serves on.
//   - the queue (worker.run): a fault on the ring itself (descriptor table,
//     avail or used ring) leaves nothing to answer on; the queue is broken
//     (error eventfd signalled, no further access to its ring) until the
//     front-end stops it, and the other queues and the next front-end are
//     served as before.
// preadv/pwritev into guest memory cannot raise SIGBUS: the kernel answers
// a fault in a system call with EFAULT, which reaches the client as an
// errno.

// panicOnFault arms the calling goroutine (a worker or helper) so a fault
// on guest memory panics instead of killing the process. It is per
// goroutine, so each one that touches guest memory calls it first.
func panicOnFault() { debug.SetPanicOnFault(true) }

// serveGuarded is serve with a fault on guest memory turned into a failed
// request: it returns 0 (nothing written) and counts the fault. Any other
// panic is re-raised. Zero cost on the normal path but a deferred call.
func (d *Device) serveGuarded(s *slot, queue int) (n uint32) {
	defer func() {
		if p := recover(); p != nil {
			f := mem.AsFault(p)
			if f == nil {
				panic(p)
			}
			if k := d.faults.Add(1); k <= 10 {
				d.log.Warn("virtiofs: request touched guest memory the front-end no longer backs (shrunk memfd?); failing it",
					"queue", queue, "addr", f.Addr(), "faults", k)
			}
			n = 0
		}
	}()
	return d.serve(s, queue)
}

// offloadGuarded is offload, which reads the request header from guest
// memory on the worker: a fault there answers offloadInline, and serving
// the request inline fails it through serveGuarded.
func (w *worker) offloadGuarded(s *slot) (where int) {
	defer func() {
		if p := recover(); p != nil {
			if mem.AsFault(p) == nil {
				panic(p)
			}
			where = offloadInline
		}
	}()
	return w.offload(s)
}
