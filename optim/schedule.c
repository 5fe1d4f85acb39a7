/* optim/schedule.c: learning-rate schedules (step, exponential, cosine). */
#include <stdio.h>

#include "internal.h"

#define PI 3.14159265358979323846 /* M_PI is not in C11 */

int tg_lr_schedule_check(const tg_lr_schedule *s, char *msg, size_t size)
{
    if (!s) return TG_OK; /* no schedule: constant */
    switch (s->kind) {
    case TG_LR_CONSTANT: return TG_OK;
    case TG_LR_STEP:
    case TG_LR_EXP:
        if (s->kind == TG_LR_STEP && s->step_size < 1) {
            snprintf(msg, size, "step_size = %lld must be >= 1", (long long)s->step_size);
            return TG_EARG;
        }
        if (!(s->gamma > 0 && isfinite(s->gamma))) {
            snprintf(msg, size, "gamma = %g must be > 0 and finite", s->gamma);
            return TG_EARG;
        }
        return TG_OK;
    case TG_LR_COSINE:
        if (s->t_max < 1) {
            snprintf(msg, size, "t_max = %lld must be >= 1", (long long)s->t_max);
            return TG_EARG;
        }
        if (!(s->lr_min >= 0 && isfinite(s->lr_min))) {
            snprintf(msg, size, "lr_min = %g must be >= 0 and finite", s->lr_min);
            return TG_EARG;
        }
        return TG_OK;
    }
    snprintf(msg, size, "unknown kind %d", (int)s->kind);
    return TG_EARG;
}

double tg_lr_at(const tg_lr_schedule *s, double lr, int64_t k)
{
    char why[128];
    if (!(lr >= 0 && isfinite(lr)) || k < 0 || tg_lr_schedule_check(s, why, sizeof why))
        return TG_EARG;
    if (!s) return lr;
    switch (s->kind) {
    /* NOLINTNEXTLINE(bugprone-integer-division): step decay: whole steps */
    case TG_LR_STEP: return lr * pow(s->gamma, (double)(k / s->step_size));
    case TG_LR_EXP: return lr * pow(s->gamma, (double)k);
    case TG_LR_COSINE:
        if (k >= s->t_max) return s->lr_min; /* stays at the floor: no restart */
        return s->lr_min + (lr - s->lr_min) * 0.5 * (1.0 + cos(PI * (double)k / (double)s->t_max));
    default: return lr;
    }
}
