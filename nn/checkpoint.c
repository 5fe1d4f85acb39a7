/* nn/checkpoint.c: a training run's whole state in one file (docs/nn.md, Checkpoints).
 *
 *   "TGCKPT\0\0"  u32 version (1)  u32 section count
 *   per section: u32 tag, u32 0, u64 length, length bytes
 *   u32 CRC-32 (zlib) of every byte before it
 *
 * Sections, each at most once: MODL (the model file tg_nn_save_meta writes, with its own
 * checksum), CNTR (i64 epoch, i64 step), OPTM (tg_optim_state_save), BTCH
 * (tg_batcher_state_save), TRNG (the tape's generator, 4 x u64), USER (the caller's bytes).
 * Integers are little-endian. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "internal.h"

/* data/file.c */
int tg_file_slurp(const char *path, uint64_t max, unsigned char **out, size_t *len, tg_status *st);

#define MAGIC "TGCKPT\0"
#define VERSION 1u
#define MAX_FILE ((uint64_t)1 << 34) /* 16 GiB */
#define HEAD 16
#define SEC_HEAD 16

enum { S_MODL, S_CNTR, S_OPTM, S_BTCH, S_TRNG, S_USER, N_SEC };
static const char tags[N_SEC][5] = {"MODL", "CNTR", "OPTM", "BTCH", "TRNG", "USER"};
static const char *const names[N_SEC] = {
    "the model",           "the counters",         "the optimiser's state",
    "the batcher's state", "the tape's generator", "the caller's data"};

static bool little_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 1;
}

static void put_u(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int tag_id(const unsigned char *p)
{
    for (int i = 0; i < N_SEC; i++)
        if (memcmp(p, tags[i], 4) == 0) return i;
    return -1;
}

/* ---- save ---- */
int tg_checkpoint_save(const char *path, const tg_checkpoint *c, tg_status *st)
{
    static const char who[] = "tg_checkpoint_save";
    if (!path || !*path || !c || !c->model)
        return tg_status_set(st, TG_EARG, "%s: NULL checkpoint, model or path", who);
    if (!little_endian())
        return tg_status_set(st, TG_ESTATE, "%s: big-endian hosts are not supported", who);
    if (c->user_len > TG_CHECKPOINT_MAX_USER || (c->user_len && !c->user))
        return tg_status_set(st, TG_EARG,
                             "%s: %s: %zu bytes of caller's data (at most %d, and not NULL)", who,
                             path, c->user_len, TG_CHECKPOINT_MAX_USER);
    unsigned char *model = NULL;
    size_t model_len = 0;
    int rc = tg_nn_image(c->model, c->meta, who, path, &model, &model_len, st);
    if (rc) return rc;
    size_t len[N_SEC] = {model_len,
                         16,
                         tg_optim_state_size(c->optim),
                         tg_batcher_state_size(c->batcher),
                         c->tape ? 32 : 0,
                         c->user_len};
    bool has[N_SEC] = {true,           true, c->optim != NULL, c->batcher != NULL, c->tape != NULL,
                       c->user_len > 0};
    size_t total = HEAD + 4;
    uint32_t count = 0;
    for (int i = 0; i < N_SEC; i++)
        if (has[i]) total += SEC_HEAD + len[i], count++;
    unsigned char *p = malloc(total);
    if (!p) {
        free(model);
        return tg_status_set(st, TG_ENOMEM, "%s: %s: out of memory for %zu bytes", who, path,
                             total);
    }
    memcpy(p, MAGIC, 8);
    put_u(p + 8, VERSION, 4), put_u(p + 12, count, 4);
    size_t at = HEAD;
    for (int i = 0; i < N_SEC && !rc; i++) {
        if (!has[i]) continue;
        memcpy(p + at, tags[i], 4), put_u(p + at + 4, 0, 4), put_u(p + at + 8, len[i], 8);
        unsigned char *d = p + at + SEC_HEAD;
        switch (i) {
        case S_MODL: memcpy(d, model, model_len); break;
        case S_CNTR: put_u(d, (uint64_t)c->epoch, 8), put_u(d + 8, (uint64_t)c->step, 8); break;
        case S_OPTM: rc = tg_optim_state_save(c->optim, d, len[i], st); break;
        case S_BTCH: rc = tg_batcher_state_save(c->batcher, d, len[i], st); break;
        case S_TRNG:
            for (int k = 0; k < 4; k++) put_u(d + 8 * k, tg_tape_rng(c->tape)->s[k], 8);
            break;
        default: memcpy(d, c->user, c->user_len); break;
        }
        at += SEC_HEAD + len[i];
    }
    free(model);
    if (!rc) {
        put_u(p + at, (uint32_t)crc32_z(0L, p, at), 4);
        rc = tg_file_write_atomic(who, path, p, total, st);
    }
    free(p);
    return rc;
}

/* ---- load ---- */
/* Where each section's bytes are in a checked file. */
typedef struct sections {
    const unsigned char *at[N_SEC];
    size_t len[N_SEC];
} sections;

/* The file's structure: magic, checksum, version, section headers that tile it exactly, no
 * section twice, none unknown. */
static int parse(const char *path, const unsigned char *p, size_t n, sections *s, tg_status *st)
{
    memset(s, 0, sizeof *s);
    if (n < HEAD + 4 || memcmp(p, MAGIC, 8) != 0)
        return tg_status_set(st, TG_EFORMAT, "%s: not a tapegrad checkpoint (bad magic)", path);
    if (get_u(p + n - 4, 4) != (uint32_t)crc32_z(0L, p, n - 4))
        return tg_status_set(st, TG_EFORMAT,
                             "%s: checksum mismatch: the checkpoint is truncated or corrupted",
                             path);
    if (get_u(p + 8, 4) != VERSION)
        return tg_status_set(st, TG_EFORMAT, "%s: checkpoint version %llu, this tapegrad reads %u",
                             path, (unsigned long long)get_u(p + 8, 4), VERSION);
    uint64_t count = get_u(p + 12, 4);
    size_t at = HEAD, end = n - 4;
    for (uint64_t k = 0; k < count; k++) {
        if (end - at < SEC_HEAD)
            return tg_status_set(st, TG_EFORMAT,
                                 "%s: offset %zu: the file ends before section %llu of %llu", path,
                                 at, (unsigned long long)k, (unsigned long long)count);
        int id = tag_id(p + at);
        uint64_t len = get_u(p + at + 8, 8);
        if (id < 0 || get_u(p + at + 4, 4))
            return tg_status_set(st, TG_EFORMAT, "%s: offset %zu: unknown section", path, at);
        if (s->at[id])
            return tg_status_set(st, TG_EFORMAT, "%s: offset %zu: section %s twice", path, at,
                                 tags[id]);
        if (len > end - at - SEC_HEAD)
            return tg_status_set(st, TG_EFORMAT,
                                 "%s: offset %zu: section %s of %llu bytes does not fit in the "
                                 "file",
                                 path, at, tags[id], (unsigned long long)len);
        s->at[id] = p + at + SEC_HEAD, s->len[id] = (size_t)len;
        at += SEC_HEAD + (size_t)len;
    }
    if (at != end)
        return tg_status_set(st, TG_EFORMAT, "%s: offset %zu: %zu bytes after the last section",
                             path, at, end - at);
    bool want[N_SEC] = {true, true, false, false, false, false};
    for (int i = 0; i < N_SEC; i++)
        if (want[i] && !s->at[i])
            return tg_status_set(st, TG_EFORMAT, "%s: no %s section (%s)", path, tags[i], names[i]);
    if (s->len[S_CNTR] != 16 || (s->at[S_TRNG] && s->len[S_TRNG] != 32))
        return tg_status_set(st, TG_EFORMAT, "%s: a %s section of %zu bytes", path,
                             s->len[S_CNTR] != 16 ? "CNTR" : "TRNG",
                             s->len[S_CNTR] != 16 ? s->len[S_CNTR] : s->len[S_TRNG]);
    return TG_OK;
}

/* Prefixes st's message with the file's name. */
static int in_file(const char *path, int rc, tg_status *st)
{
    if (rc && st) {
        char msg[sizeof st->msg];
        snprintf(msg, sizeof msg, "%.100s: %.150s", path, st->msg);
        memcpy(st->msg, msg, sizeof msg);
    }
    return rc;
}

int tg_checkpoint_load(const char *path, tg_checkpoint *c, tg_status *st)
{
    if (!path || !c || !c->model)
        return tg_status_set(st, TG_EARG, "tg_checkpoint_load: NULL checkpoint, model or path");
    if (!little_endian())
        return tg_status_set(st, TG_ESTATE,
                             "tg_checkpoint_load: big-endian hosts are not supported");
    unsigned char *p = NULL, *undo_o = NULL;
    size_t n = 0;
    int rc = tg_file_slurp(path, MAX_FILE, &p, &n, st);
    if (rc) return rc;
    sections s;
    rc = parse(path, p, n, &s, st);
    /* every object c names must be in the file */
    void *objs[N_SEC] = {c->model, c, c->optim, c->batcher, c->tape, NULL};
    for (int i = 0; !rc && i < N_SEC; i++)
        if (objs[i] && !s.at[i])
            rc = tg_status_set(st, TG_EFORMAT, "%s: holds no %s (no %s section)", path, names[i],
                               tags[i]);
    if (!rc && c->user && s.len[S_USER] > c->user_cap)
        rc = tg_status_set(st, TG_EARG, "%s: %zu bytes of caller's data, the buffer has %zu", path,
                           s.len[S_USER], c->user_cap);
    char what[300];
    snprintf(what, sizeof what, "%s: model", path);
    if (!rc) rc = tg_nn_image_load(c->model, what, s.at[S_MODL], s.len[S_MODL], false, st);
    /* The optimiser's and the batcher's loads check all before they change anything; the
     * optimiser's old state is kept to be put back if the batcher's is refused. */
    size_t undo_len = tg_optim_state_size(c->optim);
    if (!rc && c->optim) {
        undo_o = malloc(undo_len);
        if (!undo_o) rc = tg_status_set(st, TG_ENOMEM, "%s: out of memory", path);
        else tg_optim_state_save(c->optim, undo_o, undo_len, NULL);
        if (!rc)
            rc = in_file(path, tg_optim_state_load(c->optim, s.at[S_OPTM], s.len[S_OPTM], st), st);
        if (rc) free(undo_o), undo_o = NULL;
    }
    if (!rc && c->batcher) {
        rc = in_file(path, tg_batcher_state_load(c->batcher, s.at[S_BTCH], s.len[S_BTCH], st), st);
        if (rc && undo_o) tg_optim_state_load(c->optim, undo_o, undo_len, NULL);
    }
    if (!rc) { /* nothing below can fail */
        tg_nn_image_load(c->model, what, s.at[S_MODL], s.len[S_MODL], true, NULL);
        if (c->tape)
            for (int k = 0; k < 4; k++) tg_tape_rng(c->tape)->s[k] = get_u(s.at[S_TRNG] + 8 * k, 8);
        c->epoch = (int64_t)get_u(s.at[S_CNTR], 8), c->step = (int64_t)get_u(s.at[S_CNTR] + 8, 8);
        if (c->user && s.len[S_USER]) memcpy(c->user, s.at[S_USER], s.len[S_USER]);
        c->user_len = s.len[S_USER];
        if (st) st->code = TG_OK, st->msg[0] = '\0';
    }
    free(undo_o);
    free(p);
    return rc;
}
