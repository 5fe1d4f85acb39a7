/* cli/main.c: the `tapegrad` command: dispatches to the subcommands. */
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: tapegrad COMMAND [options]\n"
        "\n"
        "commands:\n"
        "  train      train an MLP or a --arch network on Fashion-MNIST, IDX files or a CSV file\n"
        "  eval       evaluate a saved model on a data set\n"
        "  gradcheck  check every op's and a whole model's gradients against finite differences\n"
        "  graph      write the DOT (and SVG with Graphviz) of a model's tape\n"
        "  demo NAME  run a lecture demo ('tapegrad demo list' lists them)\n"
        "\n"
        "'tapegrad COMMAND --help' lists a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"train", cmd_train},
                {"eval", cmd_eval},
                {"gradcheck", cmd_gradcheck},
                {"graph", cmd_graph},
                {"demo", cmd_demo}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(cmd, cmds[i].name) == 0) return cmds[i].fn(argc - 2, argv + 2);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "tapegrad: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
