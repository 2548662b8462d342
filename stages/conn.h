/* conn.h: one client connection. A connection belongs to exactly one stage
 * at a time (the one that dequeued it); only the owner touches it, so it has
 * no lock. Handing it to another stage's queue gives up ownership. */
#ifndef SLUICE_CONN_H
#define SLUICE_CONN_H

#include "core/accesslog.h"
#include "core/cache.h"
#include "core/response.h"
#include "lib/common.h"
#include "lib/stats.h"
#include "queue/queue.h"

#include <assert.h>
#include <netinet/in.h>
#include <sys/types.h>
#include <urcu/list.h>

#define SL_CONN_HDR_CAP 1536 /* response head (+ small error body) buffer */

/* The connection's states. Each is set through sl_conn_set_state() only,
 * which in debug builds asserts that the transition is one of these:
 *
 *               sl_conn_new() (acceptor)
 *                |           |  [server] proxy_protocol
 *                |           v
 *                |         PROXY    the PROXY header is still to come;
 *                |           |      taken by the reader (stages/proxied.c)
 *                v           v
 *   +---------> READ <-------------- IDLE   kept alive, no request yet: on
 *   |            |  \                ^      the reader's idle list; new
 *   |            |   +---------------+      input takes it back to READ
 *   |            |    nothing buffered after a response (reader: wait_input)
 *   |            v
 *   |           SEND    a head is in and its response prepared (reader:
 *   |            |      respond); it goes out from the reader (inline), the
 *   | keep-alive |      writers, the detector in between (waiting for room)
 *   +------------+
 *                | not kept alive (sl_send_finish)
 *                v
 *              LINGER   our side is shut; the reader drains the client, then
 *                       closes
 *
 * Any state may end in sl_conn_close() (client gone, timeout, stopping):
 * that frees the connection, it is no state. Which stage holds the
 * connection is not a state either: it is the stage it was last handed to
 * (c->owner), and only a thread of that stage may change its state or close
 * it (asserted in debug builds against sl_conn_stage). */
enum sl_conn_state {
    SL_CONN_READ = 0, /* reader: read and parse the next request head (or drop a body) */
    SL_CONN_PROXY,    /* reader: a new connection whose PROXY header is still to come */
    SL_CONN_IDLE,     /* reader: kept alive, no request yet; on the reader's idle list */
    SL_CONN_SEND,     /* the response is prepared: sending it (reader inline, writer,
                         detector waiting for room) */
    SL_CONN_LINGER,   /* reader: our side is shut; drain input until EOF, then close */
    SL_CONN_NSTATES
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
    uint8_t state;   /* enum sl_conn_state: set by sl_conn_set_state() only */
    uint8_t owner;   /* enum sl_stage holding it: set at birth and by each hand-off
                        (stages/pipeline.c), before the push */
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
    bool refuse;       /* accepted past max_connections: answer 503 */
    uint32_t requests; /* responses started on this connection */

    /* Input: a request head being read, and pipelined bytes after it. */
    char *buf; /* allocated on demand, cap = limits.max_header_size */
    uint32_t buf_len;
    uint32_t buf_cap;
    uint64_t discard; /* request body bytes still to read and drop */
    uint64_t read_ns; /* every buffered byte had been read before the
                         sl_cache_sync that returned it (the reader's
                         batched read), or 0: not known
                         (see sl_cache_get_after) */

    /* The response being sent. */
    struct sl_cache_entry *entry; /* referenced while the body is sent */
    off_t body_start; /* set by core/response.c, read by nothing */
    off_t body_off, body_end;
    struct sl_logrec *logrec; /* access log line for it, if logging */
    struct sl_parts *parts;   /* multipart/byteranges body, else NULL */
    uint64_t body_sent;       /* body bytes of this response sent so far */
    uint32_t hdr_len, hdr_off;
    int status;
    char hdr[SL_CONN_HDR_CAP];

    /* Timers: owned by the stage holding the connection. */
    struct cds_list_head timer_link; /* on a reader or detector timeout list */
    uint64_t deadline_ns;
    uint64_t req_start_ns; /* when the reader began this response (response time);
                              0: not timed */
    uint64_t accepted_ns; /* when it was taken from the backlog */
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

/* Pure. Is FROM -> TO one of the transitions of the diagram above? */
bool sl_conn_state_legal(enum sl_conn_state from, enum sl_conn_state to);

/* The stage the calling thread runs (enum sl_stage), set once by each stage
 * thread at its start; SL_STAGE_OTHER elsewhere (main, status). */
extern __thread uint8_t sl_conn_stage;

/* Moves C to state TO; in debug builds (no NDEBUG) asserts the transition is
 * legal and the calling thread's stage holds C. Cannot fail. */
static inline void sl_conn_set_state(struct sl_conn *c, enum sl_conn_state to)
{
    assert(c->owner == sl_conn_stage);
    assert(sl_conn_state_legal((enum sl_conn_state)c->state, to));
    c->state = (uint8_t)to;
}

/* Ends C's response; the one place that does, whichever path decided it and
 * however it ended. When COMPLETE (it went out whole) it counts in ST:
 * requests, its status class, the response time if the reader timed it. Its
 * access log line, if it has one, is submitted with the status and the bytes
 * that did go out (head: c->hdr_off, body: c->body_sent); its cache entry and
 * multipart texts are released. The connection stays open and C's. Cannot
 * fail. */
void sl_conn_end_response(struct sl_conn *c, struct sl_tstats *st, bool complete);

static inline struct sl_conn *sl_conn_of(struct sl_qnode *n)
{
    return caa_container_of(n, struct sl_conn, qnode);
}

#endif
