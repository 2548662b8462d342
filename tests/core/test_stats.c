/* test_stats.c: per-thread counters are summed across threads (also after
 * they exit), and histogram quantiles stay within the bucket error. */
#include "core/stats.h"

#include <criterion/criterion.h>
#include <pthread.h>

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
