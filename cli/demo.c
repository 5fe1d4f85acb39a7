/* cli/demo.c: `tapegrad demo NAME`: the lecture demos of examples/. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "../examples/demo.h"
#include "cli.h"

static const struct {
    const char *name, *what;
    int (*fn)(const char *outdir);
} demos[] = {
#define X(nm, wh) {#nm, wh, demo_##nm},
    DEMOS(X)
#undef X
};

int cmd_demo(int argc, char **argv)
{
    cli_opt o[] = {
        {"out", false, "tapegrad-demo", "directory for the demo's CSV files and plots", NULL},
        {"help", true, NULL, "this help", NULL},
    };
    int n = (int)(sizeof o / sizeof o[0]), np = 0;
    const char *pos[1];
    if (cli_parse(argc, argv, o, n, pos, 1, &np)) return 2;
    if (cli_flag(o, n, "help") || np == 0 || strcmp(pos[0], "list") == 0) {
        FILE *f = np == 0 && !cli_flag(o, n, "help") ? stderr : stdout;
        fprintf(f, "usage: tapegrad demo NAME [--out DIR]\n\ndemos:\n");
        for (size_t i = 0; i < sizeof demos / sizeof demos[0]; i++) {
            char nm[64];
            snprintf(nm, sizeof nm, "%s", demos[i].name);
            for (char *c = nm; *c; c++)
                if (*c == '_') *c = '-';
            fprintf(f, "  %-20s %s\n", nm, demos[i].what);
        }
        cli_usage_opts(f, o, n);
        return f == stderr ? 2 : 0;
    }
    char name[64]; /* optimizers-classic and optimizers_classic both name one demo */
    snprintf(name, sizeof name, "%s", pos[0]);
    for (char *c = name; *c; c++)
        if (*c == '-') *c = '_';
    for (size_t i = 0; i < sizeof demos / sizeof demos[0]; i++) {
        if (strcmp(name, demos[i].name) != 0) continue;
        const char *out = cli_str(o, n, "out");
        if (mkdir(out, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "tapegrad: cannot create --out %s: %s\n", out, strerror(errno));
            return 1;
        }
        printf("demo %s: %s\n", demos[i].name, demos[i].what);
        return demos[i].fn(out) ? 1 : 0;
    }
    fprintf(stderr, "tapegrad: no demo '%s' ('tapegrad demo list' lists them)\n", pos[0]);
    return 2;
}
