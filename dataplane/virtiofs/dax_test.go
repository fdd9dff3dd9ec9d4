package virtiofs_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/dataplane/virtiofs"
	"github.com/fastfsd/fastfsd/dax"
	"github.com/fastfsd/fastfsd/fs/passthrough"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/vhostuser"
	vt "github.com/fastfsd/fastfsd/vhostuser/vhostusertest"
)

// The DAX window end to end: a Go front-end playing QEMU with a SHMEM
// window (vhostusertest.Window: MAP_FIXED mmaps of the fds the back-end
// passes), the guest's FUSE requests on a request queue, fs/passthrough
// over a temp dir.

const mib = 1 << 20

const shmemProtocol = vt.AllProtocol | 1<<vhostuser.VHOST_USER_PROTOCOL_F_SHMEM | 1<<vhostuser.VHOST_USER_PROTOCOL_F_BACKEND_FD

// daxSetup starts a daemon with a window of size, a guest negotiating
// protocol, and (if attach) the VMM's window on the back-end channel.
func daxSetup(t *testing.T, size uint64, protocol uint64, attach bool) (*daemon, *vt.Guest, *vt.Window) {
	t.Helper()
	d := newDaemon(t, 1)
	if err := d.dev.EnableDAX(size); err != nil {
		t.Fatal(err)
	}
	g := d.guest(vt.GuestConfig{Protocol: protocol})
	if !attach {
		return d, g, nil
	}
	sizes, err := g.F.GetShmemConfig()
	if err != nil {
		t.Fatal(err)
	}
	if len(sizes) != 1 || sizes[0] != size {
		t.Fatalf("GET_SHMEM_CONFIG = %v, want [%d]", sizes, size)
	}
	w, err := vt.NewWindow(size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if err := g.F.AttachWindow(w); err != nil {
		t.Fatal(err)
	}
	return d, g, w
}

// daxSession: INIT offering MAP_ALIGNMENT (a DAX mount), then CREATE.
func daxSession(t *testing.T, g *vt.Guest, name string) (node, fh uint64) {
	t.Helper()
	q := g.Queues[1]
	in := abi.InitIn{Major: abi.KernelVersion, Minor: abi.KernelMinorVersion, MaxReadahead: 128 << 10,
		Flags: uint32(abi.InitMaxPages | abi.InitBigWrites | abi.InitAsyncRead | abi.InitExt | abi.InitMapAlignment)}
	a := make([]byte, 64)
	in.Marshal(a)
	r := call(t, q, vt.Buffers{In: [][]byte{inHeader(abi.OpInit, 0, 64), a}, Out: []int{abi.OutHeaderSize + abi.InitOutSize}})
	var io abi.InitOut
	if !io.Unmarshal(r.args) || abi.InitFlags(io.Flags)&abi.InitMapAlignment == 0 || io.MapAlignment != dax.MaxAlignShift {
		t.Fatalf("INIT: flags %#x map_alignment %d, want MAP_ALIGNMENT and %d", io.Flags, io.MapAlignment, dax.MaxAlignShift)
	}
	r = call(t, q, createReq(name))
	var e abi.EntryOut
	var o abi.OpenOut
	if !e.Unmarshal(r.args) || !o.Unmarshal(r.args[abi.EntryOutSize:]) {
		t.Fatalf("CREATE reply %x", r.args)
	}
	return e.NodeID, o.Fh
}

// errnoOf submits b and returns the reply's errno (0: success).
func errnoOf(t *testing.T, q *vt.GuestQueue, b vt.Buffers) syscall.Errno {
	t.Helper()
	out, err := q.Submit(b)
	if err != nil {
		t.Fatal(err)
	}
	return syscall.Errno(-parseReply(t, out).hdr.Error)
}

func setupReq(node, fh, foff, n, moff uint64, flags abi.SetupmappingFlags) vt.Buffers {
	a := make([]byte, abi.SetupmappingInSize)
	(&abi.SetupmappingIn{Fh: fh, Foffset: foff, Len: n, Flags: flags, Moffset: moff}).Marshal(a)
	return vt.Buffers{In: [][]byte{inHeader(abi.OpSetupmapping, node, len(a)), a}, Out: []int{abi.OutHeaderSize}}
}

func removeReq(node uint64, ranges ...[2]uint64) vt.Buffers {
	a := make([]byte, abi.RemovemappingInSize+abi.RemovemappingOneSize*len(ranges))
	(&abi.RemovemappingIn{Count: uint32(len(ranges))}).Marshal(a)
	for i, r := range ranges {
		(&abi.RemovemappingOne{Moffset: r[0], Len: r[1]}).Marshal(a[abi.RemovemappingInSize+i*abi.RemovemappingOneSize:])
	}
	return vt.Buffers{In: [][]byte{inHeader(abi.OpRemovemapping, node, len(a)), a}, Out: []int{abi.OutHeaderSize}}
}

func fsyncReq(node, fh uint64) vt.Buffers {
	a := make([]byte, abi.FsyncInSize)
	(&abi.FsyncIn{Fh: fh}).Marshal(a)
	return vt.Buffers{In: [][]byte{inHeader(abi.OpFsync, node, len(a)), a}, Out: []int{abi.OutHeaderSize}}
}

// tableOf is the device's table as offset → (length, file offset), to
// compare with the VMM window's.
func tableOf(d *daemon) map[uint64]vt.WindowMapping {
	m := map[uint64]vt.WindowMapping{}
	for _, e := range d.dev.DAX().Mappings() {
		m[e.Offset] = vt.WindowMapping{Len: e.Length, FdOffset: e.FdOffset, Writable: e.Writable}
	}
	return m
}

func sameTables(t *testing.T, d *daemon, w *vt.Window) {
	t.Helper()
	a, b := tableOf(d), w.Mappings()
	if len(a) != len(b) {
		t.Fatalf("device table %v, VMM window %v", a, b)
	}
	for k, v := range a {
		if b[k] != v {
			t.Fatalf("device table %v, VMM window %v", a, b)
		}
	}
}

func TestDAXWindow(t *testing.T) {
	d, g, w := daxSetup(t, 8*mib, shmemProtocol, true)
	node, fh := daxSession(t, g, "f")
	q := g.Queues[1]
	content := pattern(4*mib, 3)
	if err := os.WriteFile(filepath.Join(d.dir, "f"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	rw := abi.SetupmappingRead | abi.SetupmappingWrite

	// SETUPMAPPING: the window shows the file.
	call(t, q, setupReq(node, fh, 0, 2*mib, 0, rw))
	call(t, q, setupReq(node, fh, 2*mib, 2*mib, 4*mib, abi.SetupmappingRead))
	if !bytes.Equal(w.Bytes(0, 2*mib), content[:2*mib]) || !bytes.Equal(w.Bytes(4*mib, 2*mib), content[2*mib:]) {
		t.Fatal("window does not show the file's bytes after SETUPMAPPING")
	}
	sameTables(t, d, w)

	// Writes through the window are in the file after FSYNC.
	copy(w.Bytes(4096+5, 11), "hello, dax!")
	call(t, q, fsyncReq(node, fh))
	got, err := os.ReadFile(filepath.Join(d.dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got[4096+5:4096+16]) != "hello, dax!" {
		t.Fatalf("file after fsync: %q", got[4096+5:4096+16])
	}
	content = got

	// Invalid requests: EINVAL, nothing changes on either side.
	before := tableOf(d)
	for _, c := range []struct {
		name string
		b    vt.Buffers
	}{
		{"misaligned moffset", setupReq(node, fh, 0, 2*mib, 4096, rw)},
		{"misaligned foffset", setupReq(node, fh, 4096, 2*mib, 0, rw)},
		{"misaligned length", setupReq(node, fh, 0, mib, 0, rw)},
		{"beyond the window", setupReq(node, fh, 0, 2*mib, 8*mib, rw)},
		{"straddles the end", setupReq(node, fh, 0, 4*mib, 6*mib, rw)},
		{"zero length", setupReq(node, fh, 0, 0, 0, rw)},
		{"unknown flag", setupReq(node, fh, 0, 2*mib, 0, 1<<5)},
		{"remove misaligned", removeReq(node, [2]uint64{4096, 2 * mib})},
		{"remove beyond", removeReq(node, [2]uint64{8 * mib, 2 * mib})},
		{"remove zero", removeReq(node, [2]uint64{0, 0})},
	} {
		if e := errnoOf(t, q, c.b); e != syscall.EINVAL {
			t.Errorf("%s: %v, want EINVAL", c.name, e)
		}
	}
	if after := tableOf(d); len(after) != len(before) {
		t.Fatalf("invalid requests changed the table: %v → %v", before, after)
	}
	sameTables(t, d, w)

	// A mapping over existing ones replaces them ...
	call(t, q, setupReq(node, fh, 0, 4*mib, 2*mib, rw))
	if !bytes.Equal(w.Bytes(2*mib, 4*mib), content[:4*mib]) {
		t.Fatal("replacing mapping: window does not show the file")
	}
	sameTables(t, d, w)
	// ... and one inside an existing one splits it.
	call(t, q, setupReq(node, fh, 0, 2*mib, 4*mib, abi.SetupmappingRead))
	want := map[uint64]vt.WindowMapping{
		0:       {Len: 2 * mib, FdOffset: 0, Writable: true},
		2 * mib: {Len: 2 * mib, FdOffset: 0, Writable: true},
		4 * mib: {Len: 2 * mib, FdOffset: 0, Writable: false},
	}
	if got := tableOf(d); len(got) != len(want) || got[0] != want[0] || got[2*mib] != want[2*mib] || got[4*mib] != want[4*mib] {
		t.Fatalf("after split: %v, want %v", got, want)
	}
	sameTables(t, d, w)
	if !bytes.Equal(w.Bytes(4*mib, 2*mib), content[:2*mib]) {
		t.Fatal("split: window does not show the file")
	}

	// REMOVEMAPPING of a list: the ranges read zeros (anonymous memory).
	call(t, q, removeReq(node, [2]uint64{0, 2 * mib}, [2]uint64{4 * mib, 2 * mib}, [2]uint64{6 * mib, 2 * mib}))
	zero := make([]byte, 2*mib)
	if !bytes.Equal(w.Bytes(0, 2*mib), zero) || !bytes.Equal(w.Bytes(4*mib, 2*mib), zero) {
		t.Fatal("removed ranges do not read zeros")
	}
	if got := d.dev.DAX().Mappings(); len(got) != 1 || got[0].Offset != 2*mib {
		t.Fatalf("after remove: %+v", got)
	}
	sameTables(t, d, w)
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}

	// A front-end disconnect drops every mapping.
	g.F.Close()
	d.sessionEnd()
	if got := d.dev.DAX().Mappings(); len(got) != 0 {
		t.Fatalf("after disconnect: %+v", got)
	}
}

// TestDAXKernelStyle: Linux sends SETUPMAPPING with fh = -1 (the inode in
// the header, no handle), for files the guest may have closed already. The
// mapping works and keeps the file; once unmapped, no fd is left open.
func TestDAXKernelStyle(t *testing.T) {
	d, g, w := daxSetup(t, 8*mib, shmemProtocol, true)
	node, _ := daxSession(t, g, "f")
	content := pattern(2*mib, 9)
	if err := os.WriteFile(filepath.Join(d.dir, "f"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	q := g.Queues[1]
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	before := fds()
	call(t, q, setupReq(node, uint64(dax.NoHandle), 0, 2*mib, 0, abi.SetupmappingRead|abi.SetupmappingWrite))
	call(t, q, setupReq(node, uint64(dax.NoHandle), 0, 2*mib, 2*mib, abi.SetupmappingRead))
	if !bytes.Equal(w.Bytes(0, 2*mib), content) || !bytes.Equal(w.Bytes(2*mib, 2*mib), content) {
		t.Fatal("window does not show the file")
	}
	copy(w.Bytes(0, 4), "KERN")
	if b := w.Bytes(2*mib, 4); string(b) != "KERN" {
		t.Fatalf("read-only view of the same file shows %q", b)
	}
	if n := fds(); n != before+2 {
		t.Fatalf("%d fds open, want %d (one duplicate per mapping, no handle kept)", n, before+2)
	}
	call(t, q, removeReq(node, [2]uint64{0, 4 * mib}))
	if n := fds(); n != before {
		t.Fatalf("%d fds open after REMOVEMAPPING, want %d", n, before)
	}
	sameTables(t, d, w)
}

// TestDAXWithoutFeature: a front-end that did not negotiate SHMEM (here:
// it gave the back-end channel but not the feature; and one that gave no
// channel) gets EOPNOTSUPP, at once.
func TestDAXWithoutFeature(t *testing.T) {
	for _, c := range []struct {
		name     string
		protocol uint64
		channel  bool
	}{
		{"channel without SHMEM", vt.AllProtocol, true},
		{"no channel", shmemProtocol, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			d, g, _ := daxSetup(t, 8*mib, c.protocol, false)
			if c.channel {
				w, err := vt.NewWindow(8 * mib)
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				if err := g.F.AttachWindow(w); err != nil {
					t.Fatal(err)
				}
				defer func() {
					if w.Requests() != 0 {
						t.Error("a SHMEM request reached a front-end without SHMEM")
					}
				}()
			}
			node, fh := daxSession(t, g, "f")
			start := time.Now()
			if e := errnoOf(t, g.Queues[1], setupReq(node, fh, 0, 2*mib, 0, abi.SetupmappingRead)); e != syscall.EOPNOTSUPP {
				t.Fatalf("SETUPMAPPING: %v, want EOPNOTSUPP", e)
			}
			if e := errnoOf(t, g.Queues[1], removeReq(node, [2]uint64{0, 2 * mib})); e != syscall.EOPNOTSUPP {
				t.Fatalf("REMOVEMAPPING: %v, want EOPNOTSUPP", e)
			}
			if time.Since(start) > 2*time.Second {
				t.Fatal("EOPNOTSUPP took too long")
			}
			if len(d.dev.DAX().Mappings()) != 0 {
				t.Fatal("table not empty")
			}
		})
	}
}

// TestDAXFrontendRefuses: the front-end's errno reaches the guest; a
// front-end that never answers fails the request after the timeout (no
// hang), and the table stays equal to the window's.
func TestDAXFrontendRefuses(t *testing.T) {
	d, g, w := daxSetup(t, 8*mib, shmemProtocol, true)
	node, fh := daxSession(t, g, "f")
	q := g.Queues[1]
	if err := os.WriteFile(filepath.Join(d.dir, "f"), pattern(2*mib, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	call(t, q, setupReq(node, fh, 0, 2*mib, 0, abi.SetupmappingRead))
	w.SetRefuse(func(vhostuser.BackendRequest, vhostuser.MMap) uint64 { return uint64(syscall.ENOMEM) })
	if e := errnoOf(t, q, setupReq(node, fh, 0, 2*mib, 2*mib, abi.SetupmappingRead)); e != syscall.ENOMEM {
		t.Fatalf("refused map: %v, want ENOMEM", e)
	}
	w.SetRefuse(func(vhostuser.BackendRequest, vhostuser.MMap) uint64 { return 1 }) // QEMU's "failed"
	if e := errnoOf(t, q, removeReq(node, [2]uint64{0, 2 * mib})); e != syscall.EIO {
		t.Fatalf("refused unmap: %v, want EIO", e)
	}
	sameTables(t, d, w)
	w.SetRefuse(nil)

	old := vhostuser.SetShmemTimeout(300 * time.Millisecond)
	t.Cleanup(func() { vhostuser.SetShmemTimeout(old) })
	w.Silent.Store(true)
	start := time.Now()
	if e := errnoOf(t, q, setupReq(node, fh, 0, 2*mib, 4*mib, abi.SetupmappingRead)); e != syscall.ETIMEDOUT {
		t.Fatalf("silent front-end: %v, want ETIMEDOUT", e)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("took %v", el)
	}
	// The channel is closed now: the next request fails at once.
	if e := errnoOf(t, q, setupReq(node, fh, 0, 2*mib, 6*mib, abi.SetupmappingRead)); e != syscall.EIO {
		t.Fatalf("after timeout: %v, want EIO", e)
	}
	if got := slices.Collect(func(yield func(uint64) bool) {
		for _, m := range d.dev.DAX().Mappings() {
			if !yield(m.Offset) {
				return
			}
		}
	}); !slices.Equal(got, []uint64{0}) {
		t.Fatalf("table after failures: %v, want the first mapping only", got)
	}
}

func TestEnableDAX(t *testing.T) {
	d := newDaemon(t, 1)
	if err := d.dev.EnableDAX(3 * mib); err == nil {
		t.Fatal("window of 3 MiB accepted (not a 2 MiB multiple)")
	}
	if err := d.dev.EnableDAX(0); err == nil {
		t.Fatal("empty window accepted")
	}
	if d.dev.DAX() != nil || d.dev.SharedMemoryRegions() != nil {
		t.Fatal("failed EnableDAX left a window")
	}
	if err := d.dev.EnableDAX(2 * mib); err != nil {
		t.Fatal(err)
	}
	if err := d.dev.EnableDAX(2 * mib); err == nil {
		t.Fatal("second EnableDAX accepted")
	}
	// Without DAX the back-end does not offer SHMEM.
	d2 := newDaemon(t, 1)
	f := d2.connect()
	p, err := f.GetU64(vhostuser.VHOST_USER_GET_PROTOCOL_FEATURES)
	if err != nil {
		t.Fatal(err)
	}
	if p&(1<<vhostuser.VHOST_USER_PROTOCOL_F_SHMEM) != 0 {
		t.Fatalf("SHMEM offered without a window (%#x)", p)
	}
}

// BenchmarkDAXMapUnmap measures one SETUPMAPPING + REMOVEMAPPING of 2 MiB
// through the whole path: guest request on the ring, engine, dax table,
// SHMEM_MAP (fd passed) / SHMEM_UNMAP over the back-end channel, the VMM
// side's MAP_FIXED mmap, and its REPLY_ACK.
func BenchmarkDAXMapUnmap(b *testing.B) {
	dir := b.TempDir()
	fsys, err := passthrough.New(dir, passthrough.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer fsys.Close()
	dev, err := virtiofs.New(fsys, virtiofs.Options{Tag: "bench", Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	if err := dev.EnableDAX(64 * mib); err != nil {
		b.Fatal(err)
	}
	be := vhostuser.NewBackend(dev)
	be.Log = slog.New(slog.DiscardHandler)
	f, c, err := vt.Pair()
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	go be.Serve(c)
	g, err := vt.NewGuest(f, vt.GuestConfig{Protocol: shmemProtocol})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	w, err := vt.NewWindow(64 * mib)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	if err := f.AttachWindow(w); err != nil {
		b.Fatal(err)
	}
	q := g.Queues[1]
	do := func(req vt.Buffers) []byte {
		out, err := q.Submit(req)
		var oh abi.OutHeader
		if err != nil || !oh.Unmarshal(out) || oh.Error != 0 {
			b.Fatalf("request: %v (error %d)", err, oh.Error)
		}
		return out[abi.OutHeaderSize:]
	}
	in := abi.InitIn{Major: abi.KernelVersion, Minor: abi.KernelMinorVersion, Flags: uint32(abi.InitMaxPages | abi.InitMapAlignment)}
	a := make([]byte, 64)
	in.Marshal(a)
	do(vt.Buffers{In: [][]byte{inHeader(abi.OpInit, 0, 64), a}, Out: []int{abi.OutHeaderSize + abi.InitOutSize}})
	r := do(createReq("f"))
	var e abi.EntryOut
	var o abi.OpenOut
	e.Unmarshal(r)
	o.Unmarshal(r[abi.EntryOutSize:])
	if err := os.Truncate(filepath.Join(dir, "f"), 2*mib); err != nil {
		b.Fatal(err)
	}
	setup := setupReq(e.NodeID, o.Fh, 0, 2*mib, 0, abi.SetupmappingRead|abi.SetupmappingWrite)
	remove := removeReq(e.NodeID, [2]uint64{0, 2 * mib})
	for b.Loop() {
		do(setup)
		do(remove)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/2, "ns/request")
}

// TestDAXResetDevice: RESET_DEVICE (the front-end still connected) unmaps
// every mapping at the front-end and empties the table.
func TestDAXResetDevice(t *testing.T) {
	d, g, w := daxSetup(t, 8*mib, shmemProtocol, true)
	node, fh := daxSession(t, g, "f")
	if err := os.Truncate(filepath.Join(d.dir, "f"), 4*mib); err != nil {
		t.Fatal(err)
	}
	q := g.Queues[1]
	call(t, q, setupReq(node, fh, 0, 2*mib, 0, abi.SetupmappingRead))
	call(t, q, setupReq(node, fh, 2*mib, 2*mib, 6*mib, abi.SetupmappingRead))
	if len(w.Mappings()) != 2 {
		t.Fatalf("window: %v", w.Mappings())
	}
	if _, err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := g.F.Do(vhostuser.VHOST_USER_RESET_DEVICE, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(w.Mappings()); n != 0 {
		t.Fatalf("window after reset: %v", w.Mappings())
	}
	if n := len(d.dev.DAX().Mappings()); n != 0 {
		t.Fatalf("table after reset: %d mappings", n)
	}
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
}
