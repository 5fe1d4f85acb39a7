/* examples/readme.c: the README's ten-line example. A one-layer model tanh(x·w + b), its
 * squared error against a target, one reverse sweep, and the gradient of w. */
#include <stdio.h>
#include <tapegrad.h>

int main(void)
{
    tg_tape *tp = tg_tape_new();
    int64_t xs[2] = {1, 2}, ws[2] = {2, 1}, s1[1] = {1};
    tg_tensor *x = tg_tensor_from(TG_F64, 2, xs, (double[]){0.5, -1.0});
    tg_tensor *w = tg_tensor_from(TG_F64, 2, ws, (double[]){0.3, 0.7});
    tg_tensor *b = tg_tensor_new(TG_F64, 1, s1),
              *t = tg_tensor_from(TG_F64, 2, (int64_t[]){1, 1}, (double[]){1.0});
    tg_set_requires_grad(w, true), tg_set_requires_grad(b, true);
    tg_tensor *loss =
        tg_mse_loss(tp, tg_tanh(tp, tg_linear(tp, x, w, b)), t); /* (tanh(xw+b) - t)² */
    if (tg_backward(tp, loss)) fprintf(stderr, "%s\n", tg_tape_error(tp));
    tg_tensor_print(tg_grad(w), stdout, 10); /* d loss / d w */
    tg_tape_free(tp), tg_tensor_free(x), tg_tensor_free(w), tg_tensor_free(b), tg_tensor_free(t);
    return 0;
}
