/* test_status_report.c: the status reports: busy fractions, the sample's
 * counters, and the JSON, table and Prometheus formats, from a made-up
 * sample (no server). */
#include "app/status_report.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Test(status_busy, fraction)
{
    cr_assert_float_eq(sl_report_busy_fraction(0, 0, 4), 0.0, 1e-12);
    cr_assert_float_eq(sl_report_busy_fraction(500, 1000, 1), 0.5, 1e-12);
    cr_assert_float_eq(sl_report_busy_fraction(1000, 1000, 4), 0.25, 1e-12);
    cr_assert_float_eq(sl_report_busy_fraction(9000, 1000, 2), 1.0, 1e-12); /* clamped */
    cr_assert_float_eq(sl_report_busy_fraction(10, 1000, 0), 0.0, 1e-12);
}

Test(status_busy, since_previous_sample_per_client)
{
    struct sl_status_sample s = {0};
    struct sl_busy_prev prev = {.ns = 1000000000ull};
    s.now_ns = 3000000000ull; /* 2 s later */
    for (int i = 0; i < SL_STATUS_NSTAGES; i++)
        s.stage[i].threads = 2;
    s.stage[SL_STAGE_WRITER].busy_ns = 1000000000ull; /* 1 s of 4 thread-seconds */
    double busy[SL_STATUS_NSTAGES];
    double iv = sl_report_busy_since(&s, &prev, busy);
    cr_assert_float_eq(iv, 2.0, 1e-9);
    cr_assert_float_eq(busy[SL_STAGE_WRITER], 0.25, 1e-9);
    cr_assert_float_eq(busy[SL_STAGE_READER], 0.0, 1e-9);
    cr_assert_eq(prev.ns, s.now_ns);
    /* Nothing worked since: 0, not a fraction of the whole run. */
    s.now_ns += 1000000000ull;
    sl_report_busy_since(&s, &prev, busy);
    cr_assert_float_eq(busy[SL_STAGE_WRITER], 0.0, 1e-9);
}

/* A sample with distinct, recognisable numbers. */
static void make_sample(struct sl_status_sample *s)
{
    struct sl_stats_snapshot *snap = sl_calloc(1, sizeof(*snap));
    for (int i = 0; i < SL_STAGE_COUNT; i++) {
        snap->stage[i].q_enqueued = 100 + (uint64_t)i;
        snap->stage[i].q_dequeued = 90 + (uint64_t)i;
        snap->stage[i].processed = 80 + (uint64_t)i;
        snap->stage[i].batches = 10;
        snap->stage[i].batch_items = 25;
        snap->stage[i].batch_max = 7;
        snap->stage[i].busy_ns = 2000000000ull;
    }
    for (uint64_t v = 1000; v <= 100000; v += 1000) /* 1..100 µs */
        sl_hist_add(&snap->stage[SL_STAGE_WRITER].q_wait, v);
    snap->ev.conn_accepted = 50;
    snap->ev.conn_closed = 45;
    snap->ev.conn_rejected = 2;
    snap->ev.shed_queue_wait = 7;
    snap->ev.refused_full = 5;
    snap->ev.closed_idle = 4;
    snap->ev.requests = 1000;
    snap->ev.sent_inline = 600;
    snap->ev.status_class[2] = 990;
    snap->ev.status_class[4] = 10;
    snap->ev.bytes_sent = 123456789;
    snap->ev.body_bytes_sent = 100000000;
    snap->ev.cache_hits = 900;
    snap->ev.cache_misses = 100;
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < SL_STATUS_NSTAGES; i++) {
        s->stage[i].threads = i == SL_STAGE_WRITER ? 8 : 1;
        s->stage[i].limit = -1;
    }
    s->stage[SL_STAGE_ACCEPTOR].depth = 3;
    s->stage[SL_STAGE_ACCEPTOR].limit = 4096;
    s->stage[SL_STAGE_WRITER].depth = 10;
    s->stage[SL_STAGE_WRITER].max_depth = 17;
    sl_report_fill(s, snap);
    free(snap);
    s->now_ns = 5000000000ull;
    s->uptime_ns = 4000000000ull;
    s->pid = 4242;
    s->queue_kind = "wfcq";
    s->optimistic_write = true;
    s->generation = 2;
    s->failed_reloads = 1;
    s->conns = 3;
    s->cache.entries = 12;
    s->cache.open_fds = 11;
    s->cache.body_bytes = 6000;
    s->cache.body_memory = 1 << 20;
    sl_adm_state(&s->adm); /* of a server not running: what the reports show then */
    s->reload = SL_RELOAD_FAILED;
    snprintf(s->reload_msg, sizeof(s->reload_msg), "x.conf:3: \"bad\"\tkey\\");
}

Test(status_sample, acceptor_queue_is_the_accept_queue)
{
    struct sl_status_sample s;
    make_sample(&s);
    const struct sl_stage_view *a = &s.stage[SL_STAGE_ACCEPTOR];
    cr_assert_eq(a->dequeued, 52);     /* accepted + rejected */
    cr_assert_eq(a->enqueued, 52 + 3); /* + still in the kernel's queue */
    const struct sl_stage_view *w = &s.stage[SL_STAGE_WRITER];
    cr_assert_eq(w->enqueued, 103);
    cr_assert_eq(w->dequeued, 93);
    cr_assert_eq(w->wait_count, 100);
    cr_assert_eq(w->wait_max_ns, 100000);
    /* Within the histogram's 12.5%. */
    cr_assert(w->wait_p50_ns >= 50000 && w->wait_p50_ns <= 57000, "%lu",
              (unsigned long)w->wait_p50_ns);
    cr_assert(w->wait_p99_ns >= 99000 && w->wait_p99_ns <= 100000);
}

Test(status_format, json_is_one_line_with_every_key)
{
    struct sl_status_sample s;
    make_sample(&s);
    double busy[SL_STATUS_NSTAGES] = {0.1, 0.2, 0.3, 0.4};
    struct sl_sbuf b = {0};
    s.max_connections = 20000;
    s.adm_dropping = true;
    s.adm.syn_memory = 512 * 1024;
    sl_report_json(&b, &s, busy, 1.5);
    cr_assert(b.len > 0);
    cr_assert_null(memchr(b.p, '\n', b.len));
    cr_assert_eq(b.p[0], '{');
    cr_assert_eq(b.p[b.len - 1], '}');
    static const char *const keys[] = {
        "\"version\":\"0.1\"",
        "\"pid\":4242",
        "\"uptime_s\":4.000",
        "\"generation\":2",
        "\"failed_reloads\":1",
        "\"queue_kind\":\"wfcq\"",
        "\"optimistic_write\":true",
        "\"interval_s\":1.500",
        "\"stages\":[{\"name\":\"acceptor\",\"threads\":1,\"busy\":0.1000",
        "{\"name\":\"reader\"",
        "{\"name\":\"detector\"",
        "{\"name\":\"writer\",\"threads\":8",
        "\"batch_mean\":2.50",
        "\"batch_max\":7",
        "\"limit\":4096",
        "\"queue\":{\"depth\":10,\"max_depth\":17,\"enqueued\":103,\"dequeued\":93",
        "\"wait_us\":{\"p50\":",
        "\"max\":100.000",
        "\"count\":100",
        "\"connections\":{\"current\":3,\"max\":20000,\"accepted\":50,\"closed\":45,"
        "\"rejected\":2",
        "\"admission\":{\"dropping\":true,\"shed_queue_wait\":7,\"refused_full\":5,"
        "\"closed_full\":2,\"closed_idle\":4,\"policy\":\"limit\",\"limit\":",
        "\"syn_memory\":524288}",
        "\"requests\":{\"total\":1000,\"1xx\":0,\"2xx\":990,\"3xx\":0,\"4xx\":10,\"5xx\":"
        "0,\"inline\":600}",
        "\"bytes_sent\":123456789",
        "\"body_bytes_sent\":100000000",
        "\"cache\":{\"entries\":12,\"open_fds\":11,\"body_bytes\":6000,"
        "\"body_memory\":1048576,\"hits\":900,\"misses\":100",
        "\"last_reload\":{\"ok\":false",
        "\"message\":\"x.conf:3: \\\"bad\\\"\\u0009key\\\\\"}"};
    for (size_t i = 0; i < SL_ARRAY_LEN(keys); i++)
        cr_assert(strstr(b.p, keys[i]) != NULL, "missing %s in %s", keys[i], b.p);
    /* Brackets balance outside strings. */
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < b.len; i++) {
        char ch = b.p[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            depth--;
            cr_assert(depth >= 0 || i == b.len - 1);
        }
    }
    cr_assert_eq(depth, 0);
    cr_assert(!in_str);
    sl_sbuf_free(&b);
}

Test(status_format, json_without_reload)
{
    struct sl_status_sample s;
    make_sample(&s);
    s.reload = SL_RELOAD_NONE;
    double busy[SL_STATUS_NSTAGES] = {0};
    struct sl_sbuf b = {0};
    sl_report_json(&b, &s, busy, 0);
    cr_assert(strstr(b.p, "\"last_reload\":null}") != NULL, "%s", b.p);
    sl_sbuf_free(&b);
}

Test(status_format, table_has_every_stage_and_no_empty_line)
{
    struct sl_status_sample s;
    make_sample(&s);
    double busy[SL_STATUS_NSTAGES] = {0.1, 0.2, 0.3, 0.4};
    struct sl_sbuf b = {0};
    sl_report_table(&b, &s, busy, 2.0);
    cr_assert(b.len > 0 && b.p[b.len - 1] == '\n');
    cr_assert_null(strstr(b.p, "\n\n"));
    static const char *const want[] = {"acceptor ",
                                       "reader ",
                                       "detector ",
                                       "writer ",
                                       "connections: 3 open",
                                       "requests: 1000",
                                       "600 sent inline by a reader",
                                       "sent: 123456789 bytes",
                                       "cache: 12 entries, 11 open fds, 6000 of 1048576 bytes of "
                                       "bodies in memory",
                                       "admission: ok; shed 7 (queue wait), at max_connections 5 "
                                       "refused with 503, 2 closed; 4 idle closed for room",
                                       "last reload: FAILED"};
    for (size_t i = 0; i < SL_ARRAY_LEN(want); i++)
        cr_assert(strstr(b.p, want[i]) != NULL, "missing %s in\n%s", want[i], b.p);
    sl_sbuf_free(&b);
}

/* Every line is a comment (# HELP / # TYPE sluice_...) or "sluice_name{labels} value",
 * and every sample's family was declared by a TYPE line before it. */
Test(status_format, metrics_follow_the_exposition_format)
{
    struct sl_status_sample s;
    make_sample(&s);
    struct sl_sbuf b = {0};
    sl_report_metrics(&b, &s);
    cr_assert(b.len > 0 && b.p[b.len - 1] == '\n');
    cr_assert_null(strstr(b.p, "\n\n"));
    char *text = sl_strdup(b.p);
    char typed[64][64];
    int ntyped = 0;
    int samples = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') {
            char kind[8], name[64];
            cr_assert_eq(sscanf(line, "# %7s %63s", kind, name), 2, "%s", line);
            cr_assert(strcmp(kind, "HELP") == 0 || strcmp(kind, "TYPE") == 0, "%s", line);
            cr_assert(strncmp(name, "sluice_", 7) == 0, "%s", line);
            if (strcmp(kind, "TYPE") == 0) {
                cr_assert(ntyped < 64);
                snprintf(typed[ntyped++], sizeof(typed[0]), "%s", name);
            }
            continue;
        }
        cr_assert(strncmp(line, "sluice_", 7) == 0, "%s", line);
        char *sp = strrchr(line, ' ');
        cr_assert_not_null(sp, "%s", line);
        char *end;
        strtod(sp + 1, &end);
        cr_assert(*end == '\0' && end != sp + 1, "bad value: %s", line);
        size_t nl = strcspn(line, "{ ");
        bool declared = false;
        for (int i = 0; i < ntyped; i++) {
            size_t tl = strlen(typed[i]);
            if (nl >= tl && strncmp(line, typed[i], tl) == 0 &&
                (nl == tl || strncmp(line + tl, "_sum", 4) == 0 ||
                 strncmp(line + tl, "_bucket", 7) == 0 ||
                 strncmp(line + tl, "_count", 6) == 0))
                declared = true;
        }
        cr_assert(declared, "no TYPE before %s", line);
        if (line[nl] == '{')
            cr_assert(strchr(line, '}') != NULL && strchr(line, '}') < sp, "%s", line);
        samples++;
    }
    cr_assert(samples > 50);
    cr_assert(strstr(b.p, "sluice_queue_depth{stage=\"writer\"} 10\n") != NULL);
    cr_assert(strstr(b.p, "sluice_stage_threads{stage=\"writer\"} 8\n") != NULL);
    cr_assert(strstr(b.p, "sluice_requests_total 1000\n") != NULL);
    cr_assert(strstr(b.p, "sluice_cache_body_bytes 6000\n") != NULL);
    cr_assert(strstr(b.p, "sluice_cache_body_memory_bytes 1048576\n") != NULL);
    cr_assert(strstr(b.p, "sluice_requests_inline_total 600\n") != NULL);
    cr_assert(strstr(b.p, "sluice_shed_total{reason=\"queue_wait\"} 7\n") != NULL);
    cr_assert(strstr(b.p, "sluice_shed_total{reason=\"refused_full\"} 5\n") != NULL);
    cr_assert(strstr(b.p, "sluice_shed_total{reason=\"closed_full\"} 2\n") != NULL);
    cr_assert(strstr(b.p, "sluice_shed_total{reason=\"closed_idle\"} 4\n") != NULL);
    cr_assert(strstr(b.p, "sluice_admission_dropping 0\n") != NULL);
    cr_assert(strstr(b.p, "sluice_responses_total{class=\"4xx\"} 10\n") != NULL);
    cr_assert(strstr(b.p, "sluice_queue_wait_seconds_count{stage=\"writer\"} 100\n") !=
              NULL);
    free(text);
    sl_sbuf_free(&b);
}

Test(status_format, json_string_escaping)
{
    struct sl_sbuf b = {0};
    sl_sbuf_json_str(&b, "a\"b\\c\nd\x01");
    cr_assert_str_eq(b.p, "\"a\\\"b\\\\c\\u000ad\\u0001\"");
    sl_sbuf_free(&b);
}

Test(status_format, durations)
{
    char d[32];
    sl_report_duration(d, sizeof(d), 1500000000ull);
    cr_assert_str_eq(d, "1.5s");
    sl_report_duration(d, sizeof(d), 62ull * 1000000000ull);
    cr_assert_str_eq(d, "1m02s");
    sl_report_duration(d, sizeof(d), 3723ull * 1000000000ull);
    cr_assert_str_eq(d, "1h02m03s");
    sl_report_duration(d, sizeof(d), 90000ull * 1000000000ull);
    cr_assert_str_eq(d, "1d01h00m");
}

/* Queue wait and response time are Prometheus histograms with the fixed
 * bounds of lib/prom.h; the JSON only gains keys. */
Test(status_format, metrics_histograms_and_fleet_keys)
{
    struct sl_status_sample s;
    make_sample(&s);
    for (uint64_t v = 1; v <= 3; v++)
        sl_hist_add(&s.response_time, v * 1000000); /* 1, 2, 3 ms */
    s.ev.proxy_bad = 3;
    s.ev.proxy_untrusted = 1;
    s.draining = true;
    struct sl_sbuf b = {0};
    sl_report_metrics(&b, &s);
    cr_assert(strstr(b.p, "# TYPE sluice_queue_wait_seconds histogram\n") != NULL);
    cr_assert_null(strstr(b.p, "quantile="), "no summary left");
    /* 100 waits of 1..100 us: 16 are under 2^14 ns (16.384 us), all under 2^18 ns. */
    cr_assert(strstr(b.p, "sluice_queue_wait_seconds_bucket{stage=\"writer\",le=\"1.6384e-05\"} "
                          "16\n") != NULL,
              "%s", b.p);
    cr_assert(strstr(b.p, "sluice_queue_wait_seconds_bucket{stage=\"writer\",le=\"0.000262144\"} "
                          "100\n") != NULL);
    cr_assert(strstr(b.p, "sluice_queue_wait_seconds_bucket{stage=\"writer\",le=\"+Inf\"} 100\n") !=
              NULL);
    cr_assert(strstr(b.p, "sluice_queue_wait_seconds_bucket{stage=\"reader\",le=\"+Inf\"} 0\n") !=
              NULL);
    cr_assert(strstr(b.p, "# TYPE sluice_response_seconds histogram\n") != NULL);
    cr_assert(strstr(b.p, "sluice_response_seconds_bucket{le=\"0.001048576\"} 1\n") != NULL);
    cr_assert(strstr(b.p, "sluice_response_seconds_bucket{le=\"0.004194304\"} 3\n") != NULL);
    cr_assert(strstr(b.p, "sluice_response_seconds_count 3\n") != NULL);
    cr_assert(strstr(b.p, "sluice_proxy_rejected_total{reason=\"bad\"} 3\n") != NULL);
    cr_assert(strstr(b.p, "sluice_proxy_rejected_total{reason=\"untrusted\"} 1\n") != NULL);
    cr_assert(strstr(b.p, "sluice_draining 1\n") != NULL);
    sl_sbuf_free(&b);
    double busy[SL_STATUS_NSTAGES] = {0};
    sl_report_json(&b, &s, busy, 1.0);
    cr_assert(strstr(b.p, "\"draining\":true,\"proxy\":{\"bad\":3,\"untrusted\":1}") != NULL,
              "%s", b.p);
    cr_assert(strstr(b.p, "\"response_us\":{") != NULL);
    sl_sbuf_free(&b);
}

