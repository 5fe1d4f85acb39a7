/* bench/alpha_beta.c: MPI_Allreduce (sum, f32) times over message sizes, and the alpha-beta
 * model of a ring allreduce fitted to them:
 *
 *     T(n) = 2(p-1)·alpha + 2(p-1)/p · n / B
 *
 * with n the message in bytes, p the rank count, alpha the latency of one step and B the
 * link bandwidth (beta = 1/B, printed as a bandwidth in GB/s = 1e9 bytes/s). Plain MPI, no
 * tapegrad (docs/distributed-scaling.md). Build and run:
 *
 *     mpicc -O2 -std=c11 bench/alpha_beta.c -o build/alpha_beta -lm
 *     mpirun --allow-run-as-root --oversubscribe -np 2 build/alpha_beta --json ab.json
 *
 * Options: --min BYTES and --max BYTES (powers of 2, default 4 and 64 MiB), --step 2|4 (the
 * factor between sizes, default 2), --reps N (repetitions per size, default 15),
 * --fit-min BYTES and --fit-max BYTES (the sizes the fit uses, default all), --json FILE.
 * The sizes are interleaved: each repetition runs every size once, so that a change of the
 * machine's speed affects all sizes alike. One repetition is k back-to-back allreduces
 * between barriers, k chosen so a repetition lasts about 2 ms; its time is the slowest
 * rank's over k. Each size's figure is the median of the repetitions.
 *
 * The fit is the least-squares line T = A + S·n through the chosen points, weighted by 1/T²
 * (it minimises relative errors, so small messages count as much as large ones); then
 * alpha = A / (2(p-1)) and B = 2(p-1) / (p·S). It is made of the medians ("fit") and of
 * the minima ("fit_of_minima"). Which algorithm Open MPI runs is its choice; force one with
 * --mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm K (4 = ring);
 * the program records the forced algorithm from the environment mpirun sets.
 *
 * Exit status: 0; 2 for bad options or a single rank (message on rank 0, nothing run); 1
 * when the sum at the largest size is wrong, the fit fails or FILE cannot be written. The
 * JSON goes through FILE.tmp and a rename, and only from a run that succeeded. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SIZES 64
#define MAX_REPS 1000
#define TARGET_S 2e-3 /* wanted length of one repetition */

typedef struct {
    int64_t min, max, fit_min, fit_max;
    int step, reps;
    const char *json;
} opts;

static int rank, nranks;

/* Prints on rank 0 only. */
#define SAY(...)                                                                                   \
    do {                                                                                           \
        if (rank == 0) fprintf(stderr, __VA_ARGS__);                                               \
    } while (0)

static int parse_size(const char *flag, const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 4 || v > ((int64_t)1 << 30) || (v & (v - 1))) {
        SAY("alpha_beta: %s '%s': want a power of 2 from 4 to 2^30 bytes\n", flag, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_opts(int argc, char **argv, opts *o)
{
    *o = (opts){.min = 4, .max = 64 << 20, .fit_min = 0, .fit_max = 0, .step = 2, .reps = 15};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) {
            SAY("alpha_beta: %s: missing value (options: --min --max --step --reps --fit-min "
                "--fit-max --json)\n",
                a);
            return -1;
        }
        const char *v = argv[++i];
        int rc = 0;
        if (!strcmp(a, "--min")) rc = parse_size(a, v, &o->min);
        else if (!strcmp(a, "--max")) rc = parse_size(a, v, &o->max);
        else if (!strcmp(a, "--fit-min")) rc = parse_size(a, v, &o->fit_min);
        else if (!strcmp(a, "--fit-max")) rc = parse_size(a, v, &o->fit_max);
        else if (!strcmp(a, "--json")) o->json = v;
        else if (!strcmp(a, "--step") || !strcmp(a, "--reps")) {
            char *end;
            errno = 0;
            long n = strtol(v, &end, 10);
            bool step = !strcmp(a, "--step");
            if (errno || end == v || *end || (step ? n != 2 && n != 4 : n < 3 || n > MAX_REPS)) {
                SAY("alpha_beta: %s '%s': want %s\n", a, v,
                    step ? "2 or 4" : "a count from 3 to 1000");
                return -1;
            }
            if (step) o->step = (int)n;
            else o->reps = (int)n;
        } else {
            SAY("alpha_beta: unknown option '%s' (options: --min --max --step --reps --fit-min "
                "--fit-max --json)\n",
                a);
            return -1;
        }
        if (rc) return -1;
    }
    if (o->min > o->max) {
        SAY("alpha_beta: --min %lld is above --max %lld\n", (long long)o->min, (long long)o->max);
        return -1;
    }
    if (!o->fit_min) o->fit_min = o->min;
    if (!o->fit_max) o->fit_max = o->max;
    if (o->fit_min > o->fit_max) {
        SAY("alpha_beta: --fit-min %lld is above --fit-max %lld\n", (long long)o->fit_min,
            (long long)o->fit_max);
        return -1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Seconds per allreduce of count floats over k calls, the slowest rank's. */
static double time_allreduce(const float *src, float *dst, int count, int k)
{
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int i = 0; i < k; i++) MPI_Allreduce(src, dst, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    double t = (MPI_Wtime() - t0) / k, tmax;
    MPI_Allreduce(&t, &tmax, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return tmax;
}

typedef struct {
    double A, S;      /* T = A + S·n, seconds and seconds per byte */
    double alpha, bw; /* seconds, bytes per second */
    double worst;     /* largest relative residual over the fitted points */
    int n;            /* points fitted */
    bool ok;
} fit;

/* Least squares T = A + S·n over the sizes within --fit-min..--fit-max, weighted by 1/T². */
static fit fit_line(const opts *o, int nsz, const int64_t *bytes, const double *t)
{
    double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    fit f = {.n = 0};
    for (int s = 0; s < nsz; s++) {
        if (bytes[s] < o->fit_min || bytes[s] > o->fit_max) continue;
        double w = 1 / (t[s] * t[s]), x = (double)bytes[s];
        sw += w, sx += w * x, sy += w * t[s], sxx += w * x * x, sxy += w * x * t[s];
        f.n++;
    }
    double det = sw * sxx - sx * sx;
    f.S = f.n >= 2 && det > 0 ? (sw * sxy - sx * sy) / det : (double)NAN;
    f.A = f.n >= 2 && det > 0 ? (sy - f.S * sx) / sw : (double)NAN;
    int p = nranks > 1 ? nranks : 2;
    f.alpha = f.A / (2.0 * (p - 1));
    f.bw = 2.0 * (p - 1) / (p * f.S);
    f.ok = f.A > 0 && f.S > 0; /* false for NAN too */
    for (int s = 0; s < nsz; s++)
        if (bytes[s] >= o->fit_min && bytes[s] <= o->fit_max &&
            fabs((f.A + f.S * (double)bytes[s]) / t[s] - 1) > f.worst)
            f.worst = fabs((f.A + f.S * (double)bytes[s]) / t[s] - 1);
    return f;
}

static void json_fit(FILE *f, const char *name, const opts *o, fit x, const char *end)
{
    fprintf(f, "  \"%s\": {\"min_bytes\": %lld, \"max_bytes\": %lld, \"points\": %d, ", name,
            (long long)o->fit_min, (long long)o->fit_max, x.n);
    fprintf(f, "\"alpha_us\": %.6g, \"bandwidth_GBps\": %.6g, \"beta_ns_per_byte\": %.6g, ",
            x.alpha * 1e6, x.bw / 1e9, 1e9 / x.bw);
    fprintf(f, "\"max_rel_residual\": %.4g}%s\n", x.worst, end);
}

/* Writes FILE through FILE.tmp and a rename, so a failed run leaves no half-written file. */
static int write_json(const char *path, const opts *o, int nsz, const int64_t *bytes,
                      const double *med, const double *lo, const double *hi, fit fm, fit fl,
                      const char *alg)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
        fprintf(stderr, "alpha_beta: --json path too long\n");
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "alpha_beta: cannot write %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    fprintf(f, "{\n  \"ranks\": %d,\n  \"op\": \"MPI_Allreduce sum f32\",\n", nranks);
    fprintf(f, "  \"forced_algorithm\": \"%s\",\n  \"reps\": %d,\n", alg, o->reps);
    fprintf(f, "  \"model\": \"T(n) = 2(p-1)*alpha + 2(p-1)/p * n / bandwidth\",\n");
    json_fit(f, "fit", o, fm, ",");
    json_fit(f, "fit_of_minima", o, fl, ",");
    fprintf(f, "  \"points\": [\n");
    for (int i = 0; i < nsz; i++)
        fprintf(
            f, "    {\"bytes\": %lld, \"median_us\": %.6g, \"min_us\": %.6g, \"max_us\": %.6g}%s\n",
            (long long)bytes[i], med[i] * 1e6, lo[i] * 1e6, hi[i] * 1e6, i + 1 < nsz ? "," : "");
    fprintf(f, "  ]\n}\n");
    if (ferror(f) | fclose(f)) {
        fprintf(stderr, "alpha_beta: cannot write %s\n", tmp);
        remove(tmp);
        return -1;
    }
    if (rename(tmp, path)) {
        fprintf(stderr, "alpha_beta: cannot rename %s to %s: %s\n", tmp, path, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}

static void print_fit(const char *what, const opts *o, fit x)
{
    printf("fit of the %s on %d sizes from %lld to %lld bytes: alpha %.3f us, bandwidth %.3f "
           "GB/s (beta %.4f ns/byte), largest relative residual %.1f%%\n",
           what, x.n, (long long)o->fit_min, (long long)o->fit_max, x.alpha * 1e6, x.bw / 1e9,
           1e9 / x.bw, 100 * x.worst);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    opts o;
    if (parse_opts(argc, argv, &o)) {
        MPI_Finalize();
        return 2;
    }
    if (nranks < 2) {
        SAY("alpha_beta: %d rank: an allreduce needs 2 or more (mpirun -np 2)\n", nranks);
        MPI_Finalize();
        return 2;
    }

    int64_t bytes[MAX_SIZES];
    int nsz = 0;
    for (int64_t n = o.min; n <= o.max && nsz < MAX_SIZES; n *= o.step) bytes[nsz++] = n;
    float *src = malloc((size_t)o.max), *dst = malloc((size_t)o.max);
    double *t = malloc(sizeof(double) * (size_t)nsz * (size_t)o.reps);
    int ok = src && dst && t, all_ok;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all_ok) {
        SAY("alpha_beta: cannot allocate 2 x %lld bytes\n", (long long)o.max);
        free(src), free(dst), free(t);
        MPI_Finalize();
        return 1;
    }
    for (int64_t i = 0; i < o.max / 4; i++)
        src[i] = (float)(i % 1000); /* sums of integers: exact */

    /* Iterations per repetition from one warm-up call per size, the same on every rank. */
    int k[MAX_SIZES];
    for (int s = 0; s < nsz; s++) {
        int count = (int)(bytes[s] / 4);
        time_allreduce(src, dst, count, 1);
        double t1 = time_allreduce(src, dst, count, 3);
        double kk = ceil(TARGET_S / (t1 > 1e-9 ? t1 : 1e-9));
        k[s] = kk < 1 ? 1 : kk > 10000 ? 10000 : (int)kk;
    }
    for (int r = 0; r < o.reps; r++)
        for (int s = 0; s < nsz; s++)
            t[(size_t)s * (size_t)o.reps + (size_t)r] =
                time_allreduce(src, dst, (int)(bytes[s] / 4), k[s]);

    /* Check the sum once at the largest size: rank count times the input, exactly. */
    float bad = 0;
    for (int64_t i = 0; i < o.max / 4; i++)
        if (dst[i] != src[i] * (float)nranks) bad = 1;
    float any_bad;
    MPI_Allreduce(&bad, &any_bad, 1, MPI_FLOAT, MPI_MAX, MPI_COMM_WORLD);

    double med[MAX_SIZES], lo[MAX_SIZES], hi[MAX_SIZES];
    for (int s = 0; s < nsz; s++) {
        double *ts = t + (size_t)s * (size_t)o.reps;
        qsort(ts, (size_t)o.reps, sizeof *ts, cmp_double);
        med[s] = o.reps % 2 ? ts[o.reps / 2] : (ts[o.reps / 2 - 1] + ts[o.reps / 2]) / 2;
        lo[s] = ts[0], hi[s] = ts[o.reps - 1];
    }

    fit fm = fit_line(&o, nsz, bytes, med), fl = fit_line(&o, nsz, bytes, lo);

    const char *alg_env = getenv("OMPI_MCA_coll_tuned_allreduce_algorithm");
    const char *dyn = getenv("OMPI_MCA_coll_tuned_use_dynamic_rules");
    const char *alg = alg_env && dyn && atoi(dyn) ? alg_env : "none (Open MPI's own choice)";
    int rc = any_bad ? 1 : 0;
    if (rank == 0) {
        printf("MPI_Allreduce sum f32, %d ranks, %d repetitions, forced algorithm: %s\n", nranks,
               o.reps, alg);
        printf("%12s %12s %12s %12s %12s %8s\n", "bytes", "median_us", "min_us", "max_us",
               "model_us", "GB/s");
        for (int s = 0; s < nsz; s++) {
            bool in = bytes[s] >= o.fit_min && bytes[s] <= o.fit_max;
            printf("%12lld %12.3f %12.3f %12.3f %12.3f %8.3f%s\n", (long long)bytes[s],
                   med[s] * 1e6, lo[s] * 1e6, hi[s] * 1e6, (fm.A + fm.S * (double)bytes[s]) * 1e6,
                   (double)bytes[s] / med[s] / 1e9, in ? "" : "  (not fitted)");
        }
        print_fit("medians", &o, fm);
        print_fit("minima", &o, fl);
        if (any_bad) fprintf(stderr, "alpha_beta: the allreduce's sum is wrong\n");
        if (!fm.ok || !fl.ok) {
            fprintf(stderr,
                    "alpha_beta: the fit failed (%d points; intercept %g s, slope %g s/byte): "
                    "widen --fit-min/--fit-max\n",
                    fm.n, fm.A, fm.S);
            rc = 1;
        }
        /* No JSON from a failed run: the old file, if any, stays as it was. */
        if (!rc && o.json && write_json(o.json, &o, nsz, bytes, med, lo, hi, fm, fl, alg)) rc = 1;
    }
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    free(src), free(dst), free(t);
    MPI_Finalize();
    return rc;
}
