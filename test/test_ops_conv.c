/* test/test_ops_conv.c: conv2d, conv1d, unfold and fold (ops/conv.c). Values and gradients
 * against PyTorch 1.13 (F.conv2d, F.conv1d, F.unfold, F.fold in float64, the numbers below
 * pasted from it; inputs are the exact formulas fx, fw, fb, so nothing else is needed),
 * in f64 and f32; stride, padding, dilation, groups, depthwise, 1x1, no bias, asymmetric
 * axes; unfold and fold as adjoints; recording rules; errors; the self-check cases. */
#include <stdlib.h>

#include "check.h"
#include "ops_check.h"
#include "tapegrad.h"

/* The inputs of every value test: x_i = ((a i) mod m - off)/d, w_j = ((11 j) mod 13 - 6)/16,
 * b_k = (k - 1)/4 (dyadic, so exact in f32 and f64). */
static tg_tensor *fx_leaf(tg_dtype dt, int nd, const int64_t *s, int a, int m, int off, double d)
{
    tg_tensor *t = leaf(dt, nd, s, NULL, true);
    for (int64_t i = 0; i < tg_tensor_numel(t); i++) tg_set(t, i, (double)((i * a) % m - off) / d);
    return t;
}
static tg_tensor *fw_leaf(tg_dtype dt, int nd, const int64_t *s)
{
    return fx_leaf(dt, nd, s, 11, 13, 6, 16.0);
}
static tg_tensor *fb_leaf(tg_dtype dt, int64_t n)
{
    tg_tensor *t = leaf(dt, 1, &n, NULL, true);
    for (int64_t k = 0; k < n; k++) tg_set(t, k, (double)(k - 1) / 4.0);
    return t;
}

/* ---- PyTorch 1.13 numbers (float64). Each gradient is of Σ (i+1) y_i (ops_check.h's
 * weighted). ---- */
/* clang-format off */
/* CA: x [2, 3, 5, 5], w [4, 3, 3, 3], b, stride 2, padding 1, dilation 1, groups 1: y [2, 4, 3, 3] */
static const double CA_Y[72] = {0.46875, -0.71875, -1.078125, -0.4140625, 1.1640625, -0.734375, -1.09375, -0.9140625, -0.2890625, 0.421875, 0.8984375, -0.84375, -1.3359375, -0.2109375, 0.6328125, -0.6796875, -1.265625, -0.9375, 0.984375, 1.09375, 0.1015625, -0.9375, -1.3828125, 0.6796875, 0.0390625, -0.1953125, -0.5703125, 0.2265625, 0.78125, 1.65625, -0.1328125, -0.7265625, 0.421875, 1.5703125, 1.1796875, 0.40625, 0.890625, -0.0234375, -0.8203125, -0.3828125, 0.2265625, 0.5078125, -0.9140625, -0.9296875, -0.375, 1.15625, 0.28125, -0.2734375, -1.28125, -0.765625, 0.6640625, -0.1875, -1.2578125, -0.90625, 0.1015625, 1.09375, 0.984375, -0.9609375, -1.65625, -0.6015625, 0.7421875, -0.1640625, -0.5234375, -0.34375, 1.3984375, 0.921875, -0.1328125, -0.71875, -0.34375, 0.65625, 1.1328125, 0.3671875};
static const double CA_DX[150] = {2.625, -2.5625, 2.4375, -2.9375, 2.25, 8.375, 13.3125, 9.625, 14.1875, 10.875, 2.0625, -3.6875, 1.875, -4.0625, 1.6875, 12.125, 15.9375, 13.375, 16.8125, 14.625, 1.5, -4.8125, 1.3125, -5.1875, 1.125, 8.0625, 8.6875, 8.25, 9.0625, 8.4375, -31.625, -15.5625, -32.875, -16.4375, -34.125, 8.625, 9.8125, 8.8125, 10.1875, 9, -35.375, -18.1875, -36.625, -19.0625, -37.875, 9.1875, 10.9375, 9.375, 11.3125, 9.5625, -9.25, -18.25, -9.5, -18.75, -9.75, 20.1875, 25.4375, 20.5, 26.0625, 20.8125, -10, -19.75, -10.25, -20.25, -10.5, 21.125, 27.3125, 21.4375, 27.9375, 21.75, -10.75, -21.25, -11, -21.75, -11.25, -4.125, -16.0625, -4.3125, -16.4375, -4.5, 53.375, 44.8125, 54.625, 45.6875, 55.875, -4.6875, -17.1875, -4.875, -17.5625, -5.0625, 57.125, 47.4375, 58.375, 48.3125, 59.625, -5.25, -18.3125, -5.4375, -18.6875, -5.625, 14.8125, 22.1875, 15, 22.5625, 15.1875, -76.625, -47.0625, -77.875, -47.9375, -79.125, 15.375, 23.3125, 15.5625, 23.6875, 15.75, -80.375, -49.6875, -81.625, -50.5625, -82.875, 15.9375, 24.4375, 16.125, 24.8125, 16.3125, -18.25, -36.25, -18.5, -36.75, -18.75, 31.4375, 47.9375, 31.75, 48.5625, 32.0625, -19, -37.75, -19.25, -38.25, -19.5, 32.375, 49.8125, 32.6875, 50.4375, 33, -19.75, -39.25, -20, -39.75, -20.25};
static const double CA_DW[108] = {-36.5, -54.875, -35, 91.375, 72.75, 86.5, -32, -48.125, -30.5, 65.25, 95.125, 63.25, -29.875, -31.125, -28.125, 59.25, 86.125, 57.25, -70.5, -11.375, -68.875, -18.125, -28.125, -16.875, -65.625, -7.625, -64, -50, -75.125, -48.5, 135.25, 106.5, 130.375, -45.5, -68.375, -44, 83.25, 122.125, 81.25, -45.625, -33.375, -43.875, 77.25, 113.125, 75.25, -85.125, -22.625, -83.5, -29.375, -45, -28.125, -80.25, -18.875, -78.625, -63.5, -95.375, -62, 179.125, 140.25, 174.25, -59, -88.625, -57.5, 101.25, 149.125, 99.25, -61.375, -35.625, -59.625, 95.25, 140.125, 93.25, -99.75, -33.875, -98.125, -40.625, -61.875, -39.375, -94.875, -30.125, -93.25, -77, -115.625, -75.5, 223, 174, 218.125, -72.5, -108.875, -71, 119.25, 176.125, 117.25, -77.125, -37.875, -75.375, 113.25, 167.125, 111.25, -114.375, -45.125, -112.75, -51.875, -78.75, -50.625, -109.5, -41.375, -107.875};
static const double CA_DB[4] = {414, 576, 738, 900};
/* CB: x [1, 4, 6, 5], w [2, 2, 2, 3], stride (1, 2), padding 2, dilation 2, groups 2: y [1, 2, 8, 3] */
static const double CB_Y[48] = {-0.0703125, -0.2109375, -0.03125, 0.015625, -0.2421875, -0.109375, -0.3515625, 0.7890625, -0.1484375, -0.078125, 0.3359375, 0.6640625, 0.34375, -0.1171875, -0.15625, -0.125, -0.5703125, -0.234375, 0.296875, -0.328125, -0.2578125, -0.40625, -0.0078125, 0.6328125, -0.046875, -0.0390625, -0.171875, -0.125, -0.09375, 0.328125, -0.1640625, -0.234375, 0.09375, 0.5, -0.1640625, -0.1875, -0.171875, -0.2421875, 0.125, 0.7890625, 0.421875, -0.15625, -0.2578125, -0.328125, 0.296875, -0.109375, -0.3515625, -0.1875};
static const double CB_DX[120] = {-0.75, 0, 0.3125, 0, 3.75, -0.9375, 0, 0.125, 0, 4.5, -1.125, 0, -0.0625, 0, 5.25, -1.3125, 0, -0.25, 0, 6, -1.5, 0, -0.4375, 0, 6.75, -1.6875, 0, -0.625, 0, 7.5, 0.375, 0, 2.1875, 0, 5.125, 0.9375, 0, 3.125, 0, 6.625, 1.5, 0, 4.0625, 0, 8.125, 2.0625, 0, 5, 0, 9.625, 2.625, 0, 5.9375, 0, 11.125, 3.1875, 0, 6.875, 0, 12.625, -13.1875, 0, -5.4375, 0, -2.3125, -14.3125, 0, -5.8125, 0, -2.5, -15.4375, 0, -6.1875, 0, -2.6875, -16.5625, 0, -6.5625, 0, -2.875, -17.6875, 0, -6.9375, 0, -3.0625, -18.8125, 0, -7.3125, 0, -3.25, -6.0625, 0, 5.4375, 0, 5.0625, -6.4375, 0, 6.1875, 0, 5.625, -6.8125, 0, 6.9375, 0, 6.1875, -7.1875, 0, 7.6875, 0, 6.75, -7.5625, 0, 8.4375, 0, 7.3125, -7.9375, 0, 9.1875, 0, 7.875};
static const double CB_DW[24] = {39.625, 31.375, 9.375, 28.375, 20.875, 1.875, -53.375, -29.25, -14.875, -36.875, -19.5, -8.875, 80.375, 77.5, 56.25, 67.625, 64.75, 47.25, 11.75, -30.875, -24.375, 12.5, -23.375, -19.875};
/* CC: x [1, 3, 4, 4], w [6, 1, 3, 3], b, stride 1, padding 1, dilation 1, groups 3: y [1, 6, 4, 4] */
static const double CC_Y[96] = {0.046875, -0.453125, -0.3203125, -0.2578125, -0.4296875, 0.59375, -0.328125, -0.390625, -0.125, -0.421875, -0.453125, -0.390625, -0.0625, -0.203125, -0.1953125, -0.28125, 0.78125, 0.3203125, -0.2578125, -0.4609375, -0.21875, -0.4765625, -0.1640625, -0.1484375, -0.125, -0.1171875, -0.1015625, -0.0234375, -0.0390625, 0.078125, 0.1171875, 0.359375, -0.5, -0.765625, -0.71875, -0.4375, -0.046875, 0.3515625, 0.4140625, 0.9921875, 0.3203125, 0.3046875, 0.3671875, 0.0546875, 0.2578125, 0.1484375, 0.1171875, 0.0390625, 1.3203125, 1.8046875, 1.78125, 1.2890625, 0, -0.0859375, -0.1796875, -0.015625, 0.53125, 0.875, 0.78125, 0.734375, 0.625, 0.84375, 0.84375, 0.71875, 0.78125, 0.8359375, 0.3984375, 0.609375, 0.234375, 0.640625, 1.140625, 1.625, 1.484375, 1.15625, 0.6171875, 0.53125, 0.6328125, 0.4296875, 0.4609375, 0.6171875, 1.078125, 1.2734375, 2.0546875, 0.78125, 0.7578125, 0.4609375, 0.1640625, 0.3515625, 0.2421875, 0.4609375, 1.0546875, 1.7578125, 1.546875, 1.234375, 1.1953125, 1.03125};
static const double CC_DX[48] = {-8.75, -5.875, -6.25, -1.4375, -6.8125, -3.6875, -3.5625, 1.125, -7.8125, -3.1875, -3.0625, 3.875, -11.625, -4.625, -4.625, 1.1875, 8.4375, 10.4375, 10.6875, -5.125, 27.4375, 23.9375, 24.1875, -8.125, 28.9375, 24.9375, 25.1875, -9.375, 22.3125, -4.625, -4.8125, -30.4375, 2.1875, 8.25, 8.3125, 51.4375, -48.625, -29.8125, -30.25, 31.5625, -51.125, -31.5625, -32, 32.8125, -49.25, -32.875, -33.25, 3.0625};
static const double CC_DW[54] = {34.875, 41.125, 32.25, 4.75, -2.375, -7, -4.875, -13, -12.75, 86.875, 111.125, 104.25, 38.75, 39.625, 41, 13.125, -1, -12.75, 96.375, 94.5, 47.25, 88.625, 75.25, 26.75, 162.75, 184.25, 115.5, 126.375, 122.5, 59.25, 118.625, 99.25, 32.75, 234.75, 268.25, 169.5, -124.875, -41.5, -28.125, -28.75, 59.5, 32.625, 69, 199.25, 148.625, -154.875, -55.5, -38.125, -40.75, 65.5, 34.625, 81, 241.25, 180.625};
static const double CC_DB[6] = {136, 392, 648, 904, 1160, 1416};
/* CD: x [2, 3, 2, 2], w [2, 3, 1, 1], b, stride 1, padding 0, dilation 1, groups 1: y [2, 2, 2, 2] */
static const double CD_Y[16] = {0.453125, -0.453125, -0.46875, -0.484375, -0.1640625, 0.0078125, 0.03125, 0.0546875, -0.1796875, -0.1953125, -0.2109375, -0.2265625, -0.1796875, -0.15625, -0.1328125, -0.109375};
static const double CD_DX[24] = {-0.0625, -0.375, -0.6875, -1, 0, 0.25, 0.5, 0.75, -0.75, -0.75, -0.75, -0.75, -2.5625, -2.875, -3.1875, -3.5, 2, 2.25, 2.5, 2.75, -0.75, -0.75, -0.75, -0.75};
static const double CD_DW[6] = {-11.375, -35, 38.75, -10.875, -41, 54.75};
static const double CD_DB[2] = {52, 84};
/* CE: x [2, 2, 8], w [3, 2, 3], b, stride 2, padding 2, dilation 2, groups 1: y [2, 3, 4] */
static const double CE_Y[24] = {-0.4296875, 0.6875, -0.1875, -0.359375, -0.171875, 0.9765625, 0.15625, -0.078125, 1, 0.453125, -0.109375, -0.203125, -0.78125, -0.078125, 0.6796875, -0.3828125, -0.578125, 0.203125, 1.015625, -0.0078125, 0.234375, 1.296875, 0.4375, -0.34375};
static const double CE_DX[32] = {-6.3125, 0, -2.6875, 0, -2.5625, 0, 5.5, 0, 3.25, 0, 2.25, 0, 2.25, 0, -1.625, 0, -13.8125, 0, -1.1875, 0, -1.0625, 0, 18.25, 0, 7.75, 0, 2.25, 0, 2.25, 0, -6.125, 0};
static const double CE_DW[18] = {-3.75, 12.25, 19.875, 15.875, 10.75, 2.75, -3.75, 17.75, 32.875, 20.375, 12.75, 1.25, -3.75, 23.25, 45.875, 24.875, 14.75, -0.25};
static const double CE_DB[3] = {68, 100, 132};
/* unfold x [1,2,4,5], kernel 2x3, dilation (2,1), padding (1,0), stride (1,2): [1, 12, 8] */
static const double UF_Y[96] = {0, 0, -1.125, 1, 0.625, 0.375, 0, -0.25, 0, 0, 1.125, 0.875, 0.5, 0.25, -0.125, -0.375, 0, 0, 1, 0.75, 0.375, 0.125, -0.25, -0.5, 0.625, 0.375, 0, -0.25, -0.625, -0.875, 0, 0, 0.5, 0.25, -0.125, -0.375, -0.75, -1, 0, 0, 0.375, 0.125, -0.25, -0.5, -0.875, -1.125, 0, 0, 0, 0, 1.125, 0.875, 0.5, 0.25, -0.125, -0.375, 0, 0, 1, 0.75, 0.375, 0.125, -0.25, -0.5, 0, 0, 0.875, 0.625, 0.25, 0, -0.375, -0.625, 0.5, 0.25, -0.125, -0.375, -0.75, -1, 0, 0, 0.375, 0.125, -0.25, -0.5, -0.875, -1.125, 0, 0, 0.25, 0, -0.375, -0.625, -1, 1.125, 0, 0};
static const double UF_DX[40] = {3, 11, 23, 12, 20, 30, 46, 94, 48, 64, 34, 50, 102, 52, 68, 29, 37, 75, 38, 46, 51, 59, 119, 60, 68, 126, 142, 286, 144, 160, 130, 146, 294, 148, 164, 77, 85, 171, 86, 94};
/* fold cols [2,12,20] into 4x4, kernel 3x2, padding 1: [2, 2, 4, 4] */
static const double FO_Y[64] = {1, -1, 0.5, -1.5, 2.25, -0.75, 1.5, -1.5, -2.25, 0, 2.25, -0.75, -1, 0.5, -1.5, 0, -1, 0.5, -1.5, 0, -0.75, 1.5, -1.5, 0.75, 0, 2.25, -0.75, 1.5, 0.5, -1.5, 0, 1.5, 0.5, -1.5, 0, 1.5, 1.5, -1.5, 0.75, -2.25, 2.25, -0.75, 1.5, -1.5, -1.5, 0, 1.5, -0.5, -1.5, 0, 1.5, -0.5, -1.5, 0.75, -2.25, 0, -0.75, 1.5, -1.5, 0.75, 0, 1.5, -0.5, 1};
static const double FO_DC[480] = {0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 0, 5, 6, 7, 8, 0, 9, 10, 11, 12, 0, 0, 0, 0, 0, 1, 2, 3, 4, 0, 5, 6, 7, 8, 0, 9, 10, 11, 12, 0, 0, 1, 2, 3, 4, 0, 5, 6, 7, 8, 0, 9, 10, 11, 12, 0, 13, 14, 15, 16, 1, 2, 3, 4, 0, 5, 6, 7, 8, 0, 9, 10, 11, 12, 0, 13, 14, 15, 16, 0, 0, 5, 6, 7, 8, 0, 9, 10, 11, 12, 0, 13, 14, 15, 16, 0, 0, 0, 0, 0, 5, 6, 7, 8, 0, 9, 10, 11, 12, 0, 13, 14, 15, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17, 18, 19, 20, 0, 21, 22, 23, 24, 0, 25, 26, 27, 28, 0, 0, 0, 0, 0, 17, 18, 19, 20, 0, 21, 22, 23, 24, 0, 25, 26, 27, 28, 0, 0, 17, 18, 19, 20, 0, 21, 22, 23, 24, 0, 25, 26, 27, 28, 0, 29, 30, 31, 32, 17, 18, 19, 20, 0, 21, 22, 23, 24, 0, 25, 26, 27, 28, 0, 29, 30, 31, 32, 0, 0, 21, 22, 23, 24, 0, 25, 26, 27, 28, 0, 29, 30, 31, 32, 0, 0, 0, 0, 0, 21, 22, 23, 24, 0, 25, 26, 27, 28, 0, 29, 30, 31, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 33, 34, 35, 36, 0, 37, 38, 39, 40, 0, 41, 42, 43, 44, 0, 0, 0, 0, 0, 33, 34, 35, 36, 0, 37, 38, 39, 40, 0, 41, 42, 43, 44, 0, 0, 33, 34, 35, 36, 0, 37, 38, 39, 40, 0, 41, 42, 43, 44, 0, 45, 46, 47, 48, 33, 34, 35, 36, 0, 37, 38, 39, 40, 0, 41, 42, 43, 44, 0, 45, 46, 47, 48, 0, 0, 37, 38, 39, 40, 0, 41, 42, 43, 44, 0, 45, 46, 47, 48, 0, 0, 0, 0, 0, 37, 38, 39, 40, 0, 41, 42, 43, 44, 0, 45, 46, 47, 48, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 49, 50, 51, 52, 0, 53, 54, 55, 56, 0, 57, 58, 59, 60, 0, 0, 0, 0, 0, 49, 50, 51, 52, 0, 53, 54, 55, 56, 0, 57, 58, 59, 60, 0, 0, 49, 50, 51, 52, 0, 53, 54, 55, 56, 0, 57, 58, 59, 60, 0, 61, 62, 63, 64, 49, 50, 51, 52, 0, 53, 54, 55, 56, 0, 57, 58, 59, 60, 0, 61, 62, 63, 64, 0, 0, 53, 54, 55, 56, 0, 57, 58, 59, 60, 0, 61, 62, 63, 64, 0, 0, 0, 0, 0, 53, 54, 55, 56, 0, 57, 58, 59, 60, 0, 61, 62, 63, 64, 0, 0, 0, 0, 0, 0};
/* clang-format on */

static double tol_of(tg_dtype dt) { return dt == TG_F64 ? 1e-12 : 2e-5; }

/* One conv2d (or conv1d when nd = 3) against the reference: y, then dx, dw, db. */
typedef struct conv_ref {
    int nd;
    int64_t xs[4], ws[4];
    bool bias;
    tg_conv2d_opts o;
    const double *y, *dx, *dw, *db;
    int64_t ny;
} conv_ref;

static void check_conv(const conv_ref *r, tg_dtype dt)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = fx_leaf(dt, r->nd, r->xs, 37, 19, 9, 8.0), *w = fw_leaf(dt, r->nd, r->ws);
    tg_tensor *b = r->bias ? fb_leaf(dt, r->ws[0]) : NULL;
    tg_tensor *y = r->nd == 4 ? tg_conv2d(tp, x, w, b, &r->o)
                              : tg_conv1d(tp, x, w, b, r->o.stride[1], r->o.padding[1],
                                          r->o.dilation[1], r->o.groups);
    CHECK(y != NULL);
    if (!y) printf("  %s\n", tg_tape_error(tp));
    CHECK(y && tg_tensor_dtype(y) == dt && tg_tensor_ndim(y) == r->nd);
    EXPECT(y, r->ny, r->y, tol_of(dt));
    CHECK(sweep(tp, y) == TG_OK);
    EXPECT(tg_grad(x), tg_tensor_numel(x), r->dx, tol_of(dt));
    EXPECT(tg_grad(w), tg_tensor_numel(w), r->dw, tol_of(dt));
    if (b) EXPECT(tg_grad(b), r->ws[0], r->db, tol_of(dt));
    tg_tape_free(tp);
    drop_all();
}

static const conv_ref REFS[] = {
    {4,
     {2, 3, 5, 5},
     {4, 3, 3, 3},
     true,
     {{2, 2}, {1, 1}, {1, 1}, 1},
     CA_Y,
     CA_DX,
     CA_DW,
     CA_DB,
     72},
    {4,
     {1, 4, 6, 5},
     {2, 2, 2, 3},
     false,
     {{1, 2}, {2, 2}, {2, 2}, 2},
     CB_Y,
     CB_DX,
     CB_DW,
     NULL,
     48},
    {4,
     {1, 3, 4, 4},
     {6, 1, 3, 3},
     true,
     {{1, 1}, {1, 1}, {1, 1}, 3},
     CC_Y,
     CC_DX,
     CC_DW,
     CC_DB,
     96},
    {4,
     {2, 3, 2, 2},
     {2, 3, 1, 1},
     true,
     {{0, 0}, {0, 0}, {0, 0}, 0},
     CD_Y,
     CD_DX,
     CD_DW,
     CD_DB,
     16},
    {3, {2, 2, 8}, {3, 2, 3}, true, {{1, 2}, {0, 2}, {1, 2}, 1}, CE_Y, CE_DX, CE_DW, CE_DB, 24},
};

/* stride 2 and padding 1 */
static void test_conv2d_stride_padding(void)
{
    check_conv(&REFS[0], TG_F64);
    check_conv(&REFS[0], TG_F32);
}

/* stride (1,2), padding 2, dilation 2, groups 2, no bias */
static void test_conv2d_dilation_groups(void)
{
    check_conv(&REFS[1], TG_F64);
    check_conv(&REFS[1], TG_F32);
}

/* depthwise with two outputs per channel (groups 3, w [6,1,3,3]) */
static void test_conv2d_depthwise(void)
{
    check_conv(&REFS[2], TG_F64);
    check_conv(&REFS[2], TG_F32);
}

/* a 1x1 kernel (x is the column matrix: no unfold), with a zeroed options struct */
static void test_conv2d_1x1(void)
{
    check_conv(&REFS[3], TG_F64);
    check_conv(&REFS[3], TG_F32);
}

/* stride 2, padding 2, dilation 2 on [N,C,L] */
static void test_conv1d(void)
{
    check_conv(&REFS[4], TG_F64);
    check_conv(&REFS[4], TG_F32);
}

/* NULL options are the defaults: the same as a zeroed struct and as explicit ones and 1s. */
static void test_conv2d_default_opts(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = fx_leaf(TG_F64, 4, S(2, 3, 4, 5), 37, 19, 9, 8.0);
    tg_tensor *w = fw_leaf(TG_F64, 4, S(2, 3, 2, 3)), *b = fb_leaf(TG_F64, 2);
    const tg_conv2d_opts zero = {{0, 0}, {0, 0}, {0, 0}, 0}, ones = {{1, 1}, {0, 0}, {1, 1}, 1};
    tg_tensor *y0 = tg_conv2d(tp, x, w, b, NULL), *y1 = tg_conv2d(tp, x, w, b, &zero);
    tg_tensor *y2 = tg_conv2d(tp, x, w, b, &ones);
    CHECK(y0 && y1 && y2);
    int64_t bad = 0;
    for (int64_t i = 0; y0 && y1 && y2 && i < tg_tensor_numel(y0); i++)
        bad += tg_get(y0, i) != tg_get(y1, i) || tg_get(y0, i) != tg_get(y2, i);
    CHECK(bad == 0);
    CHECK(y0 && tg_tensor_shape(y0)[2] == 3 && tg_tensor_shape(y0)[3] == 3);
    tg_tape_free(tp);
    drop_all();
}

static void test_unfold_values(void)
{
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = k ? TG_F32 : TG_F64;
        tg_tape *tp = tg_tape_new();
        tg_tensor *x = fx_leaf(dt, 4, S(1, 2, 4, 5), 37, 19, 9, 8.0);
        const tg_conv2d_opts o = {{1, 2}, {1, 0}, {2, 1}, 7}; /* groups are ignored */
        tg_tensor *u = tg_unfold(tp, x, 2, 3, &o);
        CHECK(u && tg_tensor_ndim(u) == 3 && tg_tensor_shape(u)[1] == 12 &&
              tg_tensor_shape(u)[2] == 8);
        EXPECT(u, 96, UF_Y, tol_of(dt));
        CHECK(sweep(tp, u) == TG_OK);
        EXPECT(tg_grad(x), 40, UF_DX, tol_of(dt));
        tg_tape_free(tp);
        drop_all();
    }
}

static void test_fold_values(void)
{
    for (int k = 0; k < 2; k++) {
        tg_dtype dt = k ? TG_F32 : TG_F64;
        tg_tape *tp = tg_tape_new();
        tg_tensor *c = fx_leaf(dt, 3, S(2, 12, 20), 5, 7, 3, 4.0);
        const tg_conv2d_opts o = {{1, 1}, {1, 1}, {1, 1}, 0};
        tg_tensor *y = tg_fold(tp, c, 4, 4, 3, 2, &o);
        CHECK(y && tg_tensor_ndim(y) == 4 && tg_tensor_shape(y)[1] == 2);
        EXPECT(y, 64, FO_Y, tol_of(dt));
        CHECK(sweep(tp, y) == TG_OK);
        EXPECT(tg_grad(c), 480, FO_DC, tol_of(dt));
        tg_tape_free(tp);
        drop_all();
    }
}

/* <unfold(x), c> = <x, fold(c)> in several geometries: fold is unfold's adjoint. */
static void test_unfold_fold_adjoint(void)
{
    const tg_conv2d_opts os[] = {{{1, 1}, {0, 0}, {1, 1}, 0},
                                 {{2, 1}, {1, 2}, {1, 1}, 0},
                                 {{1, 3}, {2, 0}, {2, 1}, 0},
                                 {{3, 2}, {1, 1}, {2, 2}, 0}};
    tg_rng rng;
    tg_rng_seed(&rng, 5);
    for (size_t k = 0; k < sizeof os / sizeof os[0]; k++) {
        tg_tape *tp = tg_tape_new();
        tg_tensor *x = leaf(TG_F64, 4, S(2, 3, 6, 7), NULL, false);
        tg_tensor_rand_uniform(x, -1, 1, &rng);
        tg_tensor *u = tg_unfold(tp, x, 3, 2, &os[k]);
        CHECK(u != NULL);
        if (!u) continue;
        tg_tensor *c = leaf(TG_F64, 3, tg_tensor_shape(u), NULL, false);
        tg_tensor_rand_uniform(c, -1, 1, &rng);
        tg_tensor *f = tg_fold(tp, c, 6, 7, 3, 2, &os[k]);
        CHECK(f && tg_tensor_numel(f) == tg_tensor_numel(x));
        double a = 0, bsum = 0;
        for (int64_t i = 0; i < tg_tensor_numel(u); i++) a += tg_get(u, i) * tg_get(c, i);
        for (int64_t i = 0; f && i < tg_tensor_numel(x); i++) bsum += tg_get(x, i) * tg_get(f, i);
        CHECK_NEAR(a, bsum, 1e-12 * fmax(1, fabs(a)));
        tg_tape_free(tp);
        drop_all();
    }
}

/* conv2d = w viewed as [O, C·kh·kw] times unfold(x), image by image (groups 1). */
static void test_conv2d_is_unfold_matmul(void)
{
    tg_rng rng;
    tg_rng_seed(&rng, 11);
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F64, 4, S(3, 4, 7, 6), NULL, false);
    tg_tensor *w = leaf(TG_F64, 4, S(5, 4, 3, 2), NULL, false);
    tg_tensor_rand_uniform(x, -1, 1, &rng), tg_tensor_rand_uniform(w, -1, 1, &rng);
    const tg_conv2d_opts o = {{2, 1}, {1, 2}, {1, 2}, 1};
    tg_tensor *y = tg_conv2d(tp, x, w, NULL, &o), *u = tg_unfold(tp, x, 3, 2, &o);
    tg_tensor *m = tg_matmul(tp, tg_reshape(tp, w, 2, S(5, 24)), u); /* [3, 5, L] */
    CHECK(y && m && tg_tensor_numel(y) == tg_tensor_numel(m));
    double err = 0;
    for (int64_t i = 0; y && m && i < tg_tensor_numel(y); i++)
        err = fmax(err, fabs(tg_get(y, i) - tg_get(m, i)));
    CHECK(err < 1e-13);
    tg_tape_free(tp);
    drop_all();
}

/* Nodes: one per conv2d when an input requires a gradient; conv1d records its reshapes. Only
 * the inputs that require gradients get them. */
static void test_conv_recording(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = fx_leaf(TG_F64, 4, S(1, 2, 3, 3), 37, 19, 9, 8.0);
    tg_tensor *w = fw_leaf(TG_F64, 4, S(2, 2, 2, 2)), *b = fb_leaf(TG_F64, 2);
    tg_set_requires_grad(x, false), tg_set_requires_grad(w, false), tg_set_requires_grad(b, false);
    tg_tensor *y = tg_conv2d(tp, x, w, b, NULL);
    CHECK(y && !tg_requires_grad(y) && tg_tape_n_nodes(tp) == 0);
    tg_set_requires_grad(b, true);
    y = tg_conv2d(tp, x, w, b, NULL);
    CHECK(y && tg_requires_grad(y) && tg_tape_n_nodes(tp) == 1);
    CHECK(tg_tape_first(tp) && strcmp(tg_node_op(tg_tape_first(tp)), "conv2d") == 0);
    CHECK(tg_node_n_inputs(tg_tape_first(tp)) == 3);
    CHECK(sweep(tp, y) == TG_OK);
    CHECK(tg_grad(x) == NULL && tg_grad(w) == NULL && tg_grad(b) != NULL);
    /* db = Σ_{n,l} of the weights (i+1): channel 0 has 1..4, channel 1 has 5..8 */
    EXPECT(tg_grad(b), 2, V(10, 26), 0);
    tg_tape_reset(tp);
    tg_set_requires_grad(w, true);
    y = tg_conv2d(tp, x, w, NULL, NULL);
    CHECK(y && tg_tape_n_nodes(tp) == 1 && tg_node_n_inputs(tg_tape_first(tp)) == 2);
    tg_tape_reset(tp);
    tg_tensor *x1 = fx_leaf(TG_F64, 3, S(1, 2, 5), 37, 19, 9, 8.0);
    tg_tensor *w1 = fw_leaf(TG_F64, 3, S(2, 2, 2));
    y = tg_conv1d(tp, x1, w1, NULL, 1, 0, 1, 1);
    CHECK(y && tg_tensor_ndim(y) == 3 && tg_tensor_shape(y)[2] == 4);
    CHECK(tg_tape_n_nodes(tp) == 4); /* reshape x, reshape w, conv2d, reshape y */
    tg_tape_free(tp);
    drop_all();
}

/* A tensor used as both x and w, in the 1x1 path where the GEMMs write x's gradient
 * themselves: the gradient is checked against finite differences. */
static tg_tensor *f_self(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    return weighted(tp, tg_conv2d(tp, in[0], in[0], NULL, NULL));
}
static tg_tensor *f_self3(tg_tape *tp, tg_tensor *const *in, void *ctx)
{
    (void)ctx;
    const tg_conv2d_opts o = {{1, 1}, {1, 1}, {1, 1}, 1};
    return weighted(tp, tg_conv2d(tp, in[0], in[0], NULL, &o));
}

static void test_conv2d_shared_input(void)
{
    tg_rng rng;
    tg_rng_seed(&rng, 3);
    tg_tensor *x = leaf(TG_F64, 4, S(3, 3, 1, 1), NULL, true);
    tg_tensor_rand_uniform(x, -1, 1, &rng);
    tg_gradcheck_result r;
    CHECK(tg_gradcheck(f_self, 1, &x, NULL, NULL, &r) == TG_OK && r.max_rel_err < 1e-7);
    tg_tensor *x3 = leaf(TG_F64, 4, S(2, 2, 2, 2), NULL, true);
    tg_tensor_rand_uniform(x3, -1, 1, &rng);
    CHECK(tg_gradcheck(f_self3, 1, &x3, NULL, NULL, &r) == TG_OK && r.max_rel_err < 1e-7);
    drop_all();
}

/* ---- the fast path (images split over the threads) against the reference ----
 * One call of conv2d of a geometry: N images [C,H,W], O outputs, a kh x kw kernel, the
 * options, a bias or not, and which of x, w, b need a gradient; shared: x is also w. */
typedef struct conv_case {
    int64_t N, C, H, W, O, kh, kw;
    tg_conv2d_opts o;
    bool bias, dx, dw, db, shared;
} conv_case;

/* The call at `threads` threads in dt: y and the gradients of Σ (i+1) y_i that are needed
 * (x, w, b) into v[0..3] (malloc'd; nv[k] elements, 0 for none), and the arena bytes the
 * recorded conv2d took into *bytes. */
static void conv_run(const conv_case *c, tg_dtype dt, int threads, double *v[4], int64_t nv[4],
                     size_t *bytes)
{
    tg_set_num_threads(threads);
    tg_rng rng;
    tg_rng_seed(&rng, 8);
    tg_tape *tp = tg_tape_new();
    const int64_t G = c->o.groups ? c->o.groups : 1;
    tg_tensor *x = leaf(dt, 4, S(c->N, c->C, c->H, c->W), NULL, c->dx);
    tg_tensor *w = c->shared ? x : leaf(dt, 4, S(c->O, c->C / G, c->kh, c->kw), NULL, c->dw);
    tg_tensor *b = c->bias ? leaf(dt, 1, S(c->O), NULL, c->db) : NULL;
    tg_tensor_rand_uniform(x, -1, 1, &rng), tg_tensor_rand_uniform(w, -1, 1, &rng);
    if (b) tg_tensor_rand_uniform(b, -1, 1, &rng);
    tg_tape_stats s0, s1;
    tg_tape_get_stats(tp, &s0);
    tg_tensor *y = tg_conv2d(tp, x, w, b, &c->o);
    tg_tape_get_stats(tp, &s1);
    *bytes = s1.arena_used - s0.arena_used;
    CHECK(y && sweep(tp, y) == TG_OK);
    const tg_tensor *ts[4] = {y, c->dx ? tg_grad(x) : NULL, c->dw ? tg_grad(w) : NULL,
                              c->db ? tg_grad(b) : NULL};
    for (int k = 0; k < 4; k++) {
        nv[k] = ts[k] ? tg_tensor_numel(ts[k]) : 0;
        v[k] = malloc((size_t)nv[k] * sizeof(double) + 1);
        for (int64_t i = 0; i < nv[k]; i++) v[k][i] = tg_get(ts[k], i);
    }
    tg_tape_free(tp);
    drop_all();
}

/* max |a - b| over max(1, max |a|): the error against the tensor's scale (a gradient sums
 * the images in another order on 2 threads, so an element near 0 among large ones differs
 * by the rounding of the large ones) */
static double scaled_err(const double *a, const double *b, int64_t n)
{
    double err = 0, scale = 1;
    for (int64_t i = 0; i < n; i++)
        err = fmax(err, fabs(a[i] - b[i])), scale = fmax(scale, fabs(a[i]));
    return err / scale;
}

/* At 2 threads, y, dx and db are 1 thread's (the reference path) bit for bit, dw within
 * 1e-12 of its largest element in f64 and 1e-5 in f32; two runs at 2 threads give the same
 * bits; and the split took its buffers: per extra part, one image's columns (two when
 * recorded, none for 1x1) and, when w needs a gradient, a partial sum of w's size. Calls of
 * fewer than 131072 multiply-adds (N·O·K·L, K = C/G·kh·kw, L = Ho·Wo) run as one part, as
 * do N = 1 (the reference path), the plain build (-DTG_PLAIN) and a build without OpenMP
 * (make tsan): no extra buffers. */
static void test_conv2d_threads(void)
{
    tg_set_num_threads(2);
    if (tg_get_num_threads() != 2) {
        printf("test_conv2d_threads: fewer than 2 CPUs, the fast path is not tested\n");
        return;
    }
    static const conv_case cases[] = {
        {5, 4, 10, 10, 8, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, true, true, true, true, false},
        {7, 8, 16, 16, 8, 3, 2, {{2, 1}, {1, 0}, {1, 2}, 2}, true, true, true, true, false},
        {8, 8, 20, 20, 8, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 8}, false, true, true, false, false},
        {5, 16, 12, 12, 12, 1, 1, {{1, 1}, {0, 0}, {1, 1}, 1}, true, true, true, true, false},
        {6, 1, 16, 16, 16, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, true, false, true, true, false},
        {5, 4, 13, 11, 8, 3, 3, {{1, 1}, {1, 1}, {2, 1}, 1}, true, true, false, true, false},
        {5, 4, 10, 10, 8, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, true, false, false, true, false},
        {16, 8, 8, 8, 16, 8, 8, {{1, 1}, {0, 0}, {1, 1}, 1}, false, true, true, false, true},
        {2, 4, 8, 8, 8, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, true, true, true, true, false},
        {3, 4, 7, 9, 4, 2, 3, {{1, 2}, {1, 1}, {1, 1}, 2}, false, true, true, false, false},
        {1, 32, 14, 14, 64, 3, 3, {{1, 1}, {1, 1}, {1, 1}, 1}, true, true, true, true, false},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        const conv_case *c = &cases[ci];
        for (int d = 0; d < 2; d++) {
            tg_dtype dt = d ? TG_F32 : TG_F64;
            double *v[3][4];
            int64_t nv[3][4];
            size_t bytes[3];
            conv_run(c, dt, 1, v[0], nv[0], &bytes[0]);
            conv_run(c, dt, 2, v[1], nv[1], &bytes[1]);
            conv_run(c, dt, 2, v[2], nv[2], &bytes[2]);
            for (int k = 0; k < 4; k++) {
                double err = scaled_err(v[0][k], v[1][k], nv[0][k]);
                /* y, dx and db the same bits; dw summed in another order */
                if (!(nv[0][k] == nv[1][k] && err < (d ? 1e-5 : 1e-12)) || (k != 2 && err != 0) ||
                    memcmp(v[1][k], v[2][k], (size_t)nv[1][k] * sizeof(double)) != 0) {
                    printf("  case %zu %s tensor %d: error %.3g\n", ci, d ? "f32" : "f64", k, err);
                    CHECK(false);
                }
                CHECK((nv[0][k] > 0) ==
                      (k == 0 || (k == 1 && c->dx) || (k == 2 && c->dw) || (k == 3 && c->db)));
                for (int r = 0; r < 3; r++) free(v[r][k]);
            }
            /* the extra part's buffers */
            const int64_t G = c->o.groups ? c->o.groups : 1;
            const int64_t Ho =
                (c->H + 2 * c->o.padding[0] - c->o.dilation[0] * (c->kh - 1) - 1) / c->o.stride[0] +
                1;
            const int64_t Wo =
                (c->W + 2 * c->o.padding[1] - c->o.dilation[1] * (c->kw - 1) - 1) / c->o.stride[1] +
                1;
            const bool direct = c->kh == 1 && c->kw == 1 && c->o.padding[0] == 0 &&
                                c->o.padding[1] == 0 && c->o.stride[0] == 1 && c->o.stride[1] == 1;
            const size_t es = d ? 4 : 8;
            size_t extra = direct ? 0 : 2 * (size_t)(c->C * c->kh * c->kw * Ho * Wo) * es;
            if (c->dw || c->shared) extra += (size_t)(c->O * c->C / G * c->kh * c->kw) * es;
            const int64_t macs = c->N * c->O * (c->C / G * c->kh * c->kw) * Ho * Wo;
            if (c->N == 1 || macs < 131072) extra = 0; /* one part */
#if defined(TG_PLAIN) || !defined(_OPENMP)
            extra = 0; /* the reference build, or one without OpenMP (make tsan): no split */
#endif
            CHECK(bytes[1] == bytes[2] && bytes[1] >= bytes[0] + extra &&
                  bytes[1] <= bytes[0] + extra + 256);
        }
    }
    tg_set_num_threads(1);
}

/* Empty tensors: N = 0 gives an empty output; C = 0 gives y = b and no gradient but db. */
static void test_conv_empty(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F64, 4, S(0, 2, 3, 3), NULL, true),
              *w = fw_leaf(TG_F64, 4, S(2, 2, 2, 2));
    tg_tensor *y = tg_conv2d(tp, x, w, NULL, NULL);
    CHECK(y && tg_tensor_numel(y) == 0 && tg_tensor_shape(y)[2] == 2);
    CHECK(y && tg_backward(tp, tg_sum(tp, y, TG_ALL_AXES, false)) == TG_OK);
    EXPECT(tg_grad(w), 16, V(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 0);
    tg_tape_reset(tp);
    tg_tensor *x0 = leaf(TG_F64, 4, S(2, 0, 3, 3), NULL, true),
              *w0 = leaf(TG_F64, 4, S(2, 0, 2, 2), NULL, true);
    tg_tensor *b = fb_leaf(TG_F64, 2);
    y = tg_conv2d(tp, x0, w0, b, NULL);
    CHECK(y && tg_tensor_numel(y) == 16);
    EXPECT(y, 16, V(-0.25, -0.25, -0.25, -0.25, 0, 0, 0, 0, -0.25, -0.25, -0.25, -0.25, 0, 0, 0, 0),
           0);
    CHECK(y && tg_backward(tp, tg_sum(tp, y, TG_ALL_AXES, false)) == TG_OK);
    EXPECT(tg_grad(b), 2, V(8, 8), 0);
    tg_tape_reset(tp);
    /* windows over padding only: H = 0 with padding 1 */
    tg_tensor *xe = leaf(TG_F64, 4, S(1, 1, 0, 2), NULL, true);
    const tg_conv2d_opts p1 = {{1, 1}, {1, 1}, {1, 1}, 1};
    tg_tensor *u = tg_unfold(tp, xe, 2, 2, &p1);
    CHECK(u && tg_tensor_shape(u)[1] == 4 && tg_tensor_shape(u)[2] == 3);
    CHECK(u && tg_get(u, 0) == 0 && tg_get(u, 11) == 0);
    tg_tape_free(tp);
    drop_all();
}

/* ---- errors: TG_ESHAPE or TG_EARG naming the op and the shapes, nothing recorded ---- */
#define FAILS(tp, call, code, text)                                                                \
    do {                                                                                           \
        tg_tape_reset(tp);                                                                         \
        CHECK((call) == NULL);                                                                     \
        CHECK(tg_tape_errcode(tp) == (code));                                                      \
        CHECK_STR_HAS(tg_tape_error(tp), text);                                                    \
        CHECK(tg_tape_n_nodes(tp) == 0);                                                           \
    } while (0)

static void test_conv2d_errors(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F64, 4, S(2, 4, 5, 5), NULL, true);
    tg_tensor *w = leaf(TG_F64, 4, S(6, 4, 3, 3), NULL, true),
              *b = leaf(TG_F64, 1, S(6), NULL, true);
    tg_tensor *x32 = leaf(TG_F32, 4, S(2, 4, 5, 5), NULL, true);
    tg_tensor *x3 = leaf(TG_F64, 3, S(2, 4, 5), NULL, true);
    tg_tensor *w6 = leaf(TG_F64, 4, S(6, 4, 6, 6), NULL, true);
    tg_tensor *b5 = leaf(TG_F64, 1, S(5), NULL, true), *b2 = leaf(TG_F64, 2, S(2, 3), NULL, true);
    tg_tensor *wg = leaf(TG_F64, 4, S(6, 2, 3, 3), NULL, true);
    tg_tensor *wk0 = leaf(TG_F64, 4, S(6, 4, 0, 3), NULL, true);
    /* the kernel larger than the padded input: 6 > 5, and 3 with dilation 3 (span 7) > 5 + 0 */
    FAILS(tp, tg_conv2d(tp, x, w6, NULL, NULL), TG_ESHAPE,
          "tg_conv2d: [2,4,5,5] and [6,4,6,6]: the kernel 6x6");
    const tg_conv2d_opts d3 = {{1, 1}, {0, 0}, {3, 3}, 1}, d3p1 = {{1, 1}, {1, 1}, {3, 3}, 1};
    FAILS(tp, tg_conv2d(tp, x, w, b, &d3), TG_ESHAPE, "larger than the padded input 5x5");
    CHECK(tg_conv2d((tg_tape_reset(tp), tp), x, w, b, &d3p1) != NULL); /* 5 + 2 = 7 fits */
    /* negative stride, padding, dilation, groups; past 2^48 */
    const tg_conv2d_opts bad[] = {{{-1, 1}, {0, 0}, {1, 1}, 1},
                                  {{1, 1}, {0, -2}, {1, 1}, 1},
                                  {{1, 1}, {0, 0}, {1, -1}, 1},
                                  {{1, 1}, {0, 0}, {1, 1}, -2},
                                  {{1, (int64_t)1 << 49}, {0, 0}, {1, 1}, 1}};
    const char *what[] = {"tg_conv2d: stride -1", "tg_conv2d: padding -2", "tg_conv2d: dilation -1",
                          "tg_conv2d: groups -2", "tg_conv2d: stride 562949953421312"};
    for (int k = 0; k < 5; k++) FAILS(tp, tg_conv2d(tp, x, w, b, &bad[k]), TG_EARG, what[k]);
    /* channels not divisible by the groups; w's channels per group; b's size; kernel 0 */
    const tg_conv2d_opts g3 = {{1, 1}, {0, 0}, {1, 1}, 3}, g4 = {{1, 1}, {0, 0}, {1, 1}, 4};
    FAILS(tp, tg_conv2d(tp, x, wg, NULL, &g3), TG_ESHAPE,
          "4 input and 6 output channels are not divisible by groups 3");
    FAILS(tp, tg_conv2d(tp, x, wg, NULL, &g4), TG_ESHAPE, "not divisible by groups 4");
    FAILS(tp, tg_conv2d(tp, x, wg, NULL, NULL), TG_ESHAPE,
          "w has 2 input channels per group, want 4");
    FAILS(tp, tg_conv2d(tp, x, w, b5, NULL), TG_ESHAPE, "b has 5 elements, want 6");
    FAILS(tp, tg_conv2d(tp, x, wk0, NULL, NULL), TG_ESHAPE, "the kernel of w is empty");
    /* ranks */
    FAILS(tp, tg_conv2d(tp, x3, w, NULL, NULL), TG_ESHAPE,
          "tg_conv2d: [2,4,5] and [6,4,3,3]: want x [N,C,H,W]");
    FAILS(tp, tg_conv2d(tp, x, x3, NULL, NULL), TG_ESHAPE,
          "want x [N,C,H,W], w [O,C/groups,kh,kw]");
    FAILS(tp, tg_conv2d(tp, x, w, b2, NULL), TG_ESHAPE,
          "[2,4,5,5], [6,4,3,3] and [2,3]: want x [N,C,H,W], w [O,C/groups,kh,kw], b [O]");
    /* dtypes, NULL */
    FAILS(tp, tg_conv2d(tp, x32, w, b, NULL), TG_EDTYPE, "tg_conv2d: dtypes f32 and f64 differ");
    FAILS(tp, tg_conv2d(tp, x, NULL, b, NULL), TG_EARG, "tg_conv2d: input 1 is NULL");
    CHECK(tg_conv2d(NULL, x, w, b, NULL) == NULL);
    /* too large an output: TG_MAX_NUMEL */
    const tg_conv2d_opts huge = {{1, 1}, {(int64_t)1 << 40, 1 << 20}, {1, 1}, 1};
    FAILS(tp, tg_conv2d(tp, x, w, b, &huge), TG_ESHAPE, "TG_MAX_NUMEL");
    CHECK_STR_HAS(tg_tape_error(tp), "tg_conv2d:");
    /* the first error is kept */
    CHECK(tg_conv2d(tp, x, w, b, NULL) == NULL);
    CHECK_STR_HAS(tg_tape_error(tp), "TG_MAX_NUMEL");
    tg_tape_free(tp);
    drop_all();
}

static void test_conv1d_errors(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F64, 3, S(2, 4, 5), NULL, true),
              *w = leaf(TG_F64, 3, S(6, 4, 3), NULL, true);
    tg_tensor *w7 = leaf(TG_F64, 3, S(6, 4, 7), NULL, true),
              *w4 = leaf(TG_F64, 4, S(6, 4, 1, 3), NULL, true);
    tg_tensor *b = leaf(TG_F32, 1, S(6), NULL, true);
    FAILS(tp, tg_conv1d(tp, x, w7, NULL, 1, 0, 1, 1), TG_ESHAPE,
          "tg_conv1d: [2,4,5] and [6,4,7]: the kernel 1x7");
    CHECK(tg_conv1d((tg_tape_reset(tp), tp), x, w7, NULL, 1, 1, 1, 1) != NULL); /* 5 + 2 = 7 */
    FAILS(tp, tg_conv1d(tp, x, w, NULL, -1, 0, 1, 1), TG_EARG, "tg_conv1d: stride -1");
    FAILS(tp, tg_conv1d(tp, x, w, NULL, 1, -1, 1, 1), TG_EARG, "tg_conv1d: padding -1");
    FAILS(tp, tg_conv1d(tp, x, w, NULL, 1, 0, -3, 1), TG_EARG, "tg_conv1d: dilation -3");
    FAILS(tp, tg_conv1d(tp, x, w, NULL, 1, 0, 1, 3), TG_ESHAPE,
          "tg_conv1d: [2,4,5] and [6,4,3]: 4 input and 6 output channels are not divisible by "
          "groups 3");
    FAILS(tp, tg_conv1d(tp, x, w4, NULL, 1, 0, 1, 1), TG_ESHAPE,
          "tg_conv1d: [2,4,5] and [6,4,1,3]: want x [N,C,L], w [O,C/groups,k]");
    FAILS(tp, tg_conv1d(tp, x, w, b, 1, 0, 1, 1), TG_EDTYPE,
          "tg_conv1d: dtypes f64 and f32 differ");
    FAILS(tp, tg_conv1d(tp, NULL, w, NULL, 1, 0, 1, 1), TG_EARG, "tg_conv1d: input 0 is NULL");
    FAILS(tp, tg_conv1d(tp, x, w, NULL, 1, (int64_t)1 << 47, 1, 1), TG_ESHAPE,
          "tg_conv1d: shape [2,6,281474976710659] has more than");
    tg_tape_free(tp);
    drop_all();
}

static void test_unfold_fold_errors(void)
{
    tg_tape *tp = tg_tape_new();
    tg_tensor *x = leaf(TG_F64, 4, S(1, 2, 4, 4), NULL, true),
              *x3 = leaf(TG_F64, 3, S(2, 4, 4), NULL, true);
    tg_tensor *c = leaf(TG_F64, 3, S(1, 8, 9), NULL, true),
              *c4 = leaf(TG_F64, 4, S(1, 8, 9, 1), NULL, true);
    tg_tensor *c7 = leaf(TG_F64, 3, S(1, 7, 9), NULL, true);
    const tg_conv2d_opts neg = {{1, 1}, {-1, 0}, {1, 1}, 0}, d0 = {{1, 1}, {0, 0}, {0, -1}, 0};
    FAILS(tp, tg_unfold(tp, x, 5, 2, NULL), TG_ESHAPE, "tg_unfold: [1,2,4,4]: the kernel 5x2");
    FAILS(tp, tg_unfold(tp, x, 0, 2, NULL), TG_EARG, "tg_unfold: kernel 0x2");
    FAILS(tp, tg_unfold(tp, x, 2, -1, NULL), TG_EARG, "tg_unfold: kernel 2x-1");
    FAILS(tp, tg_unfold(tp, x, 2, 2, &neg), TG_EARG, "tg_unfold: padding -1");
    FAILS(tp, tg_unfold(tp, x, 2, 2, &d0), TG_EARG, "tg_unfold: dilation -1");
    FAILS(tp, tg_unfold(tp, x3, 2, 2, NULL), TG_ESHAPE, "tg_unfold: x [2,4,4]: want [N,C,H,W]");
    const tg_conv2d_opts big = {{1, 1}, {1 << 24, 1 << 24}, {1, 1}, 0};
    FAILS(tp, tg_unfold(tp, x, 2, 2, &big), TG_ESHAPE, "TG_MAX_NUMEL");
    /* fold: 9 windows of 2x2 in 4x4 */
    CHECK(tg_fold((tg_tape_reset(tp), tp), c, 4, 4, 2, 2, NULL) != NULL);
    FAILS(tp, tg_fold(tp, c, 4, 5, 2, 2, NULL), TG_ESHAPE,
          "tg_fold: cols [1,8,9] into 4x5: 9 columns, but the geometry has 3x4 windows");
    FAILS(tp, tg_fold(tp, c7, 4, 4, 2, 2, NULL), TG_ESHAPE,
          "tg_fold: cols [1,7,9]: 7 rows are not a multiple of kernel 2x2");
    FAILS(tp, tg_fold(tp, c, 4, 4, 3, 3, NULL), TG_ESHAPE, "not a multiple of kernel 3x3");
    FAILS(tp, tg_fold(tp, c, 1, 4, 2, 2, NULL), TG_ESHAPE,
          "tg_fold: cols [1,8,9] into 1x4: the kernel 2x2");
    FAILS(tp, tg_fold(tp, c, -4, 4, 2, 2, NULL), TG_EARG, "tg_fold: output size -4x4");
    FAILS(tp, tg_fold(tp, c, 4, 4, 0, 2, NULL), TG_EARG, "tg_fold: kernel 0x2");
    FAILS(tp, tg_fold(tp, c, 4, 4, 2, 2, &neg), TG_EARG, "tg_fold: padding -1");
    FAILS(tp, tg_fold(tp, c4, 4, 4, 2, 2, NULL), TG_ESHAPE,
          "tg_fold: cols [1,8,9,1]: want [N, C·kh·kw, L]");
    FAILS(tp, tg_fold(tp, NULL, 4, 4, 2, 2, NULL), TG_EARG, "tg_fold: input 0 is NULL");
    tg_tape_free(tp);
    drop_all();
}

/* ---- the family's self-check cases: first and second order, f32 vs f64 ---- */
static void test_selfcheck_conv(void)
{
    static const char *ops[] = {"conv2d", "unfold", "fold"};
    int count[3];
    check_family_cases(ops, 3, count);
    check_case_count("conv2d", count[0], 15);
    check_case_count("unfold", count[1], 3);
    check_case_count("fold", count[2], 3);
    for (int i = 0; i < tg_selfcheck_count(); i++) {
        const char *what, *op = tg_selfcheck_op(i, &what);
        if (strcmp(op, "conv2d") != 0 && strcmp(op, "unfold") != 0 && strcmp(op, "fold") != 0)
            continue;
        tg_selfcheck_result r;
        CHECK(tg_selfcheck_run(i, &r) == TG_OK && r.grad2.max_rel_err <= 1e-6);
    }
}

static const check_case cases[] = {
    TEST(test_conv2d_stride_padding),
    TEST(test_conv2d_dilation_groups),
    TEST(test_conv2d_depthwise),
    TEST(test_conv2d_1x1),
    TEST(test_conv1d),
    TEST(test_conv2d_default_opts),
    TEST(test_unfold_values),
    TEST(test_fold_values),
    TEST(test_unfold_fold_adjoint),
    TEST(test_conv2d_is_unfold_matmul),
    TEST(test_conv_recording),
    TEST(test_conv2d_shared_input),
    TEST(test_conv2d_threads),
    TEST(test_conv_empty),
    TEST(test_conv2d_errors),
    TEST(test_conv1d_errors),
    TEST(test_unfold_fold_errors),
    TEST(test_selfcheck_conv),
};
TEST_MAIN("test_ops_conv", cases)
