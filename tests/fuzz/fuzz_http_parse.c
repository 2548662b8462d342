/* fuzz_http_parse.c: libFuzzer harness for sl_http_parse_request. Checks the
 * parser's contract on every input: it never reads outside the buffer, never
 * claims more bytes than it got, and every string it returns lies inside. */
#include "core/http.h"

#include <stdlib.h>
#include <string.h>

static void inside(const struct sl_str *s, const char *buf, size_t len)
{
    if (s->n == 0)
        return;
    if (s->p < buf || s->p + s->n > buf + len)
        abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    /* An exact-size heap copy, so ASan catches any read past the end. */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    struct sl_http_limits lim = {.max_request_line = 256, .max_header_size = 1024,
                                 .max_headers = 16};
    struct sl_request req;
    int status = 0;
    int rc = sl_http_parse_request(buf, size, &lim, &req, &status);
    if (rc > 0) {
        if ((size_t)rc > size || req.nheaders > lim.max_headers)
            abort();
        inside(&req.method_name, buf, size);
        inside(&req.target, buf, size);
        for (size_t i = 0; i < req.nheaders; i++) {
            inside(&req.headers[i].name, buf, size);
            inside(&req.headers[i].value, buf, size);
        }
        if (req.version != 10 && req.version != 11)
            abort();
    } else if (rc == SL_ERR) {
        if (status != 400 && status != 414 && status != 431 && status != 505)
            abort();
    } else if (rc != SL_AGAIN) {
        abort();
    }
    free(buf);
    return 0;
}
