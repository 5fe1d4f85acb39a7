/* tapegrad.h: the whole public API. See README.md for a first example and docs/ for the
 * design, the op reference and the tutorial. */
#ifndef TAPEGRAD_H
#define TAPEGRAD_H

#include "tapegrad/core.h"
#include "tapegrad/tensor.h"
#include "tapegrad/tape.h"
#include "tapegrad/ops.h"
#include "tapegrad/derivs.h"
#include "tapegrad/optim.h"
#include "tapegrad/nn.h"
#include "tapegrad/data.h"
#include "tapegrad/checkpoint.h"
#include "tapegrad/dist.h"

#endif
