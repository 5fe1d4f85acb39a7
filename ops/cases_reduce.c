/* ops/cases_reduce.c: self-check cases of the reduce ops (ops/cases.h). */
#include "cases.h"

const tg_op_case tg_cases_reduce[] = {{0}};
const int tg_n_cases_reduce = 0;
