/* cmd_sessions.c - `stint sessions`: sessionizes a Last.fm-format dataset offline through the
 * streaming sessionizer's code path (st_sessions_offline) and writes the closed sessions as TSV. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "st_catalog.h"
#include "st_sessions_offline.h"
#include "st_time.h"

int cmd_sessions(int argc, char **argv);

static void usage(FILE *fp)
{
    fputs("usage: stint sessions --data DIR [--catalog tracks.jsonl] --out FILE\n"
          "                      [--gap-s S] [--ref end|start] [--quiet]\n"
          "Sessionizes a Last.fm 1K-format dataset exactly as the streaming sessionizer does and\n"
          "writes one closed session per line, sorted by user id (bytewise) then start, as TSV:\n"
          "  user_id  start_ts  length_s  track_count  unknown_duration_share\n"
          "start_ts: epoch seconds of the first listen (an integer; fractions truncated);\n"
          "length_s: last start - first start + last track's duration (0 if unknown), 3 decimals;\n"
          "unknown_duration_share: share 0..1 of the session's listens without a catalog\n"
          "duration (1 for every session without --catalog), 4 decimals. Readers may ignore\n"
          "the fifth column.\n"
          "  --data DIR       dataset directory (or the listens .tsv itself)\n"
          "  --catalog FILE   track catalog (tracks.jsonl of `stint gen`): track durations; of\n"
          "                   a track named twice, the first line with a duration wins\n"
          "  --out FILE       output file ('-' = stdout; the summary then goes to stderr)\n"
          "  --gap-s S        session gap in seconds (default 1800)\n"
          "  --ref end|start  gap measured from the previous track's end (default) or start\n"
          "  --quiet          do not log malformed lines individually\n"
          "Exact duplicate rows count once; malformed or invalid lines are skipped and counted.\n",
          fp);
}

typedef struct {
    FILE *fp;
    int write_errno; /* the first write error's, 0 while none */
} writer_t;

static int write_session(void *arg, const char *user_id, const st_session_summary_t *s)
{
    writer_t *w = arg;
    /* Whole seconds (the Last.fm data has no fractions; readers parse an integer). */
    int64_t start_s = s->start_ms >= 0 ? s->start_ms / 1000 : -((999 - s->start_ms) / 1000);
    if (fprintf(w->fp, "%s\t%" PRId64 "\t%.3f\t%" PRIu32 "\t%.4f\n", user_id, start_s,
                (double)s->length_ms / 1000.0, s->track_count, s->unknown_duration_share) < 0 ||
        ferror(w->fp)) {
        w->write_errno = errno ? errno : EIO;
        return -1;
    }
    return 0;
}

int cmd_sessions(int argc, char **argv)
{
    st_sessions_offline_opts_t opts;
    st_sessions_offline_opts_default(&opts);
    const char *catalog_path = NULL, *out_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--quiet")) {
            opts.quiet = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "stint sessions: %s needs a value (or is unknown)\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        char *end;
        if (!strcmp(a, "--data")) {
            opts.data_path = v;
        } else if (!strcmp(a, "--catalog")) {
            catalog_path = v;
        } else if (!strcmp(a, "--out")) {
            out_path = v;
        } else if (!strcmp(a, "--gap-s")) {
            errno = 0;
            long long gap_s = strtoll(v, &end, 10);
            if (errno || end == v || *end || gap_s < 0 || gap_s > 100LL * 86400) {
                fprintf(stderr, "stint sessions: --gap-s: \"%s\" is not 0..8640000\n", v);
                return 2;
            }
            opts.rule.gap_ms = gap_s * 1000;
        } else if (!strcmp(a, "--ref")) {
            if (st_session_ref_parse(v, &opts.rule.ref) != 0) {
                fprintf(stderr, "stint sessions: --ref: \"%s\" is not end or start\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "stint sessions: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!opts.data_path || !out_path) {
        fprintf(stderr, "stint sessions: --data and --out are required\n");
        usage(stderr);
        return 2;
    }
    int64_t t0 = st_time_mono_ms();
    char errstr[512];
    st_catalog_t *catalog = NULL;
    st_catalog_stats_t cstats = {0};
    if (catalog_path) {
        catalog = st_catalog_load(catalog_path, &cstats, errstr, sizeof errstr);
        if (!catalog) {
            fprintf(stderr, "stint sessions: %s\n", errstr);
            return 1;
        }
        opts.catalog = catalog;
    }
    bool to_stdout = strcmp(out_path, "-") == 0;
    /* A regular file is written whole or not at all: a temporary file beside it, renamed into
     * place at the end (a failed run leaves no truncated TSV for train to read). A symlink, a
     * device or a pipe is written in place. */
    struct stat sb;
    bool via_tmp = !to_stdout && (lstat(out_path, &sb) != 0 || S_ISREG(sb.st_mode));
    char tmp_path[4096];
    snprintf(tmp_path, sizeof tmp_path, "%s.tmp-%d", out_path, (int)getpid());
    const char *write_path = via_tmp ? tmp_path : out_path;
    writer_t w = {to_stdout ? stdout : fopen(write_path, "wb"), 0};
    if (!w.fp) {
        fprintf(stderr, "stint sessions: cannot create %s: %s\n", write_path, strerror(errno));
        st_catalog_destroy(catalog);
        return 1;
    }
    st_sessions_offline_stats_t st;
    int rc = st_sessions_offline_run(&opts, write_session, &w, &st, errstr, sizeof errstr);
    errno = 0;
    if (to_stdout ? fflush(stdout) != 0 : (ferror(w.fp) | fclose(w.fp)) != 0) {
        if (!w.write_errno)
            w.write_errno = errno ? errno : EIO;
        rc = -1;
    }
    if (w.write_errno) /* not "stopped by the callback" */
        snprintf(errstr, sizeof errstr, "write error on %s: %s", out_path, strerror(w.write_errno));
    if (rc == 0 && via_tmp && rename(tmp_path, out_path) != 0) {
        snprintf(errstr, sizeof errstr, "cannot move the output into place at %s: %s", out_path,
                 strerror(errno));
        rc = -1;
    }
    if (rc != 0) {
        if (via_tmp)
            unlink(tmp_path);
        fprintf(stderr, "stint sessions: %s\n", errstr);
        st_catalog_destroy(catalog);
        return 1;
    }
    fprintf(to_stdout ? stderr : stdout,
            "sessions: users=%" PRIu64 " listens=%" PRIu64 " sessions=%" PRIu64
            " duplicates=%" PRIu64 " malformed=%" PRIu64 " rejected=%" PRIu64 " inversions=%" PRIu64
            " unknown_duration_pct=%.1f catalog_tracks=%zu catalog_bad_lines=%" PRIu64
            " catalog_duplicate_keys=%" PRIu64 " catalog_rule=%s"
            " gap_s=%" PRId64 " ref=%s elapsed_s=%.1f out=%s\n",
            st.users, st.listens, st.sessions, st.duplicates, st.malformed, st.rejected,
            st.inversions,
            st.listens ? 100.0 * (double)st.unknown_duration / (double)st.listens : 0.0,
            catalog ? st_catalog_size(catalog) : 0, cstats.bad,
            catalog ? st_catalog_duplicate_keys(catalog) : 0, catalog ? ST_CATALOG_RULE : "-",
            opts.rule.gap_ms / 1000, st_session_ref_name(opts.rule.ref),
            (double)(st_time_mono_ms() - t0) / 1000.0, out_path);
    st_catalog_destroy(catalog);
    return 0;
}
