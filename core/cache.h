/* cache.h: the shared fd/header cache. One RCU hash table (cds_lfht) keyed by
 * root-relative path holds, per path, an open fd, its stat data and the
 * prebuilt entity header lines; failed lookups are cached too. Entries are
 * reference counted, so an fd is never closed while a writer sends from it. */
#ifndef SLUICE_CACHE_H
#define SLUICE_CACHE_H

#include "core/mime.h"
#include "lib/common.h"

#include <sys/types.h>
#include <time.h>

struct sl_cache;

/* A cached lookup result. The fields below are immutable after the entry is
 * published; a changed file gets a new entry, never an edited one. */
struct sl_cache_entry {
    int fd;        /* O_RDONLY fd of a regular file, or -1 */
    int err;       /* 0 for a file or directory; else the errno of the failed
                      open (ENOENT, EACCES, EXDEV for a symlink leaving the
                      root, ELOOP, ENOTDIR, ...) */
    bool is_dir;   /* the path is a directory (fd == -1, err == 0) */
    off_t size;
    struct timespec mtime;
    /* The rest is set for regular files only ("", NULL, 0 otherwise). */
    char last_modified[32]; /* IMF-fixdate of mtime */
    char etag[48];          /* strong ETag, quoted: "<mtime seconds hex>-<size hex>" */
    /* "Content-Type: ...\r\nContent-Length: N\r\nLast-Modified: ...\r\n"
       "ETag: ...\r\n" built once; hdr_len bytes (NUL-terminated as well). */
    const char *hdr;
    size_t hdr_len;
    const char *content_type; /* from the MIME table; lives as long as it */
    /* The whole file, read when the entry was built, if it is no larger than
       small_file_max and body_memory / SL_CACHE_BODY_SHARE and had settled
       (see SL_CACHE_SETTLE_NS) while the bodies held stayed within
       body_memory (else NULL):
       sent from memory together with the response head in one write. The
       bytes are those of the version the header describes (checked with a
       second fstat after reading). */
    const char *body;
};

/* How long a file must have been left alone (the later of its mtime and
 * ctime, against CLOCK_REALTIME) before its bytes are copied into an entry.
 * The kernel stamps a write's mtime and ctime before it copies the bytes in,
 * so a copy read while a write is under way can mix the versions, or hold the
 * old bytes under the new stamp, and no fstat can tell: that copy would be
 * served until the file changes again. A file changed more recently gets an
 * entry without a body (sent from its fd, like a large file); the first hit
 * after it has settled builds one with the body. One second covers the time
 * from a write's stamp to the end of its copy (a page fault on the writer's
 * buffer, a preempted writer) and the kernel's coarse clock tick (a few ms);
 * a whole-second stamp (a filesystem with 1 s or 2 s timestamps) counts as up
 * to 2 s later. A stamp in the future (clock skew, touch -d) is asked about
 * again every SL_CACHE_SETTLE_NS: such a file is not held in memory before
 * that time comes. */
#define SL_CACHE_SETTLE_NS 1000000000ull

/* How far inserts may pass max_entries while a sweep is catching up; past
 * it, lookups are served with an entry that is not cached. */
#define SL_CACHE_SLACK(max) ((max) / 4 + 8)

struct sl_cache_config {
    size_t max_entries;     /* bound on entries (positive and negative); see
                               SL_CACHE_SLACK */
    uint64_t validity_ns;   /* an entry older than this is revalidated */
    uint64_t negative_ns;   /* how long a failed lookup is remembered */
    size_t small_file_max;  /* files up to this size are kept in memory; 0: none */
    size_t body_memory;     /* ... while the bodies held come to no more than
                               this many bytes; past it a new entry gets none
                               (its file is sent from the fd). A body is also
                               at most body_memory / SL_CACHE_BODY_SHARE */
};

/* The budget holds at least this many of the largest bodies it admits, so a
 * few large files do not crowd out the many small, popular ones: under the
 * lab's disk preset (a 32 MiB memory cgroup, body_memory 8 MiB) bodies up
 * to 128 KiB first come cut its knee from 15,362-15,519 to 12,930-13,260
 * replies/s, the page cache and the small files' bodies squeezed; at 1/512
 * of 8 MiB a body is at most 16 KiB there, as before. */
#define SL_CACHE_BODY_SHARE 512

/* Creates a cache over the directory ROOT_FD (not closed by the cache, and
 * must outlive it). MIME must outlive it too. Never returns NULL. */
struct sl_cache *sl_cache_create(int root_fd, const struct sl_mime *mime,
                                 const struct sl_cache_config *cfg);

/* Changes the limits live (config reload). Any thread. Cannot fail. */
void sl_cache_configure(struct sl_cache *c, const struct sl_cache_config *cfg);

/* Returns a referenced entry for PATH (root-relative, as made by
 * sl_http_normalize_path, "" for the root itself); never NULL. Opens the file
 * on a miss with openat2(RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS), so symlinks
 * are followed only while they stay inside the root. An entry older than the
 * validity period is revalidated first (a replaced, changed or deleted file
 * gives a new entry); a regular file's entry is also checked with one fstat
 * of its fd on every hit, so a file written in place, deleted or renamed over
 * gets a new entry at once, never a header that no longer matches. A small
 * file changed within SL_CACHE_SETTLE_NS gets an entry without a body, replaced
 * on the first hit after it settled. Failures that say nothing about the file (EMFILE,
 * ENFILE, ENOMEM) come back in an entry that is not cached. Counts hits
 * (found in the table) or misses (opened), revalidations and evictions in the
 * caller's per-thread counters. The caller must be a registered RCU reader
 * thread and must not hold rcu_read_lock. Release with sl_cache_release(). */
struct sl_cache_entry *sl_cache_get(struct sl_cache *c, const char *path);

/* Catches up with what the kernel reported of changes to the cached files
 * (inotify) and returns sl_now_ns() read after that: the READ_NS for
 * sl_cache_get_after of every request whose bytes were all read before this
 * call. One read(2) of the inotify fd, under a lock. Any RCU thread. */
uint64_t sl_cache_sync(struct sl_cache *c);

/* sl_cache_get for a request whose bytes had all been read before the
 * sl_cache_sync that returned READ_NS (0: not known). The per-hit fstat is
 * left out when the file's watch reported nothing since its last fstat found
 * it unchanged, or when a check of the entry, by any thread, began after
 * READ_NS and found the file unchanged: a change made before the request
 * arrived is still always seen, so a reader that reads a batch of requests
 * first, syncs, and then answers them, checks a file only after it changed.
 * Same contract as sl_cache_get otherwise. */
struct sl_cache_entry *sl_cache_get_after(struct sl_cache *c, const char *path,
                                          uint64_t read_ns);

/* Can E's file data be sent without waiting for the disk? True for a body
 * held in memory (and for no file at all). Otherwise asks the kernel whether
 * every page of the file is in the page cache (cachestat(2), Linux 6.5);
 * a yes is remembered for the validity period, a no is asked again next
 * time. False where the kernel cannot tell. NOW is sl_now_ns(). Any thread. */
bool sl_cache_resident(struct sl_cache *c, struct sl_cache_entry *e, uint64_t now);

/* Drops a reference taken by sl_cache_get(). The last reference of an entry
 * that left the table closes its fd and frees it after a grace period. Any
 * registered RCU thread. Cannot fail. */
void sl_cache_release(struct sl_cache *c, struct sl_cache_entry *e);

/* Figures for the status socket. Any thread. */
struct sl_cache_info {
    size_t entries;
    size_t open_fds;
    size_t body_bytes;  /* file bodies held in memory */
    size_t body_memory; /* their bound */
};
void sl_cache_info(struct sl_cache *c, struct sl_cache_info *out);

/* Removes every entry and frees the cache. No other thread may use it any
 * more; the caller must be a registered RCU thread outside a read-side
 * critical section. References still held are logged (and the cache's
 * bookkeeping is leaked so that their late release stays safe). */
void sl_cache_destroy(struct sl_cache *c);

#endif
