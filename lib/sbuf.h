/* sbuf.h: a growing text buffer: the status replies and reports are built in
 * it. Allocation follows the OOM policy (lib/common.h), so nothing here
 * fails. Not thread-safe: one owner per buffer. */
#ifndef SLUICE_SBUF_H
#define SLUICE_SBUF_H

#include "lib/common.h"

#include <stddef.h>

/* A zeroed struct is an empty buffer. P is NUL-terminated once anything was
 * appended (NULL before). */
struct sl_sbuf {
    char *p;
    size_t len; /* bytes held */
    size_t off; /* bytes already sent (a socket's output buffer only) */
    size_t cap;
};

/* Makes room for MORE bytes and a NUL after what B holds. */
void sl_sbuf_reserve(struct sl_sbuf *b, size_t more);

/* Appends printf(FMT, ...); an encoding error appends nothing. */
void sl_sbuf_printf(struct sl_sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends the N bytes at S. */
void sl_sbuf_put(struct sl_sbuf *b, const char *s, size_t n);

/* Appends the string S. */
void sl_sbuf_puts(struct sl_sbuf *b, const char *s);

/* Appends S as a JSON string literal, quotes included: '"' and '\\'
 * escaped, control characters and DEL as \u00XX. */
void sl_sbuf_json_str(struct sl_sbuf *b, const char *s);

/* Frees what B holds and leaves it empty (zeroed). */
void sl_sbuf_free(struct sl_sbuf *b);

#endif
