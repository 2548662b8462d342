/* response.c: request -> response decision; see response.h. errno chooses the
 * status (ENOENT -> 404, EACCES -> 403, others -> 500 logged loudly). */
#include "core/response.h"
#include "core/log.h"
#include "core/server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
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
    c->keepalive = false;
    c->linger = true;
    c->discard = 0;
    put_error(c, status, false, NULL);
}

/* Does the If-None-Match list LIST match ETAG (weak comparison, RFC 9110
 * 8.8.3.2)? */
static bool etag_list_matches(struct sl_str list, const char *etag)
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
        if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
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
        if ((size_t)(q - p) == elen && memcmp(p, etag, elen) == 0)
            return true;
        p = q;
    }
    return false;
}

static bool not_modified(const struct sl_request *req, const struct sl_cache_entry *e)
{
    if (req->if_none_match.n > 0)
        return etag_list_matches(req->if_none_match, e->etag);
    if (req->if_modified_since.n > 0) {
        time_t since;
        if (sl_http_parse_date(req->if_modified_since.p, req->if_modified_since.n, &since) ==
            SL_OK)
            return e->mtime.tv_sec <= since;
    }
    return false;
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

static void put_file(struct sl_conn *c, const struct sl_request *req, struct sl_cache_entry *e)
{
    char *h = c->hdr;
    if (not_modified(req, e)) {
        size_t off = put_head_start(h, 304);
        off = PUT_LIT(h, off, "ETag: ");
        off = put_str(h, off, e->etag, strlen(e->etag));
        off = PUT_LIT(h, off, "\r\nLast-Modified: ");
        off = put_str(h, off, e->last_modified, strlen(e->last_modified));
        off = PUT_LIT(h, off, "\r\n");
        off = put_connection(h, off, c->keepalive);
        sl_cache_release(sl_srv.cache, e);
        c->entry = NULL;
        c->hdr_len = (uint32_t)off;
        c->body_off = c->body_end = 0;
        c->status = 304;
        return;
    }
    size_t off = put_head_start(h, 200);
    off = put_str(h, off, e->hdr, e->hdr_len);
    off = put_connection(h, off, c->keepalive);
    if (off > SL_CONN_HDR_CAP) { /* an absurd Content-Type could do this */
        sl_cache_release(sl_srv.cache, e);
        sl_log(SL_LOG_ERROR, "response head too large for %.*s", (int)req->target.n,
               req->target.p);
        put_error(c, 500, req->method == SL_METHOD_HEAD, NULL);
        return;
    }
    c->hdr_len = (uint32_t)off;
    c->status = 200;
    c->body_off = 0;
    if (req->method == SL_METHOD_HEAD || e->size == 0) {
        c->body_end = 0;
        sl_cache_release(sl_srv.cache, e);
        c->entry = NULL;
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
        return 403;
    default:
        sl_log(SL_LOG_ERROR, "open \"%s\": %s", path, strerror(err));
        return 500;
    }
}

void sl_response_prepare(struct sl_conn *c, const struct sl_request *req)
{
    bool head_only = req->method == SL_METHOD_HEAD;
    long maxreq = __atomic_load_n(&sl_srv.max_requests_per_connection, __ATOMIC_RELAXED);
    c->requests++;
    c->keepalive = req->keepalive && !__atomic_load_n(&sl_srv.stopping, __ATOMIC_RELAXED) &&
                   (maxreq == 0 || c->requests < (uint64_t)maxreq);
    c->linger = false;
    c->discard = 0;
    c->entry = NULL;
    c->hdr_off = 0;
    c->body_start = 0;

    /* Framing first: a body we cannot delimit makes the connection unusable. */
    if (req->has_transfer_encoding) {
        sl_response_error(c, 501);
        return;
    }
    if (req->content_length > 0) {
        if (req->content_length >
            __atomic_load_n(&sl_srv.max_body_discard, __ATOMIC_RELAXED)) {
            sl_response_error(c, 413);
            return;
        }
        c->discard = (uint64_t)req->content_length;
        if (req->expect_continue) /* we answer without reading; do not guess */
            c->keepalive = false, c->linger = true;
    }

    switch (req->method) {
    case SL_METHOD_GET:
    case SL_METHOD_HEAD:
        break;
    case SL_METHOD_OPTIONS: {
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
        rcu_read_lock(); /* the config may be swapped by a reload */
        snprintf(path + plen, sizeof(path) - plen, "%s", rcu_dereference(sl_srv.cfg)->index);
        rcu_read_unlock();
    }
    struct sl_cache_entry *e = sl_cache_get(sl_srv.cache, path);
    if (e->err == 0 && !e->is_dir) {
        put_file(c, req, e);
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
    put_error(c, status_for_errno(err, path), head_only, NULL);
}
