/* status.c: the status socket; see status.h and README "Status protocol".
 *
 * One thread ("status") runs one poll() loop over an eventfd (stop), the
 * listening UNIX socket and up to MAX_CLIENTS non-blocking clients. It never
 * touches a connection or a stage queue: it reads the per-thread counters
 * (sl_stats_snapshot, whose registry lock the hot path never takes), queue
 * depths and a few atomics of sl_srv, so any number of status clients cost the
 * serving threads nothing but that read.
 *
 * Framing: a client sends one command per line; every reply is zero or more
 * lines, each ending in "\n", followed by one empty line. No reply contains an
 * empty line, so a client reads until the first "\n\n".
 *
 * The formatting and parsing helpers below are pure (a sample in, text out) so
 * tests/core/test_status.c can drive them without a server. */
#include "core/status.h"
#include "core/log.h"
#include "core/prom.h"
#include "core/server.h"
#include "core/stats.h"
#include "stages/admission.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/un.h>
#include <unistd.h>
#include <urcu.h>

#define STATUS_VERSION "0.1"
#define MAX_CLIENTS 64          /* more get "error: too many status clients" */
#define MAX_LINE 4096           /* a command line, newline included */
#define OUT_HIGH (256u * 1024u) /* stop taking commands while this much output waits */
#define ACCEPT_BATCH 16         /* status accepts per wakeup */
#define NSTAGES 4               /* acceptor, reader, detector, writer */

/* ---- growing output buffer ---- */

struct sbuf {
    char *p;
    size_t len; /* bytes held */
    size_t off; /* bytes already sent (client output only) */
    size_t cap;
};

static void sb_reserve(struct sbuf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more + 1)
        cap *= 2;
    b->p = sl_realloc(b->p, cap);
    b->cap = cap;
}

static void sb_printf(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    sb_reserve(b, (size_t)n);
    if ((size_t)n < sizeof(tmp)) {
        memcpy(b->p + b->len, tmp, (size_t)n + 1);
    } else {
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    sb_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

/* Appends S as a JSON string literal, quotes included. */
static void sb_json_str(struct sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            sb_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            sb_printf(b, "\\u%04x", *p);
        else
            sb_put(b, (const char *)p, 1);
    }
    sb_put(b, "\"", 1);
}

static void sb_free(struct sbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* ---- a sample of everything the status socket reports ---- */

struct stage_view {
    int threads;
    uint64_t busy_ns, processed, batches, batch_items, batch_max;
    long depth, max_depth;
    long limit; /* acceptor only: the listen backlog (-1 if unknown) */
    uint64_t enqueued, dequeued;
    uint64_t wait_count, wait_sum_ns;
    uint64_t wait_p50_ns, wait_p90_ns, wait_p99_ns, wait_max_ns;
    struct sl_hist wait_hist; /* for the Prometheus histogram */
};

enum reload_state { RELOAD_NONE = 0, RELOAD_OK = 1, RELOAD_FAILED = 2 };

struct status_sample {
    uint64_t now_ns;
    uint64_t uptime_ns;
    long pid;
    const char *queue_kind;
    bool optimistic_write;
    unsigned long generation, failed_reloads;
    struct stage_view stage[NSTAGES];
    struct sl_event_counters ev;
    struct sl_hist response_time;
    bool draining; /* readiness fails: SIGTERM or `drain` */
    long conns;
    struct sl_cache_info cache;
    enum reload_state reload;
    uint64_t reload_age_ns;
    char reload_msg[256];
    char config_json[4096]; /* the live configuration (sl_server_config_json) */
    size_t stats_blocks;    /* the stats registry's size (sl_stats_blocks) */
};

/* What a client saw at its previous `stats`, for the busy fractions. */
struct busy_prev {
    uint64_t ns;
    uint64_t busy_ns[NSTAGES];
};

/* Fills the counter part of S from SNAP. S's stage depths must be set first:
 * the acceptor's input is the kernel's accept queue, which counts nothing, so
 * its dequeued is what accept() returned (accepted + rejected) and its
 * enqueued is dequeued + depth. Pure. */
static void sample_fill(struct status_sample *s, const struct sl_stats_snapshot *snap)
{
    s->ev = snap->ev;
    for (int i = 0; i < NSTAGES; i++) {
        const struct sl_stage_counters *c = &snap->stage[i];
        struct stage_view *v = &s->stage[i];
        v->busy_ns = c->busy_ns;
        v->processed = c->processed;
        v->batches = c->batches;
        v->batch_items = c->batch_items;
        v->batch_max = c->batch_max;
        v->enqueued = c->q_enqueued;
        v->dequeued = c->q_dequeued;
        v->wait_count = c->q_wait.count;
        v->wait_sum_ns = c->q_wait.sum;
        v->wait_p50_ns = sl_hist_quantile(&c->q_wait, 0.50);
        v->wait_p90_ns = sl_hist_quantile(&c->q_wait, 0.90);
        v->wait_p99_ns = sl_hist_quantile(&c->q_wait, 0.99);
        v->wait_max_ns = c->q_wait.max;
        v->wait_hist = c->q_wait;
    }
    s->response_time = snap->response_time;
    struct stage_view *a = &s->stage[SL_STAGE_ACCEPTOR];
    a->dequeued = snap->ev.conn_accepted + snap->ev.conn_rejected;
    a->enqueued = a->dequeued + (uint64_t)(a->depth > 0 ? a->depth : 0);
}

/* Share of THREADS threads' time spent working over WALL_NS. Clamped to
 * [0, 1] (a stage shrunk during the interval can look busier than 1). */
static double busy_fraction(uint64_t busy_ns, uint64_t wall_ns, int threads)
{
    if (wall_ns == 0 || threads <= 0)
        return 0.0;
    double f = (double)busy_ns / ((double)wall_ns * (double)threads);
    return f < 0.0 ? 0.0 : f > 1.0 ? 1.0 : f;
}

/* Busy fractions of S since PREV, then PREV := S. Returns the interval in
 * seconds. Pure. */
static double busy_since(const struct status_sample *s, struct busy_prev *prev,
                         double busy[NSTAGES])
{
    uint64_t wall = s->now_ns > prev->ns ? s->now_ns - prev->ns : 0;
    for (int i = 0; i < NSTAGES; i++) {
        uint64_t cur = s->stage[i].busy_ns;
        uint64_t d = cur > prev->busy_ns[i] ? cur - prev->busy_ns[i] : 0;
        busy[i] = busy_fraction(d, wall, s->stage[i].threads);
        prev->busy_ns[i] = cur;
    }
    prev->ns = s->now_ns;
    return (double)wall / 1e9;
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static double batch_mean(const struct stage_view *v)
{
    return v->batches ? (double)v->batch_items / (double)v->batches : 0.0;
}

/* ---- stats json ---- */

/* One line, no trailing newline. Schema: README "stats json". Pure. */
static void format_json(struct sbuf *b, const struct status_sample *s,
                        const double busy[NSTAGES], double interval_s)
{
    sb_printf(b,
              "{\"version\":\"%s\",\"pid\":%ld,\"uptime_s\":%.3f,\"generation\":%lu,"
              "\"failed_reloads\":%lu,\"queue_kind\":",
              STATUS_VERSION, s->pid, (double)s->uptime_ns / 1e9, s->generation,
              s->failed_reloads);
    sb_json_str(b, s->queue_kind);
    sb_printf(b, ",\"optimistic_write\":%s,\"interval_s\":%.3f,\"stages\":[",
              s->optimistic_write ? "true" : "false", interval_s);
    for (int i = 0; i < NSTAGES; i++) {
        const struct stage_view *v = &s->stage[i];
        sb_printf(b,
                  "%s{\"name\":\"%s\",\"threads\":%d,\"busy\":%.4f,\"busy_ns\":%" PRIu64
                  ",\"processed\":%" PRIu64 ",\"batches\":%" PRIu64
                  ",\"batch_items\":%" PRIu64
                  ",\"batch_mean\":%.2f,\"batch_max\":%" PRIu64 ",",
                  i ? "," : "", sl_stage_name((enum sl_stage_id)i), v->threads, busy[i],
                  v->busy_ns, v->processed, v->batches, v->batch_items, batch_mean(v),
                  v->batch_max);
        sb_printf(b,
                  "\"queue\":{\"depth\":%ld,\"max_depth\":%ld,\"enqueued\":%" PRIu64
                  ",\"dequeued\":%" PRIu64,
                  v->depth, v->max_depth, v->enqueued, v->dequeued);
        if (i == SL_STAGE_ACCEPTOR && v->limit >= 0)
            sb_printf(b, ",\"limit\":%ld", v->limit);
        sb_printf(b,
                  ",\"wait_us\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f,"
                  "\"count\":%" PRIu64 ",\"sum\":%.3f}}}",
                  us(v->wait_p50_ns), us(v->wait_p90_ns), us(v->wait_p99_ns),
                  us(v->wait_max_ns), v->wait_count, us(v->wait_sum_ns));
    }
    const struct sl_event_counters *e = &s->ev;
    sb_printf(b,
              "],\"connections\":{\"current\":%ld,\"max\":%ld,\"accepted\":%" PRIu64
              ",\"closed\":%" PRIu64 ",\"rejected\":%" PRIu64
              ",\"accept_errors\":%" PRIu64 ",\"per_reader\":[",
              s->conns, sl_set.max_connections,
              e->conn_accepted, e->conn_closed, e->conn_rejected, e->accept_errors);
    for (int i = 0; i < sl_srv.nreaders; i++)
        sb_printf(b, "%s%ld", i ? "," : "", uatomic_read(&sl_srv.reader_conns[i]));
    sb_puts(b, "]}");
    struct sl_adm_state as;
    sl_adm_state(&as);
    sb_printf(b,
              ",\"admission\":{\"dropping\":%s,\"shed_queue_wait\":%" PRIu64
              ",\"refused_full\":%" PRIu64 ",\"closed_full\":%" PRIu64
              ",\"closed_idle\":%" PRIu64 ",\"policy\":\"%s\",\"limit\":%ld"
              ",\"admitted\":%ld,\"waiting\":%ld,\"backlog\":%d,\"wait_ms\":%.3f"
              ",\"readers_idle\":%.2f,\"syn_filter\":%s,\"syn_shedding\":%s"
              ",\"syns\":%" PRIu64 ",\"syn_retries\":%" PRIu64
              ",\"syn_retries_dropped\":%" PRIu64 "}",
              __atomic_load_n(&sl_srv.adm_dropping, __ATOMIC_RELAXED) ? "true" : "false",
              e->shed_queue_wait, e->refused_full, e->conn_rejected, e->closed_idle,
              as.policy, as.limit, as.admitted, as.waiting, as.backlog, as.wait_ms, as.idle,
              as.syn_filter ? "true" : "false", as.syn_shedding ? "true" : "false", as.syns,
              as.syn_retries, as.syn_retries_dropped);
    sb_printf(b,
              ",\"requests\":{\"total\":%" PRIu64 ",\"1xx\":%" PRIu64 ",\"2xx\":%" PRIu64
              ",\"3xx\":%" PRIu64 ",\"4xx\":%" PRIu64 ",\"5xx\":%" PRIu64
              ",\"inline\":%" PRIu64 "}",
              e->requests, e->status_class[1], e->status_class[2], e->status_class[3],
              e->status_class[4], e->status_class[5], e->sent_inline);
    sb_printf(b, ",\"bytes_sent\":%" PRIu64 ",\"body_bytes_sent\":%" PRIu64,
              e->bytes_sent, e->body_bytes_sent);
    sb_printf(b,
              ",\"draining\":%s,\"proxy\":{\"bad\":%" PRIu64 ",\"untrusted\":%" PRIu64
              "},\"response_us\":{\"p50\":%.3f,\"p99\":%.3f,\"count\":%" PRIu64 "}",
              s->draining ? "true" : "false", e->proxy_bad, e->proxy_untrusted,
              us(sl_hist_quantile(&s->response_time, 0.5)),
              us(sl_hist_quantile(&s->response_time, 0.99)), s->response_time.count);
    sb_printf(b,
              ",\"cache\":{\"entries\":%zu,\"open_fds\":%zu,\"hits\":%" PRIu64
              ",\"misses\":%" PRIu64 ",\"revalidations\":%" PRIu64
              ",\"evictions\":%" PRIu64 "}",
              s->cache.entries, s->cache.open_fds, e->cache_hits, e->cache_misses,
              e->cache_revalidations, e->cache_evictions);
    sb_printf(b, ",\"config\":%s,\"stats_blocks\":%zu",
              s->config_json[0] ? s->config_json : "null", s->stats_blocks);
    if (s->reload == RELOAD_NONE) {
        sb_puts(b, ",\"last_reload\":null}");
    } else {
        sb_printf(b, ",\"last_reload\":{\"ok\":%s,\"age_s\":%.3f,\"message\":",
                  s->reload == RELOAD_OK ? "true" : "false",
                  (double)s->reload_age_ns / 1e9);
        sb_json_str(b, s->reload_msg);
        sb_puts(b, "}}");
    }
}

/* ---- stats (table) ---- */

/* "1h02m03s" */
static void format_duration(char *out, size_t n, uint64_t ns)
{
    uint64_t s = ns / 1000000000ull;
    if (s >= 86400)
        snprintf(out, n, "%" PRIu64 "d%02" PRIu64 "h%02" PRIu64 "m", s / 86400,
                 s % 86400 / 3600, s % 3600 / 60);
    else if (s >= 3600)
        snprintf(out, n, "%" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s", s / 3600,
                 s % 3600 / 60, s % 60);
    else if (s >= 60)
        snprintf(out, n, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
    else
        snprintf(out, n, "%.1fs", (double)ns / 1e9);
}

/* Several lines, none empty, each ending in "\n". Pure. */
static void format_table(struct sbuf *b, const struct status_sample *s,
                         const double busy[NSTAGES], double interval_s)
{
    char up[32];
    format_duration(up, sizeof(up), s->uptime_ns);
    sb_printf(b,
              "sluice %s  pid %ld  up %s  queue %s  optimistic writes %s  generation %lu "
              "(%lu failed reloads)\n",
              STATUS_VERSION, s->pid, up, s->queue_kind,
              s->optimistic_write ? "on" : "off", s->generation, s->failed_reloads);
    sb_printf(b, "%-9s %4s %6s %12s %11s %6s %6s %7s %7s %12s %12s %9s %9s %9s %9s\n",
              "stage", "thr", "busy%", "processed", "batches", "batch", "bmax", "depth",
              "maxdep", "enqueued", "dequeued", "wait50us", "wait90us", "wait99us",
              "waitmax");
    for (int i = 0; i < NSTAGES; i++) {
        const struct stage_view *v = &s->stage[i];
        sb_printf(b,
                  "%-9s %4d %6.1f %12" PRIu64 " %11" PRIu64 " %6.1f %6" PRIu64
                  " %7ld %7ld %12" PRIu64 " %12" PRIu64 " %9.1f %9.1f %9.1f %9.1f\n",
                  sl_stage_name((enum sl_stage_id)i), v->threads, busy[i] * 100.0,
                  v->processed, v->batches, batch_mean(v), v->batch_max, v->depth,
                  v->max_depth, v->enqueued, v->dequeued, us(v->wait_p50_ns),
                  us(v->wait_p90_ns), us(v->wait_p99_ns), us(v->wait_max_ns));
    }
    sb_printf(b, "busy%% is over the last %.1fs; queue waits are since start\n",
              interval_s);
    const struct sl_event_counters *e = &s->ev;
    sb_printf(b,
              "connections: %ld open, %" PRIu64 " accepted, %" PRIu64 " closed, %" PRIu64
              " rejected, %" PRIu64 " accept errors\n",
              s->conns, e->conn_accepted, e->conn_closed, e->conn_rejected,
              e->accept_errors);
    sb_printf(b,
              "admission: %s; shed %" PRIu64 " (queue wait), at max_connections %" PRIu64
              " refused with 503, %" PRIu64 " closed; %" PRIu64 " idle closed for room\n",
              __atomic_load_n(&sl_srv.adm_dropping, __ATOMIC_RELAXED) ? "DROPPING" : "ok",
              e->shed_queue_wait, e->refused_full, e->conn_rejected, e->closed_idle);
    struct sl_adm_state as;
    sl_adm_state(&as);
    sb_printf(b,
              "admission limit (%s): %ld admitted of %ld, %ld waiting in a backlog of %d, "
              "mean internal wait %.1f ms, readers idle %.0f%%\n",
              as.policy, as.admitted, as.limit, as.waiting, as.backlog, as.wait_ms,
              as.idle * 100);
    if (as.syn_filter)
        sb_printf(b,
                  "SYN filter: %s; %" PRIu64 " SYNs, %" PRIu64 " retransmitted, %" PRIu64
                  " of them dropped\n",
                  as.syn_shedding ? "dropping retransmissions" : "letting all through",
                  as.syns, as.syn_retries, as.syn_retries_dropped);
    sb_printf(b,
              "requests: %" PRIu64 " (1xx %" PRIu64 ", 2xx %" PRIu64 ", 3xx %" PRIu64
              ", 4xx %" PRIu64 ", 5xx %" PRIu64 "), %" PRIu64
              " sent inline by a reader\n",
              e->requests, e->status_class[1], e->status_class[2], e->status_class[3],
              e->status_class[4], e->status_class[5], e->sent_inline);
    sb_printf(b, "sent: %" PRIu64 " bytes, headers included (%" PRIu64 " of them body)\n",
              e->bytes_sent, e->body_bytes_sent);
    sb_printf(b,
              "cache: %zu entries, %zu open fds, %" PRIu64 " hits, %" PRIu64
              " misses, %" PRIu64 " revalidations, %" PRIu64 " evictions\n",
              s->cache.entries, s->cache.open_fds, e->cache_hits, e->cache_misses,
              e->cache_revalidations, e->cache_evictions);
    if (s->reload == RELOAD_NONE) {
        sb_puts(b, "last reload: none\n");
    } else {
        char ago[32];
        format_duration(ago, sizeof(ago), s->reload_age_ns);
        sb_printf(b, "last reload: %s %s ago%s%s\n",
                  s->reload == RELOAD_OK ? "ok" : "FAILED", ago,
                  s->reload_msg[0] ? ": " : "", s->reload_msg);
    }
}

/* ---- metrics (Prometheus text exposition format 0.0.4) ---- */

static void metric_head(struct sbuf *b, const char *name, const char *type,
                        const char *help)
{
    sb_printf(b, "# HELP sluice_%s %s\n# TYPE sluice_%s %s\n", name, help, name, type);
}

static void metric_u64(struct sbuf *b, const char *name, const char *type,
                       const char *help, uint64_t v)
{
    metric_head(b, name, type, help);
    sb_printf(b, "sluice_%s %" PRIu64 "\n", name, v);
}

enum stage_field {
    F_THREADS,
    F_BUSY_S,
    F_PROCESSED,
    F_BATCHES,
    F_BATCH_ITEMS,
    F_BATCH_MAX,
    F_DEPTH,
    F_MAX_DEPTH,
    F_ENQUEUED,
    F_DEQUEUED,
    F_WAIT_MAX_S,
};

static void stage_value(struct sbuf *b, const struct stage_view *v, enum stage_field f)
{
    switch (f) {
    case F_THREADS:
        sb_printf(b, "%d", v->threads);
        break;
    case F_BUSY_S:
        sb_printf(b, "%.9f", (double)v->busy_ns / 1e9);
        break;
    case F_PROCESSED:
        sb_printf(b, "%" PRIu64, v->processed);
        break;
    case F_BATCHES:
        sb_printf(b, "%" PRIu64, v->batches);
        break;
    case F_BATCH_ITEMS:
        sb_printf(b, "%" PRIu64, v->batch_items);
        break;
    case F_BATCH_MAX:
        sb_printf(b, "%" PRIu64, v->batch_max);
        break;
    case F_DEPTH:
        sb_printf(b, "%ld", v->depth);
        break;
    case F_MAX_DEPTH:
        sb_printf(b, "%ld", v->max_depth);
        break;
    case F_ENQUEUED:
        sb_printf(b, "%" PRIu64, v->enqueued);
        break;
    case F_DEQUEUED:
        sb_printf(b, "%" PRIu64, v->dequeued);
        break;
    case F_WAIT_MAX_S:
        sb_printf(b, "%.9f", (double)v->wait_max_ns / 1e9);
        break;
    }
}

static void metric_stages(struct sbuf *b, const struct status_sample *s, const char *name,
                          const char *type, const char *help, enum stage_field f)
{
    metric_head(b, name, type, help);
    for (int i = 0; i < NSTAGES; i++) {
        sb_printf(b, "sluice_%s{stage=\"%s\"} ", name,
                  sl_stage_name((enum sl_stage_id)i));
        stage_value(b, &s->stage[i], f);
        sb_puts(b, "\n");
    }
}

/* Lines ending in "\n", none empty. Pure. */
static void format_metrics(struct sbuf *b, const struct status_sample *s)
{
    metric_head(b, "info", "gauge", "Build and configuration of this sluice (always 1).");
    sb_printf(b,
              "sluice_info{version=\"%s\",queue_kind=\"%s\",optimistic_write=\"%s\"} 1\n",
              STATUS_VERSION, s->queue_kind, s->optimistic_write ? "true" : "false");
    metric_head(b, "uptime_seconds", "gauge", "Seconds since the server started.");
    sb_printf(b, "sluice_uptime_seconds %.3f\n", (double)s->uptime_ns / 1e9);
    metric_u64(b, "config_generation", "gauge",
               "Successful configuration reloads so far.", s->generation);
    metric_u64(b, "config_reload_failures_total", "counter",
               "Configuration reloads that failed.", s->failed_reloads);

    metric_stages(b, s, "stage_threads", "gauge", "Threads running in the stage.",
                  F_THREADS);
    metric_stages(b, s, "stage_busy_seconds_total", "counter",
                  "Thread time the stage spent working (summed over its threads).",
                  F_BUSY_S);
    metric_stages(
        b, s, "stage_processed_total", "counter",
        "Items the stage finished (acceptor: connections, reader: request heads "
        "parsed, detector: connections found writable, writer: responses sent).",
        F_PROCESSED);
    metric_stages(b, s, "stage_batches_total", "counter",
                  "Non-empty batches the stage took off its queue.", F_BATCHES);
    metric_stages(b, s, "stage_batch_items_total", "counter",
                  "Items in those batches (mean batch = items / batches).",
                  F_BATCH_ITEMS);
    metric_stages(b, s, "stage_batch_max", "gauge", "Largest batch taken so far.",
                  F_BATCH_MAX);
    metric_stages(b, s, "queue_depth", "gauge",
                  "Items waiting in the queue feeding the stage (acceptor: the kernel "
                  "accept queue).",
                  F_DEPTH);
    metric_stages(b, s, "queue_max_depth", "gauge",
                  "Largest depth seen (acceptor: largest seen by the status thread).",
                  F_MAX_DEPTH);
    metric_stages(b, s, "queue_enqueued_total", "counter",
                  "Items pushed onto the queue feeding the stage.", F_ENQUEUED);
    metric_stages(b, s, "queue_dequeued_total", "counter",
                  "Items taken off the queue feeding the stage.", F_DEQUEUED);

    /* The acceptor's queue is the kernel's, which keeps no wait times.
       Histograms with fixed bounds (core/prom.h), so a fleet's series add up. */
    metric_head(b, "queue_wait_seconds", "histogram",
                "Time items spent in the queue feeding the stage (not measured for the "
                "acceptor).");
    struct sl_text t = {0};
    for (int i = 1; i < NSTAGES; i++) {
        char labels[48];
        snprintf(labels, sizeof(labels), "stage=\"%s\"", sl_stage_name((enum sl_stage_id)i));
        sl_prom_histogram(&t, "sluice_queue_wait_seconds", labels, &s->stage[i].wait_hist);
    }
    metric_head(b, "response_seconds", "histogram",
                "Time from a request head parsed to its response sent completely.");
    sl_prom_histogram(&t, "sluice_response_seconds", "", &s->response_time);
    if (t.len)
        sb_put(b, t.p, t.len);
    free(t.p);
    metric_head(b, "queue_wait_max_seconds", "gauge",
                "Longest time an item spent in the queue feeding the stage.");
    for (int i = 1; i < NSTAGES; i++) {
        sb_printf(b, "sluice_queue_wait_max_seconds{stage=\"%s\"} ",
                  sl_stage_name((enum sl_stage_id)i));
        stage_value(b, &s->stage[i], F_WAIT_MAX_S);
        sb_puts(b, "\n");
    }

    const struct sl_event_counters *e = &s->ev;
    metric_head(b, "connections_open", "gauge", "Client connections open now.");
    sb_printf(b, "sluice_connections_open %ld\n", s->conns);
    metric_u64(b, "connections_accepted_total", "counter", "Connections accepted.",
               e->conn_accepted);
    metric_u64(b, "connections_closed_total", "counter", "Connections closed.",
               e->conn_closed);
    metric_u64(b, "connections_rejected_total", "counter",
               "Connections refused at max_connections.", e->conn_rejected);
    metric_head(b, "shed_total", "counter",
                "Work turned away by admission control, by reason.");
    sb_printf(b, "sluice_shed_total{reason=\"queue_wait\"} %" PRIu64 "\n",
              e->shed_queue_wait);
    sb_printf(b, "sluice_shed_total{reason=\"refused_full\"} %" PRIu64 "\n",
              e->refused_full);
    sb_printf(b, "sluice_shed_total{reason=\"closed_full\"} %" PRIu64 "\n",
              e->conn_rejected);
    sb_printf(b, "sluice_shed_total{reason=\"closed_idle\"} %" PRIu64 "\n",
              e->closed_idle);
    metric_head(b, "admission_dropping", "gauge",
                "1 while a reader sheds work (queue wait above target).");
    sb_printf(b, "sluice_admission_dropping %d\n",
              __atomic_load_n(&sl_srv.adm_dropping, __ATOMIC_RELAXED) ? 1 : 0);
    metric_head(b, "draining", "gauge",
                "1 while draining: readiness fails, the listener closes after drain_delay.");
    sb_printf(b, "sluice_draining %d\n", s->draining ? 1 : 0);
    metric_head(b, "proxy_rejected_total", "counter",
                "Connections closed unanswered for their PROXY header, by reason.");
    sb_printf(b, "sluice_proxy_rejected_total{reason=\"bad\"} %" PRIu64 "\n", e->proxy_bad);
    sb_printf(b, "sluice_proxy_rejected_total{reason=\"untrusted\"} %" PRIu64 "\n",
              e->proxy_untrusted);
    struct sl_adm_state as;
    sl_adm_state(&as);
    metric_head(b, "admission_limit", "gauge",
                "Open connections admitted at most now (the adaptive limit).");
    sb_printf(b, "sluice_admission_limit %ld\n", as.limit);
    metric_head(b, "admission_waiting", "gauge",
                "Connections waiting in the kernel's accept queue.");
    sb_printf(b, "sluice_admission_waiting %ld\n", as.waiting);
    metric_head(b, "admission_backlog", "gauge", "The listen backlog.");
    sb_printf(b, "sluice_admission_backlog %d\n", as.backlog);
    metric_head(b, "admission_queue_wait_seconds", "gauge",
                "Mean queue wait inside sluice over the last admission interval.");
    sb_printf(b, "sluice_admission_queue_wait_seconds %.6f\n",
              as.wait_ms < 0 ? 0.0 : as.wait_ms / 1000);
    metric_head(b, "admission_readers_idle_ratio", "gauge",
                "Share of the last admission interval the readers waited for work.");
    sb_printf(b, "sluice_admission_readers_idle_ratio %.2f\n", as.idle);
    metric_head(b, "admission_syns_total", "counter",
                "SYNs that reached the listener, seen by the SYN filter, by kind: new, "
                "retransmitted and let through, retransmitted and dropped.");
    sb_printf(b, "sluice_admission_syns_total{kind=\"new\"} %" PRIu64 "\n",
              as.syns - as.syn_retries);
    sb_printf(b, "sluice_admission_syns_total{kind=\"retransmitted\"} %" PRIu64 "\n",
              as.syn_retries - as.syn_retries_dropped);
    sb_printf(b, "sluice_admission_syns_total{kind=\"dropped\"} %" PRIu64 "\n",
              as.syn_retries_dropped);
    metric_u64(b, "accept_errors_total", "counter",
               "accept() failures other than EAGAIN and aborted connections.",
               e->accept_errors);
    metric_u64(b, "requests_total", "counter", "Responses sent completely.", e->requests);
    metric_u64(b, "requests_inline_total", "counter",
               "Responses a reader sent whole itself, without the writer pool.",
               e->sent_inline);
    metric_head(b, "responses_total", "counter",
                "Responses sent completely, by status class.");
    for (int c = 1; c <= 5; c++)
        sb_printf(b, "sluice_responses_total{class=\"%dxx\"} %" PRIu64 "\n", c,
                  e->status_class[c]);
    metric_u64(b, "sent_bytes_total", "counter",
               "Bytes written to clients, response headers included.", e->bytes_sent);
    metric_u64(b, "sent_body_bytes_total", "counter",
               "Response body bytes written to clients.", e->body_bytes_sent);
    metric_u64(b, "cache_entries", "gauge", "Entries in the fd/header cache.",
               (uint64_t)s->cache.entries);
    metric_u64(b, "cache_open_fds", "gauge", "Files the cache holds open.",
               (uint64_t)s->cache.open_fds);
    metric_u64(b, "cache_hits_total", "counter", "Cache lookups answered from the cache.",
               e->cache_hits);
    metric_u64(b, "cache_misses_total", "counter", "Cache lookups that opened the file.",
               e->cache_misses);
    metric_u64(b, "cache_revalidations_total", "counter",
               "Cache entries checked again against the file system.",
               e->cache_revalidations);
    metric_u64(b, "cache_evictions_total", "counter", "Cache entries evicted.",
               e->cache_evictions);
}

/* ---- commands ---- */

enum cmd_kind {
    CMD_NONE, /* empty line: ignored */
    CMD_HELP,
    CMD_STATS,
    CMD_STATS_JSON,
    CMD_METRICS,
    CMD_SET, /* stage, n */
    CMD_DRAIN,
    CMD_QUIT,
    CMD_ERROR, /* err says why */
};

struct command {
    enum cmd_kind kind;
    char stage[16];
    int n;
    char err[160];
};

#define MAX_TOKENS 4

static const char help_text[] =
    "commands (one per line; every reply ends with an empty line):\n"
    "  help                  this list\n"
    "  stats                 a table of every stage, connections, requests, cache\n"
    "  stats json            the same figures as one JSON object on one line\n"
    "  metrics               the same figures in the Prometheus text format\n"
    "  set STAGE.threads N   resize a stage live (writer, acceptor)\n"
    "  drain                 stop as on SIGTERM: readiness fails, then drain_delay,\n"
    "                        then the listener closes and responses in flight finish\n"
    "  quit                  close this connection\n";

/* Copies at most 40 bytes of S (length N) into OUT for an error message,
 * replacing bytes that are not printable ASCII with '?'. */
static void sanitize(char *out, size_t outsz, const char *s, size_t n)
{
    size_t max = SL_MIN(n, (size_t)40);
    size_t i = 0;
    for (; i < max && i + 1 < outsz; i++)
        out[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (n > max && i + 4 < outsz) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
}

static bool tok_is(const char *t, size_t n, const char *word)
{
    return strlen(word) == n && memcmp(t, word, n) == 0;
}

/* Parses one line (LEN bytes, no newline; a trailing '\r' is ignored) into
 * OUT. Tokens are separated by spaces and tabs. Cannot fail: a bad line gives
 * CMD_ERROR with the reason in OUT->err. Pure. */
static void parse_command(const char *line, size_t len, struct command *out)
{
    memset(out, 0, sizeof(*out));
    const char *tok[MAX_TOKENS + 1];
    size_t tlen[MAX_TOKENS + 1];
    int nt = 0;
    size_t i = 0;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    while (i < len) {
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i == len)
            break;
        size_t start = i;
        while (i < len && line[i] != ' ' && line[i] != '\t')
            i++;
        if (nt == MAX_TOKENS + 1) {
            nt++;
            break;
        }
        tok[nt] = line + start;
        tlen[nt] = i - start;
        nt++;
    }
    if (nt == 0) {
        out->kind = CMD_NONE;
        return;
    }
    char w[48];
    if (nt > MAX_TOKENS) {
        snprintf(out->err, sizeof(out->err), "too many words (try: help)");
        out->kind = CMD_ERROR;
        return;
    }
    if (tok_is(tok[0], tlen[0], "help") || tok_is(tok[0], tlen[0], "?")) {
        out->kind = nt == 1 ? CMD_HELP : CMD_ERROR;
        if (nt != 1)
            snprintf(out->err, sizeof(out->err), "help takes no arguments");
        return;
    }
    if (tok_is(tok[0], tlen[0], "stats")) {
        if (nt == 1) {
            out->kind = CMD_STATS;
        } else if (nt == 2 && tok_is(tok[1], tlen[1], "json")) {
            out->kind = CMD_STATS_JSON;
        } else {
            sanitize(w, sizeof(w), tok[1], tlen[1]);
            out->kind = CMD_ERROR;
            snprintf(out->err, sizeof(out->err), "usage: stats [json] (got '%s'%s)", w,
                     nt > 2 ? " and more" : "");
        }
        return;
    }
    if (tok_is(tok[0], tlen[0], "drain")) {
        out->kind = nt == 1 ? CMD_DRAIN : CMD_ERROR;
        if (nt != 1)
            snprintf(out->err, sizeof(out->err), "drain takes no arguments");
        return;
    }
    if (tok_is(tok[0], tlen[0], "metrics")) {
        out->kind = nt == 1 ? CMD_METRICS : CMD_ERROR;
        if (nt != 1)
            snprintf(out->err, sizeof(out->err), "metrics takes no arguments");
        return;
    }
    if (tok_is(tok[0], tlen[0], "quit") || tok_is(tok[0], tlen[0], "exit")) {
        out->kind = nt == 1 ? CMD_QUIT : CMD_ERROR;
        if (nt != 1)
            snprintf(out->err, sizeof(out->err), "quit takes no arguments");
        return;
    }
    if (tok_is(tok[0], tlen[0], "set")) {
        out->kind = CMD_ERROR;
        if (nt != 3) {
            snprintf(out->err, sizeof(out->err), "usage: set STAGE.threads N");
            return;
        }
        const char *key = tok[1];
        size_t klen = tlen[1];
        static const char suffix[] = ".threads";
        size_t sl = sizeof(suffix) - 1;
        if (klen <= sl || memcmp(key + klen - sl, suffix, sl) != 0) {
            sanitize(w, sizeof(w), key, klen);
            snprintf(out->err, sizeof(out->err),
                     "cannot set '%s': only STAGE.threads can be set", w);
            return;
        }
        size_t stlen = klen - sl;
        static const char *const stages[] = {"acceptor", "reader", "detector", "writer"};
        bool known = false;
        for (size_t k = 0; k < SL_ARRAY_LEN(stages); k++)
            if (tok_is(key, stlen, stages[k]))
                known = true;
        if (!known) {
            sanitize(w, sizeof(w), key, stlen);
            snprintf(out->err, sizeof(out->err),
                     "unknown stage '%s' (acceptor, reader, detector, writer)", w);
            return;
        }
        memcpy(out->stage, key, stlen);
        out->stage[stlen] = '\0';
        long n = 0;
        bool ok = tlen[2] > 0 && tlen[2] <= 9;
        for (size_t k = 0; ok && k < tlen[2]; k++) {
            if (tok[2][k] < '0' || tok[2][k] > '9')
                ok = false;
            else
                n = n * 10 + (tok[2][k] - '0');
        }
        if (!ok) {
            sanitize(w, sizeof(w), tok[2], tlen[2]);
            snprintf(out->err, sizeof(out->err), "'%s' is not a thread count", w);
            return;
        }
        out->n = (int)n;
        out->kind = CMD_SET;
        return;
    }
    sanitize(w, sizeof(w), tok[0], tlen[0]);
    out->kind = CMD_ERROR;
    snprintf(out->err, sizeof(out->err), "unknown command '%s' (try: help)", w);
}

/* ---- the running status socket ---- */

struct client {
    int fd;
    size_t in_len;
    bool discarding; /* a line was too long: drop input up to its newline */
    bool closing;    /* close once the output is flushed */
    struct sbuf out;
    struct busy_prev prev;
    char in[MAX_LINE];
};

static struct {
    bool running;
    pthread_t tid;
    int listen_fd;
    int wake_fd;
    char *path;
    dev_t dev; /* the socket file we created, so we never remove another's */
    ino_t ino;
    struct client *clients[MAX_CLIENTS];
    int nclients;
    long acceptor_max_depth; /* largest accept backlog seen when sampling */
} st = {.listen_fd = -1, .wake_fd = -1};

static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    enum reload_state state;
    uint64_t at_ns;
    char msg[256];
} reload_info;

void sl_status_reload_result(bool ok, const char *msg)
{
    pthread_mutex_lock(&reload_lock);
    reload_info.state = ok ? RELOAD_OK : RELOAD_FAILED;
    reload_info.at_ns = sl_now_ns();
    snprintf(reload_info.msg, sizeof(reload_info.msg), "%s", msg ? msg : "");
    pthread_mutex_unlock(&reload_lock);
}

static void queue_view(struct stage_view *v, const struct sl_queue *q)
{
    v->depth += sl_queue_depth(q);
    long m = sl_queue_max_depth(q);
    if (m > v->max_depth)
        v->max_depth = m;
}

/* Reads everything the socket reports. Status thread only. */
static void gather(struct status_sample *s)
{
    memset(s, 0, sizeof(*s));
    sl_settings_refresh();
    for (int i = 0; i < NSTAGES; i++) {
        s->stage[i].threads = sl_server_threads((enum sl_stage_id)i);
        s->stage[i].limit = -1;
    }
    /* The acceptor's queue is the kernel's accept queue: for a listening
       socket, TCP_INFO reports its length (unacked) and limit (sacked). */
    struct stage_view *a = &s->stage[SL_STAGE_ACCEPTOR];
    struct tcp_info ti;
    socklen_t tl = sizeof(ti);
    if (sl_srv.listen_fd >= 0 &&
        getsockopt(sl_srv.listen_fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0) {
        a->depth = (long)ti.tcpi_unacked;
        a->limit = (long)ti.tcpi_sacked;
    }
    /* Two threads sample (this one and the HTTP status listener): keep the
       largest with an atomic max. */
    long seen = __atomic_load_n(&st.acceptor_max_depth, __ATOMIC_RELAXED);
    while (a->depth > seen &&
           !__atomic_compare_exchange_n(&st.acceptor_max_depth, &seen, a->depth, false,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
    a->max_depth = __atomic_load_n(&st.acceptor_max_depth, __ATOMIC_RELAXED);
    for (int i = 0; i < sl_srv.nreaders; i++)
        queue_view(&s->stage[SL_STAGE_READER], &sl_srv.reader_q[i]);
    queue_view(&s->stage[SL_STAGE_DETECTOR], &sl_srv.detector_q);
    queue_view(&s->stage[SL_STAGE_WRITER], &sl_srv.writer_q);

    /* The snapshot is large (histograms); it lives on this thread's stack. */
    struct sl_stats_snapshot snap;
    sl_stats_snapshot(&snap);
    s->now_ns = sl_now_ns();
    sample_fill(s, &snap);

    s->uptime_ns = s->now_ns - sl_srv.start_ns;
    s->pid = (long)getpid();
    s->queue_kind = sl_queue_kind_name(sl_srv.writer_q.kind);
    s->optimistic_write = sl_set.optimistic_write;
    s->generation = __atomic_load_n(&sl_srv.generation, __ATOMIC_RELAXED);
    s->failed_reloads = __atomic_load_n(&sl_srv.failed_reloads, __ATOMIC_RELAXED);
    s->conns = __atomic_load_n(&sl_srv.conns, __ATOMIC_RELAXED);
    s->draining = __atomic_load_n(&sl_srv.draining, __ATOMIC_RELAXED) != 0;
    if (sl_srv.cache)
        sl_cache_info(sl_srv.cache, &s->cache);
    if (sl_server_config_json(s->config_json, sizeof(s->config_json)) >=
        sizeof(s->config_json))
        s->config_json[0] = '\0'; /* truncated: report null, not broken JSON */
    s->stats_blocks = sl_stats_blocks();
    pthread_mutex_lock(&reload_lock);
    s->reload = reload_info.state;
    s->reload_age_ns = s->now_ns > reload_info.at_ns ? s->now_ns - reload_info.at_ns : 0;
    memcpy(s->reload_msg, reload_info.msg, sizeof(s->reload_msg));
    pthread_mutex_unlock(&reload_lock);
}

/* Runs one command line, appending the reply (and its empty terminator line)
 * to C's output. */
static void run_line(struct client *c, const char *line, size_t len)
{
    struct command cmd;
    parse_command(line, len, &cmd);
    struct sbuf *o = &c->out;
    switch (cmd.kind) {
    case CMD_NONE:
        return;
    case CMD_HELP:
        sb_puts(o, help_text);
        break;
    case CMD_STATS:
    case CMD_STATS_JSON: {
        struct status_sample s;
        double busy[NSTAGES];
        gather(&s);
        double iv = busy_since(&s, &c->prev, busy);
        if (cmd.kind == CMD_STATS) {
            format_table(o, &s, busy, iv);
        } else {
            format_json(o, &s, busy, iv);
            sb_puts(o, "\n");
        }
        break;
    }
    case CMD_METRICS: {
        struct status_sample s;
        gather(&s);
        format_metrics(o, &s);
        break;
    }
    case CMD_SET: {
        char err[200];
        if (sl_server_set_threads(cmd.stage, cmd.n, err, sizeof(err)) == SL_OK)
            sb_printf(o, "ok %s.threads=%d\n", cmd.stage, cmd.n);
        else
            sb_printf(o, "error: %s\n", err);
        break;
    }
    case CMD_DRAIN:
        /* The main thread runs the drain, as for SIGTERM (it alone takes
           signals; every other thread blocks them). */
        if (kill(getpid(), SIGTERM) == 0)
            sb_puts(o, "ok draining\n");
        else
            sb_printf(o, "error: %s\n", strerror(errno));
        break;
    case CMD_QUIT:
        c->closing = true;
        return;
    case CMD_ERROR:
        sb_printf(o, "error: %s\n", cmd.err);
        break;
    }
    sb_puts(o, "\n");
}

static size_t out_pending(const struct client *c)
{
    return c->out.len - c->out.off;
}

/* Runs the complete lines buffered in C while its output is below OUT_HIGH;
 * keeps the rest. At EOF a last unterminated line counts too. */
static void run_lines(struct client *c, bool eof)
{
    size_t pos = 0;
    while (pos < c->in_len && !c->closing && out_pending(c) < OUT_HIGH) {
        char *nl = memchr(c->in + pos, '\n', c->in_len - pos);
        if (nl == NULL)
            break;
        size_t n = (size_t)(nl - (c->in + pos));
        if (c->discarding)
            c->discarding = false; /* the end of the long line */
        else
            run_line(c, c->in + pos, n);
        pos += n + 1;
    }
    if (pos > 0) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    if (c->in_len == sizeof(c->in) && memchr(c->in, '\n', c->in_len) == NULL) {
        if (!c->discarding)
            sb_printf(&c->out, "error: line too long (max %d bytes)\n\n", MAX_LINE);
        c->discarding = true;
        c->in_len = 0;
    }
    if (eof && !c->closing && out_pending(c) < OUT_HIGH && c->in_len > 0) {
        if (!c->discarding && memchr(c->in, '\n', c->in_len) == NULL) {
            run_line(c, c->in, c->in_len);
            c->in_len = 0;
        }
    }
}

static void client_close(int i)
{
    struct client *c = st.clients[i];
    close(c->fd);
    sb_free(&c->out);
    free(c);
    st.clients[i] = st.clients[--st.nclients];
}

/* Sends what C has pending. Returns SL_OK, or SL_ERR if C is gone. */
static int client_flush(struct client *c)
{
    while (out_pending(c) > 0) {
        ssize_t n = send(c->fd, c->out.p + c->out.off, out_pending(c),
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return SL_OK;
            return SL_ERR;
        }
        c->out.off += (size_t)n;
    }
    c->out.off = c->out.len = 0;
    /* Let a buffer grown by a burst of commands go. */
    if (c->out.cap > 64 * 1024)
        sb_free(&c->out);
    return SL_OK;
}

/* Reads what C sent and runs its commands. Returns SL_OK, or SL_ERR if C is
 * gone (error, or EOF with nothing left to send). */
static int client_read(struct client *c)
{
    for (int round = 0; round < 16; round++) {
        if (c->closing || out_pending(c) >= OUT_HIGH || c->in_len == sizeof(c->in))
            return SL_OK;
        ssize_t n =
            recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return SL_OK;
            return SL_ERR;
        }
        if (n == 0) {
            run_lines(c, true);
            c->closing = true;
            return SL_OK;
        }
        c->in_len += (size_t)n;
        run_lines(c, false);
    }
    return SL_OK;
}

static void accept_clients(void)
{
    for (int k = 0; k < ACCEPT_BATCH; k++) {
        int fd = accept4(st.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN)
                sl_log(SL_LOG_WARN, "status socket: accept: %s", strerror(errno));
            return;
        }
        if (st.nclients == MAX_CLIENTS) {
            static const char msg[] = "error: too many status clients\n\n";
            (void)!send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            close(fd);
            continue;
        }
        struct client *c = sl_malloc(sizeof(*c));
        memset(c, 0, offsetof(struct client, in));
        c->fd = fd;
        /* The first `stats` reports busy since the server started. */
        c->prev.ns = sl_srv.start_ns;
        st.clients[st.nclients++] = c;
    }
}

static void *status_main(void *arg)
{
    (void)arg;
    sl_set_thread_name("status");
    rcu_register_thread(); /* in case the cache reads under rcu_read_lock */
    struct pollfd pfd[2 + MAX_CLIENTS];
    for (;;) {
        pfd[0] = (struct pollfd){.fd = st.wake_fd, .events = POLLIN};
        pfd[1] = (struct pollfd){.fd = st.listen_fd, .events = POLLIN};
        int nc = st.nclients;
        for (int i = 0; i < nc; i++) {
            struct client *c = st.clients[i];
            short ev = 0;
            if (out_pending(c) > 0)
                ev |= POLLOUT;
            if (!c->closing && out_pending(c) < OUT_HIGH)
                ev |= POLLIN;
            pfd[2 + i] = (struct pollfd){.fd = c->fd, .events = ev};
        }
        int n = poll(pfd, (nfds_t)(2 + nc), -1);
        if (n < 0) {
            if (errno != EINTR) {
                sl_log(SL_LOG_ERROR, "status socket: poll: %s", strerror(errno));
                poll(NULL, 0, 100); /* do not spin */
            }
            continue;
        }
        if (pfd[0].revents)
            break;
        /* Clients from the last index down: closing one moves the last into
           its slot, which was already handled. Newly accepted ones (after nc)
           wait for the next round. */
        for (int i = nc - 1; i >= 0; i--) {
            struct client *c = st.clients[i];
            short re = pfd[2 + i].revents;
            int rc = SL_OK;
            if (re & (POLLIN | POLLHUP | POLLERR))
                rc = client_read(c);
            if (rc == SL_OK)
                rc = client_flush(c);
            /* Output drained below the mark: run lines left waiting. */
            if (rc == SL_OK && !c->closing && c->in_len > 0 &&
                out_pending(c) < OUT_HIGH) {
                run_lines(c, false);
                rc = client_flush(c);
            }
            if (rc != SL_OK || (c->closing && out_pending(c) == 0) || (re & POLLNVAL))
                client_close(i);
        }
        if (pfd[1].revents & POLLIN)
            accept_clients();
    }
    while (st.nclients > 0)
        client_close(st.nclients - 1);
    rcu_unregister_thread();
    return NULL;
}

/* Checks PATH before binding: a socket nobody answers on is stale (removed);
 * a live one or anything that is not a socket is refused. */
static int claim_path(const char *path, const struct sockaddr_un *sa)
{
    struct stat sb;
    if (lstat(path, &sb) != 0) {
        if (errno == ENOENT)
            return SL_OK;
        sl_log(SL_LOG_CRIT, "status socket %s: %s", path, strerror(errno));
        return SL_ERR;
    }
    if (!S_ISSOCK(sb.st_mode)) {
        sl_log(SL_LOG_CRIT,
               "status socket %s: exists and is not a socket; not replacing it", path);
        return SL_ERR;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        sl_log(SL_LOG_CRIT, "status socket: socket: %s", strerror(errno));
        return SL_ERR;
    }
    int rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
    int err = errno;
    close(fd);
    if (rc == 0) {
        sl_log(SL_LOG_CRIT, "status socket %s: another sluice is running on it", path);
        return SL_ERR;
    }
    if (err != ECONNREFUSED) {
        sl_log(SL_LOG_CRIT, "status socket %s: cannot check whether it is in use: %s",
               path, strerror(err));
        return SL_ERR;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        sl_log(SL_LOG_CRIT, "status socket %s: cannot remove the stale socket: %s", path,
               strerror(errno));
        return SL_ERR;
    }
    sl_log(SL_LOG_INFO, "status socket %s: replaced a stale socket file", path);
    return SL_OK;
}

int sl_status_start(const char *path, mode_t mode)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (path == NULL || path[0] == '\0' || strlen(path) >= sizeof(sa.sun_path)) {
        sl_log(SL_LOG_CRIT,
               "server.status_socket: path '%s' is empty or longer than %zu bytes",
               path ? path : "", sizeof(sa.sun_path) - 1);
        return SL_ERR;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (claim_path(path, &sa) != SL_OK)
        return SL_ERR;

    /* The socket is bound and listening under a temporary name first, then
       renamed into place, so the path never names a socket that refuses
       connections (a client, or another sluice checking for a live owner,
       would take it for stale). A path too long for the temporary name is
       bound directly. */
    struct sockaddr_un tsa = sa;
    int tn =
        snprintf(tsa.sun_path, sizeof(tsa.sun_path), "%s.%ld.tmp", path, (long)getpid());
    bool via_tmp = tn > 0 && (size_t)tn < sizeof(tsa.sun_path);
    if (!via_tmp)
        tsa = sa;
    const char *bound = tsa.sun_path;
    if (via_tmp)
        unlink(bound); /* left by an earlier process with our pid */

    st.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (st.listen_fd < 0) {
        sl_log(SL_LOG_CRIT, "status socket: socket: %s", strerror(errno));
        return SL_ERR;
    }
    /* The umask makes the file appear with MODE at once (no window where it
       is wider); main is the only thread that creates files meanwhile. The
       chmod then sets exactly MODE, whatever the umask would have allowed. */
    mode_t old = umask((mode_t)(~mode & 0777));
    int rc = bind(st.listen_fd, (struct sockaddr *)&tsa, sizeof(tsa));
    int err = errno;
    umask(old);
    if (rc != 0) {
        sl_log(SL_LOG_CRIT, "status socket %s: bind: %s", bound, strerror(err));
        goto fail;
    }
    if (chmod(bound, mode) != 0) {
        sl_log(SL_LOG_CRIT, "status socket %s: chmod %04o: %s", bound, (unsigned)mode,
               strerror(errno));
        unlink(bound);
        goto fail;
    }
    if (listen(st.listen_fd, 64) != 0) {
        sl_log(SL_LOG_CRIT, "status socket %s: listen: %s", bound, strerror(errno));
        unlink(bound);
        goto fail;
    }
    if (via_tmp && rename(bound, path) != 0) {
        sl_log(SL_LOG_CRIT, "status socket %s: cannot rename %s to it: %s", path, bound,
               strerror(errno));
        unlink(bound);
        goto fail;
    }
    struct stat sb;
    if (stat(path, &sb) != 0) {
        sl_log(SL_LOG_CRIT, "status socket %s: %s", path, strerror(errno));
        goto fail;
    }
    st.dev = sb.st_dev;
    st.ino = sb.st_ino;
    st.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (st.wake_fd < 0) {
        sl_log(SL_LOG_CRIT, "status socket: eventfd: %s", strerror(errno));
        unlink(path);
        goto fail;
    }
    st.path = sl_strdup(path);
    st.nclients = 0;
    st.acceptor_max_depth = 0;
    rc = pthread_create(&st.tid, NULL, status_main, NULL);
    if (rc != 0) {
        sl_log(SL_LOG_CRIT, "status socket: cannot start its thread: %s", strerror(rc));
        unlink(path);
        free(st.path);
        st.path = NULL;
        goto fail;
    }
    st.running = true;
    sl_log(SL_LOG_INFO, "status socket on %s (mode %04o)", path, (unsigned)mode);
    return SL_OK;

fail:
    close(st.listen_fd);
    st.listen_fd = -1;
    if (st.wake_fd >= 0)
        close(st.wake_fd);
    st.wake_fd = -1;
    return SL_ERR;
}

void sl_status_stop(void)
{
    if (!st.running)
        return;
    (void)!eventfd_write(st.wake_fd, 1);
    pthread_join(st.tid, NULL);
    st.running = false;
    close(st.listen_fd);
    st.listen_fd = -1;
    close(st.wake_fd);
    st.wake_fd = -1;
    /* Remove the file only if it is still ours (not replaced meanwhile). */
    struct stat sb;
    if (lstat(st.path, &sb) == 0 && sb.st_dev == st.dev && sb.st_ino == st.ino)
        unlink(st.path);
    free(st.path);
    st.path = NULL;
}

char *sl_status_render(enum sl_status_doc doc, size_t *len)
{
    /* The busy fractions of /status cover the time since the previous
       /status (any HTTP client): one shared baseline, under a lock. */
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static struct busy_prev prev;
    struct status_sample *s = sl_malloc(sizeof(*s));
    struct sbuf b = {0};
    pthread_mutex_lock(&lock);
    if (prev.ns == 0)
        prev.ns = sl_srv.start_ns; /* the first /status: busy since start */
    gather(s);
    if (doc == SL_STATUS_JSON) {
        double busy[NSTAGES];
        double iv = busy_since(s, &prev, busy);
        format_json(&b, s, busy, iv);
        sb_puts(&b, "\n");
    } else {
        format_metrics(&b, s);
    }
    pthread_mutex_unlock(&lock);
    free(s);
    *len = b.len;
    return b.p;
}
