/* autograd/arena.c: the tape's bump allocator. Blocks are kept across tg_tape_reset and
 * reused in the same order, so a step that repeats the previous one allocates nothing. */
#include <stdint.h>
#include <string.h>

#include "internal.h"

#define FIRST_BLOCK ((size_t)64 << 10)
#define WRITE_AHEAD 1024 /* bytes; best of 1, 2 and 4 KB on a chain of 10^6 scalar ops */

static size_t round_up(size_t n) { return (n + TG_ALIGN - 1) & ~(size_t)(TG_ALIGN - 1); }

static tg_block *block_new(tg_tape *tp, size_t size)
{
    if (size > SIZE_MAX / 2) return NULL;
    /* One spare line past the end: BLIS's kernels may read a few bytes past a small C. */
    tg_block *b = tp->alloc(tp->alloc_ctx, NULL, sizeof(tg_block) + size + TG_ALIGN);
    tp->n_allocs++;
    if (!b) return NULL;
    b->next = NULL;
    b->size = size;
    b->used = 0;
    tp->reserved += size;
    return b;
}

/* bytes (rounded up to 16) at an offset that is a multiple of align (16 or 64). */
void *tg_arena_alloc_align(tg_tape *tp, size_t bytes, size_t align)
{
    size_t need = (bytes + 15) & ~(size_t)15;
    if (need < bytes) return NULL; /* rounding overflowed */
    if (!need) need = 16;
    tg_block *b = tp->cur;
    size_t off = 0;
    /* Blocks after cur are empty (rewound); take the first one large enough. */
    for (; b; b = b->next) {
        off = (b->used + align - 1) & ~(align - 1);
        if (off <= b->size && b->size - off >= need) break;
    }
    if (!b) {
        /* Grow geometrically: each new block at least doubles what is reserved. */
        size_t size = tp->reserved > FIRST_BLOCK ? tp->reserved : FIRST_BLOCK;
        if (size < need) size = round_up(need);
        b = block_new(tp, size);
        if (!b) return NULL;
        tg_block **link = &tp->first;
        while (*link) link = &(*link)->next;
        *link = b;
        off = 0;
    }
    tp->cur = b;
    void *p = b->data + off;
#if defined(__GNUC__)
    /* Ops take arena memory in order: ask for the line a few nodes ahead for writing, so a
     * long tape does not wait on each new line (a prefetch past the block never faults). */
    __builtin_prefetch((const void *)((uintptr_t)p + WRITE_AHEAD), 1);
#endif
    tp->used += off - b->used + need;
    b->used = off + need;
    if (tp->used > tp->high) tp->high = tp->used;
    return p;
}

void *tg_arena_alloc(tg_tape *tp, size_t bytes) { return tg_arena_alloc_align(tp, bytes, TG_ALIGN); }

void tg_arena_rewind(tg_tape *tp)
{
    for (tg_block *b = tp->first; b; b = b->next) b->used = 0;
    tp->cur = tp->first;
    tp->used = 0;
}

void tg_arena_release(tg_tape *tp)
{
    tg_block *b = tp->first;
    while (b) {
        tg_block *next = b->next;
        tp->alloc(tp->alloc_ctx, b, 0);
        b = next;
    }
    tp->first = tp->cur = NULL;
    tp->used = tp->reserved = 0;
}
