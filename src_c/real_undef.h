/* Undo real.h (see there). */
#undef REAL
#undef FN
#undef GEMV
#undef GEMM
#undef GER
#undef SQRT
#undef SRNN_DOUBLE
#undef SIGM
#undef TANHV
#undef UREAL
#undef REAL_EXP_MASK
#undef REAL_TINY
#undef VREAL
#undef WREAL
#undef VLEN
