/* proxied.h: the PROXY header at the start of a connection from a balancer
 * ([server] proxy_protocol): checked and consumed before the first request. */
#ifndef SLUICE_PROXIED_H
#define SLUICE_PROXIED_H

#include "lib/stats.h"
#include "stages/conn.h"

/* For a new connection C whose PROXY header is still expected (state SL_CONN_PROXY),
 * with C->BUF_LEN bytes read: from a source outside proxy_protocol_from, or
 * with bytes that are not a valid header (or one longer than the input
 * buffer), returns SL_ERR and counts it (the caller closes C unanswered).
 * With a complete header, takes its client address as C's peer, removes it
 * from the buffer, moves C to SL_CONN_READ and returns SL_OK. Else SL_AGAIN: read
 * more. Called by C's reader (its owner). */
int sl_proxied_take(struct sl_conn *c, struct sl_tstats *st);

#endif
