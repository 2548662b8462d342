/* synfilter_ctl.h: the slots of the SYN filter's control map, shared by the
 * BPF program (synfilter.bpf.c) and its loader (synfilter.c). Plain C with no
 * includes, so both the kernel-side and the user-side build can take it. */
#ifndef SLUICE_SYNFILTER_CTL_H
#define SLUICE_SYNFILTER_CTL_H

enum sl_synfilter_ctl {
    SL_SYN_SHED,    /* 1 while the admission limit binds (written by the acceptor) */
    SL_SYN_SYNS,    /* SYNs seen */
    SL_SYN_RETRIES, /* retransmitted SYNs seen */
    SL_SYN_DROPPED, /* retransmitted SYNs dropped */
    SL_SYN_GATED,   /* new SYNs dropped: the accept queue had no room (the gate) */
    SL_SYN_NCTL
};

#endif
