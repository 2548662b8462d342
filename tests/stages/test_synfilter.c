/* test_synfilter.c: the size of the SYN filter's table (stages/synfilter.c). */
#include "stages/synfilter.h"

#include <criterion/criterion.h>

#define MIB (1024ull * 1024)

static bool pow2(uint32_t n)
{
    return n != 0 && (n & (n - 1)) == 0;
}

Test(synfilter, the_most_when_the_memory_is_unknown_or_plenty)
{
    cr_assert_eq(sl_synfilter_buckets(0), SL_SYN_BUCKETS_MAX);
    cr_assert_eq(sl_synfilter_buckets(24 * 1024 * MIB), SL_SYN_BUCKETS_MAX);
    /* 2 MiB is 1/64 of 128 MiB: the most from there up */
    cr_assert_eq(sl_synfilter_buckets(128 * MIB), SL_SYN_BUCKETS_MAX);
    cr_assert_eq((uint64_t)SL_SYN_BUCKETS_MAX * SL_SYN_BUCKET_BYTES, 2 * MIB);
}

Test(synfilter, a_sixty_fourth_of_a_smaller_budget)
{
    cr_assert_eq(sl_synfilter_buckets(128 * MIB - 1), SL_SYN_BUCKETS_MAX / 2);
    cr_assert_eq(sl_synfilter_buckets(64 * MIB), 32768);
    /* the lab's disk preset: 512 KiB */
    cr_assert_eq(sl_synfilter_buckets(32 * MIB), 16384);
    cr_assert_eq(sl_synfilter_buckets(32 * MIB) * SL_SYN_BUCKET_BYTES, 512 * 1024);
    cr_assert_eq(sl_synfilter_buckets(20 * MIB), 8192);
}

Test(synfilter, never_below_the_least_and_always_a_power_of_two)
{
    cr_assert_eq(sl_synfilter_buckets(1), SL_SYN_BUCKETS_MIN);
    cr_assert_eq(sl_synfilter_buckets(8 * MIB), SL_SYN_BUCKETS_MIN);
    for (uint64_t m = 1; m < 1024 * MIB; m = m * 3 + 7) {
        uint32_t n = sl_synfilter_buckets(m);
        cr_assert(pow2(n), "%u for %llu", n, (unsigned long long)m);
        cr_assert(n >= SL_SYN_BUCKETS_MIN && n <= SL_SYN_BUCKETS_MAX);
        cr_assert(n == SL_SYN_BUCKETS_MIN ||
                      (uint64_t)n * SL_SYN_BUCKET_BYTES <= m / SL_SYN_MEMORY_SHARE,
                  "%u buckets exceed the share of %llu", n, (unsigned long long)m);
        /* and no smaller than it needs to be */
        cr_assert(n == SL_SYN_BUCKETS_MAX ||
                      (uint64_t)n * 2 * SL_SYN_BUCKET_BYTES > m / SL_SYN_MEMORY_SHARE,
                  "%u buckets for %llu: twice as many fit", n, (unsigned long long)m);
    }
}
