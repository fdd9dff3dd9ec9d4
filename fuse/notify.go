package fuse

import (
	"sync"
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse/abi"
)

// Retrieval is one FUSE_NOTIFY_RETRIEVE in flight: the transport sends the
// notification with ID as its notify_unique, and the kernel answers with a
// NOTIFY_REPLY request carrying that unique and the data it had cached,
// which Handle copies into the Retrieval's buffer before closing Done.
type Retrieval struct {
	id   uint64
	dst  []byte // owned by the caller; written by Handle before done closes
	n    int    // bytes copied into dst; read after done
	off  uint64 // the offset the kernel's data starts at; read after done
	done chan struct{}
}

// ID is the notify_unique to send.
func (rt *Retrieval) ID() uint64 { return rt.id }

// Done is closed once the kernel's reply has been copied.
func (rt *Retrieval) Done() <-chan struct{} { return rt.done }

// Result returns the offset the kernel's data starts at and how many
// bytes of it were copied into the buffer. Call it after Done is closed.
func (rt *Retrieval) Result() (off uint64, n int) { return rt.off, rt.n }

// retrievals are the Retrievals waiting for their reply, by ID.
type retrievals struct {
	mu   sync.Mutex
	next uint64                // +checklocks:mu
	m    map[uint64]*Retrieval // +checklocks:mu
}

// maxRetrievals bounds the retrievals in flight: each holds a caller's
// buffer until the kernel answers (or the caller ends it).
const maxRetrievals = 1024

// BeginRetrieve registers a retrieval whose data goes into dst, which
// must stay untouched until Done is closed or EndRetrieve is called. It
// returns EAGAIN when maxRetrievals are in flight already.
func (s *Server) BeginRetrieve(dst []byte) (*Retrieval, error) {
	s.retr.mu.Lock()
	defer s.retr.mu.Unlock()
	if len(s.retr.m) >= maxRetrievals {
		return nil, syscall.EAGAIN
	}
	if s.retr.m == nil {
		s.retr.m = make(map[uint64]*Retrieval)
	}
	s.retr.next++
	rt := &Retrieval{id: s.retr.next, dst: dst, done: make(chan struct{})}
	s.retr.m[rt.id] = rt
	return rt, nil
}

// EndRetrieve forgets rt: its notification failed, or its caller stopped
// waiting. A reply arriving later finds no taker and is dropped; after
// EndRetrieve returns, rt's buffer is not written.
func (s *Server) EndRetrieve(rt *Retrieval) {
	s.retr.mu.Lock()
	delete(s.retr.m, rt.id)
	s.retr.mu.Unlock()
}

// notifyReply hands a NOTIFY_REPLY (the kernel's answer to a
// NOTIFY_RETRIEVE, whose notify_unique is the request's unique) to the
// Retrieval waiting for it. It has no reply of its own.
func (s *Server) notifyReply(r *Request) int {
	q := &r.req
	var in abi.NotifyRetrieveIn
	if !in.Unmarshal(q.args) {
		s.logf("unique %d: NOTIFY_REPLY of %d bytes, shorter than its header", q.hdr.Unique, len(q.args))
		return 0
	}
	data := q.args[abi.NotifyRetrieveInSize:]
	if uint64(in.Size) > uint64(len(data)) {
		s.logf("unique %d: NOTIFY_REPLY says %d bytes, carries %d", q.hdr.Unique, in.Size, len(data))
		return 0
	}
	data = data[:in.Size]
	// Copy under the lock, so that EndRetrieve returning means the
	// buffer is no longer written.
	s.retr.mu.Lock()
	defer s.retr.mu.Unlock()
	rt := s.retr.m[q.hdr.Unique]
	if rt == nil {
		s.logf("unique %d: NOTIFY_REPLY with no retrieval waiting for it", q.hdr.Unique)
		return 0
	}
	delete(s.retr.m, rt.id)
	rt.n = copy(rt.dst, data)
	rt.off = in.Offset
	close(rt.done)
	return 0
}

// poll answers POLL through the filesystem's fs.Poller.
func (s *Server) poll(r *Request, p fs.Poller) int {
	q := &r.req
	var in abi.PollIn
	if !in.Unmarshal(q.args) {
		return s.errReply(r, syscall.EINVAL)
	}
	rev, e := p.Poll(&q.ctx, s.inode(r), fs.Handle(in.Fh), in.Kh, in.Flags&abi.PollScheduleNotify != 0, in.Events)
	if e != 0 {
		return s.errReply(r, e)
	}
	po := abi.PollOut{Revents: rev}
	po.Marshal(args(r))
	return s.okReply(r, abi.PollOutSize)
}
