/* stress_stats.c: a plain program (no test framework, so it also runs under
 * ThreadSanitizer, where Criterion cannot start): threads count, read the
 * totals and exit while others take snapshots, as a resized writer pool and
 * the status thread do. Exits 0 when every count is kept and the registry is
 * back to its size; TSan fails it on any race. */
#include "lib/stats.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

enum { ROUNDS = 30, PER = 6, ADDS = 500 };

static int stop;

static void *count(void *arg)
{
    struct sl_tstats *t = sl_tstats_self();
    for (int i = 0; i < ADDS; i++) {
        SL_COUNTER_ADD(&t->ev.requests, 1);
        sl_hist_add(&t->stage[SL_STAGE_WRITER].q_wait, (uint64_t)i);
    }
    return arg;
}

static void *snapshots(void *arg)
{
    struct sl_stats_snapshot s;
    uint64_t last = 0;
    while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
        sl_stats_snapshot(&s);
        if (s.ev.requests < last) {
            fprintf(stderr, "stress_stats: total went back from %llu to %llu\n",
                    (unsigned long long)last, (unsigned long long)s.ev.requests);
            exit(1);
        }
        last = s.ev.requests;
        (void)sl_stats_blocks();
    }
    return arg;
}

int main(void)
{
    size_t base = sl_stats_blocks();
    pthread_t reader;
    pthread_create(&reader, NULL, snapshots, NULL);
    for (int r = 0; r < ROUNDS; r++) {
        pthread_t th[PER];
        for (int i = 0; i < PER; i++)
            pthread_create(&th[i], NULL, count, NULL);
        for (int i = 0; i < PER; i++)
            pthread_join(th[i], NULL);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    pthread_join(reader, NULL);
    struct sl_stats_snapshot s;
    sl_stats_snapshot(&s);
    uint64_t want = (uint64_t)ROUNDS * PER * ADDS;
    /* The snapshot thread exited too: its (empty) block is retired as well. */
    if (s.ev.requests != want || s.stage[SL_STAGE_WRITER].q_wait.count != want ||
        sl_stats_blocks() != base) {
        fprintf(stderr, "stress_stats: requests %llu (want %llu), hist %llu, blocks %zu (was %zu)\n",
                (unsigned long long)s.ev.requests, (unsigned long long)want,
                (unsigned long long)s.stage[SL_STAGE_WRITER].q_wait.count, sl_stats_blocks(),
                base);
        return 1;
    }
    printf("stress_stats: ok (%d threads, %zu blocks)\n", ROUNDS * PER + 1, base);
    return 0;
}
