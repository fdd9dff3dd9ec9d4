package vhostuser

import (
	"errors"
	"fmt"
)

// Sentinels for the ways a connection ends or a message fails. Serve returns
// an error that matches exactly one of ErrClosed, ErrDisconnected and
// ErrInvalidMessage through errors.Is (or ErrBusy, when it refused to start
// a second session).
var (
	// ErrClosed: the front-end closed the connection at a message boundary
	// with every ring stopped (after GET_VRING_BASE, or before any ring was
	// started): the orderly end of a session.
	ErrClosed = errors.New("vhostuser: front-end closed the connection")
	// ErrDisconnected: the connection broke mid-message, with a read or
	// write error, or while rings were still running (the VMM was killed).
	ErrDisconnected = errors.New("vhostuser: front-end disconnected unexpectedly")
	// ErrInvalidMessage: a message could not be accepted (bad size for its
	// type, wrong fd count, out-of-range index, untranslatable address, a
	// request not allowed in this state). Serve only returns it when the
	// session cannot continue (broken framing, or an invalid request that
	// needs a reply); otherwise the message is refused and serving goes on.
	ErrInvalidMessage = errors.New("vhostuser: invalid message")
	// ErrUnsupported: a well-formed request this back-end does not implement
	// (e.g. SET_LOG_BASE without LOG_ALL). It also matches
	// ErrInvalidMessage.
	ErrUnsupported = errors.New("vhostuser: unsupported request")
)

// MessageError describes a refused message.
type MessageError struct {
	Request Request
	Reason  string // what was wrong, lower case, no trailing period
	Err     error  // ErrInvalidMessage or ErrUnsupported
}

func (e *MessageError) Error() string {
	return fmt.Sprintf("vhostuser: %v: %s", e.Request, e.Reason)
}

// Unwrap returns the sentinel.
func (e *MessageError) Unwrap() error { return e.Err }

// Is makes an unsupported request also an invalid message.
func (e *MessageError) Is(target error) bool {
	return target == ErrInvalidMessage && e.Err == ErrUnsupported
}

func invalid(r Request, format string, args ...any) *MessageError {
	return &MessageError{Request: r, Reason: fmt.Sprintf(format, args...), Err: ErrInvalidMessage}
}

func unsupported(r Request, format string, args ...any) *MessageError {
	return &MessageError{Request: r, Reason: fmt.Sprintf(format, args...), Err: ErrUnsupported}
}

// ConnError is how a connection ended: Err is ErrClosed or ErrDisconnected,
// Cause the underlying I/O error (nil for a clean close).
type ConnError struct {
	Err   error
	Cause error
	// Running counts the rings that were still running when it ended.
	Running int
}

func (e *ConnError) Error() string {
	s := e.Err.Error()
	if e.Running > 0 {
		s += fmt.Sprintf(" with %d ring(s) running", e.Running)
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap returns both the sentinel and the cause.
func (e *ConnError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Err, e.Cause}
}
