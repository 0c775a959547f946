/*
 * Vectorisable float32 exp, sigmoid and tanh in plain C99 (no libm calls, no branches in
 * the element functions), for the float core only: GCC/Clang vectorise loops over them at
 * -O3 with the baseline instruction set. The double core keeps libm's exp/tanh, because
 * float64 results must match the NumPy reference to ~1e-12.
 *
 * Accuracy (checked against double-precision libm over [-100, 100] by tests/test_fastmath):
 *   srnn_expf     relative error < 3e-7 on [-87, 88]; clamped outside (no inf, no denormals)
 *   srnn_sigmoidf absolute error < 2e-7
 *   srnn_tanhf    absolute error < 3e-7, relative error < 1e-6
 * Must be compiled without -ffast-math: the rounding trick relies on IEEE addition.
 */
#ifndef STREAMRNN_FASTMATH_H
#define STREAMRNN_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float srnn_bits_to_float(int32_t i)
{
    float f;
    memcpy(&f, &i, sizeof f);
    return f;
}

static inline int32_t srnn_float_to_bits(float f)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i;
}

/* exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 (Cody-Waite split), |r| <= 0.347;
 * exp(r) by its Taylor polynomial of degree 7 (truncation error < 6e-9). */
static inline float srnn_expf(float x)
{
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float t, n, r, p;
    uint32_t ni;
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    t = x * 1.44269504088896341f + shifter;
    n = t - shifter;
    /* n as an integer from the bits of t. Unsigned arithmetic: for finite x, n + 127 is in
     * [1, 254] and this is the float 2^n; for a NaN x (which the clamps above let through)
     * the bits are arbitrary and a signed shift would be undefined behaviour. The result is
     * NaN then anyway (p is NaN). */
    ni = (uint32_t)srnn_float_to_bits(t) - (uint32_t)srnn_float_to_bits(shifter);
    r = x - n * 0.693145751953125f;      /* ln 2, high part (exact in float) */
    r = r - n * 1.428606765330187e-06f;  /* ln 2, low part */
    p = 1.0f / 5040.0f + r * (1.0f / 40320.0f);
    p = 1.0f / 720.0f + r * p;
    p = 1.0f / 120.0f + r * p;
    p = 1.0f / 24.0f + r * p;
    p = 1.0f / 6.0f + r * p;
    p = 0.5f + r * p;
    p = 1.0f + r * p;
    p = 1.0f + r * p;
    return p * srnn_bits_to_float((int32_t)(((ni + 127u) << 23) & 0x7fffffffu));
}

/* 1 / (1 + exp(-x)) without overflow: e = exp(-|x|); x >= 0: 1/(1+e), else e/(1+e). */
static inline float srnn_sigmoidf(float x)
{
    float ax = x < 0 ? -x : x;
    float e = srnn_expf(-ax);
    float d = 1.0f / (1.0f + e);
    return x >= 0 ? d : e * d;
}

/* tanh: |x| < 0.25 by its odd Taylor polynomial to x^9 (error < 3e-9 relative);
 * otherwise sign(x) * (1 - 2 / (exp(2|x|) + 1)). */
static inline float srnn_tanhf(float x)
{
    float ax = x < 0 ? -x : x;
    float x2 = x * x;
    float small = x * (1.0f + x2 * (-1.0f / 3.0f + x2 * (2.0f / 15.0f + x2 * (-17.0f / 315.0f
                       + x2 * (62.0f / 2835.0f)))));
    float big = 1.0f - 2.0f / (srnn_expf(2.0f * ax) + 1.0f);
    big = x < 0 ? -big : big;
    return ax < 0.25f ? small : big;
}

/* The double sigmoid, exact to libm's exp: x >= 0: 1/(1+exp(-x)), else exp(x)/(1+exp(x)).
 * NumPy: reference._sigmoid. */
static inline double srnn_sigmoid_f64(double x)
{
    if (x >= 0) {
        return 1.0 / (1.0 + exp(-x));
    } else {
        double e = exp(x);
        return e / (1.0 + e);
    }
}

#endif
