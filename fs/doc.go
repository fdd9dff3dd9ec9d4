// Package fs is the API a filesystem author implements to be served by fastfs
// over every door: the host kernel through /dev/fuse, a VM's virtio-fs driver
// through vhost-user, and 9P2000.L clients.
//
// The API is inode-based, like FUSE's low-level API: every method names the
// inode it acts on by the 64-bit ID the filesystem handed out in an Entry,
// and the filesystem keeps a lookup count per inode that Lookup-like methods
// raise and Forget lowers. Every method is request in, result out: it fills
// an out parameter the caller owns and returns an errno, or 0 (OK). There are
// no callbacks and no continuation.
//
// # Concurrency
//
// Methods are called concurrently from many goroutines (one per transport
// worker, each locked to an OS thread), for the same inode as well as for
// different ones. An implementation does its own locking.
//
// # Ownership
//
// Byte slices passed in (names, xattr values, link targets) are views into
// the transport's receive buffer or into guest memory, valid only until the
// method returns: copy them to keep them. Out parameters (*Entry, *AttrOut,
// …) are owned by the caller and are zeroed before the call. A Sink, Source
// or DirSink is valid only during the call it is passed to.
//
// # Errors
//
// The data-plane currency is syscall.Errno. ENOSYS means "not implemented"
// and nothing else: FUSE clients remember ENOSYS and never send that
// operation again, so an internal failure must be reported as EIO (or a more
// precise errno), never as ENOSYS. Base answers ENOSYS for everything.
//
// # Import rules
//
// fs imports nothing of fastfs and never imports a transport, the fuse engine
// or golang.org/x/sys/unix: file descriptors appear only as plain ints, so
// that transports can move data between them and the client without a copy
// through the Go heap (see Sink and Source).
package fs
