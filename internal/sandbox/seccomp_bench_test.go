package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// filterModes are the filters syscallChild can run under: none; the mount
// door's filter (kill); the same program made opaque to the kernel's
// action cache by a leading load of args[0] (decisions unchanged: the next
// instruction reloads arch), so the kernel runs the BPF on every call; and
// a one-instruction program that allows everything (what any filter costs
// once the cache answers).
var filterModes = []string{"free", "filter", "uncached", "allow-all"}

// loadRaw installs prog on all threads (no_new_privs must be set).
func loadRaw(insns []bpf.Instruction) error {
	raw, err := bpf.Assemble(insns)
	if err != nil {
		return err
	}
	// bpf.RawInstruction is laid out as struct sock_filter.
	fprog := unix.SockFprog{Len: uint16(len(raw)), Filter: (*unix.SockFilter)(unsafe.Pointer(&raw[0]))}
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(raw)
	if e != 0 {
		return e
	}
	return nil
}

// syscallChild installs the filter mode names, then times batches of
// cheap calls the daemon makes per request and prints, per call, the
// fastest batch's ns per call (the least disturbed by the other work on a
// shared machine): "getpid N fstat N read N writev N".
func syscallChild(mode string) int {
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	var err error
	switch mode {
	case "free":
	case "filter":
		err = loadFilter(Mount, SeccompKill)
	case "uncached":
		f := filter(Mount, SeccompKill)
		var insns []bpf.Instruction
		if insns, err = f.Policy.Assemble(); err == nil {
			err = loadRaw(append([]bpf.Instruction{bpf.LoadAbsolute{Off: 16, Size: 4}}, insns...))
		}
	case "allow-all":
		err = loadRaw([]bpf.Instruction{bpf.RetConstant{Val: 0x7fff0000}})
	default:
		err = fmt.Errorf("unknown filter mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "filter:", err)
		return 3
	}
	null, err := unix.Open("/dev/null", unix.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	var st unix.Stat_t
	buf := make([]byte, 1)
	iov := [][]byte{buf}
	calls := []struct {
		name string
		call func()
	}{
		{"getpid", func() { unix.Getpid() }},
		{"fstat", func() { unix.Fstat(null, &st) }},
		{"read", func() { unix.Read(null, buf) }},
		{"writev", func() { unix.Writev(null, iov) }},
	}
	var out []string
	for _, c := range calls {
		out = append(out, fmt.Sprintf("%s %.1f", c.name, fastestNs(c.call)))
	}
	fmt.Println(strings.Join(out, " "))
	return 0
}

// BenchmarkSeccompSyscall reports ns per system call (getpid, fstat and
// read/writev of /dev/null) under each of filterModes, each in a child
// process of its own (a filter cannot be removed). One iteration is one
// round of every mode, the order rotated each round; the figures are the
// medians over the rounds (-benchtime=5x for five).
func BenchmarkSeccompSyscall(b *testing.B) {
	res := map[string][]float64{} // "mode/call" → ns per round
	for i := range b.N {
		for j := range filterModes {
			mode := filterModes[(i+j)%len(filterModes)]
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), "SANDBOX_TEST_CHILD=syscalls", "SANDBOX_TEST_FILTER="+mode)
			out, err := cmd.Output()
			if err != nil {
				b.Fatalf("%s: %v: %s", mode, err, out)
			}
			f := strings.Fields(string(out))
			for k := 0; k+1 < len(f); k += 2 {
				var v float64
				if _, err := fmt.Sscan(f[k+1], &v); err != nil {
					b.Fatalf("%s: child output %q: %v", mode, out, err)
				}
				res[mode+"/"+f[k]] = append(res[mode+"/"+f[k]], v)
			}
		}
	}
	if len(res) != 4*len(filterModes) {
		b.Fatalf("got %d figures, want %d: %v", len(res), 4*len(filterModes), res)
	}
	for k, v := range res {
		slices.Sort(v)
		b.ReportMetric(v[len(v)/2], "ns/"+k)
	}
}
