/* st_bwatch.h - a watched model bundle for services (predictor, clusterer): loads the bundle
 * directory at start, watches its metadata.json (through a symlink if the directory is one) from
 * a background thread, loads a changed bundle there, and hands it to the processing thread,
 * which swaps it in between batches.
 *
 * Version. A bundle's model_version is metadata.json's "model_version" string when it has one,
 * else "b-" + 16 hex digits of a hash of every regular file of the directory (names and bytes, in
 * name order): the same bundle always has the same version, a retrained one a new one.
 * Replacing a bundle safely: write it into a new directory and rename it over the old one (or
 * repoint a symlink); a bundle rewritten in place is only taken once its metadata.json (written
 * last by st_bundle_save) is unchanged across the load. */
#ifndef ST_BWATCH_H
#define ST_BWATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "st_bundle.h"

#define ST_BWATCH_VERSION_MAX 80

typedef struct st_bwatch st_bwatch_t;

/* Creates the holder for dir (copied) and tries one synchronous load: a missing or unreadable
 * bundle is not an error (the predictor answers with the baseline until one appears). With
 * poll_ms > 0 a watcher thread re-checks dir every poll_ms. Returns NULL with errstr only when
 * the thread cannot be started or memory runs out. */
st_bwatch_t *st_bwatch_new(const char *dir, int poll_ms, char *errstr, size_t errstr_size);
/* Stops the watcher and frees every bundle. NULL is a no-op. */
void st_bwatch_destroy(st_bwatch_t *pm);

/* Takes a bundle the watcher loaded, if any, making it current (the previous one is destroyed).
 * Call from the processing thread between batches only. Returns true when the bundle changed. */
bool st_bwatch_swap(st_bwatch_t *pm);
/* Whether the watcher has loaded a bundle that the next st_bwatch_swap would take. */
bool st_bwatch_pending(st_bwatch_t *pm);

/* The current bundle (borrowed until the next st_bwatch_swap; NULL when none is loaded), its
 * version
 * ("none" without a bundle) and the global fallback of the baseline: the bundle's
 * metrics.global_median_s when it has one, else fallback_s. */
st_bundle_t *st_bwatch_bundle(st_bwatch_t *pm);
const char *st_bwatch_version(const st_bwatch_t *pm);
double st_bwatch_global_baseline_s(const st_bwatch_t *pm, double fallback_s);
/* Sessions the current bundle wants per prediction: W + 1 for sequence models, 1 for parity, 0
 * without a bundle. */
int st_bwatch_history_needed(const st_bwatch_t *pm);

/* Loads one bundle directory the way the watcher does (for tools and tests): the bundle (caller
 * owns), its version into version (ST_BWATCH_VERSION_MAX bytes) and the metrics' global median (NAN
 * if absent). NULL with errstr on failure. */
st_bundle_t *st_bwatch_load_dir(const char *dir, char *version, double *global_median_s,
                                char *errstr, size_t errstr_size);

#endif
