/* cmd_evaluate.c - `stint evaluate`: trains every configuration of a preset on one seeded split,
 * scores models and baselines on the identical test rows, prints one table (plus a per-cluster
 * breakdown) and writes report/index.html with SVG figures and report/predictions.csv. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "st_bundle.h"
#include "st_cluster.h"
#include "st_config.h"
#include "st_dataset.h"
#include "st_kmeans.h"
#include "st_svg.h"
#include "st_time.h"
#include "train_check.h"
#include "train_data.h"

#define MAX_MODELS 24
#define N_BASE     4

typedef struct {
    char *preset;
    char *out;
    int64_t epochs; /* 0: each configuration's own */
} eval_opts_t;

static const st_config_entry_t eval_table[] = {
    {"preset", ST_CFG_STRING, "default", ST_CFG_NOBOUNDS, offsetof(eval_opts_t, preset), false, 0,
     "default (improved models + seed parity) or seed (the seed's experiment list)"},
    {"out", ST_CFG_STRING, "report", ST_CFG_NOBOUNDS, offsetof(eval_opts_t, out), false, 0,
     "report directory (index.html, SVGs, predictions.csv)"},
    {"epochs", ST_CFG_INT, "0", 0, 100000, offsetof(eval_opts_t, epochs), false, 0,
     "override every configuration's epoch limit (0 = keep)"},
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

static int write_report(const char *dir, const st_dataset_t *ds, model_t *m, int n_models,
                        double *const *base, const double *actual, size_t n_test,
                        const char *table_text, const char *cluster_text, int best)
{
    char path[4096], err[256];
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "stint evaluate: cannot create %s: %s\n", dir, strerror(errno));
        return -1;
    }
    /* predictions.csv */
    snprintf(path, sizeof path, "%s/predictions.csv", dir);
    FILE *fp = fopen(path, "w");
    if (!fp) {
        fprintf(stderr, "stint evaluate: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(fp, "user,session_start,actual_length_s");
    for (int i = 0; i < n_models; i++) {
        fputc(',', fp);
        csv_field(fp, m[i].spec.name);
    }
    for (int i = 0; i < N_BASE; i++) {
        fputc(',', fp);
        csv_field(fp, base_names[i]);
    }
    fputc('\n', fp);
    const st_dataset_row_t *rows = st_dataset_rows(ds);
    size_t j = 0;
    for (size_t r = 0; r < st_dataset_n_rows(ds); r++) {
        if (rows[r].role != ST_DATASET_TEST)
            continue;
        csv_field(fp, st_dataset_user_id(ds, rows[r].user));
        fprintf(fp, ",%lld,%.3f", (long long)rows[r].start_s, actual[j]);
        for (int i = 0; i < n_models; i++)
            fprintf(fp, ",%.3f", m[i].pred[j]);
        for (int i = 0; i < N_BASE; i++)
            fprintf(fp, ",%.3f", base[i][j]);
        fputc('\n', fp);
        j++;
    }
    if (fclose(fp) != 0)
        return -1;
    /* figures */
    int ok = 1;
    snprintf(path, sizeof path, "%s/pred_actual.svg", dir);
    ok &= st_svg_pred_actual(path, m[best].spec.name, actual, m[best].pred, n_test, "s", err,
                             sizeof err) == 0;
    /* one loss chart per configuration: train and validation loss of each of its networks */
    int loss_svg[MAX_MODELS] = {0};
    double epochs_x[4096];
    for (int e = 0; e < 4096; e++)
        epochs_x[e] = e + 1;
    for (int i = 0; i < n_models; i++) {
        st_svg_series_t series[2 * (ST_BUNDLE_MAX_CLUSTERS + 1)];
        char names[2 * (ST_BUNDLE_MAX_CLUSTERS + 1)][32];
        int ns = 0;
        for (int net = 0; net <= ST_BUNDLE_MAX_CLUSTERS; net++) {
            const st_nn_history_t *h = st_bundle_history(m[i].bundle, net);
            if (!h || h->epochs == 0)
                continue;
            size_t ne = (size_t)(h->epochs < 4096 ? h->epochs : 4096);
            for (int v = 0; v < 2; v++) {
                if (net == 0)
                    snprintf(names[ns], sizeof names[ns], "global %s", v ? "val" : "train");
                else
                    snprintf(names[ns], sizeof names[ns], "cluster %d %s", net - 1,
                             v ? "val" : "train");
                series[ns] = (st_svg_series_t){names[ns], epochs_x, v ? h->val_loss : h->loss, ne};
                ns++;
            }
        }
        if (ns == 0)
            continue;
        snprintf(path, sizeof path, "%s/loss_%d.svg", dir, i);
        loss_svg[i] =
            st_svg_line_chart(path, m[i].spec.name, "epoch", "L1 loss (scaled target units)",
                              series, ns, err, sizeof err) == 0;
        ok &= loss_svg[i];
    }
    /* clustering figures from the first clustered configuration */
    int have_clusters = 0;
    for (int i = 0; i < n_models && !have_clusters; i++) {
        const double *px;
        const int *lab;
        int dim;
        size_t np = st_bundle_profiles(m[i].bundle, &px, &lab, &dim);
        if (np < 3)
            continue;
        have_clusters = 1;
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
        st_svg_series_t es = {"k-means inertia", ks, inertia, (size_t)nk};
        snprintf(path, sizeof path, "%s/elbow.svg", dir);
        ok &= st_svg_line_chart(path, "Elbow (training-period user profiles, z-scored)", "k",
                                "inertia", &es, 1, err, sizeof err) == 0;
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
    snprintf(path, sizeof path, "%s/index.html", dir);
    fp = fopen(path, "w");
    if (!fp) {
        fprintf(stderr, "stint evaluate: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(fp, "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>stint evaluate</title>"
                "</head><body>\n<h1>stint evaluate</h1>\n<p>Every row is scored on the identical "
                "test rows, in seconds. predictions.csv holds every prediction.</p>\n<pre>\n");
    for (const char *c = table_text; *c; c++) {
        if (*c == '<')
            fputs("&lt;", fp);
        else if (*c == '&')
            fputs("&amp;", fp);
        else
            fputc(*c, fp);
    }
    fputs("\n", fp);
    for (const char *c = cluster_text; *c; c++) {
        if (*c == '<')
            fputs("&lt;", fp);
        else if (*c == '&')
            fputs("&amp;", fp);
        else
            fputc(*c, fp);
    }
    fputs("</pre>\n<h2>Predicted vs actual (best model)</h2><img src=\"pred_actual.svg\">\n"
          "<h2>Loss curves</h2>\n",
          fp);
    for (int i = 0; i < n_models; i++)
        if (loss_svg[i])
            fprintf(fp, "<img src=\"loss_%d.svg\">\n", i);
    if (have_clusters)
        fputs("<h2>Elbow</h2><img src=\"elbow.svg\">\n<h2>Silhouette</h2><img "
              "src=\"silhouette.svg\">\n<h2>Clusters</h2><img src=\"clusters.svg\">\n",
              fp);
    fputs("</body></html>\n", fp);
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
    st_bundle_spec_t specs[MAX_MODELS];
    int n_models = preset_specs(o.preset, (uint64_t)d.seed, specs);
    if (n_models < 0) {
        fprintf(stderr, "stint evaluate: unknown --preset \"%s\" (default or seed)\n", o.preset);
        st_config_usage(cfg, stderr);
        st_config_destroy(cfg);
        return 2;
    }
    int64_t t0 = st_time_mono_ms();
    st_dataset_t *ds = train_data_load(&d, err, sizeof err);
    if (!ds) {
        fprintf(stderr, "stint evaluate: %s\n", err);
        st_config_destroy(cfg);
        return 1;
    }
    size_t n_test = st_dataset_count(ds, ST_DATASET_TEST);
    int rc = 1;
    model_t m[MAX_MODELS];
    memset(m, 0, sizeof m);
    double *actual = malloc((n_test + 1) * sizeof *actual);
    double *base[N_BASE];
    int *user_of = malloc((n_test + 1) * sizeof *user_of);
    for (int i = 0; i < N_BASE; i++)
        base[i] = malloc((n_test + 1) * sizeof(double));
    char *table = NULL, *ctable = NULL;
    size_t tl = 0, tc = 0, cl = 0, cc = 0;
    if (!actual || !user_of || !base[0] || !base[1] || !base[2] || !base[3]) {
        fprintf(stderr, "stint evaluate: out of memory\n");
        goto done;
    }
    /* too little data to score: refuse (exit 2) before training, so no table and no report */
    if (train_check_split(ds, &d, EVAL_MIN_TEST_ROWS, "stint evaluate", err, sizeof err) != 0) {
        fprintf(stderr, "stint evaluate: %s\n", err);
        rc = 2;
        goto done;
    }
    const st_dataset_row_t *rows = st_dataset_rows(ds);
    size_t j = 0;
    for (size_t r = 0; r < st_dataset_n_rows(ds); r++) {
        if (rows[r].role != ST_DATASET_TEST)
            continue;
        st_dataset_baselines_t bl;
        st_dataset_baselines(ds, r, &bl);
        actual[j] = rows[r].length_s;
        user_of[j] = rows[r].user;
        base[0][j] = bl.user_mean_s;
        base[1][j] = bl.user_median_s;
        base[2][j] = bl.last_s;
        base[3][j] = bl.global_median_s;
        j++;
    }
    for (int i = 0; i < n_models; i++) {
        m[i].spec = specs[i];
        if (o.epochs > 0)
            m[i].spec.epochs = (int)o.epochs;
        int64_t ts = st_time_mono_ms();
        m[i].bundle =
            st_bundle_train(ds, &m[i].spec, train_progress, m[i].spec.name, err, sizeof err);
        if (!m[i].bundle) {
            fprintf(stderr, "stint evaluate: %s: %s\n", m[i].spec.name, err);
            goto done;
        }
        if (train_check_bundle(m[i].bundle, err, sizeof err) != 0) {
            fprintf(stderr, "stint evaluate: %s: %s; no table written\n", m[i].spec.name, err);
            rc = 2;
            goto done;
        }
        m[i].train_s = (double)(st_time_mono_ms() - ts) / 1000.0;
        m[i].pred = malloc(n_test * sizeof(double));
        if (!m[i].pred)
            goto done;
        size_t bad = train_predict_rows(m[i].bundle, ds, ST_DATASET_TEST, m[i].pred);
        if (bad)
            fprintf(stderr,
                    "stint evaluate: %s: %zu non-finite predictions replaced by the "
                    "global median\n",
                    m[i].spec.name, bad);
    }
    score_t s_mean = score(base[0], actual, NULL, n_test);
    score_t s_median = score(base[1], actual, NULL, n_test);
    add(&table, &tl, &tc, "%-42s | %9s | %8s | %8s | %9s | %9s | %10s\n", "configuration",
        "MAE (s)", "nMAE/mean", "nMAE/med", "RMSE (s)", "test rows", "train time");
    add(&table, &tl, &tc,
        "-------------------------------------------+-----------+----------+----------+-----------+"
        "-"
        "----------+-----------\n");
    int best = 0;
    double best_mae = INFINITY;
    for (int i = 0; i < n_models + N_BASE; i++) {
        const double *p = i < n_models ? m[i].pred : base[i - n_models];
        score_t s = score(p, actual, NULL, n_test);
        if (i < n_models && s.mae < best_mae) {
            best_mae = s.mae;
            best = i;
        }
        char tt[32];
        if (i < n_models)
            snprintf(tt, sizeof tt, "%.1f s", m[i].train_s);
        else
            snprintf(tt, sizeof tt, "-");
        add(&table, &tl, &tc, "%-42s | %9.1f | %8.3f | %8.3f | %9.1f | %9zu | %10s\n",
            i < n_models ? m[i].spec.name : base_names[i - n_models], s.mae, s.mae / s_mean.mae,
            s.mae / s_median.mae, s.rmse, s.n, tt);
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
            add(&ctable, &cl, &cc, "%-42s", "configuration \\ cluster");
            for (int c = -1; c < k; c++)
                add(&ctable, &cl, &cc, " | %8d", c);
            add(&ctable, &cl, &cc, "\n%-42s", "test rows");
            for (int c = -1; c < k; c++) {
                size_t n = 0;
                for (size_t t = 0; t < n_test; t++)
                    n += cl_of[t] == c;
                add(&ctable, &cl, &cc, " | %8zu", n);
            }
            add(&ctable, &cl, &cc, "\n");
            for (int i = 0; i < n_models + N_BASE; i++) {
                const double *p = i < n_models ? m[i].pred : base[i - n_models];
                add(&ctable, &cl, &cc, "%-42s",
                    i < n_models ? m[i].spec.name : base_names[i - n_models]);
                for (int c = -1; c < k; c++) {
                    for (size_t t = 0; t < n_test; t++)
                        keep[t] = cl_of[t] == c;
                    score_t s = score(p, actual, keep, n_test);
                    if (s.n)
                        add(&ctable, &cl, &cc, " | %8.1f", s.mae);
                    else
                        add(&ctable, &cl, &cc, " | %8s", "-");
                }
                add(&ctable, &cl, &cc, "\n");
            }
        }
        free(keep);
        free(cl_of);
    }
    if (!table || (cm >= 0 && !ctable)) {
        fprintf(stderr, "stint evaluate: out of memory\n");
        goto done;
    }
    printf("\n%s\n%s", table, ctable ? ctable : "");
    printf("\ndataset: %zu sessions, %d users, train %zu / val %zu / test %zu rows, split %s, seed "
           "%lld\n",
           st_dataset_n_rows(ds), st_dataset_n_users(ds), st_dataset_count(ds, ST_DATASET_TRAIN),
           st_dataset_count(ds, ST_DATASET_VAL), n_test, d.split, (long long)d.seed);
    if (write_report(o.out, ds, m, n_models, base, actual, n_test, table, ctable ? ctable : "",
                     best) != 0)
        goto done;
    printf("report: %s/index.html, %s/predictions.csv; total %.1f s\n", o.out, o.out,
           (double)(st_time_mono_ms() - t0) / 1000.0);
    rc = 0;
done:
    for (int i = 0; i < MAX_MODELS; i++) {
        st_bundle_destroy(m[i].bundle);
        free(m[i].pred);
    }
    for (int i = 0; i < N_BASE; i++)
        free(base[i]);
    free(actual);
    free(user_of);
    free(table);
    free(ctable);
    st_dataset_destroy(ds);
    st_config_destroy(cfg);
    return rc;
}
