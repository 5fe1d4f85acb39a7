/* bench/ulp_scan.c: the accuracy of ops/vecmath.h's array functions (libmvec's vector code
 * in the library's build) against scalar glibc libm: for the f32 functions over every one
 * of the 2^32 floats, for the f64 ones over 2^26 random doubles (any bit pattern, every
 * binade from 2^-60 to 2^12, and near 1). Prints per function the largest distance in ulps
 * (NaN against NaN counts 0, NaN against a number as a mismatch) and where it occurs, and the
 * count of results whose bits differ from libm's. Built by
 *     make B=build/hvec build/hvec/ulp_scan
 * (the Makefile line is next to bench's); runs in a few minutes on 2 threads. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ops/vecmath.h"

enum { NFN = 5, CHUNK = 1 << 16 };
static const char *const names[NFN] = {"tanh", "exp", "expm1", "log", "log1p"};
static void (*const vf32[NFN])(const float *, float *, int64_t) = {
    tg_vm_tanh_f32, tg_vm_exp_f32, tg_vm_expm1_f32, tg_vm_log_f32, tg_vm_log1p_f32};
static void (*const vf64[NFN])(const double *, double *, int64_t) = {
    tg_vm_tanh_f64, tg_vm_exp_f64, tg_vm_expm1_f64, tg_vm_log_f64, tg_vm_log1p_f64};
static float (*const rf32[NFN])(float) = {tanhf, expf, expm1f, logf, log1pf};
static double (*const rf64[NFN])(double) = {tanh, exp, expm1, log, log1p};

static uint32_t bits32(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static uint64_t bits64(double f)
{
    uint64_t u;
    memcpy(&u, &f, 8);
    return u;
}
static int64_t ord32(float f)
{
    int32_t i;
    memcpy(&i, &f, 4);
    return i < 0 ? (int64_t)INT32_MIN - i : i;
}
static int64_t ord64(double f)
{
    int64_t i;
    memcpy(&i, &f, 8);
    return i < 0 ? INT64_MIN - i : i;
}

typedef struct worst {
    int64_t ulps, differ, nan_mismatch;
    double at;
} worst;

static void note(worst *w, int64_t d, double at)
{
    if (d > w->ulps) w->ulps = d, w->at = at;
}

static worst scan32(int f)
{
    worst all = {0, 0, 0, 0};
#pragma omp parallel
    {
        worst w = {0, 0, 0, 0};
        float *x = malloc(CHUNK * sizeof *x), *y = malloc(CHUNK * sizeof *y);
#pragma omp for schedule(dynamic, 16)
        for (int64_t c = 0; c < (INT64_C(1) << 32) / CHUNK; c++) {
            for (int64_t i = 0; i < CHUNK; i++) {
                uint32_t u = (uint32_t)(c * CHUNK + i);
                memcpy(&x[i], &u, 4);
            }
            vf32[f](x, y, CHUNK);
            for (int64_t i = 0; i < CHUNK; i++) {
                float r = rf32[f](x[i]);
                if (bits32(r) != bits32(y[i]) && !(isnan(r) && isnan(y[i]))) w.differ++;
                if (isnan(r) || isnan(y[i])) {
                    w.nan_mismatch += isnan(r) != isnan(y[i]);
                    continue;
                }
                int64_t d = ord32(r) - ord32(y[i]);
                note(&w, d < 0 ? -d : d, (double)x[i]);
            }
        }
#pragma omp critical
        {
            all.differ += w.differ, all.nan_mismatch += w.nan_mismatch;
            if (w.ulps > all.ulps) all.ulps = w.ulps, all.at = w.at;
        }
        free(x), free(y);
    }
    return all;
}

static worst scan64(int f)
{
    worst all = {0, 0, 0, 0};
#pragma omp parallel
    {
        worst w = {0, 0, 0, 0};
        double *x = malloc(CHUNK * sizeof *x), *y = malloc(CHUNK * sizeof *y);
#pragma omp for schedule(dynamic, 4)
        for (int64_t c = 0; c < (INT64_C(1) << 26) / CHUNK; c++) {
            uint64_t s = 0x9e3779b97f4a7c15u ^ (uint64_t)c * 0xbf58476d1ce4e5b9u;
            for (int64_t i = 0; i < CHUNK; i++) {
                s ^= s << 13, s ^= s >> 7, s ^= s << 17;
                double m = (double)(s >> 11) / 9007199254740992.0;
                if (i % 3 == 0) memcpy(&x[i], &s, 8);
                else if (i % 3 == 1)
                    x[i] = (s & 1 ? -1 : 1) * ldexp(1 + m, (int)(s >> 1 & 127) % 73 - 60);
                else x[i] = 1 + (m - 0.5) / 512;
            }
            vf64[f](x, y, CHUNK);
            for (int64_t i = 0; i < CHUNK; i++) {
                double r = rf64[f](x[i]);
                if (bits64(r) != bits64(y[i]) && !(isnan(r) && isnan(y[i]))) w.differ++;
                if (isnan(r) || isnan(y[i])) {
                    w.nan_mismatch += isnan(r) != isnan(y[i]);
                    continue;
                }
                if (isinf(r) || isinf(y[i])) {
                    if (r != y[i]) w.nan_mismatch++;
                    continue;
                }
                int64_t d = ord64(r) - ord64(y[i]);
                note(&w, d < 0 ? -d : d, x[i]);
            }
        }
#pragma omp critical
        {
            all.differ += w.differ, all.nan_mismatch += w.nan_mismatch;
            if (w.ulps > all.ulps) all.ulps = w.ulps, all.at = w.at;
        }
        free(x), free(y);
    }
    return all;
}

int main(void)
{
    printf("vector path: %s\n", tg_vm_vector() ? "libmvec AVX2" : "scalar libm");
    printf("%-6s %-4s %10s %14s %22s %12s\n", "fn", "type", "max ulps", "differing", "at",
           "NaN/inf mis");
    for (int f = 0; f < NFN; f++) {
        worst w = scan32(f);
        printf("%-6s %-4s %10" PRId64 " %14" PRId64 " %22a %12" PRId64 "\n", names[f], "f32",
               w.ulps, w.differ, w.at, w.nan_mismatch);
        fflush(stdout);
    }
    for (int f = 0; f < NFN; f++) {
        worst w = scan64(f);
        printf("%-6s %-4s %10" PRId64 " %14" PRId64 " %22a %12" PRId64 "\n", names[f], "f64",
               w.ulps, w.differ, w.at, w.nan_mismatch);
        fflush(stdout);
    }
    return 0;
}
