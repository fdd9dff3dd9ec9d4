package virtiofs_test

import (
	"strings"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/dataplane/virtiofs"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/fuse/abi"
	vt "github.com/fastfsd/fastfsd/vhostuser/vhostusertest"
	"golang.org/x/sys/unix"
)

// TestMemoryUpdateWithLockWait: a guest process waits for a lock (SETLKW
// on a blocking slot) while the front-end updates the memory table, as
// QEMU does on memory hot-plug, holding the guest's vCPUs until each
// update is acknowledged. The worker used to keep its memory reader online
// for as long as any request was on a helper, so every update waited out
// the 5 s grace timeout (and left the old regions mapped): 5 s of frozen
// guest per update. A blocking slot holds no view of guest memory (its
// request is copied in at hand-off and its reply copied out by the worker,
// translated again, at completion), so updates are quick, the lock wait
// is not interrupted, and its reply lands where the guest's buffer is
// now, or nowhere if that memory is gone.
func TestMemoryUpdateWithLockWait(t *testing.T) {
	d := newDaemonOpts(t, virtiofs.Options{Tag: "l", RequestQueues: 1, Fuse: fuse.Options{Locks: true}})
	g := d.guest(vt.GuestConfig{})
	node, fh := session(t, g, "f")
	q := g.Queues[1]
	// The back-end's view: A holds the rings, B the queues' buffers.
	r0, fd := g.Mem.Regions[0], int(g.Mem.Files[0].Fd())
	split := q.Data
	a := vt.Region{GuestAddr: 0, Size: split, UserAddr: r0.UserAddr}
	b := vt.Region{GuestAddr: split, Size: r0.Size - split, UserAddr: r0.UserAddr + split, MmapOffset: split}
	if err := g.F.SetMemTable([]vt.Region{a, b}, []int{fd, fd}); err != nil {
		t.Fatal(err)
	}
	call(t, q, lkReq(abi.OpSetlk, node, fh, 1, unix.F_WRLCK, 0))
	wait := func() (uint16, vt.Buffers) {
		w := lkReq(abi.OpSetlkw, node, fh, 2, unix.F_WRLCK, 4096)
		head, err := q.Add(w)
		if err != nil {
			t.Fatal(err)
		}
		q.Kick()
		time.Sleep(100 * time.Millisecond) // on its blocking slot, waiting
		return head, w
	}
	update := func(what string, f func() error) {
		t.Helper()
		start := time.Now()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("%s with a lock wait pending took %v", what, el)
		}
	}

	// 1. Updates while the lock waits; the buffers' region goes away and
	// comes back. Then the unlock: the wait ends with its reply in place.
	head, w := wait()
	extra := vt.Region{GuestAddr: 1 << 32, Size: 1 << 20, UserAddr: vt.UserBase + 1<<32}
	if err := g.Mem.Add(extra); err != nil {
		t.Fatal(err)
	}
	xfd := int(g.Mem.Files[1].Fd())
	for range 3 {
		update("ADD_MEM_REG", func() error { return g.F.AddMemReg(extra, xfd) })
		update("REM_MEM_REG", func() error { return g.F.RemMemReg(extra) })
	}
	update("REM_MEM_REG of the buffers' region", func() error { return g.F.RemMemReg(b) })
	update("ADD_MEM_REG of it again", func() error { return g.F.AddMemReg(b, fd) })
	unlock := lkReq(abi.OpSetlk, node, fh, 1, unix.F_UNLCK, 64<<10)
	uh, err := q.Add(unlock)
	if err != nil {
		t.Fatal(err)
	}
	q.Kick()
	got := map[uint16]uint32{}
	for range 2 {
		id, n, err := q.Wait()
		if err != nil {
			t.Fatal(err)
		}
		got[id] = n
	}
	if got[uh] != abi.OutHeaderSize || got[head] != abi.OutHeaderSize {
		t.Fatalf("completions %v: want unlock %d and SETLKW %d with %d bytes each", got, uh, head, abi.OutHeaderSize)
	}
	out, _ := q.Reply(w, got[head])
	if r := parseReply(t, out); r.hdr.Error != 0 {
		t.Fatalf("SETLKW after memory updates: %v (the updates must not interrupt it)", unix.Errno(-r.hdr.Error))
	}

	// 2. The buffers' region goes for good while a lock waits; stopping
	// the queue answers the wait, but its reply has nowhere to go: used
	// length 0, and the driver's copy of that memory is untouched.
	call(t, q, lkReq(abi.OpSetlk, node, fh, 2, unix.F_UNLCK, 0))
	call(t, q, lkReq(abi.OpSetlk, node, fh, 1, unix.F_WRLCK, 0))
	head, _ = wait()
	// Where Add puts lkReq's reply buffer: after the header and the
	// arguments, each 8-byte aligned.
	replyAt := q.Data + 4096 + uint64((abi.InHeaderSize+7)&^7+(abi.LkInSize+7)&^7)
	reply := q.Mem(replyAt, abi.OutHeaderSize)
	for i := range reply {
		reply[i] = 0xa5
	}
	update("REM_MEM_REG of the buffers' region", func() error { return g.F.RemMemReg(b) })
	g.F.Conn().SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := g.F.GetVringBase(1); err != nil {
		t.Fatal(err)
	}
	id, n, err := q.Wait()
	if err != nil || id != head || n != 0 {
		t.Fatalf("SETLKW whose buffers left guest memory: completion id %d len %d (%v); want id %d len 0", id, n, err, head)
	}
	for i, c := range reply {
		if c != 0xa5 {
			t.Fatalf("byte %d of removed guest memory written (%#x)", i, c)
		}
	}
	if s := d.log.String(); strings.Contains(s, "quiescent point") {
		t.Errorf("a memory update waited out its grace period:\n%s", s)
	}
	if s := d.log.String(); strings.Contains(s, "no longer backs") {
		t.Errorf("the back-end touched unmapped guest memory (a reply written with a table it no longer held):\n%s", s)
	}
}
