/* optim/nonfinite_t.h: any_nonfinite_f32 / any_nonfinite_f64, for the element type T with U
 * the unsigned integer of its width and EXP, ONE and SIGN its exponent bits, the lowest of
 * them and its sign bit. optim/optim.c includes this file twice, as ops/elem.h does
 * ops/elem_t.h: T = float with FN(name) = name_f32 and U = uint32_t, then T = double with
 * name_f64 and U = uint64_t. No include guard, on purpose. */

TG_VEC_CLONES
static bool FN(any_nonfinite)(const T *restrict g, int64_t n)
{
    U acc = 0;
    for (int64_t i = 0; i < n; i++) {
        U b;
        memcpy(&b, g + i, sizeof b);
        acc |= (b & EXP) + ONE;
    }
    return acc & SIGN;
}
