/* pipeline.h: the stages and the links between them: the server's shared
 * state (sl_srv), the settings snapshot the stages read, the stage threads
 * (start, resize, stop) and the hand-offs that move a connection from one
 * stage's queue to the next. */
#ifndef SLUICE_PIPELINE_H
#define SLUICE_PIPELINE_H

#include "core/cache.h"
#include "core/config.h"
#include "core/http.h"
#include "core/mime.h"
#include "core/proxy.h"
#include "queue/queue.h"
#include "stages/conn.h"

#include <pthread.h>

/* A stage thread slot. */
struct sl_thread {
    pthread_t tid;
    int index;
    bool running; /* joinable */
};

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
    bool adm_gate_syns;  /* [admission] gate_syns (with the SYN filter attached) */
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
    int acceptor_target; /* same for acceptors (atomic); 0: the readers accept */
    int accepting;       /* sl_pipeline_accept() was called (atomic) */
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
    int adm_queue_target;              /* accept queue length the SYN gate aims at;
                                          0: not gating (acceptor) */
    uint64_t adm_signal_ns;            /* the last interval's mean internal queue
                                          wait (acceptor; UINT64_MAX: none) */
    int adm_idle_pct;                  /* the last interval's idle share of the
                                          readers, percent (acceptor) */
    struct sl_adm_reader adm_reader[SL_MAX_THREADS];
    long reader_idle[SL_MAX_THREADS];  /* each reader's idle keep-alive connections
                                          (stored by that reader, read by the
                                          acceptor) */
    uint64_t reader_idle_oldest[SL_MAX_THREADS]; /* the keep-alive deadline of each
                                          reader's longest-idle connection
                                          (UINT64_MAX: none; same rules) */
    long reader_conns[SL_MAX_THREADS]; /* open connections per reader (atomic:
                                          the acceptor adds, closers subtract) */
};

extern struct sl_server sl_srv;

/* For ThreadSanitizer only: stands for the RCU grace period. Readers of
 * sl_srv.settings and sl_srv.cfg mark it (SL_TSAN_RELEASE) before
 * rcu_read_unlock(); the main thread marks it (SL_TSAN_ACQUIRE) after
 * synchronize_rcu(), before it frees what they read. TSan cannot see
 * liburcu's own ordering (tests/tsan.supp). */
extern char sl_rcu_gp_token;

/* Makes NEXT the live settings snapshot; returns the one it replaced (to be
 * freed after a grace period; NULL the first time). Main thread only. Cannot
 * fail. */
struct sl_settings *sl_settings_publish(struct sl_settings *next);

/* The stage entry points, one file each; each is a pthread start routine
 * taking its struct sl_thread. */
void *sl_acceptor_main(void *thread); /* stages/acceptor.c */
void *sl_reader_main(void *thread);   /* stages/reader.c */
void *sl_detector_main(void *thread); /* stages/detector.c */
void *sl_writer_main(void *thread);   /* stages/writer.c */

/* Accepting, shared by the acceptor threads and, with [acceptor] threads =
 * 0, the readers (stages/acceptor.c). */

/* Should the readers accept now? [acceptor] threads is 0, sl_pipeline_accept()
 * was called, and the server is not stopping. Any thread. */
bool sl_readers_accept(void);

/* A reader's own new connection (ownership passes with the call). */
typedef void sl_accept_take_fn(void *ctx, struct sl_conn *c);

/* Accepts at most BATCH connections from the listening socket, under
 * max_connections and the adaptive limit. READER < 0 (an acceptor thread):
 * each goes to a reader's queue; READER >= 0: to TAKE(CTX, c), owned by that
 * reader already. CONTROLLER: the caller runs the limit's controller (it
 * refills the SYN gate). Returns 0 when the batch is done (more may wait),
 * a positive number of milliseconds when the accept queue is empty (nothing
 * to do until the socket is readable), or minus the milliseconds to wait
 * before trying again: a limit binds (the connections wait in the kernel)
 * or descriptors ran out. */
int sl_accept_some(struct sl_tstats *st, bool controller, int batch, int reader,
                   sl_accept_take_fn *take, void *ctx);

/* May READER accept more? Not while it holds more connections than another
 * reader's count plus half as many again plus 64 (the rule by which an
 * acceptor thread picks a reader): connections stay with the reader that
 * accepted them, and the kernel tends to wake the same waiter. */
bool sl_reader_may_accept(int reader);

/* The adaptive limit's controller: closes an interval if one is over at NOW.
 * Acceptor 0, or reader 0 while the readers accept; cheap when no interval
 * is over. */
void sl_adm_control(uint64_t now);

/* Creates the stage queues and starts the writer, detector and reader
 * threads (acceptors come with sl_pipeline_accept()), from CFG and the
 * fields of sl_srv the caller set up (cache, listening socket, settings).
 * Returns SL_OK, or SL_ERR after logging (threads it started are stopped). */
int sl_pipeline_start(const struct sl_config *cfg);

/* Starts the acceptor threads: connections queued by the kernel since
 * sl_pipeline_start() are served from now on. Called after privileges are
 * dropped, so no request is ever served as root. Returns SL_OK or SL_ERR. */
int sl_pipeline_accept(void);

/* Graceful stop: no more accepts, idle keep-alive connections closed, the
 * responses in flight finish; returns when no connection is left or after
 * TIMEOUT_NS, then stops every thread, drains the queues, stops the access
 * log and frees the cache and the queues. Main thread only. */
void sl_pipeline_stop(uint64_t timeout_ns);

/* Changes the number of writer or acceptor threads live (reader and detector
 * counts are fixed at start). Returns SL_OK, or SL_ERR with a message in ERR. */
int sl_pipeline_set_threads(const char *stage, int n, char *err, size_t errsz);

/* A reload's thread counts, all or nothing. Prepare starts what WRITERS and
 * ACCEPTORS need beyond the running threads and returns SL_OK holding the
 * resize lock (no `set STAGE.threads` meanwhile); or SL_ERR with every pool
 * as it was, the lock released and *FAILED the stage that could not grow.
 * Commit (after SL_OK, cannot fail) stops the surplus threads and releases
 * the lock. Main thread only. */
int sl_pipeline_threads_prepare(int writers, int acceptors, enum sl_stage_id *failed);
void sl_pipeline_threads_commit(int writers, int acceptors);

/* The running threads of a stage, for the status socket. */
int sl_pipeline_threads(enum sl_stage_id stage);

/* Hand-offs between stages; each transfers ownership of C. */
void sl_to_reader(struct sl_conn *c);
void sl_to_writer(struct sl_conn *c);
void sl_to_detector(struct sl_conn *c);
/* Hands a connection with a prepared response onward: to the writers, or to
 * the detector first when optimistic writes are off. */
void sl_to_send(struct sl_conn *c);

#endif
