/* train_data.c - the session source and split of `stint train` / `stint evaluate`. */
#include "train_data.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "st_err.h"
#include "st_log.h"

const st_config_entry_t train_data_table[] = {
    {"sessions", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, offsetof(train_data_opts_t, sessions), false,
     0,
     "sessions TSV from `stint sessions` (user_id, start_ts, length_s, track_count[, "
     "unknown_share])"},
    {"profiles", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, offsetof(train_data_opts_t, profiles), false,
     0, "userid-profile.tsv (file or Last.fm directory); optional"},
    {"split", ST_CFG_STRING, "user", ST_CFG_NOBOUNDS, offsetof(train_data_opts_t, split), false, 0,
     "user (10% test / 10% validation users cut at U(0.5,1), as the seed) or date (global date "
     "cut)"},
    {"test-frac", ST_CFG_DOUBLE, "0.1", 0.0, 0.9, offsetof(train_data_opts_t, test_frac), false, 0,
     "share of test users (user split) or of rows (date split)"},
    {"val-frac", ST_CFG_DOUBLE, "0.1", 0.0, 0.9, offsetof(train_data_opts_t, val_frac), false, 0,
     "share of validation users / rows"},
    {"seed", ST_CFG_INT, "1", 0, 9007199254740991.0, offsetof(train_data_opts_t, seed), false, 0,
     "seed of the split and of every model"},
    {NULL, ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, 0, false, 0, NULL},
};

st_dataset_t *train_data_load(const train_data_opts_t *o, char *errstr, size_t errstr_size)
{
    if (!o->sessions) {
        st_errstr(errstr, errstr_size, "--sessions FILE is required");
        return NULL;
    }
    st_dataset_split_cfg_t sc;
    st_dataset_split_default(&sc);
    if (strcmp(o->split, "user") == 0)
        sc.kind = ST_DATASET_SPLIT_USER_CUT;
    else if (strcmp(o->split, "date") == 0)
        sc.kind = ST_DATASET_SPLIT_DATE;
    else {
        st_errstr(errstr, errstr_size, "--split must be user or date, not \"%s\"", o->split);
        return NULL;
    }
    sc.test_frac = o->test_frac;
    sc.val_frac = o->val_frac;
    sc.seed = (uint64_t)o->seed;
    st_dataset_t *ds = st_dataset_new();
    if (!ds) {
        st_errstr(errstr, errstr_size, "out of memory");
        return NULL;
    }
    size_t bad_sessions = 0, bad_profiles = 0;
    if (st_dataset_load_sessions(ds, o->sessions, &bad_sessions, errstr, errstr_size) != 0)
        goto fail;
    if (o->profiles &&
        st_dataset_load_profiles(ds, o->profiles, &bad_profiles, errstr, errstr_size) != 0)
        goto fail;
    if (st_dataset_finalize(ds, errstr, errstr_size) != 0 ||
        st_dataset_split(ds, &sc, errstr, errstr_size) != 0)
        goto fail;
    st_log_info("dataset_loaded",
                "sessions=%zu users=%d bad_session_lines=%zu bad_profile_lines=%zu train=%zu "
                "val=%zu test=%zu hash=%016llx",
                st_dataset_n_rows(ds), st_dataset_n_users(ds), bad_sessions, bad_profiles,
                st_dataset_count(ds, ST_DATASET_TRAIN), st_dataset_count(ds, ST_DATASET_VAL),
                st_dataset_count(ds, ST_DATASET_TEST), (unsigned long long)st_dataset_hash(ds));
    return ds;
fail:
    st_dataset_destroy(ds);
    return NULL;
}

size_t train_predict_rows(st_bundle_t *b, const st_dataset_t *ds, st_dataset_role_t role,
                          double *pred)
{
    const st_dataset_row_t *rows = st_dataset_rows(ds);
    double rl[ST_BUNDLE_MAX_WINDOW + 1], ru[ST_BUNDLE_MAX_WINDOW + 1];
    int64_t rs[ST_BUNDLE_MAX_WINDOW + 1];
    int rt[ST_BUNDLE_MAX_WINDOW + 1];
    size_t j = 0, bad = 0;
    for (size_t i = 0; i < st_dataset_n_rows(ds); i++) {
        if (rows[i].role != role)
            continue;
        st_bundle_input_t in;
        st_bundle_input_from_row(b, ds, i, &in, rl, rs, rt, ru);
        if (st_bundle_predict(b, &in, &pred[j]) != 0) {
            st_dataset_baselines_t bl;
            st_dataset_baselines(ds, i, &bl);
            pred[j] = bl.global_median_s;
            bad++;
        }
        j++;
    }
    return bad;
}

int train_progress(void *user, const char *net, int epoch, int epochs, double loss, double val_loss,
                   double elapsed_s, double eta_s)
{
    fprintf(stderr,
            "train model=%s net=\"%s\" epoch=%d/%d loss=%.5f val_loss=%.5f elapsed_s=%.1f "
            "eta_s=%.1f\n",
            (const char *)user, net, epoch, epochs, loss, val_loss, elapsed_s, eta_s);
    return 0;
}
