/* stats.c: per-thread counter registry and histograms; see stats.h. */
#include "core/stats.h"

#include <pthread.h>
#include <string.h>

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sl_tstats *registry; /* every thread's block; never freed */
static __thread struct sl_tstats *self;

static const char *const stage_names[SL_STAGE_COUNT] = {"acceptor", "reader", "detector",
                                                        "writer", "logger", "other"};

const char *sl_stage_name(enum sl_stage_id id)
{
    return (unsigned)id < SL_STAGE_COUNT ? stage_names[id] : "?";
}

struct sl_tstats *sl_tstats_self(void)
{
    if (SL_LIKELY(self != NULL))
        return self;
    /* A block per thread that ever counted anything; blocks are kept after the
     * thread exits so totals never go backwards. Threads are few (stage
     * threads, resized rarely), so the registry stays small. */
    struct sl_tstats *t = sl_calloc(1, sizeof(*t));
    t->live = true;
    pthread_mutex_lock(&registry_lock);
    t->next = registry;
    registry = t;
    pthread_mutex_unlock(&registry_lock);
    self = t;
    return t;
}

static unsigned hist_bucket(uint64_t v)
{
    if (v < (1u << SL_HIST_SUB_BITS))
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned sub = (unsigned)(v >> (msb - SL_HIST_SUB_BITS)) & ((1u << SL_HIST_SUB_BITS) - 1);
    unsigned b = ((msb - SL_HIST_SUB_BITS + 1) << SL_HIST_SUB_BITS) + sub;
    return b < SL_HIST_BUCKETS ? b : SL_HIST_BUCKETS - 1;
}

/* Upper edge (exclusive) of bucket B, the inverse of hist_bucket(). */
static uint64_t hist_upper(unsigned b)
{
    if (b < (1u << SL_HIST_SUB_BITS))
        return b + 1;
    unsigned msb = (b >> SL_HIST_SUB_BITS) + SL_HIST_SUB_BITS - 1;
    uint64_t sub = b & ((1u << SL_HIST_SUB_BITS) - 1);
    uint64_t base = 1ull << msb;
    uint64_t step = 1ull << (msb - SL_HIST_SUB_BITS);
    return base + (sub + 1) * step;
}

void sl_hist_add(struct sl_hist *h, uint64_t v)
{
    SL_COUNTER_ADD(&h->b[hist_bucket(v)], 1);
    SL_COUNTER_ADD(&h->count, 1);
    SL_COUNTER_ADD(&h->sum, v);
    if (v > SL_COUNTER_GET(&h->max))
        __atomic_store_n(&h->max, v, __ATOMIC_RELAXED);
}

static void hist_read_into(struct sl_hist *dst, const struct sl_hist *live)
{
    dst->count += SL_COUNTER_GET(&live->count);
    dst->sum += SL_COUNTER_GET(&live->sum);
    uint64_t m = SL_COUNTER_GET(&live->max);
    if (m > dst->max)
        dst->max = m;
    for (unsigned i = 0; i < SL_HIST_BUCKETS; i++)
        dst->b[i] += SL_COUNTER_GET(&live->b[i]);
}

void sl_hist_merge(struct sl_hist *dst, const struct sl_hist *src)
{
    hist_read_into(dst, src);
}

uint64_t sl_hist_below(const struct sl_hist *h, unsigned log2_ns)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < SL_HIST_BUCKETS - 1 && hist_upper(i) <= (1ull << log2_ns); i++)
        n += h->b[i];
    return n;
}

uint64_t sl_hist_quantile(const struct sl_hist *h, double q)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < SL_HIST_BUCKETS; i++)
        total += h->b[i];
    if (total == 0)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    uint64_t rank = (uint64_t)(q * (double)total + 0.5);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < SL_HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            if (i == SL_HIST_BUCKETS - 1)
                return h->max; /* the overflow bucket has no upper edge */
            uint64_t up = hist_upper(i) - 1;
            return up < h->max ? up : h->max;
        }
    }
    return h->max;
}

#define SUM_FIELD(f) dst->f += SL_COUNTER_GET(&src->f)

void sl_stats_snapshot(struct sl_stats_snapshot *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&registry_lock);
    for (struct sl_tstats *t = registry; t; t = t->next) {
        for (int s = 0; s < SL_STAGE_COUNT; s++) {
            struct sl_stage_counters *dst = &out->stage[s];
            const struct sl_stage_counters *src = &t->stage[s];
            SUM_FIELD(q_enqueued);
            SUM_FIELD(q_dequeued);
            SUM_FIELD(processed);
            SUM_FIELD(batches);
            SUM_FIELD(batch_items);
            SUM_FIELD(busy_ns);
            uint64_t bm = SL_COUNTER_GET(&src->batch_max);
            if (bm > dst->batch_max)
                dst->batch_max = bm;
            hist_read_into(&dst->q_wait, &src->q_wait);
        }
        struct sl_event_counters *dst = &out->ev;
        const struct sl_event_counters *src = &t->ev;
        SUM_FIELD(conn_accepted);
        SUM_FIELD(conn_closed);
        SUM_FIELD(conn_rejected);
        SUM_FIELD(refused_full);
        SUM_FIELD(closed_idle);
        SUM_FIELD(shed_queue_wait);
        SUM_FIELD(accept_errors);
        SUM_FIELD(requests);
        SUM_FIELD(sent_inline);
        for (int i = 0; i < 6; i++)
            SUM_FIELD(status_class[i]);
        SUM_FIELD(bytes_sent);
        SUM_FIELD(body_bytes_sent);
        SUM_FIELD(cache_hits);
        SUM_FIELD(cache_misses);
        SUM_FIELD(cache_revalidations);
        SUM_FIELD(cache_evictions);
        SUM_FIELD(proxy_bad);
        SUM_FIELD(proxy_untrusted);
        hist_read_into(&out->response_time, &t->response_time);
    }
    pthread_mutex_unlock(&registry_lock);
}
