/* stats.c: per-thread counter registry and histograms; see stats.h. */
#include "lib/stats.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sl_tstats *registry; /* live threads' blocks, guarded by registry_lock */
static size_t registry_len;        /* blocks on the list (guarded likewise) */
/* The counters of every thread that exited, folded into one block when it
 * exits, so the registry holds only live threads however often pools are
 * resized, and totals never go backwards (guarded by registry_lock). */
static struct sl_stats_snapshot retired;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
static __thread struct sl_tstats *self;

static const char *const stage_names[SL_STAGE_COUNT] = {"acceptor", "reader", "detector",
                                                        "writer", "logger", "other"};

const char *sl_stage_name(enum sl_stage_id id)
{
    return (unsigned)id < SL_STAGE_COUNT ? stage_names[id] : "?";
}

static void add_counters(struct sl_stats_snapshot *out, const struct sl_tstats *t);

/* Thread exit (pthread key destructor): folds the thread's counters into
 * `retired` and frees its block, in one step under the lock, so a snapshot
 * counts them exactly once. */
static void retire(void *arg)
{
    struct sl_tstats *t = arg;
    pthread_mutex_lock(&registry_lock);
    add_counters(&retired, t);
    for (struct sl_tstats **p = &registry; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            registry_len--;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    if (self == t)
        self = NULL; /* a later destructor that counts registers a new block */
    free(t);
}

static void make_exit_key(void)
{
    if (pthread_key_create(&exit_key, retire) != 0)
        abort(); /* only at the first registration, with few keys in use */
}

struct sl_tstats *sl_tstats_self(void)
{
    if (SL_LIKELY(self != NULL))
        return self;
    /* Cache-line aligned as declared: no two threads' counters share a line. */
    struct sl_tstats *t = SL_NEW_ARRAY(struct sl_tstats, 1);
    t->live = true;
    pthread_once(&exit_once, make_exit_key);
    pthread_mutex_lock(&registry_lock);
    t->next = registry;
    registry = t;
    registry_len++;
    pthread_mutex_unlock(&registry_lock);
    pthread_setspecific(exit_key, t);
    self = t;
    return t;
}

size_t sl_stats_blocks(void)
{
    pthread_mutex_lock(&registry_lock);
    size_t n = registry_len;
    pthread_mutex_unlock(&registry_lock);
    return n + 1; /* and the retired block */
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

/* Adds T's counters into OUT. Caller holds registry_lock. */
static void add_counters(struct sl_stats_snapshot *out, const struct sl_tstats *t)
{
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

void sl_stats_snapshot(struct sl_stats_snapshot *out)
{
    pthread_mutex_lock(&registry_lock);
    *out = retired;
    for (struct sl_tstats *t = registry; t; t = t->next)
        add_counters(out, t);
    pthread_mutex_unlock(&registry_lock);
}
