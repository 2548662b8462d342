/* status.h: the status socket. A UNIX stream socket served by one thread
 * ("status"), line protocol: help, stats, stats json, metrics,
 * set STAGE.threads N. See README "Status protocol". */
#ifndef SLUICE_STATUS_H
#define SLUICE_STATUS_H

#include "lib/common.h"

#include <sys/types.h>

/* Creates the socket at PATH with MODE (replacing a stale socket file, refusing
 * if a live process answers on it) and starts the status thread. Returns
 * SL_OK, or SL_ERR after logging why. Main thread only. */
int sl_status_start(const char *path, mode_t mode);

/* Stops the thread, closes every status connection and removes the socket
 * file. Safe to call if not started. Main thread only. */
void sl_status_stop(void);

/* Records the outcome of a config reload for `stats` (OK=false: MSG says
 * why). Any thread. */
void sl_status_reload_result(bool ok, const char *msg);

/* What sl_status_render() produces. */
enum sl_status_doc {
    SL_STATUS_JSON,    /* the `stats json` object, one line ending in "\n" */
    SL_STATUS_METRICS, /* the `metrics` text (Prometheus exposition 0.0.4) */
};

/* Renders DOC from a fresh sample into a malloc'd, NUL-terminated string
 * (the caller frees it); *LEN is its length. For the HTTP status listener.
 * Any thread; callers are serialized. Cannot fail. */
char *sl_status_render(enum sl_status_doc doc, size_t *len);

#endif
