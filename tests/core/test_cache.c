/* test_cache.c: the fd/header cache over a temporary document root: hits and
 * misses, the prebuilt header, directories, cached failures, symlinks and
 * ".." kept inside the root, files changed in place / replaced / deleted
 * noticed at once, paths retargeted noticed after the validity period,
 * eviction, reference counting across eviction and
 * replacement, and a multi-threaded race against a file system in motion. */
#include "core/cache.h"
#include "core/mime.h"
#include "core/stats.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <urcu.h>

#define MS 1000000ull

static char base[64]; /* mkdtemp directory: holds root/ and files outside it */
static char root[96]; /* the document root */
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
    root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(root_fd, 0);
    bool warn = false;
    mime = sl_mime_load(NULL, "application/octet-stream", &warn);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(p);
}

static void teardown(void)
{
    sl_cache_destroy(cache);
    cache = NULL;
    sl_mime_free(mime);
    close(root_fd);
    nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    rcu_unregister_thread();
}

TestSuite(cache, .init = setup, .fini = teardown);

static void make_cache(size_t max, uint64_t validity_ms, uint64_t negative_ms)
{
    struct sl_cache_config cfg = {.max_entries = max,
                                  .validity_ns = validity_ms * MS,
                                  .negative_ns = negative_ms * MS};
    cache = sl_cache_create(root_fd, mime, &cfg);
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

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
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
    cr_expect_eq(e1, e2, "a hit returns the cached entry");
    cr_expect_eq(e1->err, 0);
    cr_expect_not(e1->is_dir);
    cr_expect_eq(e1->size, 5);
    char buf[64];
    cr_expect_str_eq(slurp(e1->fd, buf, sizeof(buf)), "hello");
    cr_expect_eq(info_entries(), 1);
    cr_expect_eq(info_fds(), 1, "one fd however many references");
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
    cr_expect_eq(memcmp(e->hdr, want, strlen(want)), 0, "got:\n%.*s", (int)e->hdr_len,
                 e->hdr);
    cr_expect_str_eq(e->content_type, "text/html");
    cr_expect_str_eq(e->last_modified, "Sun, 06 Nov 1994 08:49:37 GMT");
    cr_expect_str_eq(e->etag, "\"2ebc98a1-d\"");
    cr_expect_eq(e->mtime.tv_sec, 784111777);
    cr_expect_eq(e->mtime.tv_nsec, 123456789);
    sl_cache_release(cache, e);

    /* Content-Type follows the extension of the last component only. */
    cr_assert_eq(mkdirat(root_fd, "v1.2", 0755), 0);
    write_file("v1.2/style.CSS", "b{}");
    write_file("v1.2/data", "x");
    write_file("v1.2/blob.unknownext", "");
    struct sl_cache_entry *css = sl_cache_get(cache, "v1.2/style.CSS");
    struct sl_cache_entry *none = sl_cache_get(cache, "v1.2/data");
    struct sl_cache_entry *unk = sl_cache_get(cache, "v1.2/blob.unknownext");
    cr_expect_str_eq(css->content_type, "text/css");
    cr_expect_str_eq(none->content_type, "application/octet-stream");
    cr_expect_str_eq(unk->content_type, "application/octet-stream");
    cr_expect(strstr(unk->hdr, "\r\nContent-Length: 0\r\n") != NULL, "empty file: %s",
              unk->hdr);
    char etag[48];
    snprintf(etag, sizeof(etag), "\"%llx-3\"", (unsigned long long)css->mtime.tv_sec);
    cr_expect_str_eq(css->etag, etag);
    sl_cache_release(cache, css);
    sl_cache_release(cache, none);
    sl_cache_release(cache, unk);
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
    cr_expect(r->is_dir, "\"\" is the root itself");
    cr_expect_eq(r->err, 0);
    cr_expect_eq(r->fd, -1);
    cr_expect_eq(info_entries(), 2);
    cr_expect_eq(info_fds(), 0);
    sl_cache_release(cache, d);
    sl_cache_release(cache, r);
}

Test(cache, special_files_are_refused_without_blocking)
{
    make_cache(100, 10000, 10000);
    cr_assert_eq(mkfifoat(root_fd, "pipe", 0644), 0);
    struct sl_cache_entry *e =
        sl_cache_get(cache, "pipe"); /* would hang without O_NONBLOCK */
    cr_expect_eq(e->err, EACCES);
    cr_expect_eq(e->fd, -1);
    cr_expect_eq(info_fds(), 0);
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
    sleep_ms(350);
    e = sl_cache_get(cache, "later.txt");
    cr_expect_eq(e->err, 0, "found once the negative period passed");
    cr_expect_geq(e->fd, 0);
    cr_expect_eq(e->size, 8);
    cr_expect_eq(counters().cache_revalidations - c1.cache_revalidations, 1);
    cr_expect_eq(info_entries(), 1, "the new entry replaced the negative one");
    sl_cache_release(cache, e);
}

Test(cache, symlinks_are_followed_only_inside_the_root)
{
    make_cache(100, 10000, 10000);
    write_file("a.txt", "inside");
    cr_assert_eq(mkdirat(root_fd, "sub", 0755), 0);
    char outside[160];
    snprintf(outside, sizeof(outside), "%s/x", base);
    FILE *f = fopen(outside, "w");
    cr_assert_not_null(f);
    fputs("secret", f);
    fclose(f);
    cr_assert_eq(symlinkat("a.txt", root_fd, "link.txt"), 0);
    cr_assert_eq(symlinkat("../a.txt", root_fd, "sub/up.txt"), 0);
    cr_assert_eq(symlinkat("/etc/passwd", root_fd, "abs"), 0);
    cr_assert_eq(symlinkat("../x", root_fd, "rel-out"), 0);
    cr_assert_eq(symlinkat(outside, root_fd, "abs-out"), 0);
    cr_assert_eq(symlinkat("sub", root_fd, "dirlink"), 0);

    const char *inside[] = {"link.txt", "sub/up.txt", "dirlink/up.txt"};
    for (size_t i = 0; i < SL_ARRAY_LEN(inside); i++) {
        struct sl_cache_entry *e = sl_cache_get(cache, inside[i]);
        char buf[32];
        cr_expect_eq(e->err, 0, "%s: %s", inside[i], strerror(e->err));
        if (e->fd >= 0)
            cr_expect_str_eq(slurp(e->fd, buf, sizeof(buf)), "inside", "%s", inside[i]);
        sl_cache_release(cache, e);
    }
    const char *escaping[] = {"abs", "rel-out", "abs-out", "sub/../abs"};
    for (size_t i = 0; i < SL_ARRAY_LEN(escaping); i++) {
        struct sl_cache_entry *e = sl_cache_get(cache, escaping[i]);
        cr_expect(e->err == EXDEV || e->err == ELOOP, "%s: err %d", escaping[i], e->err);
        cr_expect_eq(e->fd, -1, "%s", escaping[i]);
        sl_cache_release(cache, e);
    }
    cr_expect_eq(info_fds(), 3,
                 "one open file per path served, none for the refused ones");
}

Test(cache, dot_dot_cannot_climb_out_of_the_root)
{
    make_cache(100, 10000, 10000);
    cr_assert_eq(mkdirat(root_fd, "a", 0755), 0);
    write_file("a.txt", "inside");
    char outside[160];
    snprintf(outside, sizeof(outside), "%s/x", base);
    FILE *f = fopen(outside, "w");
    cr_assert_not_null(f);
    fputs("secret", f);
    fclose(f);
    const char *bad[] = {"a/../../x", "../x", "..", "/etc/passwd", "a/../../root/a.txt"};
    for (size_t i = 0; i < SL_ARRAY_LEN(bad); i++) {
        struct sl_cache_entry *e = sl_cache_get(cache, bad[i]);
        cr_expect_eq(e->err, EXDEV, "%s: err %d", bad[i], e->err);
        cr_expect_eq(e->fd, -1, "%s", bad[i]);
        sl_cache_release(cache, e);
    }
    struct sl_cache_entry *ok = sl_cache_get(cache, "a/../a.txt");
    cr_expect_eq(ok->err, 0, "\"..\" that stays inside is fine");
    sl_cache_release(cache, ok);
    cr_expect_eq(info_fds(), 1);
}

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
    cr_expect(memmem(e2->hdr, e2->hdr_len, "\r\nContent-Length: 8\r\n", 20) != NULL);
    char buf[32];
    cr_expect_str_eq(slurp(e2->fd, buf, sizeof(buf)), "abcdefgh");
    cr_expect_eq(info_entries(), 1);
    cr_expect_eq(info_fds(), 1, "the replaced entry's fd was closed");
    sl_cache_release(cache, e2);

    /* Same size, new bytes, mtime put back: the ctime still tells. */
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
    cr_assert_eq(symlinkat("v2.txt", root_fd, "cur.new"), 0);
    cr_assert_eq(renameat(root_fd, "cur.new", root_fd, "cur"), 0);
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
    sl_cache_release(cache, e4);
}

Test(cache, replaced_file_gets_new_entry_while_old_reference_reads_old_bytes)
{
    make_cache(100, 10000, 10000);
    write_file("r.txt", "old content");
    struct sl_cache_entry *old = sl_cache_get(cache, "r.txt");
    int oldfd = old->fd;
    cr_assert_geq(oldfd, 0);
    replace_file("r.txt", "brand new content!");
    /* No wait: the old inode lost its last name, which the hit's fstat sees. */
    struct sl_cache_entry *neu = sl_cache_get(cache, "r.txt");
    cr_expect_neq(neu, old);
    cr_expect_eq(neu->size, 18);
    cr_expect_eq(old->size, 11, "an entry is never edited");
    char buf[64];
    cr_expect_str_eq(slurp(oldfd, buf, sizeof(buf)), "old content");
    cr_expect_str_eq(slurp(neu->fd, buf, sizeof(buf)), "brand new content!");
    cr_expect_eq(info_entries(), 1);
    cr_expect_eq(info_fds(), 2, "the old fd stays open while referenced");
    sl_cache_release(cache, old);
    cr_expect_eq(info_fds(), 1);
    cr_expect_eq(fcntl(oldfd, F_GETFD), -1, "closed with its last reference");
    cr_expect_eq(errno, EBADF);
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
    sl_cache_release(cache, e);
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
    sl_cache_configure(cache, &(struct sl_cache_config){.max_entries = 4,
                                                        .validity_ns = 10000 * MS,
                                                        .negative_ns = 10000 * MS});
    sl_cache_release(cache, sl_cache_get(cache, "one-more"));
    cr_expect_leq(info_entries(), 4);
}

Test(cache, fd_outlives_eviction_until_the_last_release)
{
    make_cache(4, 10000, 10000);
    write_file("held.txt", "keep me");
    struct sl_cache_entry *held = sl_cache_get(cache, "held.txt");
    int hfd = held->fd;
    cr_assert_geq(hfd, 0);
    char name[32];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "g%03d.txt", i);
        write_file(name, "filler");
        sl_cache_release(cache, sl_cache_get(cache, name));
    }
    cr_expect_leq(info_entries(), 4);
    /* The CLOCK hand went round many times: held.txt was evicted... */
    struct sl_event_counters c0 = counters();
    struct sl_cache_entry *again = sl_cache_get(cache, "held.txt");
    cr_expect_eq(counters().cache_misses - c0.cache_misses, 1, "held.txt was evicted");
    cr_expect_neq(again, held);
    sl_cache_release(cache, again);
    /* ...but the reference still pins the open file. */
    cr_expect_geq(fcntl(hfd, F_GETFD), 0);
    char buf[32];
    cr_expect_str_eq(slurp(hfd, buf, sizeof(buf)), "keep me");
    size_t fds = info_fds();
    cr_expect_eq(fds, info_entries() + 1, "table entries plus the evicted, held one");
    sl_cache_release(cache, held);
    cr_expect_eq(info_fds(), fds - 1);
    cr_expect_eq(fcntl(hfd, F_GETFD), -1);
}

Test(cache, running_out_of_fds_is_reported_but_not_cached)
{
    make_cache(100, 10000, 10000);
    write_file("a.txt", "fine");
    struct rlimit old, low;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = 64;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    int fds[64], n = 0;
    while (n < 64 && (fds[n] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
        n++;
    cr_assert_lt(n, 64, "hit the limit");
    struct sl_cache_entry *e = sl_cache_get(cache, "a.txt");
    cr_expect_eq(e->err, EMFILE);
    cr_expect_eq(e->fd, -1);
    cr_expect_eq(info_entries(), 0, "a transient failure is not remembered");
    sl_cache_release(cache, e);
    for (int i = 0; i < n; i++)
        close(fds[i]);
    setrlimit(RLIMIT_NOFILE, &old);
    struct sl_event_counters c0 = counters();
    e = sl_cache_get(cache, "a.txt");
    cr_expect_eq(e->err, 0);
    cr_expect_geq(e->fd, 0);
    cr_expect_eq(counters().cache_misses - c0.cache_misses, 1);
    sl_cache_release(cache, e);
}

/* --- the race --------------------------------------------------------- */

#define RACE_FILES 64 /* f0..f3 get half the lookups, the rest are spread */
#define RACE_MAX 6
#define RACE_READERS 4
#define RACE_MS 1200

/* Version V of a file is V+'a' repeated len_of(V) times, so any fd can be
 * checked to hold exactly one whole version matching the entry's size. */
static size_t len_of(int v)
{
    return 100 + 37 * (size_t)v;
}

struct race {
    int stop;               /* atomic */
    unsigned long problems; /* atomic */
};

struct reader_out {
    struct race *r;
    unsigned seed;
    unsigned long gets, positives, hits, misses, revalidations, evictions;
};

static void check_entry(struct race *r, const char *path, const struct sl_cache_entry *e)
{
    if (e->err != 0) {
        if (e->err != ENOENT || e->fd != -1)
            uatomic_inc(&r->problems);
        return;
    }
    if (e->fd < 0 || e->is_dir || fcntl(e->fd, F_GETFD) < 0) {
        uatomic_inc(&r->problems);
        return;
    }
    char buf[512];
    ssize_t n = pread(e->fd, buf, sizeof(buf), 0);
    bool ok = n == e->size && n > 0;
    for (ssize_t i = 1; ok && i < n; i++)
        ok = buf[i] == buf[0];
    ok = ok && buf[0] >= 'a' && (size_t)n == len_of(buf[0] - 'a');
    char cl[48];
    int k = snprintf(cl, sizeof(cl), "\r\nContent-Length: %lld\r\n", (long long)e->size);
    ok = ok && memmem(e->hdr, e->hdr_len, cl, (size_t)k) != NULL;
    if (!ok) {
        fprintf(stderr, "race: %s: size %lld, read %zd\n", path, (long long)e->size, n);
        uatomic_inc(&r->problems);
    }
}

static void *race_reader(void *arg)
{
    struct reader_out *o = arg;
    rcu_register_thread();
    struct sl_event_counters c0 = sl_tstats_self()->ev;
    struct sl_cache_entry *kept = NULL; /* held across the next lookup */
    char path[32];
    while (!uatomic_read(&o->r->stop)) {
        int f =
            rand_r(&o->seed) % 2 ? rand_r(&o->seed) % 4 : rand_r(&o->seed) % RACE_FILES;
        snprintf(path, sizeof(path), "f%d", f);
        struct sl_cache_entry *e = sl_cache_get(cache, path);
        o->gets++;
        o->positives += e->err == 0;
        check_entry(o->r, path, e);
        if (kept != NULL) {
            check_entry(o->r, "(kept)", kept);
            sl_cache_release(cache, kept);
        }
        kept = e;
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

static void put_version(const char *name, int v)
{
    char buf[512];
    memset(buf, 'a' + v, len_of(v));
    buf[len_of(v)] = '\0';
    replace_file(name, buf);
}

static void *race_writer(void *arg)
{
    struct race *r = arg;
    unsigned seed = 7;
    unsigned long round = 0;
    char name[32];
    while (!uatomic_read(&r->stop)) {
        int f = rand_r(&seed) % 2 ? rand_r(&seed) % 4 : rand_r(&seed) % RACE_FILES;
        snprintf(name, sizeof(name), "f%d", f);
        if (++round % 5 == 0)
            unlinkat(root_fd, name, 0); /* ENOENT if already gone: fine */
        else
            put_version(name, rand_r(&seed) % 8);
        sched_yield();
    }
    return NULL;
}

Test(cache, concurrent_readers_against_a_changing_tree, .timeout = 30)
{
    make_cache(RACE_MAX, 1, 1); /* small, short-lived: constant eviction and checks */
    char name[32];
    for (int f = 0; f < RACE_FILES; f++) {
        snprintf(name, sizeof(name), "f%d", f);
        put_version(name, 0);
    }
    struct race r = {0};
    struct reader_out out[RACE_READERS];
    pthread_t rt[RACE_READERS], wt;
    for (int i = 0; i < RACE_READERS; i++) {
        out[i] = (struct reader_out){.r = &r, .seed = (unsigned)i + 1};
        cr_assert_eq(pthread_create(&rt[i], NULL, race_reader, &out[i]), 0);
    }
    cr_assert_eq(pthread_create(&wt, NULL, race_writer, &r), 0);
    unsigned long entries_seen_max = 0;
    uint64_t end = sl_now_ns() + RACE_MS * MS;
    while (sl_now_ns() < end) {
        entries_seen_max = SL_MAX(entries_seen_max, (unsigned long)info_entries());
        sleep_ms(5);
    }
    uatomic_set(&r.stop, 1);
    for (int i = 0; i < RACE_READERS; i++)
        pthread_join(rt[i], NULL);
    pthread_join(wt, NULL);

    unsigned long gets = 0, positives = 0, hits = 0, misses = 0, revals = 0,
                  evictions = 0;
    for (int i = 0; i < RACE_READERS; i++) {
        gets += out[i].gets;
        positives += out[i].positives;
        hits += out[i].hits;
        misses += out[i].misses;
        revals += out[i].revalidations;
        evictions += out[i].evictions;
    }
    cr_log_info("race: %lu gets, %lu files, %lu hits, %lu misses, %lu revalidations, "
                "%lu evictions, max %lu entries seen",
                gets, positives, hits, misses, revals, evictions, entries_seen_max);
    cr_expect_eq(uatomic_read(&r.problems), 0, "every entry held one whole file version");
    cr_expect_gt(gets, 100);
    cr_expect_gt(positives, 0);
    cr_expect_eq(hits + misses, gets, "each lookup is exactly a hit or a miss");
    cr_expect_gt(hits, 0);
    cr_expect_gt(misses, 0);
    cr_expect_gt(revals, 0);
    cr_expect_gt(evictions, 0);
    /* A sweep may lag behind inserts, but only by the slack (plus one racing
       insert per thread); then lookups go uncached. */
    cr_expect_leq(entries_seen_max,
                  RACE_MAX + SL_CACHE_SLACK(RACE_MAX) + RACE_READERS - 1);
    /* Quiet now, every reference released: the bound holds exactly (while
       racing it may be exceeded by inserts a running sweep has yet to undo),
       and only table entries hold files. */
    cr_expect_leq(info_entries(), RACE_MAX);
    cr_expect_leq(info_fds(), info_entries());
}
