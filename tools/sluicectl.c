/* sluicectl: the status socket's client. Sends one command (stats, json,
 * metrics, set STAGE.threads N, help) and prints the reply, or shows a live
 * per-stage view (top) computed from consecutive `stats json` samples.
 * Exit codes: 0 ok, 1 the server answered "error: ...", 2 usage,
 * 3 cannot connect or the connection failed. */
#include "lib/common.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define EXIT_SERVER_ERROR 1
#define EXIT_USAGE 2
#define EXIT_CONNECT 3
#define REPLY_TIMEOUT_MS 10000
#define REPLY_MAX (16u << 20) /* a reply larger than this is not from sluice */

static const char *sock_path = "sluice.sock";

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: sluicectl [-s SOCKET] COMMAND\n"
        "  -s SOCKET              the status socket (default: sluice.sock)\n"
        "commands:\n"
        "  stats                  per-stage table\n"
        "  json                   the `stats json` object (one line)\n"
        "  metrics                Prometheus text format\n"
        "  drain                  stop as on SIGTERM (readiness fails, drain_delay, close)\n"
        "  set STAGE.threads N    resize a stage live (writer, acceptor)\n"
        "  top [-n ITER] [-i SECONDS]\n"
        "                         live view, refreshed every SECONDS (default 1);\n"
        "                         plain appended blocks when stdout is not a terminal\n"
        "  help                   the server's command list\n"
        "exit status: 0 ok, 1 the server reported an error, 2 usage, 3 cannot connect\n");
}

static void die_conn(const char *what, int err)
{
    fprintf(stderr, "sluicectl: %s %s: %s\n", what, sock_path, strerror(err));
    exit(EXIT_CONNECT);
}

/* ---- the connection ---- */

struct conn {
    int fd;
    char *buf; /* bytes received and not yet consumed */
    size_t len, cap;
};

static void conn_open(struct conn *c)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memset(c, 0, sizeof(*c));
    if (strlen(sock_path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "sluicectl: cannot connect to %s: path longer than %zu bytes\n",
                sock_path, sizeof(sa.sun_path) - 1);
        exit(EXIT_CONNECT);
    }
    strcpy(sa.sun_path, sock_path);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die_conn("cannot create a socket for", errno);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int err = errno;
        if (err == ECONNREFUSED)
            fprintf(stderr,
                    "sluicectl: cannot connect to %s: %s (stale socket: is sluice "
                    "running?)\n",
                    sock_path, strerror(err));
        else if (err == ENOENT)
            fprintf(stderr,
                    "sluicectl: cannot connect to %s: %s (is sluice running, and is "
                    "[server] status_socket set to this path?)\n",
                    sock_path, strerror(err));
        else
            fprintf(stderr, "sluicectl: cannot connect to %s: %s\n", sock_path,
                    strerror(err));
        exit(EXIT_CONNECT);
    }
}

static void conn_close(struct conn *c)
{
    close(c->fd);
    free(c->buf);
}

/* Sends LINE and returns the reply body (its lines, without the empty
 * terminator line), NUL-terminated, owned by the caller. Exits with
 * EXIT_CONNECT if the server goes away or stays silent. */
static char *request(struct conn *c, const char *line)
{
    size_t n = strlen(line);
    char *msg = sl_malloc(n + 2);
    memcpy(msg, line, n);
    msg[n] = '\n';
    size_t off = 0;
    while (off < n + 1) {
        ssize_t w = send(c->fd, msg + off, n + 1 - off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            die_conn("lost the connection to", errno);
        }
        off += (size_t)w;
    }
    free(msg);

    size_t scanned = 0;
    for (;;) {
        /* The reply ends at its first empty line: no reply contains one. */
        if (c->len >= 2) {
            size_t from = scanned > 0 ? scanned - 1 : 0;
            char *end = memmem(c->buf + from, c->len - from, "\n\n", 2);
            if (end != NULL) {
                size_t body = (size_t)(end - c->buf) + 1; /* keep its last '\n' */
                char *out = sl_malloc(body + 1);
                memcpy(out, c->buf, body);
                out[body] = '\0';
                size_t used = body + 1;
                memmove(c->buf, c->buf + used, c->len - used);
                c->len -= used;
                return out;
            }
            scanned = c->len;
        }
        if (c->len + 4096 > c->cap) {
            if (c->cap >= REPLY_MAX) {
                fprintf(stderr, "sluicectl: %s: reply too large\n", sock_path);
                exit(EXIT_CONNECT);
            }
            c->cap = c->cap ? c->cap * 2 : 65536;
            c->buf = sl_realloc(c->buf, c->cap);
        }
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int pr = poll(&p, 1, REPLY_TIMEOUT_MS);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0) {
            fprintf(stderr, "sluicectl: %s: no reply within %d s\n", sock_path,
                    REPLY_TIMEOUT_MS / 1000);
            exit(EXIT_CONNECT);
        }
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            die_conn("lost the connection to", errno);
        }
        if (r == 0) {
            if (c->len > 0 && strncmp(c->buf, "error:", 6) == 0) {
                /* e.g. "too many status clients", then closed */
                char *out = sl_malloc(c->len + 1);
                memcpy(out, c->buf, c->len);
                out[c->len] = '\0';
                c->len = 0;
                return out;
            }
            fprintf(stderr, "sluicectl: %s: the server closed the connection\n",
                    sock_path);
            exit(EXIT_CONNECT);
        }
        c->len += (size_t)r;
    }
}

/* Runs one command and prints its reply: errors to stderr. Returns the exit
 * code. */
static int simple_command(const char *line)
{
    struct conn c;
    conn_open(&c);
    char *reply = request(&c, line);
    conn_close(&c);
    int rc = 0;
    if (strncmp(reply, "error:", 6) == 0) {
        fprintf(stderr, "sluicectl: %s", reply);
        rc = EXIT_SERVER_ERROR;
    } else {
        fputs(reply, stdout);
    }
    free(reply);
    return rc;
}

/* ---- a small JSON reader, enough for `stats json` ---- */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
    enum jtype t;
    bool b;
    double num;
    char *str;
    size_t n;         /* J_ARR, J_OBJ: items */
    char **keys;      /* J_OBJ */
    struct jv *items; /* J_ARR, J_OBJ */
};

struct jparser {
    const char *p, *end;
    int depth;
};

#define JSON_MAX_DEPTH 32

static void jv_free(struct jv *v)
{
    for (size_t i = 0; i < v->n; i++) {
        jv_free(&v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
    memset(v, 0, sizeof(*v));
}

static void jskip(struct jparser *p)
{
    while (p->p < p->end &&
           (*p->p == ' ' || *p->p == '\t' || *p->p == '\n' || *p->p == '\r'))
        p->p++;
}

static bool jlit(struct jparser *p, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(p->end - p->p) < n || memcmp(p->p, word, n) != 0)
        return false;
    p->p += n;
    return true;
}

static int jhex(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Parses a string literal at p->p (at its '"') into a new NUL-terminated
 * UTF-8 string. Returns NULL on a malformed literal. */
static char *jstring(struct jparser *p)
{
    if (p->p >= p->end || *p->p != '"')
        return NULL;
    p->p++;
    size_t cap = 32, len = 0;
    char *s = sl_malloc(cap);
    while (p->p < p->end && *p->p != '"') {
        if (len + 8 > cap) {
            cap *= 2;
            s = sl_realloc(s, cap);
        }
        unsigned char ch = (unsigned char)*p->p++;
        if (ch < 0x20)
            goto bad;
        if (ch != '\\') {
            s[len++] = (char)ch;
            continue;
        }
        if (p->p >= p->end)
            goto bad;
        char e = *p->p++;
        switch (e) {
        case '"':
        case '\\':
        case '/':
            s[len++] = e;
            break;
        case 'b':
            s[len++] = '\b';
            break;
        case 'f':
            s[len++] = '\f';
            break;
        case 'n':
            s[len++] = '\n';
            break;
        case 'r':
            s[len++] = '\r';
            break;
        case 't':
            s[len++] = '\t';
            break;
        case 'u': {
            if (p->end - p->p < 4)
                goto bad;
            unsigned cp = 0;
            for (int i = 0; i < 4; i++) {
                int h = jhex(p->p[i]);
                if (h < 0)
                    goto bad;
                cp = cp << 4 | (unsigned)h;
            }
            p->p += 4;
            /* Surrogate pairs are not needed here; a lone half becomes '?'. */
            if (cp >= 0xd800 && cp <= 0xdfff) {
                s[len++] = '?';
            } else if (cp < 0x80) {
                s[len++] = (char)cp;
            } else if (cp < 0x800) {
                s[len++] = (char)(0xc0 | cp >> 6);
                s[len++] = (char)(0x80 | (cp & 0x3f));
            } else {
                s[len++] = (char)(0xe0 | cp >> 12);
                s[len++] = (char)(0x80 | (cp >> 6 & 0x3f));
                s[len++] = (char)(0x80 | (cp & 0x3f));
            }
            break;
        }
        default:
            goto bad;
        }
    }
    if (p->p >= p->end)
        goto bad;
    p->p++; /* closing quote */
    s[len] = '\0';
    return s;
bad:
    free(s);
    return NULL;
}

static bool jvalue(struct jparser *p, struct jv *out);

static void jpush(struct jv *v, char *key, const struct jv *item, size_t *cap)
{
    if (v->n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        v->items = sl_realloc(v->items, *cap * sizeof(*v->items));
        if (v->t == J_OBJ)
            v->keys = sl_realloc(v->keys, *cap * sizeof(*v->keys));
    }
    v->items[v->n] = *item;
    if (v->t == J_OBJ)
        v->keys[v->n] = key;
    v->n++;
}

/* Parses an array or object body after its opening bracket. */
static bool jcontainer(struct jparser *p, struct jv *out, char close_ch)
{
    size_t cap = 0;
    jskip(p);
    if (p->p < p->end && *p->p == close_ch) {
        p->p++;
        return true;
    }
    for (;;) {
        char *key = NULL;
        jskip(p);
        if (out->t == J_OBJ) {
            key = jstring(p);
            if (key == NULL)
                return false;
            jskip(p);
            if (p->p >= p->end || *p->p != ':') {
                free(key);
                return false;
            }
            p->p++;
        }
        struct jv item;
        if (!jvalue(p, &item)) {
            free(key);
            return false;
        }
        jpush(out, key, &item, &cap);
        jskip(p);
        if (p->p >= p->end)
            return false;
        char ch = *p->p++;
        if (ch == close_ch)
            return true;
        if (ch != ',')
            return false;
    }
}

static bool jvalue(struct jparser *p, struct jv *out)
{
    memset(out, 0, sizeof(*out));
    jskip(p);
    if (p->p >= p->end)
        return false;
    char ch = *p->p;
    if (ch == '{' || ch == '[') {
        if (++p->depth > JSON_MAX_DEPTH)
            return false;
        p->p++;
        out->t = ch == '{' ? J_OBJ : J_ARR;
        bool ok = jcontainer(p, out, ch == '{' ? '}' : ']');
        p->depth--;
        if (!ok)
            jv_free(out);
        return ok;
    }
    if (ch == '"') {
        out->t = J_STR;
        out->str = jstring(p);
        return out->str != NULL;
    }
    if (jlit(p, "true")) {
        out->t = J_BOOL;
        out->b = true;
        return true;
    }
    if (jlit(p, "false")) {
        out->t = J_BOOL;
        return true;
    }
    if (jlit(p, "null")) {
        out->t = J_NULL;
        return true;
    }
    const char *s = p->p;
    while (p->p < p->end && strchr("+-0123456789.eE", *p->p) != NULL)
        p->p++;
    if (p->p == s || p->p - s > 64)
        return false;
    char num[65];
    memcpy(num, s, (size_t)(p->p - s));
    num[p->p - s] = '\0';
    char *endp;
    out->t = J_NUM;
    out->num = strtod(num, &endp);
    return *endp == '\0';
}

/* Parses TEXT as one JSON value. Returns false on malformed input. */
static bool json_parse(const char *text, struct jv *out)
{
    struct jparser p = {.p = text, .end = text + strlen(text)};
    if (!jvalue(&p, out))
        return false;
    jskip(&p);
    if (p.p != p.end) {
        jv_free(out);
        return false;
    }
    return true;
}

/* Member KEY of object O, or NULL. */
static const struct jv *jget(const struct jv *o, const char *key)
{
    if (o == NULL || o->t != J_OBJ)
        return NULL;
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0)
            return &o->items[i];
    return NULL;
}

/* The number at dotted PATH under O ("queue.wait_us.p50"), or 0. */
static double jnum(const struct jv *o, const char *path)
{
    char part[64];
    const struct jv *v = o;
    while (v != NULL && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof(part))
            return 0;
        memcpy(part, path, n);
        part[n] = '\0';
        v = jget(v, part);
        path += n + (path[n] == '.');
    }
    return v != NULL && v->t == J_NUM ? v->num : 0;
}

static const char *jstr(const struct jv *o, const char *key)
{
    const struct jv *v = jget(o, key);
    return v != NULL && v->t == J_STR ? v->str : "?";
}

/* ---- top ---- */

static void fmt_uptime(char *out, size_t n, double s)
{
    long t = (long)s;
    if (t >= 86400)
        snprintf(out, n, "%ldd%02ldh%02ldm", t / 86400, t % 86400 / 3600, t % 3600 / 60);
    else
        snprintf(out, n, "%ld:%02ld:%02ld", t / 3600, t % 3600 / 60, t % 60);
}

/* Per second over DT, guarding a zero interval. */
static double rate(double now, double before, double dt)
{
    return dt > 0 ? (now - before) / dt : 0;
}

/* Writes one frame comparing CUR with PREV (NULL: since the server started). */
static void top_frame(FILE *f, const struct jv *cur, const struct jv *prev, bool tty)
{
    static const struct jv empty = {.t = J_OBJ};
    if (prev == NULL)
        prev = &empty;
    double dt = jnum(cur, "uptime_s") - jnum(prev, "uptime_s");
    char up[32];
    fmt_uptime(up, sizeof(up), jnum(cur, "uptime_s"));
    fprintf(f, "sluice %s  pid %.0f  up %s  queue %s  generation %.0f  over %.1fs%s\n",
            jstr(cur, "version"), jnum(cur, "pid"), up, jstr(cur, "queue_kind"),
            jnum(cur, "generation"), dt, prev == &empty ? " (since start)" : "");
    double req = rate(jnum(cur, "requests.total"), jnum(prev, "requests.total"), dt);
    double dreq = jnum(cur, "requests.total") - jnum(prev, "requests.total");
    double cls[6] = {0};
    for (int i = 1; i <= 5; i++) {
        char key[32];
        snprintf(key, sizeof(key), "requests.%dxx", i);
        cls[i] = jnum(cur, key) - jnum(prev, key);
    }
    double dinl = jnum(cur, "requests.inline") - jnum(prev, "requests.inline");
    fprintf(f,
            "requests %.1f/s  inline %.1f%%  2xx %.1f%%  3xx %.1f%%  4xx %.1f%%  5xx %.1f%%  "
            "sent %.2f MB/s\n",
            req, dreq > 0 ? 100 * dinl / dreq : 0, dreq > 0 ? 100 * cls[2] / dreq : 0, dreq > 0 ? 100 * cls[3] / dreq : 0,
            dreq > 0 ? 100 * cls[4] / dreq : 0, dreq > 0 ? 100 * cls[5] / dreq : 0,
            rate(jnum(cur, "bytes_sent"), jnum(prev, "bytes_sent"), dt) / 1e6);
    double hits = jnum(cur, "cache.hits") - jnum(prev, "cache.hits");
    double lookups = hits + jnum(cur, "cache.misses") - jnum(prev, "cache.misses");
    fprintf(
        f,
        "connections %.0f open  %.1f/s accepted  %.1f/s rejected   cache %.0f entries "
        "%.0f fds  hit %.1f%%\n",
        jnum(cur, "connections.current"),
        rate(jnum(cur, "connections.accepted"), jnum(prev, "connections.accepted"), dt),
        rate(jnum(cur, "connections.rejected"), jnum(prev, "connections.rejected"), dt),
        jnum(cur, "cache.entries"), jnum(cur, "cache.open_fds"),
        lookups > 0 ? 100 * hits / lookups : 0);
    const struct jv *adm = jget(cur, "admission");
    double shed = 0;
    static const char *const shed_keys[] = {"admission.shed_queue_wait",
                                            "admission.refused_full",
                                            "admission.closed_full"};
    for (size_t k = 0; k < sizeof(shed_keys) / sizeof(shed_keys[0]); k++)
        shed += jnum(cur, shed_keys[k]) - jnum(prev, shed_keys[k]);
    fprintf(f,
            "admission %s  limit %.0f  admitted %.0f  waiting %.0f (backlog %.0f)  "
            "wait %.1f ms  readers idle %.0f%%  shed %.1f/s%s\n",
            adm ? jstr(adm, "policy") : "?", jnum(cur, "admission.limit"),
            jnum(cur, "admission.admitted"), jnum(cur, "admission.waiting"),
            jnum(cur, "admission.backlog"), jnum(cur, "admission.wait_ms"),
            100 * jnum(cur, "admission.readers_idle"),
            dt > 0 ? shed / dt : 0,
            adm && jget(adm, "dropping") && jget(adm, "dropping")->b ? "  DROPPING" : "");
    fprintf(f, "%-9s %4s %6s %10s %10s %6s %7s %7s %10s %10s\n", "STAGE", "THR", "BUSY%",
            "ITEMS/s", "IN/s", "BATCH", "DEPTH", "MAXDEP", "WAITp50us", "WAITp99us");
    const struct jv *stages = jget(cur, "stages");
    const struct jv *pstages = jget(prev, "stages");
    for (size_t i = 0; stages != NULL && stages->t == J_ARR && i < stages->n; i++) {
        const struct jv *s = &stages->items[i];
        const struct jv *ps = pstages && pstages->t == J_ARR && i < pstages->n
                                  ? &pstages->items[i]
                                  : &empty;
        double db = jnum(s, "batches") - jnum(ps, "batches");
        double di = jnum(s, "batch_items") - jnum(ps, "batch_items");
        fprintf(f, "%-9s %4.0f %6.1f %10.1f %10.1f %6.1f %7.0f %7.0f %10.1f %10.1f\n",
                jstr(s, "name"), jnum(s, "threads"), 100 * jnum(s, "busy"),
                rate(jnum(s, "processed"), jnum(ps, "processed"), dt),
                rate(jnum(s, "queue.enqueued"), jnum(ps, "queue.enqueued"), dt),
                db > 0 ? di / db : 0, jnum(s, "queue.depth"), jnum(s, "queue.max_depth"),
                jnum(s, "queue.wait_us.p50"), jnum(s, "queue.wait_us.p99"));
    }
    if (tty)
        fprintf(f, "(busy%% over the interval, waits since start; Ctrl-C quits)\n");
}

static volatile sig_atomic_t stop_top;

static void on_signal(int sig)
{
    (void)sig;
    stop_top = 1;
}

static int top(int argc, char **argv)
{
    long iters = -1; /* forever */
    double interval = 1.0;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            iters = strtol(argv[++i], &end, 10);
            if (*end != '\0' || iters < 1) {
                fprintf(stderr, "sluicectl: top: -n wants a positive count\n");
                return EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "-i") == 0 && i + 1 < argc) {
            interval = strtod(argv[++i], &end);
            if (*end != '\0' || !(interval >= 0.05 && interval <= 3600)) {
                fprintf(stderr,
                        "sluicectl: top: -i wants seconds between 0.05 and 3600\n");
                return EXIT_USAGE;
            }
        } else {
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    bool tty = isatty(STDOUT_FILENO) == 1;
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct conn c;
    conn_open(&c);
    struct jv prev = {0};
    bool have_prev = false;
    int rc = 0;
    for (long k = 0; (iters < 0 || k < iters) && !stop_top; k++) {
        if (k > 0) {
            struct timespec ts = {(time_t)interval,
                                  (long)((interval - floor(interval)) * 1e9)};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !stop_top)
                ;
            if (stop_top)
                break;
        }
        char *reply = request(&c, "stats json");
        if (strncmp(reply, "error:", 6) == 0) {
            fprintf(stderr, "sluicectl: %s", reply);
            free(reply);
            rc = EXIT_SERVER_ERROR;
            break;
        }
        struct jv cur;
        if (!json_parse(reply, &cur)) {
            fprintf(stderr, "sluicectl: %s: the server's reply is not valid JSON\n",
                    sock_path);
            free(reply);
            rc = EXIT_SERVER_ERROR;
            break;
        }
        free(reply);
        if (tty)
            fputs("\033[H\033[2J", stdout);
        else if (k > 0)
            fputc('\n', stdout);
        top_frame(stdout, &cur, have_prev ? &prev : NULL, tty);
        fflush(stdout);
        if (have_prev)
            jv_free(&prev);
        prev = cur;
        have_prev = true;
    }
    if (have_prev)
        jv_free(&prev);
    conn_close(&c);
    return rc;
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "+s:h")) != -1) {
        switch (opt) {
        case 's':
            sock_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    argc -= optind;
    argv += optind;
    if (argc < 1) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[0];
    if (strcmp(cmd, "top") == 0)
        return top(argc, argv);
    if (strcmp(cmd, "set") == 0) {
        if (argc != 3) {
            fprintf(stderr, "sluicectl: usage: set STAGE.threads N\n");
            return EXIT_USAGE;
        }
        char line[256];
        if (snprintf(line, sizeof(line), "set %s %s", argv[1], argv[2]) >=
                (int)sizeof(line) ||
            strpbrk(line, "\r\n") != NULL) {
            fprintf(stderr, "sluicectl: set: argument too long or not one line\n");
            return EXIT_USAGE;
        }
        return simple_command(line);
    }
    if (argc != 1) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(cmd, "stats") == 0 || strcmp(cmd, "metrics") == 0 ||
        strcmp(cmd, "help") == 0 || strcmp(cmd, "drain") == 0)
        return simple_command(cmd);
    if (strcmp(cmd, "json") == 0)
        return simple_command("stats json");
    fprintf(stderr, "sluicectl: unknown command '%s'\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
