/* fuzz_http_parse.c: libFuzzer harness for sl_http_parse_request. The input is
 * one buffer as a reader would hold it; it is parsed under small limits (so
 * the 414/431 paths are reached) and under roomy ones, and the results are
 * checked against the contract in core/http.h. Any violation aborts. */
#include "core/http.h"
#include "tests/fuzz/check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct sl_http_limits small = {
    .max_request_line = 64, .max_header_size = 256, .max_headers = 8};
static const struct sl_http_limits roomy = {
    .max_request_line = 8192, .max_header_size = 16384, .max_headers = SL_HTTP_MAX_HEADERS};

static bool inside(struct sl_str s, const char *buf, size_t len)
{
    if (s.n == 0)
        return s.p == NULL || (s.p >= buf && s.p <= buf + len);
    return s.p >= buf && s.p <= buf + len && s.n <= (size_t)(buf + len - s.p);
}

/* A rough, independent view of an accepted Host value: outside one leading
 * bracketed literal, at most one ':' and only digits after it. */
static bool host_shape_ok(struct sl_str h)
{
    size_t i = 0;
    if (h.n > 0 && h.p[0] == '[') {
        while (i < h.n && h.p[i] != ']')
            i++;
        if (i == h.n)
            return false; /* the bracket never closes */
        i++;
        if (i < h.n && h.p[i] != ':')
            return false;
    }
    const char *colon = memchr(h.p + i, ':', h.n - i);
    if (colon == NULL)
        return true;
    for (const char *q = colon + 1; q < h.p + h.n; q++)
        if (*q < '0' || *q > '9')
            return false;
    return true;
}

/* Parses BUF[0..LEN) under LIM and checks every promise of the contract.
 * Returns the parser's result, and the status in *STATUS. */
static int parse_checked(const char *buf, size_t len, const struct sl_http_limits *lim,
                         struct sl_request *req, int *statusp)
{
    int status = -1;
    int rc = sl_http_parse_request(buf, len, lim, req, &status);
    *statusp = status;
    if (rc == SL_AGAIN) {
        /* past the header limit the answer is 431 (or 414), never "wait" */
        CHECK(len <= lim->max_header_size);
        CHECK(status == -1); /* *STATUS is written only on SL_ERR */
        return rc;
    }
    if (rc == SL_ERR) {
        CHECK(status == 400 || status == 414 || status == 431 || status == 505);
        return rc;
    }
    CHECK(rc > 0);
    CHECK(status == -1);
    CHECK((size_t)rc <= len);
    CHECK((size_t)rc <= lim->max_header_size);
    CHECK(buf[rc - 1] == '\n');
    CHECK(req->nheaders <= lim->max_headers && req->nheaders <= SL_HTTP_MAX_HEADERS);
    CHECK(req->version == 10 || req->version == 11);
    CHECK(req->method >= SL_METHOD_GET && req->method <= SL_METHOD_OTHER);
    CHECK(req->method_name.n > 0 && inside(req->method_name, buf, (size_t)rc));
    CHECK(req->target.n > 0 && inside(req->target, buf, (size_t)rc));
    CHECK(req->target.n <= lim->max_request_line);
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct sl_http_header *h = &req->headers[i];
        CHECK(h->name.n > 0 && inside(h->name, buf, (size_t)rc));
        CHECK(inside(h->value, buf, (size_t)rc));
        CHECK(h->name.p + h->name.n < buf + rc && h->name.p[h->name.n] == ':');
        for (size_t k = 0; k < h->value.n; k++) {
            unsigned char c = (unsigned char)h->value.p[k];
            CHECK((c >= 0x20 && c != 0x7f) || c == '\t');
        }
        if (h->value.n > 0) {
            CHECK(h->value.p[0] != ' ' && h->value.p[0] != '\t');
            CHECK(h->value.p[h->value.n - 1] != ' ' && h->value.p[h->value.n - 1] != '\t');
        }
    }
    CHECK(inside(req->host, buf, (size_t)rc));
    CHECK(req->host.n == 0 || host_shape_ok(req->host));
    CHECK(req->version == 10 || req->has_host);
    CHECK(req->content_length >= -1);
    CHECK(!(req->has_transfer_encoding && req->content_length >= 0));
    struct sl_str opt[] = {req->if_none_match, req->if_modified_since, req->if_match,
                           req->if_unmodified_since, req->range, req->if_range,
                           req->accept_encoding};
    for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++)
        CHECK(inside(opt[i], buf, (size_t)rc));
    return rc;
}

/* A proper prefix BUF[0..K) of a complete head must give SL_AGAIN: the head
 * may arrive split anywhere. */
static void check_prefix(const char *buf, size_t k, const struct sl_http_limits *lim)
{
    char *prefix = malloc(k ? k : 1); /* exact size: ASan sees over-reads */
    if (prefix == NULL)
        return;
    memcpy(prefix, buf, k);
    static struct sl_request req;
    int status = -1;
    int rc = sl_http_parse_request(prefix, k, lim, &req, &status);
    if (rc != SL_AGAIN)
        fprintf(stderr, "prefix %zu: rc %d status %d\n", k, rc, status);
    CHECK(rc == SL_AGAIN);
    free(prefix);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exactly sized heap copy: ASan reports any read past SIZE. */
    char *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    static struct sl_request req, req2;

    int ss, sr;
    int rs = parse_checked(buf, size, &small, &req, &ss);
    int rr = parse_checked(buf, size, &roomy, &req2, &sr);
    /* What stays within the small limits gets the same verdict under roomy
       ones: limits decide only 414/431. */
    if (rs > 0) {
        CHECK(rr == rs);
        CHECK(req2.nheaders == req.nheaders && req2.keepalive == req.keepalive &&
              req2.content_length == req.content_length && req2.method == req.method);
    } else if (rs == SL_AGAIN) {
        CHECK(rr == SL_AGAIN);
    } else if (ss == 400 || ss == 505) {
        CHECK(rr == SL_ERR && sr == ss);
    }
    if (rr > 0) {
        /* The head does not depend on the bytes after it, and no prefix of
           it is complete or wrong. */
        int status;
        CHECK(sl_http_parse_request(buf, (size_t)rr, &roomy, &req, &status) == rr);
        check_prefix(buf, (size_t)rr - 1, &roomy);
        check_prefix(buf, (size_t)rr / 2, &roomy);
        check_prefix(buf, size % (size_t)rr, &roomy);
    }
    if (rs > 0) {
        /* Under the small limits a head may sit exactly at a limit, where a
           split right after a CR or LF is the interesting one. */
        for (size_t k = 0; k < (size_t)rs; k++)
            if (buf[k] == '\r' || buf[k] == '\n')
                check_prefix(buf, k + 1 < (size_t)rs ? k + 1 : k, &small);
    }
    if (rr == SL_ERR) {
        /* Rejected: every prefix waits or gets the same status, so the answer
           does not depend on how the reads split the bytes. */
        int status;
        size_t cuts[] = {size - 1, size / 2, size / 3, (size_t)data[0] % size};
        for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
            char *prefix = malloc(cuts[i] ? cuts[i] : 1);
            if (prefix == NULL)
                break;
            memcpy(prefix, buf, cuts[i]);
            int rc = sl_http_parse_request(prefix, cuts[i], &roomy, &req, &status);
            CHECK(rc == SL_AGAIN || (rc == SL_ERR && status == sr));
            free(prefix);
        }
    }
    free(buf);
    return 0;
}
