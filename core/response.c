/* response.c: request -> response decision; see response.h. errno chooses the
 * status (ENOENT -> 404, EACCES -> 403, others -> 500 logged loudly). */
#include "core/response.h"
#include "lib/log.h"
#include "stages/pipeline.h"

#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <string.h>
#include <strings.h>
#include <urcu.h>

#define ALLOW "Allow: GET, HEAD, OPTIONS\r\n"

static void put_error(struct sl_conn *c, int status, bool head_only, const char *extra)
{
    size_t n = sl_http_error_response(c->hdr, sizeof(c->hdr), status, c->keepalive,
                                      head_only, extra);
    if (n == 0) { /* cannot happen with the fixed texts; never send garbage */
        n = sl_http_error_response(c->hdr, sizeof(c->hdr), 500, false, true, NULL);
        c->keepalive = false;
    }
    c->hdr_len = (uint32_t)n;
    c->hdr_off = 0;
    c->status = status;
    c->entry = NULL;
    c->body_start = c->body_off = c->body_end = 0;
}

void sl_response_error(struct sl_conn *c, int status)
{
    c->body_sent = 0;
    c->keepalive = false;
    c->client_close = false; /* our decision: linger for what the client sends */
    c->discard = 0;
    put_error(c, status, false, NULL);
}

void sl_response_unavailable(struct sl_conn *c, int retry_after, bool head_only)
{
    char extra[48];
    if (retry_after > 0)
        snprintf(extra, sizeof(extra), "Retry-After: %d\r\n", retry_after);
    c->body_sent = 0;
    c->keepalive = false;
    c->client_close = false;
    c->discard = 0;
    put_error(c, 503, head_only, retry_after > 0 ? extra : NULL);
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

static size_t put_str(char *dst, size_t off, const char *s, size_t n)
{
    if (off + n > SL_CONN_HDR_CAP)
        return SL_CONN_HDR_CAP + 1;
    memcpy(dst + off, s, n);
    return off + n;
}

#define PUT_LIT(dst, off, lit) put_str((dst), (off), (lit), sizeof(lit) - 1)

/* Status line, Server, Date. */
static size_t put_head_start(char *h, int status)
{
    char line[64];
    int n = snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", status, sl_http_reason(status));
    size_t off = put_str(h, 0, line, (size_t)n);
    off = PUT_LIT(h, off, "Server: sluice\r\nDate: ");
    off = put_str(h, off, sl_http_date_now(), SL_HTTP_DATE_LEN);
    return PUT_LIT(h, off, "\r\n");
}

static size_t put_connection(char *h, size_t off, bool keepalive)
{
    if (keepalive)
        return PUT_LIT(h, off, "Connection: keep-alive\r\n\r\n");
    return PUT_LIT(h, off, "Connection: close\r\n\r\n");
}

static size_t put_validators(char *h, size_t off, const struct sl_cache_entry *e)
{
    off = PUT_LIT(h, off, "Last-Modified: ");
    off = put_str(h, off, e->last_modified, strlen(e->last_modified));
    off = PUT_LIT(h, off, "\r\nETag: ");
    off = put_str(h, off, e->etag, strlen(e->etag));
    return PUT_LIT(h, off, "\r\n");
}

/* Parses a Range header against a file of SIZE bytes (RFC 9110 14.1.2).
 * Returns the number of satisfiable ranges (in START/END, END exclusive), 0
 * if none is satisfiable (416), or -1 to ignore the header and send the whole
 * file (bad syntax, another unit, too many or overlapping ranges). */
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

static void done_entry(struct sl_conn *c, struct sl_cache_entry *e)
{
    sl_cache_release(sl_srv.cache, e);
    c->entry = NULL;
    c->body_start = c->body_off = c->body_end = 0;
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
static size_t put_rep_lines(char *h, size_t off, const struct rep *r)
{
    if (r->coding != NULL) {
        off = PUT_LIT(h, off, "Content-Encoding: ");
        off = put_str(h, off, r->coding, strlen(r->coding));
        off = PUT_LIT(h, off, "\r\n");
    }
    if (r->vary)
        off = PUT_LIT(h, off, "Vary: Accept-Encoding\r\n");
    return off;
}

/* 206 with one range, or multipart/byteranges with several. */
static void put_partial(struct sl_conn *c, const struct sl_request *req, const struct rep *r,
                        int n, const off_t *start, const off_t *end)
{
    struct sl_cache_entry *e = r->e;
    char *h = c->hdr;
    char line[160];
    size_t off = put_head_start(h, 206);
    off = PUT_LIT(h, off, "Accept-Ranges: bytes\r\n");
    off = put_validators(h, off, e);
    off = put_rep_lines(h, off, r);
    if (n == 1) {
        int k = snprintf(line, sizeof(line),
                         "Content-Range: bytes %lld-%lld/%lld\r\nContent-Length: %lld\r\n",
                         (long long)start[0], (long long)end[0] - 1, (long long)e->size,
                         (long long)(end[0] - start[0]));
        off = put_str(h, off, line, (size_t)k);
        off = PUT_LIT(h, off, "Content-Type: ");
        off = put_str(h, off, r->type, strlen(r->type));
        off = PUT_LIT(h, off, "\r\n");
        c->body_start = c->body_off = start[0];
        c->body_end = end[0];
    } else {
        /* The boundary need only be absent from the parts' headers and
           unlikely in the data; a per-connection counter makes it unique. */
        char boundary[40];
        snprintf(boundary, sizeof(boundary), "sluice%016llx",
                 (unsigned long long)(sl_now_ns() ^ ((uint64_t)c->fd << 40)));
        size_t tlen = strlen(r->type);
        size_t per = 2 + 2 + strlen(boundary) + 2 + 14 + tlen + 2 + 80 + 4;
        struct sl_parts *p = sl_calloc(1, sizeof(*p) + per * (size_t)(n + 1));
        p->n = n;
        p->in_text = true;
        char *w = p->buf;
        uint64_t total = 0;
        for (int i = 0; i <= n; i++) {
            int k;
            if (i < n)
                k = snprintf(w, per,
                             "%s--%s\r\nContent-Type: %s\r\nContent-Range: bytes "
                             "%lld-%lld/%lld\r\n\r\n",
                             i ? "\r\n" : "", boundary, r->type,
                             (long long)start[i], (long long)end[i] - 1, (long long)e->size);
            else
                k = snprintf(w, per, "\r\n--%s--\r\n", boundary);
            p->text[i] = w;
            p->text_len[i] = (uint16_t)k;
            w += k;
            total += (uint64_t)k;
            if (i < n) {
                p->start[i] = start[i];
                p->end[i] = end[i];
                total += (uint64_t)(end[i] - start[i]);
            }
        }
        int k = snprintf(line, sizeof(line),
                         "Content-Type: multipart/byteranges; boundary=%s\r\n"
                         "Content-Length: %llu\r\n",
                         boundary, (unsigned long long)total);
        off = put_str(h, off, line, (size_t)k);
        c->parts = p;
        c->body_start = c->body_off = c->body_end = 0;
    }
    off = put_connection(h, off, c->keepalive);
    c->hdr_len = (uint32_t)SL_MIN(off, SL_CONN_HDR_CAP);
    c->status = 206;
    c->entry = e;
    if (req->method == SL_METHOD_HEAD) {
        free(c->parts);
        c->parts = NULL;
        done_entry(c, e);
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

/* Chooses the representation of the file E (at PATH) for REQ, before any
 * precondition is looked at: validators belong to what is sent (RFC 9110
 * 13.1: preconditions apply to the selected representation). With [http]
 * precompressed on, the first sibling PATH.br, PATH.gz that the client
 * accepts and that is a regular file replaces E, which is released then.
 * R->e is the chosen entry, referenced; R->type stays valid while it is (the
 * MIME table outlives every entry). Cannot fail. */
static void select_rep(const struct sl_request *req, struct sl_cache_entry *e,
                       const char *path, struct rep *r)
{
    static const char *const codings[][2] = {{"br", ".br"}, {"gzip", ".gz"}};
    *r = (struct rep){.e = e, .type = e->content_type, .coding = NULL,
                      .vary = sl_set.precompressed};
    if (!r->vary || req->accept_encoding.n == 0)
        return;
    char alt[4096 + 8];
    for (size_t i = 0; i < SL_ARRAY_LEN(codings); i++) {
        if (!accepts(req->accept_encoding, codings[i][0]))
            continue;
        snprintf(alt, sizeof(alt), "%s%s", path, codings[i][1]);
        struct sl_cache_entry *z = sl_cache_get(sl_srv.cache, alt);
        if (z->err != 0 || z->is_dir) {
            sl_cache_release(sl_srv.cache, z);
            continue;
        }
        sl_cache_release(sl_srv.cache, e);
        r->e = z;
        r->coding = codings[i][0];
        return;
    }
}

static void put_file(struct sl_conn *c, const struct sl_request *req, struct sl_cache_entry *e,
                     const char *path)
{
    struct rep r;
    select_rep(req, e, path, &r);
    e = r.e;
    char *h = c->hdr;
    const char *vary = r.vary ? "Vary: Accept-Encoding\r\n" : NULL;
    int pre = preconditions(req, e);
    if (pre == 304) {
        /* RFC 9110 15.4.5: the ETag and Vary a 200 would have had. */
        size_t off = put_head_start(h, 304);
        off = put_validators(h, off, e);
        if (vary)
            off = PUT_LIT(h, off, "Vary: Accept-Encoding\r\n");
        off = put_connection(h, off, c->keepalive);
        done_entry(c, e);
        c->hdr_len = (uint32_t)off;
        c->status = 304;
        return;
    }
    if (pre == 412) {
        done_entry(c, e);
        put_error(c, 412, req->method == SL_METHOD_HEAD, vary);
        return;
    }
    if (req->range.n > 0 && req->method == SL_METHOD_GET && if_range_ok(req, e)) {
        off_t start[SL_MAX_RANGES], end[SL_MAX_RANGES];
        int n = parse_ranges(req->range, e->size, start, end);
        if (n == 0) {
            char extra[128];
            snprintf(extra, sizeof(extra), "Content-Range: bytes */%lld\r\n%s",
                     (long long)e->size, vary ? vary : "");
            done_entry(c, e);
            put_error(c, 416, false, extra);
            return;
        }
        if (n > 0) {
            put_partial(c, req, &r, n, start, end);
            return;
        }
    }
    size_t off = put_head_start(h, 200);
    if (r.coding == NULL) {
        off = put_str(h, off, e->hdr, e->hdr_len);
    } else {
        char line[64];
        off = PUT_LIT(h, off, "Content-Type: ");
        off = put_str(h, off, r.type, strlen(r.type));
        int k = snprintf(line, sizeof(line), "\r\nContent-Length: %lld\r\n",
                         (long long)e->size);
        off = put_str(h, off, line, (size_t)k);
        off = put_validators(h, off, e);
    }
    off = PUT_LIT(h, off, "Accept-Ranges: bytes\r\n");
    off = put_rep_lines(h, off, &r);
    off = put_connection(h, off, c->keepalive);
    if (off > SL_CONN_HDR_CAP) { /* an absurd Content-Type could do this */
        sl_log(SL_LOG_ERROR, "response head too large for %.*s", (int)req->target.n,
               req->target.p);
        done_entry(c, e);
        put_error(c, 500, req->method == SL_METHOD_HEAD, NULL);
        return;
    }
    c->hdr_len = (uint32_t)off;
    c->status = 200;
    c->body_start = c->body_off = 0;
    if (req->method == SL_METHOD_HEAD || e->size == 0) {
        done_entry(c, e);
    } else {
        c->body_end = e->size;
        c->entry = e; /* the writer releases it when the body is sent */
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

void sl_response_prepare(struct sl_conn *c, const struct sl_request *req)
{
    bool head_only = req->method == SL_METHOD_HEAD;
    long maxreq = sl_set.max_requests_per_connection;
    c->requests++;
    c->keepalive = req->keepalive && !__atomic_load_n(&sl_srv.stopping, __ATOMIC_RELAXED) &&
                   (maxreq == 0 || c->requests < (uint64_t)maxreq);
    c->client_close = !req->keepalive;
    c->discard = 0;
    c->entry = NULL;
    c->hdr_off = 0;
    c->body_start = 0;
    c->body_sent = 0;
    c->parts = NULL;

    /* Framing first: a body we cannot delimit makes the connection unusable. */
    if (req->has_transfer_encoding) {
        sl_response_error(c, 501);
        return;
    }
    if (req->content_length > 0) {
        if (req->content_length >
            sl_set.max_body_discard) {
            sl_response_error(c, 413);
            return;
        }
        c->discard = (uint64_t)req->content_length;
        if (req->expect_continue) /* we answer without reading; do not guess */
            c->keepalive = false;
    }

    switch (req->method) {
    case SL_METHOD_GET:
    case SL_METHOD_HEAD:
        break;
    case SL_METHOD_OPTIONS: {
        /* "OPTIONS *" asks about the server, any other target about a
           resource; both get the same answer from a static server. */
        size_t off = put_head_start(c->hdr, 204);
        off = PUT_LIT(c->hdr, off, ALLOW);
        off = put_connection(c->hdr, off, c->keepalive);
        c->hdr_len = (uint32_t)off;
        c->status = 204;
        c->body_off = c->body_end = 0;
        return;
    }
    case SL_METHOD_OTHER:
        put_error(c, 501, false, NULL);
        return;
    default:
        put_error(c, 405, false, ALLOW);
        return;
    }

    if (req->target.n == 1 && req->target.p[0] == '*') { /* only OPTIONS may use it */
        c->keepalive = false;
        put_error(c, 400, head_only, NULL);
        return;
    }
    char path[4096];
    bool slash = false;
    int status = 400;
    if (sl_http_normalize_path(req->target.p, req->target.n, path, sizeof(path) - 256, &slash,
                               &status) != SL_OK) {
        if (status == 400)
            c->keepalive = false;
        put_error(c, status, head_only, NULL);
        return;
    }
    size_t plen = strlen(path);
    if (slash) {
        snprintf(path + plen, sizeof(path) - plen, "%s", sl_set.index);
    }
    struct sl_cache_entry *e = sl_cache_get(sl_srv.cache, path);
    if (e->err == 0 && !e->is_dir) {
        put_file(c, req, e, path);
        return;
    }
    int err = e->err;
    bool is_dir = e->is_dir;
    sl_cache_release(sl_srv.cache, e);
    if (is_dir && !slash) {
        /* "/dir" -> "/dir/": relative links inside the index then resolve. */
        char enc[1024], extra[1200];
        const char *q = memchr(req->target.p, '?', req->target.n);
        int qlen = q ? (int)(req->target.p + req->target.n - q) : 0;
        size_t elen = url_encode(path, enc, sizeof(enc));
        int n = snprintf(extra, sizeof(extra), "Location: /%s/%.*s\r\n", enc, qlen,
                         q ? q : "");
        if (elen > 0 && n > 0 && (size_t)n < sizeof(extra) &&
            (size_t)n < SL_CONN_HDR_CAP / 2) {
            put_error(c, 301, head_only, extra);
            return;
        }
        put_error(c, 414, head_only, NULL);
        return;
    }
    if (is_dir) /* index path is itself a directory */
        err = EACCES;
    if (slash && err == ENOENT) {
        /* No index file: 403 if the directory exists (no listings), else 404. */
        path[plen] = '\0';
        struct sl_cache_entry *d = sl_cache_get(sl_srv.cache, path);
        if (d->err == 0 && d->is_dir)
            err = EACCES;
        sl_cache_release(sl_srv.cache, d);
    }
    int st = status_for_errno(err, path);
    put_error(c, st, head_only, st == 503 ? "Retry-After: 1\r\n" : NULL);
}
