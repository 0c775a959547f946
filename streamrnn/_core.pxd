# Every C declaration of the core, mirrored from src_c/streamrnn.h (one place).
from libc.stdint cimport int64_t

cdef extern from "streamrnn.h" nogil:
    ctypedef int srnn_blas_int

    ctypedef void (*srnn_sgemv_t)(char*, srnn_blas_int*, srnn_blas_int*, float*, float*,
                                  srnn_blas_int*, float*, srnn_blas_int*, float*, float*,
                                  srnn_blas_int*) noexcept nogil
    ctypedef void (*srnn_dgemv_t)(char*, srnn_blas_int*, srnn_blas_int*, double*, double*,
                                  srnn_blas_int*, double*, srnn_blas_int*, double*, double*,
                                  srnn_blas_int*) noexcept nogil
    ctypedef void (*srnn_sgemm_t)(char*, char*, srnn_blas_int*, srnn_blas_int*, srnn_blas_int*,
                                  float*, float*, srnn_blas_int*, float*, srnn_blas_int*,
                                  float*, float*, srnn_blas_int*) noexcept nogil
    ctypedef void (*srnn_dgemm_t)(char*, char*, srnn_blas_int*, srnn_blas_int*, srnn_blas_int*,
                                  double*, double*, srnn_blas_int*, double*, srnn_blas_int*,
                                  double*, double*, srnn_blas_int*) noexcept nogil
    ctypedef void (*srnn_sger_t)(srnn_blas_int*, srnn_blas_int*, float*, float*, srnn_blas_int*,
                                 float*, srnn_blas_int*, float*, srnn_blas_int*) noexcept nogil
    ctypedef void (*srnn_dger_t)(srnn_blas_int*, srnn_blas_int*, double*, double*,
                                 srnn_blas_int*, double*, srnn_blas_int*, double*,
                                 srnn_blas_int*) noexcept nogil

    ctypedef struct srnn_blas:
        srnn_sgemv_t sgemv
        srnn_dgemv_t dgemv
        srnn_sgemm_t sgemm
        srnn_dgemm_t dgemm
        srnn_sger_t sger
        srnn_dger_t dger
        int blas_only
        void (*probe)() noexcept nogil

    enum:
        SRNN_OK
        SRNN_ERR_NULL
        SRNN_ERR_DIMS
        SRNN_ERR_CELL
        SRNN_ERR_NONFINITE_X
        SRNN_ERR_INDEX_RANGE
        SRNN_ERR_INDEX_DUP
        SRNN_ERR_NONFINITE_Y
        SRNN_ERR_CLASS_RANGE
        SRNN_ERR_CONFIG
        SRNN_ERR_NO_PENDING

    enum:
        SRNN_RNN_TANH
        SRNN_RNN_RELU
        SRNN_LSTM
        SRNN_GRU
        SRNN_GRU_RB
        SRNN_LSTM_PEEP

    ctypedef struct srnn_dims:
        int cell
        int num_layers
        int input_size
        int hidden_size
        int output_size

    const char *srnn_status_name(int status)
    int srnn_check_dims(const srnn_dims *d, int ndir)
    int srnn_gates(int cell)
    int srnn_has_c(int cell)
    size_t srnn_num_params(const srnn_dims *d, int ndir)
    size_t srnn_layer_offset(const srnn_dims *d, int ndir, int layer, int dir)
    int srnn_out_size(const srnn_dims *d, int ndir)
    size_t srnn_step_work(const srnn_dims *d)
    size_t srnn_many_work(const srnn_dims *d, size_t m)
    int srnn_wants_blas(const srnn_dims *d, int ndir)

    enum:
        SRNN_LOSS_MSE
        SRNN_LOSS_XENT
    enum:
        SRNN_OPT_SGD
        SRNN_OPT_ADAM
        SRNN_OPT_RMSPROP

    ctypedef struct srnn_train_settings:
        int loss
        int k1
        int k2
        double clip_value
        double clip_norm
        int opt
        int nesterov
        double lr
        double momentum
        double weight_decay
        double beta1
        double beta2
        double eps
        double alpha

    ctypedef struct srnn_trainer:
        srnn_train_settings set
        int64_t steps
        int64_t since_update
        int64_t filled
        int64_t head
        int64_t updates
        int64_t skipped
        int64_t opt_steps
        int64_t loss_count
        int64_t pending
        double loss_sum
        double last_loss
        double last_grad_norm

    int srnn_train_check(const srnn_dims *d, const srnn_trainer *t)
    int srnn_train_check_ring(const srnn_dims *d, const srnn_trainer *t, const int64_t *tags)
    size_t srnn_record_size(const srnn_dims *d)
    enum: SRNN_RECORD_FIELDS
    const char *srnn_record_field(const srnn_dims *d, int f, size_t *offset, size_t *count,
                                  size_t *length, size_t *stride)
    size_t srnn_train_work(const srnn_dims *d, int k2)
    void srnn_train_reset(srnn_trainer *t)
    size_t srnn_seq_work(const srnn_dims *d, int ndir, size_t T)
    ctypedef struct srnn_train_bufs:
        void *ring
        int64_t *tags
        void *grad
        void *m1
        void *m2
        void *work

    # the entry points of one element type (streamrnn.h: srnn_ops), picked once per object
    ctypedef struct srnn_ops:
        int (*step)(const srnn_blas *b, const srnn_dims *d, const void *params, const void *x,
                    void *h, void *c, void *y, void *work) noexcept nogil
        int (*run)(const srnn_blas *b, const srnn_dims *d, const void *params, size_t T,
                   const void *X, size_t ldx, void *h, void *c, void *Y, size_t ldy,
                   void *work) noexcept nogil
        int (*step_many)(const srnn_blas *b, const srnn_dims *d, const void *params, size_t n,
                         size_t m, const void *X, const int64_t *index, void *H, void *C,
                         void *Y, void *work, unsigned char *mark) noexcept nogil
        int (*learn)(const srnn_blas *b, const srnn_dims *d, void *params, srnn_trainer *t,
                     const srnn_train_bufs *bf, size_t T, const void *X, const void *Yt,
                     const int64_t *cls, void *h, void *c, void *Ypred) noexcept nogil
        int (*advance)(const srnn_blas *b, const srnn_dims *d, void *params, srnn_trainer *t,
                       const srnn_train_bufs *bf, const void *x, void *h, void *c,
                       void *ypred) noexcept nogil
        int (*target)(const srnn_blas *b, const srnn_dims *d, void *params, srnn_trainer *t,
                      const srnn_train_bufs *bf, const void *y, int64_t cls) noexcept nogil
        int (*predict)(const srnn_blas *b, const srnn_dims *d, const void *params,
                       const void *x, const void *h, const void *c, void *y, void *work) noexcept nogil
        int (*seq_forward)(const srnn_blas *b, const srnn_dims *d, int ndir,
                           const void *params, size_t T, const void *X, const void *h0,
                           const void *c0, int many_to_one, void *Y, void *hT, void *cT,
                           void *work) noexcept nogil
        int (*seq_backward)(const srnn_blas *b, const srnn_dims *d, int ndir,
                            const void *params, size_t T, const void *X, int many_to_one,
                            const void *dY, const void *dhT, const void *dcT, void *grad,
                            void *dX, void *dh0, void *dc0, void *work) noexcept nogil
        int (*apply_update)(srnn_trainer *t, int nseg, void *const *params,
                            const size_t *sizes, void *grad3, void *m1, void *m2,
                            double loss) noexcept nogil
    const srnn_ops srnn_ops_f32
    const srnn_ops srnn_ops_f64

cdef class _Guard:
    cdef int busy


cdef class _Memory:
    cdef void *raw
    cdef char *data
    cdef size_t nbytes


cdef class State:
    cdef srnn_dims dims
    cdef int typenum
    cdef object _h
    cdef object _c
    cdef object _work
    cdef _Guard guard
    cdef object _batch
    cdef _Memory _mem
    cdef _Memory _wmem
    cdef object _hpub
    cdef object _cpub
    cdef void *hptr
    cdef void *cptr
    cdef void *wptr


cdef class StateBatch:
    cdef srnn_dims dims
    cdef int typenum
    cdef Py_ssize_t n
    cdef object _h
    cdef object _c
    cdef object _work
    cdef object _mark
    cdef _Guard guard
    cdef _Memory _mem
    cdef object _hpub
    cdef object _cpub
    cdef void *hptr
    cdef void *cptr
    cdef void *wptr
    cdef unsigned char *mptr


cdef class _Network:
    cdef srnn_dims dims
    cdef srnn_blas blas
    cdef int typenum
    cdef object _params
    cdef _Memory _pmem
    cdef object _ppub
    cdef void *pptr
    cdef Py_ssize_t out_size
    cdef Py_ssize_t nparams
    cdef int inflight
    cdef int ndir
    cdef const srnn_ops *ops     # srnn_ops_f32 or srnn_ops_f64, from typenum (set once)

    cdef int _fits(self, State s) except -1
    cdef int _enter(self, State s) except -1
    cdef void _leave(self, _Guard g) noexcept
    cdef int _enter_read(self, State s) except -1
    cdef void _leave_read(self, _Guard g) noexcept
    cdef int _enter_write(self, State s) except -1
    cdef void _leave_write(self, _Guard g) noexcept
    cdef int _uni(self, str what) except -1
    cdef bint _out_hits_state(self, object out, State s)


cdef class _Trainer:
    cdef srnn_trainer t
    cdef _Network _net
    cdef State _state
    cdef object _ring
    cdef object _tags
    cdef object _grad
    cdef object _m1
    cdef object _m2
    cdef object _work
    cdef object _ybuf
    cdef object _cbuf
    cdef Py_ssize_t out_size
    cdef _Memory _mem
    cdef srnn_train_bufs bufs    # pointers into _mem, set once by _init_trainer

    cdef object _target_row(self, y)
    cdef int64_t _class_of(self, y) except -2
    cdef int _run(self, Py_ssize_t T, object X, object Yt, object cls, object out,
                  str xname) except -1
    cdef int _raise_learn_status(self, int st, str xname=*) except -1


cdef class _SeqWork:
    cdef _Network _net
    cdef object _work
    cdef _Memory _wmem
    cdef size_t cap
    cdef object _X
    cdef size_t T
    cdef int m2o
    cdef int busy

    cdef int _grow(self, size_t T) except -1
    cdef int _forward(self, size_t T, object X, object h0, object c0, int m2o, object Y,
                      object hT, object cT)


cdef class _Updater:
    cdef srnn_trainer t
    cdef list _nets
    cdef object _grad
    cdef object _m1
    cdef object _m2
    cdef Py_ssize_t P
    cdef _Memory _mem
    cdef void *grad_p
    cdef void *m1_p
    cdef void *m2_p

    cdef int _ready(self) except -1
