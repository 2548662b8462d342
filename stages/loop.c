/* loop.c: the event loop shared by the reader and the detector; see loop.h. */
#include "stages/loop.h"
#include "lib/common.h"

#include <errno.h>
#include <limits.h>
#include <unistd.h>

int sl_loop_timeout_ms(uint64_t now, uint64_t due)
{
    /* Compared before subtracting: in unsigned arithmetic a round that
       overran DUE would wrap to an enormous value, and its cast to int could
       be negative, which epoll_wait() reads as "sleep until an event". */
    if (due <= now)
        return 0;
    uint64_t ns = due - now;
    uint64_t ms = ns / 1000000 + (ns % 1000000 != 0); /* rounded up, without overflow */
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

bool sl_loop_sweep_due(uint64_t *next_sweep, uint64_t now, uint64_t period)
{
    if (now < *next_sweep)
        return false;
    *next_sweep = now + period;
    return true;
}

int sl_loop_init(struct sl_loop *l, struct sl_queue *q, uint64_t period)
{
    *l = (struct sl_loop){.epfd = -1, .q = q, .period = period};
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0)
        return SL_ERR;
    struct epoll_event wake = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, sl_queue_eventfd(q), &wake) != 0) {
        int e = errno;
        close(l->epfd);
        l->epfd = -1;
        errno = e;
        return SL_ERR;
    }
    return SL_OK;
}

bool sl_loop_sweep(struct sl_loop *l, uint64_t now)
{
    return sl_loop_sweep_due(&l->next_sweep, now, l->period);
}

int sl_loop_wait(struct sl_loop *l, struct epoll_event *evs, int max, bool more,
                 uint64_t now)
{
    uint64_t due = l->next_sweep;
    if (l->wake_by != 0 && l->wake_by < due)
        due = l->wake_by;
    int timeout = more ? 0 : sl_loop_timeout_ms(now, due);
    bool slept = false;
    if (timeout > 0) {
        if (sl_queue_sleep_begin(l->q))
            slept = true;
        else
            timeout = 0; /* items arrived meanwhile: do not sleep */
    }
    int nev = epoll_wait(l->epfd, evs, max, timeout);
    if (slept)
        sl_queue_sleep_retract(l->q);
    /* The eventfd is read only when reported (level-triggered: a write after
       this epoll_wait makes the next one return at once), so a sleep ended
       by a connection's event costs no read that would say EAGAIN. */
    for (int i = 0; i < nev; i++) {
        if (evs[i].data.ptr == NULL) {
            sl_queue_drain(l->q);
            break;
        }
    }
    return nev;
}

void sl_loop_close(struct sl_loop *l)
{
    if (l->epfd >= 0)
        close(l->epfd);
    l->epfd = -1;
}

void sl_timer_add(struct cds_list_head *list, struct sl_conn *c)
{
    struct cds_list_head *pos = list->prev;
    while (pos != list &&
           cds_list_entry(pos, struct sl_conn, timer_link)->deadline_ns > c->deadline_ns)
        pos = pos->prev;
    cds_list_add(&c->timer_link, pos); /* right after POS */
}
