/* test_queue.c: the stage-link queue (queue/queue.c), every test for both kinds:
 * FIFO and batch limits, counters, the futex and eventfd wakeup protocols
 * single-threaded, and races that would hang or time out on a lost wakeup. */
#include "queue/queue.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <urcu.h>
#include <urcu/uatomic.h>

struct item {
    struct sl_qnode qn;
    uint32_t producer;
    uint32_t seq;
};

static struct item *item_of(struct sl_qnode *n)
{
    return caa_container_of(n, struct item, qn);
}

static uint64_t ms_since(uint64_t t0)
{
    return (sl_now_ns() - t0) / 1000000u;
}

/* xorshift: cheap per-thread randomness for pauses and burst sizes. */
static uint32_t rnd(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* A seed that differs per thread and per run: the schedules differ anyway, so
 * fixed seeds would only narrow what the races explore. Never 0. */
static uint32_t seed_of(int id)
{
    return ((uint32_t)sl_now_ns() ^ (0x9e3779b9u * (uint32_t)(id + 1))) | 1u;
}

static void pause_us(unsigned us)
{
    if (us == 0)
        sched_yield();
    else
        usleep(us);
}

/* Waits until *COUNTER reaches TARGET. Spins first, so a producer pushes again
 * within nanoseconds of the consumer's last pop, while it is on its way to
 * sleep: the window a lost wakeup hides in. Then yields, for small machines. */
static void spin_until(long *counter, long target, uint64_t deadline_ns)
{
    for (int i = 0; uatomic_read(counter) < target; i++) {
        if (i < 2000)
            caa_cpu_relax();
        else if (sl_now_ns() < deadline_ns)
            sched_yield();
        else
            return;
    }
}

/* Every thread that touches an rculfq queue is an RCU reader, the test thread
 * included. */
static void rcu_reg(void)
{
    rcu_register_thread();
}
static void rcu_unreg(void)
{
    rcu_unregister_thread();
}

TestSuite(queue, .init = rcu_reg, .fini = rcu_unreg, .timeout = 60);

/* Defines one criterion test per queue kind from a function taking the kind. */
#define BOTH_KINDS(name)                                                                 \
    static void name(enum sl_queue_kind kind);                                           \
    Test(queue, name##_wfcq)                                                             \
    {                                                                                    \
        name(SL_QUEUE_WFCQ);                                                             \
    }                                                                                    \
    Test(queue, name##_rculfq)                                                           \
    {                                                                                    \
        name(SL_QUEUE_RCULFQ);                                                           \
    }                                                                                    \
    static void name(enum sl_queue_kind kind)

Test(queue, kind_names)
{
    cr_assert_eq(sl_queue_kind_parse("wfcq"), SL_QUEUE_WFCQ);
    cr_assert_eq(sl_queue_kind_parse("rculfq"), SL_QUEUE_RCULFQ);
    cr_assert_eq(sl_queue_kind_parse("lfq"), -1);
    cr_assert_eq(sl_queue_kind_parse(""), -1);
    cr_assert_str_eq(sl_queue_kind_name(SL_QUEUE_WFCQ), "wfcq");
    cr_assert_str_eq(sl_queue_kind_name(SL_QUEUE_RCULFQ), "rculfq");
}

BOTH_KINDS(fifo_single_thread)
{
    enum { N = 1000 };
    static struct item it[N];
    struct sl_queue q;
    struct sl_qnode *out[1];

    cr_assert_eq(sl_queue_init(&q, kind, SL_WAKE_FUTEX, SL_STAGE_OTHER), SL_OK);
    cr_assert_eq(sl_queue_eventfd(&q), -1);
    cr_assert(sl_queue_empty(&q));
    cr_assert_eq(sl_queue_pop_batch(&q, out, 1), 0);
    for (int i = 0; i < N; i++) {
        it[i].seq = (uint32_t)i;
        sl_queue_push(&q, &it[i].qn);
    }
    cr_assert_not(sl_queue_empty(&q));
    for (int i = 0; i < N; i++) {
        cr_assert_eq(sl_queue_pop_batch(&q, out, 1), 1);
        cr_assert_eq(out[0], &it[i].qn, "item %d out of order", i);
    }
    cr_assert(sl_queue_empty(&q));
    cr_assert_eq(sl_queue_pop_batch(&q, out, 1), 0);

    /* wfcq items may be pushed again at once; rculfq wraps them, so may too. */
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 10; i++)
            sl_queue_push(&q, &it[i].qn);
        for (int i = 0; i < 10; i++) {
            cr_assert_eq(sl_queue_pop_batch(&q, out, 1), 1);
            cr_assert_eq(out[0], &it[i].qn);
        }
    }
    cr_assert(sl_queue_empty(&q));
    sl_queue_destroy(&q);
}

BOTH_KINDS(pop_batch_respects_max)
{
    enum { N = 100, MAX = 7 };
    static struct item it[N];
    struct sl_queue q;
    struct sl_qnode *out[MAX + 1];
    int next = 0;

    cr_assert_eq(sl_queue_init(&q, kind, SL_WAKE_FUTEX, SL_STAGE_OTHER), SL_OK);
    for (int i = 0; i < N; i++)
        sl_queue_push(&q, &it[i].qn);
    cr_assert_eq(sl_queue_pop_batch(&q, out, 0), 0, "max 0 takes nothing");
    cr_assert_eq(sl_queue_depth(&q), N);
    while (next < N) {
        out[MAX] = NULL; /* sentinel: must stay untouched */
        size_t n = sl_queue_pop_batch(&q, out, MAX);
        cr_assert_eq(n, (size_t)SL_MIN(MAX, N - next));
        cr_assert_null(out[MAX]);
        for (size_t k = 0; k < n; k++)
            cr_assert_eq(out[k], &it[next++].qn);
    }
    cr_assert_eq(sl_queue_pop_batch(&q, out, MAX), 0);
    cr_assert_eq(sl_queue_depth(&q), 0);
    sl_queue_destroy(&q);
}

BOTH_KINDS(counters_consistent)
{
    enum { N = 60 };
    static struct item it[N];
    struct sl_queue q;
    struct sl_qnode *out[N];
    struct sl_stats_snapshot before, after;
    const enum sl_stage_id st = SL_STAGE_DETECTOR;

    sl_stats_snapshot(&before);
    cr_assert_eq(sl_queue_init(&q, kind, SL_WAKE_FUTEX, st), SL_OK);
    cr_assert_eq(sl_queue_depth(&q), 0);
    cr_assert_eq(sl_queue_max_depth(&q), 0);
    for (int i = 0; i < 50; i++)
        sl_queue_push(&q, &it[i].qn);
    cr_assert_eq(sl_queue_depth(&q), 50);
    cr_assert_eq(sl_queue_max_depth(&q), 50);
    usleep(1000); /* every item waits at least 1 ms */
    cr_assert_eq(sl_queue_pop_batch(&q, out, 20), 20);
    cr_assert_eq(sl_queue_depth(&q), 30);
    for (int i = 50; i < N; i++)
        sl_queue_push(&q, &it[i].qn);
    cr_assert_eq(sl_queue_depth(&q), 40);
    cr_assert_eq(sl_queue_max_depth(&q), 50, "max_depth keeps the peak");
    size_t n, batches = 1, got = 20;
    while ((n = sl_queue_pop_batch(&q, out, 16)) > 0) {
        batches++;
        got += n;
    }
    cr_assert_eq(got, N);
    cr_assert_eq(batches, 4); /* 20, then 16 + 16 + 8 */
    cr_assert_eq(sl_queue_depth(&q), 0);
    cr_assert_eq(sl_queue_max_depth(&q), 50);
    sl_stats_snapshot(&after);

    const struct sl_stage_counters *b = &before.stage[st], *a = &after.stage[st];
    cr_assert_eq(a->q_enqueued - b->q_enqueued, N);
    cr_assert_eq(a->q_dequeued - b->q_dequeued, N);
    cr_assert_eq(a->batches - b->batches, batches);
    cr_assert_eq(a->batch_items - b->batch_items, N);
    cr_assert_geq(a->batch_max, 20);
    cr_assert_eq(a->q_wait.count - b->q_wait.count, N);
    cr_assert_geq(a->q_wait.sum - b->q_wait.sum, 50ull * 1000000ull,
                  "50 items waited >= 1 ms each");
    cr_assert_geq(a->q_wait.max, 1000000ull);
    /* Other stages' counters are untouched. */
    cr_assert_eq(after.stage[SL_STAGE_ACCEPTOR].q_enqueued,
                 before.stage[SL_STAGE_ACCEPTOR].q_enqueued);
    sl_queue_destroy(&q);
}

BOTH_KINDS(futex_wait_single_thread)
{
    struct sl_queue q;
    struct item it;
    struct sl_qnode *out[1];

    cr_assert_eq(sl_queue_init(&q, kind, SL_WAKE_FUTEX, SL_STAGE_OTHER), SL_OK);
    /* The first wait of a thread may return at once (spurious); the second
     * must block for the timeout on an empty queue. */
    (void)sl_queue_wait(&q, 10);
    uint64_t t0 = sl_now_ns();
    cr_assert_not(sl_queue_wait(&q, 60), "empty after a timeout");
    cr_assert_geq(ms_since(t0), 50);

    sl_queue_push(&q, &it.qn);
    t0 = sl_now_ns();
    cr_assert(sl_queue_wait(&q, 5000), "items queued: returns true");
    cr_assert_lt(ms_since(t0), 1000, "and at once");
    cr_assert_eq(sl_queue_pop_batch(&q, out, 1), 1);
    cr_assert_eq(uatomic_read(&q.sleepers), 0, "waits retract themselves");

    /* A wake_all between two waits is not lost: the next wait returns. */
    sl_queue_wake_all(&q);
    t0 = sl_now_ns();
    (void)sl_queue_wait(&q, 5000);
    cr_assert_lt(ms_since(t0), 1000);
    sl_queue_destroy(&q);
}

BOTH_KINDS(eventfd_single_thread)
{
    struct sl_queue q;
    struct item it[3];
    struct sl_qnode *out[4];
    struct pollfd pfd;
    eventfd_t v;

    cr_assert_eq(sl_queue_init(&q, kind, SL_WAKE_EVENTFD, SL_STAGE_READER), SL_OK);
    pfd.fd = sl_queue_eventfd(&q);
    pfd.events = POLLIN;
    cr_assert_geq(pfd.fd, 0);

    /* No sleeper: a push does not touch the eventfd. */
    sl_queue_push(&q, &it[0].qn);
    cr_assert_eq(poll(&pfd, 1, 0), 0);
    /* Items queued: sleep_begin refuses to sleep. */
    cr_assert_not(sl_queue_sleep_begin(&q));
    cr_assert_eq(uatomic_read(&q.sleepers), 0);
    sl_queue_sleep_end(&q);
    cr_assert_eq(sl_queue_pop_batch(&q, out, 4), 1);

    /* Empty: sleep_begin says sleep; two pushes make one eventfd write. */
    cr_assert_not(sl_queue_sleeping(&q));
    cr_assert(sl_queue_sleep_begin(&q));
    cr_assert(sl_queue_sleeping(&q), "announced: the acceptor sees a sleeper");
    cr_assert_eq(poll(&pfd, 1, 0), 0);
    sl_queue_push(&q, &it[1].qn);
    cr_assert_not(sl_queue_sleeping(&q), "woken: counted as awake at once");
    sl_queue_push(&q, &it[2].qn);
    cr_assert_eq(poll(&pfd, 1, 0), 1);
    cr_assert_eq(eventfd_read(pfd.fd, &v), 0);
    cr_assert_eq(v, 1, "one write per sleep");
    sl_queue_sleep_end(&q);
    cr_assert_eq(sl_queue_pop_batch(&q, out, 4), 2);

    /* sleep_end drains what a wake left behind. */
    cr_assert(sl_queue_sleep_begin(&q));
    sl_queue_push(&q, &it[0].qn);
    cr_assert_eq(poll(&pfd, 1, 0), 1);
    sl_queue_sleep_end(&q);
    cr_assert_eq(poll(&pfd, 1, 0), 0);
    cr_assert_eq(sl_queue_pop_batch(&q, out, 4), 1);

    /* wake_all stays readable until the next sleep_end. */
    sl_queue_wake_all(&q);
    cr_assert(sl_queue_sleep_begin(&q));
    cr_assert_eq(poll(&pfd, 1, 0), 1);
    sl_queue_sleep_end(&q);
    cr_assert_eq(poll(&pfd, 1, 0), 0);
    sl_queue_destroy(&q);
}

/* ---- many producers, many consumers, futex wakeups ---------------------- */

enum { RACE_P = 4, RACE_C = 3, RACE_N = 200000, WAIT_MS = 2000 };

struct race {
    struct sl_queue q;
    struct item *items;
    uint8_t *seen;
    long total;
    long consumed; /* atomic */
    int done;      /* atomic: all items consumed */
    long dup;      /* atomic: items seen twice */
    long disorder; /* atomic: per-producer order broken */
    long timeouts; /* atomic: waits that slept their whole timeout */
    long waits;    /* atomic */
    uint64_t deadline_ns;
    int nprod;
    long per_prod;
    bool pingpong; /* producer waits for each burst to be consumed */
    bool joined;   /* consumers join (wake only when all sleep or the queue
                      grows) and producers defer their wakes per burst */
    pthread_barrier_t start;
};

struct race_arg {
    struct race *r;
    int id;
};

/* Checks one popped item: exactly once, and after the previous item this
 * consumer got from the same producer. */
static void race_check(struct race *r, struct sl_qnode *n, long *last)
{
    struct item *it = item_of(n);
    long idx = it - r->items;
    if (__atomic_exchange_n(&r->seen[idx], 1, __ATOMIC_RELAXED) != 0)
        uatomic_inc(&r->dup);
    if ((long)it->seq <= last[it->producer])
        uatomic_inc(&r->disorder);
    last[it->producer] = it->seq;
}

static void *race_consumer(void *p)
{
    struct race_arg *a = p;
    struct race *r = a->r;
    static const size_t batch[] = {1, 7, 64};
    struct sl_qnode *out[64];
    long last[RACE_P];
    uint32_t seed = seed_of(100 + a->id);

    rcu_register_thread();
    for (int i = 0; i < RACE_P; i++)
        last[i] = -1;
    if (r->joined)
        sl_queue_consumer_join(&r->q);
    pthread_barrier_wait(&r->start);
    for (;;) {
        size_t n = sl_queue_pop_batch(&r->q, out, batch[a->id % 3]);
        for (size_t k = 0; k < n; k++)
            race_check(r, out[k], last);
        if (n > 0 && uatomic_add_return(&r->consumed, (long)n) == r->total) {
            uatomic_set(&r->done, 1);
            sl_queue_wake_all(&r->q);
        }
        if (n > 0)
            continue;
        if (uatomic_read(&r->done) || sl_now_ns() > r->deadline_ns)
            break;
        /* See ev_consumer(). */
        for (uint32_t k = rnd(&seed) % 512; k > 0; k--)
            caa_cpu_relax();
        uint64_t t0 = sl_now_ns();
        uatomic_inc(&r->waits);
        (void)sl_queue_wait(&r->q, WAIT_MS);
        if (ms_since(t0) >= WAIT_MS - 100)
            uatomic_inc(&r->timeouts);
    }
    if (r->joined)
        sl_queue_consumer_leave(&r->q);
    rcu_unregister_thread();
    return NULL;
}

static void *race_producer(void *p)
{
    struct race_arg *a = p;
    struct race *r = a->r;
    uint32_t seed = seed_of(a->id);
    struct item *mine = r->items + (long)a->id * r->per_prod;

    rcu_register_thread();
    pthread_barrier_wait(&r->start);
    for (long i = 0; i < r->per_prod;) {
        long burst = r->pingpong ? 1 + rnd(&seed) % 4 : 1 + rnd(&seed) % 512;
        long base = uatomic_read(&r->consumed), pushed = 0;
        if (r->joined)
            sl_queue_defer_begin();
        for (; pushed < burst && i < r->per_prod; pushed++, i++)
            sl_queue_push(&r->q, &mine[i].qn);
        if (r->joined)
            sl_queue_defer_end();
        if (r->pingpong) {
            /* Let the consumers drain and fall asleep: the next push must
             * wake one of them or it sleeps its whole timeout. */
            spin_until(&r->consumed, base + pushed, r->deadline_ns);
            for (uint32_t k = rnd(&seed) % 256; k > 0; k--)
                caa_cpu_relax();
            if (rnd(&seed) % 8 == 0)
                pause_us(rnd(&seed) % 50);
        } else if (a->id == 0 && rnd(&seed) % 8 == 0) {
            pause_us(rnd(&seed) % 100);
        }
    }
    rcu_unregister_thread();
    return NULL;
}

static void race_run(enum sl_queue_kind kind, int nprod, int ncons, long per_prod,
                     bool pingpong, bool joined)
{
    struct race *r = SL_NEW_ARRAY(struct race, 1); /* holds a cache-line aligned queue */
    struct sl_stats_snapshot before, after;
    pthread_t th[RACE_P + RACE_C];
    struct race_arg args[RACE_P + RACE_C];
    const enum sl_stage_id st = SL_STAGE_WRITER;

    cr_assert_not_null(r);
    cr_assert_leq(nprod, RACE_P);
    cr_assert_leq(ncons, RACE_C);
    r->nprod = nprod;
    r->per_prod = per_prod;
    r->pingpong = pingpong;
    r->joined = joined;
    r->total = nprod * per_prod;
    r->items = calloc((size_t)r->total, sizeof(*r->items));
    r->seen = calloc((size_t)r->total, 1);
    cr_assert(r->items && r->seen);
    for (int p = 0; p < nprod; p++)
        for (long i = 0; i < per_prod; i++) {
            r->items[p * per_prod + i].producer = (uint32_t)p;
            r->items[p * per_prod + i].seq = (uint32_t)i;
        }
    cr_assert_eq(sl_queue_init(&r->q, kind, SL_WAKE_FUTEX, st), SL_OK);
    pthread_barrier_init(&r->start, NULL, (unsigned)(nprod + ncons));
    r->deadline_ns = sl_now_ns() + 20ull * 1000000000ull;
    sl_stats_snapshot(&before);

    for (int i = 0; i < nprod + ncons; i++) {
        args[i].r = r;
        args[i].id = i < nprod ? i : i - nprod;
        cr_assert_eq(pthread_create(&th[i], NULL,
                                    i < nprod ? race_producer : race_consumer, &args[i]),
                     0);
    }
    for (int i = 0; i < nprod + ncons; i++)
        pthread_join(th[i], NULL);
    sl_stats_snapshot(&after);

    cr_assert_eq(uatomic_read(&r->consumed), r->total, "%ld of %ld items arrived",
                 r->consumed, r->total);
    cr_assert_eq(r->dup, 0, "%ld items delivered twice", r->dup);
    long missing = 0;
    for (long i = 0; i < r->total; i++)
        missing += r->seen[i] == 0;
    cr_assert_eq(missing, 0, "%ld items never delivered", missing);
    cr_assert_eq(r->disorder, 0, "%ld per-producer order violations", r->disorder);
    if (!joined)
        cr_assert_eq(r->timeouts, 0,
                     "%ld of %ld waits slept their whole timeout (lost wakeup)",
                     r->timeouts, r->waits);
    else /* a consumer may sleep out its timeout while another one is awake
            and does the work; no item may wait for a timeout, though */
        cr_assert_lt(after.stage[st].q_wait.max, (uint64_t)WAIT_MS / 2 * 1000000,
                     "an item waited %.0f ms: a wake-up was lost",
                     (double)after.stage[st].q_wait.max / 1e6);
    cr_assert(sl_queue_empty(&r->q));
    cr_assert_eq(sl_queue_depth(&r->q), 0);
    cr_assert_geq(sl_queue_max_depth(&r->q), 1);
    cr_assert_leq(sl_queue_max_depth(&r->q), r->total);
    cr_assert_eq(uatomic_read(&r->q.sleepers), 0);
    cr_assert_eq(after.stage[st].q_enqueued - before.stage[st].q_enqueued,
                 (uint64_t)r->total);
    cr_assert_eq(after.stage[st].q_dequeued - before.stage[st].q_dequeued,
                 (uint64_t)r->total);
    cr_assert_eq(after.stage[st].q_wait.count - before.stage[st].q_wait.count,
                 (uint64_t)r->total);
    cr_assert_leq(after.stage[st].batch_max, 64);

    sl_queue_destroy(&r->q);
    pthread_barrier_destroy(&r->start);
    free(r->items);
    free(r->seen);
    free(r);
}

BOTH_KINDS(mpmc_race_futex)
{
    race_run(kind, RACE_P, RACE_C, RACE_N, false, false);
}

/* The same with joined consumers and deferred wakes: a push wakes nobody
 * while a consumer is awake (unless the queue grows past
 * SL_QUEUE_WAKE_DEPTH), and a burst wakes at most once, at its end. */
BOTH_KINDS(mpmc_race_futex_joined_deferred)
{
    race_run(kind, RACE_P, RACE_C, RACE_N, false, true);
}

/* One producer, one or two consumers: every burst is consumed before the
 * next, so the push races with the consumers going to sleep, or finds them
 * asleep. */
BOTH_KINDS(pingpong_futex)
{
    race_run(kind, 1, 1, 5000, true, false);
    race_run(kind, 1, 2, 5000, true, false);
}

BOTH_KINDS(pingpong_futex_joined_deferred)
{
    race_run(kind, 1, 1, 5000, true, true);
    race_run(kind, 1, 2, 5000, true, true);
    race_run(kind, 2, 3, 5000, true, true);
}

/* ---- wake_all racing with the consumers' stop check --------------------- */

struct stopper {
    struct sl_queue *q;
    int stop; /* atomic */
};

static void *stop_consumer(void *p)
{
    struct stopper *s = p;
    struct sl_qnode *out[8];
    uint32_t seed = seed_of((int)(uintptr_t)p & 0xffff);

    rcu_register_thread();
    while (!uatomic_read(&s->stop)) {
        if (sl_queue_pop_batch(s->q, out, 8) != 0)
            continue;
        /* Some work between the stop check and the wait: the window in
         * which a wake_all must not be lost. */
        for (uint32_t k = rnd(&seed) % 4096; k > 0; k--)
            caa_cpu_relax();
        (void)sl_queue_wait(s->q, -1); /* only wake_all ends this */
    }
    rcu_unregister_thread();
    return NULL;
}

BOTH_KINDS(wake_all_not_lost)
{
    enum { ITER = 150, NT = 2 };
    struct sl_queue q;
    uint32_t seed = seed_of(400);
    int stuck = 0;

    cr_assert_eq(sl_queue_init(&q, kind, SL_WAKE_FUTEX, SL_STAGE_OTHER), SL_OK);
    for (int iter = 0; iter < ITER && stuck == 0; iter++) {
        struct stopper s = {.q = &q, .stop = 0};
        pthread_t th[NT];
        for (int i = 0; i < NT; i++)
            cr_assert_eq(pthread_create(&th[i], NULL, stop_consumer, &s), 0);
        pause_us(rnd(&seed) % 300);
        uatomic_set(&s.stop, 1);
        sl_queue_wake_all(&q);
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 5;
        for (int i = 0; i < NT; i++)
            if (pthread_timedjoin_np(th[i], NULL, &dl) != 0)
                stuck++;
    }
    cr_assert_eq(stuck, 0, "a consumer slept through wake_all");
    cr_assert_eq(uatomic_read(&q.sleepers), 0);
    sl_queue_destroy(&q);
}

/* ---- one eventfd consumer in epoll_wait, bursty producers ----------------- */

enum { EV_P = 2, EV_N = 20000, EV_WAIT_MS = 2000 };

struct evrace {
    struct sl_queue q;
    struct item items[EV_P * EV_N];
    uint8_t seen[EV_P * EV_N];
    int nprod;
    long per_prod;
    long consumed[EV_P]; /* atomic, per producer */
    long dup, disorder;
    long sleeps, woken, timeouts;
    uint64_t deadline_ns;
    pthread_barrier_t start;
};

struct ev_arg {
    struct evrace *r;
    int id;
};

static void *ev_consumer(void *p)
{
    struct evrace *r = p;
    struct sl_qnode *out[64];
    long last[EV_P] = {-1, -1};
    long total = 0;
    uint32_t seed = seed_of(300);
    struct epoll_event ev = {.events = EPOLLIN};
    int ep = epoll_create1(EPOLL_CLOEXEC);

    rcu_register_thread();
    epoll_ctl(ep, EPOLL_CTL_ADD, sl_queue_eventfd(&r->q), &ev);
    pthread_barrier_wait(&r->start);
    while (total < r->nprod * r->per_prod && sl_now_ns() < r->deadline_ns) {
        size_t n = sl_queue_pop_batch(&r->q, out, 64);
        for (size_t k = 0; k < n; k++) {
            struct item *it = item_of(out[k]);
            if (r->seen[it - r->items]++ != 0)
                r->dup++;
            if ((long)it->seq <= last[it->producer])
                r->disorder++;
            last[it->producer] = it->seq;
            uatomic_inc(&r->consumed[it->producer]);
        }
        total += (long)n;
        if (n > 0)
            continue;
        /* A random delay between finding the queue empty and announcing the
         * sleep: a push landing here is the one a broken protocol loses. */
        for (uint32_t k = rnd(&seed) % 512; k > 0; k--)
            caa_cpu_relax();
        if (sl_queue_sleep_begin(&r->q)) {
            r->sleeps++;
            int rc = epoll_wait(ep, &ev, 1, EV_WAIT_MS);
            if (rc == 0)
                r->timeouts++;
            else if (rc > 0)
                r->woken++;
        } else {
            epoll_wait(ep, &ev, 1, 0);
        }
        sl_queue_sleep_end(&r->q);
    }
    rcu_unregister_thread();
    close(ep);
    return NULL;
}

/* Producer 0 plays ping-pong: it waits until its burst is consumed and pushes
 * again at once or after a short random delay, so its push lands while the
 * consumer is on its way to sleep or asleep. Producer 1 pushes bursts with
 * random pauses. */
static void *ev_producer(void *p)
{
    struct ev_arg *a = p;
    struct evrace *r = a->r;
    uint32_t seed = seed_of(200 + a->id);
    struct item *mine = r->items + a->id * EV_N;

    rcu_register_thread();
    pthread_barrier_wait(&r->start);
    for (long i = 0; i < r->per_prod;) {
        long burst = 1 + rnd(&seed) % (a->id == 0 ? 4 : 64);
        for (long k = 0; k < burst && i < r->per_prod; k++, i++)
            sl_queue_push(&r->q, &mine[i].qn);
        if (a->id == 0) {
            spin_until(&r->consumed[0], i, r->deadline_ns);
            for (uint32_t k = rnd(&seed) % 256; k > 0; k--)
                caa_cpu_relax();
            if (rnd(&seed) % 8 == 0)
                pause_us(rnd(&seed) % 40);
        } else {
            pause_us(rnd(&seed) % 200);
        }
    }
    rcu_unregister_thread();
    return NULL;
}

static void ev_run(enum sl_queue_kind kind, int nprod, long per_prod)
{
    struct evrace *r = SL_NEW_ARRAY(struct evrace, 1); /* holds a cache-line aligned queue */
    pthread_t cons, prod[EV_P];
    struct ev_arg args[EV_P];
    const long total = nprod * per_prod;

    cr_assert_not_null(r);
    cr_assert_leq(nprod, EV_P);
    cr_assert_leq(per_prod, EV_N);
    r->nprod = nprod;
    r->per_prod = per_prod;
    for (int p = 0; p < nprod; p++)
        for (int i = 0; i < per_prod; i++) {
            r->items[p * EV_N + i].producer = (uint32_t)p;
            r->items[p * EV_N + i].seq = (uint32_t)i;
        }
    cr_assert_eq(sl_queue_init(&r->q, kind, SL_WAKE_EVENTFD, SL_STAGE_READER), SL_OK);
    pthread_barrier_init(&r->start, NULL, (unsigned)nprod + 1);
    uint64_t t0 = sl_now_ns();
    r->deadline_ns = t0 + 10ull * 1000000000ull;
    cr_assert_eq(pthread_create(&cons, NULL, ev_consumer, r), 0);
    for (int p = 0; p < nprod; p++) {
        args[p].r = r;
        args[p].id = p;
        cr_assert_eq(pthread_create(&prod[p], NULL, ev_producer, &args[p]), 0);
    }
    for (int p = 0; p < nprod; p++)
        pthread_join(prod[p], NULL);
    pthread_join(cons, NULL);

    long got = 0;
    for (int p = 0; p < nprod; p++)
        got += r->consumed[p];
    cr_assert_eq(got, total, "%ld of %ld items arrived in %llu ms", got, total,
                 (unsigned long long)ms_since(t0));
    cr_assert_lt(ms_since(t0), 10000);
    cr_assert_eq(r->dup, 0);
    cr_assert_eq(r->disorder, 0);
    for (int p = 0; p < nprod; p++)
        for (int i = 0; i < per_prod; i++)
            cr_assert_eq(r->seen[p * EV_N + i], 1, "item %d/%d seen %d times", p, i,
                         r->seen[p * EV_N + i]);
    cr_assert_eq(r->timeouts, 0, "%ld of %ld sleeps were never woken (lost wakeup)",
                 r->timeouts, r->sleeps);
    cr_assert_gt(r->sleeps, 100, "the consumer slept only %ld times", r->sleeps);
    cr_assert_gt(r->woken, 100, "woken only %ld times", r->woken);
    cr_assert(sl_queue_empty(&r->q));
    cr_assert_eq(sl_queue_depth(&r->q), 0);
    sl_queue_destroy(&r->q);
    pthread_barrier_destroy(&r->start);
    free(r);
}

/* Ping-pong alone first (nothing else would wake a consumer whose wakeup was
 * lost, so a loss shows as a timeout), then mixed with a bursty producer. */
BOTH_KINDS(eventfd_race)
{
    ev_run(kind, 1, 8000);
    ev_run(kind, 2, EV_N);
}

/* wake_all reaches a consumer blocked in epoll_wait. */
struct evwake {
    struct sl_queue q;
    int rc;
    uint64_t slept_ms;
    bool slept;
};

static void *evwake_consumer(void *p)
{
    struct evwake *w = p;
    struct epoll_event ev = {.events = EPOLLIN};
    int ep = epoll_create1(EPOLL_CLOEXEC);

    rcu_register_thread();
    epoll_ctl(ep, EPOLL_CTL_ADD, sl_queue_eventfd(&w->q), &ev);
    uint64_t t0 = sl_now_ns();
    w->slept = sl_queue_sleep_begin(&w->q);
    w->rc = epoll_wait(ep, &ev, 1, 5000);
    sl_queue_sleep_end(&w->q);
    w->slept_ms = ms_since(t0);
    rcu_unregister_thread();
    close(ep);
    return NULL;
}

BOTH_KINDS(eventfd_wake_all)
{
    struct evwake w = {0};
    pthread_t th;

    cr_assert_eq(sl_queue_init(&w.q, kind, SL_WAKE_EVENTFD, SL_STAGE_READER), SL_OK);
    cr_assert_eq(pthread_create(&th, NULL, evwake_consumer, &w), 0);
    usleep(20000);
    sl_queue_wake_all(&w.q);
    pthread_join(th, NULL);
    cr_assert(w.slept, "empty queue: the consumer sleeps");
    cr_assert_eq(w.rc, 1, "woken by wake_all, not by the timeout");
    cr_assert_lt(w.slept_ms, 4000);
    sl_queue_destroy(&w.q);
}

/* ---- the wake policy of joined consumers -------------------------------- */

struct lone {
    struct sl_queue *q;
    long got;        /* atomic: items this consumer took */
    long want;       /* stop once this many were taken */
    uint64_t got_ns; /* when the last one was taken */
};

static void *lone_consumer(void *p)
{
    struct lone *l = p;
    struct sl_qnode *out[64];
    rcu_register_thread();
    sl_queue_consumer_join(l->q);
    uint64_t deadline = sl_now_ns() + 10ull * 1000000000ull;
    while (uatomic_read(&l->got) < l->want && sl_now_ns() < deadline) {
        size_t n = sl_queue_pop_batch(l->q, out, 64);
        if (n > 0) {
            l->got_ns = sl_now_ns();
            uatomic_add(&l->got, (long)n);
            continue;
        }
        sl_queue_wait(l->q, 5000);
    }
    sl_queue_consumer_leave(l->q);
    rcu_unregister_thread();
    return NULL;
}

/* Waits until CONSUMERS consumers of Q announced their sleep. */
static void until_sleeping(struct sl_queue *q, int consumers)
{
    uint64_t deadline = sl_now_ns() + 2000000000ull;
    while (uatomic_read(&q->sleepers) < consumers && sl_now_ns() < deadline)
        pause_us(200);
    cr_assert_eq(uatomic_read(&q->sleepers), consumers,
                 "the consumer never went to sleep");
    pause_us(20000); /* from the announcement into FUTEX_WAIT */
}

/* While another joined consumer is awake (here: this thread, joined but never
 * waiting), a push leaves the sleeper alone; when that consumer leaves with
 * the item still queued, it wakes the sleeper. */
BOTH_KINDS(leaving_consumer_wakes_a_sleeper)
{
    struct sl_queue q;
    struct item it = {0};
    cr_assert_eq(sl_queue_init(&q, kind, SL_WAKE_FUTEX, SL_STAGE_WRITER), SL_OK);
    sl_queue_consumer_join(&q); /* the awake one */
    struct lone l = {.q = &q, .want = 1};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, lone_consumer, &l), 0);
    until_sleeping(&q, 1);
    sl_queue_push(&q, &it.qn);
    pause_us(100000);
    cr_expect_eq(uatomic_read(&l.got), 0,
                 "a sleeper was woken while a consumer is awake");
    uint64_t t0 = sl_now_ns();
    sl_queue_consumer_leave(&q);
    pthread_join(th, NULL);
    cr_assert_eq(l.got, 1, "the item was stranded when the awake consumer left");
    cr_expect_lt(l.got_ns - t0, 1000000000ull, "taken %.0f ms after the leave",
                 (double)(l.got_ns - t0) / 1e6);
    sl_queue_destroy(&q);
}

/* Past SL_QUEUE_WAKE_DEPTH queued items a push wakes a sleeper even though a
 * consumer is awake: that one may be stuck on disk. A deferred burst wakes
 * at its end, by the same rule. */
BOTH_KINDS(deep_queue_wakes_a_sleeper)
{
    for (int deferred = 0; deferred < 2; deferred++) {
        struct sl_queue q;
        static struct item its[SL_QUEUE_WAKE_DEPTH + 1];
        cr_assert_eq(sl_queue_init(&q, kind, SL_WAKE_FUTEX, SL_STAGE_WRITER), SL_OK);
        sl_queue_consumer_join(&q); /* awake, never consuming */
        struct lone l = {.q = &q, .want = SL_QUEUE_WAKE_DEPTH + 1};
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, lone_consumer, &l), 0);
        until_sleeping(&q, 1);
        if (deferred)
            sl_queue_defer_begin();
        for (int i = 0; i < SL_QUEUE_WAKE_DEPTH; i++)
            sl_queue_push(&q, &its[i].qn);
        if (deferred)
            sl_queue_defer_end();
        pause_us(100000);
        cr_expect_eq(uatomic_read(&l.got), 0, "woken at depth %d (deferred %d)",
                     SL_QUEUE_WAKE_DEPTH, deferred);
        uint64_t t0 = sl_now_ns();
        if (deferred)
            sl_queue_defer_begin();
        sl_queue_push(&q, &its[SL_QUEUE_WAKE_DEPTH].qn);
        if (deferred)
            sl_queue_defer_end();
        pthread_join(th, NULL);
        cr_assert_eq(l.got, SL_QUEUE_WAKE_DEPTH + 1);
        cr_expect_lt(l.got_ns - t0, 1000000000ull, "deferred %d: taken %.0f ms late",
                     deferred, (double)(l.got_ns - t0) / 1e6);
        sl_queue_consumer_leave(&q);
        sl_queue_destroy(&q);
    }
}
