/* queue.h: the link between two pipeline stages. One interface over two
 * liburcu queues, chosen per server by [queue] kind: the wait-free
 * concurrent queue (wfcqueue, batch dequeue under one lock) and the RCU
 * lock-free queue (rculfqueue). Consumers take batches and sleep only when the
 * queue is empty; producers wake a consumer only when one said it sleeps. */
#ifndef SLUICE_QUEUE_H
#define SLUICE_QUEUE_H

#include "lib/common.h"
#include "lib/stats.h"

#include <urcu/wfcqueue.h>

enum sl_queue_kind {
    SL_QUEUE_WFCQ = 0,   /* urcu/wfcqueue.h: nodes embedded, reusable at once */
    SL_QUEUE_RCULFQ = 1, /* urcu/rculfqueue.h: a small node allocated per push,
                            freed after a grace period (call_rcu) */
};

/* How a sleeping consumer is woken. */
enum sl_queue_wake {
    SL_WAKE_FUTEX = 0,   /* consumers block in sl_queue_wait() (writer pool) */
    SL_WAKE_EVENTFD = 1, /* one consumer blocks in its own epoll_wait() on
                            sl_queue_eventfd() (reader, detector) */
};

/* The link an item carries while it sits in a queue. Embed it in the item
 * (struct sl_conn does); recover the item with caa_container_of(). An item is
 * in at most one queue at a time, and belongs to nobody while queued. */
struct sl_qnode {
    struct cds_wfcq_node wfcq; /* used by SL_QUEUE_WFCQ */
    uint64_t enq_ns;           /* stamped by sl_queue_push(), for wait times */
};

struct sl_queue {
    /* Producer side, its own cache line: the tail and wake state. */
    struct cds_wfcq_tail tail;
    int sleepers;       /* consumers that announced they will sleep */
    int consumers;      /* SL_WAKE_FUTEX: consumers that joined (atomic);
                           0 if none did: then every push may wake */
    uint32_t futex_seq; /* SL_WAKE_FUTEX: bumped on each wake */
    int efd;            /* SL_WAKE_EVENTFD: the eventfd, else -1 */
    long depth;         /* items queued now (atomic) */
    long max_depth;     /* largest depth seen (atomic, rarely written) */
    /* Consumer side. */
    struct cds_wfcq_head head __attribute__((aligned(SL_CACHELINE)));
    void *lfq; /* SL_QUEUE_RCULFQ: struct cds_lfq_queue_rcu */
    enum sl_queue_kind kind;
    enum sl_queue_wake wake;
    enum sl_stage_id stage; /* whose counters push/pop update */
};

/* Parses "wfcq" / "rculfq". Returns the kind, or -1 if S names neither. */
int sl_queue_kind_parse(const char *s);
/* "wfcq" or "rculfq". */
const char *sl_queue_kind_name(enum sl_queue_kind kind);

/* Prepares Q. For SL_WAKE_EVENTFD creates a non-blocking eventfd. STAGE picks
 * the per-thread counters (enqueued, dequeued, batches, queue wait) that push
 * and pop update. Returns SL_OK, or SL_ERR with errno set (nothing to undo).
 * For SL_QUEUE_RCULFQ, every thread that pushes or pops must be a registered
 * RCU reader thread (rcu_register_thread()). */
int sl_queue_init(struct sl_queue *q, enum sl_queue_kind kind, enum sl_queue_wake wake,
                  enum sl_stage_id stage);

/* Frees what init allocated. The queue must be empty and no thread may use it
 * any more. Cannot fail. */
void sl_queue_destroy(struct sl_queue *q);

/* Wake policy for SL_WAKE_FUTEX queues whose consumers joined: a push wakes a
 * sleeper only when every joined consumer sleeps, or when more than this many
 * items wait (a busy consumer may be blocked on disk). One awake consumer
 * drains a burst in batches instead of one wake-up (and context switch) per
 * item. */
#define SL_QUEUE_WAKE_DEPTH 16

/* Appends NODE and, if a consumer announced it sleeps, wakes exactly one.
 * Any number of threads may push concurrently with each other and with pop.
 * Never blocks (wait-free for wfcq; lock-free for rculfq). Cannot fail. */
void sl_queue_push(struct sl_queue *q, struct sl_qnode *node);

/* Takes up to MAX items in FIFO order into OUT without blocking. Returns how
 * many (0 if the queue was empty). Several consumers may pop concurrently;
 * each item is returned to exactly one. Updates the caller's dequeued, batch
 * and queue-wait counters. */
size_t sl_queue_pop_batch(struct sl_queue *q, struct sl_qnode **out, size_t max);

/* True if the queue looked empty at the time of the call (a hint). */
bool sl_queue_empty(struct sl_queue *q);

/* Current depth (items pushed and not yet popped) and the maximum seen. */
long sl_queue_depth(const struct sl_queue *q);
long sl_queue_max_depth(const struct sl_queue *q);

/* SL_WAKE_FUTEX consumers: blocks until the queue is non-empty, TIMEOUT_MS
 * elapses (-1: no timeout), or sl_queue_wake_all() is called. Returns
 * immediately if the queue is non-empty. Returns true if the queue may have
 * items. Spurious returns are allowed; callers loop. */
bool sl_queue_wait(struct sl_queue *q, int timeout_ms);

/* SL_WAKE_FUTEX consumers announce themselves (thread start) and leave
 * (thread exit), so pushes can tell whether any of them is awake. Leaving
 * wakes a sleeper if items are queued, so none is stranded. Cannot fail. */
void sl_queue_consumer_join(struct sl_queue *q);
void sl_queue_consumer_leave(struct sl_queue *q);

/* Deferred wake-ups for a producer that pushes a burst (a reader's epoll
 * round, a writer's batch): between begin and end, this thread's pushes
 * enqueue at once but wake nobody; end() wakes each queue pushed to at most
 * once (the same rule as an immediate push). Not nested. Cannot fail. */
void sl_queue_defer_begin(void);
void sl_queue_defer_end(void);

/* Wakes every consumer (shutdown, resize). Cannot fail. */
void sl_queue_wake_all(struct sl_queue *q);

/* SL_WAKE_EVENTFD consumers, around their epoll_wait():
 *   if (sl_queue_sleep_begin(q)) { epoll_wait(..., timeout); }
 *   else { epoll_wait(..., 0); }     // work is queued: do not sleep
 *   sl_queue_sleep_end(q);
 * sleep_begin announces the sleep, then re-checks the queue (the barrier pairs
 * with the one in push), and returns false if items arrived meanwhile.
 * sleep_end retracts the announcement and drains the eventfd. The eventfd
 * becomes readable when a producer wakes this consumer.
 * sleep_end is sleep_retract then drain. A consumer whose epoll set holds the
 * eventfd (level-triggered) may instead retract after every sleep and drain
 * only when epoll reported the eventfd readable: a write it did not see makes
 * its next epoll_wait() return at once, so nothing is lost, and a sleep that
 * ended for another reason costs no read(2) that would say EAGAIN. */
int sl_queue_eventfd(const struct sl_queue *q);
/* Has a consumer of Q announced that it sleeps and not been woken since? A
 * hint (it may change at once), for choosing a queue whose consumer runs. */
bool sl_queue_sleeping(struct sl_queue *q);
bool sl_queue_sleep_begin(struct sl_queue *q);
void sl_queue_sleep_end(struct sl_queue *q);
void sl_queue_sleep_retract(struct sl_queue *q);
void sl_queue_drain(struct sl_queue *q);

#endif
