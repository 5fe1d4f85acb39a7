/* test/test_cli.c: the `tapegrad` command as a user meets it: bad arguments give a usage
 * message and exit status 2 (never a crash), bad files exit 1 with the file named, and a
 * small CSV data set trains, saves, evaluates and draws its graph. TG_CLI is the binary. */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static char out[1 << 16];

/* Runs the command with its output captured in out; returns its exit status (-1: signal). */
static int run(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", TG_CLI, args);
    FILE *p = popen(cmd, "r");
    if (!p) return -100;
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char dir[64];

static void path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", dir, name);
}

/* Two Gaussian blobs in 3 features: an easy 2-class problem. */
static void write_csv(const char *p)
{
    FILE *f = fopen(p, "w");
    fprintf(f, "a,b,c,label\n");
    unsigned s = 7;
    for (int i = 0; i < 200; i++) {
        int c = i % 2;
        double v[3];
        for (int j = 0; j < 3; j++) {
            s = s * 1103515245u + 12345u;
            v[j] = (double)(s >> 8 & 0xffff) / 65536.0 - 0.5 + (c ? 1.0 : -1.0);
        }
        fprintf(f, "%.4f,%.4f,%.4f,%d\n", v[0], v[1], v[2], c);
    }
    fclose(f);
}

static void test_usage_errors(void)
{
    CHECK(run("") == 2);
    CHECK_STR_HAS(out, "usage: tapegrad");
    CHECK(run("frobnicate") == 2);
    CHECK_STR_HAS(out, "unknown command 'frobnicate'");
    CHECK(run("--help") == 0);
    CHECK(run("train --lr abc") == 2);
    CHECK_STR_HAS(out, "--lr abc");
    CHECK(run("train --epochs 0") == 2);
    CHECK(run("train --bogus 1") == 2);
    CHECK_STR_HAS(out, "unknown option '--bogus'");
    CHECK(run("train --lr") == 2);
    CHECK_STR_HAS(out, "needs a value");
    CHECK(run("train --opt nosuch") == 2);
    CHECK_STR_HAS(out, "unknown optimiser");
    CHECK(run("train --data nosuch.txt") == 2);
    CHECK(run("train --data /nonexistent/x.csv") == 1);
    CHECK_STR_HAS(out, "/nonexistent/x.csv");
    CHECK(run("train --help") == 0);
    CHECK_STR_HAS(out, "--layers");
    CHECK(run("eval") == 2);
    CHECK(run("eval --model /nonexistent/m.tg") == 1);
    CHECK_STR_HAS(out, "/nonexistent/m.tg");
    CHECK(run("demo") == 2);
    CHECK(run("demo nosuch") == 2);
    CHECK(run("demo list") == 0);
    CHECK_STR_HAS(out, "optimizers");
    CHECK(run("gradcheck --op nosuch") == 2);
    CHECK(run("graph --layers 5") == 2);
    CHECK(run("graph --act nosuch --layers 3,2") == 2);
}

static void test_train_eval_csv(void)
{
    char csv[128], model[128], log[128], args[1024], bad[128];
    path(csv, sizeof csv, "blobs.csv");
    path(model, sizeof model, "m.tg");
    path(log, sizeof log, "log.csv");
    write_csv(csv);
    snprintf(args, sizeof args,
             "train --data %s --layers 3,8,2 --epochs 3 --batch 16 --lr 0.05 --log %s --save %s",
             csv, log, model);
    CHECK(run(args) == 0);
    CHECK_STR_HAS(out, "epoch 3:");
    CHECK_STR_HAS(out, "test accuracy");
    CHECK(access(log, R_OK) == 0 && access(model, R_OK) == 0);
    /* --profile: every op kind of the step, and the GEMM line */
    snprintf(args, sizeof args, "train --data %s --layers 3,8,2 --epochs 2 --batch 16 --log '' --profile", csv);
    CHECK(run(args) == 0);
    CHECK_STR_HAS(out, "profile of the training steps");
    CHECK_STR_HAS(out, "linear");
    CHECK_STR_HAS(out, "cross_entropy");
    CHECK_STR_HAS(out, "of which BLIS GEMM");
    snprintf(args, sizeof args, "train --data %s --layers 4,8,2 --epochs 1 --log ''", csv);
    CHECK(run(args) == 2);
    CHECK_STR_HAS(out, "the data has 3 features");
    /* A line-search method trains full batch through the closure. */
    snprintf(args, sizeof args, "train --data %s --layers 3,4,2 --opt bfgs --epochs 5 --log ''", csv);
    CHECK(run(args) == 0);
    CHECK_STR_HAS(out, "batch 160");
    snprintf(args, sizeof args, "eval --model %s --data %s", model, csv);
    CHECK(run(args) == 0);
    CHECK_STR_HAS(out, "test accuracy");
    /* A corrupted copy of the model: eval says so and exits 1. */
    path(bad, sizeof bad, "bad.tg");
    FILE *in = fopen(model, "rb"), *o = fopen(bad, "wb");
    int c, k = 0;
    while ((c = fgetc(in)) != EOF) fputc(k++ == 60 ? c ^ 0x5a : c, o);
    fclose(in), fclose(o);
    snprintf(args, sizeof args, "eval --model %s --data %s", bad, csv);
    CHECK(run(args) == 1);
    CHECK_STR_HAS(out, bad);
}

static void test_graph_and_gradcheck(void)
{
    char dot[128], args[512];
    path(dot, sizeof dot, "g.dot");
    snprintf(args, sizeof args, "graph --layers 4,3,2 --batch 5 --out %s", dot);
    CHECK(run(args) == 0);
    CHECK(access(dot, R_OK) == 0);
    CHECK_STR_HAS(out, "linear");
    CHECK(run("gradcheck --op tanh") == 0);
    CHECK_STR_HAS(out, "tanh");
}

static void cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) fprintf(stderr, "cannot remove %s\n", dir);
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/tg_cli_XXXXXX");
    if (!mkdtemp(dir)) perror("mkdtemp");
}

static void test_setup(void) { setup(); }
static void test_cleanup(void) { cleanup(); }

static const check_case cases[] = {
    TEST(test_setup),
    TEST(test_usage_errors),
    TEST(test_train_eval_csv),
    TEST(test_graph_and_gradcheck),
    TEST(test_cleanup),
};
TEST_MAIN("test_cli", cases)
