package probe

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Mode says how FUSE requests are timed.
type Mode string

const (
	ModeAuto       Mode = ""           // kprobes if they attach (they see every transport), else tracepoints
	ModeTracepoint Mode = "tracepoint" // fuse:fuse_request_send / fuse_request_end
	ModeKprobe     Mode = "kprobe"     // kprobes around the same points (older kernels)
	ModeOff        Mode = "off"        // do not time FUSE requests (syscalls only)
	// Mode9P times 9P requests of the kernel's v9fs client instead, with
	// its 9p:9p_client_req / 9p_client_res tracepoints, per message type.
	// Every 9P client of the kernel is timed: the tracepoints name a
	// client only by its kernel address.
	Mode9P Mode = "9p"
)

// DefaultPinDir is where Options.Pin puts programs, maps and links.
const DefaultPinDir = "/sys/fs/bpf/fastfsd"

// Options select what to time.
type Options struct {
	// Mode chooses tracepoints or kprobes for FUSE requests.
	Mode Mode
	// Conn restricts FUSE timing to one connection (the st_dev of its
	// mount, see ConnOf); 0 times every connection.
	Conn uint32
	// Pid, if not 0, times that process's system calls by number.
	Pid int
	// PinDir, if not empty, pins every program, map and link there for
	// bpftool while the probe runs; Close unpins them.
	PinDir string
}

// kprobeSendTargets are the functions that queue a request for the daemon,
// (struct fuse_iqueue *fiq, struct fuse_req *req), newest kernels first;
// every one present is probed: /dev/fuse and virtio-fs have their own.
var kprobeSendTargets = []string{"fuse_dev_queue_req", "virtio_fs_send_req", "queue_request_and_unlock"}

// Probe is a set of attached BPF programs and the maps they fill.
type Probe struct {
	mode   Mode
	coll   *ebpf.Collection // the programs this mode loaded, and every map
	links  []link.Link
	pinned []string
}

// ErrNotSupported is wrapped by Attach errors that mean this kernel or
// process cannot run the probes (no BPF, no tracepoints or kprobes, not root).
var ErrNotSupported = errors.New("probe: not supported here")

// Attach loads and attaches the probes.
func Attach(opts Options) (_ *Probe, err error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: loading BPF programs needs root (or CAP_BPF and CAP_PERFMON); run fastfsd probe as root", ErrNotSupported)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("probe: raise RLIMIT_MEMLOCK: %w", err)
	}
	ensureTracefs()

	if opts.Mode == ModeAuto {
		// Kprobes key every request by its address and see every
		// transport. The fuse tracepoints do not everywhere: kernels that
		// got them before fuse_send_one existed (Debian's 6.12) fire
		// fuse_request_send on the /dev/fuse path only, missing virtio-fs.
		// So kprobes first, tracepoints where the kernel has no kprobes
		// (this project's 6.18 hosts).
		o := opts
		o.Mode = ModeKprobe
		if p, err := Attach(o); err == nil {
			return p, nil
		}
		o.Mode = ModeTracepoint
		if !tracepointExists("fuse", "fuse_request_send") {
			return nil, fmt.Errorf("%w: neither kprobes nor the fuse:fuse_request_send tracepoint are available (kernel too old, or tracefs not mounted)", ErrNotSupported)
		}
		return Attach(o)
	}
	mode := opts.Mode

	spec, err := loadFuseprobe()
	if err != nil {
		return nil, fmt.Errorf("probe: load embedded BPF objects: %w", err)
	}
	if err := spec.Variables["filter_conn"].Set(opts.Conn); err != nil {
		return nil, fmt.Errorf("probe: set filter_conn: %w", err)
	}
	if err := spec.Variables["filter_tgid"].Set(uint32(opts.Pid)); err != nil {
		return nil, fmt.Errorf("probe: set filter_tgid: %w", err)
	}
	// Load only the programs this mode attaches: the kprobe programs carry
	// CO-RE relocations against fuse's private structs that need not
	// resolve where tracepoints are used.
	if mode != ModeKprobe {
		delete(spec.Programs, "fuse_send_kp")
		delete(spec.Programs, "fuse_end_kp")
	}
	if mode != ModeTracepoint {
		delete(spec.Programs, "fuse_send_tp")
		delete(spec.Programs, "fuse_end_tp")
	}
	if mode != Mode9P {
		delete(spec.Programs, "p9_req_rtp")
		delete(spec.Programs, "p9_res_rtp")
	} else if !tracepointExists("9p", "9p_client_req") {
		return nil, fmt.Errorf("%w: no tracepoint 9p:9p_client_req (the kernel's 9P client, module 9pnet, is not loaded or not built: mount a 9p filesystem first)", ErrNotSupported)
	}
	if opts.Pid == 0 {
		delete(spec.Programs, "sys_enter_rtp")
		delete(spec.Programs, "sys_exit_rtp")
	}
	var copts ebpf.CollectionOptions
	if mode == ModeKprobe {
		// fuse is usually a module: its structs live in its own BTF.
		if kspec, err := btf.LoadKernelModuleSpec("fuse"); err == nil {
			copts.Programs.KernelTypes = kspec
		}
	}
	p := &Probe{mode: mode}
	if p.coll, err = ebpf.NewCollectionWithOptions(spec, copts); err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("probe: the kernel's verifier refused a program: %+v", verr)
		}
		return nil, fmt.Errorf("%w: load BPF programs (%s mode): %v", ErrNotSupported, mode, err)
	}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()

	switch mode {
	case Mode9P:
		// Raw tracepoints, by event name: link.Tracepoint refuses the
		// group name "9p" (it starts with a digit), and the raw
		// arguments are the stable TP_PROTO ones, not tracefs offsets.
		for _, tp := range []struct {
			name string
			prog *ebpf.Program
		}{{"9p_client_req", p.coll.Programs["p9_req_rtp"]}, {"9p_client_res", p.coll.Programs["p9_res_rtp"]}} {
			l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: tp.name, Program: tp.prog})
			if err != nil {
				return nil, fmt.Errorf("%w: attach raw tracepoint 9p:%s: %v", ErrNotSupported, tp.name, err)
			}
			p.links = append(p.links, l)
		}
	case ModeTracepoint:
		for _, tp := range []struct {
			name string
			prog *ebpf.Program
		}{{"fuse_request_send", p.coll.Programs["fuse_send_tp"]}, {"fuse_request_end", p.coll.Programs["fuse_end_tp"]}} {
			l, err := link.Tracepoint("fuse", tp.name, tp.prog, nil)
			if err != nil {
				return nil, fmt.Errorf("%w: attach tracepoint fuse:%s: %v", ErrNotSupported, tp.name, err)
			}
			p.links = append(p.links, l)
		}
	case ModeKprobe:
		n := 0
		for _, fn := range kprobeSendTargets {
			l, err := link.Kprobe(fn, p.coll.Programs["fuse_send_kp"], nil)
			if err != nil {
				continue // not in this kernel (or inlined)
			}
			p.links = append(p.links, l)
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("%w: no kprobe target found among %s; the kernel needs kprobes and an un-inlined fuse queueing function", ErrNotSupported, strings.Join(kprobeSendTargets, ", "))
		}
		l, err := link.Kprobe("fuse_request_end", p.coll.Programs["fuse_end_kp"], nil)
		if err != nil {
			return nil, fmt.Errorf("%w: kprobe fuse_request_end: %v", ErrNotSupported, err)
		}
		p.links = append(p.links, l)
	}
	if opts.Pid != 0 {
		for _, rt := range []struct {
			name string
			prog *ebpf.Program
		}{{"sys_enter", p.coll.Programs["sys_enter_rtp"]}, {"sys_exit", p.coll.Programs["sys_exit_rtp"]}} {
			l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: rt.name, Program: rt.prog})
			if err != nil {
				return nil, fmt.Errorf("%w: attach raw tracepoint %s: %v", ErrNotSupported, rt.name, err)
			}
			p.links = append(p.links, l)
		}
	}
	if opts.PinDir != "" {
		if err := p.pin(opts.PinDir); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Mode reports how FUSE requests are being timed.
func (p *Probe) Mode() Mode { return p.mode }

func (p *Probe) pin(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("probe: pin: %w; is bpffs mounted on /sys/fs/bpf? (mount -t bpf bpf /sys/fs/bpf)", err)
	}
	type pinner interface{ Pin(string) error }
	add := func(name string, obj pinner) error {
		if obj == nil {
			return nil
		}
		path := filepath.Join(dir, name)
		if err := obj.Pin(path); err != nil {
			return fmt.Errorf("probe: pin %s: %w", path, err)
		}
		p.pinned = append(p.pinned, path)
		return nil
	}
	for name, m := range p.coll.Maps {
		if strings.HasPrefix(name, ".") {
			continue // .rodata: bpffs refuses dotted names, and it holds only the filters
		}
		if err := add(name, m); err != nil {
			return err
		}
	}
	for name, prog := range p.coll.Programs {
		if err := add("prog_"+name, prog); err != nil {
			return err
		}
	}
	for i, l := range p.links {
		if err := add(fmt.Sprintf("link_%d", i), l); err != nil {
			return err
		}
	}
	return nil
}

// Close detaches every program, unpins what Attach pinned and frees the maps.
func (p *Probe) Close() error {
	var errs []error
	for _, l := range p.links {
		errs = append(errs, l.Close())
	}
	p.links = nil
	for _, path := range p.pinned {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	if len(p.pinned) > 0 {
		os.Remove(filepath.Dir(p.pinned[0])) // only if empty
	}
	p.pinned = nil
	if p.coll != nil {
		p.coll.Close()
	}
	return errors.Join(errs...)
}

// ConnOf returns the FUSE connection number of the filesystem mounted at
// path: the kernel's tracepoints report fc->dev, the mount's st_dev.
func ConnOf(path string) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("probe: stat %s: %w", path, err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err == nil && sfs.Type != 0x65735546 /* FUSE_SUPER_MAGIC */ {
		return 0, fmt.Errorf("probe: %s is not a FUSE mount (filesystem magic %#x); give the mountpoint of a fastfsd mount", path, sfs.Type)
	}
	// The kernel's dev_t encodes MKDEV(major, minor) as major<<20 | minor.
	return uint32(unix.Major(st.Dev))<<20 | uint32(unix.Minor(st.Dev)), nil
}

func tracepointExists(group, name string) bool {
	for _, dir := range []string{"/sys/kernel/tracing/events", "/sys/kernel/debug/tracing/events"} {
		if _, err := os.Stat(filepath.Join(dir, group, name, "id")); err == nil {
			return true
		}
	}
	return false
}

// ensureTracefs mounts tracefs on /sys/kernel/tracing if nothing is there:
// attaching tracepoints reads their ids from it. Best effort.
func ensureTracefs() {
	if _, err := os.Stat("/sys/kernel/tracing/events"); err == nil {
		return
	}
	_ = unix.Mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, "")
}

// MountKind tells which probe fits the filesystem mounted at path: "fuse"
// (FUSE, virtio-fs) or "9p" (v9fs).
func MountKind(path string) (string, error) {
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil {
		return "", fmt.Errorf("probe: statfs %s: %w", path, err)
	}
	switch sfs.Type {
	case 0x65735546: // FUSE_SUPER_MAGIC (virtio-fs too)
		return "fuse", nil
	case 0x01021997: // V9FS_MAGIC
		return "9p", nil
	}
	return "", fmt.Errorf("probe: %s is neither a FUSE nor a 9P mount (filesystem magic %#x); give the mountpoint of one", path, sfs.Type)
}
