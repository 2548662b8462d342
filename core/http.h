/* http.h: HTTP/1.1 request parsing (zero-copy: every string points into the
 * caller's buffer), request-target normalization, and the small pieces of
 * response text (status lines, dates, error bodies) the stages share. */
#ifndef SLUICE_HTTP_H
#define SLUICE_HTTP_H

#include "lib/common.h"

#include <sys/types.h>
#include <time.h>

#define SL_HTTP_MAX_HEADERS 100 /* hard cap on the fixed header array */
#define SL_HTTP_DATE_LEN 29     /* "Sun, 06 Nov 1994 08:49:37 GMT" */

struct sl_str {
    const char *p;
    size_t n;
};

enum sl_method {
    SL_METHOD_GET,
    SL_METHOD_HEAD,
    SL_METHOD_OPTIONS,
    SL_METHOD_POST,
    SL_METHOD_PUT,
    SL_METHOD_DELETE,
    SL_METHOD_PATCH,
    SL_METHOD_TRACE,
    SL_METHOD_CONNECT,
    SL_METHOD_OTHER, /* a valid token we do not know: parses, the caller answers 501 */
};

struct sl_http_header {
    struct sl_str name;
    struct sl_str value; /* leading and trailing whitespace removed */
};

struct sl_http_limits {
    size_t max_request_line; /* longer request line: 414 */
    size_t max_header_size;  /* longer header section (request line included): 431 */
    size_t max_headers;      /* more header fields: 431 (<= SL_HTTP_MAX_HEADERS) */
};

struct sl_request {
    enum sl_method method;
    struct sl_str method_name;
    struct sl_str target; /* raw request-target as sent */
    int version;          /* 10 for HTTP/1.0, 11 for HTTP/1.1 */
    size_t nheaders;
    struct sl_http_header headers[SL_HTTP_MAX_HEADERS];
    /* Interpreted fields (pointers into the buffer; n == 0 when absent). */
    struct sl_str host;
    bool has_host;
    bool keepalive;         /* persistent per version + Connection header */
    int64_t content_length; /* -1 when absent */
    bool has_transfer_encoding;
    bool expect_continue;
    struct sl_str if_none_match, if_modified_since, if_match, if_unmodified_since;
    struct sl_str range, if_range, accept_encoding;
};

/* Parses one request head from BUF[0..LEN).
 * Returns the number of bytes the head occupies (any empty lines before the
 * request line, which are skipped (RFC 9112 2.2), through the empty line that
 * ends the fields) when complete, with REQ filled; bytes after it (a body, a
 * pipelined request) are the caller's. Returns SL_AGAIN when more bytes are
 * needed and no limit is exceeded yet: a request line or head that can no
 * longer fit fails as soon as that is certain, before its end arrives.
 * Returns SL_ERR when the request is invalid, with *STATUS set to the status
 * to answer:
 *   400 syntax and framing: bare CR, NUL or other control bytes (HTAB is
 *       allowed in field values), obs-fold, whitespace before ':', an invalid
 *       or conflicting Content-Length, Content-Length with Transfer-Encoding,
 *       Transfer-Encoding in HTTP/1.0, no Host in HTTP/1.1, more than one
 *       Host, a Host value that is not uri-host [":" port] (RFC 3986: a
 *       reg-name, IPv4 address or bracketed IPv6 / IPvFuture literal, then at
 *       most one port of digits; empty value and empty port allowed, empty
 *       host before a port not);
 *   414 request line longer than max_request_line (without its CRLF);
 *   431 head longer than max_header_size, or more than max_headers fields;
 *   505 HTTP major version other than 1 (HTTP/1.x with x > 1 parses as 1.1).
 * An unknown but well-formed method token is not an error here: it parses as
 * SL_METHOD_OTHER (methods are case-sensitive), for the caller to answer 501.
 * The verdict does not depend on how the bytes arrived: every prefix of a
 * buffer gives SL_AGAIN or the buffer's own result. Accepts CRLF and bare LF
 * line ends. Never reads outside BUF[0..LEN), never allocates; REQ's strings
 * point into BUF. *STATUS is written only on SL_ERR. Any thread. */
int sl_http_parse_request(const char *buf, size_t len, const struct sl_http_limits *lim,
                          struct sl_request *req, int *status);

/* Turns a request-target into a path relative to the document root:
 * origin-form or absolute-form ("http://host/p", "https://", any case; the
 * authority is ignored here), query and fragment dropped, percent-decoded,
 * then dot segments removed (RFC 3986 5.2.4) from the decoded segments (so
 * "%2e%2e" is ".."), repeated slashes merged. OUT gets the path without its
 * leading '/', NUL-terminated; it never starts with '/' and holds no "." or
 * ".." segment, no empty segment, no NUL and no control byte.
 * *TRAILING_SLASH is true when the target names a directory: the root, or a
 * path ending in '/' (also after dot-segment removal: "/a/.", "/a/b/.."). Such
 * a path keeps its trailing '/' in OUT ("/docs/" -> "docs/", so an index name
 * can be appended as is), except the root, which gives "" ("/", "//", "/a/..").
 * Otherwise OUT is a non-empty name not ending in '/' ("/a/b" -> "a/b").
 * Returns SL_OK (*STATUS = 0), or SL_ERR with *STATUS = 400 for: an empty
 * target, one not starting with '/' other than absolute-form ("*" included),
 * an absolute-form without host, bad %-escapes, an encoded NUL or '/' (%00,
 * %2F), control bytes (raw or decoded), or ".." that would climb above the
 * root; 414 if OUT (OUTSZ bytes) is too small. Never allocates. */
int sl_http_normalize_path(const char *target, size_t n, char *out, size_t outsz,
                           bool *trailing_slash, int *status);

/* Reason phrase for STATUS ("Not Found"), "Unknown" for others. */
const char *sl_http_reason(int status);

/* Writes the IMF-fixdate for T into OUT (SL_HTTP_DATE_LEN bytes + NUL). A T
 * whose year is outside 0000..9999 is written as the epoch. Cannot fail. */
void sl_http_format_date(time_t t, char out[SL_HTTP_DATE_LEN + 1]);

/* The current date, formatted at most once a second per thread (when
 * time(NULL) changes). Returns a per-thread buffer: the same pointer on every
 * call from a thread, its text replaced when the second changes. */
const char *sl_http_date_now(void);

/* Parses an HTTP-date in exactly one of its three layouts (IMF-fixdate,
 * RFC 850 with a two-digit year read as 1970..2069, asctime with its
 * space-padded day), from S[0..N) (no NUL needed). Returns SL_OK with *OUT
 * set, or SL_ERR for anything else, an impossible date included. */
int sl_http_parse_date(const char *s, size_t n, time_t *out);

/* Builds a complete error response into OUT, NUL-terminated: status line,
 * Server, Date, Content-Type text/html, Content-Length, Connection
 * (keep-alive or close), the EXTRA header lines if not NULL (each ending in
 * CRLF), the empty line, then a short HTML body. HEAD_ONLY leaves the body
 * out but keeps the Content-Length it would have. Statuses that never have
 * content (1xx, 204, 304) get no body and no Content-Type/Content-Length.
 * Returns the length (without the NUL), or 0 if CAP is too small. */
size_t sl_http_error_response(char *out, size_t cap, int status, bool keepalive,
                              bool head_only, const char *extra);

/* Case-insensitive comparison of S with the NUL-terminated LIT. */
bool sl_str_ieq(struct sl_str s, const char *lit);

#endif
