/* st_lifecycle.c - signal handling for a clean stop; the handler only sets a flag. */
#include "st_lifecycle.h"

#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int stop_requests;
static atomic_bool failed;

static void on_signal(int sig)
{
    (void)sig;
    if (atomic_fetch_add(&stop_requests, 1) >= 1) {
        static const char msg[] = "second signal: exiting now\n";
        ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void)ignored;
        _exit(130);
    }
}

void st_lifecycle_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

bool st_lifecycle_stopping(void)
{
    return atomic_load(&stop_requests) > 0;
}

void st_lifecycle_request_stop(void)
{
    /* Counted like a first signal: a later real signal still exits at once. */
    int expected = 0;
    atomic_compare_exchange_strong(&stop_requests, &expected, 1);
}

void st_lifecycle_request_failed_stop(void)
{
    atomic_store(&failed, true);
    st_lifecycle_request_stop();
}

bool st_lifecycle_failed(void)
{
    return atomic_load(&failed);
}

bool st_lifecycle_sleep_ms(int ms)
{
    while (ms > 0 && !st_lifecycle_stopping()) {
        int step = ms < 50 ? ms : 50;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return st_lifecycle_stopping();
}
