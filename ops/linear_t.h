/* ops/linear_t.h: linear's passes around its GEMM (ops/matmul.c), for the element type T:
 * the bias copied into every row of y, and the bias gradient summed over the rows of dy.
 * ops/matmul.c includes this file twice: T = float with FN(name) = name_f32, then
 * T = double with name_f64. No include guard, on purpose. */

static void FN(linear_bias)(tg_node *n, int64_t rows, int64_t cols)
{
    const T *b = n->in[2]->data;
    T *y = tg_node_out(n)->data;
    for (int64_t r = 0; r < rows; r++) memcpy(y + r * cols, b, (size_t)cols * sizeof(T));
}
static void FN(linear_dbias)(tg_node *n, int64_t rows, int64_t cols, bool add)
{
    const T *dy = tg_node_out(n)->grad->data;
    T *db = n->in[2]->grad->data;
    if (!add) memset(db, 0, (size_t)cols * sizeof(T));
    if (cols == 0) return; /* rows may be 2^48 */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) db[c] += dy[r * cols + c];
}
