/* synfilter.c: loads and drives the SYN filter (synfilter.h). */
#include "stages/synfilter.h"

#include "lib/common.h"
#include "lib/log.h"
#include "stages/admission.h"

#include <stdio.h>
#include <string.h>

uint32_t sl_synfilter_buckets(uint64_t memory)
{
    uint32_t n = SL_SYN_BUCKETS_MAX;
    if (memory == 0)
        return n;
    while (n > SL_SYN_BUCKETS_MIN &&
           (uint64_t)n * SL_SYN_BUCKET_BYTES > memory / SL_SYN_MEMORY_SHARE)
        n /= 2;
    return n;
}

#ifdef SLUICE_HAVE_BPF
#include "synfilter.skel.h" /* generated from synfilter.bpf.c at build time */

#include <bpf/libbpf.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/socket.h>


static struct synfilter_bpf *skel;
/* The filter's .bss, mapped: NULL when no filter is attached. Written before
   the acceptors start, then read-only. */
static struct synfilter_bpf__bss *bss;
static bool shedding; /* the acceptor's own copy of sl_syn_shed */
static bool gating;   /* ... of sl_syn_gate */
static long granted;    /* the credit the gate was given last */
static uint64_t table_bytes; /* the table of SYNs seen */

/* libbpf's own messages go to the error log at debug level. */
static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    if (level == LIBBPF_DEBUG)
        return 0;
    char line[512];
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    if (n > 0 && line[SL_MIN((size_t)n, sizeof(line) - 1) - 1] == '\n')
        line[SL_MIN((size_t)n, sizeof(line) - 1) - 1] = '\0';
    sl_log(SL_LOG_DEBUG, "admission.drop_syn_retries: libbpf: %s", line);
    return 0;
}

int sl_synfilter_attach(int fd, uint64_t memory, char *why, size_t whylen)
{
    libbpf_set_print(libbpf_log);
    uint32_t buckets = sl_synfilter_buckets(memory);
    skel = synfilter_bpf__open();
    int err = skel == NULL ? errno : 0;
    if (err == 0 && skel->rodata == NULL)
        err = ENOTSUP; /* the object lacks its .rodata (syn_mask): a bad build */
    if (err == 0 && bpf_map__value_size(skel->maps.syn_seen) != SL_SYN_BUCKET_BYTES)
        err = ENOTSUP; /* synfilter.h's size of a bucket no longer matches the program */
    if (err == 0) {
        skel->rodata->syn_mask = buckets - 1;
        if (bpf_map__set_max_entries(skel->maps.syn_seen, buckets) != 0 ||
            synfilter_bpf__load(skel) != 0)
            err = errno;
    }
    if (err != 0) {
        snprintf(why, whylen, "cannot load the BPF program: %s%s", strerror(err),
                 err == EPERM ? " (needs CAP_BPF: start as root)" : "");
        synfilter_bpf__destroy(skel); /* NULL: nothing */
        skel = NULL;
        return SL_ERR;
    }
    if (skel->bss == NULL) { /* the kernel cannot map BPF globals (before 5.5) */
        snprintf(why, whylen, "cannot map the BPF program's globals");
        synfilter_bpf__destroy(skel);
        skel = NULL;
        return SL_ERR;
    }
    int prog = bpf_program__fd(skel->progs.sl_synfilter);
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &prog, sizeof(prog)) != 0) {
        snprintf(why, whylen, "SO_ATTACH_BPF: %s", strerror(errno));
        synfilter_bpf__destroy(skel);
        skel = NULL;
        return SL_ERR;
    }
    shedding = false;
    gating = false;
    granted = 0;
    table_bytes = (uint64_t)buckets * SL_SYN_BUCKET_BYTES;
    __atomic_store_n(&bss, skel->bss, __ATOMIC_RELEASE);
    return SL_OK;
}

bool sl_synfilter_on(void)
{
    return __atomic_load_n(&bss, __ATOMIC_RELAXED) != NULL;
}

void sl_synfilter_shed(bool shed)
{
    if (bss == NULL || shed == shedding)
        return;
    __atomic_store_n(&bss->sl_syn_shed, shed ? 1u : 0u, __ATOMIC_RELAXED);
    shedding = shed;
}

void sl_synfilter_gate(long room)
{
    if (bss == NULL)
        return;
    __u32 *gate = &bss->sl_syn_gate;
    __s64 *credit = &bss->sl_syn_credit;
    if (room < 0) {
        if (gating)
            __atomic_store_n(gate, 0, __ATOMIC_RELAXED);
        gating = false;
        return;
    }
    __s64 left = __atomic_load_n(credit, __ATOMIC_RELAXED), grant;
    do {
        grant = sl_adm_gate_grant(room, granted, (long)left);
    } while (!__atomic_compare_exchange_n(credit, &left, grant, true, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
    granted = (long)grant;
    if (!gating)
        __atomic_store_n(gate, 1, __ATOMIC_RELAXED);
    gating = true;
}

void sl_synfilter_counts(struct sl_synfilter_counts *c)
{
    memset(c, 0, sizeof(*c));
    struct synfilter_bpf__bss *b = __atomic_load_n(&bss, __ATOMIC_ACQUIRE);
    if (b == NULL)
        return;
    /* Dropped, then retransmitted, then all: each read no earlier than the
       one before, so dropped <= retries <= syns holds in what is shown. */
    c->dropped = __atomic_load_n(&b->sl_syn_dropped, __ATOMIC_ACQUIRE);
    c->retries = __atomic_load_n(&b->sl_syn_retries, __ATOMIC_ACQUIRE);
    c->syns = __atomic_load_n(&b->sl_syns, __ATOMIC_ACQUIRE);
    c->gated = __atomic_load_n(&b->sl_syn_gated, __ATOMIC_RELAXED);
    c->shedding = __atomic_load_n(&b->sl_syn_shed, __ATOMIC_RELAXED) != 0;
    c->gating = __atomic_load_n(&b->sl_syn_gate, __ATOMIC_RELAXED) != 0;
    c->memory = table_bytes;
}

void sl_synfilter_free(void)
{
    __atomic_store_n(&bss, NULL, __ATOMIC_RELAXED);
    if (skel != NULL)
        synfilter_bpf__destroy(skel);
    skel = NULL;
}

#else /* built without clang, bpftool or libbpf */

int sl_synfilter_attach(int fd, uint64_t memory, char *why, size_t whylen)
{
    (void)fd;
    (void)memory;
    snprintf(why, whylen, "this sluice was built without BPF (clang, bpftool and "
                          "libbpf-dev are needed at build time)");
    return SL_ERR;
}

bool sl_synfilter_on(void)
{
    return false;
}

void sl_synfilter_shed(bool shed)
{
    (void)shed;
}

void sl_synfilter_gate(long room)
{
    (void)room;
}

void sl_synfilter_counts(struct sl_synfilter_counts *c)
{
    memset(c, 0, sizeof(*c));
}

void sl_synfilter_free(void)
{
}

#endif
