/* http_status.c: the HTTP status listener and the haproxy agent check; see
 * http_status.h.
 *
 * One thread ("http-status") runs one poll() loop over an eventfd (stop), the
 * two listening sockets and at most SL_HS_MAX_CLIENTS clients. Every client
 * sends one request and gets one response with Connection: close; a client
 * that has not got its whole response SL_HS_TIMEOUT_NS after connecting is
 * closed. The agent check answers on accept and closes. Like the status
 * socket it never touches a connection or a queue of the data path: it reads
 * counters (sl_stats_snapshot), queue depths and atomics of sl_srv. */
#include "app/http_status.h"
#include "app/server.h"
#include "app/status.h"
#include "lib/log.h"
#include "lib/net.h"
#include "lib/stats.h"
#include "stages/admission.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <urcu.h>

#define LOOK_NS 500000000ull /* how often stage progress is sampled */

/* ---- pure parts ---- */

enum sl_hs_route sl_hs_route(const char *head, size_t len, bool *head_only)
{
    *head_only = false;
    const char *nl = memchr(head, '\n', len);
    size_t ll = nl ? (size_t)(nl - head) : len;
    if (ll > 0 && head[ll - 1] == '\r')
        ll--;
    const char *sp1 = memchr(head, ' ', ll);
    if (sp1 == NULL || sp1 == head)
        return SL_HS_BAD_REQUEST;
    const char *tgt = sp1 + 1;
    const char *sp2 = memchr(tgt, ' ', ll - (size_t)(tgt - head));
    if (sp2 == NULL || sp2 == tgt || *tgt != '/')
        return SL_HS_BAD_REQUEST;
    const char *ver = sp2 + 1;
    size_t vl = ll - (size_t)(ver - head);
    if (vl != 8 || memcmp(ver, "HTTP/1.", 7) != 0 || (ver[7] != '0' && ver[7] != '1'))
        return SL_HS_BAD_REQUEST;
    size_t ml = (size_t)(sp1 - head);
    for (size_t i = 0; i < ml; i++)
        if (head[i] < 'A' || head[i] > 'Z')
            return SL_HS_BAD_REQUEST;
    bool get = ml == 3 && memcmp(head, "GET", 3) == 0;
    bool hd = ml == 4 && memcmp(head, "HEAD", 4) == 0;
    if (!get && !hd)
        return SL_HS_BAD_METHOD;
    *head_only = hd;
    size_t pl = (size_t)(sp2 - tgt);
    const char *q = memchr(tgt, '?', pl);
    if (q)
        pl = (size_t)(q - tgt);
    static const struct {
        const char *path;
        enum sl_hs_route r;
    } routes[] = {{"/metrics", SL_HS_METRICS},
                  {"/healthz", SL_HS_HEALTHZ},
                  {"/readyz", SL_HS_READYZ},
                  {"/status", SL_HS_STATUS}};
    for (size_t i = 0; i < SL_ARRAY_LEN(routes); i++)
        if (strlen(routes[i].path) == pl && memcmp(tgt, routes[i].path, pl) == 0)
            return routes[i].r;
    return SL_HS_NOT_FOUND;
}

double sl_agent_capacity(long limit, long waiting, uint64_t wait_ns, uint64_t target_ns)
{
    double cap = 1.0;
    if (waiting > 0 && limit > 0)
        cap = (double)limit / (double)(limit + waiting);
    if (target_ns > 0 && wait_ns != UINT64_MAX && wait_ns > target_ns)
        cap *= (double)target_ns / (double)wait_ns;
    return cap;
}

int sl_agent_weight(double capacity, double shedding, bool draining)
{
    if (draining)
        return 0;
    double cap = capacity < 0 ? 0 : capacity > 1 ? 1 : capacity;
    if (shedding < 0)
        shedding = 0;
    if (shedding > 1)
        shedding = 1;
    int w = (int)(100.0 * cap * (1.0 - 0.9 * shedding) + 0.5);
    return w < 1 ? 1 : w > 100 ? 100 : w;
}

size_t sl_agent_reply(char *out, size_t n, bool draining, bool stopping, int weight)
{
    int len;
    if (draining)
        len = snprintf(out, n, "drain\n");
    else if (stopping)
        len = snprintf(out, n, "maint\n");
    else
        len = snprintf(out, n, "ready up %d%%\n", weight);
    return len < 0 ? 0 : (size_t)len < n ? (size_t)len : n - 1;
}

bool sl_hs_health(struct sl_hs_progress *p, const uint64_t *done, const long *depth,
                  uint64_t now, uint64_t stall_ns, char *why, size_t whysz)
{
    bool ok = true;
    size_t used = 0;
    why[0] = '\0';
    for (int i = 0; i < SL_HS_STAGES; i++) {
        if (p[i].moved_ns == 0 || done[i] != p[i].done || depth[i] <= 0) {
            p[i].done = done[i];
            p[i].moved_ns = now;
            continue;
        }
        uint64_t still = now - p[i].moved_ns;
        if (still < stall_ns)
            continue;
        ok = false;
        int k = snprintf(why + used, whysz - used, "%s%s: %ld queued, no progress for %.1fs",
                         used ? "; " : "", sl_stage_name((enum sl_stage_id)i), depth[i],
                         (double)still / 1e9);
        if (k > 0)
            used = SL_MIN(used + (size_t)k, whysz - 1);
    }
    return ok;
}

/* ---- the thread ---- */

struct client {
    int fd;
    uint64_t deadline;
    size_t in_len;
    char *out; /* the response, once decided */
    size_t out_len, out_off;
    char in[SL_HS_MAX_REQUEST];
};

static struct {
    bool running;
    pthread_t tid;
    int wake_fd, http_fd, agent_fd;
    struct client *clients[SL_HS_MAX_CLIENTS];
    int nclients;
    struct sl_hs_progress progress[SL_HS_STAGES];
    uint64_t last_look;
    bool healthy;
    char why[512];
    /* Admission state for the agent weight, per LOOK_NS tick: the share of
       responses that were shed (503 for queue wait) in the last tick. */
    uint64_t tick_ns, tick_requests, tick_shed;
    double shed_share;
} hs = {.wake_fd = -1, .http_fd = -1, .agent_fd = -1};

/* Opens a listening TCP socket on SPEC ("HOST:PORT", "[V6]:PORT"). */
static int open_tcp(const char *spec, const char *key)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    size_t hl = colon ? (size_t)(colon - spec) : 0;
    const char *h = spec;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
        h++, hl -= 2;
    if (colon == NULL || hl >= sizeof(host)) {
        sl_log(SL_LOG_CRIT, "status.%s: '%s' is not HOST:PORT", key, spec);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    char reason[512];
    int fd = sl_listen_bind(spec, host, colon + 1, 64, false, reason, sizeof(reason));
    if (fd < 0)
        sl_log(SL_LOG_CRIT, "status.%s: %s", key, reason);
    return fd;
}

/* Samples every stage's progress into hs.healthy / hs.why. */
static void look(uint64_t now)
{
    struct sl_stats_snapshot *snap = sl_malloc(sizeof(*snap));
    sl_stats_snapshot(snap);
    uint64_t done[SL_HS_STAGES];
    long depth[SL_HS_STAGES] = {0};
    done[SL_STAGE_ACCEPTOR] = snap->ev.conn_accepted + snap->ev.conn_rejected;
    if (now - hs.tick_ns >= LOOK_NS) {
        uint64_t req = snap->ev.requests - hs.tick_requests;
        uint64_t shed = snap->ev.shed_queue_wait - hs.tick_shed;
        hs.shed_share = req > 0 ? (double)SL_MIN(shed, req) / (double)req : 0.0;
        hs.tick_requests = snap->ev.requests;
        hs.tick_shed = snap->ev.shed_queue_wait;
        hs.tick_ns = now;
    }
    for (int i = 1; i < SL_HS_STAGES; i++)
        done[i] = snap->stage[i].q_dequeued;
    free(snap);
    long q = sl_adm_accept_queue(NULL);
    if (q >= 0)
        depth[SL_STAGE_ACCEPTOR] = q;
    for (int i = 0; i < sl_srv.nreaders; i++)
        depth[SL_STAGE_READER] += sl_queue_depth(&sl_srv.reader_q[i]);
    depth[SL_STAGE_DETECTOR] = sl_queue_depth(&sl_srv.detector_q);
    depth[SL_STAGE_WRITER] = sl_queue_depth(&sl_srv.writer_q);
    rcu_read_lock();
    uint64_t stall = rcu_dereference(sl_srv.cfg)->stall_ns;
    rcu_read_unlock();
    hs.healthy = sl_hs_health(hs.progress, done, depth, now, stall, hs.why, sizeof(hs.why));
    hs.last_look = now;
}

/* Readiness: false with WHY while draining or shedding at the configured
 * level. */
static bool ready(char *why, size_t n)
{
    if (__atomic_load_n(&sl_srv.draining, __ATOMIC_RELAXED) ||
        __atomic_load_n(&sl_srv.stopping, __ATOMIC_RELAXED)) {
        snprintf(why, n, "draining");
        return false;
    }
    rcu_read_lock();
    int level = rcu_dereference(sl_srv.cfg)->ready_shed_level;
    rcu_read_unlock();
    int dropping = __atomic_load_n(&sl_srv.adm_dropping, __ATOMIC_RELAXED);
    int pct = sl_srv.nreaders > 0 ? dropping * 100 / sl_srv.nreaders : 0;
    if (level > 0 && dropping > 0 && pct >= level) {
        snprintf(why, n, "shedding: %d of %d readers over the queue wait target", dropping,
                 sl_srv.nreaders);
        return false;
    }
    snprintf(why, n, "ready");
    return true;
}

static int agent_weight_now(void)
{
    /* Under policy = limit nothing is answered 503: the instance says how
       far over its capacity it is by the connections waiting for the limit
       and by its queue wait over the target, so haproxy sends less before
       anyone waits long. */
    double capacity = 1.0;
    if (sl_set.adm_policy == SL_ADM_LIMIT && sl_set.adm_target_ns > 0) {
        struct sl_adm_state as;
        sl_adm_state(&as);
        uint64_t wait = __atomic_load_n(&sl_srv.adm_signal_ns, __ATOMIC_RELAXED);
        capacity = sl_agent_capacity(as.limit < sl_set.max_connections ? as.limit : 0,
                                     as.waiting, wait, sl_set.adm_target_ns);
    }
    int dropping = __atomic_load_n(&sl_srv.adm_dropping, __ATOMIC_RELAXED);
    double shedding = sl_srv.nreaders > 0 ? (double)dropping / sl_srv.nreaders : 0.0;
    /* CoDel's dropping flag flickers at the edge of overload; the share of
       responses shed in the last tick says the same more steadily. */
    if (hs.shed_share > shedding)
        shedding = hs.shed_share;
    return sl_agent_weight(capacity, shedding,
                           __atomic_load_n(&sl_srv.draining, __ATOMIC_RELAXED) != 0);
}

/* Sets C's response: status line, headers and BODY (LEN bytes; omitted for
 * HEAD, Content-Length kept). */
static void respond(struct client *c, int status, const char *reason, const char *type,
                    const char *extra, const char *body, size_t len, bool head_only)
{
    char hdr[512];
    int hl = snprintf(hdr, sizeof(hdr),
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                      "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n",
                      status, reason, type, len, extra);
    size_t blen = head_only ? 0 : len;
    c->out = sl_malloc((size_t)hl + blen + 1);
    memcpy(c->out, hdr, (size_t)hl);
    if (blen)
        memcpy(c->out + hl, body, blen);
    c->out_len = (size_t)hl + blen;
    c->out_off = 0;
}

static void respond_text(struct client *c, int status, const char *reason, const char *extra,
                         const char *text, bool head_only)
{
    respond(c, status, reason, "text/plain; charset=utf-8", extra, text, strlen(text),
            head_only);
}

/* A whole head is in C->in: decide the response. */
static void serve(struct client *c)
{
    bool head_only;
    char why[600], body[700];
    switch (sl_hs_route(c->in, c->in_len, &head_only)) {
    case SL_HS_METRICS: {
        size_t len;
        char *text = sl_status_render(SL_STATUS_METRICS, &len);
        respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", "", text, len,
                head_only);
        free(text);
        return;
    }
    case SL_HS_STATUS: {
        size_t len;
        char *text = sl_status_render(SL_STATUS_JSON, &len);
        respond(c, 200, "OK", "application/json", "", text, len, head_only);
        free(text);
        return;
    }
    case SL_HS_HEALTHZ:
        look(sl_now_ns());
        if (hs.healthy)
            respond_text(c, 200, "OK", "", "ok: every stage makes progress\n", head_only);
        else {
            snprintf(body, sizeof(body), "stalled: %s\n", hs.why);
            respond_text(c, 503, "Service Unavailable", "", body, head_only);
        }
        return;
    case SL_HS_READYZ: {
        bool ok = ready(why, sizeof(why));
        snprintf(body, sizeof(body), "%s\n", why);
        if (ok)
            respond_text(c, 200, "OK", "", body, head_only);
        else
            respond_text(c, 503, "Service Unavailable", "", body, head_only);
        return;
    }
    case SL_HS_NOT_FOUND:
        respond_text(c, 404, "Not Found", "",
                     "not found: try /metrics, /healthz, /readyz, /status\n", head_only);
        return;
    case SL_HS_BAD_METHOD:
        respond_text(c, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n",
                     "method not allowed: GET or HEAD\n", false);
        return;
    case SL_HS_BAD_REQUEST:
        respond_text(c, 400, "Bad Request", "", "bad request\n", false);
        return;
    }
}

static void client_close(int i)
{
    struct client *c = hs.clients[i];
    close(c->fd);
    free(c->out);
    free(c);
    hs.clients[i] = hs.clients[--hs.nclients];
}

/* Reads and answers C. Returns SL_OK to keep it, SL_DONE to close it. */
static int client_io(struct client *c)
{
    while (c->out == NULL) {
        ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return SL_OK;
        if (n <= 0)
            return SL_DONE;
        size_t from = c->in_len > 3 ? c->in_len - 3 : 0;
        c->in_len += (size_t)n;
        bool whole = false;
        for (size_t i = from; i < c->in_len && !whole; i++)
            whole = c->in[i] == '\n' &&
                    ((i >= 1 && c->in[i - 1] == '\n') ||
                     (i >= 3 && c->in[i - 1] == '\r' && c->in[i - 2] == '\n'));
        if (whole)
            serve(c);
        else if (c->in_len == sizeof(c->in))
            respond_text(c, 431, "Request Header Fields Too Large", "",
                         "request head too large\n", false);
    }
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return SL_OK;
        if (n <= 0)
            return SL_DONE;
        c->out_off += (size_t)n;
    }
    shutdown(c->fd, SHUT_WR);
    return SL_DONE;
}

/* The next connection on listener LFD, nonblocking; -1 when none is left
 * (EAGAIN) or on an error other than a client gone before its accept. */
static int accept_next(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0 || (errno != EINTR && errno != ECONNABORTED))
            return fd;
    }
}

static void accept_http(void)
{
    for (int k = 0; k < SL_HS_MAX_CLIENTS; k++) {
        int fd = accept_next(hs.http_fd);
        if (fd < 0)
            return;
        if (hs.nclients == SL_HS_MAX_CLIENTS) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                       "Content-Length: 0\r\nConnection: close\r\n\r\n";
            (void)!send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            close(fd);
            continue;
        }
        struct client *c = sl_calloc(1, sizeof(*c));
        c->fd = fd;
        c->deadline = sl_now_ns() + SL_HS_TIMEOUT_NS;
        hs.clients[hs.nclients++] = c;
    }
}

/* haproxy connects, reads one line, and closes. */
static void accept_agent(void)
{
    for (int k = 0; k < SL_HS_MAX_CLIENTS; k++) {
        int fd = accept_next(hs.agent_fd);
        if (fd < 0)
            return;
        char line[64];
        size_t n = sl_agent_reply(line, sizeof(line),
                                  __atomic_load_n(&sl_srv.draining, __ATOMIC_RELAXED) != 0,
                                  __atomic_load_n(&sl_srv.stopping, __ATOMIC_RELAXED) != 0,
                                  agent_weight_now());
        (void)!send(fd, line, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        shutdown(fd, SHUT_WR);
        close(fd);
    }
}

static void *hs_main(void *arg)
{
    (void)arg;
    sl_set_thread_name("http-status");
    rcu_register_thread(); /* reads sl_srv.cfg under rcu_read_lock() */
    struct pollfd pfd[3 + SL_HS_MAX_CLIENTS];
    for (;;) {
        sl_settings_refresh(); /* this round's settings, one snapshot */
        uint64_t now = sl_now_ns();
        if (now - hs.last_look >= LOOK_NS)
            look(now);
        /* Clients past their deadline go, from the last index down (closing
           moves the last one into the slot). */
        for (int i = hs.nclients - 1; i >= 0; i--)
            if (hs.clients[i]->deadline <= now)
                client_close(i);
        pfd[0] = (struct pollfd){.fd = hs.wake_fd, .events = POLLIN};
        pfd[1] = (struct pollfd){.fd = hs.http_fd, .events = POLLIN};
        pfd[2] = (struct pollfd){.fd = hs.agent_fd, .events = POLLIN};
        int nc = hs.nclients;
        for (int i = 0; i < nc; i++) {
            struct client *c = hs.clients[i];
            pfd[3 + i] = (struct pollfd){.fd = c->fd, .events = c->out ? POLLOUT : POLLIN};
        }
        int n = poll(pfd, (nfds_t)(3 + nc), (int)(LOOK_NS / 1000000));
        if (n < 0 && errno != EINTR) {
            sl_log(SL_LOG_ERROR, "status listener: poll: %s", strerror(errno));
            poll(NULL, 0, 100); /* do not spin */
            continue;
        }
        if (n <= 0)
            continue;
        if (pfd[0].revents)
            break;
        for (int i = nc - 1; i >= 0; i--)
            if (pfd[3 + i].revents && client_io(hs.clients[i]) == SL_DONE)
                client_close(i);
        if (pfd[1].revents)
            accept_http();
        if (pfd[2].revents)
            accept_agent();
    }
    rcu_unregister_thread();
    return NULL;
}

int sl_http_status_start(const char *listen_spec, const char *agent_spec)
{
    if (listen_spec[0] == '\0' && agent_spec[0] == '\0')
        return SL_OK;
    if (listen_spec[0] && (hs.http_fd = open_tcp(listen_spec, "listen")) < 0)
        goto fail;
    if (agent_spec[0] && (hs.agent_fd = open_tcp(agent_spec, "agent_listen")) < 0)
        goto fail;
    hs.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (hs.wake_fd < 0) {
        sl_log(SL_LOG_CRIT, "status listener: eventfd: %s", strerror(errno));
        goto fail;
    }
    hs.last_look = 0;
    hs.tick_ns = 0;
    hs.tick_requests = hs.tick_shed = 0;
    hs.shed_share = 0;
    memset(hs.progress, 0, sizeof(hs.progress));
    int rc = pthread_create(&hs.tid, NULL, hs_main, NULL);
    if (rc != 0) {
        sl_log(SL_LOG_CRIT, "status listener: cannot start its thread: %s", strerror(rc));
        goto fail;
    }
    pthread_setname_np(hs.tid, "http-status");
    hs.running = true;
    if (listen_spec[0])
        sl_log(SL_LOG_INFO, "status listener on %s (/metrics /healthz /readyz /status)",
               listen_spec);
    if (agent_spec[0])
        sl_log(SL_LOG_INFO, "haproxy agent check on %s", agent_spec);
    return SL_OK;
fail:
    sl_http_status_stop();
    return SL_ERR;
}

void sl_http_status_stop(void)
{
    if (hs.running) {
        uint64_t one = 1;
        (void)!write(hs.wake_fd, &one, sizeof(one));
        pthread_join(hs.tid, NULL);
        hs.running = false;
    }
    while (hs.nclients > 0)
        client_close(hs.nclients - 1);
    int *fds[] = {&hs.wake_fd, &hs.http_fd, &hs.agent_fd};
    for (size_t i = 0; i < SL_ARRAY_LEN(fds); i++)
        if (*fds[i] >= 0) {
            close(*fds[i]);
            *fds[i] = -1;
        }
}
