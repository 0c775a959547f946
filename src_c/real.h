/* Type macros for the templated sources (*.inc). Define SRNN_DOUBLE to 0 or 1, include this,
 * include the .inc files, then include real_undef.h. Not an ordinary header: no guard. */
#if SRNN_DOUBLE
#define REAL double
#define FN(name) name##_f64
#define GEMV dgemv
#define GEMM dgemm
#define GER dger
#define EXP exp
#define TANH tanh
#define SQRT sqrt
#else
#define REAL float
#define FN(name) name##_f32
#define GEMV sgemv
#define GEMM sgemm
#define GER sger
#define EXP expf
#define TANH tanhf
#define SQRT sqrtf
#endif
