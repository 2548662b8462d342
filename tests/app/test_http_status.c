/* test_http_status.c: the pure parts of the HTTP status listener and agent
 * check: routing, the agent weight and reply, and stage progress. */
#include "app/http_status.h"

#include <criterion/criterion.h>
#include <string.h>

static enum sl_hs_route route(const char *head, bool *h)
{
    return sl_hs_route(head, strlen(head), h);
}

Test(http_status, routes)
{
    bool h;
    cr_assert_eq(route("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &h), SL_HS_METRICS);
    cr_assert(!h);
    cr_assert_eq(route("HEAD /healthz HTTP/1.0\r\n\r\n", &h), SL_HS_HEALTHZ);
    cr_assert(h);
    cr_assert_eq(route("GET /readyz HTTP/1.1\n\n", &h), SL_HS_READYZ);
    cr_assert_eq(route("GET /status?x=1 HTTP/1.1\r\n\r\n", &h), SL_HS_STATUS);
    cr_assert_eq(route("GET / HTTP/1.1\r\n\r\n", &h), SL_HS_NOT_FOUND);
    cr_assert_eq(route("GET /metrics/ HTTP/1.1\r\n\r\n", &h), SL_HS_NOT_FOUND);
    cr_assert_eq(route("GET /metricsx HTTP/1.1\r\n\r\n", &h), SL_HS_NOT_FOUND);
    cr_assert_eq(route("GET /METRICS HTTP/1.1\r\n\r\n", &h), SL_HS_NOT_FOUND);
    cr_assert_eq(route("POST /metrics HTTP/1.1\r\n\r\n", &h), SL_HS_BAD_METHOD);
    cr_assert_eq(route("DELETE /readyz HTTP/1.1\r\n\r\n", &h), SL_HS_BAD_METHOD);
    cr_assert_eq(route("get /metrics HTTP/1.1\r\n\r\n", &h), SL_HS_BAD_REQUEST);
    cr_assert_eq(route("GET /metrics\r\n\r\n", &h), SL_HS_BAD_REQUEST);
    cr_assert_eq(route("GET metrics HTTP/1.1\r\n\r\n", &h), SL_HS_BAD_REQUEST);
    cr_assert_eq(route("GET /metrics HTTP/2.0\r\n\r\n", &h), SL_HS_BAD_REQUEST);
    cr_assert_eq(route("GET  /metrics HTTP/1.1\r\n\r\n", &h), SL_HS_BAD_REQUEST);
    cr_assert_eq(route("\r\n\r\n", &h), SL_HS_BAD_REQUEST);
    cr_assert_eq(route("", &h), SL_HS_BAD_REQUEST);
}

Test(http_status, agent_weight)
{
    cr_assert_eq(sl_agent_weight(1.0, 0.0, false), 100);
    cr_assert_eq(sl_agent_weight(1.0, 0.0, true), 0, "draining");
    cr_assert_eq(sl_agent_weight(1.0, 1.0, true), 0);
    cr_assert_eq(sl_agent_weight(1.0, 1.0, false), 10, "all shedding");
    cr_assert_eq(sl_agent_weight(1.0, 0.5, false), 55);
    cr_assert_eq(sl_agent_weight(0.25, 0.0, false), 25, "a quarter of the work");
    cr_assert_eq(sl_agent_weight(0.3, 1.0, false), 3);
    cr_assert_eq(sl_agent_weight(0.00005, 1.0, false), 1, "never 0 unless draining");
    cr_assert_eq(sl_agent_weight(0.0, 0.0, false), 1);
    cr_assert_eq(sl_agent_weight(2.0, 0.0, false), 100, "capacity clamped to 1");
    cr_assert_eq(sl_agent_weight(-1.0, 0.0, false), 1, "and to 0");
    cr_assert_eq(sl_agent_weight(1.0, 2.0, false), 10, "shedding clamped to 1");
    /* Monotonic: more shedding or less capacity never raises the weight. */
    for (int l = 1; l <= 10; l++)
        for (int k = 0; k < 10; k++) {
            cr_assert_geq(sl_agent_weight(l / 10.0, k / 10.0, false),
                          sl_agent_weight(l / 10.0, (k + 1) / 10.0, false));
            cr_assert_geq(sl_agent_weight(l / 10.0, k / 10.0, false),
                          sl_agent_weight((l - 1) / 10.0, k / 10.0, false));
        }
}

Test(http_status, agent_capacity)
{
    const uint64_t ms = 1000000;
    cr_assert_float_eq(sl_agent_capacity(0, 0, UINT64_MAX, 50 * ms), 1.0, 1e-9, "nothing known");
    cr_assert_float_eq(sl_agent_capacity(100, 0, 10 * ms, 50 * ms), 1.0, 1e-9,
                       "nothing waits, within the target");
    cr_assert_float_eq(sl_agent_capacity(100, 300, 10 * ms, 50 * ms), 0.25, 1e-9,
                       "a quarter of those present admitted");
    cr_assert_float_eq(sl_agent_capacity(100, 0, 200 * ms, 50 * ms), 0.25, 1e-9,
                       "waits four times the target");
    cr_assert_float_eq(sl_agent_capacity(100, 100, 100 * ms, 50 * ms), 0.25, 1e-9, "both");
    cr_assert_float_eq(sl_agent_capacity(0, 500, 10 * ms, 50 * ms), 1.0, 1e-9,
                       "no limit in force: waiting is the kernel's business");
    cr_assert_float_eq(sl_agent_capacity(100, 0, 200 * ms, 0), 1.0, 1e-9, "control off");
}

Test(http_status, agent_reply)
{
    char out[64];
    cr_assert_eq(sl_agent_reply(out, sizeof(out), false, false, 73), 13);
    cr_assert_str_eq(out, "ready up 73%\n");
    sl_agent_reply(out, sizeof(out), true, false, 0);
    cr_assert_str_eq(out, "drain\n");
    sl_agent_reply(out, sizeof(out), true, true, 0);
    cr_assert_str_eq(out, "drain\n");
    sl_agent_reply(out, sizeof(out), false, true, 50);
    cr_assert_str_eq(out, "maint\n");
}

Test(http_status, stage_progress)
{
    struct sl_hs_progress p[SL_HS_STAGES];
    memset(p, 0, sizeof(p));
    char why[256];
    const uint64_t s = 1000000000ull, stall = 5 * s;
    uint64_t done[SL_HS_STAGES] = {10, 10, 10, 10};
    long depth[SL_HS_STAGES] = {0, 3, 0, 4};
    cr_assert(sl_hs_health(p, done, depth, 1 * s, stall, why, sizeof(why)));
    cr_assert(sl_hs_health(p, done, depth, 5 * s, stall, why, sizeof(why)), "4 s: not yet");
    done[1] = 11; /* the reader moves, the writer does not */
    cr_assert(!sl_hs_health(p, done, depth, 6 * s, stall, why, sizeof(why)));
    cr_assert_str_eq(why, "writer: 4 queued, no progress for 5.0s");
    depth[1] = 2;
    cr_assert(!sl_hs_health(p, done, depth, 12 * s, stall, why, sizeof(why)));
    cr_assert_str_eq(why, "reader: 2 queued, no progress for 6.0s; writer: 4 queued, no "
                          "progress for 11.0s");
    depth[1] = 0; /* an empty queue is no stall */
    done[3] = 12;
    cr_assert(sl_hs_health(p, done, depth, 13 * s, stall, why, sizeof(why)), "%s", why);
    cr_assert_str_eq(why, "");
}
