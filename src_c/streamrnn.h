/*
 * streamrnn C core: single-timestep recurrent networks (Elman RNN, LSTM, GRU),
 * stacked layers and a linear head, in float (suffix _f32) and double (_f64).
 *
 * Plain C99. No Python, no global state, no allocation, no abort(): every
 * entry point returns an srnn_status. All buffers are owned by the caller.
 *
 * Conventions (identical to PyTorch and to streamrnn/reference/):
 *   gates G: RNN 1, LSTM 4 (rows i, f, g, o), GRU 3 (rows r, z, n).
 *   Layer k (input width D_k = D for k = 0, H above):
 *     weight_ih (G*H, D_k), weight_hh (G*H, H), bias_ih (G*H), bias_hh (G*H),
 *   row-major (C order), stored one after another in that order, layer 0 first,
 *   then the optional head: weight (O, H), bias (O). One flat buffer holds all.
 *   A row-major (r, c) matrix with row stride ld is, to Fortran BLAS, the
 *   column-major (c, r) matrix with lda = ld: W @ x is gemv('T', m=c, n=r).
 *
 * The BLAS integer type is srnn_blas_int so that an ILP64 SciPy can be followed.
 */
#ifndef STREAMRNN_H
#define STREAMRNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int srnn_blas_int;

/* Hot kernels get x86-64-v4 (AVX-512) and x86-64-v3 (AVX2 + FMA) clones next to the baseline
 * one, picked at load time from the CPU's features (GCC's target_clones, which needs glibc's
 * ifunc: x86-64 with glibc only, so not musl; GCC < 12 knows no "arch=x86-64-v3" clone and
 * gets an AVX2 one); elsewhere the baseline build alone. The v4 clone took the LSTM f32 D=8
 * H=64 step from 1.41 to 1.26 us in C (net.run) on a Xeon with AVX-512: its activations run
 * 16 wide (no reductions are reordered: the element functions are the same). __GLIBC__
 * comes from <stdint.h> above. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) \
    && !defined(SRNN_NO_MULTIVERSION)
#if __GNUC__ >= 12
#define SRNN_MULTIVERSION                                                                  \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SRNN_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#endif
/* With them, the own gemm kernel gets a 64-byte-vector twin for CPUs with AVX-512 (OpenBLAS
 * uses AVX-512 there; with 32-byte vectors our kernel had half its rate), chosen per call
 * by SRNN_WIDE_OK() (GCC's __builtin_cpu_supports: a load and a test). */
#define SRNN_HAVE_WIDE 1
#define SRNN_WIDE_TARGET __attribute__((target("avx512f,avx2,fma")))
#define SRNN_WIDE_OK() (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma"))
#else
#define SRNN_MULTIVERSION
#define SRNN_HAVE_WIDE 0
#endif

/* 32-byte vectors of GCC/Clang's vector extension for the hand-written kernels (other
 * compilers, or -DSRNN_NO_VECTOR_EXT, get plain loops). */
#if defined(__GNUC__) && !defined(SRNN_NO_VECTOR_EXT)
#define SRNN_HAVE_VECTOR_EXT 1
typedef float srnn_v8sf __attribute__((vector_size(32)));
typedef double srnn_v4df __attribute__((vector_size(32)));
typedef float srnn_v16sf __attribute__((vector_size(64)));
typedef double srnn_v8df __attribute__((vector_size(64)));
#else
#define SRNN_HAVE_VECTOR_EXT 0
#undef SRNN_HAVE_WIDE
#define SRNN_HAVE_WIDE 0
#endif

/* Own kernels against BLAS. OpenBLAS splits a product over its threads (one per core) from
 * a few hundred thousand multiply-adds on; when another process keeps a core busy that made
 * the library's small products many times slower than on one thread (benchmarks/RESULTS.md,
 * "Default BLAS threads"), and the process-wide thread setting is the user's, not ours. So
 * the core's own kernels (one thread, no fan-out) take every product up to these sizes.
 *
 * Matrix-vector products with at most SRNN_OWN_GEMV_MAX elements: own kernel. Measured
 * (LSTM D=8 step, own kernel against BLAS gemv on one thread, CPU time, median of 3
 * round-robin rounds, Xeon with AVX-512, load average 2.9): own / BLAS 0.87-1.00 at every H
 * from 256 to 768, both dtypes (H=512 f32: 149.4 / 149.9 us); above the limit (4096 x 1032
 * and up, 17 MB of float32 weights, bandwidth-bound) BLAS with its threads can use a second
 * core's bandwidth. Command: python benchmarks/kernels_bench.py --gemv (benchmarks/RESULTS.md,
 * "Own kernels against BLAS"). */
#ifndef SRNN_OWN_GEMV_MAX
#define SRNN_OWN_GEMV_MAX 4194304
#endif

/* Matrix-matrix products C (m, n) += op(A) op(B) with m*n*k at most SRNN_OWN_GEMM_MAX
 * multiply-adds use the core's own kernel (cell.inc, own_gemm_rm), rank-one updates with at
 * most that many elements the own loop instead of ger. Measured (benchmarks/kernels_bench.py
 * --rounds 3 --hidden 16 64 128 256 512: LSTM D=8, step_many over 256 streams and
 * learn_sequence T=50, own against BLAS on one thread, wall clock, load average 2.8):
 * own / BLAS 0.3-1.15 up to 70 million multiply-adds per call (H <= 256), 1.1-1.4 at H = 512
 * (270 and 54 million); BLAS with its default threads was slower than our kernel at almost
 * every size on that shared host (up to 100x). Above 2^29 (a product of 5 ms and more on one
 * core) a thread fan-out costs little relative to the product and two threads can win on a
 * quiet host. */
#ifndef SRNN_OWN_GEMM_MAX
#define SRNN_OWN_GEMM_MAX 536870912.0
#endif

/* The test hook of a table (srnn_blas.probe), at the start of every product. */
#define SRNN_PROBE(b)                                                                      \
    do {                                                                                   \
        if ((b)->probe) (b)->probe();                                                      \
    } while (0)

/* C99 restrict, spelled the way MSVC knows it too. */
#if defined(_MSC_VER)
#define SRNN_RESTRICT __restrict
#else
#define SRNN_RESTRICT restrict
#endif

/* Fortran BLAS, as exported by scipy.linalg.cython_blas (all arguments by pointer). A table
 * whose pointers are NULL (BLAS not loaded) is valid: the core then uses its own kernels
 * at every size. */
typedef void (*srnn_sgemv_t)(char *trans, srnn_blas_int *m, srnn_blas_int *n, float *alpha,
                             float *a, srnn_blas_int *lda, float *x, srnn_blas_int *incx,
                             float *beta, float *y, srnn_blas_int *incy);
typedef void (*srnn_dgemv_t)(char *trans, srnn_blas_int *m, srnn_blas_int *n, double *alpha,
                             double *a, srnn_blas_int *lda, double *x, srnn_blas_int *incx,
                             double *beta, double *y, srnn_blas_int *incy);
typedef void (*srnn_sgemm_t)(char *ta, char *tb, srnn_blas_int *m, srnn_blas_int *n,
                             srnn_blas_int *k, float *alpha, float *a, srnn_blas_int *lda,
                             float *b, srnn_blas_int *ldb, float *beta, float *c,
                             srnn_blas_int *ldc);
typedef void (*srnn_dgemm_t)(char *ta, char *tb, srnn_blas_int *m, srnn_blas_int *n,
                             srnn_blas_int *k, double *alpha, double *a, srnn_blas_int *lda,
                             double *b, srnn_blas_int *ldb, double *beta, double *c,
                             srnn_blas_int *ldc);
typedef void (*srnn_sger_t)(srnn_blas_int *m, srnn_blas_int *n, float *alpha, float *x,
                            srnn_blas_int *incx, float *y, srnn_blas_int *incy, float *a,
                            srnn_blas_int *lda);
typedef void (*srnn_dger_t)(srnn_blas_int *m, srnn_blas_int *n, double *alpha, double *x,
                            srnn_blas_int *incx, double *y, srnn_blas_int *incy, double *a,
                            srnn_blas_int *lda);
typedef struct srnn_blas {
    srnn_sgemv_t sgemv;
    srnn_dgemv_t dgemv;
    srnn_sgemm_t sgemm;
    srnn_dgemm_t dgemm;
    srnn_sger_t sger;
    srnn_dger_t dger;
    /* 0: small products use the core's own kernels (SRNN_OWN_GEMV_MAX, SRNN_OWN_GEMM_MAX);
     * 1: every product goes through the pointers above (a test hook: both paths checked
     * against the reference on the same sizes) */
    int blas_only;
    /* test hook: when not NULL, called before every matrix product, own kernel or BLAS
     * (the thread tests stop a C call there); NULL in normal use */
    void (*probe)(void);
} srnn_blas;

/* Status codes. New values only at the end. */
typedef enum srnn_status {
    SRNN_OK = 0,
    SRNN_ERR_NULL = -1,          /* a required pointer is NULL */
    SRNN_ERR_DIMS = -2,          /* a size is < 1 (output_size < 0) or too large */
    SRNN_ERR_CELL = -3,          /* unknown cell kind */
    SRNN_ERR_NONFINITE_X = -4,   /* the input holds NaN or inf */
    SRNN_ERR_INDEX_RANGE = -5,   /* a stream index outside [0, n) */
    SRNN_ERR_INDEX_DUP = -6,     /* the same stream twice in one many-stream step */
    SRNN_ERR_NONFINITE_Y = -7,   /* a target holds inf (NaN means "no target") */
    SRNN_ERR_CLASS_RANGE = -8,   /* a class index outside [0, O) */
    SRNN_ERR_CONFIG = -9,        /* an invalid trainer/optimizer setting */
    SRNN_ERR_NO_PENDING = -10    /* a target given when no step is waiting for one */
} srnn_status;

const char *srnn_status_name(int status);

typedef enum srnn_cell {
    SRNN_RNN_TANH = 0,
    SRNN_RNN_RELU = 1,
    SRNN_LSTM = 2,
    SRNN_GRU = 3,
    /* GRU with the reset gate applied before the recurrent product (ONNX
     * linear_before_reset=0, Keras reset_after=False): rows r, z, n as SRNN_GRU, but
     * n = tanh(W_in x + b_in + W_hn (r*h) + b_hn). Same parameters as SRNN_GRU. */
    SRNN_GRU_RB = 4,
    /* LSTM with peepholes (ONNX's P): rows i, f, g, o as SRNN_LSTM, but
     * i = sigmoid(. + p_i*c_{t-1}), f = sigmoid(. + p_f*c_{t-1}), o = sigmoid(. + p_o*c_t).
     * Its layers have one more parameter, weight_peephole (3*H) = [p_i | p_f | p_o], after
     * bias_hh. */
    SRNN_LSTM_PEEP = 5
} srnn_cell;

/* Sizes of a network. output_size 0 means no head (the output is the top h). */
typedef struct srnn_dims {
    int cell;
    int num_layers;   /* L >= 1 */
    int input_size;   /* D >= 1 */
    int hidden_size;  /* H >= 1 */
    int output_size;  /* O >= 0 */
} srnn_dims;

/*
 * Sizes and the flat layout of a network with ndir directions per layer (1, or 2 for a
 * bidirectional one; a one-direction network is the ndir = 1 case of the same layout):
 * for each layer k, for each direction r: weight_ih (G*H, D_k), weight_hh (G*H, H),
 * bias_ih (G*H), bias_hh (G*H), for SRNN_LSTM_PEEP weight_peephole (3*H), D_0 = D,
 * D_k = ndir*H above; then the head: weight (O, ndir*H), bias (O).
 */
int srnn_check_dims(const srnn_dims *d, int ndir);    /* SRNN_ERR_DIMS also for ndir not 1, 2 */
int srnn_gates(int cell);                     /* G, or 0 for an unknown cell */
int srnn_has_c(int cell);                     /* 1 for the cells with a cell state c (LSTMs) */
/* Parameters of one direction of one layer of input width din (srnn_layer_offset's unit). */
size_t srnn_layer_params(int cell, int din, int H);
size_t srnn_num_params(const srnn_dims *d, int ndir);   /* length of the flat buffer */
/* start of (layer, dir)'s weight_ih; layer == L (dir 0): start of the head */
size_t srnn_layer_offset(const srnn_dims *d, int ndir, int layer, int dir);
int srnn_out_size(const srnn_dims *d, int ndir);       /* O if O > 0 else ndir*H */
/* Rows of a layer's pre-activation that take W_hh h + b_hh summed with the input part: all,
 * except the GRUs' n rows (the reset gate multiplies their recurrent part, or with SRNN_GRU_RB
 * its input r*h): 2H for SRNN_GRU and SRNN_GRU_RB, else G*H. */
int srnn_fused_rows(int cell, int H);
/* Scratch (elements, not bytes) that srnn_step / srnn_run need. */
size_t srnn_step_work(const srnn_dims *d);
/* Scratch that srnn_step_many needs for m streams: bounded, for m >= SRNN_MANY_BLOCK the
 * same as for SRNN_MANY_BLOCK streams (srnn_step_many works in blocks of that many). */
size_t srnn_many_work(const srnn_dims *d, size_t m);

/* 1 when some product of one step or of a step_many block (SRNN_MANY_BLOCK streams) of a
 * network of these sizes (d valid, ndir 1 or 2) exceeds SRNN_OWN_GEMV_MAX / SRNN_OWN_GEMM_MAX,
 * so that the caller should fill its BLAS table; 0: the own kernels take every product of
 * its steps, and a table without BLAS (NULL pointers) costs nothing. */
int srnn_wants_blas(const srnn_dims *d, int ndir);

/*
 * Forward, one timestep of the whole network (templated: _f32 and _f64).
 *   params  flat parameters (srnn_num_params(d, 1))
 *   x       (D,)          must be finite (checked before anything is written)
 *   h       (L, H)        in/out, updated in place
 *   c       (L, H)        in/out for LSTM, ignored (may be NULL) otherwise
 *   y       (O|H,)        out: head output, or the new top-layer h without a head
 *   work    (srnn_step_work,) scratch; must not alias anything else
 * NumPy: see streamrnn/reference/net.py, Net.step.
 */
int srnn_step_f32(const srnn_blas *b, const srnn_dims *d, const float *params, const float *x,
                  float *h, float *c, float *y, float *work);
int srnn_step_f64(const srnn_blas *b, const srnn_dims *d, const double *params,
                  const double *x, double *h, double *c, double *y, double *work);

/*
 * T timesteps: X (T, D) row stride ldx >= D, Y (T, O|H) row stride ldy >= O|H.
 * X is checked finite in full before the first step, so an error leaves h, c, Y untouched.
 */
int srnn_run_f32(const srnn_blas *b, const srnn_dims *d, const float *params, size_t T,
                 const float *X, size_t ldx, float *h, float *c, float *Y, size_t ldy,
                 float *work);
int srnn_run_f64(const srnn_blas *b, const srnn_dims *d, const double *params, size_t T,
                 const double *X, size_t ldx, double *h, double *c, double *Y, size_t ldy,
                 double *work);

/*
 * One timestep for m of n independent streams with matrix-matrix products.
 *   X      (m, D) rows, row i is the input of stream index[i] (or of stream i if index is NULL,
 *          then m == n)
 *   H      (n, L, H) all streams' hidden states, C (n, L, H) for LSTM
 *   index  (m,) distinct stream numbers in [0, n), or NULL
 *   Y      (m, O|H)
 *   work   (srnn_many_work(d, m),) plus mark (n,) bytes used to find duplicates (all zero on
 *          entry; left all zero); X, Y, work, mark alias neither each other nor H, C
 * Validates X finite and index before writing anything.
 * NumPy: for i, s in enumerate(index): Y[i] = step(X[i], H[s], C[s]).
 */
/* Below this many streams srnn_step_many steps each stream with matrix-vector products;
 * from it on, blocks of at most SRNN_MANY_BLOCK streams with matrix-matrix products. */
#define SRNN_MANY_GEMM_MIN 8
#define SRNN_MANY_BLOCK 256

int srnn_step_many_f32(const srnn_blas *b, const srnn_dims *d, const float *params, size_t n,
                       size_t m, const float *X, const int64_t *index, float *H, float *C,
                       float *Y, float *work, unsigned char *mark);
int srnn_step_many_f64(const srnn_blas *b, const srnn_dims *d, const double *params, size_t n,
                       size_t m, const double *X, const int64_t *index, double *H, double *C,
                       double *Y, double *work, unsigned char *mark);

/* ------------------------------------------------------------------ online training */

typedef enum srnn_loss { SRNN_LOSS_MSE = 0, SRNN_LOSS_XENT = 1 } srnn_loss;
typedef enum srnn_opt { SRNN_OPT_SGD = 0, SRNN_OPT_ADAM = 1, SRNN_OPT_RMSPROP = 2 } srnn_opt;

/*
 * A trainer's settings (loss, TBPTT window, clipping, optimizer: one record, filled once) and
 * counters. Plain data: copying it (with the buffers below) is a complete snapshot, which is
 * how trainers are pickled.
 */
typedef struct srnn_train_settings {
    int loss;             /* srnn_loss */
    int k1, k2;           /* update every k1 steps, backprop through k2 steps; 1 <= k1 <= k2 */
    double clip_value;    /* > 0: clamp each gradient component to [-v, v]; 0: off */
    double clip_norm;     /* > 0: scale the gradient to L2 norm <= t (torch formula); 0: off */
    int opt;              /* srnn_opt */
    int nesterov;         /* SGD */
    double lr, momentum, weight_decay, beta1, beta2, eps, alpha; /* torch.optim's names */
} srnn_train_settings;

typedef struct srnn_trainer {
    srnn_train_settings set; /* filled once from the optimizer; checked by srnn_train_check */
    /* counters */
    int64_t steps;        /* steps since reset */
    int64_t since_update; /* steps since the last update point, < k1 */
    int64_t filled;       /* valid ring slots, <= k2 */
    int64_t head;         /* ring slot of the newest step */
    int64_t updates;      /* applied updates (since creation) */
    int64_t skipped;      /* updates skipped for a non-finite loss, gradient or result */
    int64_t opt_steps;    /* the optimizer's step count (Adam's t) */
    int64_t loss_count;   /* targeted steps since reset */
    int64_t pending;      /* 1: the newest step awaits its target (srnn_advance) */
    double loss_sum;      /* sum of their per-step losses */
    double last_loss;     /* loss of the last attempted update (NaN before any) */
    double last_grad_norm;/* its pre-clip gradient L2 norm (NaN before any) */
} srnn_trainer;

/*
 * The buffers a trainer owns, set once when it is made (REAL: float for the _f32 entry
 * points, double for _f64; every pointer non-NULL, none aliasing another):
 *   ring   (k2, srnn_record_size(d)) REAL  the recorded activations of the k2 newest steps
 *   tags   (k2,)                            per slot: -1 (no target), 0 (mse), or a class
 *   grad   (3 * num_params,) REAL           scratch: gradient, then the candidate update
 *   m1, m2 (num_params,) REAL               optimizer moments (kept between updates)
 *   work   (srnn_train_work(d, k2),) REAL   scratch
 * NumPy: reference.Trainer's ring (a deque of step records, the targets in them) and m1, m2.
 */
typedef struct srnn_train_bufs {
    void *ring;
    int64_t *tags;
    void *grad, *m1, *m2, *work;
} srnn_train_bufs;

int srnn_train_check(const srnn_dims *d, const srnn_trainer *t);
/* srnn_train_check plus the ring tags (k2,): each -1, or a target tag tbptt_update may index
 * with (mse: 0; cross-entropy: a class in [0, O|H)). Every learning entry point runs it, so
 * a trainer restored from a crafted snapshot (or tags changed in memory) is refused with
 * SRNN_ERR_CONFIG instead of indexing outside the output. */
int srnn_train_check_ring(const srnn_dims *d, const srnn_trainer *t, const int64_t *tags);
/* Elements of one ring slot (the activations of one step), of the scratch, and of the
 * buffers a trainer owns: ring (k2 * slot), tags (k2 int64), grad (3 * num_params), m1, m2
 * (num_params). */
size_t srnn_record_size(const srnn_dims *d);
size_t srnn_train_work(const srnn_dims *d, int k2);
/* The named fields of one ring slot, so that a file can store the ring field by field,
 * independent of this layout. Field f (0 <= f < SRNN_RECORD_FIELDS) is `count` blocks of
 * `length` elements, block k at slot offset `offset + k * stride` (elements): x (1 x D),
 * y (1 x O|H) prediction, tgt (1 x O|H) mse target, then per layer (L blocks): hp (H) h_{t-1},
 * cp (H) c_{t-1}, g (G*H) gates, ex (H), hn (H) h_t. Returns the field's name, or NULL
 * (outputs untouched) for f outside [0, SRNN_RECORD_FIELDS) or d NULL. NumPy: the field is
 * slot[offset + k*stride : offset + k*stride + length] for k in range(count). */
#define SRNN_RECORD_FIELDS 8
const char *srnn_record_field(const srnn_dims *d, int f, size_t *offset, size_t *count,
                              size_t *length, size_t *stride);
void srnn_train_reset(srnn_trainer *t);   /* counters since reset; optimizer state kept */

/*
 * T online-learning steps (learn_one is T = 1). For each t: step the trainer's stream
 * (h, c) with X[t], recording the activations in the ring; Ypred[t] = the output (made
 * before any learning at this step); record the target; every k1 steps run TBPTT(k1, k2)
 * and the optimizer on params (see streamrnn/reference/online.py for the exact semantics).
 *   X      (T, D)                    must be finite
 *   Yt     (T, O|H) mse targets      a row with a NaN: no target; inf: error. NULL for xent
 *   cls    (T,) class indices        -1: no target; else in [0, O|H). NULL for mse
 *   bf     the trainer's buffers (srnn_train_bufs)
 *   h, c   (L, H) the trainer's stream (c: LSTM only, else may be NULL)
 *   Ypred  (T, O|H)
 * All inputs are validated before anything is written. Updates that meet a non-finite loss,
 * gradient or result leave params, m1, m2 unchanged and count in t->skipped.
 */
int srnn_learn_f32(const srnn_blas *b, const srnn_dims *d, float *params, srnn_trainer *t,
                   const srnn_train_bufs *bf, size_t T, const float *X, const float *Yt,
                   const int64_t *cls, float *h, float *c, float *Ypred);
int srnn_learn_f64(const srnn_blas *b, const srnn_dims *d, double *params, srnn_trainer *t,
                   const srnn_train_bufs *bf, size_t T, const double *X, const double *Yt,
                   const int64_t *cls, double *h, double *c, double *Ypred);

/*
 * learn_one in two halves, for callers whose target arrives after the next input is known
 * (a forecaster predicts y[t+1] as soon as y[t] arrives): srnn_advance steps with x and
 * records it with its target pending; srnn_target gives the pending step its target and runs
 * the update when k1 steps are complete. advance then target gives exactly srnn_learn's
 * numbers. An advance while a step is pending first closes that step without a target.
 * srnn_target without a pending step returns SRNN_ERR_NO_PENDING; y: (O|H) mse target (a NaN:
 * no target), cls: class or -1 for cross-entropy. Validation before any write.
 */
int srnn_advance_f32(const srnn_blas *b, const srnn_dims *d, float *params, srnn_trainer *t,
                     const srnn_train_bufs *bf, const float *x, float *h, float *c,
                     float *ypred);
int srnn_advance_f64(const srnn_blas *b, const srnn_dims *d, double *params, srnn_trainer *t,
                     const srnn_train_bufs *bf, const double *x, double *h, double *c,
                     double *ypred);
int srnn_target_f32(const srnn_blas *b, const srnn_dims *d, float *params, srnn_trainer *t,
                    const srnn_train_bufs *bf, const float *y, int64_t cls);
int srnn_target_f64(const srnn_blas *b, const srnn_dims *d, double *params, srnn_trainer *t,
                    const srnn_train_bufs *bf, const double *y, int64_t cls);

/* The prediction for x from (h, c) without changing them: y (O|H).
 * work: srnn_train_work(d, k2) for any k2 >= 1. */
int srnn_predict_f32(const srnn_blas *b, const srnn_dims *d, const float *params,
                     const float *x, const float *h, const float *c, float *y, float *work);
int srnn_predict_f64(const srnn_blas *b, const srnn_dims *d, const double *params,
                     const double *x, const double *h, const double *c, double *y,
                     double *work);


/* ------------------------------------------------------------------ whole windows (seq.inc)
 *
 * A network run over a whole window of T steps, optionally bidirectional (ndir = 2): per
 * layer a forward direction (t = 0..T-1) and a backward direction (t = T-1..0), each with its
 * own parameters, their h concatenated [forward | backward] (2H) as the next layer's input
 * and as the head's input, with the flat layout of srnn_layer_offset (PyTorch's
 * named_parameters order, direction 1 being "_reverse"). States of a window, initial or
 * final: (L, ndir, H), direction r's h of layer k at
 * [k][r] (PyTorch's h_n is (L*ndir, H) in the same order).
 */
/* Elements of the window cache + scratch that srnn_seq_forward/backward need for T steps. */
size_t srnn_seq_work(const srnn_dims *d, int ndir, size_t T);

/*
 * Forward over a window, caching in `work` everything srnn_seq_backward needs.
 *   params  (srnn_num_params(d, ndir),)
 *   X       (T, D) C-contiguous, must be finite (checked before anything is written)
 *   h0, c0  (L, ndir, H) initial states, or NULL for zeros (c0: LSTM only)
 *   many_to_one 0: Y (T, OUT), the output at every step;
 *           1: Y (OUT,), the output of the readout z = [h_fwd(T-1) | h_bwd(0)] of the top
 *              layer (unidirectional: h(T-1)), through the head when there is one
 *   hT, cT  (L, ndir, H) final states (forward direction: after t = T-1; backward direction:
 *           after t = 0), or NULL
 *   work    (srnn_seq_work(d, ndir, T),) must not alias anything else
 * NumPy: reference.window_forward (Y, hT, cT).
 */
int srnn_seq_forward_f32(const srnn_blas *b, const srnn_dims *d, int ndir, const float *params,
                         size_t T, const float *X, const float *h0, const float *c0,
                         int many_to_one, float *Y, float *hT, float *cT, float *work);
int srnn_seq_forward_f64(const srnn_blas *b, const srnn_dims *d, int ndir,
                         const double *params, size_t T, const double *X, const double *h0,
                         const double *c0, int many_to_one, double *Y, double *hT, double *cT,
                         double *work);

/*
 * Backward over the window of the last srnn_seq_forward (same d, ndir, params, T, X,
 * many_to_one; `work` as that call left it). Accumulates (+=) dLoss/dparams into grad.
 *   dY      (T, OUT) or (OUT,) as Y: dLoss/dY
 *   dhT, dcT (L, ndir, H) dLoss/d(final states), or NULL for zeros
 *   grad    (srnn_num_params(d, ndir),) accumulated into, not zeroed
 *   dX      (T, D) written with dLoss/dX, or NULL
 *   dh0, dc0 (L, ndir, H) written with dLoss/d(initial states), or NULL
 * The outputs (grad, dX, dh0, dc0) alias neither each other, the inputs nor work. Returns
 * SRNN_ERR_DIMS for T == 0 or T > INT_MAX (a BLAS dimension), before writing anything.
 * NumPy: reference.window_backward.
 */
int srnn_seq_backward_f32(const srnn_blas *b, const srnn_dims *d, int ndir,
                          const float *params, size_t T, const float *X, int many_to_one,
                          const float *dY, const float *dhT, const float *dcT, float *grad,
                          float *dX, float *dh0, float *dc0, float *work);
int srnn_seq_backward_f64(const srnn_blas *b, const srnn_dims *d, int ndir,
                          const double *params, size_t T, const double *X, int many_to_one,
                          const double *dY, const double *dhT, const double *dcT,
                          double *grad, double *dX, double *dh0, double *dc0, double *work);

/*
 * One optimizer update over nseg parameter segments that share one optimizer (an encoder's
 * and a decoder's flat buffers): the same code path as the TBPTT update. The gradient, the
 * moments and the scratch are concatenated over the segments (P = sum of sizes):
 *   grad3  (3P,) in: [0, P) the gradient (the mean over the loss); [P, 3P) scratch
 *   m1, m2 (P,)  optimizer moments
 * Records loss and the pre-clip gradient norm in t; clips (value, then norm); commits the
 * new parameters and moments only when the loss, the gradient and the result are all
 * finite (else t->skipped++). Uses t's optimizer settings and counters only.
 */
int srnn_apply_update_f32(srnn_trainer *t, int nseg, float *const *params, const size_t *sizes,
                          float *grad3, float *m1, float *m2, double loss);
int srnn_apply_update_f64(srnn_trainer *t, int nseg, double *const *params,
                          const size_t *sizes, double *grad3, double *m1, double *m2,
                          double loss);

/*
 * Every entry point of one element type in a table, REAL * taken as void *: srnn_ops_f32
 * (float) and srnn_ops_f64 (double), constant. A caller picks the table once per object
 * from its dtype (as numpy.random takes a bit generator's functions) and calls through it;
 * arguments, shapes, aliasing and status codes are those of the typed functions above.
 */
typedef struct srnn_ops {
    int (*step)(const srnn_blas *b, const srnn_dims *d, const void *params, const void *x,
                void *h, void *c, void *y, void *work);
    int (*run)(const srnn_blas *b, const srnn_dims *d, const void *params, size_t T,
               const void *X, size_t ldx, void *h, void *c, void *Y, size_t ldy, void *work);
    int (*step_many)(const srnn_blas *b, const srnn_dims *d, const void *params, size_t n,
                     size_t m, const void *X, const int64_t *index, void *H, void *C, void *Y,
                     void *work, unsigned char *mark);
    int (*learn)(const srnn_blas *b, const srnn_dims *d, void *params, srnn_trainer *t,
                 const srnn_train_bufs *bf, size_t T, const void *X, const void *Yt,
                 const int64_t *cls, void *h, void *c, void *Ypred);
    int (*advance)(const srnn_blas *b, const srnn_dims *d, void *params, srnn_trainer *t,
                   const srnn_train_bufs *bf, const void *x, void *h, void *c, void *ypred);
    int (*target)(const srnn_blas *b, const srnn_dims *d, void *params, srnn_trainer *t,
                  const srnn_train_bufs *bf, const void *y, int64_t cls);
    int (*predict)(const srnn_blas *b, const srnn_dims *d, const void *params, const void *x,
                   const void *h, const void *c, void *y, void *work);
    int (*seq_forward)(const srnn_blas *b, const srnn_dims *d, int ndir, const void *params,
                       size_t T, const void *X, const void *h0, const void *c0,
                       int many_to_one, void *Y, void *hT, void *cT, void *work);
    int (*seq_backward)(const srnn_blas *b, const srnn_dims *d, int ndir, const void *params,
                        size_t T, const void *X, int many_to_one, const void *dY,
                        const void *dhT, const void *dcT, void *grad, void *dX, void *dh0,
                        void *dc0, void *work);
    int (*apply_update)(srnn_trainer *t, int nseg, void *const *params, const size_t *sizes,
                        void *grad3, void *m1, void *m2, double loss);
} srnn_ops;
extern const srnn_ops srnn_ops_f32, srnn_ops_f64;

#ifdef __cplusplus
}
#endif
#endif
