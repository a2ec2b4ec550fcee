/* st_rng.h - the seeded pseudo-random generator of the ML code (xoshiro256** seeded through
 * splitmix64): identical streams on every platform, never rand(). */
#ifndef ST_RNG_H
#define ST_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} st_rng_t;

/* Seeds rng from a 64-bit seed (any value, 0 included). */
void st_rng_seed(st_rng_t *rng, uint64_t seed);
/* The next 64 random bits. */
uint64_t st_rng_next(st_rng_t *rng);
/* Uniform double in [0, 1) with 53 random bits. */
double st_rng_uniform(st_rng_t *rng);
/* Uniform integer in [0, n); n > 0 (unbiased, by rejection). */
uint64_t st_rng_below(st_rng_t *rng, uint64_t n);
/* Standard normal deviate (Box-Muller, no cached second value so the stream stays simple). */
double st_rng_normal(st_rng_t *rng);
/* Fisher-Yates shuffle of n ints in place. */
void st_rng_shuffle(st_rng_t *rng, int *v, size_t n);

#endif
