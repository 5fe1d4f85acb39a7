/* test/test_cli.c: the `tapegrad` command as a user meets it: a bad value of any option of
 * any command gives a message naming the option and exit status 2 at once (never a crash),
 * bad files exit 1 with the file named, unwritable outputs are found before training and
 * leave nothing behind, a diverging run stops at its first non-finite loss, and a small
 * CSV data set trains, saves, evaluates and draws its graph. TG_CLI is the binary. */
#include <dirent.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "run_cli.h"

/* `tapegrad ARGS` with its output captured in out; returns its exit status (-1: signal). */
static int run(const char *args)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s", TG_CLI, args);
    return sh(cmd);
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
    /* an option the method does not read is refused, not ignored */
    const char *no_momentum[] = {"sgd",     "adam",     "adamw", "nadam",     "rmsprop",
                                 "adagrad", "adadelta", "rprop", "quickprop", "lbfgs"};
    for (size_t i = 0; i < sizeof no_momentum / sizeof no_momentum[0]; i++) {
        char a[128];
        snprintf(a, sizeof a, "train --opt %s --momentum 0.5", no_momentum[i]);
        CHECK(run(a) == 2);
        CHECK_STR_HAS(out, "--momentum: --opt ");
        CHECK_STR_HAS(out, no_momentum[i]);
    }
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
    /* the curves plotted beside the log as a PNG when gnuplot is there, else a note */
    char png[128];
    path(png, sizeof png, "log.png");
    if (system("command -v gnuplot >/dev/null 2>&1") == 0) {
        unsigned char magic[8] = {0};
        FILE *pf = fopen(png, "rb");
        CHECK(pf && fread(magic, 1, 8, pf) == 8 && memcmp(magic, "\x89PNG\r\n\x1a\n", 8) == 0);
        if (pf) fclose(pf);
        CHECK_STR_HAS(out, png);
    } else {
        CHECK(access(png, F_OK) != 0);
        CHECK_STR_HAS(out, "gnuplot is not installed");
    }
    /* --profile: every op kind of the step, and the GEMM line */
    snprintf(args, sizeof args,
             "train --data %s --layers 3,8,2 --epochs 2 --batch 16 --log '' --profile", csv);
    CHECK(run(args) == 0);
    CHECK_STR_HAS(out, "profile of the training steps");
    CHECK_STR_HAS(out, "linear");
    CHECK_STR_HAS(out, "cross_entropy");
    CHECK_STR_HAS(out, "of which BLIS GEMM");
    snprintf(args, sizeof args, "train --data %s --layers 4,8,2 --epochs 1 --log ''", csv);
    CHECK(run(args) == 2);
    CHECK_STR_HAS(out, "the data has 3 features");
    /* A line-search method trains full batch through the closure. */
    snprintf(args, sizeof args, "train --data %s --layers 3,4,2 --opt bfgs --epochs 5 --log ''",
             csv);
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

/* Every option of every command with bad values: exit status 2 and a message naming the
 * option, at once (before any data is read or any training: each run here takes well under
 * a second). In args, %s is the blobs CSV, %m a model trained on it, %t a CSV of two rows,
 * %u one of one feature and %v one of three classes. */
static void test_every_option_is_checked(void)
{
    char csv[128], tiny[128], one[128], three[128], model[128];
    path(csv, sizeof csv, "opts.csv");
    path(three, sizeof three, "three.csv");
    path(tiny, sizeof tiny, "tiny.csv");
    path(one, sizeof one, "one.csv");
    path(model, sizeof model, "opts.tg");
    write_csv(csv);
    FILE *f = fopen(tiny, "w");
    fprintf(f, "a,label\n1,0\n2,1\n"); /* two rows: no split of 0.2 leaves both sides rows */
    fclose(f);
    f = fopen(one, "w");
    fprintf(f, "a,label\n");
    for (int i = 0; i < 20; i++) fprintf(f, "%d,%d\n", i, i % 2); /* 1 feature */
    fclose(f);
    f = fopen(three, "w");
    fprintf(f, "a,b,c,label\n");
    for (int i = 0; i < 30; i++) fprintf(f, "%d,%d,%d,%d\n", i, -i, i % 5, i % 3); /* 3 classes */
    fclose(f);
    char args[1024];
    snprintf(args, sizeof args, "train --data %s --layers 3,4,2 --epochs 1 --log '' --save %s", csv,
             model);
    CHECK(run(args) == 0);
    static const struct {
        const char *args, *names; /* names: what the output must hold */
    } cases[] = {
        {"train --data nosuch.txt", "--data nosuch.txt"},
        {"train --data %s --label-col abc", "--label-col abc"},
        {"train --data %s --label-col 99", "--label-col 99"},
        {"train --data %s --label-col 2000000", "--label-col 2000000"},
        {"train --label-col abc", "--label-col abc"}, /* checked whatever the data */
        {"train --data %s --regression=1", "--regression takes no value"},
        {"train --data %s --test-fraction abc", "--test-fraction abc"},
        {"train --data %s --test-fraction 0", "--test-fraction 0"},
        {"train --data %s --test-fraction 1", "--test-fraction 1"},
        {"train --data %t --test-fraction 0.2", "--test-fraction 0.2"},
        {"train --data %s --layers abc", "--layers abc"},
        {"train --data %s --layers 5", "--layers 5"},
        {"train --data %s --layers 3,0,2", "--layers 3,0,2"},
        {"train --data %s --layers 3,-4,2", "--layers 3,-4,2"},
        {"train --data %s --layers 3,4,", "--layers 3,4,"},
        {"train --data %s --layers "
         "3,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2",
         "want 2 to 32 sizes"},
        {"train --data %s --layers 4,8,2", "--layers 4,8,2"},
        {"train --data %s --layers 3,100000000,3",
         "--layers 3,100000000,3: size 100000000 is more than 100000"},
        {"train --data %s --layers 3,60000,60000,2",
         "--layers 3,60000,60000,2: 3600420002 weights, more than 50000000"},
        {"train --layers 3,100000000,3", "--layers 3,100000000,3"}, /* before the data */
        {"train --data %s --act bogus", "--act bogus"},
        {"train --act bogus", "--act bogus"},
        {"train --data %s --dropout 1", "--dropout 1"},
        {"train --data %s --dropout -0.1", "--dropout -0.1"},
        {"train --data %s --dropout nan", "--dropout nan"},
        {"train --data %s --batchnorm=yes", "--batchnorm takes no value"},
        {"train --data %s --dtype f16", "--dtype f16"},
        {"train --data %s --threads 0", "--threads 0"},
        {"train --data %s --seed -1", "--seed -1"},
        {"train --data %s --opt nosuch", "--opt nosuch"},
        {"train --data %s --opt lm", "--opt lm"},
        {"train --opt lm", "--opt lm"},
        {"train --data %s --opt bfgs", "--opt bfgs"}, /* 34 178 weights: BFGS takes 4096 */
        {"train --data %s --lr -1", "--lr -1"},
        {"train --data %s --lr inf", "--lr inf"},
        {"train --data %s --lr abc", "--lr abc"},
        {"train --data %s --momentum 1", "--momentum 1"},
        {"train --data %s --weight-decay -1", "--weight-decay -1"},
        {"train --data %s --l2 -1", "--l2 -1"},
        {"train --data %s --clip-norm -1", "--clip-norm -1"},
        {"train --data %s --schedule nope", "--schedule nope"},
        {"train --data %s --batch -1", "--batch -1"},
        {"train --data %s --epochs 0", "--epochs 0"},
        {"train --data %s --epochs 2.5", "--epochs 2.5"},
        {"train --data %s --init nope", "--init nope"},
        {"train --data %s --save ''", "--save"},
        {"train --data %s --checkpoint ''", "--checkpoint: the path is empty"},
        {"train --data %s --resume ''", "--resume: the path is empty"},
        {"train --data %s --checkpoint x --checkpoint-every -1", "--checkpoint-every -1"},
        {"train --data %s --checkpoint x --checkpoint-every abc", "--checkpoint-every abc"},
        {"train --data %s --checkpoint-every 5", "--checkpoint-every: needs --checkpoint"},
        {"train --data %s --profile=1", "--profile takes no value"},
        {"train --data %s --bogus 1", "--bogus"},
        {"train --data %s --lr", "--lr needs a value"},
        {"eval --data %s", "usage: tapegrad eval"},
        {"eval --model %m --data %s --label-col 99", "--label-col 99"},
        {"eval --model %m --data %s --label-col abc", "--label-col abc"},
        {"eval --model %m --data %s --test-fraction 2", "--test-fraction 2"},
        {"eval --model %m --data %u", "expects 3 features, the data has 1"},
        {"eval --model %m --data %v", "has 2 outputs, the data has 3 classes"},
        {"eval --model %m --data nosuch.txt", "--data nosuch.txt"},
        {"eval --model %m --seed -1", "--seed -1"},
        {"eval --model %m --threads 0", "--threads 0"},
        {"gradcheck --op nosuch", "--op nosuch"},
        {"gradcheck --tol abc", "--tol abc"},
        {"gradcheck --tol 2", "--tol 2"},
        {"gradcheck --verbose=1", "--verbose takes no value"},
        {"train --opt newton", "--opt newton steps on an objective recorded"},
        {"train --opt newton_cg", "--opt newton_cg steps on an objective recorded"},
        {"gradcheck --order 3", "--order 3"},
        {"gradcheck --order 0", "--order 0"},
        {"gradcheck --order two", "--order two"},
        {"graph --layers abc", "--layers abc"},
        {"graph --layers 5", "--layers 5"},
        {"graph --layers 3,100000000,3", "--layers 3,100000000,3"},
        {"graph --layers 4,3,2 --act bogus", "--act bogus"},
        {"graph --layers 4,3,2 --dropout 1", "--dropout 1"},
        {"graph --layers 4,3,2 --batch 0", "--batch 0"},
        {"graph --layers 50000,2 --batch 1048576", "--batch 1048576"},
        {"graph --layers 4,3,2 --batchnorm=1", "--batchnorm takes no value"},
        {"demo nosuch", "no demo 'nosuch'"},
        {"demo list --out", "--out needs a value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char a[1024] = "";
        for (const char *c = cases[i].args; *c; c++) { /* the %-names of the comment above */
            size_t k = strlen(a);
            const char *sub = c[0] != '%'   ? NULL
                              : c[1] == 's' ? csv
                              : c[1] == 't' ? tiny
                              : c[1] == 'u' ? one
                              : c[1] == 'v' ? three
                              : c[1] == 'm' ? model
                                            : NULL;
            if (sub) snprintf(a + k, sizeof a - k, "%s", sub), c++;
            else if (k + 1 < sizeof a) a[k] = *c, a[k + 1] = '\0';
        }
        double t0 = now();
        int rc = run(a);
        bool ok = rc == 2 && strstr(out, cases[i].names) && !strstr(out, "epoch 1:");
        if (!ok) printf("  tapegrad %s: exit %d: %s\n", a, rc, out);
        CHECK(ok);
        CHECK(now() - t0 < 5);
    }
}

/* --save and --log are checked before training: a path in a missing directory, under a
 * regular file, onto a directory (or in a read-only directory, when not root) fails at once
 * (status 1, the option named, no epoch run) and leaves no file behind; a log the run made
 * is removed when the run fails before its first epoch. */
static void test_outputs_checked_first(void)
{
    char csv[128], file[128], ro[128], okdir[128], args[2048];
    path(csv, sizeof csv, "out.csv");
    path(file, sizeof file, "regular");
    path(ro, sizeof ro, "ro");
    path(okdir, sizeof okdir, "ok");
    write_csv(csv);
    fclose(fopen(file, "w"));
    mkdir(ro, 0555);
    mkdir(okdir, 0777);
    char bad[4][160];
    snprintf(bad[0], sizeof bad[0], "%s/missing/m.tg", dir);
    snprintf(bad[1], sizeof bad[1], "%s/m.tg", file);
    snprintf(bad[2], sizeof bad[2], "%s", okdir); /* a directory */
    snprintf(bad[3], sizeof bad[3], "%s/m.tg", ro);
    int n_bad = geteuid() != 0 ? 4 : 3; /* root writes anywhere */
    char good_log[160], good_save[160];
    snprintf(good_log, sizeof good_log, "%s/log.csv", okdir);
    snprintf(good_save, sizeof good_save, "%s/m.tg", okdir);
    for (int which = 0; which < 2; which++)
        for (int b = 0; b < n_bad; b++) {
            /* the other output is a good path in okdir: it must not appear either */
            snprintf(args, sizeof args,
                     "train --data %s --layers 3,4,2 --epochs 3 --log %s --save %s", csv,
                     which ? bad[b] : good_log, which ? good_save : bad[b]);
            int rc = run(args);
            bool ok = rc == 1 && strstr(out, which ? "--log " : "--save ") && strstr(out, bad[b]) &&
                      !strstr(out, "epoch 1:");
            if (!ok) printf("  %s: exit %d: %s\n", args, rc, out);
            CHECK(ok);
            DIR *dd = opendir(okdir);
            int entries = 0;
            for (struct dirent *e; dd && (e = readdir(dd));) entries += e->d_name[0] != '.';
            if (dd) closedir(dd);
            CHECK(entries == 0); /* no log, no model, no temporary file */
        }
    /* A run that fails before its first epoch (it diverges) removes the log it made. */
    snprintf(args, sizeof args,
             "train --data %s --regression --layers 3,8,1 --opt sgd --lr 1e6 "
             "--schedule constant --batch 4 --epochs 50 --log %s --save %s",
             csv, good_log, good_save);
    CHECK(run(args) == 1);
    CHECK(access(good_log, F_OK) != 0 && access(good_save, F_OK) != 0);
    /* A log that cannot be written once the run is going (a full disk) stops it there. */
    if (access("/dev/full", W_OK) == 0) {
        snprintf(args, sizeof args,
                 "train --data %s --layers 3,4,2 --epochs 3 --log /dev/full --save %s", csv,
                 good_save);
        CHECK(run(args) == 1);
        CHECK_STR_HAS(out, "tapegrad: --log /dev/full: cannot write it: No space left on device");
        CHECK(!strstr(out, "epoch 2:") && access(good_save, F_OK) != 0);
    }
    chmod(ro, 0755);
}

/* A diverging run stops at the first non-finite loss, in its first epoch, with the step
 * named and status 1; nothing is saved. */
static void test_divergence_stops_at_once(void)
{
    char csv[128], model[128], args[1024];
    path(csv, sizeof csv, "div.csv");
    path(model, sizeof model, "div.tg");
    write_csv(csv);
    static const char *const runs[] = {
        "--regression --opt sgd --lr 1e6 --schedule constant --batch 4",
        "--regression --opt momentum --lr 1e6 --momentum 0.9 --schedule constant --batch 1",
        "--opt sgd --lr 1e6 --schedule constant --batch 4 --dtype f64",
    };
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        snprintf(args, sizeof args,
                 "train --data %s --layers 3,8,%d --epochs 1000 --log '' --save %s %s", csv,
                 strstr(runs[i], "regression") ? 1 : 2, model, runs[i]);
        double t0 = now();
        int rc = run(args);
        bool ok = rc == 1 && strstr(out, "tapegrad: epoch 1, step ") &&
                  strstr(out, "the run diverged") && !strstr(out, "epoch 1:") &&
                  access(model, F_OK) != 0;
        if (!ok) printf("  %s: exit %d: %s\n", args, rc, out);
        CHECK(ok);
        CHECK(now() - t0 < 5);
    }
    /* Targets of 1e30: the f32 loss is inf from the first step, and a line-search method
     * stops where its first iteration starts. */
    char big[128];
    path(big, sizeof big, "big.csv");
    FILE *f = fopen(big, "w");
    fprintf(f, "a,b,y\n");
    for (int i = 0; i < 50; i++) fprintf(f, "%d,%d,%g\n", i, i % 7, 1e30 * (1 + i % 3));
    fclose(f);
    snprintf(args, sizeof args,
             "train --data %s --regression --layers 2,4,1 --opt lbfgs "
             "--epochs 3 --log '' --save %s",
             big, model);
    CHECK(run(args) == 1);
    CHECK_STR_HAS(out, "tapegrad: epoch 1: the training loss is not finite: the run diverged");
    CHECK(access(model, F_OK) != 0);
    snprintf(args, sizeof args,
             "train --data %s --regression --layers 2,4,1 --opt sgd "
             "--epochs 3 --log '' --save %s",
             big, model);
    CHECK(run(args) == 1);
    CHECK_STR_HAS(out, "tapegrad: epoch 1, step 1: the training loss is inf: the run diverged");
    CHECK(access(model, F_OK) != 0);
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
    CHECK(run("gradcheck --order 2 --op tanh") == 0);
    CHECK_STR_HAS(out, "rec err");
    CHECK_STR_HAS(out, "0 failed");
    /* the whole table, second order: every op and the whole models pass */
    CHECK(run("gradcheck --order 2") == 0);
    CHECK_STR_HAS(out, "whole models");
    CHECK_STR_HAS(out, "(every entry of the Hessian)");
    CHECK_STR_HAS(out, ", 0 failed");
}

/* --arch: a spec instead of --layers, for train, eval and graph. Good specs train, save their
 * spec in the model ("arch spec=... input=... dtype=...") and eval rebuilds the network from
 * it; a tiny conv net on 4x4 "images" (a CSV of 16 features, --input-shape 1,4,4) trains
 * one epoch and round-trips. Bad specs and conflicting options exit 2 at once, naming the
 * token or the option. */
static void test_arch(void)
{
    char csv[128], img[128], model[128], cmodel[128], args[2048];
    path(csv, sizeof csv, "arch.csv");
    path(img, sizeof img, "img.csv");
    path(model, sizeof model, "arch.tg");
    path(cmodel, sizeof cmodel, "conv.tg");
    write_csv(csv);
    FILE *f = fopen(img, "w");
    for (int j = 0; j < 16; j++) fprintf(f, "p%d,", j);
    fprintf(f, "label\n");
    unsigned r = 11;
    for (int i = 0; i < 120; i++) { /* class 1: a bright left half */
        int c = i % 2;
        for (int j = 0; j < 16; j++) {
            r = r * 1103515245u + 12345u;
            fprintf(f, "%.3f,", (double)(r >> 8 & 0xff) / 256.0 + (c && j % 4 < 2 ? 1.0 : 0.0));
        }
        fprintf(f, "%d\n", c);
    }
    fclose(f);
    /* an MLP as a spec, with spaces (dropped in the saved description) */
    snprintf(args, sizeof args,
             "train --data %s --arch 'linear(8) - relu - dropout(0.1) - linear(2)' --epochs 2 "
             "--batch 16 --lr 0.05 --log '' --save %s",
             csv, model);
    CHECK(run(args) == 0);
    CHECK_STR_HAS(out, "model: arch spec=linear(8)-relu-dropout(0.1)-linear(2) input=3 dtype=f32");
    CHECK_STR_HAS(out, "epoch 2:");
    snprintf(args, sizeof args, "eval --model %s --data %s", model, csv);
    CHECK(run(args) == 0);
    CHECK_STR_HAS(out, "model: arch spec=linear(8)-relu-dropout(0.1)-linear(2) input=3 dtype=f32");
    CHECK_STR_HAS(out, "test accuracy");
    snprintf(args, sizeof args, "eval --model %s --data %s", model, img);
    CHECK(run(args) == 2);
    CHECK_STR_HAS(out, "expects 3 features, the data has 16");
    /* a conv net on [N,1,4,4], f64, with batch norm on its channels */
    snprintf(args, sizeof args,
             "train --data %s --arch 'conv(4,3,pad=1)-bn-relu-maxpool(2)-flatten-linear(2)' "
             "--input-shape 1,4,4 --dtype f64 --epochs 1 --batch 16 --log '' --save %s",
             img, cmodel);
    CHECK(run(args) == 0);
    CHECK_STR_HAS(out, "arch spec=conv(4,3,pad=1)-bn-relu-maxpool(2)-flatten-linear(2) "
                       "input=1,4,4 dtype=f64");
    CHECK_STR_HAS(out, "test accuracy");
    snprintf(args, sizeof args, "eval --model %s --data %s", cmodel, img);
    CHECK(run(args) == 0);
    CHECK_STR_HAS(out, "input=1,4,4 dtype=f64");
    CHECK_STR_HAS(out, "confusion matrix");
    /* graph takes the spec too; Fashion-MNIST's shape [1,28,28] for a conv net */
    char dot[128];
    path(dot, sizeof dot, "arch.dot");
    snprintf(args, sizeof args,
             "graph --arch 'conv(2,3)-relu-maxpool(2)-flatten-linear(10)' --batch 2 --out %s", dot);
    CHECK(run(args) == 0);
    CHECK_STR_HAS(out, "conv2d");
    CHECK_STR_HAS(out, "[2,2,13,13]");
    snprintf(args, sizeof args, "graph --arch 'linear(4)-tanh-linear(3)' --batch 2 --out %s", dot);
    CHECK(run(args) == 0);
    CHECK_STR_HAS(out, "linear_act     -> [2,4]"); /* the input: 784 features */

    char long_spec[1200] = "";
    size_t at = 0;
    for (int i = 0; i < 220; i++)
        at += (size_t)snprintf(long_spec + at, sizeof long_spec - at, "relu-");
    snprintf(long_spec + at, sizeof long_spec - at, "linear(2)");
    static const struct {
        const char *args, *names;
    } cases[] = {
        {"train --arch 'conv(32,3)-relu-maxpool(0)'",
         "--arch: token 3 'maxpool(0)': k 0 is below 1"},
        {"train --data %s --arch 'linear(8)-'", "--arch: token 2 '': empty (a '-' at the end?)"},
        {"train --data %s --arch ''", "--arch: the spec is empty"},
        {"train --data %s --arch 'linear(8)-foo'", "--arch: token 2 'foo': unknown layer 'foo'"},
        {"train --data %s --arch 'linear(8'", "--arch: token 1 'linear(8': missing ')'"},
        {"train --data %s --arch 'linear(8,2)'", "token 1 'linear(8,2)': too many arguments"},
        {"train --data %s --arch 'linear(x)'", "token 1 'linear(x)': out: 'x' is not an integer"},
        {"train --data %s --arch '%l'", "--arch: the spec has 1109 characters, at most 1024"},
        {"train --data %s --arch 'linear(2)' --layers 3,2", "--layers and --arch: give one"},
        {"train --data %s --arch 'linear(2)' --act tanh", "--act and --arch: give one"},
        {"train --data %s --arch 'linear(2)' --dropout 0.1", "--dropout and --arch"},
        {"train --data %s --arch 'linear(2)' --batchnorm", "--batchnorm and --arch"},
        {"train --data %s --input-shape 1,1,3", "--input-shape goes with --arch"},
        {"train --data %s --arch 'linear(3)'", "--arch: the output is [N,3], the data needs [N,2]"},
        {"train --data %s --arch 'conv(2,1)-flatten-linear(2)'",
         "the spec starts with a conv or pool, which needs images [C,H,W]: give --input-shape"},
        {"train --data %i --arch 'conv(2,3)-linear(2)' --input-shape 1,4,4",
         "--arch: token 2 'linear(2)': linear needs [N,features], the input here is [N,2,2,2]"},
        {"train --data %i --arch 'conv(2,3)' --input-shape 1,4,4",
         "--arch: the output is [N,2,2,2], the data needs [N,2]"},
        {"train --data %i --arch 'conv(2,5)-flatten-linear(2)' --input-shape 1,4,4",
         "token 1 'conv(2,5)': the 5x5 kernel (dilation 1) is larger than the input [N,1,4,4]"},
        {"train --data %i --arch 'conv(2,3)-flatten-linear(2)' --input-shape 1,3,3",
         "--input-shape 1,3,3: 9 elements, the data has 16 features"},
        {"train --data %i --arch 'conv(2,3)-flatten-linear(2)' --input-shape 1,4",
         "--input-shape 1,4"},
        {"train --data %i --arch 'conv(2,3)-flatten-linear(2)' --input-shape abc",
         "--input-shape abc"},
        {"train --data %s --arch 'linear(16000000)-linear(2)'",
         "--arch: 96000002 weights and buffers, more than 50000000"},
        {"graph --arch 'linear(2)' --layers 3,2", "--layers and --arch"},
        {"graph --arch 'linear(2'", "--arch: token 1 'linear(2': missing ')'"},
        {"graph --arch 'conv(2,3)'", "--arch: the output is [N,2,26,26]"},
        {"graph --input-shape 3", "--input-shape goes with --arch"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char a[2048] = "";
        for (const char *c = cases[i].args; *c; c++) {
            size_t k = strlen(a);
            const char *sub = c[0] != '%'   ? NULL
                              : c[1] == 's' ? csv
                              : c[1] == 'i' ? img
                              : c[1] == 'l' ? long_spec
                                            : NULL;
            if (sub) snprintf(a + k, sizeof a - k, "%s", sub), c++;
            else if (k + 1 < sizeof a) a[k] = *c, a[k + 1] = '\0';
        }
        double t0 = now();
        int rc = run(a);
        bool ok = rc == 2 && strstr(out, cases[i].names) && !strstr(out, "epoch 1:");
        if (!ok) printf("  tapegrad %s: exit %d: %s\n", a, rc, out);
        CHECK(ok);
        CHECK(now() - t0 < 5);
    }
}

/* --checkpoint and --resume: a run stopped (after fewer epochs, or killed at a random point
 * after a checkpoint) and resumed ends with the bytes of the model an uninterrupted run
 * saves; a resume with other options, or from a bad file, is refused. */
static void test_checkpoint_resume(void)
{
    char csv[128], ck[128], straight[128], resumed[128], args[2048], common[512];
    path(csv, sizeof csv, "ck.csv");
    path(ck, sizeof ck, "run.ckpt");
    path(straight, sizeof straight, "straight.tg");
    path(resumed, sizeof resumed, "resumed.tg");
    write_csv(csv);
    /* dropout, batch norm and shuffling: every generator and buffer must come back */
    snprintf(common, sizeof common,
             "train --data %s --layers 3,8,2 --batch 16 --dropout 0.3 --batchnorm --dtype f64 "
             "--log ''",
             csv);
    const char *opts[] = {"--opt adam --schedule constant", "--opt momentum --schedule step",
                          "--opt lbfgs --schedule constant"};
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args, "%s %s --epochs 4 --save %s", common, opts[i], straight);
        CHECK(run(args) == 0);
        snprintf(args, sizeof args, "%s %s --epochs 2 --checkpoint %s", common, opts[i], ck);
        CHECK(run(args) == 0 && access(ck, R_OK) == 0);
        snprintf(args, sizeof args, "%s %s --epochs 4 --resume %s --save %s", common, opts[i], ck,
                 resumed);
        CHECK(run(args) == 0);
        CHECK_STR_HAS(out, "resumed: ");
        CHECK_STR_HAS(out, "after 2 epochs and 0 steps");
        CHECK(!strstr(out, "epoch 2:") && strstr(out, "epoch 3:"));
        bool same = same_file(straight, resumed);
        if (!same) printf("  %s: the resumed model differs\n", opts[i]);
        CHECK(same);
    }
    /* kill -9 at a random point after the first checkpoint (every 3 steps, cosine), resume */
    char kargs[1024];
    snprintf(kargs, sizeof kargs, "%s --epochs 60 --opt adam --checkpoint-every 3", common);
    char other[128];
    path(other, sizeof other, "other.ckpt");
    snprintf(args, sizeof args, "%s --checkpoint %s --save %s", kargs, other, straight);
    CHECK(run(args) == 0);
    /* the kill's moment, another one every run: xorshift64 seeded from the clock */
    uint64_t kr = (uint64_t)time(NULL) * 6364136223846793005u + 1442695040888963407u;
    for (int round = 0; round < 3; round++) {
        unlink(ck);
        snprintf(args, sizeof args, "exec %s %s --checkpoint %s >/dev/null 2>&1", TG_CLI, kargs,
                 ck);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            execl("/bin/sh", "sh", "-c", args, (char *)NULL);
            _exit(127);
        }
        double t0 = now();
        while (access(ck, F_OK) != 0 && now() - t0 < 20) sleep_us(1000);
        kr ^= kr << 13, kr ^= kr >> 7, kr ^= kr << 17;
        sleep_us((long)(kr % 200000));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        snprintf(args, sizeof args, "%s --checkpoint %s --resume %s --save %s", kargs, ck, ck,
                 resumed);
        CHECK(run(args) == 0);
        char *at = strstr(out, "resumed: ");
        if (at)
            printf("  killed %s: %.*s\n", WIFSIGNALED(status) ? "mid-run" : "after the end",
                   (int)strcspn(at, "\n"), at);
        CHECK(at && same_file(straight, resumed));
    }
    /* a finished run resumed: evaluated and saved as it is; the log goes on; the cosine
     * schedule over more epochs is noted */
    char log[128];
    path(log, sizeof log, "ck_log.csv");
    snprintf(args, sizeof args, "%s --opt adam --epochs 3 --checkpoint %s --save %s --log %s",
             common, ck, straight, log);
    CHECK(run(args) == 0);
    snprintf(args, sizeof args, "%s --opt adam --epochs 3 --resume %s --save %s --log %s", common,
             ck, resumed, log);
    CHECK(run(args) == 0);
    CHECK_STR_HAS(out, "after 3 epochs and 0 steps");
    CHECK_STR_HAS(out, "test accuracy");
    CHECK(!strstr(out, "epoch 1:") && same_file(straight, resumed));
    snprintf(args, sizeof args, "%s --opt adam --epochs 5 --resume %s --log %s", common, ck, log);
    CHECK(run(args) == 0);
    CHECK_STR_HAS(out,
                  "note: the checkpointed run had --epochs 3; the cosine schedule now spans 5");
    CHECK(!strstr(out, "epoch 3:") && strstr(out, "epoch 5:"));
    FILE *lf = fopen(log, "r");
    char line[256];
    int rows = 0, headers = 0;
    while (lf && fgets(line, sizeof line, lf)) headers += line[0] == 'e', rows += line[0] != 'e';
    if (lf) fclose(lf);
    CHECK(headers == 1 && rows == 5); /* epochs 1-3, then 4-5 appended */
    /* refusals */
    snprintf(args, sizeof args, "%s --epochs 4 --opt adam --seed 5 --resume %s", common, ck);
    CHECK(run(args) == 2);
    CHECK_STR_HAS(out, "the checkpointed run had seed=1, this one has seed=5");
    snprintf(args, sizeof args, "%s --epochs 4 --opt sgd --resume %s", common, ck);
    CHECK(run(args) == 1);
    CHECK_STR_HAS(out, "optimiser state of method adam, the optimiser is sgd");
    snprintf(args, sizeof args,
             "train --data %s --layers 3,9,2 --batch 16 --dropout 0.3 --batchnorm --dtype f64 "
             "--log '' --resume %s",
             csv, ck);
    CHECK(run(args) == 1);
    CHECK_STR_HAS(out, "dimension 1 is 8");
    snprintf(args, sizeof args, "%s --epochs 4 --resume %s", common, csv);
    CHECK(run(args) == 1);
    CHECK_STR_HAS(out, "not a tapegrad checkpoint");
    snprintf(args, sizeof args, "%s --epochs 4 --resume %s/nosuch.ckpt", common, dir);
    CHECK(run(args) == 1);
    CHECK_STR_HAS(out, "nosuch.ckpt: cannot open");
    snprintf(args, sizeof args, "%s --epochs 4 --checkpoint %s", common, dir);
    CHECK(run(args) == 1);
    CHECK_STR_HAS(out, "--checkpoint");
    CHECK_STR_HAS(out, "is a directory");
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
    TEST(test_every_option_is_checked),
    TEST(test_outputs_checked_first),
    TEST(test_divergence_stops_at_once),
    TEST(test_graph_and_gradcheck),
    TEST(test_arch),
    TEST(test_checkpoint_resume),
    TEST(test_cleanup),
};
TEST_MAIN("test_cli", cases)
