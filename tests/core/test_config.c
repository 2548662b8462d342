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
    cr_expect_eq(cfg.acceptor_threads, 0);
    cr_expect_eq(cfg.cache_small_file_max, 131072);
    cr_expect_eq(cfg.cache_body_memory, -1, "auto");
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
    {"[admission]\n\ngate_syns = maybe\n", 3, "admission.gate_syns", "yes/no"},
    {"[cache]\nsmall_file_max = 2m\n", 2, "cache.small_file_max", "out of range"},
    {"[cache]\nbody_memory = lots\n", 2, "cache.body_memory", "or auto"},
    {"[cache]\n\nbody_memory = 2048g\n", 3, "cache.body_memory", "out of range"},
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
    cr_expect(cfg.adm_drop_syn_retries);
    cr_expect(cfg.adm_gate_syns);
    cr_expect_eq(cfg.cache_small_file_max, 131072);
    cr_expect_eq(cfg.cache_body_memory, -1, "auto");
    cr_expect(cfg.defer_accept);
    sl_config_free(&cfg);
    int rc = load("[admission]\nqueue_wait_target = 0\nqueue_wait_interval = 250ms\n"
                  "retry_after = 30\non_full = wait\nclose_idle = yes\ngate_syns = no\n"
                  "[cache]\nsmall_file_max = 0\nbody_memory = 64m\n",
                  &cfg, err, sizeof(err), NULL);
    cr_assert_eq(rc, SL_OK, "%s", err);
    cr_expect_eq(cfg.adm_target_ns, 0);
    cr_expect_eq(cfg.adm_interval_ns, 250000000ull);
    cr_expect_eq(cfg.adm_retry_after, 30);
    cr_expect_eq(cfg.adm_on_full, SL_FULL_WAIT);
    cr_expect(cfg.adm_close_idle);
    cr_expect(!cfg.adm_gate_syns);
    cr_expect_eq(cfg.cache_small_file_max, 0);
    cr_expect_eq(cfg.cache_body_memory, 64l << 20);
    sl_config_free(&cfg);
    rc = load("[cache]\nbody_memory = 0\n", &cfg, err, sizeof(err), NULL);
    cr_assert_eq(rc, SL_OK, "%s", err);
    cr_expect_eq(cfg.cache_body_memory, 0, "no bodies in memory");
    sl_config_free(&cfg);
    rc = load("[cache]\nbody_memory = 8m\nbody_memory = auto\n", &cfg, err, sizeof(err), NULL);
    cr_expect_neq(rc, SL_OK, "given twice");
    sl_config_free(&cfg);
    rc = load("[cache]\nbody_memory = auto\n", &cfg, err, sizeof(err), NULL);
    cr_assert_eq(rc, SL_OK, "%s", err);
    cr_expect_eq(cfg.cache_body_memory, -1);
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

Test(config, listen_split_checks_host_and_port)
{
    static const struct {
        const char *spec;
        bool ok;
        const char *host;
        unsigned port;
    } cases[] = {
        {"127.0.0.1:8080", true, "127.0.0.1", 8080},
        {"[::1]:80", true, "::1", 80},
        {":65535", true, "", 65535},
        {"localhost:1", true, "localhost", 1},
        {"127.0.0.1:99999", false, NULL, 0},
        {"127.0.0.1:0", false, NULL, 0},
        {"127.0.0.1:http", false, NULL, 0},
        {"127.0.0.1:-1", false, NULL, 0},
        {"127.0.0.1:+80", false, NULL, 0},
        {"127.0.0.1:80 ", false, NULL, 0},
        {"999.1.1.1:http", false, NULL, 0},
        {"999.1.1.1:80", false, NULL, 0},
        {"1.2.3:80", false, NULL, 0},
        {"[::g]:80", false, NULL, 0},
        {"[::1:80", false, NULL, 0},
        {"::1:80", false, NULL, 0},
        {"localhost", false, NULL, 0},
        {"localhost:", false, NULL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char host[64] = "unset", reason[256] = "";
        unsigned port = 0;
        int rc = sl_listen_split(cases[i].spec, host, sizeof(host), &port, reason,
                                 sizeof(reason));
        cr_expect_eq(rc == SL_OK, cases[i].ok, "%s: rc %d (%s)", cases[i].spec, rc, reason);
        if (cases[i].ok && rc == SL_OK) {
            cr_expect_str_eq(host, cases[i].host, "%s", cases[i].spec);
            cr_expect_eq(port, cases[i].port, "%s", cases[i].spec);
        }
        if (!cases[i].ok)
            cr_expect(strstr(reason, cases[i].spec) != NULL || strstr(reason, "port") != NULL,
                      "%s: reason names the value: %s", cases[i].spec, reason);
    }
}

Test(config, bad_listen_port_and_address_fail_at_load_with_line)
{
    static const char *const texts[] = {
        "[server]\nroot = www\nlisten = 127.0.0.1:99999\n",
        "[server]\nroot = www\nlisten = 999.1.1.1:http\n",
    };
    for (size_t i = 0; i < 2; i++) {
        struct sl_config cfg;
        char err[512] = "", *path;
        int rc = load(texts[i], &cfg, err, sizeof(err), &path);
        cr_expect_eq(rc, SL_ERR, "%s accepted", texts[i]);
        char want[512];
        snprintf(want, sizeof(want), "%s:3: server.listen: ", path);
        cr_expect(strncmp(err, want, strlen(want)) == 0, "'%s' should start with '%s'", err,
                  want);
        sl_config_free(&cfg);
        unlink(path);
        free(path);
    }
}

/* Loads TEXT (must parse), then runs the start checks; returns their rc. */
static int check_start(const char *text, char *err, size_t errsz, char **path_out)
{
    struct sl_config cfg;
    int rc = load(text, &cfg, err, errsz, path_out);
    cr_assert_eq(rc, SL_OK, "%s: %s", text, err);
    rc = sl_config_check_start(&cfg, err, errsz);
    sl_config_free(&cfg);
    return rc;
}

Test(config, start_checks_name_file_line_and_key)
{
    char dir[] = "/tmp/sluice-test-start-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char file[512], text[2048], err[1024], want[1024], *path;
    snprintf(file, sizeof(file), "%s/afile", dir);
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fputs("x", f);
    fclose(f);
    struct {
        const char *fmt; /* %s = the temporary directory */
        int line;
        const char *key;
    } cases[] = {
        {"[server]\nroot = %s/afile\n", 2, "server.root"},
        {"[server]\nlisten = 127.0.0.1:8080\n\nroot = %s/missing\n", 4, "server.root"},
        {"[server]\nroot = %s\n[http]\nmime_types = /nonexistent/mime.types\n", 4,
         "http.mime_types"},
        {"[server]\nroot = %s\nerror_log = /nonexistent/dir/e.log\n", 3, "server.error_log"},
        {"[server]\nroot = %s\naccess_log = /nonexistent/dir/a.log\n", 3,
         "server.access_log"},
        {"[server]\nroot = %s\nstatus_socket = /nonexistent/dir/s.sock\n", 3,
         "server.status_socket"},
        {"[server]\nroot = %s\nuser = no-such-user-sluice\n", 3, "server.user"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text), cases[i].fmt, dir);
        int rc = check_start(text, err, sizeof(err), &path);
        cr_expect_eq(rc, SL_ERR, "accepted: %s", text);
        snprintf(want, sizeof(want), "%s:%d: %s: ", path, cases[i].line, cases[i].key);
        cr_expect(strncmp(err, want, strlen(want)) == 0, "'%s' should start with '%s'", err,
                  want);
        unlink(path);
        free(path);
    }
    /* And a config that start can use passes, without creating the logs. */
    snprintf(text, sizeof(text),
             "[server]\nlisten = 127.0.0.1:8080\nroot = %s\nerror_log = %s/e.log\n"
             "access_log = %s/a.log\nstatus_socket = %s/s.sock\n",
             dir, dir, dir, dir);
    cr_expect_eq(check_start(text, err, sizeof(err), &path), SL_OK, "%s", err);
    snprintf(want, sizeof(want), "%s/e.log", dir);
    cr_expect_neq(access(want, F_OK), 0, "the check created the error log");
    unlink(path);
    free(path);
    unlink(file);
    rmdir(dir);
}
