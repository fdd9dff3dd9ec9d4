package virtiofs_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastfsd/fastfsd/dataplane/virtiofs"
	"github.com/fastfsd/fastfsd/fs/passthrough"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/stats"
	"github.com/fastfsd/fastfsd/ring/ringtest"
	"github.com/fastfsd/fastfsd/vhostuser"
	vt "github.com/fastfsd/fastfsd/vhostuser/vhostusertest"
	"golang.org/x/sys/unix"
)

type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// daemon is a back-end serving a temp dir, accepting connections like
// fastfsd virtiofs --keep-listening.
type daemon struct {
	t    *testing.T
	dir  string
	dev  *virtiofs.Device
	b    *vhostuser.Backend
	log  *logBuf
	errs chan error
}

func newDaemon(t *testing.T, queues int) *daemon {
	return newDaemonOpts(t, virtiofs.Options{Tag: "myfs", RequestQueues: queues})
}

func newDaemonOpts(t *testing.T, opts virtiofs.Options) *daemon {
	t.Helper()
	d := &daemon{t: t, dir: t.TempDir(), log: &logBuf{}, errs: make(chan error, 16)}
	fsys, err := passthrough.New(d.dir, passthrough.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close() })
	lg := slog.New(slog.NewTextHandler(d.log, nil))
	opts.Log = lg
	d.dev, err = virtiofs.New(fsys, opts)
	if err != nil {
		t.Fatal(err)
	}
	d.b = vhostuser.NewBackend(d.dev)
	d.b.Log = lg
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log)
		}
	})
	return d
}

// connect starts a session and returns its front-end.
func (d *daemon) connect() *vt.Frontend {
	f, c, err := vt.Pair()
	if err != nil {
		d.t.Fatal(err)
	}
	go func() { d.errs <- d.b.Serve(c) }()
	d.t.Cleanup(func() { f.Close() })
	return f
}

func (d *daemon) guest(c vt.GuestConfig) *vt.Guest {
	d.t.Helper()
	g, err := vt.NewGuest(d.connect(), c)
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(g.Close)
	return g
}

func (d *daemon) sessionEnd() error {
	select {
	case err := <-d.errs:
		return err
	case <-time.After(10 * time.Second):
		d.t.Fatal("session did not end")
		return nil
	}
}

// FUSE request builders.

var unique atomic.Uint64

func inHeader(op abi.Opcode, node uint64, argLen int) []byte {
	b := make([]byte, abi.InHeaderSize)
	h := abi.InHeader{Len: uint32(abi.InHeaderSize + argLen), Opcode: op, Unique: unique.Add(2), NodeID: node, UID: 0, GID: 0, PID: 1}
	h.Marshal(b)
	return b
}

type fuseReply struct {
	hdr  abi.OutHeader
	args []byte
}

func parseReply(t *testing.T, b []byte) fuseReply {
	t.Helper()
	var r fuseReply
	if !r.hdr.Unmarshal(b) {
		t.Fatalf("reply of %d bytes has no header", len(b))
	}
	if int(r.hdr.Len) != len(b) {
		t.Fatalf("reply header len %d, used length %d", r.hdr.Len, len(b))
	}
	r.args = b[abi.OutHeaderSize:]
	return r
}

// call sends one request on q and checks the reply has no error.
func call(t *testing.T, q *vt.GuestQueue, b vt.Buffers) fuseReply {
	t.Helper()
	out, err := q.Submit(b)
	if err != nil {
		t.Fatal(err)
	}
	r := parseReply(t, out)
	if r.hdr.Error != 0 {
		t.Fatalf("request failed: %v", unix.Errno(-r.hdr.Error))
	}
	return r
}

// completion waits for q's next completion, which must be head's (what
// names it in the failure), and parses its reply, laid out as b asked.
func completion(t *testing.T, q *vt.GuestQueue, head uint16, b vt.Buffers, what string) fuseReply {
	t.Helper()
	id, n, err := q.Wait()
	if err != nil || id != head {
		t.Fatalf("%s completion: id %d (want %d), %v", what, id, head, err)
	}
	out, _ := q.Reply(b, n)
	return parseReply(t, out)
}

func initReq() vt.Buffers {
	in := abi.InitIn{Major: abi.KernelVersion, Minor: abi.KernelMinorVersion, MaxReadahead: 128 << 10,
		Flags: uint32(abi.InitMaxPages | abi.InitBigWrites | abi.InitAsyncRead | abi.InitExt)}
	a := make([]byte, 64)
	in.Marshal(a)
	return vt.Buffers{In: [][]byte{inHeader(abi.OpInit, 0, 64), a}, Out: []int{abi.OutHeaderSize + abi.InitOutSize}}
}

func createReq(name string) vt.Buffers {
	a := make([]byte, abi.CreateInSize+len(name)+1)
	(&abi.CreateIn{Flags: unix.O_RDWR | unix.O_CREAT, Mode: 0o644}).Marshal(a)
	copy(a[abi.CreateInSize:], name)
	return vt.Buffers{In: [][]byte{inHeader(abi.OpCreate, 1, len(a)), a},
		Out: []int{abi.OutHeaderSize + abi.EntryOutSize + abi.OpenOutSize}}
}

func writeReq(node, fh uint64, off uint64, data []byte, pieces int) vt.Buffers {
	a := make([]byte, abi.WriteInSize)
	(&abi.WriteIn{Fh: fh, Offset: off, Size: uint32(len(data))}).Marshal(a)
	in := [][]byte{inHeader(abi.OpWrite, node, abi.WriteInSize+len(data)), a}
	step := (len(data) + pieces - 1) / pieces
	for i := 0; i < len(data); i += step {
		in = append(in, data[i:min(i+step, len(data))])
	}
	return vt.Buffers{In: in, Out: []int{abi.OutHeaderSize + abi.WriteOutSize}}
}

func readReq(node, fh uint64, off uint64, size int, pages int) vt.Buffers {
	a := make([]byte, abi.ReadInSize)
	(&abi.ReadIn{Fh: fh, Offset: off, Size: uint32(size)}).Marshal(a)
	out := []int{abi.OutHeaderSize}
	step := (size + pages - 1) / pages
	for i := 0; i < size; i += step {
		out = append(out, min(step, size-i))
	}
	return vt.Buffers{In: [][]byte{inHeader(abi.OpRead, node, abi.ReadInSize), a}, Out: out}
}

func getattrReq(node uint64) vt.Buffers {
	a := make([]byte, abi.GetattrInSize)
	// Linux puts header and arguments in one buffer: do that here.
	return vt.Buffers{In: [][]byte{append(inHeader(abi.OpGetattr, node, len(a)), a...)}, Out: []int{abi.OutHeaderSize + abi.AttrOutSize}}
}

func forgetReq(node, n uint64) vt.Buffers {
	a := make([]byte, abi.ForgetInSize)
	(&abi.ForgetIn{Nlookup: n}).Marshal(a)
	return vt.Buffers{In: [][]byte{append(inHeader(abi.OpForget, node, len(a)), a...)}}
}

// session: INIT, then CREATE "name"; returns node and fh.
func session(t *testing.T, g *vt.Guest, name string) (node, fh uint64) {
	t.Helper()
	q := g.Queues[1]
	r := call(t, q, initReq())
	var io abi.InitOut
	if !io.Unmarshal(r.args) || io.Major != 7 {
		t.Fatalf("INIT reply %x", r.args)
	}
	r = call(t, q, createReq(name))
	var e abi.EntryOut
	var o abi.OpenOut
	if !e.Unmarshal(r.args) || !o.Unmarshal(r.args[abi.EntryOutSize:]) {
		t.Fatalf("CREATE reply %x", r.args)
	}
	return e.NodeID, o.Fh
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

func TestReadWrite(t *testing.T) {
	d := newDaemon(t, 2)
	g := d.guest(vt.GuestConfig{})
	if len(g.Queues) != 3 {
		t.Fatalf("%d queues, want 3", len(g.Queues))
	}
	node, fh := session(t, g, "f")
	data := pattern(3*4096+100, 1)
	for _, tc := range []struct {
		name     string
		pieces   int
		indirect bool
	}{{"one piece", 1, false}, {"four pieces", 4, false}, {"indirect", 3, true}} {
		t.Run(tc.name, func(t *testing.T) {
			q := g.Queues[1+len(tc.name)%2]
			w := writeReq(node, fh, 0, data, tc.pieces)
			w.Indirect = tc.indirect
			r := call(t, q, w)
			var wo abi.WriteOut
			if !wo.Unmarshal(r.args) || wo.Size != uint32(len(data)) {
				t.Fatalf("WRITE reply %x", r.args)
			}
			got, err := os.ReadFile(filepath.Join(d.dir, "f"))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("host file: %d bytes, %v; want the %d written", len(got), err, len(data))
			}
			rr := readReq(node, fh, 0, len(data)+500, tc.pieces+1)
			rr.Indirect = tc.indirect
			r = call(t, q, rr)
			if !bytes.Equal(r.args, data) {
				t.Fatalf("READ returned %d bytes, want %d equal to the file", len(r.args), len(data))
			}
			// Overwrite from the host, read back through the guest.
			os.WriteFile(filepath.Join(d.dir, "f"), pattern(len(data), 9), 0o644)
			r = call(t, q, readReq(node, fh, 100, 4096, 2))
			if !bytes.Equal(r.args, pattern(len(data), 9)[100:100+4096]) {
				t.Fatalf("READ at 100 wrong")
			}
		})
	}
	// hiprio: FORGET has no reply and completes with used length 0.
	out, err := g.Queues[0].Submit(forgetReq(node, 1))
	if err != nil || len(out) != 0 {
		t.Fatalf("FORGET on hiprio: %x, %v", out, err)
	}
	if _, err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	g.F.Close()
	if err := d.sessionEnd(); !errors.Is(err, vhostuser.ErrClosed) {
		t.Fatalf("session ended with %v, want ErrClosed", err)
	}
}

// TestStopSequence checks GET_VRING_BASE reports how far each ring got and
// that a restart from there continues.
func TestStopSequence(t *testing.T) {
	d := newDaemon(t, 1)
	g := d.guest(vt.GuestConfig{})
	session(t, g, "f")
	for i := 0; i < 5; i++ {
		call(t, g.Queues[1], getattrReq(1))
	}
	bases, err := g.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if bases[0] != 0 || bases[1] != 7 {
		t.Fatalf("GET_VRING_BASE = %v, want [0 7]", bases)
	}
	// Restart queue 1 at its base (as QEMU does on resume): a new kick fd.
	k, _ := vt.NewEventfd()
	if err := g.F.SetVringFd(vhostuser.VHOST_USER_SET_VRING_KICK, 1, k); err != nil {
		t.Fatal(err)
	}
	unix.Close(g.Queues[1].Ev.Kick)
	g.Queues[1].Ev.Kick = k
	call(t, g.Queues[1], getattrReq(1))
}

// TestHostileChains forges broken chains; each is completed with length 0
// and the queue goes on serving.
func TestHostileChains(t *testing.T) {
	d := newDaemon(t, 1)
	g := d.guest(vt.GuestConfig{Size: 16})
	session(t, g, "f")
	q := g.Queues[1]
	base := q.Data
	for _, tc := range []struct {
		name  string
		forge func() uint16 // writes descriptors, returns head
	}{
		{"loop", func() uint16 {
			q.D.WriteDesc(10, ringtest.Desc{Addr: base, Len: 64, Flags: ringtest.FlagNext, Next: 11})
			q.D.WriteDesc(11, ringtest.Desc{Addr: base, Len: 64, Flags: ringtest.FlagNext, Next: 10})
			return 10
		}},
		{"address outside memory", func() uint16 {
			q.D.WriteDesc(10, ringtest.Desc{Addr: 1 << 40, Len: 64})
			return 10
		}},
		{"address wraps", func() uint16 {
			q.D.WriteDesc(10, ringtest.Desc{Addr: ^uint64(0) - 10, Len: 64})
			return 10
		}},
		{"next out of range", func() uint16 {
			q.D.WriteDesc(10, ringtest.Desc{Addr: base, Len: 64, Flags: ringtest.FlagNext, Next: 999})
			return 10
		}},
		{"huge length", func() uint16 {
			q.D.WriteDesc(10, ringtest.Desc{Addr: base, Len: 0xffffffff})
			return 10
		}},
		{"readable after writable", func() uint16 {
			q.D.WriteDesc(10, ringtest.Desc{Addr: base, Len: 64, Flags: ringtest.FlagNext | ringtest.FlagWrite, Next: 11})
			q.D.WriteDesc(11, ringtest.Desc{Addr: base + 64, Len: 64})
			return 10
		}},
		{"indirect inside indirect", func() uint16 {
			q.D.WriteTable(base+4096, []ringtest.Desc{{Addr: base + 8192, Len: 32, Flags: ringtest.FlagIndirect}})
			q.D.WriteDesc(10, ringtest.Desc{Addr: base + 4096, Len: 16, Flags: ringtest.FlagIndirect})
			return 10
		}},
		{"indirect table misaligned length", func() uint16 {
			q.D.WriteDesc(10, ringtest.Desc{Addr: base + 4096, Len: 17, Flags: ringtest.FlagIndirect})
			return 10
		}},
		{"indirect with next", func() uint16 {
			q.D.WriteDesc(10, ringtest.Desc{Addr: base + 4096, Len: 16, Flags: ringtest.FlagIndirect | ringtest.FlagNext, Next: 11})
			return 10
		}},
		{"short header", func() uint16 {
			q.D.WriteDesc(10, ringtest.Desc{Addr: base, Len: 20})
			return 10
		}},
		{"header lies about length", func() uint16 {
			h := inHeader(abi.OpGetattr, 1, 5000)
			copy(q.Mem(base, 40), h)
			q.D.WriteDesc(10, ringtest.Desc{Addr: base, Len: 56, Flags: ringtest.FlagNext, Next: 11})
			q.D.WriteDesc(11, ringtest.Desc{Addr: base + 4096, Len: 200, Flags: ringtest.FlagWrite})
			return 10
		}},
		{"write payload shorter than header says", func() uint16 {
			w := writeReq(2, 0, 0, make([]byte, 100), 1)
			h := w.In[0]
			copy(q.Mem(base, 40), h)
			copy(q.Mem(base+40, 40), w.In[1])
			q.D.WriteDesc(10, ringtest.Desc{Addr: base, Len: 80 + 10, Flags: ringtest.FlagNext, Next: 11})
			q.D.WriteDesc(11, ringtest.Desc{Addr: base + 4096, Len: 24, Flags: ringtest.FlagWrite})
			return 10
		}},
		{"reply does not fit", func() uint16 {
			b := getattrReq(1)
			copy(q.Mem(base, uint64(len(b.In[0]))), b.In[0])
			q.D.WriteDesc(10, ringtest.Desc{Addr: base, Len: uint32(len(b.In[0])), Flags: ringtest.FlagNext, Next: 11})
			q.D.WriteDesc(11, ringtest.Desc{Addr: base + 4096, Len: 20, Flags: ringtest.FlagWrite})
			return 10
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			head := tc.forge()
			q.D.PutAvail(head)
			q.Kick()
			id, n, err := q.Wait()
			if err != nil {
				t.Fatal(err)
			}
			if id != head {
				t.Fatalf("used id %d, want %d", id, head)
			}
			if n != 0 && n != abi.OutHeaderSize {
				t.Fatalf("used length %d for a hostile chain", n)
			}
			if n == abi.OutHeaderSize {
				var h abi.OutHeader
				h.Unmarshal(q.Mem(base+4096, 16))
				if h.Error == 0 {
					t.Fatalf("hostile request answered with success")
				}
			}
			// The queue still serves.
			call(t, q, getattrReq(1))
		})
	}
}

// TestBrokenRing corrupts avail.idx: the ring stops (error eventfd
// signalled), GET_VRING_BASE still answers, and a new connection works.
func TestBrokenRing(t *testing.T) {
	d := newDaemon(t, 1)
	g := d.guest(vt.GuestConfig{Size: 16})
	errFd, _ := vt.NewEventfd()
	defer unix.Close(errFd)
	if err := g.F.SetVringFd(vhostuser.VHOST_USER_SET_VRING_ERR, 1, errFd); err != nil {
		t.Fatal(err)
	}
	session(t, g, "f")
	q := g.Queues[1]
	q.D.SetAvailIdx(q.D.UsedIdx() + 100)
	vt.Kick(q.Ev.Kick)
	if ok, err := vt.WaitCall(errFd, 5000); !ok || err != nil {
		t.Fatalf("error eventfd not signalled: %v", err)
	}
	if _, err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	g.F.Close()
	d.sessionEnd()
	// A new VM connects and mounts again.
	g2 := d.guest(vt.GuestConfig{})
	session(t, g2, "g")
	call(t, g2.Queues[1], getattrReq(1))
}

// TestDisconnectMidRequest drops the connection with requests queued and a
// message half sent; the next connection gets a fresh FUSE session.
func TestDisconnectMidRequest(t *testing.T) {
	d := newDaemon(t, 2)
	for round := 0; round < 3; round++ {
		g := d.guest(vt.GuestConfig{})
		node, fh := session(t, g, fmt.Sprintf("f%d", round))
		q := g.Queues[1]
		for i := 0; i < 8; i++ {
			b := writeReq(node, fh, uint64(i)*4096, pattern(4096, byte(i)), 2)
			q.Add(b)
		}
		q.Kick()
		g.F.SendRaw([]byte{2, 0, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 1})
		g.F.Close()
		if err := d.sessionEnd(); !errors.Is(err, vhostuser.ErrDisconnected) {
			t.Fatalf("round %d: session ended with %v, want ErrDisconnected", round, err)
		}
	}
	g := d.guest(vt.GuestConfig{})
	node, fh := session(t, g, "last")
	r := call(t, g.Queues[2], writeReq(node, fh, 0, []byte("hello"), 1))
	if len(r.args) != abi.WriteOutSize {
		t.Fatal("WRITE after reconnects failed")
	}
}

// TestMemoryUpdatesUnderLoad adds and removes a memory region while
// requests flow on two queues.
func TestMemoryUpdatesUnderLoad(t *testing.T) {
	memoryUnderLoad(t, newDaemon(t, 2), 8192)
}

// TestMemoryUpdatesWithHelpers: the same with 128 KiB writes served by
// helpers, which hold views of guest memory while the worker goes on.
func TestMemoryUpdatesWithHelpers(t *testing.T) {
	memoryUnderLoad(t, newDaemonOpts(t, virtiofs.Options{Tag: "m", RequestQueues: 2, Helpers: 2}), 128<<10)
}

func memoryUnderLoad(t *testing.T, d *daemon, writeSize int) {
	g := d.guest(vt.GuestConfig{})
	node, fh := session(t, g, "f")
	extra := vt.Region{GuestAddr: 1 << 32, Size: 1 << 20, UserAddr: vt.UserBase + 1<<32}
	if err := g.Mem.Add(extra); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served [2]atomic.Int64
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			q := g.Queues[1+i]
			for {
				select {
				case <-stop:
					return
				default:
				}
				var b vt.Buffers
				if i == 0 {
					b = getattrReq(1)
				} else {
					b = writeReq(node, fh, 0, pattern(writeSize, 3), 2)
				}
				out, err := q.Submit(b)
				if err != nil {
					errs <- err
					return
				}
				var h abi.OutHeader
				if !h.Unmarshal(out) || h.Error != 0 {
					errs <- fmt.Errorf("queue %d: reply %x", 1+i, out)
					return
				}
				served[i].Add(1)
			}
		}(i)
	}
	fd := int(g.Mem.Files[1].Fd())
	updates := 0
	deadline := time.Now().Add(20 * time.Second)
	for updates < 100 || served[0].Load() < 500 || served[1].Load() < 500 {
		if time.Now().After(deadline) {
			break
		}
		updates++
		if err := g.F.AddMemReg(extra, fd); err != nil {
			t.Fatal(err)
		}
		if err := g.F.RemMemReg(extra); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
	if served[0].Load() < 500 || served[1].Load() < 500 {
		t.Fatalf("served %d and %d requests during %d memory updates, want 500 each", served[0].Load(), served[1].Load(), 2*updates)
	}
	t.Logf("served %d GETATTR and %d WRITE during %d memory updates", served[0].Load(), served[1].Load(), 2*updates)
}

// TestGuestReboot: the guest reboots without a device reset (QEMU stops the
// rings and starts fresh ones on the same connection) and sends INIT
// again; the device starts a new FUSE session and serves it.
func TestGuestReboot(t *testing.T) {
	d := newDaemon(t, 1)
	g := d.guest(vt.GuestConfig{})
	session(t, g, "before")
	if _, err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := g.Restart(); err != nil {
		t.Fatal(err)
	}
	session(t, g, "after")
	name := []byte("before\x00")
	r := call(t, g.Queues[1], vt.Buffers{In: [][]byte{inHeader(abi.OpLookup, 1, len(name)), name},
		Out: []int{abi.OutHeaderSize + abi.EntryOutSize}})
	var e abi.EntryOut
	if !e.Unmarshal(r.args) || e.NodeID == 0 {
		t.Fatalf("LOOKUP after reboot: %x", r.args)
	}
	if !strings.Contains(d.log.String(), "starting a new session") {
		t.Fatal("no new session logged")
	}
}

// TestPollingModes: a worker that busy-polls before sleeping, and a ring
// whose front-end sent no kick fd (vhost-user "no fd": the back-end polls).
func TestPollingModes(t *testing.T) {
	d := newDaemon(t, 2)
	d.dev = nil
	fsys, err := passthrough.New(d.dir, passthrough.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	dev, err := virtiofs.New(fsys, virtiofs.Options{Tag: "p", RequestQueues: 2, BusyPoll: 200 * time.Microsecond,
		Log: slog.New(slog.NewTextHandler(d.log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	d.b = vhostuser.NewBackend(dev)
	g := d.guest(vt.GuestConfig{})
	session(t, g, "f")
	for i := 0; i < 20; i++ {
		call(t, g.Queues[1], getattrReq(1))
	}
	// Queue 2 without a kick fd.
	if err := g.F.SetVringFd(vhostuser.VHOST_USER_SET_VRING_KICK, 2, -1); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		out, err := g.Queues[2].Submit(getattrReq(1))
		if err != nil {
			t.Fatal(err)
		}
		if parseReply(t, out).hdr.Error != 0 {
			t.Fatal("GETATTR failed on the polled queue")
		}
	}
}

// TestPollAsksNoKick: a worker polling its ring does not ask the driver
// to kick (in a VM each kick is a VM exit): with a fixed window, after
// the first request of a burst none; with the adaptive window, once it
// has grown to the driver's pace, few. Each request is still served.
//
// The driver pauses 200 µs before each request, so that a worker that
// does not poll has asked for a kick (EnableNotify) and sleeps by then:
// without the pause a driver quick to add the next request often beat
// such a worker to EnableNotify, and the adaptive case saw as few as 5
// kicks of 100 with its worker never polling ("off" pins that the pause
// makes it kick).
func TestPollAsksNoKick(t *testing.T) {
	for _, tc := range []struct {
		name               string
		opts               virtiofs.Options
		minKicks, maxKicks int // of 100 requests
	}{
		{"fixed", virtiofs.Options{BusyPoll: 5 * time.Second}, 0, 1},
		// A maximum no gap reaches, so that the window only grows: each
		// kick doubles it from 4 µs (every kick but the first wakes a
		// worker whose window the gap exceeded), so it covers the
		// driver's pace (the pause, more under -race on a loaded
		// machine) after about 8 kicks, and no gap under 5 s takes more
		// than 22.
		{"adaptive", virtiofs.Options{AdaptivePoll: 5 * time.Second}, 0, 30},
		{"off", virtiofs.Options{}, 50, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Tag, tc.opts.RequestQueues = "p", 1
			// This driver sends one request per 200 µs gap: let the
			// window grow to it (adapt's budget per request served is
			// TestAdaptBudget's).
			d := newDaemonOpts(t, virtiofs.WithSpinPerRequest(tc.opts, time.Second))
			g := d.guest(vt.GuestConfig{})
			session(t, g, "f")
			q := g.Queues[1]
			kicks := 0
			for i := range 100 {
				time.Sleep(200 * time.Microsecond)
				head, err := q.Add(getattrReq(1))
				if err != nil {
					t.Fatal(err)
				}
				if q.D.Kick() {
					kicks++
					vt.Kick(q.Ev.Kick)
				}
				id, n, err := q.Wait()
				if err != nil || id != head {
					t.Fatalf("request %d: used id %d (want %d), %v", i, id, head, err)
				}
				out, err := q.Reply(getattrReq(1), n)
				if err != nil {
					t.Fatal(err)
				}
				if r := parseReply(t, out); r.hdr.Error != 0 {
					t.Fatalf("request %d: GETATTR failed: %v", i, unix.Errno(-r.hdr.Error))
				}
			}
			t.Logf("%d kicks for 100 requests", kicks)
			if kicks < tc.minKicks || kicks > tc.maxKicks {
				t.Fatalf("%d kicks for 100 requests, want %d to %d", kicks, tc.minKicks, tc.maxKicks)
			}
		})
	}
}

// BenchmarkRoundTrip measures one request through the whole path: the
// driver adds a chain and kicks the eventfd, the queue's worker thread
// wakes, serves it and signals the call eventfd, the driver wakes.
func BenchmarkRoundTrip(b *testing.B) {
	for _, poll := range []time.Duration{0, 50 * time.Microsecond} {
		b.Run("busypoll="+poll.String(), func(b *testing.B) {
			t := &testing.T{}
			_ = t
			dir := b.TempDir()
			fsys, err := passthrough.New(dir, passthrough.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer fsys.Close()
			dev, err := virtiofs.New(fsys, virtiofs.Options{Tag: "b", RequestQueues: 1, BusyPoll: poll,
				Log: slog.New(slog.NewTextHandler(&logBuf{}, nil))})
			if err != nil {
				b.Fatal(err)
			}
			be := vhostuser.NewBackend(dev)
			f, c, err := vt.Pair()
			if err != nil {
				b.Fatal(err)
			}
			go be.Serve(c)
			defer f.Close()
			g, err := vt.NewGuest(f, vt.GuestConfig{})
			if err != nil {
				b.Fatal(err)
			}
			defer g.Close()
			q := g.Queues[1]
			if _, err := q.Submit(initReq()); err != nil {
				b.Fatal(err)
			}
			req := getattrReq(1)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := q.Submit(req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func lkReq(op abi.Opcode, node, fh, owner uint64, typ uint32, off uint64) vt.Buffers {
	a := make([]byte, abi.LkInSize)
	(&abi.LkIn{Fh: fh, Owner: owner, Lk: abi.FileLock{Start: 0, End: 1<<63 - 1, Type: typ, PID: uint32(owner)}}).Marshal(a)
	return vt.Buffers{In: [][]byte{inHeader(op, node, len(a)), a}, Out: []int{abi.OutHeaderSize}, Offset: off}
}

// TestHelpers: with helper goroutines, a blocking SETLKW does not stall
// its queue (the unlock that releases it arrives on the same queue), and
// big WRITEs run concurrently and complete out of order correctly.
func TestHelpers(t *testing.T) {
	d := newDaemonOpts(t, virtiofs.Options{Tag: "h", RequestQueues: 1, Helpers: 4,
		Fuse: fuse.Options{Locks: true}})
	g := d.guest(vt.GuestConfig{})
	node, fh := session(t, g, "f")
	q := g.Queues[1]
	call(t, q, lkReq(abi.OpSetlk, node, fh, 1, unix.F_WRLCK, 0))
	wait := lkReq(abi.OpSetlkw, node, fh, 2, unix.F_WRLCK, 0)
	head, err := q.Add(wait)
	if err != nil {
		t.Fatal(err)
	}
	q.Kick()
	// The queue keeps serving while SETLKW waits.
	ga := getattrReq(node)
	ga.Offset = 64 << 10
	call(t, q, ga)
	call(t, q, lkReq(abi.OpSetlk, node, fh, 1, unix.F_UNLCK, 128<<10))
	if r := completion(t, q, head, wait, "SETLKW"); r.hdr.Error != 0 {
		t.Fatalf("SETLKW: %v", unix.Errno(-r.hdr.Error))
	}
	call(t, q, lkReq(abi.OpSetlk, node, fh, 2, unix.F_UNLCK, 0))

	// Eight 128 KiB writes in flight at once.
	const k, size = 8, 128 << 10
	heads := map[uint16]int{}
	for i := 0; i < k; i++ {
		b := writeReq(node, fh, uint64(i*size), pattern(size, byte(i)), 2)
		b.Offset = uint64(i) * (size + 4096)
		h, err := q.Add(b)
		if err != nil {
			t.Fatal(err)
		}
		heads[h] = i
	}
	q.Kick()
	for range k {
		id, n, err := q.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := heads[id]; !ok || n != abi.OutHeaderSize+abi.WriteOutSize {
			t.Fatalf("completion id %d len %d", id, n)
		}
		delete(heads, id)
	}
	got, err := os.ReadFile(filepath.Join(d.dir, "f"))
	if err != nil || len(got) != k*size {
		t.Fatalf("file: %d bytes, %v", len(got), err)
	}
	for i := 0; i < k; i++ {
		if !bytes.Equal(got[i*size:(i+1)*size], pattern(size, byte(i))) {
			t.Fatalf("write %d landed wrong", i)
		}
	}
	// Stop with nothing in flight, then reads through helpers.
	bases, err := g.Stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bases after the run: %v", bases)
}

// TestLockWaitsOffWorker: with no --thread-pool-size, lock waits still
// run off the worker (the queue keeps serving), a lock wait past
// BlockingHelpers is refused with ENOLCK, and stopping the queue answers
// the waits (EINTR) so GET_VRING_BASE comes back at once.
func TestLockWaitsOffWorker(t *testing.T) {
	const slots = 4
	d := newDaemonOpts(t, virtiofs.Options{Tag: "l", RequestQueues: 1, BlockingHelpers: slots,
		Fuse: fuse.Options{Locks: true}})
	g := d.guest(vt.GuestConfig{})
	node, fh := session(t, g, "f")
	q := g.Queues[1]
	call(t, q, lkReq(abi.OpSetlk, node, fh, 1, unix.F_WRLCK, 0))
	waits := map[uint16]vt.Buffers{}
	for i := range slots {
		w := lkReq(abi.OpSetlkw, node, fh, uint64(10+i), unix.F_WRLCK, uint64(i+1)*4096)
		head, err := q.Add(w)
		if err != nil {
			t.Fatal(err)
		}
		waits[head] = w
	}
	q.Kick()
	time.Sleep(100 * time.Millisecond)
	// All blocking slots busy: one more wait is refused, and the queue
	// still serves everything else.
	over := lkReq(abi.OpSetlkw, node, fh, 99, unix.F_WRLCK, 64<<10)
	out, err := q.Submit(over)
	if err != nil {
		t.Fatal(err)
	}
	if r := parseReply(t, out); r.hdr.Error != -int32(unix.ENOLCK) {
		t.Fatalf("lock wait past the bound: error %d, want -ENOLCK", r.hdr.Error)
	}
	for range 20 {
		ga := getattrReq(node)
		ga.Offset = 128 << 10
		call(t, q, ga)
	}
	start := time.Now()
	if _, err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("GET_VRING_BASE with %d lock waits pending took %v", slots, d)
	}
	for range slots {
		id, n, err := q.Wait()
		if err != nil {
			t.Fatal(err)
		}
		w, ok := waits[id]
		if !ok {
			t.Fatalf("completion of unknown head %d", id)
		}
		delete(waits, id)
		out, _ := q.Reply(w, n)
		if r := parseReply(t, out); r.hdr.Error != -int32(unix.EINTR) {
			t.Errorf("lock wait after stop: error %d, want -EINTR", r.hdr.Error)
		}
	}
	t.Logf("GET_VRING_BASE with %d lock waits pending: %v", slots, time.Since(start))
}

// TestRestartKeepsStatsWorkers: a guest that stops and restarts its queues
// gets its slots' stats.Workers back from the Set (helper and blocking
// slots included), so the Set does not grow with each restart.
func TestRestartKeepsStatsWorkers(t *testing.T) {
	set := &stats.Set{Door: "virtiofs-test"}
	d := newDaemonOpts(t, virtiofs.Options{Tag: "myfs", RequestQueues: 1, Helpers: 2, BlockingHelpers: 4, Stats: set})
	g := d.guest(vt.GuestConfig{})
	session(t, g, "f")
	want := len(set.Workers())
	if want == 0 {
		t.Fatal("no stats workers")
	}
	for i := range 4 {
		if _, err := g.Stop(); err != nil {
			t.Fatal(err)
		}
		if err := g.Restart(); err != nil {
			t.Fatal(err)
		}
		session(t, g, fmt.Sprintf("f%d", i))
		if n := len(set.Workers()); n != want {
			t.Fatalf("restart %d: %d stats workers, want %d", i+1, n, want)
		}
	}
}

// lkReqAs is a lock request of the guest's uid on [start, end].
func lkReqAs(op abi.Opcode, uid uint32, node, fh, owner uint64, typ uint32, start, end, off uint64) vt.Buffers {
	a := make([]byte, abi.LkInSize)
	(&abi.LkIn{Fh: fh, Owner: owner, Lk: abi.FileLock{Start: start, End: end, Type: typ, PID: uint32(owner)}}).Marshal(a)
	h := inHeader(op, node, len(a))
	binary.LittleEndian.PutUint32(h[24:], uid) // fuse_in_header.uid
	binary.LittleEndian.PutUint32(h[28:], uid)
	return vt.Buffers{In: [][]byte{h, a}, Out: []int{abi.OutHeaderSize}, Offset: off}
}

// TestLockWaitsPerUid: a guest uid's lock waits take at most its share of
// a queue's wait slots (an eighth), non-root waits leave an eighth to
// guest root, other guest uids and root still wait, and an unlock through
// SETLKW never takes a slot, even with every slot taken. Waits that end
// give their slots back to their uids.
func TestLockWaitsPerUid(t *testing.T) {
	const slots = 16 // a share of 2 per uid, 2 kept for root
	d := newDaemonOpts(t, virtiofs.Options{Tag: "l", RequestQueues: 1, BlockingHelpers: slots,
		Fuse: fuse.Options{Locks: true}})
	g := d.guest(vt.GuestConfig{})
	node, fh := session(t, g, "f")
	q := g.Queues[1]
	const eof = 1<<63 - 1
	call(t, q, lkReqAs(abi.OpSetlk, 0, node, fh, 1, unix.F_WRLCK, 0, eof, 0))
	type pending struct {
		b   vt.Buffers
		uid uint32
	}
	waiting := map[uint16]pending{}
	nextOwner := uint64(10)
	base := uint64(0) // where the waits' byte ranges start
	// try adds a lock request of uid on a byte range of its own, then a
	// GETATTR behind it, and reads completions up to the GETATTR's (the
	// queue serves in order, so a request answered at once completes
	// first); it returns the request's error, or 1 if it waits.
	try := func(uid, typ uint32) int32 {
		t.Helper()
		nextOwner++
		k := nextOwner
		req := lkReqAs(abi.OpSetlkw, uid, node, fh, k, typ, base+k, base+k, k*4096)
		head, err := q.Add(req)
		if err != nil {
			t.Fatal(err)
		}
		ga := getattrReq(node)
		ga.Offset = 2 << 20
		gh, err := q.Add(ga)
		if err != nil {
			t.Fatal(err)
		}
		q.Kick()
		got := int32(1)
		for {
			id, n, err := q.Wait()
			if err != nil {
				t.Fatalf("SETLKW by uid %d: %v", uid, err)
			}
			switch id {
			case head:
				out, _ := q.Reply(req, n)
				got = parseReply(t, out).hdr.Error
				continue
			case gh:
				out, _ := q.Reply(ga, n)
				if r := parseReply(t, out); r.hdr.Error != 0 {
					t.Fatalf("GETATTR behind uid %d's SETLKW: %v", uid, unix.Errno(-r.hdr.Error))
				}
			default:
				t.Fatalf("completion of head %d while lock waits are pending", id)
			}
			break
		}
		if got == 1 {
			waiting[head] = pending{req, uid}
		}
		return got
	}
	wait := func(uid uint32, want int32) {
		t.Helper()
		if got := try(uid, unix.F_WRLCK); got != want {
			t.Fatalf("lock wait by guest uid %d: %d, want %d (1: waits)", uid, got, want)
		}
	}
	enolck := -int32(unix.ENOLCK)
	wait(65534, 1)
	wait(65534, 1)
	wait(65534, enolck) // its share is 2
	for uid := uint32(1000); uid < 1006; uid++ {
		wait(uid, 1)
		wait(uid, 1)
	}
	wait(2000, enolck) // 14 = slots − reserve wait: no non-root uid waits more
	wait(0, 1)
	wait(0, 1)
	wait(0, enolck) // root too, with every slot taken
	// Unlocks through SETLKW are served all the same.
	for _, uid := range []uint32{65534, 0} {
		if got := try(uid, unix.F_UNLCK); got != 0 {
			t.Fatalf("unlock through SETLKW by guest uid %d with every slot taken: %d, want 0", uid, got)
		}
	}
	// The holder lets go: every wait is granted (each its own range)
	// and gives its slot back.
	call(t, q, lkReqAs(abi.OpSetlk, 0, node, fh, 1, unix.F_UNLCK, 0, eof, 0))
	for range slots {
		id, n, err := q.Wait()
		if err != nil {
			t.Fatalf("granting the waits: %v (%d left)", err, len(waiting))
		}
		p, ok := waiting[id]
		if !ok {
			t.Fatalf("completion of unknown head %d", id)
		}
		delete(waiting, id)
		out, _ := q.Reply(p.b, n)
		if r := parseReply(t, out); r.hdr.Error != 0 {
			t.Errorf("uid %d's wait after the unlock: %v, want granted", p.uid, unix.Errno(-r.hdr.Error))
		}
	}
	// uid 65534 has its share back: two more waits, no third (past the
	// ranges the granted waits hold).
	base = 1 << 20
	call(t, q, lkReqAs(abi.OpSetlk, 0, node, fh, 1, unix.F_WRLCK, base, eof, 0))
	wait(65534, 1)
	wait(65534, 1)
	wait(65534, enolck)
	if _, err := g.Stop(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		id, n, err := q.Wait()
		if err != nil {
			t.Fatal(err)
		}
		p, ok := waiting[id]
		if !ok {
			t.Fatalf("completion of unknown head %d", id)
		}
		out, _ := q.Reply(p.b, n)
		if r := parseReply(t, out); r.hdr.Error != -int32(unix.EINTR) {
			t.Errorf("lock wait after stop: error %d, want -EINTR", r.hdr.Error)
		}
	}
}

// TestLockWaitLongChainWaits: a SETLKW with a chain longer than a
// blocking slot's own 1 KiB copy (Linux never sends one; a guest may,
// with a well-formed request extension the engine skips) waits on a
// blocking slot with a copy of its own, never on the worker (where its
// wait would stall the queue: before bb28961 it fell through to the
// inline path; then it was refused with ENOLCK): a GETATTR on the same
// queue is answered meanwhile, and the holder's unlock grants it. An
// unlock so sent is served at once (it never waits). Three rounds on
// two blocking slots: a copy not given back would leave the third
// without one (ENOLCK).
func TestLockWaitLongChainWaits(t *testing.T) {
	d := newDaemonOpts(t, virtiofs.Options{Tag: "l", RequestQueues: 1, BlockingHelpers: 2, Fuse: fuse.Options{Locks: true}})
	g := d.guest(vt.GuestConfig{})
	g.Timeout = 3 * time.Second
	node, fh := session(t, g, "f")
	q := g.Queues[1]
	const eof = 1<<63 - 1
	long := func(typ uint32, off uint64) vt.Buffers {
		const extLen = 2048 // past the slot's 1 KiB
		b := lkReqAs(abi.OpSetlkw, 1000, node, fh, 2, typ, 0, eof, off)
		h := b.In[0]
		binary.LittleEndian.PutUint32(h[0:], uint32(abi.InHeaderSize+abi.LkInSize+extLen)) // len
		binary.LittleEndian.PutUint16(h[36:], extLen/8)                                    // total_extlen
		ext := make([]byte, extLen)
		(&abi.ExtHeader{Size: extLen, Type: 99}).Marshal(ext) // a type the engine skips
		b.In = append(b.In, ext)
		return b
	}
	for round := range 3 {
		call(t, q, lkReqAs(abi.OpSetlk, 0, node, fh, 1, unix.F_WRLCK, 0, eof, 0))
		lw := long(unix.F_WRLCK, 256<<10)
		head, err := q.Add(lw)
		if err != nil {
			t.Fatal(err)
		}
		q.Kick()
		time.Sleep(100 * time.Millisecond) // waiting for owner 1's lock
		ga := getattrReq(node)
		ga.Offset = 512 << 10
		if _, err := q.Submit(ga); err != nil {
			t.Fatalf("round %d: GETATTR while a long SETLKW waits: %v (answered first, or the worker waits)", round, err)
		}
		call(t, q, lkReqAs(abi.OpSetlk, 0, node, fh, 1, unix.F_UNLCK, 0, eof, 0))
		if r := completion(t, q, head, lw, "long SETLKW"); r.hdr.Error != 0 {
			t.Fatalf("round %d: long SETLKW once the holder unlocked: error %d, want 0", round, r.hdr.Error)
		}
		out, err := q.Submit(long(unix.F_UNLCK, 0))
		if err != nil {
			t.Fatal(err)
		}
		if r := parseReply(t, out); r.hdr.Error != 0 {
			t.Fatalf("round %d: long unlock: error %d, want 0 (unlocks never take a slot)", round, r.hdr.Error)
		}
	}
}
