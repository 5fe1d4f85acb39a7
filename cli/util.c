/* cli/util.c: option parsing, plotting through gnuplot, timing. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static cli_opt *find(cli_opt *opts, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(opts[i].name, name) == 0) return &opts[i];
    return NULL;
}

int cli_parse(int argc, char **argv, cli_opt *opts, int n_opts, const char **pos, int max_pos,
              int *n_pos)
{
    int np = 0;
    for (int i = 0; i < n_opts; i++) opts[i].val = opts[i].def;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            if (np >= max_pos) {
                cli_err("unexpected argument '%s'\n", a);
                return 2;
            }
            pos[np++] = a;
            continue;
        }
        const char *eq = strchr(a + 2, '=');
        char name[64];
        size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if (len >= sizeof name) len = sizeof name - 1;
        memcpy(name, a + 2, len);
        name[len] = '\0';
        cli_opt *o = find(opts, n_opts, name);
        if (!o) {
            cli_err("unknown option '--%s'\n", name);
            return 2;
        }
        if (o->flag) {
            if (eq) {
                cli_err("--%s takes no value\n", name);
                return 2;
            }
            o->val = "1";
        } else if (eq) {
            o->val = eq + 1;
        } else if (i + 1 < argc) {
            o->val = argv[++i];
        } else {
            cli_err("--%s needs a value\n", name);
            return 2;
        }
    }
    if (n_pos) *n_pos = np;
    return 0;
}

const char *cli_str(const cli_opt *opts, int n, const char *name)
{
    const cli_opt *o = find((cli_opt *)opts, n, name);
    return o ? o->val : NULL;
}

bool cli_flag(const cli_opt *opts, int n, const char *name)
{
    const char *v = cli_str(opts, n, name);
    return v && strcmp(v, "0") != 0;
}

int cli_double(const cli_opt *opts, int n, const char *name, double lo, double hi, double *out)
{
    const char *v = cli_str(opts, n, name);
    if (!v) return 0; /* unset: keep *out */
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !(d >= lo && d <= hi)) {
        cli_err("--%s %s: want a number in [%g, %g]\n", name, v, lo, hi);
        return 2;
    }
    *out = d;
    return 0;
}

int cli_int(const cli_opt *opts, int n, const char *name, long long lo, long long hi,
            long long *out)
{
    const char *v = cli_str(opts, n, name);
    if (!v) return 0;
    char *end;
    errno = 0;
    long long d = strtoll(v, &end, 10);
    if (errno || end == v || *end || d < lo || d > hi) {
        cli_err("--%s %s: want an integer in [%lld, %lld]\n", name, v, lo, hi);
        return 2;
    }
    *out = d;
    return 0;
}

int cli_int_list(const char *s, long long *out, int max, int *n_out)
{
    int n = 0;
    const char *p = s;
    while (p && *p) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || end == p || v <= 0 || v > (1LL << 31) || n >= max) return -1;
        out[n++] = v;
        if (*end == ',') p = end + 1;
        else if (*end == '\0') p = end;
        else return -1;
        if (*end == ',' && !*p) return -1;
    }
    *n_out = n;
    return n ? 0 : -1;
}

int cli_layers_bounded(const char *option, const char *value, const long long *sizes, int n)
{
    long long weights = 0;
    for (int i = 0; i < n; i++) {
        if (sizes[i] > CLI_MAX_LAYER_SIZE) {
            cli_err("--%s %s: size %lld is more than %d\n", option, value, sizes[i],
                    CLI_MAX_LAYER_SIZE);
            return 2;
        }
        if (i) weights += (sizes[i - 1] + 1) * sizes[i]; /* at most 1e10 a layer: no overflow */
    }
    if (weights > CLI_MAX_WEIGHTS) {
        cli_err("--%s %s: %lld weights, more than %lld\n", option, value, weights, CLI_MAX_WEIGHTS);
        return 2;
    }
    return 0;
}

int cli_layers(const cli_opt *opts, int n, const char *name, long long *sizes, int max,
               int *n_sizes)
{
    const char *v = cli_str(opts, n, name);
    if (!v || cli_int_list(v, sizes, max, n_sizes) || *n_sizes < 2) {
        cli_err("--%s %s: want 2 to %d sizes like 784,128,10\n", name, v ? v : "", max);
        return 2;
    }
    return cli_layers_bounded(name, v, sizes, *n_sizes);
}

int cli_act(const cli_opt *opts, int n, const char *name, const char **out)
{
    static const char *const acts[] = {"relu", "tanh", "sigmoid", "leaky_relu", "elu", "softplus"};
    const char *v = cli_str(opts, n, name);
    for (size_t i = 0; v && i < sizeof acts / sizeof acts[0]; i++)
        if (strcmp(v, acts[i]) == 0) return *out = acts[i], 0;
    cli_err("--%s %s: want relu, tanh, sigmoid, leaky_relu, elu or softplus\n", name, v ? v : "");
    return 2;
}

int cli_check_writable(const char *option, const char *path)
{
    struct stat sb;
    if (!*path) {
        cli_err("--%s: the path is empty\n", option);
        return 1;
    }
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        cli_err("--%s %s: is a directory\n", option, path);
        return 1;
    }
    char probe[4096];
    /* named as tg_nn_save names its own: a probe left by a killed run is cleaned up by it */
    int len = snprintf(probe, sizeof probe, "%s.tmp.%d.XXXXXX", path, (int)getpid());
    if (len < 0 || len >= (int)sizeof probe) {
        cli_err("--%s %s: the path is too long\n", option, path);
        return 1;
    }
    int fd = mkstemp(probe); /* where tg_nn_save's temporary file goes */
    if (fd < 0) {
        const char *slash = strrchr(path, '/');
        cli_err("--%s %s: cannot write in %.*s: %s\n", option, path,
                slash ? (int)(slash == path ? 1 : slash - path) : 1, slash ? path : ".",
                strerror(errno));
        return 1;
    }
    close(fd);
    unlink(probe);
    return 0;
}

void cli_usage_opts(FILE *f, const cli_opt *opts, int n)
{
    for (int i = 0; i < n; i++) {
        char left[48];
        snprintf(left, sizeof left, "--%s%s", opts[i].name, opts[i].flag ? "" : " V");
        fprintf(f, "  %-22s %s", left, opts[i].help);
        if (opts[i].def) fprintf(f, " (default %s)", opts[i].def);
        fputc('\n', f);
    }
}

bool cli_have_program(const char *name)
{
    const char *path = getenv("PATH");
    if (!path) return false;
    char buf[4096];
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t)(colon - path) : strlen(path);
        if (len && len + strlen(name) + 2 < sizeof buf) {
            memcpy(buf, path, len);
            buf[len] = '/';
            memcpy(buf + len + 1, name, strlen(name) + 1); /* fits: checked above */
            if (access(buf, X_OK) == 0) return true;
        }
        path += len + (colon ? 1 : 0);
    }
    return false;
}

int cli_plot_csv(const char *csv, const char *png, const char *title, const char *xlabel,
                 const char *ylabel, int xcol, const int *ycols, int n_y, bool logy)
{
    if (!cli_have_program("gnuplot")) {
        printf("note: gnuplot is not installed, so no plot (apt-get install gnuplot-nox)\n");
        return 1;
    }
    FILE *g = popen("gnuplot 2>/dev/null", "w");
    if (!g) return -1;
    fprintf(g, "set terminal pngcairo size 900,560 noenhanced\n");
    fprintf(g, "set output '%s'\nset datafile separator ','\nset key autotitle columnhead\n", png);
    fprintf(g, "set title '%s'\nset xlabel '%s'\nset ylabel '%s'\nset grid\n", title, xlabel,
            ylabel);
    if (logy) fprintf(g, "set logscale y\nset key bottom left\n");
    fprintf(g, "plot ");
    for (int i = 0; i < n_y; i++)
        fprintf(g, "%s'%s' using %d:%d with lines lw 2 lt %d dt %d", i ? ", " : "", csv, xcol,
                ycols[i], i % 8 + 1, i / 8 + 1); /* past 8 colours, dashes tell lines apart */
    fprintf(g, "\n");
    int rc = pclose(g);
    return rc == 0 ? 0 : -1;
}

static int err_rank = -1;

void cli_set_rank(int rank) { err_rank = rank; }

/* One write for the whole line, so that the lines of several ranks sharing stderr do not
 * interleave. */
void cli_err(const char *fmt, ...)
{
    char buf[4096];
    int k = err_rank >= 0 ? snprintf(buf, sizeof buf, "tapegrad: rank %d: ", err_rank)
                          : snprintf(buf, sizeof buf, "tapegrad: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + k, sizeof buf - (size_t)k, fmt, ap);
    va_end(ap);
    fputs(buf, stderr);
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

bool cli_given(const cli_opt *opts, int n, const char *name)
{
    const cli_opt *o = find((cli_opt *)opts, n, name);
    return o && o->val != o->def;
}

int cli_arch_alone(const cli_opt *o, int n)
{
    static const char *const mlp_only[] = {"layers", "act", "dropout", "batchnorm"};
    for (size_t i = 0; i < sizeof mlp_only / sizeof mlp_only[0]; i++)
        if (cli_given(o, n, mlp_only[i])) {
            cli_err("--%s and --arch: give one (--arch describes every layer)\n", mlp_only[i]);
            return 1;
        }
    return 0;
}

int cli_arch(const char *spec, char *out, tg_nn_spec_info *info)
{
    size_t k = 0, len = strlen(spec);
    if (len > TG_NN_SPEC_MAX_LEN) {
        cli_err("--arch: the spec has %zu characters, at most %d\n", len, TG_NN_SPEC_MAX_LEN);
        return 2;
    }
    for (const char *p = spec; *p; p++)
        if (!isspace((unsigned char)*p)) out[k++] = *p;
    out[k] = '\0';
    tg_status st = {0};
    if (tg_nn_spec_check(out, 0, NULL, info, &st)) {
        cli_err("--arch: %s\n", st.msg);
        return 2;
    }
    return 0;
}

static const char *shape_text(int nd, const int64_t *d, char *s, size_t size)
{
    size_t k = (size_t)snprintf(s, size, "[N");
    for (int i = 0; i < nd && k < size; i++)
        k += (size_t)snprintf(s + k, size - k, ",%lld", (long long)d[i]);
    if (k < size) snprintf(s + k, size - k, "]");
    return s;
}

int cli_arch_input(const char *spec, const char *shape_opt, bool images, int64_t features,
                   int64_t out, int64_t min_out, int *nd, int64_t *shape, tg_nn_spec_info *info)
{
    tg_status st = {0};
    if (tg_nn_spec_check(spec, 0, NULL, info, &st)) {
        cli_err("--arch: %s\n", st.msg);
        return 2;
    }
    if (shape_opt) {
        long long v[4];
        int n = 0;
        if (cli_int_list(shape_opt, v, 4, &n) || (n != 1 && n != 3)) {
            cli_err("--input-shape %s: want C,H,W or a width\n", shape_opt);
            return 2;
        }
        long long prod = 1;
        for (int i = 0; i < n; i++) prod = prod > (1LL << 40) ? prod : prod * v[i];
        if (prod != features) {
            cli_err("--input-shape %s: %lld elements, the data has %lld features\n", shape_opt,
                    prod, (long long)features);
            return 2;
        }
        *nd = n;
        for (int i = 0; i < n; i++) shape[i] = v[i];
    } else if (info->image_input) {
        int64_t s = 1;
        while (s * s < features) s++;
        if (!images || s * s != features) {
            cli_err("--arch: the spec starts with a conv or pool, which needs images "
                    "[C,H,W]: give --input-shape C,H,W (the data has %lld features)\n",
                    (long long)features);
            return 2;
        }
        *nd = 3, shape[0] = 1, shape[1] = s, shape[2] = s;
    } else {
        *nd = 1, shape[0] = features;
    }
    if (tg_nn_spec_check(spec, *nd, shape, info, &st)) {
        char a[80];
        cli_err("--arch: %s (input %s)\n", st.msg, shape_text(*nd, shape, a, sizeof a));
        return 2;
    }
    char a[80];
    if ((out > 0 || min_out > 0) &&
        (info->out_ndim != 1 || (out > 0 && info->out_shape[0] != out) ||
         info->out_shape[0] < min_out)) {
        cli_err("--arch: the output is %s, the data needs [N,%lld]%s\n",
                shape_text(info->out_ndim, info->out_shape, a, sizeof a),
                (long long)(out > 0 ? out : min_out), out > 0 ? "" : " or more");
        return 2;
    }
    if (info->n_elems > CLI_MAX_WEIGHTS) {
        cli_err("--arch: %lld weights and buffers, more than %lld\n", (long long)info->n_elems,
                CLI_MAX_WEIGHTS);
        return 2;
    }
    return 0;
}
