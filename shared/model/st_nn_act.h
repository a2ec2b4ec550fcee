/* st_nn_act.h - private to st_nn.c and its unit test (tests/unit/test_ml_nn.c): the gate
 * nonlinearities, sixteen lanes at a time. exp by range reduction to [-ln2/2, ln2/2] and Cephes'
 * degree-6 polynomial (relative error < 2 ulp); libm's expf and a double tanh per element were over
 * a third of the training time. Inputs are clamped to where the results are normal floats; a NaN
 * stays NaN. test_ml_nn bounds the errors against double precision over [-100, 100], the clamp
 * edges, tiny and denormal inputs and NaN: exp within 1.2e-7 relative, sigmoid and tanh within
 * 1.2e-7 absolute and 2e-7 relative (measured: 7.9e-8 relative, 8.9e-8 and 7.5e-8 absolute). */
#ifndef ST_NN_ACT_H
#define ST_NN_ACT_H

#include <stdint.h>
#include <string.h>

/* Sixteen floats at a time through GCC / clang vector extensions: GCC's -O2 leaves the scalar loop
 * alone (its selects count as control flow), so the lanes are written out. One AVX-512 register,
 * two AVX2 ones, four SSE2 or NEON ones, whichever the caller is compiled for (st_nn.c compiles
 * its gate loops for all three, ST_NN_HOT). The scalar forms below are lane 0 of the same code:
 * one set of results. */
#define ST_NN__LANES 16
/* Always inlined, so each clone computes in its own registers: no call passes a vector, and GCC's
 * note that 64-byte vector arguments change the ABI without AVX-512 concerns nothing here. */
#define ST_NN__INLINE static inline __attribute__((always_inline))
#pragma GCC diagnostic ignored "-Wpsabi" /* GCC reports it at the end of the file: not popped */
typedef float st_nn__vf __attribute__((vector_size(4 * ST_NN__LANES)));
typedef int32_t st_nn__vi __attribute__((vector_size(4 * ST_NN__LANES)));
typedef uint32_t st_nn__vu __attribute__((vector_size(4 * ST_NN__LANES)));

/* m ? a : b per lane; m is a comparison's result (all ones or zero). */
ST_NN__INLINE st_nn__vf st_nn__vsel(st_nn__vi m, st_nn__vf a, st_nn__vf b)
{
    return (st_nn__vf)((m & (st_nn__vi)a) | (~m & (st_nn__vi)b));
}

ST_NN__INLINE st_nn__vf st_nn__vsplat(float x)
{
    st_nn__vf zero = {0};
    return zero + x;
}

ST_NN__INLINE st_nn__vf st_nn__vexp(st_nn__vf x)
{
    const st_nn__vf magic = st_nn__vsplat(12582912.0f);    /* 1.5 * 2^23: adding it rounds */
    x = st_nn__vsel(x < -87.0f, st_nn__vsplat(-87.0f), x); /* a NaN passes both */
    x = st_nn__vsel(x > 88.0f, st_nn__vsplat(88.0f), x);
    st_nn__vf k = x * 1.44269504088896341f + magic;
    st_nn__vu kb = (st_nn__vu)k;
    k -= magic;
    st_nn__vf r = x - k * 0.693359375f - k * -2.12194440e-4f;
    st_nn__vf y = st_nn__vsplat(1.9875691500e-4f);
    y = y * r + 1.3981999507e-3f;
    y = y * r + 8.3334519073e-3f;
    y = y * r + 4.1665795894e-2f;
    y = y * r + 1.6666665459e-1f;
    y = y * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.0f;
    st_nn__vu eb = (kb - 0x4B400000u + 127u) << 23; /* 2^k */
    return y * (st_nn__vf)eb;
}

ST_NN__INLINE st_nn__vf st_nn__vsigmoid(st_nn__vf x)
{
    return 1.0f / (1.0f + st_nn__vexp(-x));
}

/* Cephes' tanhf polynomial below |x| 0.625, 1 - 2 / (e^2|x| + 1) above (saturated from 10, where
 * it rounds to 1); a NaN takes the polynomial branch and stays NaN. */
ST_NN__INLINE st_nn__vf st_nn__vtanh(st_nn__vf x)
{
    const st_nn__vf zero = st_nn__vsplat(0.0f);
    st_nn__vi neg = x < zero;
    st_nn__vf ax = st_nn__vsel(neg, -x, x);
    st_nn__vf z = x * x;
    st_nn__vf small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
                        1.33314422036e-1f) *
                           z -
                       3.33332819422e-1f) *
                          z * x +
                      x;
    st_nn__vf e = st_nn__vexp(2.0f * st_nn__vsel(ax < 10.0f, ax, st_nn__vsplat(10.0f)));
    st_nn__vf big = 1.0f - 2.0f / (e + 1.0f);
    big = st_nn__vsel(neg, -big, big);
    return st_nn__vsel(ax >= 0.625f, big, small);
}

static inline float st_nn__exp(float x)
{
    return st_nn__vexp(st_nn__vsplat(x))[0];
}

static inline float st_nn__sigmoid(float x)
{
    return st_nn__vsigmoid(st_nn__vsplat(x))[0];
}

static inline float st_nn__tanh(float x)
{
    return st_nn__vtanh(st_nn__vsplat(x))[0];
}

/* In-place sigmoid / tanh of v[0..n), ST_NN__LANES at a time; the rest through a padded vector. */
#define ST_NN__ACT_VEC(name, fn)                                                                   \
    ST_NN__INLINE void name(float *v, int n)                                                       \
    {                                                                                              \
        int j = 0;                                                                                 \
        st_nn__vf x;                                                                               \
        for (; j + ST_NN__LANES <= n; j += ST_NN__LANES) {                                         \
            memcpy(&x, v + j, sizeof x);                                                           \
            x = fn(x);                                                                             \
            memcpy(v + j, &x, sizeof x);                                                           \
        }                                                                                          \
        if (j < n) {                                                                               \
            x = st_nn__vsplat(0.0f);                                                               \
            memcpy(&x, v + j, (size_t)(n - j) * sizeof(float));                                    \
            x = fn(x);                                                                             \
            memcpy(v + j, &x, (size_t)(n - j) * sizeof(float));                                    \
        }                                                                                          \
    }
ST_NN__ACT_VEC(st_nn__sigmoid_vec, st_nn__vsigmoid)
ST_NN__ACT_VEC(st_nn__tanh_vec, st_nn__vtanh)
#undef ST_NN__ACT_VEC

#endif
