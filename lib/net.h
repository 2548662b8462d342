/* net.h: listening sockets, for the main listener and the HTTP status
 * listeners alike. */
#ifndef SLUICE_NET_H
#define SLUICE_NET_H

#include <stdbool.h>
#include <stddef.h>

/* Opens a non-blocking, close-on-exec TCP socket listening on HOST ("": any
 * address) and numeric PORT with BACKLOG, on the first address getaddrinfo()
 * gives that binds; SO_REUSEADDR always, SO_REUSEPORT too when REUSEPORT.
 * Returns the socket, or -1 with REASON set to "'SPEC': why" (the address
 * does not resolve) or "cannot listen on SPEC: why" (SPEC: the address as the
 * operator wrote it, for the message only). Logs nothing. */
int sl_listen_bind(const char *spec, const char *host, const char *port, int backlog,
                   bool reuseport, char *reason, size_t reasonsz);

#endif
