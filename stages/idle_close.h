/* idle_close.h: the acceptor asks the readers to close idle keep-alive
 * connections to make room under max_connections ([admission] close_idle).
 *
 * The protocol is one count of requests, each for one close:
 *   - the acceptor adds a request per connection it let in past the limit
 *     (sl_idle_close_request), or, with on_full = wait, one request while
 *     none is pending (sl_idle_close_request_if_none);
 *   - one reader at a time serves them (sl_idle_close_claim/_unclaim): two
 *     readers looking at the same request would each close a connection;
 *   - the serving reader closes its longest-idle connection and only then
 *     marks one request done (sl_idle_close_done), so an acceptor that sees
 *     the count fall also sees the open-connection count it freed and does
 *     not ask twice for one slot;
 *   - requests found stale (the open count fell under the limit by itself)
 *     are dropped whole (sl_idle_close_drop), unless the acceptor added one
 *     meanwhile.
 * The count never goes below zero: only the claim holder takes from it, and
 * never more than it read.
 *
 * "Acceptor" here is any thread that accepts: an acceptor thread, or a reader
 * when the readers accept ([acceptor] threads = 0). A reader that accepts
 * past the limit asks like any acceptor, then serves requests like any
 * reader (stages/reader.c closes the server's longest-idle connection,
 * whichever reader holds it).
 *
 * Who may call what, concurrently with what:
 *
 *   sl_idle_close_...        caller             runs concurrently with
 *   request, request_if_none any acceptor       everything
 *   pending                  any thread         everything
 *   claim                    any reader         everything
 *   done, drop, unclaim      the claim holder   the acceptors, pending, other
 *                                               readers' claim (which fails)
 *
 * None of them fails or blocks. */
#ifndef SLUICE_IDLE_CLOSE_H
#define SLUICE_IDLE_CLOSE_H

#include <stdbool.h>

/* Acceptor: one more connection was let in past the limit; asks for one
 * close. Release: a reader that sees the request sees the open-connection
 * count that includes this connection. */
void sl_idle_close_request(void);

/* Acceptor: asks for one close if no request is pending (0 -> 1); two
 * acceptors asking at once make one request. Returns true if it asked. */
bool sl_idle_close_request_if_none(void);

/* Requests not yet served (never negative). Acquire: pairs with
 * sl_idle_close_done's release (the caller then sees the closes done) and
 * with the requests' release (a reader then sees the connection count they
 * were made for). */
int sl_idle_close_pending(void);

/* Reader: becomes the one reader serving requests. Returns false if another
 * reader holds the claim (the requests wait for that reader, or for this one's
 * next round). Acquire: what the previous holder did is seen. */
bool sl_idle_close_claim(void);

/* The claim holder: gives the claim up (release: pairs with the claim). */
void sl_idle_close_unclaim(void);

/* The claim holder, after closing one idle connection: one request served.
 * Release: an acceptor that sees the count fall sees the close. */
void sl_idle_close_done(void);

/* The claim holder: the SEEN requests (what sl_idle_close_pending returned)
 * are stale; sets the count to 0. Returns false, changing nothing, if the
 * count is no longer SEEN (an acceptor added a request: look again). */
bool sl_idle_close_drop(int seen);

#endif
