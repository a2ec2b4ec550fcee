/* test_train_check.c - the least data `stint train` and `stint evaluate` accept (train_check.h):
 * too few training users, no validation rows, too few test rows each refused with one message
 * saying what to change; the warning line under 50 test users and none at 50; a validation loss
 * that was never finite refused, a cluster network without validation rows accepted. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st_dataset.h"
#include "st_test.h"
#include "train_check.h"

/* users x per sessions of 20-60 min, a day apart, split as asked. */
static st_dataset_t *make(int users, int per, const char *split, double test_frac, double val_frac)
{
    char err[256];
    st_dataset_t *ds = st_dataset_new();
    if (!ds)
        return NULL;
    for (int u = 0; u < users; u++)
        for (int k = 0; k < per; k++) {
            char id[32];
            snprintf(id, sizeof id, "user_%06d", u);
            if (st_dataset_add_session(ds, id, 1230000000 + (int64_t)k * 86400 + u * 600,
                                       1200 + (double)((u * 7 + k * 13) % 40) * 60, 5, 0, err,
                                       sizeof err) != 0)
                fprintf(stderr, "add: %s\n", err);
        }
    st_dataset_split_cfg_t sc;
    st_dataset_split_default(&sc);
    sc.kind = strcmp(split, "date") == 0 ? ST_DATASET_SPLIT_DATE : ST_DATASET_SPLIT_USER_CUT;
    sc.test_frac = test_frac;
    sc.val_frac = val_frac;
    sc.seed = 1;
    if (st_dataset_finalize(ds, err, sizeof err) != 0 || st_dataset_split(ds, &sc, err, sizeof err))
        fprintf(stderr, "dataset: %s\n", err);
    return ds;
}

static train_data_opts_t opts(const char *split, double test_frac, double val_frac)
{
    train_data_opts_t d;
    memset(&d, 0, sizeof d);
    d.split = (char *)split;
    d.test_frac = test_frac;
    d.val_frac = val_frac;
    return d;
}

/* train_check_split with stderr captured into warn (its first line, "" if none). */
static int check(const st_dataset_t *ds, const train_data_opts_t *d, size_t min_test, char *err,
                 size_t err_size, char *warn, size_t warn_size, int *warn_lines)
{
    char path[] = "/tmp/stint-test-train-check-XXXXXX";
    int fd = mkstemp(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    err[0] = 0;
    int rc = train_check_split(ds, d, min_test, "stint test", err, err_size);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *fp = fdopen(fd, "r");
    rewind(fp);
    warn[0] = 0;
    *warn_lines = 0;
    char line[1024];
    while (fgets(line, sizeof line, fp)) {
        if (*warn_lines == 0) {
            snprintf(warn, warn_size, "%.500s", line);
            warn[strcspn(warn, "\n")] = 0;
        }
        (*warn_lines)++;
    }
    fclose(fp);
    unlink(path);
    return rc;
}

static void test_too_few_training_users(void)
{
    char err[512], warn[512];
    int lines;
    for (int users = 1; users < TRAIN_MIN_TRAIN_USERS; users++) {
        st_dataset_t *ds = make(users, 40, "user", 0.1, 0.1);
        ST_REQUIRE(ds != NULL);
        train_data_opts_t d = opts("user", 0.1, 0.1);
        ST_EQ_INT(check(ds, &d, TRAIN_MIN_TEST_ROWS, err, sizeof err, warn, sizeof warn, &lines),
                  -1);
        char want[256];
        snprintf(want, sizeof want,
                 "too little data: %d user%s %s training sessions, at least 5 are needed; use "
                 "data with more users",
                 users, users == 1 ? "" : "s", users == 1 ? "has" : "have");
        ST_EQ_STR(err, want);
        ST_EQ_INT(lines, 0);
        st_dataset_destroy(ds);
    }
    /* the date split too, and --until named when it was given */
    st_dataset_t *ds = make(2, 40, "date", 0.1, 0.1);
    ST_REQUIRE(ds != NULL);
    train_data_opts_t d = opts("date", 0.1, 0.1);
    d.until = (char *)"2009-01-01";
    ST_EQ_INT(check(ds, &d, EVAL_MIN_TEST_ROWS, err, sizeof err, warn, sizeof warn, &lines), -1);
    ST_EQ_STR(err, "too little data: 2 users have training sessions, at least 5 are needed; use "
                   "data with more users or a later --until");
    st_dataset_destroy(ds);
}

static void test_no_validation_rows(void)
{
    char err[512], warn[512];
    int lines;
    st_dataset_t *ds = make(8, 40, "user", 0.1, 0);
    ST_REQUIRE(ds != NULL);
    train_data_opts_t d = opts("user", 0.1, 0);
    ST_EQ_INT(check(ds, &d, TRAIN_MIN_TEST_ROWS, err, sizeof err, warn, sizeof warn, &lines), -1);
    ST_EQ_STR(err, "too little data: the split left no validation rows, and early stopping needs "
                   "at least 1: --val-frac 0 asks for none; give it a share > 0");
    st_dataset_destroy(ds);
    /* 0.05 of 8 users rounds to 0 */
    ds = make(8, 40, "user", 0.1, 0.05);
    ST_REQUIRE(ds != NULL);
    d = opts("user", 0.1, 0.05);
    ST_EQ_INT(check(ds, &d, TRAIN_MIN_TEST_ROWS, err, sizeof err, warn, sizeof warn, &lines), -1);
    ST_EQ_STR(err, "too little data: the split left no validation rows, and early stopping needs "
                   "at least 1: the user split makes round(0.05 x 8 users) = 0 val users; use more "
                   "users, a larger --val-frac, or --split date");
    st_dataset_destroy(ds);
}

static void test_test_rows(void)
{
    char err[512], warn[512];
    int lines;
    /* 6 users: one test user, enough for train's metrics, too few rows for evaluate's table */
    st_dataset_t *ds = make(6, 40, "user", 0.1, 0.1);
    ST_REQUIRE(ds != NULL);
    train_split_counts_t c;
    train_split_counts(ds, &c);
    ST_EQ_INT(c.users[ST_DATASET_TEST], 1);
    ST_EQ_INT(c.users[ST_DATASET_VAL], 1);
    ST_EQ_INT(c.users[ST_DATASET_TRAIN], 6);
    ST_EQ_INT(c.rows[ST_DATASET_TRAIN] + c.rows[ST_DATASET_VAL] + c.rows[ST_DATASET_TEST], 240);
    ST_CHECK(c.rows[ST_DATASET_TEST] >= 1 && c.rows[ST_DATASET_TEST] < EVAL_MIN_TEST_ROWS);
    train_data_opts_t d = opts("user", 0.1, 0.1);
    ST_EQ_INT(check(ds, &d, TRAIN_MIN_TEST_ROWS, err, sizeof err, warn, sizeof warn, &lines), 0);
    ST_EQ_INT(lines, 1);
    char want[512];
    snprintf(want, sizeof want,
             "stint test: warning: the test split has 1 user (%zu rows), under 50: its figures "
             "are rough; use more users or compare several --seed",
             c.rows[ST_DATASET_TEST]);
    ST_EQ_STR(warn, want);
    ST_EQ_INT(check(ds, &d, EVAL_MIN_TEST_ROWS, err, sizeof err, warn, sizeof warn, &lines), -1);
    snprintf(want, sizeof want,
             "too little data: the split left %zu test rows (1 user), and scoring needs at "
             "least 30: the user split makes round(0.1 x 6 users) = 1 test user; use more "
             "users, a larger --test-frac, or --split date",
             c.rows[ST_DATASET_TEST]);
    ST_EQ_STR(err, want);
    ST_EQ_INT(lines, 0);
    st_dataset_destroy(ds);
    /* --test-frac 0 */
    ds = make(8, 40, "user", 0, 0.1);
    ST_REQUIRE(ds != NULL);
    d = opts("user", 0, 0.1);
    ST_EQ_INT(check(ds, &d, TRAIN_MIN_TEST_ROWS, err, sizeof err, warn, sizeof warn, &lines), -1);
    ST_EQ_STR(err, "too little data: the split left 0 test rows (0 users), and scoring needs "
                   "at least 1: --test-frac 0 asks for none; give it a share > 0");
    st_dataset_destroy(ds);
    /* the date split: 10 % of 5 x 40 rows = 20 test rows */
    ds = make(5, 40, "date", 0.1, 0.1);
    ST_REQUIRE(ds != NULL);
    d = opts("date", 0.1, 0.1);
    ST_EQ_INT(check(ds, &d, EVAL_MIN_TEST_ROWS, err, sizeof err, warn, sizeof warn, &lines), -1);
    ST_EQ_STR(err, "too little data: the split left 20 test rows (5 users), and scoring needs "
                   "at least 30: the date split takes the last 0.1 of the sessions; use more "
                   "days or users, or a larger --test-frac");
    ST_EQ_INT(check(ds, &d, TRAIN_MIN_TEST_ROWS, err, sizeof err, warn, sizeof warn, &lines), 0);
    ST_EQ_STR(warn, "stint test: warning: the test split has 5 users (20 rows), under 50: its "
                    "figures are rough; use more users or compare several --seed");
    st_dataset_destroy(ds);
}

static void test_enough_users_no_warning(void)
{
    char err[512], warn[512];
    int lines;
    st_dataset_t *ds = make(100, 10, "user", 0.5, 0.1);
    ST_REQUIRE(ds != NULL);
    train_data_opts_t d = opts("user", 0.5, 0.1);
    ST_EQ_INT(check(ds, &d, EVAL_MIN_TEST_ROWS, err, sizeof err, warn, sizeof warn, &lines), 0);
    ST_EQ_INT(lines, 0);
    st_dataset_destroy(ds);
    ds = make(100, 10, "user", 0.49, 0.1); /* 49 test users */
    ST_REQUIRE(ds != NULL);
    d = opts("user", 0.49, 0.1);
    ST_EQ_INT(check(ds, &d, EVAL_MIN_TEST_ROWS, err, sizeof err, warn, sizeof warn, &lines), 0);
    ST_EQ_INT(lines, 1);
    ST_CHECK(strncmp(warn, "stint test: warning: the test split has 49 users (", 50) == 0);
    st_dataset_destroy(ds);
}

static void test_history(void)
{
    char err[512];
    double losses[3] = {NAN, NAN, NAN};
    st_nn_history_t h;
    memset(&h, 0, sizeof h);
    h.epochs = 3;
    h.loss = losses;
    h.val_loss = losses;
    h.best_val_loss = 0.5;
    ST_EQ_INT(train_check_history(&h, "global", 1, err, sizeof err), 0);
    ST_EQ_INT(train_check_history(NULL, "global", 1, err, sizeof err), 0);
    h.best_val_loss = INFINITY; /* validation rows, no finite loss */
    ST_EQ_INT(train_check_history(&h, "cluster 2", 0, err, sizeof err), -1);
    ST_EQ_STR(err, "the validation loss of network cluster 2 was never finite (3 epochs, last "
                   "nan): the training diverged; lower lr or set clip_norm > 0 (stint train --lr, "
                   "--config), or use more data");
    h.best_val_loss = NAN; /* no validation rows */
    ST_EQ_INT(train_check_history(&h, "cluster 2", 0, err, sizeof err), 0);
    ST_EQ_INT(train_check_history(&h, "global", 1, err, sizeof err), -1);
    ST_EQ_STR(err, "network global had no validation rows, so nothing chose its epoch");
}

int main(void)
{
    ST_RUN(test_too_few_training_users);
    ST_RUN(test_no_validation_rows);
    ST_RUN(test_test_rows);
    ST_RUN(test_enough_users_no_warning);
    ST_RUN(test_history);
    return st_test_summary();
}
