package fuse

import (
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse/abi"
)

// PollHackName is the file the engine serves in the root directory, without
// the filesystem's involvement, when Options.PollHack is set. A transport
// that serves a mount in-process opens it right after mount and adds the fd
// to an epoll set with a blocking epoll_ctl (syscall.Syscall6, not the raw
// syscall.EpollCtl): the kernel then sends its first FUSE_POLL, the engine
// answers ENOSYS, and the kernel stops asking. From then on package os may
// open files of the mount in the same process without the deadlock the
// package comment describes. go-fuse does the same.
const PollHackName = ".fastfs-poll-hack"

// PollHackInode is the node ID of PollHackName. With Options.PollHack the
// filesystem must not hand it out.
const PollHackInode fs.Inode = 1<<64 - 1

// pollHackLookup answers LOOKUP of PollHackName in the root.
func (s *Server) pollHackLookup(r *Request) int {
	b := args(r)
	var eo abi.EntryOut
	eo.NodeID = uint64(PollHackInode)
	eo.Attr.Ino = uint64(PollHackInode)
	eo.Attr.Mode = syscall.S_IFREG | 0o444
	eo.Attr.Nlink = 1
	eo.Marshal(b)
	return s.okReply(r, abi.EntryOutSize)
}

// pollHack answers every request on PollHackInode: an empty read-only
// file that can be opened, polled (ENOSYS) and closed.
func (s *Server) pollHack(r *Request) int {
	switch r.req.hdr.Opcode {
	case abi.OpForget, abi.OpBatchForget, abi.OpInterrupt:
		return 0
	case abi.OpGetattr:
		var ao abi.AttrOut
		ao.Attr.Ino = uint64(PollHackInode)
		ao.Attr.Mode = syscall.S_IFREG | 0o444
		ao.Attr.Nlink = 1
		ao.Marshal(args(r))
		return s.okReply(r, abi.AttrOutSize)
	case abi.OpOpen:
		var oo abi.OpenOut
		oo.OpenFlags = abi.FopenDirectIO
		oo.Marshal(args(r))
		return s.okReply(r, abi.OpenOutSize)
	case abi.OpRead:
		return s.okReply(r, 0)
	case abi.OpFlush, abi.OpRelease:
		return s.errReply(r, 0)
	case abi.OpPoll:
		return s.errReply(r, syscall.ENOSYS)
	}
	return s.errReply(r, syscall.EPERM)
}
