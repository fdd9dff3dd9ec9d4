// Package fusetest drives a fuse.Server one request at a time with no
// kernel and no mount, for tests that measure what a filesystem costs per
// request (testing.AllocsPerRun through the engine).
package fusetest

import (
	"bytes"
	"encoding/binary"
	"syscall"
	"testing"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/fuse/abi"
)

// Marshaler is any abi struct.
type Marshaler interface{ Marshal([]byte) bool }

// Enc encodes an abi struct of size n.
func Enc(m Marshaler, n int) []byte {
	b := make([]byte, n)
	if !m.Marshal(b) {
		panic("fusetest: short buffer")
	}
	return b
}

// Req builds a request about node from uid 1000, gid 100, with a correct
// header around the concatenated argument parts.
func Req(op abi.Opcode, node uint64, parts ...[]byte) []byte {
	body := bytes.Join(parts, nil)
	h := abi.InHeader{Len: uint32(abi.InHeaderSize + len(body)), Opcode: op, Unique: 10, NodeID: node, UID: 1000, GID: 100, PID: 42}
	return append(Enc(&h, abi.InHeaderSize), body...)
}

// Serve runs request in through s on r and returns the reply's errno
// (negative, as on the wire) and arguments.
func Serve(t testing.TB, s *fuse.Server, r *fuse.Request, in []byte) (int32, []byte) {
	t.Helper()
	r.In = in
	n := s.Handle(r)
	var h abi.OutHeader
	if n < abi.OutHeaderSize || !h.Unmarshal(r.Out[:n]) {
		t.Fatalf("reply of %d bytes has no header", n)
	}
	return h.Error, r.Out[abi.OutHeaderSize:n]
}

// Init answers INIT as a 7.45 kernel offering every flag would ask it.
func Init(t testing.TB, s *fuse.Server, r *fuse.Request) {
	t.Helper()
	lo, hi := (abi.InitFlags(1<<43-1) &^ abi.InitReserved).Split()
	in := abi.InitIn{Major: 7, Minor: 45, MaxReadahead: 128 << 10, Flags: lo, Flags2: hi}
	if e, _ := Serve(t, s, r, Req(abi.OpInit, 0, Enc(&in, abi.InitInSize))); e != 0 {
		t.Fatalf("INIT: errno %d", -e)
	}
}

// WaitInterrupted is a test filesystem's wait that only an interrupt
// ends (a FUSE_INTERRUPT, a queue stop, the connection's end): it sends
// on entered once it waits, then blocks until ctx is interrupted, and
// answers EINTR. A request that cannot be interrupted answers EINTR at
// once, without sending on entered.
func WaitInterrupted(ctx *fs.Context, entered chan<- struct{}) fs.Errno {
	ch := make(chan struct{})
	if !ctx.OnInterrupt(func() { close(ch) }) {
		return syscall.EINTR
	}
	defer ctx.StopOnInterrupt()
	entered <- struct{}{}
	<-ch
	return syscall.EINTR
}

// SecctxExt is a FUSE_SECURITY_CTX request extension as the kernel
// sends it: fuse_secctx_header (nr 1), fuse_secctx, the xattr name, a
// label of n bytes, padded to 8.
func SecctxExt(name string, n int) []byte {
	rec := abi.SecctxSize + len(name) + 1 + n
	size := abi.ExtHeaderSize + (rec+7)&^7
	b := make([]byte, size)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(size))
	ne.PutUint32(b[4:], 1) // nr_secctx
	ne.PutUint32(b[8:], uint32(n))
	copy(b[abi.ExtHeaderSize+abi.SecctxSize:], name)
	for i := range n {
		b[abi.ExtHeaderSize+abi.SecctxSize+len(name)+1+i] = 'l'
	}
	return b
}

// GroupsExt is a FUSE_EXT_GROUPS extension of one group.
func GroupsExt(gid uint32) []byte {
	b := make([]byte, 16)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], 16)
	ne.PutUint32(b[4:], abi.ExtGroups)
	ne.PutUint32(b[8:], 1)
	ne.PutUint32(b[12:], gid)
	return b
}
