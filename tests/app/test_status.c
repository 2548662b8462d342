/* test_status.c: the status socket's pure parts: command parsing, line
 * framing, busy fractions, and the JSON, table and Prometheus formats. The
 * module is included whole so its static helpers are reachable; the library's
 * copy of status.o is then never pulled in (every symbol it defines is here). */
#include "app/status.c"

#include <criterion/criterion.h>

/* ---- commands ---- */

static struct command parse(const char *line)
{
    struct command c;
    parse_command(line, strlen(line), &c);
    return c;
}

Test(status_parse, plain_commands)
{
    cr_assert_eq(parse("help").kind, CMD_HELP);
    cr_assert_eq(parse("stats").kind, CMD_STATS);
    cr_assert_eq(parse("stats json").kind, CMD_STATS_JSON);
    cr_assert_eq(parse("  stats \t json  \r").kind, CMD_STATS_JSON);
    cr_assert_eq(parse("metrics\r").kind, CMD_METRICS);
    cr_assert_eq(parse("quit").kind, CMD_QUIT);
}

Test(status_parse, blank_lines_are_ignored)
{
    cr_assert_eq(parse("").kind, CMD_NONE);
    cr_assert_eq(parse("   \t ").kind, CMD_NONE);
    cr_assert_eq(parse("\r").kind, CMD_NONE);
}

Test(status_parse, set_threads)
{
    struct command c = parse("set writer.threads 3");
    cr_assert_eq(c.kind, CMD_SET);
    cr_assert_str_eq(c.stage, "writer");
    cr_assert_eq(c.n, 3);
    c = parse("set acceptor.threads 12");
    cr_assert_eq(c.kind, CMD_SET);
    cr_assert_str_eq(c.stage, "acceptor");
    cr_assert_eq(c.n, 12);
    /* Range checks belong to the server (sl_pipeline_set_threads). */
    c = parse("set writer.threads 0");
    cr_assert_eq(c.kind, CMD_SET);
    cr_assert_eq(c.n, 0);
}

Test(status_parse, set_errors_say_why)
{
    struct command c = parse("set writer.threads");
    cr_assert_eq(c.kind, CMD_ERROR);
    cr_assert(strstr(c.err, "usage: set STAGE.threads N") != NULL, "%s", c.err);
    c = parse("set bogus.threads 3");
    cr_assert_eq(c.kind, CMD_ERROR);
    cr_assert(strstr(c.err, "unknown stage 'bogus'") != NULL, "%s", c.err);
    c = parse("set writer.speed 3");
    cr_assert_eq(c.kind, CMD_ERROR);
    cr_assert(strstr(c.err, "only STAGE.threads") != NULL, "%s", c.err);
    c = parse("set .threads 3");
    cr_assert_eq(c.kind, CMD_ERROR);
    c = parse("set writer.threads three");
    cr_assert_eq(c.kind, CMD_ERROR);
    cr_assert(strstr(c.err, "'three' is not a thread count") != NULL, "%s", c.err);
    c = parse("set writer.threads -1");
    cr_assert_eq(c.kind, CMD_ERROR);
    c = parse("set writer.threads 1234567890123");
    cr_assert_eq(c.kind, CMD_ERROR);
}

Test(status_parse, unknown_and_malformed)
{
    struct command c = parse("frobnicate");
    cr_assert_eq(c.kind, CMD_ERROR);
    cr_assert(strstr(c.err, "unknown command 'frobnicate'") != NULL, "%s", c.err);
    c = parse("stats xml");
    cr_assert_eq(c.kind, CMD_ERROR);
    cr_assert(strstr(c.err, "usage: stats [json]") != NULL, "%s", c.err);
    cr_assert_eq(parse("help me").kind, CMD_ERROR);
    cr_assert_eq(parse("metrics now").kind, CMD_ERROR);
    cr_assert_eq(parse("a b c d e f g").kind, CMD_ERROR);
    cr_assert_eq(parse("STATS").kind, CMD_ERROR); /* case matters */
}

Test(status_parse, echoed_words_are_sanitized_and_short)
{
    char line[] = "ab\x01\x7f\xff";
    struct command c;
    parse_command(line, sizeof(line) - 1, &c);
    cr_assert_eq(c.kind, CMD_ERROR);
    cr_assert(strstr(c.err, "'ab??"
                            "?'") != NULL,
              "%s", c.err);
    char longw[300];
    memset(longw, 'x', sizeof(longw) - 1);
    longw[sizeof(longw) - 1] = '\0';
    c = parse(longw);
    cr_assert_eq(c.kind, CMD_ERROR);
    cr_assert(strstr(c.err, "...'") != NULL, "%s", c.err);
    cr_assert(strlen(c.err) < 100);
    /* NUL bytes inside a line are just bytes. */
    char nul[] = "help\0x";
    parse_command(nul, sizeof(nul) - 1, &c);
    cr_assert_eq(c.kind, CMD_ERROR);
}

/* ---- framing of a client's input ---- */

static struct client *fake_client(void)
{
    struct client *c = sl_calloc(1, sizeof(*c));
    c->fd = -1;
    return c;
}

static void feed(struct client *c, const char *s, size_t n)
{
    cr_assert(c->in_len + n <= sizeof(c->in));
    memcpy(c->in + c->in_len, s, n);
    c->in_len += n;
    run_lines(c, false);
}

static void feed_str(struct client *c, const char *s)
{
    feed(c, s, strlen(s));
}

static const char *out_str(struct client *c)
{
    sb_put(&c->out, "", 0); /* NUL-terminate */
    return c->out.p;
}

static void free_client(struct client *c)
{
    sb_free(&c->out);
    free(c);
}

Test(status_lines, several_commands_one_write_each_reply_framed)
{
    struct client *c = fake_client();
    feed_str(c, "help\nbogus\n\nset writer.speed 1\n");
    const char *o = out_str(c);
    cr_assert(strncmp(o, help_text, strlen(help_text)) == 0);
    const char *rest = o + strlen(help_text);
    cr_assert_str_eq(
        rest, "\nerror: unknown command 'bogus' (try: help)\n\n"
              "error: cannot set 'writer.speed': only STAGE.threads can be set\n\n");
    cr_assert_eq(c->in_len, 0);
    free_client(c);
}

Test(status_lines, partial_line_waits_for_its_newline)
{
    struct client *c = fake_client();
    feed_str(c, "he");
    cr_assert_eq(c->out.len, 0);
    feed_str(c, "lp\r\n");
    cr_assert(strncmp(out_str(c), help_text, strlen(help_text)) == 0);
    free_client(c);
}

Test(status_lines, too_long_line_is_refused_then_skipped)
{
    struct client *c = fake_client();
    char big[MAX_LINE];
    memset(big, 'a', sizeof(big));
    feed(c, big, sizeof(big));
    cr_assert_str_eq(out_str(c), "error: line too long (max 4096 bytes)\n\n");
    cr_assert(c->discarding);
    /* More of the same line: dropped silently, then the next line works. */
    feed(c, big, 100);
    feed_str(c, "aaa\nbogus\n");
    cr_assert_str_eq(out_str(c), "error: line too long (max 4096 bytes)\n\n"
                                 "error: unknown command 'bogus' (try: help)\n\n");
    cr_assert(!c->discarding);
    free_client(c);
}

Test(status_lines, quit_stops_taking_commands)
{
    struct client *c = fake_client();
    feed_str(c, "quit\nhelp\n");
    cr_assert(c->closing);
    cr_assert_eq(c->out.len, 0);
    free_client(c);
}

Test(status_lines, last_unterminated_line_runs_at_eof)
{
    struct client *c = fake_client();
    memcpy(c->in, "bogus", 5);
    c->in_len = 5;
    run_lines(c, true);
    cr_assert_str_eq(out_str(c), "error: unknown command 'bogus' (try: help)\n\n");
    free_client(c);
}

/* ---- figures ---- */

Test(status_busy, fraction)
{
    cr_assert_float_eq(busy_fraction(0, 0, 4), 0.0, 1e-12);
    cr_assert_float_eq(busy_fraction(500, 1000, 1), 0.5, 1e-12);
    cr_assert_float_eq(busy_fraction(1000, 1000, 4), 0.25, 1e-12);
    cr_assert_float_eq(busy_fraction(9000, 1000, 2), 1.0, 1e-12); /* clamped */
    cr_assert_float_eq(busy_fraction(10, 1000, 0), 0.0, 1e-12);
}

Test(status_busy, since_previous_sample_per_client)
{
    struct status_sample s = {0};
    struct busy_prev prev = {.ns = 1000000000ull};
    s.now_ns = 3000000000ull; /* 2 s later */
    for (int i = 0; i < NSTAGES; i++)
        s.stage[i].threads = 2;
    s.stage[SL_STAGE_WRITER].busy_ns = 1000000000ull; /* 1 s of 4 thread-seconds */
    double busy[NSTAGES];
    double iv = busy_since(&s, &prev, busy);
    cr_assert_float_eq(iv, 2.0, 1e-9);
    cr_assert_float_eq(busy[SL_STAGE_WRITER], 0.25, 1e-9);
    cr_assert_float_eq(busy[SL_STAGE_READER], 0.0, 1e-9);
    cr_assert_eq(prev.ns, s.now_ns);
    /* Nothing worked since: 0, not a fraction of the whole run. */
    s.now_ns += 1000000000ull;
    busy_since(&s, &prev, busy);
    cr_assert_float_eq(busy[SL_STAGE_WRITER], 0.0, 1e-9);
}

/* A sample with distinct, recognisable numbers. */
static void make_sample(struct status_sample *s)
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
    for (int i = 0; i < NSTAGES; i++) {
        s->stage[i].threads = i == SL_STAGE_WRITER ? 8 : 1;
        s->stage[i].limit = -1;
    }
    s->stage[SL_STAGE_ACCEPTOR].depth = 3;
    s->stage[SL_STAGE_ACCEPTOR].limit = 4096;
    s->stage[SL_STAGE_WRITER].depth = 10;
    s->stage[SL_STAGE_WRITER].max_depth = 17;
    sample_fill(s, snap);
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
    s->reload = RELOAD_FAILED;
    snprintf(s->reload_msg, sizeof(s->reload_msg), "x.conf:3: \"bad\"\tkey\\");
}

Test(status_sample, acceptor_queue_is_the_accept_queue)
{
    struct status_sample s;
    make_sample(&s);
    const struct stage_view *a = &s.stage[SL_STAGE_ACCEPTOR];
    cr_assert_eq(a->dequeued, 52);     /* accepted + rejected */
    cr_assert_eq(a->enqueued, 52 + 3); /* + still in the kernel's queue */
    const struct stage_view *w = &s.stage[SL_STAGE_WRITER];
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
    struct status_sample s;
    make_sample(&s);
    double busy[NSTAGES] = {0.1, 0.2, 0.3, 0.4};
    struct sbuf b = {0};
    sl_set.max_connections = 20000;
    sl_srv.adm_dropping = 1;
    format_json(&b, &s, busy, 1.5);
    sl_set.max_connections = 0;
    sl_srv.adm_dropping = 0;
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
        "\"requests\":{\"total\":1000,\"1xx\":0,\"2xx\":990,\"3xx\":0,\"4xx\":10,\"5xx\":"
        "0,\"inline\":600}",
        "\"bytes_sent\":123456789",
        "\"body_bytes_sent\":100000000",
        "\"cache\":{\"entries\":12,\"open_fds\":11,\"hits\":900,\"misses\":100",
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
    sb_free(&b);
}

Test(status_format, json_without_reload)
{
    struct status_sample s;
    make_sample(&s);
    s.reload = RELOAD_NONE;
    double busy[NSTAGES] = {0};
    struct sbuf b = {0};
    format_json(&b, &s, busy, 0);
    cr_assert(strstr(b.p, "\"last_reload\":null}") != NULL, "%s", b.p);
    sb_free(&b);
}

Test(status_format, table_has_every_stage_and_no_empty_line)
{
    struct status_sample s;
    make_sample(&s);
    double busy[NSTAGES] = {0.1, 0.2, 0.3, 0.4};
    struct sbuf b = {0};
    format_table(&b, &s, busy, 2.0);
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
                                       "cache: 12 entries",
                                       "admission: ok; shed 7 (queue wait), at max_connections 5 "
                                       "refused with 503, 2 closed; 4 idle closed for room",
                                       "last reload: FAILED"};
    for (size_t i = 0; i < SL_ARRAY_LEN(want); i++)
        cr_assert(strstr(b.p, want[i]) != NULL, "missing %s in\n%s", want[i], b.p);
    sb_free(&b);
}

/* Every line is a comment (# HELP / # TYPE sluice_...) or "sluice_name{labels} value",
 * and every sample's family was declared by a TYPE line before it. */
Test(status_format, metrics_follow_the_exposition_format)
{
    struct status_sample s;
    make_sample(&s);
    struct sbuf b = {0};
    format_metrics(&b, &s);
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
    sb_free(&b);
}

Test(status_format, json_string_escaping)
{
    struct sbuf b = {0};
    sb_json_str(&b, "a\"b\\c\nd\x01");
    cr_assert_str_eq(b.p, "\"a\\\"b\\\\c\\u000ad\\u0001\"");
    sb_free(&b);
}

Test(status_format, durations)
{
    char d[32];
    format_duration(d, sizeof(d), 1500000000ull);
    cr_assert_str_eq(d, "1.5s");
    format_duration(d, sizeof(d), 62ull * 1000000000ull);
    cr_assert_str_eq(d, "1m02s");
    format_duration(d, sizeof(d), 3723ull * 1000000000ull);
    cr_assert_str_eq(d, "1h02m03s");
    format_duration(d, sizeof(d), 90000ull * 1000000000ull);
    cr_assert_str_eq(d, "1d01h00m");
}

/* Queue wait and response time are Prometheus histograms with the fixed
 * bounds of lib/prom.h; the JSON only gains keys. */
Test(status_format, metrics_histograms_and_fleet_keys)
{
    struct status_sample s;
    make_sample(&s);
    for (uint64_t v = 1; v <= 3; v++)
        sl_hist_add(&s.response_time, v * 1000000); /* 1, 2, 3 ms */
    s.ev.proxy_bad = 3;
    s.ev.proxy_untrusted = 1;
    s.draining = true;
    struct sbuf b = {0};
    format_metrics(&b, &s);
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
    sb_free(&b);
    double busy[NSTAGES] = {0};
    format_json(&b, &s, busy, 1.0);
    cr_assert(strstr(b.p, "\"draining\":true,\"proxy\":{\"bad\":3,\"untrusted\":1}") != NULL,
              "%s", b.p);
    cr_assert(strstr(b.p, "\"response_us\":{") != NULL);
    sb_free(&b);
}

Test(status_parse, drain)
{
    cr_assert_eq(parse("drain").kind, CMD_DRAIN);
    struct command c = parse("drain now");
    cr_assert_eq(c.kind, CMD_ERROR);
    cr_assert(strstr(c.err, "drain takes no arguments") != NULL);
}
