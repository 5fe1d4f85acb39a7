/* data/dataset.c: splits, standardisation, batch iteration and metrics. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"

void tg_dataset_free(tg_dataset *ds)
{
    if (!ds) return;
    tg_tensor_free(ds->x);
    tg_tensor_free(ds->y);
    free(ds->x_bytes);
    memset(ds, 0, sizeof *ds);
}

/* Bytes of one row of t (its first dimension indexes rows). */
static size_t row_bytes(const tg_tensor *t)
{
    int64_t n = tg_tensor_dim(t, 0);
    return n ? (size_t)(tg_tensor_numel(t) / n) * tg_dtype_size(tg_tensor_dtype(t)) : 0;
}

/* dst row i := src row idx[i], for i < rows. */
static void gather(tg_tensor *dst, const tg_tensor *src, const int64_t *idx, int64_t rows)
{
    size_t rb = row_bytes(src);
    char *d = tg_data(dst);
    const char *s = tg_data((tg_tensor *)src);
    for (int64_t i = 0; i < rows; i++) memcpy(d + (size_t)i * rb, s + (size_t)idx[i] * rb, rb);
}

/* A new tensor like t with `rows` rows. */
static tg_tensor *like(const tg_tensor *t, int64_t rows)
{
    int64_t shape[TG_MAX_DIMS];
    for (int i = 0; i < tg_tensor_ndim(t); i++) shape[i] = tg_tensor_dim(t, i);
    shape[0] = rows;
    return tg_tensor_new(tg_tensor_dtype(t), tg_tensor_ndim(t), shape);
}

static void shuffle(int64_t *idx, int64_t n, tg_rng *r)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)tg_rng_below(r, (uint64_t)i + 1), t = idx[i];
        idx[i] = idx[j], idx[j] = t;
    }
}

/* dst row i := byte row idx[i] of d features, each worth byte · (1/255), rounded as the
 * IDX reader rounds it (so byte and f32 data sets give identical batches). */
static void gather_bytes(tg_tensor *dst, const unsigned char *src, int64_t d, const int64_t *idx,
                         int64_t rows)
{
    if (tg_tensor_dtype(dst) == TG_F32) {
        float lut[256], *o = tg_data(dst);
        for (int k = 0; k < 256; k++) lut[k] = (float)((double)k * (1.0 / 255.0));
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < d; j++) o[i * d + j] = lut[src[idx[i] * d + j]];
    } else {
        double lut[256], *o = tg_data(dst);
        for (int k = 0; k < 256; k++) lut[k] = (double)k * (1.0 / 255.0);
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < d; j++) o[i * d + j] = lut[src[idx[i] * d + j]];
    }
}

/* A batcher also takes byte features (x NULL, x_bytes set). */
static bool valid_for_batches(const tg_dataset *ds)
{
    if (ds && !ds->x && ds->x_bytes && ds->y)
        return ds->d > 0 && tg_tensor_ndim(ds->y) >= 1 && tg_tensor_dim(ds->y, 0) == ds->n;
    return ds && ds->x && ds->y && tg_tensor_ndim(ds->x) == 2 && tg_tensor_dim(ds->x, 0) == ds->n &&
           tg_tensor_dim(ds->x, 1) == ds->d && tg_tensor_dim(ds->y, 0) == ds->n &&
           tg_tensor_dtype(ds->x) == tg_tensor_dtype(ds->y);
}

static bool valid(const tg_dataset *ds)
{
    return ds && ds->x && ds->y && tg_tensor_ndim(ds->x) == 2 && tg_tensor_dim(ds->x, 0) == ds->n &&
           tg_tensor_dim(ds->x, 1) == ds->d && tg_tensor_ndim(ds->y) >= 1 &&
           tg_tensor_dim(ds->y, 0) == ds->n && tg_tensor_dtype(ds->x) == tg_tensor_dtype(ds->y);
}

int tg_dataset_split(const tg_dataset *all, double test_fraction, uint64_t seed, tg_dataset *train,
                     tg_dataset *test, tg_status *st)
{
    if (!valid(all) || !train || !test)
        return tg_status_set(st, TG_EARG, "tg_dataset_split: bad data set or NULL output");
    if (st) st->code = TG_OK, st->msg[0] = '\0';
    if (!(test_fraction > 0 && test_fraction < 1))
        return tg_status_set(st, TG_EARG, "tg_dataset_split: test fraction %g, want 0 < f < 1",
                             test_fraction);
    int64_t n = all->n, n_test = (int64_t)llround((double)n * test_fraction), n_train = n - n_test;
    if (n_train < 1 || n_test < 1)
        return tg_status_set(st, TG_EARG, "tg_dataset_split: %lld rows cannot be split %g/%g",
                             (long long)n, 1 - test_fraction, test_fraction);
    int64_t *idx = malloc(sizeof *idx * (size_t)n);
    tg_dataset a = *all, b = *all;
    a.x_bytes = b.x_bytes = NULL;
    a.x = like(all->x, n_train), a.y = like(all->y, n_train), a.n = n_train;
    b.x = like(all->x, n_test), b.y = like(all->y, n_test), b.n = n_test;
    if (!idx || !a.x || !a.y || !b.x || !b.y) {
        free(idx);
        tg_dataset_free(&a), tg_dataset_free(&b);
        return tg_status_set(st, TG_ENOMEM, "tg_dataset_split: out of memory");
    }
    tg_rng r;
    tg_rng_seed(&r, seed);
    for (int64_t i = 0; i < n; i++) idx[i] = i;
    shuffle(idx, n, &r);
    gather(a.x, all->x, idx, n_train), gather(a.y, all->y, idx, n_train);
    gather(b.x, all->x, idx + n_train, n_test), gather(b.y, all->y, idx + n_train, n_test);
    free(idx);
    *train = a, *test = b;
    return TG_OK;
}

/* Column statistics and their use, row by row so the walk is sequential in memory. */
#define STANDARDIZE(T)                                                                             \
    static void col_sums_##T(const T *x, int64_t n, int64_t d, const double *shift, double *acc)   \
    {                                                                                              \
        for (int64_t i = 0; i < n; i++)                                                            \
            for (int64_t c = 0; c < d; c++) {                                                      \
                double v = (double)x[i * d + c] - (shift ? shift[c] : 0.0);                        \
                acc[c] += shift ? v * v : v;                                                       \
            }                                                                                      \
    }                                                                                              \
    static void apply_##T(T *x, int64_t n, int64_t d, const double *mean, const double *k)         \
    {                                                                                              \
        for (int64_t i = 0; i < n; i++)                                                            \
            for (int64_t c = 0; c < d; c++)                                                        \
                x[i * d + c] = (T)(((double)x[i * d + c] - mean[c]) * k[c]);                       \
    }
STANDARDIZE(float)
STANDARDIZE(double)
#undef STANDARDIZE

int tg_dataset_standardize(tg_dataset *fit, tg_dataset *other)
{
    if (!valid(fit) || fit->n < 1) return TG_EARG;
    if (other && (!valid(other) || other->d != fit->d ||
                  tg_tensor_dtype(other->x) != tg_tensor_dtype(fit->x)))
        return TG_EARG;
    int64_t n = fit->n, d = fit->d;
    bool f32 = tg_tensor_dtype(fit->x) == TG_F32;
    double *mean = calloc(2 * (size_t)d + 1, sizeof *mean);
    if (!mean) return TG_ENOMEM;
    double *k = mean + d; /* the second half: squared deviations, then 1 / sd */
    /* Two passes (mean, then squared deviations): no cancellation in the variance. */
    if (f32) col_sums_float(tg_data(fit->x), n, d, NULL, mean);
    else col_sums_double(tg_data(fit->x), n, d, NULL, mean);
    for (int64_t c = 0; c < d; c++) mean[c] /= (double)n;
    if (f32) col_sums_float(tg_data(fit->x), n, d, mean, k);
    else col_sums_double(tg_data(fit->x), n, d, mean, k);
    for (int64_t c = 0; c < d; c++) {
        double sd = sqrt(k[c] / (double)n);
        k[c] = sd > 0 ? 1 / sd : 1; /* a constant column is only centred */
    }
    tg_dataset *sets[2] = {fit, other};
    for (int s = 0; s < 2 && sets[s]; s++) {
        if (f32) apply_float(tg_data(sets[s]->x), sets[s]->n, d, mean, k);
        else apply_double(tg_data(sets[s]->x), sets[s]->n, d, mean, k);
    }
    free(mean);
    return TG_OK;
}

/* ---- batches ---- */
/* A batcher is rank `rank` of `size` (1 of 1 for tg_batcher_new). Every epoch has one
 * permutation of the rows, the same for any size, cut into global batches of gbatch rows
 * (the last may be shorter); each global batch of g rows is cut into size contiguous parts,
 * the first g mod size one row longer, and this rank takes part `rank`. */
struct tg_batcher {
    const tg_dataset *ds;
    int64_t batch;  /* rows of a full global batch's part (clamped to n) */
    int64_t gbatch; /* rows of a full global batch: size · batch, or n if that is more */
    int64_t pos;    /* the next global batch's first position in perm */
    int64_t grows;  /* rows of the global batch the last tg_batcher_next returned */
    int64_t *perm;
    int rank, size;
    bool shuffle;
    tg_rng rng;
    tg_tensor *x, *y;           /* full parts (batch rows), if there is a full global batch */
    tg_tensor *x_last, *y_last; /* this rank's part of the shorter last one, if it differs */
};

/* A new [rows, d] feature tensor for ds and a [rows, ...] target tensor. */
static bool batch_pair(const tg_dataset *ds, int64_t rows, tg_tensor **x, tg_tensor **y)
{
    int64_t xs[2] = {rows, ds->d};
    *x = ds->x ? like(ds->x, rows) : tg_tensor_new(tg_tensor_dtype(ds->y), 2, xs);
    *y = like(ds->y, rows);
    return *x && *y;
}

static tg_batcher *batcher_new(const char *who, const tg_dataset *ds, int64_t batch, bool shuffle,
                               uint64_t seed, int rank, int size, tg_status *st)
{
    if (!valid_for_batches(ds) || ds->n < 1) {
        tg_status_set(st, TG_EARG, "%s: empty or malformed data set", who);
        return NULL;
    }
    if (batch < 1) {
        tg_status_set(st, TG_EARG, "%s: batch size %lld, want >= 1", who, (long long)batch);
        return NULL;
    }
    if (size < 1 || rank < 0 || rank >= size) {
        tg_status_set(st, TG_EARG, "%s: rank %d of size %d, want size >= 1 and 0 <= rank < size",
                      who, rank, size);
        return NULL;
    }
    int64_t n = ds->n;
    if (batch > n) batch = n;
    /* size · batch > n exactly when batch > n / size: then the epoch is one global batch. */
    bool full = batch <= n / size;
    int64_t gbatch = full ? (int64_t)size * batch : n, g_last = full ? n % gbatch : n;
    int64_t last = g_last ? g_last / size + (rank < g_last % size) : 0; /* this rank's rows */
    bool own_last = g_last && !(full && last == batch);
    tg_batcher *b = calloc(1, sizeof *b);
    bool ok = b != NULL;
    if (b) {
        b->ds = ds, b->batch = batch, b->gbatch = gbatch, b->shuffle = shuffle;
        b->rank = rank, b->size = size;
        b->perm = malloc(sizeof *b->perm * (size_t)n);
        ok = b->perm && (!full || batch_pair(ds, batch, &b->x, &b->y)) &&
             (!own_last || batch_pair(ds, last, &b->x_last, &b->y_last));
    }
    if (!ok) {
        tg_batcher_free(b);
        tg_status_set(st, TG_ENOMEM, "%s: out of memory", who);
        return NULL;
    }
    tg_rng_seed(&b->rng, seed);
    for (int64_t i = 0; i < n; i++) b->perm[i] = i;
    tg_batcher_reset(b);
    if (st) st->code = TG_OK, st->msg[0] = '\0';
    return b;
}

tg_batcher *tg_batcher_new(const tg_dataset *ds, int64_t batch, bool shuffle, uint64_t seed,
                           tg_status *st)
{
    return batcher_new("tg_batcher_new", ds, batch, shuffle, seed, 0, 1, st);
}

tg_batcher *tg_batcher_new_shard(const tg_dataset *ds, int64_t batch, bool shuffle, uint64_t seed,
                                 int rank, int size, tg_status *st)
{
    return batcher_new("tg_batcher_new_shard", ds, batch, shuffle, seed, rank, size, st);
}

void tg_batcher_free(tg_batcher *b)
{
    if (!b) return;
    free(b->perm);
    tg_tensor_free(b->x), tg_tensor_free(b->y), tg_tensor_free(b->x_last),
        tg_tensor_free(b->y_last);
    free(b);
}

void tg_batcher_reset(tg_batcher *b)
{
    if (!b) return;
    b->pos = 0, b->grows = 0;
    if (b->shuffle) shuffle(b->perm, b->ds->n, &b->rng);
}

bool tg_batcher_next(tg_batcher *b, tg_tensor **x, tg_tensor **y)
{
    if (!b || b->pos >= b->ds->n) {
        if (b) b->grows = 0;
        return false;
    }
    int64_t g = b->ds->n - b->pos < b->gbatch ? b->ds->n - b->pos : b->gbatch;
    int64_t q = g / b->size, rem = g % b->size;
    int64_t start = b->pos + b->rank * q + (b->rank < rem ? b->rank : rem);
    int64_t rows = q + (b->rank < rem);
    bool big = rows == b->batch && b->x;
    tg_tensor *bx = big ? b->x : b->x_last, *by = big ? b->y : b->y_last;
    if (b->ds->x) gather(bx, b->ds->x, b->perm + start, rows);
    else gather_bytes(bx, b->ds->x_bytes, b->ds->d, b->perm + start, rows);
    gather(by, b->ds->y, b->perm + start, rows);
    b->pos += g, b->grows = g;
    if (x) *x = bx;
    if (y) *y = by;
    return true;
}

int64_t tg_batcher_count(const tg_batcher *b)
{
    return b ? (b->ds->n + b->gbatch - 1) / b->gbatch : 0;
}

int64_t tg_batcher_global_rows(const tg_batcher *b) { return b ? b->grows : 0; }

/* The state: u64 rows, u64 position, u64 shuffle (0 or 1), u64 generator[4], u64 perm[n]. */
#define STATE_WORDS 7

size_t tg_batcher_state_size(const tg_batcher *b)
{
    return b ? 8 * (STATE_WORDS + (size_t)b->ds->n) : 0;
}

int tg_batcher_state_save(const tg_batcher *b, void *buf, size_t size, tg_status *st)
{
    if (!b || !buf) return tg_status_set(st, TG_EARG, "tg_batcher_state_save: NULL argument");
    if (size != tg_batcher_state_size(b))
        return tg_status_set(st, TG_EARG, "tg_batcher_state_save: buffer of %zu bytes, want %zu",
                             size, tg_batcher_state_size(b));
    uint64_t head[STATE_WORDS] = {(uint64_t)b->ds->n, (uint64_t)b->pos, b->shuffle, b->rng.s[0],
                                  b->rng.s[1],        b->rng.s[2],      b->rng.s[3]};
    memcpy(buf, head, sizeof head);
    memcpy((char *)buf + sizeof head, b->perm, 8 * (size_t)b->ds->n);
    return TG_OK;
}

int tg_batcher_state_load(tg_batcher *b, const void *buf, size_t size, tg_status *st)
{
    if (!b || !buf) return tg_status_set(st, TG_EARG, "tg_batcher_state_load: NULL argument");
    int64_t n = b->ds->n;
    uint64_t head[STATE_WORDS];
    if (size < sizeof head)
        return tg_status_set(st, TG_EFORMAT, "batcher state: %zu bytes, too short", size);
    memcpy(head, buf, sizeof head);
    if (head[0] != (uint64_t)n || size != tg_batcher_state_size(b))
        return tg_status_set(st, TG_ESHAPE,
                             "batcher state of %llu rows (%zu bytes), the data set has %lld",
                             (unsigned long long)head[0], size, (long long)n);
    if (head[2] != b->shuffle)
        return tg_status_set(st, TG_EARG, "batcher state %s shuffling, the batcher %s",
                             head[2] ? "with" : "without", b->shuffle ? "shuffles" : "does not");
    if (head[1] > (uint64_t)n || (head[1] % (uint64_t)b->gbatch && head[1] != (uint64_t)n))
        return tg_status_set(st, TG_EFORMAT,
                             "batcher state: position %llu is no global batch's start in %lld "
                             "rows of global batches of %lld",
                             (unsigned long long)head[1], (long long)n, (long long)b->gbatch);
    /* perm must be a permutation of 0..n-1: every row once */
    const unsigned char *p = (const unsigned char *)buf + sizeof head;
    unsigned char *seen = calloc((size_t)n, 1);
    if (!seen) return tg_status_set(st, TG_ENOMEM, "tg_batcher_state_load: out of memory");
    int64_t bad = -1;
    for (int64_t i = 0; i < n && bad < 0; i++) {
        uint64_t v;
        memcpy(&v, p + 8 * i, 8);
        if (v >= (uint64_t)n || seen[v]) bad = i;
        else seen[v] = 1;
    }
    free(seen);
    if (bad >= 0)
        return tg_status_set(st, TG_EFORMAT,
                             "batcher state: the order is no permutation of the rows (entry "
                             "%lld)",
                             (long long)bad);
    memcpy(b->perm, p, 8 * (size_t)n);
    b->pos = (int64_t)head[1], b->grows = 0;
    for (int i = 0; i < 4; i++) b->rng.s[i] = head[3 + i];
    return TG_OK;
}

/* ---- metrics ---- */
/* True if every label is a class index: an integer 0..n_classes-1 (NaN is not). */
static bool class_labels(const tg_tensor *labels, int64_t n_classes)
{
    for (int64_t r = 0; r < tg_tensor_numel(labels); r++) {
        double t = tg_get(labels, r);
        if (!(t >= 0 && t < (double)n_classes) || t != floor(t)) return false;
    }
    return true;
}

static int64_t argmax_row(const tg_tensor *s, int64_t r, int64_t c)
{
    int64_t best = 0;
    for (int64_t j = 1; j < c; j++)
        if (tg_get(s, r * c + j) > tg_get(s, r * c + best)) best = j;
    return best;
}

double tg_accuracy(const tg_tensor *scores, const tg_tensor *labels)
{
    if (!scores || !labels || tg_tensor_ndim(scores) != 2 ||
        tg_tensor_numel(labels) != tg_tensor_dim(scores, 0) || tg_tensor_dim(scores, 0) == 0 ||
        !class_labels(labels, tg_tensor_dim(scores, 1)))
        return (double)NAN;
    int64_t n = tg_tensor_dim(scores, 0), c = tg_tensor_dim(scores, 1), right = 0;
    for (int64_t r = 0; r < n; r++) right += (double)argmax_row(scores, r, c) == tg_get(labels, r);
    return (double)right / (double)n;
}

double tg_mse(const tg_tensor *pred, const tg_tensor *target)
{
    if (!pred || !target || tg_tensor_numel(pred) != tg_tensor_numel(target) ||
        !tg_tensor_numel(pred))
        return (double)NAN;
    double s = 0;
    for (int64_t i = 0; i < tg_tensor_numel(pred); i++) {
        double d = tg_get(pred, i) - tg_get(target, i);
        s += d * d;
    }
    return s / (double)tg_tensor_numel(pred);
}

int tg_confusion_matrix(const tg_tensor *scores, const tg_tensor *labels, int n_classes,
                        int64_t *out)
{
    if (!scores || !labels || !out || n_classes < 1 || tg_tensor_ndim(scores) != 2 ||
        tg_tensor_numel(labels) != tg_tensor_dim(scores, 0) ||
        tg_tensor_dim(scores, 1) > n_classes || !class_labels(labels, n_classes))
        return TG_EARG;
    int64_t n = tg_tensor_dim(scores, 0), c = tg_tensor_dim(scores, 1);
    memset(out, 0, sizeof *out * (size_t)n_classes * (size_t)n_classes);
    for (int64_t r = 0; r < n; r++)
        out[(int64_t)tg_get(labels, r) * n_classes + argmax_row(scores, r, c)]++;
    return TG_OK;
}

int tg_confusion_print(FILE *f, const int64_t *m, int n_classes, const char *const *names)
{
    if (!f || !m || n_classes < 1) return TG_EARG;
    fprintf(f, "confusion matrix (rows: true class, columns: predicted)\n%14s", "");
    for (int j = 0; j < n_classes; j++) fprintf(f, " %6d", j);
    fprintf(f, "  recall\n");
    for (int i = 0; i < n_classes; i++) {
        int64_t row = 0;
        for (int j = 0; j < n_classes; j++) row += m[i * n_classes + j];
        if (names && names[i]) fprintf(f, "%2d %-11.11s", i, names[i]);
        else fprintf(f, "%14d", i);
        for (int j = 0; j < n_classes; j++) fprintf(f, " %6lld", (long long)m[i * n_classes + j]);
        fprintf(f, "  %5.1f%%\n", row ? 100.0 * (double)m[i * n_classes + i] / (double)row : 0.0);
    }
    return TG_OK;
}
