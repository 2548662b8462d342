/* send.h: sending a prepared response, shared by the writer pool and by
 * readers that send a response themselves (inline, [reader] inline_max).
 * The caller owns the connection; nothing here hands it to another stage. */
#ifndef SLUICE_SEND_H
#define SLUICE_SEND_H

#include "lib/stats.h"
#include "stages/pipeline.h"

enum sl_send_rc {
    SL_SENT_ALL,   /* the whole response is out */
    SL_SENT_AGAIN, /* the socket is full (EAGAIN): wait for write readiness */
    SL_SENT_TURN,  /* BUDGET bytes of file data went out: give others a turn */
    SL_SENT_ERR,   /* the client is gone, or the file changed under us */
};

/* Sends what is left of C's response (head, then body) without blocking on
 * the socket, at most BUDGET bytes of file data (a body held in memory is
 * sent whole). Counts bytes in ST. */
enum sl_send_rc sl_send_some(struct sl_conn *c, size_t budget, struct sl_tstats *st);

/* What becomes of a connection whose response is complete. */
enum sl_send_next {
    SL_NEXT_READ,   /* keep-alive: wait for the next request */
    SL_NEXT_LINGER, /* our side is shut down: drain the client, then close */
    SL_NEXT_CLOSED, /* closed and freed: C is gone */
};

/* C's response went out whole: ends it (sl_conn_end_response) and decides
 * keep-alive, lingering or closing (closing happens here). Moves C to
 * SL_CONN_READ or SL_CONN_LINGER for those outcomes. AT_ONCE: the response
 * went out in the round that read its request, without a wait (the reader's
 * inline send), so a read that left the socket empty (c->drained) still
 * stands for what the client has sent. */
enum sl_send_next sl_send_finish(struct sl_conn *c, bool at_once, struct sl_tstats *st);

#endif
