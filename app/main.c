/* main.c: command line, daemonizing, signals and the life of the process. The
 * main thread starts the pipeline, then only waits for signals: TERM/INT stop
 * gracefully, HUP reloads the config, USR1 reopens the logs. */
#include "app/http_status.h"
#include "app/server.h"
#include "app/status.h"
#include "core/accesslog.h"
#include "core/config.h"
#include "lib/log.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <urcu/uatomic.h>
#ifdef SLUICE_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#define NOTIFY(...) sd_notifyf(0, __VA_ARGS__)
#else
#define NOTIFY(...) ((void)0)
#endif

static void usage(FILE *f)
{
    fprintf(f, "usage: sluice [-c FILE] [-t] [-d] [-h]\n"
               "  -c FILE  configuration file (default: sluice.conf)\n"
               "  -t       check the configuration and exit\n"
               "  -d       run in the background (writes [server] pidfile)\n"
               "  -h       this help\n");
}

/* Lets the process hold the descriptors max_connections needs: one per
 * connection, the admission slack above it (refused ones until they have their
 * 503, new ones while idle ones are closed), cached files and the server's
 * own. As far as allowed: the server lowers max_connections to fit what it
 * got (and says so). */
static void raise_nofile(const struct sl_config *cfg)
{
    rlim_t need = (rlim_t)cfg->max_connections + (rlim_t)cfg->max_connections / 16 + 16 +
                  (rlim_t)cfg->cache_max_entries + 64;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
        /* Root may raise the hard limit too (up to fs.nr_open). */
        struct rlimit more = {need, need};
        if (setrlimit(RLIMIT_NOFILE, &more) == 0)
            rl = more;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Is PID a running sluice? (a stale pidfile may name a recycled pid) */
static bool pid_is_sluice(pid_t pid)
{
    char path[64], comm[64] = "";
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool yes = fgets(comm, sizeof(comm), f) != NULL && strncmp(comm, "sluice", 6) == 0;
    fclose(f);
    return yes;
}

/* Refuses a pidfile naming a live sluice; otherwise writes our pid to it.
 * Returns SL_OK or SL_ERR (message printed). */
static int write_pidfile(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f) {
        int pid = 0;
        if (fscanf(f, "%d", &pid) == 1 && pid > 0 && pid != getpid() && pid_is_sluice(pid)) {
            fclose(f);
            sl_log(SL_LOG_CRIT, "server.pidfile: %s names a running sluice (pid %d)", path,
                   pid);
            return SL_ERR;
        }
        fclose(f);
    }
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f == NULL || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0 ||
        rename(tmp, path) != 0) {
        sl_log(SL_LOG_CRIT, "server.pidfile: cannot write %s: %s", path, strerror(errno));
        return SL_ERR;
    }
    return SL_OK;
}

/* Forks into the background. The parent waits until the child reports that
 * it serves (or why it cannot), and exits with that status, so `sluice -d`
 * fails visibly on a bad address. Returns the write end of the report pipe in
 * the child. */
static int daemonize(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        perror("sluice: pipe");
        exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("sluice: fork");
        exit(1);
    }
    if (pid > 0) {
        close(p[1]);
        char status = 1;
        if (read(p[0], &status, 1) != 1)
            status = 1;
        waitpid(pid, NULL, 0); /* the intermediate child exits at once */
        exit(status);
    }
    close(p[0]);
    setsid();
    pid = fork();
    if (pid < 0)
        _exit(1);
    if (pid > 0)
        _exit(0);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        close(null);
    }
    return p[1];
}

static void report(int fd, char status)
{
    if (fd >= 0) {
        ssize_t w = write(fd, &status, 1);
        (void)w;
        close(fd);
    }
}

/* Switches to USER after everything privileged (binding) is done. */
static int drop_privileges(const char *user)
{
    if (user[0] == '\0' || geteuid() != 0)
        return SL_OK;
    struct passwd *pw = getpwnam(user);
    if (pw == NULL) {
        sl_log(SL_LOG_CRIT, "server.user: no such user '%s'", user);
        return SL_ERR;
    }
    if (setgroups(0, NULL) != 0 || initgroups(pw->pw_name, pw->pw_gid) != 0 ||
        setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        sl_log(SL_LOG_CRIT, "server.user: cannot switch to '%s': %s", user, strerror(errno));
        return SL_ERR;
    }
    return SL_OK;
}

static void reload(const char *conf)
{
    NOTIFY("RELOADING=1\nSTATUS=reloading %s", conf);
    struct sl_config *next = sl_calloc(1, sizeof(*next));
    char err[1024];
    if (sl_config_load(next, conf, err, sizeof(err)) != SL_OK ||
        sl_server_reload(next, err, sizeof(err)) != SL_OK) {
        sl_log(SL_LOG_ERROR, "reload failed, keeping the running configuration: %s", err);
        sl_status_reload_result(false, err);
        uatomic_inc(&sl_srv.failed_reloads);
        if (sl_srv.cfg != next) {
            sl_config_free(next);
            free(next);
        }
    } else {
        sl_log(SL_LOG_INFO, "reloaded %s (generation %lu)", conf,
               uatomic_read(&sl_srv.generation));
        sl_status_reload_result(true, "");
    }
    NOTIFY("READY=1\nSTATUS=serving");
}

/* The drain a balancer sees (SIGTERM, SIGINT, `sluicectl drain`): readiness
 * fails at once (/readyz 503, agent check "drain") while serving goes on for
 * drain_delay, so the balancer's next check takes this instance out before
 * its listener closes. SIGHUP and SIGUSR1 keep working meanwhile; a second
 * SIGTERM or SIGINT cuts the delay short. */
static void drain_delay(const sigset_t *set, uint64_t delay_ns)
{
    __atomic_store_n(&sl_srv.draining, 1, __ATOMIC_RELAXED);
    if (delay_ns == 0)
        return;
    sl_log(SL_LOG_INFO, "draining: not ready; the listener closes in %.3fs",
           (double)delay_ns / 1e9);
    uint64_t end = sl_now_ns() + delay_ns;
    for (uint64_t now = sl_now_ns(); now < end; now = sl_now_ns()) {
        uint64_t left = end - now;
        struct timespec ts = {(time_t)(left / 1000000000ull), (long)(left % 1000000000ull)};
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT)
            return;
        if (sig == SIGUSR1) {
            if (sl_log_reopen() != SL_OK)
                sl_log(SL_LOG_ERROR, "cannot reopen the error log: %s", strerror(errno));
            sl_accesslog_reopen();
        }
        /* SIGHUP while draining: nothing to reload for. */
    }
}

int main(int argc, char **argv)
{
    const char *conf = "sluice.conf";
    bool check_only = false, background = false;
    int opt;
    while ((opt = getopt(argc, argv, "c:tdh")) != -1) {
        switch (opt) {
        case 'c':
            conf = optarg;
            break;
        case 't':
            check_only = true;
            break;
        case 'd':
            background = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    struct sl_config *cfg = sl_calloc(1, sizeof(*cfg));
    char err[1024];
    if (sl_config_load(cfg, conf, err, sizeof(err)) != SL_OK) {
        fprintf(stderr, "sluice: %s\n", err);
        sl_config_free(cfg);
        free(cfg);
        return 1;
    }
    if (check_only) {
        if (sl_config_check_start(cfg, err, sizeof(err)) != SL_OK) {
            fprintf(stderr, "sluice: %s\n", err);
            sl_config_free(cfg);
            free(cfg);
            return 1;
        }
        printf("sluice: %s: configuration OK\n", conf);
        sl_config_free(cfg);
        free(cfg);
        return 0;
    }
    sl_log_set_level((enum sl_log_level)cfg->log_level);
    if (sl_log_open(cfg->error_log) != SL_OK) {
        fprintf(stderr, "sluice: %s:%d: server.error_log: cannot open '%s': %s\n", conf,
                sl_config_line(cfg, "server", "error_log"), cfg->error_log, strerror(errno));
        return 1;
    }
    raise_nofile(cfg);
    int report_fd = background ? daemonize() : -1;
    if (background) {
        /* Let go of the caller's terminal or pipe: fd 2 becomes the error log
           file (so a crash report lands there too) or /dev/null. */
        bool to_file = strcmp(cfg->error_log, "stderr") != 0;
        int fd = to_file ? open(cfg->error_log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)
                         : open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
    }

    /* Every thread inherits this mask; only the main thread takes signals. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (background && write_pidfile(cfg->pidfile) != SL_OK) {
        report(report_fd, 1);
        return 1;
    }
    if (sl_server_start(cfg) != SL_OK)
        goto fail;
    if (cfg->status_socket[0] != '\0' &&
        sl_status_start(cfg->status_socket, cfg->status_socket_mode) != SL_OK) {
        sl_server_stop(0);
        goto fail;
    }
    /* Every listener bound before the first client is accepted: one that
       finds the server port answering finds the status listener too (and
       one on a privileged port is bound before privileges are dropped). */
    if (sl_http_status_start(cfg->status_listen, cfg->agent_listen) != SL_OK ||
        drop_privileges(cfg->user) != SL_OK || sl_pipeline_accept() != SL_OK) {
        sl_http_status_stop();
        sl_status_stop();
        sl_server_stop(0);
        goto fail;
    }
    report(report_fd, 0);
    NOTIFY("READY=1\nSTATUS=serving\nMAINPID=%d", (int)getpid());

    for (;;) {
        int sig = sigwaitinfo(&set, NULL);
        if (sig < 0)
            continue;
        if (sig == SIGTERM || sig == SIGINT) {
            sl_log(SL_LOG_INFO, "%s: stopping (finishing responses in flight)",
                   strsignal(sig));
            break;
        }
        if (sig == SIGUSR1) {
            if (sl_log_reopen() != SL_OK)
                sl_log(SL_LOG_ERROR, "cannot reopen the error log: %s", strerror(errno));
            sl_accesslog_reopen();
            continue;
        }
        if (sig == SIGHUP)
            reload(conf);
    }
    NOTIFY("STOPPING=1");
    drain_delay(&set, sl_srv.cfg->drain_delay_ns);
    uint64_t timeout = sl_srv.cfg->shutdown_timeout_ns;
    sl_http_status_stop();
    sl_status_stop();
    sl_server_stop(timeout);
    if (background)
        unlink(sl_srv.cfg->pidfile);
    sl_log(SL_LOG_INFO, "stopped");
    sl_config_free(sl_srv.cfg);
    free(sl_srv.cfg);
    return 0;

fail:
    if (background)
        unlink(cfg->pidfile);
    report(report_fd, 1);
    return 1;
}
