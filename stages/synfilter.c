/* synfilter.c: loads and drives the SYN filter (synfilter.h). */
#include "stages/synfilter.h"

#include "lib/common.h"
#include "lib/log.h"
#include "stages/admission.h"

#include <stdio.h>
#include <string.h>

#ifdef SLUICE_HAVE_BPF
#include "stages/synfilter_ctl.h"
#include "synfilter.skel.h" /* generated from synfilter.bpf.c at build time */

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/socket.h>


static struct synfilter_bpf *skel;
static int ctl_fd = -1; /* written before the acceptors start, then read-only */
static bool shedding;   /* the acceptor's own copy of SL_SYN_SHED */
static bool gating;     /* ... of sl_syn_gate */
static long granted;    /* the credit the gate was given last */

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

int sl_synfilter_attach(int fd, char *why, size_t whylen)
{
    libbpf_set_print(libbpf_log);
    skel = synfilter_bpf__open_and_load();
    if (skel == NULL) {
        snprintf(why, whylen, "cannot load the BPF program: %s%s", strerror(errno),
                 errno == EPERM ? " (needs CAP_BPF: start as root)" : "");
        return SL_ERR;
    }
    int prog = bpf_program__fd(skel->progs.sl_synfilter);
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, &prog, sizeof(prog)) != 0) {
        snprintf(why, whylen, "SO_ATTACH_BPF: %s", strerror(errno));
        synfilter_bpf__destroy(skel);
        skel = NULL;
        return SL_ERR;
    }
    ctl_fd = bpf_map__fd(skel->maps.syn_ctl);
    shedding = false;
    gating = false;
    granted = 0;
    return SL_OK;
}

bool sl_synfilter_on(void)
{
    return __atomic_load_n(&ctl_fd, __ATOMIC_RELAXED) >= 0;
}

void sl_synfilter_shed(bool shed)
{
    if (ctl_fd < 0 || shed == shedding)
        return;
    __u32 k = SL_SYN_SHED;
    __u64 v = shed;
    if (bpf_map_update_elem(ctl_fd, &k, &v, BPF_ANY) != 0) {
        sl_log(SL_LOG_WARN, "admission.drop_syn_retries: cannot update the filter: %s",
               strerror(errno));
        return;
    }
    shedding = shed;
}

void sl_synfilter_gate(long room)
{
    if (ctl_fd < 0 || skel->bss == NULL)
        return;
    __u32 *gate = &skel->bss->sl_syn_gate;
    __s64 *credit = &skel->bss->sl_syn_credit;
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
    int fd = __atomic_load_n(&ctl_fd, __ATOMIC_RELAXED);
    if (fd < 0)
        return;
    __u64 v[SL_SYN_NCTL] = {0};
    /* Dropped, then retransmitted, then all: each read no earlier than the
       one before, so dropped <= retries <= syns holds in what is shown. */
    for (__u32 k = SL_SYN_NCTL; k-- > 0;)
        if (bpf_map_lookup_elem(fd, &k, &v[k]) != 0)
            v[k] = 0;
    c->shedding = v[SL_SYN_SHED] != 0;
    c->syns = v[SL_SYN_SYNS];
    c->retries = v[SL_SYN_RETRIES];
    c->dropped = v[SL_SYN_DROPPED];
    c->gated = v[SL_SYN_GATED];
    c->gating = skel != NULL && skel->bss != NULL &&
                __atomic_load_n(&skel->bss->sl_syn_gate, __ATOMIC_RELAXED) != 0;
}

void sl_synfilter_free(void)
{
    __atomic_store_n(&ctl_fd, -1, __ATOMIC_RELAXED);
    if (skel != NULL)
        synfilter_bpf__destroy(skel);
    skel = NULL;
}

#else /* built without clang, bpftool or libbpf */

int sl_synfilter_attach(int fd, char *why, size_t whylen)
{
    (void)fd;
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
