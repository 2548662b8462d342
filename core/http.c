/* http.c: the HTTP/1.1 request parser, target normalization, and small pieces
 * of response text; see http.h. The parser is strict where leniency lets
 * requests be smuggled (RFC 9112 sections 2, 5, 6.3). */
#include "core/http.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* tchar: RFC 9110 5.6.2 */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1,
    ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1,  ['|'] = 1,
    ['~'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,  ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['A'] = 1, ['B'] = 1,  ['C'] = 1,
    ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1,  ['J'] = 1,
    ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1,  ['Q'] = 1,
    ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1,  ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1,  ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,  ['s'] = 1,
    ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1,  ['z'] = 1,
};

bool sl_str_ieq(struct sl_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.n == n && (n == 0 || strncasecmp(s.p, lit, n) == 0);
}

static const struct {
    const char *name;
    size_t len;
    enum sl_method m;
} methods[] = {
    {"GET", 3, SL_METHOD_GET},         {"HEAD", 4, SL_METHOD_HEAD},
    {"OPTIONS", 7, SL_METHOD_OPTIONS}, {"POST", 4, SL_METHOD_POST},
    {"PUT", 3, SL_METHOD_PUT},         {"DELETE", 6, SL_METHOD_DELETE},
    {"PATCH", 5, SL_METHOD_PATCH},     {"TRACE", 5, SL_METHOD_TRACE},
    {"CONNECT", 7, SL_METHOD_CONNECT},
};

/* Finds the end of the line starting at P: returns the LF position, or NULL
 * if no LF within [P, END). *BAD is set for a bare CR or a NUL. */
static const char *line_end(const char *p, const char *end, bool *bad)
{
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    const char *stop = lf ? lf : end;
    /* NUL and CR not followed by LF are never allowed anywhere in a head; a
       CR that is the last byte received may still get its LF. */
    for (const char *q = p; q < stop; q++) {
        if (*q == '\0' || (*q == '\r' && q + 1 != lf && q + 1 != end)) {
            *bad = true;
            return NULL;
        }
    }
    return lf;
}

/* Strips a CR before LF: the content of the line is [P, returned end). */
static const char *content_end(const char *p, const char *lf)
{
    return (lf > p && lf[-1] == '\r') ? lf - 1 : lf;
}

static int parse_request_line(const char *p, const char *e, struct sl_request *req,
                              int *status)
{
    const char *q = p;
    while (q < e && tchar[(unsigned char)*q])
        q++;
    if (q == p || q >= e || *q != ' ')
        return *status = 400, SL_ERR;
    req->method_name = (struct sl_str){p, (size_t)(q - p)};
    req->method = SL_METHOD_OTHER;
    for (size_t i = 0; i < SL_ARRAY_LEN(methods); i++)
        if (req->method_name.n == methods[i].len &&
            memcmp(p, methods[i].name, methods[i].len) == 0)
            req->method = methods[i].m;
    const char *t = ++q;
    while (q < e && (unsigned char)*q > 0x20 && (unsigned char)*q < 0x7f)
        q++;
    if (q == t || q >= e || *q != ' ')
        return *status = 400, SL_ERR;
    req->target = (struct sl_str){t, (size_t)(q - t)};
    q++;
    if (e - q != 8 || memcmp(q, "HTTP/", 5) != 0 || q[5] < '0' || q[5] > '9' || q[6] != '.' ||
        q[7] < '0' || q[7] > '9')
        return *status = 400, SL_ERR;
    if (q[5] != '1')
        return *status = 505, SL_ERR;
    req->version = q[7] == '0' ? 10 : 11;
    return SL_OK;
}

/* Trims OWS around a value. */
static struct sl_str trim(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    return (struct sl_str){p, (size_t)(e - p)};
}

/* Is TOKEN one of the comma-separated elements of V (case-insensitive)? */
static bool list_has(struct sl_str v, const char *token)
{
    const char *p = v.p, *end = v.p + v.n;
    while (p < end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *e = c ? c : end;
        if (sl_str_ieq(trim(p, e), token))
            return true;
        if (c == NULL)
            break;
        p = c + 1;
    }
    return false;
}

/* Content-Length: 1*DIGIT, or a list of identical values (RFC 9110 8.6). */
static int parse_content_length(struct sl_str v, int64_t *out)
{
    const char *p = v.p, *end = v.p + v.n;
    int64_t first = -1;
    while (p <= end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *e = c ? c : end;
        struct sl_str el = trim(p, e);
        if (el.n == 0 || el.n > 18)
            return SL_ERR;
        int64_t n = 0;
        for (size_t i = 0; i < el.n; i++) {
            if (el.p[i] < '0' || el.p[i] > '9')
                return SL_ERR;
            n = n * 10 + (el.p[i] - '0');
        }
        if (first >= 0 && n != first)
            return SL_ERR;
        first = n;
        if (!c)
            break;
        p = c + 1;
    }
    *out = first;
    return SL_OK;
}

static int interpret_header(struct sl_request *req, struct sl_http_header *h, bool *close,
                            bool *keep, int *status)
{
    struct sl_str n = h->name, v = h->value;
    switch (n.n) {
    case 4:
        if (sl_str_ieq(n, "host")) {
            if (req->has_host)
                return *status = 400, SL_ERR;
            req->has_host = true;
            req->host = v;
        }
        break;
    case 5:
        if (sl_str_ieq(n, "range"))
            req->range = v;
        break;
    case 6:
        if (sl_str_ieq(n, "expect") && sl_str_ieq(v, "100-continue"))
            req->expect_continue = true;
        break;
    case 8:
        if (sl_str_ieq(n, "if-match"))
            req->if_match = v;
        else if (sl_str_ieq(n, "if-range"))
            req->if_range = v;
        break;
    case 10:
        if (sl_str_ieq(n, "connection")) {
            if (list_has(v, "close"))
                *close = true;
            if (list_has(v, "keep-alive"))
                *keep = true;
        }
        break;
    case 13:
        if (sl_str_ieq(n, "if-none-match"))
            req->if_none_match = v;
        break;
    case 14:
        if (sl_str_ieq(n, "content-length")) {
            int64_t cl;
            if (parse_content_length(v, &cl) != SL_OK ||
                (req->content_length >= 0 && req->content_length != cl))
                return *status = 400, SL_ERR;
            req->content_length = cl;
        }
        break;
    case 15:
        if (sl_str_ieq(n, "accept-encoding"))
            req->accept_encoding = v;
        break;
    case 17:
        if (sl_str_ieq(n, "transfer-encoding"))
            req->has_transfer_encoding = true;
        else if (sl_str_ieq(n, "if-modified-since"))
            req->if_modified_since = v;
        break;
    case 19:
        if (sl_str_ieq(n, "if-unmodified-since"))
            req->if_unmodified_since = v;
        break;
    }
    return SL_OK;
}

int sl_http_parse_request(const char *buf, size_t len, const struct sl_http_limits *lim,
                          struct sl_request *req, int *status)
{
    const char *p = buf, *end = buf + len;
    bool bad = false;
    /* RFC 9112 2.2: ignore at least one empty line before the request line. */
    for (int i = 0; i < 4 && p < end; i++) {
        if (*p == '\n')
            p++;
        else if (*p == '\r' && p + 1 < end && p[1] == '\n')
            p += 2;
        else if (*p == '\r' && p + 1 == end)
            return SL_AGAIN;
        else
            break;
    }
    const char *lf = line_end(p, end, &bad);
    if (bad)
        return *status = 400, SL_ERR;
    if (lf == NULL) {
        /* A CR received last may be the start of the CRLF, which is not part
           of the line: the verdict must not depend on where reads split. */
        size_t have = (size_t)(end - p);
        if (have > 0 && end[-1] == '\r')
            have--;
        if (have > lim->max_request_line)
            return *status = 414, SL_ERR;
        if (len > lim->max_header_size)
            return *status = 431, SL_ERR;
        return SL_AGAIN;
    }
    const char *le = content_end(p, lf);
    if ((size_t)(le - p) > lim->max_request_line)
        return *status = 414, SL_ERR;
    req->nheaders = 0;
    req->has_host = false;
    req->host = (struct sl_str){NULL, 0};
    req->content_length = -1;
    req->has_transfer_encoding = false;
    req->expect_continue = false;
    req->if_none_match = req->if_modified_since = req->if_match = req->if_unmodified_since =
        req->range = req->if_range = req->accept_encoding = (struct sl_str){NULL, 0};
    /* The whole head must be within limits; check before the per-line work
       so a huge head costs no more than a scan for its end. */
    if (parse_request_line(p, le, req, status) != SL_OK)
        return SL_ERR;
    bool close = false, keep = false;
    p = lf + 1;
    for (;;) {
        if ((size_t)(p - buf) > lim->max_header_size)
            return *status = 431, SL_ERR;
        lf = line_end(p, end, &bad);
        if (bad)
            return *status = 400, SL_ERR;
        if (lf == NULL)
            return len > lim->max_header_size ? (*status = 431, SL_ERR) : SL_AGAIN;
        if ((size_t)(lf + 1 - buf) > lim->max_header_size)
            return *status = 431, SL_ERR;
        le = content_end(p, lf);
        if (le == p)
            break; /* the empty line: end of the head */
        if (*p == ' ' || *p == '\t')
            return *status = 400, SL_ERR; /* obs-fold */
        const char *c = p;
        while (c < le && tchar[(unsigned char)*c])
            c++;
        if (c == p || c >= le || *c != ':')
            return *status = 400, SL_ERR;
        for (const char *q = c + 1; q < le; q++)
            if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f)
                return *status = 400, SL_ERR;
        if (req->nheaders >= lim->max_headers || req->nheaders >= SL_HTTP_MAX_HEADERS)
            return *status = 431, SL_ERR;
        struct sl_http_header *h = &req->headers[req->nheaders++];
        h->name = (struct sl_str){p, (size_t)(c - p)};
        h->value = trim(c + 1, le);
        if (interpret_header(req, h, &close, &keep, status) != SL_OK)
            return SL_ERR;
        p = lf + 1;
    }
    if (req->has_transfer_encoding && req->content_length >= 0)
        return *status = 400, SL_ERR;
    if (req->version == 11 && !req->has_host)
        return *status = 400, SL_ERR;
    req->keepalive = req->version == 11 ? !close : (keep && !close);
    return (int)(lf + 1 - buf);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sl_http_normalize_path(const char *target, size_t n, char *out, size_t outsz,
                           bool *trailing_slash, int *status)
{
    const char *p = target, *end = target + n;
    *status = 400;
    /* absolute-form: scheme "://" authority path */
    if (n >= 7 && (strncasecmp(p, "http://", 7) == 0 || (n >= 8 && strncasecmp(p, "https://", 8) == 0))) {
        p += (p[4] == ':') ? 7 : 8;
        /* the authority ends at the first '/', '?' or '#' (RFC 3986 3.2) */
        while (p < end && *p != '/' && *p != '?' && *p != '#')
            p++;
        if (p == end || *p != '/')
            p = "/", end = p + 1; /* empty path: the root */
    }
    if (p >= end || *p != '/')
        return SL_ERR;
    for (const char *q = p; q < end; q++)
        if (*q == '?' || *q == '#') {
            end = q;
            break;
        }
    /* Decode and remove dot segments in one pass. OUT holds segments joined
       by '/', without the leading '/'. */
    size_t o = 0;
    bool ends_dir = true;
    p++; /* the leading '/' */
    while (p <= end) {
        /* one segment: [p, segment end) */
        char seg[1024];
        size_t sn = 0;
        while (p < end && *p != '/') {
            unsigned char ch = (unsigned char)*p;
            if (ch == '%') {
                if (end - p < 3 || hexval(p[1]) < 0 || hexval(p[2]) < 0)
                    return SL_ERR;
                ch = (unsigned char)(hexval(p[1]) * 16 + hexval(p[2]));
                if (ch == '/' || ch == '\0')
                    return SL_ERR;
                p += 3;
            } else {
                p++;
            }
            if (ch < 0x20 || ch == 0x7f)
                return SL_ERR;
            if (sn + 1 >= sizeof(seg))
                return *status = 414, SL_ERR;
            seg[sn++] = (char)ch;
        }
        bool last = p >= end;
        if (sn == 0 || (sn == 1 && seg[0] == '.')) {
            ends_dir = true; /* empty (merged "//") or "." */
        } else if (sn == 2 && seg[0] == '.' && seg[1] == '.') {
            if (o == 0)
                return SL_ERR; /* would climb above the root */
            /* drop the last segment and its separator */
            size_t k = o;
            while (k > 0 && out[k - 1] != '/')
                k--;
            o = k > 0 ? k - 1 : 0;
            ends_dir = true;
        } else {
            size_t need = (o > 0 ? 1 : 0) + sn + 1;
            if (o + need > outsz)
                return *status = 414, SL_ERR;
            if (o > 0)
                out[o++] = '/';
            memcpy(out + o, seg, sn);
            o += sn;
            ends_dir = false;
        }
        if (last)
            break;
        p++; /* the '/' */
        if (p == end) {
            ends_dir = true;
            break;
        }
    }
    if (o >= outsz)
        return *status = 414, SL_ERR;
    out[o] = '\0';
    *trailing_slash = ends_dir || o == 0;
    if (*trailing_slash && o > 0) {
        if (o + 2 > outsz)
            return *status = 414, SL_ERR;
        out[o++] = '/';
        out[o] = '\0';
    }
    *status = 0;
    return SL_OK;
}

const char *sl_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static char *put2(char *p, int v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

void sl_http_format_date(time_t t, char out[SL_HTTP_DATE_LEN + 1])
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900) {
        /* a year that does not fit in four digits: the epoch beats garbage */
        t = 0;
        gmtime_r(&t, &tm);
    }
    int year = tm.tm_year + 1900;
    char *p = out;
    memcpy(p, wdays[tm.tm_wday % 7], 3);
    p += 3;
    *p++ = ',';
    *p++ = ' ';
    p = put2(p, tm.tm_mday);
    *p++ = ' ';
    memcpy(p, months[tm.tm_mon % 12], 3);
    p += 3;
    *p++ = ' ';
    p = put2(p, year / 100);
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
    static __thread time_t cached = -1;
    static __thread char buf[SL_HTTP_DATE_LEN + 1];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != cached) {
        cached = ts.tv_sec;
        sl_http_format_date(cached, buf);
    }
    return buf;
}

static const char *const wday_names[7] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                           "Thursday", "Friday", "Saturday"};

/* Reads exactly N decimal digits at S (no sign, no space). */
static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static int month_index(const char *m)
{
    for (int i = 0; i < 12; i++)
        if (memcmp(m, months[i], 3) == 0)
            return i;
    return -1;
}

static bool is_wday(const char *s, size_t n, bool full)
{
    for (int i = 0; i < 7; i++)
        if (full ? (n == strlen(wday_names[i]) && memcmp(s, wday_names[i], n) == 0)
                 : (n == 3 && memcmp(s, wdays[i], 3) == 0))
            return true;
    return false;
}

/* "HH:MM:SS" */
static bool time_of_day(const char *s, struct tm *tm)
{
    return digits(s, 2, &tm->tm_hour) && s[2] == ':' && digits(s + 3, 2, &tm->tm_min) &&
           s[5] == ':' && digits(s + 6, 2, &tm->tm_sec);
}

int sl_http_parse_date(const char *s, size_t n, time_t *out)
{
    /* Exact layouts of RFC 9110 5.6.7; the weekday must be a weekday name but
       is not checked against the date (the date is what counts). */
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int year, mon;
    if (n < 24) /* the shortest layout, asctime */
        return SL_ERR;
    if (n == 29) {
        /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
        if (!is_wday(s, 3, false) || memcmp(s + 3, ", ", 2) != 0 ||
            !digits(s + 5, 2, &tm.tm_mday) || s[7] != ' ' || (mon = month_index(s + 8)) < 0 ||
            s[11] != ' ' || !digits(s + 12, 4, &year) || s[16] != ' ' ||
            !time_of_day(s + 17, &tm) || memcmp(s + 25, " GMT", 4) != 0)
            return SL_ERR;
    } else if (n == 24 && s[3] == ' ') {
        /* asctime: "Sun Nov  6 08:49:37 1994" (day: 2DIGIT or SP DIGIT) */
        if (!is_wday(s, 3, false) || (mon = month_index(s + 4)) < 0 || s[7] != ' ' ||
            !digits(s + 9, 1, &tm.tm_mday) || (s[8] != ' ' && !digits(s + 8, 2, &tm.tm_mday)) ||
            s[10] != ' ' || !time_of_day(s + 11, &tm) || s[19] != ' ' ||
            !digits(s + 20, 4, &year))
            return SL_ERR;
    } else {
        /* RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" */
        const char *comma = memchr(s, ',', n);
        if (comma == NULL || !is_wday(s, (size_t)(comma - s), true))
            return SL_ERR;
        const char *d = comma + 1;
        if ((size_t)(s + n - d) != 23 || d[0] != ' ' || !digits(d + 1, 2, &tm.tm_mday) ||
            d[3] != '-' || (mon = month_index(d + 4)) < 0 || d[7] != '-' ||
            !digits(d + 8, 2, &year) || d[10] != ' ' || !time_of_day(d + 11, &tm) ||
            memcmp(d + 19, " GMT", 4) != 0)
            return SL_ERR;
        /* two-digit year: the nearest past century (RFC 9110 5.6.7) */
        year += year < 70 ? 2000 : 1900;
    }
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (year < 1900 || tm.tm_mday < 1 || tm.tm_mday > mdays[mon] ||
        (mon == 1 && tm.tm_mday == 29 && !leap) || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60 /* a leap second */)
        return SL_ERR;
    tm.tm_year = year - 1900;
    tm.tm_mon = mon;
    *out = timegm(&tm);
    return SL_OK;
}

size_t sl_http_error_response(char *out, size_t cap, int status, bool keepalive,
                              bool head_only, const char *extra)
{
    const char *reason = sl_http_reason(status);
    char body[256];
    int bn = snprintf(body, sizeof(body),
                      "<!DOCTYPE html>\n<html><head><title>%d %s</title></head>"
                      "<body><h1>%d %s</h1></body></html>\n",
                      status, reason, status, reason);
    int n = snprintf(out, cap,
                     "HTTP/1.1 %d %s\r\nServer: sluice\r\nDate: %s\r\n"
                     "Content-Type: text/html\r\nContent-Length: %d\r\n"
                     "Connection: %s\r\n%s\r\n%s",
                     status, reason, sl_http_date_now(), bn,
                     keepalive ? "keep-alive" : "close", extra ? extra : "",
                     head_only ? "" : body);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    return (size_t)n;
}
