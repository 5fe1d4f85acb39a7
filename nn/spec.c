/* nn/spec.c: a Sequential from a compact architecture spec (syntax: nn.h, tg_nn_from_spec).
 *
 * Two passes: the syntax into a list of layers with their arguments (nothing depends on the
 * input), then the shapes through them from the input's, which fill in every layer's input
 * channels or features. Building, checking and listing tensors all run both. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

enum {
    L_CONV,
    L_MAXPOOL,
    L_AVGPOOL,
    L_GAP,
    L_FLATTEN,
    L_LINEAR,
    L_BN,
    L_DROPOUT,
    L_PRELU,
    L_ACT,
    N_KINDS
};

#define MAX_ARGS 7
#define BIG ((int64_t)1 << 24) /* bound of every size and geometry argument */

/* An argument: its name, default, and whether it is an integer and in which range. */
typedef struct arg_def {
    const char *name;
    double def; /* NAN: required */
    bool integer;
    double lo, hi;
    bool lo_open; /* lo itself is outside */
    bool hi_open; /* hi itself is outside */
} arg_def;

typedef struct kind_def {
    const char *name;
    int n_args;
    arg_def args[MAX_ARGS];
} kind_def;

static const kind_def KINDS[N_KINDS] = {
    [L_CONV] = {"conv",
                7,
                {{"out", (double)NAN, true, 1, BIG, false, false},
                 {"k", (double)NAN, true, 1, BIG, false, false},
                 {"stride", 1, true, 1, BIG, false, false},
                 {"pad", 0, true, 0, BIG, false, false},
                 {"dilation", 1, true, 1, BIG, false, false},
                 {"groups", 1, true, 1, BIG, false, false},
                 {"bias", 1, true, 0, 1, false, false}}},
    [L_MAXPOOL] = {"maxpool",
                   3,
                   {{"k", (double)NAN, true, 1, BIG, false, false},
                    {"stride", 0, true, 1, BIG, false, false}, /* 0: the kernel size */
                    {"pad", 0, true, 0, BIG, false, false}}},
    [L_AVGPOOL] = {"avgpool",
                   3,
                   {{"k", (double)NAN, true, 1, BIG, false, false},
                    {"stride", 0, true, 1, BIG, false, false},
                    {"pad", 0, true, 0, BIG, false, false}}},
    [L_GAP] = {"gap", 0, {{0}}},
    [L_FLATTEN] = {"flatten", 0, {{0}}},
    [L_LINEAR] = {"linear", 1, {{"out", (double)NAN, true, 1, BIG, false, false}}},
    [L_BN] = {"bn",
              2,
              {{"momentum", 0.1, false, 0, 1, false, false},
               {"eps", 1e-5, false, 0, 1e300, true, false}}},
    [L_DROPOUT] = {"dropout", 1, {{"p", 0.5, false, 0, 1, false, true}}},
    [L_PRELU] = {"prelu", 1, {{"init", 0.25, false, -1e300, 1e300, false, false}}},
    [L_ACT] = {"", 1, {{"alpha", 0, false, -1e300, 1e300, false, false}}},
};

typedef struct spec_layer {
    int kind, act;  /* act: tg_nn_act_id for L_ACT */
    int tok;        /* 1-based token number */
    const char *at; /* the token's text in the spec, len bytes */
    int len;
    double a[MAX_ARGS]; /* the arguments in KINDS order, defaults filled in */
    int in_nd, out_nd;  /* one example's shapes: [F] or [C,H,W] */
    int64_t in[3], out[3];
} spec_layer;

typedef struct spec {
    spec_layer l[TG_NN_SPEC_MAX_LAYERS];
    int n;
} spec;

/* "token 3 'maxpool(0)'" for messages, the token cut to 40 characters. */
static const char *tok_str(const spec_layer *l, char *s, size_t size)
{
    int len = l->len > 40 ? 37 : l->len;
    snprintf(s, size, "token %d '%.*s%s'", l->tok, len, l->at, l->len > 40 ? "..." : "");
    return s;
}

#define FAIL(st, l, code, ...)                                                                     \
    do {                                                                                           \
        char tk_[64], m_[192];                                                                     \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                                      \
        return tg_status_set(st, code, "%s: %s", tok_str(l, tk_, sizeof tk_), m_);                 \
    } while (0)

static const char *skip_ws(const char *p)
{
    while (*p && isspace((unsigned char)*p)) p++;
    return p;
}

/* The arguments of l between p (after '(') and the closing ')' at end. */
static int parse_args(spec_layer *l, const char *p, const char *end, tg_status *st)
{
    const kind_def *k = &KINDS[l->kind];
    bool given[MAX_ARGS] = {false};
    int n_pos = 0;
    bool named_seen = false;
    p = skip_ws(p);
    if (p == end && (k->n_args == 0 || !isnan(k->args[0].def))) return TG_OK; /* "gap()" */
    while (p < end) {
        const char *q = p;
        int idx = -1;
        while (q < end && (isalnum((unsigned char)*q) || *q == '_')) q++;
        const char *eq = skip_ws(q);
        if (q > p && isalpha((unsigned char)*p) && eq < end && *eq == '=') {
            for (int i = 0; i < k->n_args; i++)
                if ((size_t)(q - p) == strlen(k->args[i].name) &&
                    strncmp(p, k->args[i].name, (size_t)(q - p)) == 0)
                    idx = i;
            if (idx < 0) {
                if (k->n_args == 0) FAIL(st, l, TG_EARG, "takes no arguments");
                FAIL(st, l, TG_EARG, "unknown argument '%.*s'", (int)(q - p), p);
            }
            if (given[idx]) FAIL(st, l, TG_EARG, "%s is given twice", k->args[idx].name);
            named_seen = true;
            p = skip_ws(eq + 1);
        } else {
            if (named_seen) FAIL(st, l, TG_EARG, "a positional argument after a named one");
            if (n_pos >= k->n_args) {
                if (k->n_args == 0) FAIL(st, l, TG_EARG, "takes no arguments");
                FAIL(st, l, TG_EARG, "too many arguments (at most %d)", k->n_args);
            }
            idx = n_pos++;
        }
        const arg_def *a = &k->args[idx];
        char num[64];
        const char *ne = p;
        while (ne < end && *ne != ',') ne++;
        const char *nt = ne;
        while (nt > p && isspace((unsigned char)nt[-1])) nt--;
        if (nt == p) FAIL(st, l, TG_EARG, "%s: a number is missing", a->name);
        if ((size_t)(nt - p) >= sizeof num)
            FAIL(st, l, TG_EARG, "%s: '%.20s...' is not a number", a->name, p);
        memcpy(num, p, (size_t)(nt - p));
        num[nt - p] = '\0';
        char *e;
        errno = 0;
        double v;
        if (a->integer) {
            long long iv = strtoll(num, &e, 10);
            if (*e || e == num || errno)
                FAIL(st, l, TG_EARG, "%s: '%s' is not an integer", a->name, num);
            v = (double)iv;
        } else {
            v = strtod(num, &e);
            if (*e || e == num || errno || !isfinite(v))
                FAIL(st, l, TG_EARG, "%s: '%s' is not a finite number", a->name, num);
        }
        if (v < a->lo || (a->lo_open && v == a->lo))
            FAIL(st, l, TG_EARG, "%s %s is %s %.15g", a->name, num,
                 a->lo_open ? "at or below" : "below", a->lo);
        if (v > a->hi || (a->hi_open && v == a->hi))
            FAIL(st, l, TG_EARG, "%s %s is %s %.15g", a->name, num,
                 a->hi_open ? "at or above" : "above", a->hi);
        l->a[idx] = v;
        given[idx] = true;
        p = ne < end ? skip_ws(ne + 1) : ne;
        if (ne < end && p == end) FAIL(st, l, TG_EARG, "an argument is missing after ','");
    }
    for (int i = 0; i < k->n_args; i++)
        if (!given[i] && isnan(k->args[i].def))
            FAIL(st, l, TG_EARG, "%s is missing", k->args[i].name);
    return TG_OK;
}

static const char NAMES[] = "conv maxpool avgpool gap flatten linear bn dropout prelu or an "
                            "activation (relu tanh ...)";

/* One token at [p, p + len). */
static int parse_token(spec_layer *l, const char *p, int len, tg_status *st)
{
    const char *end = p + len;
    while (end > p && isspace((unsigned char)end[-1])) end--;
    p = skip_ws(p);
    l->at = p, l->len = (int)(end - p);
    if (p == end) {
        if (l->tok == 1) FAIL(st, l, TG_EARG, "empty (a '-' at the start?)");
        if (!*end) FAIL(st, l, TG_EARG, "empty (a '-' at the end?)");
        FAIL(st, l, TG_EARG, "empty (two '-' in a row?)");
    }
    const char *q = p;
    while (q < end && (isalnum((unsigned char)*q) || *q == '_')) q++;
    char name[32];
    if (q == p || q - p >= (long)sizeof name)
        FAIL(st, l, TG_EARG, "not a layer name; want %s", q == p ? NAMES : "a shorter name");
    memcpy(name, p, (size_t)(q - p));
    name[q - p] = '\0';
    l->kind = -1;
    for (int k = 0; k < L_ACT; k++)
        if (strcmp(name, KINDS[k].name) == 0) l->kind = k;
    if (l->kind < 0 && (l->act = tg_nn_act_id(name)) >= 0) l->kind = L_ACT;
    if (l->kind < 0) FAIL(st, l, TG_EARG, "unknown layer '%s'; want %s", name, NAMES);
    const kind_def *k = &KINDS[l->kind];
    for (int i = 0; i < MAX_ARGS; i++) l->a[i] = i < k->n_args ? k->args[i].def : 0;
    const char *r = q;
    while (r < end && isspace((unsigned char)*r)) r++;
    if (r == end) {
        if (k->n_args && isnan(k->args[0].def))
            FAIL(st, l, TG_EARG, "%s needs arguments: %s(%s%s)", name, name, k->args[0].name,
                 l->kind == L_CONV ? ", k" : "");
        return TG_OK;
    }
    if (*r != '(') FAIL(st, l, TG_EARG, "unexpected '%c' after '%s'", *r, name);
    if (end[-1] != ')') FAIL(st, l, TG_EARG, "missing ')'");
    const char *close = memchr(r + 1, ')', (size_t)(end - r - 1));
    const char *open2 = memchr(r + 1, '(', (size_t)(end - r - 1));
    if (close != end - 1 || open2) FAIL(st, l, TG_EARG, "unbalanced parentheses");
    bool takes_alpha =
        l->kind != L_ACT || strcmp(name, "leaky_relu") == 0 || strcmp(name, "elu") == 0;
    if (!takes_alpha) {
        if (skip_ws(r + 1) != end - 1) FAIL(st, l, TG_EARG, "%s takes no arguments", name);
        return TG_OK;
    }
    return parse_args(l, r + 1, end - 1, st);
}

/* The syntax: tokens split at '-' outside parentheses. */
static int parse_spec(const char *text, spec *s, tg_status *st)
{
    memset(s, 0, sizeof *s);
    if (!text) return tg_status_set(st, TG_EARG, "the spec is NULL");
    size_t len = strlen(text);
    if (len > TG_NN_SPEC_MAX_LEN)
        return tg_status_set(st, TG_EARG, "the spec has %zu characters, at most %d", len,
                             TG_NN_SPEC_MAX_LEN);
    if (*skip_ws(text) == '\0') return tg_status_set(st, TG_EARG, "the spec is empty");
    const char *p = text;
    for (;;) {
        const char *q = p;
        int depth = 0;
        while (*q && (depth > 0 || *q != '-')) {
            if (*q == '(') depth++;
            else if (*q == ')') depth--;
            q++;
        }
        if (s->n == TG_NN_SPEC_MAX_LAYERS)
            return tg_status_set(st, TG_EARG, "the spec has more than %d layers",
                                 TG_NN_SPEC_MAX_LAYERS);
        spec_layer *l = &s->l[s->n++];
        l->tok = s->n;
        int rc = parse_token(l, p, (int)(q - p), st);
        if (rc) return rc;
        if (!*q) break;
        p = q + 1;
    }
    return TG_OK;
}

static const char *shape_str(int nd, const int64_t *d, char *s, size_t size)
{
    size_t k = (size_t)snprintf(s, size, "[N");
    for (int i = 0; i < nd && k < size; i++)
        k += (size_t)snprintf(s + k, size - k, ",%lld", (long long)d[i]);
    if (k < size) snprintf(s + k, size - k, "]");
    return s;
}

/* a * b, saturated at TG_MAX_NUMEL + 1 (both >= 0). */
static int64_t mul_sat(int64_t a, int64_t b)
{
    if (a && b > (TG_MAX_NUMEL + 1) / a) return TG_MAX_NUMEL + 1;
    int64_t r = a * b;
    return r > TG_MAX_NUMEL ? TG_MAX_NUMEL + 1 : r;
}

/* Output size of a window along one axis; < 1 when it does not fit. */
static int64_t window_out(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil)
{
    int64_t span = dil * (k - 1) + 1, padded = in + 2 * pad;
    return padded < span ? 0 : (padded - span) / stride + 1;
}

/* Shapes through the layers from one example's input shape (ndim 1 or 3). */
static int infer_shapes(spec *s, int ndim, const int64_t *in_shape, tg_status *st)
{
    if (ndim != 1 && ndim != 3)
        return tg_status_set(st, TG_ESHAPE,
                             "the input shape has %d dimensions; want [features] or [C,H,W]", ndim);
    if (!in_shape) return tg_status_set(st, TG_EARG, "the input shape is NULL");
    for (int i = 0; i < ndim; i++)
        if (in_shape[i] < 1 || in_shape[i] > TG_MAX_NUMEL)
            return tg_status_set(st, TG_ESHAPE, "input dimension %d is %lld; want 1..2^48", i,
                                 (long long)in_shape[i]);
    int nd = ndim;
    int64_t sh[3] = {in_shape[0], ndim == 3 ? in_shape[1] : 0, ndim == 3 ? in_shape[2] : 0};
    if (mul_sat(mul_sat(sh[0], nd == 3 ? sh[1] : 1), nd == 3 ? sh[2] : 1) > TG_MAX_NUMEL)
        return tg_status_set(st, TG_ESHAPE, "the input has more than 2^48 elements");
    for (int i = 0; i < s->n; i++) {
        spec_layer *l = &s->l[i];
        char a[80];
        l->in_nd = nd;
        memcpy(l->in, sh, sizeof sh);
        const double *v = l->a;
        switch (l->kind) {
        case L_CONV:
        case L_MAXPOOL:
        case L_AVGPOOL: {
            if (nd != 3)
                FAIL(st, l, TG_ESHAPE, "%s needs [N,C,H,W], the input here is %s",
                     KINDS[l->kind].name, shape_str(nd, sh, a, sizeof a));
            bool conv = l->kind == L_CONV;
            int64_t k = (int64_t)v[conv ? 1 : 0];
            int64_t stride = conv ? (int64_t)v[2] : v[1] > 0 ? (int64_t)v[1] : k;
            int64_t pad = (int64_t)v[conv ? 3 : 2], dil = conv ? (int64_t)v[4] : 1;
            if (!conv && 2 * pad > k)
                FAIL(st, l, TG_EARG, "pad %lld is more than half the kernel %lld", (long long)pad,
                     (long long)k);
            if (conv) {
                int64_t g = (int64_t)v[5], o = (int64_t)v[0];
                if (sh[0] % g || o % g)
                    FAIL(st, l, TG_EARG,
                         "groups %lld does not divide %lld input and %lld output channels",
                         (long long)g, (long long)sh[0], (long long)o);
            }
            int64_t ho = window_out(sh[1], k, stride, pad, dil),
                    wo = window_out(sh[2], k, stride, pad, dil);
            if (ho < 1 || wo < 1)
                FAIL(st, l, TG_ESHAPE,
                     "the %lldx%lld kernel (dilation %lld) is larger than the input %s padded by "
                     "%lld",
                     (long long)k, (long long)k, (long long)dil, shape_str(nd, sh, a, sizeof a),
                     (long long)pad);
            if (conv) sh[0] = (int64_t)v[0];
            sh[1] = ho, sh[2] = wo;
            break;
        }
        case L_GAP:
            if (nd != 3)
                FAIL(st, l, TG_ESHAPE, "gap needs [N,C,H,W], the input here is %s",
                     shape_str(nd, sh, a, sizeof a));
            nd = 1;
            break;
        case L_FLATTEN:
            if (nd == 3) sh[0] = mul_sat(mul_sat(sh[0], sh[1]), sh[2]);
            nd = 1;
            break;
        case L_LINEAR:
            if (nd != 1)
                FAIL(
                    st, l, TG_ESHAPE,
                    "linear needs [N,features], the input here is %s: add flatten or gap before it",
                    shape_str(nd, sh, a, sizeof a));
            if (mul_sat(sh[0], (int64_t)v[0]) > TG_MAX_NUMEL)
                FAIL(st, l, TG_ESHAPE, "a %lld x %lld weight has more than 2^48 elements",
                     (long long)sh[0], (long long)v[0]);
            sh[0] = (int64_t)v[0];
            break;
        default: /* bn, dropout, prelu and the activations keep the shape */ break;
        }
        if (l->kind == L_CONV) {
            int64_t w = mul_sat(mul_sat(sh[0], l->in[0] / (int64_t)v[5]),
                                mul_sat((int64_t)v[1], (int64_t)v[1]));
            if (w > TG_MAX_NUMEL) FAIL(st, l, TG_ESHAPE, "the weight has more than 2^48 elements");
        }
        if (nd == 1) sh[1] = sh[2] = 0;
        l->out_nd = nd;
        memcpy(l->out, sh, sizeof sh);
    }
    return TG_OK;
}

/* The tensors of layer l, in tg_nn_collect order (parameters, then buffers): up to 4. */
static int layer_tensors(const spec_layer *l, int *nds, int64_t (*dims)[4])
{
    const double *v = l->a;
    switch (l->kind) {
    case L_CONV: {
        int64_t o = (int64_t)v[0], k = (int64_t)v[1];
        nds[0] = 4;
        dims[0][0] = o, dims[0][1] = l->in[0] / (int64_t)v[5], dims[0][2] = k, dims[0][3] = k;
        if (v[6] == 0) return 1;
        nds[1] = 1, dims[1][0] = o;
        return 2;
    }
    case L_LINEAR:
        nds[0] = 2, dims[0][0] = l->in[0], dims[0][1] = (int64_t)v[0];
        nds[1] = 1, dims[1][0] = (int64_t)v[0];
        return 2;
    case L_BN:
        for (int i = 0; i < 4; i++) nds[i] = 1, dims[i][0] = l->in[0];
        return 4;
    case L_PRELU: nds[0] = 1, dims[0][0] = 1; return 1;
    default: return 0;
    }
}

static int parse_all(const char *text, int ndim, const int64_t *in_shape, spec *s, tg_status *st)
{
    int rc = parse_spec(text, s, st);
    return rc ? rc : infer_shapes(s, ndim, in_shape, st);
}

int tg_nn_spec_check(const char *text, int ndim, const int64_t *in_shape, tg_nn_spec_info *info,
                     tg_status *st)
{
    spec *s = malloc(sizeof *s);
    if (!s) return tg_status_set(st, TG_ENOMEM, "out of memory");
    int rc = parse_spec(text, s, st);
    tg_nn_spec_info r;
    memset(&r, 0, sizeof r);
    if (!rc) {
        r.n_layers = s->n;
        for (int i = 0; i < s->n; i++) {
            int k = s->l[i].kind;
            if (k == L_CONV || k == L_MAXPOOL || k == L_AVGPOOL || k == L_GAP) {
                r.image_input = true;
                break;
            }
            if (k == L_LINEAR || k == L_FLATTEN) break;
        }
    }
    if (!rc && ndim != 0) rc = infer_shapes(s, ndim, in_shape, st);
    if (!rc && ndim != 0) {
        for (int i = 0; i < s->n; i++) {
            int nds[4];
            int64_t dims[4][4];
            int nt = layer_tensors(&s->l[i], nds, dims);
            for (int t = 0; t < nt; t++) {
                int64_t e = 1;
                for (int d = 0; d < nds[t]; d++) e = mul_sat(e, dims[t][d]);
                bool param = !(s->l[i].kind == L_BN && t >= 2);
                r.n_elems = r.n_elems + e > TG_MAX_NUMEL ? TG_MAX_NUMEL + 1 : r.n_elems + e;
                if (param)
                    r.n_weights =
                        r.n_weights + e > TG_MAX_NUMEL ? TG_MAX_NUMEL + 1 : r.n_weights + e;
            }
            r.n_tensors += nt;
        }
        const spec_layer *last = &s->l[s->n - 1];
        r.out_ndim = last->out_nd;
        memcpy(r.out_shape, last->out, sizeof r.out_shape);
    }
    free(s);
    if (!rc && info) *info = r;
    return rc;
}

/* nn/io.c's check of a saved description: the shapes of the tensors the spec makes (at
 * most max), in tg_nn_collect order; returns their count, or -1 with st set. */
int tg_nn_spec_tensor_shapes(const char *text, int ndim, const int64_t *in_shape, int max, int *nds,
                             int64_t (*dims)[4], tg_status *st);
int tg_nn_spec_tensor_shapes(const char *text, int ndim, const int64_t *in_shape, int max, int *nds,
                             int64_t (*dims)[4], tg_status *st)
{
    spec *s = malloc(sizeof *s);
    if (!s) return tg_status_set(st, TG_ENOMEM, "out of memory"), -1;
    int n = 0;
    if (parse_all(text, ndim, in_shape, s, st)) n = -1;
    for (int i = 0; n >= 0 && i < s->n; i++) {
        int lnd[4];
        int64_t ld[4][4];
        int nt = layer_tensors(&s->l[i], lnd, ld);
        for (int t = 0; t < nt; t++, n++)
            if (n < max) {
                nds[n] = lnd[t];
                memcpy(dims[n], ld[t], sizeof ld[t]);
            }
    }
    free(s);
    return n;
}

static tg_module *make_layer(const spec_layer *l, tg_dtype dt)
{
    const double *v = l->a;
    switch (l->kind) {
    case L_CONV: {
        tg_conv2d_opts o = {.stride = {(int64_t)v[2], (int64_t)v[2]},
                            .padding = {(int64_t)v[3], (int64_t)v[3]},
                            .dilation = {(int64_t)v[4], (int64_t)v[4]},
                            .groups = (int64_t)v[5]};
        return tg_nn_conv2d(l->in[0], (int64_t)v[0], (int64_t)v[1], (int64_t)v[1], &o, v[6] != 0,
                            dt);
    }
    case L_MAXPOOL:
    case L_AVGPOOL: {
        int64_t k = (int64_t)v[0], s = v[1] > 0 ? (int64_t)v[1] : k, p = (int64_t)v[2];
        tg_pool2d_opts o = {.kernel = {k, k}, .stride = {s, s}, .padding = {p, p}};
        return l->kind == L_MAXPOOL ? tg_nn_max_pool2d(&o) : tg_nn_avg_pool2d(&o);
    }
    case L_GAP: return tg_nn_global_avg_pool2d();
    case L_FLATTEN: return tg_nn_flatten();
    case L_LINEAR: return tg_nn_linear(l->in[0], (int64_t)v[0], dt);
    case L_BN:
        return l->in_nd == 3 ? tg_nn_batchnorm2d(l->in[0], v[0], v[1], dt)
                             : tg_nn_batchnorm1d(l->in[0], v[0], v[1], dt);
    case L_DROPOUT: return tg_nn_dropout(v[0]);
    case L_PRELU: return tg_nn_prelu(1, v[0], dt);
    default: { /* an activation: its name is the token's */
        char name[32];
        snprintf(name, sizeof name, "%.*s", l->len, l->at);
        char *paren = strchr(name, '(');
        if (paren) *paren = '\0';
        for (char *e = name + strlen(name); e > name && isspace((unsigned char)e[-1]);) *--e = '\0';
        return tg_nn_activation(name, v[0], dt);
    }
    }
}

tg_module *tg_nn_from_spec(const char *text, int ndim, const int64_t *in_shape, tg_dtype dt,
                           tg_status *st)
{
    if (dt != TG_F32 && dt != TG_F64)
        return tg_status_set(st, TG_EDTYPE, "tg_nn_from_spec: the dtype is not f32 or f64"), NULL;
    spec *s = malloc(sizeof *s);
    if (!s) return tg_status_set(st, TG_ENOMEM, "out of memory"), NULL;
    tg_module *seq = NULL;
    if (!parse_all(text, ndim, in_shape, s, st)) {
        seq = tg_nn_sequential();
        if (!seq) tg_status_set(st, TG_ENOMEM, "out of memory");
        for (int i = 0; seq && i < s->n; i++) {
            if (tg_nn_append(seq, make_layer(&s->l[i], dt))) {
                char tk[64];
                tg_status_set(st, tg_nn_last_status()->code ? tg_nn_last_status()->code : TG_ENOMEM,
                              "%s: %s", tok_str(&s->l[i], tk, sizeof tk), tg_nn_last_status()->msg);
                tg_nn_free(seq);
                seq = NULL;
            }
        }
    }
    free(s);
    return seq;
}
