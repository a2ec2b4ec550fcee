/* cmd_evaluate.c - `stint evaluate`: trains every configuration of a preset on one seeded split
 * (or on each of --seeds), scores models and baselines on the identical test rows, bootstraps
 * 95 % intervals of each row's MAE ratio to the per-user baselines over the test users, prints
 * the tables and writes report/index.html (an HTML table, the data set, split and command, SVG
 * figures), report/predictions.csv and val_predictions.csv. --jobs trains the configurations on
 * several threads. */
#include <cblas.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "st_bootstrap.h"
#include "st_bundle.h"
#include "st_cluster.h"
#include "st_config.h"
#include "st_cpus.h"
#include "st_dataset.h"
#include "st_kmeans.h"
#include "st_metrics.h"
#include "st_svg.h"
#include "st_time.h"
#include "train_check.h"
#include "train_data.h"

#define MAX_MODELS 24
#define N_BASE     4
#define MAX_ROWS   (MAX_MODELS + N_BASE)
#define MAX_SEEDS  32
#define CI_LEVEL   0.95
/* the bootstrap's own seed: fixed, so the same predictions give the same intervals */
#define BOOT_SEED 20260101u
#define MAX_JOBS  64
/* --jobs 0: the CPUs this process may use (st_cpus_available), at most this many */
#define AUTO_JOBS_MAX 4

typedef struct {
    char *preset;
    char *only; /* "" or comma-separated parts of configuration names: keep those that match */
    char *out;
    char *seeds;         /* "" or a comma-separated list of split seeds */
    int64_t epochs;      /* 0: each configuration's own */
    int64_t bootstrap;   /* resamples of the test users */
    int64_t model_seeds; /* trainings of each configuration, with different model seeds */
    int64_t jobs;        /* training threads; 0: the usable CPUs, at most AUTO_JOBS_MAX */
} eval_opts_t;

static const st_config_entry_t eval_table[] = {
    {"preset", ST_CFG_STRING, "default", ST_CFG_NOBOUNDS, offsetof(eval_opts_t, preset), false, 0,
     "default (improved models + seed parity) or seed (the seed's experiment list)"},
    {"only", ST_CFG_STRING, "", ST_CFG_NOBOUNDS, offsetof(eval_opts_t, only), false, 0,
     "comma-separated parts of configuration names (e.g. \"LSTM(32) W16 log-L1,GBT\"): train "
     "and score only the preset's configurations whose name contains one of them (baselines "
     "always); empty = all"},
    {"out", ST_CFG_STRING, "report", ST_CFG_NOBOUNDS, offsetof(eval_opts_t, out), false, 0,
     "report directory (index.html, SVGs, predictions.csv, val_predictions.csv)"},
    {"epochs", ST_CFG_INT, "0", 0, 100000, offsetof(eval_opts_t, epochs), false, 0,
     "override every configuration's epoch limit (0 = keep)"},
    {"seeds", ST_CFG_STRING, "", ST_CFG_NOBOUNDS, offsetof(eval_opts_t, seeds), false, 0,
     "comma-separated split seeds (e.g. 1,2,3; --split user only): every seed's split is "
     "checked, then trained and scored; the report is the first seed's plus a summary over all; "
     "empty = --seed only"},
    {"bootstrap", ST_CFG_INT, "2000", 100, 1000000, offsetof(eval_opts_t, bootstrap), false, 0,
     "bootstrap resamples of the test users for the 95 % intervals"},
    {"model-seeds", ST_CFG_INT, "1", 1, 10, offsetof(eval_opts_t, model_seeds), false, 0,
     "train each configuration this many times with different model seeds (initialisation, "
     "shuffling) on the same split: the table adds the mean and sd of the test and validation "
     "MAE, the best row is the lowest mean validation MAE; the table, intervals and figures "
     "are the first model seed's; predictions.csv and val_predictions.csv add a column per "
     "further model seed"},
    {"jobs", ST_CFG_INT, "0", 0, MAX_JOBS, offsetof(eval_opts_t, jobs), false, 0,
     "train this many configurations (x model seeds) at once, each on its own thread with one "
     "OpenBLAS thread; the output is identical for every value (train times aside); 0 = the "
     "CPUs this process may use (affinity mask, cgroup CPU quota), at most 4"},
    {NULL, ST_CFG_STRING, NULL, ST_CFG_NOBOUNDS, 0, false, 0, NULL},
};

typedef struct {
    st_bundle_spec_t spec;
    st_bundle_t *bundle;
    double *pred;
    double train_s;
} model_t;

static void set_name(st_bundle_spec_t *s, const char *name)
{
    snprintf(s->name, sizeof s->name, "%s", name);
}

/* The configurations of a preset; returns their count, or -1 for an unknown preset. */
static int preset_specs(const char *preset, uint64_t seed, st_bundle_spec_t *s)
{
    int n = 0;
    if (strcmp(preset, "default") == 0) {
        st_bundle_spec_default(&s[n]);
        set_name(&s[n++], "seq LSTM(32) W16 log-L1");
        st_bundle_spec_default(&s[n]);
        s[n].cell = ST_NN_CELL_GRU;
        set_name(&s[n++], "seq GRU(32) W16 log-L1");
        st_bundle_spec_default(&s[n]);
        s[n].layers = 2;
        s[n].units[0] = s[n].units[1] = 64;
        s[n].dropout = 0.1f;
        set_name(&s[n++], "seq LSTM(64)x2 W16 dropout 0.1 log-L1");
        st_bundle_spec_default(&s[n]);
        s[n].cluster = ST_BUNDLE_CLUSTER_KMEANS;
        set_name(&s[n++], "seq LSTM(32) W16 k-means 5");
        st_bundle_spec_seed(&s[n]);
        set_name(&s[n++], "seed parity: LSTM(250) k-means 5 mixed");
        st_bundle_spec_seed(&s[n]);
        s[n].cluster = ST_BUNDLE_CLUSTER_NONE;
        s[n].scaling = ST_BUNDLE_SCALE_NONE;
        set_name(&s[n++], "seed parity: LSTM(250) raw inputs");
        st_bundle_spec_gbt(&s[n]);
        set_name(&s[n++], "GBT xgboost W16 log-L1 depth 6");
    } else if (strcmp(preset, "seed") == 0) {
        static const struct {
            const char *name;
            st_nn_cell_t cell;
            int layers;
            float dropout;
            st_bundle_cluster_t cluster;
            st_bundle_scale_t scaling;
        } list[] = {
            {"seed LSTM(250)", ST_NN_CELL_LSTM, 1, 0, ST_BUNDLE_CLUSTER_NONE, ST_BUNDLE_SCALE_NONE},
            {"seed LSTM(250) dropout 0.1", ST_NN_CELL_LSTM, 1, 0.1f, ST_BUNDLE_CLUSTER_NONE,
             ST_BUNDLE_SCALE_NONE},
            {"seed LSTM(250) dropout 0.2", ST_NN_CELL_LSTM, 1, 0.2f, ST_BUNDLE_CLUSTER_NONE,
             ST_BUNDLE_SCALE_NONE},
            {"seed GRU(250)", ST_NN_CELL_GRU, 1, 0, ST_BUNDLE_CLUSTER_NONE, ST_BUNDLE_SCALE_NONE},
            {"seed LSTM(150)-LSTM(250)", ST_NN_CELL_LSTM, 2, 0, ST_BUNDLE_CLUSTER_NONE,
             ST_BUNDLE_SCALE_NONE},
            {"seed k-means 5", ST_NN_CELL_LSTM, 1, 0, ST_BUNDLE_CLUSTER_KMEANS,
             ST_BUNDLE_SCALE_NONE},
            {"seed spectral 5", ST_NN_CELL_LSTM, 1, 0, ST_BUNDLE_CLUSTER_SPECTRAL,
             ST_BUNDLE_SCALE_NONE},
            {"seed k-means 5 standardised", ST_NN_CELL_LSTM, 1, 0, ST_BUNDLE_CLUSTER_KMEANS,
             ST_BUNDLE_SCALE_ALL},
            {"seed spectral 5 standardised", ST_NN_CELL_LSTM, 1, 0, ST_BUNDLE_CLUSTER_SPECTRAL,
             ST_BUNDLE_SCALE_ALL},
            {"seed k-means 5 mixed", ST_NN_CELL_LSTM, 1, 0, ST_BUNDLE_CLUSTER_KMEANS,
             ST_BUNDLE_SCALE_MIXED},
            {"seed spectral 5 mixed", ST_NN_CELL_LSTM, 1, 0, ST_BUNDLE_CLUSTER_SPECTRAL,
             ST_BUNDLE_SCALE_MIXED},
        };
        for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
            st_bundle_spec_seed(&s[n]);
            s[n].cell = list[i].cell;
            s[n].layers = list[i].layers;
            if (list[i].layers == 2) {
                s[n].units[0] = 150;
                s[n].units[1] = 250;
            }
            s[n].dropout = list[i].dropout;
            s[n].cluster = list[i].cluster;
            s[n].scaling = list[i].scaling;
            set_name(&s[n++], list[i].name);
        }
        st_bundle_spec_default(&s[n]);
        set_name(&s[n++], "seq LSTM(32) W16 log-L1 (ours)");
    } else {
        return -1;
    }
    for (int i = 0; i < n; i++)
        s[i].seed = seed;
    return n;
}

/* The preset's configurations that --only keeps (all when only is empty), in the preset's order.
 * Returns their count, or -1 with errstr (an unknown preset, a part that matches none). */
static int eval_specs(const eval_opts_t *o, uint64_t seed, st_bundle_spec_t *s, char *errstr,
                      size_t errstr_size)
{
    int n = preset_specs(o->preset, seed, s);
    if (n < 0) {
        snprintf(errstr, errstr_size, "unknown --preset \"%s\" (default or seed)", o->preset);
        return -1;
    }
    if (!o->only || !*o->only)
        return n;
    char parts[1024];
    snprintf(parts, sizeof parts, "%s", o->only);
    int keep[MAX_MODELS] = {0};
    char *save = NULL;
    for (char *t = strtok_r(parts, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        while (*t == ' ')
            t++;
        int hits = 0;
        for (int i = 0; i < n; i++)
            if (*t && strstr(s[i].name, t))
                keep[i] = 1, hits++;
        if (hits == 0) {
            size_t len = (size_t)snprintf(errstr, errstr_size,
                                          "--only: \"%s\" is in no configuration name of preset "
                                          "%s (",
                                          t, o->preset);
            for (int i = 0; i < n && len < errstr_size; i++)
                len += (size_t)snprintf(errstr + len, errstr_size - len, "%s%s", i ? "; " : "",
                                        s[i].name);
            if (len < errstr_size)
                snprintf(errstr + len, errstr_size - len, ")");
            return -1;
        }
    }
    int kept = 0;
    for (int i = 0; i < n; i++)
        if (keep[i])
            s[kept++] = s[i];
    return kept;
}

typedef struct {
    double mae, rmse;
    size_t n;
} score_t;

static score_t score(const double *pred, const double *actual, const int *keep, size_t n)
{
    score_t s = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        if (keep && !keep[i])
            continue;
        double e = pred[i] - actual[i];
        s.mae += fabs(e);
        s.rmse += e * e;
        s.n++;
    }
    if (s.n) {
        s.mae /= (double)s.n;
        s.rmse = sqrt(s.rmse / (double)s.n);
    }
    return s;
}

static const char *const base_names[N_BASE] = {"baseline: per-user mean",
                                               "baseline: per-user median",
                                               "baseline: last session", "baseline: global median"};

/* Writes s as one CSV field, quoted (quotes doubled) when it needs to be. */
static void csv_field(FILE *fp, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, fp);
        return;
    }
    fputc('"', fp);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', fp);
        fputc(*s, fp);
    }
    fputc('"', fp);
}

/* One seed's scores, kept for the summary over --seeds. */
typedef struct {
    uint64_t seed;
    int n_rows;
    char names[MAX_ROWS][64];
    double mae[MAX_ROWS], val_mae[MAX_ROWS], rmse[MAX_ROWS], train_s[MAX_ROWS];
    st_bootstrap_ratio_t vs_mean[MAX_ROWS], vs_med[MAX_ROWS];
    st_bootstrap_ratio_t vs_best[MAX_ROWS]; /* against the best row (chosen on VAL) */
    /* over --model-seeds trainings (configurations only): mean and sd of test and VAL MAE */
    double seeds_mae[MAX_ROWS], seeds_mae_sd[MAX_ROWS], seeds_val[MAX_ROWS], seeds_val_sd[MAX_ROWS];
    int model_seeds;
    size_t n_test, n_val;
    int test_users;
    int best;          /* lowest validation MAE among the configurations */
    char *best_config; /* its spec for `stint train --config` (serving_config); the report's
                        * run (the first seed) only */
} run_t;

/* What every seed's run shares. */
typedef struct {
    const eval_opts_t *o;
    const train_data_opts_t *d;
    int argc;
    char **argv;
} eval_ctx_t;

static void html(FILE *fp, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", fp);
            break;
        case '>':
            fputs("&gt;", fp);
            break;
        case '&':
            fputs("&amp;", fp);
            break;
        case '"':
            fputs("&quot;", fp);
            break;
        default:
            fputc(*s, fp);
        }
    }
}

/* s as one shell word: as it is when it holds only safe characters, else in single quotes (an
 * embedded ' as '\''); HTML-escaped when as_html. */
static void shell_word(FILE *fp, const char *s, int as_html)
{
    if (*s && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                        "_-+=/.,:@%") == strlen(s)) {
        fputs(s, fp);
        return;
    }
    fputc('\'', fp);
    for (const char *q = s; *q; q++) {
        char c[2] = {*q, 0};
        if (*q == '\'')
            fputs("'\\''", fp);
        else if (as_html)
            html(fp, c);
        else
            fputc(*q, fp);
    }
    fputc('\'', fp);
}

/* The spec as JSON for `stint train --config`, without "threads": evaluate trains each
 * configuration on one thread, train on the usable CPUs unless told. NULL on no memory. */
static char *serving_config(const st_bundle_spec_t *spec)
{
    char *text = st_bundle_spec_json(spec);
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (!j)
        return NULL;
    json_object_del(j, "threads");
    /* the flags of st_bundle_spec_json: a float's 9 digits, not the double's 17 */
    char *out = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
    json_decref(j);
    return out;
}

/* The `stint train` command that trains configuration `config` (spec JSON) on evaluate's data
 * source: the same source options, every spec key in --config (so the preset does not matter) and
 * --seed, which train applies to the split and the model after the config (evaluate's split seed
 * is also its configurations' model seed). */
static void train_command(FILE *fp, const train_data_opts_t *d, uint64_t seed, const char *config,
                          int as_html)
{
    const char *opts[][2] = {{"--data", d->data},         {"--catalog", d->catalog},
                             {"--sessions", d->sessions}, {"--from-topic", d->from_topic},
                             {"--profiles", d->profiles}, {"--until", d->until}};
    fputs("stint train", fp);
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        if (!opts[i][1])
            continue;
        fprintf(fp, " %s ", opts[i][0]);
        shell_word(fp, opts[i][1], as_html);
    }
    if (d->from_topic) {
        const char *topic_opts[][2] = {{"-b", d->brokers},
                                       {"--schemas.dir", d->schemas_dir},
                                       {"--schema.registry.url", d->registry_url}};
        for (size_t i = 0; i < sizeof topic_opts / sizeof topic_opts[0]; i++) {
            fprintf(fp, " %s ", topic_opts[i][0]);
            shell_word(fp, topic_opts[i][1] ? topic_opts[i][1] : "", as_html);
        }
        if (d->n_kafka_props > 0) /* not repeated: they may hold credentials */
            fputs(" [your -X settings]", fp);
    }
    /* The split as evaluate made it, so that train's validation rows (its early stopping) are
     * evaluate's; the defaults are left out. */
    if (d->split && strcmp(d->split, "user") != 0) {
        fputs(" --split ", fp);
        shell_word(fp, d->split, as_html);
    }
    const struct {
        const char *opt;
        double v, dflt;
    } fracs[] = {{"--test-frac", d->test_frac, 0.1}, {"--val-frac", d->val_frac, 0.1}};
    for (size_t i = 0; i < sizeof fracs / sizeof fracs[0]; i++) {
        if (fracs[i].v == fracs[i].dflt)
            continue;
        char text[32];
        st_metrics_format_double(text, sizeof text, fracs[i].v); /* shortest exact text */
        fprintf(fp, " %s %s", fracs[i].opt, text);
    }
    fprintf(fp, " --seed %llu --out BUNDLE_DIR --config ", (unsigned long long)seed);
    shell_word(fp, config, as_html);
}

static const char *verdict_text(const st_bootstrap_ratio_t *r)
{
    switch (st_bootstrap_verdict(r)) {
    case ST_BOOTSTRAP_BETTER:
        return "yes";
    case ST_BOOTSTRAP_WORSE:
        return "worse";
    default:
        return "not significant";
    }
}

/* Loss history of a network in target units: L1 loss x the target scale (seconds, or log1p
 * seconds with a log target); L2 as its root (RMSE); Huber stays scaled. Fills y, sets *unit. */
static void unscale_loss(const st_bundle_spec_t *spec, double scale, const double *loss, size_t n,
                         double *y, const char **unit)
{
    if (!isfinite(scale))
        scale = 1;
    for (size_t e = 0; e < n; e++) {
        if (spec->loss == ST_NN_LOSS_L1)
            y[e] = loss[e] * scale;
        else if (spec->loss == ST_NN_LOSS_L2)
            y[e] = sqrt(loss[e]) * scale;
        else
            y[e] = loss[e];
    }
    if (spec->loss == ST_NN_LOSS_L1)
        *unit = spec->log_target ? "mean |error| of log1p(length in s), unscaled"
                                 : "mean |error| (s), unscaled: MAE in seconds";
    else if (spec->loss == ST_NN_LOSS_L2)
        *unit = spec->log_target ? "root mean squared error of log1p(length in s), unscaled"
                                 : "RMSE (s), unscaled";
    else
        *unit = "Huber loss (scaled target units)";
}

/* The SVG figures into dir (created by write_predictions); loss_svg[i] set for the configurations
 * with a loss chart, *have_clusters when the cluster figures were written. */
static int write_figures(const char *dir, model_t *m, int n_models, const double *actual,
                         size_t n_test, int best, int *loss_svg, int *have_clusters, int *chosen_k)
{
    char path[4096], err[256] = "";
    int ok = 1;
    char title[160];
    snprintf(title, sizeof title, "%s (lowest validation MAE)", m[best].spec.name);
    snprintf(path, sizeof path, "%s/pred_actual.svg", dir);
    ok &=
        st_svg_pred_actual(path, title, actual, m[best].pred, n_test, "s", 1, err, sizeof err) == 0;
    snprintf(path, sizeof path, "%s/residuals.svg", dir);
    ok &= st_svg_residuals(path, title, actual, m[best].pred, n_test, "s", err, sizeof err) == 0;
    /* one loss chart per configuration: per network one colour, train solid, validation dashed,
     * the kept (best validation) epoch ringed */
    static double epochs_x[4096];
    for (int e = 0; e < 4096; e++)
        epochs_x[e] = e + 1;
    for (int i = 0; i < n_models; i++) {
        enum { NS = 2 * (ST_BUNDLE_MAX_CLUSTERS + 1) };
        st_svg_series_t series[NS];
        char names[NS][32], marks[NS][32];
        double *ys[NS];
        int ns = 0;
        const char *unit = "loss";
        for (int net = 0; net <= ST_BUNDLE_MAX_CLUSTERS; net++) {
            const st_nn_history_t *h = st_bundle_history(m[i].bundle, net);
            if (!h || h->epochs == 0)
                continue;
            size_t ne = (size_t)(h->epochs < 4096 ? h->epochs : 4096);
            double scale = st_bundle_target_scale(m[i].bundle, net);
            for (int v = 0; v < 2; v++) {
                ys[ns] = malloc(ne * sizeof(double));
                if (!ys[ns])
                    break;
                unscale_loss(&m[i].spec, scale, v ? h->val_loss : h->loss, ne, ys[ns], &unit);
                if (net == 0)
                    snprintf(names[ns], sizeof names[ns], "global %s", v ? "val" : "train");
                else
                    snprintf(names[ns], sizeof names[ns], "cluster %d %s", net - 1,
                             v ? "val" : "train");
                series[ns] = (st_svg_series_t){names[ns], epochs_x,   ys[ns], ne,
                                               net + 1,   v ? 1 : -1, 0,      NULL};
                if (v && h->best_epoch > 0) {
                    snprintf(marks[ns], sizeof marks[ns], "kept: epoch %d", h->best_epoch);
                    series[ns].mark = h->best_epoch;
                    series[ns].mark_label = marks[ns];
                }
                ns++;
            }
        }
        if (ns == 0)
            continue;
        snprintf(path, sizeof path, "%s/loss_%d.svg", dir, i);
        st_svg_opts_t lo = {.int_x = 1};
        loss_svg[i] = st_svg_line_chart_opts(path, m[i].spec.name, "epoch", unit, series, ns, &lo,
                                             err, sizeof err) == 0;
        ok &= loss_svg[i];
        for (int k = 0; k < ns; k++)
            free(ys[k]);
    }
    /* clustering figures from the first clustered configuration */
    *have_clusters = 0;
    for (int i = 0; i < n_models && !*have_clusters; i++) {
        const double *px;
        const int *lab;
        int dim;
        size_t np = st_bundle_profiles(m[i].bundle, &px, &lab, &dim);
        if (np < 3)
            continue;
        *have_clusters = 1;
        *chosen_k = st_bundle_k(m[i].bundle);
        double *z = malloc(np * (size_t)dim * sizeof *z);
        double *sil = malloc(np * sizeof *sil);
        if (!z || !sil) {
            free(z);
            free(sil);
            break;
        }
        for (int f = 0; f < dim; f++) {
            double mean = 0, var = 0;
            for (size_t p = 0; p < np; p++)
                mean += px[p * (size_t)dim + (size_t)f];
            mean /= (double)np;
            for (size_t p = 0; p < np; p++) {
                double d = px[p * (size_t)dim + (size_t)f] - mean;
                var += d * d;
            }
            double sd = var > 0 ? sqrt(var / (double)np) : 1;
            for (size_t p = 0; p < np; p++)
                z[p * (size_t)dim + (size_t)f] = (px[p * (size_t)dim + (size_t)f] - mean) / sd;
        }
        double ks[15], inertia[15];
        int nk = 0;
        for (int k = 1; k <= 15 && (size_t)k <= np; k++) {
            st_kmeans_cfg_t kc;
            st_kmeans_default(&kc);
            kc.k = k;
            kc.seed = m[i].spec.seed;
            st_cluster_t *c = st_kmeans_fit(z, np, dim, &kc, NULL, err, sizeof err);
            if (!c)
                break;
            ks[nk] = k;
            inertia[nk++] = c->inertia;
            st_cluster_destroy(c);
        }
        char klabel[96];
        snprintf(klabel, sizeof klabel, "chosen k = %d (%s)", *chosen_k, m[i].spec.name);
        st_svg_series_t es = {"k-means inertia", ks, inertia, (size_t)nk, 0, 0, 0, NULL};
        st_svg_opts_t eo = {0, 0, 1, (double)*chosen_k, klabel, 1};
        snprintf(path, sizeof path, "%s/elbow.svg", dir);
        ok &= st_svg_line_chart_opts(path, "Elbow (training-period user profiles, z-scored)", "k",
                                     "inertia", &es, 1, &eo, err, sizeof err) == 0;
        st_cluster_silhouette(z, np, dim, lab, sil);
        snprintf(path, sizeof path, "%s/silhouette.svg", dir);
        ok &= st_svg_silhouette(path, m[i].spec.name, sil, lab, np, err, sizeof err) == 0;
        double *sx = malloc(np * sizeof *sx), *sy = malloc(np * sizeof *sy);
        int nf;
        const char *const *fn = st_bundle_profile_feature_names(m[i].bundle, &nf);
        if (sx && sy) {
            for (size_t p = 0; p < np; p++) {
                sx[p] = px[p * (size_t)dim];
                sy[p] = dim > 1 ? px[p * (size_t)dim + 1] : 0;
            }
            snprintf(path, sizeof path, "%s/clusters.svg", dir);
            ok &= st_svg_scatter(path, m[i].spec.name, fn[0], nf > 1 ? fn[1] : "", sx, sy, lab, np,
                                 err, sizeof err) == 0;
        }
        free(sx);
        free(sy);
        free(z);
        free(sil);
    }
    if (!ok)
        fprintf(stderr, "stint evaluate: a figure failed: %s\n", err);
    return 0;
}

static const char *split_seed_text(char *buf, size_t size, const run_t *runs, int n_runs)
{
    size_t len = 0;
    buf[0] = 0;
    for (int r = 0; r < n_runs && len < size; r++)
        len += (size_t)snprintf(buf + len, size - len, "%s%llu", r ? ", " : "",
                                (unsigned long long)runs[r].seed);
    return buf;
}

/* report/index.html: the header block, the main table of runs[0], the summary over the seeds
 * (when more than one), the cluster breakdown and the figures. */
static int write_index(const eval_ctx_t *cx, const st_dataset_t *ds, const run_t *runs, int n_runs,
                       const char *cluster_html, const int *loss_svg, int n_models,
                       int have_clusters, int chosen_k)
{
    char path[4096], buf[512];
    snprintf(path, sizeof path, "%s/index.html", cx->o->out);
    FILE *fp = fopen(path, "w");
    if (!fp) {
        fprintf(stderr, "stint evaluate: %s: %s\n", path, strerror(errno));
        return -1;
    }
    const run_t *r0 = &runs[0];
    const train_data_opts_t *d = cx->d;
    fputs("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>stint evaluate</title>\n"
          "<style>body{font-family:Helvetica,Arial,sans-serif;max-width:1200px;margin:1em auto;"
          "padding:0 1em}table{border-collapse:collapse;margin:0.5em 0}th,td{border:1px solid "
          "#ccc;padding:3px "
          "7px}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
          "tr.best{background:#fff3c4;font-weight:bold}tr.base td{color:#555}"
          "dt{font-weight:bold}dd{margin:0 0 0.4em 1.5em}code{background:#f3f3f3}"
          ".yes{color:#1a7f37}.worse{color:#b42318}</style>\n"
          "</head><body>\n<h1>stint evaluate</h1>\n<table class=\"meta\">\n",
          fp);
    fputs("<tr><th>data set</th><td>", fp);
    if (d->data) {
        fputs("<code>--data ", fp);
        html(fp, d->data);
        if (d->catalog) {
            fputs(" --catalog ", fp);
            html(fp, d->catalog);
        }
        fputs("</code>", fp);
    } else if (d->sessions) {
        fputs("<code>--sessions ", fp);
        html(fp, d->sessions);
        fputs("</code>", fp);
    } else {
        fputs("<code>--from-topic ", fp);
        html(fp, d->from_topic);
        fputs("</code>", fp);
    }
    if (d->until) {
        fputs(", sessions before ", fp);
        html(fp, d->until);
    }
    long long tracks = 0;
    const st_dataset_row_t *rows = st_dataset_rows(ds);
    for (size_t r = 0; r < st_dataset_n_rows(ds); r++)
        tracks += rows[r].track_count;
    fprintf(fp,
            "<br>%d users, %zu sessions, %lld listens (tracks played in the sessions), hash "
            "<code>%016llx</code></td></tr>\n",
            st_dataset_n_users(ds), st_dataset_n_rows(ds), tracks,
            (unsigned long long)st_dataset_hash(ds));
    fprintf(fp,
            "<tr><th>split</th><td>%s split, seed%s %s, test fraction %.3g, validation fraction "
            "%.3g%s<br>seed %llu (the table below): train %zu / validation %zu / test %zu rows, "
            "%d test users</td></tr>\n",
            d->split, n_runs > 1 ? "s" : "", split_seed_text(buf, sizeof buf, runs, n_runs),
            d->test_frac, d->val_frac,
            strcmp(d->split, "user") == 0
                ? " (each test / validation user cut at a uniformly random 50-100 % of its history)"
                : "",
            (unsigned long long)r0->seed, st_dataset_count(ds, ST_DATASET_TRAIN), r0->n_val,
            r0->n_test, r0->test_users);
    fprintf(fp, "<tr><th>stint</th><td>version %s, preset <code>", STINT_VERSION);
    html(fp, cx->o->preset);
    fputs("</code></td></tr>\n<tr><th>command</th><td><code>stint", fp);
    for (int i = 0; i < cx->argc; i++) {
        fputc(' ', fp);
        shell_word(fp, cx->argv[i], 1);
    }
    fprintf(fp,
            "</code></td></tr>\n<tr><th>best row</th><td>&#9733; <b>%s</b>: the lowest "
            "<b>validation</b> MAE among the configurations (baselines not eligible). It was "
            "chosen on the VALIDATION rows; the test rows played no part in the choice.<br>To "
            "train it for serving: <code>",
            r0->names[r0->best]);
    if (r0->best_config)
        train_command(fp, d, r0->seed, r0->best_config, 1);
    fprintf(fp,
            "</code></td></tr>\n"
            "<tr><th>intervals</th><td>%.0f %% percentile bootstrap over the %d TEST USERS (users "
            "resampled with replacement, all of a user's test rows together; %lld resamples, "
            "bootstrap seed %u)</td></tr>\n</table>\n",
            CI_LEVEL * 100, r0->test_users, (long long)cx->o->bootstrap, (unsigned)BOOT_SEED);
    fprintf(fp,
            "<h2>Models and baselines, seed %llu</h2>\n<table class=\"main\">\n<tr><th></th>"
            "<th>configuration</th><th>val MAE (s)</th><th>test MAE (s)</th>"
            "<th>MAE / per-user mean [95 %% CI]</th><th>MAE / per-user median [95 %% CI]</th>"
            "<th>beats the per-user mean?</th><th>beats the per-user median?</th>"
            "<th>MAE / best row [95 %% CI]</th>"
            "<th>RMSE (s)</th><th>test rows</th><th>train time</th></tr>\n",
            (unsigned long long)r0->seed);
    int n_models_run = r0->n_rows - N_BASE;
    for (int i = 0; i < r0->n_rows; i++) {
        int is_base = i >= n_models_run;
        fprintf(fp, "<tr%s><td>%s</td><td>",
                i == r0->best ? " class=\"best\""
                : is_base     ? " class=\"base\""
                              : "",
                i == r0->best ? "&#9733; best" : "");
        html(fp, r0->names[i]);
        fprintf(fp, "</td><td class=\"n\">%.1f</td><td class=\"n\">%.1f</td>", r0->val_mae[i],
                r0->mae[i]);
        for (int b = 0; b < 2; b++) {
            const st_bootstrap_ratio_t *c = b ? &r0->vs_med[i] : &r0->vs_mean[i];
            fprintf(fp, "<td class=\"n\">%.3f [%.3f, %.3f]</td>", c->ratio, c->lo, c->hi);
        }
        for (int b = 0; b < 2; b++) {
            const st_bootstrap_ratio_t *c = b ? &r0->vs_med[i] : &r0->vs_mean[i];
            if (i == n_models_run + b)
                fputs("<td>(this baseline)</td>", fp);
            else
                fprintf(fp, "<td class=\"%s\">%s%s</td>",
                        st_bootstrap_verdict(c) == ST_BOOTSTRAP_BETTER  ? "yes"
                        : st_bootstrap_verdict(c) == ST_BOOTSTRAP_WORSE ? "worse"
                                                                        : "ns",
                        st_bootstrap_verdict(c) == ST_BOOTSTRAP_BETTER ? "yes" : "",
                        st_bootstrap_verdict(c) == ST_BOOTSTRAP_BETTER ? "" : verdict_text(c));
        }
        if (i == r0->best)
            fputs("<td>(the best row)</td>", fp);
        else
            fprintf(fp, "<td class=\"n\">%.3f [%.3f, %.3f]</td>", r0->vs_best[i].ratio,
                    r0->vs_best[i].lo, r0->vs_best[i].hi);
        fprintf(fp, "<td class=\"n\">%.1f</td><td class=\"n\">%zu</td>", r0->rmse[i], r0->n_test);
        if (is_base)
            fputs("<td>-</td></tr>\n", fp);
        else
            fprintf(fp, "<td class=\"n\">%.1f s</td></tr>\n", r0->train_s[i]);
    }
    fputs("</table>\n", fp);
    if (r0->model_seeds > 1) {
        fprintf(fp,
                "<h2>Seed spread: %d model seeds per configuration</h2>\n<p>Each configuration "
                "trained %d times on the same split with different model seeds (initialisation, "
                "shuffling). The best row is the lowest <b>mean validation</b> MAE; the table "
                "above, its intervals and the figures are the first model seed's. A difference "
                "between rows smaller than their sd is not a win.</p>\n<table class=\"seeds\">\n"
                "<tr><th>configuration</th><th>test MAE (s), mean &plusmn; sd</th>"
                "<th>val MAE (s), mean &plusmn; sd</th></tr>\n",
                r0->model_seeds, r0->model_seeds);
        for (int i = 0; i < n_models_run; i++) {
            fprintf(fp, "<tr%s><td>", i == r0->best ? " class=\"best\"" : "");
            html(fp, r0->names[i]);
            fprintf(fp,
                    "</td><td class=\"n\">%.1f &plusmn; %.1f</td><td class=\"n\">%.1f &plusmn; "
                    "%.1f</td></tr>\n",
                    r0->seeds_mae[i], r0->seeds_mae_sd[i], r0->seeds_val[i], r0->seeds_val_sd[i]);
        }
        fputs("</table>\n", fp);
    }
    fputs("<dl>\n"
          "<dt>val MAE (s)</dt><dd>mean absolute error on the VALIDATION rows (validation users "
          "from their cut on), in seconds; the only column used to pick the best row.</dd>\n"
          "<dt>test MAE (s)</dt><dd>mean |predicted - actual| session length over the TEST rows "
          "(test users from their cut on), in seconds; every row is scored on the identical test "
          "rows.</dd>\n"
          "<dt>MAE / per-user mean, MAE / per-user median</dt><dd>the row's test MAE divided by "
          "the test MAE of the baseline that predicts each user's mean (median) TRAIN session "
          "length (\"normalized MAE\"); below 1 is better than the baseline. In brackets the 95 % "
          "bootstrap interval over test users.</dd>\n"
          "<dt>beats the per-user mean / median?</dt><dd><b>yes</b> only when the whole 95 % "
          "interval is below 1; <b>worse</b> when it is entirely above 1; otherwise <b>not "
          "significant</b>: the test users cannot tell the row from the baseline.</dd>\n"
          "<dt>MAE / best row</dt><dd>the row's test MAE divided by the best row's (chosen on "
          "VALIDATION), with its 95 % bootstrap interval over test users: an interval that "
          "contains 1 means the test users cannot tell the two apart.</dd>\n"
          "<dt>RMSE (s)</dt><dd>root mean squared error on the test rows.</dd>\n"
          "<dt>train time</dt><dd>wall time to train the configuration (all its networks).</dd>\n"
          "<dt>baselines</dt><dd>fit on TRAIN rows: per-user mean, per-user median, the last "
          "session's length, the global TRAIN median.</dd>\n</dl>\n",
          fp);
    if (n_runs > 1) {
        fprintf(fp,
                "<h2>Over %d split seeds</h2>\n<p>Each seed is a different split (test and "
                "validation users and cuts) and a different model initialisation. Test MAE "
                "divided by the per-user baselines' test MAE of the same seed.</p>\n"
                "<table class=\"seeds\">\n<tr><th>configuration</th>",
                n_runs);
        for (int r = 0; r < n_runs; r++)
            fprintf(fp, "<th>/ median, seed %llu</th>", (unsigned long long)runs[r].seed);
        fputs("<th>/ median: mean [min, max]</th><th>/ mean: mean [min, max]</th>"
              "<th>seeds where it beats the per-user median (whole CI &lt; 1)</th></tr>\n",
              fp);
        for (int i = 0; i < r0->n_rows; i++) {
            fputs("<tr><td>", fp);
            html(fp, r0->names[i]);
            fputs("</td>", fp);
            double s[2] = {0, 0}, lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
            int wins = 0;
            for (int r = 0; r < n_runs; r++) {
                fprintf(fp, "<td class=\"n\">%.3f</td>", runs[r].vs_med[i].ratio);
                for (int b = 0; b < 2; b++) {
                    double v = b ? runs[r].vs_mean[i].ratio : runs[r].vs_med[i].ratio;
                    s[b] += v;
                    lo[b] = fmin(lo[b], v);
                    hi[b] = fmax(hi[b], v);
                }
                wins += st_bootstrap_verdict(&runs[r].vs_med[i]) == ST_BOOTSTRAP_BETTER;
            }
            for (int b = 0; b < 2; b++)
                fprintf(fp, "<td class=\"n\">%.3f [%.3f, %.3f]</td>", s[b] / n_runs, lo[b], hi[b]);
            if (i == n_models_run + 1)
                fputs("<td>(this baseline)</td></tr>\n", fp);
            else
                fprintf(fp, "<td class=\"n\">%d of %d</td></tr>\n", wins, n_runs);
        }
        fputs("</table>\n", fp);
    }
    if (cluster_html && *cluster_html)
        fputs(cluster_html, fp);
    fputs("<h2>Predicted vs actual (best row, log axes)</h2><img src=\"pred_actual.svg\">\n"
          "<h2>Residuals (best row)</h2><img src=\"residuals.svg\">\n"
          "<h2>Loss curves</h2>\n<p>Per network: training loss solid, validation loss dashed, "
          "one colour per network; the ring marks the kept epoch (the lowest validation loss). "
          "Losses are unscaled to the target's units: seconds for models trained on the length, "
          "log1p(seconds) for the log-target models.</p>\n",
          fp);
    for (int i = 0; i < n_models; i++)
        if (loss_svg[i])
            fprintf(fp, "<img src=\"loss_%d.svg\">\n", i);
    if (have_clusters)
        fprintf(fp,
                "<h2>Elbow</h2><p>k-means inertia for k = 1..15; the dashed line marks the k the "
                "clustered configuration uses (k = %d, set in its spec, not chosen from this "
                "plot).</p><img src=\"elbow.svg\">\n<h2>Silhouette</h2><img "
                "src=\"silhouette.svg\">\n<h2>Clusters</h2><img src=\"clusters.svg\">\n",
                chosen_k);
    fputs("<p>predictions.csv holds every test prediction of every row, val_predictions.csv every "
          "validation prediction (with several model seeds, a column per seed in both).</p>\n"
          "</body></html>\n",
          fp);
    return fclose(fp) == 0 ? 0 : -1;
}
/* Appends printf output to a growing string. */
static void add(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (*buf && *len + (size_t)n < *cap) {
            *len += (size_t)n;
            return;
        }
        size_t ncap = (*cap ? *cap : 4096) * 2 + (size_t)n;
        char *p = realloc(*buf, ncap);
        if (!p)
            return;
        *buf = p;
        *cap = ncap;
        if (*len == 0)
            p[0] = 0;
    }
}

/* The gbt configurations' feature importances (total split gain, as a share of the model's
 * total) as HTML into *buf: one table per gbt configuration, its columns by gain. */
static void importance_html(char **buf, size_t *len, size_t *cap, const model_t *m, int n_models)
{
    for (int i = 0; i < n_models; i++) {
        int cols = st_bundle_gbt_cols(m[i].bundle);
        double *gain = cols > 0 ? calloc((size_t)cols, sizeof *gain) : NULL;
        int *order = cols > 0 ? calloc((size_t)cols, sizeof *order) : NULL;
        char err[256], name[64];
        if (!gain || !order || st_bundle_gbt_gain(m[i].bundle, gain, err, sizeof err) != 0) {
            free(gain);
            free(order);
            continue;
        }
        double total = 0;
        for (int c = 0; c < cols; c++) {
            order[c] = c;
            total += gain[c];
        }
        /* by gain, descending; insertion sort keeps equal gains in column order */
        for (int a = 1; a < cols; a++)
            for (int b = a; b > 0 && gain[order[b]] > gain[order[b - 1]]; b--) {
                int t = order[b];
                order[b] = order[b - 1];
                order[b - 1] = t;
            }
        add(buf, len, cap,
            "<h2>Feature importances of \"%s\"</h2>\n<p>Total gain of the splits on each feature, "
            "as a share of all the trees' gain (xgboost <code>total_gain</code>). Features: the "
            "sequence models' session-start input flattened into one row.</p>\n"
            "<table class=\"importance\">\n<tr><th>feature</th><th>gain share</th></tr>\n",
            m[i].spec.name);
        for (int k = 0; k < cols; k++) {
            st_bundle_gbt_feature_name(m[i].bundle, order[k], name, sizeof name);
            add(buf, len, cap, "<tr><td>%s</td><td class=\"n\">%.1f %%</td></tr>\n", name,
                total > 0 ? 100.0 * gain[order[k]] / total : 0.0);
        }
        add(buf, len, cap, "</table>\n");
        free(gain);
        free(order);
    }
}

/* Trains m->spec on ds and predicts the n_test TEST rows into m->pred (allocated). Returns 0, or
 * -1 with errstr: m->bundle NULL when training failed, set when the trained bundle is unusable
 * (train_check_bundle: too little data, a diverged network). */
static int train_score(const st_dataset_t *ds, model_t *m, size_t n_test, char *errstr,
                       size_t errstr_size)
{
    int64_t ts = st_time_mono_ms();
    m->bundle = st_bundle_train(ds, &m->spec, train_progress, m->spec.name, errstr, errstr_size);
    if (!m->bundle)
        return -1;
    if (train_check_bundle(m->bundle, errstr, errstr_size) != 0)
        return -1;
    m->train_s = (double)(st_time_mono_ms() - ts) / 1000.0;
    m->pred = malloc((n_test + 1) * sizeof(double));
    if (!m->pred) {
        st_bundle_destroy(m->bundle);
        m->bundle = NULL;
        snprintf(errstr, errstr_size, "out of memory");
        return -1;
    }
    size_t bad = train_predict_rows(m->bundle, ds, ST_DATASET_TEST, m->pred);
    if (bad)
        fprintf(stderr,
                "stint evaluate: %s: %zu non-finite predictions replaced by the global median\n",
                m->spec.name, bad);
    return 0;
}

/* One training of one configuration with one model seed: the unit of --jobs work. A worker fills
 * everything but m.spec and keep; nothing is read from a unit before every worker is joined. */
typedef struct {
    model_t m;     /* the bundle stays only with keep; m.pred (TEST) always */
    double *vpred; /* the VAL predictions */
    int keep;      /* the first model seed: its bundle and predictions make the table */
    double test_mae, val_mae;
    int rc; /* 0, 1 (training failed) or 2 (unusable bundle), as evaluate_one */
    char err[512];
} unit_t;

/* The units of one split and what their scoring reads; ds and the arrays are read-only while the
 * workers run. */
typedef struct {
    const st_dataset_t *ds;
    unit_t *units;
    int n_units;
    size_t n_test, n_val;
    const double *actual, *vactual;
    atomic_int next;   /* the next unit to take */
    atomic_int failed; /* a unit failed: take no more (those taken still finish) */
} pool_t;

static void run_unit(const pool_t *p, unit_t *u)
{
    double *vpred = malloc((p->n_val + 1) * sizeof *vpred);
    if (!vpred) {
        snprintf(u->err, sizeof u->err, "out of memory");
        u->rc = 1;
        return;
    }
    if (train_score(p->ds, &u->m, p->n_test, u->err, sizeof u->err) != 0) {
        u->rc = u->m.bundle ? 2 : 1;
        st_bundle_destroy(u->m.bundle);
        u->m.bundle = NULL;
        free(vpred);
        return;
    }
    train_predict_rows(u->m.bundle, p->ds, ST_DATASET_VAL, vpred);
    u->val_mae = score(vpred, p->vactual, NULL, p->n_val).mae;
    u->test_mae = score(u->m.pred, p->actual, NULL, p->n_test).mae;
    u->vpred = vpred;
    if (!u->keep) {
        st_bundle_destroy(u->m.bundle);
        u->m.bundle = NULL;
    }
}

/* A worker: takes units in index order until none is left or one failed. Units are taken in
 * order, so every unit before the first failing one has run: the error reported is the one a
 * single thread would meet first. */
static void *pool_work(void *arg)
{
    pool_t *p = arg;
    while (!atomic_load(&p->failed)) {
        int i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n_units)
            break;
        run_unit(p, &p->units[i]);
        if (p->units[i].rc != 0)
            atomic_store(&p->failed, 1);
    }
    return NULL;
}

/* Runs every unit on up to jobs threads, the calling thread one of them (a thread that cannot be
 * created leaves fewer workers, not an error), and joins them. */
static void pool_run(pool_t *p, int jobs)
{
    pthread_t th[MAX_JOBS];
    int n = 0;
    while (n < jobs - 1 && n < p->n_units - 1 && pthread_create(&th[n], NULL, pool_work, p) == 0)
        n++;
    pool_work(p);
    for (int t = 0; t < n; t++)
        pthread_join(th[t], NULL);
}

/* One CSV of the rows of role (TEST: predictions.csv, VAL: val_predictions.csv): user,
 * session_start, actual_length_s, a column per configuration (its first model seed) and per
 * baseline, then with several model seeds a column "NAME / model seed K" for each further one.
 * pred[i * ms + k]: configuration i, model seed k, in the role's row order. */
static int write_predictions(const char *path, const st_dataset_t *ds, st_dataset_role_t role,
                             const double *const *pred, const st_bundle_spec_t *specs, int n_models,
                             int ms, double *const *base, const double *actual)
{
    FILE *fp = fopen(path, "w");
    if (!fp) {
        fprintf(stderr, "stint evaluate: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(fp, "user,session_start,actual_length_s");
    for (int i = 0; i < n_models; i++) {
        fputc(',', fp);
        csv_field(fp, specs[i].name);
    }
    for (int i = 0; i < N_BASE; i++) {
        fputc(',', fp);
        csv_field(fp, base_names[i]);
    }
    for (int i = 0; i < n_models; i++)
        for (int k = 1; k < ms; k++) {
            char name[96];
            snprintf(name, sizeof name, "%s / model seed %d", specs[i].name, k + 1);
            fputc(',', fp);
            csv_field(fp, name);
        }
    fputc('\n', fp);
    const st_dataset_row_t *rows = st_dataset_rows(ds);
    size_t j = 0;
    for (size_t r = 0; r < st_dataset_n_rows(ds); r++) {
        if (rows[r].role != role)
            continue;
        csv_field(fp, st_dataset_user_id(ds, rows[r].user));
        fprintf(fp, ",%lld,%.3f", (long long)rows[r].start_s, actual[j]);
        for (int i = 0; i < n_models; i++)
            fprintf(fp, ",%.3f", pred[i * ms][j]);
        for (int i = 0; i < N_BASE; i++)
            fprintf(fp, ",%.3f", base[i][j]);
        for (int i = 0; i < n_models; i++)
            for (int k = 1; k < ms; k++)
                fprintf(fp, ",%.3f", pred[i * ms + k][j]);
        fputc('\n', fp);
        j++;
    }
    if (fclose(fp) != 0) {
        fprintf(stderr, "stint evaluate: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* predictions.csv (TEST) and val_predictions.csv (VAL) into dir, which it creates. */
static int write_all_predictions(const char *dir, const st_dataset_t *ds, const model_t *m,
                                 const unit_t *units, int n_models, int ms, double *const *base,
                                 double *const *vbase, const double *actual, const double *vactual)
{
    char path[4096];
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "stint evaluate: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    const double **tp = malloc((size_t)(n_models * ms) * sizeof *tp);
    const double **vp = malloc((size_t)(n_models * ms) * sizeof *vp);
    st_bundle_spec_t *specs = malloc((size_t)n_models * sizeof *specs);
    int rc = -1;
    if (!tp || !vp || !specs) {
        fprintf(stderr, "stint evaluate: out of memory\n");
        goto out;
    }
    for (int i = 0; i < n_models; i++) {
        specs[i] = m[i].spec;
        for (int k = 0; k < ms; k++) {
            tp[i * ms + k] = k == 0 ? m[i].pred : units[i * ms + k].m.pred; /* k 0 moved to m */
            vp[i * ms + k] = units[i * ms + k].vpred;
        }
    }
    snprintf(path, sizeof path, "%s/predictions.csv", dir);
    if (write_predictions(path, ds, ST_DATASET_TEST, tp, specs, n_models, ms, base, actual) != 0)
        goto out;
    snprintf(path, sizeof path, "%s/val_predictions.csv", dir);
    rc = write_predictions(path, ds, ST_DATASET_VAL, vp, specs, n_models, ms, vbase, vactual);
out:
    free(tp);
    free(vp);
    free(specs);
    return rc;
}

/* Trains and scores every configuration on ds's current split (seed), prints the tables and
 * fills res; with full, also writes predictions.csv and the figures and the cluster table's HTML
 * into *chtml. Returns 0, 1 (failure) or 2 (too little data / a diverged network). */
static int evaluate_one(const eval_ctx_t *cx, st_dataset_t *ds, uint64_t seed, int full, run_t *res,
                        int *loss_svg, int *have_clusters, int *chosen_k, char **chtml)
{
    const eval_opts_t *o = cx->o;
    char err[512];
    st_bundle_spec_t specs[MAX_MODELS];
    int n_models = eval_specs(o, seed, specs, err, sizeof err); /* checked in cmd_evaluate */
    size_t n_test = st_dataset_count(ds, ST_DATASET_TEST);
    size_t n_val = st_dataset_count(ds, ST_DATASET_VAL);
    int rc = 1;
    model_t m[MAX_MODELS];
    memset(m, 0, sizeof m);
    double *actual = malloc((n_test + 1) * sizeof *actual);
    double *vactual = malloc((n_val + 1) * sizeof *vactual);
    double *ea = malloc((n_test + 1) * sizeof *ea), *eb = malloc((n_test + 1) * sizeof *eb);
    double *base[N_BASE], *vbase[N_BASE];
    int *user_of = malloc((n_test + 1) * sizeof *user_of);
    unit_t *units = calloc((size_t)n_models * (size_t)o->model_seeds, sizeof *units);
    int bad_alloc = !actual || !vactual || !ea || !eb || !user_of || !units;
    for (int i = 0; i < N_BASE; i++) {
        base[i] = malloc((n_test + 1) * sizeof(double));
        vbase[i] = malloc((n_val + 1) * sizeof(double));
        bad_alloc |= !base[i] || !vbase[i];
    }
    char *table = NULL, *ctable = NULL, *ch = NULL;
    size_t tl = 0, tc = 0, cl = 0, cc = 0, hl = 0, hc = 0;
    if (bad_alloc) {
        fprintf(stderr, "stint evaluate: out of memory\n");
        goto done;
    }
    /* too little data to score: refuse (exit 2) before training, so no table and no report */
    if (train_check_split(ds, cx->d, EVAL_MIN_TEST_ROWS, "stint evaluate", err, sizeof err) != 0) {
        fprintf(stderr, "stint evaluate: %s\n", err);
        rc = 2;
        goto done;
    }
    const st_dataset_row_t *rows = st_dataset_rows(ds);
    size_t j = 0, jv = 0;
    for (size_t r = 0; r < st_dataset_n_rows(ds); r++) {
        if (rows[r].role != ST_DATASET_TEST && rows[r].role != ST_DATASET_VAL)
            continue;
        st_dataset_baselines_t bl;
        st_dataset_baselines(ds, r, &bl);
        double b4[N_BASE] = {bl.user_mean_s, bl.user_median_s, bl.last_s, bl.global_median_s};
        if (rows[r].role == ST_DATASET_VAL) {
            vactual[jv] = rows[r].length_s;
            for (int i = 0; i < N_BASE; i++)
                vbase[i][jv] = b4[i];
            jv++;
            continue;
        }
        actual[j] = rows[r].length_s;
        user_of[j] = rows[r].user;
        for (int i = 0; i < N_BASE; i++)
            base[i][j] = b4[i];
        j++;
    }
    memset(res, 0, sizeof *res);
    res->seed = seed;
    res->n_rows = n_models + N_BASE;
    res->n_test = n_test;
    res->n_val = n_val;
    res->model_seeds = (int)o->model_seeds;
    /* unit i * model_seeds + k: configuration i, model seed k */
    int ms = res->model_seeds;
    for (int i = 0; i < n_models; i++)
        for (int k = 0; k < ms; k++) {
            unit_t *u = &units[i * ms + k];
            u->m.spec = specs[i];
            if (o->epochs > 0)
                u->m.spec.epochs = (int)o->epochs;
            u->m.spec.seed +=
                (uint64_t)k * ST_BUNDLE_MEMBER_SEED_STEP; /* k = 0: the configuration's own */
            u->keep = k == 0;
        }
    pool_t pool = {ds, units, n_models * ms, n_test, n_val, actual, vactual, 0, 0};
    pool_run(&pool, (int)o->jobs);
    for (int i = 0; i < n_models; i++) {
        m[i] = units[i * ms].m; /* freed at done from here on, also after a failure */
        units[i * ms].m.bundle = NULL;
        units[i * ms].m.pred = NULL;
    }
    for (int u = 0; u < n_models * ms; u++)
        if (units[u].rc != 0) {
            fprintf(stderr, "stint evaluate: %s: %s%s\n", units[u].m.spec.name, units[u].err,
                    units[u].rc == 2 ? "; no table written" : "");
            rc = units[u].rc;
            goto done;
        }
    /* the sums in the order of a single thread, so the spread is the same for every --jobs */
    for (int i = 0; i < n_models; i++) {
        double sum_t = 0, sum_t2 = 0, sum_v = 0, sum_v2 = 0;
        for (int k = 0; k < ms; k++) {
            double tm = units[i * ms + k].test_mae, vm = units[i * ms + k].val_mae;
            sum_t += tm, sum_t2 += tm * tm, sum_v += vm, sum_v2 += vm * vm;
        }
        res->val_mae[i] = units[i * ms].val_mae;
        int n = ms;
        res->seeds_mae[i] = sum_t / n;
        res->seeds_val[i] = sum_v / n;
        res->seeds_mae_sd[i] = n > 1 ? sqrt(fmax(0, (sum_t2 - sum_t * sum_t / n) / (n - 1))) : 0;
        res->seeds_val_sd[i] = n > 1 ? sqrt(fmax(0, (sum_v2 - sum_v * sum_v / n) / (n - 1))) : 0;
    }
    for (int i = 0; i < N_BASE; i++)
        res->val_mae[n_models + i] = score(vbase[i], vactual, NULL, n_val).mae;
    score_t s_mean = score(base[0], actual, NULL, n_test);
    score_t s_median = score(base[1], actual, NULL, n_test);
    add(&table, &tl, &tc, "%-42s | %9s | %8s | %8s | %9s | %9s | %10s\n", "configuration",
        "MAE (s)", "nMAE/mean", "nMAE/med", "RMSE (s)", "test rows", "train time");
    add(&table, &tl, &tc,
        "-------------------------------------------+-----------+----------+----------+-----------+"
        "-"
        "----------+-----------\n");
    /* the best configuration: the lowest validation MAE (its mean over --model-seeds) */
    int best = 0;
    for (int i = 1; i < n_models; i++)
        if (res->seeds_val[i] < res->seeds_val[best])
            best = i;
    for (int i = 0; i < n_models + N_BASE; i++) {
        const double *p = i < n_models ? m[i].pred : base[i - n_models];
        score_t s = score(p, actual, NULL, n_test);
        char tt[32];
        if (i < n_models)
            snprintf(tt, sizeof tt, "%.1f s", m[i].train_s);
        else
            snprintf(tt, sizeof tt, "-");
        add(&table, &tl, &tc, "%-42s | %9.1f | %8.3f | %8.3f | %9.1f | %9zu | %10s\n",
            i < n_models ? m[i].spec.name : base_names[i - n_models], s.mae, s.mae / s_mean.mae,
            s.mae / s_median.mae, s.rmse, s.n, tt);
        const char *nm = i < n_models ? m[i].spec.name : base_names[i - n_models];
        size_t nl = strnlen(nm, sizeof res->names[i] - 1);
        memcpy(res->names[i], nm, nl);
        res->names[i][nl] = 0;
        res->mae[i] = s.mae;
        res->rmse[i] = s.rmse;
        res->train_s[i] = i < n_models ? m[i].train_s : 0;
        /* the intervals: the same users resampled for every row (same bootstrap seed) */
        for (size_t t = 0; t < n_test; t++)
            ea[t] = fabs(p[t] - actual[t]);
        for (int b = 0; b < 3; b++) {
            const double *q = b < 2 ? base[b] : m[best].pred;
            st_bootstrap_ratio_t *to = b == 0   ? &res->vs_mean[i]
                                       : b == 1 ? &res->vs_med[i]
                                                : &res->vs_best[i];
            for (size_t t = 0; t < n_test; t++)
                eb[t] = fabs(q[t] - actual[t]);
            if (st_bootstrap_ratio(ea, eb, user_of, n_test, (int)o->bootstrap, CI_LEVEL, BOOT_SEED,
                                   to, err, sizeof err) != 0) {
                fprintf(stderr, "stint evaluate: %s\n", err);
                goto done;
            }
        }
        res->test_users = res->vs_med[i].groups;
    }
    res->best = best;
    if (full && !(res->best_config = serving_config(&m[best].spec))) {
        fprintf(stderr, "stint evaluate: out of memory\n");
        goto done;
    }
    /* per-cluster breakdown, by the clusters of the first clustered configuration */
    int cm = -1;
    for (int i = 0; i < n_models && cm < 0; i++)
        if (st_bundle_k(m[i].bundle) > 0)
            cm = i;
    if (cm >= 0) {
        int k = st_bundle_k(m[cm].bundle);
        int *keep = malloc(n_test * sizeof *keep);
        int *cl_of = malloc(n_test * sizeof *cl_of);
        if (keep && cl_of) {
            for (size_t t = 0; t < n_test; t++)
                cl_of[t] = st_bundle_user_cluster(m[cm].bundle, st_dataset_user_id(ds, user_of[t]));
            add(&ctable, &cl, &cc,
                "MAE (s) per cluster of \"%s\" (-1 = not clustered: filtered or "
                "unseen, global model)\n",
                m[cm].spec.name);
            add(&ch, &hl, &hc,
                "<h2>Test MAE (s) per cluster of \"%s\"</h2>\n<p>Cluster -1: users not clustered "
                "(filtered or unseen), predicted by the global network.</p>\n"
                "<table class=\"clusters\">\n<tr><th>configuration \\ cluster</th>",
                m[cm].spec.name);
            add(&ctable, &cl, &cc, "%-42s", "configuration \\ cluster");
            for (int c = -1; c < k; c++) {
                add(&ctable, &cl, &cc, " | %8d", c);
                add(&ch, &hl, &hc, "<th>%d</th>", c);
            }
            add(&ctable, &cl, &cc, "\n%-42s", "test rows");
            add(&ch, &hl, &hc, "</tr>\n<tr><td>test rows</td>");
            for (int c = -1; c < k; c++) {
                size_t n = 0;
                for (size_t t = 0; t < n_test; t++)
                    n += cl_of[t] == c;
                add(&ctable, &cl, &cc, " | %8zu", n);
                add(&ch, &hl, &hc, "<td class=\"n\">%zu</td>", n);
            }
            add(&ctable, &cl, &cc, "\n");
            add(&ch, &hl, &hc, "</tr>\n");
            for (int i = 0; i < n_models + N_BASE; i++) {
                const double *p = i < n_models ? m[i].pred : base[i - n_models];
                add(&ctable, &cl, &cc, "%-42s", res->names[i]);
                add(&ch, &hl, &hc, "<tr><td>%s</td>", res->names[i]); /* names: no markup */
                for (int c = -1; c < k; c++) {
                    for (size_t t = 0; t < n_test; t++)
                        keep[t] = cl_of[t] == c;
                    score_t s = score(p, actual, keep, n_test);
                    if (s.n) {
                        add(&ctable, &cl, &cc, " | %8.1f", s.mae);
                        add(&ch, &hl, &hc, "<td class=\"n\">%.1f</td>", s.mae);
                    } else {
                        add(&ctable, &cl, &cc, " | %8s", "-");
                        add(&ch, &hl, &hc, "<td>-</td>");
                    }
                }
                add(&ctable, &cl, &cc, "\n");
                add(&ch, &hl, &hc, "</tr>\n");
            }
            add(&ch, &hl, &hc, "</table>\n");
        }
        free(keep);
        free(cl_of);
    }
    if (!table || (cm >= 0 && !ctable)) {
        fprintf(stderr, "stint evaluate: out of memory\n");
        goto done;
    }
    printf("\n%s\n%s", table, ctable ? ctable : "");
    if (res->model_seeds > 1) {
        printf("\nMAE (s) over %d model seeds of each configuration (same split), mean +- sd; the "
               "best row is the lowest mean validation MAE. A gap smaller than the sd is no win.\n",
               res->model_seeds);
        for (int i = 0; i < n_models; i++)
            printf("  %-40s  test %8.1f +- %6.1f   val %8.1f +- %6.1f%s\n", res->names[i],
                   res->seeds_mae[i], res->seeds_mae_sd[i], res->seeds_val[i], res->seeds_val_sd[i],
                   i == best ? "   (best)" : "");
    }
    printf("\n%.0f %% intervals of MAE / baseline MAE, bootstrap over %d test users (%lld "
           "resamples); best row by validation MAE: %s\n",
           CI_LEVEL * 100, res->test_users, (long long)o->bootstrap, res->names[best]);
    for (int i = 0; i < res->n_rows; i++)
        printf("  %-40s  vs mean %.3f [%.3f, %.3f] %-15s  vs median %.3f [%.3f, %.3f] %-15s  "
               "vs best %.3f [%.3f, %.3f] %s\n",
               res->names[i], res->vs_mean[i].ratio, res->vs_mean[i].lo, res->vs_mean[i].hi,
               i == n_models ? "(itself)" : verdict_text(&res->vs_mean[i]), res->vs_med[i].ratio,
               res->vs_med[i].lo, res->vs_med[i].hi,
               i == n_models + 1 ? "(itself)" : verdict_text(&res->vs_med[i]),
               res->vs_best[i].ratio, res->vs_best[i].lo, res->vs_best[i].hi,
               i == best ? "(itself)" : verdict_text(&res->vs_best[i]));
    printf("\ndataset: %zu sessions, %d users, train %zu / val %zu / test %zu rows, split %s, seed "
           "%llu\n",
           st_dataset_n_rows(ds), st_dataset_n_users(ds), st_dataset_count(ds, ST_DATASET_TRAIN),
           n_val, n_test, cx->d->split, (unsigned long long)seed);
    if (full && (write_all_predictions(o->out, ds, m, units, n_models, ms, base, vbase, actual,
                                       vactual) != 0 ||
                 write_figures(o->out, m, n_models, actual, n_test, best, loss_svg, have_clusters,
                               chosen_k) != 0))
        goto done;
    if (full) {
        importance_html(&ch, &hl, &hc, m, n_models);
        *chtml = ch;
        ch = NULL;
    }
    rc = 0;
done:
    for (int i = 0; i < MAX_MODELS; i++) {
        st_bundle_destroy(m[i].bundle);
        free(m[i].pred);
    }
    for (int i = 0; i < N_BASE; i++) {
        free(base[i]);
        free(vbase[i]);
    }
    free(actual);
    free(vactual);
    for (int u = 0; units && u < n_models * (int)o->model_seeds; u++) {
        free(units[u].m.pred); /* the first model seed's moved to m */
        free(units[u].vpred);
    }
    free(units);
    free(ea);
    free(eb);
    free(user_of);
    free(table);
    free(ctable);
    free(ch);
    return rc;
}

/* Parses "1,2,3" into seeds (at most MAX_SEEDS); returns the count, or -1. */
static int parse_seeds(const char *text, uint64_t *seeds)
{
    int n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        if (*p < '0' || *p > '9')
            return -1;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno || end == p || n == MAX_SEEDS || v > 9007199254740991ULL)
            return -1;
        seeds[n++] = v;
        if (*end == ',')
            end++;
        else if (*end)
            return -1;
        p = end;
    }
    return n;
}

int cmd_evaluate(int argc, char **argv)
{
    eval_opts_t o = {0};
    train_data_opts_t d = {0};
    char err[512];
    st_config_t *cfg =
        st_config_new("stint evaluate", "train a preset's configurations on one seeded split and "
                                        "score them with the baselines on identical test rows");
    if (st_config_add_table(cfg, train_data_table, &d, err, sizeof err) != 0 ||
        st_config_add_table(cfg, eval_table, &o, err, sizeof err) != 0) {
        fprintf(stderr, "stint evaluate: %s\n", err);
        st_config_destroy(cfg);
        return 1;
    }
    st_config_result_t cr = st_config_load(cfg, argc, argv, NULL, err, sizeof err);
    if (cr == ST_CONFIG_OK && train_data_check(&d, err, sizeof err) != 0)
        cr = ST_CONFIG_USAGE;
    d.kafka_props = st_config_kafka_props(cfg, &d.n_kafka_props);
    if (cr != ST_CONFIG_OK) {
        if (cr == ST_CONFIG_USAGE) {
            fprintf(stderr, "stint evaluate: %s\n", err);
            st_config_usage(cfg, stderr);
        }
        st_config_destroy(cfg);
        return cr == ST_CONFIG_EXIT ? 0 : 2;
    }
    st_bundle_spec_t probe[MAX_MODELS];
    uint64_t seeds[MAX_SEEDS];
    int n_seeds = 1;
    seeds[0] = (uint64_t)d.seed;
    if (o.seeds && *o.seeds && (n_seeds = parse_seeds(o.seeds, seeds)) < 1) {
        fprintf(stderr,
                "stint evaluate: --seeds \"%s\": give 1 to %d comma-separated seeds (e.g. "
                "1,2,3)\n",
                o.seeds, MAX_SEEDS);
        st_config_destroy(cfg);
        return 2;
    }
    if (n_seeds > 1 && strcmp(d.split, "date") == 0) {
        fprintf(stderr,
                "stint evaluate: --seeds with --split date: the date cut does not depend on the "
                "seed, so every seed would score the same test rows; use --split user, or "
                "--model-seeds for the spread over model seeds\n");
        st_config_destroy(cfg);
        return 2;
    }
    if (eval_specs(&o, seeds[0], probe, err, sizeof err) < 0) {
        fprintf(stderr, "stint evaluate: %s\n", err);
        st_config_usage(cfg, stderr);
        st_config_destroy(cfg);
        return 2;
    }
    if (o.jobs == 0) {
        int cpus = st_cpus_available();
        o.jobs = cpus > AUTO_JOBS_MAX ? AUTO_JOBS_MAX : cpus;
    }
    /* One OpenBLAS thread per training, whatever OPENBLAS_NUM_THREADS says: the cores go to
     * --jobs (a second OpenBLAS thread is slower on these small products, docs/training.md), and
     * the results do not depend on how OpenBLAS splits a product. Process-wide, so set once here,
     * before any thread trains. */
    openblas_set_num_threads(1);
    int64_t t0 = st_time_mono_ms();
    d.seed = (int64_t)seeds[0];
    st_dataset_t *ds = train_data_load(&d, err, sizeof err);
    if (!ds) {
        fprintf(stderr, "stint evaluate: %s\n", err);
        st_config_destroy(cfg);
        return 1;
    }
    eval_ctx_t cx = {&o, &d, argc, argv};
    run_t *runs = calloc((size_t)n_seeds, sizeof *runs);
    int loss_svg[MAX_MODELS] = {0}, have_clusters = 0, chosen_k = 0;
    char *chtml = NULL;
    int rc = runs ? 0 : 1;
    /* Every seed's split is checked before anything is trained, printed or written: a later
     * seed with too few test rows refuses the run as the first one would (exit 2, no table and
     * no report), not after the first seed's table and files. */
    for (int r = 0; r < n_seeds && rc == 0 && n_seeds > 1; r++) {
        if (train_data_split(ds, &d, seeds[r], err, sizeof err) != 0) {
            fprintf(stderr, "stint evaluate: %s\n", err);
            rc = 1;
        } else if (train_check_split(ds, &d, EVAL_MIN_TEST_ROWS, "stint evaluate", err,
                                     sizeof err) != 0) {
            fprintf(stderr, "stint evaluate: split seed %llu: %s\n", (unsigned long long)seeds[r],
                    err);
            rc = 2;
        }
    }
    if (rc == 0 && n_seeds > 1 && train_data_split(ds, &d, seeds[0], err, sizeof err) != 0) {
        fprintf(stderr, "stint evaluate: %s\n", err);
        rc = 1;
    }
    for (int r = 0; r < n_seeds && rc == 0; r++) {
        if (r > 0) {
            d.seed = (int64_t)seeds[r];
            if (train_data_split(ds, &d, seeds[r], err, sizeof err) != 0) {
                fprintf(stderr, "stint evaluate: %s\n", err);
                rc = 1;
                break;
            }
        }
        if (n_seeds > 1)
            printf("\n== split seed %llu (%d of %d) ==\n", (unsigned long long)seeds[r], r + 1,
                   n_seeds);
        rc = evaluate_one(&cx, ds, seeds[r], r == 0, &runs[r], loss_svg, &have_clusters, &chosen_k,
                          &chtml);
    }
    if (rc == 0 && n_seeds > 1) {
        printf("\nover %d split seeds: MAE / per-user median, mean [min, max]; seeds where the "
               "whole interval is below 1\n",
               n_seeds);
        for (int i = 0; i < runs[0].n_rows; i++) {
            double s = 0, lo = INFINITY, hi = -INFINITY;
            int wins = 0;
            for (int r = 0; r < n_seeds; r++) {
                double v = runs[r].vs_med[i].ratio;
                s += v;
                lo = fmin(lo, v);
                hi = fmax(hi, v);
                wins += st_bootstrap_verdict(&runs[r].vs_med[i]) == ST_BOOTSTRAP_BETTER;
            }
            if (i == runs[0].n_rows - N_BASE + 1)
                printf("  %-40s  %.3f [%.3f, %.3f]  (itself)\n", runs[0].names[i], s / n_seeds, lo,
                       hi);
            else
                printf("  %-40s  %.3f [%.3f, %.3f]  %d of %d\n", runs[0].names[i], s / n_seeds, lo,
                       hi, wins, n_seeds);
        }
    }
    if (rc == 0) {
        /* the header describes the first seed's split: re-split the data set back to it */
        if (n_seeds > 1 && train_data_split(ds, &d, seeds[0], err, sizeof err) != 0) {
            fprintf(stderr, "stint evaluate: %s\n", err);
            rc = 1;
        }
        if (rc != 0 || write_index(&cx, ds, runs, n_seeds, chtml, loss_svg, runs[0].n_rows - N_BASE,
                                   have_clusters, chosen_k) != 0)
            rc = 1;
        else {
            printf(
                "\nbest row by validation MAE (split seed %llu): %s; to train it for serving:\n  ",
                (unsigned long long)seeds[0], runs[0].names[runs[0].best]);
            train_command(stdout, &d, seeds[0], runs[0].best_config, 0);
            printf("\nreport: %s/index.html, %s/predictions.csv, %s/val_predictions.csv; total "
                   "%.1f s\n",
                   o.out, o.out, o.out, (double)(st_time_mono_ms() - t0) / 1000.0);
        }
    }
    for (int r = 0; runs && r < n_seeds; r++)
        free(runs[r].best_config);
    free(chtml);
    free(runs);
    st_dataset_destroy(ds);
    st_config_destroy(cfg);
    return rc;
}
