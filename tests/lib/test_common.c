/* test_common.c: the allocation wrappers honour the alignment a type
 * declares (cache-line aligned queues and per-thread counters). */
#include "lib/common.h"
#include "queue/queue.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>

Test(common, new_array_honours_declared_alignment)
{
    cr_assert_eq(_Alignof(struct sl_queue), SL_CACHELINE, "the queue declares 64");
    /* Many allocations of sizes that glibc's malloc places at 16-byte
       steps: calloc would misalign most of them. */
    void *keep[64];
    for (size_t i = 0; i < 64; i++) {
        struct sl_queue *q = SL_NEW_ARRAY(struct sl_queue, i % 7 + 1);
        cr_expect_eq((uintptr_t)q % SL_CACHELINE, 0, "queue array %zu at %p", i, (void *)q);
        for (size_t j = 0; j < i % 7 + 1; j++)
            cr_expect_eq((uintptr_t)&q[j].head % SL_CACHELINE, 0);
        cr_expect_eq(q[i % 7].depth, 0, "zeroed");
        keep[i] = q;
    }
    for (size_t i = 0; i < 64; i++)
        free(keep[i]);
}

Test(common, aligned_calloc_zeroes_and_aligns)
{
    for (size_t n = 1; n < 300; n += 37) {
        unsigned char *p = sl_aligned_calloc(128, n);
        cr_expect_eq((uintptr_t)p % 128, 0);
        for (size_t i = 0; i < n; i++)
            cr_expect_eq(p[i], 0);
        free(p);
    }
}
