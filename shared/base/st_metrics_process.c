/* st_metrics_process.c - the standard process_* families of Prometheus clients, read from
 * /proc/self when /metrics is scraped (the names, help texts and sources are those of the Go and
 * Python clients, so dashboards written for them work). */
#include "st_metrics.h"

#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int family(st_buf_t *out, const char *name, const char *type, const char *help, double v)
{
    char s[32];
    st_metrics_format_double(s, sizeof s, v);
    return st_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", name, help, name, type, name,
                         s);
}

/* The first line of path that starts with key, copied to line. */
static bool read_line(const char *path, const char *key, char *line, size_t size)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool found = false;
    size_t klen = strlen(key);
    while (!found && fgets(line, (int)size, f))
        found = strncmp(line, key, klen) == 0;
    fclose(f);
    return found;
}

/* utime, stime, starttime (clock ticks), vsize (bytes) and rss (pages) from /proc/self/stat
 * (fields 14, 15, 22, 23 and 24; see proc(5)). */
static bool read_stat(unsigned long long *utime, unsigned long long *stime,
                      unsigned long long *start, unsigned long long *vsize, unsigned long long *rss)
{
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) is in parentheses and may hold spaces and ')': field 3 (the
     * state) starts after the last ')'. */
    const char *p = strrchr(buf, ')');
    if (!p)
        return false;
    int field = 2, got = 0;
    for (p++; *p && got < 5;) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        field++;
        char *end;
        unsigned long long v = strtoull(p, &end, 10);
        unsigned long long *to = field == 14   ? utime
                                 : field == 15 ? stime
                                 : field == 22 ? start
                                 : field == 23 ? vsize
                                 : field == 24 ? rss
                                               : NULL;
        if (to) {
            if (end == p)
                return false;
            *to = v;
            got++;
        }
        p += strcspn(p, " ");
    }
    return got == 5;
}

int st_metrics_render_process(st_buf_t *out)
{
    int rc = 0;
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    unsigned long long utime, stime, start, vsize, rss;
    char line[256];

    if (ticks > 0 && page > 0 && read_stat(&utime, &stime, &start, &vsize, &rss)) {
        rc |= family(out, "process_cpu_seconds_total", "counter",
                     "Total user and system CPU time spent in seconds.",
                     (double)(utime + stime) / (double)ticks);
        rc |= family(out, "process_resident_memory_bytes", "gauge",
                     "Resident memory size in bytes.", (double)rss * (double)page);
        rc |= family(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                     (double)vsize);
        /* starttime counts ticks since boot; btime is the boot time in epoch seconds. */
        unsigned long long btime;
        if (read_line("/proc/stat", "btime ", line, sizeof line) &&
            sscanf(line + 6, "%llu", &btime) == 1)
            rc |= family(out, "process_start_time_seconds", "gauge",
                         "Start time of the process since unix epoch in seconds.",
                         (double)btime + (double)start / (double)ticks);
    }

    DIR *d = opendir("/proc/self/fd");
    if (d) {
        /* Every descriptor but the one this listing holds open. */
        int own = dirfd(d);
        long n = 0;
        for (struct dirent *e; (e = readdir(d));)
            if (e->d_name[0] != '.' && atoi(e->d_name) != own)
                n++;
        closedir(d);
        rc |=
            family(out, "process_open_fds", "gauge", "Number of open file descriptors.", (double)n);
    }

    /* "Max open files            1024                 524288               files": the soft
     * limit, the one that open() runs into. */
    char soft[32];
    if (read_line("/proc/self/limits", "Max open files", line, sizeof line) &&
        sscanf(line + strlen("Max open files"), "%31s", soft) == 1)
        rc |= family(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
                     strcmp(soft, "unlimited") == 0 ? INFINITY : strtod(soft, NULL));
    return rc ? -1 : 0;
}
