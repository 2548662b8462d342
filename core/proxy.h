/* proxy.h: the PROXY protocol (haproxy's proxy-protocol.txt, v1 text and v2
 * binary) that a balancer puts before a connection's first request, and the
 * CIDR list of sources allowed to send it. Pure: bytes in, an address out. */
#ifndef SLUICE_PROXY_H
#define SLUICE_PROXY_H

#include "lib/common.h"

#include <netinet/in.h>
#include <sys/socket.h>

#define SL_PROXY_V1_MAX 107 /* the longest v1 line, CRLF included */
#define SL_PROXY_V2_MAX (16 + 65535)
#define SL_PROXY_CIDR_MAX 32 /* networks in one proxy_protocol_from list */

/* What a PROXY header said. LOCAL (v2) and UNKNOWN (v1) headers carry no
 * address: the connection's own peer stays the client (haproxy's health
 * checks send these). */
struct sl_proxy_result {
    bool has_addr;
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } src;
};

/* Parses a PROXY header at the start of BUF (LEN bytes read so far). Returns
 * the header's length (> 0: the request starts after it) with OUT filled,
 * SL_AGAIN if BUF is a prefix of a header that may still become valid (read
 * more), or SL_ERR if it is not a valid header (the connection must be
 * closed unanswered). Never reads past LEN. Cannot fail otherwise. */
int sl_proxy_parse(const char *buf, size_t len, struct sl_proxy_result *out);

/* One network of a CIDR list: family AF_INET or AF_INET6, address, prefix. */
struct sl_cidr {
    int family;
    unsigned prefix;
    uint8_t addr[16];
};

/* Parses "10.0.0.0/8, 127.0.0.1, ::1/128" (commas and/or blanks between
 * items; an address without /N is one host) into at most MAX entries of OUT.
 * Returns the count (0 for an empty list), or SL_ERR with ERR (ERRSZ bytes)
 * naming the bad item. */
int sl_cidr_parse_list(const char *s, struct sl_cidr *out, int max, char *err, size_t errsz);

/* Is SA (AF_INET or AF_INET6; a v4-mapped v6 address counts as v4) inside
 * one of the N networks of LIST? N = 0 matches nothing. */
bool sl_cidr_match(const struct sl_cidr *list, int n, const struct sockaddr *sa);

#endif
