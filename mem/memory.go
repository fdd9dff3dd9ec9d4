package mem

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/cpu"
)

// ErrNoRegion is returned by [Memory.RemoveRegion] when no region matches.
var ErrNoRegion = errors.New("mem: no such region")

// Memory is the live guest memory of one vhost-user session: a [Table]
// published copy-on-write, read without locks by queue workers through
// [Reader]s, replaced by the control plane. See the package documentation
// for the reclamation contract.
type Memory struct {
	// table is the current table, never nil.
	// Written (Store) by writers holding mu; read (Load) by Reader.Enter
	// and Table. It publishes the new Table and, through it, the regions'
	// mappings. Ordered against epoch as explained in Synchronize.
	table atomic.Pointer[Table]

	// epoch counts grace periods; starts at 1, so a reader state of 0 can
	// mean "offline". Incremented (Add) by Synchronize after a table Store;
	// loaded by Reader.Enter before its table Load.
	epoch atomic.Uint64

	// mu serialises writers and guards the fields below. A writer holds it
	// for the whole update, including the wait for readers.
	mu sync.Mutex
	// readers are the registered readers. Guarded by mu.
	// +checklocks:mu
	readers []*Reader
	// retired are regions no longer in the table whose unmapping still
	// waits for a grace period (a wait whose context expired). Guarded by mu.
	// +checklocks:mu
	retired []*Region
	// closed is set by Close. Guarded by mu.
	// +checklocks:mu
	closed bool
}

// NewMemory returns a Memory with an empty table.
func NewMemory() *Memory {
	m := &Memory{}
	m.table.Store(&Table{})
	m.epoch.Store(1)
	return m
}

// Table returns the current table without registering as a reader. It is
// for the control plane (for example [Table.UserToGuest] at SET_VRING_ADDR),
// which is the only caller of the update methods and so knows the table
// cannot be unmapped under it. Workers use [Reader.Enter].
func (m *Memory) Table() *Table { return m.table.Load() }

// Reader is one worker's read-side handle on a Memory. It belongs to one
// goroutine.
type Reader struct {
	m *Memory
	// online is the value of state as this goroutine last stored it. Owned
	// by the reader's goroutine (not shared), it lets Enter skip the store
	// when the epoch has not moved.
	online uint64
	_      cpu.CacheLinePad
	// state is 0 while the reader is offline, else the epoch it read on its
	// last Enter. Written (Store) only by the owning goroutine in Enter and
	// Exit; read (Load) by writers in Synchronize. Padded to its own cache
	// line: written by the worker, polled by the writer.
	state atomic.Uint64
	_     cpu.CacheLinePad
}

// NewReader registers a reader, offline. It waits for an update in progress.
func (m *Memory) NewReader() *Reader {
	r := &Reader{m: m}
	m.mu.Lock()
	m.readers = append(m.readers, r)
	m.mu.Unlock()
	return r
}

// Enter passes a quiescent point and goes online: it returns the current
// table, which, with every view taken from it, stays mapped until the next
// Enter, Exit or Close of this reader. Enter on an online reader is allowed
// (it is Exit followed by Enter). It allocates nothing and takes no lock;
// while no update happens it costs two atomic loads, so a worker can call it
// before every request.
func (r *Reader) Enter() *Table {
	// Order: epoch Load, state Store, table Load — all sequentially
	// consistent; Synchronize relies on the state Store preceding the table
	// Load. When state already holds e (stored by an earlier Enter, with no
	// Exit since), that earlier Store precedes this table Load just as well,
	// so storing e again would change nothing: skip it.
	if e := r.m.epoch.Load(); e != r.online {
		// A swap, not Store: under -race an atomic store has no fence
		// after it (golang/go#58020) and the table Load below could pass
		// it; a swap is a full barrier in every build.
		r.state.Swap(e)
		r.online = e
	}
	return r.m.table.Load()
}

// Exit is a quiescent point: the reader goes offline and holds no view.
// Call it before blocking.
func (r *Reader) Exit() {
	if r.online != 0 {
		r.state.Store(0)
		r.online = 0
	}
}

// Close exits and unregisters the reader.
func (r *Reader) Close() {
	r.Exit()
	m := r.m
	m.mu.Lock()
	m.readers = slices.DeleteFunc(m.readers, func(x *Reader) bool { return x == r })
	m.mu.Unlock()
}

// SetRegions replaces the whole table by regions (SET_MEM_TABLE). On
// success Memory owns the regions; regions of the old table that are not in
// the new one are unmapped once no reader can see them. On a validation
// error nothing changes and the caller still owns regions. A context error
// means the table was replaced but the old regions are still mapped; a later
// update, Synchronize or Close unmaps them.
func (m *Memory) SetRegions(ctx context.Context, regions []*Region) error {
	t, err := NewTable(regions...)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("mem: set regions: memory closed")
	}
	return m.replaceLocked(ctx, t)
}

// AddRegion adds r to the table (ADD_MEM_REG). Ownership and errors as in
// SetRegions.
func (m *Memory) AddRegion(ctx context.Context, r *Region) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("mem: add region: memory closed")
	}
	old := m.table.Load()
	regions := make([]*Region, 0, len(old.e)+1)
	for i := range old.e {
		regions = append(regions, old.e[i].r)
	}
	t, err := NewTable(append(regions, r)...)
	if err != nil {
		return err
	}
	return m.replaceLocked(ctx, t)
}

// RemoveRegion removes the region with d's guest address, user address and
// size (REM_MEM_REG; MmapOffset is ignored) and unmaps it once no reader can
// see it. It returns ErrNoRegion if none matches.
func (m *Memory) RemoveRegion(ctx context.Context, d RegionDesc) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.table.Load()
	regions := make([]*Region, 0, len(old.e))
	found := false
	for i := range old.e {
		rd := old.e[i].r.desc
		if !found && rd.GuestAddr == d.GuestAddr && rd.UserAddr == d.UserAddr && rd.Size == d.Size {
			found = true
			continue
		}
		regions = append(regions, old.e[i].r)
	}
	if !found {
		return fmt.Errorf("mem: remove region %v: %w", d, ErrNoRegion)
	}
	t, err := NewTable(regions...)
	if err != nil {
		return err // cannot happen: a subset of a valid table is valid
	}
	return m.replaceLocked(ctx, t)
}

// Close empties the table and unmaps every region once no reader can see
// it. A context error leaves the remaining regions on the retired list; call
// Close again to finish.
func (m *Memory) Close(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return m.replaceLocked(ctx, &Table{})
}

// replaceLocked publishes t, retires the regions of the old table that t
// lacks, waits for a grace period and unmaps every retired region.
//
// Preconditions: m.mu is held.
//
// +checklocks:m.mu
func (m *Memory) replaceLocked(ctx context.Context, t *Table) error {
	old := m.table.Swap(t)
	for i := range old.e {
		if r := old.e[i].r; !t.contains(r) {
			m.retired = append(m.retired, r)
		}
	}
	return m.synchronizeLocked(ctx)
}

// Synchronize waits until every reader has passed a quiescent point since
// the last table update, then unmaps the retired regions.
func (m *Memory) Synchronize(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.synchronizeLocked(ctx)
}

// synchronizeLocked is the grace-period wait.
//
// Why it is enough. All operations below are sequentially consistent, so
// they happen in one total order S. The writer did W1: table.Store(new)
// (before this call), W2: target = epoch.Add(1), W3: state.Load() per
// reader. A reader's Enter does R1: e = epoch.Load(), R2: state.Swap(e),
// R3: table.Load(); it skips R2 when its state already holds e, stored by
// an earlier Enter with no Exit since — that earlier store then plays R2's
// role, as it precedes R3 in program order and so in S.
//
// Suppose a reader's R3 returned the old table, so it may still hold views
// of retired regions. Then R3 precedes W1 in S, hence R1 < R3 < W1 < W2 <
// W3 and R2 (or the store playing its role) < R3: W3 sees that reader's
// state e, or a later value it stored. e was read before W2, so e < target
// and e != 0: the writer waits. The reader's next Exit stores 0 and its
// next Enter reads an epoch after W2 (>= target, != e) and stores it —
// either is a quiescent point after which it holds no view of the old
// table, and its later table Loads follow W1 in S and return the new table
// (or a newer one). So once every reader reads 0 or >= target, no reader
// holds or can obtain a view of a retired region.
//
// Preconditions: m.mu is held.
//
// +checklocks:m.mu
func (m *Memory) synchronizeLocked(ctx context.Context) error {
	target := m.epoch.Add(1)
	for _, r := range m.readers {
		for spin := 0; ; spin++ {
			s := r.state.Load()
			if s == 0 || s >= target {
				break
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("mem: waiting for readers to pass a quiescent point: %w", err)
			}
			backoff(spin)
		}
	}
	var errs []error
	live := m.table.Load()
	for _, r := range m.retired {
		if live.contains(r) {
			continue // retired by an update whose wait failed, then added back
		}
		if err := r.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	m.retired = m.retired[:0]
	return errors.Join(errs...)
}

// backoff yields, then sleeps up to a millisecond: readers pass quiescent
// points at least once per batch, so waits are short, but a writer must not
// burn a CPU the workers need.
func backoff(spin int) {
	if spin < 16 {
		runtime.Gosched()
		return
	}
	time.Sleep(time.Duration(min(1<<(spin-16), 1000)) * time.Microsecond)
}
