package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/vhostload"
	vt "github.com/fastfsd/fastfsd/vhostuser/vhostusertest"
)

// vfsClient is the FUSE side of a guest driving one request queue, one
// request at a time, for TestVirtiofsKill9Reconnect.
type vfsClient struct {
	t      *testing.T
	g      *vt.Guest
	q      *vt.GuestQueue
	unique uint64
	last   vt.Buffers // the last request's chain, to read its reply later
}

// call sends op with args (and payload, for WRITE) and returns the reply's
// error (a negative errno as the kernel sees it, 0 on success), the reply
// arguments, and the transport's error (no completion).
func (c *vfsClient) call(op abi.Opcode, node uint64, args, payload []byte, outLen int) (int32, []byte, error) {
	c.unique++
	h := make([]byte, abi.InHeaderSize)
	(&abi.InHeader{Len: uint32(abi.InHeaderSize + len(args) + len(payload)), Opcode: op, Unique: c.unique, NodeID: node, PID: 1}).Marshal(h)
	in := [][]byte{h, args}
	if len(payload) > 0 {
		in = append(in, payload)
	}
	c.last = vt.Buffers{In: in, Out: []int{16, max(outLen, 1)}}
	out, err := c.q.Submit(c.last)
	if err != nil {
		return 0, nil, err
	}
	return c.reply(out)
}

func (c *vfsClient) reply(out []byte) (int32, []byte, error) {
	var oh abi.OutHeader
	if !oh.Unmarshal(out) {
		return 0, nil, fmt.Errorf("reply of %d bytes", len(out))
	}
	if oh.Unique != c.unique {
		return 0, nil, fmt.Errorf("reply to unique %d, want %d", oh.Unique, c.unique)
	}
	return oh.Error, out[16:], nil
}

// must is call that fails the test on any error.
func (c *vfsClient) must(op abi.Opcode, node uint64, args, payload []byte, outLen int) []byte {
	c.t.Helper()
	e, out, err := c.call(op, node, args, payload, outLen)
	if err != nil || e != 0 {
		c.t.Fatalf("%v: errno %d, %v", op, -e, err)
	}
	return out
}

func (c *vfsClient) init() {
	c.t.Helper()
	a := make([]byte, abi.InitInSize)
	(&abi.InitIn{Major: 7, Minor: abi.KernelMinorVersion, Flags: uint32(abi.InitMaxPages | abi.InitBigWrites)}).Marshal(a)
	c.must(abi.OpInit, 0, a, nil, abi.InitOutSize)
}

// TestVirtiofsKill9Reconnect is issue 10's virtio-fs fault from the back-end
// side, without QEMU: a front-end writes and fsyncs a file through fastfsd
// virtiofs; fastfsd is killed (SIGKILL) in the middle; a new fastfsd starts
// on the same socket path and the front-end reconnects as a VMM that
// reconnects does (same guest memory, rings resumed at their used index,
// the in-flight request popped again). That request is answered EIO (the
// new back-end has no FUSE session: the guest's requests fail until it
// mounts again); after a new INIT the file reads back with every block an
// fsync covered, as it is on disk.
func TestVirtiofsKill9Reconnect(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(t.TempDir(), "vfs.sock")
	args := []string{"--socket-path=" + sock, "-o", "source=" + dir + ",cache=none", "--log-level", "warn"}
	first := startDoor(t, "virtiofs", args...)
	var f *vt.Frontend
	var err error
	for i := 0; i < 500; i++ {
		if f, err = vt.Dial(sock); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", sock, err)
	}
	g, err := vt.NewGuest(f, vt.GuestConfig{Queues: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { g.F.Close(); g.Close() }()
	c := &vfsClient{t: t, g: g, q: g.Queues[1]}
	c.init()

	a := make([]byte, abi.CreateInSize)
	(&abi.CreateIn{Flags: syscall.O_RDWR | syscall.O_CREAT | syscall.O_EXCL, Mode: syscall.S_IFREG | 0o644}).Marshal(a)
	out := c.must(abi.OpCreate, 1, append(a, "log\x00"...), nil, abi.EntryOutSize+abi.OpenOutSize)
	var e abi.EntryOut
	var o abi.OpenOut
	e.Unmarshal(out)
	o.Unmarshal(out[abi.EntryOutSize:])
	node, fh := e.NodeID, o.Fh

	const bs = 4096
	blockOf := func(i int) []byte { return bytes.Repeat([]byte{byte(i%251) + 1}, bs) }
	// The kill comes while requests flow; a request then never completes,
	// which the front-end notices by its timeout.
	g.Timeout = 3 * time.Second
	killAt := time.Now().Add(300 * time.Millisecond)
	killed := false
	durable, written := 0, 0
	var lost error
	for lost == nil {
		if !killed && time.Now().After(killAt) {
			first.cmd.Process.Kill()
			killed = true
		}
		wa := make([]byte, abi.WriteInSize)
		(&abi.WriteIn{Fh: fh, Offset: uint64(written * bs), Size: bs}).Marshal(wa)
		en, _, err := c.call(abi.OpWrite, node, wa, blockOf(written), abi.WriteOutSize)
		if err != nil {
			lost = err
			break
		}
		if en != 0 {
			t.Fatalf("WRITE before the kill: errno %d", -en)
		}
		written++
		if written%8 == 0 {
			fa := make([]byte, abi.FsyncInSize)
			(&abi.FsyncIn{Fh: fh}).Marshal(fa)
			en, _, err := c.call(abi.OpFsync, node, fa, nil, 0)
			if err != nil {
				lost = err
				break
			}
			if en != 0 {
				t.Fatalf("FSYNC before the kill: errno %d", -en)
			}
			durable = written
		}
	}
	// Normally the request in flight at the kill never completes. If the
	// back-end died between publishing its completion and signalling it,
	// the request is done (its interrupt died with the back-end) and
	// nothing is in flight.
	inflight := true
	switch {
	case errors.Is(lost, vt.ErrTimeout):
	case errors.Is(lost, vt.ErrNoInterrupt):
		inflight = false
		t.Logf("the back-end died between a completion and its interrupt: %v", lost)
	default:
		t.Fatalf("after the kill: %v, want no completion (a timeout)", lost)
	}
	select {
	case err := <-first.done:
		t.Logf("first fastfsd: %v; %d blocks written, %d covered by a successful FSYNC", err, written, durable)
	case <-time.After(10 * time.Second):
		t.Fatal("the killed fastfsd did not exit")
	}
	if durable == 0 {
		t.Fatal("no FSYNC succeeded before the kill: nothing to check")
	}

	// A new back-end on the same path (the dead one left its socket file:
	// fastfsd replaces it), and the VMM's reconnect.
	startDoor(t, "virtiofs", args...)
	var f2 *vt.Frontend
	for i := 0; i < 500; i++ {
		if f2, err = vt.Dial(sock); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("dial the new fastfsd at %s: %v", sock, err)
	}
	if err := g.Reconnect(f2); err != nil {
		t.Fatalf("reconnect: %v", err)
	}
	g.Timeout = 10 * time.Second
	// The request that was in flight at the kill is served again by the
	// new back-end: EIO, as every request before the guest mounts again.
	if inflight {
		_, n, err := c.q.Wait()
		if err != nil {
			t.Fatalf("the in-flight request after the reconnect: %v", err)
		}
		buf, err := c.q.Reply(c.last, n)
		if err != nil {
			t.Fatalf("reply of the re-served request: %v", err)
		}
		if en, _, err := c.reply(buf); err != nil || en != -int32(syscall.EIO) {
			t.Errorf("the re-served request: errno %d, %v; want EIO (no FUSE session yet)", -en, err)
		}
	}
	if en, _, err := c.call(abi.OpGetattr, 1, make([]byte, abi.GetattrInSize), nil, abi.AttrOutSize); err != nil || en != -int32(syscall.EIO) {
		t.Errorf("GETATTR before a new INIT: errno %d, %v; want EIO", -en, err)
	}

	// The guest mounts again: INIT, and the file has every fsynced block.
	c.init()
	out = c.must(abi.OpLookup, 1, []byte("log\x00"), nil, abi.EntryOutSize)
	e.Unmarshal(out)
	oa := make([]byte, abi.OpenInSize)
	(&abi.OpenIn{Flags: syscall.O_RDONLY}).Marshal(oa)
	out = c.must(abi.OpOpen, e.NodeID, oa, nil, abi.OpenOutSize)
	o.Unmarshal(out)
	for i := range durable {
		ra := make([]byte, abi.ReadInSize)
		(&abi.ReadIn{Fh: o.Fh, Offset: uint64(i * bs), Size: bs}).Marshal(ra)
		got := c.must(abi.OpRead, e.NodeID, ra, nil, bs)
		if !bytes.Equal(got, blockOf(i)) {
			t.Fatalf("block %d of %d fsynced blocks: read %d bytes, not what was written", i, durable, len(got))
		}
	}
	disk, err := os.ReadFile(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	if len(disk) < durable*bs {
		t.Fatalf("the file on disk has %d bytes; %d blocks (%d bytes) were fsynced", len(disk), durable, durable*bs)
	}
	for i := range durable {
		if !bytes.Equal(disk[i*bs:(i+1)*bs], blockOf(i)) {
			t.Fatalf("block %d of %d fsynced blocks differs on disk", i, durable)
		}
	}
	t.Logf("after the reconnect (a request in flight: %v, answered EIO): after INIT all %d fsynced blocks read back and are on disk", inflight, durable)
}

// TestVirtiofsKeepListeningAbruptDisconnect: fastfsd virtiofs
// --keep-listening, and front-ends that vanish mid-load (the VMM killed:
// requests in flight, no GET_VRING_BASE, the socket and guest memory simply
// gone), each followed by a front-end that runs a load on the same daemon
// and must get every reply and every interrupt it asks for
// (vhostusertest ErrNoInterrupt fails it); the daemon serves on.
func TestVirtiofsKeepListeningAbruptDisconnect(t *testing.T) {
	dir := t.TempDir()
	tree, err := vhostload.MakeTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "vfs.sock")
	d := startDoor(t, "virtiofs", "--socket-path="+sock, "-o", "source="+dir+",cache=none", "--log-level", "warn",
		"--keep-listening", "--thread-pool-size=4")
	dial := func() *vt.Frontend {
		t.Helper()
		for i := 0; ; i++ {
			f, err := vt.Dial(sock)
			if err == nil {
				return f
			}
			if i == 500 {
				t.Fatalf("dial %s: %v", sock, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	const size = 64 << 10 // big enough for --thread-pool-size helpers
	payload := bytes.Repeat([]byte{'x'}, size)
	for round := 1; round <= 3; round++ {
		// A front-end that writes, with 16 WRITEs in flight, and vanishes.
		f := dial()
		g, err := vt.NewGuest(f, vt.GuestConfig{Queues: 2})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		c := &vfsClient{t: t, g: g, q: g.Queues[1]}
		c.init()
		a := make([]byte, abi.CreateInSize)
		(&abi.CreateIn{Flags: syscall.O_RDWR | syscall.O_CREAT | syscall.O_TRUNC, Mode: syscall.S_IFREG | 0o644}).Marshal(a)
		out := c.must(abi.OpCreate, 1, append(a, fmt.Sprintf("w%d\x00", round)...), nil, abi.EntryOutSize+abi.OpenOutSize)
		var e abi.EntryOut
		var o abi.OpenOut
		e.Unmarshal(out)
		o.Unmarshal(out[abi.EntryOutSize:])
		for i := range 16 {
			h := make([]byte, abi.InHeaderSize)
			(&abi.InHeader{Len: uint32(abi.InHeaderSize + abi.WriteInSize + size), Opcode: abi.OpWrite, Unique: uint64(100 + i), NodeID: e.NodeID, PID: 1}).Marshal(h)
			wa := make([]byte, abi.WriteInSize)
			(&abi.WriteIn{Fh: o.Fh, Offset: uint64(i * size), Size: size}).Marshal(wa)
			if _, err := c.q.Add(vt.Buffers{In: [][]byte{h, wa, payload}, Out: []int{16, abi.WriteOutSize}, Offset: uint64(i) * (size + 8192)}); err != nil {
				t.Fatal(err)
			}
		}
		c.q.Kick()
		f.Close()
		g.Close()

		// The next front-end, on the same daemon, under load.
		s, err := vhostload.Connect(vhostload.Config{Socket: sock, Queues: 1, Depth: 4, Tree: tree})
		if err != nil {
			t.Fatalf("round %d: the front-end after one vanished: %v", round, err)
		}
		for _, k := range []vhostload.Kind{vhostload.Getattr, vhostload.Read4K, vhostload.Read128K} {
			r, err := s.Run(k, 10*time.Second, 100)
			if err != nil {
				t.Fatalf("round %d, %v: %v", round, k, err)
			}
			if r.Errors != 0 || r.Ops < 100 {
				t.Errorf("round %d, %v: %d ops, %d errors (%s)", round, k, r.Ops, r.Errors, r.FirstError)
			}
		}
		if err := s.Close(); err != nil {
			t.Errorf("round %d: close: %v", round, err)
		}
	}
	select {
	case err := <-d.done:
		t.Fatalf("fastfsd virtiofs --keep-listening exited: %v", err)
	default:
	}
}
