/* server.c: the server as the application starts it: listening socket,
 * root, MIME table, cache and settings from the config, then the pipeline
 * (stages/pipeline.c); reload, all or nothing; the live configuration as
 * JSON; the stop. */
#include "app/server.h"
#include "core/accesslog.h"
#include "lib/cgroup.h"
#include "lib/log.h"
#include "lib/net.h"
#include "stages/synfilter.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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

/* ---- setup ---- */

/* Binds CFG's listen address ("HOST:PORT" / "[V6]:PORT"), with SO_REUSEPORT
 * when [server] reuseport is on. Returns the socket, or -1 after logging
 * "PATH:LINE: server.listen: reason". */
static int open_listener(const struct sl_config *cfg)
{
    int line = sl_config_line(cfg, "server", "listen");
    char host[256], reason[512], port[8];
    unsigned pn;
    if (sl_listen_split(cfg->listen, host, sizeof(host), &pn, reason, sizeof(reason)) !=
        SL_OK) {
        sl_log(SL_LOG_CRIT, "%s:%d: server.listen: %s", cfg->path, line, reason);
        return -1;
    }
    snprintf(port, sizeof(port), "%u", pn);
    int fd = sl_listen_bind(cfg->listen, host, port, cfg->backlog, cfg->reuseport, reason,
                            sizeof(reason));
    if (fd < 0)
        sl_log(SL_LOG_CRIT, "%s:%d: server.listen: %s", cfg->path, line, reason);
    return fd;
}

/* A listener leaving a SO_REUSEPORT group resets the connections still in its
 * accept queue unless the kernel hands them to another listener of the group
 * (net.ipv4.tcp_migrate_req, Linux 5.14): say so once at start. */
static void warn_migrate_req(void)
{
    char v[8] = "";
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_migrate_req", "r");
    if (f == NULL)
        return;
    if (fgets(v, sizeof(v), f) != NULL && v[0] == '0')
        sl_log(SL_LOG_WARN,
               "server.reuseport: net.ipv4.tcp_migrate_req is 0: connections still queued "
               "at this instance when it stops are reset; set it to 1 for restarts that "
               "drop nothing");
    fclose(f);
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
           "%s:%d: server.max_connections = %ld lowered to %ld: the open-file limit is %llu "
           "and cache.max_entries = %ld (raise the limit, e.g. LimitNOFILE= in the unit, or "
           "lower cache.max_entries)",
           cfg->path, sl_config_line(cfg, "server", "max_connections"), max, fit, (unsigned long long)rl.rlim_cur, cfg->cache_max_entries);
    return fit;
}

/* A new settings snapshot from CFG. Not visible to any thread until
 * published. Cannot fail (allocation follows the OOM policy). */
static struct sl_settings *settings_new(const struct sl_config *cfg)
{
    struct sl_settings *n = sl_calloc(1, sizeof(*n));
    n->max_connections = fit_max_connections(cfg);
    n->optimistic_write = cfg->optimistic_write;
    n->inline_max = cfg->reader_inline_max;
    n->header_timeout_ns = cfg->header_timeout_ns;
    n->keepalive_timeout_ns = cfg->keepalive_timeout_ns;
    n->send_timeout_ns = cfg->send_timeout_ns;
    n->max_requests_per_connection = cfg->max_requests_per_connection;
    n->max_body_discard = cfg->max_body_discard;
    n->queue_batch = cfg->queue_batch;
    n->precompressed = cfg->precompressed;
    n->limits.max_request_line = (size_t)cfg->max_request_line;
    n->limits.max_header_size = (size_t)cfg->max_header_size;
    n->limits.max_headers = (size_t)cfg->max_headers;
    n->cache.max_entries = (size_t)cfg->cache_max_entries;
    n->cache.validity_ns = cfg->cache_validity_ns;
    n->cache.negative_ns = cfg->cache_negative_ns;
    n->cache.small_file_max = (size_t)cfg->cache_small_file_max;
    /* auto: a quarter of the memory this process may use (its cgroup's
       limit, or RAM), read again at every reload. */
    n->cache.body_memory = cfg->cache_body_memory >= 0 ? (size_t)cfg->cache_body_memory
                                                       : (size_t)(sl_cgroup_memory() / 4);
    n->adm_target_ns = cfg->adm_target_ns;
    n->adm_interval_ns = cfg->adm_interval_ns;
    n->adm_retry_after = cfg->adm_retry_after;
    n->adm_on_full = cfg->adm_on_full;
    n->adm_close_idle = cfg->adm_close_idle;
    n->adm_gate_syns = cfg->adm_gate_syns;
    n->adm_policy = cfg->adm_policy;
    n->adm_backlog_max = cfg->backlog;
    snprintf(n->index, sizeof(n->index), "%s", cfg->index); /* length checked at load */
    return n;
}

int sl_server_start(struct sl_config *cfg)
{
    struct sl_server *s = &sl_srv;
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    s->listen_fd = -1;
    s->adm_signal_ns = UINT64_MAX;
    s->start_ns = sl_now_ns();
    pthread_mutex_init(&s->resize_lock, NULL);
    sl_settings_publish(settings_new(cfg));

    s->root_fd = open(cfg->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->root_fd < 0) {
        sl_log(SL_LOG_CRIT, "%s:%d: server.root: cannot open directory '%s': %s", cfg->path,
               sl_config_line(cfg, "server", "root"), cfg->root, strerror(errno));
        return SL_ERR;
    }
    bool warn = false;
    s->mime = sl_mime_load(cfg->mime_types, cfg->default_type, &warn);
    if (warn)
        sl_log(SL_LOG_WARN, "%s:%d: http.mime_types: cannot read '%s'; using built-in types",
               cfg->path, sl_config_line(cfg, "http", "mime_types"), cfg->mime_types);
    s->cache = sl_cache_create(s->root_fd, s->mime, &s->settings->cache);

    char why[256];
    s->proxy_protocol = cfg->proxy_protocol;
    s->nproxy_from = sl_cidr_parse_list(cfg->proxy_protocol_from, s->proxy_from,
                                        SL_PROXY_CIDR_MAX, why, sizeof(why));
    if (s->nproxy_from < 0) { /* checked by the config parser already */
        sl_log(SL_LOG_CRIT, "%s: server.proxy_protocol_from: %s", cfg->path, why);
        goto fail;
    }
    s->listen_fd = open_listener(cfg);
    if (cfg->reuseport)
        warn_migrate_req();
    if (s->listen_fd < 0)
        goto fail;
    tune_listener(cfg);
    if (cfg->adm_drop_syn_retries) {
        struct sl_synfilter_counts sc;
        if (sl_synfilter_attach(s->listen_fd, sl_cgroup_memory(), why, sizeof(why)) == SL_OK) {
            sl_synfilter_counts(&sc);
            sl_log(SL_LOG_INFO, "admission: retransmitted SYNs are dropped while the limit "
                                "binds (BPF filter on the listener; %" PRIu64 " KiB of kernel "
                                "memory remember %" PRIu64 " SYNs)",
                   sc.memory / 1024, sc.memory / SL_SYN_BUCKET_BYTES * SL_SYN_WAYS);
        } else
            sl_log(SL_LOG_WARN, "%s:%d: admission.drop_syn_retries: %s; going on without",
                   cfg->path, sl_config_line(cfg, "admission", "drop_syn_retries"), why);
    }
    if (sl_accesslog_start(cfg->access_log, cfg->access_log_format, cfg->queue_kind) !=
        SL_OK) {
        sl_log(SL_LOG_CRIT, "%s:%d: server.access_log: cannot open '%s': %s", cfg->path,
               sl_config_line(cfg, "server", "access_log"), cfg->access_log, strerror(errno));
        goto fail;
    }

    if (sl_pipeline_start(cfg) != SL_OK)
        goto fail;
    return SL_OK;

fail:
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    /* Nothing else started; the process exits right after this. */
    return SL_ERR;
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

/* Opens PATH the way the access log does, for a reload to switch to.
 * Returns the fd, -1 for "" (off), or -2 with errno set. */
static int open_access_log(const char *path)
{
    if (path[0] == '\0')
        return -1;
    int fd = sl_accesslog_open_file(path);
    return fd >= 0 ? fd : -2;
}

int sl_server_reload(struct sl_config *next, char *err, size_t errsz)
{
    struct sl_config *cur = sl_srv.cfg;
    keep_str(&next->listen, cur->listen, "server.listen");
    keep_str(&next->root, cur->root, "server.root");
    keep_str(&next->status_socket, cur->status_socket, "server.status_socket");
    keep_str(&next->proxy_protocol_from, cur->proxy_protocol_from,
             "server.proxy_protocol_from");
    keep_str(&next->status_listen, cur->status_listen, "status.listen");
    keep_str(&next->agent_listen, cur->agent_listen, "status.agent_listen");
    int flag = next->proxy_protocol;
    keep_int(&flag, cur->proxy_protocol, "server.proxy_protocol");
    next->proxy_protocol = flag;
    flag = next->reuseport;
    keep_int(&flag, cur->reuseport, "server.reuseport");
    next->reuseport = flag;
    flag = next->adm_drop_syn_retries;
    keep_int(&flag, cur->adm_drop_syn_retries, "admission.drop_syn_retries");
    next->adm_drop_syn_retries = flag;
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

    /* 1. Prepare everything that can fail; nothing a client or an operator
       sees changes until step 2. */
    /* A log file this step creates is removed again if the reload fails. */
    bool new_elog = strcmp(next->error_log, cur->error_log) != 0;
    bool elog_made = new_elog && strcmp(next->error_log, "stderr") != 0 &&
                     access(next->error_log, F_OK) != 0;
    int elog_fd = -1;
    if (new_elog && (elog_fd = sl_log_open_target(next->error_log)) < 0) {
        snprintf(err, errsz, "%s:%d: server.error_log: cannot open '%s': %s", next->path,
                 sl_config_line(next, "server", "error_log"), next->error_log,
                 strerror(errno));
        return SL_ERR;
    }
    bool new_alog = strcmp(next->access_log, cur->access_log) != 0;
    bool alog_made = new_alog && next->access_log[0] != '\0' &&
                     access(next->access_log, F_OK) != 0;
    int alog_fd = new_alog ? open_access_log(next->access_log) : -1;
    if (alog_fd == -2) {
        snprintf(err, errsz, "%s:%d: server.access_log: cannot open '%s': %s", next->path,
                 sl_config_line(next, "server", "access_log"), next->access_log,
                 strerror(errno));
        goto fail_logs;
    }
    struct sl_settings *set = settings_new(next);
    enum sl_stage_id failed;
    if (sl_pipeline_threads_prepare(next->writer_threads, next->acceptor_threads, &failed) !=
        SL_OK) {
        if (failed == SL_STAGE_WRITER)
            snprintf(err, errsz, "%s:%d: writer.threads: could not start %d threads",
                     next->path, sl_config_line(next, "writer", "threads"),
                     next->writer_threads);
        else
            snprintf(err, errsz, "%s:%d: acceptor.threads: could not start %d threads",
                     next->path, sl_config_line(next, "acceptor", "threads"),
                     next->acceptor_threads);
        goto fail_threads;
    }

    /* 2. Commit: nothing below can fail. */
    sl_pipeline_threads_commit(next->writer_threads, next->acceptor_threads);
    if (new_elog)
        sl_log_use(elog_fd, next->error_log);
    sl_log_set_level((enum sl_log_level)next->log_level);
    if (new_alog)
        sl_accesslog_switch(next->access_log, alog_fd);
    sl_accesslog_set_format(next->access_log_format);
    sl_cache_configure(sl_srv.cache, &set->cache);
    tune_listener(next);
    struct sl_settings *old_set = sl_settings_publish(set);
    /* Readers may be looking at the old config (index name) under
       rcu_read_lock(); free both only after they are done. */
    SL_TSAN_RELEASE(next);
    struct sl_config *old = rcu_xchg_pointer(&sl_srv.cfg, next);
    synchronize_rcu();
    SL_TSAN_ACQUIRE(&sl_rcu_gp_token); /* every reader of OLD and OLD_SET is done */
    free(old_set);
    sl_config_free(old);
    free(old);
    uatomic_inc(&sl_srv.generation);
    return SL_OK;

fail_threads:
    free(set);
fail_logs:
    if (alog_fd >= 0) {
        close(alog_fd);
        if (alog_made)
            unlink(next->access_log);
    }
    if (elog_fd > 2) {
        close(elog_fd);
        if (elog_made)
            unlink(next->error_log);
    }
    return SL_ERR;
}

/* ---- the live configuration, for `stats json` ---- */

/* Appends a JSON string (quotes and escapes) to OUT at *LEN. */
static void json_str(char *out, size_t cap, size_t *len, const char *v)
{
    char tmp[8];
    *len += (size_t)snprintf(out + SL_MIN(*len, cap), cap - SL_MIN(*len, cap), "\"");
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\')
            snprintf(tmp, sizeof(tmp), "\\%c", *p);
        else if (*p < 0x20)
            snprintf(tmp, sizeof(tmp), "\\u%04x", *p);
        else
            snprintf(tmp, sizeof(tmp), "%c", *p);
        *len += (size_t)snprintf(out + SL_MIN(*len, cap), cap - SL_MIN(*len, cap), "%s", tmp);
    }
    *len += (size_t)snprintf(out + SL_MIN(*len, cap), cap - SL_MIN(*len, cap), "\"");
}

#define JSON_PUT(...) \
    (len += (size_t)snprintf(out + SL_MIN(len, cap), cap - SL_MIN(len, cap), __VA_ARGS__))

size_t sl_server_config_json(char *out, size_t cap)
{
    size_t len = 0;
    if (cap == 0)
        return 0;
    out[0] = '\0';
    struct sl_settings v;
    memset(&v, 0, sizeof(v));
    sl_settings_read(&v);
    rcu_read_lock();
    const struct sl_config *cfg = rcu_dereference(sl_srv.cfg);
    SL_TSAN_ACQUIRE(cfg); /* pairs with the release in sl_server_reload() */
    JSON_PUT("{\"generation\":%lu,\"listen\":", uatomic_read(&sl_srv.generation));
    json_str(out, cap, &len, cfg ? cfg->listen : "");
    JSON_PUT(",\"root\":");
    json_str(out, cap, &len, cfg ? cfg->root : "");
    JSON_PUT(",\"index\":");
    json_str(out, cap, &len, cfg ? cfg->index : "");
    JSON_PUT(",\"error_log\":");
    json_str(out, cap, &len, cfg ? cfg->error_log : "");
    JSON_PUT(",\"access_log\":");
    json_str(out, cap, &len, cfg ? cfg->access_log : "");
    JSON_PUT(",\"access_log_format\":\"%s\",\"log_level\":%d",
             cfg && cfg->access_log_format == SL_ACCESS_JSON ? "json" : "combined",
             cfg ? cfg->log_level : -1);
    bool drop_syn = cfg && cfg->adm_drop_syn_retries;
    SL_TSAN_RELEASE(&sl_rcu_gp_token);
    rcu_read_unlock();
    JSON_PUT(",\"threads\":{\"acceptor\":%d,\"reader\":%d,\"detector\":1,\"writer\":%d}",
             sl_pipeline_threads(SL_STAGE_ACCEPTOR), sl_pipeline_threads(SL_STAGE_READER),
             sl_pipeline_threads(SL_STAGE_WRITER));
    JSON_PUT(",\"max_connections\":%ld,\"optimistic_write\":%s,\"inline_max\":%ld"
             ",\"queue_batch\":%d,\"precompressed\":%s",
             v.max_connections, v.optimistic_write ? "true" : "false", v.inline_max,
             v.queue_batch, v.precompressed ? "true" : "false");
    JSON_PUT(",\"timeouts_ns\":{\"header\":%llu,\"keepalive\":%llu,\"send\":%llu}",
             (unsigned long long)v.header_timeout_ns,
             (unsigned long long)v.keepalive_timeout_ns, (unsigned long long)v.send_timeout_ns);
    JSON_PUT(",\"limits\":{\"max_request_line\":%zu,\"max_header_size\":%zu"
             ",\"max_headers\":%zu,\"max_requests_per_connection\":%ld"
             ",\"max_body_discard\":%ld}",
             v.limits.max_request_line, v.limits.max_header_size, v.limits.max_headers,
             v.max_requests_per_connection, v.max_body_discard);
    JSON_PUT(",\"cache\":{\"max_entries\":%zu,\"validity_ns\":%llu,\"negative_validity_ns\":%llu"
             ",\"small_file_max\":%zu,\"body_memory\":%zu}",
             v.cache.max_entries, (unsigned long long)v.cache.validity_ns,
             (unsigned long long)v.cache.negative_ns, v.cache.small_file_max,
             v.cache.body_memory);
    JSON_PUT(",\"admission\":{\"policy\":\"%s\",\"queue_wait_target_ns\":%llu"
             ",\"queue_wait_interval_ns\":%llu,\"retry_after\":%d,\"on_full\":%d"
             ",\"close_idle\":%s,\"drop_syn_retries\":%s,\"gate_syns\":%s}}",
             v.adm_policy == SL_ADM_CODEL ? "codel" : "limit", (unsigned long long)v.adm_target_ns,
             (unsigned long long)v.adm_interval_ns, v.adm_retry_after, v.adm_on_full,
             v.adm_close_idle ? "true" : "false", drop_syn ? "true" : "false",
             v.adm_gate_syns ? "true" : "false");
    if (len >= cap)
        out[cap - 1] = '\0';
    return len;
}

/* ---- stopping ---- */

void sl_server_stop(uint64_t timeout_ns)
{
    struct sl_server *s = &sl_srv;
    sl_pipeline_stop(timeout_ns);
    sl_synfilter_free(); /* the listener is closed */
    sl_mime_free(s->mime);
    s->mime = NULL;
    close(s->root_fd);
    /* Every thread that read the settings is joined (the status thread too). */
    free(rcu_xchg_pointer(&s->settings, NULL));
}
