/* fuzz_response.c: libFuzzer harness for the response builder. The first
 * input byte chooses the environment (precompressed siblings on or off, the
 * server keeping connections or not, a roomy or the smallest head buffer);
 * the rest is a request head (the blank line is added when it is missing),
 * parsed as a reader would, then answered over a small document root made
 * once: files with and without .gz/.br siblings, an empty file, a directory
 * with an index and one without. Ranges, Accept-Encoding, If-* lists and
 * entity tags all reach the builder's parsers this way. Every response is
 * checked against the contract in core/response.h and against the head it
 * wrote (framing, header-injection safety, lengths, ranges inside the file).
 * Any violation aborts. */
#include "core/http.h"
#include "core/mime.h"
#include "core/response.h"
#include "lib/log.h"
#include "stages/conn.h" /* SL_CONN_HDR_CAP: the head buffer the server lends */
#include "tests/fuzz/check.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <urcu.h>

#define MTIME 784111777 /* Sun, 06 Nov 1994 08:49:37 GMT, the RFCs' example date */

static struct sl_cache *cache;

static char root[64] = "/tmp/sluice-fuzz-response-XXXXXX"; /* the document root */

static void put(const char *name, size_t size)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", root, name);
    FILE *f = fopen(p, "w");
    if (f == NULL)
        abort();
    for (size_t i = 0; i < size; i++)
        fputc('a' + (int)(i % 26), f);
    fclose(f);
    struct timespec ts[2] = {{MTIME, 0}, {MTIME, 0}};
    utimensat(AT_FDCWD, p, ts, 0);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(p);
}

/* The document root goes when the process ends (the cache's open fds keep
   nothing on disk by then). */
static void remove_root(void)
{
    nftw(root, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    rcu_register_thread();
    sl_log_set_level(SL_LOG_CRIT); /* the 500s log on purpose */
    if (mkdtemp(root) == NULL)
        abort();
    put("f.txt", 100);
    put("f.txt.gz", 40);
    put("f.txt.br", 30);
    put("big.bin", 5000);
    put("only.css", 7);
    put("empty.txt", 0);
    put("empty.txt.gz", 0);
    char p[256];
    snprintf(p, sizeof(p), "%s/dir", root);
    mkdir(p, 0755);
    put("dir/index.html", 20);
    snprintf(p, sizeof(p), "%s/bare", root);
    mkdir(p, 0755);
    int root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        abort();
    struct sl_cache_config cfg = {.max_entries = 64,
                                  .validity_ns = 3600ull * 1000000000,
                                  .negative_ns = 3600ull * 1000000000,
                                  .small_file_max = 50,
                                  .body_memory = 1 << 30};
    cache = sl_cache_create(root_fd, sl_mime_load(NULL, NULL, NULL), &cfg);
    atexit(remove_root);
    return 0;
}

/* Value of header NAME in HEAD (LEN bytes, header section only), or NULL. */
static const char *field(const char *head, size_t len, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *end = head + len;
    const char *l = memchr(head, '\n', len);
    while (l != NULL && ++l < end) {
        const char *eol = memchr(l, '\r', (size_t)(end - l));
        if (eol == NULL)
            return NULL;
        if ((size_t)(eol - l) > nl + 1 && strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (v < eol && *v == ' ')
                v++;
            *vlen = (size_t)(eol - v);
            return v;
        }
        l = memchr(l, '\n', (size_t)(end - l));
    }
    return NULL;
}

static bool field_is(const char *head, size_t len, const char *name, const char *want)
{
    size_t n;
    const char *v = field(head, len, name, &n);
    return v != NULL && n == strlen(want) && memcmp(v, want, n) == 0;
}

static long long field_num(const char *head, size_t len, const char *name)
{
    size_t n;
    const char *v = field(head, len, name, &n);
    if (v == NULL)
        return -1;
    char tmp[32];
    CHECK(n > 0 && n < sizeof(tmp));
    memcpy(tmp, v, n);
    tmp[n] = '\0';
    char *e;
    long long x = strtoll(tmp, &e, 10);
    CHECK(*e == '\0' && x >= 0);
    return x;
}

static void check(const struct sl_response_env *env, const struct sl_request *req,
                  const char *head, size_t cap, const struct sl_response *r)
{
    static const int known[] = {200, 204, 206, 301, 304, 400, 403, 404,
                                405, 412, 413, 414, 416, 500, 501, 503};
    bool ok = false;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        ok |= r->status == known[i];
    CHECK(ok);
    CHECK(r->head_len <= cap);
    CHECK(r->head_len > 12 && memcmp(head, "HTTP/1.1 ", 9) == 0);
    CHECK((head[9] - '0') * 100 + (head[10] - '0') * 10 + (head[11] - '0') == r->status);

    /* The header section: CRLF lines, no other control byte (nothing from
       the request can inject a field or end the head early). */
    const char *blank = memmem(head, r->head_len, "\r\n\r\n", 4);
    CHECK(blank != NULL);
    size_t hlen = (size_t)(blank - head) + 4;
    for (size_t i = 0; i < hlen; i++) {
        unsigned char c = (unsigned char)head[i];
        if (c == '\r')
            CHECK(i + 1 < hlen && head[i + 1] == '\n');
        else if (c == '\n')
            CHECK(i > 0 && head[i - 1] == '\r');
        else
            CHECK((c >= 0x20 && c != 0x7f) || c == '\t');
    }
    size_t inline_body = r->head_len - hlen;

    CHECK(field_is(head, hlen, "Connection", r->keepalive ? "keep-alive" : "close"));
    if (r->keepalive)
        CHECK(env->keepalive && req->keepalive);
    bool head_only = req->method == SL_METHOD_HEAD;
    if (head_only || r->status == 304 || r->status == 204) {
        CHECK(r->entry == NULL && r->parts == NULL);
        CHECK(inline_body == 0);
    }
    if (r->discard > 0)
        CHECK(req->content_length == (int64_t)r->discard);
    if (!env->precompressed)
        CHECK(field(head, hlen, "Vary", &(size_t){0}) == NULL &&
              field(head, hlen, "Content-Encoding", &(size_t){0}) == NULL);

    long long clen = field_num(head, hlen, "Content-Length");
    if (r->status == 304 || r->status == 204) {
        CHECK(clen == -1);
        return;
    }
    CHECK(clen >= 0);
    if (r->parts != NULL) {
        const struct sl_parts *p = r->parts;
        CHECK(r->status == 206 && r->entry != NULL && inline_body == 0);
        CHECK(p->n >= 2 && p->n <= SL_MAX_RANGES);
        unsigned long long total = 0;
        for (int i = 0; i < p->n; i++) {
            CHECK(0 <= p->start[i] && p->start[i] < p->end[i] &&
                  p->end[i] <= r->entry->size);
            for (int k = 0; k < i; k++)
                CHECK(p->end[i] <= p->start[k] || p->end[k] <= p->start[i]);
            total += (unsigned long long)(p->end[i] - p->start[i]);
        }
        for (int i = 0; i <= p->n; i++) {
            CHECK(p->text_len[i] > 0 && memchr(p->text[i], 0, p->text_len[i]) == NULL);
            total += p->text_len[i];
        }
        CHECK(clen == (long long)total);
    } else if (r->entry != NULL) {
        const struct sl_cache_entry *e = r->entry;
        CHECK(e->err == 0 && !e->is_dir && inline_body == 0);
        CHECK(0 <= r->body_start && r->body_start < r->body_end &&
              r->body_end <= e->size);
        CHECK(clen == (long long)(r->body_end - r->body_start));
        if (r->status == 200) {
            CHECK(r->body_start == 0 && r->body_end == e->size);
        } else {
            CHECK(r->status == 206);
            char want[96];
            snprintf(want, sizeof(want), "bytes %lld-%lld/%lld", (long long)r->body_start,
                     (long long)r->body_end - 1, (long long)e->size);
            CHECK(field_is(head, hlen, "Content-Range", want));
        }
    } else {
        CHECK(r->body_start == 0 && r->body_end == 0);
        if (!head_only)
            CHECK(clen == (long long)inline_body || r->status == 200);
        if (r->status == 200)
            CHECK(clen == 0 || head_only); /* only an empty file has no entry */
        CHECK(r->status != 206 || head_only);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    static char buf[8192 + 4];
    if (size > 8192)
        return 0;
    memcpy(buf, data, size);
    struct sl_http_limits lim = {8192, 8192 + 4, SL_HTTP_MAX_HEADERS};
    static struct sl_request req;
    int status;
    int rc = sl_http_parse_request(buf, size, &lim, &req, &status);
    if (rc == SL_AGAIN) {
        memcpy(buf + size, "\r\n\r\n", 4);
        rc = sl_http_parse_request(buf, size + 4, &lim, &req, &status);
    }
    if (rc <= 0)
        return 0;

    struct sl_response_env env = {.cache = cache,
                                  .index = "index.html",
                                  .precompressed = mode & 1,
                                  .max_body_discard = 1 << 20,
                                  .keepalive = (mode & 2) == 0,
                                  .unique = 0x5eed};
    static char head[SL_CONN_HDR_CAP];
    size_t cap = mode & 4 ? SL_RESPONSE_HEAD_MIN : sizeof(head);
    struct sl_response r;
    memset(head, 0, sizeof(head));
    sl_response_build(&env, &req, head, cap, &r);
    check(&env, &req, head, cap, &r);
    if (r.entry != NULL)
        sl_cache_release(cache, r.entry);
    free(r.parts);
    return 0;
}
