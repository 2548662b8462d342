/* response.h: decides what to answer to a parsed request (a file, part of one,
 * a redirect, "not modified", an error) as a function of an explicit
 * environment and the request alone: no global, no connection. The caller
 * lends the buffer for the head and copies the result into its connection. */
#ifndef SLUICE_RESPONSE_H
#define SLUICE_RESPONSE_H

#include "core/cache.h"
#include "core/http.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The smallest head buffer the builders accept: room for the "500" every
 * head that does not fit is replaced with. */
#define SL_RESPONSE_HEAD_MIN 512

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


/* Everything outside the request that the answer depends on. Read only. */
struct sl_response_env {
    struct sl_cache *cache; /* files are looked up here (the document root) */
    const char *index;      /* [http] index: the file a path ending in '/' names */
    bool precompressed;     /* [http] precompressed: FILE.br / FILE.gz siblings */
    long max_body_discard;  /* [limits]: a longer request body is answered 413 */
    bool keepalive;         /* the server would keep the connection after this
                               response (not draining, under
                               max_requests_per_connection) */
    uint64_t read_ns;       /* the request's bytes had all been read before
                               the sl_cache_sync that returned it, or 0: see
                               sl_cache_get_after */
    uint64_t unique;        /* differs from one response to the next on a
                               connection and between connections: seeds the
                               multipart boundary */
};

/* The decided response. The head is in the caller's buffer; the body is
 * either nothing more (a head, or an error page written after it), bytes
 * [body_start, body_end) of ENTRY's file (from entry->body when it holds the
 * whole file in memory, else from entry->fd), or PARTS over ENTRY's file. */
struct sl_response {
    int status;
    bool keepalive;               /* keep the connection after it */
    uint64_t discard;             /* request body bytes to read and drop first */
    uint32_t head_len;            /* bytes of the head buffer to send */
    struct sl_cache_entry *entry; /* referenced, or NULL: the caller releases it
                                     with sl_cache_release(env->cache, ...) */
    off_t body_start, body_end;   /* end exclusive; 0, 0 without a file body */
    struct sl_parts *parts;       /* malloc'd, the caller frees it; or NULL */
};

/* Decides the answer to REQ under ENV, with the head written into HEAD (CAP
 * bytes, at least SL_RESPONSE_HEAD_MIN); REQ's strings must stay valid
 * during the call. Cannot fail: problems become error responses, and a head
 * that does not fit in CAP becomes "500" with Connection: close and an error
 * log line (the one way an overflowing head is handled). Reads no global but
 * the thread's date (sl_http_date_now) and logs only a head that does not fit
 * or an open failing in an unexpected way (500). Caller: a registered RCU
 * thread not holding rcu_read_lock (the cache's rule). */
void sl_response_build(const struct sl_response_env *env, const struct sl_request *req,
                       char *head, size_t cap, struct sl_response *out);

/* An error STATUS for a request that could not be parsed (its method is not
 * known: the page has a body): Connection: close. Writes HEAD as above.
 * Cannot fail. */
void sl_response_error(int status, char *head, size_t cap, struct sl_response *out);

/* "503 Service Unavailable" with Retry-After: RETRY_AFTER seconds (none if
 * 0) and Connection: close, for work admission control sheds before any
 * file is looked at. HEAD_ONLY: no body. Cannot fail. */
void sl_response_unavailable(int retry_after, bool head_only, char *head, size_t cap,
                             struct sl_response *out);

#endif
