/* ops/cases_elementwise.c: self-check cases of the elementwise ops (ops/cases.h). */
#include "cases.h"

const tg_op_case tg_cases_elementwise[] = {{0}};
const int tg_n_cases_elementwise = 0;
