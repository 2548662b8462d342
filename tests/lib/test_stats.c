/* test_stats.c: per-thread counters are summed across threads (also after
 * they exit), and histogram quantiles stay within the bucket error. */
#include "lib/stats.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>

Test(stats, histogram_quantiles_within_bucket_error)
{
    static struct sl_hist h;
    for (uint64_t v = 1; v <= 100000; v++)
        sl_hist_add(&h, v * 1000); /* 1 us .. 100 ms, uniform */
    cr_expect_eq(h.count, 100000);
    cr_expect_eq(h.max, 100000000);
    double qs[] = {0.5, 0.9, 0.99};
    for (int i = 0; i < 3; i++) {
        double want = qs[i] * 100000 * 1000;
        double got = (double)sl_hist_quantile(&h, qs[i]);
        cr_expect(got >= want * 0.99 && got <= want * 1.13, "q%.2f: got %.0f want %.0f",
                  qs[i], got, want);
    }
    cr_expect_eq(sl_hist_quantile(&h, 1.0), h.max);
}

Test(stats, histogram_small_and_huge_values)
{
    static struct sl_hist h;
    cr_expect_eq(sl_hist_quantile(&h, 0.5), 0, "empty histogram");
    sl_hist_add(&h, 0);
    sl_hist_add(&h, 3);
    sl_hist_add(&h, UINT64_MAX / 2);
    cr_expect_eq(sl_hist_quantile(&h, 0.0), 0);
    cr_expect_eq(sl_hist_quantile(&h, 0.5), 3);
    cr_expect_eq(sl_hist_quantile(&h, 1.0), UINT64_MAX / 2);
}

static void *count_some(void *arg)
{
    struct sl_tstats *t = sl_tstats_self();
    for (int i = 0; i < 1000; i++) {
        SL_COUNTER_ADD(&t->ev.requests, 1);
        SL_COUNTER_ADD(&t->stage[SL_STAGE_WRITER].processed, 2);
    }
    return arg;
}

Test(stats, snapshot_sums_threads_including_exited_ones)
{
    struct sl_stats_snapshot before, after;
    sl_stats_snapshot(&before);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, count_some, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    sl_stats_snapshot(&after);
    cr_expect_eq(after.ev.requests - before.ev.requests, 4000);
    cr_expect_eq(after.stage[SL_STAGE_WRITER].processed -
                     before.stage[SL_STAGE_WRITER].processed,
                 8000);
}

Test(stats, stage_names_in_pipeline_order)
{
    cr_expect_str_eq(sl_stage_name(SL_STAGE_ACCEPTOR), "acceptor");
    cr_expect_str_eq(sl_stage_name(SL_STAGE_READER), "reader");
    cr_expect_str_eq(sl_stage_name(SL_STAGE_DETECTOR), "detector");
    cr_expect_str_eq(sl_stage_name(SL_STAGE_WRITER), "writer");
    cr_expect_str_eq(sl_stage_name(SL_STAGE_LOGGER), "logger");
}

static void *self_block(void *arg)
{
    struct sl_tstats *t = sl_tstats_self();
    SL_COUNTER_ADD(&t->ev.requests, 1);
    *(uintptr_t *)arg = (uintptr_t)t;
    return NULL;
}

Test(stats, blocks_are_cache_line_aligned)
{
    cr_assert_eq(_Alignof(struct sl_tstats), SL_CACHELINE);
    cr_expect_eq((uintptr_t)sl_tstats_self() % SL_CACHELINE, 0);
    for (int i = 0; i < 16; i++) {
        pthread_t th;
        uintptr_t got = 1;
        pthread_create(&th, NULL, self_block, &got);
        pthread_join(th, NULL);
        cr_expect_eq(got % SL_CACHELINE, 0, "thread %d's block at %#lx", i,
                     (unsigned long)got);
    }
}

static void *count_and_wait(void *arg)
{
    pthread_barrier_t *b = arg;
    struct sl_tstats *t = sl_tstats_self();
    SL_COUNTER_ADD(&t->ev.requests, 3);
    SL_COUNTER_ADD(&t->stage[SL_STAGE_WRITER].processed, 1);
    sl_hist_add(&t->stage[SL_STAGE_WRITER].q_wait, 1000);
    pthread_barrier_wait(b); /* all alive at once: each has its own block */
    pthread_barrier_wait(b);
    return NULL;
}

Test(stats, exited_threads_fold_into_one_block_and_totals_stay)
{
    struct sl_stats_snapshot before, mid, after;
    sl_tstats_self(); /* this thread's block exists before counting */
    sl_stats_snapshot(&before);
    size_t base = sl_stats_blocks();
    enum { ROUNDS = 50, PER = 8 };
    for (int r = 0; r < ROUNDS; r++) {
        /* A pool resized up and down: PER threads live together, then exit. */
        pthread_t th[PER];
        pthread_barrier_t b;
        pthread_barrier_init(&b, NULL, PER + 1);
        for (int i = 0; i < PER; i++)
            pthread_create(&th[i], NULL, count_and_wait, &b);
        pthread_barrier_wait(&b);
        if (r == 0) {
            cr_expect_eq(sl_stats_blocks(), base + PER, "live threads each have a block");
            sl_stats_snapshot(&mid);
            cr_expect_eq(mid.ev.requests - before.ev.requests, 3 * PER);
        }
        pthread_barrier_wait(&b);
        for (int i = 0; i < PER; i++)
            pthread_join(th[i], NULL);
        pthread_barrier_destroy(&b);
        cr_expect_eq(sl_stats_blocks(), base, "round %d: registry grew to %zu (from %zu)", r,
                     sl_stats_blocks(), base);
    }
    sl_stats_snapshot(&after);
    cr_expect_eq(after.ev.requests - before.ev.requests, 3 * PER * ROUNDS);
    cr_expect_eq(after.stage[SL_STAGE_WRITER].processed -
                     before.stage[SL_STAGE_WRITER].processed,
                 PER * ROUNDS);
    cr_expect_eq(after.stage[SL_STAGE_WRITER].q_wait.count -
                     before.stage[SL_STAGE_WRITER].q_wait.count,
                 PER * ROUNDS);
}
