/* test_cache.c: the fd/header cache over a temporary document root: hits and
 * misses, the prebuilt header, directories, special files, cached failures,
 * symlinks and ".." kept inside the root, files changed in place / replaced /
 * deleted (noticed at once through the fd, or after the validity period
 * through the path), live reconfiguration, eviction, reference counting
 * across eviction and replacement, and a multi-threaded race against a file
 * system in motion that ends with an exact account of open files and memory. */
#include "core/cache.h"
#include "core/mime.h"
#include "lib/log.h"
#include "lib/stats.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <urcu.h>

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif
#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif

#define MS 1000000ull

static char base[64];            /* mkdtemp directory: holds root/ and files outside it */
static char root[96];            /* the document root */
static char root_real[PATH_MAX]; /* ...as /proc/self/fd spells it */
static int root_fd = -1;
static struct sl_mime *mime;
static struct sl_cache *cache;

static void setup(void)
{
    rcu_register_thread();
    snprintf(base, sizeof(base), "/tmp/sluice-cache-XXXXXX");
    cr_assert_not_null(mkdtemp(base));
    snprintf(root, sizeof(root), "%s/root", base);
    cr_assert_eq(mkdir(root, 0755), 0);
    cr_assert_not_null(realpath(root, root_real));
    root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(root_fd, 0);
    bool warn = false;
    mime = sl_mime_load(NULL, "application/octet-stream", &warn);
    cr_assert_not_null(mime);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(p);
}

static void teardown(void)
{
    sl_cache_destroy(cache); /* NULL if the test destroyed it itself */
    cache = NULL;
    sl_mime_free(mime);
    close(root_fd);
    nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    rcu_unregister_thread();
}

TestSuite(cache, .init = setup, .fini = teardown, .timeout = 30);

static struct sl_cache_config config(size_t max, uint64_t validity_ms,
                                     uint64_t negative_ms)
{
    return (struct sl_cache_config){.max_entries = max,
                                    .validity_ns = validity_ms * MS,
                                    .negative_ns = negative_ms * MS,
                                    .body_memory = 1 << 30};
}

static void make_cache(size_t max, uint64_t validity_ms, uint64_t negative_ms)
{
    struct sl_cache_config cfg = config(max, validity_ms, negative_ms);
    cache = sl_cache_create(root_fd, mime, &cfg);
    cr_assert_not_null(cache);
}

static void reconfigure(size_t max, uint64_t validity_ms, uint64_t negative_ms)
{
    struct sl_cache_config cfg = config(max, validity_ms, negative_ms);
    sl_cache_configure(cache, &cfg);
}

/* Writes CONTENT to ROOT/NAME in place (same inode if it exists). */
static void write_file(const char *name, const char *content)
{
    int fd = openat(root_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0, "create %s: %s", name, strerror(errno));
    size_t n = strlen(content);
    cr_assert_eq(write(fd, content, n), (ssize_t)n);
    close(fd);
}

/* Replaces ROOT/NAME atomically with a new inode holding CONTENT. */
static void replace_file(const char *name, const char *content)
{
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    write_file(tmp, content);
    cr_assert_eq(renameat(root_fd, tmp, root_fd, name), 0);
}

/* Makes ROOT/NAME a symlink to TARGET, atomically if it exists. */
static void point_link(const char *name, const char *target)
{
    char tmp[256];
    snprintf(tmp, sizeof(tmp), "%s.new", name);
    cr_assert_eq(symlinkat(target, root_fd, tmp), 0);
    cr_assert_eq(renameat(root_fd, tmp, root_fd, name), 0);
}

static void write_outside(const char *name, const char *content)
{
    char path[160];
    snprintf(path, sizeof(path), "%s/%s", base, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(content, f);
    fclose(f);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Waits until a file written before the call has settled, so that the cache
 * copies it into memory (SL_CACHE_SETTLE_NS: a file changed more recently
 * is sent from its fd). */
static void settle(void)
{
    sleep_ms((long)(SL_CACHE_SETTLE_NS / MS) + 150);
}

/* The whole file behind FD, NUL-terminated, into BUF. */
static const char *slurp(int fd, char *buf, size_t cap)
{
    ssize_t n = pread(fd, buf, cap - 1, 0);
    cr_assert_geq(n, 0, "pread: %s", strerror(errno));
    buf[n] = '\0';
    return buf;
}

static struct sl_event_counters counters(void)
{
    return sl_tstats_self()->ev; /* this thread's own counters */
}

static size_t info_entries(void)
{
    struct sl_cache_info i;
    sl_cache_info(cache, &i);
    return i.entries;
}

static size_t info_fds(void)
{
    struct sl_cache_info i;
    sl_cache_info(cache, &i);
    return i.open_fds;
}

/* The IMF-fixdate of T, written here independently of the code under test. */
static void imf_date(time_t t, char out[32])
{
    static const char *const wday[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    cr_assert_not_null(gmtime_r(&t, &tm));
    snprintf(out, 32, "%s, %02d %s %04d %02d:%02d:%02d GMT", wday[tm.tm_wday], tm.tm_mday,
             mon[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Is FD, which held the file WAS, closed now? The number may have been
 * reused already, but not for that (unlinked or cache-only) file. */
static bool fd_gone(int fd, const struct stat *was)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return errno == EBADF;
    return st.st_dev != was->st_dev || st.st_ino != was->st_ino;
}

/* Descriptors of this process open on something beneath the root, or with
 * DISTINCT the regular files (dev, inode) behind them, each once. */
static size_t under_root(bool distinct)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    struct stat seen[64];
    size_t n = 0, len = strlen(root_real);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char target[PATH_MAX];
        ssize_t k = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
        if (k <= 0)
            continue;
        target[k] = '\0';
        if (strncmp(target, root_real, len) != 0 || target[len] != '/')
            continue;
        struct stat st;
        if (!distinct) {
            n++;
            continue;
        }
        if (fstat(atoi(de->d_name), &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        bool dup = false;
        for (size_t i = 0; i < n; i++)
            dup |= seen[i].st_dev == st.st_dev && seen[i].st_ino == st.st_ino;
        if (!dup && n < 64)
            seen[n++] = st;
    }
    closedir(d);
    return n;
}

/* Descriptors of this process open on something beneath the root: the
 * ground truth that the cache's open_fds figure claims to count. */
static size_t fds_under_root(void)
{
    return under_root(false);
}

/* --- lookups ------------------------------------------------------------ */

Test(cache, first_lookup_misses_then_hits_the_same_entry)
{
    make_cache(100, 10000, 10000);
    write_file("a.txt", "hello");
    struct sl_event_counters c0 = counters();
    struct sl_cache_entry *e1 = sl_cache_get(cache, "a.txt");
    struct sl_event_counters c1 = counters();
    struct sl_cache_entry *e2 = sl_cache_get(cache, "a.txt");
    struct sl_event_counters c2 = counters();
    cr_expect_eq(c1.cache_misses - c0.cache_misses, 1);
    cr_expect_eq(c1.cache_hits - c0.cache_hits, 0);
    cr_expect_eq(c2.cache_hits - c1.cache_hits, 1);
    cr_expect_eq(c2.cache_misses - c1.cache_misses, 0);
    cr_expect_eq(c2.cache_revalidations - c0.cache_revalidations, 0);
    cr_expect_eq(e1, e2, "a hit returns the cached entry");
    cr_expect_eq(e1->err, 0);
    cr_expect_not(e1->is_dir);
    cr_expect_eq(e1->size, 5);
    char buf[64];
    cr_expect_str_eq(slurp(e1->fd, buf, sizeof(buf)), "hello");
    cr_expect_eq(info_entries(), 1);
    cr_expect_eq(info_fds(), 1, "one fd however many references");
    cr_expect_eq(fds_under_root(), 1);
    sl_cache_release(cache, e1);
    sl_cache_release(cache, e2);
    cr_expect_eq(info_fds(), 1, "the table keeps the file open");
    cr_expect_geq(fcntl(e1->fd, F_GETFD), 0);
}

Test(cache, header_text_is_exact)
{
    make_cache(100, 10000, 10000);
    write_file("index.html", "hello, world\n"); /* 13 bytes */
    /* Sun, 06 Nov 1994 08:49:37 GMT = 784111777 = 0x2ebc98a1 */
    struct timespec times[2] = {{784111777, 0}, {784111777, 123456789}};
    cr_assert_eq(utimensat(root_fd, "index.html", times, 0), 0);
    struct sl_cache_entry *e = sl_cache_get(cache, "index.html");
    const char *want = "Content-Type: text/html\r\n"
                       "Content-Length: 13\r\n"
                       "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                       "ETag: \"2ebc98a1-d\"\r\n";
    cr_assert_not_null(e->hdr);
    cr_expect_eq(e->hdr_len, strlen(want));
    cr_expect_str_eq(e->hdr, want, "NUL-terminated as well");
    cr_expect_str_eq(e->content_type, "text/html");
    cr_expect_str_eq(e->last_modified, "Sun, 06 Nov 1994 08:49:37 GMT");
    cr_expect_str_eq(e->etag, "\"2ebc98a1-d\"");
    cr_expect_eq(e->mtime.tv_sec, 784111777);
    cr_expect_eq(e->mtime.tv_nsec, 123456789);
    sl_cache_release(cache, e);

    /* A file with its natural mtime, the expected text built from stat(2). */
    char body[300];
    memset(body, 'z', 299);
    body[299] = '\0';
    write_file("page.htm", body);
    struct stat st;
    cr_assert_eq(fstatat(root_fd, "page.htm", &st, 0), 0);
    char date[32], want2[256];
    imf_date(st.st_mtim.tv_sec, date);
    snprintf(want2, sizeof(want2),
             "Content-Type: text/html\r\nContent-Length: 299\r\nLast-Modified: %s\r\n"
             "ETag: \"%llx-12b\"\r\n",
             date, (unsigned long long)st.st_mtim.tv_sec);
    e = sl_cache_get(cache, "page.htm");
    cr_expect_str_eq(e->hdr, want2);
    cr_expect_eq(e->hdr_len, strlen(want2));
    cr_expect_str_eq(e->last_modified, date);
    sl_cache_release(cache, e);

    /* Content-Type follows the extension of the last component only. */
    cr_assert_eq(mkdirat(root_fd, "v1.2", 0755), 0);
    write_file("v1.2/style.CSS", "b{}");
    write_file("v1.2/data", "x");
    write_file("v1.2/blob.unknownext", "");
    write_file("pic.png", "png");
    struct sl_cache_entry *css = sl_cache_get(cache, "v1.2/style.CSS");
    struct sl_cache_entry *none = sl_cache_get(cache, "v1.2/data");
    struct sl_cache_entry *unk = sl_cache_get(cache, "v1.2/blob.unknownext");
    struct sl_cache_entry *png = sl_cache_get(cache, "pic.png");
    cr_expect_str_eq(css->content_type, "text/css");
    cr_expect_str_eq(none->content_type, "application/octet-stream");
    cr_expect_str_eq(unk->content_type, "application/octet-stream");
    cr_expect_str_eq(png->content_type, "image/png");
    cr_expect(strncmp(png->hdr, "Content-Type: image/png\r\n", 25) == 0, "%s", png->hdr);
    cr_expect(strstr(unk->hdr, "\r\nContent-Length: 0\r\n") != NULL, "empty file: %s",
              unk->hdr);
    char etag[48];
    snprintf(etag, sizeof(etag), "\"%llx-3\"", (unsigned long long)css->mtime.tv_sec);
    cr_expect_str_eq(css->etag, etag);
    sl_cache_release(cache, css);
    sl_cache_release(cache, none);
    sl_cache_release(cache, unk);
    sl_cache_release(cache, png);
}

Test(cache, directories_and_the_root_are_dir_entries_without_fd)
{
    make_cache(100, 10000, 10000);
    cr_assert_eq(mkdirat(root_fd, "sub", 0755), 0);
    struct sl_cache_entry *d = sl_cache_get(cache, "sub");
    struct sl_cache_entry *r = sl_cache_get(cache, "");
    cr_expect(d->is_dir);
    cr_expect_eq(d->err, 0);
    cr_expect_eq(d->fd, -1);
    cr_expect_null(d->hdr);
    cr_expect_eq(d->hdr_len, 0);
    cr_expect_null(d->content_type);
    cr_expect_str_eq(d->etag, "");
    cr_expect(r->is_dir, "\"\" is the root itself");
    cr_expect_eq(r->err, 0);
    cr_expect_eq(r->fd, -1);
    cr_expect_neq(r, d);
    cr_expect_eq(info_entries(), 2);
    cr_expect_eq(info_fds(), 0);
    cr_expect_eq(fds_under_root(), 0);
    struct sl_event_counters c0 = counters();
    struct sl_cache_entry *r2 = sl_cache_get(cache, "");
    cr_expect_eq(r2, r, "the root is cached like any path");
    cr_expect_eq(counters().cache_hits - c0.cache_hits, 1);
    sl_cache_release(cache, d);
    sl_cache_release(cache, r);
    sl_cache_release(cache, r2);
}

/* The suite's timeout turns a lookup that blocks in open(2) into a failure. */
Test(cache, special_files_are_refused_without_blocking)
{
    make_cache(100, 10000, 10000);
    cr_assert_eq(mkfifoat(root_fd, "pipe", 0644), 0);
    uint64_t t0 = sl_now_ns();
    struct sl_cache_entry *e = sl_cache_get(cache, "pipe"); /* no writer: would hang */
    cr_expect_lt(sl_now_ns() - t0, 1000 * MS, "the lookup did not wait for a writer");
    cr_expect_eq(e->err, EACCES);
    cr_expect_eq(e->fd, -1);
    cr_expect_null(e->hdr);
    cr_expect_eq(info_fds(), 0);
    cr_expect_eq(fds_under_root(), 0, "the FIFO was not left open");
    sl_cache_release(cache, e);
    struct sl_event_counters c0 = counters();
    e = sl_cache_get(cache, "pipe");
    cr_expect_eq(e->err, EACCES);
    cr_expect_eq(counters().cache_hits - c0.cache_hits, 1, "the refusal is cached");
    sl_cache_release(cache, e);
}

Test(cache, unix_socket_is_refused_like_other_special_files)
{
    make_cache(100, 10000, 10000);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(s, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sock", root);
    cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct sl_cache_entry *e = sl_cache_get(cache, "sock"); /* open(2) says ENXIO */
    cr_expect_eq(e->err, EACCES);
    cr_expect_eq(e->fd, -1);
    sl_cache_release(cache, e);
    close(s);
}

Test(cache, failed_lookup_is_remembered_for_negative_validity)
{
    make_cache(100, 10000, 300);
    struct sl_event_counters c0 = counters();
    uint64_t t0 = sl_now_ns();
    struct sl_cache_entry *e = sl_cache_get(cache, "later.txt");
    cr_expect_eq(e->err, ENOENT);
    cr_expect_eq(e->fd, -1);
    cr_expect_not(e->is_dir);
    cr_expect_null(e->hdr);
    sl_cache_release(cache, e);
    write_file("later.txt", "now here");
    e = sl_cache_get(cache, "later.txt");
    if (sl_now_ns() - t0 < 300 * MS) /* a stalled machine could pass the period */
        cr_expect_eq(e->err, ENOENT, "the failure is cached");
    sl_cache_release(cache, e);
    struct sl_event_counters c1 = counters();
    cr_expect_eq(c1.cache_misses - c0.cache_misses, 1);
    cr_expect_eq(c1.cache_hits - c0.cache_hits, 1);
    cr_expect_eq(info_entries(), 1);
    cr_expect_eq(info_fds(), 0);
    sleep_ms(350);
    e = sl_cache_get(cache, "later.txt");
    cr_expect_eq(e->err, 0, "found once the negative period passed");
    cr_expect_geq(e->fd, 0);
    cr_expect_eq(e->size, 8);
    cr_expect_eq(counters().cache_revalidations - c1.cache_revalidations, 1);
    cr_expect_eq(info_entries(), 1, "the new entry replaced the negative one");
    cr_expect_eq(info_fds(), 1);
    sl_cache_release(cache, e);
}

/* --- the root is a boundary ------------------------------------------- */

Test(cache, symlinks_are_followed_only_inside_the_root)
{
    make_cache(100, 10000, 10000);
    write_file("a.txt", "inside");
    cr_assert_eq(mkdirat(root_fd, "sub", 0755), 0);
    cr_assert_eq(mkdirat(root_fd, "sub/deeper", 0755), 0);
    write_outside("x", "secret");
    cr_assert_eq(symlinkat("a.txt", root_fd, "link.txt"), 0);
    cr_assert_eq(symlinkat("../a.txt", root_fd, "sub/up.txt"), 0);
    cr_assert_eq(symlinkat("sub", root_fd, "dirlink"), 0);
    cr_assert_eq(symlinkat("/etc/passwd", root_fd, "abs"), 0);
    cr_assert_eq(symlinkat("../../etc/passwd", root_fd, "rel-etc"), 0);
    cr_assert_eq(symlinkat("../../../etc/passwd", root_fd, "sub/deeper/rel-etc"), 0);
    cr_assert_eq(symlinkat("../x", root_fd, "rel-out"), 0);
    char outside[160];
    snprintf(outside, sizeof(outside), "%s/x", base);
    cr_assert_eq(symlinkat(outside, root_fd, "abs-out"), 0);
    cr_assert_eq(symlinkat(root, root_fd, "abs-root"), 0); /* absolute, even inside */
    cr_assert_eq(symlinkat("..", root_fd, "parent"), 0);

    const char *inside[] = {"link.txt", "sub/up.txt", "dirlink/up.txt"};
    for (size_t i = 0; i < SL_ARRAY_LEN(inside); i++) {
        struct sl_cache_entry *e = sl_cache_get(cache, inside[i]);
        char buf[32];
        cr_expect_eq(e->err, 0, "%s: %s", inside[i], strerror(e->err));
        cr_expect_eq(e->size, 6, "%s", inside[i]);
        if (e->fd >= 0)
            cr_expect_str_eq(slurp(e->fd, buf, sizeof(buf)), "inside", "%s", inside[i]);
        sl_cache_release(cache, e);
    }
    struct sl_cache_entry *dl = sl_cache_get(cache, "dirlink");
    cr_expect(dl->is_dir, "a link to a directory inside is that directory");
    sl_cache_release(cache, dl);

    const char *escaping[] = {"abs",     "rel-etc",  "sub/deeper/rel-etc",
                              "rel-out", "abs-out",  "abs-root/a.txt",
                              "parent",  "parent/x", "sub/../abs"};
    for (size_t i = 0; i < SL_ARRAY_LEN(escaping); i++) {
        struct sl_cache_entry *e = sl_cache_get(cache, escaping[i]);
        cr_expect(e->err == EXDEV || e->err == ELOOP, "%s: err %d (%s)", escaping[i],
                  e->err, strerror(e->err));
        cr_expect_eq(e->fd, -1, "%s", escaping[i]);
        cr_expect_null(e->hdr, "%s", escaping[i]);
        sl_cache_release(cache, e);
    }
    cr_expect_eq(info_fds(), 3,
                 "one open file per path served, none for the refused ones");
    cr_expect_eq(fds_under_root(), 3);
}

Test(cache, dot_dot_cannot_climb_out_of_the_root)
{
    make_cache(100, 10000, 10000);
    cr_assert_eq(mkdirat(root_fd, "a", 0755), 0);
    write_file("a.txt", "inside");
    write_outside("x", "secret");
    const char *bad[] = {"a/../../x",
                         "../x",
                         "..",
                         "/etc/passwd",
                         "a/../../root/a.txt",
                         "a/../../../../../../etc/passwd"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        struct sl_cache_entry *e = sl_cache_get(cache, bad[i]);
        cr_expect_eq(e->err, EXDEV, "%s: err %d", bad[i], e->err);
        cr_expect_eq(e->fd, -1, "%s", bad[i]);
        sl_cache_release(cache, e);
    }
    struct sl_cache_entry *ok = sl_cache_get(cache, "a/../a.txt");
    cr_expect_eq(ok->err, 0, "\"..\" that stays inside is fine");
    cr_expect_eq(ok->size, 6);
    sl_cache_release(cache, ok);
    cr_expect_eq(info_fds(), 1);
}

/* --- files that change -------------------------------------------------- */

Test(cache, file_written_in_place_gets_a_new_entry_at_once)
{
    make_cache(100, 10000, 10000); /* long validity: the fstat check alone */
    write_file("c.txt", "abc");
    struct sl_cache_entry *e1 = sl_cache_get(cache, "c.txt");
    cr_assert_eq(e1->size, 3);
    sl_cache_release(cache, e1);
    write_file("c.txt", "abcdefgh"); /* same inode, new size */
    struct sl_event_counters c0 = counters();
    struct sl_cache_entry *e2 = sl_cache_get(cache, "c.txt");
    struct sl_event_counters c1 = counters();
    cr_expect_eq(c1.cache_hits - c0.cache_hits, 1);
    cr_expect_eq(c1.cache_revalidations - c0.cache_revalidations, 1);
    cr_expect_eq(e2->size, 8, "never the old header over the new bytes");
    cr_expect(strstr(e2->hdr, "\r\nContent-Length: 8\r\n") != NULL, "%s", e2->hdr);
    char buf[32];
    cr_expect_str_eq(slurp(e2->fd, buf, sizeof(buf)), "abcdefgh");
    cr_expect_eq(info_entries(), 1);
    cr_expect_eq(info_fds(), 1, "the replaced entry's fd was closed");
    cr_expect_eq(fds_under_root(), 1);
    sl_cache_release(cache, e2);

    /* Same size, new bytes, mtime put back: the ctime still tells. The pause
       lets a coarse file-system clock tick, so the ctime really differs. */
    sleep_ms(20);
    struct stat st;
    cr_assert_eq(fstatat(root_fd, "c.txt", &st, 0), 0);
    write_file("c.txt", "ABCDEFGH");
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    cr_assert_eq(utimensat(root_fd, "c.txt", times, 0), 0);
    struct sl_cache_entry *e3 = sl_cache_get(cache, "c.txt");
    cr_expect_str_eq(slurp(e3->fd, buf, sizeof(buf)), "ABCDEFGH");
    cr_expect_neq(e3, e2);
    sl_cache_release(cache, e3);

    /* Untouched: later hits keep the entry without opening anything. */
    struct sl_event_counters c2 = counters();
    struct sl_cache_entry *e4 = sl_cache_get(cache, "c.txt");
    cr_expect_eq(e4, e3);
    cr_expect_eq(counters().cache_revalidations - c2.cache_revalidations, 0);
    sl_cache_release(cache, e4);
}

/* sl_cache_get_after: a hit skips its fstat only for a request read before
 * another check of the entry began, or whose sync found no change reported;
 * a change made before the request was read is seen as at once. */
Test(cache, get_after_sees_every_change_made_before_the_request_was_read)
{
    make_cache(100, 10000, 10000); /* long validity: the per-hit check alone */
    write_file("b.txt", "abc");
    struct sl_cache_entry *e1 = sl_cache_get(cache, "b.txt"); /* built: checked */
    sl_cache_release(cache, e1);

    /* Written in place, then a request read: its hit must see the change,
       though the entry was checked a moment before. */
    write_file("b.txt", "abcdefgh");
    uint64_t read1 = sl_cache_sync(cache);
    struct sl_cache_entry *e2 = sl_cache_get_after(cache, "b.txt", read1);
    cr_expect_neq(e2, e1);
    cr_expect_eq(e2->size, 8, "never the old header over the new bytes");
    char buf[32];
    cr_expect_str_eq(slurp(e2->fd, buf, sizeof(buf)), "abcdefgh");
    sl_cache_release(cache, e2);

    /* A hit whose check began after read2 and found the file unchanged
       vouches for every request read by read2: one written in place after
       that check may still get the entry of before (it raced the change);
       a request read after the change gets the new file; a caller that
       cannot say when its request was read (0) always gets the check. */
    uint64_t read2 = sl_cache_sync(cache);
    sleep_ms(2);
    struct sl_cache_entry *e3 = sl_cache_get(cache, "b.txt"); /* checks, unchanged */
    cr_expect_eq(e3, e2);
    sl_cache_release(cache, e3);
    sleep_ms(20); /* a coarse file-system clock ticks: the ctime differs */
    write_file("b.txt", "ABCDEFGH");
    struct sl_cache_entry *e4 = sl_cache_get_after(cache, "b.txt", read2);
    cr_expect_eq(e4, e2, "read before the unchanged check: no fstat of its own");
    sl_cache_release(cache, e4);
    struct sl_cache_entry *e5 = sl_cache_get_after(cache, "b.txt", sl_cache_sync(cache));
    cr_expect_neq(e5, e2, "read after the change: the change is seen");
    cr_expect_str_eq(slurp(e5->fd, buf, sizeof(buf)), "ABCDEFGH");
    sl_cache_release(cache, e5);
    sleep_ms(20);
    write_file("b.txt", "12345678");
    struct sl_cache_entry *e6 = sl_cache_get_after(cache, "b.txt", 0);
    cr_expect_neq(e6, e5, "0: checked on every hit, as sl_cache_get");
    cr_expect_str_eq(slurp(e6->fd, buf, sizeof(buf)), "12345678");
    sl_cache_release(cache, e6);
}

/* The inotify watches the cache holds (fdinfo of its inotify fd): 0 when it
 * has none. The test process has no other inotify fd. */
static size_t watches(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char target[64], info[300], line[512];
        ssize_t k = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
        if (k <= 0)
            continue;
        target[k] = '\0';
        if (strcmp(target, "anon_inode:inotify") != 0)
            continue;
        snprintf(info, sizeof(info), "/proc/self/fdinfo/%s", de->d_name);
        FILE *f = fopen(info, "r");
        cr_assert_not_null(f);
        while (fgets(line, sizeof(line), f) != NULL)
            n += strncmp(line, "inotify wd:", 11) == 0;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* Distinct files (dev, inode) behind this process's descriptors beneath the
 * root: what the watches must cover, one watch each. */
static size_t inodes_under_root(void)
{
    return under_root(true);
}

/* A hit whose request was read before a sync skips the fstat while the
 * file's watch reported nothing since the last fstat found it unchanged: a
 * write after the sync (racing the request) may still get the old entry,
 * and the next sync's request gets the new file. */
Test(cache, watched_file_is_checked_again_once_its_watch_reports)
{
    make_cache(100, 10000, 10000); /* long validity: the per-hit check alone */
    write_file("w.txt", "first");
    sl_cache_release(cache, sl_cache_get(cache, "w.txt")); /* built, then... */
    struct sl_cache_entry *e1 = sl_cache_get_after(cache, "w.txt", sl_cache_sync(cache));
    sl_cache_release(cache, e1); /* ...a hit's fstat vouched for it */
    cr_expect_eq(watches(), 1);
    uint64_t read = sl_cache_sync(cache); /* after every check of the entry */
    sleep_ms(20); /* a coarse file-system clock ticks */
    write_file("w.txt", "second!");
    struct sl_cache_entry *e2 = sl_cache_get_after(cache, "w.txt", read);
    cr_expect_eq(e2, e1, "nothing reported by the request's sync: no fstat");
    sl_cache_release(cache, e2);
    struct sl_cache_entry *e3 = sl_cache_get_after(cache, "w.txt", sl_cache_sync(cache));
    cr_expect_neq(e3, e1, "the write was reported before this request's sync");
    char buf[32];
    cr_expect_str_eq(slurp(e3->fd, buf, sizeof(buf)), "second!");
    sl_cache_release(cache, e3);

    /* A change of attributes only (chmod moves the ctime) is reported too. */
    struct sl_cache_entry *e4 = sl_cache_get_after(cache, "w.txt", sl_cache_sync(cache));
    cr_expect_eq(e4, e3);
    sl_cache_release(cache, e4);
    sleep_ms(20);
    cr_assert_eq(fchmodat(root_fd, "w.txt", 0640, 0), 0);
    struct sl_cache_entry *e5 = sl_cache_get_after(cache, "w.txt", sl_cache_sync(cache));
    cr_expect_neq(e5, e3, "a chmod is seen at the next sync");
    sl_cache_release(cache, e5);
    sl_cache_destroy(cache);
    cache = NULL;
    cr_expect_eq(watches(), 0, "destroy closes the inotify fd");
}

/* One watch per file however many entries (hard links) use it, removed with
 * the last of them: the watches follow the cached files through eviction. */
Test(cache, watches_follow_the_cached_files)
{
    make_cache(100, 10000, 10000);
    write_file("a.txt", "shared");
    cr_assert_eq(linkat(root_fd, "a.txt", root_fd, "b.txt", 0), 0);
    write_file("c.txt", "own");
    struct sl_cache_entry *held = sl_cache_get(cache, "a.txt");
    sl_cache_release(cache, sl_cache_get(cache, "b.txt"));
    cr_expect_eq(info_fds(), 2);
    cr_expect_eq(watches(), 1, "a.txt and b.txt are one file: one watch");
    sl_cache_release(cache, sl_cache_get(cache, "c.txt"));
    cr_expect_eq(watches(), 2);
    cr_expect_eq(watches(), inodes_under_root());

    /* Evicted down to one entry: b.txt's entry is gone, a.txt's is held by
       a request, so the file's one watch must stay; c.txt's goes unless
       its entry survived. */
    reconfigure(1, 10000, 10000);
    sl_cache_release(cache, sl_cache_get(cache, "missing.txt"));
    cr_expect_leq(info_entries(), 1);
    cr_expect_eq(watches(), inodes_under_root());
    cr_expect_geq(watches(), 1, "a held entry keeps its file's watch");
    sl_cache_release(cache, held);
    cr_expect_eq(watches(), inodes_under_root(), "the last entry of a file removes its watch");
    cr_expect_leq(watches(), 1);
}

Test(cache, changes_are_seen_after_the_validity_period)
{
    make_cache(100, 50, 50);
    write_file("grow.txt", "abc");
    write_file("gone.txt", "bye");
    write_file("same.txt", "unchanged");
    struct sl_cache_entry *g = sl_cache_get(cache, "grow.txt");
    struct sl_cache_entry *d = sl_cache_get(cache, "gone.txt");
    struct sl_cache_entry *s = sl_cache_get(cache, "same.txt");
    cr_assert_eq(g->size, 3);
    cr_assert_eq(d->err, 0);
    sl_cache_release(cache, g);
    sl_cache_release(cache, d);
    sl_cache_release(cache, s);
    write_file("grow.txt", "abcdefghijklmnop"); /* in place, 16 bytes */
    cr_assert_eq(unlinkat(root_fd, "gone.txt", 0), 0);
    sleep_ms(80);

    struct sl_event_counters c0 = counters();
    uint64_t checked = sl_now_ns();
    struct sl_cache_entry *g2 = sl_cache_get(cache, "grow.txt");
    struct sl_cache_entry *d2 = sl_cache_get(cache, "gone.txt");
    struct sl_cache_entry *s2 = sl_cache_get(cache, "same.txt");
    struct sl_event_counters c1 = counters();
    cr_expect_eq(g2->err, 0);
    cr_expect_eq(g2->size, 16);
    cr_expect(strstr(g2->hdr, "\r\nContent-Length: 16\r\n") != NULL, "%s", g2->hdr);
    char etag[48];
    snprintf(etag, sizeof(etag), "\"%llx-10\"", (unsigned long long)g2->mtime.tv_sec);
    cr_expect_str_eq(g2->etag, etag);
    char buf[32];
    cr_expect_str_eq(slurp(g2->fd, buf, sizeof(buf)), "abcdefghijklmnop");
    cr_expect_eq(d2->err, ENOENT, "a deleted file is gone");
    cr_expect_eq(d2->fd, -1);
    cr_expect_eq(s2, s, "an unchanged file keeps its entry");
    cr_expect_eq(s2->size, 9);
    cr_expect_eq(c1.cache_hits - c0.cache_hits, 3);
    cr_expect_eq(c1.cache_misses - c0.cache_misses, 0);
    cr_expect_eq(c1.cache_revalidations - c0.cache_revalidations, 3);
    cr_expect_eq(info_entries(), 3);
    cr_expect_eq(info_fds(), 2, "grow.txt and same.txt; the old fds were closed");
    cr_expect_eq(fds_under_root(), 2);
    sl_cache_release(cache, g2);
    sl_cache_release(cache, d2);
    sl_cache_release(cache, s2);

    /* Just revalidated: trusted again for the next period. */
    struct sl_event_counters c2 = counters();
    struct sl_cache_entry *s3 = sl_cache_get(cache, "same.txt");
    cr_expect_eq(s3, s);
    if (sl_now_ns() - checked < 50 * MS) /* a stalled machine could pass it */
        cr_expect_eq(counters().cache_revalidations - c2.cache_revalidations, 0);
    sl_cache_release(cache, s3);
}

Test(cache, retargeted_path_is_seen_after_validity)
{
    make_cache(100, 300, 300);
    write_file("v1.txt", "one");
    write_file("v2.txt", "two!");
    cr_assert_eq(symlinkat("v1.txt", root_fd, "cur"), 0);
    uint64_t t0 = sl_now_ns();
    struct sl_cache_entry *e1 = sl_cache_get(cache, "cur");
    cr_assert_eq(e1->size, 3);
    sl_cache_release(cache, e1);
    /* v1.txt itself is untouched: only the path now leads elsewhere. */
    point_link("cur", "v2.txt");
    struct sl_cache_entry *e2 = sl_cache_get(cache, "cur");
    if (sl_now_ns() - t0 < 300 * MS) /* a stalled machine could pass the period */
        cr_expect_eq(e2, e1, "trusted within the validity period");
    sl_cache_release(cache, e2);
    sleep_ms(350);
    struct sl_event_counters c0 = counters();
    struct sl_cache_entry *e3 = sl_cache_get(cache, "cur");
    cr_expect_eq(counters().cache_revalidations - c0.cache_revalidations, 1);
    cr_expect_eq(e3->size, 4);
    char buf[32];
    cr_expect_str_eq(slurp(e3->fd, buf, sizeof(buf)), "two!");
    sl_cache_release(cache, e3);

    /* Unchanged at the next check: the entry survives its revalidation. */
    sleep_ms(350);
    struct sl_event_counters c1 = counters();
    struct sl_cache_entry *e4 = sl_cache_get(cache, "cur");
    cr_expect_eq(e4, e3, "an unchanged file keeps its entry");
    cr_expect_eq(counters().cache_revalidations - c1.cache_revalidations, 1);
    cr_expect_eq(info_fds(), 1, "the check's own fd was closed");
    cr_expect_eq(fds_under_root(), 1);
    sl_cache_release(cache, e4);
}

Test(cache, replaced_file_gets_new_entry_while_old_reference_reads_old_bytes)
{
    make_cache(100, 10000, 10000);
    write_file("r.txt", "old content");
    struct sl_cache_entry *old = sl_cache_get(cache, "r.txt");
    int oldfd = old->fd;
    cr_assert_geq(oldfd, 0);
    struct stat oldst;
    cr_assert_eq(fstat(oldfd, &oldst), 0);
    replace_file("r.txt", "brand new content!");
    /* No wait: the old inode lost its last name, which the hit's fstat sees. */
    struct sl_cache_entry *neu = sl_cache_get(cache, "r.txt");
    cr_expect_neq(neu, old);
    cr_expect_eq(neu->size, 18);
    cr_expect(strstr(neu->hdr, "\r\nContent-Length: 18\r\n") != NULL, "%s", neu->hdr);
    cr_expect_eq(old->size, 11, "an entry is never edited");
    cr_expect(strstr(old->hdr, "\r\nContent-Length: 11\r\n") != NULL, "%s", old->hdr);
    char buf[64];
    cr_expect_str_eq(slurp(oldfd, buf, sizeof(buf)), "old content");
    cr_expect_str_eq(slurp(neu->fd, buf, sizeof(buf)), "brand new content!");
    cr_expect_eq(info_entries(), 1);
    cr_expect_eq(info_fds(), 2, "the old fd stays open while referenced");
    cr_expect_eq(fds_under_root(), 2);
    sl_cache_release(cache, old);
    cr_expect_eq(info_fds(), 1);
    cr_expect_eq(fds_under_root(), 1);
    cr_expect(fd_gone(oldfd, &oldst), "closed with its last reference");
    sl_cache_release(cache, neu);
}

Test(cache, deleted_file_becomes_enoent)
{
    make_cache(100, 10000, 10000);
    write_file("d.txt", "doomed");
    struct sl_cache_entry *e = sl_cache_get(cache, "d.txt");
    cr_assert_eq(e->err, 0);
    sl_cache_release(cache, e);
    cr_assert_eq(unlinkat(root_fd, "d.txt", 0), 0);
    struct sl_event_counters c0 = counters();
    e = sl_cache_get(cache, "d.txt");
    cr_expect_eq(e->err, ENOENT);
    cr_expect_eq(e->fd, -1);
    cr_expect_eq(counters().cache_revalidations - c0.cache_revalidations, 1);
    cr_expect_eq(info_entries(), 1, "a negative entry took its place");
    cr_expect_eq(info_fds(), 0);
    cr_expect_eq(fds_under_root(), 0, "the deleted file is not kept open");
    sl_cache_release(cache, e);
}

Test(cache, configure_changes_validity_live)
{
    make_cache(100, 10000, 10000);
    write_file("v1.txt", "one");
    write_file("v2.txt", "two!");
    cr_assert_eq(symlinkat("v1.txt", root_fd, "cur"), 0);
    struct sl_cache_entry *cur = sl_cache_get(cache, "cur");
    struct sl_cache_entry *late = sl_cache_get(cache, "late.txt");
    cr_assert_eq(cur->size, 3);
    cr_assert_eq(late->err, ENOENT);
    sl_cache_release(cache, cur);
    sl_cache_release(cache, late);
    point_link("cur", "v2.txt");
    write_file("late.txt", "here");

    /* Ten seconds of trust: neither change is seen. */
    struct sl_event_counters c0 = counters();
    struct sl_cache_entry *a = sl_cache_get(cache, "cur");
    struct sl_cache_entry *b = sl_cache_get(cache, "late.txt");
    cr_expect_eq(a, cur);
    cr_expect_eq(a->size, 3);
    cr_expect_eq(b->err, ENOENT);
    cr_expect_eq(counters().cache_revalidations - c0.cache_revalidations, 0);
    sl_cache_release(cache, a);
    sl_cache_release(cache, b);

    /* No trust at all from now on: the next lookups check the paths. */
    reconfigure(100, 0, 0);
    struct sl_event_counters c1 = counters();
    a = sl_cache_get(cache, "cur");
    b = sl_cache_get(cache, "late.txt");
    cr_expect_eq(a->size, 4, "the new validity applies to existing entries");
    cr_expect_eq(b->err, 0, "so does the new negative validity");
    cr_expect_eq(b->size, 4);
    cr_expect_eq(counters().cache_revalidations - c1.cache_revalidations, 2);
    cr_expect_eq(counters().cache_misses - c1.cache_misses, 0);
    sl_cache_release(cache, a);
    sl_cache_release(cache, b);

    /* Back to long validity: hits are trusted again. */
    reconfigure(100, 10000, 10000);
    struct sl_event_counters c2 = counters();
    struct sl_cache_entry *a2 = sl_cache_get(cache, "cur");
    struct sl_cache_entry *a3 = sl_cache_get(cache, "cur");
    cr_expect_eq(a2, a3);
    cr_expect_eq(a2->size, 4);
    cr_expect_eq(counters().cache_revalidations - c2.cache_revalidations, 0);
    cr_expect_eq(counters().cache_hits - c2.cache_hits, 2);
    sl_cache_release(cache, a2);
    sl_cache_release(cache, a3);
}

/* --- bounds and references ---------------------------------------------- */

Test(cache, eviction_keeps_at_most_max_entries)
{
    make_cache(10, 10000, 10000);
    struct sl_event_counters c0 = counters();
    char name[32];
    for (int i = 0; i < 30; i++) {
        snprintf(name, sizeof(name), "e%02d.txt", i);
        write_file(name, "data");
        struct sl_cache_entry *e = sl_cache_get(cache, name);
        cr_assert_eq(e->err, 0);
        sl_cache_release(cache, e);
        cr_assert_leq(info_entries(), 10, "after %d inserts", i + 1);
        cr_assert_leq(info_fds(), info_entries());
    }
    struct sl_event_counters c1 = counters();
    uint64_t evictions = c1.cache_evictions - c0.cache_evictions;
    cr_expect_eq(c1.cache_misses - c0.cache_misses, 30);
    cr_expect_geq(evictions, 20);
    cr_expect_eq(info_entries() + evictions, 30,
                 "every insert is in the table or evicted");
    cr_expect_eq(info_fds(), info_entries(), "an evicted, unreferenced file is closed");
    cr_expect_eq(fds_under_root(), info_fds());
}

Test(cache, eviction_bounds_the_table_and_spares_hot_entries)
{
    make_cache(16, 10000, 10000);
    write_file("hot.txt", "hot");
    sl_cache_release(cache, sl_cache_get(cache, "hot.txt"));
    struct sl_event_counters c0 = counters();
    char name[32];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "f%03d.txt", i);
        if (i % 3 != 0)
            write_file(name, "x"); /* the rest are cached ENOENTs: bounded too */
        sl_cache_release(cache, sl_cache_get(cache, name));
        cr_assert_leq(info_entries(), 16, "after %d inserts", i + 1);
        cr_assert_leq(info_fds(), info_entries());
        struct sl_event_counters h0 = counters();
        sl_cache_release(cache, sl_cache_get(cache, "hot.txt"));
        cr_assert_eq(counters().cache_hits - h0.cache_hits, 1,
                     "an entry used between sweeps gets its second chance (%d)", i);
    }
    struct sl_event_counters c1 = counters();
    /* 101 entries went in; at most 16 are left. */
    cr_expect_geq(c1.cache_evictions - c0.cache_evictions, 101 - 16);
    cr_expect_eq(c1.cache_misses - c0.cache_misses, 100);

    /* Lowering the bound live takes effect with the next insert. */
    reconfigure(4, 10000, 10000);
    sl_cache_release(cache, sl_cache_get(cache, "one-more"));
    cr_expect_leq(info_entries(), 4);
    cr_expect_eq(fds_under_root(), info_fds());
}

Test(cache, fd_outlives_eviction_until_the_last_release)
{
    make_cache(4, 10000, 10000);
    write_file("held.txt", "keep me");
    struct sl_cache_entry *held = sl_cache_get(cache, "held.txt");
    int hfd = held->fd;
    cr_assert_geq(hfd, 0);
    struct stat hst;
    cr_assert_eq(fstat(hfd, &hst), 0);
    char name[32];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "g%03d.txt", i);
        write_file(name, "filler");
        sl_cache_release(cache, sl_cache_get(cache, name));
        cr_assert_geq(fcntl(hfd, F_GETFD), 0, "closed under a holder (%d)", i);
    }
    cr_expect_leq(info_entries(), 4);
    /* The CLOCK hand went round many times: held.txt was evicted... */
    struct sl_event_counters c0 = counters();
    struct sl_cache_entry *again = sl_cache_get(cache, "held.txt");
    cr_expect_eq(counters().cache_misses - c0.cache_misses, 1, "held.txt was evicted");
    cr_expect_neq(again, held);
    cr_expect_neq(again->fd, hfd);
    sl_cache_release(cache, again);
    /* ...but the reference still pins the open file. */
    cr_expect_geq(fcntl(hfd, F_GETFD), 0);
    char buf[32];
    cr_expect_str_eq(slurp(hfd, buf, sizeof(buf)), "keep me");
    size_t fds = info_fds();
    cr_expect_eq(fds, info_entries() + 1, "table entries plus the evicted, held one");
    cr_expect_eq(fds_under_root(), fds);
    sl_cache_release(cache, held);
    cr_expect_eq(info_fds(), fds - 1);
    cr_expect_eq(fds_under_root(), fds - 1);
    cr_expect(fd_gone(hfd, &hst) || fcntl(hfd, F_GETFD) == -1,
              "closed with its last reference");
}

/* Fills the descriptor table (limit lowered to 64); returns how many fds
 * it opened into FDS. */
static int exhaust_fds(int fds[64], struct rlimit *old)
{
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, old), 0);
    struct rlimit low = *old;
    low.rlim_cur = 64;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    int n = 0;
    while (n < 64 && (fds[n] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        n++;
    cr_assert_lt(n, 64, "hit the limit");
    return n;
}

static void restore_fds(int fds[64], int n, const struct rlimit *old)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, old), 0);
}

Test(cache, running_out_of_fds_is_reported_but_not_cached)
{
    make_cache(100, 10000, 10000);
    write_file("a.txt", "fine");
    write_file("b.txt", "also fine");
    struct sl_cache_entry *b = sl_cache_get(cache, "b.txt");
    cr_assert_eq(b->err, 0);
    sl_cache_release(cache, b);
    int wfd = openat(root_fd, "b.txt", O_WRONLY | O_CLOEXEC); /* for later */
    cr_assert_geq(wfd, 0);
    struct rlimit old;
    int fds[64], n = exhaust_fds(fds, &old);

    struct sl_cache_entry *e = sl_cache_get(cache, "a.txt");
    cr_expect_eq(e->err, EMFILE);
    cr_expect_eq(e->fd, -1);
    cr_expect_null(e->hdr);
    cr_expect_eq(info_entries(), 1, "a transient failure is not remembered");
    sl_cache_release(cache, e);

    /* Due for a check that cannot open anything: the unchanged entry is
       served as it is. */
    reconfigure(100, 0, 0);
    struct sl_event_counters c0 = counters();
    e = sl_cache_get(cache, "b.txt");
    cr_expect_eq(e, b, "served while the check cannot be made");
    cr_expect_eq(e->err, 0);
    cr_expect_eq(counters().cache_revalidations - c0.cache_revalidations, 1);
    sl_cache_release(cache, e);

    /* Changed under its fd: never served, even with nothing to reopen it. */
    cr_assert_eq(pwrite(wfd, "ALSO FINE, LONGER", 17, 0), 17);
    e = sl_cache_get(cache, "b.txt");
    cr_expect_eq(e->err, EMFILE, "not the old header over the new bytes");
    cr_expect_eq(e->fd, -1);
    cr_expect_eq(info_entries(), 1);
    sl_cache_release(cache, e);

    restore_fds(fds, n, &old);
    close(wfd);
    struct sl_event_counters c1 = counters();
    e = sl_cache_get(cache, "a.txt");
    cr_expect_eq(e->err, 0);
    cr_expect_geq(e->fd, 0);
    cr_expect_eq(counters().cache_misses - c1.cache_misses, 1);
    sl_cache_release(cache, e);
    e = sl_cache_get(cache, "b.txt");
    cr_expect_eq(e->err, 0);
    cr_expect_eq(e->size, 17);
    cr_expect(strstr(e->hdr, "\r\nContent-Length: 17\r\n") != NULL, "%s", e->hdr);
    cr_expect_eq(info_entries(), 2);
    cr_expect_eq(info_fds(), 2);
    sl_cache_release(cache, e);
}

/* Destroying the cache while an entry is still held is logged, and the late
 * release stays safe (ASan would see a use after free): the entry's file
 * stays readable until then. */
static struct sl_cache *destroyed_cache; /* keeps its leaked bookkeeping reachable */

Test(cache, release_after_destroy_is_safe)
{
    make_cache(100, 10000, 10000);
    write_file("late.txt", "still here");
    struct sl_cache_entry *e = sl_cache_get(cache, "late.txt");
    struct sl_cache_entry *other = sl_cache_get(cache, "other.txt");
    cr_assert_eq(e->err, 0);
    int fd = e->fd;
    struct stat st;
    cr_assert_eq(fstat(fd, &st), 0);
    destroyed_cache = cache;
    sl_log_set_level(SL_LOG_ERROR); /* the warning about held entries is expected */
    sl_cache_destroy(cache);
    cache = NULL;
    rcu_barrier();
    char buf[32];
    cr_expect_str_eq(slurp(fd, buf, sizeof(buf)), "still here");
    cr_expect_eq(e->size, 10);
    cr_expect(strstr(e->hdr, "\r\nContent-Length: 10\r\n") != NULL);
    cr_expect_eq(fds_under_root(), 1, "the held file only");
    sl_cache_release(destroyed_cache, e);
    sl_cache_release(destroyed_cache, other);
    rcu_barrier();
    cr_expect_eq(fds_under_root(), 0, "closed with its last reference");
    cr_expect(fd_gone(fd, &st));
}

/* --- the race ----------------------------------------------------------- */

#define RACE_FILES 8 /* f0..f7: rewritten, replaced, deleted, recreated */
#define RACE_MAX 4   /* far fewer than the paths: constant eviction */
#define RACE_READERS 4
#define RACE_MS 1500

/* The paths the readers look up: the churned files, a symlink the writer
 * retargets among them, a directory, and two names that never exist. */
static const char *const race_paths[] = {"f0", "f1", "f2",   "f3", "f4",    "f5",
                                         "f6", "f7", "link", "d",  "none0", "none1"};
#define RACE_PATHS SL_ARRAY_LEN(race_paths)

/* Version V of a file is V+'a' repeated len_of(V) times, so any fd can be
 * checked to hold exactly one whole version matching the entry's size. */
static size_t len_of(int v)
{
    return 100 + 37 * (size_t)v;
}

struct race {
    int stop;                 /* atomic */
    unsigned long problems;   /* atomic */
    unsigned long op_started; /* atomic: writer operations begun */
    unsigned long op_done;    /* atomic: ...and finished */
    unsigned long writer_ops; /* written by the writer, read after join */
    unsigned long writer_errors;
};

struct reader_out {
    struct race *r;
    unsigned seed;
    unsigned long gets, positives, quiet, hits, misses, revalidations, evictions;
};

static void problem(struct race *r, const char *path, const struct sl_cache_entry *e,
                    const char *what)
{
    fprintf(stderr, "race: %s: %s (err %d, fd %d, dir %d, size %lld)\n", path, what,
            e->err, e->fd, e->is_dir, (long long)e->size);
    uatomic_inc(&r->problems);
}

/* No criterion asserts off the main thread: problems are counted. */
static void check_entry(struct race *r, const char *path, const struct sl_cache_entry *e)
{
    if (strcmp(path, "d") == 0) {
        if (e->err != 0 || !e->is_dir || e->fd != -1 || e->hdr != NULL)
            problem(r, path, e, "not a directory entry");
        return;
    }
    if (e->err != 0) { /* any file may be missing; "link" if its target is */
        if (e->err != ENOENT || e->fd != -1 || e->hdr != NULL)
            problem(r, path, e, "unexpected failure");
        return;
    }
    if (path[0] == 'n') {
        problem(r, path, e, "a name that never existed was found");
        return;
    }
    struct stat st;
    if (e->fd < 0 || e->is_dir || fstat(e->fd, &st) != 0) {
        problem(r, path, e, "no usable fd");
        return;
    }
    if (!S_ISREG(st.st_mode) || st.st_size != e->size) {
        problem(r, path, e, "fstat disagrees with the entry");
        return;
    }
    char buf[512];
    ssize_t n = pread(e->fd, buf, sizeof(buf), 0);
    bool ok = n == e->size && n > 0;
    for (ssize_t i = 1; ok && i < n; i++)
        ok = buf[i] == buf[0];
    ok = ok && buf[0] >= 'a' && buf[0] < 'a' + 8 && (size_t)n == len_of(buf[0] - 'a');
    if (!ok) {
        problem(r, path, e, "the bytes are not one whole version of the size");
        return;
    }
    char cl[48];
    snprintf(cl, sizeof(cl), "\r\nContent-Length: %lld\r\n", (long long)e->size);
    if (e->hdr == NULL || strlen(e->hdr) != e->hdr_len || strstr(e->hdr, cl) == NULL ||
        strncmp(e->hdr, "Content-Type: application/octet-stream\r\n", 40) != 0)
        problem(r, path, e, "header does not match the size");
    char etag[48];
    snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long)e->mtime.tv_sec,
             (unsigned long long)e->size);
    if (strcmp(e->etag, etag) != 0)
        problem(r, path, e, "ETag does not match");
}

/* E was returned by a lookup during which the writer touched nothing (and
 * nothing was in flight when it began): its header must describe its file
 * exactly as fstat sees it now, whatever happened to the file before. */
static void check_quiet(struct race *r, const char *path, const struct sl_cache_entry *e,
                        const struct stat *st)
{
    if (st->st_nlink == 0 || st->st_size != e->size ||
        st->st_mtim.tv_sec != e->mtime.tv_sec || st->st_mtim.tv_nsec != e->mtime.tv_nsec)
        problem(r, path, e, "served although its file had changed under its fd");
}

static void *race_reader(void *arg)
{
    struct reader_out *o = arg;
    rcu_register_thread();
    struct sl_event_counters c0 = sl_tstats_self()->ev;
    struct sl_cache_entry *kept = NULL; /* held across the next lookup */
    const char *kept_path = NULL;
    while (!uatomic_read(&o->r->stop)) {
        const char *path = race_paths[rand_r(&o->seed) % RACE_PATHS];
        /* Full barriers (uatomic_add_return below): done is read before
           started, so equal values mean no operation was in flight. */
        unsigned long done = uatomic_add_return(&o->r->op_done, 0);
        unsigned long started = uatomic_add_return(&o->r->op_started, 0);
        struct sl_cache_entry *e = sl_cache_get(cache, path);
        o->gets++;
        o->positives += e->err == 0 && !e->is_dir;
        check_entry(o->r, path, e);
        struct stat st;
        if (e->err == 0 && e->fd >= 0 && fstat(e->fd, &st) == 0 && done == started &&
            uatomic_add_return(&o->r->op_started, 0) == started) {
            o->quiet++;
            check_quiet(o->r, path, e, &st);
        }
        if (kept != NULL) {
            /* Possibly evicted or replaced meanwhile: still whole. */
            check_entry(o->r, kept_path, kept);
            sl_cache_release(cache, kept);
        }
        kept = e;
        kept_path = path;
    }
    sl_cache_release(cache, kept);
    struct sl_event_counters c1 = sl_tstats_self()->ev;
    o->hits = c1.cache_hits - c0.cache_hits;
    o->misses = c1.cache_misses - c0.cache_misses;
    o->revalidations = c1.cache_revalidations - c0.cache_revalidations;
    o->evictions = c1.cache_evictions - c0.cache_evictions;
    rcu_unregister_thread();
    return NULL;
}

/* Writer-side file operations: no asserts, failures are returned. */
static int put_version(const char *name, int v)
{
    char tmp[32], buf[512];
    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    memset(buf, 'a' + v, len_of(v));
    int fd = openat(root_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    bool ok = write(fd, buf, len_of(v)) == (ssize_t)len_of(v);
    close(fd);
    return ok ? renameat(root_fd, tmp, root_fd, name) : -1;
}

/* Writes a file's first byte over itself: new mtime and ctime, same inode,
 * size and bytes. */
static int touch_in_place(const char *name)
{
    int fd = openat(root_fd, name, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    char c;
    int rc = pread(fd, &c, 1, 0) == 1 && pwrite(fd, &c, 1, 0) == 1 ? 0 : -1;
    close(fd);
    return rc;
}

static int retarget(const char *link, const char *target)
{
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "%s.new", link);
    if (symlinkat(target, root_fd, tmp) != 0)
        return -1;
    return renameat(root_fd, tmp, root_fd, link);
}

static void *race_writer(void *arg)
{
    struct race *r = arg;
    unsigned seed = 7;
    char name[32];
    while (!uatomic_read(&r->stop)) {
        snprintf(name, sizeof(name), "f%d", rand_r(&seed) % RACE_FILES);
        int op = rand_r(&seed) % 10, rc = 0;
        /* Full barrier: readers see the operation begun before any effect. */
        uatomic_add_return(&r->op_started, 1);
        if (op < 4) /* replace, or recreate if deleted */
            rc = put_version(name, rand_r(&seed) % 8);
        else if (op < 7)
            rc = touch_in_place(name);
        else if (op < 9)
            rc = unlinkat(root_fd, name, 0) == 0 || errno == ENOENT ? 0 : -1;
        else
            rc = retarget("link", name);
        /* Full barrier: every effect of the operation before it counts done. */
        uatomic_add_return(&r->op_done, 1);
        r->writer_ops++;
        r->writer_errors += rc != 0;
        /* Idle now and then, so that some lookups run with the tree still. */
        if (rand_r(&seed) % 4 == 0)
            nanosleep(&(struct timespec){0, 20000}, NULL);
    }
    return NULL;
}

Test(cache, concurrent_readers_against_a_changing_tree)
{
    make_cache(RACE_MAX, 1, 1); /* tiny and short-lived: constant eviction, checks */
    char name[32];
    for (int f = 0; f < RACE_FILES; f++) {
        snprintf(name, sizeof(name), "f%d", f);
        cr_assert_eq(put_version(name, 0), 0);
    }
    cr_assert_eq(symlinkat("f0", root_fd, "link"), 0);
    cr_assert_eq(mkdirat(root_fd, "d", 0755), 0);
    struct race r = {0};
    struct reader_out out[RACE_READERS];
    pthread_t rt[RACE_READERS], wt;
    for (int i = 0; i < RACE_READERS; i++) {
        out[i] = (struct reader_out){.r = &r, .seed = (unsigned)i + 1};
        cr_assert_eq(pthread_create(&rt[i], NULL, race_reader, &out[i]), 0);
    }
    cr_assert_eq(pthread_create(&wt, NULL, race_writer, &r), 0);
    size_t entries_seen_max = 0;
    uint64_t end = sl_now_ns() + RACE_MS * MS;
    for (int tick = 0; sl_now_ns() < end; tick++) {
        entries_seen_max = SL_MAX(entries_seen_max, info_entries());
        /* Live reconfiguration while lookups run: check always / every 2 ms. */
        reconfigure(RACE_MAX, tick % 2 ? 0 : 2, 1);
        sleep_ms(5);
    }
    uatomic_set(&r.stop, 1);
    for (int i = 0; i < RACE_READERS; i++)
        pthread_join(rt[i], NULL);
    pthread_join(wt, NULL);

    unsigned long gets = 0, positives = 0, quiet = 0, hits = 0, misses = 0, revals = 0,
                  evictions = 0;
    for (int i = 0; i < RACE_READERS; i++) {
        gets += out[i].gets;
        positives += out[i].positives;
        quiet += out[i].quiet;
        hits += out[i].hits;
        misses += out[i].misses;
        revals += out[i].revalidations;
        evictions += out[i].evictions;
    }
    cr_log_info("race: %lu gets, %lu files (%lu checked in quiet moments), %lu hits, "
                "%lu misses, %lu revalidations, %lu evictions, %lu writer ops, "
                "max %zu entries seen",
                gets, positives, quiet, hits, misses, revals, evictions, r.writer_ops,
                entries_seen_max);
    cr_expect_eq(uatomic_read(&r.problems), 0,
                 "every entry was consistent and held one whole file version");
    cr_expect_eq(r.writer_errors, 0);
    cr_expect_gt(r.writer_ops, 100);
    cr_expect_gt(gets, 1000);
    cr_expect_gt(positives, 0);
    cr_expect_gt(quiet, 0);
    cr_expect_eq(hits + misses, gets, "each lookup is exactly a hit or a miss");
    cr_expect_gt(hits, 0);
    cr_expect_gt(misses, 0);
    cr_expect_gt(revals, 0);
    cr_expect_gt(evictions, 0);
    /* A sweep may lag behind inserts, but only by the slack (plus one racing
       insert per thread); then lookups go uncached. */
    cr_expect_leq(entries_seen_max,
                  RACE_MAX + SL_CACHE_SLACK(RACE_MAX) + RACE_READERS - 1);

    /* Quiet now, every reference released: the bound holds exactly, and only
       table entries hold files, each its own. */
    size_t entries = info_entries(), fds = info_fds();
    cr_expect_leq(entries, RACE_MAX);
    cr_expect_leq(fds, entries);
    cr_expect_eq(fds_under_root(), fds, "open_fds counts exactly the files held open");

    /* Count the positive entries in the table without disturbing it: no
       eviction (a large bound) and no timed revalidation (long validity), so a
       hit returns the entry that was there, or (revalidation) its successor
       because its fd saw a change, which only a file entry can. */
    reconfigure(1000, 1000000, 1000000);
    size_t positive_entries = 0;
    for (size_t i = 0; i < RACE_PATHS; i++) {
        struct sl_event_counters c0 = counters();
        struct sl_cache_entry *e = sl_cache_get(cache, race_paths[i]);
        struct sl_event_counters c1 = counters();
        check_entry(&r, race_paths[i], e);
        if (c1.cache_hits > c0.cache_hits &&
            (c1.cache_revalidations > c0.cache_revalidations || e->fd >= 0))
            positive_entries++;
        sl_cache_release(cache, e);
    }
    cr_expect_eq(positive_entries, fds, "open_fds == positive entries in the table");

    /* Every path checked against the file system now: the table agrees. */
    reconfigure(1000, 0, 0);
    struct sl_event_counters c2 = counters();
    for (size_t i = 0; i < RACE_PATHS; i++) {
        struct sl_cache_entry *e = sl_cache_get(cache, race_paths[i]);
        check_entry(&r, race_paths[i], e);
        struct stat st;
        bool exists = fstatat(root_fd, race_paths[i], &st, 0) == 0;
        cr_expect_eq(e->err == 0, exists, "%s", race_paths[i]);
        sl_cache_release(cache, e);
    }
    struct sl_event_counters c3 = counters();
    cr_expect_eq(c3.cache_hits - c2.cache_hits, RACE_PATHS);
    cr_expect_eq(c3.cache_revalidations - c2.cache_revalidations, RACE_PATHS);
    size_t files = 0;
    for (size_t i = 0; i < RACE_PATHS; i++) {
        struct stat st;
        files += fstatat(root_fd, race_paths[i], &st, 0) == 0 && S_ISREG(st.st_mode);
    }
    cr_expect_eq(info_entries(), RACE_PATHS);
    cr_expect_eq(info_fds(), files);
    cr_expect_eq(fds_under_root(), files);
    cr_expect_eq(uatomic_read(&r.problems), 0);

    /* Destroyed: every file closed and (under ASan) every byte freed. */
    sl_cache_destroy(cache);
    cache = NULL;
    rcu_barrier();
    cr_expect_eq(fds_under_root(), 0, "destroy closed every file");
#ifdef HAVE_LSAN
    cr_expect_eq(__lsan_do_recoverable_leak_check(), 0, "nothing leaked");
#endif
}

Test(cache, small_files_are_held_in_memory_and_follow_changes)
{
    struct sl_cache_config cfg = config(100, 10000, 10000);
    cfg.small_file_max = 8;
    cache = sl_cache_create(root_fd, mime, &cfg);
    write_file("s.txt", "abcdefgh");  /* exactly the limit: in memory */
    write_file("l.txt", "abcdefghi"); /* one byte over: sendfile only */
    write_file("z.txt", "");          /* empty: nothing to hold */
    write_file("t.txt", "12345678");  /* first looked up after the reload */
    settle();
    struct sl_cache_entry *s = sl_cache_get(cache, "s.txt");
    struct sl_cache_entry *l = sl_cache_get(cache, "l.txt");
    struct sl_cache_entry *z = sl_cache_get(cache, "z.txt");
    cr_assert_not_null(s->body);
    cr_expect_eq(memcmp(s->body, "abcdefgh", 8), 0);
    cr_expect_null(l->body);
    cr_expect_null(z->body);
    cr_expect_geq(l->fd, 0, "a large file keeps its fd");
    cr_expect_geq(s->fd, 0, "a small file keeps its fd too (ranges, the change check)");
    sl_cache_release(cache, l);
    sl_cache_release(cache, z);

    /* Rewritten in place, same size: the held bytes are the old version's
       and stay with the old entry; a lookup gets a new entry for the new
       version, never a mix. Just written, it is sent from its fd (see
       fresh_small_file_is_sent_from_its_fd_until_it_settles). */
    write_file("s.txt", "ABCDEFGH");
    struct sl_cache_entry *s2 = sl_cache_get(cache, "s.txt");
    cr_expect_neq(s2, s);
    cr_expect_null(s2->body, "changed just now: not copied");
    char buf[16];
    cr_expect_str_eq(slurp(s2->fd, buf, sizeof(buf)), "ABCDEFGH");
    cr_expect_eq(memcmp(s->body, "abcdefgh", 8), 0, "a reference keeps its version");
    sl_cache_release(cache, s);
    sl_cache_release(cache, s2);

    /* Turned off live: entries built from now on hold nothing, even for a
       file that has settled. */
    cfg.small_file_max = 0;
    sl_cache_configure(cache, &cfg);
    struct sl_cache_entry *t = sl_cache_get(cache, "t.txt");
    cr_assert_eq(t->err, 0);
    cr_expect_null(t->body);
    sl_cache_release(cache, t);
}

/* Sets ROOT/NAME's mtime to SECONDS from now (ctime becomes now). */
static void set_mtime(const char *name, long seconds)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct timespec t[2] = {now, {now.tv_sec + seconds, now.tv_nsec}};
    cr_assert_eq(utimensat(root_fd, name, t, 0), 0, "utimensat: %s", strerror(errno));
}

/* The bytes of a write in place are copied into the page cache after the
 * kernel stamped the file: a copy read then can mix the versions, or hold the
 * old bytes under the new stamp, and the fstat after the read cannot tell.
 * So a file changed within SL_CACHE_SETTLE_NS (the later of mtime and ctime)
 * is not copied; the first hit after it has settled copies it. An old mtime
 * does not make it settled: a write, or the utimensat that set the mtime
 * back, moved ctime to now, and ctime cannot be set back. */
Test(cache, fresh_small_file_is_sent_from_its_fd_until_it_settles)
{
    struct sl_cache_config cfg = config(100, 60000, 60000); /* no expiry here */
    cfg.small_file_max = 4096;
    cache = sl_cache_create(root_fd, mime, &cfg);
    write_file("f.txt", "fresh bytes");
    set_mtime("f.txt", -10); /* mtime 10 s ago; ctime: now */
    struct stat st;
    cr_assert_eq(fstatat(root_fd, "f.txt", &st, 0), 0);
    struct timespec written;
    clock_gettime(CLOCK_REALTIME, &written);
    cr_assert_lt(st.st_mtim.tv_sec, written.tv_sec - 5, "mtime set back");

    struct sl_cache_entry *e = sl_cache_get(cache, "f.txt");
    cr_assert_eq(e->err, 0);
    cr_expect_eq(e->size, 11);
    cr_expect_null(e->body, "ctime is now: not held in memory");
    cr_assert_geq(e->fd, 0, "sent from its fd meanwhile");
    char buf[32];
    cr_expect_str_eq(slurp(e->fd, buf, sizeof(buf)), "fresh bytes");
    struct sl_cache_entry *again = sl_cache_get(cache, "f.txt");
    cr_expect_eq(again, e, "a hit before it settled keeps the fd-only entry");
    cr_expect_null(again->body);
    sl_cache_release(cache, again);

    settle();
    struct sl_event_counters c0 = counters();
    struct sl_cache_entry *held = sl_cache_get(cache, "f.txt");
    cr_expect_eq(counters().cache_hits - c0.cache_hits, 1, "found in the table");
    cr_expect_neq(held, e, "a new entry took the fd-only one's place");
    cr_assert_not_null(held->body, "settled: held in memory");
    cr_expect_eq(memcmp(held->body, "fresh bytes", 11), 0);
    cr_expect_str_eq(held->etag, e->etag, "same version");
    cr_expect_str_eq(slurp(e->fd, buf, sizeof(buf)), "fresh bytes",
                     "a reference keeps its fd open");
    sl_cache_release(cache, e);
    struct sl_cache_entry *hit = sl_cache_get(cache, "f.txt");
    cr_expect_eq(hit, held, "the held entry stays");
    sl_cache_release(cache, hit);
    sl_cache_release(cache, held);
    cr_expect_eq(info_entries(), 1);
    cr_expect_eq(info_fds(), 1, "the fd-only entry's fd was closed");
}

/* A future mtime (clock skew, touch -d) says nothing about when the file
 * settles: it is not held in memory before that time comes. */
Test(cache, small_file_with_a_future_mtime_is_not_held)
{
    struct sl_cache_config cfg = config(100, 60000, 60000);
    cfg.small_file_max = 4096;
    cache = sl_cache_create(root_fd, mime, &cfg);
    write_file("future.txt", "later");
    set_mtime("future.txt", 3600);
    settle(); /* ctime is old now; mtime is still an hour ahead */
    struct sl_cache_entry *e = sl_cache_get(cache, "future.txt");
    cr_assert_eq(e->err, 0);
    cr_expect_null(e->body, "an hour ahead: not settled");
    char buf[16];
    cr_expect_str_eq(slurp(e->fd, buf, sizeof(buf)), "later");
    sl_cache_release(cache, e);
}

/* --- page cache residency (sl_cache_resident) ---------------------------- */

/* cachestat(2), asked directly (Linux 6.5; the number is the same on every
 * architecture), to check what the code under test is told. */
#define NR_CACHESTAT 451
struct cs_range {
    uint64_t off, len;
};
struct cs_result {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

/* Pages of FD's first LEN bytes in the page cache, or -errno. */
static long long cached_pages(int fd, uint64_t len)
{
    struct cs_range r = {0, len};
    struct cs_result res;
    if (syscall(NR_CACHESTAT, fd, &r, &res, 0) != 0)
        return -errno;
    return (long long)res.nr_cache;
}

static long long pages_of(uint64_t len)
{
    long page = sysconf(_SC_PAGESIZE);
    return (long long)((len + (uint64_t)page - 1) / (uint64_t)page);
}

/* ROOT/NAME with LEN bytes of a pattern, written back to disk (clean pages
 * can be evicted). Returns an O_RDONLY fd of it. */
static int write_synced(const char *name, size_t len)
{
    int fd = openat(root_fd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0, "create %s: %s", name, strerror(errno));
    char *buf = malloc(len);
    cr_assert_not_null(buf);
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)('a' + (i * 7 + i / 4096) % 26);
    cr_assert_eq(write(fd, buf, len), (ssize_t)len);
    free(buf);
    cr_assert_eq(fsync(fd), 0);
    return fd;
}

/* Drops FD's pages from the page cache; true once the file is no longer
 * wholly there, which is what sl_cache_resident asks (retried a little: not
 * every page can always be dropped at once; on a 6.18 kernel one large
 * folio of 8 pages sometimes stays). */
static bool evict(int fd, uint64_t len)
{
    long long all = pages_of(len);
    for (int i = 0; i < 100; i++) {
        fsync(fd);
        posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        long long n = cached_pages(fd, len);
        if (n >= 0 && n < all)
            return true;
        if (n < 0)
            return false; /* cannot tell */
        sleep_ms(10);
    }
    return false;
}

/* Reads all of FD, which brings it into the page cache. */
static void read_all(int fd, uint64_t len)
{
    char buf[65536];
    for (uint64_t off = 0; off < len;) {
        ssize_t n = pread(fd, buf, sizeof(buf), (off_t)off);
        cr_assert_gt(n, 0, "pread: %s", strerror(errno));
        off += (uint64_t)n;
    }
}

/* Skips the rest of a test where cachestat(2) is unavailable or the file
 * system keeps pages it is asked to drop (tmpfs), after checking what the
 * cache says for a file it holds no bytes of: no. */
static void need_eviction(struct sl_cache_entry *e, int fd, uint64_t len)
{
    long long n = cached_pages(fd, len);
    if (n == -ENOSYS || n == -EPERM) {
        cr_expect_not(sl_cache_resident(cache, e, sl_now_ns()),
                      "without cachestat a file not held in memory is never resident");
        sl_cache_release(cache, e);
        close(fd);
        cr_skip_test("cachestat(2) unavailable here (%s)", strerror((int)-n));
    }
    cr_assert_geq(n, 0, "cachestat: %s", strerror((int)-n));
    if (!evict(fd, len)) {
        sl_cache_release(cache, e);
        close(fd);
        cr_skip_test("%s does not drop page cache pages on POSIX_FADV_DONTNEED", base);
    }
}

Test(cache, resident_is_true_for_a_body_held_in_memory)
{
    struct sl_cache_config cfg = config(100, 10000, 10000);
    cfg.small_file_max = 16384;
    cache = sl_cache_create(root_fd, mime, &cfg);
    int fd = write_synced("small.bin", 10000);
    settle();
    struct sl_cache_entry *e = sl_cache_get(cache, "small.bin");
    cr_assert_eq(e->err, 0);
    cr_assert_not_null(e->body, "a file of at most small_file_max is held in memory");
    evict(fd, 10000); /* whether or not this takes: the cache has the bytes */
    cr_expect(sl_cache_resident(cache, e, sl_now_ns()));
    sl_cache_release(cache, e);
    close(fd);

    write_file("empty.bin", "");
    e = sl_cache_get(cache, "empty.bin");
    cr_assert_eq(e->err, 0);
    cr_expect_eq(e->size, 0);
    cr_expect(sl_cache_resident(cache, e, sl_now_ns()),
              "an empty file has nothing to read");
    sl_cache_release(cache, e);
}

Test(cache, resident_is_true_without_a_file_to_read)
{
    make_cache(100, 10000, 10000);
    struct sl_cache_entry *e = sl_cache_get(cache, "missing.bin");
    cr_assert_eq(e->err, ENOENT);
    cr_assert_eq(e->fd, -1);
    cr_expect(sl_cache_resident(cache, e, sl_now_ns()), "a failed lookup reads nothing");
    sl_cache_release(cache, e);
    cr_assert_eq(mkdirat(root_fd, "d", 0755), 0);
    e = sl_cache_get(cache, "d");
    cr_assert(e->is_dir);
    cr_assert_eq(e->fd, -1);
    cr_expect(sl_cache_resident(cache, e, sl_now_ns()), "a directory reads nothing");
    sl_cache_release(cache, e);
}

Test(cache, resident_asks_the_page_cache_and_remembers_a_yes)
{
    const uint64_t len = 1 << 20; /* > small_file_max (0 here) */
    make_cache(100, 10000, 10000);
    int fd = write_synced("big.bin", len);
    struct sl_cache_entry *e = sl_cache_get(cache, "big.bin");
    cr_assert_eq(e->err, 0);
    cr_assert_null(e->body);
    cr_assert_eq((uint64_t)e->size, len);
    need_eviction(e, fd, len);
    uint64_t now = sl_now_ns();
    cr_expect_not(sl_cache_resident(cache, e, now), "evicted: not resident");

    /* Part of the file (readahead off for this fd): still no. */
    int part = openat(root_fd, "big.bin", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(part, 0);
    posix_fadvise(part, 0, 0, POSIX_FADV_RANDOM);
    char buf[4096];
    cr_assert_eq(pread(part, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
    close(part);
    long long n = cached_pages(fd, len);
    if (n > 0 && n < pages_of(len))
        cr_expect_not(sl_cache_resident(cache, e, now + MS),
                      "%lld of %lld pages cached: not wholly resident", n, pages_of(len));
    else
        cr_log_warn("partial read cached %lld of %lld pages: partial case not checked", n,
                    pages_of(len));

    read_all(fd, len);
    cr_assert_eq(cached_pages(fd, len), pages_of(len));
    cr_expect(sl_cache_resident(cache, e, now + 2 * MS), "read whole: resident");

    /* The yes is trusted for the validity period (10 s) without asking,
       even after the pages are gone; a moment after it ends, asked again. */
    cr_assert(evict(fd, len), "evicting a second time");
    cr_expect(sl_cache_resident(cache, e, now + 3 * MS), "a yes is remembered");
    cr_expect(sl_cache_resident(cache, e, now + 2 * MS + 9999 * MS),
              "still within the validity period");
    cr_expect_not(sl_cache_resident(cache, e, now + 2 * MS + 10001 * MS),
                  "after the validity period the kernel is asked again");
    sl_cache_release(cache, e);
    close(fd);
}

Test(cache, resident_with_validity_zero_asks_every_time)
{
    const uint64_t len = 100 * 1024;
    make_cache(100, 0, 0);
    int fd = write_synced("big.bin", len);
    struct sl_cache_entry *e = sl_cache_get(cache, "big.bin");
    cr_assert_eq(e->err, 0);
    cr_assert_null(e->body);
    need_eviction(e, fd, len);
    uint64_t now = sl_now_ns();
    cr_expect_not(sl_cache_resident(cache, e, now));
    read_all(fd, len);
    cr_expect(sl_cache_resident(cache, e, now));
    cr_assert(evict(fd, len), "evicting a second time");
    cr_expect_not(sl_cache_resident(cache, e, now),
                  "validity 0: a yes is not remembered");
    read_all(fd, len);
    cr_expect(sl_cache_resident(cache, e, now));
    sl_cache_release(cache, e);
    close(fd);
}

/* Creates ROOT/NAME with LEN bytes (no fsync: many small files). */
static void write_len(const char *name, size_t len)
{
    char *buf = malloc(len);
    cr_assert_not_null(buf);
    memset(buf, 'b', len);
    int fd = openat(root_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0, "create %s: %s", name, strerror(errno));
    cr_assert_eq(write(fd, buf, len), (ssize_t)len);
    close(fd);
    free(buf);
}

Test(cache, bodies_stay_within_body_memory_and_give_it_back_when_freed)
{
    /* A budget of SL_CACHE_BODY_SHARE bodies of 4 KiB: the next one does not
       fit, and is sent from its fd. */
    const size_t len = 4096, n = SL_CACHE_BODY_SHARE;
    struct sl_cache_config cfg = config(2 * n, 10000, 10000);
    cfg.small_file_max = 16384;
    cfg.body_memory = n * len;
    cache = sl_cache_create(root_fd, mime, &cfg);
    char name[32];
    for (size_t i = 0; i <= n; i++) {
        snprintf(name, sizeof(name), "f%zu.bin", i);
        write_len(name, len);
    }
    settle();
    for (size_t i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "f%zu.bin", i);
        struct sl_cache_entry *e = sl_cache_get(cache, name);
        cr_assert_eq(e->err, 0);
        cr_assert_not_null(e->body, "%s: within the budget, held in memory", name);
        sl_cache_release(cache, e);
    }
    snprintf(name, sizeof(name), "f%zu.bin", n);
    struct sl_cache_entry *past = sl_cache_get(cache, name);
    cr_assert_eq(past->err, 0);
    cr_expect_null(past->body, "past the budget: sent from the fd");
    cr_expect_geq(past->fd, 0);
    sl_cache_release(cache, past);
    struct sl_cache_info info;
    sl_cache_info(cache, &info);
    cr_expect_eq(info.body_bytes, n * len);
    cr_expect_eq(info.body_memory, n * len);

    /* f0.bin gone: its entry is replaced by a failed lookup and freed after a
       grace period, which gives its bytes back. */
    cr_assert_eq(unlinkat(root_fd, "f0.bin", 0), 0);
    cfg.validity_ns = 0; /* every lookup revalidates */
    cfg.negative_ns = 0;
    sl_cache_configure(cache, &cfg);
    struct sl_cache_entry *gone = sl_cache_get(cache, "f0.bin");
    cr_expect_eq(gone->err, ENOENT);
    sl_cache_release(cache, gone);
    rcu_barrier();
    sl_cache_info(cache, &info);
    cr_expect_eq(info.body_bytes, (n - 1) * len, "%zu bytes counted", info.body_bytes);

    /* Room again for one 4 KiB body: the next new entry gets it. */
    write_len("new.bin", len);
    write_len("newer.bin", len);
    settle();
    struct sl_cache_entry *e = sl_cache_get(cache, "new.bin");
    cr_expect_not_null(e->body, "the freed bytes are room for a new body");
    sl_cache_release(cache, e);
    e = sl_cache_get(cache, "newer.bin");
    cr_expect_null(e->body, "and the budget is full again");
    sl_cache_release(cache, e);

    /* body_memory = 0 (a reload): no new body at all. */
    cfg.body_memory = 0;
    sl_cache_configure(cache, &cfg);
    write_len("tiny.bin", 10);
    settle();
    e = sl_cache_get(cache, "tiny.bin");
    cr_expect_eq(e->err, 0);
    cr_expect_null(e->body, "body_memory = 0: no bodies");
    sl_cache_release(cache, e);
}

Test(cache, a_body_is_at_most_a_share_of_body_memory)
{
    /* 1 MiB of budget: bodies up to 2 KiB (1 MiB / 512), whatever small_file_max. */
    struct sl_cache_config cfg = config(100, 10000, 10000);
    cfg.small_file_max = 16384;
    cfg.body_memory = 1 << 20;
    cache = sl_cache_create(root_fd, mime, &cfg);
    size_t cap = (1 << 20) / SL_CACHE_BODY_SHARE;
    write_len("at.bin", cap);
    write_len("over.bin", cap + 1);
    settle();
    struct sl_cache_entry *at = sl_cache_get(cache, "at.bin");
    struct sl_cache_entry *over = sl_cache_get(cache, "over.bin");
    cr_expect_not_null(at->body);
    cr_expect_null(over->body, "larger than body_memory / SL_CACHE_BODY_SHARE");
    cr_expect_eq(over->size, (off_t)cap + 1);
    sl_cache_release(cache, at);
    sl_cache_release(cache, over);
}
