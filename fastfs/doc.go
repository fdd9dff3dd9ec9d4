// Package fastfs serves a filesystem written in Go with one call per door:
// Mount puts an fs.FileSystem on a directory of this host through
// /dev/fuse, ServeVirtioFS serves it to a VM as a vhost-user-fs
// (virtio-fs) device on a unix socket, and Serve9P serves it to 9P2000.L
// clients on a listener.
//
// A filesystem implements fs.FileSystem: either directly, the low-level
// inode API where embedding fs.Base answers every method left out, or as
// a tree of Go types on fs/nodefs, which numbers inodes, counts lookups
// and answers the rest. The smallest complete one, a read-only directory
// holding one file, is examples/hellofs:
//
//	root := &nodefs.Dir{Entries: map[string]nodefs.Node{
//		"hello": &nodefs.File{Data: []byte("hello, world\n")},
//	}}
//	m, err := fastfs.Mount(ctx, nodefs.New(root, nil), "/mnt", nil)
//	if err == nil {
//		err = m.Wait() // until unmounted, or ctx is cancelled
//	}
//
// # What each door needs
//
// Mount needs /dev/fuse, and root or the setuid fusermount3 (package
// fuse3) for an unprivileged user. The mount is in place when Mount
// returns; the kernel holds its first request until the workers have
// answered INIT. Cancelling ctx, Mounted.Unmount, or an unmount from
// outside end serving; Wait reports how it ended. A process must not open
// regular files of its own mount with os.Open (see package fusedev):
// use syscall.Open, or another process.
//
// # Mounting in two steps
//
// Open mounts without serving, and Session.Serve serves later; Adopt
// takes the /dev/fuse fd of a mount another process made. In between, a
// daemon can confine itself: cmd/fastfsd mount, as root, Opens in a
// supervisor that keeps only the right to unmount, and hands the fd to a
// child that Adopts it, Prepares what serving needs outside the served
// directory, enters that directory as its root under Landlock and a
// system-call filter, opens the filesystem and Serves it.
//
// # Telling the kernel what changed
//
// A filesystem that changes on its own (a clock, a network share, files
// changed by another process) can keep the client's cache long and still
// be seen changed: Mounted.InvalidateInode drops an inode's cached
// attributes and data, InvalidateEntry a cached name, NotifyDelete a name
// that was removed, Store puts data in the page cache and Retrieve reads
// it back, NotifyPoll wakes poll(2) waiters of an fs.Poller's file,
// IncEpoch makes every cached name be looked up again, Prune drops unused
// inodes and Resend has unanswered requests sent again. They are methods
// of the served mount, not of fs.FileSystem, and may be called from any
// goroutine, but not while serving a request about the same inode.
// virtio-fs has no way to send them to a Linux guest (its driver never
// negotiates the notification queue: virtiofs.ErrNotifyUnsupported), and
// 9P has none. examples/clockfs is a filesystem that notifies.
//
// ServeVirtioFS needs a VMM that connects to its socket as the same user
// (or root), e.g. QEMU with -chardev socket,id=c,path=SOCKET -device
// vhost-user-fs-pci,chardev=c,tag=TAG and shared guest memory
// (memory-backend-memfd,share=on); the guest mounts it with
// mount -t virtiofs TAG DIR. ServeVirtioFSListener serves a socket
// that is already listening instead: one made with another owner or
// mode, or inherited (libvirt's virtiofsd --fd=N).
//
// Serve9P needs only a net.Listener: a unix socket (the client's identity
// is then its peer credentials) or tcp (the client names its own uid;
// set P9Options.Identify to decide otherwise). The Linux client mounts it
// with mount -t 9p -o trans=unix,version=9p2000.L SOCKET DIR, or with
// trans=tcp. When ctx is cancelled, P9Options.Drain lets the requests
// being served finish before the connections are closed.
//
// # Imports
//
// fastfs sits above the transports (dataplane/fusedev, dataplane/virtiofs
// with vhostuser, p9) and below
// cmd/fastfsd; it imports no backend (fs/passthrough is one filesystem
// among others it can serve).
package fastfs
