/* response.h: decides what to answer to a parsed request (file, redirect,
 * not modified, error) and prepares it in the connection: the response head
 * in c->hdr and, for a body from a file, the cache entry and byte range.
 * Runs in the reader; the writer only sends what is prepared. */
#ifndef SLUICE_RESPONSE_H
#define SLUICE_RESPONSE_H

#include "stages/conn.h"
#include "core/http.h"

/* Prepares the response to REQ (parsed from C's buffer, HEAD_LEN bytes long;
 * the pointers in REQ must still be valid). Sets c->keepalive,
 * c->discard, c->status. Cannot fail: problems become error responses. The
 * caller must be a registered RCU thread not holding rcu_read_lock. */
void sl_response_prepare(struct sl_conn *c, const struct sl_request *req);

/* Prepares an error response STATUS for a request that could not be parsed;
 * the connection closes after it (lingering). Cannot fail. */
void sl_response_error(struct sl_conn *c, int status);

/* Prepares "503 Service Unavailable" with Retry-After: RETRY_AFTER seconds
 * (none if 0) and Connection: close, for work admission control sheds. HEAD_ONLY:
 * no body. Lingers like any response that closes on our initiative. */
void sl_response_unavailable(struct sl_conn *c, int retry_after, bool head_only);

#endif
