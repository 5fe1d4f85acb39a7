/* test/test_checkpoint.c: checkpoints of a whole run. For every optimiser method, N steps
 * straight end where k steps, a checkpoint, fresh objects (other seeds) loaded from it and
 * N - k more steps end, bit for bit, with dropout and shuffling. A truncated, bit-flipped,
 * mismatched or otherwise bad file is refused with nothing changed; a writer killed at a
 * random point or failing to write leaves the previous checkpoint loadable. */
#define _DEFAULT_SOURCE /* usleep */
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "tapegrad.h"

static char dir[64];

static void path_of(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", dir, name);
}

static unsigned char *slurp(const char *p, size_t *n)
{
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

static void spit(const char *p, const unsigned char *b, size_t n)
{
    FILE *f = fopen(p, "wb");
    fwrite(b, 1, n, f);
    fclose(f);
}

/* Temporary files (NAME.tmp.*) in dir. */
static int temp_files(void)
{
    DIR *d = opendir(dir);
    int k = 0;
    for (struct dirent *e; d && (e = readdir(d));) k += strstr(e->d_name, ".tmp.") != NULL;
    if (d) closedir(d);
    return k;
}

/* ---- a small run: 23 rows of 4 features, 3 classes ---- */
static tg_dataset data;

static void make_data(void)
{
    int64_t xs[2] = {23, 4}, ys[1] = {23};
    data.n = 23, data.d = 4, data.n_classes = 3;
    data.x = tg_tensor_new(TG_F64, 2, xs), data.y = tg_tensor_new(TG_F64, 1, ys);
    tg_rng r;
    tg_rng_seed(&r, 42);
    tg_tensor_rand_normal(data.x, 0, 1, &r);
    for (int64_t i = 0; i < 23; i++) {
        double s = tg_get(data.x, 4 * i) + 0.5 * tg_get(data.x, 4 * i + 1);
        tg_set(data.y, i, s < -0.4 ? 0 : s < 0.4 ? 1 : 2);
    }
}

enum { FIRST, CLOSURE, LM, NEWTON };

static int kind_of(const char *m)
{
    if (!strcmp(m, "lm")) return LM;
    if (!strncmp(m, "newton", 6)) return NEWTON;
    if (!strncmp(m, "cg_", 3) || strstr(m, "bfgs")) return CLOSURE;
    return FIRST;
}

typedef struct run {
    tg_module *net;
    tg_optim *opt;
    tg_batcher *bt;
    tg_tape *tp;
    tg_tensor *params[16], *x, *y, *onehot;
    int kind;
    int64_t epoch, step;
} run;

/* The objects of a run of method; seed changes every generator (init, shuffling, dropout).
 * Per-element methods train with dropout and batch norm; the closure methods with batch norm
 * (its batch statistics); Newton's without either (they need second derivatives). */
static int run_new(run *r, const char *method, uint64_t seed, tg_dtype dt, int64_t hidden)
{
    memset(r, 0, sizeof *r);
    r->kind = kind_of(method);
    int64_t sizes[3] = {4, hidden, 3};
    tg_status st;
    r->net = tg_nn_mlp(3, sizes, "tanh", r->kind == FIRST ? 0.3 : 0, r->kind <= CLOSURE, dt, &st);
    if (!r->net) return -1;
    tg_rng g;
    tg_rng_seed(&g, seed);
    tg_nn_init(r->net, TG_INIT_XAVIER_UNIFORM, 0, &g);
    int np = tg_nn_params(r->net, r->params, 16);
    tg_optim_opts oo;
    tg_optim_defaults(method, &oo);
    if (r->kind == FIRST) oo.lr = 0.05;
    oo.schedule = (tg_lr_schedule){.kind = TG_LR_EXP, .gamma = 0.97}; /* a position to keep */
    if (!strcmp(method, "lbfgs")) oo.history = 3;
    r->opt = tg_optim_new(method, np, r->params, &oo, &st);
    r->bt = tg_batcher_new(&data, r->kind == FIRST ? 5 : 10, true, seed + 1, &st);
    r->tp = tg_tape_new();
    tg_tape_seed(r->tp, seed + 2);
    return r->opt && r->bt && r->tp ? 0 : -1;
}

static void run_free(run *r)
{
    tg_optim_free(r->opt), tg_batcher_free(r->bt), tg_tape_free(r->tp), tg_nn_free(r->net);
    tg_tensor_free(r->onehot);
    memset(r, 0, sizeof *r);
}

/* x and y of this step in r->dt: converted copies live in the tape's arena. */
static tg_tensor *as_dtype(run *r, tg_tensor *t)
{
    tg_dtype dt = tg_tensor_dtype(r->params[0]);
    if (tg_tensor_dtype(t) == dt) return t;
    tg_tensor *c = tg_tensor_new(dt, tg_tensor_ndim(t), tg_tensor_shape(t));
    tg_tensor_copy(c, t);
    return c;
}

static tg_tensor *loss_on(tg_tape *tp, run *r)
{
    return tg_cross_entropy(tp, tg_nn_forward(r->net, tp, r->x), r->y);
}

static int closure(void *ctx, double *loss)
{
    run *r = ctx;
    tg_tape_reset(r->tp);
    tg_tensor *l = loss_on(r->tp, r);
    if (!l || tg_backward(r->tp, l)) return TG_EARG;
    *loss = tg_get(l, 0);
    return 0;
}

static tg_tensor *residuals(tg_tape *tp, void *ctx)
{
    run *r = ctx;
    return tg_sub(tp, tg_nn_forward(r->net, tp, r->x), r->onehot);
}

static tg_tensor *objective(tg_tape *tp, void *ctx) { return loss_on(tp, ctx); }

/* One step on the next batch (a new epoch when the last one ended). */
static int run_step(run *r)
{
    tg_tensor *x, *y;
    if (!tg_batcher_next(r->bt, &x, &y)) {
        tg_batcher_reset(r->bt), r->epoch++;
        if (!tg_batcher_next(r->bt, &x, &y)) return -1;
    }
    r->step++;
    tg_tensor *cx = as_dtype(r, x), *cy = as_dtype(r, y);
    r->x = cx, r->y = cy;
    tg_tensor_free(r->onehot);
    int64_t os[2] = {tg_tensor_dim(y, 0), 3};
    r->onehot = tg_tensor_new(tg_tensor_dtype(r->params[0]), 2, os);
    for (int64_t i = 0; i < os[0]; i++) tg_set(r->onehot, i * 3 + (int64_t)tg_get(y, i), 1);
    double loss;
    int rc;
    if (r->kind == FIRST) {
        tg_tape_reset(r->tp);
        tg_optim_zero_grad(r->opt);
        tg_tensor *l = loss_on(r->tp, r);
        rc = !l || tg_backward(r->tp, l) || tg_optim_step(r->opt);
    } else if (r->kind == CLOSURE) {
        rc = tg_optim_step_closure(r->opt, closure, r, &loss);
    } else if (r->kind == LM) {
        rc = tg_optim_step_lm(r->opt, residuals, r, &loss, NULL);
    } else {
        rc = tg_optim_step_newton(r->opt, objective, r, &loss, NULL);
    }
    if (cx != x) tg_tensor_free(cx);
    if (cy != y) tg_tensor_free(cy);
    r->x = r->y = NULL;
    return rc ? -1 : 0;
}

static tg_checkpoint ckpt_of(run *r)
{
    return (tg_checkpoint){r->net, r->opt, r->bt, r->tp, r->epoch, r->step, NULL, NULL, 0, 0};
}

/* The whole state of r as checkpoint bytes. */
static unsigned char *state_bytes(run *r, size_t *n)
{
    char p[128];
    path_of(p, sizeof p, "state.ckpt");
    tg_checkpoint c = ckpt_of(r);
    tg_status st;
    if (tg_checkpoint_save(p, &c, &st)) return NULL;
    return slurp(p, n);
}

/* N steps straight against k, save, load into fresh objects, N - k: the same end state. */
static bool resumes(const char *method, tg_dtype dt, int N, int k)
{
    char p[128];
    path_of(p, sizeof p, "resume.ckpt");
    run a = {0}, b = {0};
    bool ok = run_new(&a, method, 7, dt, 6) == 0;
    for (int i = 0; ok && i < N; i++) ok = run_step(&a) == 0;
    size_t na = 0, nb = 0;
    unsigned char *sa = ok ? state_bytes(&a, &na) : NULL;
    run_free(&a);
    ok = ok && sa && run_new(&b, method, 7, dt, 6) == 0;
    for (int i = 0; ok && i < k; i++) ok = run_step(&b) == 0;
    tg_checkpoint c = ckpt_of(&b);
    tg_status st;
    ok = ok && tg_checkpoint_save(p, &c, &st) == 0;
    run_free(&b);
    /* fresh objects, every generator seeded otherwise: all must come from the file */
    ok = ok && run_new(&b, method, 99, dt, 6) == 0;
    c = ckpt_of(&b);
    ok = ok && tg_checkpoint_load(p, &c, &st) == 0 && c.step == k;
    b.epoch = c.epoch, b.step = c.step;
    for (int i = k; ok && i < N; i++) ok = run_step(&b) == 0;
    unsigned char *sb = ok ? state_bytes(&b, &nb) : NULL;
    ok = ok && sb && na == nb && memcmp(sa, sb, na) == 0;
    if (!ok) printf("  %s (%s): resumed run differs\n", method, tg_dtype_name(dt));
    run_free(&b);
    free(sa), free(sb);
    return ok;
}

static void test_every_method_resumes(void)
{
    for (int i = 0; tg_optim_method(i); i++) {
        const char *m = tg_optim_method(i);
        CHECK(resumes(m, TG_F64, 12, 7));
        CHECK(resumes(m, TG_F32, 9, 4));
    }
    CHECK(resumes("adam", TG_F64, 10, 0));  /* before the first step */
    CHECK(resumes("adam", TG_F64, 10, 10)); /* after the last */
    CHECK(resumes("adam", TG_F64, 10, 5));  /* at an epoch's end */
}

/* The comparison sees every part: leaving one out of the load changes the end. */
static void test_each_part_matters(void)
{
    char p[128];
    path_of(p, sizeof p, "parts.ckpt");
    for (int part = 0; part < 3; part++) {
        run a, b;
        CHECK(run_new(&a, "adam", 7, TG_F64, 6) == 0);
        for (int i = 0; i < 12; i++) run_step(&a);
        size_t na = 0, nb = 0;
        unsigned char *sa = state_bytes(&a, &na);
        run_free(&a);
        run_new(&b, "adam", 7, TG_F64, 6);
        for (int i = 0; i < 7; i++) run_step(&b);
        tg_checkpoint c = ckpt_of(&b);
        tg_status st;
        tg_checkpoint_save(p, &c, &st);
        run_free(&b);
        run_new(&b, "adam", 99, TG_F64, 6);
        c = ckpt_of(&b);
        if (part == 0) c.optim = NULL;
        if (part == 1) c.batcher = NULL;
        if (part == 2) c.tape = NULL;
        CHECK(tg_checkpoint_load(p, &c, &st) == 0);
        for (int i = 7; i < 12; i++) run_step(&b);
        unsigned char *sb = state_bytes(&b, &nb);
        CHECK(sa && sb && (na != nb || memcmp(sa, sb, na) != 0));
        run_free(&b);
        free(sa), free(sb);
    }
}

/* ---- bad files ---- */
/* A run's state before a refused load, to compare with after it. */
static void test_bad_files_change_nothing(void)
{
    char good[128], bad[128];
    path_of(good, sizeof good, "good.ckpt");
    path_of(bad, sizeof bad, "bad.ckpt");
    run a, b;
    run_new(&a, "adam", 7, TG_F64, 6);
    for (int i = 0; i < 6; i++) run_step(&a);
    char blob[] = "caller's notes";
    tg_checkpoint c = ckpt_of(&a);
    c.user = blob, c.user_len = sizeof blob;
    tg_status st;
    CHECK(tg_checkpoint_save(good, &c, &st) == 0);
    size_t n = 0, n0 = 0, n1 = 0;
    unsigned char *f = slurp(good, &n);
    run_new(&b, "adam", 99, TG_F64, 6);
    for (int i = 0; i < 3; i++) run_step(&b);
    unsigned char *before = state_bytes(&b, &n0);
    tg_checkpoint cb = ckpt_of(&b);
    /* every truncation */
    bool all = true, named = true;
    for (size_t cut = 0; cut < n; cut++) {
        spit(bad, f, cut);
        all = all && tg_checkpoint_load(bad, &cb, &st) == TG_EFORMAT;
        named = named && strstr(st.msg, bad) != NULL;
    }
    CHECK(all && named);
    /* a flipped bit in every byte (a different bit each byte), every bit of the header */
    all = true, named = true;
    for (size_t i = 0; i < n; i++)
        for (int bit = 0; bit < 8; bit++) {
            if (i >= 16 && bit != (int)(i % 8)) continue;
            f[i] ^= (unsigned char)(1u << bit);
            spit(bad, f, n);
            all = all && tg_checkpoint_load(bad, &cb, &st) == TG_EFORMAT;
            named = named && strstr(st.msg, bad) != NULL;
            f[i] ^= (unsigned char)(1u << bit);
        }
    CHECK(all && named);
    spit(bad, f, n);
    f[0] = 'X', spit(bad, f, n), f[0] = 'T';
    CHECK(tg_checkpoint_load(bad, &cb, &st) == TG_EFORMAT);
    CHECK_STR_HAS(st.msg, "bad magic");
    CHECK(tg_checkpoint_load("/nonexistent/x.ckpt", &cb, &st) == TG_EIO);
    CHECK(tg_checkpoint_load(dir, &cb, &st) == TG_EIO);
    CHECK_STR_HAS(st.msg, "not a regular file");
    /* the caller's data must fit the buffer given */
    char small[4];
    cb.user = small, cb.user_cap = sizeof small;
    CHECK(tg_checkpoint_load(good, &cb, &st) == TG_EARG);
    CHECK_STR_HAS(st.msg, "15 bytes of caller's data");
    unsigned char *after = state_bytes(&b, &n1);
    CHECK(before && after && n0 == n1 && memcmp(before, after, n0) == 0);
    /* and then it loads, the blob too */
    char notes[64] = "";
    cb = ckpt_of(&b);
    cb.user = notes, cb.user_cap = sizeof notes;
    CHECK(tg_checkpoint_load(good, &cb, &st) == 0 && cb.user_len == sizeof blob &&
          !strcmp(notes, blob) && cb.step == 6 && st.code == 0);
    free(f), free(before), free(after);
    run_free(&a), run_free(&b);
}

/* Objects that do not fit the file: refused with the reason, nothing changed. */
static void test_mismatches(void)
{
    char p[128], q[128];
    path_of(p, sizeof p, "adam.ckpt");
    path_of(q, sizeof q, "lbfgs.ckpt");
    run a, b;
    run_new(&a, "adam", 7, TG_F64, 6);
    run_step(&a);
    tg_checkpoint c = ckpt_of(&a);
    tg_status st;
    CHECK(tg_checkpoint_save(p, &c, &st) == 0);
    run_free(&a);
    struct {
        const char *method;
        tg_dtype dt;
        int64_t hidden;
        int code;
        const char *msg;
    } cases[] = {
        {"sgd", TG_F64, 6, TG_EARG, "optimiser state of method adam, the optimiser is sgd"},
        {"adam", TG_F32, 6, TG_EDTYPE, "holds f64 tensors, the model is f32"},
        {"adam", TG_F64, 7, TG_ESHAPE, "dimension 1 is 6"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        run_new(&b, cases[i].method, 99, cases[i].dt, cases[i].hidden);
        run_step(&b);
        size_t n0 = 0, n1 = 0;
        unsigned char *before = state_bytes(&b, &n0);
        c = ckpt_of(&b);
        CHECK(tg_checkpoint_load(p, &c, &st) == cases[i].code);
        CHECK_STR_HAS(st.msg, cases[i].msg);
        CHECK_STR_HAS(st.msg, p);
        unsigned char *after = state_bytes(&b, &n1);
        CHECK(n0 == n1 && !memcmp(before, after, n0) && c.step == 1);
        free(before), free(after);
        run_free(&b);
    }
    /* another L-BFGS history: another size of state */
    run_new(&a, "lbfgs", 7, TG_F64, 6);
    run_step(&a);
    c = ckpt_of(&a);
    CHECK(tg_checkpoint_save(q, &c, &st) == 0);
    int64_t sizes[3] = {4, 6, 3};
    tg_tensor *ps[16];
    tg_optim_opts oo;
    tg_optim_defaults("lbfgs", &oo);
    oo.history = 5;
    tg_optim *o5 = tg_optim_new("lbfgs", tg_nn_params(a.net, ps, 16), ps, &oo, &st);
    c.optim = o5;
    CHECK(tg_checkpoint_load(q, &c, &st) == TG_EFORMAT);
    CHECK_STR_HAS(st.msg, "history");
    tg_optim_free(o5);
    (void)sizes;
    /* a batcher over other rows, or not shuffling; the optimiser loaded before it is put back */
    tg_dataset half = data;
    half.n = 11;
    int64_t xs[2] = {11, 4}, ys[1] = {11};
    half.x = tg_tensor_new(TG_F64, 2, xs), half.y = tg_tensor_new(TG_F64, 1, ys);
    tg_batcher *other = tg_batcher_new(&half, 10, true, 0, &st),
               *plain = tg_batcher_new(&data, 10, false, 0, &st);
    size_t n0 = 0, n1 = 0;
    unsigned char *before = state_bytes(&a, &n0);
    c = ckpt_of(&a);
    c.batcher = other;
    CHECK(tg_checkpoint_load(q, &c, &st) == TG_ESHAPE);
    CHECK_STR_HAS(st.msg, "batcher state of 23 rows");
    c.batcher = plain;
    CHECK(tg_checkpoint_load(q, &c, &st) == TG_EARG);
    CHECK_STR_HAS(st.msg, "shuffling");
    unsigned char *after = state_bytes(&a, &n1);
    CHECK(n0 == n1 && !memcmp(before, after, n0));
    free(before), free(after);
    /* a checkpoint without an optimiser, loaded with one */
    c = ckpt_of(&a);
    c.optim = NULL;
    CHECK(tg_checkpoint_save(q, &c, &st) == 0);
    c.optim = a.opt;
    CHECK(tg_checkpoint_load(q, &c, &st) == TG_EFORMAT);
    CHECK_STR_HAS(st.msg, "holds no the optimiser's state");
    tg_batcher_free(other), tg_batcher_free(plain);
    tg_tensor_free(half.x), tg_tensor_free(half.y);
    /* bad arguments */
    CHECK(tg_checkpoint_save(NULL, &c, &st) == TG_EARG &&
          tg_checkpoint_load(q, NULL, &st) == TG_EARG);
    static char one[1] = {1};
    c.user_len = TG_CHECKPOINT_MAX_USER + 1, c.user = one;
    CHECK(tg_checkpoint_save(q, &c, &st) == TG_EARG);
    CHECK(tg_checkpoint_save("/nonexistent/dir/x.ckpt", &c, &st) == TG_EARG);
    c.user_len = 0;
    CHECK(tg_checkpoint_save("/nonexistent/dir/x.ckpt", &c, &st) == TG_EIO);
    CHECK_STR_HAS(st.msg, "/nonexistent/dir/x.ckpt");
    run_free(&a);
}

/* tg_optim_state_save / _load on their own: the refusals of optim.h, nothing changed. */
static void test_optim_state_errors(void)
{
    int64_t s3[1] = {3}, s4[1] = {4};
    tg_tensor *a = tg_tensor_new(TG_F64, 1, s3), *b = tg_tensor_new(TG_F64, 1, s4),
              *c = tg_tensor_new(TG_F32, 1, s3);
    tg_tensor *ps[3] = {a, b, c};
    for (int i = 0; i < 3; i++) tg_set_requires_grad(ps[i], true), tg_tensor_fill(ps[i], 1);
    tg_status st;
    tg_optim *o = tg_optim_new("adam", 1, &a, NULL, &st),
             *two = tg_optim_new("adam", 2, ps, NULL, &st),
             *big = tg_optim_new("adam", 1, &b, NULL, &st),
             *f32 = tg_optim_new("adam", 1, &c, NULL, &st);
    tg_zero_grad(a), tg_set(tg_grad(a), 0, 0.5);
    tg_optim_step(o);
    size_t n = tg_optim_state_size(o);
    CHECK(n == 56 + 8 + 2 * 3 * 8 && tg_optim_state_size(NULL) == 0);
    unsigned char *buf = malloc(n + 8), *before = malloc(n), *after = malloc(n);
    CHECK(tg_optim_state_save(o, buf, n - 1, &st) == TG_EARG);
    CHECK(tg_optim_state_save(o, buf, n, &st) == 0 && tg_optim_state_save(o, before, n, &st) == 0);
    CHECK(tg_optim_state_load(two, buf, n, &st) == TG_ESHAPE);
    CHECK_STR_HAS(st.msg, "optimiser state of 1 parameters, adam has 2");
    CHECK(tg_optim_state_load(big, buf, n, &st) == TG_ESHAPE);
    CHECK_STR_HAS(st.msg, "parameter 0 has 3 elements, adam's has 4");
    CHECK(tg_optim_state_load(f32, buf, n, &st) == TG_EDTYPE);
    CHECK_STR_HAS(st.msg, "optimiser state of f64 parameters, adam's are f32");
    tg_optim *fresh = tg_optim_new("adam", 1, &a, NULL, &st);
    tg_optim_state_save(fresh, after, n, &st);
    for (size_t cut = 0; cut < n; cut++) /* every truncation, and a byte too many */
        CHECK(tg_optim_state_load(fresh, buf, cut, &st) == TG_EFORMAT);
    CHECK(tg_optim_state_load(fresh, buf, n + 8, &st) == TG_EFORMAT);
    unsigned char *now = malloc(n);
    tg_optim_state_save(fresh, now, n, &st);
    CHECK(!memcmp(now, after, n) && tg_optim_step_count(fresh) == 0);
    CHECK(tg_optim_state_load(fresh, buf, n, &st) == 0 && tg_optim_step_count(fresh) == 1);
    tg_optim_state_save(fresh, now, n, &st);
    CHECK(!memcmp(now, before, n));
    CHECK(tg_optim_state_load(NULL, buf, n, &st) == TG_EARG &&
          tg_optim_state_save(NULL, buf, n, &st) == TG_EARG);
    free(buf), free(before), free(after), free(now);
    tg_optim_free(o), tg_optim_free(two), tg_optim_free(big), tg_optim_free(f32),
        tg_optim_free(fresh);
    tg_tensor_free(a), tg_tensor_free(b), tg_tensor_free(c);
}

/* ---- writes that fail or are killed ---- */
static void test_failed_write_keeps_old(void)
{
    char p[128];
    path_of(p, sizeof p, "fail.ckpt");
    run a;
    run_new(&a, "adam", 7, TG_F64, 6);
    run_step(&a);
    tg_checkpoint c = ckpt_of(&a);
    tg_status st;
    CHECK(tg_checkpoint_save(p, &c, &st) == 0);
    size_t n0 = 0, n1 = 0;
    unsigned char *old = slurp(p, &n0);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) { /* a file size limit below the checkpoint's: the write fails midway */
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {n0 / 2, n0 / 2};
        setrlimit(RLIMIT_FSIZE, &rl);
        run_step(&a);
        c = ckpt_of(&a);
        int rc = tg_checkpoint_save(p, &c, &st);
        bool ok = rc == TG_EIO && strstr(st.msg, "cannot write");
        free(old), run_free(&a); /* nothing left for valgrind's leak check in the child */
        _exit(ok ? 0 : 1);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    unsigned char *now = slurp(p, &n1);
    CHECK(n0 == n1 && !memcmp(old, now, n0) && temp_files() == 0);
    c = ckpt_of(&a);
    CHECK(tg_checkpoint_load(p, &c, &st) == 0);
    free(old), free(now);
    run_free(&a);
}

static void test_kill_during_write(void)
{
    char p[128];
    path_of(p, sizeof p, "kill.ckpt");
    run a;
    run_new(&a, "bfgs", 7, TG_F64, 40); /* a dense matrix: a checkpoint of some 400 kB */
    run_step(&a);
    tg_checkpoint c = ckpt_of(&a);
    tg_status st;
    CHECK(tg_checkpoint_save(p, &c, &st) == 0);
    tg_rng kr; /* the kill's moment: another one every run */
    tg_rng_seed(&kr, (uint64_t)time(NULL));
    int loadable = 0, killed_with_temp = 0, rounds = 20;
    for (int r = 0; r < rounds; r++) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            for (int64_t i = 0;; i++) {
                c.step = i;
                tg_checkpoint_save(p, &c, NULL);
            }
        }
        usleep((useconds_t)tg_rng_below(&kr, 30000));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        killed_with_temp += temp_files() > 0;
        tg_checkpoint l = ckpt_of(&a);
        loadable += tg_checkpoint_load(p, &l, &st) == 0;
    }
    CHECK(loadable == rounds);
    printf("  kill -9 during saves: %d of %d rounds left a temporary file, all %d loadable\n",
           killed_with_temp, rounds, loadable);
    /* the next save removes what the killed writers left */
    CHECK(tg_checkpoint_save(p, &c, &st) == 0 && temp_files() == 0);
    run_free(&a);
}

static void setup(void)
{
    /* tmpfs where there is one: fsync there costs nothing, and the test saves often */
    struct stat sb;
    snprintf(dir, sizeof dir, "%s/tg_ckpt_%d", stat("/dev/shm", &sb) == 0 ? "/dev/shm" : "/tmp",
             (int)getpid());
    mkdir(dir, 0700);
    make_data();
}

static void cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) printf("cannot remove %s\n", dir);
    tg_dataset_free(&data);
}

static void test_setup(void) { setup(); }
static void test_cleanup(void) { cleanup(); }

static const check_case cases[] = {TEST(test_setup),
                                   TEST(test_every_method_resumes),
                                   TEST(test_each_part_matters),
                                   TEST(test_bad_files_change_nothing),
                                   TEST(test_mismatches),
                                   TEST(test_optim_state_errors),
                                   TEST(test_failed_write_keeps_old),
                                   TEST(test_kill_during_write),
                                   TEST(test_cleanup)};
TEST_MAIN("test_checkpoint", cases)
