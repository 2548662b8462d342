/* test_status.c: the status socket's pure parts: command parsing and line
 * framing (the reports: test_status_report.c). The
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
    sl_sbuf_put(&c->out, "", 0); /* NUL-terminate */
    return c->out.p;
}

static void free_client(struct client *c)
{
    sl_sbuf_free(&c->out);
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

Test(status_parse, drain)
{
    cr_assert_eq(parse("drain").kind, CMD_DRAIN);
    struct command c = parse("drain now");
    cr_assert_eq(c.kind, CMD_ERROR);
    cr_assert(strstr(c.err, "drain takes no arguments") != NULL);
}
