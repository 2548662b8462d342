/* accesslog.c: the logging stage; see accesslog.h. Records are formatted and
 * written in batches by one thread; the hot path only copies three strings
 * and pushes a pointer. */
#include "core/accesslog.h"
#include "core/config.h"
#include "lib/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <urcu.h>

#define FIELD_MAX 1024 /* longest request line, referer or agent kept */
#define OUT_BUF (256 * 1024)

static struct {
    struct sl_queue q;
    pthread_t tid;
    bool started;
    int fd;          /* -1: off; owned by the logger thread once started */
    int format;      /* atomic */
    int stop;        /* atomic */
    int reopen;      /* atomic: 1 = reopen the current path */
    pthread_mutex_t lock; /* guards path and next_fd hand-over */
    char *path;
    int next_fd;     /* a new file for the logger to switch to, or -1 */
    bool switch_fd;
    bool enabled;    /* atomic */
} lg = {.fd = -1, .next_fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

bool sl_accesslog_enabled(void)
{
    return __atomic_load_n(&lg.enabled, __ATOMIC_RELAXED);
}

static int open_log(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

static uint16_t copy_field(char *dst, const char *src, size_t n)
{
    if (n > FIELD_MAX)
        n = FIELD_MAX;
    memcpy(dst, src, n);
    return (uint16_t)n;
}

struct sl_logrec *sl_accesslog_record(const struct sl_request *req, const char *raw,
                                      size_t rawlen, const struct sockaddr *peer)
{
    const char *line = raw, *ref = NULL, *ua = NULL;
    size_t line_n = 0, ref_n = 0, ua_n = 0;
    if (req) {
        line = req->method_name.p;
        /* method SP target SP HTTP/x.y: the version is 8 bytes after target */
        line_n = (size_t)(req->target.p + req->target.n - line) + 9;
        for (size_t i = 0; i < req->nheaders; i++) {
            if (sl_str_ieq(req->headers[i].name, "referer"))
                ref = req->headers[i].value.p, ref_n = req->headers[i].value.n;
            else if (sl_str_ieq(req->headers[i].name, "user-agent"))
                ua = req->headers[i].value.p, ua_n = req->headers[i].value.n;
        }
    } else {
        const char *eol = memchr(raw, '\n', rawlen);
        line_n = eol ? (size_t)(eol - raw) : rawlen;
        if (line_n > 0 && raw[line_n - 1] == '\r')
            line_n--;
    }
    struct sl_logrec *r = sl_malloc(sizeof(*r) + SL_MIN(line_n, FIELD_MAX) +
                                    SL_MIN(ref_n, FIELD_MAX) + SL_MIN(ua_n, FIELD_MAX));
    memset(r, 0, sizeof(*r));
    if (peer && peer->sa_family == AF_INET6)
        memcpy(&r->peer.in6, peer, sizeof(r->peer.in6));
    else if (peer && peer->sa_family == AF_INET)
        memcpy(&r->peer.in, peer, sizeof(r->peer.in));
    clock_gettime(CLOCK_REALTIME, &r->when);
    r->start_ns = sl_now_ns();
    char *p = r->text;
    r->line_len = copy_field(p, line, line_n);
    p += r->line_len;
    r->referer_len = ref ? copy_field(p, ref, ref_n) : 0;
    p += r->referer_len;
    r->agent_len = ua ? copy_field(p, ua, ua_n) : 0;
    return r;
}

void sl_accesslog_submit(struct sl_logrec *rec)
{
    rec->duration_ns = sl_now_ns() - rec->start_ns;
    sl_queue_push(&lg.q, &rec->qnode);
}

/* Appends S[0..N) escaped for a quoted CLF field or a JSON string. */
static size_t put_escaped(char *out, size_t o, size_t cap, const char *s, size_t n, bool json)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n && o + 7 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20 || ch >= 0x7f) {
            if (json && ch >= 0x80) { /* keep UTF-8 bytes as they are */
                out[o++] = (char)ch;
                continue;
            }
            o += (size_t)(json ? snprintf(out + o, cap - o, "\\u%04x", ch)
                               : snprintf(out + o, cap - o, "\\x%c%c", hex[ch >> 4],
                                          hex[ch & 15]));
        } else {
            out[o++] = (char)ch;
        }
    }
    return o;
}

static void peer_str(const struct sl_logrec *r, char *out, size_t cap)
{
    if (r->peer.sa.sa_family == AF_INET)
        inet_ntop(AF_INET, &r->peer.in.sin_addr, out, (socklen_t)cap);
    else if (r->peer.sa.sa_family == AF_INET6)
        inet_ntop(AF_INET6, &r->peer.in6.sin6_addr, out, (socklen_t)cap);
    else
        snprintf(out, cap, "-");
}

size_t sl_accesslog_format(const struct sl_logrec *r, int format, char *out, size_t cap)
{
    char peer[INET6_ADDRSTRLEN];
    peer_str(r, peer, sizeof(peer));
    struct tm tm;
    localtime_r(&r->when.tv_sec, &tm);
    const char *line = r->text, *ref = line + r->line_len, *ua = ref + r->referer_len;
    size_t o;
    cap -= 1; /* room for the '\n' */
    if (format == SL_ACCESS_JSON) {
        char ts[64];
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
        char tz[8];
        strftime(tz, sizeof(tz), "%z", &tm);
        o = (size_t)snprintf(out, cap, "{\"time\":\"%s.%03ld%.3s:%s\",\"remote\":\"%s\",\"request\":\"",
                             ts, r->when.tv_nsec / 1000000, tz, tz + 3, peer);
        o = SL_MIN(o, cap);
        o = put_escaped(out, o, cap, line, r->line_len, true);
        o += (size_t)snprintf(out + o, cap - o,
                              "\",\"status\":%d,\"body_bytes\":%llu,\"bytes\":%llu,"
                              "\"duration_us\":%llu,\"referer\":\"",
                              r->status, (unsigned long long)r->body_bytes,
                              (unsigned long long)r->bytes,
                              (unsigned long long)(r->duration_ns / 1000));
        o = SL_MIN(o, cap);
        o = put_escaped(out, o, cap, ref, r->referer_len, true);
        o = SL_MIN(o + (size_t)snprintf(out + o, cap - o, "\",\"agent\":\""), cap);
        o = put_escaped(out, o, cap, ua, r->agent_len, true);
        o = SL_MIN(o + (size_t)snprintf(out + o, cap - o, "\"}"), cap);
    } else {
        char ts[64];
        strftime(ts, sizeof(ts), "%d/%b/%Y:%H:%M:%S %z", &tm);
        o = SL_MIN((size_t)snprintf(out, cap, "%s - - [%s] \"", peer, ts), cap);
        o = put_escaped(out, o, cap, line, r->line_len, false);
        o = SL_MIN(o + (size_t)snprintf(out + o, cap - o, "\" %d %llu \"", r->status,
                                        (unsigned long long)r->body_bytes),
                   cap);
        if (r->referer_len)
            o = put_escaped(out, o, cap, ref, r->referer_len, false);
        else if (o + 1 < cap)
            out[o++] = '-';
        o = SL_MIN(o + (size_t)snprintf(out + o, cap - o, "\" \""), cap);
        if (r->agent_len)
            o = put_escaped(out, o, cap, ua, r->agent_len, false);
        else if (o + 1 < cap)
            out[o++] = '-';
        if (o + 1 < cap)
            out[o++] = '"';
    }
    out[o++] = '\n';
    return o;
}

static void write_all(int fd, const char *buf, size_t n)
{
    while (n > 0 && fd >= 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            static uint64_t last;
            uint64_t now = sl_now_ns();
            if (now - last > 10000000000ull) {
                sl_log(SL_LOG_ERROR, "access log: write: %s (lines lost)", strerror(errno));
                last = now;
            }
            return;
        }
        buf += w;
        n -= (size_t)w;
    }
}

/* Applies a pending file switch or reopen. Logger thread only. */
static void maybe_switch(void)
{
    if (__atomic_exchange_n(&lg.reopen, 0, __ATOMIC_ACQ_REL)) {
        pthread_mutex_lock(&lg.lock);
        if (lg.path && lg.path[0]) {
            int fd = open_log(lg.path);
            if (fd >= 0) {
                if (lg.fd >= 0)
                    close(lg.fd);
                lg.fd = fd;
            } else {
                sl_log(SL_LOG_ERROR, "access log: cannot reopen %s: %s", lg.path,
                       strerror(errno));
            }
        }
        pthread_mutex_unlock(&lg.lock);
    }
    pthread_mutex_lock(&lg.lock);
    if (lg.switch_fd) {
        if (lg.fd >= 0)
            close(lg.fd);
        lg.fd = lg.next_fd;
        lg.next_fd = -1;
        lg.switch_fd = false;
    }
    pthread_mutex_unlock(&lg.lock);
}

static void *logger_main(void *arg)
{
    (void)arg;
    sl_set_thread_name("logger");
    rcu_register_thread();
    struct sl_tstats *st = sl_tstats_self();
    char *buf = sl_malloc(OUT_BUF);
    struct sl_qnode *batch[512];
    for (;;) {
        maybe_switch();
        size_t n = sl_queue_pop_batch(&lg.q, batch, SL_ARRAY_LEN(batch));
        if (n == 0) {
            if (__atomic_load_n(&lg.stop, __ATOMIC_ACQUIRE))
                break;
            sl_queue_wait(&lg.q, 200);
            continue;
        }
        uint64_t t0 = sl_now_ns();
        int format = __atomic_load_n(&lg.format, __ATOMIC_RELAXED);
        size_t used = 0;
        for (size_t i = 0; i < n; i++) {
            struct sl_logrec *r = caa_container_of(batch[i], struct sl_logrec, qnode);
            if (OUT_BUF - used < 4 * FIELD_MAX + 512) {
                write_all(lg.fd, buf, used);
                used = 0;
            }
            used += sl_accesslog_format(r, format, buf + used, OUT_BUF - used);
            free(r);
        }
        write_all(lg.fd, buf, used);
        SL_COUNTER_ADD(&st->stage[SL_STAGE_LOGGER].processed, n);
        SL_COUNTER_ADD(&st->stage[SL_STAGE_LOGGER].busy_ns, sl_now_ns() - t0);
    }
    free(buf);
    rcu_unregister_thread();
    return NULL;
}

int sl_accesslog_start(const char *path, int format, enum sl_queue_kind kind)
{
    int fd = -1;
    if (path[0] != '\0' && (fd = open_log(path)) < 0)
        return SL_ERR;
    if (sl_queue_init(&lg.q, kind, SL_WAKE_FUTEX, SL_STAGE_LOGGER) != SL_OK) {
        if (fd >= 0)
            close(fd);
        return SL_ERR;
    }
    lg.fd = fd;
    lg.path = sl_strdup(path);
    lg.format = format;
    lg.stop = 0;
    __atomic_store_n(&lg.enabled, fd >= 0, __ATOMIC_RELEASE);
    int rc = pthread_create(&lg.tid, NULL, logger_main, NULL);
    if (rc != 0) {
        errno = rc;
        return SL_ERR;
    }
    lg.started = true;
    return SL_OK;
}

int sl_accesslog_open_file(const char *path)
{
    return open_log(path);
}

void sl_accesslog_set_format(int format)
{
    __atomic_store_n(&lg.format, format, __ATOMIC_RELAXED);
}

int sl_accesslog_configure(const char *path, int format)
{
    sl_accesslog_set_format(format);
    pthread_mutex_lock(&lg.lock);
    bool same = lg.path && strcmp(lg.path, path) == 0;
    pthread_mutex_unlock(&lg.lock);
    if (same)
        return SL_OK;
    int fd = -1;
    if (path[0] != '\0' && (fd = open_log(path)) < 0)
        return SL_ERR;
    sl_accesslog_switch(path, fd);
    return SL_OK;
}

void sl_accesslog_switch(const char *path, int fd)
{
    pthread_mutex_lock(&lg.lock);
    free(lg.path);
    lg.path = sl_strdup(path);
    if (lg.next_fd >= 0)
        close(lg.next_fd);
    lg.next_fd = fd;
    lg.switch_fd = true;
    pthread_mutex_unlock(&lg.lock);
    __atomic_store_n(&lg.enabled, fd >= 0, __ATOMIC_RELEASE);
    sl_queue_wake_all(&lg.q);
}

void sl_accesslog_reopen(void)
{
    __atomic_store_n(&lg.reopen, 1, __ATOMIC_RELEASE);
    if (lg.started)
        sl_queue_wake_all(&lg.q);
}

void sl_accesslog_stop(void)
{
    if (!lg.started)
        return;
    __atomic_store_n(&lg.stop, 1, __ATOMIC_RELEASE); /* pairs with the logger's acquire */
    sl_queue_wake_all(&lg.q);
    pthread_join(lg.tid, NULL);
    lg.started = false;
    if (lg.fd >= 0)
        close(lg.fd);
    if (lg.next_fd >= 0)
        close(lg.next_fd);
    lg.fd = lg.next_fd = -1;
    sl_queue_destroy(&lg.q);
    free(lg.path);
    lg.path = NULL;
}
