/* ops/broadcast_t.h: the row loops of broadcast_to and sum_to (ops/broadcast.c), for the
 * element type T. ops/broadcast.c stamps it for f32 and f64 (ops/stamp.h). No include guard,
 * on purpose. */

static void FN(add)(T *restrict d, const T *restrict s, int64_t n)
{
    for (int64_t i = 0; i < n; i++) d[i] += s[i];
}
static void FN(fill)(T *restrict d, T v, int64_t n)
{
    for (int64_t i = 0; i < n; i++) d[i] = v;
}
static void FN(add_scalar)(T *restrict d, T v, int64_t n)
{
    for (int64_t i = 0; i < n; i++) d[i] += v;
}
/* eight partial sums, as elementwise.c's ew_sum: one vector register, less rounding */
static T FN(sum)(const T *restrict s, int64_t n)
{
    T acc[8] = {0}, r = 0;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += s[i + k];
    for (; i < n; i++) r += s[i];
    for (int k = 0; k < 8; k++) r += acc[k];
    return r;
}
