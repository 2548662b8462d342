/* cpus.h: how many CPUs this process may use: its affinity mask, and the CPU
 * time its cgroups allow (a container's or a systemd unit's CPU quota), so
 * that "threads = auto" does not start four busy threads in a one-CPU
 * budget, where they only preempt each other. */
#ifndef SLUICE_CPUS_H
#define SLUICE_CPUS_H

/* The CPUs in this process's affinity mask (at least 1). */
int sl_cpus_affinity(void);

/* The CPU time this process's cgroups allow, in CPUs (quota / period; the
 * least along the path from its cgroup up to the root), or 0 when none is
 * set or it cannot be read. cgroup v2 (cpu.max) and v1 (cpu.cfs_quota_us,
 * cpu.cfs_period_us), found through /proc/self/mountinfo and
 * /proc/self/cgroup. Cannot fail. */
double sl_cpus_quota(void);

/* What "threads = auto" means: the affinity CPUs, or the quota rounded up
 * when that is fewer; at least 1. */
int sl_cpus_usable(void);

/* Parsers, pure, for the tests. A cgroup v2 cpu.max ("max 100000",
 * "50000 100000"), and v1's cfs_quota_us and cfs_period_us texts: the CPUs
 * they allow, 0 for no limit or text that is not a limit. */
double sl_cpus_parse_v2(const char *cpu_max);
double sl_cpus_parse_v1(const char *quota_us, const char *period_us);

/* The usable count for AFFINITY CPUs and QUOTA CPUs (0: none). Pure. */
int sl_cpus_combine(int affinity, double quota);

#endif
