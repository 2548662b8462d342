/* cpus.c: the CPUs this process may use (cpus.h). */
#include "lib/cpus.h"

#include "lib/cgroup.h"

#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sl_cpus_affinity(void)
{
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        n = CPU_COUNT(&set);
    if (n <= 0)
        n = (int)sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n;
}

double sl_cpus_parse_v2(const char *cpu_max)
{
    char *end;
    while (*cpu_max == ' ')
        cpu_max++;
    if (strncmp(cpu_max, "max", 3) == 0)
        return 0;
    long long quota = strtoll(cpu_max, &end, 10);
    if (end == cpu_max || *end != ' ' || quota <= 0)
        return 0;
    const char *p = end + 1;
    long long period = strtoll(p, &end, 10);
    if (end == p || period <= 0)
        return 0;
    return (double)quota / (double)period;
}

double sl_cpus_parse_v1(const char *quota_us, const char *period_us)
{
    char *end;
    long long quota = strtoll(quota_us, &end, 10);
    if (end == quota_us || quota <= 0) /* -1: no limit */
        return 0;
    long long period = strtoll(period_us, &end, 10);
    if (end == period_us || period <= 0)
        return 0;
    return (double)quota / (double)period;
}

int sl_cpus_combine(int affinity, double quota)
{
    int n = affinity < 1 ? 1 : affinity;
    if (quota > 0) {
        double q = ceil(quota - 1e-9);
        if (q < n)
            n = q < 1 ? 1 : (int)q;
    }
    return n;
}

/* The CPU limit set in cgroup directory DIR (0: none). */
static double dir_quota(const char *dir, bool v2)
{
    char path[2 * PATH_MAX + 32], a[64], b[64];
    if (v2) {
        snprintf(path, sizeof(path), "%s/cpu.max", dir);
        return sl_cgroup_read_line(path, a, sizeof(a)) ? sl_cpus_parse_v2(a) : 0;
    }
    snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", dir);
    if (!sl_cgroup_read_line(path, a, sizeof(a)))
        return 0;
    snprintf(path, sizeof(path), "%s/cpu.cfs_period_us", dir);
    return sl_cgroup_read_line(path, b, sizeof(b)) ? sl_cpus_parse_v1(a, b) : 0;
}

double sl_cpus_quota(void)
{
    return sl_cgroup_least("cpu", dir_quota);
}

int sl_cpus_usable(void)
{
    return sl_cpus_combine(sl_cpus_affinity(), sl_cpus_quota());
}
