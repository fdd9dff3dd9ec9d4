package splice

import "sync"

// Pool hands out empty pipes of one size. It keeps at most max idle pipes
// (each pins kernel memory); Put closes the rest.
type Pool struct {
	size int
	max  int

	mu   sync.Mutex
	free []*Pipe // +checklocks:mu; every pipe here is empty
}

// NewPool returns a pool of pipes holding at least size bytes each, keeping
// up to maxIdle idle pipes.
func NewPool(size, maxIdle int) *Pool {
	return &Pool{size: size, max: maxIdle}
}

// Get returns an empty pipe from the pool or a new one.
func (pl *Pool) Get() (*Pipe, error) {
	pl.mu.Lock()
	if n := len(pl.free); n > 0 {
		p := pl.free[n-1]
		pl.free[n-1] = nil
		pl.free = pl.free[:n-1]
		pl.mu.Unlock()
		return p, nil
	}
	pl.mu.Unlock()
	return New(pl.size)
}

// Put returns p to the pool. A pipe that cannot be emptied, or one too
// many, is closed.
func (pl *Pool) Put(p *Pipe) {
	if p == nil || p.r < 0 {
		return
	}
	if p.Drain() != 0 {
		p.Close()
		return
	}
	pl.mu.Lock()
	if len(pl.free) < pl.max {
		pl.free = append(pl.free, p)
		pl.mu.Unlock()
		return
	}
	pl.mu.Unlock()
	p.Close()
}

// Close closes every idle pipe.
func (pl *Pool) Close() {
	pl.mu.Lock()
	free := pl.free
	pl.free = nil
	pl.mu.Unlock()
	for _, p := range free {
		p.Close()
	}
}
