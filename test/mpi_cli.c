/* test/mpi_cli.c: `tapegrad train --distributed` under `mpirun -np 2 --oversubscribe
 * --allow-run-as-root` (TG_CLI is the command; make test runs this when Open MPI is there).
 *   equiv: 2 ranks x batch 7 against 1 process x batch 14 for 2 epochs on a CSV set, in f64,
 *     for SGD-momentum, Adam and (full batch) L-BFGS: the saved models' weights agree to
 *     1e-12; the bucket size changes no bit; --distributed without mpirun (1 rank) saves
 *     the bytes of a plain run;
 *   resume: a 2-rank run with dropout, batch norm and --checkpoint-every, rank 1 killed
 *     (SIGKILL) at a random time after the first checkpoint: mpirun exits nonzero within
 *     30 s naming the dead rank; the resumed run saves the bytes of the uninterrupted run;
 *     rank 1 stopped (SIGSTOP) instead: rank 0 times out (--timeout 3) and ends the job;
 *   ranks: a checkpoint of 2 ranks x 7 resumed on 1 process x 14 ends within 1e-12 of the
 *     2-rank run; on 2 ranks x 14 (another global batch) it is refused, naming the batch.
 * Run under mpirun with "exec PIDFILE ARGS..." it is a wrapper: it writes its pid to
 * PIDFILE.RANK and becomes `tapegrad ARGS...`, so that the test can kill one rank. */
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "run_cli.h"
#include "tapegrad.h"

static const char *mpirun;

/* `tapegrad ARGS` on np ranks under mpirun (np 0: alone, without mpirun). */
static int run(int np, const char *args)
{
    char cmd[4096];
    if (np == 0) /* MPI's own allocations are not the command's leaks */
        snprintf(cmd, sizeof cmd, "%s%s %s",
                 strstr(args, "--distributed") ? "ASAN_OPTIONS=detect_leaks=0 " : "", TG_CLI, args);
    else
        snprintf(cmd, sizeof cmd,
                 "%s -np %d --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 "
                 "-x ASAN_OPTIONS=detect_leaks=0 %s %s",
                 mpirun, np, TG_CLI, args);
    return sh(cmd);
}

/* Two overlapping Gaussian-ish blobs in 3 features, 400 rows (320 for training). */
static void write_csv(const char *p)
{
    FILE *f = fopen(p, "w");
    fprintf(f, "a,b,c,label\n");
    unsigned s = 11;
    for (int i = 0; i < 400; i++) {
        int c = i % 2;
        double v[3];
        for (int j = 0; j < 3; j++) {
            double u = 0;
            for (int k = 0; k < 4; k++)
                s = s * 1103515245u + 12345u, u += (s >> 8 & 0xffff) / 65536.0;
            v[j] = u - 2 + (c ? 0.4 : -0.4);
        }
        fprintf(f, "%.5f,%.5f,%.5f,%d\n", v[0], v[1], v[2], c);
    }
    fclose(f);
}

/* The largest difference between the weights of two saved 3-8-2 f64 MLPs (1 if either
 * cannot be loaded). */
static double max_diff(const char *p, const char *q, bool batchnorm)
{
    int64_t sizes[3] = {3, 8, 2};
    tg_module *a = tg_nn_mlp(3, sizes, "relu", batchnorm ? 0.2 : 0, batchnorm, TG_F64, NULL);
    tg_module *b = tg_nn_mlp(3, sizes, "relu", batchnorm ? 0.2 : 0, batchnorm, TG_F64, NULL);
    double d = 1;
    if (a && b && tg_nn_load(a, p, NULL) == 0 && tg_nn_load(b, q, NULL) == 0) {
        tg_tensor *pa[16], *pb[16];
        int na = tg_nn_params(a, pa, 16), nb = tg_nn_params(b, pb, 16);
        d = na == nb && na > 0 ? 0 : 1;
        for (int i = 0; i < na && na == nb; i++)
            for (int64_t j = 0; j < tg_tensor_numel(pa[i]); j++)
                d = fmax(d, fabs(tg_get(pa[i], j) - tg_get(pb[i], j)));
    }
    tg_nn_free(a);
    tg_nn_free(b);
    return d;
}

static char csv[128];

static void test_equivalence(void)
{
    char dist[128], one[128], alone[128], args[2048];
    path(dist, sizeof dist, "dist.tg");
    path(one, sizeof one, "one.tg");
    path(alone, sizeof alone, "alone.tg");
    const char *opts[] = {"--opt momentum --lr 0.05", "--opt adam --lr 0.01", "--opt lbfgs"};
    for (int i = 0; i < 3; i++) {
        check_test = opts[i];
        snprintf(args, sizeof args,
                 "train --distributed --data %s --layers 3,8,2 --dtype f64 --batch 7 --epochs 2 "
                 "%s --log '' --save %s",
                 csv, opts[i], dist);
        CHECK(run(2, args) == 0);
        CHECK_STR_HAS(out, i < 2 ? "batch 2 x 7 = 14 over 2 ranks" : "batch 2 x 160 = 320");
        CHECK_STR_HAS(out, "saved: ");
        /* the epoch's train loss, test loss and accuracy: over both ranks' rows */
        char line[256] = "";
        const char *at = strstr(out, "epoch 2: ");
        if (at) snprintf(line, sizeof line, "%.*s", (int)strcspn(at, "%"), at);
        CHECK(at != NULL);
        snprintf(args, sizeof args,
                 "train --data %s --layers 3,8,2 --dtype f64 --batch 14 --epochs 2 %s --log '' "
                 "--save %s",
                 csv, opts[i], one);
        CHECK(run(0, args) == 0);
        CHECK_STR_HAS(out, line);
        double d = max_diff(dist, one, false);
        printf("  %s: 2 ranks x 7 against 1 x 14: max weight difference %.3g\n", opts[i], d);
        CHECK(d <= 1e-12);
    }
    check_test = "buckets";
    snprintf(args, sizeof args,
             "train --distributed --data %s --layers 3,8,2 --dtype f64 --batch 7 --epochs 2 "
             "--opt momentum --lr 0.05 --bucket-kb 1 --log '' --save %s",
             csv, one);
    CHECK(run(2, args) == 0);
    snprintf(args, sizeof args,
             "train --distributed --data %s --layers 3,8,2 --dtype f64 --batch 7 --epochs 2 "
             "--opt momentum --lr 0.05 --bucket-kb 4096 --log '' --save %s",
             csv, dist);
    CHECK(run(2, args) == 0);
    CHECK(same_file(one, dist));
    check_test = "alone"; /* --distributed without mpirun: one rank, a plain run's bytes */
    snprintf(args, sizeof args,
             "train --distributed --data %s --layers 3,8,2 --dtype f64 --batch 14 --epochs 2 "
             "--dropout 0.2 --log '' --save %s",
             csv, alone);
    CHECK(run(0, args) == 0);
    CHECK_STR_HAS(out, "batch 1 x 14 = 14 over 1 rank,");
    snprintf(args, sizeof args,
             "train --data %s --layers 3,8,2 --dtype f64 --batch 14 --epochs 2 --dropout 0.2 "
             "--log '' --save %s",
             csv, one);
    CHECK(run(0, args) == 0);
    CHECK(same_file(alone, one));
    /* MPI is initialised only under --distributed: MPI_Init prints its parameters then */
    char cmd[2048];
    const char *show = "OMPI_MCA_mpi_show_mca_params=all ASAN_OPTIONS=detect_leaks=0";
    snprintf(cmd, sizeof cmd, "%s %s train --data %s --layers 3,8,2 --epochs 1 --log ''", show,
             TG_CLI, csv);
    CHECK(sh(cmd) == 0);
    CHECK(strstr(out, "test accuracy:") && !strstr(out, "mca_base_param_files"));
    snprintf(cmd, sizeof cmd,
             "%s %s train --distributed --data %s --layers 3,8,2 --epochs 1 --log ''", show, TG_CLI,
             csv);
    CHECK(sh(cmd) == 0);
    CHECK(strstr(out, "test accuracy:") && strstr(out, "mca_base_param_files"));
    /* only rank 0 writes: one banner, one result line */
    snprintf(args, sizeof args,
             "train --distributed --data %s --layers 3,8,2 --epochs 1 --log '' --batch 0", csv);
    CHECK(run(2, args) == 0);
    CHECK_STR_HAS(out, "batch 2 x 160 = 320 over 2 ranks, 1 epochs, 1 thread per rank");
    const char *first = strstr(out, "test accuracy:");
    CHECK(first && !strstr(first + 1, "test accuracy:"));
    /* errors of every rank, prefixed with the rank */
    snprintf(args, sizeof args, "train --distributed --data %s --layers 4,8,2 --log ''", csv);
    CHECK(run(2, args) != 0);
    CHECK_STR_HAS(out, "tapegrad: rank 0: --layers 4,8,2: the data has 3 features");
    CHECK_STR_HAS(out, "tapegrad: rank 1: --layers 4,8,2: the data has 3 features");
    /* a failure of the setup that every rank shares ends them all with a clean finalize and
     * the failing ranks' status (2: a usage error), not through MPI_Abort */
    CHECK(run(2, "train --distributed --data /nonexistent/x") == 2);
    CHECK_STR_HAS(out, "tapegrad: rank 0: --data /nonexistent/x: want ");
    CHECK_STR_HAS(out, "tapegrad: rank 1: --data /nonexistent/x: want ");
    CHECK(!strstr(out, "MPI_ABORT"));
    CHECK(run(2, "train --distributed --data /nonexistent/x.csv") == 1); /* cannot open */
    CHECK_STR_HAS(out, "tapegrad: rank 1: /nonexistent/x.csv: cannot open");
    CHECK(!strstr(out, "MPI_ABORT"));
    /* one that only rank 0 meets (its outputs): the other rank stops too, at once */
    char ck[128];
    path(ck, sizeof ck, "no/such/dir/m.tgm");
    snprintf(args, sizeof args,
             "train --distributed --data %s --layers 3,8,2 --epochs 1 --log '' --save %s", csv, ck);
    double t0 = now();
    CHECK(run(2, args) == 1);
    CHECK(now() - t0 < 20); /* well inside the 60 s timeout */
    CHECK_STR_HAS(out, "tapegrad: rank 0: --save ");
    CHECK(!strstr(out, "MPI_ABORT") && !strstr(out, "timed out"));
    CHECK(!strstr(out, "test accuracy:"));
    CHECK(run(0, "train --bucket-kb 5") == 2);
    CHECK_STR_HAS(out, "--bucket-kb: goes with --distributed");
    CHECK(run(0, "train --distributed --bucket-kb 0") == 2);
    CHECK_STR_HAS(out, "--bucket-kb 0");
    CHECK(run(0, "train --timeout 5") == 2);
    CHECK_STR_HAS(out, "--timeout: goes with --distributed");
    CHECK(run(0, "train --distributed --timeout 0") == 2);
    CHECK_STR_HAS(out, "--timeout 0");
}

/* Starts `tapegrad ARGS --checkpoint ck` on 2 ranks, sends sig to rank 1 at a random time
 * after the first checkpoint, waits for mpirun: its exit status, the seconds it took after
 * the signal, and its output in out. */
static int signal_rank1(const char *args, const char *ck, int sig, double *secs)
{
    char pidf[128], p1[160], cmd[4096];
    path(pidf, sizeof pidf, "pid");
    snprintf(p1, sizeof p1, "%s.1", pidf);
    unlink(ck);
    unlink(p1);
    snprintf(cmd, sizeof cmd,
             "exec %s -np 2 --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 "
             "-x ASAN_OPTIONS=detect_leaks=0 %s exec %s %s --checkpoint %s > %s/kill.out 2>&1",
             mpirun, getenv("MPI_CLI_SELF"), pidf, args, ck, dir);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    double t0 = now();
    while ((access(ck, F_OK) != 0 || access(p1, F_OK) != 0) && now() - t0 < 30) sleep_us(1000);
    sleep_us(rand() % 100000); /* NOLINT(cert-msc30-c,cert-msc50-cpp): a time, not a key */
    FILE *f = fopen(p1, "r");
    char line[32] = "";
    if (f && !fgets(line, sizeof line, f)) line[0] = '\0';
    if (f) fclose(f);
    long victim = strtol(line, NULL, 10);
    CHECK(victim > 0);
    double tk = now();
    if (victim > 0) kill((pid_t)victim, sig);
    int status = 0;
    pid_t done = 0;
    while ((done = waitpid(pid, &status, WNOHANG)) == 0 && now() - tk < 60) sleep_us(10000);
    *secs = now() - tk;
    if (victim > 0 && sig == SIGSTOP) kill((pid_t)victim, SIGKILL); /* if mpirun left it */
    if (done == 0) { /* mpirun did not end: the test fails, and nothing is left running */
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        status = 0;
    }
    snprintf(cmd, sizeof cmd, "cat %s/kill.out", dir);
    sh(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_resume_after_kill(void)
{
    char ck[128], other[128], straight[128], resumed[128], args[2048], common[1024];
    path(ck, sizeof ck, "run.ckpt");
    path(other, sizeof other, "other.ckpt");
    path(straight, sizeof straight, "straight.tg");
    path(resumed, sizeof resumed, "resumed.tg");
    snprintf(common, sizeof common,
             "train --distributed --data %s --layers 3,8,2 --dtype f64 --batch 7 --dropout 0.2 "
             "--batchnorm --opt adam --epochs 300 --checkpoint-every 10 --log ''",
             csv);
    snprintf(args, sizeof args, "%s --checkpoint %s --save %s", common, other, straight);
    double t0 = now(), secs;
    CHECK(run(2, args) == 0);
    printf("  uninterrupted 2-rank run: %.1f s\n", now() - t0);
    srand((unsigned)time(NULL)); /* NOLINT(cert-msc32-c,cert-msc51-cpp): a kill time, not a key */
    for (int round = 0; round < 2; round++) {
        int rc = signal_rank1(common, ck, SIGKILL, &secs);
        printf("  rank 1 killed: mpirun exit status %d after %.1f s\n", rc, secs);
        CHECK(rc > 0);
        CHECK(secs < 30);
        CHECK_STR_HAS(out, "process rank 1");
        CHECK_STR_HAS(out, "signal 9");
        snprintf(args, sizeof args, "%s --checkpoint %s --resume %s --save %s", common, ck, ck,
                 resumed);
        CHECK(run(2, args) == 0);
        char *at = strstr(out, "resumed: ");
        if (at) printf("  %.*s\n", (int)strcspn(at, "\n"), at);
        CHECK(at && same_file(straight, resumed));
    }
    /* rank 1 stopped (alive, silent: mpirun does not see it): rank 0 times out and ends the
     * job; the last checkpoint resumes */
    snprintf(args, sizeof args, "%s --timeout 3", common);
    int rc = signal_rank1(args, ck, SIGSTOP, &secs);
    const char *msg = strstr(out, "tapegrad: rank 0: ");
    printf("  rank 1 stopped: mpirun exit status %d after %.1f s: %.*s\n", rc, secs,
           msg ? (int)strcspn(msg, "\n") : 0, msg ? msg : "");
    CHECK(rc > 0);
    CHECK(secs >= 3 && secs < 30);
    CHECK_STR_HAS(out, "tapegrad: rank 0: ");
    CHECK_STR_HAS(out, "timed out after 3 s");
    snprintf(args, sizeof args, "%s --checkpoint %s --resume %s --save %s", common, ck, ck,
             resumed);
    CHECK(run(2, args) == 0);
    CHECK(same_file(straight, resumed));
}

static void test_resume_other_ranks(void)
{
    char ck[128], straight[128], resumed[128], args[2048], common[1024];
    path(ck, sizeof ck, "ranks.ckpt");
    path(straight, sizeof straight, "ranks_straight.tg");
    path(resumed, sizeof resumed, "ranks_resumed.tg");
    snprintf(common, sizeof common,
             "train --data %s --layers 3,8,2 --dtype f64 --opt adam --lr 0.01 --schedule "
             "constant --log ''",
             csv);
    snprintf(args, sizeof args, "%s --distributed --batch 7 --epochs 4 --save %s", common,
             straight);
    CHECK(run(2, args) == 0);
    snprintf(args, sizeof args, "%s --distributed --batch 7 --epochs 2 --checkpoint %s", common,
             ck);
    CHECK(run(2, args) == 0);
    snprintf(args, sizeof args, "%s --batch 14 --epochs 4 --resume %s --save %s", common, ck,
             resumed);
    CHECK(run(0, args) == 0);
    CHECK_STR_HAS(out, "after 2 epochs and 0 steps");
    double d = max_diff(straight, resumed, false);
    printf("  2 ranks x 7 checkpoint resumed on 1 x 14: max weight difference %.3g\n", d);
    CHECK(d <= 1e-12);
    snprintf(args, sizeof args, "%s --distributed --batch 14 --epochs 4 --resume %s", common, ck);
    CHECK(run(2, args) != 0);
    CHECK_STR_HAS(out, "the checkpointed run had batch=14, this one has batch=28");
}

int main(int argc, char **argv)
{
    if (argc > 3 && strcmp(argv[1], "exec") == 0 && getenv("OMPI_COMM_WORLD_RANK")) {
        char p[256];
        snprintf(p, sizeof p, "%s.%s", argv[2], getenv("OMPI_COMM_WORLD_RANK"));
        FILE *f = fopen(p, "w");
        if (f) fprintf(f, "%ld\n", (long)getpid()), fclose(f);
        argv[2] = (char *)TG_CLI;
        execv(TG_CLI, argv + 2);
        return 127;
    }
    mpirun = getenv("MPIRUN") ? getenv("MPIRUN") : "mpirun";
    setenv("MPI_CLI_SELF", argv[0], 1);
    snprintf(dir, sizeof dir, "/tmp/tg_mpi_cli_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    path(csv, sizeof csv, "data.csv");
    write_csv(csv);
    test_equivalence();
    test_resume_after_kill();
    test_resume_other_ranks();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("mpi_cli: could not remove %s\n", dir);
    printf("mpi_cli: %d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}
