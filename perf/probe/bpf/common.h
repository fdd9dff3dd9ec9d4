// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The few kernel types the probes need, so the build needs no vmlinux.h.
#pragma once

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed int __s32;
typedef signed long long __s64;
typedef __u32 __wsum;

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

// x86-64 and arm64 pt_regs views for BPF_KPROBE (bpf_tracing.h picks the
// registers by target arch; -D__TARGET_ARCH_x86 / _arm64 from gen.go).
#if defined(__TARGET_ARCH_x86)
struct pt_regs {
	// User-space spellings: bpf_tracing.h uses them outside __KERNEL__.
	unsigned long r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi, orig_rax, rip, cs, eflags, rsp, ss;
};
#elif defined(__TARGET_ARCH_arm64)
struct user_pt_regs {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
};
struct pt_regs {
	union {
		struct user_pt_regs user_regs;
		struct {
			__u64 regs[31];
			__u64 sp;
			__u64 pc;
			__u64 pstate;
		};
	};
	__u64 orig_x0;
};
#endif
#include <bpf/bpf_tracing.h>
