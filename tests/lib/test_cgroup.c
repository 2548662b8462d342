/* Tests for lib/cgroup.c: memory limits as cgroup v1 and v2 write them. */
#include "lib/cgroup.h"

#include <criterion/criterion.h>
#include <unistd.h>

Test(cgroup, parses_memory_limits)
{
    cr_expect_eq(sl_cgroup_parse_memory("33554432"), 33554432u, "v2 memory.max, v1 alike");
    cr_expect_eq(sl_cgroup_parse_memory("33554432\n"), 33554432u);
    cr_expect_eq(sl_cgroup_parse_memory("max"), 0u, "v2: no limit");
    cr_expect_eq(sl_cgroup_parse_memory("9223372036854771712"), 0u, "v1: no limit");
    cr_expect_eq(sl_cgroup_parse_memory(""), 0u);
    cr_expect_eq(sl_cgroup_parse_memory("12k"), 0u, "not a byte count");
    cr_expect_eq(sl_cgroup_parse_memory("-1"), 0u);
    cr_expect_eq(sl_cgroup_parse_memory(NULL), 0u);
}

Test(cgroup, memory_is_at_most_the_machines)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t ram = (uint64_t)pages * (uint64_t)page;
    uint64_t m = sl_cgroup_memory();
    cr_expect_gt(m, 0u);
    cr_expect_leq(m, ram);
}
