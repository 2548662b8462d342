/* test_cpus.c: the CPUs "threads = auto" counts (lib/cpus.h). */
#include "lib/cpus.h"

#include <criterion/criterion.h>

Test(cpus, cgroup_v2_cpu_max)
{
    cr_expect_float_eq(sl_cpus_parse_v2("max 100000"), 0, 1e-12, "no limit");
    cr_expect_float_eq(sl_cpus_parse_v2("50000 100000"), 0.5, 1e-12);
    cr_expect_float_eq(sl_cpus_parse_v2("2500 10000"), 0.25, 1e-12);
    cr_expect_float_eq(sl_cpus_parse_v2("300000 100000"), 3.0, 1e-12);
    cr_expect_float_eq(sl_cpus_parse_v2(""), 0, 1e-12, "empty");
    cr_expect_float_eq(sl_cpus_parse_v2("50000"), 0, 1e-12, "no period");
    cr_expect_float_eq(sl_cpus_parse_v2("50000 0"), 0, 1e-12, "zero period");
    cr_expect_float_eq(sl_cpus_parse_v2("-5 100000"), 0, 1e-12);
}

Test(cpus, cgroup_v1_quota_and_period)
{
    cr_expect_float_eq(sl_cpus_parse_v1("-1", "100000"), 0, 1e-12, "no limit");
    cr_expect_float_eq(sl_cpus_parse_v1("2500", "10000"), 0.25, 1e-12);
    cr_expect_float_eq(sl_cpus_parse_v1("150000", "100000"), 1.5, 1e-12);
    cr_expect_float_eq(sl_cpus_parse_v1("x", "100000"), 0, 1e-12);
    cr_expect_float_eq(sl_cpus_parse_v1("2500", "0"), 0, 1e-12);
}

Test(cpus, quota_rounds_up_and_never_raises_the_affinity)
{
    cr_expect_eq(sl_cpus_combine(8, 0), 8, "no quota: the affinity");
    cr_expect_eq(sl_cpus_combine(8, 0.25), 1);
    cr_expect_eq(sl_cpus_combine(8, 1.0), 1);
    cr_expect_eq(sl_cpus_combine(8, 1.5), 2);
    cr_expect_eq(sl_cpus_combine(2, 16), 2, "a quota above the CPUs");
    cr_expect_eq(sl_cpus_combine(0, 0), 1);
}

Test(cpus, usable_is_within_the_affinity)
{
    int n = sl_cpus_usable();
    cr_expect(n >= 1 && n <= sl_cpus_affinity(), "%d of %d", n, sl_cpus_affinity());
    cr_expect(sl_cpus_quota() >= 0);
}
