/* conn.h: one client connection. A connection belongs to exactly one stage
 * at a time (the one that dequeued it); only the owner touches it, so it has
 * no lock. Handing it to another stage's queue gives up ownership. */
#ifndef SLUICE_CONN_H
#define SLUICE_CONN_H

#include "core/accesslog.h"
#include "core/cache.h"
#include "lib/common.h"
#include "queue/queue.h"

#include <netinet/in.h>
#include <sys/types.h>
#include <urcu/list.h>

#define SL_CONN_HDR_CAP 1536 /* response head (+ small error body) buffer */
#define SL_MAX_RANGES 16     /* more ranges in one request: the whole file instead */

/* A multipart/byteranges body: before each file range a short text (the part
 * header), after the last one the closing boundary. Sent by the writer with
 * send(MSG_MORE) for the texts and sendfile for the ranges. */
struct sl_parts {
    int n;                      /* ranges */
    int cur;                    /* part being sent */
    bool in_text;               /* sending text[cur] (else range cur) */
    uint32_t text_off;          /* bytes of the current text sent */
    off_t start[SL_MAX_RANGES]; /* inclusive */
    off_t end[SL_MAX_RANGES];   /* exclusive */
    uint16_t text_len[SL_MAX_RANGES + 1];
    char *text[SL_MAX_RANGES + 1]; /* [n] = closing boundary */
    char buf[];                    /* the texts, back to back */
};

/* What the stage receiving the connection should do with it. */
enum sl_conn_phase {
    SL_PHASE_READ = 0, /* reader: read and parse the next request */
    SL_PHASE_WRITE,    /* writer (or detector first): send the prepared response */
    SL_PHASE_LINGER,   /* reader: our side is shut; drain input until EOF, then close */
};

/* A connection's registration in its reader's epoll set. */
enum sl_reg {
    SL_REG_NONE,    /* not in the set */
    SL_REG_ONESHOT, /* one-shot: disarmed once it fired, re-armed per request */
    SL_REG_EDGE,    /* edge-triggered, armed while the reader holds the connection */
};

struct sl_conn {
    struct sl_qnode qnode; /* queue link, while the connection is in a queue */
    int fd;
    uint16_t reader; /* the reader whose epoll set holds fd */
    uint8_t phase;   /* enum sl_conn_phase */
    uint8_t reg;     /* how fd is in the reader's epoll set: enum sl_reg (edge-
                        triggered, kept across requests while the
                        reader holds the connection) */
    bool drained;    /* the reader's last read left the socket empty
                        (EAGAIN, or fewer bytes than asked for) */
    bool in_detector_epoll;
    bool keepalive;    /* keep the connection after this response */
    bool client_close; /* the client asked to close after this response
                          (Connection: close, HTTP/1.0): no lingering
                          needed when nothing else was sent */
    bool new_conn;     /* not read from yet */
    bool refuse;       /* accepted past max_connections: answer 503 */
    bool on_idle;      /* on the reader's idle (keep-alive) list */
    uint32_t requests; /* responses started on this connection */

    /* Input: a request head being read, and pipelined bytes after it. */
    char *buf; /* allocated on demand, cap = limits.max_header_size */
    uint32_t buf_len;
    uint32_t buf_cap;
    uint64_t discard; /* request body bytes still to read and drop */

    /* The response being sent. */
    struct sl_cache_entry *entry; /* referenced while the body is sent */
    off_t body_start, body_off, body_end;
    struct sl_logrec *logrec; /* access log line for it, if logging */
    struct sl_parts *parts;   /* multipart/byteranges body, else NULL */
    uint64_t body_sent;       /* body bytes of this response sent so far */
    uint32_t hdr_len, hdr_off;
    int status;
    char hdr[SL_CONN_HDR_CAP];

    /* Timers: owned by the stage holding the connection. */
    struct cds_list_head timer_link; /* on a reader or detector timeout list */
    uint64_t deadline_ns;
    uint64_t req_start_ns;
    uint64_t accepted_ns; /* when the acceptor took it from the backlog */
    uint64_t rx_ns; /* when the bytes last read arrived (kernel
                       timestamp, on sl_now_ns()'s clock), if admission
                       control is on; else 0 */
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } peer;
};

/* A new connection for socket FD (owned by the caller until handed off).
 * Cannot fail (allocation follows the OOM policy). */
struct sl_conn *sl_conn_new(int fd);

/* Closes C's socket, drops its cache reference, frees it, counts it. The
 * caller must own C. Cannot fail. */
void sl_conn_close(struct sl_conn *c);

static inline struct sl_conn *sl_conn_of(struct sl_qnode *n)
{
    return caa_container_of(n, struct sl_conn, qnode);
}

#endif
