/* writer.c: stage 4, a pool of threads sharing one queue. A writer sends the
 * prepared response (stages/send.c: head and body, sendfile(2) for files),
 * never blocking on the socket: on EAGAIN the connection goes to the
 * write-readiness detector. A finished response sends
 * the connection back to its reader (keep-alive), to lingering close, or
 * closes it. A writer may block on disk; that is why there is a pool. */
#include "lib/log.h"
#include "stages/pipeline.h"
#include "stages/send.h"

#include <urcu.h>

#define TURN_BYTES (1u << 20) /* bytes one connection may send per turn */
#define WAIT_MS 500           /* re-check the resize flag this often when idle */

static void serve(struct sl_conn *c, struct sl_tstats *st)
{
    switch (sl_send_some(c, TURN_BYTES, st)) {
    case SL_SENT_ALL:
        SL_COUNTER_ADD(&st->stage[SL_STAGE_WRITER].processed, 1);
        if (sl_send_finish(c, false, st) != SL_NEXT_CLOSED)
            sl_to_reader(c); /* keep-alive or lingering close: the reader's */
        break;
    case SL_SENT_AGAIN:
        sl_to_detector(c);
        break;
    case SL_SENT_TURN:
        sl_to_writer(c); /* back of the queue: others get a turn */
        break;
    case SL_SENT_ERR:
        sl_conn_close(c);
        break;
    }
}

void *sl_writer_main(void *arg)
{
    struct sl_thread *t = arg;
    sl_set_thread_name("writer-%d", t->index);
    sl_conn_stage = SL_STAGE_WRITER;
    rcu_register_thread();
    struct sl_tstats *st = sl_tstats_self();
    struct sl_stage_counters *sc = &st->stage[SL_STAGE_WRITER];
    struct sl_qnode *batch[4096];
    sl_queue_consumer_join(&sl_srv.writer_q);
    for (;;) {
        if (__atomic_load_n(&sl_srv.stopping, __ATOMIC_ACQUIRE) >= 2 ||
            t->index >= __atomic_load_n(&sl_srv.writer_target, __ATOMIC_ACQUIRE))
            break;
        sl_settings_refresh(); /* the settings for this batch, one snapshot */
        size_t n = sl_queue_pop_batch(
            &sl_srv.writer_q, batch,
            (size_t)sl_set.queue_batch);
        if (n == 0) {
            sl_queue_wait(&sl_srv.writer_q, WAIT_MS);
            continue;
        }
        uint64_t t0 = sl_now_ns();
        /* Connections going back to a reader wake it once per batch. */
        sl_queue_defer_begin();
        for (size_t i = 0; i < n; i++)
            serve(sl_conn_of(batch[i]), st);
        sl_queue_defer_end();
        SL_COUNTER_ADD(&sc->busy_ns, sl_now_ns() - t0);
    }
    sl_queue_consumer_leave(&sl_srv.writer_q);
    rcu_unregister_thread();
    return NULL;
}
