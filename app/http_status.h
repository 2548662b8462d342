/* http_status.h: the HTTP status listener ([status] listen: /metrics,
 * /healthz, /readyz, /status) and haproxy's agent check ([status]
 * agent_listen), served by one thread ("http-status") apart from the data
 * path, with its own small connection limit and timeout. See README "Behind a
 * balancer". The deciding parts are pure functions, declared here for tests. */
#ifndef SLUICE_HTTP_STATUS_H
#define SLUICE_HTTP_STATUS_H

#include "lib/common.h"

#define SL_HS_MAX_CLIENTS 16      /* more are answered 503 and closed */
#define SL_HS_TIMEOUT_NS 5000000000ull /* a whole exchange, request to last byte */
#define SL_HS_MAX_REQUEST 4096    /* a request head; longer: 431 */
#define SL_HS_STAGES 4            /* acceptor, reader, detector, writer */

/* Opens LISTEN and AGENT ("HOST:PORT" each, "" for none) and starts the
 * thread if either is set. Returns SL_OK, or SL_ERR after logging why
 * (nothing left running). Main thread only, after sl_pipeline_accept(). */
int sl_http_status_start(const char *listen, const char *agent);

/* Stops the thread and closes its sockets and clients. Safe if not started.
 * Main thread only. */
void sl_http_status_stop(void);

/* ---- pure parts ---- */

enum sl_hs_route {
    SL_HS_METRICS,
    SL_HS_HEALTHZ,
    SL_HS_READYZ,
    SL_HS_STATUS,
    SL_HS_NOT_FOUND,   /* 404 */
    SL_HS_BAD_METHOD,  /* 405, Allow: GET, HEAD */
    SL_HS_BAD_REQUEST, /* 400: not an HTTP/1.x request line */
};

/* Routes the request line at the start of HEAD (LEN bytes, the whole head).
 * *HEAD_ONLY: the method was HEAD. A query string is ignored. Cannot fail. */
enum sl_hs_route sl_hs_route(const char *head, size_t len, bool *head_only);

/* The share (0..1] of the work offered to it that the instance can take in
 * time, from the adaptive admission limit (policy = limit): LIMIT connections
 * admitted at most while WAITING more wait in the kernel's accept queue, and
 * WAIT_NS, the last interval's least queue wait inside sluice, against its
 * target TARGET_NS (SL_ADM_NO_WAIT or a 0 target: not known). 1 while nothing
 * waits and the wait is within the target. Pure; cannot fail. */
double sl_agent_capacity(long limit, long waiting, uint64_t wait_ns, uint64_t target_ns);

/* The agent-check weight, in percent of the weight haproxy has configured
 * for the server: 0 while draining; else 100 scaled by CAPACITY (0..1,
 * sl_agent_capacity) and lowered by SHEDDING, the share (0..1) of the
 * admission controller answering 503 now, down to 10% when all of it sheds.
 * At least 1 unless draining, so haproxy keeps probing it with a little
 * traffic. Cannot fail. */
int sl_agent_weight(double capacity, double shedding, bool draining);

/* Writes haproxy's agent-check reply into OUT (N bytes, at least 32):
 * "drain\n" while draining, "maint\n" once the listener closed (STOPPING),
 * else "ready up W%\n". Returns its length. Cannot fail. */
size_t sl_agent_reply(char *out, size_t n, bool draining, bool stopping, int weight);

/* Stage progress for /healthz: a stage fails when it had queued work at each
 * look for STALL_NS while its count of finished items did not move. */
struct sl_hs_progress {
    uint64_t done;     /* items taken off the stage's queue, last look */
    uint64_t moved_ns; /* when DONE last changed, or the queue was last empty */
};

/* Updates P (SL_HS_STAGES entries, zeroed at start) with this look's DONE and
 * DEPTH per stage at NOW. Returns true if every stage makes progress; else
 * false with WHY (WHYSZ bytes) naming the stalled stages, e.g. "writer:
 * 12 queued, no progress for 6.0s". Cannot fail. */
bool sl_hs_health(struct sl_hs_progress *p, const uint64_t *done, const long *depth,
                  uint64_t now, uint64_t stall_ns, char *why, size_t whysz);

#endif
