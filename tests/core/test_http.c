/* test_http.c: the request parser (valid heads, interpreted headers, pipelining,
 * byte-by-byte feeding, smuggling and syntax errors with their status, the
 * three size limits), request-target normalization, HTTP dates, error
 * responses and reason phrases. Every parse runs on an exactly sized heap copy
 * so that an ASan build catches a read past LEN. */
#include "core/http.h"

#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct sl_http_limits lim = {
    .max_request_line = 256, .max_header_size = 1024, .max_headers = 10};
/* Small limits, for the 414/431 tests. */
static const struct sl_http_limits small = {
    .max_request_line = 32, .max_header_size = 128, .max_headers = 4};

/* Heap copies made by parse_n; REQ points into them until the test ends. */
static char **copies;
static size_t ncopies;

static void free_copies(void)
{
    for (size_t i = 0; i < ncopies; i++)
        free(copies[i]);
    free(copies);
    copies = NULL;
    ncopies = 0;
}

TestSuite(http_parse, .fini = free_copies);

/* Parses BUF[0..LEN) from a private heap copy of exactly LEN bytes. */
static int parse_n(const char *buf, size_t len, const struct sl_http_limits *l,
                   struct sl_request *req, int *status)
{
    char *copy = malloc(len ? len : 1);
    cr_assert_not_null(copy);
    memcpy(copy, buf, len);
    copies = realloc(copies, (ncopies + 1) * sizeof(*copies));
    cr_assert_not_null(copies);
    copies[ncopies++] = copy;
    *status = -1;
    return sl_http_parse_request(copy, len, l, req, status);
}

static int parse(const char *s, struct sl_request *req, int *status)
{
    return parse_n(s, strlen(s), &lim, req, status);
}

/* Printable form of a request for failure messages ("\r\n" spelled out). */
static const char *show(const char *s, size_t n)
{
    static char out[4][512];
    static int k;
    char *o = out[k++ & 3];
    size_t j = 0;
    for (size_t i = 0; i < n && j + 5 < sizeof(out[0]); i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r')
            j += (size_t)sprintf(o + j, "\\r");
        else if (c == '\n')
            j += (size_t)sprintf(o + j, "\\n");
        else if (c < 0x20 || c >= 0x7f)
            j += (size_t)sprintf(o + j, "\\x%02x", c);
        else
            o[j++] = (char)c;
    }
    o[j] = '\0';
    return o;
}

static bool str_is(struct sl_str s, const char *lit)
{
    if (lit == NULL)
        return s.n == 0;
    return s.n == strlen(lit) && memcmp(s.p, lit, s.n) == 0;
}

/* Every proper prefix of RAW must give SL_AGAIN (when the whole gives a head)
 * or SL_AGAIN / the same error status (when the whole is rejected): feeding
 * the bytes one at a time never changes the verdict. */
static void check_prefixes(const char *raw, size_t len, const struct sl_http_limits *l,
                           int want_rc, int want_status)
{
    for (size_t k = 0; k < len; k++) {
        struct sl_request req;
        int status;
        int rc = parse_n(raw, k, l, &req, &status);
        free(copies[--ncopies]); /* REQ is not looked at */
        if (want_rc >= 0)
            cr_expect_eq(rc, SL_AGAIN, "prefix %zu of \"%s\": rc %d status %d", k,
                         show(raw, len), rc, status);
        else
            cr_expect(rc == SL_AGAIN || (rc == SL_ERR && status == want_status),
                      "prefix %zu of \"%s\": rc %d status %d, want AGAIN or %d", k,
                      show(raw, len), rc, status, want_status);
    }
}

/* ---- valid requests ---------------------------------------------------- */

struct valid_case {
    const char *raw;
    enum sl_method method;
    const char *method_name;
    int version;
    const char *target;
    const char *host; /* NULL: no Host header */
    bool keepalive;
    int64_t content_length;
    size_t nheaders;
    size_t skipped; /* leading empty-line bytes before the request line */
};

#define H11 "Host: h\r\n"
static const struct valid_case valid[] = {
    {"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", SL_METHOD_GET, "GET", 11, "/",
     "example.com", true, -1, 1, 0},
    {"HEAD /index.html HTTP/1.1\r\n" H11 "\r\n", SL_METHOD_HEAD, "HEAD", 11, "/index.html",
     "h", true, -1, 1, 0},
    {"OPTIONS * HTTP/1.1\r\n" H11 "\r\n", SL_METHOD_OPTIONS, "OPTIONS", 11, "*", "h", true,
     -1, 1, 0},
    /* HTTP/1.0: Host optional, close by default, keep-alive on request */
    {"GET / HTTP/1.0\r\n\r\n", SL_METHOD_GET, "GET", 10, "/", NULL, false, -1, 0, 0},
    {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", SL_METHOD_GET, "GET", 10, "/", NULL,
     true, -1, 1, 0},
    {"GET /x HTTP/1.0\r\nconnection: Keep-Alive\r\nHost: h\r\n\r\n", SL_METHOD_GET, "GET", 10,
     "/x", "h", true, -1, 2, 0},
    {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", SL_METHOD_GET, "GET", 10, "/",
     NULL, false, -1, 1, 0},
    {"GET / HTTP/1.0\r\nConnection: keep-alived\r\n\r\n", SL_METHOD_GET, "GET", 10, "/", NULL,
     false, -1, 1, 0},
    /* HTTP/1.1: persistent unless "close" is an element of a Connection list */
    {"GET / HTTP/1.1\r\n" H11 "Connection: close\r\n\r\n", SL_METHOD_GET, "GET", 11, "/",
     "h", false, -1, 2, 0},
    {"GET / HTTP/1.1\r\n" H11 "Connection: keep-alive, Close\r\n\r\n", SL_METHOD_GET, "GET",
     11, "/", "h", false, -1, 2, 0},
    {"GET / HTTP/1.1\r\n" H11 "Connection: Upgrade,  CLOSE\t,foo\r\n\r\n", SL_METHOD_GET,
     "GET", 11, "/", "h", false, -1, 2, 0},
    {"GET / HTTP/1.1\r\n" H11 "Connection: closed, xclose\r\n\r\n", SL_METHOD_GET, "GET", 11,
     "/", "h", true, -1, 2, 0},
    {"GET / HTTP/1.1\r\n" H11 "Connection: keep-alive\r\nConnection: close\r\n\r\n",
     SL_METHOD_GET, "GET", 11, "/", "h", false, -1, 3, 0},
    {"GET / HTTP/1.1\r\n" H11 "Connection:\r\n\r\n", SL_METHOD_GET, "GET", 11, "/", "h", true,
     -1, 2, 0},
    /* Content-Length */
    {"POST /f HTTP/1.1\r\n" H11 "Content-Length: 42\r\n\r\n", SL_METHOD_POST, "POST", 11, "/f",
     "h", true, 42, 2, 0},
    {"PUT /f HTTP/1.1\r\n" H11 "Content-Length: 5\r\ncontent-length: 5\r\n\r\n", SL_METHOD_PUT,
     "PUT", 11, "/f", "h", true, 5, 3, 0},
    {"GET / HTTP/1.1\r\n" H11 "Content-Length: 7 , 7,7\r\n\r\n", SL_METHOD_GET, "GET", 11, "/",
     "h", true, 7, 2, 0},
    {"GET / HTTP/1.1\r\n" H11 "Content-Length: 0\r\n\r\n", SL_METHOD_GET, "GET", 11, "/", "h",
     true, 0, 2, 0},
    {"GET / HTTP/1.1\r\n" H11 "Content-Length: 000000000000000012\r\n\r\n", SL_METHOD_GET,
     "GET", 11, "/", "h", true, 12, 2, 0},
    {"GET / HTTP/1.1\r\n" H11 "Content-Length: 999999999999999999\r\n\r\n", SL_METHOD_GET,
     "GET", 11, "/", "h", true, 999999999999999999LL, 2, 0},
    /* line ends: bare LF, mixed */
    {"GET / HTTP/1.1\nHost: h\n\n", SL_METHOD_GET, "GET", 11, "/", "h", true, -1, 1, 0},
    {"GET / HTTP/1.1\r\nHost: h\n\r\n", SL_METHOD_GET, "GET", 11, "/", "h", true, -1, 1, 0},
    {"GET / HTTP/1.1\nHost: h\r\n\n", SL_METHOD_GET, "GET", 11, "/", "h", true, -1, 1, 0},
    /* leading empty lines (RFC 9112 2.2) */
    {"\r\nGET / HTTP/1.1\r\n" H11 "\r\n", SL_METHOD_GET, "GET", 11, "/", "h", true, -1, 1, 2},
    {"\n\r\n\nGET / HTTP/1.1\r\n" H11 "\r\n", SL_METHOD_GET, "GET", 11, "/", "h", true, -1, 1,
     4},
    {"\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n" H11 "\r\n", SL_METHOD_GET, "GET", 11, "/", "h",
     true, -1, 1, 8},
    {"\r\n\r\n\r\n\r\n\r\n\n\n\nGET / HTTP/1.1\r\n" H11 "\r\n", SL_METHOD_GET, "GET", 11,
     "/", "h", true, -1, 1, 13},
    /* methods: case-sensitive, unknown tokens are SL_METHOD_OTHER (501 later) */
    {"BREW /pot HTTP/1.1\r\n" H11 "\r\n", SL_METHOD_OTHER, "BREW", 11, "/pot", "h", true, -1,
     1, 0},
    {"get / HTTP/1.1\r\n" H11 "\r\n", SL_METHOD_OTHER, "get", 11, "/", "h", true, -1, 1, 0},
    {"Head / HTTP/1.1\r\n" H11 "\r\n", SL_METHOD_OTHER, "Head", 11, "/", "h", true, -1, 1, 0},
    {"GETS / HTTP/1.1\r\n" H11 "\r\n", SL_METHOD_OTHER, "GETS", 11, "/", "h", true, -1, 1, 0},
    {"GE / HTTP/1.1\r\n" H11 "\r\n", SL_METHOD_OTHER, "GE", 11, "/", "h", true, -1, 1, 0},
    {"M-SEARCH * HTTP/1.1\r\n" H11 "\r\n", SL_METHOD_OTHER, "M-SEARCH", 11, "*", "h", true,
     -1, 1, 0},
    {"DELETE /x HTTP/1.1\r\n" H11 "\r\n", SL_METHOD_DELETE, "DELETE", 11, "/x", "h", true, -1,
     1, 0},
    {"PATCH /x HTTP/1.1\r\n" H11 "\r\n", SL_METHOD_PATCH, "PATCH", 11, "/x", "h", true, -1, 1,
     0},
    {"TRACE /x HTTP/1.1\r\n" H11 "\r\n", SL_METHOD_TRACE, "TRACE", 11, "/x", "h", true, -1, 1,
     0},
    {"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", SL_METHOD_CONNECT, "CONNECT", 11,
     "h:443", "h:443", true, -1, 1, 0},
    /* targets are kept raw */
    {"GET /a%20b?c=d&e#f HTTP/1.1\r\n" H11 "\r\n", SL_METHOD_GET, "GET", 11,
     "/a%20b?c=d&e#f", "h", true, -1, 1, 0},
    {"GET http://h:8080/x HTTP/1.1\r\n" H11 "\r\n", SL_METHOD_GET, "GET", 11,
     "http://h:8080/x", "h", true, -1, 1, 0},
    /* header values are trimmed; names are case-insensitive; obs-text and
       HTAB are allowed inside values; an empty Host is a Host */
    {"GET / HTTP/1.1\r\nhOsT: \t spaced.example \t\r\n\r\n", SL_METHOD_GET, "GET", 11, "/",
     "spaced.example", true, -1, 1, 0},
    {"GET / HTTP/1.1\r\nHost:\r\n\r\n", SL_METHOD_GET, "GET", 11, "/", "", true, -1, 1, 0},
    {"GET / HTTP/1.1\r\n" H11 "X-Empty:\r\nX-Obs: caf\xc3\xa9\r\nX-Tab: a\tb\r\n\r\n",
     SL_METHOD_GET, "GET", 11, "/", "h", true, -1, 4, 0},
    /* a higher minor version is answered as HTTP/1.1 (RFC 9110 2.5) */
    {"GET / HTTP/1.9\r\n" H11 "\r\n", SL_METHOD_GET, "GET", 11, "/", "h", true, -1, 1, 0},
    /* Transfer-Encoding alone is flagged, not rejected here */
    {"GET / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\n\r\n", SL_METHOD_GET, "GET", 11,
     "/", "h", true, -1, 2, 0},
};

static void check_valid(const struct valid_case *c, int rc, const struct sl_request *req,
                        int status)
{
    const char *name = show(c->raw, strlen(c->raw));
    cr_assert_eq(rc, (int)strlen(c->raw), "\"%s\": rc %d status %d", name, rc, status);
    cr_expect_eq(req->method, c->method, "\"%s\": method %d", name, req->method);
    cr_expect(str_is(req->method_name, c->method_name), "\"%s\": method name", name);
    cr_expect_eq(req->version, c->version, "\"%s\": version %d", name, req->version);
    cr_expect(str_is(req->target, c->target), "\"%s\": target \"%.*s\"", name,
              (int)req->target.n, req->target.p);
    cr_expect_eq(req->has_host, c->host != NULL, "\"%s\": has_host", name);
    cr_expect(str_is(req->host, c->host), "\"%s\": host \"%.*s\"", name, (int)req->host.n,
              req->host.p);
    cr_expect_eq(req->keepalive, c->keepalive, "\"%s\": keepalive %d", name, req->keepalive);
    cr_expect_eq(req->content_length, c->content_length, "\"%s\": content_length %lld", name,
                 (long long)req->content_length);
    cr_expect_eq(req->nheaders, c->nheaders, "\"%s\": nheaders %zu", name, req->nheaders);
}

Test(http_parse, valid_requests)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(valid); i++) {
        const struct valid_case *c = &valid[i];
        size_t len = strlen(c->raw);
        char *buf = malloc(len);
        memcpy(buf, c->raw, len);
        struct sl_request req;
        int status = -1;
        int rc = sl_http_parse_request(buf, len, &lim, &req, &status);
        check_valid(c, rc, &req, status);
        cr_expect_eq(req.method_name.p, buf + c->skipped, "\"%s\": method at offset %td",
                     show(c->raw, len), req.method_name.p - buf);
        cr_expect_eq(status, -1, "success leaves *status alone");
        free(buf);
    }
}

Test(http_parse, byte_by_byte_gives_again_then_same_result)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(valid); i++) {
        const struct valid_case *c = &valid[i];
        size_t len = strlen(c->raw);
        check_prefixes(c->raw, len, &lim, (int)len, 0);
        struct sl_request req;
        int status;
        int rc = parse_n(c->raw, len, &lim, &req, &status);
        check_valid(c, rc, &req, status);
    }
}

Test(http_parse, header_fields_point_into_buffer_trimmed)
{
    const char raw[] = "GET / HTTP/1.1\r\nHost: h\r\nX-A:  one two \t\r\nx-b:\r\n"
                       "Accept: */*\r\n\r\n";
    size_t len = sizeof(raw) - 1;
    struct sl_request req;
    int status;
    cr_assert_eq(sl_http_parse_request(raw, len, &lim, &req, &status), (int)len);
    cr_assert_eq(req.nheaders, 4);
    const char *names[] = {"Host", "X-A", "x-b", "Accept"};
    const char *values[] = {"h", "one two", "", "*/*"};
    for (size_t i = 0; i < 4; i++) {
        cr_expect(str_is(req.headers[i].name, names[i]), "name %zu", i);
        cr_expect(str_is(req.headers[i].value, values[i]), "value %zu: \"%.*s\"", i,
                  (int)req.headers[i].value.n, req.headers[i].value.p);
        cr_expect(req.headers[i].name.p >= raw && req.headers[i].name.p < raw + len);
        cr_expect(req.headers[i].value.p >= raw &&
                  req.headers[i].value.p + req.headers[i].value.n <= raw + len);
    }
    cr_expect_eq(req.host.p, req.headers[0].value.p, "host is zero-copy");
    cr_expect_eq(req.target.p, raw + 4);
}

Test(http_parse, conditional_and_range_headers_interpreted)
{
    const char *raw = "GET /f HTTP/1.1\r\n"
                      "Host: h\r\n"
                      "If-None-Match: \"abc\", W/\"def\"\r\n"
                      "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                      "IF-MATCH: *\r\n"
                      "if-unmodified-since:  Sat, 05 Nov 1994 08:49:37 GMT \r\n"
                      "Range: bytes=0-99\r\n"
                      "If-Range: \"abc\"\r\n"
                      "Accept-Encoding: gzip, br\r\n"
                      "Expect: 100-Continue\r\n"
                      "\r\n";
    struct sl_request req;
    int status;
    cr_assert_eq(parse(raw, &req, &status), (int)strlen(raw));
    cr_expect(str_is(req.if_none_match, "\"abc\", W/\"def\""));
    cr_expect(str_is(req.if_modified_since, "Sun, 06 Nov 1994 08:49:37 GMT"));
    cr_expect(str_is(req.if_match, "*"));
    cr_expect(str_is(req.if_unmodified_since, "Sat, 05 Nov 1994 08:49:37 GMT"));
    cr_expect(str_is(req.range, "bytes=0-99"));
    cr_expect(str_is(req.if_range, "\"abc\""));
    cr_expect(str_is(req.accept_encoding, "gzip, br"));
    cr_expect(req.expect_continue);
    cr_expect_not(req.has_transfer_encoding);
    cr_expect_eq(req.nheaders, 9);
}

Test(http_parse, interpreted_fields_reset_between_requests)
{
    struct sl_request req;
    int status;
    const char *first = "POST / HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"x\"\r\n"
                        "Range: bytes=1-\r\nExpect: 100-continue\r\nContent-Length: 3\r\n"
                        "Accept-Encoding: gzip\r\n\r\n";
    cr_assert_gt(parse(first, &req, &status), 0);
    cr_assert(req.expect_continue);
    const char *second = "GET / HTTP/1.0\r\nX-A: b\r\n\r\n";
    cr_assert_eq(parse(second, &req, &status), (int)strlen(second));
    cr_expect_not(req.has_host);
    cr_expect_eq(req.host.n, 0);
    cr_expect_eq(req.content_length, -1);
    cr_expect_not(req.expect_continue);
    cr_expect_not(req.has_transfer_encoding);
    cr_expect_eq(req.if_none_match.n, 0);
    cr_expect_eq(req.range.n, 0);
    cr_expect_eq(req.accept_encoding.n, 0);
    cr_expect_eq(req.nheaders, 1);
    /* Expect with another value is not 100-continue */
    cr_assert_gt(parse("GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continuex\r\n\r\n", &req,
                       &status),
                 0);
    cr_expect_not(req.expect_continue);
    /* and Transfer-Encoding does not stick either */
    cr_assert_gt(parse("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", &req,
                       &status),
                 0);
    cr_expect(req.has_transfer_encoding);
    cr_assert_gt(parse("GET / HTTP/1.1\r\nHost: h\r\n\r\n", &req, &status), 0);
    cr_expect_not(req.has_transfer_encoding);
}

Test(http_parse, expect_continue_only_in_http11)
{
    struct sl_request req;
    int status;
    const char *v10 = "GET / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
    cr_assert_eq(parse(v10, &req, &status), (int)strlen(v10));
    cr_expect_not(req.expect_continue, "RFC 9110 10.1.1: ignored in HTTP/1.0");
    const char *v11 = "GET / HTTP/1.1\r\nHost: h\r\nExpect:  100-CONTINUE \r\n\r\n";
    cr_assert_eq(parse(v11, &req, &status), (int)strlen(v11));
    cr_expect(req.expect_continue);
}

Test(http_parse, content_length_edge_values)
{
    struct {
        const char *value;
        int64_t want;
    } cases[] = {
        {"0", 0},
        {"00000000000000000000000000007", 7}, /* leading zeros are not overflow */
        {"9223372036854775807", INT64_MAX},
        {"\t12\t", 12},
        {"3,3", 3},
        {"3 ,\t3 , 3", 3},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        char raw[256];
        snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: %s\r\n\r\n",
                 cases[i].value);
        struct sl_request req;
        int status;
        cr_expect_eq(parse(raw, &req, &status), (int)strlen(raw), "\"%s\"", cases[i].value);
        cr_expect_eq(req.content_length, cases[i].want, "\"%s\": %lld", cases[i].value,
                     (long long)req.content_length);
    }
}

Test(http_parse, host_values)
{
    const char *good[] = {"example.com", "example.com:8080", "[::1]:80", "[fe80::1%25eth0]",
                          "127.0.0.1", "xn--bcher-kva.example", "a_b~c!$&'()*+,;=", ""};
    const char *bad[] = {"a b", "a/b", "a@b", "a\\b", "\"a\"", "a?b", "a#b", "<a>",
                         "a\xc3\xa9", "a{b}", "a^b", "a|b", "a`b"};
    char raw[256];
    struct sl_request req;
    int status;
    for (size_t i = 0; i < SL_ARRAY_LEN(good); i++) {
        snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", good[i]);
        cr_expect_eq(parse(raw, &req, &status), (int)strlen(raw), "\"%s\": status %d", good[i],
                     status);
        cr_expect(str_is(req.host, good[i]), "\"%s\"", good[i]);
    }
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", bad[i]);
        cr_expect_eq(parse(raw, &req, &status), SL_ERR, "\"%s\"", bad[i]);
        cr_expect_eq(status, 400, "\"%s\"", bad[i]);
    }
}

/* RFC 9112 3.2 / RFC 3986 3.2.2: the structure of a Host value, not only its
 * bytes: reg-name or IP-literal, then at most one ":" port of digits. */
Test(http_parse, host_structure)
{
    const char *good[] = {
        "x", "x:80", "x:", "x:0", "x:65535", "x:0080", "www.example.com:443",
        "192.0.2.1", "192.0.2.1:8080", "999.1.1.1", /* not an IPv4address: a reg-name */
        "a%20b", "%41:1", "x.", "-", "[::]", "[::1]", "[::1]:", "[::1]:8080",
        "[2001:db8::1]", "[2001:DB8:0:0:8:800:200C:417A]", "[::ffff:192.0.2.1]:1",
        "[1:2:3:4:5:6:7:8]", "[fe80::1%25en0]:80", "[fe80::a%25%41b]", "[v1.x]",
        "[vF.a:b!]", "[V7.abc]:99",
    };
    const char *bad[] = {
        "x:8o", "x:80:80", "x::80", "x:-1", "x: 80", "x:+80", ":80", ":",
        "[::1", "[::1]]", "::1", "[::1]x", "[::1]:80:80", "[::1]:8o", "[]", "[:]",
        "[::1]]:80", "[[::1]]", "x]", "x[", "[x]", "[1.2.3.4]", "[1:2:3:4:5:6:7:8:9]",
        "[1::2::3]", "[12345::]", "[::1%]", "[::1%25]", "[::1%eth0]", "[::1%25a b]",
        "[v.x]", "[v1.]", "[v1x]", "[vg.x]", "[v1.x/y]", "a%2", "a%zz", "%", "a%2:80",
        "x%41%", "[fe80::1%25en0", "x@y:80",
    };
    char raw[256];
    struct sl_request req;
    int status;
    for (size_t i = 0; i < SL_ARRAY_LEN(good); i++) {
        snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", good[i]);
        cr_expect_eq(parse(raw, &req, &status), (int)strlen(raw), "\"%s\": status %d", good[i],
                     status);
        cr_expect(str_is(req.host, good[i]), "\"%s\"", good[i]);
    }
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", bad[i]);
        status = 0;
        cr_expect_eq(parse(raw, &req, &status), SL_ERR, "\"%s\" accepted", bad[i]);
        cr_expect_eq(status, 400, "\"%s\": status %d", bad[i], status);
    }
}

Test(http_parse, head_ends_at_the_first_empty_line)
{
    /* A bare LF empty line ends the head like CRLF does: what follows is the
       next request (here an invalid one), not more fields of this one. */
    const char raw[] = "GET / HTTP/1.1\r\nHost: a\r\n\nHost: b\r\n\r\n";
    struct sl_request req;
    int status;
    int rc = parse_n(raw, sizeof(raw) - 1, &lim, &req, &status);
    cr_assert_eq(rc, (int)strlen("GET / HTTP/1.1\r\nHost: a\r\n\n"));
    cr_expect(str_is(req.host, "a"));
    cr_expect_eq(req.nheaders, 1);
    cr_expect_eq(parse_n(raw + rc, sizeof(raw) - 1 - (size_t)rc, &lim, &req, &status), SL_ERR);
    cr_expect_eq(status, 400);
}

Test(http_parse, leading_empty_lines_count_against_the_head)
{
    /* 120 bytes of CRLFs fit in a 128-byte head... */
    char raw[300];
    size_t n = 0;
    for (int i = 0; i < 60; i++)
        n += (size_t)sprintf(raw + n, "\r\n");
    struct sl_request req;
    int status;
    cr_expect_eq(parse_n(raw, n, &small, &req, &status), SL_AGAIN);
    /* ...but a request after them does not */
    n += (size_t)sprintf(raw + n, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    cr_expect_eq(parse_n(raw, n, &small, &req, &status), SL_ERR);
    cr_expect_eq(status, 431);
    /* and an endless stream of them is cut off at the head limit */
    n = 0;
    for (int i = 0; i < 200; i++)
        n += (size_t)sprintf(raw + n, "\n");
    cr_expect_eq(parse_n(raw, 128, &small, &req, &status), SL_AGAIN);
    cr_expect_eq(parse_n(raw, 129, &small, &req, &status), SL_ERR);
    cr_expect_eq(status, 431);
}

Test(http_parse, pipelined_requests_return_the_next_offset)
{
    const char raw[] = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
                       "HEAD /2 HTTP/1.1\nHost: h\n\n"
                       "POST /3 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
                       "GET /4 HTTP/1.0\r\n\r\n"
                       "GET /5 HT";
    size_t len = sizeof(raw) - 1;
    char *buf = malloc(len);
    memcpy(buf, raw, len);
    const char *want_target[] = {"/1", "/2", "/3", "/4"};
    const enum sl_method want_method[] = {SL_METHOD_GET, SL_METHOD_HEAD, SL_METHOD_POST,
                                          SL_METHOD_GET};
    size_t off = 0;
    struct sl_request req;
    int status;
    for (size_t i = 0; i < 4; i++) {
        int rc = sl_http_parse_request(buf + off, len - off, &lim, &req, &status);
        cr_assert_gt(rc, 0, "request %zu", i);
        cr_expect(str_is(req.target, want_target[i]), "request %zu target", i);
        cr_expect_eq(req.method, want_method[i]);
        cr_expect_eq(req.target.p, (char *)memchr(buf + off, ' ', len - off) + 1,
                     "zero-copy target");
        off += (size_t)rc;
        if (i == 2) { /* the parser stops at the body: the caller skips it */
            cr_expect_eq(req.content_length, 5);
            cr_assert_eq(memcmp(buf + off, "hello", 5), 0);
            off += 5;
        }
    }
    cr_expect_eq(memcmp(buf + off, "GET /5 HT", 9), 0);
    cr_expect_eq(sl_http_parse_request(buf + off, len - off, &lim, &req, &status), SL_AGAIN);
    free(buf);
}

Test(http_parse, empty_and_partial_input_is_again)
{
    const char *partial[] = {"", "\r", "\n", "\r\n", "\r\n\r", "G", "GET / HTTP/1.1",
                             "GET / HTTP/1.1\r", "GET / HTTP/1.1\r\n",
                             "GET / HTTP/1.1\r\nHost: h\r\n",
                             "GET / HTTP/1.1\r\nHost: h\r\n\r"};
    for (size_t i = 0; i < SL_ARRAY_LEN(partial); i++) {
        struct sl_request req;
        int status;
        int rc = parse(partial[i], &req, &status);
        cr_expect_eq(rc, SL_AGAIN, "\"%s\": rc %d status %d",
                     show(partial[i], strlen(partial[i])), rc, status);
    }
}

/* ---- invalid requests ---------------------------------------------------- */

struct invalid_case {
    const char *raw;
    size_t len; /* 0: strlen(raw) */
    int status;
};

#define REQ "GET / HTTP/1.1\r\nHost: h\r\n"
static const struct invalid_case invalid[] = {
    /* request smuggling: Content-Length must be one unambiguous number */
    {REQ "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 0, 400},
    {REQ "Content-Length: 5, 6\r\n\r\n", 0, 400},
    {REQ "Content-Length: +5\r\n\r\n", 0, 400},
    {REQ "Content-Length:  5x\r\n\r\n", 0, 400},
    {REQ "Content-Length: -1\r\n\r\n", 0, 400},
    {REQ "Content-Length: 12345678901234567890\r\n\r\n", 0, 400},
    {REQ "Content-Length: 9223372036854775808\r\n\r\n", 0, 400},
    {REQ "Content-Length: 0x10\r\n\r\n", 0, 400},
    {REQ "Content-Length: 1 2\r\n\r\n", 0, 400},
    {REQ "Content-Length: 5,\r\n\r\n", 0, 400},
    {REQ "Content-Length: ,5\r\n\r\n", 0, 400},
    {REQ "Content-Length:\r\n\r\n", 0, 400},
    {REQ "Content-Length: 5\r\nContent-Length: 5, 6\r\n\r\n", 0, 400},
    {REQ "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 0, 400},
    {REQ "Content-Length: 0\r\ntransfer-encoding: identity\r\n\r\n", 0, 400},
    /* obs-fold */
    {REQ "X-A: a\r\n  b\r\n\r\n", 0, 400},
    {REQ "X-A: a\r\n\tb\r\n\r\n", 0, 400},
    {"GET / HTTP/1.1\r\n Host: h\r\n\r\n", 0, 400},
    /* bare CR, NUL, control bytes */
    {REQ "X-A: a\rb\r\n\r\n", 0, 400},
    {REQ "X-A: a\r\r\n\r\n", 0, 400},
    {REQ "\r\r\n", 0, 400},
    {"GET /\r HTTP/1.1\r\n" H11 "\r\n", 0, 400},
    {"\rGET / HTTP/1.1\r\n" H11 "\r\n", 0, 400},
    {REQ "X-A: a\0b\r\n\r\n", sizeof(REQ "X-A: a\0b\r\n\r\n") - 1, 400},
    {"GET /\0 HTTP/1.1\r\n" H11 "\r\n", sizeof("GET /\0 HTTP/1.1\r\n" H11 "\r\n") - 1, 400},
    {REQ "X\0: a\r\n\r\n", sizeof(REQ "X\0: a\r\n\r\n") - 1, 400},
    {REQ "X-A: a\x01\r\n\r\n", 0, 400},
    {REQ "X-A: \x1f\r\n\r\n", 0, 400},
    {REQ "X-A: a\x7f\r\n\r\n", 0, 400},
    {REQ "X-A: a\x0b b\r\n\r\n", 0, 400},
    {REQ "X-A: a\x0c\r\n\r\n", 0, 400},
    {REQ "X-A: a\x1b[31m\r\n\r\n", 0, 400},
    /* field names */
    {"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 0, 400},
    {"GET / HTTP/1.1\r\nHost\t: h\r\n\r\n", 0, 400},
    {REQ "X-A b: c\r\n\r\n", 0, 400},
    {REQ "NoColon\r\n\r\n", 0, 400},
    {REQ ": empty name\r\n\r\n", 0, 400},
    {REQ "X(A): b\r\n\r\n", 0, 400},
    {REQ "X@A: b\r\n\r\n", 0, 400},
    {REQ "X-\xc3\xa9: b\r\n\r\n", 0, 400},
    /* Host */
    {"GET / HTTP/1.1\r\n\r\n", 0, 400},
    {"GET / HTTP/1.1\r\nX-Host: h\r\n\r\n", 0, 400},
    {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0, 400},
    {"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 0, 400},
    {"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 0, 400},
    /* versions */
    {"GET / HTTP/2.0\r\n" H11 "\r\n", 0, 505},
    {"GET / HTTP/0.9\r\n" H11 "\r\n", 0, 505},
    {"GET / HTTP/3.0\r\n\r\n", 0, 505},
    {"GET / HTTP/1.x\r\n" H11 "\r\n", 0, 400},
    {"GET / HTTP/x.1\r\n" H11 "\r\n", 0, 400},
    {"GET / HTTP/1\r\n" H11 "\r\n", 0, 400},
    {"GET / HTTP/1.10\r\n" H11 "\r\n", 0, 400},
    {"GET / HTTP/11\r\n" H11 "\r\n", 0, 400},
    {"GET / http/1.1\r\n" H11 "\r\n", 0, 400},
    {"GET / HTTP/1.1 \r\n" H11 "\r\n", 0, 400},
    {"GET / HTTPS/1.1\r\n" H11 "\r\n", 0, 400},
    {"GET / HTTP/1,1\r\n" H11 "\r\n", 0, 400},
    /* request line shape */
    {"GET /\r\n\r\n", 0, 400},
    {"GET\r\n\r\n", 0, 400},
    {"GET  / HTTP/1.1\r\n" H11 "\r\n", 0, 400},
    {"GET /  HTTP/1.1\r\n" H11 "\r\n", 0, 400},
    {" GET / HTTP/1.1\r\n" H11 "\r\n", 0, 400},
    {"GET\t/ HTTP/1.1\r\n" H11 "\r\n", 0, 400},
    {"GET /\tHTTP/1.1\r\n" H11 "\r\n", 0, 400},
    {"G(T / HTTP/1.1\r\n" H11 "\r\n", 0, 400},
    {"/ HTTP/1.1\r\n" H11 "\r\n", 0, 400},
    {"GET / HTTP/1.1 extra\r\n" H11 "\r\n", 0, 400},
    {"GET /a\x7f HTTP/1.1\r\n" H11 "\r\n", 0, 400},
    {"GET /\xc3\xa9 HTTP/1.1\r\n" H11 "\r\n", 0, 400},
    {"GET /\x01 HTTP/1.1\r\n" H11 "\r\n", 0, 400},
    /* bare CR among the leading empty lines */
    {"\r\n\rGET / HTTP/1.1\r\n" H11 "\r\n", 0, 400},
    /* Transfer-Encoding in HTTP/1.0 is faulty framing (RFC 9112 6.1) */
    {"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 400},
    {"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 0, 400},
    /* Host values no host can have, in either version */
    {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 0, 400},
    {"GET / HTTP/1.0\r\nHost: evil/../x\r\n\r\n", 0, 400},
    /* more smuggling shapes */
    {REQ "Content-Length : 5\r\n\r\n", 0, 400},
    {REQ "Transfer-Encoding : chunked\r\n\r\n", 0, 400},
    {REQ "Content-Length: 5\r\n Content-Length: 6\r\n\r\n", 0, 400},
    {REQ "Content-Length: 5\rContent-Length: 6\r\n\r\n", 0, 400},
    {REQ "Content-Length: 5\x0b\r\n\r\n", 0, 400},
    {REQ "Content-Length: \xd9\xa5\r\n\r\n", 0, 400},
    {REQ "Content-Length: 1_000\r\n\r\n", 0, 400},
    {REQ "Content-Length: 1.0\r\n\r\n", 0, 400},
    {REQ "Content-Length: 5\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n", 0,
     400},
};

Test(http_parse, invalid_requests_get_their_status)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(invalid); i++) {
        const struct invalid_case *c = &invalid[i];
        size_t len = c->len ? c->len : strlen(c->raw);
        struct sl_request req;
        int status;
        int rc = parse_n(c->raw, len, &lim, &req, &status);
        cr_expect_eq(rc, SL_ERR, "case %zu \"%s\": rc %d", i, show(c->raw, len), rc);
        cr_expect_eq(status, c->status, "case %zu \"%s\": status %d, want %d", i,
                     show(c->raw, len), status, c->status);
    }
}

Test(http_parse, invalid_requests_byte_by_byte)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(invalid); i++) {
        const struct invalid_case *c = &invalid[i];
        check_prefixes(c->raw, c->len ? c->len : strlen(c->raw), &lim, SL_ERR, c->status);
    }
}

/* ---- limits -------------------------------------------------------------- */


/* "GET /aaa... HTTP/1.1" of exactly N bytes (N >= 15). */
static char *request_line(size_t n)
{
    char *s = malloc(n + 1);
    memcpy(s, "GET /", 5);
    memset(s + 5, 'a', n - 14);
    memcpy(s + n - 9, " HTTP/1.1", 10);
    return s;
}

static char *concat(const char *a, const char *b)
{
    char *s = malloc(strlen(a) + strlen(b) + 1);
    strcpy(s, a);
    strcat(s, b);
    return s;
}

Test(http_parse, request_line_limit_complete)
{
    struct sl_request req;
    int status;
    char *line = request_line(32);
    char *raw = concat(line, "\r\nHost: h\r\n\r\n");
    cr_expect_eq(parse_n(raw, strlen(raw), &small, &req, &status), (int)strlen(raw),
                 "exactly max_request_line is allowed");
    check_prefixes(raw, strlen(raw), &small, (int)strlen(raw), 0);
    free(raw);
    /* the same with a bare LF */
    raw = concat(line, "\nHost: h\n\n");
    cr_expect_eq(parse_n(raw, strlen(raw), &small, &req, &status), (int)strlen(raw));
    free(raw);
    free(line);

    line = request_line(33);
    raw = concat(line, "\r\nHost: h\r\n\r\n");
    cr_expect_eq(parse_n(raw, strlen(raw), &small, &req, &status), SL_ERR);
    cr_expect_eq(status, 414);
    check_prefixes(raw, strlen(raw), &small, SL_ERR, 414);
    free(raw);
    free(line);
}

Test(http_parse, request_line_limit_incomplete)
{
    struct sl_request req;
    int status;
    char *line = request_line(40);
    /* up to the limit we wait; one byte more and the line can never fit */
    cr_expect_eq(parse_n(line, 32, &small, &req, &status), SL_AGAIN);
    cr_expect_eq(parse_n(line, 33, &small, &req, &status), SL_ERR);
    cr_expect_eq(status, 414);
    cr_expect_eq(parse_n(line, 40, &small, &req, &status), SL_ERR);
    cr_expect_eq(status, 414);
    free(line);
    /* a line of exactly the limit whose CR has arrived but not its LF */
    line = request_line(32);
    char *raw = concat(line, "\r");
    cr_expect_eq(parse_n(raw, 33, &small, &req, &status), SL_AGAIN,
                 "the CR of a CRLF is not part of the request line (status %d)", status);
    free(raw);
    free(line);
    /* leading empty lines do not count against the request line */
    line = request_line(32);
    raw = concat("\r\n\r\n", line);
    cr_expect_eq(parse_n(raw, strlen(raw), &small, &req, &status), SL_AGAIN);
    free(raw);
    free(line);
}

/* A complete head of exactly N bytes: request line, Host, X-Pad, empty line. */
static char *head_of(size_t n)
{
    const char *start = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
    size_t sl = strlen(start);
    char *s = malloc(n + 1);
    memcpy(s, start, sl);
    memset(s + sl, 'p', n - sl - 4);
    memcpy(s + n - 4, "\r\n\r\n", 5);
    return s;
}

Test(http_parse, header_size_limit_complete)
{
    struct sl_request req;
    int status;
    char *raw = head_of(128);
    cr_expect_eq(parse_n(raw, 128, &small, &req, &status), 128,
                 "exactly max_header_size is allowed");
    check_prefixes(raw, 128, &small, 128, 0);
    free(raw);
    raw = head_of(129);
    cr_expect_eq(parse_n(raw, 129, &small, &req, &status), SL_ERR);
    cr_expect_eq(status, 431);
    check_prefixes(raw, 129, &small, SL_ERR, 431);
    free(raw);
    /* the limit is on the head, not on what is buffered after it */
    raw = head_of(128);
    char *two = concat(raw, raw);
    cr_expect_eq(parse_n(two, 256, &small, &req, &status), 128);
    free(two);
    free(raw);
}

Test(http_parse, header_size_limit_incomplete)
{
    struct sl_request req;
    int status;
    char *raw = head_of(200); /* its end never arrives */
    cr_expect_eq(parse_n(raw, 128, &small, &req, &status), SL_AGAIN);
    cr_expect_eq(parse_n(raw, 129, &small, &req, &status), SL_ERR);
    cr_expect_eq(status, 431);
    cr_expect_eq(parse_n(raw, 196, &small, &req, &status), SL_ERR);
    cr_expect_eq(status, 431);
    free(raw);
    /* a long incomplete request line past the head limit (but not past the
       line limit) is 431 */
    struct sl_http_limits wide = {.max_request_line = 1000, .max_header_size = 100,
                                  .max_headers = 4};
    char *line = request_line(200);
    cr_expect_eq(parse_n(line, 101, &wide, &req, &status), SL_ERR);
    cr_expect_eq(status, 431);
    cr_expect_eq(parse_n(line, 100, &wide, &req, &status), SL_AGAIN);
    free(line);
}

Test(http_parse, header_count_limit)
{
    struct sl_request req;
    int status;
    const char *four = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    cr_expect_eq(parse_n(four, strlen(four), &small, &req, &status), (int)strlen(four));
    cr_expect_eq(req.nheaders, 4);
    const char *five = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    cr_expect_eq(parse_n(five, strlen(five), &small, &req, &status), SL_ERR);
    cr_expect_eq(status, 431);
    check_prefixes(five, strlen(five), &small, SL_ERR, 431);
}

Test(http_parse, header_count_capped_by_array_size)
{
    /* max_headers above the array size must not overflow headers[] */
    struct sl_http_limits big = {.max_request_line = 8192, .max_header_size = 1 << 16,
                                 .max_headers = 1000};
    size_t cap = 64 + (SL_HTTP_MAX_HEADERS + 1) * 16;
    char *raw = malloc(cap);
    size_t n = (size_t)sprintf(raw, "GET / HTTP/1.1\r\nHost: h\r\n");
    for (int i = 1; i < SL_HTTP_MAX_HEADERS; i++)
        n += (size_t)sprintf(raw + n, "X-%d: v\r\n", i);
    n += (size_t)sprintf(raw + n, "\r\n");
    struct sl_request req;
    int status;
    cr_expect_eq(parse_n(raw, n, &big, &req, &status), (int)n);
    cr_expect_eq(req.nheaders, SL_HTTP_MAX_HEADERS);
    n -= 2;
    n += (size_t)sprintf(raw + n, "X-last: v\r\n\r\n");
    cr_expect_eq(parse_n(raw, n, &big, &req, &status), SL_ERR);
    cr_expect_eq(status, 431);
    free(raw);
}

/* The method, target, field names and values are scanned several bytes at a
 * time; a run of every length from 1 to 20 ends exactly where it should, and
 * a wrong byte at every offset of it (the first, one inside a group, the
 * last) is found, also when it is the last byte of the buffer. */
Test(http_parse, runs_end_exactly_at_every_length_and_offset)
{
    /* where the run goes, a byte of its class, and one not in it */
    static const struct {
        const char *fmt; /* %s: the run */
        char good, bad;
    } place[] = {
        /* 0: the method, 1-3: the target, 4: a field name, 5-: a value */
        {"%s / HTTP/1.1\r\nHost: h\r\n\r\n", 'G', '/'},
        {"GET /%s HTTP/1.1\r\nHost: h\r\n\r\n", 'a', '\x7f'},
        {"GET /%s HTTP/1.1\r\nHost: h\r\n\r\n", '!', ' '},
        {"GET /%s HTTP/1.1\r\nHost: h\r\n\r\n", '~', '\x80'},
        {"GET / HTTP/1.1\r\nHost: h\r\nX%s: v\r\n\r\n", 'a', '@'},
        {"GET / HTTP/1.1\r\nHost: h\r\nX: %s\r\n\r\n", 'a', '\x01'},
        {"GET / HTTP/1.1\r\nHost: h\r\nX: %s\r\n\r\n", '\xe9', '\x00'},
        {"GET / HTTP/1.1\r\nHost: h\r\nX: %s\r\n\r\n", '~', '\x7f'},
        {"GET / HTTP/1.1\r\nHost: h\r\nX: %s\r\n\r\n", '!', '\x1f'},
        {"GET / HTTP/1.1\r\nHost: h\r\nX: %s\r\n\r\n", '\xff', '\r'},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(place); i++) {
        for (size_t n = 1; n <= 20; n++) {
            char run[32], raw[128];
            memset(run, place[i].good, n);
            run[n] = '\0';
            size_t len = (size_t)snprintf(raw, sizeof(raw), place[i].fmt, run);
            const char *at = strstr(raw, run);
            struct sl_request req;
            int status;
            cr_assert_eq(parse_n(raw, len, &lim, &req, &status), (int)len, "%s",
                         show(raw, len));
            size_t got = i == 0   ? req.method_name.n
                         : i <= 3 ? req.target.n - 1
                         : i == 4 ? req.headers[1].name.n - 1
                                  : req.headers[1].value.n;
            /* allowed but rare value bytes inside a value: HTAB, SP, obs-text */
            for (size_t k = 1; i >= 5 && k + 1 < n; k++) {
                static const char odd[] = {'\t', ' ', '\x80', '\xff', '~', '!'};
                for (size_t j = 0; j < sizeof(odd); j++) {
                    char ok[128];
                    memcpy(ok, raw, len);
                    ok[at - raw + k] = odd[j];
                    cr_expect_eq(parse_n(ok, len, &lim, &req, &status), (int)len, "%s",
                                 show(ok, len));
                    cr_expect_eq(req.headers[1].value.n, n, "%s", show(ok, len));
                }
            }
            cr_expect_eq(got, n, "%s: run of %zu", show(raw, len), got);
            for (size_t k = 0; k < n; k++) {
                char bad[128];
                memcpy(bad, raw, len);
                bad[at - raw + k] = place[i].bad;
                cr_expect_eq(parse_n(bad, len, &lim, &req, &status), SL_ERR, "%s",
                             show(bad, len));
                cr_expect_eq(status, 400, "%s: status %d", show(bad, len), status);
                /* the wrong byte as the last one received decides too (a CR
                   there may still start a CRLF, an SP end the target) */
                if (place[i].bad == '\r' || place[i].bad == ' ')
                    continue;
                size_t cut = (size_t)(at - raw) + k + 1;
                cr_expect_eq(parse_n(bad, cut, &lim, &req, &status), SL_ERR, "%s",
                             show(bad, cut));
            }
        }
    }
}

/* Did the field NAME: VALUE (the only one besides Host: h) take effect? */
static bool field_took_effect(const char *name, const char *value, int *rc)
{
    char raw[256];
    size_t len = (size_t)snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: h\r\n%s: %s\r\n\r\n",
                                  name, value);
    struct sl_request req;
    int status;
    *rc = parse_n(raw, len, &lim, &req, &status);
    if (*rc == SL_ERR)
        return status == 400; /* a second Host, a Transfer-Encoding with nothing to frame */
    return req.range.n || req.if_match.n || req.if_range.n || req.if_none_match.n ||
           req.accept_encoding.n || req.if_modified_since.n || req.if_unmodified_since.n ||
           req.content_length >= 0 || req.has_transfer_encoding || req.expect_continue ||
           !req.keepalive;
}

/* Known field names and the tokens of Connection and Expect are compared a
 * word at a time, case-insensitively: every name matches in any case, and a
 * name or token that differs in any one byte (first, inside a word, in the
 * overlapping last word, last) does not. */
Test(http_parse, known_names_and_tokens_match_exactly_in_any_case)
{
    static const struct {
        const char *name, *value;
        bool vary_value; /* vary the token in the value instead of the name */
    } known[] = {
        {"host", "h", false},
        {"range", "bytes=0-1", false},
        {"expect", "100-continue", false},
        {"if-match", "*", false},
        {"if-range", "\"a\"", false},
        {"connection", "close", false},
        {"if-none-match", "\"a\"", false},
        {"content-length", "0", false},
        {"accept-encoding", "gzip", false},
        {"transfer-encoding", "chunked", false},
        {"if-modified-since", "x", false},
        {"if-unmodified-since", "x", false},
        {"expect", "100-continue", true},
        {"connection", "close", true},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(known); i++) {
        char name[32], value[32];
        const char *word = known[i].vary_value ? known[i].value : known[i].name;
        size_t n = strlen(word);
        for (int upper = 0; upper <= 1; upper++) {
            char *w = known[i].vary_value ? value : name;
            snprintf(name, sizeof(name), "%s", known[i].name);
            snprintf(value, sizeof(value), "%s", known[i].value);
            for (size_t k = 0; upper && k < n; k++)
                w[k] = (char)toupper((unsigned char)w[k]);
            int rc;
            cr_expect(field_took_effect(name, value, &rc), "%s: %s (rc %d)", name, value, rc);
            for (size_t k = 0; k < n; k++) {
                char keep = w[k];
                w[k] = tolower((unsigned char)keep) == 'x' ? 'y' : 'x';
                cr_expect_not(field_took_effect(name, value, &rc), "%s: %s (rc %d)", name,
                              value, rc);
                w[k] = keep;
            }
        }
    }
    /* keep-alive in HTTP/1.0, where keepalive is false without it */
    const char *ka[] = {"keep-alive", "KEEP-ALIVE", "Keep-Alive"};
    for (size_t i = 0; i < SL_ARRAY_LEN(ka); i++) {
        char raw[128], tok[16];
        snprintf(tok, sizeof(tok), "%s", ka[i]);
        for (size_t k = 0; k <= strlen(tok); k++) {
            char keep = tok[k];
            if (k < strlen(tok))
                tok[k] = 'x';
            size_t len = (size_t)snprintf(raw, sizeof(raw),
                                          "GET / HTTP/1.0\r\nConnection: %s\r\n\r\n", tok);
            struct sl_request req;
            int status;
            cr_assert_eq(parse_n(raw, len, &lim, &req, &status), (int)len);
            cr_expect_eq(req.keepalive, k == strlen(tok), "%s", show(raw, len));
            tok[k] = keep;
        }
    }
}

/* "HTTP/1.x" is checked whole when all of it is there and byte by byte
 * otherwise: every version string gets the same verdict both ways, at the
 * end of the buffer as well as before the line end. */
Test(http_parse, versions_whole_and_byte_by_byte)
{
    static const struct {
        const char *v;
        int rc_or_status; /* the version (10, 11) or the error status */
    } cases[] = {
        {"HTTP/1.0", 10}, {"HTTP/1.1", 11}, {"HTTP/1.9", 11}, {"HTTP/2.0", 505},
        {"HTTP/0.9", 505}, {"HTTP/9.1", 505}, {"HTTP/1.x", 400}, {"HTTP/1.:", 400},
        {"HTTP/1./", 400}, {"HTTP/1,1", 400}, {"HTTP/11.", 400}, {"http/1.1", 400},
        {"HTTQ/1.1", 400}, {"HTTP/1.1x", 400}, {"HTTP/1.", 400}, {"HTTP/1", 400},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        char raw[128];
        size_t len = (size_t)snprintf(raw, sizeof(raw), "GET / %s\r\nHost: h\r\n\r\n",
                                      cases[i].v);
        struct sl_request req;
        int status;
        int rc = parse_n(raw, len, &lim, &req, &status);
        if (cases[i].rc_or_status < 100) {
            cr_expect_eq(rc, (int)len, "%s: rc %d status %d", cases[i].v, rc, status);
            cr_expect_eq(req.version, cases[i].rc_or_status, "%s", cases[i].v);
            check_prefixes(raw, len, &lim, (int)len, 0);
        } else {
            cr_expect_eq(rc, SL_ERR, "%s", cases[i].v);
            cr_expect_eq(status, cases[i].rc_or_status, "%s: status %d", cases[i].v, status);
            check_prefixes(raw, len, &lim, SL_ERR, cases[i].rc_or_status);
        }
        /* the line ends right after the version: bare LF, and the buffer's end */
        len = (size_t)snprintf(raw, sizeof(raw), "GET / %s", cases[i].v);
        rc = parse_n(raw, len, &lim, &req, &status);
        cr_expect(rc == SL_AGAIN || (rc == SL_ERR && status == cases[i].rc_or_status),
                  "%s at the end: rc %d status %d", cases[i].v, rc, status);
    }
}

/* A host is scanned in runs of reg-name bytes between %-escapes. */
Test(http_parse, host_escapes_between_runs)
{
    const char *good[] = {"%41", "%41b", "a%41", "a%41b", "%41%42", "abcdefghij%41abcdefghij",
                          "%41:80", "a%41:", "abcdefghijk"};
    const char *bad[] = {"%", "a%", "a%4", "%4:80", "a%4g", "%41%", ":80", "a:b", "a:8:0",
                         "abcdefghij%", "abcdefgh%zz", "a%41 b", "%41@"};
    for (size_t i = 0; i < SL_ARRAY_LEN(good) + SL_ARRAY_LEN(bad); i++) {
        bool ok = i < SL_ARRAY_LEN(good);
        const char *h = ok ? good[i] : bad[i - SL_ARRAY_LEN(good)];
        char raw[128];
        size_t len = (size_t)snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", h);
        struct sl_request req;
        int status;
        int rc = parse_n(raw, len, &lim, &req, &status);
        if (ok) {
            cr_expect_eq(rc, (int)len, "\"%s\": status %d", h, status);
            cr_expect(str_is(req.host, h), "\"%s\"", h);
        } else {
            cr_expect_eq(rc, SL_ERR, "\"%s\"", h);
            cr_expect_eq(status, 400, "\"%s\"", h);
        }
    }
}

/* ---- sl_http_normalize_path ---------------------------------------------- */

struct norm_case {
    const char *target;
    const char *out;
    bool slash;
};

static const struct norm_case norm_ok[] = {
    {"/", "", true},
    {"/a/b", "a/b", false},
    {"/a/./b", "a/b", false},
    {"/a/../b", "b", false},
    {"/a/b/", "a/b/", true},
    {"/docs/", "docs/", true},
    {"//a//b", "a/b", false},
    {"/a//", "a/", true},
    {"//", "", true},
    {"/a%20b", "a b", false},
    {"/%7Euser", "~user", false},
    {"/%7euser/x", "~user/x", false},
    {"/%C3%A9t%c3%a9", "\xc3\xa9t\xc3\xa9", false},
    {"/a?x=1", "a", false},
    {"/a/?x=/../..", "a/", true},
    {"/a#f", "a", false},
    {"/?", "", true},
    {"/a%3Fb", "a?b", false},
    {"/a%23b", "a#b", false},
    {"/a%25b", "a%b", false},
    {"http://h:80/x", "x", false},
    {"HTTP://h", "", true},
    {"http://h/", "", true},
    {"hTTps://h/a/b/", "a/b/", true},
    {"http://h/a/../b?q", "b", false},
    {"http://h?x=/y", "", true},
    {"http://h#/y", "", true},
    {"/a/.", "a/", true},
    {"/a/..", "", true},
    {"/a/b/..", "a/", true},
    {"/a/b/../", "a/", true},
    {"/a/b/../../c", "c", false},
    {"/./a", "a", false},
    {"/.", "", true},
    {"/a/%2e/b", "a/b", false},
    {"/a/%2E%2e/b", "b", false},
    {"/...", "...", false},
    {"/..a/a..", "..a/a..", false},
    {"/.hidden", ".hidden", false},
    {"/a.b/c.d", "a.b/c.d", false},
    {"/a\\b", "a\\b", false},
    /* where the one-pass fast path for plain targets hands over to the
       general one: '%', "/." and "//" first, inside and last; the query or
       fragment cut before them; absolute-form paths */
    {"/abc%41", "abcA", false},
    {"/%41bc", "Abc", false},
    {"/a.", "a.", false},
    {"/a./b.", "a./b.", false},
    {"/a/.b", "a/.b", false},
    {"/a/b/.", "a/b/", true},
    {"/a/b/./", "a/b/", true},
    {"//abc", "abc", false},
    {"/abc//", "abc/", true},
    {"/a?/../..", "a", false},
    {"/a/?x", "a/", true},
    {"/a#//", "a", false},
    {"/?%zz", "", true},
    {"/a?%zz", "a", false},
    {"/a?\x01", "a", false},
    {"/a?", "a", false},
    {"/caf\xc3\xa9", "caf\xc3\xa9", false},
    {"/a b", "a b", false},
    {"http://h", "", true},
    {"http://h?x", "", true},
    {"http://h/a/b", "a/b", false},
    {"HTTPS://h/a/", "a/", true},
    {"http://h/./a", "a", false},
};

Test(normalize, accepted_targets)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(norm_ok); i++) {
        const struct norm_case *c = &norm_ok[i];
        char out[256];
        memset(out, 'Z', sizeof(out));
        bool slash = !c->slash;
        int status = -1;
        int rc = sl_http_normalize_path(c->target, strlen(c->target), out, sizeof(out), &slash,
                                        &status);
        cr_expect_eq(rc, SL_OK, "\"%s\": rc %d status %d", c->target, rc, status);
        if (rc != SL_OK)
            continue;
        cr_expect_str_eq(out, c->out, "\"%s\"", c->target);
        cr_expect_eq(status, 0, "\"%s\": status %d", c->target, status);
        cr_expect_eq(slash, c->slash, "\"%s\": trailing_slash %d", c->target, slash);
        /* documented: a directory's OUT ends in '/', except the root's "" */
        size_t n = strlen(out);
        cr_expect_eq(n > 0 && out[n - 1] == '/', slash && n > 0, "\"%s\"", c->target);
    }
}

struct norm_bad {
    const char *target;
    size_t len; /* 0: strlen */
};

static const struct norm_bad norm_400[] = {
    {"/..", 0},
    {"/../x", 0},
    {"/a/../../x", 0},
    {"/a/b/../../../x", 0},
    {"/%2e%2e/x", 0},
    {"/%2E%2E/", 0},
    {"/.%2e", 0},
    {"/a/%2e%2e/%2e%2e/etc/passwd", 0},
    {"/a%2fb", 0},
    {"/a%2F..%2F..%2Fetc", 0},
    {"/a%00", 0},
    {"/a%00.html", 0},
    {"/%zz", 0},
    {"/%4", 0},
    {"/%", 0},
    {"/%%41", 0},
    {"/%g0", 0},
    {"*", 0},
    {"x", 0},
    {"", 0},
    {"a/b", 0},
    {"/a%0d%0a", 0},
    {"/a%0A", 0},
    {"/a%7f", 0},
    {"/a%1b", 0},
    {"/a\tb", 0},
    {"/a\0b", 4},
    {"http:/x", 0},
    {"http:", 0},
    {"ftp://h/x", 0},
    {"http://h/../x", 0},
    {"http://h/%2e%2e", 0},
    {"/abc%", 0},
    {"/abc%4", 0},
    {"/abc\x01", 0},
    {"/abc\x7f", 0},
    {"/\x1f" "abc", 0},
    {"/a/b/..\x7f/..", 0},
};

Test(normalize, rejected_targets_are_400)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(norm_400); i++) {
        const struct norm_bad *c = &norm_400[i];
        size_t len = c->len ? c->len : strlen(c->target);
        char *t = malloc(len ? len : 1); /* exact size: ASan sees over-reads */
        memcpy(t, c->target, len);
        char out[256];
        bool slash = false;
        int status = -1;
        int rc = sl_http_normalize_path(t, len, out, sizeof(out), &slash, &status);
        cr_expect_eq(rc, SL_ERR, "\"%s\": rc %d", show(c->target, len), rc);
        cr_expect_eq(status, 400, "\"%s\": status %d", show(c->target, len), status);
        free(t);
    }
}

Test(normalize, output_too_small_is_414_and_never_overflows)
{
    struct {
        const char *target;
        size_t need; /* smallest OUTSZ that works */
    } cases[] = {
        {"/", 1},     {"/abcd", 5},  {"/abc/", 5},      {"/a/b", 4},
        {"/a/b/", 5}, {"/x/../y", 2}, {"/%41%42%43", 4}, {"http://h/abc", 4},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        for (size_t sz = 0; sz <= cases[i].need + 1; sz++) {
            char *out = malloc(sz ? sz : 1); /* exact size for ASan */
            bool slash;
            int status = -1;
            int rc = sl_http_normalize_path(cases[i].target, strlen(cases[i].target), out, sz,
                                            &slash, &status);
            if (sz < cases[i].need) {
                cr_expect_eq(rc, SL_ERR, "\"%s\" outsz %zu", cases[i].target, sz);
                cr_expect_eq(status, 414, "\"%s\" outsz %zu: %d", cases[i].target, sz, status);
            } else {
                cr_expect_eq(rc, SL_OK, "\"%s\" outsz %zu", cases[i].target, sz);
                cr_expect_lt(strlen(out), sz);
            }
            free(out);
        }
    }
}

Test(normalize, long_segments_fit_when_out_does)
{
    char target[2100];
    target[0] = '/';
    memset(target + 1, 'a', 2000);
    char out[4096];
    bool slash;
    int status = -1;
    /* no limit of its own on a segment: the file system has NAME_MAX */
    cr_expect_eq(sl_http_normalize_path(target, 2001, out, sizeof(out), &slash, &status),
                 SL_OK);
    cr_expect_eq(strlen(out), 2000);
    cr_expect_eq(status, 0);
    cr_expect_eq(sl_http_normalize_path(target, 2001, out, 2000, &slash, &status), SL_ERR);
    cr_expect_eq(status, 414);
    /* many short segments fit as long as OUT does */
    for (int i = 0; i < 1000; i++)
        memcpy(target + 2 * i, "/b", 2);
    cr_expect_eq(sl_http_normalize_path(target, 2000, out, sizeof(out), &slash, &status),
                 SL_OK);
    cr_expect_eq(strlen(out), 1999);
    cr_expect_not(slash);
}

/* Plain targets of every length from 1 to 20 (across the scan's groups of
 * eight) come out as they are; a byte that needs the general path ('%',
 * "/." or "//", a control byte) at any offset gives its result. */
Test(normalize, plain_targets_at_every_length_and_offset)
{
    for (size_t n = 1; n <= 20; n++) {
        char t[32], out[64];
        t[0] = '/';
        memset(t + 1, 'z', n); /* not a hex digit: "%zz" stays bad */
        bool slash = true;
        int status = -1;
        cr_assert_eq(sl_http_normalize_path(t, n + 1, out, sizeof(out), &slash, &status), SL_OK);
        cr_expect_eq(strlen(out), n);
        cr_expect_not(slash);
        /* OUTSZ n + 1 is exactly enough, n is not */
        cr_expect_eq(sl_http_normalize_path(t, n + 1, out, n + 1, &slash, &status), SL_OK);
        cr_expect_eq(sl_http_normalize_path(t, n + 1, out, n, &slash, &status), SL_ERR);
        cr_expect_eq(status, 414);
        for (size_t k = 1; k <= n; k++) {
            char u[32];
            memcpy(u, t, n + 1);
            u[k] = '\x01';
            cr_expect_eq(sl_http_normalize_path(u, n + 1, out, sizeof(out), &slash, &status),
                         SL_ERR, "control at %zu of %zu", k, n);
            cr_expect_eq(status, 400);
            u[k] = '%';
            cr_expect_eq(sl_http_normalize_path(u, n + 1, out, sizeof(out), &slash, &status),
                         SL_ERR, "'%%' at %zu of %zu", k, n);
            cr_expect_eq(status, 400);
            /* "/zz/zzz" + "/..": the general path keeps "zz/"; an empty
               segment ('/' first or last) is merged, so ".." leaves the root */
            u[k] = '/';
            memcpy(u + n + 1, "/..", 3);
            if (n == 1) { /* "//..": nothing to climb out of */
                cr_expect_eq(sl_http_normalize_path(u, n + 4, out, sizeof(out), &slash, &status),
                             SL_ERR);
                continue;
            }
            cr_expect_eq(sl_http_normalize_path(u, n + 4, out, sizeof(out), &slash, &status),
                         SL_OK, "'/' at %zu of %zu", k, n);
            char want[32] = "";
            if (k > 1 && k < n) {
                memset(want, 'z', k - 1);
                memcpy(want + k - 1, "/", 2);
            }
            cr_expect_str_eq(out, want, "'/' at %zu of %zu", k, n);
            cr_expect(slash);
        }
    }
}

/* ---- dates --------------------------------------------------------------- */

Test(date, format_known_times)
{
    struct {
        time_t t;
        const char *s;
    } cases[] = {
        {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
        {784111777, "Sun, 06 Nov 1994 08:49:37 GMT"},
        {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
        {4102444799, "Thu, 31 Dec 2099 23:59:59 GMT"},
        {-1, "Wed, 31 Dec 1969 23:59:59 GMT"},
        {253402300799, "Fri, 31 Dec 9999 23:59:59 GMT"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        char out[SL_HTTP_DATE_LEN + 8];
        memset(out, 'Z', sizeof(out));
        sl_http_format_date(cases[i].t, out);
        cr_expect_str_eq(out, cases[i].s);
        cr_expect_eq(out[SL_HTTP_DATE_LEN + 1], 'Z', "writes no more than LEN + NUL");
        time_t back;
        cr_expect_eq(sl_http_parse_date(out, SL_HTTP_DATE_LEN, &back), SL_OK);
        cr_expect_eq(back, cases[i].t, "round trip of %s", out);
    }
}

Test(date, format_out_of_range_is_the_epoch)
{
    time_t ts[] = {253402300800 /* year 10000 */, (time_t)1 << 62, -62167219201 /* year -1 */,
                   -((time_t)1 << 62)};
    for (size_t i = 0; i < SL_ARRAY_LEN(ts); i++) {
        char out[SL_HTTP_DATE_LEN + 1];
        sl_http_format_date(ts[i], out);
        cr_expect_str_eq(out, "Thu, 01 Jan 1970 00:00:00 GMT", "%lld", (long long)ts[i]);
    }
}

Test(date, parse_three_formats)
{
    struct {
        const char *s;
        time_t t;
    } cases[] = {
        {"Sun, 06 Nov 1994 08:49:37 GMT", 784111777},
        {"Sunday, 06-Nov-94 08:49:37 GMT", 784111777},
        {"Sun Nov  6 08:49:37 1994", 784111777},
        {"Sun Nov 06 08:49:37 1994", 784111777},
        {"Thu, 01 Jan 1970 00:00:00 GMT", 0},
        {"Thursday, 01-Jan-70 00:00:00 GMT", 0},
        {"Thu Jan  1 00:00:00 1970", 0},
        {"Tue, 29 Feb 2000 00:00:00 GMT", 951782400},
        {"Wed Nov 16 08:49:37 1994", 784111777 + 10 * 86400},
        /* RFC 850 two-digit years: 00-69 are 20xx (RFC 9110 5.6.7, within 50 years) */
        {"Friday, 01-Jan-38 00:00:00 GMT", 2145916800},
        {"Thu, 31 Dec 2099 23:59:59 GMT", 4102444799},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        time_t t = 12345;
        int rc = sl_http_parse_date(cases[i].s, strlen(cases[i].s), &t);
        cr_expect_eq(rc, SL_OK, "\"%s\"", cases[i].s);
        cr_expect_eq(t, cases[i].t, "\"%s\": %lld", cases[i].s, (long long)t);
    }
}

Test(date, parse_uses_only_n_bytes)
{
    const char s[] = "Sun, 06 Nov 1994 08:49:37 GMTxyz";
    time_t t;
    cr_expect_eq(sl_http_parse_date(s, SL_HTTP_DATE_LEN, &t), SL_OK);
    cr_expect_eq(t, 784111777);
    cr_expect_eq(sl_http_parse_date(s, sizeof(s) - 1, &t), SL_ERR);
}

Test(date, parse_rejects_garbage)
{
    const char *bad[] = {
        "",
        "garbage",
        "0",
        "784111777",
        "Sun, 06 Nov 1994 08:49:37",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 gmt",
        "Sun, 06 Nov 1994 08:49:37 GMT ",
        " Sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMTX",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 06 nov 1994 08:49:37 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 32 Nov 1994 08:49:37 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 29 Feb 1900 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, +6 Nov 1994 08:49:37 GMT",
        "Sun, -6 Nov 1994 08:49:37 GMT",
        "Sun,06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:3x GMT",
        "Sun, 06 Nov 1994 08-49-37 GMT",
        "Sun, 06  Nov 1994 08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37",
        "Sunday, 6-Nov-94 08:49:37 GMT",
        "Someday, 06-Nov-94 08:49:37 GMT",
        "Sunday 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 94",
        "Sun Nov 6 08:49:37 1994",
        "Sun Nov  6 08:49:37 1994 GMT",
        "Sun Nov   6 08:49:37 1994",
        "Sun Nov  x 08:49:37 1994",
        "Sun Nov 36 08:49:37 1994",
        "Sun, 06 Nov 1994 08:49:37 GMT                                      long",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        time_t t = 12345;
        cr_expect_eq(sl_http_parse_date(bad[i], strlen(bad[i]), &t), SL_ERR, "\"%s\" -> %lld",
                     bad[i], (long long)t);
    }
    time_t t;
    const char nul[] = "Sun, 06 Nov 1994\0 08:49:37 GMT";
    cr_expect_eq(sl_http_parse_date(nul, sizeof(nul) - 1, &t), SL_ERR, "embedded NUL");
}

Test(date, now_is_well_formed_and_current)
{
    const char *now = sl_http_date_now();
    cr_assert_not_null(now);
    cr_expect_eq(strlen(now), SL_HTTP_DATE_LEN);
    cr_expect_eq(memcmp(now + SL_HTTP_DATE_LEN - 4, " GMT", 4), 0);
    time_t t;
    cr_assert_eq(sl_http_parse_date(now, strlen(now), &t), SL_OK, "\"%s\"", now);
    time_t real = time(NULL);
    cr_expect(t >= real - 2 && t <= real + 1, "%s vs %lld", now, (long long)real);
    char fmt[SL_HTTP_DATE_LEN + 1];
    sl_http_format_date(t, fmt);
    cr_expect_str_eq(now, fmt);
    cr_expect_eq(sl_http_date_now(), now, "one buffer per thread");
}

/* ---- error responses and reasons ----------------------------------------- */

/* Splits a response: returns the header section length (through CRLFCRLF). */
static size_t head_len(const char *r, size_t n)
{
    const char *e = memmem(r, n, "\r\n\r\n", 4);
    cr_assert_not_null(e, "no end of head in \"%s\"", show(r, n));
    return (size_t)(e - r) + 4;
}

static long content_length_of(const char *r, size_t hl)
{
    const char *cl = memmem(r, hl, "\r\nContent-Length: ", 18);
    cr_assert_not_null(cl);
    return strtol(cl + 18, NULL, 10);
}

Test(error_response, status_line_length_connection)
{
    int statuses[] = {400, 404, 414, 431, 500, 501, 505};
    for (size_t i = 0; i < SL_ARRAY_LEN(statuses); i++) {
        char out[2048];
        size_t n = sl_http_error_response(out, sizeof(out), statuses[i], false, false, NULL);
        cr_assert_gt(n, 0);
        cr_expect_eq(strlen(out), n);
        char want[64];
        snprintf(want, sizeof(want), "HTTP/1.1 %d %s\r\n", statuses[i],
                 sl_http_reason(statuses[i]));
        cr_expect_eq(strncmp(out, want, strlen(want)), 0, "%s", show(out, n));
        size_t hl = head_len(out, n);
        cr_expect_eq(content_length_of(out, hl), (long)(n - hl), "body length");
        cr_expect_not_null(memmem(out, hl, "\r\nConnection: close\r\n", 21));
        cr_expect_not_null(memmem(out, hl, "\r\nContent-Type: text/html\r\n", 27));
        cr_expect_not_null(memmem(out, hl, "\r\nDate: ", 8));
        cr_expect_not_null(memmem(out, hl, "\r\nServer: sluice\r\n", 18));
        char title[64];
        snprintf(title, sizeof(title), "%d %s", statuses[i], sl_http_reason(statuses[i]));
        cr_expect_not_null(strstr(out + hl, title), "body names the status");
    }
}

Test(error_response, keepalive_extra_and_head_only)
{
    char full[2048], head[2048];
    const char *extra = "Location: /docs/\r\nRetry-After: 1\r\n";
    size_t nf = sl_http_error_response(full, sizeof(full), 301, true, false, extra);
    size_t nh = sl_http_error_response(head, sizeof(head), 301, true, true, extra);
    cr_assert_gt(nf, 0);
    cr_assert_gt(nh, 0);
    size_t hlf = head_len(full, nf), hlh = head_len(head, nh);
    cr_expect_not_null(memmem(full, hlf, "\r\nConnection: keep-alive\r\n", 26));
    cr_expect_not_null(memmem(full, hlf, "\r\nLocation: /docs/\r\nRetry-After: 1\r\n", 36),
                       "extra lines are in the header section");
    cr_expect_eq(nh, hlh, "HEAD: no body");
    cr_expect_eq(content_length_of(head, hlh), (long)(nf - hlf),
                 "HEAD keeps the GET Content-Length");
    cr_expect_eq(hlh, hlf);
    cr_expect(strncmp(full, "HTTP/1.1 301 Moved Permanently\r\n", 32) == 0);
}

Test(error_response, too_small_buffer_returns_zero)
{
    char out[2048];
    size_t n = sl_http_error_response(out, sizeof(out), 404, false, false, NULL);
    cr_assert_gt(n, 0);
    char *exact = malloc(n + 1);
    cr_expect_eq(sl_http_error_response(exact, n + 1, 404, false, false, NULL), n,
                 "room for the text and its NUL");
    cr_expect_eq(sl_http_error_response(exact, n, 404, false, false, NULL), 0);
    cr_expect_eq(sl_http_error_response(exact, 10, 404, false, false, NULL), 0);
    cr_expect_eq(sl_http_error_response(exact, 0, 404, false, false, NULL), 0);
    free(exact);
}

Test(reason, phrases)
{
    struct {
        int status;
        const char *reason;
    } cases[] = {
        {200, "OK"},
        {206, "Partial Content"},
        {304, "Not Modified"},
        {400, "Bad Request"},
        {404, "Not Found"},
        {414, "URI Too Long"},
        {431, "Request Header Fields Too Large"},
        {501, "Not Implemented"},
        {505, "HTTP Version Not Supported"},
        {0, "Unknown"},
        {-1, "Unknown"},
        {299, "Unknown"},
        {999, "Unknown"},
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++)
        cr_expect_str_eq(sl_http_reason(cases[i].status), cases[i].reason, "%d",
                         cases[i].status);
}

Test(str, ieq)
{
    struct sl_str s = {"Keep-Alive, more", 10};
    cr_expect(sl_str_ieq(s, "keep-alive"));
    cr_expect(sl_str_ieq(s, "KEEP-ALIVE"));
    cr_expect_not(sl_str_ieq(s, "keep-aliv"));
    cr_expect_not(sl_str_ieq(s, "keep-alive,"));
    cr_expect(sl_str_ieq((struct sl_str){NULL, 0}, ""));
    cr_expect_not(sl_str_ieq((struct sl_str){NULL, 0}, "x"));
}

/* ---- verdicts do not depend on how the bytes were split --------------------- */

/* Every proper prefix of BUF[0..LEN) gives SL_AGAIN or BUF's own verdict. */
static void check_split_independent(const char *buf, size_t len, const struct sl_http_limits *l)
{
    struct sl_request req;
    int full_status, status;
    int full = parse_n(buf, len, l, &req, &full_status);
    cr_assert(full == SL_AGAIN || full == SL_ERR || (full > 0 && (size_t)full <= len),
              "\"%s\": rc %d", show(buf, len), full);
    for (size_t k = 0; k < len; k++) {
        int rc = parse_n(buf, k, l, &req, &status);
        if (full > 0 && (size_t)full <= k) {
            cr_expect_eq(rc, full, "\"%s\" prefix %zu: rc %d, whole %d", show(buf, len), k, rc,
                         full);
        } else if (rc != SL_AGAIN) {
            cr_expect(rc == SL_ERR && full == SL_ERR && status == full_status,
                      "\"%s\" prefix %zu: rc %d status %d, whole rc %d status %d",
                      show(buf, len), k, rc, status, full, full_status);
        }
    }
}

Test(http_parse, request_line_limit_boundary_is_split_independent)
{
    /* A byte of every kind at every offset around max_request_line (32). */
    const char bytes[] = {'a', ' ', '\r', '\n', '\x01', '\0', '\t', '\x7f', '\xc3'};
    for (size_t off = 24; off <= 36; off++) {
        for (size_t b = 0; b < sizeof(bytes); b++) {
            char raw[128];
            memset(raw, 'a', sizeof(raw));
            memcpy(raw, "GET /", 5);
            raw[off] = bytes[b];
            const char *tail = " HTTP/1.1\r\nHost: h\r\n\r\n";
            memcpy(raw + 40, tail, strlen(tail));
            check_split_independent(raw, 40 + strlen(tail), &small);
        }
    }
    /* the version's digits and line end at the boundary */
    for (size_t pad = 0; pad < 12; pad++) {
        char raw[128];
        int n = snprintf(raw, sizeof(raw), "GET /%.*s HTTP/1.1\r\nHost: h\r\n\r\n", (int)(10 + pad),
                         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        check_split_independent(raw, (size_t)n, &small);
        n = snprintf(raw, sizeof(raw), "GET /%.*s HTTP/2.0\r\n\r\n", (int)(10 + pad),
                     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        check_split_independent(raw, (size_t)n, &small);
        n = snprintf(raw, sizeof(raw), "GET /%.*s HTTP/1.1\rX\r\n\r\n", (int)(10 + pad),
                     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        check_split_independent(raw, (size_t)n, &small);
    }
}

/* Small deterministic PRNG (xorshift), so failures reproduce. */
static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

Test(http_parse, mutated_requests_are_split_independent)
{
    const char *seeds[] = {
        "GET /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
        "\r\nHEAD /x?y HTTP/1.0\nConnection: keep-alive\n\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET http://h/ HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\nGET / HTTP/1.1\r\n",
    };
    const char alphabet[] = "\r\n :\t\0\x01\x7f\xff,5aA/.HTTP1";
    for (int iter = 0; iter < 3000; iter++) {
        const char *seed = seeds[rnd() % SL_ARRAY_LEN(seeds)];
        char buf[160];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        for (int m = (int)(rnd() % 4); m >= 0; m--) {
            size_t at = (size_t)(rnd() % n);
            char c = alphabet[rnd() % (sizeof(alphabet) - 1)];
            switch (rnd() % 3) {
            case 0: /* replace */
                buf[at] = c;
                break;
            case 1: /* insert */
                if (n + 1 < sizeof(buf)) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = c;
                    n++;
                }
                break;
            default: /* delete */
                if (n > 1) {
                    memmove(buf + at, buf + at + 1, n - at - 1);
                    n--;
                }
            }
        }
        const struct sl_http_limits *l = rnd() % 2 ? &small : &lim;
        check_split_independent(buf, n, l);
        free_copies();
    }
}

/* ---- more response text ----------------------------------------------------- */

Test(error_response, no_content_statuses_have_no_body_or_length)
{
    int statuses[] = {100, 204, 304};
    for (size_t i = 0; i < SL_ARRAY_LEN(statuses); i++) {
        char out[1024];
        size_t n = sl_http_error_response(out, sizeof(out), statuses[i], true, false,
                                          "ETag: \"x\"\r\n");
        cr_assert_gt(n, 0);
        size_t hl = head_len(out, n);
        cr_expect_eq(hl, n, "%d: nothing after the head", statuses[i]);
        cr_expect_null(memmem(out, n, "Content-Length", 14), "%d", statuses[i]);
        cr_expect_null(memmem(out, n, "Content-Type", 12), "%d", statuses[i]);
        cr_expect_not_null(memmem(out, n, "\r\nETag: \"x\"\r\n\r\n", 15), "%d", statuses[i]);
        cr_expect_not_null(memmem(out, n, "\r\nConnection: keep-alive\r\n", 26));
    }
}

Test(date, rfc850_century_window)
{
    struct {
        const char *s;
        time_t t;
    } cases[] = {
        {"Tuesday, 01-Jan-69 00:00:00 GMT", 3124224000}, /* 2069 */
        {"Thursday, 01-Jan-70 00:00:00 GMT", 0},           /* 1970 */
        {"Saturday, 01-Jan-00 00:00:00 GMT", 946684800},   /* 2000 */
        {"Friday, 31-Dec-99 23:59:59 GMT", 946684799},     /* 1999 */
        {"Tuesday, 29-Feb-00 00:00:00 GMT", 951782400},    /* 2000 is a leap year */
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(cases); i++) {
        time_t t = 1;
        cr_expect_eq(sl_http_parse_date(cases[i].s, strlen(cases[i].s), &t), SL_OK, "%s",
                     cases[i].s);
        cr_expect_eq(t, cases[i].t, "%s: %lld", cases[i].s, (long long)t);
    }
    const char *bad[] = {"Monday, 29-Feb-99 00:00:00 GMT", "Monday, 01-Jan-9x 00:00:00 GMT",
                         "Mon, 01-Jan-99 00:00:00 GMT", "monday, 01-Jan-99 00:00:00 GMT"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        time_t t;
        cr_expect_eq(sl_http_parse_date(bad[i], strlen(bad[i]), &t), SL_ERR, "%s", bad[i]);
    }
}

Test(date, now_is_cached_per_thread_and_follows_the_clock)
{
    const char *a = sl_http_date_now();
    char first[SL_HTTP_DATE_LEN + 1];
    memcpy(first, a, sizeof(first));
    time_t t0 = time(NULL);
    /* wait for the second to change, then the text must follow */
    while (time(NULL) == t0)
        ;
    const char *b = sl_http_date_now();
    cr_expect_eq(a, b, "same per-thread buffer");
    cr_expect_str_neq(b, first, "refreshed when the second changed");
    char want[SL_HTTP_DATE_LEN + 1];
    sl_http_format_date(time(NULL), want);
    cr_expect_str_eq(b, want);
}

Test(reason, every_status_sluice_sends)
{
    int statuses[] = {100, 101, 200, 204, 206, 301, 302, 304, 307, 308, 400, 403, 404, 405,
                      408, 411, 412, 413, 414, 416, 417, 431, 500, 501, 503, 505};
    for (size_t i = 0; i < SL_ARRAY_LEN(statuses); i++) {
        const char *r = sl_http_reason(statuses[i]);
        cr_expect_str_neq(r, "Unknown", "%d", statuses[i]);
        for (const char *c = r; *c; c++) /* reason-phrase: HTAB, SP, VCHAR */
            cr_expect((*c >= 0x20 && *c < 0x7f) || *c == '\t', "%d", statuses[i]);
    }
    cr_expect_str_eq(sl_http_reason(413), "Content Too Large");
    cr_expect_str_eq(sl_http_reason(416), "Range Not Satisfiable");
    cr_expect_str_eq(sl_http_reason(503), "Service Unavailable");
}
