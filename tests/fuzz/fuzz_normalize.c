/* fuzz_normalize.c: libFuzzer harness for sl_http_normalize_path. The input is
 * a request-target; it is normalized into a small and a large exactly sized
 * output buffer and the result is checked against the contract in
 * core/http.h: no "." / ".." / empty segment, no leading '/', no NUL or
 * control byte, fits OUTSZ, and normalizing the result again changes nothing.
 * Any violation aborts. */
#include "core/http.h"
#include "tests/fuzz/check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMALL 24
#define LARGE 4096

/* Checks a successful result OUT (buffer of OUTSZ bytes). Returns its length. */
static size_t check_out(const char *out, size_t outsz, bool slash)
{
    size_t n = strnlen(out, outsz);
    CHECK(n < outsz); /* NUL-terminated inside the buffer */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];
        CHECK(c >= 0x20 && c != 0x7f);
    }
    if (n == 0) {
        CHECK(slash); /* only the root is empty */
        return n;
    }
    CHECK(out[0] != '/');
    CHECK((out[n - 1] == '/') == slash);
    /* segments: none empty, none "." or ".." (a trailing '/' ends the last) */
    const char *p = out, *end = out + n - (slash ? 1 : 0);
    for (;;) {
        const char *s = memchr(p, '/', (size_t)(end - p));
        const char *e = s ? s : end;
        size_t len = (size_t)(e - p);
        CHECK(len > 0);
        CHECK(!(len == 1 && p[0] == '.'));
        CHECK(!(len == 2 && p[0] == '.' && p[1] == '.'));
        if (s == NULL)
            break;
        p = s + 1;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1); /* exact size: ASan sees over-reads */
    char *small = malloc(SMALL), *large = malloc(LARGE);
    if (in == NULL || small == NULL || large == NULL)
        goto done;
    memcpy(in, data, size);

    bool ss = false, sl = false;
    int st_small = -1, st_large = -1;
    int rs = sl_http_normalize_path(in, size, small, SMALL, &ss, &st_small);
    int rl = sl_http_normalize_path(in, size, large, LARGE, &sl, &st_large);
    CHECK(rs == SL_OK || rs == SL_ERR);
    CHECK(rl == SL_OK || rl == SL_ERR);
    if (rs == SL_ERR)
        CHECK(st_small == 400 || st_small == 414);
    if (rl == SL_ERR)
        CHECK(st_large == 400 || st_large == 414);

    if (rs == SL_OK) {
        CHECK(st_small == 0);
        check_out(small, SMALL, ss);
        /* a larger buffer gives the same answer */
        CHECK(rl == SL_OK && sl == ss && strcmp(small, large) == 0);
    }
    if (rs == SL_ERR && st_small == 400) /* syntax does not depend on OUTSZ */
        CHECK(rl == SL_ERR && st_large == 400);

    if (rl == SL_OK) {
        CHECK(st_large == 0);
        size_t n = check_out(large, LARGE, sl);
        /* Idempotence: "/" + OUT is already normal, unless OUT holds bytes
           that mean something in a target ('%', '?', '#'), which a decoded
           "%25", "%3F" or "%23" legitimately leaves behind. */
        if (strpbrk(large, "%?#") == NULL) {
            char *again = malloc(n + 2), *out2 = malloc(n + 1);
            if (again != NULL && out2 != NULL) {
                again[0] = '/';
                memcpy(again + 1, large, n);
                bool s2 = !sl;
                int st2 = -1;
                CHECK(sl_http_normalize_path(again, n + 1, out2, n + 1, &s2, &st2) == SL_OK);
                CHECK(s2 == sl && strcmp(out2, large) == 0);
            }
            free(again);
            free(out2);
        }
    }
done:
    free(in);
    free(small);
    free(large);
    return 0;
}
