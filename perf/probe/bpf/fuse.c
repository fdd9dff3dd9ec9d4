// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// fastfs request round-trip probes. Compiled by bpf2go (see gen.go); the
// generated objects are committed so building fastfsd needs no clang.
//
// Two pairs of programs time every FUSE request from the moment the kernel
// queues it for the daemon to the moment the reply ends it, keyed by
// (connection, unique):
//   - tracepoints fuse:fuse_request_send / fuse:fuse_request_end (Linux 6.15+);
//   - kprobes on the functions around them, for kernels without the
//     tracepoints (CO-RE against the kernel's or the fuse module's BTF),
//     keyed by (connection, request address).
// A third pair, on the v9fs client's 9p tracepoints, times 9P requests per
// message type. A fourth, on the raw syscall tracepoints, times the system
// calls of one process (the daemon) by syscall number.
//
// Every map is named so that `bpftool map dump name fuse_hist` reads it.

#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

// Log-linear histogram of nanoseconds: each power of two [2^e, 2^(e+1)) is
// split into HIST_SUB equal sub-buckets, so a bucket is at most 1/HIST_SUB
// (6.25 %) of its lower bound wide; values below 2*HIST_SUB ns get a bucket
// each. Slot of v: v if v < HIST_SUB, else
// (e - HIST_SUB_BITS + 1) * HIST_SUB + ((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1)).
// The last slot also takes everything from 2^HIST_MAX_EXP ns (~137 s) up.
// perf/probe/snapshot.go (slotOf, SlotBounds) is the Go twin of this.
#define HIST_SUB_BITS 4
#define HIST_SUB (1 << HIST_SUB_BITS)
#define HIST_MAX_EXP 37
#define HIST_SLOTS ((HIST_MAX_EXP - HIST_SUB_BITS + 1) * HIST_SUB)
#define MAX_OPS 64	// FUSE opcodes; anything >= 63 (CUSE_INIT) lands in 63
#define MAX_SYSCALLS 512

// Set by the loader before load (0 = no filter).
const volatile __u32 filter_conn = 0;	// FUSE connection (st_dev of the mount)
const volatile __u32 filter_tgid = 0;	// daemon pid for the syscall programs

struct req_key {
	__u32 conn;
	__u32 pad;
	__u64 unique;
};

struct req_val {
	__u64 start_ns;
	__u32 opcode;
	__u32 pad;
};

// Per-op summary; the histogram lives in fuse_hist.
struct op_stats {
	__u64 count;
	__u64 sum_ns;
	__u64 max_ns;
	__u64 errors;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct req_key);
	__type(value, struct req_val);
} fuse_inflight SEC(".maps");

// fuse_hist[op*HIST_SLOTS + slot] counts requests of opcode op whose round
// trip fell in log-linear bucket slot (hist_slot).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_OPS * HIST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} fuse_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_OPS);
	__type(key, __u32);
	__type(value, struct op_stats);
} fuse_stats SEC(".maps");

struct sys_val {
	__u64 start_ns;
	__u32 nr;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);	// tid
	__type(value, struct sys_val);
} sys_inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SYSCALLS * HIST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} sys_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SYSCALLS);
	__type(key, __u32);
	__type(value, struct op_stats);
} sys_stats SEC(".maps");

static __always_inline __u32 log2_slot(__u64 v)
{
	__u32 r = 0;
	// Unrolled binary search; v < 2^64.
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8)  { v >>= 8;  r += 8; }
	if (v >> 4)  { v >>= 4;  r += 4; }
	if (v >> 2)  { v >>= 2;  r += 2; }
	if (v >> 1)  { r += 1; }
	return r;
}

static __always_inline __u32 hist_slot(__u64 v)
{
	if (v < HIST_SUB)
		return (__u32)v;
	__u32 e = log2_slot(v);
	if (e >= HIST_MAX_EXP)
		return HIST_SLOTS - 1;
	return (e - HIST_SUB_BITS + 1) * HIST_SUB + (__u32)((v >> (e - HIST_SUB_BITS)) & (HIST_SUB - 1));
}

static __always_inline void account(void *hist, void *stats, __u32 idx, __u64 delta, int err)
{
	__u32 key = idx * HIST_SLOTS + hist_slot(delta);
	__u64 *cnt = bpf_map_lookup_elem(hist, &key);
	if (cnt)
		__sync_fetch_and_add(cnt, 1);
	struct op_stats *st = bpf_map_lookup_elem(stats, &idx);
	if (!st)
		return;
	__sync_fetch_and_add(&st->count, 1);
	__sync_fetch_and_add(&st->sum_ns, delta);
	if (err)
		__sync_fetch_and_add(&st->errors, 1);
	// A racy max is fine: a lost update can only lose a concurrent,
	// equally large sample on another CPU.
	if (delta > st->max_ns)
		st->max_ns = delta;
}

static __always_inline void req_start(__u32 conn, __u64 unique, __u32 opcode)
{
	if (filter_conn && conn != filter_conn)
		return;
	struct req_key k = { .conn = conn, .unique = unique };
	struct req_val v = { .start_ns = bpf_ktime_get_ns(), .opcode = opcode };
	bpf_map_update_elem(&fuse_inflight, &k, &v, BPF_ANY);
}

static __always_inline void req_end(__u32 conn, __u64 unique, int err)
{
	if (filter_conn && conn != filter_conn)
		return;
	struct req_key k = { .conn = conn, .unique = unique };
	struct req_val *v = bpf_map_lookup_elem(&fuse_inflight, &k);
	if (!v)
		return;
	__u64 delta = bpf_ktime_get_ns() - v->start_ns;
	__u32 op = v->opcode < MAX_OPS ? v->opcode : MAX_OPS - 1;
	bpf_map_delete_elem(&fuse_inflight, &k);
	account(&fuse_hist, &fuse_stats, op, delta, err);
}

// Layouts from /sys/kernel/tracing/events/fuse/*/format (Linux 6.18).
struct tp_fuse_request_send {
	__u64 common;
	__u32 connection;	// dev_t
	__u32 pad;
	__u64 unique;
	__u32 opcode;
	__u32 len;
};

struct tp_fuse_request_end {
	__u64 common;
	__u32 connection;
	__u32 pad;
	__u64 unique;
	__u32 len;
	__s32 error;
};

SEC("tracepoint/fuse/fuse_request_send")
int fuse_send_tp(struct tp_fuse_request_send *ctx)
{
	req_start(ctx->connection, ctx->unique, ctx->opcode);
	return 0;
}

SEC("tracepoint/fuse/fuse_request_end")
int fuse_end_tp(struct tp_fuse_request_end *ctx)
{
	req_end(ctx->connection, ctx->unique, ctx->error != 0);
	return 0;
}

// Kprobe fallback. Minimal local views of the kernel's private fuse structs;
// preserve_access_index lets CO-RE find the real offsets in the running
// kernel's (or fuse module's) BTF.
struct fuse_in_header___fastfs {
	__u32 len;
	__u32 opcode;
	__u64 unique;
} __attribute__((preserve_access_index));

struct fuse_out_header___fastfs {
	__u32 len;
	__s32 error;
	__u64 unique;
} __attribute__((preserve_access_index));

struct fuse_conn___fastfs {
	__u32 dev;
} __attribute__((preserve_access_index));

struct fuse_mount___fastfs {
	struct fuse_conn___fastfs *fc;
} __attribute__((preserve_access_index));

struct fuse_req___fastfs {
	struct {
		struct fuse_in_header___fastfs h;
	} in;
	struct {
		struct fuse_out_header___fastfs h;
	} out;
	struct fuse_mount___fastfs *fm;
} __attribute__((preserve_access_index));

static __always_inline __u32 req_conn(struct fuse_req___fastfs *req)
{
	struct fuse_mount___fastfs *fm = BPF_CORE_READ(req, fm);
	if (!fm)
		return 0;
	return BPF_CORE_READ(fm, fc, dev);
}

// Queued for the daemon: (struct fuse_iqueue *fiq, struct fuse_req *req).
// The loader attaches this to whichever of fuse_dev_queue_req,
// virtio_fs_send_req, … the kernel has. Before 6.15 those functions assign
// req->in.h.unique themselves, so at entry it is not known yet: the kprobe
// pair keys requests by the fuse_req's address instead, which is stable from
// queueing to fuse_request_end and unique while the request lives.
SEC("kprobe/fuse_dev_queue_req")
int BPF_KPROBE(fuse_send_kp, void *fiq, struct fuse_req___fastfs *req)
{
	req_start(req_conn(req), (__u64)req, BPF_CORE_READ(req, in.h.opcode));
	return 0;
}

SEC("kprobe/fuse_request_end")
int BPF_KPROBE(fuse_end_kp, struct fuse_req___fastfs *req)
{
	req_end(req_conn(req), (__u64)req, BPF_CORE_READ(req, out.h.error) != 0);
	return 0;
}

// 9P: the v9fs client's tracepoints 9p:9p_client_req / 9p:9p_client_res
// (net/9p/client.c, include/trace/events/9p.h) time each request from the
// moment the client sends it to the moment its reply is checked, keyed by
// (client, tag) — a tag is unique among one client's requests in flight.
// Per T-message type: type/2 < MAX_OPS (9P2000.L T-types are even, < 128).
struct p9_key {
	__u64 clnt;
	__u32 tag;
	__u32 pad;
};

struct p9_val {
	__u64 start_ns;
	__u32 type;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct p9_key);
	__type(value, struct p9_val);
} p9_inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_OPS * HIST_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} p9_hist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_OPS);
	__type(key, __u32);
	__type(value, struct op_stats);
} p9_stats SEC(".maps");

// Raw tracepoints: args[] are the tracepoint's TP_PROTO arguments,
// 9p_client_req(struct p9_client *clnt, int8_t type, int tag) and
// 9p_client_res(clnt, type, tag, int err). Raw, not tracefs, attachment:
// the group name "9p" starts with a digit, which the tracefs attach path
// of cilium/ebpf refuses; raw tracepoints are found by event name.
SEC("raw_tracepoint/9p_client_req")
int p9_req_rtp(struct bpf_raw_tracepoint_args *ctx)
{
	struct p9_key k = { .clnt = ctx->args[0], .tag = (__u32)ctx->args[2] };
	struct p9_val v = { .start_ns = bpf_ktime_get_ns(), .type = (__u8)ctx->args[1] };
	bpf_map_update_elem(&p9_inflight, &k, &v, BPF_ANY);
	return 0;
}

SEC("raw_tracepoint/9p_client_res")
int p9_res_rtp(struct bpf_raw_tracepoint_args *ctx)
{
	struct p9_key k = { .clnt = ctx->args[0], .tag = (__u32)ctx->args[2] };
	struct p9_val *v = bpf_map_lookup_elem(&p9_inflight, &k);
	if (!v)
		return 0;
	__u64 delta = bpf_ktime_get_ns() - v->start_ns;
	__u32 op = (v->type / 2) < MAX_OPS ? v->type / 2 : MAX_OPS - 1;
	bpf_map_delete_elem(&p9_inflight, &k);
	account(&p9_hist, &p9_stats, op, delta, (int)ctx->args[3] != 0);
	return 0;
}

// Raw syscall tracepoints: args[1] of sys_enter is the syscall number,
// args[1] of sys_exit the return value.
SEC("raw_tracepoint/sys_enter")
int sys_enter_rtp(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	if ((__u32)(id >> 32) != filter_tgid)
		return 0;
	__u32 tid = (__u32)id;
	struct sys_val v = { .start_ns = bpf_ktime_get_ns(), .nr = (__u32)ctx->args[1] };
	bpf_map_update_elem(&sys_inflight, &tid, &v, BPF_ANY);
	return 0;
}

SEC("raw_tracepoint/sys_exit")
int sys_exit_rtp(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	if ((__u32)(id >> 32) != filter_tgid)
		return 0;
	__u32 tid = (__u32)id;
	struct sys_val *v = bpf_map_lookup_elem(&sys_inflight, &tid);
	if (!v)
		return 0;
	__u64 delta = bpf_ktime_get_ns() - v->start_ns;
	__u32 nr = v->nr < MAX_SYSCALLS ? v->nr : MAX_SYSCALLS - 1;
	bpf_map_delete_elem(&sys_inflight, &tid);
	account(&sys_hist, &sys_stats, nr, delta, (long)ctx->args[1] < 0);
	return 0;
}
