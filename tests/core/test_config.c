/* test_config.c: the INI parser, its defaults, and that every error names the
 * file, the line and the key. */
#include "core/config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *write_conf(const char *text)
{
    char *path = strdup("/tmp/sluice-test-conf-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    size_t n = strlen(text);
    cr_assert_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

/* Loads TEXT; returns the rc and leaves the message in ERR. */
static int load(const char *text, struct sl_config *cfg, char *err, size_t errsz,
                char **path_out)
{
    char *path = write_conf(text);
    int rc = sl_config_load(cfg, path, err, errsz);
    if (path_out)
        *path_out = path;
    else {
        unlink(path);
        free(path);
    }
    return rc;
}

Test(config, shipped_file_is_valid)
{
    struct sl_config cfg;
    char err[512] = "";
    int rc = sl_config_load(&cfg, SLUICE_SOURCE_DIR "/sluice.conf", err, sizeof(err));
    cr_assert_eq(rc, SL_OK, "%s", err);
    cr_expect_str_eq(cfg.listen, "127.0.0.1:8080");
    cr_expect_str_eq(cfg.root, "www");
    cr_expect_eq(cfg.max_connections, 20000);
    cr_expect_eq(cfg.writer_threads, sl_config_cpus()); /* threads = auto */
    cr_expect_geq(cfg.writer_threads, 1);
    cr_expect_eq(cfg.reader_threads, sl_config_cpus()); /* threads = auto */
    cr_expect_eq(cfg.reader_inline_max, 1024 * 1024);
    cr_expect_eq(cfg.queue_kind, SL_QUEUE_WFCQ);
    cr_expect_eq(cfg.cache_validity_ns, 1000000000ull);
    cr_expect_eq(cfg.max_header_size, 16384);
    sl_config_free(&cfg);
}

Test(config, values_are_parsed)
{
    struct sl_config cfg;
    char err[512] = "";
    int rc =
        load("[server]\nlisten = [::1]:9000\nroot = /srv/x\nstatus_socket_mode = 0660\n"
             "[queue]\nkind = rculfq ; inline comment\n"
             "[reader]\nthreads = 2\ninline_max = 64k\n"
             "[writer]\nthreads = 3\noptimistic = off\n"
             "[cache]\nvalidity = 250ms\n"
             "[timeouts]\nkeepalive = 2m\n[limits]\nmax_header_size = 32k\n",
             &cfg, err, sizeof(err), NULL);
    cr_assert_eq(rc, SL_OK, "%s", err);
    cr_expect_str_eq(cfg.listen, "[::1]:9000");
    cr_expect_str_eq(cfg.root, "/srv/x");
    cr_expect_eq(cfg.status_socket_mode, 0660);
    cr_expect_eq(cfg.queue_kind, SL_QUEUE_RCULFQ);
    cr_expect_eq(cfg.writer_threads, 3);
    cr_expect_eq(cfg.reader_threads, 2);
    cr_expect_eq(cfg.reader_inline_max, 65536);
    cr_expect_eq(cfg.optimistic_write, false);
    cr_expect_eq(cfg.cache_validity_ns, 250000000ull);
    cr_expect_eq(cfg.keepalive_timeout_ns, 120000000000ull);
    cr_expect_eq(cfg.max_header_size, 32768);
    /* untouched keys keep their defaults */
    cr_expect_eq(cfg.acceptor_threads, 1);
    cr_expect_eq(cfg.cache_small_file_max, 16384);
    sl_config_free(&cfg);
}

struct bad_case {
    const char *text;
    int line;
    const char *key;
    const char *reason;
};

static const struct bad_case bad[] = {
    {"[server]\nlisten = 1.2.3.4:80\nbogus = 1\n", 3, "server.bogus", "unknown key"},
    {"[nope]\nx = 1\n", 2, "nope.x", "unknown section"},
    {"[writer]\n\nthreads = many\n", 3, "writer.threads", "not an integer"},
    {"[writer]\nthreads = 0\n", 2, "writer.threads", "out of range"},
    {"[writer]\nthreads = automatic\n", 2, "writer.threads", "not an integer"},
    {"[reader]\nthreads = 100000\n", 2, "reader.threads", "out of range"},
    {"[cache]\nvalidity = 10 parsecs\n", 2, "cache.validity", "not a duration"},
    {"[writer]\noptimistic = perhaps\n", 2, "writer.optimistic", "yes/no"},
    {"[queue]\nkind = ringbuffer\n", 2, "queue.kind", "wfcq, rculfq"},
    {"[server]\nlog_level = loud\n", 2, "server.log_level", "not a level"},
    {"[server]\nstatus_socket_mode = 999\n", 2, "server.status_socket_mode", "octal"},
    {"[limits]\nmax_header_size = -5\n", 2, "limits.max_header_size", "not a size"},
    {"[server]\nroot = a\nroot = b\n", 3, "server.root", "given twice"},
    {"threads = 4\n", 1, "threads", "outside of any [section]"},
    {"[server\n", 1, "", "syntax error"},
    {"[admission]\non_full = drop\n", 2, "admission.on_full", "close, refuse, wait"},
    {"[admission]\nqueue_wait_target = soon\n", 2, "admission.queue_wait_target",
     "not a duration"},
    {"[admission]\nqueue_wait_interval = 0\n", 2, "admission.queue_wait_interval",
     "out of range"},
    {"[admission]\nretry_after = -1\n", 2, "admission.retry_after", "out of range"},
    {"[cache]\nsmall_file_max = 2m\n", 2, "cache.small_file_max", "out of range"},
};

Test(config, admission_and_small_files)
{
    struct sl_config cfg;
    char err[512] = "";
    sl_config_defaults(&cfg);
    cr_expect_eq(cfg.adm_target_ns, 50000000ull);
    cr_expect_eq(cfg.adm_interval_ns, 100000000ull);
    cr_expect_eq(cfg.adm_retry_after, 1);
    cr_expect_eq(cfg.adm_on_full, SL_FULL_CLOSE);
    cr_expect(!cfg.adm_close_idle);
    cr_expect_eq(cfg.cache_small_file_max, 16384);
    cr_expect(cfg.defer_accept);
    sl_config_free(&cfg);
    int rc = load("[admission]\nqueue_wait_target = 0\nqueue_wait_interval = 250ms\n"
                  "retry_after = 30\non_full = wait\nclose_idle = yes\n"
                  "[cache]\nsmall_file_max = 0\n",
                  &cfg, err, sizeof(err), NULL);
    cr_assert_eq(rc, SL_OK, "%s", err);
    cr_expect_eq(cfg.adm_target_ns, 0);
    cr_expect_eq(cfg.adm_interval_ns, 250000000ull);
    cr_expect_eq(cfg.adm_retry_after, 30);
    cr_expect_eq(cfg.adm_on_full, SL_FULL_WAIT);
    cr_expect(cfg.adm_close_idle);
    cr_expect_eq(cfg.cache_small_file_max, 0);
    sl_config_free(&cfg);
    rc = load("[admission]\non_full = refuse\n", &cfg, err, sizeof(err), NULL);
    cr_assert_eq(rc, SL_OK, "%s", err);
    cr_expect_eq(cfg.adm_on_full, SL_FULL_REFUSE);
    sl_config_free(&cfg);
}

Test(config, errors_name_file_line_and_key)
{
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sl_config cfg;
        char err[512] = "";
        char *path;
        int rc = load(bad[i].text, &cfg, err, sizeof(err), &path);
        cr_expect_eq(rc, SL_ERR, "case %zu accepted: %s", i, bad[i].text);
        char prefix[128];
        snprintf(prefix, sizeof(prefix), "%s:%d: ", path, bad[i].line);
        cr_expect(strncmp(err, prefix, strlen(prefix)) == 0, "case %zu: '%s' lacks '%s'",
                  i, err, prefix);
        cr_expect(strstr(err, bad[i].key) != NULL, "case %zu: '%s' lacks key '%s'", i,
                  err, bad[i].key);
        cr_expect(strstr(err, bad[i].reason) != NULL, "case %zu: '%s' lacks '%s'", i, err,
                  bad[i].reason);
        sl_config_free(&cfg);
        unlink(path);
        free(path);
    }
}

Test(config, cross_key_check_names_the_keys)
{
    struct sl_config cfg;
    char err[512] = "";
    int rc = load("[limits]\nmax_request_line = 64k\nmax_header_size = 16k\n", &cfg, err,
                  sizeof(err), NULL);
    cr_assert_eq(rc, SL_ERR);
    cr_expect(strstr(err, "limits.max_request_line") != NULL, "%s", err);
    cr_expect(strstr(err, ":2: ") != NULL, "line of the key expected: %s", err);
    sl_config_free(&cfg);
}

Test(config, missing_file)
{
    struct sl_config cfg;
    char err[512] = "";
    int rc = sl_config_load(&cfg, "/nonexistent/sluice.conf", err, sizeof(err));
    cr_assert_eq(rc, SL_ERR);
    cr_expect(strstr(err, "/nonexistent/sluice.conf:0: cannot open") == err, "%s", err);
    sl_config_free(&cfg);
}

Test(config, durations_and_sizes)
{
    uint64_t ns;
    cr_expect_eq(sl_parse_duration("1s", &ns), SL_OK);
    cr_expect_eq(ns, 1000000000ull);
    cr_expect_eq(sl_parse_duration("1.5", &ns), SL_OK);
    cr_expect_eq(ns, 1500000000ull);
    cr_expect_eq(sl_parse_duration("250ms", &ns), SL_OK);
    cr_expect_eq(ns, 250000000ull);
    cr_expect_eq(sl_parse_duration("2h", &ns), SL_OK);
    cr_expect_eq(ns, 7200000000000ull);
    cr_expect_eq(sl_parse_duration("-1s", &ns), SL_ERR);
    cr_expect_eq(sl_parse_duration("s", &ns), SL_ERR);
    cr_expect_eq(sl_parse_duration("5 weeks", &ns), SL_ERR);
    long sz;
    cr_expect_eq(sl_parse_size("8k", &sz), SL_OK);
    cr_expect_eq(sz, 8192);
    cr_expect_eq(sl_parse_size("1M", &sz), SL_OK);
    cr_expect_eq(sz, 1048576);
    cr_expect_eq(sl_parse_size("12", &sz), SL_OK);
    cr_expect_eq(sz, 12);
    cr_expect_eq(sl_parse_size("12x", &sz), SL_ERR);
    cr_expect_eq(sl_parse_size("", &sz), SL_ERR);
    cr_expect_eq(sl_parse_size("99999999999999999999g", &sz), SL_ERR);
}
