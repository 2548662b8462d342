/* prom.c: Prometheus text helpers; see prom.h. */
#include "lib/prom.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void sl_text_printf(struct sl_text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = t->cap - t->len;
        int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (t->p && (size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap ? t->cap : 1024;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        t->p = sl_realloc(t->p, cap);
        t->cap = cap;
    }
}

void sl_prom_histogram(struct sl_text *t, const char *name, const char *labels,
                       const struct sl_hist *h)
{
    const char *sep = labels[0] ? "," : "";
    uint64_t total = 0;
    for (unsigned i = 0; i < SL_HIST_BUCKETS; i++)
        total += h->b[i];
    for (unsigned k = SL_PROM_LE_FIRST; k <= SL_PROM_LE_LAST; k += SL_PROM_LE_STEP)
        sl_text_printf(t, "%s_bucket{%s%sle=\"%.12g\"} %" PRIu64 "\n", name, labels, sep,
                       (double)(1ull << k) / 1e9, sl_hist_below(h, k));
    /* +Inf is the bucket total, not h->count: a snapshot taken while the
       owner adds may see a bucket before its count; buckets stay monotonic. */
    sl_text_printf(t, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, sep, total);
    if (labels[0]) {
        sl_text_printf(t, "%s_sum{%s} %.9f\n", name, labels, (double)h->sum / 1e9);
        sl_text_printf(t, "%s_count{%s} %" PRIu64 "\n", name, labels, total);
    } else {
        sl_text_printf(t, "%s_sum %.9f\n", name, (double)h->sum / 1e9);
        sl_text_printf(t, "%s_count %" PRIu64 "\n", name, total);
    }
}
