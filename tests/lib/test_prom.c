/* test_prom.c: the Prometheus histogram renderer: exact cumulative counts at
 * the fixed bounds, +Inf and _count equal, labels, and the text buffer. */
#include "lib/prom.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value of the sample line starting with PREFIX (-1 if none). */
static double sample(const char *text, const char *prefix)
{
    const char *p = text;
    size_t n = strlen(prefix);
    while (p && *p) {
        if (strncmp(p, prefix, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

Test(prom, histogram_buckets_exact_and_cumulative)
{
    struct sl_hist h;
    memset(&h, 0, sizeof(h));
    /* 1023 ns is under the first bound (1024 ns); 1024 is not. */
    uint64_t vals[] = {5, 1023, 1024, 4095, 4096, 1000000, 1048575, 1048576, 20000000000ull,
                       1ull << 41};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        sl_hist_add(&h, vals[i]);
    struct sl_text t = {0};
    sl_prom_histogram(&t, "sluice_x_seconds", "stage=\"reader\"", &h);
    cr_assert_eq(sample(t.p, "sluice_x_seconds_bucket{stage=\"reader\",le=\"1.024e-06\"}"), 2,
                 "%s", t.p);
    cr_assert_eq(sample(t.p, "sluice_x_seconds_bucket{stage=\"reader\",le=\"4.096e-06\"}"), 4);
    cr_assert_eq(sample(t.p, "sluice_x_seconds_bucket{stage=\"reader\",le=\"0.001048576\"}"),
                 7);
    cr_assert_eq(sample(t.p, "sluice_x_seconds_bucket{stage=\"reader\",le=\"0.004194304\"}"),
                 8);
    cr_assert_eq(sample(t.p, "sluice_x_seconds_bucket{stage=\"reader\",le=\"17.179869184\"}"),
                 8, "20 s is above the last bound");
    cr_assert_eq(sample(t.p, "sluice_x_seconds_bucket{stage=\"reader\",le=\"+Inf\"}"), 10);
    cr_assert_eq(sample(t.p, "sluice_x_seconds_count{stage=\"reader\"}"), 10);
    double sum = 0;
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        sum += (double)vals[i] / 1e9;
    cr_assert_float_eq(sample(t.p, "sluice_x_seconds_sum{stage=\"reader\"}"), sum, 1e-6);
    /* Bounds ascend and counts never go down. */
    int lines = 0;
    double prev_le = 0, prev_n = 0;
    for (char *p = t.p; (p = strstr(p, "le=\"")) != NULL; p++) {
        if (p[4] == '+')
            break;
        double le = strtod(p + 4, NULL);
        double n = strtod(strstr(p, "} ") + 2, NULL);
        cr_assert(le > prev_le && n >= prev_n);
        prev_le = le;
        prev_n = n;
        lines++;
    }
    cr_assert_eq(lines, (SL_PROM_LE_LAST - SL_PROM_LE_FIRST) / SL_PROM_LE_STEP + 1);
    free(t.p);
}

Test(prom, histogram_without_labels_and_empty)
{
    struct sl_hist h;
    memset(&h, 0, sizeof(h));
    struct sl_text t = {0};
    sl_prom_histogram(&t, "sluice_y_seconds", "", &h);
    cr_assert(strstr(t.p, "sluice_y_seconds_bucket{le=\"+Inf\"} 0\n") != NULL, "%s", t.p);
    cr_assert(strstr(t.p, "sluice_y_seconds_count 0\n") != NULL);
    cr_assert(strstr(t.p, "sluice_y_seconds_sum 0.000000000\n") != NULL);
    cr_assert_eq(strlen(t.p), t.len);
    free(t.p);
}

Test(prom, text_grows)
{
    struct sl_text t = {0};
    for (int i = 0; i < 5000; i++)
        sl_text_printf(&t, "%04d,", i % 10000);
    cr_assert_eq(t.len, 25000);
    cr_assert_eq(strncmp(t.p + 24995, "4999,", 5), 0);
    free(t.p);
}
