/* Unit: st_cpus - the quota arithmetic, cgroup v2's cpu.max text, and the count's bounds (at
 * least 1, at most the CPUs of the affinity mask). */
#define _GNU_SOURCE /* sched_getaffinity */
#include <sched.h>
#include <stdio.h>

#include "st_cpus.h"
#include "st_test.h"

static void test_quota(void)
{
    ST_EQ_INT(st_cpus_from_quota(100000, 100000), 1);
    ST_EQ_INT(st_cpus_from_quota(150000, 100000), 2); /* 1.5 CPUs keep 2 threads busy */
    ST_EQ_INT(st_cpus_from_quota(200000, 100000), 2);
    ST_EQ_INT(st_cpus_from_quota(50000, 100000), 1);
    ST_EQ_INT(st_cpus_from_quota(-1, 100000), 0); /* v1: no limit */
    ST_EQ_INT(st_cpus_from_quota(100000, 0), -1);
}

static void test_cpu_max(void)
{
    ST_EQ_INT(st_cpus_from_cpu_max("max 100000\n"), 0);
    ST_EQ_INT(st_cpus_from_cpu_max("200000 100000\n"), 2);
    ST_EQ_INT(st_cpus_from_cpu_max("250000 100000"), 3);
    ST_EQ_INT(st_cpus_from_cpu_max(""), -1);
    ST_EQ_INT(st_cpus_from_cpu_max("max"), -1);
    ST_EQ_INT(st_cpus_from_cpu_max("12x 100000"), -1);
    ST_EQ_INT(st_cpus_from_cpu_max("-5 100000"), -1);
}

static void test_available(void)
{
    cpu_set_t set;
    ST_REQUIRE(sched_getaffinity(0, sizeof set, &set) == 0);
    int n = st_cpus_available();
    printf("     %d CPU(s) available, %d in the affinity mask\n", n, CPU_COUNT(&set));
    ST_CHECK(n >= 1);
    ST_CHECK(n <= CPU_COUNT(&set));
    /* a narrower mask is followed */
    cpu_set_t one;
    CPU_ZERO(&one);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) {
            CPU_SET(c, &one);
            break;
        }
    ST_REQUIRE(sched_setaffinity(0, sizeof one, &one) == 0);
    ST_EQ_INT(st_cpus_available(), 1);
    ST_REQUIRE(sched_setaffinity(0, sizeof set, &set) == 0);
}

int main(void)
{
    ST_RUN(test_quota);
    ST_RUN(test_cpu_max);
    ST_RUN(test_available);
    return st_test_summary();
}
