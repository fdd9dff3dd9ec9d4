package nodefs

// Lookups returns n's lookup count and whether the tree's table holds it.
func (t *Tree) Lookups(n Node) (uint64, bool) {
	in := n.embedded()
	t.mu.RLock()
	defer t.mu.RUnlock()
	_, ok := t.nodes[in.ID()]
	return in.lookups, ok
}

// Len is the number of nodes the client may name (the root included).
func (t *Tree) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.nodes)
}

// OpenHandles is the number of FileHandles the tree keeps.
func (t *Tree) OpenHandles() int {
	t.hmu.Lock()
	defer t.hmu.Unlock()
	return len(t.handles) - len(t.free)
}
