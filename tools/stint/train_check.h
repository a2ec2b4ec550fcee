/* train_check.h - the least data `stint train` and `stint evaluate` accept, in one place. Below
 * it they refuse (exit 2, one line saying what to change) instead of writing a bundle or printing
 * a table; with a small test split they warn. docs/training.md explains each number. */
#ifndef STINT_TRAIN_CHECK_H
#define STINT_TRAIN_CHECK_H

#include <stddef.h>

#include "st_bundle.h"
#include "st_dataset.h"
#include "train_data.h"

/* Users with TRAIN rows. 5 is the least number of users for which the default user split
 * (--test-frac 0.1, --val-frac 0.1, rounded) has a validation user and a test user at all, and
 * the default k of the clusterings. */
#define TRAIN_MIN_TRAIN_USERS 5
/* VAL rows: early stopping and the choice of the kept epoch read the validation loss. */
#define TRAIN_MIN_VAL_ROWS 1
/* TEST rows of `stint train`: the test metrics it writes into metadata.json (0 rows gave 0.0). */
#define TRAIN_MIN_TEST_ROWS 1
/* TEST rows of `stint evaluate`: every row of its table is a mean over the test rows, and below
 * ~30 rows a mean's sampling error is not even roughly normal: the table would rank noise. */
#define EVAL_MIN_TEST_ROWS 30
/* Fewer test users than this: a warning (test rows of one user are correlated, so the users,
 * not the rows, bound how far the figures can be trusted). */
#define TRAIN_WARN_TEST_USERS 50

/* Rows and distinct users of each role (index: st_dataset_role_t). */
typedef struct {
    size_t rows[3];
    int users[3];
} train_split_counts_t;

void train_split_counts(const st_dataset_t *ds, train_split_counts_t *c);

/* Checks a split data set against the minimums above (min_test_rows: TRAIN_MIN_TEST_ROWS or
 * EVAL_MIN_TEST_ROWS). Returns 0, after writing one warning line "<cmd>: warning: ..." to stderr
 * when the test split has fewer than TRAIN_WARN_TEST_USERS users; or -1 with errstr: one message
 * naming what is too small and what to change (more users or days, a fraction, the split). */
int train_check_split(const st_dataset_t *ds, const train_data_opts_t *d, size_t min_test_rows,
                      const char *cmd, char *errstr, size_t errstr_size);

/* Checks a network's training history (st_bundle_history): its best validation loss must be
 * finite. It is INFINITY when no epoch's validation loss was finite (the training diverged on
 * the validation rows), NAN when the network had no validation rows: refused when need_val (the
 * global network, which sees every VAL row), fine for a cluster's network (its users may have
 * none). net_name as the progress lines name it. Returns 0 or -1 with errstr. */
int train_check_history(const st_nn_history_t *h, const char *net_name, int need_val, char *errstr,
                        size_t errstr_size);

/* train_check_history over every network of b that has a history (need_val for the global one). */
int train_check_bundle(const st_bundle_t *b, char *errstr, size_t errstr_size);

#endif
