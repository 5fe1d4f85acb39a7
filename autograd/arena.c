/* autograd/arena.c: the tape's bump allocator. Blocks are kept across tg_tape_reset and
 * reused in the same order, so a step that repeats the previous one allocates nothing, and
 * takes the same offsets in them: only the start of each block moves with the generation
 * (TG_STAGGER), which is what lets a stale tensor be told from a live one. */
#include <stdint.h>
#include <string.h>

#include "internal.h"

#define FIRST_BLOCK ((size_t)64 << 10)

static size_t round_up(size_t n) { return (n + TG_ALIGN - 1) & ~(size_t)(TG_ALIGN - 1); }

static unsigned char *align_line(unsigned char *p)
{
    return p + ((TG_ALIGN - (uintptr_t)p % TG_ALIGN) % TG_ALIGN);
}

/* The hook's memory is only as aligned as realloc's (16 bytes), so the data starts at the
 * first cache line past the header, and the block's bytes past its data: room for the
 * largest stagger and one spare line, since BLIS's kernels may read a few bytes past a
 * small C. */
static size_t block_bytes(size_t size)
{
    return sizeof(tg_block) + TG_ALIGN - 1 + TG_STAGGER_MAX + size + TG_ALIGN;
}

static tg_block *block_new(tg_tape *tp, size_t size)
{
    if (size > SIZE_MAX / 2) return NULL;
    tg_block *b = tp->alloc(tp->alloc_ctx, NULL, block_bytes(size));
    tp->n_allocs++;
    if (!b) return NULL;
    b->next = NULL;
    b->base = align_line((unsigned char *)(b + 1));
    b->top = b->base + TG_STAGGER(tp->gen);
    b->end = b->top + size;
    b->size = size;
    tp->reserved += size;
    uintptr_t lo = (uintptr_t)b, hi = lo + block_bytes(size);
    if (!tp->hi || lo < tp->lo) tp->lo = lo;
    if (hi > tp->hi) tp->hi = hi;
    return b;
}

/* The first block from cur on with room bytes free, or a new one; NULL when out of memory.
 * Blocks after cur are empty (rewound). */
static tg_block *block_with(tg_tape *tp, size_t room)
{
    tg_block *b = tp->cur;
    for (; b; b = b->next)
        if ((size_t)(b->end - b->top) >= room) break;
    if (!b) {
        /* Grow geometrically: each new block at least doubles what is reserved. */
        size_t size = tp->reserved > FIRST_BLOCK ? tp->reserved : FIRST_BLOCK;
        if (size < room) size = round_up(room);
        if (size < room) return NULL;
        b = block_new(tp, size);
        if (!b) return NULL;
        tg_block **link = &tp->first;
        while (*link) link = &(*link)->next;
        *link = b;
    }
    tp->cur = b;
    return b;
}

/* tg_arena_bump's room from the next block with room, or a new one: NULL when out of
 * memory. Apart, so that the fast path needs no registers saved. */
#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif
static NOINLINE void *bump_next(tg_tape *tp, size_t room)
{
    return block_with(tp, room) ? tg_arena_bump(tp, room) : NULL;
}

/* bytes (rounded up to 16) at an address that is a multiple of align (16 or 64). Offsets
 * from a block's start are multiples of 16 and do not depend on the stagger: a 64-aligned
 * request takes 48 bytes more and starts on the first line of its room. */
void *tg_arena_alloc_align(tg_tape *tp, size_t bytes, size_t align)
{
    size_t need = (bytes + 15) & ~(size_t)15;
    if (need < bytes) return NULL; /* rounding overflowed */
    if (!need) need = 16;
    size_t room = align > 16 ? need + (TG_ALIGN - 16) : need;
    if (room < need) return NULL;
    unsigned char *p = tg_arena_bump(tp, room);
    if (!p) p = bump_next(tp, room);
    if (p && align > 16) p = align_line(p);
    return p;
}

void *tg_arena_alloc(tg_tape *tp, size_t bytes)
{
    return tg_arena_alloc_align(tp, bytes, TG_ALIGN);
}

void tg_arena_rewind(tg_tape *tp)
{
    for (tg_block *b = tp->first; b; b = b->next) {
        b->top = b->base + TG_STAGGER(tp->gen);
        b->end = b->top + b->size;
    }
    tp->cur = tp->first;
    tp->used = 0;
}

bool tg_arena_owns(const tg_tape *tp, const void *p)
{
    if ((uintptr_t)p < tp->lo || (uintptr_t)p >= tp->hi) return false;
    for (const tg_block *b = tp->first; b; b = b->next) {
        uintptr_t at = (uintptr_t)p - (uintptr_t)b;
        if (at < block_bytes(b->size)) return true;
    }
    return false;
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
    tp->lo = tp->hi = 0;
}
