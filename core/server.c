/* server.c: builds the pipeline from the config (listening socket, root,
 * MIME table, cache, queues, threads), the hand-offs between stages, and the
 * graceful stop. */
#include "core/server.h"
#include "core/accesslog.h"
#include "core/log.h"
#include "stages/stages.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <urcu.h>

struct sl_server sl_srv;

/* ---- connections and hand-offs ---- */

struct sl_conn *sl_conn_new(int fd)
{
    struct sl_conn *c = sl_calloc(1, sizeof(*c));
    c->fd = fd;
    c->new_conn = true;
    CDS_INIT_LIST_HEAD(&c->timer_link);
    return c;
}

void sl_conn_close(struct sl_conn *c)
{
    if (c->logrec) { /* a response cut short still gets its line */
        c->logrec->status = c->status;
        c->logrec->body_bytes = c->body_sent;
        c->logrec->bytes = c->hdr_off + c->logrec->body_bytes;
        sl_accesslog_submit(c->logrec);
    }
    if (c->entry)
        sl_cache_release(sl_srv.cache, c->entry);
    free(c->parts);
    close(c->fd); /* also leaves every epoll set */
    uatomic_dec(&sl_srv.reader_conns[c->reader]);
    free(c->buf);
    free(c);
    uatomic_dec(&sl_srv.conns);
    SL_COUNTER_ADD(&sl_tstats_self()->ev.conn_closed, 1);
}

void sl_to_reader(struct sl_conn *c)
{
    sl_queue_push(&sl_srv.reader_q[c->reader], &c->qnode);
}

void sl_to_writer(struct sl_conn *c)
{
    sl_queue_push(&sl_srv.writer_q, &c->qnode);
}

void sl_to_detector(struct sl_conn *c)
{
    sl_queue_push(&sl_srv.detector_q, &c->qnode);
}

void sl_to_send(struct sl_conn *c)
{
    if (__atomic_load_n(&sl_srv.optimistic_write, __ATOMIC_RELAXED))
        sl_to_writer(c);
    else
        sl_to_detector(c);
}

/* ---- setup ---- */

/* Splits "HOST:PORT" / "[V6]:PORT" and binds a listening socket. */
static int open_listener(const char *listen_spec, int backlog)
{
    char host[256];
    const char *port;
    const char *colon = strrchr(listen_spec, ':');
    if (colon == NULL || colon[1] == '\0') {
        sl_log(SL_LOG_CRIT, "server.listen: '%s' is not HOST:PORT", listen_spec);
        return -1;
    }
    size_t hl = (size_t)(colon - listen_spec);
    const char *h = listen_spec;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
        h++, hl -= 2;
    if (hl >= sizeof(host)) {
        sl_log(SL_LOG_CRIT, "server.listen: host too long");
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    port = colon + 1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    int rc = getaddrinfo(hl ? host : NULL, port, &hints, &res);
    if (rc != 0) {
        sl_log(SL_LOG_CRIT, "server.listen: '%s': %s", listen_spec, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    int err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, backlog) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        sl_log(SL_LOG_CRIT, "server.listen: cannot listen on %s: %s", listen_spec,
               strerror(err));
    return fd;
}

/* Options of the listening socket, at start and on reload; accepted sockets
 * inherit them, which saves a setsockopt per connection:
 * - TCP_NODELAY: responses are written whole, never wait for Nagle;
 * - TCP_DEFER_ACCEPT: the kernel hands over a connection only once its first
 *   bytes arrived (or after about the header timeout), so the reader's first
 *   read finds the request instead of EAGAIN and a trip through epoll;
 * - SO_TIMESTAMPNS while admission control is on: kernel receive timestamps
 *   on every connection accepted from now on (accepted sockets inherit the
 *   flag), so the reader knows how long each request waited, listen backlog
 *   included. */
static void tune_listener(const struct sl_config *cfg)
{
    int one = 1;
    if (setsockopt(sl_srv.listen_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        sl_log(SL_LOG_WARN, "server.listen: TCP_NODELAY: %s", strerror(errno));
    int secs = cfg->defer_accept ? (int)SL_MAX(cfg->header_timeout_ns / 1000000000ull, 1) : 0;
    if (setsockopt(sl_srv.listen_fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs)) != 0)
        sl_log(SL_LOG_WARN, "server.defer_accept: TCP_DEFER_ACCEPT: %s", strerror(errno));
    int on = cfg->adm_target_ns > 0;
    if (setsockopt(sl_srv.listen_fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on)) != 0)
        sl_log(SL_LOG_WARN, "admission: SO_TIMESTAMPNS: %s (queue wait measured from "
                            "the read instead)", strerror(errno));
}

/* [server] max_connections, lowered if the open-file limit cannot hold that
 * many connections plus the admission slack above it (max/16 + 16), the
 * cache's descriptors and 64 for the server's own: past the limit accept()
 * fails with EMFILE and the kernel's backlog overflows, which is exactly
 * what admission control is there to prevent. */
static long fit_max_connections(const struct sl_config *cfg)
{
    struct rlimit rl;
    long max = cfg->max_connections;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return max;
    long long room = (long long)rl.rlim_cur - cfg->cache_max_entries - 64 - 16;
    long fit = room > 16 * 17 ? (long)(room * 16 / 17) : 16;
    if (fit >= max)
        return max;
    sl_log(SL_LOG_WARN,
           "%s: server.max_connections = %ld lowered to %ld: the open-file limit is %llu and "
           "cache.max_entries = %ld (raise the limit, e.g. LimitNOFILE= in the unit, or "
           "lower cache.max_entries)",
           cfg->path, max, fit, (unsigned long long)rl.rlim_cur, cfg->cache_max_entries);
    return fit;
}

/* Copies the values the hot path reads into plain fields of sl_srv. */
static void apply_limits(const struct sl_config *cfg)
{
    __atomic_store_n(&sl_srv.max_connections, fit_max_connections(cfg), __ATOMIC_RELAXED);
    __atomic_store_n(&sl_srv.optimistic_write, cfg->optimistic_write, __ATOMIC_RELAXED);
    __atomic_store_n(&sl_srv.inline_max, cfg->reader_inline_max, __ATOMIC_RELAXED);
    __atomic_store_n(&sl_srv.header_timeout_ns, cfg->header_timeout_ns, __ATOMIC_RELAXED);
    __atomic_store_n(&sl_srv.keepalive_timeout_ns, cfg->keepalive_timeout_ns,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&sl_srv.send_timeout_ns, cfg->send_timeout_ns, __ATOMIC_RELAXED);
    __atomic_store_n(&sl_srv.max_requests_per_connection, cfg->max_requests_per_connection,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&sl_srv.max_body_discard, cfg->max_body_discard, __ATOMIC_RELAXED);
    __atomic_store_n(&sl_srv.queue_batch, cfg->queue_batch, __ATOMIC_RELAXED);
    __atomic_store_n(&sl_srv.precompressed, cfg->precompressed, __ATOMIC_RELAXED);
    __atomic_store_n(&sl_srv.adm_target_ns, cfg->adm_target_ns, __ATOMIC_RELAXED);
    __atomic_store_n(&sl_srv.adm_interval_ns, cfg->adm_interval_ns, __ATOMIC_RELAXED);
    __atomic_store_n(&sl_srv.adm_retry_after, cfg->adm_retry_after, __ATOMIC_RELAXED);
    __atomic_store_n(&sl_srv.adm_on_full, cfg->adm_on_full, __ATOMIC_RELAXED);
    __atomic_store_n(&sl_srv.adm_close_idle, cfg->adm_close_idle, __ATOMIC_RELAXED);
    __atomic_store_n(&sl_srv.adm_policy, cfg->adm_policy, __ATOMIC_RELAXED);
    __atomic_store_n(&sl_srv.adm_backlog_max, cfg->backlog, __ATOMIC_RELAXED);
    if (sl_srv.listen_fd >= 0)
        tune_listener(cfg);
    sl_srv.limits.max_request_line = (size_t)cfg->max_request_line;
    sl_srv.limits.max_header_size = (size_t)cfg->max_header_size;
    sl_srv.limits.max_headers = (size_t)cfg->max_headers;
}

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

int sl_server_start(struct sl_config *cfg)
{
    struct sl_server *s = &sl_srv;
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    s->listen_fd = -1;
    for (int i = 0; i < SL_MAX_THREADS; i++)
        s->adm_wait_min[i] = UINT64_MAX; /* SL_ADM_NO_WAIT: none yet */
    s->adm_signal_ns = UINT64_MAX;
    s->start_ns = sl_now_ns();
    pthread_mutex_init(&s->resize_lock, NULL);
    apply_limits(cfg);

    s->root_fd = open(cfg->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->root_fd < 0) {
        sl_log(SL_LOG_CRIT, "%s: server.root: cannot open directory '%s': %s", cfg->path,
               cfg->root, strerror(errno));
        return SL_ERR;
    }
    bool warn = false;
    s->mime = sl_mime_load(cfg->mime_types, cfg->default_type, &warn);
    if (warn)
        sl_log(SL_LOG_WARN, "http.mime_types: cannot read '%s'; using built-in types",
               cfg->mime_types);
    struct sl_cache_config cc = {.max_entries = (size_t)cfg->cache_max_entries,
                                 .validity_ns = cfg->cache_validity_ns,
                                 .negative_ns = cfg->cache_negative_ns,
                                 .small_file_max = (size_t)cfg->cache_small_file_max};
    s->cache = sl_cache_create(s->root_fd, s->mime, &cc);

    s->listen_fd = open_listener(cfg->listen, cfg->backlog);
    if (s->listen_fd < 0)
        goto fail;
    tune_listener(cfg);
    if (sl_accesslog_start(cfg->access_log, cfg->access_log_format, cfg->queue_kind) !=
        SL_OK) {
        sl_log(SL_LOG_CRIT, "%s: server.access_log: cannot open '%s': %s", cfg->path,
               cfg->access_log, strerror(errno));
        goto fail;
    }

    s->nreaders = cfg->reader_threads;
    s->reader_q = sl_calloc((size_t)s->nreaders, sizeof(*s->reader_q));
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
    goto fail;
fail_threads:
    sl_server_stop(0);
    return SL_ERR;
fail:
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    /* Nothing else started; the process exits right after this. */
    return SL_ERR;
}

int sl_server_accept(void)
{
    struct sl_server *s = &sl_srv;
    for (int i = 0; i < s->cfg->acceptor_threads; i++) {
        if (spawn(&s->acceptors[i], i, sl_acceptor_main) != SL_OK) {
            s->nacceptors = i;
            return SL_ERR;
        }
    }
    s->nacceptors = s->cfg->acceptor_threads;
    return SL_OK;
}

/* ---- live resizing ---- */

static int resize(struct sl_thread *slots, int *started, int *target, int n,
                  void *(*fn)(void *))
{
    /* Shrinking: threads with index >= target see it and exit; join them. */
    __atomic_store_n(target, n, __ATOMIC_RELEASE); /* pairs with the stage's acquire load */
    if (fn == sl_writer_main)
        sl_queue_wake_all(&sl_srv.writer_q);
    for (int i = n; i < *started; i++) {
        if (slots[i].running) {
            pthread_join(slots[i].tid, NULL);
            slots[i].running = false;
        }
    }
    if (*started > n)
        *started = n;
    for (int i = *started; i < n; i++) {
        if (spawn(&slots[i], i, fn) != SL_OK) {
            __atomic_store_n(target, i, __ATOMIC_RELEASE);
            *started = i;
            return SL_ERR;
        }
    }
    *started = n;
    return SL_OK;
}

int sl_server_set_threads(const char *stage, int n, char *err, size_t errsz)
{
    if (n < 1 || n > SL_MAX_THREADS) {
        snprintf(err, errsz, "thread count must be between 1 and %d", SL_MAX_THREADS);
        return SL_ERR;
    }
    int rc;
    pthread_mutex_lock(&sl_srv.resize_lock);
    if (strcmp(stage, "writer") == 0) {
        rc = resize(sl_srv.writers, &sl_srv.nwriters, &sl_srv.writer_target, n,
                    sl_writer_main);
    } else if (strcmp(stage, "acceptor") == 0) {
        rc = resize(sl_srv.acceptors, &sl_srv.nacceptors, &sl_srv.acceptor_target, n,
                    sl_acceptor_main);
    } else if (strcmp(stage, "reader") == 0 || strcmp(stage, "detector") == 0) {
        int cur = sl_server_threads(strcmp(stage, "reader") == 0 ? SL_STAGE_READER
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

int sl_server_threads(enum sl_stage_id stage)
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

/* ---- reload ---- */

/* Keeps the running value of a restart-only string key, warning if it changed. */
static void keep_str(char **next, const char *cur, const char *key)
{
    if (strcmp(*next, cur) != 0) {
        sl_log(SL_LOG_WARN, "reload: %s changed ('%s' -> '%s'): takes effect on restart", key,
               cur, *next);
        free(*next);
        *next = sl_strdup(cur);
    }
}

static void keep_int(int *next, int cur, const char *key)
{
    if (*next != cur) {
        sl_log(SL_LOG_WARN, "reload: %s changed (%d -> %d): takes effect on restart", key, cur,
               *next);
        *next = cur;
    }
}

int sl_server_reload(struct sl_config *next, char *err, size_t errsz)
{
    struct sl_config *cur = sl_srv.cfg;
    keep_str(&next->listen, cur->listen, "server.listen");
    keep_str(&next->root, cur->root, "server.root");
    keep_str(&next->status_socket, cur->status_socket, "server.status_socket");
    keep_str(&next->user, cur->user, "server.user");
    keep_str(&next->pidfile, cur->pidfile, "server.pidfile");
    keep_str(&next->mime_types, cur->mime_types, "http.mime_types");
    keep_str(&next->default_type, cur->default_type, "http.default_type");
    keep_int(&next->reader_threads, cur->reader_threads, "reader.threads");
    int kind = (int)next->queue_kind;
    keep_int(&kind, (int)cur->queue_kind, "queue.kind");
    next->queue_kind = (enum sl_queue_kind)kind;
    int mode = (int)next->status_socket_mode;
    keep_int(&mode, (int)cur->status_socket_mode, "server.status_socket_mode");
    next->status_socket_mode = (mode_t)mode;

    if (strcmp(next->error_log, cur->error_log) != 0 && sl_log_open(next->error_log) != SL_OK) {
        snprintf(err, errsz, "server.error_log: cannot open '%s': %s", next->error_log,
                 strerror(errno));
        return SL_ERR;
    }
    if (sl_accesslog_configure(next->access_log, next->access_log_format) != SL_OK) {
        snprintf(err, errsz, "server.access_log: cannot open '%s': %s", next->access_log,
                 strerror(errno));
        return SL_ERR;
    }
    sl_log_set_level((enum sl_log_level)next->log_level);
    apply_limits(next);
    struct sl_cache_config cc = {.max_entries = (size_t)next->cache_max_entries,
                                 .validity_ns = next->cache_validity_ns,
                                 .negative_ns = next->cache_negative_ns,
                                 .small_file_max = (size_t)next->cache_small_file_max};
    sl_cache_configure(sl_srv.cache, &cc);
    if (sl_server_set_threads("writer", next->writer_threads, err, errsz) != SL_OK ||
        sl_server_set_threads("acceptor", next->acceptor_threads, err, errsz) != SL_OK)
        return SL_ERR;

    /* Readers may be looking at the old config (index name) under
       rcu_read_lock(); free it only after they are done. */
    struct sl_config *old = rcu_xchg_pointer(&sl_srv.cfg, next);
    synchronize_rcu();
    sl_config_free(old);
    free(old);
    uatomic_inc(&sl_srv.generation);
    return SL_OK;
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

void sl_server_stop(uint64_t timeout_ns)
{
    struct sl_server *s = &sl_srv;
    /* 1: draining. Acceptors leave; readers close idle keep-alive
       connections; responses in flight finish without keep-alive. */
    __atomic_store_n(&s->stopping, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < s->nacceptors; i++)
        join(&s->acceptors[i]);
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        s->listen_fd = -1;
    }
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
    sl_mime_free(s->mime);
    s->mime = NULL;
    close(s->root_fd);
}
