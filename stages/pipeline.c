/* pipeline.c: the stages and their links: the shared server state, the
 * settings snapshot, the hand-offs between stage queues, starting, resizing
 * and stopping the stage threads. */
#include "stages/pipeline.h"
#include "core/accesslog.h"
#include "lib/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <urcu.h>

struct sl_server sl_srv;
__thread struct sl_settings sl_set;
char sl_rcu_gp_token;

void sl_settings_read(struct sl_settings *out)
{
    rcu_read_lock();
    /* rcu_dereference pairs with rcu_assign_pointer/rcu_xchg_pointer in
       sl_settings_publish(): the snapshot's fields are seen as initialised. */
    const struct sl_settings *s = rcu_dereference(sl_srv.settings);
    SL_TSAN_ACQUIRE(s); /* pairs with sl_settings_publish() */
    if (s != NULL)
        *out = *s;
    SL_TSAN_RELEASE(&sl_rcu_gp_token);
    rcu_read_unlock();
}

void sl_settings_refresh(void)
{
    sl_settings_read(&sl_set);
}

struct sl_settings *sl_settings_publish(struct sl_settings *next)
{
    /* rcu_xchg_pointer has release semantics: NEXT's fields are written
       before any reader can load the pointer (pairs with rcu_dereference in
       sl_settings_read). */
    SL_TSAN_RELEASE(next);
    return rcu_xchg_pointer(&sl_srv.settings, next);
}

/* ---- hand-offs ---- */

void sl_to_reader(struct sl_conn *c)
{
    c->owner = SL_STAGE_READER; /* before the push: after it, C is the reader's */
    sl_queue_push(&sl_srv.reader_q[c->reader], &c->qnode);
}

void sl_to_writer(struct sl_conn *c)
{
    c->owner = SL_STAGE_WRITER;
    sl_queue_push(&sl_srv.writer_q, &c->qnode);
}

void sl_to_detector(struct sl_conn *c)
{
    c->owner = SL_STAGE_DETECTOR;
    sl_queue_push(&sl_srv.detector_q, &c->qnode);
}

void sl_to_send(struct sl_conn *c)
{
    if (sl_set.optimistic_write)
        sl_to_writer(c);
    else
        sl_to_detector(c);
}

/* ---- threads ---- */

static int spawn(struct sl_thread *t, int index, void *(*fn)(void *))
{
    t->index = index;
    int rc = pthread_create(&t->tid, NULL, fn, t);
    if (rc != 0) {
        sl_log(SL_LOG_CRIT, "cannot start a thread: %s", strerror(rc));
        return SL_ERR;
    }
    /* Named here as well as by the thread itself, so /proc shows the new
       name as soon as a resize returns, not when the thread first runs. */
    char name[16];
    if (fn == sl_writer_main)
        snprintf(name, sizeof(name), "writer-%d", index);
    else if (fn == sl_reader_main)
        snprintf(name, sizeof(name), "reader-%d", index);
    else if (fn == sl_acceptor_main)
        snprintf(name, sizeof(name), "acceptor");
    else
        snprintf(name, sizeof(name), "detector");
    pthread_setname_np(t->tid, name);
    t->running = true;
    return SL_OK;
}

int sl_pipeline_start(const struct sl_config *cfg)
{
    struct sl_server *s = &sl_srv;
    s->nreaders = cfg->reader_threads;
    s->reader_q = SL_NEW_ARRAY(struct sl_queue, (size_t)s->nreaders);
    for (int i = 0; i < s->nreaders; i++)
        if (sl_queue_init(&s->reader_q[i], cfg->queue_kind, SL_WAKE_EVENTFD,
                          SL_STAGE_READER) != SL_OK)
            goto fail_errno;
    if (sl_queue_init(&s->detector_q, cfg->queue_kind, SL_WAKE_EVENTFD, SL_STAGE_DETECTOR) !=
            SL_OK ||
        sl_queue_init(&s->writer_q, cfg->queue_kind, SL_WAKE_FUTEX, SL_STAGE_WRITER) != SL_OK)
        goto fail_errno;

    s->writer_target = cfg->writer_threads;
    s->acceptor_target = cfg->acceptor_threads;
    for (int i = 0; i < cfg->writer_threads; i++)
        if (spawn(&s->writers[i], i, sl_writer_main) != SL_OK)
            goto fail_threads;
    s->nwriters = cfg->writer_threads;
    if (spawn(&s->detector, 0, sl_detector_main) != SL_OK)
        goto fail_threads;
    for (int i = 0; i < s->nreaders; i++)
        if (spawn(&s->readers[i], i, sl_reader_main) != SL_OK)
            goto fail_threads;
    sl_log(SL_LOG_INFO,
           "listening on %s, root %s, queue %s; threads: %d acceptor, %d reader, "
           "1 detector, %d writer",
           cfg->listen, cfg->root, sl_queue_kind_name(cfg->queue_kind), cfg->acceptor_threads,
           cfg->reader_threads, cfg->writer_threads);
    return SL_OK;


fail_errno:
    sl_log(SL_LOG_CRIT, "cannot create the stage queues: %s", strerror(errno));
    return SL_ERR;
fail_threads:
    sl_pipeline_stop(0);
    return SL_ERR;
}

/* ---- live resizing (`set STAGE.threads`, reload) ---- */

/* One resizable pool: its slots, how many are started, and the target its
 * threads compare their index with (threads at index >= target exit). */
struct pool {
    struct sl_thread *slots;
    int *started;
    int *target;
    void *(*fn)(void *);
};

static struct pool pool_of(const char *stage)
{
    if (strcmp(stage, "writer") == 0)
        return (struct pool){sl_srv.writers, &sl_srv.nwriters, &sl_srv.writer_target,
                             sl_writer_main};
    return (struct pool){sl_srv.acceptors, &sl_srv.nacceptors, &sl_srv.acceptor_target,
                         sl_acceptor_main};
}

/* Stops and joins the threads at index >= N (no-op if N is not smaller).
 * Cannot fail. Caller holds resize_lock. */
static void shrink(struct pool p, int n)
{
    if (n >= *p.started)
        return;
    __atomic_store_n(p.target, n, __ATOMIC_RELEASE); /* pairs with the stage's acquire load */
    if (p.fn == sl_writer_main)
        sl_queue_wake_all(&sl_srv.writer_q);
    for (int i = n; i < *p.started; i++) {
        if (p.slots[i].running) {
            pthread_join(p.slots[i].tid, NULL);
            p.slots[i].running = false;
        }
    }
    *p.started = n;
}

/* Starts threads up to N (no-op if N is not larger). Returns SL_OK, or
 * SL_ERR with the pool as it was (the threads it did start are stopped
 * again). Caller holds resize_lock. */
static int grow(struct pool p, int n)
{
    int was = *p.started;
    if (n <= was)
        return SL_OK;
    __atomic_store_n(p.target, n, __ATOMIC_RELEASE);
    for (int i = was; i < n; i++) {
        if (spawn(&p.slots[i], i, p.fn) != SL_OK) {
            *p.started = i;
            shrink(p, was);
            __atomic_store_n(p.target, was, __ATOMIC_RELEASE);
            return SL_ERR;
        }
    }
    *p.started = n;
    return SL_OK;
}

static int resize(struct pool p, int n)
{
    shrink(p, n);
    return grow(p, n);
}

int sl_pipeline_accept(void)
{
    /* Under the resize lock: the status socket is already up, and a `set
       acceptor.threads` may run at the same time (TSan found the race). */
    pthread_mutex_lock(&sl_srv.resize_lock);
    int rc = grow(pool_of("acceptor"), sl_srv.cfg->acceptor_threads);
    pthread_mutex_unlock(&sl_srv.resize_lock);
    /* With no acceptor thread the readers accept, from their next round. */
    __atomic_store_n(&sl_srv.accepting, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < sl_srv.nreaders; i++)
        sl_queue_wake_all(&sl_srv.reader_q[i]);
    return rc;
}

int sl_pipeline_set_threads(const char *stage, int n, char *err, size_t errsz)
{
    /* Acceptors may be 0: the readers accept. */
    int least = strcmp(stage, "acceptor") == 0 ? 0 : 1;
    if (n < least || n > SL_MAX_THREADS) {
        snprintf(err, errsz, "%s thread count must be between %d and %d", stage, least,
                 SL_MAX_THREADS);
        return SL_ERR;
    }
    int rc;
    pthread_mutex_lock(&sl_srv.resize_lock);
    if (strcmp(stage, "writer") == 0) {
        rc = resize(pool_of("writer"), n);
    } else if (strcmp(stage, "acceptor") == 0) {
        rc = resize(pool_of("acceptor"), n);
    } else if (strcmp(stage, "reader") == 0 || strcmp(stage, "detector") == 0) {
        int cur = sl_pipeline_threads(strcmp(stage, "reader") == 0 ? SL_STAGE_READER
                                                                  : SL_STAGE_DETECTOR);
        pthread_mutex_unlock(&sl_srv.resize_lock);
        if (n == cur)
            return SL_OK;
        snprintf(err, errsz,
                 "%s threads own connections and are fixed at start (restart to change)",
                 stage);
        return SL_ERR;
    } else {
        pthread_mutex_unlock(&sl_srv.resize_lock);
        snprintf(err, errsz, "unknown stage '%s' (acceptor, reader, detector, writer)", stage);
        return SL_ERR;
    }
    pthread_mutex_unlock(&sl_srv.resize_lock);
    if (rc != SL_OK)
        snprintf(err, errsz, "could not start all threads");
    else
        sl_log(SL_LOG_INFO, "%s threads: %d", stage, n);
    return rc;
}

int sl_pipeline_threads(enum sl_stage_id stage)
{
    switch (stage) {
    case SL_STAGE_ACCEPTOR:
        return __atomic_load_n(&sl_srv.acceptor_target, __ATOMIC_RELAXED);
    case SL_STAGE_READER:
        return sl_srv.nreaders;
    case SL_STAGE_DETECTOR:
        return 1;
    case SL_STAGE_WRITER:
        return __atomic_load_n(&sl_srv.writer_target, __ATOMIC_RELAXED);
    default:
        return 0;
    }
}

int sl_pipeline_threads_prepare(int writers, int acceptors, enum sl_stage_id *failed)
{
    /* Threads last: starting one is the only step of a reload with a visible
       effect, and grow() undoes its own partial work; shrinking cannot fail,
       so it waits for the commit. The lock keeps `set STAGE.threads` out
       meanwhile. */
    pthread_mutex_lock(&sl_srv.resize_lock);
    struct pool wp = pool_of("writer"), ap = pool_of("acceptor");
    int old_writers = *wp.started;
    if (grow(wp, writers) != SL_OK) {
        *failed = SL_STAGE_WRITER;
        goto fail;
    }
    if (grow(ap, acceptors) != SL_OK) {
        shrink(wp, old_writers);
        *failed = SL_STAGE_ACCEPTOR;
        goto fail;
    }
    return SL_OK;
fail:
    pthread_mutex_unlock(&sl_srv.resize_lock);
    return SL_ERR;
}

void sl_pipeline_threads_commit(int writers, int acceptors)
{
    shrink(pool_of("writer"), writers);
    shrink(pool_of("acceptor"), acceptors);
    pthread_mutex_unlock(&sl_srv.resize_lock);
}

/* ---- stopping ---- */

static void join(struct sl_thread *t)
{
    if (t->running) {
        pthread_join(t->tid, NULL);
        t->running = false;
    }
}

/* Closes connections left in a queue after every stage thread is gone. */
static void drain_queue(struct sl_queue *q)
{
    struct sl_qnode *batch[256];
    size_t n;
    while ((n = sl_queue_pop_batch(q, batch, SL_ARRAY_LEN(batch))) > 0)
        for (size_t i = 0; i < n; i++)
            sl_conn_close(sl_conn_of(batch[i]));
}

void sl_pipeline_stop(uint64_t timeout_ns)
{
    struct sl_server *s = &sl_srv;
    /* 1: draining. Acceptors leave; readers close idle keep-alive
       connections; responses in flight finish without keep-alive. */
    __atomic_store_n(&s->stopping, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < s->nacceptors; i++)
        join(&s->acceptors[i]);
    /* No more connections: the kernel refuses new ones and resets those in
       the accept queue. Shut down, not closed: readers that accept may still
       hold the socket in their epoll sets, or be in accept4 on it, and its
       number must not go to another file meanwhile. Closed once they are
       gone. */
    if (s->listen_fd >= 0)
        shutdown(s->listen_fd, SHUT_RDWR);
    for (int i = 0; i < s->nreaders; i++)
        sl_queue_wake_all(&s->reader_q[i]);
    uint64_t deadline = sl_now_ns() + timeout_ns;
    while (uatomic_read(&s->conns) > 0 && sl_now_ns() < deadline) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (uatomic_read(&s->conns) > 0)
        sl_log(SL_LOG_WARN, "shutdown timeout: closing %ld connections still open",
               uatomic_read(&s->conns));
    /* 2: stop now. */
    __atomic_store_n(&s->stopping, 2, __ATOMIC_RELEASE);
    __atomic_store_n(&s->writer_target, 0, __ATOMIC_RELEASE);
    sl_queue_wake_all(&s->writer_q);
    sl_queue_wake_all(&s->detector_q);
    for (int i = 0; i < s->nreaders; i++)
        sl_queue_wake_all(&s->reader_q[i]);
    for (int i = 0; i < s->nwriters; i++)
        join(&s->writers[i]);
    join(&s->detector);
    for (int i = 0; i < s->nreaders; i++)
        join(&s->readers[i]);
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        s->listen_fd = -1;
    }

    rcu_register_thread();
    for (int i = 0; i < s->nreaders; i++)
        drain_queue(&s->reader_q[i]);
    drain_queue(&s->detector_q);
    drain_queue(&s->writer_q);
    sl_accesslog_stop(); /* after the stages: every line they queued gets written */
    sl_cache_destroy(s->cache);
    s->cache = NULL;
    rcu_unregister_thread();
    rcu_barrier(); /* rculfq nodes and cache entries freed by call_rcu */
    for (int i = 0; i < s->nreaders; i++)
        sl_queue_destroy(&s->reader_q[i]);
    free(s->reader_q);
    s->reader_q = NULL;
    sl_queue_destroy(&s->detector_q);
    sl_queue_destroy(&s->writer_q);
}
