/* cmd_gen.c - `stint gen`: writes a look-alike Last.fm 1K dataset (listens, profiles) plus a track
 * catalog from a seeded behaviour model; the model is described in docs/generator.md. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd_gen.h"
#include "commands.h"
#include "st_buf.h"
#include "st_lastfm.h"
#include "st_time.h"

/* The generated data ends at 2009-05-05T00:00:00Z, like the real dataset (never "now"). */
#define GEN_END_DAY       14369
#define GEN_MAX_SESSION_S (14 * 3600)
#define WRITE_BUF_BYTES   (1u << 20)

/* Random numbers: xoshiro256** seeded through splitmix64; one independent stream per purpose and
 * per user, so a user's rows do not depend on the others. */
typedef struct {
    uint64_t s[4];
} rng_t;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(rng_t *r, uint64_t seed, uint64_t purpose, uint64_t index)
{
    uint64_t x = seed ^ (purpose * 0xd1b54a32d192ed03ULL) ^ (index * 0x8cb92ba72f3d8dd7ULL);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_u64(rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in (0, 1). */
static double rng_unif(rng_t *r)
{
    return ((double)(rng_u64(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static uint32_t rng_below(rng_t *r, uint32_t n)
{
    return (uint32_t)(rng_u64(r) % n);
}

static double rng_norm(rng_t *r)
{
    double u1 = rng_unif(r), u2 = rng_unif(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static double rng_exp(rng_t *r, double mean)
{
    return -mean * log(rng_unif(r));
}

static int rng_poisson(rng_t *r, double lambda)
{
    double limit = exp(-lambda), p = 1.0;
    int k = 0;
    do {
        k++;
        p *= rng_unif(r);
    } while (p > limit && k < 200);
    return k - 1;
}

/* A rank in [0, n) with P(rank < k) ~ ln(k+1)/ln(n+1): Zipf with exponent ~1. */
static uint32_t zipf_rank(rng_t *r, uint32_t n)
{
    double k = exp(rng_unif(r) * log((double)n + 1.0)) - 1.0;
    uint32_t rank = (uint32_t)k;
    return rank < n ? rank : n - 1;
}

/* Tags, countries (with the UTC offset that shifts their users' daily rhythm), months. */
static const char *const tag_names[] = {"rock",       "electronic",   "indie",
                                        "pop",        "alternative",  "jazz",
                                        "hip-hop",    "metal",        "classical",
                                        "ambient",    "folk",         "punk",
                                        "soul",       "experimental", "house",
                                        "techno",     "post-rock",    "singer-songwriter",
                                        "britpop",    "blues",        "reggae",
                                        "country",    "funk",         "trip-hop",
                                        "j-pop",      "shoegaze",     "dubstep",
                                        "downtempo",  "hardcore",     "new wave",
                                        "80s",        "90s",          "female vocalists",
                                        "chillout",   "psychedelic",  "instrumental",
                                        "soundtrack", "emo",          "industrial",
                                        "latin"};
#define N_TAGS (sizeof tag_names / sizeof tag_names[0])

static const struct {
    const char *name;
    int utc_offset_h;
    double weight;
} countries[] = {
    {"United States", -6, 22}, {"United Kingdom", 0, 10}, {"Germany", 1, 8},
    {"Poland", 1, 6},          {"Brazil", -3, 5},         {"Sweden", 1, 4},
    {"Finland", 2, 4},         {"Canada", -5, 4},         {"Russian Federation", 3, 4},
    {"Spain", 1, 3},           {"Netherlands", 1, 3},     {"Japan", 9, 3},
    {"Italy", 1, 3},           {"France", 1, 3},          {"Australia", 10, 3},
    {"Mexico", -6, 2},         {"Norway", 1, 2},          {"Chile", -4, 2},
    {"Argentina", -3, 2},      {"Turkey", 2, 2},          {"Côte D'Ivoire", 0, 1},
    {"Czech Republic", 1, 1},  {"Portugal", 0, 1},        {"Belgium", 1, 1},
    {"Ukraine", 2, 1},         {"Israel", 2, 1},          {"Korea, Republic of", 9, 1},
};
#define N_COUNTRIES (sizeof countries / sizeof countries[0])

static const char month_abbr[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Name syllables: consonant + vowel, with the consonant and vowel sets disjoint so names built
 * from different syllable sequences never collide. */
static const char *const consonants[16] = {"b", "d", "f", "g", "k", "l", "m",  "n",
                                           "p", "r", "s", "t", "v", "z", "sh", "ch"};
static const char *const vowels[8] = {"a", "e", "i", "o", "u", "ö", "é", "á"};

/* Appends nsyl syllables encoded by the 7-bit digits of x; capitalises the first letter. */
static void append_word(st_buf_t *b, uint32_t x, int nsyl)
{
    for (int i = 0; i < nsyl; i++) {
        unsigned d = (x >> (7 * i)) & 0x7f;
        const char *c = consonants[d >> 3];
        if (i == 0) {
            char cap[3] = {(char)(c[0] - 'a' + 'A'), c[1], '\0'};
            st_buf_append_str(b, cap);
        } else {
            st_buf_append_str(b, c);
        }
        st_buf_append_str(b, vowels[d & 7]);
    }
}

/* Catalog: artists own contiguous track ranges. Strings live in one arena. */
enum { TRACK_MISSING = 1, TRACK_ZERO_DURATION = 2, TRACK_HAS_MBID = 4, TRACK_NO_TAGS = 8 };

typedef struct {
    uint32_t n_artists, n_tracks;
    uint32_t *artist_first, *artist_count, *artist_name;
    uint8_t *artist_has_mbid;
    uint8_t (*artist_tags)[3];
    uint32_t *track_artist, *track_name, *track_duration_ms;
    uint8_t *track_flags;
    st_buf_t names;
} catalog_t;

static void catalog_free(catalog_t *c)
{
    free(c->artist_first);
    free(c->artist_count);
    free(c->artist_name);
    free(c->artist_has_mbid);
    free(c->artist_tags);
    free(c->track_artist);
    free(c->track_name);
    free(c->track_duration_ms);
    free(c->track_flags);
    st_buf_free(&c->names);
}

static uint32_t arena_add_artist(st_buf_t *names, uint32_t a, uint64_t seed)
{
    static const char *const prefixes[] = {"The ", "DJ ", "東京 ", "Группа ", "Los "};
    uint32_t off = (uint32_t)names->len;
    uint32_t x = (uint32_t)((a * 0x9e3779b1u + (uint32_t)seed) & 0xfffffffu);
    uint32_t pick = (a * 2654435761u) % 100;
    if (pick < (uint32_t)(sizeof prefixes / sizeof prefixes[0]))
        st_buf_append_str(names, prefixes[pick]);
    append_word(names, x & 0x3fff, 2);
    st_buf_append_str(names, " ");
    append_word(names, x >> 14, 2);
    st_buf_append(names, "", 1);
    return off;
}

static uint32_t arena_add_track(st_buf_t *names, uint32_t artist, uint32_t j)
{
    uint32_t off = (uint32_t)names->len;
    uint32_t x = (j * 0x85ebca6bu + artist * 0x27d4eb2fu) & 0x1fffffu;
    bool quoted = j % 23 == 4;
    if (quoted)
        st_buf_append_str(names, "\"");
    else if (j % 41 == 6)
        st_buf_append_str(names, "'");
    append_word(names, x & 0x3fff, 2);
    if (j % 3 != 0)
        st_buf_append_str(names, " ");
    append_word(names, x >> 14, 1);
    if (quoted)
        st_buf_append_str(names, "\"");
    if (j % 17 == 3)
        st_buf_append_str(names, " (Live)");
    else if (j % 31 == 5)
        st_buf_append_str(names, " (Remix)");
    st_buf_append(names, "", 1);
    return off;
}

static int catalog_build(catalog_t *c, uint32_t users, uint64_t seed)
{
    rng_t r;
    rng_seed(&r, seed, 1, 0);
    memset(c, 0, sizeof *c);
    c->n_artists = 2000 + users * 50;
    c->artist_first = malloc(c->n_artists * sizeof *c->artist_first);
    c->artist_count = malloc(c->n_artists * sizeof *c->artist_count);
    c->artist_name = malloc(c->n_artists * sizeof *c->artist_name);
    c->artist_has_mbid = malloc(c->n_artists);
    c->artist_tags = malloc(c->n_artists * sizeof *c->artist_tags);
    if (!c->artist_first || !c->artist_count || !c->artist_name || !c->artist_has_mbid ||
        !c->artist_tags)
        return -1;
    uint64_t total = 0;
    for (uint32_t a = 0; a < c->n_artists; a++) {
        /* Popular (low-rank) artists have bigger catalogues. */
        double n = exp(1.6 + 0.9 * rng_norm(&r)) * (1.0 + 20.0 / (1.0 + a / 40.0));
        uint32_t count = n < 1 ? 1 : n > 400 ? 400 : (uint32_t)n;
        c->artist_first[a] = (uint32_t)total;
        c->artist_count[a] = count;
        total += count;
        c->artist_has_mbid[a] = rng_unif(&r) < 0.97;
        for (int t = 0; t < 3; t++)
            c->artist_tags[a][t] =
                t == 0 || rng_unif(&r) < 0.6 ? (uint8_t)zipf_rank(&r, (uint32_t)N_TAGS) : 0xff;
        c->artist_name[a] = arena_add_artist(&c->names, a, seed);
    }
    c->n_tracks = (uint32_t)total;
    c->track_artist = malloc(total * sizeof *c->track_artist);
    c->track_name = malloc(total * sizeof *c->track_name);
    c->track_duration_ms = malloc(total * sizeof *c->track_duration_ms);
    c->track_flags = malloc(total);
    if (!c->track_artist || !c->track_name || !c->track_duration_ms || !c->track_flags)
        return -1;
    for (uint32_t a = 0; a < c->n_artists; a++) {
        for (uint32_t j = 0; j < c->artist_count[a]; j++) {
            uint32_t t = c->artist_first[a] + j;
            c->track_artist[t] = a;
            c->track_name[t] = arena_add_track(&c->names, a, j);
            /* Log-normal around 3:45, a few long pieces; never under 30 s. */
            double d_s = exp(log(225.0) + 0.3 * rng_norm(&r));
            if (rng_unif(&r) < 0.02)
                d_s = 480 + rng_unif(&r) * 720;
            if (d_s < 30)
                d_s = 30;
            if (d_s > 1200)
                d_s = 1200;
            c->track_duration_ms[t] = (uint32_t)(d_s * 1000.0);
            double u = rng_unif(&r);
            uint8_t flags = u < 0.12 ? TRACK_MISSING : u < 0.20 ? TRACK_ZERO_DURATION : 0;
            if (rng_unif(&r) < 0.88)
                flags |= TRACK_HAS_MBID;
            if (rng_unif(&r) < 0.10)
                flags |= TRACK_NO_TAGS;
            c->track_flags[t] = flags;
        }
    }
    return c->names.data ? 0 : -1;
}

/* A deterministic MBID-shaped id (8-4-4-4-12 hex) for an artist or track. */
static void format_mbid(char out[37], uint64_t seed, uint64_t kind, uint32_t idx)
{
    static const char hex[] = "0123456789abcdef";
    uint64_t x = seed ^ (kind << 40) ^ idx;
    uint64_t h1 = splitmix64(&x), h2 = splitmix64(&x);
    int k = 0;
    for (int i = 0; i < 32; i++) {
        if (i == 8 || i == 12 || i == 16 || i == 20)
            out[k++] = '-';
        uint64_t h = i < 16 ? h1 : h2;
        out[k++] = hex[(h >> (4 * (i & 15))) & 15];
    }
    out[k] = '\0';
}

/* User types: how often they listen, when, and for how long. */
typedef enum { USER_CASUAL = 0, USER_COMMUTER, USER_BINGE, USER_WORKER, USER_TYPES } user_type_t;

static const struct {
    const char *name;
    double share;
    double base_log_s; /* log of the median session length, seconds */
    double sessions_per_day;
    double weekend_rate; /* multiplier on sessions per day at weekends */
    double hour_w[24];   /* weekday start-hour weights, local time */
} user_types[USER_TYPES] = {
    {"casual", 0.35, 7.0, 1.09, 1.3, {1,   1,   0.5, 0.3, 0.2, 0.2, 0.4, 0.8, 1,   1, 1,   1.2,
                                      1.5, 1.3, 1.2, 1.3, 1.5, 2,   2.5, 3,   3.2, 3, 2.5, 1.8}},
    {"commuter", 0.20, 7.4, 1.57, 0.6, {0.3, 0.2, 0.1, 0.1, 0.1, 0.3, 2, 5, 5,   1.5, 0.6, 0.6,
                                        1,   0.6, 0.6, 0.8, 2,   5,   5, 2, 1.5, 1.2, 1,   0.6}},
    {"binge", 0.15, 8.3, 0.45, 1.6, {3,   3,   2.5, 1.5, 0.6, 0.2, 0.1, 0.1, 0.2, 0.3, 0.5, 0.6,
                                     0.8, 0.8, 0.8, 1,   1.2, 1.5, 2,   2.5, 3,   3.5, 4,   3.5}},
    {"worker", 0.30, 8.6, 0.69, 0.5, {0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.5, 1.5, 4,   5,   3,   2,
                                      1.5, 3,   3,   2,   1.5, 1,   0.8, 0.8, 0.7, 0.5, 0.3, 0.2}},
};

/* Session-length shift (log seconds) by type and local start hour. */
static double hour_effect(user_type_t type, int hour, bool weekend)
{
    switch (type) {
    case USER_CASUAL:
        return hour >= 19 && hour <= 23 ? 0.25 : hour < 6 ? -0.3 : 0;
    case USER_COMMUTER:
        return !weekend && (hour == 7 || hour == 8 || hour == 17 || hour == 18) ? -0.5 : 0.2;
    case USER_BINGE:
        return hour >= 22 || hour <= 3 ? 0.45 : -0.2;
    case USER_WORKER:
        return !weekend && hour >= 8 && hour <= 17 ? 0.45 : -0.6;
    case USER_TYPES:
        break;
    }
    return 0;
}

typedef struct {
    user_type_t type;
    double mu, rate, phi, mood_sd, noise_sd, beta_gap, p_fav, p_same_artist, p_tail;
    int shift_h;   /* local = UTC + shift */
    uint64_t salt; /* decides the user's weeks off */
    int country;   /* -1 unknown */
    uint32_t start_day, end_day;
    uint32_t n_fav;
    uint32_t fav[320];
    double hour_cdf[2][24]; /* [weekend][hour] */
} user_t;

static int pick_country(rng_t *r)
{
    double total = 0, u;
    for (size_t i = 0; i < N_COUNTRIES; i++)
        total += countries[i].weight;
    u = rng_unif(r) * total;
    for (size_t i = 0; i < N_COUNTRIES; i++) {
        u -= countries[i].weight;
        if (u <= 0)
            return (int)i;
    }
    return 0;
}

static void user_init(user_t *u, rng_t *r, const catalog_t *cat, uint32_t days)
{
    double x = rng_unif(r), acc = 0;
    u->type = USER_CASUAL;
    for (int t = 0; t < USER_TYPES; t++) {
        acc += user_types[t].share;
        if (x < acc) {
            u->type = (user_type_t)t;
            break;
        }
    }
    u->mu = user_types[u->type].base_log_s + 0.35 * rng_norm(r);
    u->rate = user_types[u->type].sessions_per_day * exp(0.4 * rng_norm(r));
    u->phi = 0.45 + 0.35 * rng_unif(r);
    u->mood_sd = 0.45;
    u->noise_sd = 0.55 + 0.25 * rng_unif(r);
    u->beta_gap = 0.12;
    u->p_tail = 0.02 + 0.03 * rng_unif(r);
    u->p_fav = 0.55 + 0.4 * rng_unif(r);
    u->p_same_artist = 0.3 + 0.4 * rng_unif(r);
    u->country = rng_unif(r) < 0.08 ? -1 : pick_country(r);
    u->shift_h = u->country >= 0 ? countries[u->country].utc_offset_h : (int)rng_below(r, 24) - 11;
    u->start_day = rng_unif(r) < 0.5 ? 0 : (uint32_t)(rng_unif(r) * 0.6 * days);
    u->end_day = days;
    if (rng_unif(r) < 0.1)
        u->end_day = u->start_day + 1 + (uint32_t)((days - u->start_day) * rng_unif(r));
    if (u->end_day > days)
        u->end_day = days;
    u->salt = rng_u64(r);
    u->n_fav = 10 + zipf_rank(r, 310);
    for (uint32_t i = 0; i < u->n_fav; i++)
        u->fav[i] = zipf_rank(r, cat->n_artists);
    for (int we = 0; we < 2; we++) {
        /* At weekends commuters and workers follow the casual rhythm. */
        user_type_t ht =
            we && (u->type == USER_COMMUTER || u->type == USER_WORKER) ? USER_CASUAL : u->type;
        double sum = 0;
        for (int h = 0; h < 24; h++) {
            double w = user_types[ht].hour_w[h] * exp(0.3 * rng_norm(r));
            sum += w;
            u->hour_cdf[we][h] = sum;
        }
        for (int h = 0; h < 24; h++)
            u->hour_cdf[we][h] /= sum;
    }
}

static uint32_t pick_track(rng_t *r, const user_t *u, const catalog_t *cat, uint32_t prev_track,
                           bool have_prev)
{
    uint32_t a;
    if (have_prev && rng_unif(r) < u->p_same_artist) {
        a = cat->track_artist[prev_track];
    } else if (rng_unif(r) < u->p_fav) {
        a = u->fav[zipf_rank(r, u->n_fav)];
    } else {
        a = zipf_rank(r, cat->n_artists);
    }
    return cat->artist_first[a] + zipf_rank(r, cat->artist_count[a]);
}

typedef struct {
    int64_t ts_s;
    uint32_t track;
    bool dup;
} gen_listen_t;

typedef struct {
    gen_listen_t *v;
    size_t n, cap;
} listen_vec_t;

static int vec_push(listen_vec_t *lv, int64_t ts_s, uint32_t track, bool dup)
{
    if (lv->n == lv->cap) {
        size_t cap = lv->cap ? lv->cap * 2 : 4096;
        gen_listen_t *nv = realloc(lv->v, cap * sizeof *nv);
        if (!nv)
            return -1;
        lv->v = nv;
        lv->cap = cap;
    }
    lv->v[lv->n++] = (gen_listen_t){ts_s, track, dup};
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    uint64_t listens;    /* valid rows written (duplicates included) */
    uint64_t duplicates; /* extra copies of a row */
    uint64_t sessions;
    uint64_t unknown_duration; /* listens whose track has no catalog duration */
    uint64_t bad_by_reason[ST_LASTFM_REASON_COUNT];
    uint64_t bad_listen_lines, bad_profile_lines;
    uint64_t catalog_tracks;
    uint64_t bytes;
} gen_totals_t;

/* Simulates one user's listens in ascending time into lv. With truth, also writes a line per
 * session of what was drawn for it (GEN_TRUTH_FILE); nothing drawn depends on that. */
static int simulate_user(user_t *u, rng_t *r, const catalog_t *cat, int64_t t0_s, listen_vec_t *lv,
                         gen_totals_t *tot, FILE *truth, const char *uid)
{
    int64_t allowed_s = INT64_MIN, prev_end_s = INT64_MIN;
    double mood = rng_norm(r) * u->mood_sd / sqrt(1 - u->phi * u->phi);
    int64_t window_end_s = t0_s + (int64_t)u->end_day * 86400;
    int64_t starts[64];

    lv->n = 0;
    for (uint32_t day = u->start_day; day < u->end_day; day++) {
        int64_t day_s = t0_s + (int64_t)day * 86400;
        int64_t days_since_epoch = day_s / 86400;
        int weekday = (int)((days_since_epoch + 3) % 7); /* 0 = Monday (1970-01-01 a Thursday) */
        bool weekend = weekday >= 5;
        /* Whole weeks off (holidays, a broken laptop). */
        uint64_t wk = (uint64_t)(days_since_epoch / 7) * 0x9e3779b97f4a7c15ULL ^ u->salt;
        if (splitmix64(&wk) % 100 < 4)
            continue;
        int n = rng_poisson(r, u->rate * (weekend ? user_types[u->type].weekend_rate : 1.0));
        if (n > 64)
            n = 64;
        for (int i = 0; i < n; i++) {
            double x = rng_unif(r);
            int h = 0;
            while (h < 23 && u->hour_cdf[weekend][h] < x)
                h++;
            int utc_h = ((h - u->shift_h) % 24 + 24) % 24;
            starts[i] = day_s + utc_h * 3600 + (int64_t)(rng_unif(r) * 3600);
        }
        qsort(starts, (size_t)n, sizeof starts[0], cmp_i64);
        for (int i = 0; i < n; i++) {
            int64_t s = starts[i];
            if (s < allowed_s)
                s = allowed_s + (int64_t)rng_exp(r, 1200);
            if (s >= window_end_s)
                break;
            int local_h = (int)(((s / 3600 + u->shift_h) % 24 + 24) % 24);
            double gap_h = prev_end_s == INT64_MIN ? 24.0 : (double)(s - prev_end_s) / 3600.0;
            double prev_mood = mood;
            mood = u->phi * mood + u->mood_sd * rng_norm(r);
            double hour_eff = hour_effect(u->type, local_h, weekend);
            double level = u->mu + hour_eff + u->beta_gap * (log1p(gap_h) - log1p(24.0));
            double log_len = level + mood + u->noise_sd * rng_norm(r);
            double len_s = exp(log_len);
            bool tail = rng_unif(r) < u->p_tail;
            if (tail)
                len_s *= pow(rng_unif(r), -1.0 / 1.3); /* Pareto tail: marathons */
            if (len_s > GEN_MAX_SESSION_S)
                len_s = GEN_MAX_SESSION_S;
            int64_t t = s, last_d_s = 0;
            uint32_t track = 0;
            bool have_prev = false;
            for (;;) {
                track = pick_track(r, u, cat, track, have_prev);
                have_prev = true;
                bool dup = rng_unif(r) < 0.002;
                if (vec_push(lv, t, track, dup) != 0)
                    return -1;
                tot->listens += dup ? 2 : 1;
                tot->duplicates += dup;
                if (cat->track_flags[track] & (TRACK_MISSING | TRACK_ZERO_DURATION))
                    tot->unknown_duration += dup ? 2 : 1;
                int64_t d_s = ((int64_t)cat->track_duration_ms[track] + 999) / 1000;
                last_d_s = d_s;
                if ((double)(t + d_s - s) >= len_s)
                    break;
                /* Next start: the end of this track (+ a few seconds), sometimes a skip, sometimes
                 * a pause that keeps start-to-start under the session gap. */
                int64_t step = d_s + (int64_t)rng_below(r, 4);
                double v = rng_unif(r);
                if (v < 0.08)
                    step = (int64_t)((double)d_s * (0.1 + 0.5 * rng_unif(r))) + 1;
                else if (v < 0.11 && d_s < 1500)
                    step += (int64_t)(rng_unif(r) * (double)(1500 - d_s));
                t += step;
            }
            tot->sessions++;
            if (truth) {
                /* The length as the session rule measures it: the last track's catalog duration
                 * counts only when the catalog knows it. */
                uint32_t known_ms = cat->track_flags[track] & (TRACK_MISSING | TRACK_ZERO_DURATION)
                                        ? 0
                                        : cat->track_duration_ms[track];
                fprintf(truth,
                        "%s\t%lld\t%.3f\t%.3f\t%.6f\t%.6f\t%.6f\t%.6f\t%.6f\t%.6f\t%.4f\t%.4f\t"
                        "%.4f\t%.4f\t%d\n",
                        uid, (long long)s, (double)(t - s) + known_ms / 1000.0, len_s, level,
                        hour_eff, u->mu, user_types[u->type].base_log_s, prev_mood, mood, u->phi,
                        u->mood_sd, u->noise_sd, u->p_tail, tail);
            }
            prev_end_s = t + last_d_s;
            allowed_s = prev_end_s + GEN_SESSION_GAP_S + 1 + (int64_t)rng_below(r, 600);
        }
    }
    return 0;
}

/* Formats "YYYY-MM-DDTHH:MM:SSZ" quickly (the date part is cached per day). */
typedef struct {
    int64_t day;
    char date[11];
} iso_cache_t;

static void format_ts(iso_cache_t *c, int64_t ts_s, char out[21])
{
    int64_t day = ts_s / 86400, sod = ts_s % 86400;
    if (day != c->day) {
        char full[32];
        st_time_format_iso8601(day * 86400000, full, sizeof full);
        memcpy(c->date, full, 10);
        c->date[10] = '\0';
        c->day = day;
    }
    int hms[3] = {(int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60)};
    memcpy(out, c->date, 10);
    out[10] = 'T';
    for (int i = 0; i < 3; i++) {
        out[11 + 3 * i] = (char)('0' + hms[i] / 10);
        out[12 + 3 * i] = (char)('0' + hms[i] % 10);
        out[13 + 3 * i] = i < 2 ? ':' : 'Z';
    }
    out[20] = '\0';
}

/* The malformed listen lines to plant: (user, kind); positions are drawn when the user is written.
 */
static const st_lastfm_reason_t planted_kinds[] = {ST_LASTFM_FIELD_COUNT, ST_LASTFM_BAD_TIMESTAMP,
                                                   ST_LASTFM_INVALID_UTF8, ST_LASTFM_TOO_LONG,
                                                   ST_LASTFM_EMPTY_USER};
#define N_PLANTED_KINDS (sizeof planted_kinds / sizeof planted_kinds[0])

static void write_bad_listen(FILE *fp, st_lastfm_reason_t kind, uint32_t variant,
                             const char *user_id, const char *ts, const char *artist,
                             const char *track)
{
    switch (kind) {
    case ST_LASTFM_FIELD_COUNT:
        if (variant % 2)
            fprintf(fp, "%s\t%s\t\t%s\t\t%s\tLive\n", user_id, ts, artist, track);
        else
            fprintf(fp, "%s\t%s\t%s\t%s\n", user_id, ts, artist, track);
        break;
    case ST_LASTFM_BAD_TIMESTAMP: {
        static const char *const bad_ts[] = {"2009-02-30T12:00:00Z", "2008-13-01T00:00:00Z",
                                             "05/04/2009 23:08", "1999-12-31T23:59:59Z"};
        fprintf(fp, "%s\t%s\t\t%s\t\t%s\n", user_id, bad_ts[variant % 4], artist, track);
        break;
    }
    case ST_LASTFM_INVALID_UTF8:
        fprintf(fp, "%s\t%s\t\t%s\t\t%s \xff\xfe%s\n", user_id, ts, artist, track,
                variant % 2 ? "\xc3" : "\xed\xa0\x80");
        break;
    case ST_LASTFM_TOO_LONG:
        fprintf(fp, "%s\t%s\t\t%s\t\t", user_id, ts, artist);
        for (int i = 0; i < 120; i++)
            fputs("la la la ", fp);
        fputc('\n', fp);
        break;
    case ST_LASTFM_EMPTY_USER:
        fprintf(fp, "\t%s\t\t%s\t\t%s\n", ts, artist, track);
        break;
    default:
        break;
    }
}

typedef struct {
    uint32_t users, days;
    uint64_t seed;
    const char *out;
    FILE *truth; /* GEN_TRUTH_FILE, with --truth */
} gen_opts_t;

/* Simulates and writes every user; records each user's first active day and country for the
 * profiles. */
static int write_listens(const gen_opts_t *o, const catalog_t *cat, FILE *fp, gen_totals_t *tot,
                         uint32_t *first_day, int *country)
{
    rng_t plan;
    rng_seed(&plan, o->seed, 3, 0);
    uint32_t per_kind = 1 + o->users / 100;
    uint32_t n_planted = (uint32_t)N_PLANTED_KINDS * per_kind;
    uint32_t *plan_user = malloc(n_planted * sizeof *plan_user);
    listen_vec_t lv = {0};
    user_t *u = malloc(sizeof *u);
    if (!plan_user || !u) {
        free(plan_user);
        free(u);
        return -1;
    }
    for (uint32_t i = 0; i < n_planted; i++)
        plan_user[i] = rng_below(&plan, o->users);
    int64_t t0_s = ((int64_t)GEN_END_DAY - o->days) * 86400;
    iso_cache_t iso = {-1, {0}};
    char ts[21], amb[37], tmb[37], uid[32];
    int rc = 0;
    for (uint32_t ui = 0; ui < o->users && rc == 0; ui++) {
        rng_t r;
        rng_seed(&r, o->seed, 2, ui);
        user_init(u, &r, cat, o->days);
        first_day[ui] = u->start_day;
        country[ui] = u->country;
        snprintf(uid, sizeof uid, "user_%06u", ui + 1);
        if (simulate_user(u, &r, cat, t0_s, &lv, tot, o->truth, uid) != 0) {
            rc = -1;
            break;
        }
        /* Where this user's planted bad lines go (before output row pos, newest first). */
        uint32_t bad_pos[64], bad_kind[64], n_bad = 0;
        for (uint32_t i = 0; i < n_planted && n_bad < 64; i++) {
            if (plan_user[i] != ui)
                continue;
            bad_kind[n_bad] = i / per_kind;
            bad_pos[n_bad] = lv.n ? rng_below(&r, (uint32_t)lv.n) : 0;
            n_bad++;
        }
        for (size_t k = lv.n; k-- > 0;) {
            const gen_listen_t *l = &lv.v[k];
            uint32_t t = l->track, a = cat->track_artist[t];
            format_ts(&iso, l->ts_s, ts);
            if (cat->artist_has_mbid[a])
                format_mbid(amb, o->seed, 1, a);
            else
                amb[0] = '\0';
            if (cat->track_flags[t] & TRACK_HAS_MBID)
                format_mbid(tmb, o->seed, 2, t);
            else
                tmb[0] = '\0';
            const char *an = cat->names.data + cat->artist_name[a];
            const char *tn = cat->names.data + cat->track_name[t];
            for (uint32_t b = 0; b < n_bad; b++) {
                if (bad_pos[b] != lv.n - 1 - k)
                    continue;
                st_lastfm_reason_t kind = planted_kinds[bad_kind[b]];
                write_bad_listen(fp, kind, bad_kind[b] + b + ui, uid, ts, an, tn);
                tot->bad_by_reason[kind]++;
                tot->bad_listen_lines++;
            }
            for (int copy = 0; copy < (l->dup ? 2 : 1); copy++)
                fprintf(fp, "%s\t%s\t%s\t%s\t%s\t%s\n", uid, ts, amb, an, tmb, tn);
        }
        if (lv.n == 0) {
            /* A user with no listens still gets the planted lines (rare, tiny sizes). */
            for (uint32_t b = 0; b < n_bad; b++) {
                st_lastfm_reason_t kind = planted_kinds[bad_kind[b]];
                write_bad_listen(fp, kind, b, uid, "2009-01-01T00:00:00Z", "Artist", "Track");
                tot->bad_by_reason[kind]++;
                tot->bad_listen_lines++;
            }
        }
    }
    free(lv.v);
    free(u);
    free(plan_user);
    return rc;
}

static void write_profiles(const gen_opts_t *o, FILE *fp, const uint32_t *first_day,
                           const int *country, gen_totals_t *tot)
{
    fputs("#id\tgender\tage\tcountry\tregistered\n", fp);
    for (uint32_t ui = 0; ui < o->users; ui++) {
        rng_t r;
        rng_seed(&r, o->seed, 4, ui);
        double g = rng_unif(&r);
        const char *gender = g < 0.45 ? "m" : g < 0.8 ? "f" : "";
        char age[16] = "";
        if (rng_unif(&r) < 0.6)
            snprintf(age, sizeof age, "%d", 16 + (int)(rng_unif(&r) * rng_unif(&r) * 45));
        char reg[24] = "";
        if (rng_unif(&r) < 0.99) {
            int64_t day =
                (int64_t)GEN_END_DAY - o->days + first_day[ui] - (int64_t)(rng_unif(&r) * 1200);
            char iso[32];
            st_time_format_iso8601(day * 86400000, iso, sizeof iso);
            int mon = (iso[5] - '0') * 10 + (iso[6] - '0');
            int dd = (iso[8] - '0') * 10 + (iso[9] - '0');
            snprintf(reg, sizeof reg, "%s %d, %.4s", month_abbr[mon - 1], dd, iso);
        }
        fprintf(fp, "user_%06u\t%s\t%s\t%s\t%s\n", ui + 1, gender, age,
                country[ui] >= 0 ? countries[country[ui]].name : "", reg);
    }
    /* Planted malformed profile lines, for ids that have no listens. */
    fprintf(fp, "user_%06u\tm\t27\tGermany\n", o->users + 1);
    fprintf(fp, "user_%06u\tx\t27\tGermany\tAug 13, 2006\n", o->users + 2);
    fprintf(fp, "user_%06u\tf\t\tPeru\tFoo 31, 2006\n", o->users + 3);
    tot->bad_profile_lines = 3;
}

static void write_json_string(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(fp, "\\%c", c);
        else if (c < 0x20)
            fprintf(fp, "\\u%04x", c);
        else
            fputc(c, fp);
    }
    fputc('"', fp);
}

static void write_catalog(const catalog_t *cat, FILE *fp, gen_totals_t *tot)
{
    for (uint32_t t = 0; t < cat->n_tracks; t++) {
        uint8_t f = cat->track_flags[t];
        if (f & TRACK_MISSING)
            continue;
        uint32_t a = cat->track_artist[t];
        fputs("{\"artist\":", fp);
        write_json_string(fp, cat->names.data + cat->artist_name[a]);
        fputs(",\"track\":", fp);
        write_json_string(fp, cat->names.data + cat->track_name[t]);
        fprintf(fp, ",\"duration_ms\":%u,\"tags\":[",
                f & TRACK_ZERO_DURATION ? 0u : cat->track_duration_ms[t]);
        if (!(f & TRACK_NO_TAGS)) {
            bool first = true;
            for (int i = 0; i < 3; i++) {
                uint8_t tag = cat->artist_tags[a][i];
                bool seen = false;
                for (int j = 0; j < i; j++)
                    seen |= cat->artist_tags[a][j] == tag;
                if (tag == 0xff || seen)
                    continue;
                fprintf(fp, "%s\"%s\"", first ? "" : ",", tag_names[tag]);
                first = false;
            }
        }
        fputs("]}\n", fp);
        tot->catalog_tracks++;
    }
}

static FILE *open_out(const char *dir, const char *name, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", dir, name);
    FILE *fp = fopen(path, "wb");
    if (fp)
        setvbuf(fp, NULL, _IOFBF, WRITE_BUF_BYTES);
    else
        fprintf(stderr, "stint gen: cannot create %s: %s\n", path, strerror(errno));
    return fp;
}

static int close_out(FILE *fp, const char *path, gen_totals_t *tot)
{
    long size = ftell(fp);
    if (ferror(fp) | fclose(fp)) {
        fprintf(stderr, "stint gen: write error on %s: %s\n", path, strerror(errno));
        return -1;
    }
    tot->bytes += size > 0 ? (uint64_t)size : 0;
    return 0;
}

static void usage(FILE *fp)
{
    fputs("usage: stint gen --out DIR [--users N] [--days D] [--seed S] [--truth]\n"
          "Writes a look-alike Last.fm 1K dataset into DIR:\n"
          "  " ST_LASTFM_LISTENS_FILE ", " ST_LASTFM_PROFILES_FILE ",\n"
          "  " GEN_CATALOG_FILE " (track catalog) and " GEN_SUMMARY_FILE " (what was planted).\n"
          "  --users N   users (default 200, 1..100000)\n"
          "  --days D    days of history ending 2009-05-05 (default 120, 1..3000)\n"
          "  --seed S    random seed (default 1); the same seed gives byte-identical files\n"
          "  --out DIR   output directory (created if missing)\n"
          "  --truth     also write " GEN_TRUTH_FILE ": per session what was drawn for it (its\n"
          "              log-length level, the mood before and after, the user's parameters),\n"
          "              for tools/oracle-ceiling (the other files are the same with or\n"
          "              without it)\n"
          "--users 1000 --days 1500 is about the real dataset's size (~19 M listens, ~2.5 GB).\n",
          fp);
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int cmd_gen(int argc, char **argv)
{
    gen_opts_t o = {200, 120, 1, NULL, NULL};
    bool want_truth = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--truth")) {
            want_truth = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "stint gen: %s needs a value (or is unknown)\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        uint64_t x;
        if (!strcmp(a, "--users") && parse_u64(v, 1, 100000, &x) == 0) {
            o.users = (uint32_t)x;
        } else if (!strcmp(a, "--days") && parse_u64(v, 1, 3000, &x) == 0) {
            o.days = (uint32_t)x;
        } else if (!strcmp(a, "--seed") && parse_u64(v, 0, UINT64_MAX, &x) == 0) {
            o.seed = x;
        } else if (!strcmp(a, "--out")) {
            o.out = v;
        } else {
            fprintf(stderr, "stint gen: bad option or value: %s %s\n", a, v);
            usage(stderr);
            return 2;
        }
    }
    if (!o.out) {
        fprintf(stderr, "stint gen: --out is required\n");
        usage(stderr);
        return 2;
    }
    if (mkdir(o.out, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "stint gen: cannot create %s: %s\n", o.out, strerror(errno));
        return 1;
    }

    int64_t t_start_ms = st_time_mono_ms();
    catalog_t cat;
    gen_totals_t tot = {0};
    uint32_t *first_day = calloc(o.users, sizeof *first_day);
    int *country = calloc(o.users, sizeof *country);
    char path[4096];
    int rc = 1;
    memset(&cat, 0, sizeof cat);
    if (!first_day || !country || catalog_build(&cat, o.users, o.seed) != 0) {
        fprintf(stderr, "stint gen: out of memory\n");
        goto done;
    }
    char truth_path[4096];
    if (want_truth) {
        if (!(o.truth = open_out(o.out, GEN_TRUTH_FILE, truth_path, sizeof truth_path)))
            goto done;
        fputs("user\tsession_start\tlength_s\ttarget_s\tlevel\thour_effect\tmu\ttype_mu\t"
              "prev_mood\tmood\tphi\tmood_sd\tnoise_sd\tp_tail\ttail\n",
              o.truth);
    }
    FILE *fp = open_out(o.out, ST_LASTFM_LISTENS_FILE, path, sizeof path);
    if (!fp)
        goto done;
    if (write_listens(&o, &cat, fp, &tot, first_day, country) != 0) {
        fprintf(stderr, "stint gen: out of memory\n");
        fclose(fp);
        goto done;
    }
    if (close_out(fp, path, &tot) != 0)
        goto done;
    if (o.truth) {
        FILE *t = o.truth;
        o.truth = NULL;
        if (close_out(t, truth_path, &tot) != 0)
            goto done;
    }
    if (!(fp = open_out(o.out, ST_LASTFM_PROFILES_FILE, path, sizeof path)))
        goto done;
    write_profiles(&o, fp, first_day, country, &tot);
    if (close_out(fp, path, &tot) != 0)
        goto done;
    if (!(fp = open_out(o.out, GEN_CATALOG_FILE, path, sizeof path)))
        goto done;
    write_catalog(&cat, fp, &tot);
    if (close_out(fp, path, &tot) != 0)
        goto done;
    if (!(fp = open_out(o.out, GEN_SUMMARY_FILE, path, sizeof path)))
        goto done;
    fprintf(fp,
            "{\"users\":%u,\"days\":%u,\"seed\":%" PRIu64 ",\"listens\":%" PRIu64
            ",\"duplicates\":%" PRIu64 ",\"sessions\":%" PRIu64 ",\"unknown_duration\":%" PRIu64
            ",\"malformed_listen_lines\":%" PRIu64 ",\"malformed_listen_by_reason\":{",
            o.users, o.days, o.seed, tot.listens, tot.duplicates, tot.sessions,
            tot.unknown_duration, tot.bad_listen_lines);
    for (size_t k = 0; k < N_PLANTED_KINDS; k++)
        fprintf(fp, "%s\"%s\":%" PRIu64, k ? "," : "", st_lastfm_reason_name(planted_kinds[k]),
                tot.bad_by_reason[planted_kinds[k]]);
    fprintf(fp,
            "},\"malformed_profile_lines\":%" PRIu64 ",\"tracks\":%u,\"catalog_tracks\":%" PRIu64
            "}\n",
            tot.bad_profile_lines, cat.n_tracks, tot.catalog_tracks);
    if (close_out(fp, path, &tot) != 0)
        goto done;
    printf("gen: users=%u days=%u seed=%" PRIu64 " listens=%" PRIu64 " sessions=%" PRIu64
           " duplicates=%" PRIu64 " malformed=%" PRIu64 " unknown_duration_pct=%.1f bytes=%" PRIu64
           " elapsed_s=%.1f out=%s\n",
           o.users, o.days, o.seed, tot.listens, tot.sessions, tot.duplicates,
           tot.bad_listen_lines + tot.bad_profile_lines,
           tot.listens ? 100.0 * (double)tot.unknown_duration / (double)tot.listens : 0.0,
           tot.bytes, (double)(st_time_mono_ms() - t_start_ms) / 1000.0, o.out);
    rc = 0;
done:
    if (o.truth)
        fclose(o.truth);
    catalog_free(&cat);
    free(first_day);
    free(country);
    return rc;
}
