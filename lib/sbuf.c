/* sbuf.c: a growing text buffer; see sbuf.h. */
#include "lib/sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sl_sbuf_reserve(struct sl_sbuf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more + 1)
        cap *= 2;
    b->p = sl_realloc(b->p, cap);
    b->cap = cap;
}

void sl_sbuf_printf(struct sl_sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    sl_sbuf_reserve(b, (size_t)n);
    if ((size_t)n < sizeof(tmp)) {
        memcpy(b->p + b->len, tmp, (size_t)n + 1);
    } else {
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void sl_sbuf_put(struct sl_sbuf *b, const char *s, size_t n)
{
    sl_sbuf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void sl_sbuf_puts(struct sl_sbuf *b, const char *s)
{
    sl_sbuf_put(b, s, strlen(s));
}

void sl_sbuf_json_str(struct sl_sbuf *b, const char *s)
{
    sl_sbuf_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            sl_sbuf_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            sl_sbuf_printf(b, "\\u%04x", *p);
        else
            sl_sbuf_put(b, (const char *)p, 1);
    }
    sl_sbuf_put(b, "\"", 1);
}

void sl_sbuf_free(struct sl_sbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}
