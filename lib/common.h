/* common.h: return codes, allocation policy, time and small helpers shared by
 * every module of sluice. Nothing here allocates except the x*alloc wrappers. */
#ifndef SLUICE_COMMON_H
#define SLUICE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* One small set of return codes, compared explicitly everywhere. */
enum sl_rc {
    SL_OK = 0,     /* done what was asked */
    SL_ERR = -1,   /* failed; errno or a message says why */
    SL_AGAIN = -2, /* would block: flow control, not failure */
    SL_DONE = -3,  /* nothing more to do (end of stream, queue drained) */
};

#define SL_LIKELY(x) __builtin_expect(!!(x), 1)
#define SL_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SL_MAX(a, b) ((a) > (b) ? (a) : (b))
#define SL_CACHELINE 64

/* Out-of-memory policy, decided once: sluice cannot serve without memory for
 * its bookkeeping, so these log and abort() instead of returning NULL. Every
 * allocation in the daemon goes through them. */
void *sl_malloc(size_t n);
void *sl_calloc(size_t nmemb, size_t n);
void *sl_realloc(void *p, size_t n);
char *sl_strdup(const char *s);
/* Zeroed memory for N bytes aligned to ALIGN (a power of two, at least
 * sizeof(void *)): for types declared over-aligned (per-thread counters and
 * queues are cache-line aligned), which malloc/calloc do not honour past 16
 * bytes. Freed with free(). Same OOM policy. */
void *sl_aligned_calloc(size_t align, size_t n);
/* The alignment a type asks for, for sl_aligned_calloc(). */
#define SL_ALLOC_ALIGN(type) (_Alignof(type) > sizeof(void *) ? _Alignof(type) : sizeof(void *))
/* A zeroed array of NMEMB objects of TYPE, aligned as TYPE declares. */
#define SL_NEW_ARRAY(type, nmemb) \
    ((type *)sl_aligned_calloc(SL_ALLOC_ALIGN(type), sl_array_bytes((nmemb), sizeof(type))))
/* NMEMB * SIZE, aborting on overflow (same policy as out of memory). */
size_t sl_array_bytes(size_t nmemb, size_t size);

/* CLOCK_MONOTONIC in nanoseconds (vDSO, no syscall). Cannot fail. */
static inline uint64_t sl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Per-thread CPU time in nanoseconds. Cannot fail. */
static inline uint64_t sl_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Relaxed single-writer counters: the owning thread adds, any thread may read
 * a value that is never torn. No lock prefix on the hot path. */
#define SL_COUNTER_ADD(p, v)                                                        \
    __atomic_store_n((p), __atomic_load_n((p), __ATOMIC_RELAXED) + (v),            \
                     __ATOMIC_RELAXED)
#define SL_COUNTER_GET(p) __atomic_load_n((p), __ATOMIC_RELAXED)

/* Happens-before edges for ThreadSanitizer (make tsan) where the ordering
 * comes from liburcu code TSan does not see (uninstrumented, inline asm
 * atomics): a queue hand-off, a reference count's last put, call_rcu. The
 * releasing thread marks P before the hand-off, the receiving one after it.
 * Nothing in other builds. */
#if defined(SLUICE_TSAN)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define SL_TSAN_RELEASE(p) __tsan_release((void *)(p))
#define SL_TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#else
#define SL_TSAN_RELEASE(p) ((void)(p))
#define SL_TSAN_ACQUIRE(p) ((void)(p))
#endif

/* Names the calling thread (truncated to 15 bytes) for top -H and /proc. */
void sl_set_thread_name(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
