/* cgroup.h: the limits this process's cgroups set (v1 and v2), found through
 * /proc/self/mountinfo and /proc/self/cgroup, and the memory it may use. */
#ifndef SLUICE_CGROUP_H
#define SLUICE_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a cgroup directory DIR (v2: the unified hierarchy) limits, 0: none. */
typedef double sl_cgroup_limit_fn(const char *dir, bool v2);

/* The least positive LIMIT along the path from this process's cgroup up to
 * its hierarchy's root (a parent's limit binds too), in the v1 hierarchy
 * with CONTROLLER ("cpu", "memory") or the v2 one; 0 when none is set or it
 * cannot be read. Cannot fail. */
double sl_cgroup_least(const char *controller, sl_cgroup_limit_fn *limit);

/* The first line of PATH into BUF, without its newline; false if it cannot
 * be read. */
bool sl_cgroup_read_line(const char *path, char *buf, size_t len);

/* A memory limit's text, v2's memory.max ("max", "33554432") or v1's
 * memory.limit_in_bytes (its "no limit" is near 2^63): bytes, 0 for no
 * limit or text that is not one. Pure. */
uint64_t sl_cgroup_parse_memory(const char *text);

/* The memory this process may use: its cgroups' least memory limit, or the
 * machine's RAM when that is less or none is set. Cannot fail. */
uint64_t sl_cgroup_memory(void);

#endif
