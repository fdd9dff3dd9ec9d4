package fuse

import "github.com/fastfsd/fastfsd/fs"

// This file is the contract between the engine and the transports that feed
// it (dataplane/fusedev, dataplane/uring, dataplane/virtiofs). The engine
// knows nothing of fds, rings or guest memory: a transport hands it a
// Request whose In holds one FUSE request and gets back the reply in Out.

// Request is the working set of one FUSE request. It belongs to exactly one
// worker, which reuses it for every request it serves (it is that worker's
// arena: the steady state allocates nothing). Make one with
// Server.NewRequest.
//
// Per request the transport sets In (and Src/Dst when it moves data itself),
// calls Server.Handle, then sends the reply and, for READ with Dst set, the
// data Dst holds. A reply the client refuses (it no longer has the
// request) goes back through Server.NotDelivered before the Request
// serves its next request, so that the lookups and handles it carried
// are not kept forever.
type Request struct {
	// In is the request as received: fuse_in_header, the op's arguments
	// and, for WRITE, the payload unless Src is set. A view into the
	// transport's buffer or guest memory, valid until the reply is sent;
	// the engine reads every header field once and validates lengths
	// before use.
	In []byte

	// Src, when non-nil, is the WRITE payload kept out of In (a pipe the
	// transport spliced from /dev/fuse, or guest descriptors). In then ends
	// after fuse_write_in. Nil: the payload follows fuse_write_in in In.
	Src fs.Source

	// Dst, when non-nil, receives READ data (splice into a pipe, preadv
	// into guest memory); it must be empty (Len 0) when Handle is called,
	// and is ignored by every other opcode. The transport sends
	// DataLen() bytes of it after
	// Out[:n] (the reply header's len counts them; 0 after an error).
	// Nil: the engine puts READ data in Out right after the out header.
	Dst fs.Sink

	// Out is the reply buffer, allocated by NewRequest with room for the
	// largest reply the negotiated limits allow (Server.OutSize). The
	// transport may replace it by a buffer at least as large.
	Out []byte

	// NoWait is set by a transport serving the request where it must not
	// wait for long (a /dev/fuse worker that other requests queue behind)
	// and that can serve it again elsewhere: the filesystem sees it as
	// fs.Context.NoWait. A request that would wait (an OPEN, CREATE or
	// truncating SETATTR breaking a host lease) is then not answered:
	// Handle returns 0 and Retry reports true, and the transport serves
	// In again with NoWait false where waiting is allowed (a helper).
	// With NoWait false OPEN, CREATE and SETATTR register for
	// FUSE_INTERRUPT, so an INTERRUPT or InterruptAll (shutdown) ends
	// such a wait with EINTR.
	NoWait bool

	req request // engine scratch: decoded header, fs.Context, out structs
}

// DataLen is the number of bytes the transport sends from Dst after the
// reply in Out[:n] (READ with Dst set, on success); 0 for every other
// reply. Valid after Handle until the next Handle.
func (r *Request) DataLen() int { return r.req.dataLen }

// Retry reports whether the last Handle left the request unanswered
// because it would wait and NoWait was set: the transport must serve In
// again with NoWait false (or answer it itself). Valid after Handle until
// the next Handle.
func (r *Request) Retry() bool { return r.req.retry }
