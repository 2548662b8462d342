/* response.c: request -> response decision; see response.h. errno chooses the
 * status (ENOENT -> 404, EACCES -> 403, others -> 500 logged loudly). Heads
 * are written without room checks of their own: a head that does not fit is
 * noticed and replaced in one place, finish(). */
#include "core/response.h"
#include "lib/log.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ALLOW "Allow: GET, HEAD, OPTIONS\r\n"

/* The head being written into the caller's buffer. Once a write does not
 * fit, OFF stays past CAP and the response is replaced at the end (finish),
 * so no writer below checks room itself. */
struct head {
    char *p;
    size_t cap, off;
};

static void put_str(struct head *h, const char *s, size_t n)
{
    if (h->off > h->cap || n > h->cap - h->off) {
        h->off = h->cap + 1;
        return;
    }
    memcpy(h->p + h->off, s, n);
    h->off += n;
}

#define PUT_LIT(h, lit) put_str((h), (lit), sizeof(lit) - 1)

static void put_cstr(struct head *h, const char *s)
{
    put_str(h, s, strlen(s));
}

/* Replaces whatever was decided with an error page STATUS (EXTRA: header
 * lines or NULL). The caller has released the file it looked at. */
static void put_error(struct head *h, struct sl_response *out, int status, bool head_only,
                      const char *extra)
{
    size_t n = sl_http_error_response(h->p, h->cap, status, out->keepalive, head_only, extra);
    h->off = n == 0 ? h->cap + 1 : n;
    out->status = status;
    out->entry = NULL;
    out->parts = NULL;
    out->body_start = out->body_end = 0;
}

/* Completes OUT from H: a head that did not fit becomes "500", Connection:
 * close, logged with REQ's target (if known); whatever the response would
 * have sent (a file reference, a multipart body) is given up. */
static void finish(struct sl_cache *cache, const struct sl_request *req, struct head *h,
                   struct sl_response *out)
{
    if (h->off > h->cap) {
        sl_log(SL_LOG_ERROR, "response head %d too large for %.*s", out->status,
               req ? (int)SL_MIN(req->target.n, 256) : 1, req ? req->target.p : "-");
        if (out->entry)
            sl_cache_release(cache, out->entry);
        free(out->parts);
        out->keepalive = false;
        put_error(h, out, 500, req != NULL && req->method == SL_METHOD_HEAD, NULL);
        assert(h->off <= h->cap); /* SL_RESPONSE_HEAD_MIN holds it */
    }
    out->head_len = (uint32_t)h->off;
}

/* An answer that closes the connection on our initiative, before any file. */
static void closing_error(int status, bool head_only, const char *extra, char *head, size_t cap,
                          struct sl_response *out)
{
    assert(cap >= SL_RESPONSE_HEAD_MIN);
    struct head h = {head, cap, 0};
    *out = (struct sl_response){.keepalive = false};
    put_error(&h, out, status, head_only, extra);
    finish(NULL, NULL, &h, out);
}

void sl_response_error(int status, char *head, size_t cap, struct sl_response *out)
{
    closing_error(status, false, NULL, head, cap, out);
}

void sl_response_unavailable(int retry_after, bool head_only, char *head, size_t cap,
                             struct sl_response *out)
{
    char extra[48];
    if (retry_after > 0)
        snprintf(extra, sizeof(extra), "Retry-After: %d\r\n", retry_after);
    closing_error(503, head_only, retry_after > 0 ? extra : NULL, head, cap, out);
}

/* Does the entity-tag list LIST ("*" or comma-separated tags) contain ETAG?
 * WEAK: weak comparison (If-None-Match, RFC 9110 8.8.3.2), where W/"x"
 * matches "x"; otherwise strong (If-Match), where a weak tag never matches
 * our strong ones. */
static bool etag_list_has(struct sl_str list, const char *etag, bool weak)
{
    const char *p = list.p, *end = list.p + list.n;
    size_t elen = strlen(etag);
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p >= end)
            break;
        if (*p == '*')
            return true;
        bool is_weak = end - p >= 2 && p[0] == 'W' && p[1] == '/';
        if (is_weak)
            p += 2;
        const char *q = p;
        if (q < end && *q == '"') {
            q++;
            while (q < end && *q != '"')
                q++;
            if (q < end)
                q++;
        } else {
            while (q < end && *q != ',' && *q != ' ' && *q != '\t')
                q++;
        }
        if ((weak || !is_weak) && (size_t)(q - p) == elen && memcmp(p, etag, elen) == 0)
            return true;
        p = q;
    }
    return false;
}

static bool date_header(struct sl_str v, time_t *t)
{
    return v.n > 0 && sl_http_parse_date(v.p, v.n, t) == SL_OK;
}

/* RFC 9110 13.2.2: the preconditions in order. Returns 412, 304 or 0. */
static int preconditions(const struct sl_request *req, const struct sl_cache_entry *e)
{
    time_t t;
    if (req->if_match.n > 0) {
        if (!etag_list_has(req->if_match, e->etag, false))
            return 412;
    } else if (date_header(req->if_unmodified_since, &t) && e->mtime.tv_sec > t) {
        return 412;
    }
    if (req->if_none_match.n > 0) {
        if (etag_list_has(req->if_none_match, e->etag, true))
            return 304;
    } else if (date_header(req->if_modified_since, &t) && e->mtime.tv_sec <= t) {
        return 304;
    }
    return 0;
}

/* Status line, Server, Date. Without printf: it would be the only one on
 * the path of every response (about 1.5% of the CPU on 1 KiB keep-alive). */
static void put_head_start(struct head *h, int status)
{
    assert(status >= 100 && status <= 999);
    char line[] = "HTTP/1.1 000 ";
    line[9] = (char)('0' + status / 100);
    line[10] = (char)('0' + status / 10 % 10);
    line[11] = (char)('0' + status % 10);
    put_str(h, line, sizeof(line) - 1);
    put_cstr(h, sl_http_reason(status));
    PUT_LIT(h, "\r\nServer: sluice\r\nDate: ");
    put_str(h, sl_http_date_now(), SL_HTTP_DATE_LEN);
    PUT_LIT(h, "\r\n");
}

static void put_connection(struct head *h, bool keepalive)
{
    if (keepalive)
        PUT_LIT(h, "Connection: keep-alive\r\n\r\n");
    else
        PUT_LIT(h, "Connection: close\r\n\r\n");
}

static void put_validators(struct head *h, const struct sl_cache_entry *e)
{
    PUT_LIT(h, "Last-Modified: ");
    put_cstr(h, e->last_modified);
    PUT_LIT(h, "\r\nETag: ");
    put_cstr(h, e->etag);
    PUT_LIT(h, "\r\n");
}

/* Parses a Range header against a file of SIZE bytes (RFC 9110 14.1.2).
 * Returns the number of satisfiable ranges (in START/END, END exclusive), 0
 * if none is satisfiable (416), or -1 to ignore the header and send the whole
 * file (bad syntax, another unit, too many or overlapping ranges, a suffix
 * range of an empty file). */
static int parse_ranges(struct sl_str v, off_t size, off_t *start, off_t *end)
{
    const char *p = v.p, *e = v.p + v.n;
    if (v.n < 6 || strncasecmp(p, "bytes=", 6) != 0)
        return -1;
    p += 6;
    int n = 0, seen = 0;
    while (p < e) {
        while (p < e && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p >= e)
            break;
        long long a = -1, b = -1;
        if (*p >= '0' && *p <= '9') {
            a = 0;
            while (p < e && *p >= '0' && *p <= '9') {
                if (a > (LLONG_MAX - 9) / 10)
                    return -1;
                a = a * 10 + (*p++ - '0');
            }
        }
        if (p >= e || *p != '-')
            return -1;
        p++;
        if (p < e && *p >= '0' && *p <= '9') {
            b = 0;
            while (p < e && *p >= '0' && *p <= '9') {
                if (b > (LLONG_MAX - 9) / 10)
                    return -1;
                b = b * 10 + (*p++ - '0');
            }
        }
        while (p < e && (*p == ' ' || *p == '\t'))
            p++;
        if (p < e && *p != ',')
            return -1;
        if (a < 0 && b < 0)
            return -1;
        if (a >= 0 && b >= 0 && b < a)
            return -1; /* invalid range-spec: the whole header is ignored */
        if (++seen > SL_MAX_RANGES)
            return -1;
        off_t s0, e0;
        if (a < 0) { /* suffix: the last B bytes */
            if (b == 0)
                continue;
            if (size == 0)
                return -1; /* satisfiable (RFC 9110 14.1.2), but no
                              Content-Range can name zero bytes: 200 */
            s0 = b >= size ? 0 : size - b;
            e0 = size;
        } else {
            if (a >= size)
                continue; /* unsatisfiable; others may still be fine */
            s0 = a;
            e0 = (b < 0 || b >= size) ? size : b + 1;
        }
        for (int i = 0; i < n; i++)
            if (s0 < end[i] && start[i] < e0)
                return -1; /* overlapping ranges: a cheap way to amplify load */
        start[n] = s0;
        end[n] = e0;
        n++;
    }
    return seen == 0 ? -1 : n;
}

/* Does If-Range allow using the Range header (RFC 9110 13.1.5)? */
static bool if_range_ok(const struct sl_request *req, const struct sl_cache_entry *e)
{
    if (req->if_range.n == 0)
        return true;
    if (req->if_range.p[0] == '"')
        return req->if_range.n == strlen(e->etag) &&
               memcmp(req->if_range.p, e->etag, req->if_range.n) == 0;
    time_t t;
    return date_header(req->if_range, &t) && t == e->mtime.tv_sec;
}

/* One response being built: what it depends on, where its head goes, what
 * it is. */
struct build {
    const struct sl_response_env *env;
    const struct sl_request *req;
    struct head h;
    struct sl_response *out;
};

static void release(struct build *b, struct sl_cache_entry *e)
{
    sl_cache_release(b->env->cache, e);
}

/* The representation of a file that answers a request: the file itself, or
 * with [http] precompressed on a sibling FILE.br / FILE.gz the client
 * accepts. Validators, length and ranges are the selected bytes' own; the
 * Content-Type is the plain file's. */
struct rep {
    struct sl_cache_entry *e; /* the bytes sent, referenced */
    const char *type;         /* Content-Type */
    const char *coding;       /* Content-Encoding, or NULL for the file itself */
    bool vary;                /* the choice depends on Accept-Encoding */
};

/* Content-Encoding and Vary lines for R. */
static void put_rep_lines(struct head *h, const struct rep *r)
{
    if (r->coding != NULL) {
        PUT_LIT(h, "Content-Encoding: ");
        put_cstr(h, r->coding);
        PUT_LIT(h, "\r\n");
    }
    if (r->vary)
        PUT_LIT(h, "Vary: Accept-Encoding\r\n");
}

/* The multipart/byteranges body for N ranges of R (RFC 9110 14.6): the part
 * headers and the closing boundary as texts between the file ranges. Sets
 * *TOTAL to the body's length. */
static struct sl_parts *make_parts(const struct rep *r, const char *boundary, int n,
                                   const off_t *start, const off_t *end, uint64_t *total)
{
    size_t tlen = strlen(r->type);
    size_t per = 2 + 2 + strlen(boundary) + 2 + 14 + tlen + 2 + 80 + 4;
    struct sl_parts *p = sl_calloc(1, sizeof(*p) + per * (size_t)(n + 1));
    p->n = n;
    p->in_text = true;
    char *w = p->buf;
    *total = 0;
    for (int i = 0; i <= n; i++) {
        int k;
        if (i < n)
            k = snprintf(w, per,
                         "%s--%s\r\nContent-Type: %s\r\nContent-Range: bytes "
                         "%lld-%lld/%lld\r\n\r\n",
                         i ? "\r\n" : "", boundary, r->type, (long long)start[i],
                         (long long)end[i] - 1, (long long)r->e->size);
        else
            k = snprintf(w, per, "\r\n--%s--\r\n", boundary);
        p->text[i] = w;
        p->text_len[i] = (uint16_t)k;
        w += k;
        *total += (uint64_t)k;
        if (i < n) {
            p->start[i] = start[i];
            p->end[i] = end[i];
            *total += (uint64_t)(end[i] - start[i]);
        }
    }
    return p;
}

/* 206 with one range, or multipart/byteranges with several. */
static void put_partial(struct build *b, const struct rep *r, int n, const off_t *start,
                        const off_t *end)
{
    struct sl_cache_entry *e = r->e;
    struct sl_response *out = b->out;
    struct head *h = &b->h;
    char line[160];
    put_head_start(h, 206);
    PUT_LIT(h, "Accept-Ranges: bytes\r\n");
    put_validators(h, e);
    put_rep_lines(h, r);
    out->status = 206;
    out->entry = e;
    if (n == 1) {
        int k = snprintf(line, sizeof(line),
                         "Content-Range: bytes %lld-%lld/%lld\r\nContent-Length: %lld\r\n",
                         (long long)start[0], (long long)end[0] - 1, (long long)e->size,
                         (long long)(end[0] - start[0]));
        put_str(h, line, (size_t)k);
        PUT_LIT(h, "Content-Type: ");
        put_cstr(h, r->type);
        PUT_LIT(h, "\r\n");
        out->body_start = start[0];
        out->body_end = end[0];
    } else {
        /* The boundary need only be absent from the parts' headers and
           unlikely in the data; the environment's per-response value makes
           it unique. */
        char boundary[40];
        snprintf(boundary, sizeof(boundary), "sluice%016llx",
                 (unsigned long long)b->env->unique);
        uint64_t total;
        out->parts = make_parts(r, boundary, n, start, end, &total);
        int k = snprintf(line, sizeof(line),
                         "Content-Type: multipart/byteranges; boundary=%s\r\n"
                         "Content-Length: %llu\r\n",
                         boundary, (unsigned long long)total);
        put_str(h, line, (size_t)k);
    }
    put_connection(h, out->keepalive);
    if (b->req->method == SL_METHOD_HEAD) {
        free(out->parts);
        out->parts = NULL;
        release(b, e);
        out->entry = NULL;
        out->body_start = out->body_end = 0;
    }
}

/* Does Accept-Encoding V accept CODING (listed, and not with q=0)? */
static bool accepts(struct sl_str v, const char *coding)
{
    size_t cl = strlen(coding);
    const char *p = v.p, *end = v.p + v.n;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        while (p < e && (*p == ' ' || *p == '\t'))
            p++;
        const char *semi = p < e ? memchr(p, ';', (size_t)(e - p)) : NULL;
        const char *te = semi ? semi : e;
        while (te > p && (te[-1] == ' ' || te[-1] == '\t'))
            te--;
        if ((size_t)(te - p) == cl && strncasecmp(p, coding, cl) == 0) {
            if (semi == NULL)
                return true;
            const char *q = semi + 1;
            while (q < e && (*q == ' ' || *q == '\t'))
                q++;
            /* q=0, q=0.0, q=0.000: refused */
            if (e - q >= 3 && (q[0] == 'q' || q[0] == 'Q') && q[1] == '=' && q[2] == '0') {
                const char *r = q + 3;
                if (r < e && *r == '.')
                    r++;
                while (r < e && *r == '0')
                    r++;
                while (r < e && (*r == ' ' || *r == '\t'))
                    r++;
                return r != e;
            }
            return true;
        }
        p = e + 1;
    }
    return false;
}

/* Chooses the representation of the file E (at PATH) for the request, before
 * any precondition is looked at: validators belong to what is sent (RFC 9110
 * 13.1: preconditions apply to the selected representation). With [http]
 * precompressed on, the first sibling PATH.br, PATH.gz that the client
 * accepts and that is a regular file replaces E, which is released then.
 * R->e is the chosen entry, referenced; R->type stays valid while it is (the
 * MIME table outlives every entry). Cannot fail. */
static void select_rep(struct build *b, struct sl_cache_entry *e, const char *path,
                       struct rep *r)
{
    static const char *const codings[][2] = {{"br", ".br"}, {"gzip", ".gz"}};
    const struct sl_request *req = b->req;
    *r = (struct rep){.e = e, .type = e->content_type, .coding = NULL,
                      .vary = b->env->precompressed};
    if (!r->vary || req->accept_encoding.n == 0)
        return;
    char alt[4096 + 8];
    for (size_t i = 0; i < SL_ARRAY_LEN(codings); i++) {
        if (!accepts(req->accept_encoding, codings[i][0]))
            continue;
        snprintf(alt, sizeof(alt), "%s%s", path, codings[i][1]);
        struct sl_cache_entry *z = sl_cache_get_after(b->env->cache, alt, b->env->read_ns);
        if (z->err != 0 || z->is_dir) {
            release(b, z);
            continue;
        }
        release(b, e);
        r->e = z;
        r->coding = codings[i][0];
        return;
    }
}

/* The answer for the regular file E at PATH (E referenced; kept by the
 * response or released here). */
static void put_file(struct build *b, struct sl_cache_entry *e, const char *path)
{
    const struct sl_request *req = b->req;
    struct sl_response *out = b->out;
    struct head *h = &b->h;
    bool head_only = req->method == SL_METHOD_HEAD;
    struct rep r;
    select_rep(b, e, path, &r);
    e = r.e;
    const char *vary = r.vary ? "Vary: Accept-Encoding\r\n" : NULL;
    int pre = preconditions(req, e);
    if (pre == 304) {
        /* RFC 9110 15.4.5: the ETag and Vary a 200 would have had. */
        put_head_start(h, 304);
        put_validators(h, e);
        if (vary)
            put_cstr(h, vary);
        put_connection(h, out->keepalive);
        release(b, e);
        out->status = 304;
        return;
    }
    if (pre == 412) {
        release(b, e);
        put_error(h, out, 412, head_only, vary);
        return;
    }
    if (req->range.n > 0 && req->method == SL_METHOD_GET && if_range_ok(req, e)) {
        off_t start[SL_MAX_RANGES], end[SL_MAX_RANGES];
        int n = parse_ranges(req->range, e->size, start, end);
        if (n == 0) {
            char extra[128];
            snprintf(extra, sizeof(extra), "Content-Range: bytes */%lld\r\n%s",
                     (long long)e->size, vary ? vary : "");
            release(b, e);
            put_error(h, out, 416, false, extra);
            return;
        }
        if (n > 0) {
            put_partial(b, &r, n, start, end);
            return;
        }
    }
    put_head_start(h, 200);
    if (r.coding == NULL) {
        put_str(h, e->hdr, e->hdr_len);
    } else {
        char line[64];
        PUT_LIT(h, "Content-Type: ");
        put_cstr(h, r.type);
        int k = snprintf(line, sizeof(line), "\r\nContent-Length: %lld\r\n",
                         (long long)e->size);
        put_str(h, line, (size_t)k);
        put_validators(h, e);
    }
    PUT_LIT(h, "Accept-Ranges: bytes\r\n");
    put_rep_lines(h, &r);
    put_connection(h, out->keepalive);
    out->status = 200;
    if (head_only || e->size == 0) {
        release(b, e);
    } else {
        out->entry = e; /* the caller releases it when the body is sent */
        out->body_end = e->size;
    }
}

/* Percent-encodes PATH for a Location header: everything but unreserved
 * characters, '/' and a few safe sub-delims. Returns the length, or 0 if OUT
 * (CAP bytes) is too small. */
static size_t url_encode(const char *path, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || strchr("-._~/!$&'()*+,;=:@", *p) != NULL;
        if (o + 4 > cap)
            return 0;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return o;
}

static int status_for_errno(int err, const char *path)
{
    switch (err) {
    case ENOENT:
    case ENOTDIR:
    case EXDEV: /* a symlink leading out of the root: do not reveal it */
    case ELOOP:
    case ENAMETOOLONG:
        return 404;
    case EACCES:
    case EPERM:
    case ENXIO: /* a UNIX socket or a device without its driver */
    case ENODEV:
        return 403;
    case EMFILE:
    case ENFILE:
    case ENOMEM:
        return 503; /* out of descriptors or memory: temporary */
    default:
        sl_log(SL_LOG_ERROR, "open \"%s\": %s", path, strerror(err));
        return 500;
    }
}

/* Looks the request's path up and answers with the file, a redirect to the
 * directory's slash form, or the error its lookup failed with. */
static void put_path(struct build *b)
{
    const struct sl_request *req = b->req;
    const struct sl_response_env *env = b->env;
    struct sl_response *out = b->out;
    struct head *h = &b->h;
    bool head_only = req->method == SL_METHOD_HEAD;
    if (req->target.n == 1 && req->target.p[0] == '*') { /* only OPTIONS may use it */
        out->keepalive = false;
        put_error(h, out, 400, head_only, NULL);
        return;
    }
    char path[4096];
    bool slash = false;
    int status = 400;
    if (sl_http_normalize_path(req->target.p, req->target.n, path, sizeof(path) - 256, &slash,
                               &status) != SL_OK) {
        if (status == 400)
            out->keepalive = false;
        put_error(h, out, status, head_only, NULL);
        return;
    }
    size_t plen = strlen(path);
    if (slash)
        snprintf(path + plen, sizeof(path) - plen, "%s", env->index);
    struct sl_cache_entry *e = sl_cache_get_after(env->cache, path, env->read_ns);
    if (e->err == 0 && !e->is_dir) {
        put_file(b, e, path);
        return;
    }
    int err = e->err;
    bool is_dir = e->is_dir;
    release(b, e);
    if (is_dir && !slash) {
        /* "/dir" -> "/dir/": relative links inside the index then resolve. */
        char enc[1024], extra[1200];
        const char *q = memchr(req->target.p, '?', req->target.n);
        int qlen = q ? (int)(req->target.p + req->target.n - q) : 0;
        size_t elen = url_encode(path, enc, sizeof(enc));
        int n = snprintf(extra, sizeof(extra), "Location: /%s/%.*s\r\n", enc, qlen,
                         q ? q : "");
        if (elen > 0 && n > 0 && (size_t)n < sizeof(extra) &&
            (size_t)n < h->cap / 2) {
            put_error(h, out, 301, head_only, extra);
            return;
        }
        put_error(h, out, 414, head_only, NULL);
        return;
    }
    if (is_dir) /* index path is itself a directory */
        err = EACCES;
    if (slash && err == ENOENT) {
        /* No index file: 403 if the directory exists (no listings), else 404. */
        path[plen] = '\0';
        struct sl_cache_entry *d = sl_cache_get_after(env->cache, path, env->read_ns);
        if (d->err == 0 && d->is_dir)
            err = EACCES;
        release(b, d);
    }
    int st = status_for_errno(err, path);
    put_error(h, out, st, head_only, st == 503 ? "Retry-After: 1\r\n" : NULL);
}

void sl_response_build(const struct sl_response_env *env, const struct sl_request *req,
                       char *head, size_t cap, struct sl_response *out)
{
    assert(cap >= SL_RESPONSE_HEAD_MIN);
    struct build b = {.env = env, .req = req, .h = {head, cap, 0}, .out = out};
    *out = (struct sl_response){.keepalive = env->keepalive && req->keepalive};
    bool head_only = req->method == SL_METHOD_HEAD;

    /* Framing first: a body we cannot delimit makes the connection unusable. */
    if (req->has_transfer_encoding) {
        closing_error(501, head_only, NULL, head, cap, out);
        return;
    }
    if (req->content_length > 0) {
        if (req->content_length > env->max_body_discard) {
            closing_error(413, head_only, NULL, head, cap, out);
            return;
        }
        out->discard = (uint64_t)req->content_length;
        if (req->expect_continue) /* we answer without reading; do not guess */
            out->keepalive = false;
    }

    switch (req->method) {
    case SL_METHOD_GET:
    case SL_METHOD_HEAD:
        put_path(&b);
        break;
    case SL_METHOD_OPTIONS:
        /* "OPTIONS *" asks about the server, any other target about a
           resource; both get the same answer from a static server. */
        put_head_start(&b.h, 204);
        PUT_LIT(&b.h, ALLOW);
        put_connection(&b.h, out->keepalive);
        out->status = 204;
        break;
    case SL_METHOD_OTHER:
        put_error(&b.h, out, 501, false, NULL);
        break;
    default:
        put_error(&b.h, out, 405, false, ALLOW);
        break;
    }
    finish(env->cache, req, &b.h, out);
}
