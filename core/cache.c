/* cache.c: the shared fd/header cache; see cache.h.
 *
 * Concurrency contract
 *   - Lookups run under rcu_read_lock(); an entry found is pinned with
 *     urcu_ref_get_unless_zero(), which fails once its count reached zero.
 *   - The table holds one reference per entry it contains. Whoever removes an
 *     entry from the table (cds_lfht_del or cds_lfht_replace returning
 *     success: exactly one thread wins) drops that reference.
 *   - The last reference closes the fd at once (nobody can take a new one)
 *     and frees the memory after a grace period (call_rcu), because readers
 *     may still be looking at it inside their read-side critical section.
 *   - Entries are immutable once published, except validated_ns (atomic) and
 *     accessed (a hint for eviction, racy by design).
 *   - One thread at a time revalidates a stale entry (CAS on validated_ns)
 *     and one thread at a time evicts (atomic flag).
 */
#include "core/cache.h"
#include "core/http.h"
#include "core/log.h"
#include "core/stats.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <urcu.h>
#include <urcu/rculfhash.h>
#include <urcu/ref.h>

struct entry {
    struct sl_cache_entry pub;
    struct cds_lfht_node node;
    struct urcu_ref ref;
    struct rcu_head rcu;
    struct sl_cache *cache;
    uint64_t validated_ns; /* atomic: when the file was last checked */
    uint8_t accessed;      /* CLOCK bit: used since the evictor last passed */
    dev_t dev;
    ino_t ino;
    unsigned long hash;
    char hdr[320];
    char key[];
};

struct sl_cache {
    struct cds_lfht *ht;
    int root_fd;
    const struct sl_mime *mime;
    size_t max_entries;   /* atomic */
    uint64_t validity_ns; /* atomic */
    uint64_t negative_ns; /* atomic */
    long count;           /* atomic: entries in the table */
    long open_fds;        /* atomic: fds held by live entries */
    int evicting;         /* atomic flag */
};

static unsigned long hash_path(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return (unsigned long)(h ^ (h >> 32));
}

static int match(struct cds_lfht_node *node, const void *key)
{
    const struct entry *e = caa_container_of(node, struct entry, node);
    return strcmp(e->key, key) == 0;
}

static void free_rcu(struct rcu_head *head)
{
    struct entry *e = caa_container_of(head, struct entry, rcu);
    free(e);
}

static void release(struct urcu_ref *ref)
{
    struct entry *e = caa_container_of(ref, struct entry, ref);
    if (e->pub.fd >= 0) {
        close(e->pub.fd);
        uatomic_dec(&e->cache->open_fds);
    }
    call_rcu(&e->rcu, free_rcu);
}

static void put(struct entry *e)
{
    urcu_ref_put(&e->ref, release);
}

/* Opens PATH beneath the root and builds an unpublished entry for it (a file,
 * a directory, or the errno of the failure). Holds REFS references. */
static struct entry *build(struct sl_cache *c, const char *path, unsigned long hash, long refs,
                           uint64_t now)
{
    size_t klen = strlen(path);
    struct entry *e = sl_calloc(1, sizeof(*e) + klen + 1);
    memcpy(e->key, path, klen + 1);
    e->hash = hash;
    e->cache = c;
    e->pub.fd = -1;
    e->validated_ns = now;
    urcu_ref_set(&e->ref, refs);
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    int fd = (int)syscall(SYS_openat2, c->root_fd, path[0] ? path : ".", &how, sizeof(how));
    if (fd < 0) {
        e->pub.err = errno;
        return e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        e->pub.err = errno;
        close(fd);
        return e;
    }
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    e->pub.size = st.st_size;
    e->pub.mtime = st.st_mtim;
    if (S_ISDIR(st.st_mode)) {
        e->pub.is_dir = true;
        close(fd);
        return e;
    }
    if (!S_ISREG(st.st_mode)) { /* FIFOs, devices, sockets: never served */
        e->pub.err = EACCES;
        close(fd);
        return e;
    }
    e->pub.fd = fd;
    uatomic_inc(&c->open_fds);
    sl_http_format_date(st.st_mtim.tv_sec, e->pub.last_modified);
    snprintf(e->pub.etag, sizeof(e->pub.etag), "\"%llx-%llx\"",
             (unsigned long long)st.st_mtim.tv_sec, (unsigned long long)st.st_size);
    e->pub.content_type = sl_mime_type(c->mime, path);
    int n = snprintf(e->hdr, sizeof(e->hdr),
                     "Content-Type: %s\r\nContent-Length: %lld\r\nLast-Modified: %s\r\n"
                     "ETag: %s\r\n",
                     e->pub.content_type, (long long)st.st_size, e->pub.last_modified,
                     e->pub.etag);
    if (n < 0 || (size_t)n >= sizeof(e->hdr)) { /* an absurdly long Content-Type */
        n = snprintf(e->hdr, sizeof(e->hdr),
                     "Content-Type: application/octet-stream\r\nContent-Length: %lld\r\n"
                     "Last-Modified: %s\r\nETag: %s\r\n",
                     (long long)st.st_size, e->pub.last_modified, e->pub.etag);
    }
    e->pub.hdr = e->hdr;
    e->pub.hdr_len = (size_t)n;
    return e;
}

/* Frees an entry that was never published. */
static void discard(struct sl_cache *c, struct entry *e)
{
    if (e->pub.fd >= 0) {
        close(e->pub.fd);
        uatomic_dec(&c->open_fds);
    }
    free(e);
}

static bool same_file(const struct entry *a, const struct entry *b)
{
    if (a->pub.err || b->pub.err)
        return a->pub.err == b->pub.err;
    return a->pub.is_dir == b->pub.is_dir && a->dev == b->dev && a->ino == b->ino &&
           a->pub.size == b->pub.size && a->pub.mtime.tv_sec == b->pub.mtime.tv_sec &&
           a->pub.mtime.tv_nsec == b->pub.mtime.tv_nsec;
}

/* Second-chance eviction until the table is back under 90% of its bound. */
static void evict(struct sl_cache *c, struct sl_tstats *st)
{
    if (uatomic_xchg(&c->evicting, 1) != 0)
        return; /* another thread is at it */
    size_t max = uatomic_read(&c->max_entries);
    long target = (long)(max - max / 10);
    struct cds_lfht_iter iter;
    struct cds_lfht_node *n;
    rcu_read_lock();
    for (int pass = 0; pass < 3 && uatomic_read(&c->count) > target; pass++) {
        /* cds_lfht_for_each, not _for_each_entry: the latter forms a pointer
           from NULL at the end of the table, which UBSan rightly rejects. */
        cds_lfht_for_each(c->ht, &iter, n)
        {
            struct entry *e = caa_container_of(n, struct entry, node);
            if (uatomic_read(&c->count) <= target)
                break;
            if (e->accessed) {
                e->accessed = 0;
                continue;
            }
            if (cds_lfht_del(c->ht, &e->node) == 0) {
                uatomic_dec(&c->count);
                SL_COUNTER_ADD(&st->ev.cache_evictions, 1);
                put(e); /* the table's reference; call_rcu is allowed in here */
            }
        }
    }
    rcu_read_unlock();
    uatomic_set(&c->evicting, 0);
}

/* Publishes FRESH (2 references: table + caller). If another entry for the
 * path got there first, returns that one (referenced) and frees FRESH. */
static struct entry *insert(struct sl_cache *c, struct entry *fresh, struct sl_tstats *st)
{
    rcu_read_lock();
    struct cds_lfht_node *n = cds_lfht_add_unique(c->ht, fresh->hash, match, fresh->key,
                                                  &fresh->node);
    if (n != &fresh->node) {
        struct entry *other = caa_container_of(n, struct entry, node);
        bool got = urcu_ref_get_unless_zero(&other->ref);
        rcu_read_unlock();
        if (got) {
            discard(c, fresh);
            return other;
        }
        /* The other one is dying: serve ours without publishing it. */
        urcu_ref_set(&fresh->ref, 1);
        return fresh;
    }
    rcu_read_unlock();
    if ((size_t)uatomic_add_return(&c->count, 1) > uatomic_read(&c->max_entries))
        evict(c, st);
    return fresh;
}

/* Checks a stale entry E (referenced by the caller) against the file system.
 * Returns E, or a new referenced entry that replaced it (E's reference is
 * then dropped). */
static struct entry *revalidate(struct sl_cache *c, struct entry *e, uint64_t now,
                                struct sl_tstats *st)
{
    SL_COUNTER_ADD(&st->ev.cache_revalidations, 1);
    struct entry *fresh = build(c, e->key, e->hash, 2, now);
    if (same_file(e, fresh)) {
        discard(c, fresh);
        return e;
    }
    struct cds_lfht_iter iter;
    rcu_read_lock();
    cds_lfht_lookup(c->ht, e->hash, match, e->key, &iter);
    struct cds_lfht_node *cur = cds_lfht_iter_get_node(&iter);
    int rc = -ENOENT;
    if (cur == &e->node)
        rc = cds_lfht_replace(c->ht, &iter, e->hash, match, e->key, &fresh->node);
    rcu_read_unlock();
    if (rc == 0) {
        put(e); /* the table's reference to the old entry: we removed it */
        put(e); /* the caller's */
        return fresh;
    }
    /* E left the table meanwhile (evicted or replaced): publish ours if we
       can, else hand out what is there now. */
    put(e);
    return insert(c, fresh, st);
}

struct sl_cache_entry *sl_cache_get(struct sl_cache *c, const char *path)
{
    struct sl_tstats *st = sl_tstats_self();
    unsigned long hash = hash_path(path);
    struct cds_lfht_iter iter;
    struct entry *e = NULL;
    rcu_read_lock();
    cds_lfht_lookup(c->ht, hash, match, path, &iter);
    struct cds_lfht_node *n = cds_lfht_iter_get_node(&iter);
    if (n) {
        struct entry *found = caa_container_of(n, struct entry, node);
        if (urcu_ref_get_unless_zero(&found->ref))
            e = found;
    }
    rcu_read_unlock();
    uint64_t now = sl_now_ns();
    if (e == NULL) {
        SL_COUNTER_ADD(&st->ev.cache_misses, 1);
        return &insert(c, build(c, path, hash, 2, now), st)->pub;
    }
    SL_COUNTER_ADD(&st->ev.cache_hits, 1);
    if (!e->accessed)
        e->accessed = 1; /* written only when clear: no line bouncing on hot entries */
    uint64_t validity = e->pub.err ? uatomic_read(&c->negative_ns) : uatomic_read(&c->validity_ns);
    uint64_t seen = uatomic_read(&e->validated_ns);
    if (now - seen < validity)
        return &e->pub;
    /* Stale: the thread that moves validated_ns forward checks the file; the
       others go on with the entry they have for this round. */
    if (uatomic_cmpxchg(&e->validated_ns, seen, now) != seen)
        return &e->pub;
    return &revalidate(c, e, now, st)->pub;
}

void sl_cache_release(struct sl_cache *c, struct sl_cache_entry *pub)
{
    (void)c;
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
    sl_cache_configure(c, cfg);
    return c;
}

void sl_cache_configure(struct sl_cache *c, const struct sl_cache_config *cfg)
{
    uatomic_set(&c->max_entries, cfg->max_entries ? cfg->max_entries : 1);
    uatomic_set(&c->validity_ns, cfg->validity_ns);
    uatomic_set(&c->negative_ns, cfg->negative_ns);
}

void sl_cache_info(struct sl_cache *c, struct sl_cache_info *out)
{
    out->entries = (size_t)uatomic_read(&c->count);
    out->open_fds = (size_t)uatomic_read(&c->open_fds);
}

void sl_cache_destroy(struct sl_cache *c)
{
    if (c == NULL)
        return;
    struct cds_lfht_iter iter;
    struct cds_lfht_node *n;
    rcu_read_lock();
    cds_lfht_for_each(c->ht, &iter, n)
    {
        struct entry *e = caa_container_of(n, struct entry, node);
        if (cds_lfht_del(c->ht, &e->node) == 0) {
            uatomic_dec(&c->count);
            put(e);
        }
    }
    rcu_read_unlock();
    rcu_barrier(); /* every free_rcu has run: nothing refers to C any more */
    if (uatomic_read(&c->open_fds) != 0)
        sl_log(SL_LOG_WARN, "cache: %ld files still referenced at exit",
               uatomic_read(&c->open_fds));
    cds_lfht_destroy(c->ht, NULL);
    free(c);
}
