package fuse

import "github.com/fastfsd/fastfsd/fs"

// PLACEHOLDER — the engine helper replaces this file. The signatures below
// are the contract transports code against.

// request is the engine's per-request scratch inside Request.
type request struct{}

// Server is the FUSE protocol engine for one connection (one mount or one
// virtio-fs device). It is safe for concurrent use by many workers, each
// with its own Request.
type Server struct{ fs fs.FileSystem }

// NewServer returns an engine serving fsys with the transport's options.
func NewServer(fsys fs.FileSystem, opts Options) *Server { return &Server{fs: fsys} }

// NewRequest allocates a worker's Request with Out sized for the largest reply.
func (s *Server) NewRequest() *Request { return &Request{} }

// Handle serves r.In and returns the length of the reply in r.Out
// (out header + arguments; for READ with r.Dst set the header's len already
// counts r.Dst.Len() data bytes, which the transport sends after Out[:n]).
// It returns 0 when the request takes no reply (FORGET, BATCH_FORGET,
// INTERRUPT, NOTIFY_REPLY). It never panics on bad input: a malformed request
// gets an error reply (EINVAL/EIO) or, when not even the header is readable,
// no reply.
func (s *Server) Handle(r *Request) int { return 0 }

// Options are what the transport can do and what the user asked for.
type Options struct{}
