/* common.c: the allocation policy and small helpers declared in common.h. */
#include "lib/common.h"
#include "lib/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    sl_log(SL_LOG_CRIT, "out of memory allocating %zu bytes", n);
    abort();
}

void *sl_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (SL_UNLIKELY(p == NULL))
        oom(n);
    return p;
}

void *sl_calloc(size_t nmemb, size_t n)
{
    void *p = calloc(nmemb ? nmemb : 1, n ? n : 1);
    if (SL_UNLIKELY(p == NULL))
        oom(nmemb * n);
    return p;
}

void *sl_realloc(void *old, size_t n)
{
    void *p = realloc(old, n ? n : 1);
    if (SL_UNLIKELY(p == NULL))
        oom(n);
    return p;
}

void *sl_aligned_calloc(size_t align, size_t n)
{
    void *p = NULL;
    /* posix_memalign, not aligned_alloc: C11 wants N to be a multiple of
       ALIGN there, and a struct's size need not be. */
    if (SL_UNLIKELY(posix_memalign(&p, align, n ? n : 1) != 0))
        oom(n);
    memset(p, 0, n);
    return p;
}

size_t sl_array_bytes(size_t nmemb, size_t size)
{
    size_t n;
    if (SL_UNLIKELY(__builtin_mul_overflow(nmemb, size, &n)))
        oom(SIZE_MAX);
    return n;
}

char *sl_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = sl_malloc(n);
    memcpy(p, s, n);
    return p;
}

void sl_set_thread_name(const char *fmt, ...)
{
    char name[16];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof(name), fmt, ap);
    va_end(ap);
    pthread_setname_np(pthread_self(), name);
}
