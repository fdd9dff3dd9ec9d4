package p9

import (
	"encoding/binary"
	"time"
)

// Counting requests (Options.Stats). p9 states the counter interface it
// needs; fastfsd plugs internal/stats in behind it, so p9 imports nothing
// but fs.
//
// Each connection worker goroutine takes one Counter when it starts and
// gives it back when the connection ends, so a Meter need never hold more
// Counters than ever ran at once. The reader's own replies (Tversion,
// Tflush) are not counted: only the requests a worker serves are.

// Counter counts the requests one worker goroutine serves. Only that
// goroutine calls Observe while it holds the Counter.
type Counter interface {
	// Observe counts one request: op is StatsOp of its type, errno 0 or
	// Rlerror's, n the payload bytes (Rread's data, Rwrite's count), d
	// the time from taking the request to its reply being encoded.
	Observe(op, errno uint32, n uint64, d time.Duration)
}

// Meter hands out Counters. Take and Give are called once per worker
// goroutine start and end, never per request.
type Meter interface {
	Take() Counter
	Give(Counter)
}

// StatsOp is the operation number of a 9P request type for a Counter:
// T-messages have even types below 128, so type/2 is below 64.
func StatsOp(t MsgType) uint32 { return uint32(t) / 2 }

// StatsName is the label of an operation number: the T-message's name.
func StatsName(op uint32) string { return MsgType(op * 2).String() }

// takeCounter returns a Counter for a connection worker, or nil without
// Options.Stats.
func (s *Server) takeCounter() Counter {
	if s.opts.Stats == nil {
		return nil
	}
	return s.opts.Stats.Take()
}

func (s *Server) giveCounter(c Counter) {
	if c != nil {
		s.opts.Stats.Give(c)
	}
}

// observe counts r, whose reply is encoded and not yet written (r is still
// the worker's), served since t0.
func observe(c Counter, r *request, t0 time.Time) {
	b := r.e.buf
	var errno uint32
	var n uint64
	if len(b) >= HeaderSize+4 {
		le := binary.LittleEndian
		switch MsgType(b[4]) {
		case MsgRlerror:
			errno = le.Uint32(b[HeaderSize:])
		case MsgRread, MsgRwrite:
			n = uint64(le.Uint32(b[HeaderSize:]))
		}
	}
	c.Observe(StatsOp(r.hdr.Type), errno, n, time.Since(t0))
}
