/* train_data.h - what `stint train` and `stint evaluate` share: the data-source and split options
 * (one st_config table) and filling an st_dataset from whichever session source is given. */
#ifndef STINT_TRAIN_DATA_H
#define STINT_TRAIN_DATA_H

#include <stdint.h>

#include "st_config.h"
#include "st_dataset.h"

/* The session sources (exactly one): a `stint sessions` TSV, a Last.fm-format directory
 * sessionized in-process (st_sessions_offline: the streaming sessionizer's code path), or the
 * CLOSED records of the sessions topic (st_dataset_topic). All three give the identical data set
 * for the same sessions. */
typedef struct {
    char *sessions;                             /* `stint sessions` TSV */
    char *data;                                 /* Last.fm-format directory (or its listens file) */
    char *catalog;                              /* JSONL catalog of track durations for --data */
    char *from_topic;                           /* Kafka topic of SessionEvents */
    char *brokers, *schemas_dir, *registry_url; /* for --from-topic */
    char *profiles; /* userid-profile.tsv (file or dataset directory); default with --data: DIR */
    char *until;    /* ISO-8601 (or YYYY-MM-DD): only sessions that started before */
    char *split;    /* "user" (the seed's user cut) or "date" */
    double test_frac, val_frac;
    int64_t seed;
    /* not in the table: -X librdkafka properties (st_config_kafka_props), borrowed */
    const st_config_prop_t *kafka_props;
    size_t n_kafka_props;
} train_data_opts_t;

/* The table of train_data_opts_t (base: a train_data_opts_t). */
extern const st_config_entry_t train_data_table[];

/* Checks the options that need no I/O (one source, the split, --until). Returns 0, or -1 with
 * errstr: a usage error (exit 2). */
int train_data_check(const train_data_opts_t *o, char *errstr, size_t errstr_size);

/* Fills and finalizes a new dataset from the configured session source and profiles, then splits
 * it. Adding a source = one more branch here. Returns the dataset (caller owns) or NULL with
 * errstr. */
st_dataset_t *train_data_load(const train_data_opts_t *o, char *errstr, size_t errstr_size);

/* Splits ds again as o says (--split, --test-frac, --val-frac) with seed in place of o->seed:
 * evaluate's --seeds. 0, or -1 with errstr. */
int train_data_split(st_dataset_t *ds, const train_data_opts_t *o, uint64_t seed, char *errstr,
                     size_t errstr_size);

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
