package vhostuser

import (
	"context"
	"errors"
	"time"

	"github.com/fastfsd/fastfsd/mem"
)

// Memory is the guest memory of a session as devices see it: the live,
// copy-on-write table of package mem. Each queue worker reads it through its
// own mem.Reader (see mem's reclamation contract); the session replaces it
// on SET_MEM_TABLE, ADD_MEM_REG and REM_MEM_REG without stopping the rings
// whose areas stay where they were.
type Memory = *mem.Memory

// maxMemRegions is the most regions the memory table holds.
const maxMemRegions = mem.MaxRegions

// DefaultMaxMemSlots is what GET_MAX_MEM_SLOTS answers by default: QEMU's
// and libvhost-user's limit (VHOST_USER_MAX_RAM_SLOTS on x86).
const DefaultMaxMemSlots = 509

// graceTimeout bounds how long a memory update waits for queue workers to
// pass a quiescent point before it leaves the dropped regions mapped for a
// later update to unmap (a worker stuck in a slow filesystem call).
const graceTimeout = 5 * time.Second

func desc(r Region) mem.RegionDesc {
	return mem.RegionDesc{GuestAddr: r.GuestAddr, Size: r.Size, UserAddr: r.UserAddr, MmapOffset: r.MmapOffset}
}

// memEmpty reports whether no guest memory is mapped.
func (s *session) memEmpty() bool { return s.mem.Table().Len() == 0 }

// ringAreas translates ring v's areas (front-end user addresses) into
// guest-physical addresses with the current table; false if an area is not
// wholly inside one region.
func (s *session) ringAreas(v *vring) (desc, avail, used uint64, ok bool) {
	t := s.mem.Table()
	n := uint64(v.num)
	area := func(ua, size uint64) (uint64, bool) {
		g, ok := t.UserToGuest(ua)
		if !ok {
			return 0, false
		}
		_, ok = t.Slice(g, size)
		return g, ok
	}
	var ok1, ok2, ok3 bool
	desc, ok1 = area(v.addr.Desc, 16*n)
	avail, ok2 = area(v.addr.Avail, 6+2*n)
	used, ok3 = area(v.addr.Used, 6+8*n)
	return desc, avail, used, ok1 && ok2 && ok3
}

// updateMemory runs change (a mem.Memory update) and then fixes up the rings:
// a running ring whose areas moved or vanished is stopped (and restarted if
// it can be); rings that could not start before may start now.
func (s *session) updateMemory(r Request, change func(ctx context.Context) error) error {
	// Where each running ring lives now, to see whether the update moves it.
	type where struct{ d, a, u uint64 }
	before := make([]where, len(s.vrings))
	for i := range s.vrings {
		if v := &s.vrings[i]; v.running {
			d, a, u, _ := s.ringAreas(v)
			before[i] = where{d, a, u}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), graceTimeout)
	err := change(ctx)
	cancel()
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			// The table was replaced; only the unmapping of old regions is
			// postponed.
			s.log.Warn("vhostuser: memory update: a queue worker did not pass a quiescent point; old regions stay mapped until the next update", "request", r.String())
		} else {
			return invalid(r, "%v", err)
		}
	}
	for i := range s.vrings {
		v := &s.vrings[i]
		if v.running {
			d, a, u, ok := s.ringAreas(v)
			if ok && (where{d, a, u}) == before[i] {
				continue
			}
			s.log.Info("vhostuser: ring moved with the memory table, restarting it", "ring", i, "request", r.String())
			s.stop(i)
		}
		s.maybeStart(i)
	}
	return nil
}

func (s *session) setMemTable(regs []Region, fds []int) error {
	const r = VHOST_USER_SET_MEM_TABLE
	mapped := make([]*mem.Region, 0, len(regs))
	for i, g := range regs {
		m, err := mem.Map(fds[i], desc(g))
		if err != nil {
			for _, m := range mapped {
				m.Close()
			}
			return invalid(r, "region %d: %v", i, err)
		}
		mapped = append(mapped, m)
	}
	return s.updateMemory(r, func(ctx context.Context) error {
		err := s.mem.SetRegions(ctx, mapped)
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			for _, m := range mapped {
				m.Close()
			}
		}
		return err
	})
}

func (s *session) addRegion(g Region) error {
	const r = VHOST_USER_ADD_MEM_REG
	if n := s.mem.Table().Len(); n >= s.b.maxMemSlots() {
		return invalid(r, "all %d memory slots in use", n)
	}
	m, err := mem.Map(s.c.fds[0], desc(g))
	if err != nil {
		return invalid(r, "%v", err)
	}
	return s.updateMemory(r, func(ctx context.Context) error {
		err := s.mem.AddRegion(ctx, m)
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			m.Close()
		}
		return err
	})
}

func (s *session) removeRegion(g Region) error {
	const r = VHOST_USER_REM_MEM_REG
	return s.updateMemory(r, func(ctx context.Context) error {
		return s.mem.RemoveRegion(ctx, desc(g))
	})
}

// closeMemory unmaps everything; every ring is stopped.
func (s *session) closeMemory() {
	ctx, cancel := context.WithTimeout(context.Background(), graceTimeout)
	defer cancel()
	if err := s.mem.Close(ctx); err != nil {
		s.log.Warn("vhostuser: unmapping guest memory", "err", err)
	}
}
