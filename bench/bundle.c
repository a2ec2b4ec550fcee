/* bench-bundle: the predictor's hot path - st_bundle_predict of one session from the public
 * input struct (W = 16 recent sessions, LSTM(32), LSTM(32) with 3 members, LSTM(250) seed
 * parity) on bundles trained
 * briefly on synthetic sessions. Prints predictions/s; never fails on time. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "st_bundle.h"
#include "st_dataset.h"
#include "st_rng.h"
#include "st_time.h"

#define N_PREDICT 100000

int main(void)
{
    char err[256];
    st_rng_t rng;
    st_rng_seed(&rng, 1);
    st_dataset_t *ds = st_dataset_new();
    for (int u = 0; u < 50; u++) {
        char id[32];
        snprintf(id, sizeof id, "user_%03d", u);
        int64_t t = 1230000000;
        for (int k = 0; k < 60; k++) {
            double len = exp(7 + st_rng_normal(&rng));
            st_dataset_add_session(ds, id, t, floor(len), 1 + (int)(len / 240), 0.2, err,
                                   sizeof err);
            t += (int64_t)len + 3600 + (int64_t)(st_rng_uniform(&rng) * 86400);
        }
    }
    st_dataset_split_cfg_t sc;
    st_dataset_split_default(&sc);
    if (st_dataset_finalize(ds, err, sizeof err) != 0 ||
        st_dataset_split(ds, &sc, err, sizeof err)) {
        fprintf(stderr, "bench-bundle: %s\n", err);
        return 1;
    }
    for (int kind = 0; kind < 3; kind++) {
        st_bundle_spec_t spec;
        if (kind < 2)
            st_bundle_spec_default(&spec);
        else
            st_bundle_spec_seed(&spec);
        if (kind == 1) {
            spec.members = 3;
            snprintf(spec.name, sizeof spec.name, "seq-lstm-members-3");
        }
        spec.epochs = 1;
        spec.cluster = ST_BUNDLE_CLUSTER_NONE;
        st_bundle_t *b = st_bundle_train(ds, &spec, NULL, NULL, err, sizeof err);
        if (!b) {
            fprintf(stderr, "bench-bundle: %s\n", err);
            return 1;
        }
        double lengths[16];
        int64_t starts[16];
        for (int i = 0; i < 16; i++) {
            lengths[i] = 600 + 100 * i;
            starts[i] = 1240000000 + 20000 * i;
        }
        st_bundle_input_t in = {0};
        in.lengths_s = lengths;
        in.starts_s = starts;
        in.n_recent = 16;
        in.n_sessions = 40;
        in.mean_length_s = 1500;
        in.median_length_s = 1200;
        in.gap_s = 5000;
        in.gender = 'f';
        in.age = 30;
        in.country = "Sweden";
        in.registered_s = 1150000000;
        in.cluster = -1;
        double sum = 0, p;
        int64_t t0 = st_time_mono_us();
        for (int i = 0; i < N_PREDICT; i++) {
            in.start_s = 1240400000 + i;
            if (st_bundle_predict(b, &in, &p) == 0)
                sum += p;
        }
        double s = (double)(st_time_mono_us() - t0) / 1e6;
        printf("bundle_predict model=%s predictions=%d seconds=%.3f per_s=%.0f us_each=%.2f "
               "(checksum %.1f)\n",
               spec.name, N_PREDICT, s, N_PREDICT / s, 1e6 * s / N_PREDICT, sum / N_PREDICT);
        st_bundle_destroy(b);
    }
    st_dataset_destroy(ds);
    return 0;
}
