/* ops/cases_shape.c: self-check cases of the shape ops (ops/cases.h). */
#include "cases.h"

const tg_op_case tg_cases_shape[] = {{0}};
const int tg_n_cases_shape = 0;
