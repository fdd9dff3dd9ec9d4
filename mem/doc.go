// Package mem maps a virtual machine's memory into the daemon and translates
// the guest's addresses into bounds-checked views of it.
//
// # Pieces
//
//   - [Region] is one shared mapping (MAP_SHARED, read-write) of a file
//     descriptor the front-end (QEMU, the vhost-user test front-end) sent,
//     with its [RegionDesc]: guest-physical address, size, front-end user
//     address and offset in the fd. A Region is a resource: Close unmaps it,
//     and a runtime cleanup unmaps a forgotten one.
//   - [Table] is an immutable, sorted, non-overlapping set of regions. It
//     answers [Table.Slice] (one view inside one region, or false),
//     [Table.Segment] (the longest view from an address inside one region),
//     [Table.AppendIovecs] (iovecs for preadv/pwritev straight into guest
//     memory, possibly spanning adjacent regions) and [Table.UserToGuest]
//     (front-end user address to guest-physical address, for ring addresses).
//   - The mapping budget ([MaxMapped], [SetMaxMapped]): Map counts the
//     address space of every live mapping in the process, all sessions
//     together, and refuses one past the budget (half the user address
//     space by default). A front-end's sparse file of many TiB costs it
//     nothing; without the bound it could take the whole address space and
//     the Go runtime's next heap growth would kill the process.
//   - [Memory] is the live table of a vhost-user session. The control plane
//     (SET_MEM_TABLE, ADD_MEM_REG, REM_MEM_REG) replaces it copy-on-write;
//     queue workers read it through a [Reader] without taking a lock.
//
// # Reclamation contract
//
// A view returned by a Table points into a mapping; touching it after the
// mapping is gone kills the process with SIGSEGV, so a Region must stay
// mapped while any worker may hold a view of it. Memory enforces that with
// quiescent-state-based reclamation:
//
//   - Each queue worker owns one [Reader]. Between [Reader.Enter] and
//     [Reader.Exit] (or the next Enter) it is "online" and may use the table
//     Enter returned and every view taken from it. Exit (and Enter itself)
//     is a quiescent point: the worker holds no view at that instant.
//     A worker calls Exit before it blocks (waiting for a kick), so a
//     sleeping worker never delays reclamation.
//   - A writer publishes the new table, then waits until every reader is
//     either offline or has entered after the publication (see
//     [Memory.Synchronize] for the argument), and only then unmaps the
//     regions the new table dropped. A writer whose context expires leaves
//     those regions mapped on a retired list; the next successful wait
//     unmaps them.
//
// Views taken from a Table are valid as long as the worker stays online (or,
// for a Table built without a Memory, until its regions are closed). Never
// keep one across Exit.
//
// # Concurrency
//
// Region and Table are safe for concurrent readers. Memory's update methods
// may be called from any goroutine (they serialise on a mutex) but usually
// come from the one vhost-user control goroutine. A Reader belongs to one
// goroutine.
//
// # Trust
//
// Guest addresses and lengths are hostile: every lookup is checked without
// overflow and never returns a view that straddles a region or reaches past
// one. Region descriptors come from the front-end and are validated when a
// Region is mapped and when a Table is built.
//
// mem imports only the standard library and golang.org/x/sys; it knows
// nothing of rings, FUSE or vhost-user.
package mem
