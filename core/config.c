/* config.c: table-driven INI parsing with libinih; see config.h. Each key is
 * one row: section, name, type, where it goes, and its allowed range. */
#include "core/config.h"
#include "core/proxy.h"
#include "lib/cpus.h"
#include "lib/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netdb.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sched.h>
#include <unistd.h>
#include <stdarg.h>
#include <ini.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum key_type {
    K_STR, K_INT, K_LONG, K_SIZE, K_DURATION, K_BOOL, K_MODE, K_QKIND, K_LEVEL, K_AFMT, K_FULL, K_POLICY,
    K_THREADS, K_SIZE_AUTO
};

struct key {
    const char *section;
    const char *name;
    enum key_type type;
    size_t off;
    long long min, max; /* K_INT/K_LONG/K_SIZE; ns for K_DURATION */
};

#define OFF(f) offsetof(struct sl_config, f)
#define SEC 1000000000ll

static const struct key keys[] = {
    {"server", "listen", K_STR, OFF(listen), 0, 0},
    {"server", "root", K_STR, OFF(root), 0, 0},
    {"server", "max_connections", K_LONG, OFF(max_connections), 1, 10000000},
    {"server", "backlog", K_INT, OFF(backlog), 1, 1 << 20},
    {"server", "defer_accept", K_BOOL, OFF(defer_accept), 0, 0},
    {"server", "status_socket", K_STR, OFF(status_socket), 0, 0},
    {"server", "status_socket_mode", K_MODE, OFF(status_socket_mode), 0, 0777},
    {"server", "pidfile", K_STR, OFF(pidfile), 0, 0},
    {"server", "user", K_STR, OFF(user), 0, 0},
    {"server", "shutdown_timeout", K_DURATION, OFF(shutdown_timeout_ns), 0, 3600 * SEC},
    {"server", "error_log", K_STR, OFF(error_log), 0, 0},
    {"server", "access_log", K_STR, OFF(access_log), 0, 0},
    {"server", "access_log_format", K_AFMT, OFF(access_log_format), 0, 0},
    {"server", "log_level", K_LEVEL, OFF(log_level), 0, 0},
    {"queue", "kind", K_QKIND, OFF(queue_kind), 0, 0},
    {"queue", "batch", K_INT, OFF(queue_batch), 1, 4096},
    {"acceptor", "threads", K_INT, OFF(acceptor_threads), 0, SL_MAX_THREADS},
    {"reader", "threads", K_THREADS, OFF(reader_threads), 1, SL_MAX_THREADS},
    {"reader", "inline_max", K_SIZE, OFF(reader_inline_max), 0, 64l << 20},
    {"detector", "threads", K_INT, OFF(detector_threads), 1, 1},
    {"writer", "threads", K_THREADS, OFF(writer_threads), 1, SL_MAX_THREADS},
    {"writer", "optimistic", K_BOOL, OFF(optimistic_write), 0, 0},
    {"cache", "max_entries", K_LONG, OFF(cache_max_entries), 1, 100000000},
    {"cache", "validity", K_DURATION, OFF(cache_validity_ns), 0, 86400 * SEC},
    {"cache", "negative_validity", K_DURATION, OFF(cache_negative_ns), 0, 86400 * SEC},
    {"cache", "small_file_max", K_SIZE, OFF(cache_small_file_max), 0, 1 << 20},
    {"cache", "body_memory", K_SIZE_AUTO, OFF(cache_body_memory), 0, 1ll << 40},
    {"admission", "queue_wait_target", K_DURATION, OFF(adm_target_ns), 0, 60 * SEC},
    {"admission", "queue_wait_interval", K_DURATION, OFF(adm_interval_ns), SEC / 1000,
     60 * SEC},
    {"admission", "retry_after", K_INT, OFF(adm_retry_after), 0, 86400},
    {"admission", "on_full", K_FULL, OFF(adm_on_full), 0, 0},
    {"admission", "close_idle", K_BOOL, OFF(adm_close_idle), 0, 0},
    {"admission", "policy", K_POLICY, OFF(adm_policy), 0, 0},
    {"admission", "drop_syn_retries", K_BOOL, OFF(adm_drop_syn_retries), 0, 0},
    {"admission", "gate_syns", K_BOOL, OFF(adm_gate_syns), 0, 0},
    {"http", "index", K_STR, OFF(index), 0, 0},
    {"http", "mime_types", K_STR, OFF(mime_types), 0, 0},
    {"http", "default_type", K_STR, OFF(default_type), 0, 0},
    {"http", "precompressed", K_BOOL, OFF(precompressed), 0, 0},
    {"limits", "max_request_line", K_SIZE, OFF(max_request_line), 64, 1 << 20},
    {"limits", "max_header_size", K_SIZE, OFF(max_header_size), 256, 1 << 20},
    {"limits", "max_headers", K_LONG, OFF(max_headers), 1, 100},
    {"limits", "max_requests_per_connection", K_LONG, OFF(max_requests_per_connection), 0,
     LONG_MAX},
    {"limits", "max_body_discard", K_SIZE, OFF(max_body_discard), 0, 1ll << 30},
    {"timeouts", "header", K_DURATION, OFF(header_timeout_ns), SEC / 1000, 3600 * SEC},
    {"timeouts", "keepalive", K_DURATION, OFF(keepalive_timeout_ns), SEC / 1000,
     86400 * SEC},
    {"timeouts", "send", K_DURATION, OFF(send_timeout_ns), SEC / 1000, 86400 * SEC},
    {"server", "drain_delay", K_DURATION, OFF(drain_delay_ns), 0, 3600 * SEC},
    {"server", "reuseport", K_BOOL, OFF(reuseport), 0, 0},
    {"server", "proxy_protocol", K_BOOL, OFF(proxy_protocol), 0, 0},
    {"server", "proxy_protocol_from", K_STR, OFF(proxy_protocol_from), 0, 0},
    {"status", "listen", K_STR, OFF(status_listen), 0, 0},
    {"status", "agent_listen", K_STR, OFF(agent_listen), 0, 0},
    {"status", "stall_after", K_DURATION, OFF(stall_ns), SEC / 10, 3600 * SEC},
    {"status", "ready_shed_level", K_INT, OFF(ready_shed_level), 0, 100},
};

static const char *const known_sections[] = {"server",   "queue",  "acceptor", "reader",
                                             "detector", "writer", "cache",    "http",
                                             "limits",   "timeouts", "admission",
                                             "status"};

int sl_config_cpus(void)
{
    int n = sl_cpus_usable();
    return n > SL_MAX_THREADS ? SL_MAX_THREADS : n;
}

void sl_config_defaults(struct sl_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->listen = sl_strdup("127.0.0.1:8080");
    cfg->root = sl_strdup("www");
    cfg->max_connections = 20000;
    cfg->backlog = 4096;
    cfg->defer_accept = true;
    cfg->status_socket = sl_strdup("");
    cfg->status_socket_mode = 0600;
    cfg->pidfile = sl_strdup("sluice.pid");
    cfg->user = sl_strdup("");
    cfg->shutdown_timeout_ns = 10 * SEC;
    cfg->error_log = sl_strdup("stderr");
    cfg->access_log = sl_strdup("");
    cfg->access_log_format = SL_ACCESS_COMBINED;
    cfg->log_level = SL_LOG_INFO;
    cfg->queue_kind = SL_QUEUE_WFCQ;
    cfg->queue_batch = 64;
    cfg->acceptor_threads = 0; /* the readers accept */
    cfg->reader_threads = sl_config_cpus();
    cfg->detector_threads = 1;
    cfg->writer_threads = sl_config_cpus();
    cfg->optimistic_write = true;
    cfg->reader_inline_max = 1024 * 1024;
    cfg->cache_max_entries = 10000;
    cfg->cache_validity_ns = 1 * SEC;
    cfg->cache_negative_ns = 1 * SEC;
    cfg->cache_small_file_max = 128 * 1024;
    cfg->cache_body_memory = -1; /* auto */
    cfg->adm_target_ns = 50 * SEC / 1000;
    cfg->adm_interval_ns = SEC / 10;
    cfg->adm_retry_after = 1;
    cfg->adm_on_full = SL_FULL_CLOSE;
    cfg->adm_close_idle = false;
    cfg->adm_policy = SL_ADM_LIMIT;
    cfg->adm_drop_syn_retries = true;
    cfg->adm_gate_syns = true;
    cfg->index = sl_strdup("index.html");
    cfg->mime_types = sl_strdup("/etc/mime.types");
    cfg->default_type = sl_strdup("application/octet-stream");
    cfg->max_request_line = 8192;
    cfg->max_header_size = 16384;
    cfg->max_headers = 100;
    cfg->max_requests_per_connection = 0;
    cfg->max_body_discard = 1 << 20;
    cfg->header_timeout_ns = 10 * SEC;
    cfg->keepalive_timeout_ns = 60 * SEC;
    cfg->send_timeout_ns = 60 * SEC;
    cfg->drain_delay_ns = 0; /* today's behaviour: SIGTERM closes the listener at once */
    cfg->reuseport = false;
    cfg->proxy_protocol = false;
    cfg->proxy_protocol_from = sl_strdup("127.0.0.0/8, ::1");
    cfg->status_listen = sl_strdup("");
    cfg->agent_listen = sl_strdup("");
    cfg->stall_ns = 5 * SEC;
    cfg->ready_shed_level = 100;
}

void sl_config_free(struct sl_config *cfg)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(keys); i++)
        if (keys[i].type == K_STR) {
            char **p = (char **)((char *)cfg + keys[i].off);
            free(*p);
            *p = NULL;
        }
    free(cfg->path);
    cfg->path = NULL;
}

int sl_parse_duration(const char *s, uint64_t *ns)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno != 0 || v < 0)
        return SL_ERR;
    while (*end == ' ' || *end == '\t')
        end++;
    double mult;
    if (*end == '\0' || strcmp(end, "s") == 0)
        mult = 1e9;
    else if (strcmp(end, "ms") == 0)
        mult = 1e6;
    else if (strcmp(end, "us") == 0)
        mult = 1e3;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        mult = 60e9;
    else if (strcmp(end, "h") == 0)
        mult = 3600e9;
    else
        return SL_ERR;
    double r = v * mult;
    if (r > 9.2e18)
        return SL_ERR;
    *ns = (uint64_t)(r + 0.5);
    return SL_OK;
}

int sl_parse_size(const char *s, long *out)
{
    char *end;
    errno = 0;
    if (*s == '-' || *s == '+')
        return SL_ERR;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || errno != 0)
        return SL_ERR;
    unsigned long long mult = 1;
    if (*end == 'k' || *end == 'K')
        mult = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        mult = 1024 * 1024, end++;
    else if (*end == 'g' || *end == 'G')
        mult = 1024ull * 1024 * 1024, end++;
    if (*end == 'b' || *end == 'B')
        end++;
    if (*end != '\0' || v > (unsigned long long)LONG_MAX / mult)
        return SL_ERR;
    *out = (long)(v * mult);
    return SL_OK;
}

static int parse_long(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0)
        return SL_ERR;
    *out = v;
    return SL_OK;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"yes", "on", "true", "1"};
    static const char *const no[] = {"no", "off", "false", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0)
            return *out = true, SL_OK;
        if (strcasecmp(s, no[i]) == 0)
            return *out = false, SL_OK;
    }
    return SL_ERR;
}

struct parse_ctx {
    struct sl_config *cfg;
    char *err;
    size_t errsz;
    bool seen[SL_ARRAY_LEN(keys)];
};

/* Writes "key: reason" into ctx->err; the caller adds "PATH:LINE: ". */
static int fail(struct parse_ctx *ctx, const char *section, const char *name,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(struct parse_ctx *ctx, const char *section, const char *name,
                const char *fmt, ...)
{
    int n = snprintf(ctx->err, ctx->errsz, "%s%s%s: ", section, *section ? "." : "", name);
    if (n < 0 || (size_t)n >= ctx->errsz)
        return 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->err + n, ctx->errsz - (size_t)n, fmt, ap);
    va_end(ap);
    return 0; /* inih: stop at the first error, report its line */
}

static int set_key(struct parse_ctx *ctx, const struct key *k, const char *v)
{
    char *field = (char *)ctx->cfg + k->off;
    long long n;
    long sz;
    uint64_t ns;
    switch (k->type) {
    case K_STR:
        free(*(char **)field);
        *(char **)field = sl_strdup(v);
        return 1;
    case K_THREADS:
        if (strcmp(v, "auto") == 0) {
            *(int *)field = sl_config_cpus();
            return 1;
        }
        __attribute__((fallthrough)); /* a number */
    case K_INT:
    case K_LONG:
        if (parse_long(v, &n) != SL_OK)
            return fail(ctx, k->section, k->name, "'%s' is not an integer", v);
        if (n < k->min || n > k->max)
            return fail(ctx, k->section, k->name, "%lld is out of range [%lld, %lld]", n,
                        k->min, k->max);
        if (k->type == K_INT || k->type == K_THREADS)
            *(int *)field = (int)n;
        else
            *(long *)field = (long)n;
        return 1;
    case K_SIZE_AUTO:
        if (strcmp(v, "auto") == 0) {
            *(long *)field = -1;
            return 1;
        }
        __attribute__((fallthrough)); /* a size */
    case K_SIZE:
        if (sl_parse_size(v, &sz) != SL_OK)
            return fail(ctx, k->section, k->name,
                        "'%s' is not a size (a number, optionally with k, m or g%s)", v,
                        k->type == K_SIZE_AUTO ? ", or auto" : "");
        if (sz < k->min || sz > k->max)
            return fail(ctx, k->section, k->name, "%ld is out of range [%lld, %lld]", sz,
                        k->min, k->max);
        *(long *)field = sz;
        return 1;
    case K_DURATION:
        if (sl_parse_duration(v, &ns) != SL_OK)
            return fail(ctx, k->section, k->name,
                        "'%s' is not a duration (e.g. 1s, 250ms, 2m)", v);
        if ((long long)ns < k->min || (long long)ns > k->max)
            return fail(ctx, k->section, k->name, "'%s' is out of range [%.3gs, %.3gs]", v,
                        (double)k->min / 1e9, (double)k->max / 1e9);
        *(uint64_t *)field = ns;
        return 1;
    case K_BOOL:
        if (parse_bool(v, (bool *)field) != SL_OK)
            return fail(ctx, k->section, k->name, "'%s' is not yes/no/on/off/true/false", v);
        return 1;
    case K_MODE: {
        char *end;
        errno = 0;
        unsigned long m = strtoul(v, &end, 8);
        if (end == v || *end != '\0' || errno != 0 || m > 0777)
            return fail(ctx, k->section, k->name, "'%s' is not an octal mode like 0600", v);
        *(mode_t *)field = (mode_t)m;
        return 1;
    }
    case K_QKIND: {
        int kind = sl_queue_kind_parse(v);
        if (kind < 0)
            return fail(ctx, k->section, k->name, "'%s' is not a queue kind (wfcq, rculfq)",
                        v);
        *(enum sl_queue_kind *)field = (enum sl_queue_kind)kind;
        return 1;
    }
    case K_AFMT:
        if (strcmp(v, "combined") == 0)
            *(int *)field = SL_ACCESS_COMBINED;
        else if (strcmp(v, "json") == 0)
            *(int *)field = SL_ACCESS_JSON;
        else
            return fail(ctx, k->section, k->name, "'%s' is not a format (combined, json)", v);
        return 1;
    case K_FULL:
        if (strcmp(v, "close") == 0)
            *(int *)field = SL_FULL_CLOSE;
        else if (strcmp(v, "refuse") == 0)
            *(int *)field = SL_FULL_REFUSE;
        else if (strcmp(v, "wait") == 0)
            *(int *)field = SL_FULL_WAIT;
        else
            return fail(ctx, k->section, k->name,
                        "'%s' is not an action (close, refuse, wait)", v);
        return 1;
    case K_POLICY:
        if (strcmp(v, "limit") == 0)
            *(int *)field = SL_ADM_LIMIT;
        else if (strcmp(v, "codel") == 0)
            *(int *)field = SL_ADM_CODEL;
        else
            return fail(ctx, k->section, k->name, "'%s' is not a policy (limit, codel)", v);
        return 1;
    case K_LEVEL: {
        int lvl = sl_log_level_parse(v);
        if (lvl < 0)
            return fail(ctx, k->section, k->name,
                        "'%s' is not a level (crit, error, warn, info, debug)", v);
        *(int *)field = lvl;
        return 1;
    }
    }
    return 0;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct parse_ctx *ctx = user;
    bool known_section = false;
    for (size_t i = 0; i < SL_ARRAY_LEN(known_sections); i++)
        if (strcmp(section, known_sections[i]) == 0)
            known_section = true;
    if (!known_section) {
        if (*section == '\0')
            return fail(ctx, "", name, "key outside of any [section]");
        return fail(ctx, section, name, "unknown section [%s]", section);
    }
    for (size_t i = 0; i < SL_ARRAY_LEN(keys); i++) {
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0) {
            if (ctx->seen[i])
                return fail(ctx, section, name, "given twice");
            ctx->seen[i] = true;
            return set_key(ctx, &keys[i], value);
        }
    }
    return fail(ctx, section, name, "unknown key in [%s]", section);
}

/* The line where SECTION.KEY is set in PATH, or 0 if it is not (a default).
 * Used to point cross-key errors at the line a user has to change. */
static int find_key_line(const char *path, const char *section, const char *key)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char line[1024], cur[64] = "";
    int n = 0, found = 0;
    while (fgets(line, sizeof(line), f)) {
        n++;
        char *p = line + strspn(line, " \t");
        if (*p == '[') {
            size_t len = strcspn(p + 1, "]");
            snprintf(cur, sizeof(cur), "%.*s", (int)len, p + 1);
            continue;
        }
        size_t klen = strlen(key);
        if (strcmp(cur, section) == 0 && strncmp(p, key, klen) == 0 &&
            strchr(" \t=:", p[klen]) != NULL && p[klen] != '\0')
            found = n;
    }
    fclose(f);
    return found;
}

int sl_config_line(const struct sl_config *cfg, const char *section, const char *key)
{
    /* Keeps errno: callers pass strerror(errno) in the same argument list. */
    int saved = errno;
    int line = cfg->path ? find_key_line(cfg->path, section, key) : 0;
    errno = saved;
    return line;
}

/* Only digits and dots: meant as an IPv4 address, never looked up as a name. */
static bool looks_numeric(const char *h)
{
    return h[0] != '\0' && strspn(h, "0123456789.") == strlen(h);
}

int sl_listen_split(const char *spec, char *host, size_t hostsz, unsigned *port,
                    char *reason, size_t reasonsz)
{
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || colon[1] == '\0') {
        snprintf(reason, reasonsz, "'%s' is not HOST:PORT", spec);
        return SL_ERR;
    }
    const char *ps = colon + 1;
    char *end;
    errno = 0;
    unsigned long pn = strtoul(ps, &end, 10);
    if (*ps < '0' || *ps > '9' || *end != '\0' || errno != 0 || pn < 1 || pn > 65535) {
        snprintf(reason, reasonsz, "'%s': port '%s' is not a number in 1..65535", spec, ps);
        return SL_ERR;
    }
    size_t hl = (size_t)(colon - spec);
    const char *h = spec;
    bool bracketed = hl >= 2 && h[0] == '[' && h[hl - 1] == ']';
    if (bracketed)
        h++, hl -= 2;
    if (hl >= hostsz) {
        snprintf(reason, reasonsz, "'%s': host too long", spec);
        return SL_ERR;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    unsigned char addr[16];
    if (bracketed) {
        if (inet_pton(AF_INET6, host, addr) != 1) {
            snprintf(reason, reasonsz, "'%s': '%s' is not an IPv6 address", spec, host);
            return SL_ERR;
        }
    } else if (memchr(host, ':', hl) != NULL || memchr(host, '[', hl) != NULL ||
               memchr(host, ']', hl) != NULL) {
        snprintf(reason, reasonsz, "'%s': an IPv6 address needs brackets ([ADDR]:PORT)",
                 spec);
        return SL_ERR;
    } else if (looks_numeric(host) && inet_pton(AF_INET, host, addr) != 1) {
        snprintf(reason, reasonsz, "'%s': '%s' is not an IPv4 address", spec, host);
        return SL_ERR;
    }
    *port = (unsigned)pn;
    return SL_OK;
}

/* Is the directory that would hold PATH there (and a directory)? Returns 0,
 * or an errno. */
static int parent_dir_error(const char *path)
{
    char *copy = sl_strdup(path);
    struct stat st;
    int e = 0;
    if (stat(dirname(copy), &st) != 0)
        e = errno;
    else if (!S_ISDIR(st.st_mode))
        e = ENOTDIR;
    free(copy);
    return e;
}

/* A log file start will open for appending: the file is writable if it
 * exists, else its directory exists and is writable. Returns 0 or an errno. */
static int log_path_error(const char *path)
{
    if (access(path, F_OK) == 0)
        return access(path, W_OK) == 0 ? 0 : errno;
    int e = parent_dir_error(path);
    if (e != 0)
        return e;
    char *copy = sl_strdup(path);
    e = access(dirname(copy), W_OK | X_OK) == 0 ? 0 : errno;
    free(copy);
    return e;
}

#define CHECK_FAIL(section, key, ...)                                                     \
    do {                                                                                  \
        int n_ = snprintf(err, errsz, "%s:%d: %s.%s: ", cfg->path,                        \
                          sl_config_line(cfg, section, key), section, key);               \
        if (n_ > 0 && (size_t)n_ < errsz)                                                 \
            snprintf(err + n_, errsz - (size_t)n_, __VA_ARGS__);                          \
        return SL_ERR;                                                                    \
    } while (0)

int sl_config_check_start(const struct sl_config *cfg, char *err, size_t errsz)
{
    char host[256], reason[512];
    unsigned port;
    if (sl_listen_split(cfg->listen, host, sizeof(host), &port, reason, sizeof(reason)) !=
        SL_OK)
        CHECK_FAIL("server", "listen", "%s", reason);
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host[0] ? host : NULL, ps, &hints, &res);
    if (rc != 0)
        CHECK_FAIL("server", "listen", "'%s': %s", cfg->listen, gai_strerror(rc));
    freeaddrinfo(res);

    int fd = open(cfg->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        CHECK_FAIL("server", "root", "cannot open directory '%s': %s", cfg->root,
                   strerror(errno));
    close(fd);

    /* Start falls back to built-in types when the file is missing; a file
       the operator named explicitly must be there. */
    if (sl_config_line(cfg, "http", "mime_types") > 0 && access(cfg->mime_types, R_OK) != 0)
        CHECK_FAIL("http", "mime_types", "cannot read '%s': %s", cfg->mime_types,
                   strerror(errno));

    int e;
    if (strcmp(cfg->error_log, "stderr") != 0 && (e = log_path_error(cfg->error_log)) != 0)
        CHECK_FAIL("server", "error_log", "cannot open '%s': %s", cfg->error_log,
                   strerror(e));
    if (cfg->access_log[0] != '\0' && (e = log_path_error(cfg->access_log)) != 0)
        CHECK_FAIL("server", "access_log", "cannot open '%s': %s", cfg->access_log,
                   strerror(e));
    if (cfg->status_socket[0] != '\0' && (e = parent_dir_error(cfg->status_socket)) != 0)
        CHECK_FAIL("server", "status_socket", "no directory for '%s': %s",
                   cfg->status_socket, strerror(e));
    if (cfg->user[0] != '\0' && getpwnam(cfg->user) == NULL)
        CHECK_FAIL("server", "user", "no such user '%s'", cfg->user);
    return SL_OK;
}

/* Checks that involve several keys or the whole value: "LINE: key: reason". */
static int check_all(struct sl_config *cfg, char *err, size_t errsz)
{
    const char *p = cfg->path;
    char host[256], reason[400];
    unsigned port;
    if (sl_listen_split(cfg->listen, host, sizeof(host), &port, reason, sizeof(reason)) !=
        SL_OK) {
        snprintf(err, errsz, "%d: server.listen: %s", find_key_line(p, "server", "listen"),
                 reason);
        return SL_ERR;
    }
    if (cfg->root[0] == '\0') {
        snprintf(err, errsz, "%d: server.root: must not be empty",
                 find_key_line(p, "server", "root"));
        return SL_ERR;
    }
    if (cfg->index[0] == '\0' || strchr(cfg->index, '/') != NULL ||
        strlen(cfg->index) > SL_INDEX_MAX) {
        snprintf(err, errsz, "%d: http.index: '%s' must be a plain file name",
                 find_key_line(p, "http", "index"), cfg->index);
        return SL_ERR;
    }
    if (cfg->max_request_line > cfg->max_header_size) {
        snprintf(err, errsz,
                 "%d: limits.max_request_line: %ld is larger than limits.max_header_size "
                 "(%ld)",
                 find_key_line(p, "limits", "max_request_line"), cfg->max_request_line,
                 cfg->max_header_size);
        return SL_ERR;
    }
    struct sl_cidr nets[SL_PROXY_CIDR_MAX];
    char why[256];
    int nnets = sl_cidr_parse_list(cfg->proxy_protocol_from, nets, SL_PROXY_CIDR_MAX, why,
                                   sizeof(why));
    if (nnets == SL_ERR) {
        snprintf(err, errsz, "%d: server.proxy_protocol_from: %s",
                 find_key_line(p, "server", "proxy_protocol_from"), why);
        return SL_ERR;
    }
    if (cfg->proxy_protocol && nnets == 0) {
        snprintf(err, errsz,
                 "%d: server.proxy_protocol_from: empty, so no balancer could send the "
                 "PROXY header proxy_protocol = yes requires",
                 find_key_line(p, "server", "proxy_protocol_from"));
        return SL_ERR;
    }
    static const struct {
        const char *key;
        size_t off;
    } addrs[] = {{"listen", OFF(status_listen)}, {"agent_listen", OFF(agent_listen)}};
    for (size_t i = 0; i < SL_ARRAY_LEN(addrs); i++) {
        const char *v = *(char **)((char *)cfg + addrs[i].off);
        const char *colon = strrchr(v, ':');
        if (v[0] != '\0' && (colon == NULL || colon[1] == '\0' ||
                              strspn(colon + 1, "0123456789") != strlen(colon + 1))) {
            snprintf(err, errsz, "%d: status.%s: '%s' is not HOST:PORT",
                     find_key_line(p, "status", addrs[i].key), addrs[i].key, v);
            return SL_ERR;
        }
    }
    return SL_OK;
}

int sl_config_load(struct sl_config *cfg, const char *path, char *err, size_t errsz)
{
    sl_config_defaults(cfg);
    cfg->path = sl_strdup(path);
    struct parse_ctx *ctx = sl_calloc(1, sizeof(*ctx));
    char msg[512] = "";
    ctx->cfg = cfg;
    ctx->err = msg;
    ctx->errsz = sizeof(msg);
    int line = ini_parse(path, handler, ctx);
    free(ctx);
    if (line == -1) {
        snprintf(err, errsz, "%s:0: cannot open: %s", path, strerror(errno));
        return SL_ERR;
    }
    if (line == -2) {
        snprintf(err, errsz, "%s:0: out of memory while parsing", path);
        return SL_ERR;
    }
    if (line > 0) {
        if (msg[0] == '\0')
            snprintf(msg, sizeof(msg), "syntax error (expected [section] or key = value)");
        snprintf(err, errsz, "%s:%d: %s", path, line, msg);
        return SL_ERR;
    }
    if (check_all(cfg, msg, sizeof(msg)) != SL_OK) {
        snprintf(err, errsz, "%s:%s", path, msg);
        return SL_ERR;
    }
    return SL_OK;
}
