/* optim/clip_t.h: clip.c's loops over one gradient, sum_sq_f32 / sum_sq_f64, scale_f32 /
 * scale_f64 and clamp_f32 / clamp_f64, for the element type T. optim/clip.c includes this file
 * twice, as ops/elem.h does ops/elem_t.h: T = float with FN(name) = name_f32, then T = double
 * with name_f64. No include guard, on purpose. */

/* Sum of squares accumulated in double, for f32 gradients too. */
static double FN(sum_sq)(const T *g, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)g[i] * (double)g[i];
    return s;
}
static void FN(scale)(T *g, int64_t n, T c)
{
    for (int64_t i = 0; i < n; i++) g[i] *= c;
}
static void FN(clamp)(T *g, int64_t n, T c)
{
    for (int64_t i = 0; i < n; i++) g[i] = g[i] > c ? c : (g[i] < -c ? -c : g[i]);
}
