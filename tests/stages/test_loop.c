/* test_loop.c: the event loop shared by the reader and the detector
 * (stages/loop.c): the sleep computation and sweep clock as pure functions,
 * in particular after a round that overran its sweep, the deadline-ordered
 * timeout lists, and sl_loop_wait() on a real epoll set and eventfd queue. */
#include "stages/loop.h"

#include <criterion/criterion.h>

#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <urcu.h>

#define MS 1000000ull
#define SEC 1000000000ull

/* --------------------------------------------------------------- timeout */

Test(loop, timeout_until_a_future_sweep_rounds_up)
{
    uint64_t now = 5 * SEC;
    cr_assert_eq(sl_loop_timeout_ms(now, now + 100 * MS), 100);
    cr_assert_eq(sl_loop_timeout_ms(now, now + 100 * MS + 1), 101);
    cr_assert_eq(sl_loop_timeout_ms(now, now + 1), 1, "never 0 before the sweep is due");
    cr_assert_eq(sl_loop_timeout_ms(now, now + 999999), 1);
    cr_assert_eq(sl_loop_timeout_ms(now, now + MS), 1);
}

Test(loop, timeout_is_zero_once_the_sweep_is_due)
{
    uint64_t due = 7 * SEC;
    cr_assert_eq(sl_loop_timeout_ms(due, due), 0);
    /* A round that ran past the sweep, by a little or by a lot: no sleep at
       all. The old expression, (int)((due - now) / 1000000) + 1 in unsigned
       arithmetic, gave a negative value here (epoll_wait: no timeout). */
    uint64_t late[] = {1, MS - 1, MS, 150 * MS, 2 * SEC, 3600 * SEC, due - 1};
    for (size_t i = 0; i < sizeof(late) / sizeof(late[0]); i++) {
        int t = sl_loop_timeout_ms(due + late[i], due);
        cr_assert_eq(t, 0, "%llu ns late: timeout %d", (unsigned long long)late[i], t);
    }
    cr_assert_eq(sl_loop_timeout_ms(UINT64_MAX, 0), 0);
}

Test(loop, timeout_far_in_the_future_is_capped)
{
    cr_assert_eq(sl_loop_timeout_ms(0, UINT64_MAX), INT_MAX);
    cr_assert_eq(sl_loop_timeout_ms(SEC, SEC + (uint64_t)INT_MAX * MS), INT_MAX);
    cr_assert_eq(sl_loop_timeout_ms(SEC, SEC + ((uint64_t)INT_MAX + 1) * MS), INT_MAX);
    cr_assert_eq(sl_loop_timeout_ms(SEC, SEC + ((uint64_t)INT_MAX - 1) * MS), INT_MAX - 1);
}

/* --------------------------------------------------------------- sweep clock */

Test(loop, sweep_clock_first_round_sweeps_at_once)
{
    uint64_t next = 0;
    cr_assert(sl_loop_sweep_due(&next, 42 * SEC, 100 * MS));
    cr_assert_eq(next, 42 * SEC + 100 * MS);
}

Test(loop, sweep_clock_waits_for_its_period)
{
    uint64_t next = 0, now = SEC;
    cr_assert(sl_loop_sweep_due(&next, now, 100 * MS));
    cr_assert_not(sl_loop_sweep_due(&next, now + 99 * MS, 100 * MS));
    cr_assert_eq(next, now + 100 * MS, "unchanged when not due");
    cr_assert(sl_loop_sweep_due(&next, now + 100 * MS, 100 * MS), "due at the exact time");
    cr_assert_eq(next, now + 200 * MS);
}

/* The bug of issue 14 item 1, as the loop runs it: a sweep, then a round of
 * work longer than the sweep period, then the sleep. */
Test(loop, sweep_clock_after_an_overrun_round_sleeps_not_and_sweeps_next)
{
    uint64_t next = 0, t0 = 10 * SEC, period = 100 * MS;
    cr_assert(sl_loop_sweep_due(&next, t0, period));
    uint64_t t1 = t0 + 350 * MS; /* the round's work ended 250 ms past the sweep */
    cr_assert_eq(sl_loop_timeout_ms(t1, next), 0);
    /* The next round sweeps at once, and the clock restarts from it: one late
       round does not cause a burst of sweeps. */
    cr_assert(sl_loop_sweep_due(&next, t1, period));
    cr_assert_eq(next, t1 + period);
    cr_assert_eq(sl_loop_timeout_ms(t1 + MS, next), 99);
}

/* --------------------------------------------------------------- timer lists */

struct timers {
    struct cds_list_head list;
    struct sl_conn c[8];
};

static void add(struct timers *t, int i, uint64_t deadline)
{
    t->c[i].deadline_ns = deadline;
    sl_timer_add(&t->list, &t->c[i]);
}

/* The connections of T's list, as indexes into t->c, in list order. */
static int order(struct timers *t, int *out, int max)
{
    int n = 0;
    struct sl_conn *c;
    cds_list_for_each_entry(c, &t->list, timer_link)
    {
        cr_assert_lt(n, max);
        out[n++] = (int)(c - t->c);
    }
    return n;
}

Test(loop, timer_list_appends_later_deadlines)
{
    struct timers t;
    memset(&t, 0, sizeof(t));
    CDS_INIT_LIST_HEAD(&t.list);
    for (int i = 0; i < 4; i++)
        add(&t, i, (uint64_t)(i + 1) * SEC);
    int o[8], n = order(&t, o, 8);
    cr_assert_eq(n, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(o[i], i);
}

/* A lingering connection back from a read keeps its early deadline: it goes
 * before the later ones, not at the tail (issue 14 item 9). */
Test(loop, timer_list_inserts_an_earlier_deadline_in_order)
{
    struct timers t;
    memset(&t, 0, sizeof(t));
    CDS_INIT_LIST_HEAD(&t.list);
    add(&t, 0, 2 * SEC);
    add(&t, 1, 4 * SEC);
    add(&t, 2, 6 * SEC);
    add(&t, 3, 3 * SEC); /* between 0 and 1 */
    add(&t, 4, 1 * SEC); /* first */
    add(&t, 5, 6 * SEC); /* a tie: after the one already there */
    add(&t, 6, 9 * SEC); /* last */
    int o[8], n = order(&t, o, 8);
    int want[] = {4, 0, 3, 1, 2, 5, 6};
    cr_assert_eq(n, 7);
    for (int i = 0; i < 7; i++)
        cr_assert_eq(o[i], want[i], "position %d: %d, want %d", i, o[i], want[i]);
    /* Moving one (off the list, then back with its deadline) keeps order. */
    cds_list_del(&t.c[0].timer_link);
    add(&t, 0, 2 * SEC);
    n = order(&t, o, 8);
    for (int i = 0; i < 7; i++)
        cr_assert_eq(o[i], want[i]);
}

/* --------------------------------------------------------------- the wait */

static struct sl_queue q;
static struct sl_loop l;

static void wait_setup(void)
{
    rcu_register_thread();
    cr_assert_eq(sl_queue_init(&q, SL_QUEUE_WFCQ, SL_WAKE_EVENTFD, SL_STAGE_OTHER), SL_OK);
    cr_assert_eq(sl_loop_init(&l, &q, 100 * MS), SL_OK);
}

static void wait_teardown(void)
{
    sl_loop_close(&l);
    struct sl_qnode *b[8];
    while (sl_queue_pop_batch(&q, b, 8) > 0)
        ;
    sl_queue_destroy(&q);
    rcu_unregister_thread();
}

/* Before the fix this slept until an event arrived: forever, on a quiet
 * server (the test's timeout catches it). */
Test(loop, wait_after_an_overrun_round_returns_at_once, .init = wait_setup,
     .fini = wait_teardown, .timeout = 10)
{
    struct epoll_event evs[4];
    uint64_t t0 = sl_now_ns();
    cr_assert(sl_loop_sweep(&l, t0));
    uint64_t t1 = t0 + 300 * MS; /* as if the round had taken 300 ms */
    uint64_t before = sl_now_ns();
    int n = sl_loop_wait(&l, evs, 4, false, t1);
    cr_assert_eq(n, 0);
    cr_assert_lt(sl_now_ns() - before, 5 * SEC);
}

Test(loop, wait_sleeps_until_the_sweep, .init = wait_setup, .fini = wait_teardown,
     .timeout = 10)
{
    struct epoll_event evs[4];
    uint64_t t0 = sl_now_ns();
    cr_assert(sl_loop_sweep(&l, t0));
    int n = sl_loop_wait(&l, evs, 4, false, sl_now_ns());
    uint64_t t2 = sl_now_ns();
    cr_assert_eq(n, 0);
    cr_assert_geq(t2, l.next_sweep, "woke %lld ns before the sweep",
                  (long long)(l.next_sweep - t2));
    cr_assert(sl_loop_sweep(&l, t2));
}

Test(loop, wait_does_not_sleep_with_more_queued, .init = wait_setup,
     .fini = wait_teardown, .timeout = 10)
{
    struct epoll_event evs[4];
    l.next_sweep = sl_now_ns() + 3600 * SEC;
    /* The last batch was full. */
    cr_assert_eq(sl_loop_wait(&l, evs, 4, true, sl_now_ns()), 0);
    /* An item queued before the sleep: sleep_begin sees it. */
    struct sl_qnode node;
    memset(&node, 0, sizeof(node));
    sl_queue_push(&q, &node);
    int n = sl_loop_wait(&l, evs, 4, false, sl_now_ns());
    cr_assert_geq(n, 0);
    struct sl_qnode *b[4];
    cr_assert_eq(sl_queue_pop_batch(&q, b, 4), 1);
}

/* The queue's eventfd is read only when epoll reported it: what woke the
 * wait is drained before it returns, and a write the wait did not see is
 * reported (and drained) by the next one, never lost. */
Test(loop, wait_drains_the_eventfd_it_reports, .init = wait_setup,
     .fini = wait_teardown, .timeout = 10)
{
    struct epoll_event evs[4];
    struct pollfd pfd = {.fd = sl_queue_eventfd(&q), .events = POLLIN};
    l.next_sweep = sl_now_ns() + 3600 * SEC;

    /* A wake_all while nobody sleeps: the next wait reports and drains it. */
    sl_queue_wake_all(&q);
    cr_assert_eq(poll(&pfd, 1, 0), 1);
    int n = sl_loop_wait(&l, evs, 4, true, sl_now_ns());
    cr_assert_eq(n, 1);
    cr_assert_null(evs[0].data.ptr, "the queue's eventfd");
    cr_assert_eq(poll(&pfd, 1, 0), 0, "drained by the wait that reported it");

    /* Pushed while the consumer sleeps: woken, drained, the item waits. */
    struct sl_qnode node;
    memset(&node, 0, sizeof(node));
    cr_assert(sl_queue_sleep_begin(&q));
    sl_queue_push(&q, &node); /* the producer takes the announcement */
    sl_queue_sleep_retract(&q);
    cr_assert_eq(poll(&pfd, 1, 0), 1, "written: not read yet");
    n = sl_loop_wait(&l, evs, 4, false, sl_now_ns()); /* items queued: no sleep */
    cr_assert_eq(n, 1);
    cr_assert_eq(poll(&pfd, 1, 0), 0);
    struct sl_qnode *b[4];
    cr_assert_eq(sl_queue_pop_batch(&q, b, 4), 1);
    cr_assert_not(sl_queue_sleeping(&q), "the announcement was retracted");
}
