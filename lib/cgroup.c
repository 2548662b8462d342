/* cgroup.c: the limits this process's cgroups set (cgroup.h). */
#include "lib/cgroup.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool sl_cgroup_read_line(const char *path, char *buf, size_t len)
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

/* This process's cgroup path in the v1 hierarchy with CONTROLLER or in the
 * unified one (v2), into PATH; false if it has none. */
static bool own_cgroup(const char *controller, bool v2, char *path, size_t len)
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
        if (v2 ? (strcmp(line, "0") == 0 && *ctl == '\0') : has_word(ctl, controller)) {
            snprintf(path, len, "%s", cg);
            found = true;
        }
    }
    fclose(f);
    return found;
}

double sl_cgroup_least(const char *controller, sl_cgroup_limit_fn *limit)
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
        if (!v2 && !(strcmp(fstype, "cgroup") == 0 && has_word(super, controller)))
            continue;
        char cg[PATH_MAX];
        if (!own_cgroup(controller, v2, cg, sizeof(cg)))
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
            double q = limit(dir, v2);
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

uint64_t sl_cgroup_parse_memory(const char *text)
{
    char *end;
    if (text == NULL || *text < '0' || *text > '9')
        return 0; /* "max", or not a number */
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == text || (*end != '\0' && *end != '\n'))
        return 0;
    /* v1 writes "no limit" as the largest page count in bytes, near 2^63. */
    if (v >= (1ull << 60))
        return 0;
    return (uint64_t)v;
}

static double dir_memory(const char *dir, bool v2)
{
    char path[2 * PATH_MAX + 32], text[64];
    snprintf(path, sizeof(path), "%s/%s", dir, v2 ? "memory.max" : "memory.limit_in_bytes");
    return sl_cgroup_read_line(path, text, sizeof(text))
               ? (double)sl_cgroup_parse_memory(text)
               : 0;
}

uint64_t sl_cgroup_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t ram = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    uint64_t cg = (uint64_t)sl_cgroup_least("memory", dir_memory);
    if (cg > 0 && (ram == 0 || cg < ram))
        return cg;
    return ram;
}
