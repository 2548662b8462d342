/* proxied.c: the PROXY header of a new connection; see proxied.h. The parser
 * is core/proxy.c; this file applies its result to a connection. */
#include "stages/proxied.h"
#include "core/proxy.h"
#include "lib/log.h"
#include "stages/pipeline.h"

#include <string.h>

int sl_proxied_take(struct sl_conn *c, struct sl_tstats *st)
{
    if (!sl_cidr_match(sl_srv.proxy_from, sl_srv.nproxy_from, &c->peer.sa)) {
        SL_COUNTER_ADD(&st->ev.proxy_untrusted, 1);
        return SL_ERR;
    }
    struct sl_proxy_result r;
    int n = sl_proxy_parse(c->buf, c->buf_len, &r);
    if (n == SL_AGAIN && c->buf_len < c->buf_cap)
        return SL_AGAIN;
    if (n <= 0) {
        SL_COUNTER_ADD(&st->ev.proxy_bad, 1);
        return SL_ERR;
    }
    if (r.has_addr)
        memcpy(&c->peer, &r.src, sizeof(c->peer));
    memmove(c->buf, c->buf + n, c->buf_len - (uint32_t)n);
    c->buf_len -= (uint32_t)n;
    sl_conn_set_state(c, SL_CONN_READ);
    return SL_OK;
}
