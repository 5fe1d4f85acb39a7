/* examples/boolean.c: a single threshold neuron y = [x·w + b > 0] computes AND, OR and NOT
 * with the lectures' fixed weights (x1 + x2 - 1.5, x1 + x2 - 0.5, -x1 + 0.5). */
#include "demo.h"

/* Prints the truth table of step(x·w + b) over the rows of x and checks it against want. */
static int neuron(tg_tape *tp, const char *name, int n_in, const double *w, double b,
                  const int *want)
{
    int rows = 1 << n_in;
    int64_t xs[2] = {rows, n_in}, ws[2] = {n_in, 1}, bs[1] = {1};
    tg_tensor *x = tg_tensor_new(TG_F64, 2, xs), *wt = tg_tensor_from(TG_F64, 2, ws, w);
    tg_tensor *bt = tg_tensor_from(TG_F64, 1, bs, &b);
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < n_in; j++) tg_set(x, r * n_in + j, (r >> (n_in - 1 - j)) & 1);
    tg_tensor *y = tg_step(tp, tg_linear(tp, x, wt, bt));
    int wrong = y ? 0 : 1;
    printf("%s: y = [", name);
    for (int j = 0; j < n_in; j++) printf("%s%+g x%d", j ? " " : "", w[j], j + 1);
    printf(" %+g > 0]\n", b);
    for (int r = 0; y && r < rows; r++) {
        printf("  ");
        for (int j = 0; j < n_in; j++) printf("x%d=%g ", j + 1, tg_get(x, r * n_in + j));
        printf("-> %g\n", tg_get(y, r));
        wrong += tg_get(y, r) != want[r];
    }
    tg_tensor_free(x), tg_tensor_free(wt), tg_tensor_free(bt);
    return wrong;
}

int demo_boolean(const char *outdir)
{
    (void)outdir;
    tg_tape *tp = tg_tape_new();
    int wrong = 0;
    wrong += neuron(tp, "AND", 2, (double[]){1, 1}, -1.5, (int[]){0, 0, 0, 1});
    wrong += neuron(tp, "OR", 2, (double[]){1, 1}, -0.5, (int[]){0, 1, 1, 1});
    wrong += neuron(tp, "NOT", 1, (double[]){-1}, 0.5, (int[]){1, 0});
    printf("%s\n", wrong ? "some outputs are wrong" : "all three truth tables are right");
    tg_tape_free(tp);
    return wrong != 0;
}

#ifdef TG_EXAMPLE_MAIN
DEMO_MAIN(boolean)
#endif
