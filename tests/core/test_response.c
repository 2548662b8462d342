/* test_response.c: the response builder over a temporary document root, with
 * requests parsed from their wire text: GET and HEAD, conditional requests
 * (If-None-Match lists, weak and "*", If-Modified-Since, If-Match and
 * If-Unmodified-Since with 412), ranges (single, suffix, open, multipart,
 * unsatisfiable, ignored) and If-Range, precompressed siblings chosen by
 * Accept-Encoding q-values with Vary, directories, index files and errors,
 * framing (413, 501, discard, Expect), and a head that does not fit. The
 * .c is included, as h2o's unit tests do, to test the parsers (ranges,
 * entity-tag lists, Accept-Encoding) directly. */
#include "core/response.c"

#include "core/mime.h"
#include "stages/conn.h" /* SL_CONN_HDR_CAP: the head buffer the server lends */

#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <urcu.h>

#define MTIME 1700000000 /* every file's modification time */
#define BIN_SIZE 1000

static char root[64];
static int root_fd = -1;
static struct sl_mime *mime;
static struct sl_cache *cache;
static struct sl_response_env env;
static char head[SL_CONN_HDR_CAP + 1];
static struct sl_response resp;
static char etag_txt[48], etag_gz[48], etag_br[48], lastmod[32];

static void write_file(const char *name, const char *data, size_t n)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", root, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "%s", p);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
    struct timespec ts[2] = {{MTIME, 0}, {MTIME, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
}

static void make_dir(const char *name)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", root, name);
    cr_assert_eq(mkdir(p, 0755), 0);
}

/* ETag of a file as the cache makes it. */
static void etag_of(const char *name, char out[48])
{
    struct sl_cache_entry *e = sl_cache_get(cache, name);
    cr_assert_eq(e->err, 0, "%s", name);
    snprintf(out, 48, "%s", e->etag);
    sl_cache_release(cache, e);
}

static void setup(void)
{
    rcu_register_thread();
    snprintf(root, sizeof(root), "/tmp/sluice-response-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
    root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(root_fd, 0);

    char bin[BIN_SIZE];
    for (int i = 0; i < BIN_SIZE; i++)
        bin[i] = (char)('a' + i % 26);
    write_file("1k.bin", bin, sizeof(bin));
    write_file("a.txt", "plain text\n", 11);
    write_file("a.txt.gz", "gzip bytes!!", 12);
    write_file("a.txt.br", "brotli", 6);
    write_file("only.txt", "no siblings\n", 12);
    write_file("empty.txt", "", 0);
    make_dir("dir");
    write_file("dir/index.html", "<p>index</p>\n", 13);
    make_dir("bare");
    make_dir("odd");
    make_dir("odd/index.html");
    /* A type long enough that no 200 head can hold it. */
    char types[2048];
    int n =
        snprintf(types, sizeof(types), "text/plain txt\ntext/html html\napplication/x-");
    memset(types + n, 'z', 1400);
    snprintf(types + n + 1400, sizeof(types) - (size_t)n - 1400, " huge\n");
    write_file("mime.types", types, strlen(types));
    write_file("x.huge", "huge type\n", 10);

    char mp[128];
    snprintf(mp, sizeof(mp), "%s/mime.types", root);
    bool warn = false;
    mime = sl_mime_load(mp, NULL, &warn);
    cr_assert_not(warn);
    struct sl_cache_config cfg = {.max_entries = 100,
                                  .validity_ns = 60ull * 1000000000,
                                  .negative_ns = 60ull * 1000000000,
                                  .small_file_max = 64,
                                  .body_memory = 1 << 30};
    cache = sl_cache_create(root_fd, mime, &cfg);
    env = (struct sl_response_env){.cache = cache,
                                   .index = "index.html",
                                   .precompressed = true,
                                   .max_body_discard = 1024,
                                   .keepalive = true,
                                   .unique = 0x1234};
    etag_of("a.txt", etag_txt);
    etag_of("a.txt.gz", etag_gz);
    etag_of("a.txt.br", etag_br);
    sl_http_format_date(MTIME, lastmod);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(p);
}

static void teardown(void)
{
    sl_cache_destroy(cache);
    sl_mime_free(mime);
    close(root_fd);
    nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    rcu_unregister_thread();
}

TestSuite(response, .init = setup, .fini = teardown);

/* Builds the response to the request head RAW (CRLF line ends added: lines
 * separated by '\n') into resp/head, with a head buffer of CAP bytes. */
static void ask_cap(const char *raw, size_t cap)
{
    char buf[4096];
    size_t o = 0;
    for (const char *p = raw; *p; p++) {
        if (*p == '\n')
            buf[o++] = '\r';
        buf[o++] = *p;
    }
    memcpy(buf + o, "\r\n\r\n", 4);
    o += 4;
    struct sl_http_limits lim = {8192, 8192, 100};
    static struct sl_request req; /* its strings point into buf only during the call */
    int status = 0;
    int rc = sl_http_parse_request(buf, o, &lim, &req, &status);
    cr_assert_gt(rc, 0, "parse %s: %d (%d)", raw, rc, status);
    memset(head, 0, sizeof(head));
    sl_response_build(&env, &req, head, cap, &resp);
    cr_assert_leq(resp.head_len, cap);
}

static void ask(const char *raw)
{
    ask_cap(raw, SL_CONN_HDR_CAP);
}

/* ask() with the request head formatted from FMT. */
__attribute__((format(printf, 1, 2))) static void askf(const char *fmt, ...)
{
    char raw[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(raw, sizeof(raw), fmt, ap);
    va_end(ap);
    cr_assert(n > 0 && (size_t)n < sizeof(raw));
    ask(raw);
}

/* The value of header NAME in the head, or NULL ("" for an empty value). */
static const char *hval(const char *name)
{
    static char v[1600];
    size_t nl = strlen(name);
    const char *end = strstr(head, "\r\n\r\n");
    cr_assert_not_null(end, "no end of head: %s", head);
    for (const char *p = strstr(head, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
        const char *l = p + 2;
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *s = l + nl + 1;
            while (*s == ' ')
                s++;
            const char *e = strstr(s, "\r\n");
            snprintf(v, sizeof(v), "%.*s", (int)(e - s), s);
            return v;
        }
    }
    return NULL;
}

static void expect_status(int status)
{
    char line[32];
    snprintf(line, sizeof(line), "HTTP/1.1 %d ", status);
    cr_assert_eq(resp.status, status, "status %d, head:\n%s", resp.status, head);
    cr_assert_eq(strncmp(head, line, strlen(line)), 0, "%s", head);
    cr_assert_eq(strlen(head), resp.head_len, "the head is exactly head_len bytes");
}

/* Gives up what the response holds, as the sender does when done. */
static void done(void)
{
    if (resp.entry)
        sl_cache_release(cache, resp.entry);
    free(resp.parts);
    resp.entry = NULL;
    resp.parts = NULL;
}

/* The body the response describes (file ranges and part texts). */
static size_t body_of(char *out, size_t cap)
{
    size_t o = 0;
    if (resp.parts) {
        struct sl_parts *p = resp.parts;
        for (int i = 0; i <= p->n; i++) {
            cr_assert_lt(o + p->text_len[i], cap);
            memcpy(out + o, p->text[i], p->text_len[i]);
            o += p->text_len[i];
            if (i < p->n) {
                size_t n = (size_t)(p->end[i] - p->start[i]);
                cr_assert_lt(o + n, cap);
                cr_assert_eq(pread(resp.entry->fd, out + o, n, p->start[i]), (ssize_t)n);
                o += n;
            }
        }
    } else if (resp.entry) {
        size_t n = (size_t)(resp.body_end - resp.body_start);
        cr_assert_lt(n, cap);
        cr_assert_eq(pread(resp.entry->fd, out, n, resp.body_start), (ssize_t)n);
        o = n;
    }
    out[o] = '\0';
    return o;
}

static size_t body_after_head(void)
{
    const char *end = strstr(head, "\r\n\r\n");
    return resp.head_len - (size_t)(end + 4 - head);
}

/* ---- GET and HEAD ---- */

Test(response, get_whole_file)
{
    ask("GET /1k.bin HTTP/1.1\nHost: x");
    expect_status(200);
    cr_assert_str_eq(hval("Content-Length"), "1000");
    cr_assert_str_eq(hval("Content-Type"), "application/octet-stream");
    cr_assert_str_eq(hval("Accept-Ranges"), "bytes");
    cr_assert_str_eq(hval("Last-Modified"), lastmod);
    cr_assert_str_eq(hval("Server"), "sluice");
    cr_assert_not_null(hval("Date"));
    cr_assert_str_eq(hval("Connection"), "keep-alive");
    cr_assert_str_eq(hval("Vary"), "Accept-Encoding", "with precompressed on, always");
    done();
}

Test(response, get_whole_file_body)
{
    ask("GET /a.txt HTTP/1.1\nHost: x");
    expect_status(200);
    cr_assert(resp.keepalive);
    cr_assert_eq(resp.discard, 0);
    cr_assert_not_null(resp.entry);
    cr_assert_null(resp.parts);
    cr_assert_eq(resp.body_start, 0);
    cr_assert_eq(resp.body_end, 11);
    cr_assert_str_eq(hval("ETag"), etag_txt);
    cr_assert_str_eq(hval("Content-Type"), "text/plain");
    char body[64];
    body_of(body, sizeof(body));
    cr_assert_str_eq(body, "plain text\n");
    cr_assert_eq(body_after_head(), 0);
    done();
}

Test(response, head_has_length_and_no_body)
{
    ask("HEAD /1k.bin HTTP/1.1\nHost: x");
    expect_status(200);
    cr_assert_str_eq(hval("Content-Length"), "1000");
    cr_assert_null(resp.entry, "HEAD holds no file");
    cr_assert_eq(resp.body_end, 0);
}

Test(response, empty_file_has_no_body)
{
    ask("GET /empty.txt HTTP/1.1\nHost: x");
    expect_status(200);
    cr_assert_str_eq(hval("Content-Length"), "0");
    cr_assert_null(resp.entry);
}

Test(response, close_when_client_or_server_says_so)
{
    ask("GET /a.txt HTTP/1.1\nHost: x\nConnection: close");
    expect_status(200);
    cr_assert_not(resp.keepalive);
    cr_assert_str_eq(hval("Connection"), "close");
    done();
    ask("GET /a.txt HTTP/1.0");
    cr_assert_not(resp.keepalive);
    done();
    env.keepalive = false; /* draining, or max_requests_per_connection reached */
    ask("GET /a.txt HTTP/1.1\nHost: x");
    cr_assert_not(resp.keepalive);
    cr_assert_str_eq(hval("Connection"), "close");
    done();
}

/* ---- conditional requests ---- */

Test(response, if_none_match_strong_weak_list_and_star)
{
    const char *forms[] = {"%s", "\"nope\", %s", "W/%s", "\"a\",W/\"b\" ,  %s", "*"};
    for (size_t i = 0; i < SL_ARRAY_LEN(forms); i++) {
        char v[128];
        snprintf(v, sizeof(v), forms[i], etag_txt);
        askf("GET /a.txt HTTP/1.1\nHost: x\nIf-None-Match: %s", v);
        expect_status(304);
        cr_assert_null(resp.entry, "%s", v);
        cr_assert_str_eq(hval("ETag"), etag_txt);
        cr_assert_str_eq(hval("Last-Modified"), lastmod);
        cr_assert_null(hval("Content-Length"));
        cr_assert_eq(body_after_head(), 0);
    }
    ask("GET /a.txt HTTP/1.1\nHost: x\nIf-None-Match: \"nope\", W/\"other\"");
    expect_status(200);
    done();
    /* HEAD too */
    askf("HEAD /a.txt HTTP/1.1\nHost: x\nIf-None-Match: %s", etag_txt);
    expect_status(304);
}

Test(response, if_modified_since)
{
    char d[32];
    askf("GET /a.txt HTTP/1.1\nHost: x\nIf-Modified-Since: %s", lastmod);
    expect_status(304);
    sl_http_format_date(MTIME + 100, d);
    askf("GET /a.txt HTTP/1.1\nHost: x\nIf-Modified-Since: %s", d);
    expect_status(304);
    sl_http_format_date(MTIME - 1, d);
    askf("GET /a.txt HTTP/1.1\nHost: x\nIf-Modified-Since: %s", d);
    expect_status(200);
    done();
    ask("GET /a.txt HTTP/1.1\nHost: x\nIf-Modified-Since: yesterday");
    expect_status(200);
    done();
    /* If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2). */
    askf("GET /a.txt HTTP/1.1\nHost: x\nIf-None-Match: \"x\"\nIf-Modified-Since: %s",
         lastmod);
    expect_status(200);
    done();
}

Test(response, if_match_and_if_unmodified_since_give_412)
{
    char d[32];
    ask("GET /a.txt HTTP/1.1\nHost: x\nIf-Match: \"nope\"");
    expect_status(412);
    cr_assert_null(resp.entry);
    cr_assert(resp.keepalive, "a 412 keeps the connection");
    askf("GET /a.txt HTTP/1.1\nHost: x\nIf-Match: W/%s", etag_txt);
    expect_status(412); /* strong comparison: a weak tag never matches */
    askf("GET /a.txt HTTP/1.1\nHost: x\nIf-Match: \"a\", %s", etag_txt);
    expect_status(200);
    done();
    ask("GET /a.txt HTTP/1.1\nHost: x\nIf-Match: *");
    expect_status(200);
    done();
    sl_http_format_date(MTIME - 1, d);
    askf("GET /a.txt HTTP/1.1\nHost: x\nIf-Unmodified-Since: %s", d);
    expect_status(412);
    askf("HEAD /a.txt HTTP/1.1\nHost: x\nIf-Unmodified-Since: %s", d);
    expect_status(412);
    cr_assert_eq(body_after_head(), 0, "HEAD: no error page");
    askf("GET /a.txt HTTP/1.1\nHost: x\nIf-Unmodified-Since: %s", lastmod);
    expect_status(200);
    done();
    /* If-Match wins over If-Unmodified-Since; 412 before 304. */
    askf("GET /a.txt HTTP/1.1\nHost: x\nIf-Match: %s\nIf-Unmodified-Since: %s", etag_txt,
         d);
    expect_status(200);
    done();
    askf("GET /a.txt HTTP/1.1\nHost: x\nIf-Match: \"no\"\nIf-None-Match: %s", etag_txt);
    expect_status(412);
}

/* ---- ranges ---- */

static void expect_range(const char *spec, long lo, long hi)
{
    char want[64];
    askf("GET /1k.bin HTTP/1.1\nHost: x\nRange: %s", spec);
    expect_status(206);
    snprintf(want, sizeof(want), "bytes %ld-%ld/%d", lo, hi, BIN_SIZE);
    cr_assert_str_eq(hval("Content-Range"), want, "%s", spec);
    snprintf(want, sizeof(want), "%ld", hi - lo + 1);
    cr_assert_str_eq(hval("Content-Length"), want, "%s", spec);
    cr_assert_eq(resp.body_start, lo);
    cr_assert_eq(resp.body_end, hi + 1);
    cr_assert_not_null(resp.entry);
    cr_assert_null(resp.parts);
    done();
}

Test(response, single_suffix_and_open_ranges)
{
    expect_range("bytes=0-99", 0, 99);
    expect_range("bytes=10-10", 10, 10);
    expect_range("bytes=-5", 995, 999);
    expect_range("bytes=990-", 990, 999);
    expect_range("bytes=5-999999999", 5, 999);
    expect_range("bytes=-99999999", 0, 999);
    expect_range("BYTES=1-2", 1, 2);
    expect_range("bytes=5000-6000, 3-4", 3, 4); /* the unsatisfiable one is dropped */
    expect_range("bytes=-0, 7-8", 7, 8);
}

Test(response, multiple_ranges_are_multipart)
{
    ask("GET /1k.bin HTTP/1.1\nHost: x\nRange: bytes=0-9, 100-199,-10");
    expect_status(206);
    cr_assert_not_null(resp.parts);
    cr_assert_not_null(resp.entry);
    cr_assert_eq(resp.parts->n, 3);
    const char *ct = hval("Content-Type");
    cr_assert_str_eq(ct, "multipart/byteranges; boundary=sluice0000000000001234");
    char body[4096];
    size_t n = body_of(body, sizeof(body));
    char len[24];
    snprintf(len, sizeof(len), "%zu", n);
    cr_assert_str_eq(hval("Content-Length"), len);
    cr_assert_not_null(strstr(body, "--sluice0000000000001234\r\nContent-Type: "
                                    "application/octet-stream\r\nContent-Range: bytes "
                                    "0-9/1000\r\n\r\nabcdefghij\r\n"));
    cr_assert_not_null(strstr(body, "Content-Range: bytes 990-999/1000\r\n\r\n"));
    cr_assert_not_null(strstr(body, "\r\n--sluice0000000000001234--\r\n"));
    cr_assert_eq(body_after_head(), 0);
    done();
}

Test(response, unsatisfiable_range_is_416)
{
    const char *specs[] = {"bytes=1000-", "bytes=5000-6000", "bytes=-0", "bytes=1000-1,"};
    for (size_t i = 0; i < SL_ARRAY_LEN(specs); i++) {
        askf("GET /1k.bin HTTP/1.1\nHost: x\nRange: %s", specs[i]);
        if (i == 3) { /* 1000-1: last < first, the header is invalid: ignored */
            expect_status(200);
            done();
            continue;
        }
        expect_status(416);
        cr_assert_str_eq(hval("Content-Range"), "bytes */1000", "%s", specs[i]);
        cr_assert_null(resp.entry);
    }
}

Test(response, ignored_ranges_send_the_whole_file)
{
    const char *specs[] = {
        "items=0-1",
        "bytes=",
        "bytes=a-b",
        "bytes=5-2",
        "bytes=-",
        "bytes=0-1;",
        "bytes=0-9,5-14", /* overlapping: amplification */
        "bytes=0-1,2-3,4-5,6-7,8-9,10-11,12-13,14-15,16-17,18-19,20-21,22-23,24-25,"
        "26-27,28-29,30-31,32-33", /* 17 > SL_MAX_RANGES */
        "bytes=99999999999999999999-",
    };
    for (size_t i = 0; i < SL_ARRAY_LEN(specs); i++) {
        askf("GET /1k.bin HTTP/1.1\nHost: x\nRange: %s", specs[i]);
        expect_status(200);
        cr_assert_str_eq(hval("Content-Length"), "1000", "%s", specs[i]);
        cr_assert_eq(resp.body_end, 1000);
        done();
    }
    /* A suffix of an empty file is zero bytes, which no Content-Range can
       name ("bytes 0--1/0" once): the whole, empty, file. */
    ask("GET /empty.txt HTTP/1.1\nHost: x\nRange: bytes=-5");
    expect_status(200);
    cr_assert_str_eq(hval("Content-Length"), "0");
    cr_assert_null(hval("Content-Range"));
    ask("GET /empty.txt HTTP/1.1\nHost: x\nRange: bytes=0-");
    expect_status(416);
    cr_assert_str_eq(hval("Content-Range"), "bytes */0");
    /* Ranges apply to GET only. */
    ask("HEAD /1k.bin HTTP/1.1\nHost: x\nRange: bytes=0-9");
    expect_status(200);
}

Test(response, sixteen_ranges_are_allowed)
{
    ask("GET /1k.bin HTTP/1.1\nHost: x\nRange: "
        "bytes=0-1,2-3,4-5,6-7,8-9,10-11,12-13,14-15,"
        "16-17,18-19,20-21,22-23,24-25,26-27,28-29,30-31");
    expect_status(206);
    cr_assert_eq(resp.parts->n, 16);
    done();
}

Test(response, head_with_multiple_ranges_holds_nothing)
{
    /* The range path is GET-only today; HEAD answers the whole file. */
    ask("HEAD /1k.bin HTTP/1.1\nHost: x\nRange: bytes=0-1,5-6");
    expect_status(200);
    cr_assert_null(resp.parts);
    cr_assert_null(resp.entry);
}

Test(response, if_range)
{
    char d[32];
    askf("GET /1k.bin HTTP/1.1\nHost: x\nRange: bytes=0-9\nIf-Range: %s", lastmod);
    expect_status(206);
    done();
    sl_http_format_date(MTIME + 1, d);
    askf("GET /1k.bin HTTP/1.1\nHost: x\nRange: bytes=0-9\nIf-Range: %s", d);
    expect_status(200); /* only an exact date counts */
    done();
    ask("GET /1k.bin HTTP/1.1\nHost: x\nRange: bytes=0-9\nIf-Range: \"other\"");
    expect_status(200);
    done();
    char tag[48];
    etag_of("1k.bin", tag);
    askf("GET /1k.bin HTTP/1.1\nHost: x\nRange: bytes=0-9\nIf-Range: %s", tag);
    expect_status(206);
    done();
    askf("GET /1k.bin HTTP/1.1\nHost: x\nRange: bytes=0-9\nIf-Range: W/%s", tag);
    expect_status(200); /* a weak tag never validates a range */
    done();
}

/* ---- precompressed siblings ---- */

static void expect_coding(const char *ae, const char *coding, const char *body)
{
    char b[64];
    askf("GET /a.txt HTTP/1.1\nHost: x\nAccept-Encoding: %s", ae);
    expect_status(200);
    const char *ce = hval("Content-Encoding");
    if (coding)
        cr_assert(ce && strcmp(ce, coding) == 0, "%s: got %s", ae, ce ? ce : "(none)");
    else
        cr_assert_null(ce, "%s: got %s", ae, ce);
    cr_assert_str_eq(hval("Vary"), "Accept-Encoding");
    cr_assert_str_eq(hval("Content-Type"), "text/plain", "the plain file's type");
    body_of(b, sizeof(b));
    cr_assert_str_eq(b, body, "%s", ae);
    char len[24];
    snprintf(len, sizeof(len), "%zu", strlen(body));
    cr_assert_str_eq(hval("Content-Length"), len);
    done();
}

Test(response, accept_encoding_chooses_a_sibling)
{
    expect_coding("gzip", "gzip", "gzip bytes!!");
    expect_coding("br", "br", "brotli");
    expect_coding("gzip, br", "br", "brotli"); /* br first, whatever the order */
    expect_coding("GZIP;q=0.5, deflate", "gzip", "gzip bytes!!");
    expect_coding("br;q=0, gzip", "gzip", "gzip bytes!!");
    expect_coding("br; q=0.000 , gzip;q=0.", NULL, "plain text\n");
    expect_coding("br;q=0.001", "br", "brotli");
    expect_coding("gzip;Q=0", NULL, "plain text\n");
    expect_coding("identity", NULL, "plain text\n");
    expect_coding("*", NULL, "plain text\n"); /* "*" is not looked at today */
    expect_coding("xgzip, gzipx, br-x", NULL, "plain text\n");
}

Test(response, compressed_validators_are_the_siblings)
{
    ask("GET /a.txt HTTP/1.1\nHost: x\nAccept-Encoding: gzip");
    cr_assert_str_eq(hval("ETag"), etag_gz);
    done();
    askf("GET /a.txt HTTP/1.1\nHost: x\nAccept-Encoding: gzip\n"
         "If-None-Match: %s",
         etag_gz);
    expect_status(304);
    cr_assert_str_eq(hval("Vary"), "Accept-Encoding", "a 304 carries the 200's Vary");
    cr_assert_str_eq(hval("ETag"), etag_gz);
    askf("GET /a.txt HTTP/1.1\nHost: x\nAccept-Encoding: gzip\n"
         "If-None-Match: %s",
         etag_txt);
    expect_status(200); /* another representation's tag */
    done();
    askf("GET /a.txt HTTP/1.1\nHost: x\nAccept-Encoding: br\n"
         "If-Match: %s",
         etag_txt);
    expect_status(412);
    cr_assert_str_eq(hval("Vary"), "Accept-Encoding");
    /* Ranges are the compressed bytes'. */
    ask("GET /a.txt HTTP/1.1\nHost: x\nAccept-Encoding: br\nRange: bytes=1-2");
    expect_status(206);
    cr_assert_str_eq(hval("Content-Range"), "bytes 1-2/6");
    cr_assert_str_eq(hval("Content-Encoding"), "br");
    cr_assert_str_eq(hval("Vary"), "Accept-Encoding");
    done();
    ask("GET /a.txt HTTP/1.1\nHost: x\nAccept-Encoding: br\nRange: bytes=100-");
    expect_status(416);
    cr_assert_str_eq(hval("Content-Range"), "bytes */6");
    cr_assert_str_eq(hval("Vary"), "Accept-Encoding");
}

Test(response, vary_without_sibling_and_none_when_off)
{
    ask("GET /only.txt HTTP/1.1\nHost: x\nAccept-Encoding: gzip, br");
    expect_status(200);
    cr_assert_str_eq(hval("Vary"), "Accept-Encoding");
    cr_assert_null(hval("Content-Encoding"));
    done();
    ask("GET /only.txt HTTP/1.1\nHost: x");
    cr_assert_str_eq(hval("Vary"), "Accept-Encoding");
    done();
    env.precompressed = false;
    ask("GET /a.txt HTTP/1.1\nHost: x\nAccept-Encoding: gzip, br");
    expect_status(200);
    cr_assert_null(hval("Vary"));
    cr_assert_null(hval("Content-Encoding"));
    cr_assert_str_eq(hval("ETag"), etag_txt);
    done();
}

/* ---- paths ---- */

Test(response, directories_index_and_errors)
{
    ask("GET /dir HTTP/1.1\nHost: x");
    expect_status(301);
    cr_assert_str_eq(hval("Location"), "/dir/");
    cr_assert(resp.keepalive);
    ask("GET /dir?a=1&b HTTP/1.1\nHost: x");
    expect_status(301);
    cr_assert_str_eq(hval("Location"), "/dir/?a=1&b");
    ask("GET /dir/ HTTP/1.1\nHost: x");
    expect_status(200);
    cr_assert_str_eq(hval("Content-Type"), "text/html");
    cr_assert_str_eq(hval("Content-Length"), "13");
    done();
    ask("GET /bare/ HTTP/1.1\nHost: x");
    expect_status(403); /* no index, no listing */
    ask("GET /odd/ HTTP/1.1\nHost: x");
    expect_status(403); /* the index is a directory */
    ask("GET /nope/ HTTP/1.1\nHost: x");
    expect_status(404);
    ask("GET /nope HTTP/1.1\nHost: x");
    expect_status(404);
    cr_assert(resp.keepalive);
    ask("HEAD /nope HTTP/1.1\nHost: x");
    expect_status(404);
    cr_assert_eq(body_after_head(), 0);
    ask("GET /a.txt/x HTTP/1.1\nHost: x");
    expect_status(404); /* ENOTDIR */
    ask("GET /../a.txt HTTP/1.1\nHost: x");
    expect_status(400);
    cr_assert_not(resp.keepalive, "a bad target closes");
    ask("GET /%2e%2e/x HTTP/1.1\nHost: x");
    expect_status(400);
    ask("GET /%41.txt HTTP/1.1\nHost: x");
    expect_status(404);
    ask("GET /%61.txt HTTP/1.1\nHost: x");
    expect_status(200);
    done();
}

Test(response, methods_and_framing)
{
    ask("OPTIONS * HTTP/1.1\nHost: x");
    expect_status(204);
    cr_assert_str_eq(hval("Allow"), "GET, HEAD, OPTIONS");
    cr_assert_eq(body_after_head(), 0);
    ask("GET * HTTP/1.1\nHost: x");
    expect_status(400);
    cr_assert_not(resp.keepalive);
    ask("DELETE /a.txt HTTP/1.1\nHost: x");
    expect_status(405);
    cr_assert_str_eq(hval("Allow"), "GET, HEAD, OPTIONS");
    ask("BREW /a.txt HTTP/1.1\nHost: x");
    expect_status(501);
    cr_assert(resp.keepalive);
    ask("POST /a.txt HTTP/1.1\nHost: x\nTransfer-Encoding: chunked");
    expect_status(501);
    cr_assert_not(resp.keepalive, "a body we cannot delimit closes");
    ask("POST /a.txt HTTP/1.1\nHost: x\nContent-Length: 1025");
    expect_status(413);
    cr_assert_not(resp.keepalive);
    cr_assert_eq(resp.discard, 0);
    ask("HEAD /a.txt HTTP/1.1\nHost: x\nContent-Length: 1025");
    expect_status(413);
    cr_assert_eq(body_after_head(), 0, "no error page after a HEAD");
    ask("HEAD /a.txt HTTP/1.1\nHost: x\nTransfer-Encoding: chunked");
    expect_status(501);
    cr_assert_eq(body_after_head(), 0);
    ask("GET /a.txt HTTP/1.1\nHost: x\nContent-Length: 1024");
    expect_status(200);
    cr_assert_eq(resp.discard, 1024);
    cr_assert(resp.keepalive);
    done();
    ask("GET /a.txt HTTP/1.1\nHost: x\nContent-Length: 5\nExpect: 100-continue");
    expect_status(200);
    cr_assert_eq(resp.discard, 5);
    cr_assert_not(resp.keepalive);
    done();
}

/* ---- a head that does not fit ---- */

Test(response, head_overflow_is_500_and_close)
{
    ask("GET /x.huge HTTP/1.1\nHost: x");
    expect_status(500);
    cr_assert_not(resp.keepalive);
    cr_assert_null(resp.entry, "the file is released");
    cr_assert_str_eq(hval("Connection"), "close");
    cr_assert_gt(body_after_head(), 0, "the error page");
    ask("HEAD /x.huge HTTP/1.1\nHost: x");
    expect_status(500);
    cr_assert_eq(body_after_head(), 0);
    /* The same at the smallest buffer, through a redirect's Location. */
    char h[512];
    snprintf(h, sizeof(h), "GET /dir?%0225d HTTP/1.1\nHost: x", 0);
    ask_cap(h, SL_RESPONSE_HEAD_MIN);
    expect_status(500);
    cr_assert_not(resp.keepalive);
    ask_cap("GET /1k.bin HTTP/1.1\nHost: x\nRange: bytes=0-1,3-4", SL_RESPONSE_HEAD_MIN);
    expect_status(206);
    done();
    ask_cap("GET /a.txt HTTP/1.1\nHost: x", SL_RESPONSE_HEAD_MIN);
    expect_status(200);
    done();
}

Test(response, error_and_unavailable)
{
    sl_response_error(400, head, sizeof(head), &resp);
    expect_status(400);
    cr_assert_not(resp.keepalive);
    cr_assert_str_eq(hval("Connection"), "close");
    cr_assert_gt(body_after_head(), 0);
    sl_response_unavailable(3, false, head, SL_RESPONSE_HEAD_MIN, &resp);
    expect_status(503);
    cr_assert_str_eq(hval("Retry-After"), "3");
    cr_assert_not(resp.keepalive);
    sl_response_unavailable(0, true, head, sizeof(head), &resp);
    expect_status(503);
    cr_assert_null(hval("Retry-After"));
    cr_assert_eq(body_after_head(), 0);
}

/* ---- the parsers, directly ---- */

static int ranges(const char *v, off_t size, off_t *s, off_t *e)
{
    return parse_ranges((struct sl_str){v, strlen(v)}, size, s, e);
}

Test(response_parsers, parse_ranges)
{
    off_t s[SL_MAX_RANGES], e[SL_MAX_RANGES];
    cr_assert_eq(ranges("bytes=0-0", 10, s, e), 1);
    cr_assert(s[0] == 0 && e[0] == 1);
    cr_assert_eq(ranges("bytes= 1-2 ,\t-3", 10, s, e), 2);
    cr_assert(s[0] == 1 && e[0] == 3 && s[1] == 7 && e[1] == 10);
    cr_assert_eq(ranges("bytes=0-", 0, s, e), 0, "nothing of an empty file");
    cr_assert_eq(ranges("bytes=-1", 0, s, e), -1, "nor a suffix of it: ignored");
    cr_assert_eq(ranges("bytes=,,", 10, s, e), -1);
    cr_assert_eq(ranges("bytes=1-2 3-4", 10, s, e), -1);
    /* Numbers stop one digit short of LLONG_MAX: longer ones are bad syntax. */
    cr_assert_eq(ranges("bytes=922337203685477580-", 10, s, e), 0);
    cr_assert_eq(ranges("bytes=9223372036854775807-", 10, s, e), -1);
    cr_assert_eq(ranges("bytes=0-9223372036854775807", 10, s, e), -1);
    cr_assert_eq(ranges("bytes=0-922337203685477580", 10, s, e), 1);
    cr_assert(e[0] == 10);
    cr_assert_eq(ranges("bytes=5-6,0-4", 10, s, e), 2, "touching is not overlapping");
    cr_assert_eq(ranges("bytes=5-6,-5", 10, s, e), -1);
    cr_assert_eq(ranges("bytes", 10, s, e), -1);
}

static bool has(const char *list, const char *etag, bool weak)
{
    return etag_list_has((struct sl_str){list, strlen(list)}, etag, weak);
}

Test(response_parsers, etag_lists)
{
    cr_assert(has("\"a\"", "\"a\"", false));
    cr_assert(has(" ,\"b\",\t\"a\" ", "\"a\"", false));
    cr_assert_not(has("W/\"a\"", "\"a\"", false));
    cr_assert(has("W/\"a\"", "\"a\"", true));
    cr_assert(has("\"x\", *", "\"a\"", false));
    cr_assert_not(has("\"a", "\"a\"", true), "unterminated");
    cr_assert(has("\"a\"x", "\"a\"", true), "a quoted tag ends at its quote");
    cr_assert_not(has("", "\"a\"", true));
    cr_assert_not(has("W/", "\"a\"", true));
    cr_assert_not(has("\"A\"", "\"a\"", true), "tags are case-sensitive");
    cr_assert(has("a", "a", false), "unquoted tokens compare as they are");
}

static bool acc(const char *v, const char *coding)
{
    return accepts((struct sl_str){v, strlen(v)}, coding);
}

Test(response_parsers, accept_encoding)
{
    cr_assert(acc("gzip", "gzip"));
    cr_assert(acc(" deflate , GZip ", "gzip"));
    cr_assert(acc("gzip;q=1", "gzip"));
    cr_assert(acc("gzip ; q=0.5", "gzip"));
    cr_assert_not(acc("gzip;q=0", "gzip"));
    cr_assert_not(acc("gzip;q=0.", "gzip"));
    cr_assert_not(acc("gzip;q=0.000  ", "gzip"));
    cr_assert(acc("gzip;q=0.0001", "gzip"), "more digits than RFC 9110 allows: not zero");
    cr_assert(acc("gzip;q=0.01", "gzip"));
    cr_assert_not(acc("gzipx", "gzip"));
    cr_assert_not(acc("", "gzip"));
    cr_assert_not(acc(",", "gzip"));
    cr_assert(acc("br;q=0,gzip", "gzip"));
    cr_assert_not(acc("br;q=0,gzip", "br"));
}
