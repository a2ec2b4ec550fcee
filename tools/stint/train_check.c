/* train_check.c - the least data `stint train` and `stint evaluate` accept (see train_check.h). */
#include "train_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_err.h"

void train_split_counts(const st_dataset_t *ds, train_split_counts_t *c)
{
    memset(c, 0, sizeof *c);
    const st_dataset_row_t *rows = st_dataset_rows(ds);
    for (int u = 0; u < st_dataset_n_users(ds); u++) {
        int seen[3] = {0, 0, 0};
        size_t first = st_dataset_user_first(ds, u);
        for (size_t i = 0; i < st_dataset_user_rows(ds, u); i++) {
            st_dataset_role_t r = rows[first + i].role;
            c->rows[r]++;
            seen[r] = 1;
        }
        for (int r = 0; r < 3; r++)
            c->users[r] += seen[r];
    }
}

static const char *plural(size_t n)
{
    return n == 1 ? "" : "s";
}

/* What to change when the split left too few rows of a role (frac: its --<role>-frac). */
static void split_advice(char *buf, size_t size, const train_data_opts_t *d, const char *role,
                         double frac, int n_users)
{
    if (frac <= 0)
        snprintf(buf, size, "--%s-frac 0 asks for none; give it a share > 0", role);
    else if (strcmp(d->split, "user") == 0)
        snprintf(buf, size,
                 "the user split makes round(%g x %d users) = %d %s user%s; use more users, a "
                 "larger --%s-frac, or --split date",
                 frac, n_users, (int)floor(frac * n_users + 0.5), role,
                 plural((size_t)floor(frac * n_users + 0.5)), role);
    else
        snprintf(buf, size,
                 "the date split takes the last %g of the sessions; use more days or users, or a "
                 "larger --%s-frac",
                 frac, role);
}

int train_check_split(const st_dataset_t *ds, const train_data_opts_t *d, size_t min_test_rows,
                      const char *cmd, char *errstr, size_t errstr_size)
{
    train_split_counts_t c;
    train_split_counts(ds, &c);
    int n_users = 0;
    for (int u = 0; u < st_dataset_n_users(ds); u++)
        n_users += st_dataset_user_rows(ds, u) > 0;
    char advice[256];
    if (c.users[ST_DATASET_TRAIN] < TRAIN_MIN_TRAIN_USERS)
        return st_errstr(errstr, errstr_size,
                         "too little data: %d user%s %s training sessions, at least %d are "
                         "needed; use data with more users%s",
                         c.users[ST_DATASET_TRAIN], plural((size_t)c.users[ST_DATASET_TRAIN]),
                         c.users[ST_DATASET_TRAIN] == 1 ? "has" : "have", TRAIN_MIN_TRAIN_USERS,
                         d->until ? " or a later --until" : "");
    if (c.rows[ST_DATASET_VAL] < TRAIN_MIN_VAL_ROWS) {
        split_advice(advice, sizeof advice, d, "val", d->val_frac, n_users);
        return st_errstr(errstr, errstr_size,
                         "too little data: the split left no validation rows, and early stopping "
                         "needs at least %d: %s",
                         TRAIN_MIN_VAL_ROWS, advice);
    }
    if (c.rows[ST_DATASET_TEST] < min_test_rows) {
        split_advice(advice, sizeof advice, d, "test", d->test_frac, n_users);
        return st_errstr(errstr, errstr_size,
                         "too little data: the split left %zu test row%s (%d user%s), and "
                         "scoring needs at least %zu: %s",
                         c.rows[ST_DATASET_TEST], plural(c.rows[ST_DATASET_TEST]),
                         c.users[ST_DATASET_TEST], plural((size_t)c.users[ST_DATASET_TEST]),
                         min_test_rows, advice);
    }
    if (c.users[ST_DATASET_TEST] < TRAIN_WARN_TEST_USERS)
        fprintf(stderr,
                "%s: warning: the test split has %d user%s (%zu row%s), under %d: its figures "
                "are rough; use more users or compare several --seed\n",
                cmd, c.users[ST_DATASET_TEST], plural((size_t)c.users[ST_DATASET_TEST]),
                c.rows[ST_DATASET_TEST], plural(c.rows[ST_DATASET_TEST]), TRAIN_WARN_TEST_USERS);
    return 0;
}

int train_check_history(const st_nn_history_t *h, const char *net_name, int need_val, char *errstr,
                        size_t errstr_size)
{
    if (!h || h->epochs == 0 || isfinite(h->best_val_loss) ||
        (isnan(h->best_val_loss) && !need_val))
        return 0;
    if (isnan(h->best_val_loss))
        return st_errstr(errstr, errstr_size,
                         "network %s had no validation rows, so nothing chose its epoch", net_name);
    return st_errstr(errstr, errstr_size,
                     "the validation loss of network %s was never finite (%d epochs, last %g): "
                     "the training diverged; lower lr or set clip_norm > 0 (stint train --lr, "
                     "--config), or use more data",
                     net_name, h->epochs, h->val_loss ? h->val_loss[h->epochs - 1] : NAN);
}

int train_check_bundle(const st_bundle_t *b, char *errstr, size_t errstr_size)
{
    for (int net = 0; net <= ST_BUNDLE_MAX_CLUSTERS; net++) {
        char name[32];
        if (net == 0)
            snprintf(name, sizeof name, "global");
        else
            snprintf(name, sizeof name, "cluster %d", net - 1);
        if (train_check_history(st_bundle_history(b, net), name, net == 0, errstr, errstr_size) !=
            0)
            return -1;
    }
    return 0;
}
