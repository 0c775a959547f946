/* Forward pass for float and double, from the one templated source cell.inc + forward.inc. */
#include <math.h>
#include <string.h>
#include "streamrnn.h"
#include "fastmath.h"

#define SRNN_DOUBLE 0
#include "real.h"
#include "cell.inc"
#include "forward.inc"
#include "real_undef.h"

#define SRNN_DOUBLE 1
#include "real.h"
#include "cell.inc"
#include "forward.inc"
#include "real_undef.h"
