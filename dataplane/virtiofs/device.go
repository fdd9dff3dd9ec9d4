package virtiofs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/fastfsd/fastfsd/internal/stats"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fastfsd/fastfsd/dataplane"
	"github.com/fastfsd/fastfsd/dax"
	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/ring"
	"github.com/fastfsd/fastfsd/vhostuser"
	"golang.org/x/sys/unix"
)

// TagSize is the size of the tag field in the config space.
const TagSize = 36

// ConfigSize is the size of struct virtio_fs_config without the
// notification field (Linux uapi virtio_fs.h): tag[36], le32
// num_request_queues.
const ConfigSize = TagSize + 4

// Options configure a Device.
type Options struct {
	// Tag is the mount tag the guest mounts by (1 to 36 bytes).
	Tag string
	// RequestQueues is the number of request queues (≥ 1; default 1). The
	// device has one more, the hiprio queue 0.
	RequestQueues int
	// MaxQueueSize is the largest ring size accepted (default and maximum
	// ring.MaxSize).
	MaxQueueSize int
	// Fuse are the engine options; a new engine is made per driver session.
	Fuse fuse.Options
	// CPUs pins queue i's worker to CPUs[i % len(CPUs)]; nil: workers are
	// locked to their own threads but not pinned.
	CPUs []int
	// BusyPoll keeps a worker polling its ring this long after it ran dry
	// before it sleeps on the kick eventfd (0: sleep at once). While it
	// polls, the driver is not asked to kick.
	BusyPoll time.Duration
	// AdaptivePoll, without BusyPoll, lets each worker poll its ring
	// after it ran dry for a window it sizes from the gaps it sees
	// between a dry ring and the next request, from 0 up to this maximum
	// (0: off): a guest that asks again within the window finds the
	// worker awake, at no kick and no wake-up, and one that does not
	// shrinks the window back to nothing. QEMU polls its I/O threads'
	// event loops so by default, up to 32 µs; fastfsd up to 64 µs
	// (DefaultAdaptivePoll).
	// New refuses both BusyPoll and AdaptivePoll set, or either negative.
	AdaptivePoll time.Duration
	// spinPerRequest replaces the package's spinPerRequest (tests only:
	// export_test.go).
	spinPerRequest time.Duration
	// Helpers is the number of helper goroutines per queue that serve
	// requests which may block for long (SETLKW, FSYNC, FALLOCATE,
	// COPY_FILE_RANGE, SYNCFS) and READ/WRITE of 64 KiB or more, so
	// several run at once on one queue; 0 serves everything inline on the
	// queue's worker, except what BlockingHelpers takes.
	Helpers int
	// BlockingHelpers is the number of small slots per queue, each with
	// a helper goroutine, that serve requests which may block (lock
	// waits above all) off the worker whatever Helpers says (0:
	// DefaultBlockingHelpers). With all busy (and no Helpers slot free)
	// a lock wait is refused with ENOLCK, and so is one of a guest uid
	// other than 0 past an eighth of the slots a lock wait may take
	// (BlockingHelpers + Helpers) or once all but an eighth of them wait,
	// kept for guest root (dataplane.LockWaits). An unlock never takes a
	// slot.
	BlockingHelpers int
	// Log gets session events and dropped requests; nil: slog.Default().
	Log *slog.Logger
	// Stats, if set, gets a stats.Worker per worker and helper slot that
	// counts every request with its service time (--metrics). Nil costs one
	// branch per request.
	Stats *stats.Set
}

// DefaultBlockingHelpers is the default Options.BlockingHelpers: lock
// waits (and other blocking requests) a queue holds at once. Each holds
// one descriptor chain, a slot of about 50 KiB (a chain and an iovec
// array of ring.MaxBuffers entries) and, while it waits, an OS thread.
const DefaultBlockingHelpers = 32

// Device is the virtio-fs device: a vhostuser.Device serving an
// fs.FileSystem through the FUSE engine. Queue 0 is hiprio, queues 1..N
// carry requests; each started queue has one worker of its own.
type Device struct {
	fsys   fs.FileSystem
	opts   Options
	log    *slog.Logger
	config [ConfigSize]byte

	// sess is the current FUSE session. Replaced (under mu) by Reset and
	// by a worker that receives INIT for an initialised session (a guest
	// that rebooted without the device being reset: "a new FUSE_INIT
	// terminates the session"). Workers load it once per request.
	sess atomic.Pointer[session]
	// channel is the back-end request channel (SetChannel).
	channel atomic.Pointer[vhostuser.Channel]
	// dax is the DAX window, nil without one (set once by EnableDAX, dax.go).
	dax *dax.Window

	// mu serialises session changes and guards workers. vhostuser calls
	// Start/Stop/Reset from one goroutine.
	mu      sync.Mutex
	workers []*worker // by queue index; nil when stopped

	// faults counts guest memory faults survived (fault.go); it
	// rate-limits their log.
	faults atomic.Uint64
}

// session is one FUSE session: the engine that saw its INIT.
type session struct {
	srv *fuse.Server
	// destroyed is set by a worker that served DESTROY in this session.
	destroyed atomic.Bool
}

// DefaultAdaptivePoll is the largest adaptive poll window fastfsd
// virtiofs uses unless told otherwise (Options.AdaptivePoll): twice
// QEMU's default poll-max-ns for its I/O threads (32 µs), because a
// driver that keeps several requests in flight answers a batch of
// completions later than 32 µs on this 2-vCPU machine (its wake-up alone
// costs ~10–20 µs; not timed directly, but 64 µs catches what 32 µs
// missed): with 64 µs (and spinPerRequest
// 8 µs) fastfs-backendbench's 1-queue GETATTRs at 8 in flight went 3.79×
// per second at 1.94× less CPU per request, LOOKUPs 2.40×, 4 KiB READs
// 1.28×, creates 1.26× (5 alternated rounds, docs/backend-bench.md's
// table), one request at a time did not move (0.95–1.06×), and 2 queues
// moved by 0.90–1.03× (4 KiB READs 0.90, within those rows' 2× spread
// between rounds on 2 vCPUs).
const DefaultAdaptivePoll = 64 * time.Microsecond

// New returns a device serving fsys.
func New(fsys fs.FileSystem, opts Options) (*Device, error) {
	if opts.Tag == "" || len(opts.Tag) > TagSize {
		return nil, fmt.Errorf("virtiofs: tag %q: must be 1 to %d bytes", opts.Tag, TagSize)
	}
	if opts.RequestQueues == 0 {
		opts.RequestQueues = 1
	}
	if opts.RequestQueues < 1 || opts.RequestQueues > 254 {
		return nil, fmt.Errorf("virtiofs: %d request queues: must be 1 to 254", opts.RequestQueues)
	}
	if opts.MaxQueueSize == 0 || opts.MaxQueueSize > ring.MaxSize {
		opts.MaxQueueSize = ring.MaxSize
	}
	if opts.MaxQueueSize&(opts.MaxQueueSize-1) != 0 {
		return nil, fmt.Errorf("virtiofs: max queue size %d is not a power of two", opts.MaxQueueSize)
	}
	if opts.BusyPoll < 0 || opts.AdaptivePoll < 0 || opts.BusyPoll > 0 && opts.AdaptivePoll > 0 {
		return nil, fmt.Errorf("virtiofs: busy poll %v and adaptive poll %v: set at most one, neither negative", opts.BusyPoll, opts.AdaptivePoll)
	}
	d := &Device{fsys: fsys, opts: opts, log: opts.Log}
	if d.log == nil {
		d.log = slog.Default()
	}
	copy(d.config[:TagSize], opts.Tag)
	binary.LittleEndian.PutUint32(d.config[TagSize:], uint32(opts.RequestQueues))
	d.workers = make([]*worker, 1+opts.RequestQueues)
	d.sess.Store(&session{srv: fuse.NewServer(fsys, opts.Fuse)})
	return d, nil
}

var _ vhostuser.Device = (*Device)(nil)

// Features offers VERSION_1 (virtio-fs is modern-only), EVENT_IDX and
// INDIRECT_DESC, all three implemented by package ring.
func (d *Device) Features() uint64 {
	return ring.FeatureVersion1 | ring.FeatureEventIdx | ring.FeatureIndirectDesc
}

// QueueCount is hiprio + the request queues.
func (d *Device) QueueCount() int { return len(d.workers) }

// MaxQueueSize is Options.MaxQueueSize.
func (d *Device) MaxQueueSize() int { return d.opts.MaxQueueSize }

// Config is struct virtio_fs_config.
func (d *Device) Config() []byte { return d.config[:] }

// StartQueue builds the ring over guest memory and starts its worker.
func (d *Device) StartQueue(q *vhostuser.Queue) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if q.Index < 0 || q.Index >= len(d.workers) || d.workers[q.Index] != nil {
		return fmt.Errorf("virtiofs: queue %d: bad index or already running", q.Index)
	}
	rq, err := ring.New(q.Memory.Table(), ring.Config{
		Size: uint32(q.Size), Desc: q.Desc, Avail: q.Avail, Used: q.Used,
		Features: q.Features, Base: q.NextAvail,
	})
	if err != nil {
		return fmt.Errorf("virtiofs: queue %d: %w", q.Index, err)
	}
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("virtiofs: queue %d: eventfd: %w", q.Index, err)
	}
	w, err := newWorker(d, q, rq, stop)
	if err != nil {
		unix.Close(stop)
		return fmt.Errorf("virtiofs: queue %d: %w", q.Index, err)
	}
	cpu := -1
	if len(d.opts.CPUs) > 0 {
		cpu = d.opts.CPUs[q.Index%len(d.opts.CPUs)]
	}
	w.dw = dataplane.Start(cpu, w.run)
	d.workers[q.Index] = w
	return nil
}

// StopQueue stops the worker and returns the ring's next avail index. The
// worker finishes the request it is serving (requests run to completion),
// so none is in flight when it returns.
func (d *Device) StopQueue(index int) uint16 {
	d.mu.Lock()
	w := d.workers[index]
	d.workers[index] = nil
	d.mu.Unlock()
	if w == nil {
		return 0
	}
	var one [8]byte
	binary.LittleEndian.PutUint64(one[:], 1)
	w.stopping.Store(true)
	signal(w.stop, &one)
	if err := w.dw.Wait(); err != nil && err != errStopped {
		d.log.Warn("virtiofs: queue worker failed", "queue", index, "err", err)
	}
	unix.Close(w.stop)
	w.close()
	// The worker has ended (Wait): its counter is stable. One line per
	// stopped queue shows how the guest spread its requests.
	d.log.Info("virtiofs: queue stopped", "queue", index, "requests", w.served)
	return w.q.Base()
}

// Reset ends the FUSE session: the next driver (a rebooted guest) starts
// with INIT on a fresh engine.
func (d *Device) Reset() {
	d.resetDAX()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.newSessionLocked()
}

// newSession replaces the session if it is still old (the one the caller
// saw), so two INITs racing on two queues make one new session.
func (d *Device) newSession(old *session) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.sess.Load() == old {
		d.newSessionLocked()
	}
}

// newSessionLocked makes a fresh engine. If the old session was initialised
// and never sent DESTROY, the filesystem is told now, so it drops that
// session's inodes and handles (fs/passthrough supports being reused after
// Destroy, as a virtio-fs device must).
//
// Preconditions: d.mu is held.
func (d *Device) newSessionLocked() {
	old := d.sess.Load()
	if _, ok := old.srv.Agreed(); ok && !old.destroyed.Load() {
		d.fsys.Destroy()
	}
	d.sess.Store(&session{srv: fuse.NewServer(d.fsys, d.opts.Fuse)})
}

// errStopped ends a worker normally.
var errStopped = errors.New("virtiofs: queue stopped")

// SetChannel keeps the vhost-user back-end request channel (set when the
// front-end sends SET_BACKEND_REQ_FD, nil when it goes away). A DAX
// window (dax.go) maps and unmaps through it.
func (d *Device) SetChannel(c *vhostuser.Channel) { d.channel.Store(c); d.setDAXChannel(c) }

// Channel returns the back-end request channel, or nil.
func (d *Device) Channel() *vhostuser.Channel { return d.channel.Load() }

var _ vhostuser.ChannelUser = (*Device)(nil)
