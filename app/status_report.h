/* status_report.h: what the status socket and the HTTP status listener
 * report, as pure renderers: a sample of the server in, text out (`stats`
 * table, `stats json`, Prometheus `metrics`). Taking the sample is
 * app/status.c's job; nothing here reads the running server. */
#ifndef SLUICE_STATUS_REPORT_H
#define SLUICE_STATUS_REPORT_H

#include "core/cache.h"
#include "core/config.h"
#include "lib/sbuf.h"
#include "lib/stats.h"
#include "stages/admission.h"

#include <stdbool.h>
#include <stdint.h>

#define SL_STATUS_VERSION "0.1"
#define SL_STATUS_NSTAGES 4 /* acceptor, reader, detector, writer */

/* One stage as reported. */
struct sl_stage_view {
    int threads;
    uint64_t busy_ns, processed, batches, batch_items, batch_max;
    long depth, max_depth;
    long limit; /* acceptor only: the listen backlog (-1 if unknown) */
    uint64_t enqueued, dequeued;
    uint64_t wait_count, wait_sum_ns;
    uint64_t wait_p50_ns, wait_p90_ns, wait_p99_ns, wait_max_ns;
    struct sl_hist wait_hist; /* for the Prometheus histogram */
};

enum sl_reload_state { SL_RELOAD_NONE = 0, SL_RELOAD_OK = 1, SL_RELOAD_FAILED = 2 };

/* Everything the reports show, read at one moment. */
struct sl_status_sample {
    uint64_t now_ns;
    uint64_t uptime_ns;
    long pid;
    const char *queue_kind;
    bool optimistic_write;
    unsigned long generation, failed_reloads;
    struct sl_stage_view stage[SL_STATUS_NSTAGES];
    struct sl_event_counters ev;
    struct sl_hist response_time;
    bool draining; /* readiness fails: SIGTERM or `drain` */
    long conns;
    struct sl_cache_info cache;
    enum sl_reload_state reload;
    uint64_t reload_age_ns;
    char reload_msg[256];
    char config_json[4096]; /* the live configuration (sl_server_config_json) */
    size_t stats_blocks;    /* the stats registry's size (sl_stats_blocks) */
    long max_connections;   /* [server] max_connections in force */
    bool adm_dropping;      /* some reader sheds by queue wait (CoDel) */
    struct sl_adm_state adm;
    int nreaders;
    long reader_conns[SL_MAX_THREADS]; /* open connections per reader */
};

/* What a client saw at its previous `stats`, for the busy fractions. */
struct sl_busy_prev {
    uint64_t ns;
    uint64_t busy_ns[SL_STATUS_NSTAGES];
};


/* Fills the counter part of S from SNAP. S's stage depths must be set first:
 * the acceptor's input is the kernel's accept queue, which counts nothing, so
 * its dequeued is what accept() returned (accepted + rejected) and its
 * enqueued is dequeued + depth. Pure. */
void sl_report_fill(struct sl_status_sample *s, const struct sl_stats_snapshot *snap);

/* Share of THREADS threads' time spent working over WALL_NS. Clamped to
 * [0, 1] (a stage shrunk during the interval can look busier than 1). Pure. */
double sl_report_busy_fraction(uint64_t busy_ns, uint64_t wall_ns, int threads);

/* Busy fractions of S since PREV into BUSY, then PREV := S. Returns the
 * interval in seconds. Pure. */
double sl_report_busy_since(const struct sl_status_sample *s, struct sl_busy_prev *prev,
                            double busy[SL_STATUS_NSTAGES]);

/* Appends `stats json` for S to B: one line, no trailing newline. Schema:
 * README "stats json". Pure. */
void sl_report_json(struct sl_sbuf *b, const struct sl_status_sample *s,
                    const double busy[SL_STATUS_NSTAGES], double interval_s);

/* Appends the `stats` table for S to B: several lines, none empty, each
 * ending in "\n". Pure. */
void sl_report_table(struct sl_sbuf *b, const struct sl_status_sample *s,
                     const double busy[SL_STATUS_NSTAGES], double interval_s);

/* Appends the Prometheus text (exposition format 0.0.4) for S to B: lines
 * ending in "\n", none empty. Pure. */
void sl_report_metrics(struct sl_sbuf *b, const struct sl_status_sample *s);

/* Writes NS as "1h02m03s" (or "2d03h04m", "4m05s", "1.5s") into OUT. Pure. */
void sl_report_duration(char *out, size_t n, uint64_t ns);

#endif
