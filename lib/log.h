/* log.h: the error log. Levels as syslog; messages below the configured level
 * are dropped before formatting. Safe to call from any thread. */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

enum sl_log_level {
    SL_LOG_CRIT = 0,
    SL_LOG_ERROR = 1,
    SL_LOG_WARN = 2,
    SL_LOG_INFO = 3,
    SL_LOG_DEBUG = 4,
};

/* Sets the minimum level written. Cannot fail. */
void sl_log_set_level(enum sl_log_level level);

/* Sends the error log to PATH (appending), or to stderr when PATH is NULL or
 * "stderr". Returns SL_OK, or SL_ERR with errno set (the old target is kept). */
int sl_log_open(const char *path);

/* The two halves of sl_log_open(), for a reload that must not switch
 * anything before every step has succeeded: sl_log_open_target() opens PATH
 * (2 for NULL or "stderr"), returning the fd or -1 with errno set;
 * sl_log_use() makes FD (from it) the log, cannot fail, takes FD. */
int sl_log_open_target(const char *path);
void sl_log_use(int fd, const char *path);

/* Reopens the current log file (SIGUSR1, logrotate). Returns SL_OK or SL_ERR. */
int sl_log_reopen(void);

/* Parses "crit", "error", "warn", "info", "debug". Returns the level or -1. */
int sl_log_level_parse(const char *s);

/* Writes one line "TIME [level] message\n" with a single write(2), so lines
 * from different threads never interleave. Cannot fail (errors are dropped). */
void sl_log(enum sl_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
