/* queue.c: the stage-link queue over liburcu's wfcqueue and rculfqueue, with
 * sleeper-only wakeups through a futex or an eventfd; see queue.h.
 *
 * Which operations may run at the same time on one queue ("yes": any number
 * of threads, in any mix):
 *
 *                      push  pop_batch  empty  depth  wait  wake_all  sleep_*
 *   push               yes   yes        yes    yes    yes   yes       yes
 *   pop_batch                yes (1)    yes    yes    yes   yes       no (2)
 *   empty                               yes    yes    yes   yes       yes
 *   depth, max_depth                           yes    yes   yes       yes
 *   wait (FUTEX)                                      yes   yes       n/a
 *   wake_all                                                yes       yes
 *   sleep_begin/end (EVENTFD)                                         no (2)
 *   init, destroy: alone; nothing else may run on that queue.
 *
 *   (1) FUTEX mode. wfcq consumers serialize on the head's dequeue mutex, held
 *       for one batch; rculfq consumers are lock-free.
 *   (2) EVENTFD mode has exactly one consumer thread, which both pops and
 *       sleeps; producers and wake_all may run alongside it.
 *
 * For SL_QUEUE_RCULFQ every thread calling push, pop_batch, empty, wait or
 * sleep_begin is a registered RCU reader (default "memb" flavour, urcu.h); it
 * may already hold the read lock (it nests). Nothing here blocks inside a
 * read-side section.
 *
 * depth is raised before the enqueue and lowered after the dequeue, so it
 * never goes negative; it may count an item whose push is still linking it.
 * It is statistics only: no decision here depends on it.
 *
 * Wakeups are Dekker-style. A producer publishes the item, then a full barrier,
 * then reads `sleepers`; a consumer announces itself in `sleepers`, then a full
 * barrier, then looks at the queue. At least one of the two sees the other's
 * store, so either the consumer sees the item and does not sleep, or the
 * producer sees the sleeper and wakes it. The emptiness check is structural
 * (the queue's own head/tail), never `depth`, so it is exact at its
 * linearization point and the argument above holds for it.
 */
#include "queue/queue.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <urcu.h> /* default flavour (memb): rcu_read_lock, call_rcu */
#include <urcu/rculfqueue.h>
#include <urcu/uatomic.h>

/* What an rculfq push allocates: lfq nodes may still be read by concurrent
 * dequeuers after they are taken off, so they cannot live in the item (which
 * its new owner may reuse at once); this wrapper is freed after a grace
 * period instead. */
struct lfq_wrap {
    struct cds_lfq_node_rcu node;
    struct sl_qnode *item;
    struct rcu_head rcu;
};

/* What this thread saw of futex_seq when its last sl_queue_wait() returned,
 * and on which queue; see sl_queue_wait(). */
static __thread struct {
    const struct sl_queue *q;
    uint32_t seq;
} wait_seen;

/* This thread's deferred wake-ups (sl_queue_defer_begin/end): the queues it
 * pushed to since begin. More distinct queues than fit are woken at once. */
#define DEFER_MAX 8
static __thread struct {
    bool on;
    int n;
    struct sl_queue *q[DEFER_MAX];
} defer;

static const char *const kind_names[] = {"wfcq", "rculfq"};

int sl_queue_kind_parse(const char *s)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(kind_names); i++)
        if (strcmp(s, kind_names[i]) == 0)
            return (int)i;
    return -1;
}

const char *sl_queue_kind_name(enum sl_queue_kind kind)
{
    return (unsigned)kind < SL_ARRAY_LEN(kind_names) ? kind_names[kind] : "?";
}

int sl_queue_init(struct sl_queue *q, enum sl_queue_kind kind, enum sl_queue_wake wake,
                  enum sl_stage_id stage)
{
    int efd = -1;
    if (wake == SL_WAKE_EVENTFD) {
        efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (efd < 0)
            return SL_ERR;
    }
    memset(q, 0, sizeof(*q));
    cds_wfcq_init(&q->head, &q->tail);
    q->efd = efd;
    q->kind = kind;
    q->wake = wake;
    q->stage = stage;
    q->lfq = NULL;
    if (kind == SL_QUEUE_RCULFQ) {
        struct cds_lfq_queue_rcu *lfq = sl_malloc(sizeof(*lfq));
        cds_lfq_init_rcu(lfq, call_rcu);
        q->lfq = lfq;
    }
    return SL_OK;
}

void sl_queue_destroy(struct sl_queue *q)
{
    if (q->lfq != NULL) {
        /* Frees the current dummy node; -EPERM would mean items are left. */
        int rc = cds_lfq_destroy_rcu(q->lfq);
        assert(rc == 0);
        (void)rc;
        free(q->lfq);
        q->lfq = NULL;
    }
    assert(cds_wfcq_empty(&q->head, &q->tail));
    cds_wfcq_destroy(&q->head, &q->tail);
    if (q->efd >= 0)
        close(q->efd);
    q->efd = -1;
}

static void lfq_wrap_free(struct rcu_head *head)
{
    free(caa_container_of(head, struct lfq_wrap, rcu));
}

/* The queue is empty when its head is the dummy node and nothing follows it
 * (a real node at the head is itself the oldest item). Under the read lock
 * because the head may be dequeued and handed to call_rcu meanwhile. A stale
 * head is a node already dequeued, and those always have a successor, so a
 * stale read can only say "not empty": a spurious wakeup, never a lost one. */
static bool lfq_empty(struct cds_lfq_queue_rcu *lfq)
{
    rcu_read_lock();
    struct cds_lfq_node_rcu *head = rcu_dereference(lfq->head);
    SL_TSAN_ACQUIRE(head); /* a wrap's node is its first member: pairs with the push */
    bool empty = head->dummy && rcu_dereference(head->next) == NULL;
    rcu_read_unlock();
    return empty;
}

bool sl_queue_sleeping(struct sl_queue *q)
{
    return uatomic_read(&q->sleepers) > 0;
}

bool sl_queue_empty(struct sl_queue *q)
{
    if (q->kind == SL_QUEUE_RCULFQ)
        return lfq_empty(q->lfq);
    return cds_wfcq_empty(&q->head, &q->tail);
}

long sl_queue_depth(const struct sl_queue *q)
{
    return uatomic_read(&q->depth);
}

long sl_queue_max_depth(const struct sl_queue *q)
{
    return uatomic_read(&q->max_depth);
}

static long futex_call(uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
    return syscall(SYS_futex, addr, op, val, ts, NULL, 0);
}

/* Called by a producer after its item is published and after the full barrier
 * that orders the publication before this read of `sleepers`. */
static void wake_one(struct sl_queue *q)
{
    if (q->wake == SL_WAKE_FUTEX) {
        int sleepers = uatomic_read(&q->sleepers);
        if (sleepers <= 0)
            return;
        /* Someone awake will look at the queue before it sleeps (its
         * announcement and re-check pair with our barrier): let it take this
         * item in its next batch, unless the queue grows past what one busy
         * consumer should hold. */
        int consumers = uatomic_read(&q->consumers);
        if (sleepers < consumers && uatomic_read(&q->depth) <= SL_QUEUE_WAKE_DEPTH)
            return;
        /* The bump makes a consumer that read the old seq but has not yet
         * entered FUTEX_WAIT return at once (EAGAIN); the barrier before our
         * read of `sleepers` also orders the item before the bump, which the
         * cmm_smp_rmb() in sl_queue_wait() pairs with. */
        uatomic_inc(&q->futex_seq);
        futex_call(&q->futex_seq, FUTEX_WAKE_PRIVATE, 1, NULL);
    } else {
        /* The plain read keeps the common no-sleeper case free of a locked
         * instruction; the xchg (a full barrier) lets exactly one producer per
         * sleep write the eventfd. */
        if (uatomic_read(&q->sleepers) != 0 && uatomic_xchg(&q->sleepers, 0) != 0)
            (void)eventfd_write(q->efd, 1);
    }
}

/* Records Q for the deferred wake; false if it must be woken now (no room). */
static bool defer_wake(struct sl_queue *q)
{
    for (int i = 0; i < defer.n; i++)
        if (defer.q[i] == q)
            return true;
    if (defer.n == DEFER_MAX)
        return false;
    defer.q[defer.n++] = q;
    return true;
}

void sl_queue_defer_begin(void)
{
    assert(!defer.on);
    defer.on = true;
    defer.n = 0;
}

void sl_queue_defer_end(void)
{
    assert(defer.on);
    defer.on = false;
    if (defer.n == 0)
        return;
    /* Orders every enqueue of the burst before the reads of `sleepers`, as
     * the barrier in sl_queue_push() does for one item. */
    cmm_smp_mb();
    for (int i = 0; i < defer.n; i++)
        wake_one(defer.q[i]);
    defer.n = 0;
}

void sl_queue_consumer_join(struct sl_queue *q)
{
    uatomic_inc(&q->consumers);
}

void sl_queue_consumer_leave(struct sl_queue *q)
{
    /* A full barrier (uatomic_add_return), so a producer that reads the new
     * count decides on it; then hand anything queued to a sleeper, since
     * producers may have counted on us to take it. */
    (void)uatomic_add_return(&q->consumers, -1);
    if (!sl_queue_empty(q) && uatomic_read(&q->sleepers) > 0) {
        uatomic_inc(&q->futex_seq);
        futex_call(&q->futex_seq, FUTEX_WAKE_PRIVATE, 1, NULL);
    }
}

void sl_queue_push(struct sl_queue *q, struct sl_qnode *node)
{
    struct sl_stage_counters *c = &sl_tstats_self()->stage[q->stage];

    /* Counted before the enqueue, so every pop's decrement follows its push's
     * increment and depth never goes negative (it may briefly include an item
     * not linked yet). uatomic_add_return is a full barrier. */
    long d = uatomic_add_return(&q->depth, 1);
    long m = uatomic_read(&q->max_depth);
    while (d > m) {
        long old = uatomic_cmpxchg(&q->max_depth, m, d);
        if (old == m)
            break;
        m = old;
    }

    /* Written before the enqueue: both enqueues publish with a full barrier
     * (xchg on the wfcq tail, cmpxchg on the lfq tail), so the consumer that
     * takes the node sees the stamp. The node is not ours after the enqueue. */
    node->enq_ns = sl_now_ns();
    SL_TSAN_RELEASE(node); /* the enqueue's barrier, for TSan: pairs with pop */
    if (q->kind == SL_QUEUE_WFCQ) {
        cds_wfcq_node_init(&node->wfcq);
        cds_wfcq_enqueue(&q->head, &q->tail, &node->wfcq);
    } else {
        struct lfq_wrap *w = sl_malloc(sizeof(*w));
        cds_lfq_node_init_rcu(&w->node);
        w->item = node;
        SL_TSAN_RELEASE(w);
        rcu_read_lock();
        cds_lfq_enqueue_rcu(q->lfq, &w->node);
        rcu_read_unlock();
    }
    SL_COUNTER_ADD(&c->q_enqueued, 1);

    if (defer.on && defer_wake(q))
        return; /* woken, if need be, by sl_queue_defer_end() */
    /* Orders the enqueue before the read of `sleepers` in wake_one(); pairs
     * with the cmm_smp_mb() after the sleeper announcement in sl_queue_wait()
     * and sl_queue_sleep_begin(). */
    cmm_smp_mb();
    wake_one(q);
}

size_t sl_queue_pop_batch(struct sl_queue *q, struct sl_qnode **out, size_t max)
{
    size_t n = 0;

    if (max == 0)
        return 0;
    if (q->kind == SL_QUEUE_WFCQ) {
        /* Lockless look first, so idle consumers do not fight for the mutex. */
        if (cds_wfcq_empty(&q->head, &q->tail))
            return 0;
        cds_wfcq_dequeue_lock(&q->head, &q->tail);
        while (n < max) {
            struct cds_wfcq_node *wn = __cds_wfcq_dequeue_blocking(&q->head, &q->tail);
            if (wn == NULL)
                break;
            out[n++] = caa_container_of(wn, struct sl_qnode, wfcq);
            SL_TSAN_ACQUIRE(out[n - 1]); /* pairs with the push */
        }
        cds_wfcq_dequeue_unlock(&q->head, &q->tail);
    } else {
        rcu_read_lock();
        while (n < max) {
            struct cds_lfq_node_rcu *ln = cds_lfq_dequeue_rcu(q->lfq);
            if (ln == NULL)
                break;
            struct lfq_wrap *w = caa_container_of(ln, struct lfq_wrap, node);
            SL_TSAN_ACQUIRE(w); /* pairs with the push */
            out[n++] = w->item;
            SL_TSAN_ACQUIRE(out[n - 1]);
            /* Other dequeuers may still read w->node; free after a grace
             * period. call_rcu is allowed inside a read-side section. */
            call_rcu(&w->rcu, lfq_wrap_free);
        }
        rcu_read_unlock();
    }
    if (n == 0)
        return 0;

    uatomic_sub(&q->depth, (long)n);

    struct sl_stage_counters *c = &sl_tstats_self()->stage[q->stage];
    uint64_t now = sl_now_ns();
    for (size_t i = 0; i < n; i++) {
        uint64_t enq = out[i]->enq_ns;
        sl_hist_add(&c->q_wait, now > enq ? now - enq : 0);
    }
    SL_COUNTER_ADD(&c->q_dequeued, n);
    SL_COUNTER_ADD(&c->batches, 1);
    SL_COUNTER_ADD(&c->batch_items, n);
    if (n > SL_COUNTER_GET(&c->batch_max))
        __atomic_store_n(&c->batch_max, (uint64_t)n, __ATOMIC_RELAXED);
    return n;
}

/* A wake_all() issued between two waits of the same consumer (say, after it
 * checked its stop flag and before it called us again) would be lost if we
 * only compared futex_seq with a value read here. So each thread remembers the
 * seq it saw when its last wait on this queue returned: if seq moved since,
 * something was woken meanwhile and we return at once (spurious returns are
 * allowed). A thread's first wait ever also returns at once, to take that
 * record. A thread switching between queues keeps a record for the last one
 * only; on a switch it sleeps without that check. */
bool sl_queue_wait(struct sl_queue *q, int timeout_ms)
{
    assert(q->wake == SL_WAKE_FUTEX);

    uatomic_inc(&q->sleepers);
    /* Orders the announcement before the seq read and the emptiness check;
     * pairs with the cmm_smp_mb() in sl_queue_push() (Dekker). */
    cmm_smp_mb();
    uint32_t seq = uatomic_read(&q->futex_seq);
    /* Orders the seq read before the emptiness check: a bump we saw comes from
     * a push whose item we must then see; pairs with the barrier in push
     * before it reads `sleepers` and bumps. */
    cmm_smp_rmb();

    bool skip = !sl_queue_empty(q) || wait_seen.q == NULL ||
                (wait_seen.q == q && wait_seen.seq != seq);
    if (!skip) {
        struct timespec ts, *tsp = NULL;
        if (timeout_ms >= 0) {
            ts.tv_sec = timeout_ms / 1000;
            ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
            tsp = &ts;
        }
        /* Returns at once (EAGAIN) if a producer or wake_all bumped seq after
         * our read; otherwise the kernel queues us atomically with that
         * check, so the wake that follows the bump finds us. EINTR and
         * ETIMEDOUT are plain returns. */
        futex_call(&q->futex_seq, FUTEX_WAIT_PRIVATE, seq, tsp);
    }
    uatomic_dec(&q->sleepers);

    wait_seen.q = q;
    wait_seen.seq = uatomic_read(&q->futex_seq);
    /* Orders that read before the caller's next look at its own state (stop
     * flag, thread count); pairs with the cmm_smp_mb() in sl_queue_wake_all()
     * that orders the caller's state before the bump. */
    cmm_smp_rmb();
    return !sl_queue_empty(q);
}

void sl_queue_wake_all(struct sl_queue *q)
{
    /* Orders whatever the caller set before waking (stop flag, new thread
     * count) before the bump / eventfd write; pairs with the cmm_smp_rmb()
     * at the end of sl_queue_wait() and with the eventfd read in
     * sl_queue_sleep_end(). */
    cmm_smp_mb();
    if (q->wake == SL_WAKE_FUTEX) {
        uatomic_inc(&q->futex_seq);
        futex_call(&q->futex_seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
    } else {
        /* Left readable until the consumer's next sleep_end(), so a consumer
         * not sleeping now still sees it at its next epoll_wait(). */
        (void)eventfd_write(q->efd, 1);
    }
}

int sl_queue_eventfd(const struct sl_queue *q)
{
    return q->efd;
}

bool sl_queue_sleep_begin(struct sl_queue *q)
{
    assert(q->wake == SL_WAKE_EVENTFD);

    uatomic_set(&q->sleepers, 1);
    /* Orders the announcement before the emptiness check; pairs with the
     * cmm_smp_mb() in sl_queue_push() (Dekker). */
    cmm_smp_mb();
    if (!sl_queue_empty(q)) {
        /* A producer may have taken the announcement already and will write
         * the eventfd: a spurious wakeup, drained by the next sleep_end(). */
        uatomic_set(&q->sleepers, 0);
        return false;
    }
    return true;
}

void sl_queue_sleep_retract(struct sl_queue *q)
{
    /* A producer that took the announcement before this store writes the
     * eventfd at most once more, which the next epoll_wait() sees as one
     * spurious wakeup. */
    uatomic_set(&q->sleepers, 0);
}

void sl_queue_drain(struct sl_queue *q)
{
    eventfd_t v;

    /* Non-blocking: EAGAIN when nothing was written. */
    (void)eventfd_read(q->efd, &v);
}

void sl_queue_sleep_end(struct sl_queue *q)
{
    /* Retract first, then drain (see sl_queue_sleep_retract). */
    sl_queue_sleep_retract(q);
    sl_queue_drain(q);
}
