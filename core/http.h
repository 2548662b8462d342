/* http.h: HTTP/1.1 request parsing (zero-copy: every string points into the
 * caller's buffer), request-target normalization, and the small pieces of
 * response text (status lines, dates, error bodies) the stages share. */
#ifndef SLUICE_HTTP_H
#define SLUICE_HTTP_H

#include "core/common.h"

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
    SL_METHOD_OTHER, /* a syntactically valid token we do not know: 501 */
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
 * Returns the number of bytes the head occupies (request line through the
 * empty line) when complete, with REQ filled; SL_AGAIN when more bytes are
 * needed (and none of the limits is exceeded yet); SL_ERR when the request is
 * invalid, with *STATUS set to the status to answer: 400 (syntax, framing:
 * bare CR, NUL/control bytes, obs-fold, duplicate or invalid Content-Length,
 * Content-Length together with Transfer-Encoding, missing Host in HTTP/1.1),
 * 414 (request line too long), 431 (header section or count too large),
 * 505 (HTTP major version other than 1). An unknown but well-formed method
 * token is not an error here: it parses as SL_METHOD_OTHER (methods are
 * case-sensitive), for the caller to answer 501. Skips up to four empty lines
 * before the request line. Accepts CRLF and bare LF line ends. Never reads
 * outside BUF[0..LEN). */
int sl_http_parse_request(const char *buf, size_t len, const struct sl_http_limits *lim,
                          struct sl_request *req, int *status);

/* Turns a request-target into a path relative to the document root:
 * origin-form or absolute-form ("http://host/p", "https://", any case), query
 * and fragment dropped, percent-decoded, dot segments removed (RFC 3986
 * 5.2.4), repeated slashes merged. OUT gets the path without its leading '/',
 * NUL-terminated; it never starts with '/' and holds no "." or ".." segment,
 * no empty segment, no NUL and no control byte.
 * *TRAILING_SLASH is true when the target names a directory: the root, or a
 * path ending in '/' (also after dot-segment removal: "/a/.", "/a/b/.."). Such
 * a path keeps its trailing '/' in OUT ("/docs/" -> "docs/", so an index name
 * can be appended as is), except the root, which gives "" ("/", "//", "/a/..").
 * Otherwise OUT is a non-empty name not ending in '/' ("/a/b" -> "a/b").
 * Returns SL_OK (*STATUS = 0), or SL_ERR with *STATUS = 400 for: a target not
 * starting with '/' (other than absolute-form), bad %-escapes, an encoded NUL
 * or '/' (%00, %2F), control bytes, or ".." that would climb above the root;
 * 414 if OUT (OUTSZ bytes) is too small or a segment exceeds 1023 bytes. */
int sl_http_normalize_path(const char *target, size_t n, char *out, size_t outsz,
                           bool *trailing_slash, int *status);

/* Reason phrase for STATUS ("Not Found"), "Unknown" for others. */
const char *sl_http_reason(int status);

/* Writes the IMF-fixdate for T into OUT (SL_HTTP_DATE_LEN bytes + NUL). A T
 * whose year is outside 0000..9999 is written as the epoch. Cannot fail. */
void sl_http_format_date(time_t t, char out[SL_HTTP_DATE_LEN + 1]);

/* The current date, formatted at most once a second per thread. The pointer
 * stays valid until the same thread calls again. */
const char *sl_http_date_now(void);

/* Parses an HTTP-date in exactly one of its three layouts (IMF-fixdate,
 * RFC 850 with a two-digit year read as 1970..2069, asctime with its
 * space-padded day), from S[0..N) (no NUL needed). Returns SL_OK with *OUT
 * set, or SL_ERR for anything else, an impossible date included. */
int sl_http_parse_date(const char *s, size_t n, time_t *out);

/* Builds a complete error response (status line, Date, Server, Content-Type
 * text/html, Content-Length, Connection, EXTRA header lines if not NULL, each
 * ending in CRLF, then a short HTML body unless HEAD_ONLY) into OUT.
 * Returns its length, or 0 if CAP is too small. */
size_t sl_http_error_response(char *out, size_t cap, int status, bool keepalive,
                              bool head_only, const char *extra);

/* Case-insensitive comparison of S with the NUL-terminated LIT. */
bool sl_str_ieq(struct sl_str s, const char *lit);

#endif
