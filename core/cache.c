/* cache.c: the shared fd/header cache; see cache.h.
 *
 * Concurrency contract
 *
 *   who                  what it may do
 *   -------------------  ------------------------------------------------------
 *   any registered RCU   sl_cache_get (outside rcu_read_lock), sl_cache_release
 *   thread
 *   any thread           sl_cache_info, sl_cache_configure (plain atomics only)
 *   one thread, alone    sl_cache_create, sl_cache_destroy
 *
 *   - The table (cds_lfht) is read under rcu_read_lock(). A node found there
 *     is pinned with urcu_ref_get_unless_zero(), which fails once the count
 *     reached zero; the read lock keeps the memory valid for that attempt.
 *   - The table owns one reference per entry it contains. Exactly one thread
 *     removes an entry (the one whose cds_lfht_del or cds_lfht_replace
 *     succeeds), and that thread drops the table's reference. Hence a count
 *     of zero implies the node is already logically removed, so a retried
 *     cds_lfht_add_unique can never return the same dying node again.
 *   - The last reference closes the fd at once (nobody can take a new one)
 *     and frees the memory with call_rcu(): readers inside a read-side
 *     critical section may still be reading the node's key or count.
 *   - Everything in an entry is immutable once published (cds_lfht_add_unique
 *     and cds_lfht_replace issue a full barrier before publishing, so readers
 *     see it initialized), except validated_ns (atomic, CAS by the one thread
 *     that revalidates), promote_at (atomic, CAS by the one thread that
 *     rebuilds a settled file's entry), accessed (a racy CLOCK hint: losing a
 *     store only changes which entry is evicted) and the reference count.
 *   - A changed file never edits an entry; it gets a new entry swapped in with
 *     cds_lfht_replace. A reader holding the old entry keeps sending the old
 *     inode through the old fd, so a response is one whole version of a file.
 *   - Path-level changes (a new file, a retargeted symlink) are found by the
 *     revalidation after the validity period. Changes to the inode behind a
 *     cached fd (written in place, deleted, renamed over) are found at once by
 *     an fstat on every hit, and on an entry another thread inserted while we
 *     opened the file: within the period, an in-place write would otherwise
 *     pair the cached header with new bytes. A hit for a request read before
 *     an fstat of the entry began (checked_ns, any thread's) that found the
 *     file unchanged needs no fstat of its own: whatever was done to the file
 *     before the request arrived, that fstat saw (sl_cache_get_after).
 *   - Each regular file's entry also has an inotify watch (IN_MODIFY,
 *     IN_ATTRIB: a write, a truncate, a chmod, a touch, a lost link) on the
 *     inode behind its fd, added before any hit's fstat. sl_cache_sync
 *     drains the inotify fd under ilock and bumps the epoch when it read
 *     anything (IN_Q_OVERFLOW and IN_IGNORED included). A hit's fstat that
 *     found the file unchanged records the epoch read before it (seen_epoch).
 *     A request read before a sync returned whose entry's seen_epoch is the
 *     current epoch needs no fstat: every change to the file after that
 *     fstat queued an event before the request arrived, the sync read it,
 *     and the epoch moved on. Any change to any watched file sends every
 *     entry back to its fstat once. Watches are shared by entries on the
 *     same inode (the kernel gives them one wd), counted in wds under
 *     wlock, and removed with the last entry; added and removed under wlock,
 *     so an add never meets a watch being removed. Where a watch cannot be
 *     had (no inotify, max_user_watches), the entry is checked on every hit.
 *   - A small file changed too recently (SL_CACHE_SETTLE_NS) gets an entry
 *     without a body: a write may still be copying its bytes in. Its
 *     promote_at says when the file will have settled; the first hit after
 *     that (one comparison on every hit, a CAS to pick the thread) builds a
 *     new entry, which reads the body, and swaps it in like a changed file's.
 *   - One thread at a time evicts (an atomic flag); the others skip it. The
 *     CLOCK hand belongs to whoever holds the flag.
 *   - Errors that say nothing about the file (EMFILE, ENFILE, ENOMEM, ...) are
 *     handed out in a private entry that is never put in the table, so running
 *     out of descriptors for a moment is not remembered for negative_ns.
 */
#include "core/cache.h"
#include "core/http.h"
#include "lib/log.h"
#include "lib/stats.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <urcu.h>
#include <urcu/rculfhash.h>
#include <urcu/ref.h>

#define DEFAULT_TYPE "application/octet-stream"
/* Bound on back-to-back sweeps by one thread while others keep inserting
 * during its sweeps (they leave the work to it); high enough that the bound
 * holds once inserts stop, low enough that one request cannot be stuck. */
#define EVICT_ROUNDS 64

struct entry {
    struct sl_cache_entry pub;
    struct cds_lfht_node node;
    struct urcu_ref ref;
    uint64_t validated_ns;   /* atomic: sl_now_ns() of the last check */
    uint64_t resident_until; /* atomic: the page cache held the whole file
                                at the last check; trusted until then */
    uint64_t checked_ns;     /* atomic: sl_now_ns() read before the latest look
                                at the file (its probe, or a hit's fstat) that
                                found it as this entry describes it */
    uint64_t promote_at;     /* atomic: sl_now_ns() from which a new entry
                                would hold the body (a small file changed
                                too recently to be copied); UINT64_MAX: no */
    uint64_t seen_epoch;     /* atomic: c->epoch read before a hit's fstat
                                that found the file unchanged; 0: none yet */
    size_t body_held;        /* bytes of body counted in cache->body_bytes */
    int wd;                  /* inotify watch on the file, or -1: none */
    uint8_t accessed;        /* CLOCK bit: hit since the evictor last passed */
    bool published;          /* was added to the table (false: private entry) */
    dev_t dev;
    ino_t ino;
    struct timespec ctime; /* catches a rewrite that restored mtime and size */
    unsigned long hash;
    struct sl_cache *cache;
    struct rcu_head rcu;
    char key[]; /* NUL-terminated path, then the header text */
};

struct sl_cache {
    struct cds_lfht *ht;
    int root_fd;
    const struct sl_mime *mime;
    size_t max_entries;      /* atomic */
    uint64_t validity_ns;    /* atomic */
    uint64_t negative_ns;    /* atomic */
    size_t small_file_max;   /* atomic */
    size_t body_memory;      /* atomic: bound on body_bytes */
    long body_bytes;         /* atomic: bodies held by entries not yet freed */
    long count;              /* atomic: entries in the table */
    long open_fds;           /* atomic: fds held by entries not yet released */
    long live;               /* atomic: entries allocated and not yet released */
    int evicting;            /* atomic flag: a sweep is running */
    char *hand;              /* CLOCK hand: key of the next entry to sweep, */
    unsigned long hand_hash; /* owned by the thread holding evicting */
    int ifd;                 /* inotify, watching the cached files; -1: none */
    uint64_t epoch;          /* atomic: bumped by a sync that read events */
    pthread_mutex_t ilock;   /* one sync drains ifd at a time */
    pthread_mutex_t wlock;   /* the watch table, and adding/removing watches */
    struct wdref *wds;       /* sorted by wd: entries using each watch */
    size_t nwds, capwds;
    bool watch_failed;       /* logged once: a watch could not be added */
};

struct wdref {
    int wd;
    long refs;
};

/* What opening PATH found, before any entry exists. */
struct probe {
    int fd;  /* regular file only, else -1 */
    int err; /* errno of the failed open, or EACCES for a non-regular file */
    struct stat st;
};

/* FNV-1a, folded so the low bits (which pick the bucket) depend on the high
 * ones too. Not keyed: chains are bounded by max_entries anyway. */
static unsigned long hash_path(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return (unsigned long)(h ^ (h >> 29));
}

static int match(struct cds_lfht_node *node, const void *key)
{
    const struct entry *e = caa_container_of(node, struct entry, node);
    return strcmp(e->key, key) == 0;
}

/* Failures that describe the process, not the file: never cached. */
static bool transient(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOMEM || err == EAGAIN ||
           err == EINTR || err == ENOBUFS;
}

/* Index of WD in c->wds, or where it would go. Under wlock. */
static size_t wd_find(const struct sl_cache *c, int wd)
{
    size_t lo = 0, hi = c->nwds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->wds[mid].wd < wd)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* A watch on the inode behind FD, counted for one more entry; -1 if none can
 * be had (the entry is then checked with an fstat on every hit). */
static int watch_add(struct sl_cache *c, int fd)
{
    if (c->ifd < 0)
        return -1;
    char path[32];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    pthread_mutex_lock(&c->wlock);
    int wd = inotify_add_watch(c->ifd, path, IN_MODIFY | IN_ATTRIB);
    if (wd < 0) {
        if (!c->watch_failed)
            sl_log(SL_LOG_WARN,
                   "cache: inotify_add_watch: %s (fs.inotify.max_user_watches?): "
                   "files without a watch get an fstat on every hit",
                   strerror(errno));
        c->watch_failed = true;
        pthread_mutex_unlock(&c->wlock);
        return -1;
    }
    size_t i = wd_find(c, wd);
    if (i < c->nwds && c->wds[i].wd == wd) {
        c->wds[i].refs++;
    } else {
        if (c->nwds == c->capwds) {
            c->capwds = c->capwds ? 2 * c->capwds : 64;
            c->wds = sl_realloc(c->wds, c->capwds * sizeof(*c->wds));
        }
        memmove(c->wds + i + 1, c->wds + i, (c->nwds - i) * sizeof(*c->wds));
        c->wds[i] = (struct wdref){wd, 1};
        c->nwds++;
    }
    pthread_mutex_unlock(&c->wlock);
    return wd;
}

/* One entry less uses WD: the last one removes the watch. */
static void watch_put(struct sl_cache *c, int wd)
{
    pthread_mutex_lock(&c->wlock);
    size_t i = wd_find(c, wd);
    if (i < c->nwds && c->wds[i].wd == wd && --c->wds[i].refs == 0) {
        inotify_rm_watch(c->ifd, wd); /* EINVAL if the kernel dropped it: fine */
        memmove(c->wds + i, c->wds + i + 1, (c->nwds - i - 1) * sizeof(*c->wds));
        c->nwds--;
    }
    pthread_mutex_unlock(&c->wlock);
}

uint64_t sl_cache_sync(struct sl_cache *c)
{
    if (c->ifd >= 0) {
        _Alignas(struct inotify_event) char buf[4096];
        bool any = false;
        pthread_mutex_lock(&c->ilock);
        for (;;) {
            ssize_t n = read(c->ifd, buf, sizeof(buf));
            if (n > 0) {
                any = true;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            break; /* EAGAIN: drained */
        }
        if (any)
            uatomic_add_return(&c->epoch, 1); /* a full barrier */
        pthread_mutex_unlock(&c->ilock);
    }
    return sl_now_ns();
}

/* Frees E and gives its body's bytes back to the budget. */
static void free_entry(struct entry *e)
{
    if (e->body_held > 0)
        uatomic_sub(&e->cache->body_bytes, (long)e->body_held);
    free(e);
}

static void free_rcu(struct rcu_head *head)
{
    struct entry *e = caa_container_of(head, struct entry, rcu);
    SL_TSAN_ACQUIRE(e); /* pairs with release(): call_rcu's ordering, for TSan */
    free_entry(e);
}

/* Takes N bytes of the body budget; false (nothing taken) past it. */
static bool hold_body(struct sl_cache *c, size_t n)
{
    long after = uatomic_add_return(&c->body_bytes, (long)n);
    if ((size_t)after <= uatomic_read(&c->body_memory))
        return true;
    uatomic_sub(&c->body_bytes, (long)n);
    return false;
}

static void release(struct urcu_ref *ref)
{
    struct entry *e = caa_container_of(ref, struct entry, ref);
    SL_TSAN_ACQUIRE(e); /* pairs with put(): the last decrement, for TSan */
    struct sl_cache *c = e->cache;
    /* The count is zero, so no thread holds or can take a reference: the fd is
       unused. The memory may still be read by RCU readers: free it later. */
    if (e->wd >= 0)
        watch_put(c, e->wd);
    if (e->pub.fd >= 0) {
        close(e->pub.fd);
        uatomic_dec(&c->open_fds); /* statistics only: no ordering needed */
    }
    uatomic_dec(&c->live); /* read by destroy after rcu_barrier() */
    if (e->published) {
        SL_TSAN_RELEASE(e);
        call_rcu(&e->rcu, free_rcu);
    }
    else
        free_entry(e); /* never reachable from the table */
}

static void put(struct entry *e)
{
    /* urcu_ref_put's atomic decrement is a full barrier: every use of the
       entry by this thread happens before release() runs in another. */
    SL_TSAN_RELEASE(e); /* pairs with release() */
    urcu_ref_put(&e->ref, release);
}

/* Opens PATH beneath the root. Cannot fail: the failure is the result. */
static void probe_path(struct sl_cache *c, const char *path, struct probe *p)
{
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    int fd, tries = 0;
    /* EINTR: retried as always. EAGAIN: RESOLVE_BENEATH met a ".." while a
       rename was in flight and could not prove it stayed inside; the kernel
       asks us to retry. */
    do
        fd = (int)syscall(SYS_openat2, c->root_fd, path[0] ? path : ".", &how,
                          sizeof(how));
    while (fd < 0 && (errno == EINTR || (errno == EAGAIN && ++tries < 8)));
    p->fd = -1;
    p->err = 0;
    memset(&p->st, 0, sizeof(p->st));
    if (fd < 0) {
        /* ENXIO: a socket (or a device without a driver): as unservable as
           the FIFOs and devices we do open, so the same answer. */
        p->err = errno == ENXIO || errno == ENODEV ? EACCES : errno;
        return;
    }
    if (fstat(fd, &p->st) != 0) {
        p->err = errno;
        close(fd);
        return;
    }
    if (S_ISREG(p->st.st_mode)) {
        p->fd = fd;
        return;
    }
    close(fd);
    if (!S_ISDIR(p->st.st_mode))
        p->err = EACCES; /* FIFOs, devices, sockets: never served */
}

/* Does E still describe what P found? */
static bool same_file(const struct entry *e, const struct probe *p)
{
    if (e->pub.err != 0 || p->err != 0)
        return e->pub.err == p->err;
    return e->pub.is_dir == S_ISDIR(p->st.st_mode) && e->dev == p->st.st_dev &&
           e->ino == p->st.st_ino && e->pub.size == p->st.st_size &&
           e->pub.mtime.tv_sec == p->st.st_mtim.tv_sec &&
           e->pub.mtime.tv_nsec == p->st.st_mtim.tv_nsec &&
           e->ctime.tv_sec == p->st.st_ctim.tv_sec &&
           e->ctime.tv_nsec == p->st.st_ctim.tv_nsec;
}

/* Reads the whole file behind P (LEN bytes) into BUF. True only if the bytes
 * are those of the version P's stat describes: a file written meanwhile gives
 * a short read or a new mtime/ctime, and is then sent with sendfile instead
 * (the per-hit fstat soon replaces the entry). A write already under way when
 * P's fstat ran changed nothing it can see (the kernel stamps the file before
 * it copies the bytes in): the caller reads only a file that has settled
 * (settle_wait). */
static bool read_body(const struct probe *p, char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(p->fd, buf + got, len - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    struct stat st;
    if (fstat(p->fd, &st) != 0)
        return false;
    return st.st_size == p->st.st_size && st.st_mtim.tv_sec == p->st.st_mtim.tv_sec &&
           st.st_mtim.tv_nsec == p->st.st_mtim.tv_nsec &&
           st.st_ctim.tv_sec == p->st.st_ctim.tv_sec &&
           st.st_ctim.tv_nsec == p->st.st_ctim.tv_nsec;
}

/* The kernel's timestamps, against CLOCK_REALTIME: a whole-second stamp may
 * come from a filesystem that truncates to 1 s (ext3, ext4 with 128-byte
 * inodes, HFS+) or 2 s (FAT), so it may stand for a moment up to 2 s later. */
#define COARSE_STAMP_NS 2000000000ll

/* Nanoseconds from the file change stamped T to NOW, negative if T is later
 * (clock skew, a future mtime set by hand); saturated far from zero. */
static int64_t stamp_age(const struct timespec *t, const struct timespec *now)
{
    int64_t ds;
    if (__builtin_sub_overflow((int64_t)now->tv_sec, (int64_t)t->tv_sec, &ds))
        return INT64_MIN / 2; /* absurd stamps: taken as future ones */
    if (ds > 1000000000 || ds < -1000000000)
        return ds > 0 ? INT64_MAX / 2 : INT64_MIN / 2;
    int64_t age = ds * 1000000000ll + (now->tv_nsec - t->tv_nsec);
    return t->tv_nsec == 0 ? age - COARSE_STAMP_NS : age;
}

/* How long, from NOW, until the file P found has been left alone for
 * SL_CACHE_SETTLE_NS (0: it has). Its last change is the later of mtime and
 * ctime: a write moves both, and ctime cannot be set back by hand. A stamp
 * in the future says nothing about when the file settles: it is asked again
 * after SL_CACHE_SETTLE_NS, and so is never held in memory before that time. */
static uint64_t settle_wait(const struct probe *p, const struct timespec *now)
{
    int64_t age = stamp_age(&p->st.st_mtim, now);
    int64_t cage = stamp_age(&p->st.st_ctim, now);
    if (cage < age)
        age = cage;
    if (age >= (int64_t)SL_CACHE_SETTLE_NS)
        return 0;
    if (age < 0)
        return SL_CACHE_SETTLE_NS;
    return SL_CACHE_SETTLE_NS - (uint64_t)age;
}

/* Builds an unpublished entry for PATH from P (taking P's fd), holding REFS
 * references. Cannot fail. */
static struct entry *build(struct sl_cache *c, const char *path, unsigned long hash,
                           const struct probe *p, long refs, uint64_t now)
{
    size_t klen = strlen(path);
    char lm[SL_HTTP_DATE_LEN + 1] = "";
    char etag[48] = "";
    const char *type = NULL;
    int hlen = 0;
    bool file = p->err == 0 && !S_ISDIR(p->st.st_mode);
    if (file) {
        sl_http_format_date(p->st.st_mtim.tv_sec, lm);
        snprintf(etag, sizeof(etag), "\"%llx-%llx\"",
                 (unsigned long long)p->st.st_mtim.tv_sec,
                 (unsigned long long)p->st.st_size);
        type = c->mime ? sl_mime_type(c->mime, path) : DEFAULT_TYPE;
        hlen =
            snprintf(NULL, 0,
                     "Content-Type: %s\r\nContent-Length: %lld\r\nLast-Modified: %s\r\n"
                     "ETag: %s\r\n",
                     type, (long long)p->st.st_size, lm, etag);
    }
    size_t blen = 0;
    uint64_t wait = 0;
    if (file && p->st.st_size > 0 &&
        (size_t)p->st.st_size <= uatomic_read(&c->small_file_max) &&
        (size_t)p->st.st_size <= uatomic_read(&c->body_memory) / SL_CACHE_BODY_SHARE) {
        /* The clock before the read begins: a write whose bytes the read
           could meet stamped the file after the probe's fstat (the second
           fstat sees that) or less than SL_CACHE_SETTLE_NS before this. */
        struct timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        wait = settle_wait(p, &wall);
        /* Past the budget: no body, sent from the fd (as a larger file). */
        if (wait == 0 && hold_body(c, (size_t)p->st.st_size))
            blen = (size_t)p->st.st_size;
    }
    struct entry *e = sl_calloc(1, sizeof(*e) + klen + 1 + (size_t)hlen + 1 + blen);
    memcpy(e->key, path, klen + 1);
    e->hash = hash;
    e->cache = c;
    e->body_held = blen;
    e->validated_ns = now;
    e->checked_ns = now; /* the caller read NOW before probing */
    /* Changed too recently to be copied: sent from the fd until then. */
    e->promote_at = wait > 0 ? now + wait : UINT64_MAX;
    urcu_ref_set(&e->ref, refs);
    uatomic_inc(&c->live); /* statistics for destroy: no ordering needed */
    e->wd = -1;
    e->pub.fd = p->fd;
    e->pub.err = p->err;
    if (p->err != 0)
        return e;
    e->pub.is_dir = S_ISDIR(p->st.st_mode);
    e->pub.size = p->st.st_size;
    e->pub.mtime = p->st.st_mtim;
    e->dev = p->st.st_dev;
    e->ino = p->st.st_ino;
    e->ctime = p->st.st_ctim;
    if (!file)
        return e;
    uatomic_inc(&c->open_fds); /* statistics only: no ordering needed */
    /* Before any hit's fstat, which is what vouches for the file (the
       probe's came before the watch: seen_epoch stays 0 until a hit's). */
    e->wd = watch_add(c, p->fd);
    memcpy(e->pub.last_modified, lm, sizeof(lm));
    memcpy(e->pub.etag, etag, sizeof(etag));
    e->pub.content_type = type;
    char *hdr = e->key + klen + 1;
    snprintf(
        hdr, (size_t)hlen + 1,
        "Content-Type: %s\r\nContent-Length: %lld\r\nLast-Modified: %s\r\nETag: %s\r\n",
        type, (long long)p->st.st_size, lm, etag);
    e->pub.hdr = hdr;
    e->pub.hdr_len = (size_t)hlen;
    if (blen > 0 && read_body(p, hdr + hlen + 1, blen))
        e->pub.body = hdr + hlen + 1;
    return e;
}

/* Marks E as used, writing the shared line only when the bit is clear, so a
 * hot entry costs its readers no cache-line traffic. A racy hint: a lost
 * store only changes which entry the next sweep picks. */
static void touch(struct entry *e)
{
    if (!CMM_LOAD_SHARED(e->accessed))
        CMM_STORE_SHARED(e->accessed, 1);
}

/* Has the file behind E's fd been written in place, or lost its last name
 * (deleted, or renamed over), since E was built? One fstat, no path walk. */
static bool changed_under(const struct entry *e)
{
    struct stat st;
    if (fstat(e->pub.fd, &st) != 0)
        return false; /* cannot fail on an fd we own; keep serving */
    return st.st_nlink == 0 || st.st_size != e->pub.size ||
           st.st_mtim.tv_sec != e->pub.mtime.tv_sec ||
           st.st_mtim.tv_nsec != e->pub.mtime.tv_nsec ||
           st.st_ctim.tv_sec != e->ctime.tv_sec || st.st_ctim.tv_nsec != e->ctime.tv_nsec;
}

/* Removes E from the table if nobody else removed it first. Call under
 * rcu_read_lock. Returns true if this thread removed it. */
static bool unlink_entry(struct sl_cache *c, struct entry *e)
{
    if (cds_lfht_del(c->ht, &e->node) != 0)
        return false;       /* a concurrent del/replace won and drops the reference */
    uatomic_dec(&c->count); /* statistics and the eviction trigger only */
    put(e); /* the table's reference; release() may call_rcu from in here */
    return true;
}

/* Puts FRESH (unpublished, holding the table's reference and the caller's)
 * in OLD's place if OLD is still in the table, and drops the table's
 * reference to OLD. Returns false, changing nothing, if OLD left the table
 * (evicted, or replaced by another thread) meanwhile. */
static bool swap_in(struct sl_cache *c, struct entry *old, struct entry *fresh)
{
    struct cds_lfht_iter iter;
    int rc = -ENOENT;
    fresh->published = true;
    SL_TSAN_RELEASE(fresh); /* the replace's barrier, for TSan: pairs with lookups */
    rcu_read_lock();
    cds_lfht_lookup(c->ht, old->hash, match, old->key, &iter);
    if (cds_lfht_iter_get_node(&iter) == &old->node)
        rc = cds_lfht_replace(c->ht, &iter, old->hash, match, old->key, &fresh->node);
    rcu_read_unlock();
    if (rc != 0)
        return false;
    put(old); /* the table's reference: this thread removed OLD */
    return true;
}

/* Moves ITER to the next node, wrapping around to the first. */
static struct cds_lfht_node *next_wrap(struct sl_cache *c, struct cds_lfht_iter *iter)
{
    cds_lfht_next(c->ht, iter);
    if (cds_lfht_iter_get_node(iter) == NULL)
        cds_lfht_first(c->ht, iter);
    return cds_lfht_iter_get_node(iter);
}

/* One CLOCK (second-chance) sweep from the hand: clears accessed bits and
 * removes entries found without one until the table holds at most TARGET
 * entries. After two turns of the clock it ignores the bits, so a table of
 * hot entries still gets back under its bound. The hand is remembered as the
 * key of the next entry to look at (nodes cannot be kept across read-side
 * critical sections); an entry replaced by revalidation keeps its key and so
 * its place. Only the thread holding c->evicting calls this. */
static void sweep(struct sl_cache *c, long target, struct sl_tstats *ts)
{
    struct cds_lfht_iter iter;
    struct cds_lfht_node *n = NULL;
    rcu_read_lock();
    if (c->hand != NULL) {
        cds_lfht_lookup(c->ht, c->hand_hash, match, c->hand, &iter);
        n = cds_lfht_iter_get_node(&iter);
    }
    if (n == NULL) {
        cds_lfht_first(c->ht, &iter);
        n = cds_lfht_iter_get_node(&iter);
    }
    long count = uatomic_read(&c->count);
    long second_chances = 2 * count + 2; /* visits that honour the bit */
    long visits = 4 * count + 16;        /* hard stop against replace storms */
    while (n != NULL && visits-- > 0 && uatomic_read(&c->count) > target) {
        struct entry *e = caa_container_of(n, struct entry, node);
        SL_TSAN_ACQUIRE(e); /* found in the table: pairs with its publication */
        if (second_chances-- > 0 && CMM_LOAD_SHARED(e->accessed))
            CMM_STORE_SHARED(e->accessed, 0);
        else if (unlink_entry(c, e))
            SL_COUNTER_ADD(&ts->ev.cache_evictions, 1);
        /* Safe after unlink_entry: a removed node still links onward while
           we are inside the read-side critical section. */
        n = next_wrap(c, &iter);
    }
    free(c->hand);
    c->hand = NULL;
    if (n != NULL) {
        struct entry *e = caa_container_of(n, struct entry, node);
        SL_TSAN_ACQUIRE(e);
        c->hand = sl_strdup(e->key);
        c->hand_hash = e->hash;
    }
    rcu_read_unlock();
}

/* Brings the table back under ~90% of max_entries if it is over the bound. */
static void evict(struct sl_cache *c, struct sl_tstats *ts)
{
    for (int round = 0; round < EVICT_ROUNDS; round++) {
        size_t max = uatomic_read(&c->max_entries);
        if ((size_t)uatomic_read(&c->count) <= max)
            return;
        /* Full barrier (xchg): we see the hand the previous sweeper left. */
        if (uatomic_xchg(&c->evicting, 1) != 0)
            return; /* the running sweeper re-reads count when it is done */
        sweep(c, (long)(max - max / 10), ts);
        /* Full barrier (xchg): publishes our hand to the next sweeper, and
           orders the flag clear before the count re-read at the loop top,
           pairing with the full barrier of uatomic_add_return in publish():
           an inserter either sees the flag clear or we see its count. */
        (void)uatomic_xchg(&c->evicting, 0);
    }
}

/* Turns the unpublished FRESH into a private entry: the caller's reference
 * only, freed without a grace period. */
static struct entry *make_private(struct entry *fresh)
{
    fresh->published = false;
    urcu_ref_set(&fresh->ref, 1);
    return fresh;
}

/* Publishes FRESH (holding 2 references: table and caller). If another
 * entry for the path got there first, returns that one, referenced, and
 * frees FRESH. If the table is over its bound by more than the slack (the
 * sweeper was descheduled while others kept inserting), returns FRESH as a
 * private entry instead, so the bound is hard. */
static struct entry *publish(struct sl_cache *c, struct entry *fresh,
                             struct sl_tstats *ts)
{
    size_t max = uatomic_read(&c->max_entries);
    if ((size_t)uatomic_read(&c->count) >= max + SL_CACHE_SLACK(max)) {
        evict(c, ts); /* ours to do if nobody is at it */
        if ((size_t)uatomic_read(&c->count) >= max + SL_CACHE_SLACK(max))
            return make_private(fresh); /* a sweep lags behind a flood */
    }
    fresh->published = true;
    SL_TSAN_RELEASE(fresh); /* the insert's barrier, for TSan: pairs with lookups */
    for (;;) {
        rcu_read_lock();
        struct cds_lfht_node *n =
            cds_lfht_add_unique(c->ht, fresh->hash, match, fresh->key, &fresh->node);
        if (n == &fresh->node) {
            rcu_read_unlock();
            /* Full barrier: the insert is counted before we look at the evict
               flag; pairs with the xchg that clears it in evict(). */
            long count = uatomic_add_return(&c->count, 1);
            if ((size_t)count > uatomic_read(&c->max_entries))
                evict(c, ts);
            return fresh;
        }
        struct entry *other = caa_container_of(n, struct entry, node);
        SL_TSAN_ACQUIRE(other); /* found in the table: pairs with its publication */
        bool got = urcu_ref_get_unless_zero(&other->ref);
        rcu_read_unlock();
        if (!got)
            continue; /* OTHER is dying, so it is already out of the table */
        /* OTHER may come from a look at the file taken before it was written
           in place, and have been inserted after: served unchecked, its header
           would not match its bytes. FRESH looked during this lookup; it takes
           OTHER's place (or, if OTHER is gone already, we try again). */
        if (other->pub.fd >= 0 && changed_under(other)) {
            bool swapped = swap_in(c, other, fresh);
            put(other); /* ours */
            if (swapped)
                return fresh;
            continue;
        }
        put(make_private(fresh)); /* never visible: no grace period */
        touch(other);
        return other;
    }
}

/* Opens PATH and returns a referenced entry for it: published, or private
 * when the failure is transient. */
static struct entry *load(struct sl_cache *c, const char *path, unsigned long hash,
                          uint64_t now, struct sl_tstats *ts)
{
    struct probe p;
    probe_path(c, path, &p);
    if (transient(p.err))
        return build(c, path, hash, &p, 1, now);
    return publish(c, build(c, path, hash, &p, 2, now), ts);
}

/* Why revalidate() looks at the file again. */
enum recheck {
    STALE,   /* the validity period is over */
    CHANGED, /* the file changed under E's fd */
    SETTLED, /* E's small file was too fresh to copy, and has settled since */
};

/* Checks E (referenced by the caller) against the file system. Returns E, or
 * a new referenced entry that took its place (E's reference is then
 * dropped). A CHANGED entry is never returned: its header no longer matches
 * the bytes behind its fd. A SETTLED one is replaced by a new entry (which
 * holds the body if the file is still unchanged), unless the file cannot be
 * opened for the moment. */
static struct entry *revalidate(struct sl_cache *c, struct entry *e, uint64_t now,
                                enum recheck why, struct sl_tstats *ts)
{
    bool changed = why == CHANGED;
    SL_COUNTER_ADD(&ts->ev.cache_revalidations, 1);
    struct probe p;
    probe_path(c, e->key, &p);
    if (transient(p.err)) {
        if (why == SETTLED) /* try again a little later */
            uatomic_cmpxchg(&e->promote_at, UINT64_MAX, now + SL_CACHE_SETTLE_NS / 8);
        if (!changed)
            return e; /* cannot tell now: serve what we have, look again later */
        struct entry *err = build(c, e->key, e->hash, &p, 1, now); /* private */
        put(e);
        return err;
    }
    if (why == STALE && same_file(e, &p)) {
        if (p.fd >= 0)
            close(p.fd);
        return e;
    }
    struct entry *fresh = build(c, e->key, e->hash, &p, 2, now);
    fresh->accessed = 1; /* it is in use right now */
    if (swap_in(c, e, fresh)) {
        put(e); /* the caller's */
        return fresh;
    }
    /* E left the table meanwhile (evicted, or replaced by a second checker
       after a check slower than the validity period): insert ours, or take
       the entry that is there now. */
    put(e);
    return publish(c, fresh, ts);
}

/* The per-hit change check of E (a regular file's entry, referenced) for a
 * request read by READ_NS (0: not known), at NOW, read before this call.
 * True if the file changed under E's fd. */
static bool hit_changed(struct sl_cache *c, struct entry *e, uint64_t read_ns, uint64_t now)
{
    /* READ_NS came from a sync after the request was read: an event for
       any change since the entry's last unchanged fstat moved the epoch. */
    uint64_t epoch = uatomic_read(&c->epoch);
    if (read_ns != 0 && e->wd >= 0 && uatomic_read(&e->seen_epoch) == epoch)
        return false;
    /* Relaxed: a stale value is an older one, which at worst costs an fstat.
       A stamp above READ_NS comes from a clock read after the request was
       read, and that thread's fstat came after its clock read: it saw every
       change made before the request arrived. (Clock reads are ordered across
       CPUs; validated_ns relies on it too.) */
    if (read_ns != 0 && read_ns < uatomic_read(&e->checked_ns))
        return false;
    if (changed_under(e))
        return true;
    /* Racing stores may put back an older stamp or epoch: one more fstat,
       no harm. Each was read before an fstat that found the file unchanged. */
    if (now > uatomic_read(&e->checked_ns))
        uatomic_set(&e->checked_ns, now);
    if (e->wd >= 0)
        uatomic_set(&e->seen_epoch, epoch);
    return false;
}

struct sl_cache_entry *sl_cache_get(struct sl_cache *c, const char *path)
{
    return sl_cache_get_after(c, path, 0);
}

struct sl_cache_entry *sl_cache_get_after(struct sl_cache *c, const char *path,
                                          uint64_t read_ns)
{
    struct sl_tstats *ts = sl_tstats_self();
    unsigned long hash = hash_path(path);
    struct entry *e = NULL;
    struct cds_lfht_iter iter;
    rcu_read_lock();
    cds_lfht_lookup(c->ht, hash, match, path, &iter);
    struct cds_lfht_node *n = cds_lfht_iter_get_node(&iter);
    if (n != NULL) {
        struct entry *found = caa_container_of(n, struct entry, node);
        /* The read lock keeps FOUND's memory alive for this attempt; the
           cmpxchg inside is a full barrier, ordering our later reads of the
           entry after we own a reference. */
        SL_TSAN_ACQUIRE(found); /* found in the table: pairs with its publication */
        if (urcu_ref_get_unless_zero(&found->ref))
            e = found;
    }
    rcu_read_unlock();
    if (e == NULL) {
        SL_COUNTER_ADD(&ts->ev.cache_misses, 1);
        return &load(c, path, hash, sl_now_ns(), ts)->pub;
    }
    SL_COUNTER_ADD(&ts->ev.cache_hits, 1);
    touch(e);
    /* Within the validity period too: a file written in place would pair the
       old header with new bytes. No CAS here: every thread that sees the
       change must stop using E, and racing checkers converge on one entry. */
    uint64_t now = sl_now_ns();
    if (e->pub.fd >= 0 && hit_changed(c, e, read_ns, now))
        return &revalidate(c, e, now, CHANGED, ts)->pub;
    /* One comparison for every other entry (UINT64_MAX). The thread whose
       CAS clears the stamp builds the entry with the body; the others send
       from the fd once more. */
    uint64_t promote = uatomic_read(&e->promote_at);
    if (now >= promote && uatomic_cmpxchg(&e->promote_at, promote, UINT64_MAX) == promote)
        return &revalidate(c, e, now, SETTLED, ts)->pub;
    /* Relaxed is enough: a stale value at worst costs one extra check, and
       the CAS below decides who checks. */
    uint64_t seen = uatomic_read(&e->validated_ns);
    uint64_t ttl =
        e->pub.err ? uatomic_read(&c->negative_ns) : uatomic_read(&c->validity_ns);
    /* A "negative age" means a stamp from a clock read a moment after ours
       on another CPU: fresh. */
    uint64_t age = now - seen;
    if ((int64_t)age < 0 || age < ttl)
        return &e->pub;
    /* Stale. The thread whose CAS moves validated_ns forward checks the file;
       the others go on with the entry they hold for this round. */
    if (uatomic_cmpxchg(&e->validated_ns, seen, now) != seen)
        return &e->pub;
    return &revalidate(c, e, now, STALE, ts)->pub;
}

/* cachestat(2): Linux 6.5 and later; the number is the same on every
 * architecture. Older headers lack it. */
#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif
struct cachestat_range {
    uint64_t off, len;
};
struct cachestat_result {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};
static int cachestat_missing; /* atomic flag: the kernel said ENOSYS (or a
                                 seccomp filter EPERM) once */

bool sl_cache_resident(struct sl_cache *c, struct sl_cache_entry *e, uint64_t now)
{
    if (e->body != NULL || e->fd < 0 || e->size == 0)
        return true;
    struct entry *en = caa_container_of(e, struct entry, pub);
    if (now < uatomic_read(&en->resident_until))
        return true;
    if (uatomic_read(&cachestat_missing))
        return false;
    struct cachestat_range range = {0, (uint64_t)e->size};
    struct cachestat_result cs;
    if (syscall(__NR_cachestat, e->fd, &range, &cs, 0) != 0) {
        if (errno == ENOSYS || errno == EPERM) {
            uatomic_set(&cachestat_missing, 1);
            sl_log(SL_LOG_INFO,
                   "cache: cachestat(2) unavailable (%s): files not held in "
                   "memory are always sent by the writer pool",
                   strerror(errno));
        }
        return false;
    }
    long page = sysconf(_SC_PAGESIZE);
    uint64_t pages = ((uint64_t)e->size + (uint64_t)page - 1) / (uint64_t)page;
    if (cs.nr_cache < pages)
        return false;
    uatomic_set(&en->resident_until, now + uatomic_read(&c->validity_ns));
    return true;
}

void sl_cache_release(struct sl_cache *c, struct sl_cache_entry *pub)
{
    (void)c;
    if (pub != NULL)
        put(caa_container_of(pub, struct entry, pub));
}

struct sl_cache *sl_cache_create(int root_fd, const struct sl_mime *mime,
                                 const struct sl_cache_config *cfg)
{
    struct sl_cache *c = sl_calloc(1, sizeof(*c));
    c->root_fd = root_fd;
    c->mime = mime;
    c->ht = cds_lfht_new(1024, 1024, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, NULL);
    if (c->ht == NULL) {
        sl_log(SL_LOG_CRIT, "cache: cannot create the hash table");
        abort();
    }
    c->epoch = 1; /* 0 is no entry's: never vouched for */
    pthread_mutex_init(&c->ilock, NULL);
    pthread_mutex_init(&c->wlock, NULL);
    c->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (c->ifd < 0)
        sl_log(SL_LOG_WARN, "cache: inotify_init1: %s: every hit gets an fstat",
               strerror(errno));
    sl_cache_configure(c, cfg);
    return c;
}

void sl_cache_configure(struct sl_cache *c, const struct sl_cache_config *cfg)
{
    /* Independent relaxed stores: a reader may combine an old and a new
       limit for one lookup, which is harmless. */
    uatomic_set(&c->max_entries, cfg->max_entries ? cfg->max_entries : 1);
    uatomic_set(&c->validity_ns, cfg->validity_ns);
    uatomic_set(&c->negative_ns, cfg->negative_ns);
    uatomic_set(&c->small_file_max, cfg->small_file_max);
    uatomic_set(&c->body_memory, cfg->body_memory);
}

void sl_cache_info(struct sl_cache *c, struct sl_cache_info *out)
{
    /* Relaxed snapshots; each is exact only when the cache is quiet. */
    long n = uatomic_read(&c->count);
    long f = uatomic_read(&c->open_fds);
    out->entries = n > 0 ? (size_t)n : 0;
    out->open_fds = f > 0 ? (size_t)f : 0;
    long b = uatomic_read(&c->body_bytes);
    out->body_bytes = b > 0 ? (size_t)b : 0;
    out->body_memory = uatomic_read(&c->body_memory);
}

void sl_cache_destroy(struct sl_cache *c)
{
    if (c == NULL)
        return;
    struct cds_lfht_iter iter;
    struct cds_lfht_node *n;
    rcu_read_lock();
    cds_lfht_for_each(c->ht, &iter, n)
        unlink_entry(c, caa_container_of(n, struct entry, node));
    rcu_read_unlock();
    rcu_barrier(); /* every free_rcu queued above (and before) has run */
    if (cds_lfht_destroy(c->ht, NULL) != 0)
        sl_log(SL_LOG_ERROR, "cache: hash table not empty at destroy");
    free(c->hand);
    long live = uatomic_read(&c->live);
    if (live == 0) {
        if (c->ifd >= 0)
            close(c->ifd);
        free(c->wds);
        pthread_mutex_destroy(&c->ilock);
        pthread_mutex_destroy(&c->wlock);
    }
    if (live != 0) {
        /* A caller still holds entries. Their late release needs C, so it is
           leaked rather than freed under them. */
        sl_log(SL_LOG_WARN,
               "cache: %ld entries (%ld open files) still referenced at destroy", live,
               uatomic_read(&c->open_fds));
        return;
    }
    free(c);
}
