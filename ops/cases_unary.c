/* ops/cases_unary.c: self-check cases of the unary ops (ops/cases.h). */
#include "cases.h"

const tg_op_case tg_cases_unary[] = {{0}};
const int tg_n_cases_unary = 0;
