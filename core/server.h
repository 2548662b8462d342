/* server.h: the running server: its configuration, listening socket, cache,
 * stage queues and threads. One instance per process (sl_srv). */
#ifndef SLUICE_SERVER_H
#define SLUICE_SERVER_H

#include "core/cache.h"
#include "core/config.h"
#include "core/conn.h"
#include "core/http.h"
#include "core/mime.h"
#include "core/proxy.h"
#include "queue/queue.h"

#include <pthread.h>

/* A stage thread slot. */
struct sl_thread {
    pthread_t tid;
    int index;
    bool running; /* joinable */
    struct sl_reader *reader; /* reader threads: their state */
};

struct sl_reader; /* stages/reader.c */

/* Per reader, counts only that reader adds to and the acceptor reads the
 * growth of once per interval (the adaptive admission limit): internal queue
 * waits of parsed requests, summed, and their count; time spent waiting for
 * events. One cache line each: readers add per request. */
struct sl_adm_reader {
    uint64_t wait_sum, wait_count, idle_ns;
} __attribute__((aligned(SL_CACHELINE)));

/* The settings the stages read while serving, copied out of a config by the
 * main thread into one immutable snapshot. A reload publishes a new snapshot
 * through RCU (sl_srv.settings) only once everything that can fail has
 * succeeded, so a stage sees either every old value or every new one. */
struct sl_settings {
    long max_connections; /* [server] max_connections, fitted to RLIMIT_NOFILE */
    bool optimistic_write;
    long inline_max;      /* [reader] inline_max; 0: readers never send */
    uint64_t header_timeout_ns, keepalive_timeout_ns, send_timeout_ns;
    long max_requests_per_connection;
    long max_body_discard;
    int queue_batch;
    bool precompressed;
    struct sl_http_limits limits;
    struct sl_cache_config cache;
    uint64_t adm_target_ns, adm_interval_ns;
    int adm_retry_after;
    int adm_on_full;
    bool adm_close_idle;
    int adm_policy;      /* enum sl_adm_policy */
    int adm_backlog_max; /* [server] backlog */
    char index[SL_INDEX_MAX + 1]; /* [http] index */
};

/* This thread's copy of the live settings, taken by sl_settings_refresh().
 * Stage threads refresh once per round and read only this copy during the
 * round, so one round never mixes two reloads. Zero until the first refresh. */
extern __thread struct sl_settings sl_set;

/* Copies the live settings into sl_set. Caller: a registered RCU thread,
 * outside a read-side critical section or inside one. Cannot fail. */
void sl_settings_refresh(void);

/* Copies the live settings into OUT (same rules). Cannot fail. */
void sl_settings_read(struct sl_settings *out);

/* Renders the live configuration as one JSON object (every setting in
 * effect, thread counts as running, log paths) into OUT, always
 * NUL-terminated. Returns the length that
 * was needed. Caller: a registered RCU thread. */
size_t sl_server_config_json(char *out, size_t cap);

struct sl_server {
    struct sl_config *cfg;   /* current config: an RCU pointer, replaced by reload;
                                stage threads read it under rcu_read_lock() */
    int listen_fd;
    int root_fd;
    struct sl_mime *mime;
    struct sl_cache *cache;
    uint64_t start_ns;
    unsigned long generation; /* successful config reloads */
    unsigned long failed_reloads;

    /* Stage links. Readers and the detector each own one queue (woken through
       an eventfd in their epoll set); the writer pool shares one (futex). */
    struct sl_queue *reader_q; /* [nreaders] */
    int nreaders;
    struct sl_queue detector_q;
    struct sl_queue writer_q;

    /* Threads. */
    struct sl_thread acceptors[SL_MAX_THREADS];
    int nacceptors;
    struct sl_thread readers[SL_MAX_THREADS];
    struct sl_thread detector;
    struct sl_thread writers[SL_MAX_THREADS];
    int nwriters;        /* slots started */
    int writer_target;   /* writers with index >= target exit (atomic) */
    int acceptor_target; /* same for acceptors (atomic) */
    pthread_mutex_t resize_lock;

    /* Shared state (atomics). */
    long conns;          /* open connections */
    unsigned rr_reader;  /* round-robin for new connections */
    int stopping;        /* 1: draining (no accept, no keep-alive); 2: stop now */
    struct sl_settings *settings; /* the live settings: an RCU pointer, replaced
                                     whole by a reload; read via sl_settings_*() */
    int draining;        /* readiness fails (SIGTERM or `drain`); serving goes on
                            for drain_delay before stopping = 1 (atomic) */
    /* [server] proxy_protocol, fixed at start: connections from PROXY_FROM
       must begin with a PROXY header; others are closed unanswered. */
    bool proxy_protocol;
    int nproxy_from;
    struct sl_cidr proxy_from[SL_PROXY_CIDR_MAX];
    /* Admission state. */
    int adm_dropping;                  /* readers shedding now (atomic count) */
    long adm_limit;                    /* adaptive limit on open connections
                                          (stored by the acceptor) */
    int adm_backlog;                   /* listen backlog in force (acceptor) */
    uint64_t adm_signal_ns;            /* the last interval's mean internal queue
                                          wait (acceptor; UINT64_MAX: none) */
    int adm_idle_pct;                  /* the last interval's idle share of the
                                          readers, percent (acceptor) */
    struct sl_adm_reader adm_reader[SL_MAX_THREADS];
    int idle_close_wanted;             /* idle keep-alive connections the acceptor
                                          asks readers to close (atomic count) */
    long reader_idle[SL_MAX_THREADS];  /* each reader's idle keep-alive connections
                                          (stored by that reader, read by the
                                          acceptor) */
    long reader_conns[SL_MAX_THREADS]; /* open connections per reader (atomic:
                                          the acceptor adds, closers subtract) */
};

extern struct sl_server sl_srv;

/* Opens the listening socket and the root, loads MIME types, creates the cache
 * and queues and starts every stage thread but the acceptors, from CFG (kept by the server).
 * Returns SL_OK, or SL_ERR after logging a precise message (nothing left
 * running). */
int sl_server_start(struct sl_config *cfg);

/* Starts the acceptor threads: connections queued by the kernel since
 * sl_server_start() are served from now on. Called after privileges are
 * dropped, so no request is ever served as root. Returns SL_OK or SL_ERR. */
int sl_server_accept(void);

/* Graceful stop: no more accepts, idle keep-alive connections closed, the
 * responses in flight finish; returns when no connection is left or after
 * TIMEOUT_NS, then stops every thread and frees everything. Main thread only. */
void sl_server_stop(uint64_t timeout_ns);

/* Changes the number of writer or acceptor threads live (reader and detector
 * counts are fixed at start). Returns SL_OK, or SL_ERR with a message in ERR. */
int sl_server_set_threads(const char *stage, int n, char *err, size_t errsz);

/* Hand-offs between stages; each transfers ownership of C. */
void sl_to_reader(struct sl_conn *c);
void sl_to_writer(struct sl_conn *c);
void sl_to_detector(struct sl_conn *c);
/* Hands a connection with a prepared response onward: to the writers, or to
 * the detector first when optimistic writes are off. */
void sl_to_send(struct sl_conn *c);

/* Closes C's socket, drops its cache reference, frees it, counts it. The
 * caller must own C. Cannot fail. */
void sl_conn_close(struct sl_conn *c);

/* A new connection for socket FD (owned by the caller until handed off). */
struct sl_conn *sl_conn_new(int fd);

/* The running threads of a stage, for the status socket. */
int sl_server_threads(enum sl_stage_id stage);

#endif

/* Applies NEXT (already validated) to the running server, all or nothing:
 * first everything that can fail is prepared (new log files opened, new
 * writer and acceptor threads started), then, once nothing can fail any
 * more, surplus threads are stopped, the logs switched, and one new settings
 * snapshot (limits, timeouts, cache sizes, admission) is published through
 * RCU. Keys that only take effect at start (listen, root, reader threads,
 * queue kind, status socket, user, pidfile, MIME table) keep their running
 * values, with a warning each. On success takes ownership of NEXT and frees
 * the old config after a grace period. Main thread only. Returns SL_OK, or
 * SL_ERR with "FILE:LINE: key: reason" in ERR and every setting as it was
 * (NEXT stays the caller's). */
int sl_server_reload(struct sl_config *next, char *err, size_t errsz);
