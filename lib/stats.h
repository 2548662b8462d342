/* stats.h: per-thread counters for the pipeline, summed only when someone
 * asks (status socket), so the hot path pays a plain store and no shared
 * cache line. Latency histograms are fixed-size log-linear buckets. */
#ifndef SLUICE_STATS_H
#define SLUICE_STATS_H

#include "lib/common.h"

/* The pipeline stages in pipeline order, the access logger, and the
 * stage-less "other" slot used by tests, tools and the status thread. */
enum sl_stage_id {
    SL_STAGE_ACCEPTOR = 0,
    SL_STAGE_READER = 1,
    SL_STAGE_DETECTOR = 2,
    SL_STAGE_WRITER = 3,
    SL_STAGE_LOGGER = 4, /* the access log writer, off the pipeline */
    SL_STAGE_OTHER = 5,
    SL_STAGE_COUNT = 6,
};

/* Histogram: values in nanoseconds; bucket = (log2 magnitude, 3 sub-bits), so a
 * percentile read back is within 12.5% of the truth. Values >= 2^40 ns land
 * in the last bucket. */
#define SL_HIST_SUB_BITS 3
#define SL_HIST_BUCKETS (41 << SL_HIST_SUB_BITS)
struct sl_hist {
    uint64_t count;
    uint64_t sum;
    uint64_t max;
    uint64_t b[SL_HIST_BUCKETS];
};

/* Records V into H. Single writer (the owning thread). Cannot fail. */
void sl_hist_add(struct sl_hist *h, uint64_t v);
/* Returns how many values of H (a snapshot) are below 2^LOG2_NS ns, exactly:
 * bucket edges fall on every power of two. LOG2_NS must be at most 40. */
uint64_t sl_hist_below(const struct sl_hist *h, unsigned log2_ns);
/* Returns the value at quantile Q in [0,1] (upper edge of its bucket, capped at
 * max), or 0 for an empty histogram. */
uint64_t sl_hist_quantile(const struct sl_hist *h, double q);

/* What one stage's queue and threads did. Fields are monotonic counters. */
struct sl_stage_counters {
    uint64_t q_enqueued;  /* items pushed onto this stage's input queue(s) */
    uint64_t q_dequeued;  /* items taken off them */
    uint64_t processed;   /* items the stage finished working on */
    uint64_t batches;     /* non-empty batches taken off the queue */
    uint64_t batch_items; /* items in those batches (mean = items/batches) */
    uint64_t batch_max;   /* largest batch seen */
    uint64_t busy_ns;     /* time spent working, not sleeping */
    struct sl_hist q_wait; /* time items spent waiting in the queue */
};

/* Server-wide event counters (kept per thread as well). */
struct sl_event_counters {
    uint64_t conn_accepted;
    uint64_t conn_closed;
    uint64_t conn_rejected; /* closed at once at max_connections (on_full = close) */
    uint64_t refused_full;  /* answered 503 at max_connections (on_full = refuse) */
    uint64_t closed_idle;   /* idle keep-alive connections closed to make room */
    uint64_t shed_queue_wait; /* requests answered 503: waited past the target */
    uint64_t accept_errors; /* EMFILE/ENFILE/ENOBUFS and friends */
    uint64_t requests;
    uint64_t sent_inline;     /* responses a reader sent whole itself */
    uint64_t status_class[6]; /* [1]=1xx ... [5]=5xx, [0] unused */
    uint64_t bytes_sent;      /* every byte written to clients, headers included */
    uint64_t body_bytes_sent;
    uint64_t cache_hits;
    uint64_t cache_misses;
    uint64_t cache_revalidations;
    uint64_t cache_evictions;
    uint64_t proxy_bad;       /* closed unanswered: no valid PROXY header */
    uint64_t proxy_untrusted; /* closed unanswered: source not in proxy_protocol_from */
};

/* One thread's counters. Only the owner writes (SL_COUNTER_ADD); readers use
 * SL_COUNTER_GET through sl_stats_snapshot(). */
struct sl_tstats {
    struct sl_stage_counters stage[SL_STAGE_COUNT];
    struct sl_event_counters ev;
    struct sl_hist response_time; /* request head parsed to response sent */
    struct sl_tstats *next; /* registry link, guarded by the registry lock */
    bool live;
} __attribute__((aligned(SL_CACHELINE)));

/* Returns the calling thread's counters (cache-line aligned), registering them
 * on first use. When the thread exits, they are added into one retired block
 * and freed, so totals are kept and the registry holds one block per live
 * thread plus one. The pointer is valid until the thread exits. Cannot fail. */
struct sl_tstats *sl_tstats_self(void);

/* Blocks in the registry now: live threads' plus the retired one. Any
 * thread; takes the registry lock. Cannot fail. */
size_t sl_stats_blocks(void);

/* A summed snapshot of every thread's counters, live and exited. */
struct sl_stats_snapshot {
    struct sl_stage_counters stage[SL_STAGE_COUNT];
    struct sl_event_counters ev;
    struct sl_hist response_time;
};

/* Fills OUT with the sum over all threads. Any thread may call; it takes the
 * registry lock (never taken on the hot path). Cannot fail. */
void sl_stats_snapshot(struct sl_stats_snapshot *out);

/* Stage names in pipeline order ("acceptor", ...). */
const char *sl_stage_name(enum sl_stage_id id);

#endif
