/* fuzz_util.h - helpers for the harnesses whose parsers only take a path: the input as a file
 * (one memfd per process, rewritten per run, opened through /proc/self/fd/N) and a scratch
 * directory per process (in /dev/shm when there is one, removed at exit). */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Writes data into this process's memfd and returns a path that opens it (static buffer). */
static inline const char *fuzz_input_path(const uint8_t *data, size_t size)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = (int)syscall(SYS_memfd_create, "fuzz-input", 0);
        if (fd < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0 || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) {
        perror("fuzz input memfd");
        abort();
    }
    return path;
}

/* Writes size bytes to path (created or truncated); aborts on failure. */
static inline void fuzz_write_file(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

static char fuzz_dir[64];

static inline void fuzz_rmtree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            char sub[512];
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            fuzz_rmtree(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static inline void fuzz_dir_remove(void)
{
    if (fuzz_dir[0])
        fuzz_rmtree(fuzz_dir);
}

/* This process's scratch directory, created on the first call. */
static inline const char *fuzz_scratch_dir(void)
{
    if (!fuzz_dir[0]) {
        struct stat sb;
        snprintf(fuzz_dir, sizeof fuzz_dir, "%s/stint-fuzz-XXXXXX",
                 stat("/dev/shm", &sb) == 0 && S_ISDIR(sb.st_mode) && access("/dev/shm", W_OK) == 0
                     ? "/dev/shm"
                     : "/tmp");
        if (!mkdtemp(fuzz_dir)) {
            perror("mkdtemp");
            abort();
        }
        atexit(fuzz_dir_remove);
    }
    return fuzz_dir;
}

#endif
