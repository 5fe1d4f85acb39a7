/* ops/transpose_t.h: the copy of transpose (ops/shape.c describes the [A, n0, B, n1, C]
 * view), for the element type T: x into y forward, dy added into dx when back. ops/shape.c
 * includes this file twice: T = float with FN(name) = name_f32, then T = double with
 * name_f64. No include guard, on purpose. */

static void FN(transpose)(const tg_node *n, const T *restrict src, T *restrict dst, bool back)
{
    const int64_t A = tg_node_attr(n)->transpose.A, n0 = tg_node_attr(n)->transpose.n0;
    const int64_t B = tg_node_attr(n)->transpose.B, n1 = tg_node_attr(n)->transpose.n1;
    const int64_t C = tg_node_attr(n)->transpose.C;
    for (int64_t a = 0; a < A; a++)
        for (int64_t i = 0; i < n0; i++)
            for (int64_t b = 0; b < B; b++)
                for (int64_t j = 0; j < n1; j++) {
                    int64_t xi = (((a * n0 + i) * B + b) * n1 + j) * C;
                    int64_t yi = (((a * n1 + j) * B + b) * n0 + i) * C;
                    if (back)
                        for (int64_t c = 0; c < C; c++) dst[xi + c] += src[yi + c];
                    else
                        for (int64_t c = 0; c < C; c++) dst[yi + c] = src[xi + c];
                }
}
