/* sluicectl: the status socket's client. Sends one command (stats, json,
 * metrics, set STAGE.threads N, help) and prints the reply, or shows a live
 * per-stage view (top) computed from consecutive `stats json` samples.
 * Exit codes: 0 ok, 1 the server answered "error: ...", 2 usage,
 * 3 cannot connect or the connection failed. */
#include "lib/common.h"

#include <errno.h>
#include <jansson.h>
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

/* ---- reading `stats json` (jansson) ---- */

/* Parses REPLY, the server's `stats json` reply. Returns a new reference, or
 * NULL after printing where and why the text is not JSON. Integers decode as
 * doubles: every figure is read as a number and counters may pass INT64_MAX. */
static json_t *stats_parse(const char *reply)
{
    json_error_t err;
    json_t *v = json_loads(reply, JSON_DECODE_INT_AS_REAL, &err);
    if (v == NULL)
        fprintf(stderr,
                "sluicectl: %s: the server's reply is not valid JSON: %s at line %d, "
                "column %d (byte %d)\n",
                sock_path, err.text, err.line, err.column, err.position);
    return v;
}

/* The number at dotted PATH under O ("queue.wait_us.p50"), or 0 if O is NULL,
 * the path is missing or the value is not a number. */
static double jnum(const json_t *o, const char *path)
{
    char part[64];
    const json_t *v = o;
    while (v != NULL && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof(part))
            return 0;
        memcpy(part, path, n);
        part[n] = '\0';
        v = json_object_get(v, part); /* NULL if V is not an object */
        path += n + (path[n] == '.');
    }
    return json_is_number(v) ? json_number_value(v) : 0;
}

/* The string member KEY of O, or "?". */
static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "?";
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
static void top_frame(FILE *f, const json_t *cur, const json_t *prev, bool tty)
{
    /* jnum() reads every figure of a NULL PREV as 0. */
    double dt = jnum(cur, "uptime_s") - jnum(prev, "uptime_s");
    char up[32];
    fmt_uptime(up, sizeof(up), jnum(cur, "uptime_s"));
    fprintf(f, "sluice %s  pid %.0f  up %s  queue %s  generation %.0f  over %.1fs%s\n",
            jstr(cur, "version"), jnum(cur, "pid"), up, jstr(cur, "queue_kind"),
            jnum(cur, "generation"), dt, prev == NULL ? " (since start)" : "");
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
    const json_t *adm = json_object_get(cur, "admission");
    double shed = 0;
    static const char *const shed_keys[] = {"admission.shed_queue_wait",
                                            "admission.refused_full",
                                            "admission.closed_full"};
    for (size_t k = 0; k < sizeof(shed_keys) / sizeof(shed_keys[0]); k++)
        shed += jnum(cur, shed_keys[k]) - jnum(prev, shed_keys[k]);
    fprintf(f,
            "admission %s  limit %.0f  admitted %.0f  waiting %.0f (backlog %.0f)  "
            "wait %.1f ms  readers idle %.0f%%  shed %.1f/s%s\n",
            jstr(adm, "policy"), jnum(cur, "admission.limit"),
            jnum(cur, "admission.admitted"), jnum(cur, "admission.waiting"),
            jnum(cur, "admission.backlog"), jnum(cur, "admission.wait_ms"),
            100 * jnum(cur, "admission.readers_idle"),
            dt > 0 ? shed / dt : 0,
            json_is_true(json_object_get(adm, "dropping")) ? "  DROPPING" : "");
    fprintf(f, "%-9s %4s %6s %10s %10s %6s %7s %7s %10s %10s\n", "STAGE", "THR", "BUSY%",
            "ITEMS/s", "IN/s", "BATCH", "DEPTH", "MAXDEP", "WAITp50us", "WAITp99us");
    const json_t *stages = json_object_get(cur, "stages");
    const json_t *pstages = json_object_get(prev, "stages");
    /* json_array_size/get: 0 and NULL when not an array or out of range. */
    for (size_t i = 0; i < json_array_size(stages); i++) {
        const json_t *s = json_array_get(stages, i);
        const json_t *ps = json_array_get(pstages, i);
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
    json_t *prev = NULL;
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
        json_t *cur = stats_parse(reply);
        if (cur == NULL) {
            free(reply);
            rc = EXIT_SERVER_ERROR;
            break;
        }
        free(reply);
        if (tty)
            fputs("\033[H\033[2J", stdout);
        else if (k > 0)
            fputc('\n', stdout);
        top_frame(stdout, cur, prev, tty);
        fflush(stdout);
        json_decref(prev); /* NULL-safe */
        prev = cur;
    }
    json_decref(prev);
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
