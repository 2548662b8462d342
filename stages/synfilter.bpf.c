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

#include "synfilter_ctl.h"

#define TCP_FLAGS_OFF 13 /* the flags byte in the TCP header */
#define TCP_SYN 0x02
#define TCP_ACK 0x10

struct syn_key {
    __u32 addr[4]; /* IPv4 in addr[0], the rest zero */
    __u32 seq;     /* the initial sequence number */
    __u16 port;
    __u16 family;
};

/* First sight of each SYN, ns (CLOCK_MONOTONIC). LRU: the oldest go first;
 * a SYN is retransmitted within seconds, so a short memory is enough, but it
 * must outlast the first retransmission (1 s) at the highest SYN rate: at
 * 32,000 new SYNs a second plus their retransmissions, 131,072 entries forgot
 * about one in twenty within the second (the kernel's LRU evicts ahead of
 * the strict order), and each forgotten one was let in late. 262,144 (25 MB
 * of kernel memory) forgot none measurably. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 262144);
    __type(key, struct syn_key);
    __type(value, __u64);
} syn_seen SEC(".maps");

/* Its slots: stages/synfilter_ctl.h. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, SL_SYN_NCTL);
    __type(key, __u32);
    __type(value, __u64);
} syn_ctl SEC(".maps");

/* The gate: how many more new SYNs may pass while the limit binds. Set by the
 * acceptor through the skeleton's mapping of .bss (sl_synfilter_room), taken
 * here one by one; it may end a little below zero when two CPUs take the last
 * one at once, which the acceptor's next setting absorbs. */
__s64 sl_syn_credit;
__u32 sl_syn_gate; /* 1: new SYNs need credit (written by the acceptor) */

static __always_inline void count(__u32 i)
{
    __u64 *v = bpf_map_lookup_elem(&syn_ctl, &i);
    if (v)
        __sync_fetch_and_add(v, 1);
}

SEC("socket")
int sl_synfilter(struct __sk_buff *skb)
{
    __u8 flags;
    /* skb->data is at the TCP header here (tcp_filter). */
    if (bpf_skb_load_bytes(skb, TCP_FLAGS_OFF, &flags, 1) != 0 ||
        (flags & (TCP_SYN | TCP_ACK)) != TCP_SYN)
        return skb->len;

    struct syn_key k = {};
    __u16 port;
    if (bpf_skb_load_bytes(skb, 0, &port, 2) != 0 ||
        bpf_skb_load_bytes(skb, 4, &k.seq, 4) != 0)
        return skb->len;
    k.port = port;
    if (skb->protocol == bpf_htons(ETH_P_IP)) {
        k.family = 4;
        if (bpf_skb_load_bytes_relative(skb, 12, &k.addr[0], 4, BPF_HDR_START_NET) != 0)
            return skb->len;
    } else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
        k.family = 6;
        if (bpf_skb_load_bytes_relative(skb, 8, k.addr, 16, BPF_HDR_START_NET) != 0)
            return skb->len;
    } else {
        return skb->len;
    }
    count(SL_SYN_SYNS);
    __u64 now = bpf_ktime_get_ns();
    __u64 *first = bpf_map_lookup_elem(&syn_seen, &k);
    if (first == NULL) {
        bpf_map_update_elem(&syn_seen, &k, &now, BPF_ANY);
        if (*(volatile __u32 *)&sl_syn_gate) {
            if (*(volatile __s64 *)&sl_syn_credit <= 0) {
                count(SL_SYN_GATED);
                return 0; /* its retransmission is a retry: see below */
            }
            __sync_fetch_and_add(&sl_syn_credit, -1);
        }
        return skb->len;
    }
    count(SL_SYN_RETRIES);
    __u32 i = SL_SYN_SHED;
    __u64 *shed = bpf_map_lookup_elem(&syn_ctl, &i);
    if (shed && *shed) {
        count(SL_SYN_DROPPED);
        return 0;
    }
    return skb->len;
}

char LICENSE[] SEC("license") = "GPL";
