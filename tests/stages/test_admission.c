/* test_admission.c: the adaptive admission limit's rules (stages/admission.c). */
#include "stages/admission.h"

#include <criterion/criterion.h>
#include <limits.h>

#define MS 1000000ull
#define IDLE 0.5 /* readers with time to spare */
#define BUSY 0.0 /* readers busy all the time */

Test(admission, no_request_in_the_interval)
{
    /* Not reached: keep it. */
    cr_expect_float_eq(
        sl_adm_next_limit(500, 100, false, SL_ADM_NO_WAIT, 50 * MS, IDLE, 0, 16, 20000), 500, 1e-9);
    /* Reached by connections idle between requests while others wait: no
       queue at all, so an eighth more (idle keep-alive connections must not
       hold new clients back for good). */
    cr_expect_float_eq(
        sl_adm_next_limit(500, 500, true, SL_ADM_NO_WAIT, 50 * MS, IDLE, 0, 16, 20000), 562.5,
        1e-9);
}

Test(admission, standing_queue_shrinks_to_what_was_used)
{
    /* Twice the target: half of the connections that were open. */
    double l = sl_adm_next_limit(20000, 800, true, 100 * MS, 50 * MS, BUSY, 0, 16, 20000);
    cr_expect_float_eq(l, 400, 1e-9);
    /* Far above the target: at most halved per interval. */
    l = sl_adm_next_limit(1000, 1000, true, 5000 * MS, 50 * MS, BUSY, 0, 16, 20000);
    cr_expect_float_eq(l, 500, 1e-9);
    /* Just above: a little below what was used, never above it. */
    l = sl_adm_next_limit(1000, 1000, true, 51 * MS, 50 * MS, BUSY, 0, 16, 20000);
    cr_expect(l < 1000 && l >= 900, "got %f", l);
    /* Idle readers do not stop it falling: the queue is there. */
    l = sl_adm_next_limit(1000, 1000, true, 100 * MS, 50 * MS, IDLE, 0, 16, 20000);
    cr_expect_float_eq(l, 500, 1e-9);
}

Test(admission, never_below_the_floor_nor_above_max)
{
    cr_expect_float_eq(sl_adm_next_limit(20, 20, true, 1000 * MS, 50 * MS, BUSY, 0, 16, 20000), 16,
                       1e-9);
    cr_expect_float_eq(sl_adm_next_limit(19990, 19990, true, 0, 50 * MS, IDLE, 0, 16, 20000), 20000,
                       1e-9);
}

Test(admission, grows_only_when_it_binds_and_readers_have_room)
{
    /* Not reached in the interval: no reason to grow. */
    cr_expect_float_eq(sl_adm_next_limit(400, 100, false, 1 * MS, 50 * MS, IDLE, 0, 16, 20000), 400,
                       1e-9);
    /* Reached, with no wait at all: an eighth more. */
    cr_expect_float_eq(sl_adm_next_limit(400, 400, true, 0, 50 * MS, IDLE, 0, 16, 20000), 450,
                       1e-9);
    /* Reached, waits half the target: a sixteenth more. */
    cr_expect_float_eq(sl_adm_next_limit(400, 400, true, 25 * MS, 50 * MS, IDLE, 0, 16, 20000), 425,
                       1e-9);
    /* At the target: at least one more, so it can always probe upward. */
    cr_expect_float_eq(sl_adm_next_limit(400, 400, true, 50 * MS, 50 * MS, IDLE, 0, 16, 20000), 401,
                       1e-9);
    /* Reached, short waits, but the readers never waited for work: more
       connections would only queue longer. */
    cr_expect_float_eq(sl_adm_next_limit(400, 400, true, 1 * MS, 50 * MS, BUSY, 0, 16, 20000), 400,
                       1e-9);
    cr_expect_float_eq(
        sl_adm_next_limit(400, 400, true, 1 * MS, 50 * MS, SL_ADM_IDLE_MIN / 2, 0, 16, 20000), 400,
        1e-9);
    cr_expect(sl_adm_next_limit(400, 400, true, 1 * MS, 50 * MS, SL_ADM_IDLE_MIN, 0, 16, 20000) >
              400);
}

Test(admission, grows_fast_toward_the_clients_waiting_while_far_below_the_target)
{
    /* 1,744 clients waiting, no wait inside: up to doubling per interval. */
    cr_expect_float_eq(sl_adm_next_limit(256, 256, true, 0, 50 * MS, IDLE, 1744, 16, 20000), 512,
                       1e-9);
    cr_expect_float_eq(
        sl_adm_next_limit(256, 256, true, SL_ADM_NO_WAIT, 50 * MS, IDLE, 1744, 16, 20000), 512,
        1e-9);
    /* ... but by no more than are waiting. */
    cr_expect_float_eq(sl_adm_next_limit(256, 256, true, 0, 50 * MS, IDLE, 40, 16, 20000), 296,
                       1e-9);
    /* A tenth of the target: up to 0.9 x the limit. */
    cr_expect_float_eq(sl_adm_next_limit(400, 400, true, 5 * MS, 50 * MS, IDLE, 5000, 16, 20000),
                       760, 1e-9);
    /* Half the target or more: the eighth rule alone, whatever waits. */
    cr_expect_float_eq(sl_adm_next_limit(400, 400, true, 30 * MS, 50 * MS, IDLE, 5000, 16, 20000),
                       420, 1e-9);
    /* Nobody waiting, or unknown: the eighth rule. */
    cr_expect_float_eq(sl_adm_next_limit(400, 400, true, 0, 50 * MS, IDLE, -1, 16, 20000), 450,
                       1e-9);
    /* Readers busy, or a standing queue: no faster growth. */
    cr_expect_float_eq(sl_adm_next_limit(400, 400, true, 0, 50 * MS, BUSY, 5000, 16, 20000), 400,
                       1e-9);
    cr_expect_float_eq(sl_adm_next_limit(400, 400, true, 100 * MS, 50 * MS, IDLE, 5000, 16, 20000),
                       200, 1e-9);
}

Test(admission, off_without_a_target)
{
    cr_expect_float_eq(sl_adm_next_limit(300, 300, true, 900 * MS, 0, BUSY, 0, 16, 20000), 300,
                       1e-9);
    cr_expect_float_eq(sl_adm_next_limit(300, 300, true, 0, 0, IDLE, 0, 16, 20000), 300, 1e-9);
}

Test(admission, backlog_holds_three_targets_while_bound)
{
    /* 8,000 accepts/s, 50 ms target: 1,200 connections, 150 ms of them. */
    cr_expect_eq(sl_adm_next_backlog(8000, true, 50 * MS, 4096), 1200);
    cr_expect_eq(sl_adm_next_backlog(8000, false, 50 * MS, 4096), 4096, "not bound");
    cr_expect_eq(sl_adm_next_backlog(8000, true, 0, 4096), 4096, "off");
    cr_expect_eq(sl_adm_next_backlog(10, true, 50 * MS, 4096), SL_ADM_BACKLOG_MIN);
    cr_expect_eq(sl_adm_next_backlog(10, true, 50 * MS, 32), 32, "never above the configured");
    cr_expect_eq(sl_adm_next_backlog(1e6, true, 50 * MS, 4096), 4096);
}

Test(admission, standing_queue_is_more_than_busy_readers_take_in_a_target)
{
    /* 500 accepts in 0.1 s, readers busy all the time: 5,000/s, 250 in 50 ms. */
    cr_expect(sl_adm_standing_queue(251, 500, 0.1, 0.0, 50 * MS));
    cr_expect_not(sl_adm_standing_queue(250, 500, 0.1, 0.0, 50 * MS));
    /* Busy half the time: they take 10,000/s while busy. */
    cr_expect_not(sl_adm_standing_queue(400, 500, 0.1, 0.5, 50 * MS));
    cr_expect(sl_adm_standing_queue(501, 500, 0.1, 0.5, 50 * MS));
    /* A burst at idle readers: the busy share counts as SL_ADM_IDLE_MIN at
       least, 5 accepts in 10 ms read as 10,000/s. */
    cr_expect_not(sl_adm_standing_queue(400, 5, 0.01, 1.0, 50 * MS));
    /* Nothing accepted (the readers stuck, or the limit shut): any queue
       past the floor stands; none at or below it. */
    cr_expect(sl_adm_standing_queue(SL_ADM_BACKLOG_MIN + 1, 0, 0.1, 0.0, 50 * MS));
    cr_expect_not(sl_adm_standing_queue(SL_ADM_BACKLOG_MIN, 0, 0.1, 0.0, 50 * MS));
    cr_expect_not(sl_adm_standing_queue(-1, 0, 0.1, 0.0, 50 * MS), "unknown length");
    cr_expect_not(sl_adm_standing_queue(1000, 10, 0, 0.0, 50 * MS), "no span yet");
}

Test(admission, a_queue_at_idle_readers_stands_only_once_a_look_confirms_it)
{
    /* Busy readers: the standing-queue rule alone, whatever the look saw. */
    cr_expect(sl_adm_queue_stands(251, LONG_MAX, 500, 0.1, 0.0, 50 * MS));
    cr_expect_not(sl_adm_queue_stands(250, LONG_MAX, 500, 0.1, 0.0, 50 * MS));
    cr_expect(sl_adm_queue_stands(600, LONG_MAX, 500, 0.1, SL_ADM_BURST_IDLE - 0.01, 50 * MS));
    /* The burst that made the TSan test shed: 87 waiting at the tick of an
       interval of 0.14 s with 3 accepts and the readers idle 99% of it. */
    cr_expect(sl_adm_standing_queue(87, 3, 0.1414, 0.994, 50 * MS));
    cr_expect_not(sl_adm_queue_stands(87, LONG_MAX, 3, 0.1414, 0.994, 50 * MS));
    cr_expect_not(sl_adm_queue_stands(87, LONG_MAX, 3, 0.1414, SL_ADM_BURST_IDLE, 50 * MS));
    /* ... unless the look before found it standing, no longer than now. */
    cr_expect(sl_adm_queue_stands(87, 80, 3, 0.1414, 0.994, 50 * MS));
    cr_expect(sl_adm_queue_stands(87, 87, 3, 0.1414, 0.994, 50 * MS));
    cr_expect_not(sl_adm_queue_stands(87, 120, 3, 0.1414, 0.994, 50 * MS), "draining");
    /* Never a queue the rule itself does not call standing. */
    cr_expect_not(sl_adm_queue_stands(SL_ADM_BACKLOG_MIN, 10, 0, 0.1, 0.0, 50 * MS));
    cr_expect_not(sl_adm_queue_stands(100, 50, 10000, 0.1, 0.9, 50 * MS));
}

Test(admission, gate_grants_the_room_less_what_is_on_its_way)
{
    /* 100 of room, nothing given before: all of it. */
    cr_expect_eq(sl_adm_gate_grant(100, 0, 0), 100);
    /* Given 40, 10 left: 30 SYNs passed and are taken to be on their way. */
    cr_expect_eq(sl_adm_gate_grant(100, 40, 10), 70);
    /* Nothing used: the room, not more. */
    cr_expect_eq(sl_adm_gate_grant(100, 40, 40), 100);
    /* Two CPUs took the last one at once: -1 left counts as none. */
    cr_expect_eq(sl_adm_gate_grant(100, 40, -1), 60);
    /* More on their way than there is room: none, never below zero. */
    cr_expect_eq(sl_adm_gate_grant(20, 50, 0), 0);
    cr_expect_eq(sl_adm_gate_grant(0, 0, 0), 0);
}
