/* st_cpus.c - the CPUs this process may keep busy (see st_cpus.h). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "st_cpus.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int st_cpus_from_quota(long long quota_us, long long period_us)
{
    if (period_us <= 0)
        return -1;
    if (quota_us < 0)
        return 0;
    long long cpus = (quota_us + period_us - 1) / period_us;
    return cpus < 1 ? 1 : cpus > 1 << 20 ? 1 << 20 : (int)cpus;
}

int st_cpus_from_cpu_max(const char *text)
{
    char quota[32];
    long long period;
    if (sscanf(text, "%31s %lld", quota, &period) != 2)
        return -1;
    if (strcmp(quota, "max") == 0)
        return period > 0 ? 0 : -1;
    char *end;
    long long q = strtoll(quota, &end, 10);
    if (*end != '\0' || q <= 0)
        return -1;
    return st_cpus_from_quota(q, period);
}

static int read_text(const char *path, char *buf, size_t size)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return -1;
    size_t n = fread(buf, 1, size - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return 0;
}

/* The group's quota in CPUs (0: none or unreadable), v2 or v1 layout. */
static int group_quota(int v2, const char *group)
{
    char path[4200], text[128];
    if (v2) {
        snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", group);
        if (read_text(path, text, sizeof text) != 0)
            return 0;
        int cpus = st_cpus_from_cpu_max(text);
        return cpus > 0 ? cpus : 0;
    }
    static const char *const mounts[] = {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"};
    for (size_t i = 0; i < sizeof mounts / sizeof mounts[0]; i++) {
        long long quota, period;
        snprintf(path, sizeof path, "%s%s/cpu.cfs_quota_us", mounts[i], group);
        if (read_text(path, text, sizeof text) != 0 || sscanf(text, "%lld", &quota) != 1)
            continue;
        snprintf(path, sizeof path, "%s%s/cpu.cfs_period_us", mounts[i], group);
        if (read_text(path, text, sizeof text) != 0 || sscanf(text, "%lld", &period) != 1)
            continue;
        int cpus = st_cpus_from_quota(quota, period);
        return cpus > 0 ? cpus : 0;
    }
    return 0;
}

/* The lower of two quotas, 0 being none. */
static int lower_quota(int a, int b)
{
    return a > 0 && (b == 0 || a < b) ? a : b;
}

/* The lowest quota of the group and its ancestors up to the root ("" in the paths), 0 for none. */
static int chain_quota(int v2, char *group)
{
    int best = 0;
    if (strcmp(group, "/") == 0)
        group[0] = '\0';
    for (;;) { /* "/a/b", "/a", "" */
        best = lower_quota(group_quota(v2, group), best);
        char *slash = strrchr(group, '/');
        if (!slash)
            return best;
        *slash = '\0';
    }
}

int st_cpus_available(void)
{
    int cpus = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        cpus = CPU_COUNT(&set);
    if (cpus < 1) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        cpus = online < 1 ? 1 : online > 1 << 20 ? 1 << 20 : (int)online;
    }
    FILE *fp = fopen("/proc/self/cgroup", "r");
    if (!fp)
        return cpus;
    char line[4096];
    int quota = 0;
    while (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\n")] = '\0';
        /* "0::/path" (v2) or "N:cpu,cpuacct:/path" (v1) */
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2 || c2[1] != '/')
            continue;
        *c2 = '\0';
        int v2 = strncmp(line, "0:", 2) == 0 && c1[1] == '\0', v1_cpu = 0;
        char *save = NULL;
        for (char *t = strtok_r(c1 + 1, ",", &save); t; t = strtok_r(NULL, ",", &save))
            v1_cpu |= strcmp(t, "cpu") == 0;
        if (!v2 && !v1_cpu)
            continue;
        quota = lower_quota(chain_quota(v2, c2 + 1), quota);
    }
    fclose(fp);
    return quota > 0 && quota < cpus ? quota : cpus;
}
