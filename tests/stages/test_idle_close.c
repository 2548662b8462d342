/* test_idle_close.c: the acceptor's requests for room and the readers' claim
 * on serving them (stages/idle_close.c). Criterion runs each test in its own
 * process, so each starts with no request and no claim. */
#include "stages/idle_close.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>

Test(idle_close, one_request_per_connection_let_in)
{
    cr_expect_eq(sl_idle_close_pending(), 0);
    sl_idle_close_request();
    sl_idle_close_request();
    cr_expect_eq(sl_idle_close_pending(), 2);
    cr_assert(sl_idle_close_claim());
    sl_idle_close_done();
    cr_expect_eq(sl_idle_close_pending(), 1);
    sl_idle_close_done();
    cr_expect_eq(sl_idle_close_pending(), 0);
    sl_idle_close_unclaim();
}

Test(idle_close, a_waiting_acceptor_asks_once)
{
    cr_expect(sl_idle_close_request_if_none());
    cr_expect_not(sl_idle_close_request_if_none(), "a request is pending: not repeated");
    cr_expect_eq(sl_idle_close_pending(), 1);
    cr_assert(sl_idle_close_claim());
    sl_idle_close_done();
    sl_idle_close_unclaim();
    cr_expect(sl_idle_close_request_if_none(), "served: it may ask again");
}

Test(idle_close, one_reader_serves_at_a_time)
{
    cr_assert(sl_idle_close_claim());
    cr_expect_not(sl_idle_close_claim());
    sl_idle_close_unclaim();
    cr_expect(sl_idle_close_claim());
    sl_idle_close_unclaim();
}

Test(idle_close, stale_requests_are_dropped_unless_one_was_added)
{
    sl_idle_close_request();
    sl_idle_close_request();
    cr_assert(sl_idle_close_claim());
    int seen = sl_idle_close_pending();
    sl_idle_close_request(); /* the acceptor, between the read and the drop */
    cr_expect_not(sl_idle_close_drop(seen), "the new request must not be lost");
    cr_expect_eq(sl_idle_close_pending(), 3);
    seen = sl_idle_close_pending();
    cr_expect(sl_idle_close_drop(seen));
    cr_expect_eq(sl_idle_close_pending(), 0);
    sl_idle_close_unclaim();
}

/* Acceptors asking while readers serve, as reader.c serves: every request is
 * served exactly once, the count never goes below zero, and only one reader
 * holds the claim at a time. */
#define ACCEPTORS 3
#define READERS 3
#define PER_ACCEPTOR 10000

static int requested_done; /* acceptors finished (atomic) */
static long served;        /* requests served, all readers (atomic) */
static int holders;        /* readers inside the claim now (atomic) */
static int went_negative;  /* (atomic) */
static int two_holders;    /* (atomic) */

static void *acceptor(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_ACCEPTOR; i++)
        sl_idle_close_request();
    __atomic_add_fetch(&requested_done, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    for (;;) {
        bool acceptors_done =
            __atomic_load_n(&requested_done, __ATOMIC_ACQUIRE) == ACCEPTORS;
        if (sl_idle_close_pending() > 0 && sl_idle_close_claim()) {
            if (__atomic_add_fetch(&holders, 1, __ATOMIC_RELAXED) != 1)
                __atomic_store_n(&two_holders, 1, __ATOMIC_RELAXED);
            sched_yield(); /* widen the window another reader could enter by */
            for (int k = 0; k < 64; k++) {
                int want = sl_idle_close_pending();
                if (want < 0)
                    __atomic_store_n(&went_negative, 1, __ATOMIC_RELAXED);
                if (want <= 0)
                    break;
                __atomic_add_fetch(&served, 1, __ATOMIC_RELAXED); /* "the close" */
                sl_idle_close_done();
            }
            __atomic_sub_fetch(&holders, 1, __ATOMIC_RELAXED);
            sl_idle_close_unclaim();
        }
        if (acceptors_done && sl_idle_close_pending() <= 0)
            return NULL; /* below 0 only if broken: reported, not spun on */
    }
}

Test(idle_close, many_acceptors_and_readers, .timeout = 60)
{
    pthread_t a[ACCEPTORS], r[READERS];
    for (int i = 0; i < READERS; i++)
        cr_assert_eq(pthread_create(&r[i], NULL, reader, NULL), 0);
    for (int i = 0; i < ACCEPTORS; i++)
        cr_assert_eq(pthread_create(&a[i], NULL, acceptor, NULL), 0);
    for (int i = 0; i < ACCEPTORS; i++)
        pthread_join(a[i], NULL);
    for (int i = 0; i < READERS; i++)
        pthread_join(r[i], NULL);
    cr_expect_eq(served, (long)ACCEPTORS * PER_ACCEPTOR);
    cr_expect_eq(sl_idle_close_pending(), 0);
    cr_expect_not(went_negative);
    cr_expect_not(two_holders);
}
