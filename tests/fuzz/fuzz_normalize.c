/* fuzz_normalize.c: libFuzzer harness for sl_http_normalize_path. Whatever
 * the target, a path that comes out never climbs above the root: no "." or
 * ".." segment, no leading '/', no NUL or control byte. */
#include "core/http.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char *target = malloc(size ? size : 1);
    memcpy(target, data, size);
    char out[512];
    bool slash = false;
    int status = 0;
    if (sl_http_normalize_path(target, size, out, sizeof(out), &slash, &status) == SL_OK) {
        size_t n = strnlen(out, sizeof(out));
        if (n >= sizeof(out) || out[0] == '/')
            abort();
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
                abort();
        /* segment by segment */
        const char *p = out;
        while (*p) {
            const char *e = strchr(p, '/');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
                abort();
            if (len == 0 && e != NULL)
                abort(); /* "//" is merged */
            p += len + (e ? 1 : 0);
        }
    } else if (status != 400 && status != 414) {
        abort();
    }
    free(target);
    return 0;
}
