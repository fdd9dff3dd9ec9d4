package sandbox

import (
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
)

// seccomp_data's layout (include/uapi/linux/seccomp.h): nr, arch,
// instruction_pointer, args[6].
const (
	dataNr   = 0
	dataArch = 4
)

// constAllow reports whether the kernel's seccomp action cache (Linux
// 5.11+, kernel/seccomp.c seccomp_is_const_allow) marks system call nr of
// architecture auditArch as allowed without running the filter: emulated
// with only nr and arch known, the classic BPF program must reach
// RET ALLOW through nothing but loads of nr or arch, the constant jumps
// (JA, JEQ, JGE, JGT, JSET with K) and ALU AND with K. A load of an
// argument or of instruction_pointer, or any other instruction, on the
// way means the kernel runs the filter on every such call. It follows the
// kernel's function line by line, on the program as the kernel receives
// it (bpf.Assemble's raw form).
func constAllow(t *testing.T, prog []bpf.RawInstruction, nr, auditArch uint32) bool {
	t.Helper()
	const (
		ldAbsW   = 0x00 | 0x00 | 0x20 // BPF_LD|BPF_W|BPF_ABS
		retK     = 0x06 | 0x00        // BPF_RET|BPF_K
		ja       = 0x05 | 0x00        // BPF_JMP|BPF_JA
		jeqK     = 0x05 | 0x10        // BPF_JMP|BPF_JEQ|BPF_K
		jgtK     = 0x05 | 0x20
		jgeK     = 0x05 | 0x30
		jsetK    = 0x05 | 0x40
		andK     = 0x04 | 0x50 // BPF_ALU|BPF_AND|BPF_K
		retAllow = 0x7fff0000  // SECCOMP_RET_ALLOW
	)
	var reg uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Op {
		case ldAbsW:
			switch in.K {
			case dataNr:
				reg = nr
			case dataArch:
				reg = auditArch
			default:
				return false
			}
		case retK:
			return in.K == retAllow
		case ja:
			pc += int(in.K)
		case jeqK, jgtK, jgeK, jsetK:
			var res bool
			switch in.Op {
			case jeqK:
				res = reg == in.K
			case jgtK:
				res = reg > in.K
			case jgeK:
				res = reg >= in.K
			case jsetK:
				res = reg&in.K != 0
			}
			if res {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case andK:
			reg &= in.K
		default:
			return false
		}
	}
	t.Fatalf("nr %d: the emulation ran off the end of the program", nr)
	return false
}

// TestSeccompActionCache: every call a door allows is allowed by the
// kernel's per-call action cache, so the kernel never runs the filter's
// BPF for it (a bitmap test instead of up to ~180 compares: the list is
// a linear chain of JEQs, write and writev sit at its end). A change
// that loads an argument before the dispatch on nr (an argument check
// written the wrong way round), or an instruction the kernel's emulator
// does not know, fails here, naming the calls that lost the cache.
func TestSeccompActionCache(t *testing.T) {
	info, err := arch.GetInfo("")
	if err != nil {
		t.Skipf("no system call table for this architecture: %v", err)
	}
	for _, d := range []Door{Mount, Virtiofs, P9} {
		for _, action := range []SeccompAction{SeccompKill, SeccompLog, SeccompTrap} {
			f := filter(d, action)
			insns, err := f.Policy.Assemble()
			if err != nil {
				t.Fatal(err)
			}
			raw, err := bpf.Assemble(insns)
			if err != nil {
				t.Fatal(err)
			}
			allowed := map[uint32]string{}
			for _, n := range Syscalls(d) {
				allowed[uint32(info.SyscallNames[n])] = n
			}
			var lost []string
			for nr := uint32(0); nr < 1024; nr++ {
				got := constAllow(t, raw, nr, uint32(info.ID))
				if name, ok := allowed[nr]; ok && !got {
					lost = append(lost, name)
				} else if !ok && got {
					t.Errorf("%s/%s: nr %d (%s) is not on the list but the cache allows it", d, action, nr, info.SyscallNumbers[int(nr)])
				}
			}
			if len(lost) > 0 {
				t.Errorf("%s/%s: %d allowed calls run the filter's BPF on every call (not constant-allowed): %v", d, action, len(lost), lost)
			}
			// Another architecture's numbers (i386 through the compat
			// entry, or x32) never match: the arch check comes first.
			for nr := uint32(0); nr < 1024; nr++ {
				if constAllow(t, raw, nr, 0x40000003) || constAllow(t, raw, nr|0x40000000, uint32(info.ID)) {
					t.Fatalf("%s/%s: nr %d allowed for a foreign ABI", d, action, nr)
				}
			}
		}
	}
}

// TestConstAllowEmulator: the emulator above can fail — a program that
// loads an argument before its dispatch, or uses an instruction the
// kernel's emulator lacks, allows nothing from the cache.
func TestConstAllowEmulator(t *testing.T) {
	info, err := arch.GetInfo("")
	if err != nil {
		t.Skipf("no system call table for this architecture: %v", err)
	}
	f := filter(Mount, SeccompKill)
	insns, err := f.Policy.Assemble()
	if err != nil {
		t.Fatal(err)
	}
	nrRead := uint32(info.SyscallNames["read"])
	for name, prefix := range map[string]bpf.Instruction{
		"argument load":       bpf.LoadAbsolute{Off: 16, Size: 4},
		"instruction pointer": bpf.LoadAbsolute{Off: 8, Size: 4},
		"ALU add":             bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 0},
	} {
		raw, err := bpf.Assemble(append([]bpf.Instruction{prefix}, insns...))
		if err != nil {
			t.Fatal(err)
		}
		if constAllow(t, raw, nrRead, uint32(info.ID)) {
			t.Errorf("%s first: read still constant-allowed", name)
		}
	}
	raw, _ := bpf.Assemble(insns)
	if !constAllow(t, raw, nrRead, uint32(info.ID)) {
		t.Error("the door's own filter: read not constant-allowed")
	}
}
