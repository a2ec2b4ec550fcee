/* cmd_train.c - `stint train`: trains one model bundle on a seeded split and writes it (see
 * st_bundle.h for the bundle layout) with its test metrics next to the baselines. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "st_bundle.h"
#include "st_config.h"
#include "st_cpus.h"
#include "st_dataset.h"
#include "st_nn.h"
#include "st_time.h"
#include "train_check.h"
#include "train_data.h"

typedef struct {
    char *config; /* spec keys: inline JSON, @FILE or FILE (config_text) */
    char *out;
    char *preset; /* default | seed | gbt: the starting spec */
    /* common knobs; NULL = keep the config's value */
    char *name, *kind, *cell, *window, *layers, *units, *dropout, *epochs, *cluster, *k, *scaling,
        *profile_features, *seed_filters, *log_target, *loss, *lr, *batch, *patience, *epoch_rows,
        *min_cluster_users, *trees, *depth, *eta, *threads, *members;
} train_opts_t;

#define KNOB(key, field, help)                                                                     \
    {                                                                                              \
        key, ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, offsetof(train_opts_t, field), false, 0, help   \
    }

static const st_config_entry_t train_table[] = {
    {"config", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, offsetof(train_opts_t, config), false, 'c',
     "a JSON object of spec keys: inline ('{\"units\": 64}', starts with {), @FILE, or a plain "
     "FILE path (keys and allowed values: docs/training.md; name, kind, window, cell, layers, "
     "units, units2, dropout, log_target, loss, epochs, batch, patience, epoch_rows, lr, "
     "clip_norm, cluster, "
     "k, profile_features, seed_filters, min_cluster_users, scaling, mixed_max_users, trees, "
     "depth, "
     "eta, threads, members)"},
    {"out", ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, offsetof(train_opts_t, out), false, 'o',
     "bundle directory to write (required)"},
    {"preset", ST_CFG_STRING, "default", ST_CFG_NOBOUNDS, offsetof(train_opts_t, preset), false, 0,
     "starting spec before the config: default (sequence model), seed (seed parity) or gbt "
     "(gradient-boosted trees)"},
    KNOB("name", name, "configuration name"),
    KNOB("kind", kind, "seq, parity or gbt"),
    KNOB("cell", cell, "lstm or gru"),
    KNOB("window", window, "W, earlier sessions in the sequence"),
    KNOB("layers", layers, "recurrent layers, 1 or 2"),
    KNOB("units", units, "units of the first recurrent layer"),
    KNOB("dropout", dropout, "recurrent input dropout"),
    KNOB("epochs", epochs, "epoch limit"),
    KNOB("cluster", cluster, "none, kmeans or spectral"),
    KNOB("k", k, "clusters"),
    KNOB("scaling", scaling, "none, all or mixed"),
    KNOB("profile-features", profile_features, "profile features of the clustering"),
    KNOB("seed-filters", seed_filters, "true: the seed's user filters before clustering"),
    KNOB("log-target", log_target, "true: train on log1p(length)"),
    KNOB("loss", loss, "l1, l2 or huber"),
    KNOB("lr", lr, "Adam learning rate"),
    KNOB("batch", batch, "minibatch size"),
    KNOB("patience", patience, "early-stopping patience in epochs (0: none)"),
    KNOB("epoch-rows", epoch_rows, "training rows per epoch (0: all)"),
    KNOB("min-cluster-users", min_cluster_users, "users a cluster needs for its own network"),
    KNOB("trees", trees, "gbt: boosting rounds at most (early stopping: --patience rounds)"),
    KNOB("depth", depth, "gbt: tree depth"),
    KNOB("eta", eta, "gbt: learning rate"),
    KNOB("threads", threads,
         "training threads (a network's batch split over them; xgboost's nthread); default: the "
         "CPUs this process may use (affinity mask, cgroup CPU quota), recorded in the bundle's "
         "spec"),
    KNOB("members", members,
         "networks per network, trained alike from seeds spec.seed + m * 1000003 (the model seeds "
         "of stint evaluate --model-seeds); a prediction is their mean (seq, parity; default 1)"),
    {NULL, ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, 0, false, 0, NULL},
};

static char *read_file(const char *path, char *errstr, size_t errstr_size)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(errstr, errstr_size, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t n = fread(buf + len, 1, cap - len - 1, fp);
        len += n;
        if (n == 0)
            break;
        if (len + 1 == cap) {
            char *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap *= 2;
        }
    }
    int bad = ferror(fp);
    fclose(fp);
    if (!buf || bad) {
        free(buf);
        snprintf(errstr, errstr_size, "%s: read failed", path);
        return NULL;
    }
    buf[len] = 0;
    return buf;
}

/* The text of --config: inline JSON (the argument starts with '{', after any blanks), @FILE, or
 * FILE (a plain path, as --config always took). NULL with errstr. */
static char *config_text(const char *arg, char *errstr, size_t errstr_size)
{
    const char *p = arg;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    if (*p == '{') {
        char *text = strdup(arg);
        if (!text)
            snprintf(errstr, errstr_size, "out of memory");
        return text;
    }
    const char *path = arg[0] == '@' ? arg + 1 : arg;
    char err[256];
    char *text = read_file(path, err, sizeof err);
    if (!text)
        snprintf(errstr, errstr_size,
                 "--config %s (give inline JSON starting with {, @FILE or a FILE path)", err);
    return text;
}

/* Mean absolute and squared error of pred against the role's rows. */
static void errors_of(const st_dataset_t *ds, st_dataset_role_t role, const double *pred,
                      double *mae, double *rmse, double *base_mean, double *base_median)
{
    const st_dataset_row_t *rows = st_dataset_rows(ds);
    size_t j = 0;
    double a = 0, s = 0, bm = 0, bd = 0;
    for (size_t r = 0; r < st_dataset_n_rows(ds); r++) {
        if (rows[r].role != role)
            continue;
        st_dataset_baselines_t bl;
        st_dataset_baselines(ds, r, &bl);
        double e = pred[j++] - rows[r].length_s;
        a += fabs(e);
        s += e * e;
        bm += fabs(bl.user_mean_s - rows[r].length_s);
        bd += fabs(bl.user_median_s - rows[r].length_s);
    }
    double n = j ? (double)j : 1;
    *mae = a / n;
    *rmse = sqrt(s / n);
    *base_mean = bm / n;
    *base_median = bd / n;
}

int cmd_train(int argc, char **argv)
{
    train_opts_t o = {0};
    train_data_opts_t d = {0};
    char err[1280];
    st_config_t *cfg = st_config_new("stint train", "train one model bundle for the predictor");
    if (st_config_add_table(cfg, train_data_table, &d, err, sizeof err) != 0 ||
        st_config_add_table(cfg, train_table, &o, err, sizeof err) != 0) {
        fprintf(stderr, "stint train: %s\n", err);
        st_config_destroy(cfg);
        return 1;
    }
    st_config_result_t cr = st_config_load(cfg, argc, argv, NULL, err, sizeof err);
    if (cr == ST_CONFIG_OK && !o.out) {
        snprintf(err, sizeof err, "--out DIR is required");
        cr = ST_CONFIG_USAGE;
    }
    if (cr == ST_CONFIG_OK && train_data_check(&d, err, sizeof err) != 0)
        cr = ST_CONFIG_USAGE;
    d.kafka_props = st_config_kafka_props(cfg, &d.n_kafka_props);
    st_bundle_spec_t spec;
    if (cr == ST_CONFIG_OK) {
        if (strcmp(o.preset, "default") == 0)
            st_bundle_spec_default(&spec);
        else if (strcmp(o.preset, "seed") == 0)
            st_bundle_spec_seed(&spec);
        else if (strcmp(o.preset, "gbt") == 0)
            st_bundle_spec_gbt(&spec);
        else {
            snprintf(err, sizeof err, "--preset must be default, seed or gbt");
            cr = ST_CONFIG_USAGE;
        }
        spec.threads = 0; /* unless the config or --threads names a count: the usable CPUs */
    }
    /* a bad spec value: one line naming the key, the value and what it allows (no usage text) */
    int spec_error = 0;
    if (cr == ST_CONFIG_OK && o.config) {
        char msg[512];
        char *text = config_text(o.config, err, sizeof err);
        if (!text) {
            spec_error = 1;
        } else if (st_bundle_spec_from_json(&spec, text, msg, sizeof msg) != 0) {
            int inline_json = o.config[strspn(o.config, " \t\r\n")] == '{';
            snprintf(err, sizeof err, "--config%s%.600s: %s", inline_json ? "" : " ",
                     inline_json ? "" : o.config + (o.config[0] == '@'), msg);
            spec_error = 1;
        }
        free(text);
    }
    const struct {
        const char *key;
        const char *value;
    } knobs[] = {{"name", o.name},
                 {"kind", o.kind},
                 {"cell", o.cell},
                 {"window", o.window},
                 {"layers", o.layers},
                 {"units", o.units},
                 {"dropout", o.dropout},
                 {"epochs", o.epochs},
                 {"cluster", o.cluster},
                 {"k", o.k},
                 {"scaling", o.scaling},
                 {"profile_features", o.profile_features},
                 {"seed_filters", o.seed_filters},
                 {"log_target", o.log_target},
                 {"loss", o.loss},
                 {"lr", o.lr},
                 {"batch", o.batch},
                 {"patience", o.patience},
                 {"epoch_rows", o.epoch_rows},
                 {"min_cluster_users", o.min_cluster_users},
                 {"trees", o.trees},
                 {"depth", o.depth},
                 {"eta", o.eta},
                 {"threads", o.threads},
                 {"members", o.members}};
    for (size_t i = 0; cr == ST_CONFIG_OK && !spec_error && i < sizeof knobs / sizeof knobs[0];
         i++) {
        char msg[512], flag[32];
        if (!knobs[i].value ||
            st_bundle_spec_set(&spec, knobs[i].key, knobs[i].value, msg, sizeof msg) == 0)
            continue;
        snprintf(flag, sizeof flag, "%s", knobs[i].key);
        for (char *c = flag; *c; c++)
            *c = *c == '_' ? '-' : *c;
        snprintf(err, sizeof err, "--%s: %s", flag, msg);
        spec_error = 1;
    }
    if (spec_error) {
        fprintf(stderr, "stint train: %s\n", err);
        st_config_destroy(cfg);
        return 2;
    }
    if (cr != ST_CONFIG_OK) {
        if (cr == ST_CONFIG_USAGE) {
            fprintf(stderr, "stint train: %s\n", err);
            st_config_usage(cfg, stderr);
        }
        st_config_destroy(cfg);
        return cr == ST_CONFIG_EXIT ? 0 : 2;
    }
    spec.seed = (uint64_t)d.seed; /* one seed for the split and the model */
    if (spec.threads == 0) {
        int cpus = st_cpus_available();
        spec.threads = cpus > ST_NN_MAX_THREADS ? ST_NN_MAX_THREADS : cpus;
    }
    /* The cores go to spec.threads (the networks' batches split over threads, xgboost's
     * nthread): one OpenBLAS thread each, whatever OPENBLAS_NUM_THREADS says (a second OpenBLAS
     * thread is slower on these small products, docs/training.md). Process-wide, so set here,
     * before any thread trains. */
    openblas_set_num_threads(1);
    int rc = 1;
    double *pred = NULL;
    st_bundle_t *b = NULL;
    st_dataset_t *ds = train_data_load(&d, err, sizeof err);
    if (!ds) {
        fprintf(stderr, "stint train: %s\n", err);
        st_config_destroy(cfg);
        return 1;
    }
    /* too little data: refuse (exit 2) before training, so no bundle is written */
    if (train_check_split(ds, &d, TRAIN_MIN_TEST_ROWS, "stint train", err, sizeof err) != 0) {
        fprintf(stderr, "stint train: %s\n", err);
        rc = 2;
        goto done;
    }
    int64_t t0 = st_time_mono_ms();
    b = st_bundle_train(ds, &spec, train_progress, spec.name, err, sizeof err);
    if (!b) {
        fprintf(stderr, "stint train: %s\n", err);
        goto done;
    }
    if (train_check_bundle(b, err, sizeof err) != 0) {
        fprintf(stderr, "stint train: %s; no bundle written\n", err);
        rc = 2;
        goto done;
    }
    double train_s = (double)(st_time_mono_ms() - t0) / 1000.0;
    size_t n_test = st_dataset_count(ds, ST_DATASET_TEST),
           n_val = st_dataset_count(ds, ST_DATASET_VAL);
    pred = malloc((n_test + n_val + 1) * sizeof *pred);
    if (!pred)
        goto done;
    double mae, rmse, bmean, bmed, vmae, vrmse, vbm, vbd;
    size_t nonfinite = train_predict_rows(b, ds, ST_DATASET_TEST, pred);
    errors_of(ds, ST_DATASET_TEST, pred, &mae, &rmse, &bmean, &bmed);
    nonfinite += train_predict_rows(b, ds, ST_DATASET_VAL, pred);
    errors_of(ds, ST_DATASET_VAL, pred, &vmae, &vrmse, &vbm, &vbd);
    /* Scored with the TRAIN median in their place, as evaluate does; the predictor would serve
     * the baseline for such inputs. Said, not hidden. */
    if (nonfinite > 0)
        fprintf(stderr,
                "stint train: warning: %zu of %zu validation and test predictions were not "
                "finite (scored as the TRAIN median; the predictor serves the baseline for such "
                "inputs)\n",
                nonfinite, n_test + n_val);
    /* The predictor's baseline for a user's first session (st_bwatch_global_baseline_s), as
     * the evaluation's: the median length of the TRAIN sessions. */
    st_dataset_baselines_t bl;
    st_dataset_baselines(ds, 0, &bl);
    char metrics[1024];
    snprintf(metrics, sizeof metrics,
             "{\"global_median_s\":%.3f,"
             "\"test_rows\":%zu,\"test_mae_s\":%.3f,\"test_rmse_s\":%.3f,"
             "\"test_baseline_user_mean_mae_s\":%.3f,\"test_baseline_user_median_mae_s\":%.3f,"
             "\"val_rows\":%zu,\"val_mae_s\":%.3f,\"val_rmse_s\":%.3f,\"train_rows\":%zu,"
             "\"split\":\"%s\",\"train_time_s\":%.1f}",
             bl.global_median_s, n_test, mae, rmse, bmean, bmed, n_val, vmae, vrmse,
             st_dataset_count(ds, ST_DATASET_TRAIN), d.split, train_s);
    if (st_bundle_save(b, o.out, metrics, err, sizeof err) != 0) {
        fprintf(stderr, "stint train: %s\n", err);
        goto done;
    }
    printf("train: model=\"%s\" out=%s test_rows=%zu test_mae_s=%.1f (per-user mean %.1f, "
           "median %.1f) val_mae_s=%.1f train_time_s=%.1f\n",
           spec.name, o.out, n_test, mae, bmean, bmed, vmae, train_s);
    rc = 0;
done:
    free(pred);
    st_bundle_destroy(b);
    st_dataset_destroy(ds);
    st_config_destroy(cfg);
    return rc;
}
