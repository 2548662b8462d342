/* server.h: the running server as the application sees it: start from a
 * config (listening socket, root, MIME table, cache, then the pipeline),
 * reload, stop, and the live configuration for `stats json`. The state the
 * stages share is sl_srv (stages/pipeline.h). */
#ifndef SLUICE_SERVER_H
#define SLUICE_SERVER_H

#include "core/config.h"
#include "stages/pipeline.h"

/* Opens the listening socket and the root, loads MIME types, creates the cache
 * and queues and starts every stage thread but the acceptors, from CFG (kept by the server).
 * Returns SL_OK, or SL_ERR after logging a precise message (nothing left
 * running). */
int sl_server_start(struct sl_config *cfg);

/* Stops the pipeline (sl_pipeline_stop), then frees what start set up for
 * it: the MIME table, the root, the settings. Main thread only. */
void sl_server_stop(uint64_t timeout_ns);

/* Renders the live configuration as one JSON object (every setting in
 * effect, thread counts as running, log paths) into OUT, always
 * NUL-terminated. Returns the length that
 * was needed. Caller: a registered RCU thread. */
size_t sl_server_config_json(char *out, size_t cap);

/* Applies NEXT (already validated) to the running server, all or nothing:
 * first everything that can fail is prepared (new log files opened, new
 * writer and acceptor threads started), then, once nothing can fail any
 * more, surplus threads are stopped, the logs switched, and one new settings
 * snapshot (limits, timeouts, cache sizes, admission) is published through
 * RCU. Keys that only take effect at start (listen, root, reader threads,
 * queue kind, status socket, user, pidfile, MIME table) keep their running
 * values, with a warning each. On success takes ownership of NEXT and frees
 * the old config after a grace period. Main thread only. Returns SL_OK, or
 * SL_ERR with "FILE:LINE: key: reason" in ERR and every setting as it was
 * (NEXT stays the caller's). */
int sl_server_reload(struct sl_config *next, char *err, size_t errsz);

#endif
