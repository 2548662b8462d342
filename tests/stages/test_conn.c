/* test_conn.c: the connection's state transitions and the end of a response
 * (stages/conn.c). The checks of sl_conn_set_state() are on here whatever the
 * build type, so an illegal transition must abort. */
#undef NDEBUG
#include "stages/conn.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>

#define N SL_CONN_NSTATES

/* The diagram of stages/conn.h, as a table: LEGAL[from][to]. */
static const bool legal[N][N] = {
    [SL_CONN_PROXY][SL_CONN_READ] = true,
    [SL_CONN_READ][SL_CONN_IDLE] = true,
    [SL_CONN_READ][SL_CONN_SEND] = true,
    [SL_CONN_IDLE][SL_CONN_READ] = true,
    [SL_CONN_SEND][SL_CONN_READ] = true,
    [SL_CONN_SEND][SL_CONN_LINGER] = true,
};

Test(conn_state, every_pair_is_as_the_diagram_says)
{
    for (int from = 0; from < N; from++)
        for (int to = 0; to < N; to++)
            cr_expect_eq(sl_conn_state_legal((enum sl_conn_state)from, (enum sl_conn_state)to),
                         legal[from][to], "%d -> %d", from, to);
}

Test(conn_state, a_keep_alive_session)
{
    sl_conn_stage = SL_STAGE_READER;
    struct sl_conn c = {.state = SL_CONN_PROXY, .owner = SL_STAGE_READER};
    sl_conn_set_state(&c, SL_CONN_READ);   /* PROXY header taken */
    sl_conn_set_state(&c, SL_CONN_SEND);   /* first response */
    sl_conn_set_state(&c, SL_CONN_READ);   /* kept alive, pipelined bytes */
    sl_conn_set_state(&c, SL_CONN_SEND);   /* second response */
    sl_conn_set_state(&c, SL_CONN_READ);   /* kept alive */
    sl_conn_set_state(&c, SL_CONN_IDLE);   /* nothing buffered: wait */
    sl_conn_set_state(&c, SL_CONN_READ);   /* input */
    sl_conn_set_state(&c, SL_CONN_SEND);   /* Connection: close */
    sl_conn_set_state(&c, SL_CONN_LINGER); /* drain, then close */
    cr_assert_eq(c.state, SL_CONN_LINGER);
}

Test(conn_state, send_without_a_request_aborts, .signal = SIGABRT)
{
    sl_conn_stage = SL_STAGE_READER;
    struct sl_conn c = {.state = SL_CONN_IDLE, .owner = SL_STAGE_READER};
    sl_conn_set_state(&c, SL_CONN_SEND);
}

Test(conn_state, nothing_leaves_linger, .signal = SIGABRT)
{
    sl_conn_stage = SL_STAGE_READER;
    struct sl_conn c = {.state = SL_CONN_LINGER, .owner = SL_STAGE_READER};
    sl_conn_set_state(&c, SL_CONN_READ);
}

Test(conn_state, a_request_before_the_proxy_header_aborts, .signal = SIGABRT)
{
    sl_conn_stage = SL_STAGE_READER;
    struct sl_conn c = {.state = SL_CONN_PROXY, .owner = SL_STAGE_READER};
    sl_conn_set_state(&c, SL_CONN_SEND);
}

Test(conn_state, a_keep_alive_session_across_stages)
{
    /* The reader prepares, a writer sends and ends the response, the reader
       takes it back: each changes the state only while its stage holds it. */
    struct sl_conn c = {.state = SL_CONN_READ, .owner = SL_STAGE_READER};
    sl_conn_stage = SL_STAGE_READER;
    sl_conn_set_state(&c, SL_CONN_SEND);
    c.owner = SL_STAGE_WRITER; /* what sl_to_writer() does before the push */
    sl_conn_stage = SL_STAGE_WRITER;
    sl_conn_set_state(&c, SL_CONN_READ);
    cr_assert_eq(c.state, SL_CONN_READ);
}

Test(conn_state, a_stage_that_does_not_hold_it_aborts, .signal = SIGABRT)
{
    /* Handed to a writer; the reader touching it afterwards is the bug. */
    struct sl_conn c = {.state = SL_CONN_READ, .owner = SL_STAGE_WRITER};
    sl_conn_stage = SL_STAGE_READER;
    sl_conn_set_state(&c, SL_CONN_SEND);
}

Test(conn_state, outside_the_pipeline_it_aborts, .signal = SIGABRT)
{
    struct sl_conn c = {.state = SL_CONN_READ, .owner = SL_STAGE_READER};
    sl_conn_stage = SL_STAGE_OTHER;
    sl_conn_set_state(&c, SL_CONN_SEND);
}

Test(conn_end_response, complete_ones_count_cut_short_ones_do_not)
{
    struct sl_tstats *st = sl_tstats_self();
    uint64_t req = st->ev.requests, c4 = st->ev.status_class[4], c2 = st->ev.status_class[2];
    struct sl_conn c = {.status = 404};
    c.parts = malloc(sizeof(*c.parts));
    sl_conn_end_response(&c, st, true);
    cr_assert_null(c.parts); /* freed */
    cr_assert_eq(st->ev.requests, req + 1);
    cr_assert_eq(st->ev.status_class[4], c4 + 1);
    c.status = 200;
    sl_conn_end_response(&c, st, false);
    cr_assert_eq(st->ev.requests, req + 1);
    cr_assert_eq(st->ev.status_class[2], c2);
}
