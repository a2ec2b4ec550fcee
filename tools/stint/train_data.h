/* train_data.h - what `stint train` and `stint evaluate` share: the data-source and split options
 * (one st_config table) and filling an st_dataset from whichever session source is given. */
#ifndef STINT_TRAIN_DATA_H
#define STINT_TRAIN_DATA_H

#include <stdint.h>

#include "st_config.h"
#include "st_dataset.h"

typedef struct {
    char *sessions; /* `stint sessions` TSV */
    char *profiles; /* userid-profile.tsv (file or dataset directory) */
    char *split;    /* "user" (the seed's user cut) or "date" */
    double test_frac, val_frac;
    int64_t seed;
} train_data_opts_t;

/* The table of train_data_opts_t (base: a train_data_opts_t). */
extern const st_config_entry_t train_data_table[];

/* Fills and finalizes a new dataset from the configured session source and profiles, then splits
 * it. Adding a source = one more branch here. Returns the dataset (caller owns) or NULL with
 * errstr. */
st_dataset_t *train_data_load(const train_data_opts_t *o, char *errstr, size_t errstr_size);

#include "st_bundle.h"

/* Predicts every row of `role` in row order into pred (caller-owned, st_dataset_count(role)
 * doubles) through st_bundle_predict. Returns the number of non-finite predictions (those get
 * the global TRAIN median, so every model is scored on the same rows). */
size_t train_predict_rows(st_bundle_t *b, const st_dataset_t *ds, st_dataset_role_t role,
                          double *pred);

/* A st_bundle_progress_fn printing one line per epoch to stderr; user is the model name. */
int train_progress(void *user, const char *net, int epoch, int epochs, double loss, double val_loss,
                   double elapsed_s, double eta_s);

#endif
