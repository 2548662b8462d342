/* prom.h: Prometheus text exposition helpers: a growing text buffer and the
 * renderer that turns a log-linear sl_hist into a Prometheus histogram with
 * fixed bucket bounds. Pure: no server state. */
#ifndef SLUICE_PROM_H
#define SLUICE_PROM_H

#include "lib/stats.h"

#include <stddef.h>

/* The bucket bounds every sluice histogram exports: 2^10 ns (about 1 us) to
 * 2^34 ns (about 17 s), every second power of two. They are edges of the
 * internal log-linear buckets, so each cumulative count is exact, and they
 * are the same on every instance, so the series aggregate across a fleet. */
#define SL_PROM_LE_FIRST 10
#define SL_PROM_LE_LAST 34
#define SL_PROM_LE_STEP 2

/* A growing, NUL-terminated text. Zero-initialize; free(t.p) when done. */
struct sl_text {
    char *p;
    size_t len;
    size_t cap;
};

/* Appends formatted text. Cannot fail (allocation failure aborts). */
void sl_text_printf(struct sl_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends the samples of one histogram series (no HELP/TYPE lines; the
 * caller writes those once per metric):
 *   NAME_bucket{LABELS,le="B"} N   for each bound, cumulative, then le="+Inf"
 *   NAME_sum{LABELS} S             in seconds
 *   NAME_count{LABELS} C
 * LABELS is 'k="v",...' without braces, or "" for none. H is a snapshot
 * (values in ns). Cannot fail. */
void sl_prom_histogram(struct sl_text *t, const char *name, const char *labels,
                       const struct sl_hist *h);

#endif
