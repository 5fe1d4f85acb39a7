/* test/test_nn_io.c: model files beyond a plain save and load (test_nn): readers on what is
 * not a regular file, crafted files with a valid checksum whose structure or description
 * lies, the description of tapegrad train checked against the tensors before anything is
 * built, and temporary files left by killed saves. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "tapegrad.h"

static char dir[64];

static void path_of(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", dir, name);
}

static bool exists(const char *p)
{
    struct stat sb;
    return lstat(p, &sb) == 0;
}

static void spill(const char *path, const void *b, size_t n)
{
    FILE *o = fopen(path, "wb");
    if (o) fwrite(b, 1, n, o), fclose(o);
}

/* ---- crafted files: a header, tensors, a valid CRC-32 ---- */
typedef struct craft {
    unsigned char b[1 << 16];
    size_t n;
} craft;

static void c_u32(craft *c, uint32_t v)
{
    for (int i = 0; i < 4; i++) c->b[c->n++] = (unsigned char)(v >> (8 * i));
}

static void c_u64(craft *c, uint64_t v) { c_u32(c, (uint32_t)v), c_u32(c, (uint32_t)(v >> 32)); }

/* Header with dtype code (1 f32, 2 f64), count and description; meta_len as written. */
static void c_head(craft *c, uint32_t dtype, uint32_t count, const char *meta, uint32_t meta_len)
{
    c->n = 0;
    memcpy(c->b, "TGMODEL", 8), c->n = 8;
    c_u32(c, 1), c_u32(c, dtype), c_u32(c, count), c_u32(c, meta_len);
    memcpy(c->b + c->n, meta, strlen(meta)), c->n += strlen(meta);
}

/* A tensor of nd dimensions with numel elements of es bytes (0.25 each). */
static void c_tensor(craft *c, int nd, const uint64_t *dims, size_t es)
{
    c_u32(c, (uint32_t)nd);
    uint64_t numel = 1;
    for (int d = 0; d < nd; d++) c_u64(c, dims[d]), numel *= dims[d];
    for (uint64_t i = 0; i < numel; i++) {
        if (es == 4) {
            float f = 0.25f;
            memcpy(c->b + c->n, &f, 4);
        } else {
            double v = 0.25;
            memcpy(c->b + c->n, &v, 8);
        }
        c->n += es;
    }
}

static void c_write(craft *c, const char *path)
{
    uint32_t crc = (uint32_t)crc32(0L, c->b, (uInt)c->n);
    size_t n = c->n;
    c_u32(c, crc);
    spill(path, c->b, c->n);
    c->n = n;
}

/* The tensors tg_nn_mlp makes for sizes (with batch norm or not), in file order. */
static void c_mlp(craft *c, int n, const uint64_t *sizes, bool bn, size_t es)
{
    for (int l = 0; l + 1 < n; l++) {
        c_tensor(c, 2, (uint64_t[]){sizes[l], sizes[l + 1]}, es);
        c_tensor(c, 1, &sizes[l + 1], es);
        for (int k = 0; bn && l + 2 < n && k < 4; k++) c_tensor(c, 1, &sizes[l + 1], es);
    }
}

/* tapegrad train's description of an MLP. */
static void desc(char *buf, size_t size, const char *layers, bool bn, tg_dtype dt)
{
    snprintf(buf, size, "mlp layers=%s act=relu dropout=0 batchnorm=%d dtype=%s", layers, bn,
             tg_dtype_name(dt));
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Both readers refuse path with code and a message naming the file and want. */
static void refuse(const char *path, int code, const char *want)
{
    tg_status st = {0};
    char meta[64] = "untouched";
    CHECK(tg_nn_read_meta(path, meta, sizeof meta, &st) == code && st.code == code);
    CHECK(strcmp(meta, "untouched") == 0);
    CHECK_STR_HAS(st.msg, path);
    CHECK_STR_HAS(st.msg, want);
}

/* ---- tests ---- */

/* tg_nn_load and tg_nn_read_meta on a FIFO (an fopen would block for ever), a directory and
 * character devices (/dev/zero never ends): TG_EIO at once, the module unchanged. */
static void test_not_regular(void)
{
    char fifo[128], sub[128];
    path_of(fifo, sizeof fifo, "fifo.tg");
    path_of(sub, sizeof sub, "sub.tg");
    CHECK(mkfifo(fifo, 0600) == 0 && mkdir(sub, 0700) == 0);
    tg_module *m = tg_nn_linear(2, 3, TG_F32);
    float before[6];
    tg_tensor *ps[2];
    tg_nn_params(m, ps, 2);
    memcpy(before, tg_data(ps[0]), sizeof before);
    alarm(20); /* a hang ends the binary with no result line: a failure */
    const char *paths[4] = {fifo, sub, "/dev/null", "/dev/zero"};
    const char *kinds[4] = {"a FIFO", "a directory", "a character device", "a character device"};
    double t0 = now_s();
    for (int i = 0; i < 4; i++) {
        tg_status st;
        CHECK(tg_nn_load(m, paths[i], &st) == TG_EIO);
        CHECK_STR_HAS(st.msg, paths[i]);
        CHECK_STR_HAS(st.msg, kinds[i]);
        refuse(paths[i], TG_EIO, kinds[i]);
    }
    alarm(0);
    CHECK(now_s() - t0 < 5);
    /* NOLINTNEXTLINE(bugprone-suspicious-memory-comparison): bitwise on purpose */
    CHECK(memcmp(before, tg_data(ps[0]), sizeof before) == 0);
    /* a save onto a FIFO's name replaces the name, and never opens the FIFO */
    tg_status st;
    CHECK(tg_nn_save(m, fifo, &st) == TG_OK);
    struct stat sb;
    CHECK(stat(fifo, &sb) == 0 && S_ISREG(sb.st_mode));
    CHECK(tg_nn_load(m, fifo, &st) == TG_OK);
    tg_nn_free(m);
}

/* The tester's file: 92 bytes, a valid checksum, a description asking for a 3-50000000-3 MLP
 * and no tensors. It is refused by tg_nn_read_meta, which a program calls before building
 * the network, fast and without allocating what the description asks for; so is every
 * description whose MLP is not exactly the file's tensors. */
static void test_description_lies(void)
{
    char p[128], d[256];
    path_of(p, sizeof p, "lie.tg");
    static craft c;
    desc(d, sizeof d, "3,50000000,3", false, TG_F32);
    c_head(&c, 1, 0, d, (uint32_t)strlen(d));
    c_write(&c, p);
    struct stat sb;
    CHECK(stat(p, &sb) == 0 && sb.st_size == 92);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    double t0 = now_s();
    refuse(p, TG_EFORMAT,
           "the description (layers 3,50000000,3) asks for 4 tensors, the file holds 0");
    CHECK(now_s() - t0 < 0.5);
    getrusage(RUSAGE_SELF, &r1);
    CHECK(r1.ru_maxrss - r0.ru_maxrss < 64 * 1024); /* KiB: far from the 1.2 GB asked for */
    tg_module *small = tg_nn_mlp(3, (int64_t[]){3, 4, 3}, "relu", 0, false, TG_F32, NULL);
    tg_status st;
    CHECK(tg_nn_load(small, p, &st) == TG_ESHAPE); /* 0 tensors for its 4 */

    /* the right count, the shapes of another MLP: the first tensor that differs is named */
    uint64_t s343[3] = {3, 4, 3};
    c_head(&c, 1, 4, d, (uint32_t)strlen(d));
    c_mlp(&c, 3, s343, false, 4);
    c_write(&c, p);
    refuse(p, TG_EFORMAT,
           "tensor 0 is [3,4], the description (layers 3,50000000,3) wants [3,50000000]");
    /* ... and a module that fits the tensors does not make the file good */
    CHECK(tg_nn_load(small, p, &st) == TG_EFORMAT);
    CHECK_STR_HAS(st.msg, "the description (layers 3,50000000,3) wants");

    struct {
        const char *layers;
        bool bn;
        tg_dtype dt;
        const char *want;
    } lies[] = {
        {"3,4,3", true, TG_F32, "(layers 3,4,3, batch norm) asks for 8 tensors, the file holds 4"},
        {"3,4,3", false, TG_F64, "says dtype=f64, the file holds f32 tensors"},
        {"3,4", false, TG_F32, "asks for 2 tensors, the file holds 4"},
        {"3,4,3,1", false, TG_F32, "asks for 6 tensors"},
        {"3,4,2", false, TG_F32, "tensor 2 is [4,3], the description (layers 3,4,2) wants [4,2]"},
        {"3,5,3", false, TG_F32, "tensor 0 is [3,4], the description (layers 3,5,3) wants [3,5]"},
        {"3", false, TG_F32, "1 layer size, an MLP needs at least 2"},
        {"3,0,3", false, TG_F32, "layer sizes '3,0,3' are not a list of 1..2^31"},
        {"3,-4,3", false, TG_F32, "are not a list"},
        {"3,,3", false, TG_F32, "are not a list"},
        {"3,4,3,", false, TG_F32, "are not a list"},
        {"3,4x,3", false, TG_F32, "are not a list"},
        {"3,2147483649,3", false, TG_F32, "are not a list"},
        {"3,99999999999999999999,3", false, TG_F32, "are not a list"},
    };
    for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        desc(d, sizeof d, lies[i].layers, lies[i].bn, lies[i].dt);
        c_head(&c, 1, 4, d, (uint32_t)strlen(d));
        c_mlp(&c, 3, s343, false, 4);
        c_write(&c, p);
        refuse(p, TG_EFORMAT, lies[i].want);
    }
    const char *odd[3] = {"mlp layers=3,4,3 act=relu dropout=0 batchnorm=2 dtype=f32",
                          "mlp layers=3,4,3 act=relu dropout=0 batchnorm=0 dtype=f16",
                          "mlplayers=3,50000000,3 act=relu dropout=0 batchnorm=0 dtype=f32"};
    const char *odd_want[3] = {"batchnorm=2, want 0 or 1", "says dtype=f16", "asks for 4 tensors"};
    for (int i = 0; i < 3; i++) {
        c_head(&c, 1, i == 2 ? 0 : 4, odd[i], (uint32_t)strlen(odd[i]));
        if (i < 2) c_mlp(&c, 3, s343, false, 4);
        c_write(&c, p);
        refuse(p, TG_EFORMAT, odd_want[i]);
    }
    /* a save refuses to write what its readers would refuse; the old file stays */
    tg_module *real = tg_nn_mlp(3, (int64_t[]){3, 4, 3}, "relu", 0, false, TG_F32, NULL);
    char good[128];
    path_of(good, sizeof good, "good.tg");
    desc(d, sizeof d, "3,4,3", false, TG_F32);
    CHECK(tg_nn_save_meta(real, good, d, &st) == TG_OK);
    struct stat before;
    CHECK(stat(good, &before) == 0);
    const char *wrong[3] = {"3,50000000,3", "3,4,3,2", "3,5,3"};
    const char *wrong_want[3] = {
        ("tensor 0 is [3,4], the description (layers 3,50000000,3) wants [3,50000000]"),
        "asks for 6 tensors, the model has 4", "wants [3,5]"};
    for (int i = 0; i < 3; i++) {
        desc(d, sizeof d, wrong[i], false, TG_F32);
        CHECK(tg_nn_save_meta(real, good, d, &st) == TG_EARG && st.code == TG_EARG);
        CHECK_STR_HAS(st.msg, "tg_nn_save: ");
        CHECK_STR_HAS(st.msg, wrong_want[i]);
    }
    desc(d, sizeof d, "3,4,3", true, TG_F32);
    CHECK(tg_nn_save_meta(real, good, d, &st) == TG_EARG);
    desc(d, sizeof d, "3,4,3", false, TG_F64);
    CHECK(tg_nn_save_meta(real, good, d, &st) == TG_EARG);
    CHECK_STR_HAS(st.msg, "says dtype=f64, the model has f32 tensors");
    struct stat after;
    CHECK(stat(good, &after) == 0 && after.st_ino == before.st_ino);
    tg_nn_free(real);

    /* free-form descriptions are not checked */
    const char *free_text[4] = {"", "hello model", "mlp for my homework", "mlp layers=3,4"};
    for (int i = 0; i < 4; i++) {
        c_head(&c, 1, 4, free_text[i], (uint32_t)strlen(free_text[i]));
        c_mlp(&c, 3, s343, false, 4);
        c_write(&c, p);
        char meta[64];
        CHECK(tg_nn_read_meta(p, meta, sizeof meta, &st) == TG_OK &&
              strcmp(meta, free_text[i]) == 0);
        CHECK(tg_nn_load(small, p, &st) == TG_OK);
    }
    tg_nn_free(small);
}

/* The description check knows tg_nn_mlp's tensors: real MLPs saved with tapegrad train's
 * description read back and load, with and without batch norm, f32 and f64, deep and
 * shallow; a crafted file with the same tensors is accepted too. */
static void test_description_truth(void)
{
    char p[128], d[256];
    path_of(p, sizeof p, "mlp.tg");
    struct {
        int n;
        int64_t sizes[5];
        const char *layers;
    } nets[] = {{2, {3, 2}, "3,2"}, {3, {3, 4, 2}, "3,4,2"}, {5, {6, 5, 4, 3, 2}, "6,5,4,3,2"}};
    for (int k = 0; k < 3; k++)
        for (int bn = 0; bn < 2; bn++)
            for (int f64 = 0; f64 < 2; f64++) {
                tg_dtype dt = f64 ? TG_F64 : TG_F32;
                tg_status st;
                tg_module *a = tg_nn_mlp(nets[k].n, nets[k].sizes, "relu", 0, bn, dt, &st);
                tg_module *b = tg_nn_mlp(nets[k].n, nets[k].sizes, "relu", 0, bn, dt, &st);
                tg_tensor *pa[16];
                int np = tg_nn_params(a, pa, 16);
                for (int i = 0; i < np; i++) tg_set(pa[i], 0, 7.5);
                desc(d, sizeof d, nets[k].layers, bn, dt);
                CHECK(tg_nn_save_meta(a, p, d, &st) == TG_OK);
                char meta[256];
                CHECK(tg_nn_read_meta(p, meta, sizeof meta, &st) == TG_OK && strcmp(meta, d) == 0);
                CHECK(tg_nn_load(b, p, &st) == TG_OK);
                tg_tensor *pb[16];
                tg_nn_params(b, pb, 16);
                CHECK(tg_get(pb[np - 1], 0) == 7.5);
                /* the crafted twin */
                static craft c;
                uint64_t s[5];
                for (int i = 0; i < nets[k].n; i++) s[i] = (uint64_t)nets[k].sizes[i];
                c_head(&c, f64 ? 2 : 1,
                       (uint32_t)(2 * (nets[k].n - 1) + (bn ? 4 * (nets[k].n - 2) : 0)), d,
                       (uint32_t)strlen(d));
                c_mlp(&c, nets[k].n, s, bn, f64 ? 8 : 4);
                c_write(&c, p);
                CHECK(tg_nn_read_meta(p, meta, sizeof meta, &st) == TG_OK);
                CHECK(tg_nn_load(b, p, &st) == TG_OK && tg_get(pb[0], 0) == 0.25);
                tg_nn_free(a), tg_nn_free(b);
            }
}

/* Structure that lies with a valid checksum: every reason named, never a misleading one. */
static void test_structure_lies(void)
{
    char p[128];
    path_of(p, sizeof p, "bad.tg");
    static craft c;
    uint64_t s343[3] = {3, 4, 3};
    tg_module *m = tg_nn_mlp(3, (int64_t[]){3, 4, 3}, "relu", 0, false, TG_F32, NULL);
    tg_status st;

    /* the description's length off by one (or more), either way: named as such */
    const char *meta = "hello model";
    for (int delta = -5; delta <= 5; delta++) {
        if (!delta) continue;
        c_head(&c, 1, 4, meta, (uint32_t)((int)strlen(meta) + delta));
        c_mlp(&c, 3, s343, false, 4);
        c_write(&c, p);
        char want[128];
        snprintf(want, sizeof want,
                 "the description length %d looks wrong: the tensors after it fit "
                 "with a length of %d",
                 (int)strlen(meta) + delta, (int)strlen(meta));
        refuse(p, TG_EFORMAT, want);
        CHECK(tg_nn_load(m, p, &st) == TG_EFORMAT);
        CHECK_STR_HAS(st.msg, want);
        CHECK(strstr(st.msg, "67108864") == NULL);
    }
    /* 7 dimensions; dimensions whose product overflows; data beyond the file; a count larger
     * than the tensors; bytes after the last one */
    c_head(&c, 1, 1, "", 0);
    c_u32(&c, 7);
    for (int d = 0; d < 7; d++) c_u64(&c, 1);
    c_u32(&c, 0);
    c_write(&c, p);
    refuse(p, TG_EFORMAT, "offset 24: tensor 0 claims 7 dimensions (at most 6)");
    c_head(&c, 1, 1, "", 0);
    c_u32(&c, 2), c_u64(&c, 1ull << 62), c_u64(&c, 1ull << 62);
    c_write(&c, p);
    refuse(p, TG_EFORMAT, "tensor 0's data does not fit in the file (0 bytes are left)");
    c_head(&c, 1, 1, "", 0);
    c_u32(&c, 2), c_u64(&c, UINT64_MAX), c_u64(&c, 0); /* no data, but a size no tensor has */
    c_write(&c, p);
    tg_module *one = tg_nn_linear(3, 4, TG_F32);
    CHECK(tg_nn_load(one, p, &st) == TG_ESHAPE); /* a count mismatch: 1 for 2 */
    char meta_out[8];
    CHECK(tg_nn_read_meta(p, meta_out, sizeof meta_out, &st) == TG_OK); /* a valid empty tensor */
    tg_nn_free(one);
    c_head(&c, 1, 1, "", 0);
    c_u32(&c, 1), c_u64(&c, 5);
    c_write(&c, p);
    refuse(p, TG_EFORMAT, "tensor 0's data does not fit");
    c_head(&c, 1, 5, "", 0);
    c_mlp(&c, 3, s343, false, 4);
    c_write(&c, p);
    refuse(p, TG_EFORMAT, "the file ends before tensor 4 (the header says 5 tensors)");
    c_head(&c, 1, 3, "", 0);
    c_mlp(&c, 3, s343, false, 4);
    c_write(&c, p);
    refuse(p, TG_EFORMAT, "24 bytes after the last tensor");
    c_head(&c, 1, 1, "", 0);
    c_u32(&c, 3), c_u64(&c, 1);
    c_write(&c, p);
    refuse(p, TG_EFORMAT, "the file ends in tensor 0's dimensions");

    /* every description length and every tensor count but the true ones: always refused */
    bool all = true;
    for (uint32_t len = 0; len < 40; len++)
        for (uint32_t count = 0; count < 7; count++) {
            if (len == strlen(meta) && count == 4) continue;
            c_head(&c, 1, count, meta, len);
            c_mlp(&c, 3, s343, false, 4);
            c_write(&c, p);
            char out[64];
            all &= tg_nn_read_meta(p, out, sizeof out, &st) == TG_EFORMAT && strstr(st.msg, p);
        }
    CHECK(all);
    tg_nn_free(m);
}

/* A dead process's pid (waited for, so it is not reused before the test is done with it). */
static pid_t dead_pid(void)
{
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    waitpid(pid, NULL, 0);
    return pid;
}

static void touch(const char *p, time_t age)
{
    spill(p, "x", 1);
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec -= age, ts[1] = ts[0];
    utimensat(AT_FDCWD, p, ts, 0);
}

/* Temporary files of saves killed before they could remove them are removed by the next save
 * of the same path: those of dead processes, and nameless-owner ones an hour old. Every
 * other file stays: a live process's (a save in progress), other names, non-files. */
static void test_stale_temp_files(void)
{
    char sub[128], p[200], f[1100];
    path_of(sub, sizeof sub, "stale");
    CHECK(mkdir(sub, 0700) == 0);
    snprintf(p, sizeof p, "%s/m.tg", sub);
    pid_t dead = dead_pid(), me = getpid();
    char gone[4][64], kept[14][64];
    snprintf(gone[0], 64, "m.tg.tmp.%d.AbC123", (int)dead);
    snprintf(gone[1], 64, "m.tg.tmp.%d.zzzzzz", (int)dead);
    snprintf(gone[2], 64, "m.tg.tmp.OLDabc"); /* no pid, 2 hours old */
    snprintf(gone[3], 64, "m.tg.tmp.%d.000000", (int)dead);
    snprintf(kept[0], 64, "m.tg.tmp.%d.AbC123", (int)me); /* alive: a save in progress */
    snprintf(kept[1], 64, "m.tg.tmp.1.AbC123");           /* init is alive */
    snprintf(kept[2], 64, "m.tg.tmp.%d.AbC12", (int)dead);
    snprintf(kept[3], 64, "m.tg.tmp.%d.AbC123.bak", (int)dead);
    snprintf(kept[4], 64, "m.tg.tmp.%d.Ab-123", (int)dead);
    snprintf(kept[5], 64, "m.tg.tmp.0%d.AbC123", (int)dead);
    snprintf(kept[6], 64, "n.tg.tmp.%d.AbC123", (int)dead);
    snprintf(kept[7], 64, "xm.tg.tmp.%d.AbC123", (int)dead);
    snprintf(kept[8], 64, "m.tgx.tmp.%d.AbC123", (int)dead);
    snprintf(kept[9], 64, "m.tg.tmp.NEWabc"); /* no pid, fresh: its owner may be saving */
    snprintf(kept[10], 64, "m.tg.tmp.99999999999.AbC123");
    snprintf(kept[11], 64, "m.tg.tmp..AbC123");
    snprintf(kept[12], 64, "m.tg.tmp.%d.DIRabc", (int)dead); /* a directory */
    snprintf(kept[13], 64, "m.tg.tmp.%d.LNKabc", (int)dead); /* a symbolic link */
    for (int i = 0; i < 4; i++) {
        snprintf(f, sizeof f, "%s/%s", sub, gone[i]);
        touch(f, i == 2 ? 7200 : 0);
    }
    for (int i = 0; i < 12; i++) {
        snprintf(f, sizeof f, "%s/%s", sub, kept[i]);
        touch(f, 7200); /* old, but not of this pattern or not stale */
        if (i == 9) touch(f, 60);
    }
    snprintf(f, sizeof f, "%s/%s", sub, kept[12]);
    CHECK(mkdir(f, 0700) == 0);
    snprintf(f, sizeof f, "%s/%s", sub, kept[13]);
    CHECK(symlink("/nonexistent", f) == 0);
    tg_module *m = tg_nn_linear(2, 2, TG_F32);
    tg_status st;
    CHECK(tg_nn_save(m, p, &st) == TG_OK);
    for (int i = 0; i < 4; i++) {
        snprintf(f, sizeof f, "%s/%s", sub, gone[i]);
        CHECK(!exists(f));
    }
    for (int i = 0; i < 14; i++) {
        snprintf(f, sizeof f, "%s/%s", sub, kept[i]);
        CHECK(exists(f));
    }
    CHECK(tg_nn_load(m, p, &st) == TG_OK);

    /* a relative path cleans the current directory */
    char cwd[512];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);
    CHECK(chdir(sub) == 0);
    touch(gone[0], 0);
    CHECK(tg_nn_save(m, "m.tg", &st) == TG_OK && !exists(gone[0]) && exists(kept[0]));
    CHECK(chdir(cwd) == 0);
    tg_nn_free(m);
}

/* Files in d whose name contains ".tmp.". */
static int count_temp(const char *d)
{
    DIR *dd = opendir(d);
    int n = 0;
    for (struct dirent *e; dd && (e = readdir(dd));) n += strstr(e->d_name, ".tmp.") != NULL;
    if (dd) closedir(dd);
    return n;
}

/* Saves killed at random points: the file is always the old or the new model, temporary
 * files never pile up (each save removes those of the killed ones before it), and the
 * next save leaves none. */
static void test_killed_saves(void)
{
    char sub[128], p[200];
    path_of(sub, sizeof sub, "killed");
    CHECK(mkdir(sub, 0700) == 0);
    snprintf(p, sizeof p, "%s/m.tg", sub);
    tg_module *m = tg_nn_mlp(3, (int64_t[]){256, 512, 10}, "relu", 0, false, TG_F64, NULL);
    tg_status st;
    CHECK(tg_nn_save(m, p, &st) == TG_OK);
    int left = 0, loads = 0, most = 0;
    for (int k = 0; k < 40; k++) {
        pid_t pid = fork();
        if (pid == 0) {
            for (;;) tg_nn_save(m, p, NULL);
        }
        struct timespec ts = {0, 250000L * (1 + k % 23)};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        loads += tg_nn_load(m, p, &st) == TG_OK;
        int n = count_temp(sub);
        left += n > 0;
        most = n > most ? n : most;
    }
    CHECK(loads == 40);
    CHECK(most <= 1); /* a save creates its file only after removing the stale ones */
    CHECK(tg_nn_save(m, p, &st) == TG_OK);
    CHECK(count_temp(sub) == 0);
    if (!left) printf("  note: no kill left a temporary file this time\n");
    tg_nn_free(m);
}

static void test_setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/tg_nn_io_XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
}

static void test_cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

static const check_case cases[] = {
    TEST(test_setup),
    TEST(test_not_regular),
    TEST(test_description_lies),
    TEST(test_description_truth),
    TEST(test_structure_lies),
    TEST(test_stale_temp_files),
    TEST(test_killed_saves),
    TEST(test_cleanup),
};
TEST_MAIN("test_nn_io", cases)
