/* st_rng.c - xoshiro256** with splitmix64 seeding (public-domain algorithms by Vigna and
 * Blackman), plus uniform, bounded, normal draws and a shuffle. */
#include "st_rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void st_rng_seed(st_rng_t *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
}

uint64_t st_rng_next(st_rng_t *rng)
{
    uint64_t *s = rng->s;
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

double st_rng_uniform(st_rng_t *rng)
{
    return (double)(st_rng_next(rng) >> 11) * 0x1.0p-53;
}

uint64_t st_rng_below(st_rng_t *rng, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t r;
    do {
        r = st_rng_next(rng);
    } while (r >= limit);
    return r % n;
}

double st_rng_normal(st_rng_t *rng)
{
    double u1 = st_rng_uniform(rng);
    double u2 = st_rng_uniform(rng);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void st_rng_shuffle(st_rng_t *rng, int *v, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)st_rng_below(rng, i);
        int tmp = v[i - 1];
        v[i - 1] = v[j];
        v[j] = tmp;
    }
}
