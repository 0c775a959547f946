/* Forward pass for float and double, from the one templated source forward.inc. */
#include <math.h>
#include "streamrnn.h"

#define REAL float
#define FN(name) name##_f32
#define GEMV sgemv
#define GEMM sgemm
#define EXP expf
#define TANH tanhf
#include "forward.inc"
#undef REAL
#undef FN
#undef GEMV
#undef GEMM
#undef EXP
#undef TANH

#define REAL double
#define FN(name) name##_f64
#define GEMV dgemv
#define GEMM dgemm
#define EXP exp
#define TANH tanh
#include "forward.inc"
#undef REAL
#undef FN
#undef GEMV
#undef GEMM
#undef EXP
#undef TANH
