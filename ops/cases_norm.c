/* ops/cases_norm.c: self-check cases of the norm ops (ops/cases.h). */
#include "cases.h"

const tg_op_case tg_cases_norm[] = {{0}};
const int tg_n_cases_norm = 0;
