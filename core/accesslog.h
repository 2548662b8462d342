/* accesslog.h: the access log, written by its own thread ("logger") fed by a
 * queue, so a slow disk never stalls a writer. One line per response, in the
 * Combined Log Format or as JSON lines. */
#ifndef SLUICE_ACCESSLOG_H
#define SLUICE_ACCESSLOG_H

#include "core/http.h"
#include "lib/common.h"
#include "queue/queue.h"

#include <netinet/in.h>
#include <time.h>

/* What one line says. Built by the reader when a request is parsed, completed
 * and queued by whoever finishes the response; freed by the logger. */
struct sl_logrec {
    struct sl_qnode qnode;
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer;
    struct timespec when;  /* CLOCK_REALTIME when the request head was parsed */
    uint64_t start_ns;     /* CLOCK_MONOTONIC, same moment */
    uint64_t duration_ns;
    uint64_t body_bytes;   /* body bytes sent (CLF %b) */
    uint64_t bytes;        /* all bytes sent for this response, head included */
    int status;
    uint16_t line_len, referer_len, agent_len;
    char text[];           /* request line, referer, user agent, back to back */
};

/* Starts the logger thread writing to PATH ("" = access log off; the thread
 * still runs, so a reload can turn it on) in FORMAT (enum sl_access_format).
 * Returns SL_OK, or SL_ERR with errno (the file cannot be opened). */
int sl_accesslog_start(const char *path, int format, enum sl_queue_kind kind);

/* Switches file and format (reload). Returns SL_OK or SL_ERR with errno (the
 * old file stays). Main thread only. */
int sl_accesslog_configure(const char *path, int format);

/* The steps of sl_accesslog_configure(), for a reload that switches nothing
 * until every step has succeeded: open_file opens PATH for appending (fd, or
 * -1 with errno); switch makes FD (-1: off) the file for PATH, taking FD;
 * set_format changes the format. Main thread only; the last two cannot fail. */
int sl_accesslog_open_file(const char *path);
void sl_accesslog_switch(const char *path, int fd);
void sl_accesslog_set_format(int format);

/* Asks the logger to reopen its file (SIGUSR1). Any thread. */
void sl_accesslog_reopen(void);

/* Flushes what is queued, stops the thread, closes the file. */
void sl_accesslog_stop(void);

/* True when lines are being written: callers skip building records if not. */
bool sl_accesslog_enabled(void);

/* A record for REQ (NULL for a request that could not be parsed: RAW, RAWLEN
 * are then the first bytes received) from PEER. Caller owns it until
 * sl_accesslog_submit(). */
struct sl_logrec *sl_accesslog_record(const struct sl_request *req, const char *raw,
                                      size_t rawlen, const struct sockaddr *peer);

/* Queues REC for writing; takes ownership. Any thread. Cannot fail. */
void sl_accesslog_submit(struct sl_logrec *rec);

/* Formats REC as one line (with '\n') into OUT. Returns its length (truncated
 * lines still end in '\n'). Exposed for tests. */
size_t sl_accesslog_format(const struct sl_logrec *rec, int format, char *out, size_t cap);

#endif
