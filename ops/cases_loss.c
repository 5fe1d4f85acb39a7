/* ops/cases_loss.c: self-check cases of the loss ops (ops/cases.h). */
#include "cases.h"

const tg_op_case tg_cases_loss[] = {{0}};
const int tg_n_cases_loss = 0;
