/* synfilter.bpf.c: the socket filter on the listening socket that, while the
 * admission limit binds, turns retransmitted SYNs away and lets new ones
 * through only as the accept queue has room for them (synfilter.h).
 *
 * Built with clang -target bpf into an object that bpftool turns into
 * synfilter.skel.h; stages/synfilter.c loads it. Runs in the kernel for every
 * segment that reaches the listener or a connection accepted from it
 * (accepted sockets inherit the filter), so everything but a bare SYN leaves
 * after one load and one test.
 *
 * A SYN is known by its source address, source port and initial sequence
 * number: a retransmission repeats all three, a new connection that reuses
 * the port has a new sequence number. */
#include <linux/bpf.h>
#include <linux/if_ether.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define TCP_FLAGS_OFF 13 /* the flags byte in the TCP header */
#define TCP_SYN 0x02
#define TCP_ACK 0x10

/* The memory of SYNs seen: SYN_BUCKETS buckets of SYN_WAYS slots, each the
 * tag of one SYN (hash bits other than the bucket's) and when it was first
 * seen. A new SYN takes an empty slot of its bucket or else the one seen
 * longest ago, so a SYN is forgotten before its first retransmission (1 s)
 * only if SYN_WAYS newer ones fell into its bucket within that second: at
 * 32,000 new SYNs a second, about one in 600. Two CPUs writing one bucket
 * at once can lose an entry; its retransmission is then taken for a new SYN
 * (gated like one).
 *
 * It was an LRU hash map of 262,144 entries: 25 MB of kernel memory,
 * preallocated and charged to sluice's memory cgroup. Under a 32 MiB memory
 * budget (the lab's disk preset) that left the page cache 4 MB, and sluice
 * served nothing past 2,000 requests/s. This takes at most 2 MiB for as many
 * SYNs, and less under a smaller memory budget: the loader sizes the array
 * (sl_synfilter_buckets) and sets syn_mask to match before it loads. */
#define SYN_WAYS 4
#define SYN_BUCKETS 65536 /* the most: a power of two (SL_SYN_BUCKETS_MAX) */

/* The number of buckets less one, set by the loader (.rodata: a constant to
 * the verifier); a lookup past the array's end finds nothing. */
const volatile __u32 syn_mask = SYN_BUCKETS - 1;

struct syn_slot {
    __u32 tag;   /* 0: empty */
    __u32 stamp; /* first seen, CLOCK_MONOTONIC in units of 2^20 ns (~1 ms) */
};

struct syn_bucket {
    struct syn_slot slot[SYN_WAYS];
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, SYN_BUCKETS);
    __type(key, __u32);
    __type(value, struct syn_bucket);
} syn_seen SEC(".maps");

static __always_inline __u64 mix(__u64 h, __u64 v)
{
    h ^= v;
    h *= 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

/* The filter's state, in its .bss, which the loader maps (synfilter.c reads
 * and writes it in place, with no system call):
 * - the gate: how many more new SYNs may pass while the limit binds, set by
 *   the acceptor (sl_synfilter_gate) and taken here one by one; it may end a
 *   little below zero when two CPUs take the last one at once, which the
 *   acceptor's next setting absorbs;
 * - shed: 1 while the admission limit binds (retransmitted SYNs are dropped);
 * - the counters the status socket shows. */
__s64 sl_syn_credit;
__u32 sl_syn_gate; /* 1: new SYNs need credit (written by the acceptor) */
__u32 sl_syn_shed; /* 1: retransmitted SYNs are dropped (written by the acceptor) */
__u64 sl_syns;        /* SYNs seen */
__u64 sl_syn_retries; /* retransmitted SYNs seen */
__u64 sl_syn_dropped; /* retransmitted SYNs dropped */
__u64 sl_syn_gated;   /* new SYNs dropped: the accept queue had no room */

SEC("socket")
int sl_synfilter(struct __sk_buff *skb)
{
    __u8 flags;
    /* skb->data is at the TCP header here (tcp_filter). */
    if (bpf_skb_load_bytes(skb, TCP_FLAGS_OFF, &flags, 1) != 0 ||
        (flags & (TCP_SYN | TCP_ACK)) != TCP_SYN)
        return skb->len;

    __u32 seq, addr[4] = {0, 0, 0, 0};
    __u16 port;
    __u64 family;
    if (bpf_skb_load_bytes(skb, 0, &port, 2) != 0 || bpf_skb_load_bytes(skb, 4, &seq, 4) != 0)
        return skb->len;
    if (skb->protocol == bpf_htons(ETH_P_IP)) {
        family = 4;
        if (bpf_skb_load_bytes_relative(skb, 12, &addr[0], 4, BPF_HDR_START_NET) != 0)
            return skb->len;
    } else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
        family = 6;
        if (bpf_skb_load_bytes_relative(skb, 8, addr, 16, BPF_HDR_START_NET) != 0)
            return skb->len;
    } else {
        return skb->len;
    }
    __sync_fetch_and_add(&sl_syns, 1);
    /* A SYN is known by its source address, source port and initial
       sequence number: a retransmission repeats all three. */
    __u64 h = mix(family << 48 | (__u64)port << 32 | seq, (__u64)addr[0] << 32 | addr[1]);
    h = mix(h, (__u64)addr[2] << 32 | addr[3]);
    h = mix(h, 0);
    __u32 idx = (__u32)h & syn_mask;
    __u32 tag = (__u32)(h >> 32) | 1;
    struct syn_bucket *b = bpf_map_lookup_elem(&syn_seen, &idx);
    if (b == NULL)
        return skb->len;
    __u32 now = (__u32)(bpf_ktime_get_ns() >> 20);
    __u32 victim = 0, oldest = 0;
    int seen = 0;
#pragma unroll
    for (__u32 i = 0; i < SYN_WAYS; i++) {
        __u32 t = b->slot[i].tag;
        if (t == tag)
            seen = 1;
        /* An empty slot counts as the oldest of all. */
        __u32 age = t == 0 ? 0xffffffffu : now - b->slot[i].stamp;
        if (age > oldest) {
            oldest = age;
            victim = i;
        }
    }
    if (!seen) {
        if (victim < SYN_WAYS) { /* always: for the verifier */
            b->slot[victim].tag = tag;
            b->slot[victim].stamp = now;
        }
        if (*(volatile __u32 *)&sl_syn_gate) {
            if (*(volatile __s64 *)&sl_syn_credit <= 0) {
                __sync_fetch_and_add(&sl_syn_gated, 1);
                return 0; /* its retransmission is a retry: see below */
            }
            __sync_fetch_and_add(&sl_syn_credit, -1);
        }
        return skb->len;
    }
    __sync_fetch_and_add(&sl_syn_retries, 1);
    if (*(volatile __u32 *)&sl_syn_shed) {
        __sync_fetch_and_add(&sl_syn_dropped, 1);
        return 0;
    }
    return skb->len;
}

char LICENSE[] SEC("license") = "GPL";
