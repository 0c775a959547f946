/* Type macros for the templated sources (*.inc). SIGM and TANHV are the activation functions:
 * vectorisable approximations for float (fastmath.h), libm for double (exact). Define SRNN_DOUBLE to 0 or 1, include this,
 * include the .inc files, then include real_undef.h. Not an ordinary header: no guard. */
#if SRNN_DOUBLE
#define REAL double
#define VREAL srnn_v4df
#define WREAL srnn_v8df
#define VLEN 4
#define FN(name) name##_f64
#define GEMV dgemv
#define GEMM dgemm
#define GER dger
#define SQRT sqrt
#define SIGM(x) srnn_sigmoid_f64(x)
#define UREAL uint64_t
#define REAL_EXP_MASK UINT64_C(0x7ff0000000000000)
#define REAL_TINY 2.2250738585072014e-308 /* DBL_MIN */
#define TANHV(x) tanh(x)
#else
#define REAL float
#define VREAL srnn_v8sf
#define WREAL srnn_v16sf
#define VLEN 8
#define FN(name) name##_f32
#define GEMV sgemv
#define GEMM sgemm
#define GER sger
#define SQRT sqrtf
#define SIGM(x) srnn_sigmoidf(x)
#define UREAL uint32_t
#define REAL_EXP_MASK UINT32_C(0x7f800000)
#define REAL_TINY 1.17549435e-38f /* FLT_MIN */
#define TANHV(x) srnn_tanhf(x)
#endif
