/* log.c: a small thread-safe error log; see log.h. */
#include "lib/log.h"
#include "lib/common.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

static int log_level = SL_LOG_INFO;
static int log_fd = 2;
static char *log_path;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"crit", "error", "warn", "info", "debug"};

void sl_log_set_level(enum sl_log_level level)
{
    __atomic_store_n(&log_level, (int)level, __ATOMIC_RELAXED);
}

int sl_log_level_parse(const char *s)
{
    for (size_t i = 0; i < SL_ARRAY_LEN(level_names); i++)
        if (strcmp(s, level_names[i]) == 0)
            return (int)i;
    if (strcmp(s, "warning") == 0)
        return SL_LOG_WARN;
    return -1;
}

int sl_log_open_target(const char *path)
{
    if (path == NULL || strcmp(path, "stderr") == 0)
        return 2;
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

int sl_log_open(const char *path)
{
    int fd = sl_log_open_target(path);
    if (fd < 0)
        return SL_ERR;
    sl_log_use(fd, path);
    return SL_OK;
}

void sl_log_use(int fd, const char *path)
{
    pthread_mutex_lock(&log_lock);
    int old = log_fd;
    log_fd = fd;
    free(log_path);
    log_path = (path && strcmp(path, "stderr") != 0) ? sl_strdup(path) : NULL;
    pthread_mutex_unlock(&log_lock);
    if (old > 2)
        close(old);
}

int sl_log_reopen(void)
{
    pthread_mutex_lock(&log_lock);
    char *path = log_path ? sl_strdup(log_path) : NULL;
    pthread_mutex_unlock(&log_lock);
    if (path == NULL)
        return SL_OK;
    int rc = sl_log_open(path);
    free(path);
    return rc;
}

void sl_log(enum sl_log_level level, const char *fmt, ...)
{
    if ((int)level > __atomic_load_n(&log_level, __ATOMIC_RELAXED))
        return;
    int saved = errno;
    char line[1024];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ld [%s] ", (long)(tv.tv_usec / 1000),
                          level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n = SL_MIN(n + (size_t)m, sizeof(line) - 2);
    line[n++] = '\n';
    pthread_mutex_lock(&log_lock);
    ssize_t w = write(log_fd, line, n);
    pthread_mutex_unlock(&log_lock);
    (void)w;
    errno = saved;
}
