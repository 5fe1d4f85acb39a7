/* ops/conv.c: conv2d on BLIS, and unfold/fold (im2col/col2im). conv1d is conv2d on
 * [N,C,1,L]. conv2d unfolds one image at a time into a buffer of the tape's arena (taken
 * once per call) and multiplies it by w viewed as [O, C/groups·kh·kw], one GEMM per group
 * and image; a 1x1 kernel with stride 1 and no padding multiplies x itself. Its backward
 * unfolds each image again for dw += dy·colsᵀ and folds dcols = wᵀ·dy into dx, the two
 * GEMMs side by side where tg_gemm_pair allows. At 2 or more threads the fast path splits the
 * images of a batch over OpenMP threads instead, each part with buffers of its own and its
 * GEMMs on one BLIS thread. Geometry and design: docs/ops-conv.md. */
#include "internal.h"

#if defined(_OPENMP) && !defined(TG_PLAIN)
#include <omp.h>
#endif

/* ---- geometry ---- */
/* The window of every op here: per axis (0 = H, 1 = W) the stride, padding and dilation
 * (defaults resolved: stride and dilation >= 1), the kernel, the image [C,H,W] and the
 * window count Ho x Wo. */
typedef struct geom {
    int64_t C, H, W, Ho, Wo, kh, kw;
    int64_t s[2], p[2], d[2];
} geom;

/* conv2d's saved context: the geometry (C, H, W of x), O and groups, whether b is given,
 * whether x itself is the column matrix (1x1, stride 1, no padding), and the buffers of
 * one image's columns: cols for the forward and for dw, dcols for dx (the same buffer
 * when the node is not recorded, NULL when none is needed), colbytes apart. parts is how
 * many parts the images may be split into (conv_parts): 0 for the reference path alone; with
 * parts > 1, cols and dcols hold that many buffers each, and dw_part (when w needs a
 * gradient) parts - 1 partial sums of dw, each w's size. */
typedef struct conv_saved {
    geom g;
    int64_t O, G;
    bool bias, direct;
    int parts;
    size_t colbytes;
    void *cols, *dcols, *dw_part;
} conv_saved;

/* Sizes beyond this are refused (TG_EARG): no tensor size comes near them, and with every
 * value at most 2^48 the window arithmetic below stays within int64_t. */
#define GEOM_MAX TG_MAX_NUMEL

/* The window count along one axis: (in + 2p - d(k - 1) - 1)/s + 1, or 0 if the window,
 * d(k - 1) + 1 wide, is wider than the padded input. Every argument is at most GEOM_MAX. */
static int64_t out_len(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d)
{
    int64_t padded = in + 2 * p;
    if (padded < 1 || (k > 1 && d > (padded - 1) / (k - 1))) return 0;
    int64_t span = d * (k - 1) + 1;
    return span > padded || s < 1 ? 0 : (padded - span) / s + 1; /* s >= 1: read_opts */
}

/* Reads o (NULL: every default) into g, and the groups (0 means 1) into *groups unless
 * groups is NULL (unfold and fold ignore them). TG_EARG for a negative value or one past
 * GEOM_MAX. */
static int read_opts(tg_tape *tp, const char *who, const tg_conv2d_opts *o, geom *g,
                     int64_t *groups)
{
    static const tg_conv2d_opts defaults = {{0, 0}, {0, 0}, {0, 0}, 0};
    static const char *const names[3] = {"stride", "padding", "dilation"};
    if (!o) o = &defaults;
    const int64_t *v[3] = {o->stride, o->padding, o->dilation};
    for (int k = 0; k < 3; k++)
        for (int ax = 0; ax < 2; ax++)
            if (v[k][ax] < 0 || v[k][ax] > GEOM_MAX)
                return tg_fail(tp, TG_EARG, "tg_%s: %s %lld: want 0 to %lld", who, names[k],
                               (long long)v[k][ax], (long long)GEOM_MAX);
    if (groups && (o->groups < 0 || o->groups > GEOM_MAX))
        return tg_fail(tp, TG_EARG, "tg_%s: groups %lld: want 0 to %lld", who, (long long)o->groups,
                       (long long)GEOM_MAX);
    for (int ax = 0; ax < 2; ax++) {
        g->s[ax] = o->stride[ax] ? o->stride[ax] : 1;
        g->p[ax] = o->padding[ax];
        g->d[ax] = o->dilation[ax] ? o->dilation[ax] : 1;
    }
    if (groups) *groups = o->groups ? o->groups : 1;
    return TG_OK;
}

/* g's window counts; TG_ESHAPE (the message names what, the inputs) if there is none. */
static int fit_windows(tg_tape *tp, const char *who, const char *what, geom *g)
{
    g->Ho = out_len(g->H, g->kh, g->s[0], g->p[0], g->d[0]);
    g->Wo = out_len(g->W, g->kw, g->s[1], g->p[1], g->d[1]);
    if (g->Ho >= 1 && g->Wo >= 1) return TG_OK;
    return tg_fail(tp, TG_ESHAPE,
                   "tg_%s: %s: the kernel %lldx%lld (dilation %lldx%lld) is larger than the "
                   "padded input %lldx%lld (padding %lldx%lld)",
                   who, what, (long long)g->kh, (long long)g->kw, (long long)g->d[0],
                   (long long)g->d[1], (long long)g->H, (long long)g->W, (long long)g->p[0],
                   (long long)g->p[1]);
}

/* Back to options, for the backwards in ops. */
static tg_conv2d_opts geom_opts(const geom *g, int64_t groups)
{
    return (tg_conv2d_opts){{g->s[0], g->s[1]}, {g->p[0], g->p[1]}, {g->d[0], g->d[1]}, groups};
}

/* ---- one image [C,H,W] and its columns [C·kh·kw, Ho·Wo] ----
 * Row (c·kh + i)·kw + j, column oh·Wo + ow holds x[c, oh·sh - ph + i·dh, ow·sw - pw + j·dw]
 * (0 in the padding). TO_COLS writes the columns, ADD_COLS adds the windows to them, ADD_IMG
 * adds the columns back into the image (col2im). Per row, the columns whose element lies
 * inside the image along W are [lo, hi): the loops over them have no test. */
enum { TO_COLS, ADD_COLS, ADD_IMG };

#define WALK_KERNEL(T, SFX)                                                                        \
    TG_VEC_CLONES                                                                                  \
    static void walk_##SFX(const geom *g, int mode, T *restrict img, T *restrict cols)             \
    {                                                                                              \
        const int64_t H = g->H, W = g->W, Ho = g->Ho, Wo = g->Wo, sh = g->s[0], sw = g->s[1];      \
        for (int64_t c = 0; c < g->C; c++)                                                         \
            for (int64_t i = 0; i < g->kh; i++)                                                    \
                for (int64_t j = 0; j < g->kw; j++) {                                              \
                    T *row = cols + ((c * g->kh + i) * g->kw + j) * Ho * Wo;                       \
                    const int64_t off = j * g->d[1] - g->p[1]; /* iw = ow·sw + off */             \
                    int64_t lo = off >= 0 ? 0 : (sw - 1 - off) / sw;                               \
                    int64_t hi = W - off <= 0 ? 0 : (W - off + sw - 1) / sw;                       \
                    if (hi > Wo) hi = Wo;                                                          \
                    if (lo > hi) lo = hi;                                                          \
                    for (int64_t oh = 0; oh < Ho; oh++) {                                          \
                        T *r = row + oh * Wo;                                                      \
                        const int64_t ih = oh * sh - g->p[0] + i * g->d[0];                        \
                        if (ih < 0 || ih >= H) {                                                   \
                            if (mode == TO_COLS)                                                   \
                                for (int64_t k = 0; k < Wo; k++) r[k] = 0;                         \
                            continue;                                                              \
                        }                                                                          \
                        T *xr = img + (c * H + ih) * W; /* xr[ow·sw + off] for ow in [lo,hi) */   \
                        if (mode == TO_COLS) {                                                     \
                            for (int64_t k = 0; k < lo; k++) r[k] = 0;                             \
                            if (sw == 1)                                                           \
                                for (int64_t k = lo; k < hi; k++) r[k] = xr[k + off];              \
                            else                                                                   \
                                for (int64_t k = lo; k < hi; k++) r[k] = xr[k * sw + off];         \
                            for (int64_t k = hi; k < Wo; k++) r[k] = 0;                            \
                        } else if (mode == ADD_COLS) {                                             \
                            for (int64_t k = lo; k < hi; k++) r[k] += xr[k * sw + off];            \
                        } else if (sw == 1) {                                                      \
                            for (int64_t k = lo; k < hi; k++) xr[k + off] += r[k];                 \
                        } else {                                                                   \
                            for (int64_t k = lo; k < hi; k++) xr[k * sw + off] += r[k];            \
                        }                                                                          \
                    }                                                                              \
                }                                                                                  \
    }                                                                                              \
    /* y[o, l] = b[o] for one image's output [O, L] */                                             \
    TG_VEC_CLONES                                                                                  \
    static void bias_fill_##SFX(T *restrict y, const T *restrict b, int64_t O, int64_t L)          \
    {                                                                                              \
        for (int64_t o = 0; o < O; o++)                                                            \
            for (int64_t l = 0; l < L; l++) y[o * L + l] = b[o];                                   \
    }                                                                                              \
    /* db[o] += Σ_{n,l} dy[n, o, l] for o in [o0, o1), each run of L in 8 partial sums (a loop    \
     * the compiler vectorises; a fixed order, so the same bits whatever the split) */             \
    TG_VEC_CLONES                                                                                  \
    static void bias_grad_##SFX(T *restrict db, const T *restrict dy, int64_t N, int64_t O,        \
                                int64_t L, int64_t o0, int64_t o1)                                 \
    {                                                                                              \
        for (int64_t n = 0; n < N; n++)                                                            \
            for (int64_t o = o0; o < o1; o++) {                                                    \
                const T *r = dy + (n * O + o) * L;                                                 \
                T acc[8] = {0};                                                                    \
                int64_t l = 0;                                                                     \
                for (; l + 8 <= L; l += 8)                                                         \
                    for (int k = 0; k < 8; k++) acc[k] += r[l + k];                                \
                for (; l < L; l++) acc[0] += r[l];                                                 \
                db[o] += ((acc[0] + acc[4]) + (acc[1] + acc[5])) +                                 \
                         ((acc[2] + acc[6]) + (acc[3] + acc[7]));                                  \
            }                                                                                      \
    }                                                                                              \
    /* a[i] += b[i] */                                                                             \
    TG_VEC_CLONES                                                                                  \
    static void add_into_##SFX(T *restrict a, const T *restrict b, int64_t n)                      \
    {                                                                                              \
        for (int64_t i = 0; i < n; i++) a[i] += b[i];                                              \
    }
WALK_KERNEL(float, f32)
WALK_KERNEL(double, f64)

/* img is only read for TO_COLS and ADD_COLS. */
static void walk(const geom *g, int mode, tg_dtype dt, const void *img, void *cols)
{
    if (dt == TG_F32) walk_f32(g, mode, (float *)img, cols);
    else walk_f64(g, mode, (double *)img, cols);
}

/* ---- conv2d ---- */
/* How a run of GEMMs is made: NULL, each by tg_gemm (the reference, on the threads of
 * tg_set_num_threads); else on one BLIS thread (a part of the split over the images), timed
 * into secs and calls when timed. */
typedef struct part_ctx {
    bool timed;
    double secs;
    int calls;
} part_ctx;

static void gemm(tg_tape *tp, tg_dtype dt, const tg_gemm_args *g, part_ctx *c)
{
    if (!c) {
        tg_gemm(tp, dt, g);
        return;
    }
    double t0 = c->timed ? tg_clock() : 0;
    tg_gemm_1t(dt, g);
    if (c->timed) c->secs += tg_clock() - t0, c->calls++;
}

/* Below this many multiply-adds a call (N·O·K·L) at 2 or more threads runs as one part, its
 * GEMMs on one BLIS thread: a second thread gained nothing at 74K (51 against 56 us for
 * forward + backward) and 1.7x at 295K; BLIS's own threads on such small GEMMs were 2.3x
 * slower than one. */
#define CONV_PARALLEL_MIN 131072

/* How many parts a call on N images with m multiply-adds may be split into, at the thread
 * count of now: 0 (the reference path) at 1 thread, for one image (BLIS's threads share its
 * GEMMs), with -DTG_PLAIN and without OpenMP; 1 below CONV_PARALLEL_MIN; else the thread
 * count, at most N. */
static int conv_parts(int64_t N, double m)
{
#if defined(_OPENMP) && !defined(TG_PLAIN)
    int nt = tg_get_num_threads();
    if (nt < 2 || N < 2) return 0;
    if (m < CONV_PARALLEL_MIN) return 1;
    return nt > N ? (int)N : nt;
#else
    (void)N, (void)m;
    return 0;
#endif
}

/* The parts to run now: the thread count, at most the parts the buffers allow; 0 (the
 * reference path) when the call took none, at 1 thread, or in a running OpenMP region. */
static int parts_now(const conv_saved *s)
{
#if defined(_OPENMP) && !defined(TG_PLAIN)
    int nt = tg_get_num_threads();
    if (s->parts == 0 || nt < 2 || omp_in_parallel()) return 0;
    return nt > s->parts ? s->parts : nt;
#else
    (void)s;
    return 0;
#endif
}

/* Buffer t of the parts' buffers starting at base */
static void *part_buf(const conv_saved *s, void *base, int t)
{
    return base ? (char *)base + (size_t)t * s->colbytes : NULL;
}

/* The forward of images [i0, i1) with the columns buffer cols. */
static void fwd_images(const tg_node *n, int64_t i0, int64_t i1, void *colbuf, part_ctx *c)
{
    const conv_saved *s = n->saved;
    const geom *g = &s->g;
    tg_tape *tp = tg_node_out(n)->tape;
    tg_dtype dt = (tg_dtype)tg_node_out(n)->dtype;
    size_t es = tg_dtype_size(dt);
    const int64_t G = s->G, Og = s->O / G, L = g->Ho * g->Wo;
    const int64_t K = g->C / G * g->kh * g->kw, img = g->C * g->H * g->W;
    const char *x = n->in[0]->data, *w = n->in[1]->data;
    char *y = tg_node_out(n)->data;
    for (int64_t i = i0; i < i1; i++) {
        const char *xn = x + (size_t)(i * img) * es, *cols = xn;
        char *yn = y + (size_t)(i * s->O * L) * es;
        if (!s->direct) walk(g, TO_COLS, dt, xn, colbuf), cols = colbuf;
        double beta = 0; /* the bias first, then the GEMM adds to it */
        if (s->bias) {
            if (dt == TG_F32) bias_fill_f32((float *)(void *)yn, n->in[2]->data, s->O, L);
            else bias_fill_f64((double *)(void *)yn, n->in[2]->data, s->O, L);
            beta = 1;
        }
        for (int64_t q = 0; q < G; q++) /* y_q = w_q [Og, K] · cols_q [K, L] */
            gemm(tp, dt,
                 &(tg_gemm_args){false, false, Og, L, K, w + (size_t)(q * Og * K) * es,
                                 cols + (size_t)(q * K * L) * es, beta,
                                 yn + (size_t)(q * Og * L) * es},
                 c);
    }
}

void tg_conv2d_fwd(tg_node *n)
{
    const conv_saved *s = n->saved;
    const geom *g = &s->g;
    tg_tape *tp = tg_node_out(n)->tape;
    tg_dtype dt = (tg_dtype)tg_node_out(n)->dtype;
    size_t es = tg_dtype_size(dt);
    if (tg_node_out(n)->numel == 0) return; /* else every loop below is bounded by an allocation */
    const int64_t N = tg_node_out(n)->shape[0], L = g->Ho * g->Wo;
    if (g->C == 0) { /* K = 0: no product, y = b (or 0) */
        char *y = tg_node_out(n)->data;
        for (int64_t i = 0; i < N; i++) {
            char *yn = y + (size_t)(i * s->O * L) * es;
            if (!s->bias) memset(yn, 0, (size_t)(s->O * L) * es);
            else if (dt == TG_F32) bias_fill_f32((float *)(void *)yn, n->in[2]->data, s->O, L);
            else bias_fill_f64((double *)(void *)yn, n->in[2]->data, s->O, L);
        }
        return;
    }
    const int nt = parts_now(s);
    if (nt == 0) {
        fwd_images(n, 0, N, s->cols, NULL);
        return;
    }
    /* the fast path: part t takes images [N·t/nt, N·(t+1)/nt) and columns buffer t */
    const bool timed = tg_profiling(tp);
    double secs = 0;
    int calls = 0;
    TG_OMP_FOR("omp parallel for num_threads(nt) if (nt > 1) reduction(+ : secs, calls)")
    for (int t = 0; t < nt; t++) {
        part_ctx c = {timed, 0, 0};
        fwd_images(n, N * t / nt, N * (t + 1) / nt, part_buf(s, s->cols, t), &c);
        secs += c.secs, calls += c.calls;
    }
    if (timed) tg_profile_gemm(tp, tg_clock() - secs / nt, calls); /* the parts' mean */
}

/* The backward of images [i0, i1) with the buffers cols and dcols: dw_q += dy_q · cols_qᵀ
 * into dw (w's gradient or a partial sum, written rather than added to on the first image
 * if dw_set), dcols_q = w_qᵀ · dy_q (GEMMs with transposition flags), dx += fold(dcols). */
/* The GEMM writes dw (tg_gemm_args.c), which clang-tidy does not see. */
static void bwd_images(const tg_node *n, int64_t i0, int64_t i1, void *colbuf, void *dcolbuf,
                       char *dw, /* NOLINT(readability-non-const-parameter) */
                       bool dw_set, part_ctx *c)
{
    const conv_saved *s = n->saved;
    const geom *g = &s->g;
    tg_tape *tp = tg_node_out(n)->tape;
    tg_dtype dt = (tg_dtype)tg_node_out(n)->dtype;
    size_t es = tg_dtype_size(dt);
    tg_tensor *x = n->in[0], *w = n->in[1];
    const bool need_x = x->requires_grad, need_w = w->requires_grad;
    const int64_t O = s->O, G = s->G, Og = O / G, L = g->Ho * g->Wo;
    const int64_t K = g->C / G * g->kh * g->kw, img = g->C * g->H * g->W;
    const char *dy = tg_node_out(n)->grad->data;
    /* direct: dx_n is written by the GEMM; the pair must not write one buffer twice */
    const bool pair = !c && !(s->direct && need_x && need_w && x->grad->data == w->grad->data);
    for (int64_t i = i0; i < i1; i++) {
        const char *xn = (const char *)x->data + (size_t)(i * img) * es, *cols = xn;
        const char *dyn = dy + (size_t)(i * O * L) * es;
        char *dxn = need_x ? (char *)x->grad->data + (size_t)(i * img) * es : NULL;
        char *dcols = s->direct ? dxn : dcolbuf;
        if (need_w && !s->direct) walk(g, TO_COLS, dt, xn, colbuf), cols = colbuf;
        for (int64_t q = 0; q < G; q++) {
            const char *dyq = dyn + (size_t)(q * Og * L) * es;
            tg_gemm_args gx, gw;
            if (need_x)
                gx = (tg_gemm_args){true,
                                    false,
                                    K,
                                    L,
                                    Og,
                                    (const char *)w->data + (size_t)(q * Og * K) * es,
                                    dyq,
                                    s->direct ? 1.0 : 0.0,
                                    dcols + (size_t)(q * K * L) * es};
            if (need_w)
                gw = (tg_gemm_args){false,
                                    true,
                                    Og,
                                    K,
                                    L,
                                    dyq,
                                    cols + (size_t)(q * K * L) * es,
                                    dw_set && i == i0 ? 0.0 : 1.0,
                                    dw + (size_t)(q * Og * K) * es};
            if (pair) {
                tg_gemm_pair(tp, dt, need_x ? &gx : NULL, need_w ? &gw : NULL);
            } else {
                if (need_x) gemm(tp, dt, &gx, c);
                if (need_w) gemm(tp, dt, &gw, c);
            }
        }
        if (need_x && !s->direct) walk(g, ADD_IMG, dt, dxn, dcolbuf);
    }
}

/* db[o] += Σ dy[n, o, ·] for o in [o0, o1) */
static void bias_grad(const tg_node *n, int64_t o0, int64_t o1)
{
    const int64_t N = tg_node_out(n)->shape[0], O = tg_node_out(n)->shape[1],
                  L = tg_node_out(n)->shape[2] * tg_node_out(n)->shape[3];
    if (tg_node_out(n)->dtype == TG_F32)
        bias_grad_f32(n->in[2]->grad->data, tg_node_out(n)->grad->data, N, O, L, o0, o1);
    else bias_grad_f64(n->in[2]->grad->data, tg_node_out(n)->grad->data, N, O, L, o0, o1);
}

/* Per image the GEMMs of bwd_images, then db += Σ dy. The sweep zeroed every input gradient
 * first (sets = 0 in ops.def), so everything adds. The fast path splits the images as the
 * forward does: part 0 adds into w's gradient, part t > 0 sums into partial t - 1, and the
 * partials are added after, in order; db is split by channels (the same bits). Not when x
 * and w share one gradient buffer (one tensor as both): parts would write it at once. */
void tg_conv2d_bwd(tg_node *n)
{
    const conv_saved *s = n->saved;
    const geom *g = &s->g;
    tg_tape *tp = tg_node_out(n)->tape;
    if (tg_node_out(n)->numel == 0) return; /* dy is empty: the gradients stay zeros */
    tg_tensor *x = n->in[0], *w = n->in[1];
    const bool need_x = x->requires_grad, need_w = w->requires_grad;
    const bool need_b = s->bias && n->in[2]->requires_grad;
    const int64_t N = tg_node_out(n)->shape[0], O = s->O;
    const bool gemms = g->C > 0 && (need_x || need_w); /* C = 0: no dx, no dw */
    int nt = parts_now(s);
    if (nt > 1 && ((need_w && !s->dw_part) || (need_x && need_w && x->grad->data == w->grad->data)))
        nt = 0;
    if (nt == 0) {
        if (gemms)
            bwd_images(n, 0, N, s->cols, s->dcols, need_w ? w->grad->data : NULL, false, NULL);
        if (need_b) bias_grad(n, 0, O);
        return;
    }
    const bool timed = tg_profiling(tp);
    const size_t wbytes = (size_t)w->numel * tg_dtype_size((tg_dtype)w->dtype);
    double secs = 0;
    int calls = 0;
    TG_OMP_FOR("omp parallel for num_threads(nt) if (nt > 1) reduction(+ : secs, calls)")
    for (int t = 0; t < nt; t++) {
        part_ctx c = {timed, 0, 0};
        char *dw = !need_w  ? NULL
                   : t == 0 ? (char *)w->grad->data
                            : (char *)s->dw_part + (size_t)(t - 1) * wbytes;
        if (gemms)
            bwd_images(n, N * t / nt, N * (t + 1) / nt, part_buf(s, s->cols, t),
                       part_buf(s, s->dcols, t), dw, t > 0, &c);
        if (need_b) bias_grad(n, O * t / nt, O * (t + 1) / nt);
        secs += c.secs, calls += c.calls;
    }
    if (timed) tg_profile_gemm(tp, tg_clock() - secs / nt, calls); /* the parts' mean */
    for (int t = 1; t < nt && need_w && gemms; t++) {
        const void *p = (const char *)s->dw_part + (size_t)(t - 1) * wbytes;
        if (w->dtype == TG_F32) add_into_f32(w->grad->data, p, w->numel);
        else add_into_f64(w->grad->data, p, w->numel);
    }
}

/* What tg_conv2d and tg_conv1d check, on the 4-D views xs [N,C,H,W] and ws [O,Cg,kh,kw] of
 * the inputs in[] (named in messages as given); the output's 4-D shape into out. */
typedef struct conv_args {
    geom g;
    int64_t G, out[4];
} conv_args;

static int conv_check(tg_tape *tp, const char *who, int n_in, tg_tensor *const *in,
                      const int64_t *xs, const int64_t *ws, const tg_conv2d_opts *o, int out_nd,
                      conv_args *a)
{
    char buf[384];
    geom *g = &a->g;
    if (read_opts(tp, who, o, g, &a->G)) return tp->err;
    const int64_t C = xs[1], O = ws[0], G = a->G;
    tg_shapes_str(buf, sizeof buf, n_in, in);
    if (ws[2] < 1 || ws[3] < 1)
        return tg_fail(tp, TG_ESHAPE, "tg_%s: %s: the kernel of w is empty", who, buf);
    if (C % G || O % G)
        return tg_fail(tp, TG_ESHAPE,
                       "tg_%s: %s: %lld input and %lld output channels are not divisible by "
                       "groups %lld",
                       who, buf, (long long)C, (long long)O, (long long)G);
    if (ws[1] != C / G)
        return tg_fail(tp, TG_ESHAPE,
                       "tg_%s: %s: w has %lld input channels per group, want %lld (channels "
                       "%lld / groups %lld)",
                       who, buf, (long long)ws[1], (long long)(C / G), (long long)C, (long long)G);
    if (n_in == 3 && in[2]->shape[0] != O)
        return tg_fail(tp, TG_ESHAPE, "tg_%s: %s: b has %lld elements, want %lld (w's outputs)",
                       who, buf, (long long)in[2]->shape[0], (long long)O);
    g->C = C, g->H = xs[2], g->W = xs[3], g->kh = ws[2], g->kw = ws[3];
    if (fit_windows(tp, who, buf, g)) return tp->err;
    a->out[0] = xs[0], a->out[1] = O, a->out[2] = g->Ho, a->out[3] = g->Wo;
    /* conv1d's output [N,O,Lo] is checked as such, so that the message shows it */
    const int64_t out3[3] = {xs[0], O, g->Wo};
    const int64_t *shown = out_nd == 3 ? out3 : a->out;
    if (tg_shape_numel(out_nd, shown) < 0) return tg_shape_fail(tp, who, out_nd, shown);
    return TG_OK;
}

/* The conv2d node on the 4-D inputs in[] (n_in 2 without b), checked as a says. */
static tg_tensor *conv_record(tg_tape *tp, int n_in, tg_tensor *const *in, const conv_args *a)
{
    tg_node *n = tg_op_begin(tp, TG_OP_conv2d, n_in, in, 4, a->out);
    if (!n) return NULL;
    conv_saved *s = tg_op_save(tp, n, sizeof *s);
    if (!s) return NULL;
    const geom *g = &a->g;
    s->g = *g, s->O = a->out[1], s->G = a->G, s->bias = n_in == 3;
    s->direct =
        g->kh == 1 && g->kw == 1 && g->s[0] == 1 && g->s[1] == 1 && g->p[0] == 0 && g->p[1] == 0;
    /* Per part, one image's columns, two when recorded (dw's and dx's); none when x is its
     * own column matrix, the output is empty or the kernel has no elements (C = 0). With
     * parts > 1 and w needing a gradient, parts - 1 partial sums of dw. */
    const int64_t cs[5] = {g->C, g->kh, g->kw, g->Ho, g->Wo};
    int64_t numel = tg_shape_numel(5, cs);
    const bool records = tg_op_records(tp, n_in, in);
    const size_t es = tg_dtype_size((tg_dtype)in[0]->dtype);
    const int64_t N = a->out[0], L = g->Ho * g->Wo, K = g->C / a->G * g->kh * g->kw;
    s->parts = tg_node_out(n)->numel > 0 && g->C > 0
                   ? conv_parts(N, (double)(N * s->O) * (double)(K * L))
                   : 0;
    const size_t sets = s->parts > 1 ? (size_t)s->parts : 1; /* of column buffers */
    if (!s->direct && tg_node_out(n)->numel > 0 && numel != 0) {
        size_t bufs = records ? 2 : 1;
        s->colbytes = (size_t)numel * es;
        if (numel < 0 || !(s->cols = tg_arena_alloc(tp, sets * bufs * s->colbytes))) {
            tg_fail(tp, TG_ENOMEM, "tg_conv2d: out of memory for its columns (%lld elements)",
                    (long long)numel);
            return NULL;
        }
        s->dcols = bufs == 2 ? (char *)s->cols + sets * s->colbytes : s->cols;
    }
    if (s->parts > 1 && records && in[1]->requires_grad &&
        !(s->dw_part = tg_arena_alloc(tp, (size_t)(s->parts - 1) * (size_t)in[1]->numel * es))) {
        tg_fail(tp, TG_ENOMEM, "tg_conv2d: out of memory for its partial sums of dw (%d x %lld)",
                s->parts - 1, (long long)in[1]->numel);
        return NULL;
    }
    return tg_op_finish(tp, n);
}

tg_tensor *tg_conv2d(tg_tape *tp, tg_tensor *x, tg_tensor *w, tg_tensor *b, const tg_conv2d_opts *o)
{
    tg_tensor *in[3] = {x, w, b};
    const int n_in = b ? 3 : 2;
    char buf[384];
    if (tg_op_check(tp, TG_OP_conv2d, n_in, in)) return NULL;
    if (x->ndim != 4 || w->ndim != 4 || (b && b->ndim != 1)) {
        tg_fail(tp, TG_ESHAPE, "tg_conv2d: %s: want x [N,C,H,W], w [O,C/groups,kh,kw]%s",
                tg_shapes_str(buf, sizeof buf, n_in, in), b ? ", b [O]" : "");
        return NULL;
    }
    conv_args a = {0};
    if (conv_check(tp, "conv2d", n_in, in, x->shape, w->shape, o, 4, &a)) return NULL;
    return conv_record(tp, n_in, in, &a);
}

/* tg_op_check under the name of conv1d, which has no op of its own. */
static int check_inputs(tg_tape *tp, const char *who, int n_in, tg_tensor *const *in)
{
    if (!tp) return TG_EARG;
    if (tp->err) return tp->err;
    for (int i = 0; i < n_in; i++) {
        if (!in[i]) return tg_fail(tp, TG_EARG, "tg_%s: input %d is NULL", who, i);
        if (!tg_tensor_usable(tp, in[i]))
            return tg_fail(tp, TG_ESTATE,
                           "tg_%s: input %d belongs to another tape or was made before "
                           "tg_tape_reset",
                           who, i);
        if (in[i]->dtype != in[0]->dtype)
            return tg_fail(tp, TG_EDTYPE, "tg_%s: dtypes %s and %s differ", who,
                           tg_dtype_name((tg_dtype)in[0]->dtype),
                           tg_dtype_name((tg_dtype)in[i]->dtype));
    }
    return TG_OK;
}

/* conv2d on x [N,C,1,L] and w [O,Cg,1,k]: the reshapes are recorded with it (when x or w
 * requires a gradient), everything is checked first, under conv1d's name. */
tg_tensor *tg_conv1d(tg_tape *tp, tg_tensor *x, tg_tensor *w, tg_tensor *b, int64_t stride,
                     int64_t padding, int64_t dilation, int64_t groups)
{
    tg_tensor *in[3] = {x, w, b};
    const int n_in = b ? 3 : 2;
    char buf[384];
    if (check_inputs(tp, "conv1d", n_in, in)) return NULL;
    if (x->ndim != 3 || w->ndim != 3 || (b && b->ndim != 1)) {
        tg_fail(tp, TG_ESHAPE, "tg_conv1d: %s: want x [N,C,L], w [O,C/groups,k]%s",
                tg_shapes_str(buf, sizeof buf, n_in, in), b ? ", b [O]" : "");
        return NULL;
    }
    const int64_t xs[4] = {x->shape[0], x->shape[1], 1, x->shape[2]};
    const int64_t ws[4] = {w->shape[0], w->shape[1], 1, w->shape[2]};
    const tg_conv2d_opts o = {{1, stride}, {0, padding}, {1, dilation}, groups};
    conv_args a = {0};
    if (conv_check(tp, "conv1d", n_in, in, xs, ws, &o, 3, &a)) return NULL;
    tg_tensor *in4[3] = {tg_reshape(tp, x, 4, xs), tg_reshape(tp, w, 4, ws), b};
    if (!in4[0] || !in4[1]) return NULL;
    tg_tensor *y = conv_record(tp, n_in, in4, &a);
    const int64_t ys[3] = {a.out[0], a.out[1], a.out[3]};
    return y ? tg_reshape(tp, y, 3, ys) : NULL;
}

/* ---- unfold and fold: each the other's adjoint ---- */
/* The geometry of unfold and fold: the kernel and the options, checked. */
static int kernel_opts(tg_tape *tp, const char *who, int64_t kh, int64_t kw,
                       const tg_conv2d_opts *o, geom *g)
{
    if (read_opts(tp, who, o, g, NULL)) return tp->err;
    if (kh < 1 || kw < 1 || kh > GEOM_MAX || kw > GEOM_MAX)
        return tg_fail(tp, TG_EARG, "tg_%s: kernel %lldx%lld: want sizes 1 to %lld", who,
                       (long long)kh, (long long)kw, (long long)GEOM_MAX);
    g->kh = kh, g->kw = kw;
    return TG_OK;
}

void tg_unfold_fwd(tg_node *n)
{
    const geom *g = n->saved;
    tg_dtype dt = (tg_dtype)tg_node_out(n)->dtype;
    size_t es = tg_dtype_size(dt);
    if (tg_node_out(n)->numel == 0) return;
    const int64_t N = tg_node_out(n)->shape[0], img = g->C * g->H * g->W,
                  ncols = tg_node_out(n)->numel / N;
    for (int64_t i = 0; i < N; i++)
        walk(g, TO_COLS, dt, (const char *)n->in[0]->data + (size_t)(i * img) * es,
             (char *)tg_node_out(n)->data + (size_t)(i * ncols) * es);
}

/* dx += fold(dy) */
void tg_unfold_bwd(tg_node *n)
{
    const geom *g = n->saved;
    tg_dtype dt = (tg_dtype)tg_node_out(n)->dtype;
    size_t es = tg_dtype_size(dt);
    if (tg_node_out(n)->numel == 0) return;
    const int64_t N = tg_node_out(n)->shape[0], img = g->C * g->H * g->W,
                  ncols = tg_node_out(n)->numel / N;
    for (int64_t i = 0; i < N; i++)
        walk(g, ADD_IMG, dt, (char *)n->in[0]->grad->data + (size_t)(i * img) * es,
             (char *)tg_node_out(n)->grad->data + (size_t)(i * ncols) * es);
}

tg_tensor *tg_unfold(tg_tape *tp, tg_tensor *x, int64_t kh, int64_t kw, const tg_conv2d_opts *o)
{
    char buf[128];
    geom g = {0};
    if (tg_op_check(tp, TG_OP_unfold, 1, &x)) return NULL;
    if (x->ndim != 4) {
        tg_fail(tp, TG_ESHAPE, "tg_unfold: x %s: want [N,C,H,W]", tg_shape_str(x, buf, sizeof buf));
        return NULL;
    }
    if (kernel_opts(tp, "unfold", kh, kw, o, &g)) return NULL;
    g.C = x->shape[1], g.H = x->shape[2], g.W = x->shape[3];
    tg_shape_str(x, buf, sizeof buf);
    if (fit_windows(tp, "unfold", buf, &g)) return NULL;
    const int64_t all[6] = {x->shape[0], g.C, kh, kw, g.Ho, g.Wo};
    if (tg_shape_numel(6, all) < 0) {
        tg_fail(
            tp, TG_ESHAPE,
            "tg_unfold: x %s with kernel %lldx%lld: [N, C·kh·kw, Ho·Wo] = [%lld, %lld·%lld·%lld, "
            "%lld·%lld] has more than %lld elements (TG_MAX_NUMEL)",
            buf, (long long)kh, (long long)kw, (long long)all[0], (long long)g.C, (long long)kh,
            (long long)kw, (long long)g.Ho, (long long)g.Wo, (long long)TG_MAX_NUMEL);
        return NULL;
    }
    const int64_t shape[3] = {x->shape[0], g.C * kh * kw, g.Ho * g.Wo};
    tg_node *n = tg_op_begin(tp, TG_OP_unfold, 1, &x, 3, shape);
    if (!n) return NULL;
    geom *s = tg_op_save(tp, n, sizeof *s);
    if (!s) return NULL;
    *s = g;
    return tg_op_finish(tp, n);
}

void tg_fold_fwd(tg_node *n)
{
    const geom *g = n->saved;
    tg_dtype dt = (tg_dtype)tg_node_out(n)->dtype;
    size_t es = tg_dtype_size(dt);
    memset(tg_node_out(n)->data, 0, (size_t)tg_node_out(n)->numel * es);
    if (tg_node_out(n)->numel == 0 || n->in[0]->numel == 0) return;
    const int64_t N = tg_node_out(n)->shape[0], img = tg_node_out(n)->numel / N,
                  ncols = n->in[0]->numel / N;
    for (int64_t i = 0; i < N; i++)
        walk(g, ADD_IMG, dt, (char *)tg_node_out(n)->data + (size_t)(i * img) * es,
             (char *)n->in[0]->data + (size_t)(i * ncols) * es);
}

/* dcols += unfold(dy) */
void tg_fold_bwd(tg_node *n)
{
    const geom *g = n->saved;
    tg_dtype dt = (tg_dtype)tg_node_out(n)->dtype;
    size_t es = tg_dtype_size(dt);
    if (tg_node_out(n)->numel == 0 || n->in[0]->numel == 0) return;
    const int64_t N = tg_node_out(n)->shape[0], img = tg_node_out(n)->numel / N,
                  ncols = n->in[0]->numel / N;
    for (int64_t i = 0; i < N; i++)
        walk(g, ADD_COLS, dt, (const char *)tg_node_out(n)->grad->data + (size_t)(i * img) * es,
             (char *)n->in[0]->grad->data + (size_t)(i * ncols) * es);
}

tg_tensor *tg_fold(tg_tape *tp, tg_tensor *cols, int64_t H, int64_t W, int64_t kh, int64_t kw,
                   const tg_conv2d_opts *o)
{
    char buf[128];
    geom g = {0};
    if (tg_op_check(tp, TG_OP_fold, 1, &cols)) return NULL;
    tg_shape_str(cols, buf, sizeof buf);
    if (cols->ndim != 3) {
        tg_fail(tp, TG_ESHAPE, "tg_fold: cols %s: want [N, C·kh·kw, L]", buf);
        return NULL;
    }
    if (kernel_opts(tp, "fold", kh, kw, o, &g)) return NULL;
    if (H < 0 || W < 0 || H > GEOM_MAX || W > GEOM_MAX) {
        tg_fail(tp, TG_EARG, "tg_fold: output size %lldx%lld: want sizes 0 to %lld", (long long)H,
                (long long)W, (long long)GEOM_MAX);
        return NULL;
    }
    const int64_t N = cols->shape[0], CK = cols->shape[1], L = cols->shape[2];
    /* kh·kw may pass int64_t: compared by division */
    if (CK > 0 && (kh > CK / kw || CK % (kh * kw))) {
        tg_fail(tp, TG_ESHAPE, "tg_fold: cols %s: %lld rows are not a multiple of kernel %lldx%lld",
                buf, (long long)CK, (long long)kh, (long long)kw);
        return NULL;
    }
    g.C = CK ? CK / (kh * kw) : 0, g.H = H, g.W = W;
    char what[192];
    snprintf(what, sizeof what, "cols %s into %lldx%lld", buf, (long long)H, (long long)W);
    if (fit_windows(tp, "fold", what, &g)) return NULL;
    if (g.Wo < 1 || g.Ho > L / g.Wo ||
        g.Ho * g.Wo != L) { /* by division first: Ho·Wo may pass int64_t */
        tg_fail(tp, TG_ESHAPE, "tg_fold: %s: %lld columns, but the geometry has %lldx%lld windows",
                what, (long long)L, (long long)g.Ho, (long long)g.Wo);
        return NULL;
    }
    const int64_t shape[4] = {N, g.C, H, W};
    if (tg_shape_numel(4, shape) < 0) {
        tg_shape_fail(tp, "fold", 4, shape);
        return NULL;
    }
    tg_node *n = tg_op_begin(tp, TG_OP_fold, 1, &cols, 4, shape);
    if (!n) return NULL;
    geom *s = tg_op_save(tp, n, sizeof *s);
    if (!s) return NULL;
    *s = g;
    return tg_op_finish(tp, n);
}

/* ---- the same backwards in ops (tg_op.vjp) ---- */
/* unfold's adjoint is fold and fold's is unfold, in the same geometry. */
void tg_unfold_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    const geom *g = n->saved;
    const tg_conv2d_opts o = geom_opts(g, 1);
    dx[0] = tg_fold(tp, dy, g->H, g->W, g->kh, g->kw, &o);
}

void tg_fold_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    (void)want;
    const geom *g = n->saved;
    const tg_conv2d_opts o = geom_opts(g, 1);
    dx[0] = tg_unfold(tp, dy, g->kh, g->kw, &o);
}

/* t (NULL after an error) reshaped to nd sizes */
static tg_tensor *view(tg_tape *tp, tg_tensor *t, int nd, const int64_t *shape)
{
    return t ? tg_reshape(tp, t, nd, shape) : NULL;
}

/* t with axes a and b swapped: a reshape when either has size 1 (the same order of
 * elements), else tg_transpose. */
static tg_tensor *swap(tg_tape *tp, tg_tensor *t, int a, int b)
{
    if (!t) return NULL;
    if (t->shape[a] != 1 && t->shape[b] != 1) return tg_transpose(tp, t, a, b);
    int64_t s[TG_MAX_DIMS];
    memcpy(s, t->shape, (size_t)t->ndim * sizeof *s);
    s[a] = t->shape[b], s[b] = t->shape[a];
    return tg_reshape(tp, t, t->ndim, s);
}

/* [N, G, M, L] viewed from t [N, G·M·L] ([N, G·M, L], [N,G·M,H,W]...) into [G, M, N·L]:
 * group-major, images side by side in each row. */
static tg_tensor *group_rows(tg_tape *tp, tg_tensor *t, int64_t N, int64_t G, int64_t M, int64_t L)
{
    const int64_t s3[3] = {N, G, M * L}, s4[4] = {G, N, M, L}, s[3] = {G, M, N * L};
    return view(tp, swap(tp, view(tp, swap(tp, view(tp, t, 3, s3), 0, 1), 4, s4), 1, 2), 3, s);
}

/* With w_q [Og, K] the rows of group q and cols = unfold(x) [N, G·K, L]:
 * dx = fold(cols_grad), cols_grad_{n,q} = w_qᵀ · dy_{n,q};  dw_q = Σ_n dy_{n,q} · cols_{n,q}ᵀ;
 * db = Σ_{n,l} dy. One group: w's transpose times dy batched over the images, and dw as one
 * product of [O, N·L] by [K, N·L]ᵀ; more groups: products batched over the groups. */
void tg_conv2d_vjp(tg_tape *tp, const tg_node *n, tg_tensor *dy, const bool *want, tg_tensor **dx)
{
    const conv_saved *s = n->saved;
    const geom *g = &s->g;
    tg_tensor *x = n->in[0], *w = n->in[1];
    const int64_t N = x->shape[0], O = s->O, G = s->G, Og = O / G, K = g->C / G * g->kh * g->kw;
    const int64_t L = g->Ho * g->Wo;
    const tg_conv2d_opts o = geom_opts(g, 1);
    const int64_t sy[3] = {N, O, L};
    tg_tensor *dy3 = tg_reshape(tp, dy, 3, sy);
    if (want[0]) {
        tg_tensor *cg;
        if (G == 1) {
            const int64_t sw[2] = {O, K};
            cg = tg_matmul(tp, swap(tp, view(tp, w, 2, sw), 0, 1), dy3); /* [N, K, L] */
        } else {
            const int64_t sw[3] = {G, Og, K}, s4[4] = {G, K, N, L}, sc[3] = {N, G * K, L};
            tg_tensor *p = tg_matmul(tp, swap(tp, view(tp, w, 3, sw), 1, 2),
                                     group_rows(tp, dy3, N, G, Og, L)); /* [G, K, N·L] */
            cg = view(tp, swap(tp, swap(tp, view(tp, p, 4, s4), 1, 2), 0, 1), 3, sc);
        }
        dx[0] = cg ? tg_fold(tp, cg, g->H, g->W, g->kh, g->kw, &o) : NULL;
    }
    if (want[1]) {
        tg_tensor *u = tg_unfold(tp, x, g->kh, g->kw, &o), *dw; /* [N, G·K, L] */
        if (G == 1) {
            const int64_t sd[2] = {O, N * L}, su[2] = {K, N * L};
            dw = tg_matmul_t(tp, view(tp, swap(tp, dy3, 0, 1), 2, sd),
                             view(tp, swap(tp, u, 0, 1), 2, su), false, true);
        } else { /* u as [G, N, K, L], then [G, N, L, K] -> [G, N·L, K] */
            const int64_t s3[3] = {N, G, K * L}, s4[4] = {G, N, K, L}, su[3] = {G, N * L, K};
            tg_tensor *ug = view(
                tp, swap(tp, view(tp, swap(tp, view(tp, u, 3, s3), 0, 1), 4, s4), 2, 3), 3, su);
            dw = tg_matmul(tp, group_rows(tp, dy3, N, G, Og, L), ug); /* [G, Og, K] */
        }
        dx[1] = view(tp, dw, 4, w->shape);
    }
    if (n->n_in > 2 && want[2]) /* the bias, when there is one */
        dx[2] = dy3 ? tg_sum(tp, tg_sum(tp, dy3, 2, false), 0, false) : NULL;
}
