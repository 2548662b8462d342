/* config.h: the INI configuration (libinih): every key, its default, its
 * range, and one parser that names FILE:LINE: key: reason on any error. */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include "lib/common.h"
#include "queue/queue.h"

#include <sys/types.h>

#define SL_MAX_THREADS 256
#define SL_INDEX_MAX 255 /* [http] index: a file name (NAME_MAX) */

enum sl_access_format { SL_ACCESS_COMBINED = 0, SL_ACCESS_JSON = 1 };

/* [admission] policy: how overload is met. */
enum sl_adm_policy {
    SL_ADM_LIMIT = 0, /* adaptive limit on open connections; the rest wait in
                         the kernel's backlog (stages/admission.h) */
    SL_ADM_CODEL = 1, /* CoDel-like: 503 new connections' first requests while
                         requests wait longer than the target */
};

/* [admission] on_full: a new connection when max_connections are open. */
enum sl_full_action {
    SL_FULL_CLOSE = 0,  /* accept and close it at once (a reset-free FIN) */
    SL_FULL_REFUSE = 1, /* answer its request with 503 + Retry-After, then close */
    SL_FULL_WAIT = 2,   /* leave it in the kernel's backlog until a slot frees */
};

/* The CPUs this process may use (its affinity mask, and its cgroups' CPU
 * quota rounded up when fewer: lib/cpus.h), 1..SL_MAX_THREADS: what
 * "threads = auto" means. */
int sl_config_cpus(void);

struct sl_config {
    char *path; /* the file it came from */

    /* [server] */
    char *listen;        /* "HOST:PORT" or "[V6]:PORT" */
    char *root;          /* document root directory */
    long max_connections;
    int backlog;
    bool defer_accept;   /* TCP_DEFER_ACCEPT: accept only once a request arrived */
    char *status_socket; /* "" disables */
    mode_t status_socket_mode;
    char *pidfile;       /* used with -d */
    char *user;          /* drop privileges to this user after binding ("" = no) */
    uint64_t shutdown_timeout_ns;
    char *error_log;     /* "stderr" or a path */
    char *access_log;    /* "" = off, or a path */
    int access_log_format; /* enum sl_access_format */
    int log_level;       /* enum sl_log_level */

    /* [server] running as one of a fleet (README "Behind a balancer") */
    uint64_t drain_delay_ns;   /* on SIGTERM or `drain`: readiness fails, serving goes
                                  on this long, then the listener closes */
    bool reuseport;            /* SO_REUSEPORT: several instances on one port */
    bool proxy_protocol;       /* every connection starts with a PROXY v1/v2 header */
    char *proxy_protocol_from; /* CIDR list of sources allowed to send it */

    /* [status] the HTTP status listener and haproxy's agent check */
    char *status_listen;       /* "HOST:PORT" for /metrics /healthz /readyz /status; "" off */
    char *agent_listen;        /* "HOST:PORT" for haproxy's agent-check; "" off */
    uint64_t stall_ns;         /* /healthz fails for a stage with queued work and
                                  no progress for this long */
    int ready_shed_level;      /* /readyz fails while this percentage (1..100) of the
                                  admission controller sheds; 0: never for shedding */

    /* [queue] */
    enum sl_queue_kind queue_kind;
    int queue_batch;     /* max items a consumer takes per batch */

    /* [acceptor] [reader] [detector] [writer] */
    int acceptor_threads;
    int reader_threads;
    long reader_inline_max; /* [reader] inline_max: the reader sends a response
                               whose file data (in memory or page cache) is
                               at most this many bytes itself; 0 = never */
    int detector_threads;
    int writer_threads;
    bool optimistic_write; /* [writer] optimistic: reader hands to writers
                              directly; off = strict pipeline through detector */

    /* [cache] */
    long cache_max_entries;
    uint64_t cache_validity_ns;
    uint64_t cache_negative_ns;
    long cache_small_file_max;
    long cache_body_memory;   /* bytes of file bodies held in memory at most;
                                 -1: auto (a quarter of sl_cgroup_memory()) */

    /* [admission] */
    uint64_t adm_target_ns;   /* queue_wait_target: CoDel target; 0 = off */
    uint64_t adm_interval_ns; /* queue_wait_interval */
    int adm_retry_after;      /* seconds, in Retry-After of every 503 we shed */
    int adm_on_full;          /* enum sl_full_action */
    bool adm_close_idle;      /* at max_connections, close idle keep-alive first */
    int adm_policy;           /* enum sl_adm_policy */
    bool adm_drop_syn_retries; /* BPF filter drops retransmitted SYNs while the limit binds */
    bool adm_gate_syns;        /* ... and lets new SYNs in only as the accept queue has room */

    /* [http] */
    char *index;         /* file served for a directory ("index.html") */
    char *mime_types;    /* mime.types file */
    char *default_type;
    bool precompressed;  /* serve FILE.br / FILE.gz to clients that accept them */

    /* [limits] */
    long max_request_line;
    long max_header_size;
    long max_headers;
    long max_requests_per_connection; /* 0 = unlimited */
    long max_body_discard;            /* request body bytes read and dropped on GET/HEAD */

    /* [timeouts] */
    uint64_t header_timeout_ns;    /* to receive a whole request head */
    uint64_t keepalive_timeout_ns; /* idle between requests */
    uint64_t send_timeout_ns;      /* no write progress for this long: close */
};

/* Fills CFG with every default. Cannot fail. */
void sl_config_defaults(struct sl_config *cfg);

/* Parses PATH into CFG (defaults first, then the file). Returns SL_OK, or
 * SL_ERR with ERR (ERRSZ bytes) set to "PATH:LINE: key: reason" for the first
 * problem (unknown section or key, bad value, value out of range; LINE is 0 for
 * a file that cannot be read and for checks across keys). CFG must be freed
 * with sl_config_free() either way. */
int sl_config_load(struct sl_config *cfg, const char *path, char *err, size_t errsz);

/* The line of CFG's file where SECTION.KEY is set, or 0 if it is not (the
 * default is in effect). For errors found after parsing, which must still
 * name FILE:LINE. Leaves errno as it was. Cannot fail. */
int sl_config_line(const struct sl_config *cfg, const char *section, const char *key);

/* Splits a [server] listen value, "HOST:PORT", "[V6]:PORT" or ":PORT" (any
 * address), into HOST (HOSTSZ bytes; "" for any) and PORT. The host must be a
 * valid IPv4 or bracketed IPv6 literal, or a name (never a malformed address
 * such as 999.1.1.1, which would otherwise go out as a DNS query); the port a
 * number in 1..65535. Returns SL_OK, or SL_ERR with REASON (REASONSZ bytes)
 * saying why. Pure. */
int sl_listen_split(const char *spec, char *host, size_t hostsz, unsigned *port,
                    char *reason, size_t reasonsz);

/* Checks, without side effects, what starting the server with CFG needs
 * beyond the syntax: the listen address parses and resolves, the root is a
 * directory that can be opened, an explicitly set MIME file can be read, the
 * directories of the error log, access log and status socket exist. For
 * `sluice -t`. Returns SL_OK, or SL_ERR with ERR set to "PATH:LINE: key:
 * reason". */
int sl_config_check_start(const struct sl_config *cfg, char *err, size_t errsz);

/* Frees the strings CFG owns. Cannot fail. */
void sl_config_free(struct sl_config *cfg);

/* Parses durations ("1s", "250ms", "2m", "1h", plain number = seconds) and
 * sizes ("8192", "8k", "1m", "1g"). Return SL_OK or SL_ERR. */
int sl_parse_duration(const char *s, uint64_t *ns);
int sl_parse_size(const char *s, long *out);

#endif
