/* cpus.c: the CPUs this process may use (cpus.h). */
#include "lib/cpus.h"

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

/* The first line of PATH into BUF; false if it cannot be read. */
static bool read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return false;
    bool ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (ok)
        buf[strcspn(buf, "\n")] = '\0';
    return ok;
}

/* The CPU limit set in cgroup directory DIR (0: none). */
static double dir_quota(const char *dir, bool v2)
{
    char path[2 * PATH_MAX + 32], a[64], b[64];
    if (v2) {
        snprintf(path, sizeof(path), "%s/cpu.max", dir);
        return read_line(path, a, sizeof(a)) ? sl_cpus_parse_v2(a) : 0;
    }
    snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", dir);
    if (!read_line(path, a, sizeof(a)))
        return 0;
    snprintf(path, sizeof(path), "%s/cpu.cfs_period_us", dir);
    return read_line(path, b, sizeof(b)) ? sl_cpus_parse_v1(a, b) : 0;
}

/* Whether the comma list LIST holds WORD. */
static bool has_word(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; p != NULL; p = strchr(p, ',')) {
        if (*p == ',')
            p++;
        if (strncmp(p, word, n) == 0 && (p[n] == ',' || p[n] == '\0'))
            return true;
    }
    return false;
}

/* This process's cgroup path in the hierarchy with the cpu controller (v1)
 * or in the unified one (v2), into PATH; false if it has none. */
static bool own_cgroup(bool v2, char *path, size_t len)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (f == NULL)
        return false;
    char line[PATH_MAX + 128];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char *ctl = strchr(line, ':');
        char *cg = ctl ? strchr(ctl + 1, ':') : NULL;
        if (cg == NULL)
            continue;
        *cg++ = '\0';
        ctl++;
        if (v2 ? (strcmp(line, "0") == 0 && *ctl == '\0') : has_word(ctl, "cpu")) {
            snprintf(path, len, "%s", cg);
            found = true;
        }
    }
    fclose(f);
    return found;
}

double sl_cpus_quota(void)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (f == NULL)
        return 0;
    char line[2 * PATH_MAX];
    double least = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        /* id parent major:minor root mountpoint options [optional...] - fstype source super */
        char root[PATH_MAX], mnt[PATH_MAX], fstype[32], super[512];
        char *dash = strstr(line, " - ");
        if (dash == NULL || sscanf(line, "%*s %*s %*s %4095s %4095s", root, mnt) != 2 ||
            sscanf(dash + 3, "%31s %*s %511s", fstype, super) != 2)
            continue;
        bool v2 = strcmp(fstype, "cgroup2") == 0;
        if (!v2 && !(strcmp(fstype, "cgroup") == 0 && has_word(super, "cpu")))
            continue;
        char cg[PATH_MAX];
        if (!own_cgroup(v2, cg, sizeof(cg)))
            continue;
        /* The cgroup path is from the hierarchy's root; the mount shows ROOT
           of it (a container's namespace: "/" and the same path). */
        size_t rl = strcmp(root, "/") == 0 ? 0 : strlen(root);
        if (rl > 0 && strncmp(cg, root, rl) != 0)
            continue;
        char dir[2 * PATH_MAX];
        snprintf(dir, sizeof(dir), "%s%s", mnt, cg + rl);
        size_t base = strlen(mnt);
        for (;;) { /* up to the mount point: a parent's limit binds too */
            double q = dir_quota(dir, v2);
            if (q > 0 && (least == 0 || q < least))
                least = q;
            char *slash = strrchr(dir, '/');
            if (slash == NULL || (size_t)(slash - dir) < base)
                break;
            *slash = '\0';
        }
    }
    fclose(f);
    return least;
}

int sl_cpus_usable(void)
{
    return sl_cpus_combine(sl_cpus_affinity(), sl_cpus_quota());
}
