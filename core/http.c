/* http.c: the HTTP/1.1 request parser, request-target normalization, dates and
 * error responses; see http.h. The parser is strict wherever leniency would let
 * two parsers disagree on where a request ends (RFC 9112 sections 2, 5, 6.3;
 * RFC 9110 5.5): request smuggling needs exactly such a disagreement. */
#include "core/http.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Character classes, one table lookup per byte on the hot path. */
#define C_TCHAR 1 /* token character (RFC 9110 5.6.2): methods, field names */
#define C_VCHAR 2 /* visible ASCII 0x21-0x7e: request-target */
#define C_FVAL 4  /* field value byte: SP, HTAB, VCHAR, obs-text (0x80-0xff) */
#define C_HOST 8  /* reg-name bytes but '%': unreserved, sub-delims (RFC 3986 3.2.2) */
#define C_PATH 16 /* path byte copied as is: not '%', '/', '?', '#', CTL, DEL */

static const unsigned char cls[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  4,  0,  0,  0,  0,  0,  0,  /* 0x00 */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
    20, 31, 22, 7,  31, 7,  31, 31, 30, 30, 31, 31, 30, 31, 31, 6,  /* 0x20 */
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 22, 30, 22, 30, 22, 6,  /* 0x30 */
    22, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, /* 0x40 */
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 22, 22, 22, 23, 31, /* 0x50 */
    23, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, /* 0x60 */
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 22, 23, 22, 31, 0,  /* 0x70 */
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, /* 0x80 */
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, /* 0x90 */
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, /* 0xa0 */
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, /* 0xb0 */
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, /* 0xc0 */
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, /* 0xd0 */
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, /* 0xe0 */
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, /* 0xf0 */
};

#define IS(c, k) (cls[(unsigned char)(c)] & (k))

/* The first byte in P[0..END) outside class K, or END. A head is a few long
 * runs of one class (the target, each field name and value), and this loop is
 * most of the parser's instructions: unrolled by eight, the bounds check runs
 * once per eight bytes instead of once per byte. Same answer as
 * `while (p < end && IS(*p, k)) p++`. */
static inline const char *span(const char *p, const char *end, unsigned k)
{
    for (; end - p >= 8; p += 8) {
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) /* a constant bound: no check against END */
            if (!IS(p[i], k))
                return p + i;
    }
    while (p < end && IS(*p, k))
        p++;
    return p;
}

static inline unsigned char lower(unsigned char c)
{
    return (unsigned char)((unsigned)(c - 'A') < 26u ? c | 0x20 : c);
}

static inline int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Does P[0..N) equal the lowercase literal LIT[0..N), ignoring case? */
static inline bool ieq_lower(const char *p, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)p[i]) != (unsigned char)lit[i])
            return false;
    return true;
}

static inline uint64_t load8(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t load4(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* ieq_lower for the bytes of a parsed field name or value (tchar, SP, HTAB,
 * VCHAR, obs-text), compared eight or four at a time. OR-ing 0x20 lowercases
 * A-Z, and among those bytes it maps nothing else onto what the literals hold
 * (lowercase letters, digits, '-'): the other bytes that OR onto them are
 * control bytes the parser has refused already (CR onto '-', 0x10-0x19 onto
 * the digits). The last word overlaps the one before it instead of falling
 * back to single bytes. LIT has at least N bytes. */
static inline bool tok_ieq(const char *p, const char *lit, size_t n)
{
    const uint64_t lc8 = 0x2020202020202020u;
    const uint32_t lc4 = 0x20202020u;
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n; i += 8)
            if ((load8(p + i) | lc8) != load8(lit + i))
                return false;
        return (load8(p + n - 8) | lc8) == load8(lit + n - 8);
    }
    if (n >= 4)
        return (load4(p) | lc4) == load4(lit) &&
               (load4(p + n - 4) | lc4) == load4(lit + n - 4);
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)p[i] | 0x20) != (unsigned char)lit[i])
            return false;
    return true;
}

/* span(P, END, K) for a class K that holds every byte from LO (0x20 or
 * 0x21) to 0x7e, eight bytes per step while a whole word is in that range, as
 * nearly every field value (C_FVAL, LO 0x20) and request-target (C_VCHAR,
 * LO 0x21) is. In (x - LO..) | (x + 0x01..) a byte's high bit ends up set
 * when the byte is below LO (the subtraction wraps) or 0x7f and above (the
 * addition reaches 0x80; 0xff wraps in the addition but not in the
 * subtraction). A borrow or carry into the next byte only comes from such a
 * byte, and the lowest such byte receives none, so the word test is exact. A
 * word that fails (the SP or CR ending the run, a control byte, or HTAB or
 * obs-text in a value, allowed but rare) is left to span(), which finds the
 * exact byte. */
static inline const char *span_ascii(const char *p, const char *end, unsigned char lo,
                                     unsigned k)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    for (; end - p >= 8; p += 8) {
        uint64_t x = load8(p), m = ((x - ones * lo) | (x + ones)) & highs;
        if (m != 0) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            /* The lowest flagged byte is exact (see above) and comes first
               in memory: span() starts right at it, usually the SP or CR. */
            p += __builtin_ctzll(m) / 8;
#endif
            break;
        }
    }
    return span(p, end, k);
}

bool sl_str_ieq(struct sl_str s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.n != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s.p[i]) != lower((unsigned char)lit[i]))
            return false;
    return true;
}

/* ---- request parsing ------------------------------------------------------ */

static enum sl_method method_of(const char *p, size_t n)
{
    /* Method names are case-sensitive (RFC 9110 9.1). */
    switch (n) {
    case 3:
        if (memcmp(p, "GET", 3) == 0)
            return SL_METHOD_GET;
        if (memcmp(p, "PUT", 3) == 0)
            return SL_METHOD_PUT;
        break;
    case 4:
        if (memcmp(p, "HEAD", 4) == 0)
            return SL_METHOD_HEAD;
        if (memcmp(p, "POST", 4) == 0)
            return SL_METHOD_POST;
        break;
    case 5:
        if (memcmp(p, "PATCH", 5) == 0)
            return SL_METHOD_PATCH;
        if (memcmp(p, "TRACE", 5) == 0)
            return SL_METHOD_TRACE;
        break;
    case 6:
        if (memcmp(p, "DELETE", 6) == 0)
            return SL_METHOD_DELETE;
        break;
    case 7:
        if (memcmp(p, "OPTIONS", 7) == 0)
            return SL_METHOD_OPTIONS;
        if (memcmp(p, "CONNECT", 7) == 0)
            return SL_METHOD_CONNECT;
        break;
    }
    return SL_METHOD_OTHER;
}

/* Content-Length = 1*DIGIT, or a list of identical values ("5, 5"), which RFC
 * 9110 8.6 lets a recipient accept as that one value. Anything else (sign,
 * empty element, differing values, overflow) is unrecoverable framing. */
static int parse_content_length(struct sl_str v, int64_t *out)
{
    const char *p = v.p, *end = v.p + v.n;
    int64_t first = -1;
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *d = p;
        int64_t n = 0;
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            int digit = *p - '0';
            if (n > (INT64_MAX - digit) / 10)
                return SL_ERR;
            n = n * 10 + digit;
        }
        if (p == d)
            return SL_ERR;
        if (first >= 0 && n != first)
            return SL_ERR;
        first = n;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        if (p == end)
            break;
        if (*p != ',')
            return SL_ERR;
        p++;
    }
    *out = first;
    return SL_OK;
}

/* Sets *CLOSE / *KEEP when "close" / "keep-alive" is an element of the
 * comma-separated Connection value V (case-insensitive, OWS around elements). */
static void connection_tokens(struct sl_str v, bool *close, bool *keep)
{
    const char *p = v.p, *end = v.p + v.n;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *s = p;
        while (p < end && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        size_t n = (size_t)(e - s);
        if (n == 5 && tok_ieq(s, "close", 5))
            *close = true;
        else if (n == 10 && tok_ieq(s, "keep-alive", 10))
            *keep = true;
    }
}

/* pct-encoded = "%" HEXDIG HEXDIG, at P (before END)? */
static bool pct_at(const char *p, const char *end)
{
    return end - p >= 3 && p[0] == '%' && hexval((unsigned char)p[1]) >= 0 &&
           hexval((unsigned char)p[2]) >= 0;
}

static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

/* The inside of an IP-literal, P[0..END) between the brackets: IPv6address,
 * IPv6addrz (RFC 6874: IPv6address "%25" ZoneID) or IPvFuture. */
static bool ip_literal_ok(const char *p, const char *end)
{
    if (p < end && (*p == 'v' || *p == 'V')) {
        /* IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
        const char *h = ++p;
        while (p < end && hexval((unsigned char)*p) >= 0)
            p++;
        if (p == h || p == end || *p != '.' || ++p == end)
            return false;
        for (; p < end; p++)
            if (!IS(*p, C_HOST) && *p != ':')
                return false;
        return true;
    }
    const char *zone = memchr(p, '%', (size_t)(end - p));
    const char *a_end = zone ? zone : end;
    char a[48]; /* the longest IPv6address has 45 characters */
    size_t n = (size_t)(a_end - p);
    struct in6_addr ip6;
    if (n == 0 || n >= sizeof(a))
        return false;
    memcpy(a, p, n);
    a[n] = '\0';
    if (inet_pton(AF_INET6, a, &ip6) != 1)
        return false;
    if (zone == NULL)
        return true;
    /* ZoneID = 1*( unreserved / pct-encoded ), after the encoded '%' */
    if (end - zone < 4 || zone[1] != '2' || zone[2] != '5')
        return false;
    for (p = zone + 3; p < end;) {
        if (unreserved((unsigned char)*p))
            p++;
        else if (pct_at(p, end))
            p += 3;
        else
            return false;
    }
    return true;
}

/* Is V a valid Host field value (RFC 9112 3.2: uri-host [ ":" port ], RFC
 * 3986 3.2.2-3.2.3)? uri-host is an IP-literal in brackets or a reg-name,
 * *( unreserved / pct-encoded / sub-delims ), which IPv4address is a case of;
 * port is *DIGIT. So at most one ':' outside brackets, digits only after it.
 * Decisions where the grammar leaves room:
 * - an empty value is valid: the target has no authority (RFC 9112 3.2);
 * - an empty host before a port (":80") is not: RFC 9110 4.2.1 makes an
 *   empty host invalid for "http" URIs;
 * - an empty port ("h:") is valid, as port = *DIGIT allows (RFC 3986 3.2.3
 *   says to treat it as the default port); the port is never used here. */
static bool host_ok(struct sl_str v)
{
    const char *p = v.p, *end = v.p + v.n;
    if (p == end)
        return true;
    if (*p == '[') {
        const char *close = memchr(p, ']', (size_t)(end - p));
        if (close == NULL || !ip_literal_ok(p + 1, close))
            return false;
        p = close + 1;
    } else {
        const char *s = p;
        for (;;) {
            p = span(p, end, C_HOST);
            if (p == end || !pct_at(p, end))
                break;
            p += 3;
        }
        if (p == s)
            return false; /* an empty host, or a bad first byte */
    }
    if (p == end)
        return true;
    if (*p++ != ':')
        return false;
    for (; p < end; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

#define NAME_IS(h, lit)                                                                  \
    ((h)->name.n == sizeof(lit) - 1 && tok_ieq((h)->name.p, lit, sizeof(lit) - 1))

/* Interprets one header field into REQ. Returns SL_OK, or SL_ERR for a field
 * that makes the request invalid (status 400). */
static int interpret(struct sl_request *req, const struct sl_http_header *h, bool *close,
                     bool *keep)
{
    struct sl_str v = h->value;
    /* Dispatch on the length first: most fields are none of ours. */
    switch (h->name.n) {
    case 4:
        if (NAME_IS(h, "host")) {
            /* RFC 9112 3.2: more than one Host, or an invalid value, is 400. */
            if (req->has_host || !host_ok(v))
                return SL_ERR;
            req->has_host = true;
            req->host = v;
        }
        break;
    case 5:
        if (NAME_IS(h, "range"))
            req->range = v;
        break;
    case 6:
        /* RFC 9110 10.1.1: a 100-continue expectation in HTTP/1.0 is ignored. */
        if (NAME_IS(h, "expect") && req->version == 11 && v.n == 12 &&
            tok_ieq(v.p, "100-continue", 12))
            req->expect_continue = true;
        break;
    case 8:
        if (NAME_IS(h, "if-match"))
            req->if_match = v;
        else if (NAME_IS(h, "if-range"))
            req->if_range = v;
        break;
    case 10:
        if (NAME_IS(h, "connection"))
            connection_tokens(v, close, keep);
        break;
    case 13:
        if (NAME_IS(h, "if-none-match"))
            req->if_none_match = v;
        break;
    case 14:
        if (NAME_IS(h, "content-length")) {
            int64_t cl;
            if (parse_content_length(v, &cl) != SL_OK)
                return SL_ERR;
            if (req->content_length >= 0 && req->content_length != cl)
                return SL_ERR;
            req->content_length = cl;
        }
        break;
    case 15:
        if (NAME_IS(h, "accept-encoding"))
            req->accept_encoding = v;
        break;
    case 17:
        if (NAME_IS(h, "transfer-encoding")) {
            /* RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 request means
               faulty framing, whatever else the head says. */
            if (req->version == 10)
                return SL_ERR;
            req->has_transfer_encoding = true;
        } else if (NAME_IS(h, "if-modified-since")) {
            req->if_modified_since = v;
        }
        break;
    case 19:
        if (NAME_IS(h, "if-unmodified-since"))
            req->if_unmodified_since = v;
        break;
    }
    return SL_OK;
}

static void reset(struct sl_request *req)
{
    static const struct sl_str none = {NULL, 0};
    req->method = SL_METHOD_OTHER;
    req->method_name = req->target = none;
    req->version = 11;
    req->nheaders = 0;
    req->host = none;
    req->has_host = false;
    req->keepalive = false;
    req->content_length = -1;
    req->has_transfer_encoding = false;
    req->expect_continue = false;
    req->if_none_match = req->if_modified_since = req->if_match = req->if_unmodified_since =
        none;
    req->range = req->if_range = req->accept_encoding = none;
}

/* The status for a byte that is wrong at Q in the request line starting at
 * LINE. Once the line holds more than max_line bytes (anything but its end at
 * offset max_line makes it so), "too long" is what it was first. */
static int line_error(const char *line, const char *q, size_t max_line)
{
    size_t k = (size_t)(q - line);
    if (k > max_line || (k == max_line && *q != '\r' && *q != '\n'))
        return 414;
    return 400;
}

/* The parser makes one pass over the bytes and stops at the first one that
 * decides the outcome, so feeding a request in pieces gives SL_AGAIN until
 * the deciding byte arrives and then the same verdict as feeding it whole.
 * The head must end within max_header_size bytes, so only that window is
 * looked at: running off its end with more bytes buffered is 431. */
int sl_http_parse_request(const char *buf, size_t len, const struct sl_http_limits *lim,
                          struct sl_request *req, int *status)
{
    size_t max_head = SL_MIN(lim->max_header_size, (size_t)INT_MAX);
    size_t max_line = lim->max_request_line;
    size_t max_fields = SL_MIN(lim->max_headers, (size_t)SL_HTTP_MAX_HEADERS);
    const char *end = buf + SL_MIN(len, max_head);
    const char *p = buf, *line, *q;
    int st = 400;
    bool close = false, keep = false;

    reset(req);

    /* RFC 9112 2.2: empty lines before the request line are ignored. They
       count against the head size, which bounds how many there can be. */
    for (;;) {
        if (p == end)
            goto incomplete;
        if (*p == '\n') {
            p++;
        } else if (*p == '\r') {
            if (p + 1 == end)
                goto incomplete;
            if (p[1] != '\n')
                goto fail; /* bare CR */
            p += 2;
        } else {
            break;
        }
    }

    /* request-line = method SP request-target SP HTTP-version */
    line = p;
    q = span(p, end, C_TCHAR);
    if (q == end)
        goto line_incomplete;
    if (*q != ' ' || q == line) {
        st = line_error(line, q, max_line);
        goto fail;
    }
    req->method_name = (struct sl_str){line, (size_t)(q - line)};
    req->method = method_of(line, (size_t)(q - line));

    p = ++q;
    q = span_ascii(p, end, 0x21, C_VCHAR);
    if (q == end)
        goto line_incomplete;
    if (*q != ' ' || q == p) {
        st = line_error(line, q, max_line);
        goto fail;
    }
    req->target = (struct sl_str){p, (size_t)(q - p)};

    /* HTTP-version = "HTTP/" DIGIT "." DIGIT, then CRLF or LF */
    static const char shape[] = "HTTP/9.9";
    if (end - q > 8 && memcmp(q + 1, "HTTP/1.", 7) == 0 &&
        (unsigned char)(q[8] - '0') < 10) {
        q += 8; /* all of the usual "HTTP/1.x" at once */
    } else {
        for (size_t i = 0; i < 8; i++) {
            if (++q == end)
                goto line_incomplete;
            bool ok = shape[i] == '9' ? (*q >= '0' && *q <= '9') : *q == shape[i];
            if (!ok) {
                st = line_error(line, q, max_line);
                goto fail;
            }
        }
    }
    char major = q[-2], minor = q[0];
    const char *eol = ++q;
    if (q == end)
        goto line_incomplete;
    if (*q == '\r') {
        if (++q == end)
            goto line_incomplete;
        if (*q != '\n') {
            st = line_error(line, q, max_line);
            goto fail;
        }
    } else if (*q != '\n') {
        st = line_error(line, q, max_line);
        goto fail;
    }
    if ((size_t)(eol - line) > max_line) {
        st = 414;
        goto fail;
    }
    if (major != '1') {
        st = 505;
        goto fail;
    }
    /* RFC 9110 2.5: a higher minor version is answered as the highest we
       implement; the message is parsed as HTTP/1.1. */
    req->version = minor == '0' ? 10 : 11;
    p = q + 1;

    /* field-line = field-name ":" OWS field-value OWS, until an empty line */
    for (;;) {
        if (p == end)
            goto incomplete;
        if (*p == '\r') {
            if (p + 1 == end)
                goto incomplete;
            if (p[1] != '\n')
                goto fail;
            p += 2;
            break;
        }
        if (*p == '\n') {
            p++;
            break;
        }
        /* A field line starting with SP/HTAB is obs-fold (RFC 9112 5.2),
           whitespace before the colon is forbidden (5.1): both are 400, as
           is any other byte that is not part of a token. */
        const char *name = p;
        p = span(p, end, C_TCHAR);
        if (p == end)
            goto incomplete;
        if (*p != ':' || p == name)
            goto fail;
        if (req->nheaders >= max_fields) {
            st = 431;
            goto fail;
        }
        struct sl_http_header *h = &req->headers[req->nheaders];
        h->name = (struct sl_str){name, (size_t)(p - name)};
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        const char *v = p;
        p = span_ascii(p, end, 0x20, C_FVAL);
        if (p == end)
            goto incomplete;
        const char *ve = p;
        if (*p == '\r') {
            if (p + 1 == end)
                goto incomplete;
            if (p[1] != '\n')
                goto fail; /* bare CR */
            p += 2;
        } else if (*p == '\n') {
            p++;
        } else {
            goto fail; /* NUL, DEL or another control byte */
        }
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        h->value = (struct sl_str){v, (size_t)(ve - v)};
        req->nheaders++;
        if (interpret(req, h, &close, &keep) != SL_OK)
            goto fail;
    }

    /* RFC 9112 6.1: both framings at once is the classic smuggling vector. */
    if (req->has_transfer_encoding && req->content_length >= 0)
        goto fail;
    if (req->version == 11 && !req->has_host)
        goto fail;
    req->keepalive = req->version == 11 ? !close : keep && !close;
    return (int)(p - buf);

line_incomplete:
    /* Every byte of the request line so far is valid; a CR at the very end
       may still be the start of its CRLF and is not content. */
    if ((size_t)(end - line) - (end[-1] == '\r') > max_line) {
        *status = 414;
        return SL_ERR;
    }
incomplete:
    if (len > max_head) {
        *status = 431;
        return SL_ERR;
    }
    return SL_AGAIN;
fail:
    *status = st;
    return SL_ERR;
}

/* ---- request-target normalization ----------------------------------------- */

int sl_http_normalize_path(const char *target, size_t n, char *out, size_t outsz,
                           bool *trailing_slash, int *status)
{
    const char *p = target, *end = target + n;
    int st = 400;

    if (n == 0)
        goto fail;
    if (*p != '/') {
        /* absolute-form (RFC 9112 3.2.2): the authority is the Host header's
           business; only the path matters here. */
        if (n >= 7 && ieq_lower(p, "http://", 7))
            p += 7;
        else if (n >= 8 && ieq_lower(p, "https://", 8))
            p += 8;
        else
            goto fail; /* "*", relative paths, other schemes */
        const char *auth = p;
        while (p < end && *p != '/' && *p != '?' && *p != '#')
            p++;
        if (p == auth)
            goto fail; /* http:///x has no host */
        if (p == end || *p != '/')
            p = end; /* no path: the root */
    }
    if (p < end) {
        /* Most targets are plain ("/f1k.html", "/img/a.png?v=2"): no
           '%', no dot or empty segment ("/." or "//" anywhere), no control
           byte. OUT is then the path as is, without its leading '/', and one
           pass finds that out; anything else takes the general path below. */
        const char *c = p;
        for (;;) {
            c = span(c, end, C_PATH);
            if (c == end || *c == '?' || *c == '#')
                break;
            if (*c != '/' || (c + 1 < end && (c[1] == '/' || c[1] == '.')))
                goto general;
            c++;
        }
        size_t m = (size_t)(c - p) - 1;
        if (m + 1 > outsz) {
            st = 414;
            goto fail;
        }
        memcpy(out, p + 1, m);
        out[m] = '\0';
        *trailing_slash = m == 0 || out[m - 1] == '/';
        *status = 0;
        return SL_OK;
    }
general:
    for (const char *c = p; c < end; c++) {
        if (*c == '?' || *c == '#') {
            end = c;
            break;
        }
    }
    if (outsz == 0) {
        st = 414;
        goto fail;
    }

    /* Segments are decoded straight into OUT, joined by '/', no leading or
       (for now) trailing '/'. Decoding comes before dot-segment removal, so
       "%2e%2e" is "..": the file system sees decoded names. Since %2F is
       refused, a decoded segment never contains '/'. O stays below OUTSZ. */
    size_t o = 0;
    bool dir = true;
    while (p < end) {
        p++; /* the '/' that starts every segment */
        const char *s = p;
        while (p < end && *p != '/')
            p++;
        if (s == p) {
            dir = true; /* "//" merged, or the trailing '/' */
            continue;
        }
        size_t start = o ? o + 1 : 0, k = start;
        unsigned char first2[2] = {0, 0}; /* enough to spot "." and ".." */
        bool overflow = false;
        for (const char *c = s; c < p;) {
            unsigned char ch = (unsigned char)*c;
            if (ch == '%') {
                int hi, lo;
                if (p - c < 3 || (hi = hexval((unsigned char)c[1])) < 0 ||
                    (lo = hexval((unsigned char)c[2])) < 0)
                    goto fail;
                ch = (unsigned char)(hi << 4 | lo);
                if (ch == '\0' || ch == '/')
                    goto fail;
                c += 3;
            } else {
                c++;
            }
            if (ch < 0x20 || ch == 0x7f)
                goto fail;
            if (k - start < 2)
                first2[k - start] = ch;
            if (k + 1 < outsz)
                out[k] = (char)ch;
            else
                overflow = true; /* keep validating; a dot segment still fits */
            k++;
        }
        size_t sn = k - start;
        if (sn == 1 && first2[0] == '.') {
            dir = true;
        } else if (sn == 2 && first2[0] == '.' && first2[1] == '.') {
            if (o == 0)
                goto fail; /* would climb above the root */
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--; /* and the separator before the dropped segment */
            dir = true;
        } else if (overflow) {
            st = 414;
            goto fail;
        } else {
            if (o)
                out[o] = '/';
            o = k;
            dir = false;
        }
    }
    if (dir && o > 0) {
        if (o + 2 > outsz) {
            st = 414;
            goto fail;
        }
        out[o++] = '/';
    }
    out[o] = '\0';
    *trailing_slash = dir;
    *status = 0;
    return SL_OK;
fail:
    *status = st;
    return SL_ERR;
}

/* ---- response text ----------------------------------------------------------- */

const char *sl_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* Fixed English names: HTTP dates must not follow the locale. */
static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const wdays_long[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                          "Thursday", "Friday", "Saturday"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static char *put2(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

void sl_http_format_date(time_t t, char out[SL_HTTP_DATE_LEN + 1])
{
    /* Four digits say years 0000-9999; for anything else the epoch is a
       valid date, where the digits would be garbage. */
    struct tm tm;
    if (t < -62167219200 || t > 253402300799 || gmtime_r(&t, &tm) == NULL) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    int year = tm.tm_year + 1900;
    char *p = out;
    memcpy(p, wdays[tm.tm_wday], 3);
    p[3] = ',';
    p[4] = ' ';
    p = put2(p + 5, tm.tm_mday);
    *p++ = ' ';
    memcpy(p, months[tm.tm_mon], 3);
    p[3] = ' ';
    p = put2(p + 4, year / 100);
    p = put2(p, year % 100);
    *p++ = ' ';
    p = put2(p, tm.tm_hour);
    *p++ = ':';
    p = put2(p, tm.tm_min);
    *p++ = ':';
    p = put2(p, tm.tm_sec);
    memcpy(p, " GMT", 5); /* with the NUL */
}

const char *sl_http_date_now(void)
{
    static __thread time_t cached = (time_t)-1;
    static __thread char buf[SL_HTTP_DATE_LEN + 1];
    time_t now = time(NULL);
    if (now != cached) {
        sl_http_format_date(now, buf);
        cached = now;
    }
    return buf;
}

/* N decimal digits at P, or -1. */
static int num(const char *p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

static int month_at(const char *p)
{
    for (int i = 0; i < 12; i++)
        if (memcmp(p, months[i], 3) == 0)
            return i;
    return -1;
}

static bool wday_at(const char *p)
{
    for (int i = 0; i < 7; i++)
        if (memcmp(p, wdays[i], 3) == 0)
            return true;
    return false;
}

/* "HH:MM:SS" at P. */
static bool time_at(const char *p, struct tm *tm)
{
    if (p[2] != ':' || p[5] != ':')
        return false;
    tm->tm_hour = num(p, 2);
    tm->tm_min = num(p + 3, 2);
    tm->tm_sec = num(p + 6, 2);
    /* second 60 is a leap second (RFC 5322 3.3) */
    return tm->tm_hour >= 0 && tm->tm_hour <= 23 && tm->tm_min >= 0 && tm->tm_min <= 59 &&
           tm->tm_sec >= 0 && tm->tm_sec <= 60;
}

static bool valid_day(int year, int mon, int day)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    int max = mdays[mon] + (mon == 1 && leap);
    return day >= 1 && day <= max;
}

/* The three forms of RFC 9110 5.6.7, exactly as specified (no extra spaces,
 * case-sensitive names, GMT only). Weekday names must be real but are not
 * checked against the date, as most servers do. */
int sl_http_parse_date(const char *s, size_t n, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int year, day;
    if (n == 29 && wday_at(s) && s[3] == ',') {
        /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
        if (s[4] != ' ' || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
            memcmp(s + 25, " GMT", 4) != 0)
            return SL_ERR;
        day = num(s + 5, 2);
        tm.tm_mon = month_at(s + 8);
        year = num(s + 12, 4);
        if (!time_at(s + 17, &tm))
            return SL_ERR;
    } else if (n == 24 && wday_at(s) && s[3] == ' ') {
        /* asctime: "Sun Nov  6 08:49:37 1994" */
        if (s[7] != ' ' || s[10] != ' ' || s[19] != ' ')
            return SL_ERR;
        tm.tm_mon = month_at(s + 4);
        day = s[8] == ' ' ? num(s + 9, 1) : num(s + 8, 2);
        year = num(s + 20, 4);
        if (!time_at(s + 11, &tm))
            return SL_ERR;
    } else {
        /* rfc850-date: "Sunday, 06-Nov-94 08:49:37 GMT" */
        size_t w = 0;
        for (int i = 0; i < 7 && w == 0; i++) {
            size_t l = strlen(wdays_long[i]);
            if (n == l + 24 && memcmp(s, wdays_long[i], l) == 0)
                w = l;
        }
        if (w == 0)
            return SL_ERR;
        s += w;
        if (s[0] != ',' || s[1] != ' ' || s[4] != '-' || s[8] != '-' || s[11] != ' ' ||
            memcmp(s + 20, " GMT", 4) != 0)
            return SL_ERR;
        day = num(s + 2, 2);
        tm.tm_mon = month_at(s + 5);
        int yy = num(s + 9, 2);
        if (yy < 0 || !time_at(s + 12, &tm))
            return SL_ERR;
        /* A fixed window, 1970..2069, as nginx reads it: RFC 9110 5.6.7's
           "not more than 50 years ahead" would make the result depend on the
           clock, for a format nobody has sent in decades. */
        year = yy < 70 ? 2000 + yy : 1900 + yy;
    }
    if (tm.tm_mon < 0 || year < 0 || !valid_day(year, tm.tm_mon, day))
        return SL_ERR;
    tm.tm_year = year - 1900;
    tm.tm_mday = day;
    *out = timegm(&tm);
    return SL_OK;
}

size_t sl_http_error_response(char *out, size_t cap, int status, bool keepalive,
                              bool head_only, const char *extra)
{
    const char *reason = sl_http_reason(status);
    const char *conn = keepalive ? "keep-alive" : "close";
    if (extra == NULL)
        extra = "";
    int n;
    if (status < 200 || status == 204 || status == 304) {
        /* These never have content (RFC 9110 6.4.1): no body, and no length
           that would describe a body the client must not expect. */
        n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\nServer: sluice\r\nDate: %s\r\nConnection: %s\r\n%s\r\n",
                     status, reason, sl_http_date_now(), conn, extra);
    } else {
        char body[256];
        int bn = snprintf(body, sizeof(body),
                          "<!DOCTYPE html>\n<html><head><title>%d %s</title></head>"
                          "<body><h1>%d %s</h1></body></html>\n",
                          status, reason, status, reason);
        /* A HEAD answer announces the length the GET answer would have. */
        n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\nServer: sluice\r\nDate: %s\r\n"
                     "Content-Type: text/html\r\nContent-Length: %d\r\n"
                     "Connection: %s\r\n%s\r\n%s",
                     status, reason, sl_http_date_now(), bn, conn, extra,
                     head_only ? "" : body);
    }
    if (n < 0 || (size_t)n >= cap)
        return 0;
    return (size_t)n;
}
