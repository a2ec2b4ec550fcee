/* st_cpus.h - how many CPUs this process may keep busy: the CPUs of its affinity mask (taskset,
 * cpusets), lowered to its cgroup's CPU quota rounded up (cgroup v2 cpu.max, or v1
 * cpu.cfs_quota_us / cpu.cfs_period_us; its own group's and every ancestor's). That is what a
 * container gets from `docker run --cpus` or a Kubernetes CPU limit, where sysconf's online CPUs
 * are the whole node's. */
#ifndef ST_CPUS_H
#define ST_CPUS_H

/* At least 1. Reads /proc/self/cgroup and /sys/fs/cgroup on each call. */
int st_cpus_available(void);

/* A quota of quota_us per period_us in CPUs, rounded up: 0 for no limit (quota_us < 0, v1's -1),
 * -1 when period_us <= 0. */
int st_cpus_from_quota(long long quota_us, long long period_us);

/* cgroup v2's cpu.max text ("max 100000", "150000 100000") in CPUs as st_cpus_from_quota; -1 when
 * it is neither. */
int st_cpus_from_cpu_max(const char *text);

#endif
