/* fake_lastfm.h - starts and stops tests/fixtures/lastfm/fake_lastfm.py (the local stand-in for
 * the Last.fm API) for C tests. Header-only, test code only. */
#ifndef FAKE_LASTFM_H
#define FAKE_LASTFM_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    pid_t pid;
    int stdin_fd;      /* closing it makes the server exit (--exit-on-stdin-eof) */
    char root[64];     /* http://127.0.0.1:<port> */
    char base_url[80]; /* <root>/2.0/ */
} fake_lastfm_t;

/* Starts the server on a free port with bad_key answering error 10 and suspended_key (may be NULL)
 * error 26. Returns 0, or -1 with a message on stderr. */
static inline int fake_lastfm_start(fake_lastfm_t *s, const char *bad_key,
                                    const char *suspended_key)
{
    const char *src = getenv("STINT_SOURCE_DIR");
    char script[1024], line[128];
    int out[2], in[2];
    snprintf(script, sizeof script, "%s/tests/fixtures/lastfm/fake_lastfm.py",
             src ? src : STINT_SOURCE_DIR);
    s->pid = -1;
    if (pipe(out) != 0 || pipe(in) != 0)
        return -1;
    s->pid = fork();
    if (s->pid < 0)
        return -1;
    if (s->pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        dup2(in[0], STDIN_FILENO);
        close(out[0]), close(out[1]), close(in[0]), close(in[1]);
        if (suspended_key)
            execlp("python3", "python3", script, "--port", "0", "--exit-on-stdin-eof", "--bad-key",
                   bad_key, "--suspended-key", suspended_key, (char *)NULL);
        else
            execlp("python3", "python3", script, "--port", "0", "--exit-on-stdin-eof", "--bad-key",
                   bad_key, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(in[0]);
    s->stdin_fd = in[1];
    FILE *f = fdopen(out[0], "r");
    int port = 0;
    if (!f || !fgets(line, sizeof line, f) || sscanf(line, "PORT %d", &port) != 1) {
        fprintf(stderr, "fake Last.fm server did not start (%s)\n", script);
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    snprintf(s->root, sizeof s->root, "http://127.0.0.1:%d", port);
    snprintf(s->base_url, sizeof s->base_url, "%s/2.0/", s->root);
    return 0;
}

static inline void fake_lastfm_stop(fake_lastfm_t *s)
{
    if (s->pid <= 0)
        return;
    close(s->stdin_fd);
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
    s->pid = -1;
}

#endif
