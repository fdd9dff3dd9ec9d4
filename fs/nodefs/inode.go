package nodefs

import (
	"sync/atomic"

	"github.com/fastfsd/fastfsd/fs"
)

// Inode is the part of a node the Tree keeps: its ID and how many times the
// client has looked it up. Embed it (by value) in each node type; its zero
// value is ready, and a node must not be copied once the tree has seen it.
type Inode struct {
	// id is the node's ID: 0 until a Tree first hands the node to a
	// client, then fixed for the node's life (also its st_ino). Written
	// once, under tree.mu; read atomically anywhere.
	id atomic.Uint64
	// tree is the Tree that gave the node its ID (set with id, by CAS: a
	// node belongs to one tree).
	tree atomic.Pointer[Tree]
	// node is the value embedding this Inode, as the author's type. Set
	// with id, under tree.mu; read by the tree's methods, which reach the
	// Inode through tree.nodes (under tree.mu) or from a Node.
	node Node
	// lookups is how many entries of the node the client holds (raised by
	// every reply naming it, lowered by Forget). The node is in
	// tree.nodes exactly while lookups > 0 (the root: always).
	// +checklocks:tree.mu
	lookups uint64
}

func (i *Inode) embedded() *Inode { return i }

// ID returns the node's inode ID, the number requests name it by and its
// st_ino; 0 until the tree first hands the node out. IDs come from a
// 64-bit counter and are never reused, so a client can never confuse a
// new node with one it has not yet forgotten.
func (i *Inode) ID() fs.Inode { return fs.Inode(i.id.Load()) }
