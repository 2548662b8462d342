/* sluice_load.c: sluice-load, an open / partially-open HTTP/1.1 load generator
 * for overload studies (httperf --wsesslog style, after Pariag et al., EuroSys
 * 2007, section 3). One thread, one epoll set, non-blocking sockets, one timer
 * per connection in a min-heap. Latency is measured from when a request was
 * due, not when it was sent, so a lagging client or server cannot hide
 * queueing (no coordinated omission). Loopback targets only. */
#include "lib/common.h"
#include "lib/stats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NS 1000000000ull
#define MS 1000000ull
#define HEAD_MAX 2048           /* a reply head larger than this is a bad reply */
#define REQ_MAX 512             /* one request line plus headers */
#define SCRATCH (256 * 1024)    /* bodies are read here and dropped */
#define MAX_SIZES 128           /* distinct file sizes tracked for verification */
#define MAX_URIS 64
#define LINGER_NS (1 * NS)      /* wait this long for the server's close */
#define PREWARM_CONNECT_NS (1 * NS) /* pre-warmed sessions connect within this, or
                                     * within the warm-up when that is longer */
#define EPOLL_BATCH 1024

static const char *prog = "sluice-load";

/* ------------------------------------------------------------------ options */

enum mode { MODE_SESSIONS, MODE_OPEN, MODE_CLOSED };

struct opts {
    const char *server;
    int port;
    const char *fileset;
    int dirs; /* without --fileset: the standard layout with this many dirs */
    double rate;
    double duration;
    double warmup;
    double timeout;
    double slo_ms; /* deadline counted from each request's due time */
    double prewarm;
    enum mode mode;
    bool poisson;
    unsigned sess_min, sess_max;   /* requests per session */
    unsigned burst_min, burst_max; /* requests per burst */
    double browser_think, user_think;
    int clients;
    int sources;
    long max_conns;
    uint64_t seed;
    const char *csv;
    bool json;
    bool quiet;
    unsigned verify_min;
    const char *uris[MAX_URIS];
    int nuris;
};

static struct opts o = {
    .server = "127.0.0.1",
    .port = 8080,
    .dirs = 1,
    .rate = 10,
    .duration = 10,
    .warmup = 0,
    .timeout = 15,
    .slo_ms = 500,
    .prewarm = -1, /* default depends on the mode */
    .mode = MODE_SESSIONS,
    .poisson = true,
    .sess_min = 5,
    .sess_max = 15,
    .burst_min = 1,
    .burst_max = 5,
    .browser_think = 0.343,
    .user_think = 3.0,
    .clients = 10,
    .sources = 16,
    .max_conns = 0,
    .seed = 1,
    .verify_min = 20,
};

static void usage(FILE *f)
{
    fprintf(f,
"usage: sluice-load [options]\n"
"\n"
"Offers HTTP/1.1 load to a server on this machine (loopback only) and reports\n"
"reply rate, throughput, latency histograms, errors by kind and the per-file-size\n"
"timeout verification of Pariag et al. (EuroSys 2007, section 3.4).\n"
"\n"
"Target and files:\n"
"  --server HOST        server address; must be loopback (127.0.0.0/8 or ::1)\n"
"                       (default 127.0.0.1)\n"
"  --port N             server port (default 8080)\n"
"  --fileset DIR        SPECweb99-like file set made by sluice-fileset: reads\n"
"                       DIR/manifest.tsv for paths and sizes; every 200 reply's\n"
"                       Content-Length must equal the manifest size\n"
"  --dirs N             without --fileset: assume the standard layout with N\n"
"                       directories (default 1)\n"
"  --uri PATH           request only these URL paths (repeatable, chosen\n"
"                       uniformly) instead of the SPECweb99 mix\n"
"\n"
"Load:\n"
"  --mode M             sessions (default): partially-open loop; sessions arrive\n"
"                       at --rate per second, each one persistent connection of\n"
"                       --session-len requests in bursts of --burst-len, Weibull\n"
"                       browser think time within a burst, Pareto user think time\n"
"                       between bursts\n"
"                       open: every request is its own connection, arriving at\n"
"                       --rate requests/s regardless of the server\n"
"                       closed: --clients connections, each sending its next\n"
"                       request as soon as the previous reply is in (SPECweb99's\n"
"                       closed loop; shown for comparison, it cannot overload)\n"
"  --rate R             sessions/s (sessions mode) or requests/s (open mode)\n"
"                       (default 10)\n"
"  --arrivals KIND      poisson (default) or uniform inter-arrival times\n"
"  --duration S         seconds during which requests are issued (default 10);\n"
"                       the run ends at most --timeout seconds later\n"
"  --warmup S           leave the first S seconds of --duration out of the\n"
"                       statistics (default 0)\n"
"  --prewarm S          sessions mode: start with the sessions that would be in\n"
"                       progress had arrivals begun S seconds earlier, so the\n"
"                       load is at steady state from the first second; they\n"
"                       open their connections over max(1 s, --warmup)\n"
"                       (default 60; 0 = start empty)\n"
"  --session-len A[-B]  requests per session, uniform in A..B (default 5-15)\n"
"  --burst-len A[-B]    requests per burst, uniform in A..B (default 1-5)\n"
"  --browser-think S    mean Weibull think time within a burst (default 0.343)\n"
"  --user-think S       mean Pareto think time between bursts (default 3.0)\n"
"  --clients N          closed mode: concurrent connections (default 10)\n"
"  --timeout S          client timeout per request, counted from when the\n"
"                       request was due (default 15)\n"
"  --slo MS             deadline in milliseconds, counted from when a request\n"
"                       was due (not sent): only good replies completed\n"
"                       within it count as goodput (default 500)\n"
"  --max-conns N        at most N open connections; a session or request that\n"
"                       would exceed it is counted as a client_limit error\n"
"                       (default: the open-file limit, raised as far as allowed)\n"
"  --sources N          IPv4: spread connections over the source addresses\n"
"                       127.0.0.1..127.0.0.N, each with its own ephemeral ports,\n"
"                       so tens of thousands of connections (and TIME_WAITs)\n"
"                       do not exhaust or slow down port allocation (default 16)\n"
"  --seed N             workload seed: the same seed gives the same sessions,\n"
"                       files and think times (default 1)\n"
"\n"
"Output:\n"
"  --csv FILE           one row per second: offered, sent, replies, errors, Mbit/s,\n"
"                       open connections, latency mean/p50/p99/max, goodput,\n"
"                       schedule lag p99/max\n"
"  --json               final summary as one JSON line on stdout (the readable\n"
"                       report goes to stderr)\n"
"  --quiet              no progress line every second\n"
"  --verify-min N       judge only file sizes with at least N requests in the\n"
"                       verification (default 20)\n"
"  -h, --help           this text\n"
"\n"
"Workload: SPECweb99's class mix (class 0..3: 35%%, 50%%, 14%%, 1%% of requests),\n"
"within a class its Zipf-like popularity over the nine files (class*_5 most\n"
"popular), directories Zipf (alpha 1). Think times: Weibull (shape 0.382) and\n"
"Pareto (shape 1.5), after Barford and Crovella. A session's last request says\n"
"Connection: close (so does every open-mode request); any failed request ends\n"
"its session, as in httperf; a connection the server closes while the user\n"
"thinks is reopened for the next request.\n"
"\n"
"Statistics cover requests due in the window [warmup, duration]; reply rate and\n"
"Mbit/s count replies completed in that window. A good reply is a 2xx or 3xx\n"
"(a 200 with the manifest's Content-Length); latency is from the due time to\n"
"the last body byte, for good replies (admitted: late ones included).\n"
"Goodput counts only good replies completed within --slo of their due time,\n"
"per second over the span from the first to the last of them; the others are\n"
"late. Replies by status: 2xx, 3xx, 4xx, 503, 5xx (without 503); 503s with\n"
"Retry-After and how fast they came. Failures: connect failures (refused,\n"
"timed out or failed before the connection was established), resets after\n"
"accept (reset or closed on an established connection before a full reply),\n"
"client timeouts (--timeout on an established connection). Sessions (open\n"
"mode: requests) that started in the window: completed (every request got a\n"
"good reply), completed within the deadline, failed, or cut off by the end of\n"
"the run. Schedule lag: how late the client called connect() and issued each\n"
"request against the open-loop schedule; when either p99 exceeds a tenth of\n"
"--slo the run is marked INVALID (lag_ok false): the client set the pace.\n"
"Error kinds: refused, reset, timeout, shed_503, status_5xx, status_other,\n"
"closed (EOF before a full reply), bad_reply, length_mismatch, client_limit,\n"
"connect_other.\n"
"Verification PASSES when no file size's timeout percentage is more than 2\n"
"points above the mean over sizes and none is above 10%%.\n"
"Exit status: 0 run completed, 1 run failed to start, 2 bad arguments.\n");
}

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int code, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(code);
}

static double parse_double(const char *opt, const char *s, double min)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min) || isinf(v))
        die(2, "%s: '%s' is not a number >= %g", opt, s, min);
    return v;
}

static long parse_long(const char *opt, const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        die(2, "%s: '%s' is not an integer in %ld..%ld", opt, s, min, max);
    return v;
}

static void parse_range(const char *opt, const char *s, unsigned *lo, unsigned *hi)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", s);
    char *dash = strchr(buf, '-');
    if (dash)
        *dash = '\0';
    *lo = (unsigned)parse_long(opt, buf, 1, 1000000);
    *hi = dash ? (unsigned)parse_long(opt, dash + 1, 1, 1000000) : *lo;
    if (*hi < *lo)
        die(2, "%s: '%s': the upper bound is below the lower", opt, s);
}

/* ------------------------------------------------------------------ random */

/* xoshiro256** seeded by splitmix64: small, fast, and each session carries its
 * own state so its files and think times do not depend on timing. */
struct rng {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed * 0x2545f4914f6cdd1dull + stream;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in (0, 1]: never 0, so log() is safe. */
static double rng_unit(struct rng *r)
{
    return (double)((rng_next(r) >> 11) + 1) * 0x1.0p-53;
}

static unsigned rng_range(struct rng *r, unsigned lo, unsigned hi)
{
    return lo + (unsigned)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* Think times, in seconds. Browser (active off) time is Weibull with Barford
 * and Crovella's shape 0.382, scaled to the mean asked for; user (inactive
 * off) time is Pareto with their shape 1.5, whose scale 1 s gives a 3 s mean. */
#define WEIBULL_SHAPE 0.382
#define PARETO_SHAPE 1.5
static double weibull_scale, pareto_scale;

static double think_browser(struct rng *r)
{
    if (o.browser_think <= 0)
        return 0;
    return weibull_scale * pow(-log(rng_unit(r)), 1.0 / WEIBULL_SHAPE);
}

static double think_user(struct rng *r)
{
    if (o.user_think <= 0)
        return 0;
    return pareto_scale * pow(rng_unit(r), -1.0 / PARETO_SHAPE);
}

static double arrival_gap(struct rng *r, double rate)
{
    return o.poisson ? -log(rng_unit(r)) / rate : 1.0 / rate;
}

/* ------------------------------------------------------------------ files */

/* What can be requested: a path, the size the manifest promises (0 when
 * unknown) and the file-size slot it is judged under. */
struct file {
    char *path;
    uint64_t size;
    bool size_known;
    int slot;
};

/* One row of the verification table: a distinct file size. */
struct size_slot {
    uint64_t size;
    char name[32];
    uint64_t requests, timeouts, errors;
};

static struct file *files;
static int nfiles;
static int ndirs, kfiles; /* SPECweb99 layout: ndirs x 4 classes x kfiles */
static struct size_slot slots[MAX_SIZES];
static int nslots;
static double *dir_cdf;
static double class_cdf[4];
static double *file_cdf; /* within a class, kfiles entries */

static const double class_mix[4] = {0.35, 0.50, 0.14, 0.01};
/* SPECweb99 within a class: Zipf (alpha 1) over the nine files, ranks laid
 * out so the most popular is the middle file (class*_5), then 4, 6, 3, 7, 2,
 * 8, 9, 1. */
static const int specweb_rank[9] = {9, 6, 4, 2, 1, 3, 5, 7, 8};

static int slot_for(uint64_t size, bool known, const char *name)
{
    uint64_t key = known ? size : UINT64_MAX;
    for (int i = 0; i < nslots; i++)
        if (slots[i].size == key)
            return i;
    if (nslots == MAX_SIZES)
        return MAX_SIZES - 1; /* lumped: more sizes than any sane file set */
    struct size_slot *s = &slots[nslots];
    s->size = key;
    snprintf(s->name, sizeof(s->name), "%s", known ? name : "unknown-size");
    return nslots++;
}

static int file_index(int d, int c, int k) /* k is 1-based */
{
    return (d * 4 + c) * kfiles + (k - 1);
}

static void add_layout_file(int d, int c, int k, uint64_t size, bool known)
{
    char path[64], name[32];
    snprintf(path, sizeof(path), "/dir%05d/class%d_%d", d, c, k);
    snprintf(name, sizeof(name), "class%d_%d", c, k);
    struct file *f = &files[file_index(d, c, k)];
    free(f->path);
    f->path = sl_strdup(path);
    f->size = size;
    f->size_known = known;
    f->slot = slot_for(size, known, name);
}

/* Reads DIR/manifest.tsv: "# header", then "dirNNNNN/classC_K<TAB>size<TAB>sha". */
static void load_manifest(const char *dir, uint64_t **sizes_out)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/manifest.tsv", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        die(1, "cannot read %s: %s (make one with tools/sluice-fileset)", path, strerror(errno));
    struct row {
        int d, c, k;
        uint64_t size;
    } *rows = NULL;
    size_t n = 0, cap = 0;
    char line[1024];
    int maxd = -1, maxk = 0;
    while (fgets(line, sizeof(line), f)) {
        if (line[0] == '#' || line[0] == '\n')
            continue;
        int d, c, k;
        unsigned long long size;
        if (sscanf(line, "dir%d/class%d_%d\t%llu", &d, &c, &k, &size) != 4 || d < 0 ||
            c < 0 || c > 3 || k < 1 || k > 1000)
            continue; /* not part of the SPECweb99 layout */
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            rows = sl_realloc(rows, cap * sizeof(*rows));
        }
        rows[n++] = (struct row){d, c, k, size};
        maxd = SL_MAX(maxd, d);
        maxk = SL_MAX(maxk, k);
    }
    fclose(f);
    if (n == 0)
        die(1, "%s has no dirNNNNN/classC_K entries", path);
    ndirs = maxd + 1;
    kfiles = maxk;
    uint64_t *sizes = sl_calloc((size_t)ndirs * 4 * (size_t)kfiles, sizeof(uint64_t));
    for (size_t i = 0; i < n; i++)
        sizes[file_index(rows[i].d, rows[i].c, rows[i].k)] = rows[i].size + 1; /* 0 = absent */
    free(rows);
    *sizes_out = sizes;
}

static double *zipf_cdf(int n)
{
    double *cdf = sl_malloc((size_t)n * sizeof(double)), sum = 0;
    for (int i = 0; i < n; i++)
        cdf[i] = (sum += 1.0 / (i + 1));
    for (int i = 0; i < n; i++)
        cdf[i] /= sum;
    return cdf;
}

static int cdf_pick(const double *cdf, int n, double u)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (cdf[mid] >= u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static void build_files(void)
{
    uint64_t *sizes = NULL;
    if (o.fileset) {
        load_manifest(o.fileset, &sizes);
    } else {
        ndirs = o.dirs;
        kfiles = 9;
    }
    nfiles = ndirs * 4 * kfiles;
    files = sl_calloc((size_t)nfiles, sizeof(*files));
    static const uint64_t base[4] = {102, 1024, 10240, 102400};
    for (int d = 0; d < ndirs; d++)
        for (int c = 0; c < 4; c++)
            for (int k = 1; k <= kfiles; k++) {
                uint64_t s = sizes ? sizes[file_index(d, c, k)] : base[c] * (uint64_t)k + 1;
                /* A hole in the manifest: still requested (Zipf needs every
                 * slot) but judged as unknown size; a 404 shows it up. */
                add_layout_file(d, c, k, s ? s - 1 : 0, s != 0);
            }
    free(sizes);
    dir_cdf = zipf_cdf(ndirs);
    double sum = 0;
    for (int c = 0; c < 4; c++)
        class_cdf[c] = (sum += class_mix[c]);
    file_cdf = sl_malloc((size_t)kfiles * sizeof(double));
    sum = 0;
    for (int k = 0; k < kfiles; k++)
        file_cdf[k] = (sum += 1.0 / (kfiles == 9 ? specweb_rank[k] : k + 1));
    for (int k = 0; k < kfiles; k++)
        file_cdf[k] /= sum;

    if (o.nuris > 0) {
        /* --uri: the listed paths replace the mix. Sizes come from the
         * manifest when a path is part of it. */
        struct file *list = sl_calloc((size_t)o.nuris, sizeof(*list));
        for (int i = 0; i < o.nuris; i++) {
            list[i].path = sl_strdup(o.uris[i]);
            list[i].slot = -1;
            for (int j = 0; o.fileset && j < nfiles; j++)
                if (strcmp(files[j].path, o.uris[i]) == 0) {
                    list[i].size = files[j].size;
                    list[i].size_known = files[j].size_known;
                    list[i].slot = files[j].slot;
                }
            if (list[i].slot < 0)
                list[i].slot = slot_for(0, false, "");
        }
        /* Keep only the slots the URIs use, so the table has no empty rows. */
        struct size_slot keep[MAX_SIZES];
        int remap[MAX_SIZES], nkeep = 0;
        for (int s = 0; s < nslots; s++)
            remap[s] = -1;
        for (int i = 0; i < o.nuris; i++) {
            int s = list[i].slot;
            if (remap[s] < 0) {
                keep[nkeep] = slots[s];
                remap[s] = nkeep++;
            }
            list[i].slot = remap[s];
        }
        memcpy(slots, keep, sizeof(keep[0]) * (size_t)nkeep);
        nslots = nkeep;
        for (int j = 0; j < nfiles; j++)
            free(files[j].path);
        free(files);
        files = list;
        nfiles = o.nuris;
    }
}

static int pick_file(struct rng *r)
{
    if (o.nuris > 0)
        return (int)(rng_next(r) % (uint64_t)o.nuris);
    int d = cdf_pick(dir_cdf, ndirs, rng_unit(r));
    int c = cdf_pick(class_cdf, 4, rng_unit(r));
    int k = cdf_pick(file_cdf, kfiles, rng_unit(r)) + 1;
    return file_index(d, c, k);
}

/* ------------------------------------------------------------------ counters */

enum err {
    E_REFUSED,
    E_RESET,
    E_TIMEOUT,
    E_SHED,
    E_5XX,
    E_STATUS,
    E_CLOSED,
    E_BADREPLY,
    E_LENGTH,
    E_CLIENT,
    E_CONNECT,
    E_COUNT
};
static const char *const err_name[E_COUNT] = {
    "refused", "reset",     "timeout",         "shed_503",     "status_5xx",   "status_other",
    "closed",  "bad_reply", "length_mismatch", "client_limit", "connect_other"};

/* Replies by status class, 503 apart from the other 5xx. */
enum st_class { ST_2XX, ST_3XX, ST_4XX, ST_503, ST_5XX, ST_COUNT };
static const char *const st_name[ST_COUNT] = {"2xx", "3xx", "4xx", "503", "5xx"};

/* Outcomes of the requests due inside the window. A good reply (2xx or 3xx,
 * a 200 with the manifest's length) is admitted; it is goodput only if it
 * completed within --slo of when it was due, else it is late. */
struct outcome {
    uint64_t requests, replies, good, errors, err[E_COUNT];
    uint64_t connect_timeouts; /* of err[E_TIMEOUT]: never got connected */
    struct sl_hist lat;        /* good replies, due -> last byte, ns */
    uint64_t goodput, late;    /* good replies within / past the deadline */
    uint64_t gp_first, gp_last; /* when the first and last goodput reply completed */
    uint64_t status[ST_COUNT];
    uint64_t retry_after_503;  /* 503s that carried Retry-After */
    struct sl_hist shed_lat;   /* 503s, due -> received, ns */
    /* Failures by where they happened: the connection never established;
     * reset or closed once established, before a full reply; the client's
     * own --timeout on an established connection. */
    uint64_t connect_failures, resets_after_accept, client_timeouts;
    /* Sessions whose first request was due in the window (open mode: each
     * request). Failed: ended by an error; the rest that did not complete
     * were cut off by the end of the run. */
    uint64_t sess_started, sess_completed, sess_within, sess_failed;
};

/* One second of the run, for the progress line and the CSV. */
struct second {
    uint64_t due, sent, replies, good, errors, timeouts, shed, bytes, goodput;
    struct sl_hist lat;
    struct sl_hist lag; /* connect and request lag */
};

static struct outcome win;
/* Schedule lag: how late the client issued due requests and connect()s
 * against the open-loop schedule. */
static struct sl_hist lag, lag_conn;
static uint64_t slo_ns;
static struct second sec;
static uint64_t tp_replies, tp_good, tp_bytes; /* completed inside the window */
static uint64_t tot_sent, tot_replies, tot_good, tot_sessions, tot_prewarmed, tot_reconnects,
    tot_due;
static long open_conns, max_open_conns, in_flight;

static uint64_t t0, warm_ns, end_ns; /* absolute CLOCK_MONOTONIC ns */

static bool in_window(uint64_t due)
{
    return due >= warm_ns && due < end_ns;
}

/* ------------------------------------------------------------------ connections */

enum cstate { C_FREE, C_CONNECTING, C_SENDING, C_HEAD, C_BODY, C_IDLE, C_LINGER };
enum tkind { T_NONE, T_CONNECT, T_DUE, T_TIMEOUT, T_LINGER };

struct conn {
    int fd; /* -1 while a session thinks without a connection */
    enum cstate st;
    enum tkind tk;
    int heap_idx; /* -1 when no timer */
    struct rng rng;
    unsigned reqs_left;  /* after the current request */
    unsigned burst_left; /* of the current burst, after the current request */
    bool active;         /* a request is outstanding (due, not yet finished) */
    bool connected;
    bool had_conn;       /* a later connect is a reconnect */
    bool sess_inwin;     /* the session's first request was due in the window */
    bool sess_late;      /* one of its replies came after the deadline */
    bool retry_after;    /* the reply carries Retry-After */
    /* the current request */
    int file;
    uint64_t due;
    bool last; /* sent with Connection: close */
    uint32_t out_off, out_len;
    char out[REQ_MAX];
    /* the current reply */
    int status;
    bool server_close, until_eof;
    uint64_t clen, body_left;
    uint32_t in_len;
    char in[HEAD_MAX];
    struct conn *next_free;
};

static int epfd;
static unsigned src_next; /* next source address, round robin */
static struct sockaddr_storage srv_addr;
static socklen_t srv_len;
static char host_hdr[128];
static struct conn *free_list, *pending_free;
static char scratch[SCRATCH];

/* The timer heap: every connection has at most one timer (next request due,
 * reply timeout, or linger), so the heap holds at most one entry each. The
 * deadline is kept in the entry itself: sifting never touches a connection. */
struct hent {
    uint64_t deadline;
    struct conn *c;
};
static struct hent *heap;
static int heap_n, heap_cap;

static void heap_put(int i, struct hent e)
{
    heap[i] = e;
    e.c->heap_idx = i;
}

static void heap_up(int i)
{
    struct hent e = heap[i];
    while (i > 0) {
        int p = (i - 1) / 2;
        if (heap[p].deadline <= e.deadline)
            break;
        heap_put(i, heap[p]);
        i = p;
    }
    heap_put(i, e);
}

static void heap_down(int i)
{
    struct hent e = heap[i];
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = l;
        if (l >= heap_n)
            break;
        if (r < heap_n && heap[r].deadline < heap[l].deadline)
            m = r;
        if (heap[m].deadline >= e.deadline)
            break;
        heap_put(i, heap[m]);
        i = m;
    }
    heap_put(i, e);
}

static void timer_clear(struct conn *c)
{
    int i = c->heap_idx;
    if (i < 0)
        return;
    c->heap_idx = -1;
    c->tk = T_NONE;
    heap_n--;
    if (i == heap_n)
        return;
    heap_put(i, heap[heap_n]); /* the last entry fills the hole, then moves */
    if (i > 0 && heap[(i - 1) / 2].deadline > heap[i].deadline)
        heap_up(i);
    else
        heap_down(i);
}

static void timer_set(struct conn *c, enum tkind k, uint64_t deadline)
{
    timer_clear(c);
    if (heap_n == heap_cap) {
        heap_cap = heap_cap ? heap_cap * 2 : 1024;
        heap = sl_realloc(heap, (size_t)heap_cap * sizeof(*heap));
    }
    c->tk = k;
    heap[heap_n] = (struct hent){deadline, c};
    c->heap_idx = heap_n++;
    heap_up(c->heap_idx);
}

static struct conn *conn_new(void)
{
    struct conn *c = free_list;
    if (c)
        free_list = c->next_free;
    else
        c = sl_malloc(sizeof(*c));
    memset(c, 0, offsetof(struct conn, out));
    c->fd = -1;
    c->heap_idx = -1;
    return c;
}

static void conn_close_fd(struct conn *c)
{
    if (c->fd >= 0) {
        close(c->fd); /* also leaves the epoll set */
        c->fd = -1;
        open_conns--;
    }
    c->connected = false;
}

/* Ends the session. The struct goes to a pending list, not the free list,
 * so events later in the same epoll batch cannot land on a reused one. */
static void conn_free(struct conn *c)
{
    timer_clear(c);
    conn_close_fd(c);
    if (c->active) {
        c->active = false;
        in_flight--;
    }
    c->st = C_FREE;
    c->next_free = pending_free;
    pending_free = c;
}

/* ------------------------------------------------------------------ accounting */

static void count_error(struct conn *c, enum err e, bool connect_phase)
{
    const struct file *f = &files[c->file];
    if (c->sess_inwin)
        win.sess_failed++; /* an error always ends the session */
    if (in_window(c->due)) {
        win.errors++;
        win.err[e]++;
        if (e == E_TIMEOUT && connect_phase)
            win.connect_timeouts++;
        slots[f->slot].errors++;
        if (e == E_TIMEOUT)
            slots[f->slot].timeouts++;
        /* A reset while the connect is pending means the handshake had
         * completed (a RST to a SYN is ECONNREFUSED): established. */
        if (e == E_REFUSED || (connect_phase && (e == E_TIMEOUT || e == E_CONNECT)))
            win.connect_failures++;
        else if (e == E_RESET || e == E_CLOSED || e == E_CONNECT)
            win.resets_after_accept++;
        else if (e == E_TIMEOUT)
            win.client_timeouts++;
    }
    sec.errors++;
    if (e == E_TIMEOUT)
        sec.timeouts++;
    if (e == E_SHED)
        sec.shed++;
}

/* A session (open mode: a request) starts, its first request due at DUE. */
static void session_start(struct conn *c, uint64_t due)
{
    c->sess_inwin = in_window(due);
    c->sess_late = false;
    if (c->sess_inwin)
        win.sess_started++;
}

static void lag_add(struct sl_hist *h, uint64_t due)
{
    uint64_t t = sl_now_ns(); /* not the batch's clock: the client's own delay counts */
    uint64_t l = t > due ? t - due : 0;
    if (in_window(due))
        sl_hist_add(h, l);
    sl_hist_add(&sec.lag, l);
}

static void count_due(struct conn *c)
{
    tot_due++;
    sec.due++;
    if (in_window(c->due)) {
        win.requests++;
        slots[files[c->file].slot].requests++;
    }
}

static void count_bytes(uint64_t n, uint64_t now)
{
    sec.bytes += n;
    if (now >= warm_ns && now <= end_ns)
        tp_bytes += n;
}

/* ------------------------------------------------------------------ the protocol */

static void session_next(struct conn *c, uint64_t now);
static void request_start(struct conn *c, uint64_t now);
static void finish_error(struct conn *c, enum err e, uint64_t now);

static void build_request(struct conn *c)
{
    int n = snprintf(c->out, sizeof(c->out),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: sluice-load\r\n%s\r\n",
                     files[c->file].path, host_hdr, c->last ? "Connection: close\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(c->out))
        n = (int)sizeof(c->out) - 1; /* only with absurd --uri; the server says 4xx */
    c->out_len = (uint32_t)n;
    c->out_off = 0;
}

static enum err errno_kind(int e)
{
    switch (e) {
    case ECONNREFUSED:
        return E_REFUSED;
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
        return E_RESET;
    case ETIMEDOUT:
        return E_TIMEOUT;
    case EMFILE:
    case ENFILE:
    case EADDRNOTAVAIL:
    case EAGAIN:
    case ENOBUFS:
    case ENOMEM:
        return E_CLIENT;
    default:
        return E_CONNECT;
    }
}

static void try_send(struct conn *c, uint64_t now);

/* Opens a socket and starts connecting: c->connected, or c->st ==
 * C_CONNECTING while the handshake runs. DUE is when the schedule wanted the
 * connect(), for the connect lag. Returns E_COUNT on success, else the kind
 * of error (c->fd may be open; the caller ends or resets the conn). */
static enum err open_socket(struct conn *c, uint64_t due)
{
    if (open_conns >= o.max_conns)
        return E_CLIENT;
    int fd = socket(srv_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return errno_kind(errno);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (srv_addr.ss_family == AF_INET && o.sources > 1) {
        /* One loopback source address per connection, round robin: each has
         * its own 28k ephemeral ports, and the kernel's port search stays
         * short. NO_PORT defers the port choice to connect(), by 4-tuple. */
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(src_next++ % (unsigned)o.sources));
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
            close(fd);
            return errno_kind(errno);
        }
    }
    c->fd = fd;
    c->had_conn = true;
    open_conns++;
    max_open_conns = SL_MAX(max_open_conns, open_conns);
    /* Edge-triggered, registered once: every handler drains to EAGAIN. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return E_CLIENT;
    lag_add(&lag_conn, due);
    if (connect(fd, (struct sockaddr *)&srv_addr, srv_len) == 0) {
        c->connected = true;
        return E_COUNT;
    }
    if (errno == EINPROGRESS) {
        c->st = C_CONNECTING;
        return E_COUNT;
    }
    return errno_kind(errno);
}

/* Connects for the current request. Returns false after counting an error
 * (the session is over). */
static bool conn_connect(struct conn *c, uint64_t now)
{
    enum err e = open_socket(c, c->due);
    if (e != E_COUNT) {
        finish_error(c, e, now);
        return false;
    }
    return true;
}

/* The request is due now (or was due at c->due, earlier, if we lag). */
static void request_start(struct conn *c, uint64_t now)
{
    /* Request lag: due -> the client acts on it: writes it, or starts the
     * connect() it waits for (the handshake's time is the server's). */
    lag_add(&lag, c->due);
    c->active = true;
    in_flight++;
    count_due(c);
    timer_set(c, T_TIMEOUT, c->due + (uint64_t)(o.timeout * NS));
    c->status = 0;
    c->in_len = 0;
    c->server_close = false;
    c->until_eof = false;
    c->retry_after = false;
    build_request(c);
    if (c->fd < 0) {
        if (c->had_conn)
            tot_reconnects++; /* the server closed it while the user was thinking */
        if (!conn_connect(c, now))
            return;
    }
    if (!c->connected) {
        c->st = C_CONNECTING; /* opened ahead (pre-warm): send once connected */
        return;
    }
    c->st = C_SENDING;
    try_send(c, now);
}

static void try_send(struct conn *c, uint64_t now)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (uint32_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return; /* EPOLLOUT will bring us back */
        finish_error(c, n < 0 ? errno_kind(errno) : E_CLOSED, now);
        return;
    }
    tot_sent++;
    sec.sent++;
    c->st = C_HEAD;
}

/* A complete reply: count it and decide what the session does next. */
static void reply_done(struct conn *c, uint64_t now)
{
    const struct file *f = &files[c->file];
    int st = c->status;
    bool good = st >= 200 && st < 400; /* 2xx, and 3xx (304 has no body) */
    enum err e = E_COUNT;
    if (good && st == 200 && f->size_known && c->clen != f->size) {
        good = false;
        e = E_LENGTH;
    } else if (!good) {
        e = st == 503 ? E_SHED : st >= 500 ? E_5XX : E_STATUS;
    }
    uint64_t lat = now > c->due ? now - c->due : 0;
    tot_replies++;
    sec.replies++;
    bool inwin = now >= warm_ns && now <= end_ns;
    if (inwin)
        tp_replies++;
    if (in_window(c->due)) {
        win.replies++;
        enum st_class k = st >= 200 && st < 300   ? ST_2XX
                          : st >= 300 && st < 400 ? ST_3XX
                          : st >= 400 && st < 500 ? ST_4XX
                          : st == 503             ? ST_503
                          : st >= 500 && st < 600 ? ST_5XX
                                                  : ST_COUNT;
        if (k != ST_COUNT)
            win.status[k]++;
        if (st == 503) {
            sl_hist_add(&win.shed_lat, lat);
            if (c->retry_after)
                win.retry_after_503++;
        }
    }
    if (good) {
        bool on_time = lat <= slo_ns;
        tot_good++;
        sec.good++;
        sl_hist_add(&sec.lat, lat);
        if (on_time)
            sec.goodput++;
        else
            c->sess_late = true;
        if (inwin)
            tp_good++;
        if (in_window(c->due)) {
            win.good++;
            sl_hist_add(&win.lat, lat);
            if (on_time) {
                if (win.goodput++ == 0)
                    win.gp_first = now;
                win.gp_last = now;
            } else {
                win.late++;
            }
        }
        if (c->reqs_left == 0 && c->sess_inwin) {
            win.sess_completed++; /* every request of it got a good reply */
            if (!c->sess_late)
                win.sess_within++;
        }
    } else {
        count_error(c, e, false);
    }
    c->active = false;
    in_flight--;
    timer_clear(c);
    if (!good) {
        conn_free(c); /* a failed page ends the session, as in httperf */
        if (o.mode == MODE_CLOSED)
            session_next(NULL, now);
        return;
    }
    if (c->last || c->server_close) {
        if (c->reqs_left > 0 && !c->last) {
            /* The server chose to close: like a browser, reconnect for the
             * next request after the think time. */
            conn_close_fd(c);
            session_next(c, now);
            return;
        }
        /* Let the server close first: its side keeps the TIME_WAIT. */
        c->st = C_LINGER;
        timer_set(c, T_LINGER, now + LINGER_NS);
        return;
    }
    session_next(c, now);
}

static void finish_error(struct conn *c, enum err e, uint64_t now)
{
    /* Not connected: this request's connection was never established (a
     * connect in progress, or a socket that could not even be opened). */
    count_error(c, e, !c->connected);
    conn_free(c);
    if (o.mode == MODE_CLOSED)
        session_next(NULL, now);
}

/* Parses a complete head in c->in[0..hlen). Returns false on a bad reply. */
static bool parse_head(struct conn *c, size_t hlen)
{
    const char *p = c->in, *end = c->in + hlen;
    if (hlen < 12 || strncmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
        return false;
    bool http10 = p[7] == '0';
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        st = st * 10 + (p[i] - '0');
    }
    c->status = st;
    bool have_len = false, keepalive10 = false;
    c->server_close = false;
    c->retry_after = false;
    const char *line = memchr(p, '\n', (size_t)(end - p));
    while (line && ++line < end) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (!eol)
            break;
        const char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon) {
            size_t nlen = (size_t)(colon - line);
            const char *v = colon + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            size_t vlen = (size_t)(eol - v);
            if (nlen == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
                char *e;
                errno = 0;
                unsigned long long n = strtoull(v, &e, 10);
                if (errno || e == v)
                    return false;
                c->clen = n;
                have_len = true;
            } else if (nlen == 10 && strncasecmp(line, "Connection", 10) == 0) {
                if (memmem(v, vlen, "close", 5) || memmem(v, vlen, "Close", 5))
                    c->server_close = true;
                if (memmem(v, vlen, "eep-", 4))
                    keepalive10 = true;
            } else if (nlen == 11 && strncasecmp(line, "Retry-After", 11) == 0) {
                c->retry_after = true;
            } else if (nlen == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
                return false; /* a static server has no reason to chunk */
            }
        }
        line = eol;
    }
    if (http10 && !keepalive10)
        c->server_close = true;
    bool no_body = (st >= 100 && st < 200) || st == 204 || st == 304;
    if (no_body) {
        c->clen = 0;
    } else if (!have_len) {
        c->until_eof = true; /* HTTP/1.0 style: the body ends at close */
        c->server_close = true;
        c->clen = 0;
    }
    c->body_left = c->clen;
    return true;
}

/* After a reply, the same connection may already hold more: the server's
 * FIN, or (closed mode) the next reply. Edge-triggered epoll will not say so
 * again, so the reader goes on while the connection is still ours. */
static bool still_reading(const struct conn *c)
{
    return c->st != C_FREE && c->fd >= 0 && c->st != C_SENDING && c->st != C_CONNECTING;
}

/* Reads what is there. Drains to EAGAIN (edge-triggered). */
static void on_readable(struct conn *c, uint64_t now)
{
    for (;;) {
        if (c->st == C_HEAD) {
            ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN)
                return;
            if (n <= 0) {
                finish_error(c, n == 0 ? E_CLOSED : errno_kind(errno), now);
                return;
            }
            count_bytes((uint64_t)n, now);
            size_t from = c->in_len > 3 ? c->in_len - 3 : 0;
            c->in_len += (uint32_t)n;
            char *hend = memmem(c->in + from, c->in_len - from, "\r\n\r\n", 4);
            if (!hend) {
                if (c->in_len == sizeof(c->in)) {
                    finish_error(c, E_BADREPLY, now);
                    return;
                }
                continue;
            }
            size_t hlen = (size_t)(hend - c->in) + 4;
            if (!parse_head(c, hlen)) {
                finish_error(c, E_BADREPLY, now);
                return;
            }
            size_t extra = c->in_len - hlen;
            if (!c->until_eof && extra > c->body_left) {
                finish_error(c, E_BADREPLY, now); /* bytes beyond the reply */
                return;
            }
            if (!c->until_eof)
                c->body_left -= extra;
            c->st = C_BODY;
            if (!c->until_eof && c->body_left == 0) {
                reply_done(c, now);
                if (!still_reading(c))
                    return;
            }
        } else if (c->st == C_BODY) {
            size_t want = c->until_eof ? sizeof(scratch) : SL_MIN(sizeof(scratch), c->body_left);
            ssize_t n = recv(c->fd, scratch, want, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN)
                return;
            if (n == 0 && c->until_eof) {
                reply_done(c, now);
                return;
            }
            if (n <= 0) {
                finish_error(c, n == 0 ? E_CLOSED : errno_kind(errno), now);
                return;
            }
            count_bytes((uint64_t)n, now);
            if (c->until_eof) {
                c->clen += (uint64_t)n;
                continue;
            }
            c->body_left -= (uint64_t)n;
            if (c->body_left == 0) {
                reply_done(c, now);
                if (!still_reading(c))
                    return;
            }
        } else {
            /* Idle or lingering: the server should say nothing more. EOF or
             * anything else ends this connection (not the session). */
            ssize_t n = recv(c->fd, scratch, sizeof(scratch), 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN)
                return;
            if (c->st == C_LINGER) {
                if (n > 0)
                    continue;
                conn_free(c);
                if (o.mode == MODE_CLOSED)
                    session_next(NULL, now);
                return;
            }
            conn_close_fd(c); /* thinking: reconnect when the next request is due */
            return;
        }
    }
}

static void on_event(struct conn *c, uint32_t ev, uint64_t now)
{
    if (c->st == C_FREE || c->fd < 0)
        return; /* closed earlier in this batch */
    if (c->st == C_CONNECTING) {
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err && !c->active) {
            conn_close_fd(c); /* opened ahead: the request will try again */
            c->st = C_IDLE;
            return;
        }
        if (err) {
            finish_error(c, errno_kind(err), now);
            return;
        }
        c->connected = true;
        if (!c->active) {
            c->st = C_IDLE;
            return;
        }
        c->st = C_SENDING;
        try_send(c, now);
        if (c->st != C_HEAD)
            return;
        /* fall through: the reply may already be on its way */
    } else if (c->st == C_SENDING) {
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            try_send(c, now);
        if (c->st != C_HEAD)
            return;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        on_readable(c, now);
}

/* ------------------------------------------------------------------ sessions */

static uint64_t secs_ns(double s)
{
    return (uint64_t)(s * 1e9);
}

/* Schedules the session's next request after a think time, or ends the
 * session. C == NULL starts a new closed-mode session. */
static void session_next(struct conn *c, uint64_t now)
{
    if (c == NULL) {
        if (now >= end_ns)
            return;
        c = conn_new();
        rng_seed(&c->rng, o.seed, ++tot_sessions);
        c->reqs_left = rng_range(&c->rng, o.sess_min, o.sess_max);
        c->burst_left = 0;
        c->file = pick_file(&c->rng);
        c->reqs_left--;
        c->last = c->reqs_left == 0;
        c->due = now;
        session_start(c, now);
        request_start(c, now);
        return;
    }
    if (c->reqs_left == 0) {
        conn_free(c);
        if (o.mode == MODE_CLOSED)
            session_next(NULL, now);
        return;
    }
    double think = 0;
    if (o.mode == MODE_SESSIONS) {
        if (c->burst_left > 0) {
            think = think_browser(&c->rng);
        } else {
            think = think_user(&c->rng);
            c->burst_left = rng_range(&c->rng, o.burst_min, o.burst_max);
        }
        c->burst_left--;
    }
    c->reqs_left--;
    c->file = pick_file(&c->rng);
    c->last = c->reqs_left == 0;
    c->due = now + secs_ns(think);
    if (c->due >= end_ns) {
        conn_free(c); /* would be due after the end of the run */
        return;
    }
    c->st = C_IDLE;
    if (c->due <= now)
        request_start(c, now);
    else
        timer_set(c, T_DUE, c->due);
}

/* A new session (sessions mode) or request (open mode) arrives, due at DUE. */
static void arrival(uint64_t due, uint64_t now)
{
    struct conn *c = conn_new();
    tot_sessions++;
    rng_seed(&c->rng, o.seed, tot_sessions);
    if (o.mode == MODE_OPEN) {
        c->reqs_left = 0;
        c->last = true;
    } else {
        unsigned n = rng_range(&c->rng, o.sess_min, o.sess_max);
        c->burst_left = rng_range(&c->rng, o.burst_min, o.burst_max) - 1;
        c->reqs_left = n - 1;
        c->last = c->reqs_left == 0;
    }
    c->file = pick_file(&c->rng);
    c->due = due;
    session_start(c, due);
    request_start(c, now);
}

/* Steady state from the first second: replays the arrivals of the PREWARM
 * seconds before the start (zero service time) and keeps the sessions that
 * would still be running, each with its next request due at or after t0. */
static void prewarm(struct rng *arr)
{
    double t = -o.prewarm;
    uint64_t stream = UINT64_C(1) << 62;
    for (;;) {
        t += arrival_gap(arr, o.rate);
        if (t >= 0)
            break;
        struct rng r;
        rng_seed(&r, o.seed, stream++);
        unsigned n = rng_range(&r, o.sess_min, o.sess_max);
        unsigned burst_left = rng_range(&r, o.burst_min, o.burst_max) - 1;
        unsigned left = n - 1;
        double at = t; /* due time of the request we are at */
        int file = pick_file(&r);
        while (at < 0 && left > 0) {
            if (burst_left > 0) {
                at += think_browser(&r);
            } else {
                at += think_user(&r);
                burst_left = rng_range(&r, o.burst_min, o.burst_max);
            }
            burst_left--;
            left--;
            file = pick_file(&r);
        }
        if (at < 0)
            continue; /* that session is over */
        struct conn *c = conn_new();
        c->rng = r;
        c->reqs_left = left;
        c->burst_left = burst_left;
        c->file = file;
        c->last = left == 0;
        c->due = t0 + secs_ns(at);
        if (c->due >= end_ns) {
            conn_free(c);
            continue;
        }
        /* In steady state this session would already hold its connection:
         * open it ahead of the request, spread over max(1 s, the warm-up) so
         * the server sees a ramp of connects rather than one burst of SYNs,
         * and the ramp stays out of the statistics. */
        c->st = C_IDLE;
        uint64_t ahead = SL_MIN(c->due - t0, SL_MAX(PREWARM_CONNECT_NS, warm_ns - t0));
        timer_set(c, T_CONNECT, t0 + (uint64_t)(rng_unit(arr) * (double)ahead));
        tot_prewarmed++;
    }
}

static void on_timer(struct conn *c, uint64_t now)
{
    enum tkind k = c->tk;
    uint64_t deadline = c->heap_idx >= 0 ? heap[c->heap_idx].deadline : now;
    timer_clear(c);
    switch (k) {
    case T_CONNECT:
        if (c->due >= end_ns) {
            conn_free(c);
            return;
        }
        if (open_socket(c, deadline) != E_COUNT) {
            conn_close_fd(c); /* the request connects again and counts the error */
            c->st = C_IDLE;
        }
        timer_set(c, T_DUE, c->due);
        return;
    case T_DUE:
        if (c->due >= end_ns) {
            conn_free(c);
            return;
        }
        request_start(c, now); /* reconnects first if the server closed */
        return;
    case T_TIMEOUT:
        finish_error(c, E_TIMEOUT, now);
        return;
    case T_LINGER:
        conn_free(c);
        if (o.mode == MODE_CLOSED)
            session_next(NULL, now);
        return;
    case T_NONE:
        return;
    }
}

/* ------------------------------------------------------------------ reporting */

static FILE *csv;
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    if (stop_signal)
        _exit(130); /* a second ^C: leave now */
    stop_signal = sig;
}

/* User + system CPU seconds this process used: on a machine shared with the
 * server, a client near one full core is itself the bottleneck. */
static double cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static void tick(uint64_t now, unsigned n)
{
    double mbit = (double)sec.bytes * 8 / 1e6;
    double mean = sec.lat.count ? ms(sec.lat.sum) / (double)sec.lat.count : 0;
    double p50 = ms(sl_hist_quantile(&sec.lat, 0.50));
    double p99 = ms(sl_hist_quantile(&sec.lat, 0.99));
    double lag99 = ms(sl_hist_quantile(&sec.lag, 0.99));
    if (csv)
        fprintf(csv,
                "%u,%.3f,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
                ",%" PRIu64 ",%.3f,%ld,%ld,%.3f,%.3f,%.3f,%.3f,%" PRIu64 ",%.3f,%.3f\n",
                n, (double)(now - t0) / 1e9, sec.due, sec.sent, sec.replies, sec.good,
                sec.errors, sec.timeouts, sec.shed, mbit, open_conns, in_flight, mean, p50, p99,
                ms(sec.lat.max), sec.goodput, lag99, ms(sec.lag.max));
    if (!o.quiet)
        fprintf(stderr,
                "%s: %4us  offered %6" PRIu64 "/s  replies %6" PRIu64 "/s  good %6" PRIu64
                "/s  goodput %6" PRIu64 "/s  %7.1f Mbit/s  p99 %8.1f ms  lag p99 %6.1f ms"
                "  conns %6ld  errors %" PRIu64 " (timeouts %" PRIu64 ", 503 %" PRIu64 ")%s\n",
                prog, n, sec.due, sec.replies, sec.good, sec.goodput, mbit, p99, lag99,
                open_conns, sec.errors, sec.timeouts, sec.shed,
                now > end_ns ? "  [draining]" : "");
    memset(&sec, 0, sizeof(sec));
}

struct verdict {
    bool pass;
    int judged;
    double mean, max;
    int worst;
    char why[160];
};

/* Section 3.4 of the paper: timeouts are allowed, but no file size may time
 * out much more often than the others: each size's timeout percentage at most
 * 2 points above the mean over sizes, and none above 10%. Sizes with fewer than
 * --verify-min requests are too noisy to judge and are skipped. */
static void verify(struct verdict *v)
{
    double sum = 0;
    v->judged = 0;
    v->max = 0;
    v->worst = -1;
    for (int i = 0; i < nslots; i++) {
        if (slots[i].requests < o.verify_min)
            continue;
        double p = 100.0 * (double)slots[i].timeouts / (double)slots[i].requests;
        sum += p;
        v->judged++;
        if (p > v->max) {
            v->max = p;
            v->worst = i;
        }
    }
    v->mean = v->judged ? sum / v->judged : 0;
    v->pass = true;
    v->why[0] = '\0';
    if (v->judged == 0) {
        snprintf(v->why, sizeof(v->why), "no file size had %u requests", o.verify_min);
        return; /* nothing to hold against the server */
    }
    if (v->max > 10.0) {
        v->pass = false;
        snprintf(v->why, sizeof(v->why), "%s times out %.2f%% > 10%%", slots[v->worst].name,
                 v->max);
    } else if (v->max > v->mean + 2.0) {
        v->pass = false;
        snprintf(v->why, sizeof(v->why), "%s times out %.2f%%, more than 2 points above the mean %.2f%%",
                 slots[v->worst].name, v->max, v->mean);
    }
}

static const char *mode_name(void)
{
    return o.mode == MODE_SESSIONS ? "sessions" : o.mode == MODE_OPEN ? "open" : "closed";
}

static double nominal_rps(void)
{
    if (o.mode == MODE_SESSIONS)
        return o.rate * (o.sess_min + o.sess_max) / 2.0;
    if (o.mode == MODE_OPEN)
        return o.rate;
    return 0; /* closed: whatever the server allows */
}

/* N per second of the window; 0 when an early ^C left no window. */
static double per_s(uint64_t n, double window)
{
    return window > 0 ? (double)n / window : 0;
}

/* The span from the first to the last goodput reply, and their rate over
 * it, or over the WINDOW their requests were due in when that is longer: a
 * few good replies that came close together (a server answering in time
 * only now and then) are not a high rate. 0 without such a span. */
static double goodput_span(void)
{
    return win.goodput ? (double)(win.gp_last - win.gp_first) / 1e9 : 0;
}

static double goodput_rps(double window)
{
    double span = SL_MAX(goodput_span(), window);
    return span > 0 ? (double)win.goodput / span : 0;
}

/* The client kept its schedule: the p99 of its connect and request lag is
 * at most a tenth of the deadline. Otherwise the client, not the server,
 * set the pace. */
static bool lag_ok(void)
{
    uint64_t lim = slo_ns / 10;
    return sl_hist_quantile(&lag, 0.99) <= lim && sl_hist_quantile(&lag_conn, 0.99) <= lim;
}

static uint64_t sess_cut_off(void)
{
    uint64_t ended = win.sess_completed + win.sess_failed;
    return win.sess_started > ended ? win.sess_started - ended : 0;
}

static void report(FILE *f, double window, double elapsed, const struct verdict *v)
{
    const struct sl_hist *h = &win.lat;
    fprintf(f, "%s: %s mode, %s port %d, ", prog, mode_name(), o.server, o.port);
    if (o.mode == MODE_SESSIONS)
        fprintf(f, "%.1f sessions/s (about %.0f requests/s nominal), ", o.rate, nominal_rps());
    else if (o.mode == MODE_OPEN)
        fprintf(f, "%.1f requests/s, ", o.rate);
    else
        fprintf(f, "%d clients, ", o.clients);
    fprintf(f, "%.1f s (warm-up %.1f s), timeout %.1f s, seed %" PRIu64 "\n", o.duration,
            o.warmup, o.timeout, o.seed);
    fprintf(f, "window %.1f s:\n", window);
    fprintf(f, "  offered      %.1f requests/s due (%" PRIu64 " requests)\n",
            per_s(win.requests, window), win.requests);
    fprintf(f, "  achieved     %.1f replies/s, %.1f good/s, %.2f Mbit/s\n",
            per_s(tp_replies, window), per_s(tp_good, window),
            per_s(tp_bytes * 8, window) / 1e6);
    fprintf(f,
            "  latency ms   mean %.2f  p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  (%" PRIu64
            " good replies, from due time)\n",
            h->count ? ms(h->sum) / (double)h->count : 0, ms(sl_hist_quantile(h, 0.5)),
            ms(sl_hist_quantile(h, 0.9)), ms(sl_hist_quantile(h, 0.99)), ms(h->max), h->count);
    fprintf(f,
            "  goodput      %" PRIu64 " replies within the %.0f ms deadline, %.1f/s over the "
            "%.2f s they span (or the window, if longer); %" PRIu64 " late\n",
            win.goodput, o.slo_ms, goodput_rps(window), goodput_span(), win.late);
    fprintf(f,
            "  admitted ms  p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  (%" PRIu64
            " good replies, late ones included)\n",
            ms(sl_hist_quantile(h, 0.5)), ms(sl_hist_quantile(h, 0.99)),
            ms(sl_hist_quantile(h, 0.999)), ms(h->max), h->count);
    fprintf(f, "  status      ");
    for (int k = 0; k < ST_COUNT; k++)
        fprintf(f, " %s %" PRIu64 "%s", st_name[k], win.status[k], k + 1 < ST_COUNT ? "," : "");
    fprintf(f, "  (5xx without 503; %" PRIu64 " of the 503s with Retry-After)\n",
            win.retry_after_503);
    if (win.status[ST_503])
        fprintf(f, "  turned away  503 after p50 %.2f ms, p99 %.2f ms, max %.2f ms (from due time)\n",
                ms(sl_hist_quantile(&win.shed_lat, 0.5)), ms(sl_hist_quantile(&win.shed_lat, 0.99)),
                ms(win.shed_lat.max));
    fprintf(f,
            "  failures     %" PRIu64 " connect failures (never established), %" PRIu64
            " resets after accept, %" PRIu64 " client timeouts\n",
            win.connect_failures, win.resets_after_accept, win.client_timeouts);
    fprintf(f,
            "  sessions     %" PRIu64 " started, %" PRIu64 " completed, %" PRIu64
            " completed within the deadline, %" PRIu64 " failed, %" PRIu64
            " cut off by the end of the run\n",
            win.sess_started, win.sess_completed, win.sess_within, win.sess_failed,
            sess_cut_off());
    fprintf(f, "  errors       %" PRIu64 ":", win.errors);
    for (int e = 0; e < E_COUNT; e++)
        fprintf(f, " %s %" PRIu64 "%s", err_name[e], win.err[e], e + 1 < E_COUNT ? "," : "\n");
    if (win.err[E_TIMEOUT])
        fprintf(f, "               (%" PRIu64 " of the timeouts never got a connection)\n",
                win.connect_timeouts);
    fprintf(f, "  timeouts by file size (requests, timeouts, %%):\n");
    for (int i = 0; i < nslots; i++) {
        const struct size_slot *s = &slots[i];
        if (!s->requests)
            continue;
        fprintf(f, "    %-14s %8" PRIu64 " B %8" PRIu64 " %6" PRIu64 " %6.2f%%%s\n", s->name,
                s->size == UINT64_MAX ? 0 : s->size, s->requests, s->timeouts,
                100.0 * (double)s->timeouts / (double)s->requests,
                s->requests < o.verify_min ? "  (too few to judge)" : "");
    }
    fprintf(f,
            "  verification %s: %d sizes judged, mean timeout %.2f%%, max %.2f%% "
            "(limits: mean + 2 points, 10%%)%s%s\n",
            v->pass ? "PASS" : "FAIL", v->judged, v->mean, v->max, v->why[0] ? "; " : "",
            v->why);
    fprintf(f,
            "  client lag   request p50 %.2f  p99 %.2f  max %.2f ms; connect p50 %.2f  p99 %.2f"
            "  max %.2f ms\n"
            "               (due -> issued: %s)\n",
            ms(sl_hist_quantile(&lag, 0.5)), ms(sl_hist_quantile(&lag, 0.99)), ms(lag.max),
            ms(sl_hist_quantile(&lag_conn, 0.5)), ms(sl_hist_quantile(&lag_conn, 0.99)),
            ms(lag_conn.max),
            lag_ok() ? "p99 within a tenth of the deadline, the schedule was kept"
                     : "INVALID: p99 above a tenth of the deadline, the client, not the "
                       "server, set the pace");
    fprintf(f,
            "totals: %" PRIu64 " sessions arrived (+%" PRIu64 " pre-warmed), %" PRIu64
            " requests sent, %" PRIu64 " replies (%" PRIu64
            " good) including warm-up and drain, %" PRIu64
            " reconnects, max %ld open connections, %.1f s elapsed, client CPU %.0f%%\n",
            tot_sessions, tot_prewarmed, tot_sent, tot_replies, tot_good, tot_reconnects,
            max_open_conns, elapsed, elapsed > 0 ? 100 * cpu_seconds() / elapsed : 0);
}

static void report_json(FILE *f, double window, double elapsed, const struct verdict *v)
{
    const struct sl_hist *h = &win.lat;
    fprintf(f,
            "{\"tool\":\"sluice-load\",\"mode\":\"%s\",\"server\":\"%s\",\"port\":%d,"
            "\"rate\":%.3f,\"nominal_rps\":%.3f,\"clients\":%d,\"duration_s\":%.3f,"
            "\"warmup_s\":%.3f,\"window_s\":%.3f,\"timeout_s\":%.3f,\"seed\":%" PRIu64 ",",
            mode_name(), o.server, o.port, o.rate, nominal_rps(), o.clients, o.duration,
            o.warmup, window, o.timeout, o.seed);
    fprintf(f,
            "\"requests\":%" PRIu64 ",\"offered_rps\":%.3f,\"replies\":%" PRIu64
            ",\"good\":%" PRIu64 ",\"reply_rps\":%.3f,\"good_rps\":%.3f,\"mbit_s\":%.3f,",
            win.requests, per_s(win.requests, window), win.replies, win.good,
            per_s(tp_replies, window), per_s(tp_good, window),
            per_s(tp_bytes * 8, window) / 1e6);
    fprintf(f,
            "\"latency_ms\":{\"count\":%" PRIu64
            ",\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},",
            h->count, h->count ? ms(h->sum) / (double)h->count : 0, ms(sl_hist_quantile(h, 0.5)),
            ms(sl_hist_quantile(h, 0.9)), ms(sl_hist_quantile(h, 0.99)),
            ms(sl_hist_quantile(h, 0.999)), ms(h->max));
    /* The histogram itself, [upper edge ns, count] per non-empty bucket, so
     * runs of several client processes merge exactly. */
    fprintf(f, "\"latency_hist_ns\":[");
    bool any = false;
    for (unsigned b = 0; b < SL_HIST_BUCKETS; b++) {
        if (!h->b[b])
            continue;
        struct sl_hist one = {.count = 1, .max = UINT64_MAX};
        one.b[b] = 1;
        fprintf(f, "%s[%" PRIu64 ",%" PRIu64 "]", any ? "," : "", sl_hist_quantile(&one, 1.0),
                h->b[b]);
        any = true;
    }
    fprintf(f, "],\"latency_sum_ns\":%" PRIu64 ",", h->sum);
    fprintf(f, "\"client_lag_ms\":{\"p99\":%.3f,\"max\":%.3f},",
            ms(sl_hist_quantile(&lag, 0.99)), ms(lag.max));
    fprintf(f,
            "\"slo_ms\":%.10g,\"goodput\":{\"replies\":%" PRIu64
            ",\"rps\":%.3f,\"span_s\":%.6f},\"late\":%" PRIu64 ",\"status\":{",
            o.slo_ms, win.goodput, goodput_rps(window), goodput_span(), win.late);
    for (int k = 0; k < ST_COUNT; k++)
        fprintf(f, "%s\"%s\":%" PRIu64, k ? "," : "", st_name[k], win.status[k]);
    const struct sl_hist *sh = &win.shed_lat;
    fprintf(f,
            "},\"retry_after_503\":%" PRIu64
            ",\"shed_latency_ms\":{\"count\":%" PRIu64 ",\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
            "\"connect_failures\":%" PRIu64 ",\"resets_after_accept\":%" PRIu64
            ",\"client_timeouts\":%" PRIu64 ",",
            win.retry_after_503, sh->count, ms(sl_hist_quantile(sh, 0.5)),
            ms(sl_hist_quantile(sh, 0.99)), ms(sh->max), win.connect_failures,
            win.resets_after_accept, win.client_timeouts);
    fprintf(f,
            "\"latency_admitted_ms\":{\"count\":%" PRIu64
            ",\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},",
            h->count, ms(sl_hist_quantile(h, 0.5)), ms(sl_hist_quantile(h, 0.99)),
            ms(sl_hist_quantile(h, 0.999)), ms(h->max));
    fprintf(f,
            "\"sessions\":{\"started\":%" PRIu64 ",\"completed\":%" PRIu64
            ",\"completed_within_slo\":%" PRIu64 ",\"failed\":%" PRIu64
            ",\"cut_off\":%" PRIu64 "},",
            win.sess_started, win.sess_completed, win.sess_within, win.sess_failed,
            sess_cut_off());
    fprintf(f,
            "\"lag_ms\":{\"connect\":{\"count\":%" PRIu64
            ",\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},"
            "\"request\":{\"count\":%" PRIu64 ",\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f}},"
            "\"lag_ok\":%s,",
            lag_conn.count, ms(sl_hist_quantile(&lag_conn, 0.5)),
            ms(sl_hist_quantile(&lag_conn, 0.99)), ms(lag_conn.max), lag.count,
            ms(sl_hist_quantile(&lag, 0.5)), ms(sl_hist_quantile(&lag, 0.99)), ms(lag.max),
            lag_ok() ? "true" : "false");
    fprintf(f, "\"errors\":{\"total\":%" PRIu64, win.errors);
    for (int e = 0; e < E_COUNT; e++)
        fprintf(f, ",\"%s\":%" PRIu64, err_name[e], win.err[e]);
    fprintf(f, ",\"connect_timeouts\":%" PRIu64 "},\"timeouts\":%" PRIu64
               ",\"timeout_pct\":%.4f,\"per_size\":[",
            win.connect_timeouts, win.err[E_TIMEOUT],
            win.requests ? 100.0 * (double)win.err[E_TIMEOUT] / (double)win.requests : 0);
    bool first = true;
    for (int i = 0; i < nslots; i++) {
        const struct size_slot *s = &slots[i];
        if (!s->requests)
            continue;
        fprintf(f,
                "%s{\"name\":\"%s\",\"size\":%" PRIu64 ",\"requests\":%" PRIu64
                ",\"timeouts\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"timeout_pct\":%.4f}",
                first ? "" : ",", s->name, s->size == UINT64_MAX ? 0 : s->size, s->requests,
                s->timeouts, s->errors, 100.0 * (double)s->timeouts / (double)s->requests);
        first = false;
    }
    fprintf(f,
            "],\"verification\":{\"pass\":%s,\"judged_sizes\":%d,\"min_requests\":%u,"
            "\"mean_timeout_pct\":%.4f,\"max_timeout_pct\":%.4f,\"worst\":\"%s\",\"reason\":\"%s\"},",
            v->pass ? "true" : "false", v->judged, o.verify_min, v->mean, v->max,
            v->worst >= 0 ? slots[v->worst].name : "", v->why);
    fprintf(f,
            "\"totals\":{\"sessions\":%" PRIu64 ",\"prewarmed\":%" PRIu64 ",\"due\":%" PRIu64
            ",\"sent\":%" PRIu64 ",\"replies\":%" PRIu64 ",\"good\":%" PRIu64
            ",\"reconnects\":%" PRIu64 ",\"max_open_conns\":%ld,\"in_flight_at_exit\":%ld},"
            "\"max_conns\":%ld,\"elapsed_s\":%.3f,\"client_cpu_s\":%.3f}\n",
            tot_sessions, tot_prewarmed, tot_due, tot_sent, tot_replies, tot_good,
            tot_reconnects, max_open_conns, in_flight, o.max_conns, elapsed, cpu_seconds());
}

/* ------------------------------------------------------------------ setup */

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

/* Resolves --server; every address it names must be loopback: this tool
 * never sends load to another machine. */
static void resolve_server(void)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    char port[16];
    snprintf(port, sizeof(port), "%d", o.port);
    int rc = getaddrinfo(o.server, port, &hints, &res);
    if (rc != 0)
        die(2, "--server %s: %s", o.server, gai_strerror(rc));
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (!is_loopback(ai->ai_addr)) {
            char buf[INET6_ADDRSTRLEN] = "?";
            const void *a = ai->ai_family == AF_INET
                                ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                                : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
            inet_ntop(ai->ai_family, a, buf, sizeof(buf));
            die(2,
                "refusing to send load to %s (%s): not a loopback address. sluice-load "
                "only targets 127.0.0.0/8 or ::1 on this machine.",
                o.server, buf);
        }
    }
    memcpy(&srv_addr, res->ai_addr, res->ai_addrlen);
    srv_len = res->ai_addrlen;
    if (res->ai_family == AF_INET6)
        snprintf(host_hdr, sizeof(host_hdr), "[%s]:%d", strchr(o.server, ':') ? o.server : "::1",
                 o.port);
    else
        snprintf(host_hdr, sizeof(host_hdr), "%s:%d", o.server, o.port);
    freeaddrinfo(res);
}

/* As many descriptors as the hard limit allows; returns the soft limit. */
static long raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    rlim_t want = rl.rlim_max == RLIM_INFINITY ? 1048576 : rl.rlim_max;
    if (rl.rlim_cur < want) {
        struct rlimit nrl = {want, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nrl) == 0)
            rl.rlim_cur = want;
    }
    return (long)rl.rlim_cur;
}

static void parse_args(int argc, char **argv)
{
    enum {
        O_SERVER = 256, O_PORT, O_FILESET, O_DIRS, O_URI, O_MODE, O_RATE, O_ARRIVALS,
        O_DURATION, O_WARMUP, O_PREWARM, O_SESSLEN, O_BURSTLEN, O_BTHINK, O_UTHINK,
        O_CLIENTS, O_TIMEOUT, O_SLO, O_MAXCONNS, O_SEED, O_CSV, O_JSON, O_QUIET, O_VMIN, O_SOURCES,
    };
    static const struct option lopts[] = {
        {"server", required_argument, 0, O_SERVER},
        {"port", required_argument, 0, O_PORT},
        {"fileset", required_argument, 0, O_FILESET},
        {"dirs", required_argument, 0, O_DIRS},
        {"uri", required_argument, 0, O_URI},
        {"mode", required_argument, 0, O_MODE},
        {"rate", required_argument, 0, O_RATE},
        {"arrivals", required_argument, 0, O_ARRIVALS},
        {"duration", required_argument, 0, O_DURATION},
        {"warmup", required_argument, 0, O_WARMUP},
        {"prewarm", required_argument, 0, O_PREWARM},
        {"session-len", required_argument, 0, O_SESSLEN},
        {"burst-len", required_argument, 0, O_BURSTLEN},
        {"browser-think", required_argument, 0, O_BTHINK},
        {"user-think", required_argument, 0, O_UTHINK},
        {"clients", required_argument, 0, O_CLIENTS},
        {"timeout", required_argument, 0, O_TIMEOUT},
        {"slo", required_argument, 0, O_SLO},
        {"max-conns", required_argument, 0, O_MAXCONNS},
        {"sources", required_argument, 0, O_SOURCES},
        {"seed", required_argument, 0, O_SEED},
        {"csv", required_argument, 0, O_CSV},
        {"json", no_argument, 0, O_JSON},
        {"quiet", no_argument, 0, O_QUIET},
        {"verify-min", required_argument, 0, O_VMIN},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (ch) {
        case O_SERVER: o.server = optarg; break;
        case O_PORT: o.port = (int)parse_long("--port", optarg, 1, 65535); break;
        case O_FILESET: o.fileset = optarg; break;
        case O_DIRS: o.dirs = (int)parse_long("--dirs", optarg, 1, 1000000); break;
        case O_URI:
            if (o.nuris == MAX_URIS)
                die(2, "--uri: at most %d paths", MAX_URIS);
            if (optarg[0] != '/')
                die(2, "--uri %s: a URL path starts with /", optarg);
            o.uris[o.nuris++] = optarg;
            break;
        case O_MODE:
            if (strcmp(optarg, "sessions") == 0)
                o.mode = MODE_SESSIONS;
            else if (strcmp(optarg, "open") == 0)
                o.mode = MODE_OPEN;
            else if (strcmp(optarg, "closed") == 0)
                o.mode = MODE_CLOSED;
            else
                die(2, "--mode %s: expected sessions, open or closed", optarg);
            break;
        case O_RATE: o.rate = parse_double("--rate", optarg, 1e-3); break;
        case O_ARRIVALS:
            if (strcmp(optarg, "poisson") == 0)
                o.poisson = true;
            else if (strcmp(optarg, "uniform") == 0)
                o.poisson = false;
            else
                die(2, "--arrivals %s: expected poisson or uniform", optarg);
            break;
        case O_DURATION: o.duration = parse_double("--duration", optarg, 0.1); break;
        case O_WARMUP: o.warmup = parse_double("--warmup", optarg, 0); break;
        case O_PREWARM: o.prewarm = parse_double("--prewarm", optarg, 0); break;
        case O_SESSLEN: parse_range("--session-len", optarg, &o.sess_min, &o.sess_max); break;
        case O_BURSTLEN: parse_range("--burst-len", optarg, &o.burst_min, &o.burst_max); break;
        case O_BTHINK: o.browser_think = parse_double("--browser-think", optarg, 0); break;
        case O_UTHINK: o.user_think = parse_double("--user-think", optarg, 0); break;
        case O_CLIENTS: o.clients = (int)parse_long("--clients", optarg, 1, 1000000); break;
        case O_TIMEOUT: o.timeout = parse_double("--timeout", optarg, 0.001); break;
        case O_SLO: o.slo_ms = parse_double("--slo", optarg, 0.001); break;
        case O_MAXCONNS: o.max_conns = parse_long("--max-conns", optarg, 1, 100000000); break;
        case O_SOURCES: o.sources = (int)parse_long("--sources", optarg, 1, 250); break;
        case O_SEED: o.seed = (uint64_t)parse_long("--seed", optarg, 0, LONG_MAX); break;
        case O_CSV: o.csv = optarg; break;
        case O_JSON: o.json = true; break;
        case O_QUIET: o.quiet = true; break;
        case O_VMIN: o.verify_min = (unsigned)parse_long("--verify-min", optarg, 1, 1000000000); break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); exit(2);
        }
    }
    if (optind < argc)
        die(2, "unexpected argument '%s' (see --help)", argv[optind]);
    if (o.warmup >= o.duration)
        die(2, "--warmup %.1f must be shorter than --duration %.1f", o.warmup, o.duration);
    if (o.prewarm < 0)
        o.prewarm = o.mode == MODE_SESSIONS ? 60 : 0;
}

/* ------------------------------------------------------------------ main loop */

/* Ends every session whose timer is of kind K. The heap reorders as entries
 * leave it, so the victims are collected first. */
static void free_timers(enum tkind k)
{
    struct conn **v = sl_malloc((size_t)(heap_n ? heap_n : 1) * sizeof(*v));
    int n = 0;
    for (int i = 0; i < heap_n; i++)
        if (heap[i].c->tk == k)
            v[n++] = heap[i].c;
    for (int i = 0; i < n; i++)
        conn_free(v[i]);
    free(v);
}

/* epoll_pwait2 takes a nanosecond timeout; older kernels get epoll_wait with
 * the timeout rounded up to a millisecond. */
static int wait_events(struct epoll_event *ev, int n, uint64_t timeout_ns)
{
    static bool no_pwait2;
#ifdef SYS_epoll_pwait2
    if (!no_pwait2) {
        struct timespec ts = {(time_t)(timeout_ns / NS), (long)(timeout_ns % NS)};
        int rc = (int)syscall(SYS_epoll_pwait2, epfd, ev, n, &ts, NULL, 0);
        if (rc >= 0 || errno != ENOSYS)
            return rc;
        no_pwait2 = true;
    }
#endif
    return epoll_wait(epfd, ev, n, (int)((timeout_ns + MS - 1) / MS));
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    resolve_server();
    long nofile = raise_nofile();
    long cap = nofile - 16; /* stdio, the CSV, the epoll fd */
    if (o.max_conns == 0 || o.max_conns > cap) {
        if (o.max_conns > cap)
            fprintf(stderr, "%s: --max-conns %ld lowered to %ld (open-file limit %ld)\n", prog,
                    o.max_conns, cap, nofile);
        o.max_conns = cap;
    }
    weibull_scale = o.browser_think / tgamma(1.0 + 1.0 / WEIBULL_SHAPE);
    pareto_scale = o.user_think * (PARETO_SHAPE - 1.0) / PARETO_SHAPE;
    build_files();

    if (o.csv) {
        csv = fopen(o.csv, "w");
        if (!csv)
            die(1, "cannot write %s: %s", o.csv, strerror(errno));
        fprintf(csv, "second,t_s,offered,sent,replies,good,errors,timeouts,shed,mbit_s,"
                     "open_conns,in_flight,lat_mean_ms,lat_p50_ms,lat_p99_ms,lat_max_ms,goodput,"
                     "lag_p99_ms,lag_max_ms\n");
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die(1, "epoll_create1: %s", strerror(errno));
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct rng arr;
    rng_seed(&arr, o.seed, 0);
    /* Pre-warm on a clock that starts at 0, then shift it to the real start:
     * building thousands of sessions takes time that must not make the first
     * requests late. Adding a constant keeps the heap ordered. */
    t0 = 0;
    warm_ns = secs_ns(o.warmup);
    end_ns = secs_ns(o.duration);
    if (o.mode == MODE_SESSIONS && o.prewarm > 0)
        prewarm(&arr);
    t0 = sl_now_ns();
    warm_ns += t0;
    end_ns += t0;
    for (int i = 0; i < heap_n; i++) {
        heap[i].deadline += t0;
        heap[i].c->due += t0;
    }
    uint64_t timeout_ns = secs_ns(o.timeout);
    slo_ns = (uint64_t)(o.slo_ms * 1e6);
    uint64_t hard_end = end_ns + timeout_ns + 100 * MS;
    uint64_t next_arrival = o.mode == MODE_CLOSED ? UINT64_MAX : t0;
    if (o.mode == MODE_CLOSED)
        for (int i = 0; i < o.clients; i++)
            session_next(NULL, t0);
    uint64_t next_tick = t0 + NS;
    unsigned tick_no = 0;
    bool stopped = false;
    struct epoll_event *evs = sl_malloc(EPOLL_BATCH * sizeof(*evs));

    for (;;) {
        uint64_t now = sl_now_ns();
        if (stop_signal && !stopped) {
            end_ns = SL_MIN(end_ns, now); /* the window ends here */
            hard_end = SL_MIN(hard_end, now + timeout_ns);
            if (warm_ns > end_ns)
                warm_ns = end_ns;
        }
        /* Arrivals: each is due at its scheduled time, even if we are late. */
        while (next_arrival <= now && next_arrival < end_ns) {
            arrival(next_arrival, now);
            next_arrival += secs_ns(arrival_gap(&arr, o.rate));
        }
        while (heap_n > 0 && heap[0].deadline <= now)
            on_timer(heap[0].c, now);
        if (!stopped && now >= end_ns) {
            /* No request is issued after the end: sessions that are thinking
             * stop here; requests in flight get until their timeout. */
            stopped = true;
            next_arrival = UINT64_MAX;
            free_timers(T_DUE);
            free_timers(T_CONNECT);
        }
        while (now >= next_tick) {
            tick(next_tick, ++tick_no);
            next_tick += NS;
        }
        if (pending_free) {
            struct conn *c = pending_free;
            while (c->next_free)
                c = c->next_free;
            c->next_free = free_list;
            free_list = pending_free;
            pending_free = NULL;
        }
        if (stopped && (in_flight == 0 || now >= hard_end))
            break;
        uint64_t wake = SL_MIN(next_tick, hard_end);
        if (!stopped)
            wake = SL_MIN(wake, SL_MIN(next_arrival, end_ns));
        if (heap_n > 0)
            wake = SL_MIN(wake, heap[0].deadline);
        int n = wait_events(evs, EPOLL_BATCH, wake > now ? wake - now : 0);
        if (n < 0 && errno != EINTR)
            die(1, "epoll: %s", strerror(errno));
        now = sl_now_ns();
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events, now);
    }
    uint64_t fin = sl_now_ns();
    if (sec.due || sec.replies || sec.errors)
        tick(fin, ++tick_no);
    /* Whatever is still outstanding at the hard end is a timeout: the client
     * gave it the full --timeout measured from when it was due. */
    while (heap_n > 0) {
        struct conn *c = heap[heap_n - 1].c;
        if (c->tk == T_TIMEOUT)
            finish_error(c, E_TIMEOUT, fin);
        else
            conn_free(c);
    }
    double window = end_ns > warm_ns ? (double)(end_ns - warm_ns) / 1e9 : 0;
    double elapsed = (double)(fin - t0) / 1e9;
    struct verdict v;
    verify(&v);
    report(o.json ? stderr : stdout, window, elapsed, &v);
    if (o.json)
        report_json(stdout, window, elapsed, &v);
    free(evs);
    if (csv && fclose(csv) != 0)
        die(1, "writing %s: %s", o.csv, strerror(errno));
    fflush(stdout);
    return 0;
}
