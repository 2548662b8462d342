/* synfilter.h: turning retransmitted SYNs away while the admission limit
 * binds ([admission] drop_syn_retries).
 *
 * Past the knee the adaptive limit (admission.h) leaves excess connections in
 * a short listen backlog, and the kernel drops the SYNs that find it full.
 * Each such client sends its SYN again a second later (then after 3 s, 7 s,
 * ...), and that retransmission competes for the backlog with the SYNs of
 * new clients. Whichever gets in is served; but a client whose SYN was
 * retransmitted is already a second late, past any useful deadline, so the
 * work spent on it is lost and a new client that could have been served in
 * time waits or is dropped in its place. Measured with a new connection per
 * request at four times the knee, ... (see README "Admission control").
 *
 * So while the limit binds, a BPF socket filter on the listening socket drops
 * every SYN it has seen before (same source address, port and initial
 * sequence number): the backlog's room goes to new clients, and a client
 * already turned away once is never accepted (it gives up at its own
 * timeout) rather than accepted late. When the limit does not bind the filter
 * lets every SYN through, so a SYN lost on the network is retried as usual.
 *
 * While the limit binds, the same filter also gates new SYNs
 * ([admission] gate_syns): it lets one through only while the accept queue
 * has room for it below the length the limit's controller chose (the
 * acceptor hands it that room, sl_synfilter_gate). The kernel itself checks
 * for room only when a SYN arrives; a connection whose handshake was under
 * way when the queue filled is then dropped when its request comes (with
 * [server] defer_accept) or its handshake completes, and the client, who
 * believes it is connected, sends again after 200 ms, 600 ms, ...: admitted
 * and late. Dropping the SYN instead costs less (no SYN-ACK, no half-open
 * connection) and the client is never half admitted.
 *
 * Loading a BPF program needs CAP_BPF (root), before privileges are dropped;
 * without it, or on a kernel without BPF, sluice runs without the filter and
 * says why once. */
#ifndef SLUICE_SYNFILTER_H
#define SLUICE_SYNFILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The SYNs the filter remembers are kept in buckets of SL_SYN_WAYS, 32 bytes
 * each, in kernel memory charged to sluice's memory cgroup: memory the page
 * cache then lacks. The table takes at most 1/SL_SYN_MEMORY_SHARE of the
 * memory sluice may use, between SL_SYN_BUCKETS_MIN and _MAX buckets (128 KiB
 * and 2 MiB): 2 MiB with 128 MiB or more, 512 KiB under a 32 MiB budget. A
 * SYN is forgotten before its retransmission (1 s later) only when
 * SL_SYN_WAYS newer ones fall into its bucket first: with 16,384 buckets,
 * about one in 8,000 at 4,000 new SYNs a second, one in 600 at 8,000 (as
 * with 65,536 buckets at 32,000). A forgotten SYN's retransmission is taken
 * for a new SYN, and gated like one. */
#define SL_SYN_WAYS 4
#define SL_SYN_BUCKET_BYTES 32
#define SL_SYN_BUCKETS_MIN 4096
#define SL_SYN_BUCKETS_MAX 65536
#define SL_SYN_MEMORY_SHARE 64

/* The buckets for a process that may use MEMORY bytes (0: unknown, the
 * most): a power of two in [SL_SYN_BUCKETS_MIN, SL_SYN_BUCKETS_MAX]. Pure. */
uint32_t sl_synfilter_buckets(uint64_t memory);

/* Loads the filter, its table sized for MEMORY (sl_synfilter_buckets), and
 * attaches it to the listening socket FD. Returns SL_OK, or SL_ERR with the
 * reason in WHY (the server goes on without it). */
int sl_synfilter_attach(int fd, uint64_t memory, char *why, size_t whylen);

/* Whether the filter is attached. Any thread. */
bool sl_synfilter_on(void);

/* Turns dropping retransmitted SYNs on or off (a system call when it
 * changes). The acceptor running the admission limit; no-op when the filter
 * is not attached. */
void sl_synfilter_shed(bool shed);

/* Gates new SYNs while the limit binds: ROOM >= 0 lets ROOM more through,
 * less those let through since the last call (taken to be still on their way
 * to the accept queue); ROOM < 0 opens the gate. The acceptor running the
 * admission limit, as often as it looks at the accept queue; no-op when the
 * filter is not attached. */
void sl_synfilter_gate(long room);

struct sl_synfilter_counts {
    uint64_t syns;    /* SYNs that reached the listener */
    uint64_t retries; /* of them retransmissions of a SYN seen before */
    uint64_t dropped; /* retransmissions dropped while the limit bound */
    uint64_t gated;   /* new SYNs dropped by the gate */
    bool shedding;    /* retransmissions are being dropped now */
    bool gating;      /* new SYNs are gated now */
    uint64_t memory;  /* bytes of the table of SYNs seen */
};

/* The filter's counters (zeros when it is not attached). Any thread. */
void sl_synfilter_counts(struct sl_synfilter_counts *c);

/* Detaches nothing (the socket's close does) but frees the program and its
 * maps. At stop, after the listener is closed. */
void sl_synfilter_free(void);

#endif
