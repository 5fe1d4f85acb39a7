/* stamp.h: stamps the template named by TG_TEMPLATE (a file of this directory) for both
 * dtypes: T = float with FN(name) = name_f32 and float libm (M(exp) = expf), then T = double
 * with name_f64 and exp. Usage: #define TG_TEMPLATE "reduce_t.h", then #include "stamp.h".
 * No include guard, on purpose. */
#define T float
#define FN(name) name##_f32
#define M(fn) fn##f
#include TG_TEMPLATE
#undef T
#undef FN
#undef M
#define T double
#define FN(name) name##_f64
#define M(fn) fn
#include TG_TEMPLATE
#undef T
#undef FN
#undef M
#undef TG_TEMPLATE
