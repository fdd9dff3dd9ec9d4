package fusedev

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/cpu"
	"golang.org/x/sys/unix"

	"github.com/fastfsd/fastfsd/dataplane"
	"github.com/fastfsd/fastfsd/dataplane/uring"
	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse"
	"github.com/fastfsd/fastfsd/fuse/abi"
	"github.com/fastfsd/fastfsd/internal/stats"
	"github.com/fastfsd/fastfsd/internal/sys"
	"github.com/fastfsd/fastfsd/splice"
)

// SpliceMode selects how request payloads move.
type SpliceMode int

const (
	// SpliceAuto splices when passthrough is off (large READ/WRITE
	// payloads reach the server) and uses read/writev when it is on (the
	// server then sees mostly small requests, where splice's extra system
	// call costs). See the package comment for the measurements.
	SpliceAuto SpliceMode = iota
	// SpliceOn splices READ data and WRITE payloads when the kernel offers
	// it in INIT (FUSE_SPLICE_READ/WRITE), falling back to read/writev
	// when not.
	SpliceOn
	// SpliceOff always uses read(2)/write(2) with user buffers.
	SpliceOff
)

// ServeOptions say how to serve a mounted connection.
type ServeOptions struct {
	// Workers is the number of workers, each with its own cloned /dev/fuse
	// fd, pinned one per CPU. 0: one per CPU the process may run on.
	Workers int
	// NoPin leaves workers on their own threads but unpinned.
	NoPin bool
	// MaxWrite is the max_write offered in INIT; buffers are sized for it.
	// 0: fuse.Options.MaxWrite, or DefaultMaxWrite.
	MaxWrite int
	// Splice selects the data path.
	Splice SpliceMode
	// Passthrough offers FUSE passthrough: the engine registers the files
	// the filesystem opens with fs.OpenPassthrough through this
	// connection (FUSE_DEV_IOC_BACKING_OPEN), and the kernel does their
	// I/O without the server.
	Passthrough bool
	// Debug, if set, logs every request and reply. Nil costs one branch
	// per request.
	Debug *log.Logger
	// Stats, if set, gets one stats.Worker per worker and per blocking
	// helper slot that counts every request with its service time. Nil
	// costs one branch per request.
	Stats *stats.Set
	// IOUring offers FUSE over io_uring (the kernel offers it when the fuse
	// module's enable_uring parameter was on when the filesystem was
	// mounted). When INIT agrees on it, dataplane/uring serves requests on
	// one ring per CPU queue, and the /dev/fuse workers keep serving what
	// still comes through the device: FORGET, INTERRUPT, and requests sent
	// before every queue registered. When INIT does not, Serve unmounts
	// and fails rather than serve on /dev/fuse what was asked for rings.
	IOUring bool
	// IOUringDepth is the number of ring entries per queue (0: 16). Half
	// of them may hold lock waits, a uid other than 0 an eighth of those
	// and non-root waits all but an eighth (dataplane.LockWaits); past
	// that a lock wait is refused with ENOLCK.
	IOUringDepth int
	// BlockingHelpers bounds the requests that may block (lock waits,
	// FSYNC, FALLOCATE, COPY_FILE_RANGE, SYNCFS) served at once off the
	// workers (0: DefaultBlockingHelpers). Past it a lock wait is refused
	// with ENOLCK and the others are served inline. A uid other than 0
	// waits for locks in at most an eighth of them, and non-root waits
	// leave an eighth to root; an unlock never takes one.
	BlockingHelpers int
}

// workerStats is one worker's counters, alone on its cache line(s) so
// workers never share one (cpu.CacheLinePad is the architecture's line;
// dataplane's TestCacheLinePad checks it against cpuid).
type workerStats struct {
	_        cpu.CacheLinePad
	requests atomic.Uint64 // requests read (written by the worker only)
	spliced  atomic.Uint64 // replies or payloads moved by splice
	_        cpu.CacheLinePad
}

// Stats are the counters of one worker.
type Stats struct {
	Requests uint64 // requests served
	Spliced  uint64 // requests whose data moved by splice
}

// WorkerStats returns each worker's counters (empty before Serve starts
// the workers).
func (c *Conn) WorkerStats() []Stats {
	c.mu.Lock()
	ws := c.workers
	c.mu.Unlock()
	out := make([]Stats, len(ws))
	for i, w := range ws {
		out[i] = Stats{Requests: w.requests.Load(), Spliced: w.spliced.Load()}
	}
	return out
}

// errStop ends a worker normally: the connection is gone (unmounted or
// aborted).
var errStop = errors.New("fusedev: connection ended")

// Serve serves fsys on the connection until the filesystem is unmounted
// (from outside, or by Unmount when ctx is cancelled) and returns nil then.
//
// It completes eng with what this transport does — MaxWrite (buffers are
// sized for it), SpliceRead/SpliceWrite for the splice path, Backing for
// passthrough (ServeOptions.Passthrough) — and makes the engine. It answers
// INIT on the calling goroutine, then starts the workers: worker 0 reads
// the mount's fd, every other worker a fd cloned from it
// (FUSE_DEV_IOC_CLONE), and each answers on the fd it read from. On a
// worker's fatal error it unmounts (aborting if busy), waits for the
// others and returns that error. Serve does not close the Conn.
func (c *Conn) Serve(ctx context.Context, fsys fs.FileSystem, eng fuse.Options, opts ServeOptions) error {
	if opts.MaxWrite <= 0 {
		opts.MaxWrite = eng.MaxWrite
	}
	if opts.MaxWrite <= 0 {
		opts.MaxWrite = DefaultMaxWrite
	}
	opts.Splice = opts.splice()
	c.mu.Lock()
	prep := c.prep
	c.mu.Unlock()
	if prep != nil && prep.workers != opts.Workers {
		return fmt.Errorf("serve %s: prepared for %d workers, asked to serve with %d; give Prepare and Serve the same options", c.mountpoint, prep.workers, opts.Workers)
	}
	if opts.Splice == SpliceOn {
		// A whole request (one page of header and arguments, max_write
		// of payload that may straddle one more page) must fit in a
		// pipe, and pipes are capped at pipe-max-size without
		// CAP_SYS_RESOURCE: shrink max_write to fit if need be.
		page := unix.Getpagesize()
		if p, err := splice.New(opts.MaxWrite + 2*page); err == nil {
			p.Close()
		} else if m, merr := pipeMaxSize(prep); merr == nil && m-2*page >= 4096 {
			opts.MaxWrite = min(opts.MaxWrite, m-2*page)
		} else {
			return fmt.Errorf("serve %s: %w (use --splice=off)", c.mountpoint, err)
		}
		eng.SpliceRead, eng.SpliceWrite = true, true
	}
	eng.MaxWrite = opts.MaxWrite
	eng.IOUring = eng.IOUring || opts.IOUring
	if opts.Passthrough {
		eng.Backing = backingFiles{c}
	}
	if opts.Debug != nil && eng.Logger == nil {
		eng.Logger = opts.Debug
	}
	srv := fuse.NewServer(fsys, eng)
	c.mu.Lock()
	c.server = srv
	c.mu.Unlock()
	return c.serve(ctx, srv, opts)
}

// splice resolves SpliceAuto.
func (o ServeOptions) splice() SpliceMode {
	if o.Splice == SpliceAuto && !o.Passthrough {
		// See the package comment for the measurements behind this.
		return SpliceOn
	}
	return o.Splice
}

// prepared is what Prepare opened and read ahead of Serve.
type prepared struct {
	workers int   // the ServeOptions.Workers it was made for
	cpus    []int // the workers' CPUs (dataplane.Topology.Plan)
	fds     []int // cloned fds of workers 1…, -1 once Serve took one
	pipeMax int   // /proc/sys/fs/pipe-max-size, 0 if splice is off
	queues  int   // io_uring queues the kernel expects, 0 if not asked
}

// close closes the cloned fds Serve has not taken.
func (p *prepared) close() {
	for i, fd := range p.fds {
		if fd >= 0 {
			unix.Close(fd)
			p.fds[i] = -1
		}
	}
}

// pipeMaxSize is the prepared pipe-max-size, or reads it.
func pipeMaxSize(p *prepared) (int, error) {
	if p != nil && p.pipeMax > 0 {
		return p.pipeMax, nil
	}
	return splice.MaxSize()
}

// Prepare opens and reads now what Serve would otherwise open and read
// outside the served directory — the CPU topology in /sys, one cloned
// /dev/fuse fd per worker, /dev/null and pipe-max-size for splice, the
// number of io_uring queues — so that Serve can run after the process has
// pivot_rooted into the served directory or restricted its file access
// with Landlock. Serve must then get the same ServeOptions. Close
// releases what Serve did not take.
func (c *Conn) Prepare(opts ServeOptions) error {
	p := &prepared{workers: opts.Workers}
	topo, err := dataplane.ReadTopology()
	if err != nil {
		return err
	}
	p.cpus = topo.Plan(opts.Workers)
	for i := 1; i < len(p.cpus); i++ {
		fd, err := cloneFd(c.fd)
		if err != nil {
			p.close()
			return fmt.Errorf("prepare %s: worker %d: %w", c.mountpoint, i, err)
		}
		p.fds = append(p.fds, fd)
	}
	if opts.splice() == SpliceOn {
		if err := splice.OpenDevNull(); err != nil {
			p.close()
			return fmt.Errorf("prepare %s: splice: open /dev/null: %w", c.mountpoint, err)
		}
		// Best effort, as in Serve: only needed if pipes must shrink.
		p.pipeMax, _ = splice.MaxSize()
	}
	if opts.IOUring {
		if p.queues, err = uring.QueueCount(); err != nil {
			p.close()
			return fmt.Errorf("prepare %s: --uring: %w", c.mountpoint, err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.prep != nil {
		c.prep.close()
	}
	c.prep = p
	return nil
}

func (c *Conn) serve(ctx context.Context, srv *fuse.Server, opts ServeOptions) error {
	bufSize := max(minReadBuffer, inHeaderSize+writeInSize+opts.MaxWrite)
	// What Prepare opened, if it ran; unused fds are closed on return.
	c.mu.Lock()
	prep := c.prep
	c.prep = nil
	c.mu.Unlock()
	if prep != nil {
		defer prep.close()
	}

	// Stop on cancel from here on, including while waiting for INIT.
	stopWatch := context.AfterFunc(ctx, func() { c.Unmount() })
	defer stopWatch()

	w0 := newWorker(c, srv, c.fd, 0, bufSize, opts.Debug)
	ini, err := w0.serveInit()
	if err != nil {
		if errors.Is(err, errStop) {
			return nil
		}
		c.Unmount()
		return err
	}
	if int(ini.maxWrite) > opts.MaxWrite {
		c.Unmount()
		return fmt.Errorf("serve %s: the engine agreed max_write %d but buffers are sized for %d; set the same MaxWrite in fuse.Options and fusedev.ServeOptions", c.mountpoint, ini.maxWrite, opts.MaxWrite)
	}
	if opts.IOUring && ini.kernelFlags&ini.replyFlags&uint64(abi.InitOverIoUring) == 0 {
		// Serving on /dev/fuse instead would be a flag accepted and
		// ignored: the user asked for the rings.
		c.Unmount()
		why := "the engine did not select it"
		if ini.kernelFlags&uint64(abi.InitOverIoUring) == 0 {
			why = "the kernel did not offer it (was the fuse module's enable_uring turned off before the mount? " + uring.EnableParam + ")"
		}
		return fmt.Errorf("serve %s: FUSE over io_uring asked for, but not agreed in INIT: %s; serve without it, or turn it on before mounting", c.mountpoint, why)
	}
	spliceRead, spliceWrite := false, false
	if opts.Splice == SpliceOn {
		// Offered by the kernel and selected by the engine.
		agreed := ini.kernelFlags & ini.replyFlags
		spliceRead = agreed&initSpliceRead != 0
		spliceWrite = agreed&initSpliceWrite != 0
	}

	var cpus []int
	if prep != nil {
		cpus = prep.cpus
	} else {
		topo, err := dataplane.ReadTopology()
		if err != nil {
			c.Unmount()
			return err
		}
		cpus = topo.Plan(opts.Workers)
	}
	ws := []*worker{w0}
	keepFds := false // a helper may still write to them
	defer func() {
		for _, w := range ws {
			if !keepFds {
				w.close()
			}
		}
	}()
	nh := opts.BlockingHelpers
	if nh <= 0 {
		nh = DefaultBlockingHelpers
	}
	pool := newHelperPool(srv, nh, bufSize, opts.Stats)
	// Runs before the fds close: whatever still waits (a lock nobody will
	// release, now that the mount is gone) is interrupted and answers.
	defer func() { keepFds = !pool.stop(2 * time.Second) }()
	w0.pool = pool
	for i := 1; i < len(cpus); i++ {
		var fd int
		if prep != nil {
			fd, prep.fds[i-1] = prep.fds[i-1], -1
		} else if fd, err = cloneFd(c.fd); err != nil {
			c.Unmount()
			return fmt.Errorf("serve %s: worker %d: %w", c.mountpoint, i, err)
		}
		w := newWorker(c, srv, fd, i, bufSize, opts.Debug)
		w.pool = pool
		ws = append(ws, w)
	}
	stats := make([]*workerStats, len(ws))
	for i, w := range ws {
		if spliceRead || spliceWrite {
			if err := w.setupSplice(bufSize, spliceRead, spliceWrite); err != nil {
				c.Unmount()
				return fmt.Errorf("serve %s: worker %d: %w (use --splice=off)", c.mountpoint, i, err)
			}
		}
		stats[i] = w.stats
		if opts.Stats != nil {
			w.obs = opts.Stats.NewWorker()
		}
	}
	c.mu.Lock()
	c.workers = stats
	c.mu.Unlock()

	running := make([]*dataplane.Worker, len(ws))
	for i, w := range ws {
		cpu := cpus[i]
		if opts.NoPin {
			cpu = -1
		}
		running[i] = dataplane.Start(cpu, w.loop)
	}
	// The first worker to end decides: a clean end (ENODEV) means the
	// others end the same way; an error means the rest must be stopped.
	var first error
	done := make(chan error, len(running)+1)
	for _, r := range running {
		go func() { done <- r.Wait() }()
	}
	waits := len(running)
	if ag, ok := srv.Agreed(); ok && ag.Flags&abi.InitOverIoUring != 0 {
		// The queues' end is the connection's end too (ENOTCONN or
		// ECANCELED on their entries): they report nil then.
		waits++
		go func() {
			cfg := uring.Config{Fd: c.fd, Server: srv, Depth: opts.IOUringDepth, Stats: opts.Stats}
			if prep != nil {
				cfg.Queues = prep.queues
			}
			err := uring.Serve(cfg)
			if err != nil {
				err = fmt.Errorf("serve %s: FUSE over io_uring: %w", c.mountpoint, err)
			}
			done <- err
		}()
		if opts.Debug != nil {
			opts.Debug.Printf("serve %s: FUSE over io_uring agreed; serving on io_uring queues", c.mountpoint)
		}
	}
	for range waits {
		err := <-done
		if err != nil && !errors.Is(err, errStop) && first == nil {
			first = err
			if uerr := c.Unmount(); uerr != nil {
				c.Abort()
			}
		}
	}
	return first
}

// cloneFd opens /dev/fuse and attaches it to the connection of fd.
func cloneFd(fd int) (int, error) {
	nfd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/fuse for a cloned fd: %w; raise the open file limit or use fewer --workers", err)
	}
	if e := sys.FuseDevClone(nfd, fd); e != 0 {
		unix.Close(nfd)
		return -1, fmt.Errorf("FUSE_DEV_IOC_CLONE: %w; this kernel cannot clone /dev/fuse fds, use --workers 1", e)
	}
	return nfd, nil
}

// worker is the state one worker owns: its fd, its engine Request and its
// buffers. Only the worker's goroutine touches it once loop runs.
type worker struct {
	c     *Conn
	srv   *fuse.Server
	fd    int
	id    int
	owned bool // fd is a clone this worker closes

	req   *fuse.Request
	buf   []byte   // receive buffer, bufSize bytes
	errb  [16]byte // header-only error replies the transport makes itself
	stats *workerStats
	debug *log.Logger
	obs   *stats.Worker // nil: no per-request timing
	pool  *helperPool   // requests that may block go there (nil while serving INIT)

	// Splice path (nil pipes: read/writev path).
	in          *splice.Pipe // requests from the device; then the reply to it
	data        *splice.Pipe // READ data before it joins the reply header
	spliceRead  bool
	spliceWrite bool
	sink        pipeSink
	src         pipeSource
}

func newWorker(c *Conn, srv *fuse.Server, fd, id, bufSize int, debug *log.Logger) *worker {
	w := &worker{c: c, srv: srv, fd: fd, id: id, owned: id != 0, debug: debug, stats: new(workerStats)}
	w.req = srv.NewRequest()
	w.buf = make([]byte, bufSize)
	return w
}

func (w *worker) close() {
	if w.in != nil {
		w.in.Close()
	}
	if w.data != nil {
		w.data.Close()
	}
	if w.owned {
		unix.Close(w.fd)
		w.owned = false
	}
}

// serveInit answers requests on w's fd until an INIT reply has been sent
// (the kernel sends nothing else before INIT is answered) and returns
// what it settled.
func (w *worker) serveInit() (initResult, error) {
	for {
		n, e := readDev(w.fd, w.buf)
		if e != 0 {
			if e == syscall.ENODEV || e == syscall.ECONNABORTED {
				return initResult{}, errStop
			}
			if e == syscall.EINTR || e == syscall.EAGAIN || e == syscall.ENOENT {
				continue
			}
			return initResult{}, fmt.Errorf("serve %s: read INIT from /dev/fuse: %w", w.c.mountpoint, e)
		}
		in := w.buf[:n]
		h, ok := readHdr(in)
		out, stop := w.serve(in)
		if stop {
			return initResult{}, errStop
		}
		if !ok || h.opcode != opInit || out < outHeaderSize {
			continue
		}
		reply := w.req.Out[:out]
		ini, ok := parseInit(in, reply)
		if errno := int32(binary.NativeEndian.Uint32(reply[4:])); errno != 0 {
			return initResult{}, fmt.Errorf("serve %s: the engine refused INIT with errno %d", w.c.mountpoint, -errno)
		}
		if !ok {
			return initResult{}, fmt.Errorf("serve %s: INIT reply of %d bytes is too short", w.c.mountpoint, out)
		}
		if ini.major != 7 {
			continue // the engine asked for a second INIT with its major
		}
		return ini, nil
	}
}

// readDev reads one request.
func readDev(fd int, buf []byte) (int, syscall.Errno) {
	n, err := unix.Read(fd, buf)
	if err != nil {
		if e, ok := err.(syscall.Errno); ok {
			return 0, e
		}
		return 0, syscall.EIO
	}
	return n, 0
}

// loop is the worker's run loop (read/writev or splice path). It returns
// errStop when the connection ends, another error when the device fails.
func (w *worker) loop() error {
	var sched dataplane.SchedPoint
	for {
		var n int
		var e syscall.Errno
		sched.BeforeBlock() // the last reply went out before this read
		if w.in != nil {
			n, e = w.in.SpliceFrom(w.fd, nil, len(w.buf))
		} else {
			n, e = readDev(w.fd, w.buf)
		}
		switch e {
		case 0:
		case syscall.EINTR, syscall.EAGAIN:
			continue
		case syscall.ENOENT:
			// The request was interrupted and ended while being read.
			continue
		case syscall.ENODEV, syscall.ECONNABORTED:
			return errStop
		default:
			return fmt.Errorf("serve %s: worker %d: read /dev/fuse: %w", w.c.mountpoint, w.id, e)
		}
		w.stats.requests.Add(1)
		var stop bool
		if w.in != nil {
			stop = w.serveSpliced(n)
		} else {
			_, stop = w.serve(w.buf[:n])
		}
		if stop {
			return errStop
		}
	}
}

// serve runs one request held in in (read/writev path) and writes its
// reply. It returns the reply length, and stop when the connection is
// gone.
func (w *worker) serve(in []byte) (int, bool) {
	r := w.req
	r.In, r.Src, r.Dst = in, nil, nil
	if w.debug != nil {
		w.logRequest(in)
	}
	if w.pool.offload(w, in) {
		return 0, false
	}
	n, handed := w.handleOrWait(r)
	if handed || n <= 0 {
		return n, false
	}
	return n, w.send(r.Out[:n])
}

// handleOrWait calls the engine on r (r.In read from w's fd). With
// helpers it serves r with NoWait, and a request the engine leaves
// unanswered because it would wait (Request.Retry) goes to a helper
// (helperPool.wait), whatever its size: handed reports that w is done
// with it. Retry implies NoWait, so only with helpers.
func (w *worker) handleOrWait(r *fuse.Request) (n int, handed bool) {
	r.NoWait = w.pool != nil
	n = w.handle(r)
	if n == 0 && r.Retry() {
		w.pool.wait(w, r.In)
		return 0, true
	}
	return n, false
}

// handle calls the engine (through observe when Stats are on).
func (w *worker) handle(r *fuse.Request) int {
	if w.obs != nil {
		return w.observe(r)
	}
	return w.call(r)
}

// observe times one request and counts it in w.obs.
func (w *worker) observe(r *fuse.Request) int {
	t0 := time.Now()
	n := w.call(r)
	d := time.Since(t0)
	observeReply(w.obs, r, n, d)
	return n
}

// observeReply counts in obs the request r whose reply (n bytes of r.Out)
// took d to make: its errno, and for READ and WRITE the bytes moved.
func observeReply(obs *stats.Worker, r *fuse.Request, n int, d time.Duration) {
	h, ok := readHdr(r.In)
	if !ok || (n == 0 && r.Retry()) {
		return // unanswered: served again (and counted) elsewhere
	}
	var errno uint32
	var bytes uint64
	if n >= outHeaderSize {
		ne := binary.NativeEndian
		errno = stats.FuseErrno(ne.Uint32(r.Out[4:]))
		switch {
		case errno != 0:
		case h.opcode == opRead:
			bytes = uint64(ne.Uint32(r.Out[0:]) - outHeaderSize)
		case h.opcode == opWrite && n >= outHeaderSize+4:
			bytes = uint64(ne.Uint32(r.Out[outHeaderSize:]))
		}
	}
	obs.Observe(h.opcode, errno, bytes, d)
}

// call calls the engine; a panic in it (a bug) becomes an EIO reply so
// the worker keeps serving. Returns the reply length in r.Out.
func (w *worker) call(r *fuse.Request) (n int) {
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(os.Stderr, "fastfsd: fusedev worker %d: engine panic (bug), replying EIO: %v\n", w.id, p)
			n = 0
			if h, ok := readHdr(r.In); ok && !noReply(h.opcode) && len(r.Out) >= outHeaderSize {
				putErrReply(r.Out, h.unique, int32(syscall.EIO))
				n = outHeaderSize
			}
		}
	}()
	return w.srv.Handle(r)
}

// send writes one reply. It returns true when the connection is gone.
func (w *worker) send(b []byte) bool {
	if w.debug != nil {
		w.logReply(b)
	}
	for {
		_, err := unix.Write(w.fd, b)
		switch err {
		case nil:
			return false
		case syscall.EINTR:
			continue
		case syscall.ENOENT:
			// The kernel no longer has the request (a FUSE_NOTIFY_RESEND
			// gave it a new unique, or the connection was aborted): the
			// references the reply carried never reached it.
			w.srv.NotDelivered(w.req, b)
			return false
		case syscall.ENODEV, syscall.ECONNABORTED:
			return true
		default:
			// The kernel refused the reply (EINVAL: a malformed reply,
			// an engine bug). The request would hang: answer EIO, and
			// give back what the refused reply carried.
			fmt.Fprintf(os.Stderr, "fastfsd: fusedev worker %d: reply of %d bytes refused: %v\n", w.id, len(b), err)
			w.srv.NotDelivered(w.req, b)
			if h, ok := readHdr(w.req.In); ok && len(b) != outHeaderSize {
				putErrReply(w.errb[:], h.unique, int32(syscall.EIO))
				b = w.errb[:]
				continue
			}
			return false
		}
	}
}

func (w *worker) logRequest(in []byte) {
	h, ok := readHdr(in)
	if !ok {
		w.debug.Printf("w%d <- short request (%d bytes)", w.id, len(in))
		return
	}
	w.debug.Printf("w%d <- unique=%d op=%v node=%d len=%d", w.id, h.unique, abi.Opcode(h.opcode), h.nodeid, h.len)
}

func (w *worker) logReply(b []byte) {
	if len(b) < outHeaderSize {
		return
	}
	ne := binary.NativeEndian
	w.debug.Printf("w%d -> unique=%d err=%d len=%d", w.id, ne.Uint64(b[8:]), int32(ne.Uint32(b[4:])), ne.Uint32(b[0:]))
}
