// Package vhostload drives a vhost-user-fs back-end (fastfsd virtiofs, the
// C virtiofsd, go-fuse's virtio-fs, any other) over its socket at full
// speed, with no VMM and no guest: vhostusertest plays QEMU and the guest's
// virtio-fs driver, and this package keeps a fixed number of FUSE requests
// of one kind in flight on each request queue. What it reports is what the
// back-end itself costs: requests per second and the back-end process's
// CPU time (utime+stime from /proc/PID/stat) per request, the figure a TCG
// guest's 140 µs round trip hides.
//
// The load generator runs on the same machine as the back-end and competes
// with it for CPUs; throughput is therefore a floor, and CPU per request the
// figure to compare.
package vhostload

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/dataplane"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/proccpu"
	"github.com/fastfsd/fastfsd/ring/ringtest"
	vt "github.com/fastfsd/fastfsd/vhostuser/vhostusertest"
)

// Kind is one request type of the mix.
type Kind int

const (
	Getattr       Kind = iota // GETATTR of a regular file
	Lookup                    // LOOKUP of a name in the root
	Read4K                    // READ of 4 KiB at a random aligned offset
	Read128K                  // READ of 128 KiB
	Read1M                    // READ of 1 MiB
	CreateRelease             // CREATE of a new name, RELEASE of its handle, FORGET of its node (one op)
	Readdirplus               // READDIRPLUS of 4 KiB from offset 0 of a directory
)

// Kinds is the fixed mix, in the order it is run and reported.
var Kinds = []Kind{Getattr, Lookup, Read4K, Read128K, Read1M, CreateRelease, Readdirplus}

func (k Kind) String() string {
	switch k {
	case Getattr:
		return "GETATTR"
	case Lookup:
		return "LOOKUP"
	case Read4K:
		return "READ 4K"
	case Read128K:
		return "READ 128K"
	case Read1M:
		return "READ 1M"
	case CreateRelease:
		return "CREATE+RELEASE+FORGET"
	case Readdirplus:
		return "READDIRPLUS"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

func (k Kind) readSize() uint32 {
	switch k {
	case Read4K:
		return 4 << 10
	case Read128K:
		return 128 << 10
	case Read1M:
		return 1 << 20
	}
	return 0
}

// Tree is what the back-end's shared directory must hold: a regular file
// of FileSize bytes named File and a directory named Dir with some
// entries. MakeTree creates one.
type Tree struct {
	File     string
	FileSize int64
	Dir      string
}

// DefaultTree is what MakeTree creates.
var DefaultTree = Tree{File: "data", FileSize: 64 << 20, Dir: "dir"}

// MakeTree creates DefaultTree in root: the data file and a directory of
// 64 small files.
func MakeTree(root string) (Tree, error) {
	t := DefaultTree
	f, err := os.Create(root + "/" + t.File)
	if err != nil {
		return t, err
	}
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i % 251)
	}
	for off := int64(0); off < t.FileSize; off += int64(len(chunk)) {
		if _, err := f.Write(chunk); err != nil {
			f.Close()
			return t, err
		}
	}
	if err := f.Close(); err != nil {
		return t, err
	}
	if err := os.Mkdir(root+"/"+t.Dir, 0o755); err != nil && !os.IsExist(err) {
		return t, err
	}
	for i := 0; i < 64; i++ {
		if err := os.WriteFile(fmt.Sprintf("%s/%s/entry-%02d", root, t.Dir, i), []byte("x"), 0o644); err != nil {
			return t, err
		}
	}
	return t, nil
}

// Config says how to drive one back-end connection.
type Config struct {
	Socket string // the back-end's vhost-user socket
	// Queues is how many request queues to set up (the hiprio queue comes
	// on top). A back-end that offers fewer fails Connect with ErrQueues.
	Queues int
	// Depth is how many requests each queue keeps in flight (default 8).
	Depth int
	Tree  Tree
	// Prefix starts CREATE names (a clock reading and counters follow).
	Prefix string
	// PID is the back-end process whose CPU time (its own and its
	// descendants') is measured (0: none).
	PID int
	// Gap is how long the front-end waits after a completion before it
	// sends that slot's next request (0: at once), sleeping as a guest's
	// idle vCPU does: with Depth 1 it paces the queue as a guest that
	// thinks between requests, so that the back-end's cost of waiting
	// for each one (its sleeps, wake-ups and any polling) is measured too.
	Gap time.Duration
}

// ErrQueues: the back-end offers fewer request queues than asked for.
var ErrQueues = errors.New("vhostload: too few request queues")

// Result is one kind measured on one session.
type Result struct {
	Kind   Kind
	Queues int
	Ops    uint64 // completed operations (CREATE, RELEASE and FORGET of one file are one)
	Errors uint64 // replies with an error or a short READ
	// FirstError describes the first failed reply, if any.
	FirstError string
	Wall       time.Duration
	CPU        time.Duration // back-end utime+stime over the run, descendants included (0 without PID)
}

// PerSec is operations per second of wall time.
func (r Result) PerSec() float64 {
	if r.Wall <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Wall.Seconds()
}

// CPUPerOp is the back-end's CPU time per operation.
func (r Result) CPUPerOp() time.Duration {
	if r.Ops == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Ops)
}

// Session is one connection to a back-end, set up and FUSE-initialised.
type Session struct {
	cfg    Config
	f      *vt.Frontend
	g      *vt.Guest
	file   uint64 // node of Tree.File
	dir    uint64 // node of Tree.Dir
	fileFh []uint64
	dirFh  [][]uint64 // per queue, per slot
	// runs makes CREATE names differ between Run calls of the session.
	runs int
}

// slot layout inside a queue's data area: the request at 0, the reply
// header at slotReply, the reply payload right after it.
const (
	slotReply = 4096
	slotSize  = slotReply + 16 + 1<<20 + 4096
)

// Connect dials the socket (retrying for up to 10 s while the back-end
// starts), runs the VMM's start sequence, FUSE INIT, and opens what the
// mix needs.
func Connect(cfg Config) (*Session, error) {
	if cfg.Depth <= 0 {
		cfg.Depth = 8
	}
	if cfg.Queues <= 0 {
		cfg.Queues = 1
	}
	var f *vt.Frontend
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		if f, err = vt.Dial(cfg.Socket); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("vhostload: dial %s: %w", cfg.Socket, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	g, err := vt.NewGuest(f, vt.GuestConfig{Queues: 1 + cfg.Queues, Size: 256, DataLen: uint64(cfg.Depth) * slotSize, AddMemReg: true})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("vhostload: vhost-user start sequence: %w", err)
	}
	s := &Session{cfg: cfg, f: f, g: g}
	if n := len(g.Queues) - 1; n < cfg.Queues {
		s.Close()
		return nil, fmt.Errorf("%w: the back-end offers %d, %d asked", ErrQueues, n, cfg.Queues)
	}
	if err := s.setup(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close stops the queues (GET_VRING_BASE, as QEMU at VM stop) and closes
// the connection; a virtiofsd-like back-end then exits.
func (s *Session) Close() error {
	_, err := s.g.Stop()
	s.g.Close()
	s.f.Close()
	return err
}

// call submits one request on queue q (slot 0) and waits for its reply:
// for set-up only.
func (s *Session) call(q int, op abi.Opcode, node uint64, args []byte, outLen int) ([]byte, error) {
	gq := s.g.Queues[q]
	req := make([]byte, abi.InHeaderSize+len(args))
	(&abi.InHeader{Len: uint32(len(req)), Opcode: op, Unique: 1, NodeID: node, PID: 1}).Marshal(req)
	copy(req[abi.InHeaderSize:], args)
	out, err := gq.Submit(vt.Buffers{In: [][]byte{req}, Out: []int{16, outLen}})
	if err != nil {
		return nil, fmt.Errorf("vhostload: %v: %w", op, err)
	}
	var oh abi.OutHeader
	if !oh.Unmarshal(out) {
		return nil, fmt.Errorf("vhostload: %v: reply of %d bytes", op, len(out))
	}
	if oh.Error != 0 {
		return nil, fmt.Errorf("vhostload: %v: %w", op, unix.Errno(-oh.Error))
	}
	return out[16:], nil
}

func cstr(s string) []byte { return append([]byte(s), 0) }

func (s *Session) setup() error {
	in := abi.InitIn{Major: 7, Minor: abi.KernelMinorVersion, MaxReadahead: 1 << 20,
		Flags: uint32(abi.InitMaxPages | abi.InitBigWrites | abi.InitDoReaddirplus | abi.InitAsyncRead | abi.InitParallelDirops)}
	a := make([]byte, abi.InitInSize)
	in.Marshal(a)
	if _, err := s.call(1, abi.OpInit, 0, a, abi.InitOutSize); err != nil {
		return err
	}
	lookup := func(name string) (uint64, error) {
		out, err := s.call(1, abi.OpLookup, 1, cstr(name), abi.EntryOutSize)
		if err != nil {
			return 0, err
		}
		var e abi.EntryOut
		if !e.Unmarshal(out) || e.NodeID == 0 {
			return 0, fmt.Errorf("vhostload: LOOKUP %s: no entry in the reply", name)
		}
		return e.NodeID, nil
	}
	var err error
	if s.file, err = lookup(s.cfg.Tree.File); err != nil {
		return err
	}
	if s.dir, err = lookup(s.cfg.Tree.Dir); err != nil {
		return err
	}
	open := func(op abi.Opcode, node uint64) (uint64, error) {
		a := make([]byte, abi.OpenInSize)
		(&abi.OpenIn{Flags: unix.O_RDONLY}).Marshal(a)
		out, err := s.call(1, op, node, a, abi.OpenOutSize)
		if err != nil {
			return 0, err
		}
		var o abi.OpenOut
		if !o.Unmarshal(out) {
			return 0, fmt.Errorf("vhostload: %v: short reply", op)
		}
		return o.Fh, nil
	}
	for q := 0; q < s.cfg.Queues; q++ {
		fh, err := open(abi.OpOpen, s.file)
		if err != nil {
			return err
		}
		s.fileFh = append(s.fileFh, fh)
		var dfh []uint64
		for i := 0; i < s.cfg.Depth; i++ {
			fh, err := open(abi.OpOpendir, s.dir)
			if err != nil {
				return err
			}
			dfh = append(dfh, fh)
		}
		s.dirFh = append(s.dirFh, dfh)
	}
	return nil
}

// Run keeps Depth requests of kind in flight on every queue for d, or
// until each queue completed maxOps operations (0: no limit), and
// returns what was measured.
func (s *Session) Run(kind Kind, d time.Duration, maxOps int) (Result, error) {
	r := Result{Kind: kind, Queues: s.cfg.Queues}
	var cpu0 time.Duration
	if s.cfg.PID != 0 {
		var err error
		if cpu0, err = proccpu.TreeCPU(s.cfg.PID); err != nil {
			return r, err
		}
	}
	s.runs++
	start := time.Now()
	deadline := start.Add(d)
	res := make([]qresult, s.cfg.Queues)
	var wg sync.WaitGroup
	for q := 0; q < s.cfg.Queues; q++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[q] = s.runQueue(q, kind, deadline, maxOps)
		}()
	}
	wg.Wait()
	r.Wall = time.Since(start)
	if s.cfg.PID != 0 {
		cpu1, err := proccpu.TreeCPU(s.cfg.PID)
		if err != nil {
			return r, err
		}
		r.CPU = cpu1 - cpu0
	}
	for _, q := range res {
		if q.err != nil {
			return r, q.err
		}
		r.Ops += q.ops
		r.Errors += q.errors
		if r.FirstError == "" {
			r.FirstError = q.firstError
		}
	}
	return r, nil
}

type qresult struct {
	ops, errors uint64
	firstError  string
	err         error // the queue broke (no completion, bad used id)
}

// slot is one request in flight.
type slot struct {
	index int
	off   uint64 // in the queue's data area
	head  uint16
	stage int    // CreateRelease: 0 CREATE, 1 RELEASE, 2 FORGET in flight
	node  uint64 // CreateRelease: the node the CREATE made
	fh    uint64 // and its handle, for the RELEASE
	want  uint32
}

func (s *Session) runQueue(q int, kind Kind, deadline time.Time, maxOps int) qresult {
	gq := s.g.Queues[1+q]
	var res qresult
	slots := make([]*slot, s.cfg.Depth)
	byHead := map[uint16]*slot{}
	unique := uint64(q+1) << 48
	rng := rand.New(rand.NewPCG(uint64(q), uint64(time.Now().UnixNano())))
	tag := fmt.Sprintf("%s-%x-%d-q%d", s.cfg.Prefix, time.Now().UnixNano(), s.runs, q)
	var bufs [3]ringtest.Buf
	submit := func(sl *slot) error {
		unique++
		m := gq.Mem(gq.Data+sl.off, slotReply)
		h := abi.InHeader{Opcode: abi.OpGetattr, Unique: unique, PID: 1}
		var n, out int
		switch {
		case kind == Getattr:
			h.NodeID = s.file
			(&abi.GetattrIn{}).Marshal(m[abi.InHeaderSize:])
			n, out = abi.GetattrInSize, abi.AttrOutSize
		case kind == Lookup:
			h.Opcode, h.NodeID = abi.OpLookup, 1
			n = copy(m[abi.InHeaderSize:], cstr(s.cfg.Tree.File))
			out = abi.EntryOutSize
		case kind.readSize() != 0:
			size := kind.readSize()
			h.Opcode, h.NodeID = abi.OpRead, s.file
			off := uint64(rng.Int64N(s.cfg.Tree.FileSize/int64(size))) * uint64(size)
			(&abi.ReadIn{Fh: s.fileFh[q], Offset: off, Size: size, Flags: unix.O_RDONLY}).Marshal(m[abi.InHeaderSize:])
			n, out = abi.ReadInSize, int(size)
			sl.want = size
		case kind == CreateRelease && sl.stage == 1:
			h.Opcode, h.NodeID = abi.OpRelease, sl.node
			(&abi.ReleaseIn{Fh: sl.fh, Flags: unix.O_RDWR}).Marshal(m[abi.InHeaderSize:])
			n, out = abi.ReleaseInSize, 0
		case kind == CreateRelease && sl.stage == 2:
			// As a guest does when it evicts the inode; without it every
			// created file would keep an fd in the back-end until it runs
			// out. No reply: the device returns the chain empty.
			h.Opcode, h.NodeID = abi.OpForget, sl.node
			(&abi.ForgetIn{Nlookup: 1}).Marshal(m[abi.InHeaderSize:])
			n, out = abi.ForgetInSize, -1
		case kind == CreateRelease:
			h.Opcode, h.NodeID = abi.OpCreate, 1
			(&abi.CreateIn{Flags: unix.O_RDWR | unix.O_CREAT | unix.O_EXCL, Mode: unix.S_IFREG | 0o644}).Marshal(m[abi.InHeaderSize:])
			name := cstr(fmt.Sprintf("%s-%d", tag, unique))
			n = abi.CreateInSize + copy(m[abi.InHeaderSize+abi.CreateInSize:], name)
			out = abi.EntryOutSize + abi.OpenOutSize
		case kind == Readdirplus:
			h.Opcode, h.NodeID = abi.OpReaddirplus, s.dir
			(&abi.ReadIn{Fh: s.dirFh[q][sl.index], Size: 4096}).Marshal(m[abi.InHeaderSize:])
			n, out = abi.ReadInSize, 4096
		}
		h.Len = uint32(abi.InHeaderSize + n)
		h.Marshal(m)
		base := gq.Data + sl.off
		// Request, reply header and reply payload as separate
		// descriptors, as the Linux driver lays them out.
		bufs[0] = ringtest.Buf{Addr: base, Len: h.Len}
		bufs[1] = ringtest.Buf{Addr: base + slotReply, Len: 16, Write: true}
		bufs[2] = ringtest.Buf{Addr: base + slotReply + 16, Len: uint32(out), Write: true}
		nb := 3
		switch {
		case out == 0:
			nb = 2 // reply header only
		case out < 0:
			nb = 1 // no reply at all
		}
		head, err := gq.D.Add(bufs[:nb])
		if err != nil {
			return err
		}
		sl.head = head
		byHead[head] = sl
		return nil
	}
	for i := range slots {
		slots[i] = &slot{index: i, off: uint64(i) * slotSize}
		if err := submit(slots[i]); err != nil {
			res.err = err
			return res
		}
	}
	gq.Kick()
	inflight := len(slots)
	stopping := false
	var sched dataplane.SchedPoint
	for inflight > 0 {
		// Through the Go scheduler now and then, as the back-end's
		// workers do (dataplane.SchedPoint says why): without it the
		// runtime's monitor keeps taking this goroutine's P at each
		// sleep, and the load generator burns CPU the back-end is
		// measured beside (a quarter of a CPU with -depth 1 -gap 100us),
		// which a VMM does not.
		sched.BeforeBlock()
		id, n, err := gq.Wait()
		if err != nil {
			res.err = fmt.Errorf("vhostload: queue %d, %v: %w", q+1, kind, err)
			return res
		}
		sl := byHead[id]
		if sl == nil {
			res.err = fmt.Errorf("vhostload: queue %d: used id %d was not in flight", q+1, id)
			return res
		}
		delete(byHead, id)
		inflight--
		var oh abi.OutHeader
		if kind == CreateRelease && sl.stage == 2 {
			oh = abi.OutHeader{} // FORGET: nothing written back
		} else {
			oh.Unmarshal(gq.Mem(gq.Data+sl.off+slotReply, 16))
		}
		done := true
		switch {
		case oh.Error != 0:
			res.errors++
			if res.firstError == "" {
				res.firstError = fmt.Sprintf("%v: %v", kind, unix.Errno(-oh.Error))
			}
			sl.stage = 0
		case sl.want != 0 && n < 16+sl.want:
			res.errors++
			if res.firstError == "" {
				res.firstError = fmt.Sprintf("%v: short read, %d of %d bytes", kind, int(n)-16, sl.want)
			}
		case kind == CreateRelease && sl.stage == 0:
			var e abi.EntryOut
			var o abi.OpenOut
			e.Unmarshal(gq.Mem(gq.Data+sl.off+slotReply+16, abi.EntryOutSize))
			o.Unmarshal(gq.Mem(gq.Data+sl.off+slotReply+16+abi.EntryOutSize, abi.OpenOutSize))
			sl.node, sl.fh = e.NodeID, o.Fh
			sl.stage, done = 1, false
		case kind == CreateRelease && sl.stage == 1:
			sl.stage, done = 2, false
		case kind == CreateRelease:
			sl.stage = 0 // FORGET done: the file's round is complete
		}
		if done {
			res.ops++
			if time.Now().After(deadline) || (maxOps > 0 && res.ops >= uint64(maxOps)) {
				stopping = true
			}
		}
		if stopping && done {
			continue
		}
		if s.cfg.Gap > 0 {
			// nanosleep, not time.Sleep: the runtime's timers wake
			// through epoll_pwait, whose timeout is in milliseconds.
			ts := unix.NsecToTimespec(s.cfg.Gap.Nanoseconds())
			unix.Nanosleep(&ts, nil)
		}
		if err := submit(sl); err != nil {
			res.err = err
			return res
		}
		inflight++
		gq.Kick()
	}
	return res
}
