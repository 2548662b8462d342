/* test_accesslog.c: access log line formats (CLF and JSON), escaping, and that
 * records keep the request line, referer and agent. */
#include "core/accesslog.h"
#include "core/config.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static struct sl_logrec *make(const char *raw)
{
    struct sl_request req;
    int status = 0;
    struct sl_http_limits lim = {8192, 16384, 100};
    int n = sl_http_parse_request(raw, strlen(raw), &lim, &req, &status);
    cr_assert_gt(n, 0, "test request must parse (status %d)", status);
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons(1234)};
    inet_pton(AF_INET, "127.0.0.9", &peer.sin_addr);
    struct sl_logrec *r = sl_accesslog_record(&req, raw, strlen(raw), (struct sockaddr *)&peer);
    r->status = 200;
    r->body_bytes = 1234;
    r->bytes = 1500;
    return r;
}

Test(accesslog, combined_format)
{
    struct sl_logrec *r = make("GET /a/b.html?x=1 HTTP/1.1\r\nHost: h\r\nReferer: http://r/\r\n"
                               "User-Agent: curl/7.88\r\n\r\n");
    char line[4096];
    size_t n = sl_accesslog_format(r, SL_ACCESS_COMBINED, line, sizeof(line));
    line[n] = '\0';
    cr_expect_eq(line[n - 1], '\n');
    cr_expect(strncmp(line, "127.0.0.9 - - [", 15) == 0, "%s", line);
    cr_expect(strstr(line, "] \"GET /a/b.html?x=1 HTTP/1.1\" 200 1234 \"http://r/\" "
                           "\"curl/7.88\"\n") != NULL,
              "%s", line);
    free(r);
}

Test(accesslog, missing_fields_are_dashes)
{
    struct sl_logrec *r = make("HEAD / HTTP/1.0\r\n\r\n");
    char line[4096];
    size_t n = sl_accesslog_format(r, SL_ACCESS_COMBINED, line, sizeof(line));
    line[n] = '\0';
    cr_expect(strstr(line, "\"HEAD / HTTP/1.0\" 200 1234 \"-\" \"-\"\n") != NULL, "%s", line);
    free(r);
}

Test(accesslog, json_format_escapes)
{
    struct sl_logrec *r = make("GET /q\"x HTTP/1.1\r\nHost: h\r\nUser-Agent: a\\b\tc\r\n\r\n");
    char line[4096];
    size_t n = sl_accesslog_format(r, SL_ACCESS_JSON, line, sizeof(line));
    line[n] = '\0';
    cr_expect(strstr(line, "\"request\":\"GET /q\\\"x HTTP/1.1\"") != NULL, "%s", line);
    cr_expect(strstr(line, "\"agent\":\"a\\\\b\\u0009c\"") != NULL, "%s", line);
    cr_expect(strstr(line, "\"status\":200,\"body_bytes\":1234,\"bytes\":1500") != NULL, "%s",
              line);
    cr_expect(strstr(line, "\"remote\":\"127.0.0.9\"") != NULL, "%s", line);
    cr_expect(line[0] == '{' && line[n - 2] == '}' && line[n - 1] == '\n', "%s", line);
    free(r);
}

Test(accesslog, unparsable_request_logs_first_line_escaped)
{
    const char raw[] = "GARBAGE\x01LINE\r\nmore\r\n";
    struct sl_logrec *r = sl_accesslog_record(NULL, raw, sizeof(raw) - 1, NULL);
    r->status = 400;
    char line[4096];
    size_t n = sl_accesslog_format(r, SL_ACCESS_COMBINED, line, sizeof(line));
    line[n] = '\0';
    cr_expect(strstr(line, "\"GARBAGE\\x01LINE\" 400 0") != NULL, "%s", line);
    cr_expect(strncmp(line, "- - - [", 7) == 0, "%s", line);
    free(r);
}

Test(accesslog, long_fields_are_truncated_not_overflowed)
{
    size_t big = 5000;
    char *raw = malloc(big + 64);
    strcpy(raw, "GET /");
    memset(raw + 5, 'a', big);
    strcpy(raw + 5 + big, " HTTP/1.1\r\nHost: h\r\n\r\n");
    struct sl_request req;
    int status;
    struct sl_http_limits lim = {8192, 16384, 100};
    cr_assert_gt(sl_http_parse_request(raw, strlen(raw), &lim, &req, &status), 0);
    struct sl_logrec *r = sl_accesslog_record(&req, raw, strlen(raw), NULL);
    cr_expect_leq(r->line_len, 1024);
    char line[512];
    size_t n = sl_accesslog_format(r, SL_ACCESS_JSON, line, sizeof(line));
    cr_expect_leq(n, sizeof(line));
    cr_expect_eq(line[n - 1], '\n');
    free(r);
    free(raw);
}
