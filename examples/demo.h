/* examples/demo.h: the lecture demos. Each examples/<name>.c defines demo_<name>(outdir),
 * run by `tapegrad demo <name>`; built alone with -DTG_EXAMPLE_MAIN (make examples) it is a
 * program of its own taking the output directory as its argument. Each returns 0 when the
 * demo showed what it is meant to show. */
#ifndef TAPEGRAD_EXAMPLES_DEMO_H
#define TAPEGRAD_EXAMPLES_DEMO_H

#include <stdio.h>

#include "tapegrad.h"

#define DEMOS(X)                                                                                   \
    X(boolean, "AND, OR and NOT as threshold neurons with fixed weights")                          \
    X(xor, "XOR: with the extra feature x1*x2, with fixed two layers, and trained")                \
    X(collapse, "a deep linear network is one linear map; a nonlinearity breaks it")               \
    X(approx, "one hidden layer of sigmoids fits 0.2+0.4x^2+0.3x sin(15x)+0.1cos(50x)")            \
    X(symmetry, "constant initialisation: hidden units stay identical and learn less")             \
    X(optimizers, "every first-order optimiser on one task, loss curves on one plot")              \
    X(optimizers_classic,                                                                          \
      "RProp, QuickProp, CG, BFGS, L-BFGS, LM, Newton, Newton-CG: error curves, test error")       \
    X(obd, "Optimal Brain Damage: prune the least salient weights of a trained MLP")               \
    X(cnn, "a small CNN on Fashion-MNIST (2 conv + 2 max-pool + 2 linear), 7 epochs, >= 91.5%")    \
    X(obd_fashion, "Optimal Brain Damage on Fashion-MNIST: LeCun's diagonal vs magnitude pruning") \
    X(ode, "a network learns u'' + u = 0, u(0) = 0, u'(0) = 1 (sin x) from a loss holding u''")

#define X(name, what) int demo_##name(const char *outdir);
DEMOS(X)
#undef X

/* cli_plot_csv (cli/util.c): a gnuplot PNG of CSV columns. */
#include "../cli/cli.h"

#define DEMO_MAIN(name)                                                                            \
    int main(int argc, char **argv) { return demo_##name(argc > 1 ? argv[1] : "."); }

#endif
