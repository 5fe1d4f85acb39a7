/* cli/cli.h: what the `tapegrad` subcommands share: option parsing and output helpers. */
#ifndef TAPEGRAD_CLI_H
#define TAPEGRAD_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "tapegrad.h"

/* Options are "--name value" pairs or "--flag". An option table lists what a command
 * accepts; parsing stores the raw strings, and typed getters convert and check them. */
typedef struct cli_opt {
    const char *name; /* without the dashes */
    bool flag;        /* takes no value */
    const char *def;  /* default value (NULL: unset) */
    const char *help;
    const char *val; /* filled by cli_parse */
} cli_opt;

/* Fills opts[i].val from argv; prints the problem and returns nonzero on an unknown option
 * or a missing value. Positional arguments go to *pos (at most max_pos). */
int cli_parse(int argc, char **argv, cli_opt *opts, int n_opts, const char **pos, int max_pos,
              int *n_pos);
const char *cli_str(const cli_opt *opts, int n, const char *name);
bool cli_flag(const cli_opt *opts, int n, const char *name);
/* Numeric getters: nonzero (and a message naming the option) when the value is not a
 * number in [lo, hi]. */
int cli_double(const cli_opt *opts, int n, const char *name, double lo, double hi, double *out);
int cli_int(const cli_opt *opts, int n, const char *name, long long lo, long long hi,
            long long *out);
/* A comma-separated list of positive integers ("784,256,10"); count in *n_out. */
int cli_int_list(const char *s, long long *out, int max, int *n_out);

/* Bounds on an MLP of --layers: each size, and the weights and biases of its linear layers
 * in all, so that an absurd size is refused at once instead of after minutes of paging. */
#define CLI_MAX_LAYER_SIZE 100000
#define CLI_MAX_WEIGHTS 50000000LL
/* Option name's layer sizes (at least 2, at most max) into sizes; 2 and a message naming
 * the option when the list is malformed or outside the bounds. */
int cli_layers(const cli_opt *opts, int n, const char *name, long long *sizes, int max,
               int *n_sizes);
/* 0 when sizes (n of them) are within the bounds, else 2 and a message naming option. */
int cli_layers_bounded(const char *option, const char *value, const long long *sizes, int n);
/* The hidden activations the commands take; 2 and a message naming the option otherwise. */
int cli_act(const cli_opt *opts, int n, const char *name, const char **out);
/* Whether a file can be written at path the way tg_nn_save writes it (a temporary file
 * beside it, renamed over it): the directory takes a new file (one is made and removed
 * again) and path is not a directory. 1 and a message naming the option if not. */
int cli_check_writable(const char *option, const char *path);
void cli_usage_opts(FILE *f, const cli_opt *opts, int n);
/* Whether the option was given on the command line (not left at its default). */
bool cli_given(const cli_opt *opts, int n, const char *name);

/* --arch: the spec with its whitespace removed into out (TG_NN_SPEC_MAX_LEN + 1 bytes), its
 * syntax checked (tg_nn_spec_check, ndim 0) into *info; 2 and a message "tapegrad: --arch:
 * token 3 '...': ..." naming the token otherwise. */
int cli_arch(const char *spec, char *out, tg_nn_spec_info *info);
/* With --arch given: 1 (after a message) if an MLP option (--layers, --act, --dropout,
 * --batchnorm) is given too, else 0. */
int cli_arch_alone(const cli_opt *opts, int n);
/* The input shape of one example for spec on data of width features: --input-shape
 * (C,H,W or F, of that many elements) when given (shape_opt non-NULL); else [1,s,s] when
 * the spec starts with a conv or pool and images is set and features is s²; else
 * [features]. Then the spec's shapes through it: the output must be [out] when out > 0
 * (the data's classes or targets), at least min_out when min_out > 0, and the parameters
 * and buffers at most CLI_MAX_WEIGHTS elements. 2 and a message naming the option
 * otherwise. */
int cli_arch_input(const char *spec, const char *shape_opt, bool images, int64_t features,
                   int64_t out, int64_t min_out, int *nd, int64_t *shape, tg_nn_spec_info *info);

/* The commands. Each returns the process exit status: 0, 1 on a failure, 2 on bad usage. */
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_gradcheck(int argc, char **argv);
int cmd_graph(int argc, char **argv);
int cmd_demo(int argc, char **argv);

/* Plots with gnuplot when it is installed: columns ycols (1-based, of a CSV with a header
 * line) against column xcol, one line each, into png. Returns 0 when the PNG was written,
 * 1 when gnuplot is missing (a note is printed), -1 on failure. */
int cli_plot_csv(const char *csv, const char *png, const char *title, const char *xlabel,
                 const char *ylabel, int xcol, const int *ycols, int n_y, bool logy);
bool cli_have_program(const char *name);
double cli_now(void); /* seconds, monotonic */
/* An error message to stderr: "tapegrad: " (then "rank R: " once cli_set_rank has set a
 * rank >= 0, as train --distributed does on every rank), then fmt's text. */
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_set_rank(int rank);

#endif
