package vhostuser

// PLACEHOLDER until package mem lands: bookkeeping only, no mapping.

// maxMemRegions is the most regions the memory table holds.
const maxMemRegions = 32

// Memory is the guest memory handed to a device.
type Memory = *memory

type memory struct {
	regions []Region
	fds     []int
}

func (m *memory) empty() bool  { return len(m.regions) == 0 }
func (m *memory) live() Memory { return m }
func (m *memory) close() {
	for i := range m.fds {
		closeFd(&m.fds[i])
	}
}

// userToGuest translates a front-end virtual address range that must lie
// inside one region to its guest-physical address.
func (m *memory) userToGuest(uva, n uint64) (uint64, bool) {
	for _, r := range m.regions {
		if uva >= r.UserAddr && uva-r.UserAddr < r.Size && n <= r.Size-(uva-r.UserAddr) {
			return r.GuestAddr + (uva - r.UserAddr), true
		}
	}
	return 0, false
}

func (s *session) setMemTable(regs []Region, fds []int) error {
	for i := range s.vrings {
		s.stop(i)
	}
	if s.mem != nil {
		s.mem.close()
	}
	m := &memory{}
	for i, r := range regs {
		m.regions = append(m.regions, r)
		m.fds = append(m.fds, s.c.take(i))
	}
	_ = fds
	s.mem = m
	for i := range s.vrings {
		s.maybeStart(i)
	}
	return nil
}

func (s *session) addRegion(g Region) error {
	if s.mem == nil {
		s.mem = &memory{}
	}
	if len(s.mem.regions) >= s.b.maxMemSlots() {
		return invalid(VHOST_USER_ADD_MEM_REG, "all %d memory slots in use", s.b.maxMemSlots())
	}
	for j, o := range s.mem.regions {
		if overlaps(g, o) {
			return invalid(VHOST_USER_ADD_MEM_REG, "region overlaps region %d", j)
		}
	}
	s.mem.regions = append(s.mem.regions, g)
	s.mem.fds = append(s.mem.fds, s.c.take(0))
	return nil
}

func (s *session) removeRegion(g Region) error {
	return nil
}
