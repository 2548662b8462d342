/* status_report.c: the status reports, pure renderers; see status_report.h
 * and README "Status protocol". */
#include "app/status_report.h"
#include "lib/prom.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fills the counter part of S from SNAP. S's stage depths must be set first:
 * the acceptor's input is the kernel's accept queue, which counts nothing, so
 * its dequeued is what accept() returned (accepted + rejected) and its
 * enqueued is dequeued + depth. Pure. */
void sl_report_fill(struct sl_status_sample *s, const struct sl_stats_snapshot *snap)
{
    s->ev = snap->ev;
    for (int i = 0; i < SL_STATUS_NSTAGES; i++) {
        const struct sl_stage_counters *c = &snap->stage[i];
        struct sl_stage_view *v = &s->stage[i];
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
    struct sl_stage_view *a = &s->stage[SL_STAGE_ACCEPTOR];
    a->dequeued = snap->ev.conn_accepted + snap->ev.conn_rejected;
    a->enqueued = a->dequeued + (uint64_t)(a->depth > 0 ? a->depth : 0);
}

/* Share of THREADS threads' time spent working over WALL_NS. Clamped to
 * [0, 1] (a stage shrunk during the interval can look busier than 1). */
double sl_report_busy_fraction(uint64_t busy_ns, uint64_t wall_ns, int threads)
{
    if (wall_ns == 0 || threads <= 0)
        return 0.0;
    double f = (double)busy_ns / ((double)wall_ns * (double)threads);
    return f < 0.0 ? 0.0 : f > 1.0 ? 1.0 : f;
}

/* Busy fractions of S since PREV, then PREV := S. Returns the interval in
 * seconds. Pure. */
double sl_report_busy_since(const struct sl_status_sample *s, struct sl_busy_prev *prev,
                         double busy[SL_STATUS_NSTAGES])
{
    uint64_t wall = s->now_ns > prev->ns ? s->now_ns - prev->ns : 0;
    for (int i = 0; i < SL_STATUS_NSTAGES; i++) {
        uint64_t cur = s->stage[i].busy_ns;
        uint64_t d = cur > prev->busy_ns[i] ? cur - prev->busy_ns[i] : 0;
        busy[i] = sl_report_busy_fraction(d, wall, s->stage[i].threads);
        prev->busy_ns[i] = cur;
    }
    prev->ns = s->now_ns;
    return (double)wall / 1e9;
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static double batch_mean(const struct sl_stage_view *v)
{
    return v->batches ? (double)v->batch_items / (double)v->batches : 0.0;
}

/* ---- stats json ---- */

/* One line, no trailing newline. Schema: README "stats json". Pure. */
void sl_report_json(struct sl_sbuf *b, const struct sl_status_sample *s,
                        const double busy[SL_STATUS_NSTAGES], double interval_s)
{
    sl_sbuf_printf(b,
              "{\"version\":\"%s\",\"pid\":%ld,\"uptime_s\":%.3f,\"generation\":%lu,"
              "\"failed_reloads\":%lu,\"queue_kind\":",
              SL_STATUS_VERSION, s->pid, (double)s->uptime_ns / 1e9, s->generation,
              s->failed_reloads);
    sl_sbuf_json_str(b, s->queue_kind);
    sl_sbuf_printf(b, ",\"optimistic_write\":%s,\"interval_s\":%.3f,\"stages\":[",
              s->optimistic_write ? "true" : "false", interval_s);
    for (int i = 0; i < SL_STATUS_NSTAGES; i++) {
        const struct sl_stage_view *v = &s->stage[i];
        sl_sbuf_printf(b,
                  "%s{\"name\":\"%s\",\"threads\":%d,\"busy\":%.4f,\"busy_ns\":%" PRIu64
                  ",\"processed\":%" PRIu64 ",\"batches\":%" PRIu64
                  ",\"batch_items\":%" PRIu64
                  ",\"batch_mean\":%.2f,\"batch_max\":%" PRIu64 ",",
                  i ? "," : "", sl_stage_name((enum sl_stage_id)i), v->threads, busy[i],
                  v->busy_ns, v->processed, v->batches, v->batch_items, batch_mean(v),
                  v->batch_max);
        sl_sbuf_printf(b,
                  "\"queue\":{\"depth\":%ld,\"max_depth\":%ld,\"enqueued\":%" PRIu64
                  ",\"dequeued\":%" PRIu64,
                  v->depth, v->max_depth, v->enqueued, v->dequeued);
        if (i == SL_STAGE_ACCEPTOR && v->limit >= 0)
            sl_sbuf_printf(b, ",\"limit\":%ld", v->limit);
        sl_sbuf_printf(b,
                  ",\"wait_us\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"max\":%.3f,"
                  "\"count\":%" PRIu64 ",\"sum\":%.3f}}}",
                  us(v->wait_p50_ns), us(v->wait_p90_ns), us(v->wait_p99_ns),
                  us(v->wait_max_ns), v->wait_count, us(v->wait_sum_ns));
    }
    const struct sl_event_counters *e = &s->ev;
    sl_sbuf_printf(b,
              "],\"connections\":{\"current\":%ld,\"max\":%ld,\"accepted\":%" PRIu64
              ",\"closed\":%" PRIu64 ",\"rejected\":%" PRIu64
              ",\"accept_errors\":%" PRIu64 ",\"per_reader\":[",
              s->conns, s->max_connections,
              e->conn_accepted, e->conn_closed, e->conn_rejected, e->accept_errors);
    for (int i = 0; i < s->nreaders; i++)
        sl_sbuf_printf(b, "%s%ld", i ? "," : "", s->reader_conns[i]);
    sl_sbuf_puts(b, "]}");
    struct sl_adm_state as = s->adm;
    sl_sbuf_printf(b,
              ",\"admission\":{\"dropping\":%s,\"shed_queue_wait\":%" PRIu64
              ",\"refused_full\":%" PRIu64 ",\"closed_full\":%" PRIu64
              ",\"closed_idle\":%" PRIu64 ",\"policy\":\"%s\",\"limit\":%ld"
              ",\"admitted\":%ld,\"waiting\":%ld,\"backlog\":%d,\"queue_target\":%d"
              ",\"wait_ms\":%.3f"
              ",\"readers_idle\":%.2f,\"syn_filter\":%s,\"syn_shedding\":%s"
              ",\"syns\":%" PRIu64 ",\"syn_retries\":%" PRIu64
              ",\"syn_retries_dropped\":%" PRIu64 ",\"syn_gating\":%s"
              ",\"syns_gated\":%" PRIu64 ",\"syn_memory\":%" PRIu64 "}",
              s->adm_dropping ? "true" : "false",
              e->shed_queue_wait, e->refused_full, e->conn_rejected, e->closed_idle,
              as.policy, as.limit, as.admitted, as.waiting, as.backlog, as.queue_target,
              as.wait_ms, as.idle,
              as.syn_filter ? "true" : "false", as.syn_shedding ? "true" : "false", as.syns,
              as.syn_retries, as.syn_retries_dropped, as.syn_gating ? "true" : "false",
              as.syns_gated, as.syn_memory);
    sl_sbuf_printf(b,
              ",\"requests\":{\"total\":%" PRIu64 ",\"1xx\":%" PRIu64 ",\"2xx\":%" PRIu64
              ",\"3xx\":%" PRIu64 ",\"4xx\":%" PRIu64 ",\"5xx\":%" PRIu64
              ",\"inline\":%" PRIu64 "}",
              e->requests, e->status_class[1], e->status_class[2], e->status_class[3],
              e->status_class[4], e->status_class[5], e->sent_inline);
    sl_sbuf_printf(b, ",\"bytes_sent\":%" PRIu64 ",\"body_bytes_sent\":%" PRIu64,
              e->bytes_sent, e->body_bytes_sent);
    sl_sbuf_printf(b,
              ",\"draining\":%s,\"proxy\":{\"bad\":%" PRIu64 ",\"untrusted\":%" PRIu64
              "},\"response_us\":{\"p50\":%.3f,\"p99\":%.3f,\"count\":%" PRIu64 "}",
              s->draining ? "true" : "false", e->proxy_bad, e->proxy_untrusted,
              us(sl_hist_quantile(&s->response_time, 0.5)),
              us(sl_hist_quantile(&s->response_time, 0.99)), s->response_time.count);
    sl_sbuf_printf(b,
              ",\"cache\":{\"entries\":%zu,\"open_fds\":%zu,\"body_bytes\":%zu"
              ",\"body_memory\":%zu,\"hits\":%" PRIu64
              ",\"misses\":%" PRIu64 ",\"revalidations\":%" PRIu64
              ",\"evictions\":%" PRIu64 "}",
              s->cache.entries, s->cache.open_fds, s->cache.body_bytes, s->cache.body_memory,
              e->cache_hits, e->cache_misses, e->cache_revalidations, e->cache_evictions);
    sl_sbuf_printf(b, ",\"config\":%s,\"stats_blocks\":%zu",
              s->config_json[0] ? s->config_json : "null", s->stats_blocks);
    if (s->reload == SL_RELOAD_NONE) {
        sl_sbuf_puts(b, ",\"last_reload\":null}");
    } else {
        sl_sbuf_printf(b, ",\"last_reload\":{\"ok\":%s,\"age_s\":%.3f,\"message\":",
                  s->reload == SL_RELOAD_OK ? "true" : "false",
                  (double)s->reload_age_ns / 1e9);
        sl_sbuf_json_str(b, s->reload_msg);
        sl_sbuf_puts(b, "}}");
    }
}

/* ---- stats (table) ---- */

/* "1h02m03s" */
void sl_report_duration(char *out, size_t n, uint64_t ns)
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
void sl_report_table(struct sl_sbuf *b, const struct sl_status_sample *s,
                         const double busy[SL_STATUS_NSTAGES], double interval_s)
{
    char up[32];
    sl_report_duration(up, sizeof(up), s->uptime_ns);
    sl_sbuf_printf(b,
              "sluice %s  pid %ld  up %s  queue %s  optimistic writes %s  generation %lu "
              "(%lu failed reloads)\n",
              SL_STATUS_VERSION, s->pid, up, s->queue_kind,
              s->optimistic_write ? "on" : "off", s->generation, s->failed_reloads);
    sl_sbuf_printf(b, "%-9s %4s %6s %12s %11s %6s %6s %7s %7s %12s %12s %9s %9s %9s %9s\n",
              "stage", "thr", "busy%", "processed", "batches", "batch", "bmax", "depth",
              "maxdep", "enqueued", "dequeued", "wait50us", "wait90us", "wait99us",
              "waitmax");
    for (int i = 0; i < SL_STATUS_NSTAGES; i++) {
        const struct sl_stage_view *v = &s->stage[i];
        sl_sbuf_printf(b,
                  "%-9s %4d %6.1f %12" PRIu64 " %11" PRIu64 " %6.1f %6" PRIu64
                  " %7ld %7ld %12" PRIu64 " %12" PRIu64 " %9.1f %9.1f %9.1f %9.1f\n",
                  sl_stage_name((enum sl_stage_id)i), v->threads, busy[i] * 100.0,
                  v->processed, v->batches, batch_mean(v), v->batch_max, v->depth,
                  v->max_depth, v->enqueued, v->dequeued, us(v->wait_p50_ns),
                  us(v->wait_p90_ns), us(v->wait_p99_ns), us(v->wait_max_ns));
    }
    sl_sbuf_printf(b, "busy%% is over the last %.1fs; queue waits are since start\n",
              interval_s);
    const struct sl_event_counters *e = &s->ev;
    sl_sbuf_printf(b,
              "connections: %ld open, %" PRIu64 " accepted, %" PRIu64 " closed, %" PRIu64
              " rejected, %" PRIu64 " accept errors\n",
              s->conns, e->conn_accepted, e->conn_closed, e->conn_rejected,
              e->accept_errors);
    sl_sbuf_printf(b,
              "admission: %s; shed %" PRIu64 " (queue wait), at max_connections %" PRIu64
              " refused with 503, %" PRIu64 " closed; %" PRIu64 " idle closed for room\n",
              s->adm_dropping ? "DROPPING" : "ok",
              e->shed_queue_wait, e->refused_full, e->conn_rejected, e->closed_idle);
    struct sl_adm_state as = s->adm;
    sl_sbuf_printf(b,
              "admission limit (%s): %ld admitted of %ld, %ld waiting in a backlog of %d, "
              "mean internal wait %.1f ms, readers idle %.0f%%\n",
              as.policy, as.admitted, as.limit, as.waiting, as.backlog, as.wait_ms,
              as.idle * 100);
    if (as.syn_filter) {
        char what[96];
        if (as.syn_gating)
            snprintf(what, sizeof(what),
                     "gating new SYNs to an accept queue of %d, dropping retransmissions",
                     as.queue_target);
        else
            snprintf(what, sizeof(what), "%s",
                     as.syn_shedding ? "dropping retransmissions" : "letting all through");
        sl_sbuf_printf(b,
                       "SYN filter: %s; %" PRIu64 " SYNs, %" PRIu64 " retransmitted, %" PRIu64
                       " of them dropped; %" PRIu64 " new ones dropped by the gate; "
                       "%" PRIu64 " KiB remember SYNs seen\n",
                       what, as.syns, as.syn_retries, as.syn_retries_dropped, as.syns_gated,
                       as.syn_memory / 1024);
    }
    sl_sbuf_printf(b,
              "requests: %" PRIu64 " (1xx %" PRIu64 ", 2xx %" PRIu64 ", 3xx %" PRIu64
              ", 4xx %" PRIu64 ", 5xx %" PRIu64 "), %" PRIu64
              " sent inline by a reader\n",
              e->requests, e->status_class[1], e->status_class[2], e->status_class[3],
              e->status_class[4], e->status_class[5], e->sent_inline);
    sl_sbuf_printf(b, "sent: %" PRIu64 " bytes, headers included (%" PRIu64 " of them body)\n",
              e->bytes_sent, e->body_bytes_sent);
    sl_sbuf_printf(b,
              "cache: %zu entries, %zu open fds, %zu of %zu bytes of bodies in memory, %" PRIu64
              " hits, %" PRIu64 " misses, %" PRIu64 " revalidations, %" PRIu64 " evictions\n",
              s->cache.entries, s->cache.open_fds, s->cache.body_bytes, s->cache.body_memory,
              e->cache_hits, e->cache_misses, e->cache_revalidations, e->cache_evictions);
    if (s->reload == SL_RELOAD_NONE) {
        sl_sbuf_puts(b, "last reload: none\n");
    } else {
        char ago[32];
        sl_report_duration(ago, sizeof(ago), s->reload_age_ns);
        sl_sbuf_printf(b, "last reload: %s %s ago%s%s\n",
                  s->reload == SL_RELOAD_OK ? "ok" : "FAILED", ago,
                  s->reload_msg[0] ? ": " : "", s->reload_msg);
    }
}

/* ---- metrics (Prometheus text exposition format 0.0.4) ---- */

static void metric_head(struct sl_sbuf *b, const char *name, const char *type,
                        const char *help)
{
    sl_sbuf_printf(b, "# HELP sluice_%s %s\n# TYPE sluice_%s %s\n", name, help, name, type);
}

static void metric_u64(struct sl_sbuf *b, const char *name, const char *type,
                       const char *help, uint64_t v)
{
    metric_head(b, name, type, help);
    sl_sbuf_printf(b, "sluice_%s %" PRIu64 "\n", name, v);
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

static void stage_value(struct sl_sbuf *b, const struct sl_stage_view *v, enum stage_field f)
{
    switch (f) {
    case F_THREADS:
        sl_sbuf_printf(b, "%d", v->threads);
        break;
    case F_BUSY_S:
        sl_sbuf_printf(b, "%.9f", (double)v->busy_ns / 1e9);
        break;
    case F_PROCESSED:
        sl_sbuf_printf(b, "%" PRIu64, v->processed);
        break;
    case F_BATCHES:
        sl_sbuf_printf(b, "%" PRIu64, v->batches);
        break;
    case F_BATCH_ITEMS:
        sl_sbuf_printf(b, "%" PRIu64, v->batch_items);
        break;
    case F_BATCH_MAX:
        sl_sbuf_printf(b, "%" PRIu64, v->batch_max);
        break;
    case F_DEPTH:
        sl_sbuf_printf(b, "%ld", v->depth);
        break;
    case F_MAX_DEPTH:
        sl_sbuf_printf(b, "%ld", v->max_depth);
        break;
    case F_ENQUEUED:
        sl_sbuf_printf(b, "%" PRIu64, v->enqueued);
        break;
    case F_DEQUEUED:
        sl_sbuf_printf(b, "%" PRIu64, v->dequeued);
        break;
    case F_WAIT_MAX_S:
        sl_sbuf_printf(b, "%.9f", (double)v->wait_max_ns / 1e9);
        break;
    }
}

static void metric_stages(struct sl_sbuf *b, const struct sl_status_sample *s, const char *name,
                          const char *type, const char *help, enum stage_field f)
{
    metric_head(b, name, type, help);
    for (int i = 0; i < SL_STATUS_NSTAGES; i++) {
        sl_sbuf_printf(b, "sluice_%s{stage=\"%s\"} ", name,
                  sl_stage_name((enum sl_stage_id)i));
        stage_value(b, &s->stage[i], f);
        sl_sbuf_puts(b, "\n");
    }
}

/* Lines ending in "\n", none empty. Pure. */
void sl_report_metrics(struct sl_sbuf *b, const struct sl_status_sample *s)
{
    metric_head(b, "info", "gauge", "Build and configuration of this sluice (always 1).");
    sl_sbuf_printf(b,
              "sluice_info{version=\"%s\",queue_kind=\"%s\",optimistic_write=\"%s\"} 1\n",
              SL_STATUS_VERSION, s->queue_kind, s->optimistic_write ? "true" : "false");
    metric_head(b, "uptime_seconds", "gauge", "Seconds since the server started.");
    sl_sbuf_printf(b, "sluice_uptime_seconds %.3f\n", (double)s->uptime_ns / 1e9);
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
       Histograms with fixed bounds (lib/prom.h), so a fleet's series add up. */
    metric_head(b, "queue_wait_seconds", "histogram",
                "Time items spent in the queue feeding the stage (not measured for the "
                "acceptor).");
    struct sl_text t = {0};
    for (int i = 1; i < SL_STATUS_NSTAGES; i++) {
        char labels[48];
        snprintf(labels, sizeof(labels), "stage=\"%s\"", sl_stage_name((enum sl_stage_id)i));
        sl_prom_histogram(&t, "sluice_queue_wait_seconds", labels, &s->stage[i].wait_hist);
    }
    metric_head(b, "response_seconds", "histogram",
                "Time from a request head parsed to its response sent completely.");
    sl_prom_histogram(&t, "sluice_response_seconds", "", &s->response_time);
    if (t.len)
        sl_sbuf_put(b, t.p, t.len);
    free(t.p);
    metric_head(b, "queue_wait_max_seconds", "gauge",
                "Longest time an item spent in the queue feeding the stage.");
    for (int i = 1; i < SL_STATUS_NSTAGES; i++) {
        sl_sbuf_printf(b, "sluice_queue_wait_max_seconds{stage=\"%s\"} ",
                  sl_stage_name((enum sl_stage_id)i));
        stage_value(b, &s->stage[i], F_WAIT_MAX_S);
        sl_sbuf_puts(b, "\n");
    }

    const struct sl_event_counters *e = &s->ev;
    metric_head(b, "connections_open", "gauge", "Client connections open now.");
    sl_sbuf_printf(b, "sluice_connections_open %ld\n", s->conns);
    metric_u64(b, "connections_accepted_total", "counter", "Connections accepted.",
               e->conn_accepted);
    metric_u64(b, "connections_closed_total", "counter", "Connections closed.",
               e->conn_closed);
    metric_u64(b, "connections_rejected_total", "counter",
               "Connections refused at max_connections.", e->conn_rejected);
    metric_head(b, "shed_total", "counter",
                "Work turned away by admission control, by reason.");
    sl_sbuf_printf(b, "sluice_shed_total{reason=\"queue_wait\"} %" PRIu64 "\n",
              e->shed_queue_wait);
    sl_sbuf_printf(b, "sluice_shed_total{reason=\"refused_full\"} %" PRIu64 "\n",
              e->refused_full);
    sl_sbuf_printf(b, "sluice_shed_total{reason=\"closed_full\"} %" PRIu64 "\n",
              e->conn_rejected);
    sl_sbuf_printf(b, "sluice_shed_total{reason=\"closed_idle\"} %" PRIu64 "\n",
              e->closed_idle);
    metric_head(b, "admission_dropping", "gauge",
                "1 while a reader sheds work (queue wait above target).");
    sl_sbuf_printf(b, "sluice_admission_dropping %d\n",
              s->adm_dropping ? 1 : 0);
    metric_head(b, "draining", "gauge",
                "1 while draining: readiness fails, the listener closes after drain_delay.");
    sl_sbuf_printf(b, "sluice_draining %d\n", s->draining ? 1 : 0);
    metric_head(b, "proxy_rejected_total", "counter",
                "Connections closed unanswered for their PROXY header, by reason.");
    sl_sbuf_printf(b, "sluice_proxy_rejected_total{reason=\"bad\"} %" PRIu64 "\n", e->proxy_bad);
    sl_sbuf_printf(b, "sluice_proxy_rejected_total{reason=\"untrusted\"} %" PRIu64 "\n",
              e->proxy_untrusted);
    struct sl_adm_state as = s->adm;
    metric_head(b, "admission_limit", "gauge",
                "Open connections admitted at most now (the adaptive limit).");
    sl_sbuf_printf(b, "sluice_admission_limit %ld\n", as.limit);
    metric_head(b, "admission_waiting", "gauge",
                "Connections waiting in the kernel's accept queue.");
    sl_sbuf_printf(b, "sluice_admission_waiting %ld\n", as.waiting);
    metric_head(b, "admission_backlog", "gauge", "The listen backlog.");
    sl_sbuf_printf(b, "sluice_admission_backlog %d\n", as.backlog);
    metric_head(b, "admission_queue_target", "gauge",
                "The accept queue length the SYN gate keeps to while the limit binds; "
                "0 when it is not gating.");
    sl_sbuf_printf(b, "sluice_admission_queue_target %d\n", as.queue_target);
    metric_head(b, "admission_queue_wait_seconds", "gauge",
                "Mean queue wait inside sluice over the last admission interval.");
    sl_sbuf_printf(b, "sluice_admission_queue_wait_seconds %.6f\n",
              as.wait_ms < 0 ? 0.0 : as.wait_ms / 1000);
    metric_head(b, "admission_readers_idle_ratio", "gauge",
                "Share of the last admission interval the readers waited for work.");
    sl_sbuf_printf(b, "sluice_admission_readers_idle_ratio %.2f\n", as.idle);
    metric_head(b, "admission_syns_total", "counter",
                "SYNs that reached the listener, seen by the SYN filter, by kind: new and "
                "let through, new and dropped by the gate, retransmitted and let through, "
                "retransmitted and dropped.");
    sl_sbuf_printf(b, "sluice_admission_syns_total{kind=\"new\"} %" PRIu64 "\n",
                   as.syns - as.syn_retries - as.syns_gated);
    sl_sbuf_printf(b, "sluice_admission_syns_total{kind=\"gated\"} %" PRIu64 "\n",
                   as.syns_gated);
    sl_sbuf_printf(b, "sluice_admission_syns_total{kind=\"retransmitted\"} %" PRIu64 "\n",
                   as.syn_retries - as.syn_retries_dropped);
    sl_sbuf_printf(b, "sluice_admission_syns_total{kind=\"dropped\"} %" PRIu64 "\n",
                   as.syn_retries_dropped);
    metric_u64(b, "admission_syn_memory_bytes", "gauge",
               "Kernel memory of the SYN filter's table of SYNs seen (0: no filter).",
               as.syn_memory);
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
        sl_sbuf_printf(b, "sluice_responses_total{class=\"%dxx\"} %" PRIu64 "\n", c,
                  e->status_class[c]);
    metric_u64(b, "sent_bytes_total", "counter",
               "Bytes written to clients, response headers included.", e->bytes_sent);
    metric_u64(b, "sent_body_bytes_total", "counter",
               "Response body bytes written to clients.", e->body_bytes_sent);
    metric_u64(b, "cache_entries", "gauge", "Entries in the fd/header cache.",
               (uint64_t)s->cache.entries);
    metric_u64(b, "cache_open_fds", "gauge", "Files the cache holds open.",
               (uint64_t)s->cache.open_fds);
    metric_u64(b, "cache_body_bytes", "gauge",
               "Bytes of file bodies the cache holds in memory.", (uint64_t)s->cache.body_bytes);
    metric_u64(b, "cache_body_memory_bytes", "gauge",
               "The bound on cache_body_bytes ([cache] body_memory).",
               (uint64_t)s->cache.body_memory);
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
