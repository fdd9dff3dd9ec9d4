package fuse

import (
	"syscall"

	"github.com/fastfsd/fastfsd/fs"
	"github.com/fastfsd/fastfsd/fuse/abi"
)

// Agreement is what INIT settled between the kernel and the engine.
type Agreement struct {
	Major, Minor uint32
	// Flags are the capabilities in effect: offered by the kernel and
	// chosen by the engine (InitExt included when the kernel sent it).
	Flags abi.InitFlags
	// KernelFlags are all the kernel offered.
	KernelFlags abi.InitFlags
	// MaxWrite is the largest WRITE payload the kernel will send; MaxPages
	// bounds READ and READDIR sizes (MaxPages × page size).
	MaxWrite            uint32
	MaxPages            uint16
	MaxReadahead        uint32
	MaxBackground       uint16
	CongestionThreshold uint16
	TimeGran            uint32
	MapAlignment        uint16 // with MAP_ALIGNMENT
	MaxStackDepth       uint32 // with PASSTHROUGH
}

// Agreed returns what INIT agreed on and true, or false before INIT has
// succeeded. Safe to call from any goroutine.
func (s *Server) Agreed() (Agreement, bool) {
	a := s.agreed.Load()
	if a == nil {
		return Agreement{}, false
	}
	return *a, true
}

// wantFlags is every capability the engine would take: only what it, the
// filesystem (through Options) and the transport honour. Never
// FUSE_ALLOW_IDMAP (uid/gid would go missing from requests) nor DONT_MASK
// (the kernel applies the umask).
func (s *Server) wantFlags() abi.InitFlags {
	o := &s.opts
	f := abi.InitAsyncRead | abi.InitAtomicOTrunc | abi.InitBigWrites |
		abi.InitAutoInvalData | abi.InitDoReaddirplus | abi.InitReaddirplusAuto |
		abi.InitAsyncDIO | abi.InitParallelDirops | abi.InitMaxPages |
		abi.InitCacheSymlinks | abi.InitSetxattrExt | abi.InitExt |
		// The parent's group with creating requests, when the caller is
		// in it through a supplementary group (fs.Context.SuppGid).
		abi.InitCreateSuppGroup |
		// Shared writable mmap of files opened with fs.OpenDirectIO
		// (cache=never): the kernel then uses the page cache for the
		// mapping and fills and writes it back with ordinary READ and
		// WRITE requests; nothing more is asked of the server.
		abi.InitDirectIOAllowMmap
	if !o.NoKillPrivV2 {
		f |= abi.InitHandleKillprivV2
	}
	if o.PosixACL {
		f |= abi.InitPosixACL
	}
	if o.SecurityLabel {
		f |= abi.InitSecurityCtx
	}
	if o.NoReaddirplus {
		f &^= abi.InitDoReaddirplus | abi.InitReaddirplusAuto
	}
	if o.Locks {
		f |= abi.InitPosixLocks | abi.InitFlockLocks
	}
	if o.SpliceRead {
		f |= abi.InitSpliceRead
	}
	if o.SpliceWrite {
		f |= abi.InitSpliceWrite
	}
	if o.SpliceMove {
		f |= abi.InitSpliceMove
	}
	if o.Writeback {
		f |= abi.InitWritebackCache
	}
	if o.Backing != nil && !o.Writeback {
		f |= abi.InitPassthrough
	}
	if o.DAX != nil {
		f |= abi.InitMapAlignment
	}
	if o.IOUring {
		f |= abi.InitOverIoUring
	}
	return f
}

// secctxExtMinor is the first protocol minor whose security contexts
// are request extensions (fuse_ext_header, in.total_extlen).
const secctxExtMinor = 38

// initOutSize is the size of fuse_init_out a kernel of that minor expects.
func initOutSize(minor uint32) int {
	switch {
	case minor < 5:
		return abi.CompatInitOutSize
	case minor < 23:
		return abi.Compat22InitOutSize
	}
	return abi.InitOutSize
}

func (s *Server) doInit(r *Request) int {
	q := &r.req
	s.initMu.Lock()
	defer s.initMu.Unlock()
	if s.destroyed.Load() {
		s.logf("unique %d: INIT after DESTROY: serve a new connection with a new Server", q.hdr.Unique)
		return s.errReply(r, syscall.EIO)
	}
	if s.agreed.Load() != nil {
		s.logf("unique %d: INIT after INIT", q.hdr.Unique)
		return s.errReply(r, syscall.EIO)
	}
	// Kernels before 7.36 send 16 bytes; later ones 64.
	var buf [abi.InitInSize]byte
	if len(q.args) < abi.CompatInitInSize {
		s.logf("unique %d: INIT with %d argument bytes", q.hdr.Unique, len(q.args))
		return s.errReply(r, syscall.EINVAL)
	}
	copy(buf[:], q.args)
	var in abi.InitIn
	in.Unmarshal(buf[:])

	out := abi.InitOut{Major: abi.KernelVersion, Minor: abi.KernelMinorVersion}
	switch {
	case in.Major < abi.KernelVersion:
		s.logAlways("INIT: kernel speaks FUSE %d.%d, the engine needs 7.%d or later", in.Major, in.Minor, MinMinor)
		return s.errReply(r, syscall.EPROTO)
	case in.Major > abi.KernelVersion:
		// Reply with our major only; the kernel sends a new INIT.
		out.Marshal(args(r))
		return s.okReply(r, abi.CompatInitOutSize)
	case in.Minor < MinMinor:
		s.logAlways("INIT: kernel speaks FUSE 7.%d, the engine needs 7.%d or later", in.Minor, MinMinor)
		return s.errReply(r, syscall.EPROTO)
	}
	minor := min(in.Minor, abi.KernelMinorVersion)
	kflags := abi.InitFlags(in.Flags)
	if kflags&abi.InitExt != 0 {
		kflags = abi.MakeInitFlags(in.Flags, in.Flags2)
	}
	flags := kflags & s.want
	if flags&abi.InitWritebackCache != 0 {
		flags &^= abi.InitPassthrough // the kernel refuses both together
	}

	if s.opts.SecurityLabel && (flags&abi.InitSecurityCtx == 0 || minor < secctxExtMinor) {
		// Before 7.38 the context followed the name with no extension
		// header, a layout the engine does not decode.
		s.logAlways("INIT: security labels asked for, but the kernel (FUSE 7.%d) does not offer SECURITY_CTX as a request extension (7.%d, Linux 6.3, or later): refused", in.Minor, secctxExtMinor)
		return s.errReply(r, syscall.EPROTO)
	}

	ag := &Agreement{
		Major: abi.KernelVersion, Minor: minor,
		Flags: flags, KernelFlags: kflags,
		MaxReadahead:        in.MaxReadahead,
		MaxBackground:       s.opts.MaxBackground,
		CongestionThreshold: s.opts.CongestionThreshold,
		TimeGran:            s.opts.TimeGran,
	}
	if s.opts.MaxReadahead != 0 {
		ag.MaxReadahead = min(ag.MaxReadahead, s.opts.MaxReadahead)
	}
	if ag.TimeGran == 0 || ag.TimeGran > 1e9 {
		ag.TimeGran = 1
	}
	pages := abi.DefaultMaxPagesPerReq
	if flags&abi.InitMaxPages != 0 {
		pages = s.maxPages
	}
	ag.MaxPages = uint16(pages)
	ag.MaxWrite = uint32(min(s.maxWrite, pages*s.pageSize))
	if flags&abi.InitMapAlignment != 0 {
		ag.MapAlignment = s.opts.MapAlignment
		if ag.MapAlignment == 0 {
			ag.MapAlignment = 12
		}
		if ag.MapAlignment > 21 {
			s.logAlways("INIT: MapAlignment %d > 21: the kernel would refuse it; using 21", ag.MapAlignment)
			ag.MapAlignment = 21
		}
	}
	if flags&abi.InitPassthrough != 0 {
		ag.MaxStackDepth = s.opts.MaxStackDepth
		if ag.MaxStackDepth == 0 || ag.MaxStackDepth > abi.MaxStackDepth {
			ag.MaxStackDepth = 1
		}
	}

	info := fs.InitInfo{
		Writeback:   flags&abi.InitWritebackCache != 0,
		KillPrivV2:  flags&abi.InitHandleKillprivV2 != 0,
		Passthrough: flags&abi.InitPassthrough != 0,
		DAX:         flags&abi.InitMapAlignment != 0, // the kernel offers it only for a DAX mount
		Locks:       flags&(abi.InitPosixLocks|abi.InitFlockLocks) != 0,
	}
	if e := s.fs.Init(&q.ctx, &info); e != 0 {
		s.logAlways("INIT: filesystem Init failed: %v", e)
		return s.errReply(r, e)
	}

	lo, hi := flags.Split()
	out.Minor = minor
	out.MaxReadahead = ag.MaxReadahead
	out.Flags = lo
	if kflags&abi.InitExt != 0 {
		out.Flags2 = hi
	}
	out.MaxBackground = ag.MaxBackground
	out.CongestionThreshold = ag.CongestionThreshold
	out.MaxWrite = uint32(s.maxWrite)
	out.TimeGran = ag.TimeGran
	if flags&abi.InitMaxPages != 0 {
		out.MaxPages = ag.MaxPages
	}
	out.MapAlignment = ag.MapAlignment
	out.MaxStackDepth = ag.MaxStackDepth
	out.Marshal(args(r))
	s.agreed.Store(ag)
	s.logf("INIT: kernel 7.%d offers %v; agreed 7.%d %v max_write %d max_pages %d",
		in.Minor, kflags, minor, flags, out.MaxWrite, out.MaxPages)
	return s.okReply(r, initOutSize(minor))
}

func (s *Server) destroy(r *Request) int {
	s.initMu.Lock()
	defer s.initMu.Unlock()
	if !s.destroyed.Swap(true) {
		// Lock waits and other blocking requests still running on
		// helpers answer EINTR now: the session is over.
		s.intr.all()
		s.fs.Destroy()
	}
	return s.errReply(r, 0)
}
