/* ops/cases_activation.c: self-check cases of the activation ops (ops/cases.h). */
#include "cases.h"

const tg_op_case tg_cases_activation[] = {{0}};
const int tg_n_cases_activation = 0;
