package dataplane

import "sync"

// WaitCopies is a door's pool of large request copies, for waits (a lock
// wait, or an OPEN, CREATE or truncating SETATTR that must break a host
// lease: see LockWaits) whose request is larger than the small fixed
// copy a helper keeps for the ops that block (their struct and a few
// request extensions). A CREATE of a long name with the kernel's request
// extensions (a security label, the supplementary group) is one: it must
// still wait on a helper, never on a worker, where it would sleep in the
// lease break up to lease-break-time (45 s) with every request behind it.
// The FUSE doors use one each: a /dev/fuse connection's helper pool, each
// FUSE io_uring queue, each virtqueue.
//
// Memory bound: at most Slots copies exist at once, each at most Max
// bytes (the largest request the door reads). The door takes a copy only
// for a wait that holds one of its wait slots and gives it back with the
// slot, so Slots is the number of wait slots that may need one; Get
// enforces the bound itself all the same (nil past it). A copy is the
// size asked for rounded up to 4 KiB (a page holds a name and a security
// label), and a free copy is reused for any request it holds, so in
// practice the pool holds a few pages; a copy too small for the request
// at hand is replaced once all Slots exist.
//
// Get and Put may be called from any goroutine (a /dev/fuse connection's
// workers take copies and its helpers give them back); the lock is
// uncontended where one worker does both. Neither is on a hot path:
// only waits too big for a helper's fixed copy come here.
type WaitCopies struct {
	slots, max int // immutable

	mu sync.Mutex
	// free holds the copies given back; capacity slots, never grows
	// (out + len(free) ≤ slots). +checklocks:mu
	free [][]byte
	// out counts the copies Get handed out and Put has not given back.
	// +checklocks:mu
	out int
}

// NewWaitCopies returns a pool of at most slots copies of at most size
// bytes each; none is made before Get asks.
func NewWaitCopies(slots, size int) *WaitCopies {
	slots = max(slots, 0)
	return &WaitCopies{slots: slots, max: size, free: make([][]byte, 0, slots)}
}

// Slots and Max return the bounds: copies at most, bytes per copy at
// most.
func (c *WaitCopies) Slots() int { return c.slots }
func (c *WaitCopies) Max() int   { return c.max }

// Get returns a copy of at least n bytes (len ≥ n), for the caller to
// give back with Put once the wait that uses it is answered. It returns
// nil when n is more than Max, or when Slots copies are out already
// (a door whose waits each hold a wait slot never sees that).
func (c *WaitCopies) Get(n int) []byte {
	if n > c.max || n < 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out >= c.slots {
		return nil
	}
	for i, b := range c.free {
		if len(b) >= n {
			last := len(c.free) - 1
			c.free[i], c.free[last] = c.free[last], nil
			c.free = c.free[:last]
			c.out++
			return b
		}
	}
	if c.out+len(c.free) >= c.slots {
		// Every copy exists and those free are too small: drop one
		// (the collector takes it) for the larger one made below.
		last := len(c.free) - 1
		c.free[last] = nil
		c.free = c.free[:last]
	}
	c.out++
	return make([]byte, min((n+4095)&^4095, c.max))
}

// Put gives back a copy Get returned.
func (c *WaitCopies) Put(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.out <= 0 {
		panic("dataplane: WaitCopies: more copies given back than taken")
	}
	c.out--
	c.free = append(c.free, b) // within capacity: out + len(free) ≤ slots
}

// Counts returns the copies handed out and those free.
func (c *WaitCopies) Counts() (out, free int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out, len(c.free)
}
