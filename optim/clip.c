/* optim/clip.c: gradient clipping over a parameter list, by global L2 norm and by value. */
#include "internal.h"

/* sum_sq, scale and clamp of one gradient, from the template optim/clip_t.h. */
#define TG_TEMPLATE "clip_t.h"
#include "stamp.h"

static bool list_ok(int n, tg_tensor *const *params)
{
    if (n < 0 || (n > 0 && !params)) return false;
    for (int i = 0; i < n; i++)
        if (!params[i]) return false;
    return true;
}

/* Norm of a list already checked. Skips what a step skips (tg_optim_active_grad). */
static double norm_of(int n, tg_tensor *const *params)
{
    double s = 0;
    for (int i = 0; i < n; i++) {
        tg_tensor *g = tg_optim_active_grad(params[i]);
        if (!g) continue;
        if (tg_tensor_dtype(g) == TG_F32) s += sum_sq_f32(tg_data(g), tg_tensor_numel(g));
        else s += sum_sq_f64(tg_data(g), tg_tensor_numel(g));
    }
    return sqrt(s);
}

double tg_grad_norm(int n, tg_tensor *const *params)
{
    return list_ok(n, params) ? norm_of(n, params) : TG_EARG;
}

double tg_clip_grad_norm(int n, tg_tensor *const *params, double max_norm)
{
    if (!list_ok(n, params) || !(max_norm > 0)) return TG_EARG;
    double norm = norm_of(n, params);
    if (!(norm > max_norm) || !isfinite(norm)) return norm; /* nothing to do, or nothing sane */
    double c = max_norm / norm;                             /* the lectures' g := g theta / |g| */
    for (int i = 0; i < n; i++) {
        tg_tensor *g = tg_optim_active_grad(params[i]);
        if (!g) continue;
        if (tg_tensor_dtype(g) == TG_F32) scale_f32(tg_data(g), tg_tensor_numel(g), (float)c);
        else scale_f64(tg_data(g), tg_tensor_numel(g), c);
    }
    return norm;
}

double tg_clip_grad_value(int n, tg_tensor *const *params, double clip)
{
    if (!list_ok(n, params) || !(clip > 0)) return TG_EARG;
    double norm = norm_of(n, params);
    for (int i = 0; i < n; i++) {
        tg_tensor *g = tg_optim_active_grad(params[i]);
        if (!g) continue;
        if (tg_tensor_dtype(g) == TG_F32) clamp_f32(tg_data(g), tg_tensor_numel(g), (float)clip);
        else clamp_f64(tg_data(g), tg_tensor_numel(g), clip);
    }
    return norm;
}
