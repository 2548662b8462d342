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
 * The reports are rendered by app/status_report.c from a sample taken here
 * (gather). The command parser and the line framing below are pure, so
 * tests/app/test_status.c can drive them without a server. */
#include "app/status.h"
#include "app/server.h"
#include "app/status_report.h"
#include "lib/log.h"
#include "lib/stats.h"
#include "stages/admission.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
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

#define MAX_CLIENTS 64          /* more get "error: too many status clients" */
#define MAX_LINE 4096           /* a command line, newline included */
#define OUT_HIGH (256u * 1024u) /* stop taking commands while this much output waits */
#define ACCEPT_BATCH 16         /* status accepts per wakeup */

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
    /* Commands of one word, with an alias or none. */
    static const struct {
        const char *word, *alias;
        enum cmd_kind kind;
    } bare[] = {{"help", "?", CMD_HELP},
                {"drain", NULL, CMD_DRAIN},
                {"metrics", NULL, CMD_METRICS},
                {"quit", "exit", CMD_QUIT}};
    for (size_t b = 0; b < SL_ARRAY_LEN(bare); b++) {
        if (!tok_is(tok[0], tlen[0], bare[b].word) &&
            !(bare[b].alias && tok_is(tok[0], tlen[0], bare[b].alias)))
            continue;
        out->kind = nt == 1 ? bare[b].kind : CMD_ERROR;
        if (nt != 1)
            snprintf(out->err, sizeof(out->err), "%s takes no arguments", bare[b].word);
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
    struct sl_sbuf out;
    struct sl_busy_prev prev;
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
    enum sl_reload_state state;
    uint64_t at_ns;
    char msg[256];
} reload_info;

void sl_status_reload_result(bool ok, const char *msg)
{
    pthread_mutex_lock(&reload_lock);
    reload_info.state = ok ? SL_RELOAD_OK : SL_RELOAD_FAILED;
    reload_info.at_ns = sl_now_ns();
    snprintf(reload_info.msg, sizeof(reload_info.msg), "%s", msg ? msg : "");
    pthread_mutex_unlock(&reload_lock);
}

static void queue_view(struct sl_stage_view *v, const struct sl_queue *q)
{
    v->depth += sl_queue_depth(q);
    long m = sl_queue_max_depth(q);
    if (m > v->max_depth)
        v->max_depth = m;
}

/* Reads everything the socket reports. Status thread only. */
static void gather(struct sl_status_sample *s)
{
    memset(s, 0, sizeof(*s));
    sl_settings_refresh();
    for (int i = 0; i < SL_STATUS_NSTAGES; i++) {
        s->stage[i].threads = sl_pipeline_threads((enum sl_stage_id)i);
        s->stage[i].limit = -1;
    }
    /* The acceptor's queue is the kernel's accept queue. */
    struct sl_stage_view *a = &s->stage[SL_STAGE_ACCEPTOR];
    long qlimit;
    long q = sl_adm_accept_queue(&qlimit);
    if (q >= 0) {
        a->depth = q;
        a->limit = qlimit;
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

    /* Open connections before the counters: a connection's close is counted
       before it leaves sl_srv.conns (sl_conn_close), so a sample that sees
       none open also sees every close (closed == accepted when idle). */
    s->conns = __atomic_load_n(&sl_srv.conns, __ATOMIC_ACQUIRE);
    /* The snapshot is large (histograms); it lives on this thread's stack. */
    struct sl_stats_snapshot snap;
    sl_stats_snapshot(&snap);
    s->now_ns = sl_now_ns();
    sl_report_fill(s, &snap);

    s->uptime_ns = s->now_ns - sl_srv.start_ns;
    s->pid = (long)getpid();
    s->queue_kind = sl_queue_kind_name(sl_srv.writer_q.kind);
    s->optimistic_write = sl_set.optimistic_write;
    s->generation = __atomic_load_n(&sl_srv.generation, __ATOMIC_RELAXED);
    s->failed_reloads = __atomic_load_n(&sl_srv.failed_reloads, __ATOMIC_RELAXED);
    s->draining = __atomic_load_n(&sl_srv.draining, __ATOMIC_RELAXED) != 0;
    if (sl_srv.cache)
        sl_cache_info(sl_srv.cache, &s->cache);
    if (sl_server_config_json(s->config_json, sizeof(s->config_json)) >=
        sizeof(s->config_json))
        s->config_json[0] = '\0'; /* truncated: report null, not broken JSON */
    s->stats_blocks = sl_stats_blocks();
    s->max_connections = sl_set.max_connections;
    s->nreaders = sl_srv.nreaders;
    for (int i = 0; i < s->nreaders; i++)
        s->reader_conns[i] = uatomic_read(&sl_srv.reader_conns[i]);
    s->adm_dropping = __atomic_load_n(&sl_srv.adm_dropping, __ATOMIC_RELAXED) != 0;
    sl_adm_state(&s->adm);
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
    struct sl_sbuf *o = &c->out;
    switch (cmd.kind) {
    case CMD_NONE:
        return;
    case CMD_HELP:
        sl_sbuf_puts(o, help_text);
        break;
    case CMD_STATS:
    case CMD_STATS_JSON: {
        struct sl_status_sample s;
        double busy[SL_STATUS_NSTAGES];
        gather(&s);
        double iv = sl_report_busy_since(&s, &c->prev, busy);
        if (cmd.kind == CMD_STATS) {
            sl_report_table(o, &s, busy, iv);
        } else {
            sl_report_json(o, &s, busy, iv);
            sl_sbuf_puts(o, "\n");
        }
        break;
    }
    case CMD_METRICS: {
        struct sl_status_sample s;
        gather(&s);
        sl_report_metrics(o, &s);
        break;
    }
    case CMD_SET: {
        char err[200];
        if (sl_pipeline_set_threads(cmd.stage, cmd.n, err, sizeof(err)) == SL_OK)
            sl_sbuf_printf(o, "ok %s.threads=%d\n", cmd.stage, cmd.n);
        else
            sl_sbuf_printf(o, "error: %s\n", err);
        break;
    }
    case CMD_DRAIN:
        /* The main thread runs the drain, as for SIGTERM (it alone takes
           signals; every other thread blocks them). */
        if (kill(getpid(), SIGTERM) == 0)
            sl_sbuf_puts(o, "ok draining\n");
        else
            sl_sbuf_printf(o, "error: %s\n", strerror(errno));
        break;
    case CMD_QUIT:
        c->closing = true;
        return;
    case CMD_ERROR:
        sl_sbuf_printf(o, "error: %s\n", cmd.err);
        break;
    }
    sl_sbuf_puts(o, "\n");
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
            sl_sbuf_printf(&c->out, "error: line too long (max %d bytes)\n\n", MAX_LINE);
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
    sl_sbuf_free(&c->out);
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
        sl_sbuf_free(&c->out);
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
    static struct sl_busy_prev prev;
    struct sl_status_sample *s = sl_malloc(sizeof(*s));
    struct sl_sbuf b = {0};
    pthread_mutex_lock(&lock);
    if (prev.ns == 0)
        prev.ns = sl_srv.start_ns; /* the first /status: busy since start */
    gather(s);
    if (doc == SL_STATUS_JSON) {
        double busy[SL_STATUS_NSTAGES];
        double iv = sl_report_busy_since(s, &prev, busy);
        sl_report_json(&b, s, busy, iv);
        sl_sbuf_puts(&b, "\n");
    } else {
        sl_report_metrics(&b, s);
    }
    pthread_mutex_unlock(&lock);
    free(s);
    *len = b.len;
    return b.p;
}
