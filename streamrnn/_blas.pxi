# The BLAS table the C core gets (scipy.linalg.cython_blas), and the test gate: BLAS
# wrappers that hold a call in flight for the thread tests.

cdef int _fill_blas(srnn_blas *b) noexcept:
    b.sgemv = <srnn_sgemv_t>sgemv
    b.dgemv = <srnn_dgemv_t>dgemv
    b.sgemm = <srnn_sgemm_t>sgemm
    b.dgemm = <srnn_dgemm_t>dgemm
    b.sger = <srnn_sger_t>sger
    b.dger = <srnn_dger_t>dger
    return 0


cdef extern from *:
    """
    /* Test gate (tests/test_threads.py, tests/test_thread_contract.py): a network whose
       BLAS table is routed through the gated wrappers (_Network._gated) stops inside its
       next BLAS call after _gate_arm(), without the GIL, until _gate_release(). So a test
       holds a real C call "in flight" for as long as it needs, with no timing. States:
       0 open, 1 armed, 2 a call waits at the gate, 3 released, 4 gave up (a failing test
       never hangs the process: the wait ends after ~1e7 naps of 0.1 ms, about 20 min). */
    #ifdef _WIN32
    #include <windows.h>
    #define SRNN_GATE_NAP() Sleep(1)
    #else
    #include <time.h>
    static void srnn_gate_nap(void) {
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
    #define SRNN_GATE_NAP() srnn_gate_nap()
    #endif
    static volatile int srnn_test_gate = 0;
    static void srnn_test_gate_wait(void) {
        long naps = 0;
        if (srnn_test_gate != 1) return;
        srnn_test_gate = 2;
        while (srnn_test_gate == 2) {
            if (++naps > 10000000L) { srnn_test_gate = 4; return; }
            SRNN_GATE_NAP();
        }
    }
    """
    int srnn_test_gate
    void srnn_test_gate_wait() nogil


cdef void _gated_dgemv(char *t, int *m, int *n, double *al, double *a, int *lda, double *x,
                       int *incx, double *be, double *y, int *incy) noexcept nogil:
    srnn_test_gate_wait()
    dgemv(t, m, n, al, a, lda, x, incx, be, y, incy)


cdef void _gated_sgemv(char *t, int *m, int *n, float *al, float *a, int *lda, float *x,
                       int *incx, float *be, float *y, int *incy) noexcept nogil:
    srnn_test_gate_wait()
    sgemv(t, m, n, al, a, lda, x, incx, be, y, incy)


cdef void _gated_dgemm(char *ta, char *tb, int *m, int *n, int *k, double *al, double *a,
                       int *lda, double *b, int *ldb, double *be, double *c,
                       int *ldc) noexcept nogil:
    srnn_test_gate_wait()
    dgemm(ta, tb, m, n, k, al, a, lda, b, ldb, be, c, ldc)


cdef void _gated_sgemm(char *ta, char *tb, int *m, int *n, int *k, float *al, float *a,
                       int *lda, float *b, int *ldb, float *be, float *c,
                       int *ldc) noexcept nogil:
    srnn_test_gate_wait()
    sgemm(ta, tb, m, n, k, al, a, lda, b, ldb, be, c, ldc)


cdef void _gated_dger(int *m, int *n, double *al, double *x, int *incx, double *y,
                      int *incy, double *a, int *lda) noexcept nogil:
    srnn_test_gate_wait()
    dger(m, n, al, x, incx, y, incy, a, lda)


cdef void _gated_sger(int *m, int *n, float *al, float *x, int *incx, float *y,
                      int *incy, float *a, int *lda) noexcept nogil:
    srnn_test_gate_wait()
    sger(m, n, al, x, incx, y, incy, a, lda)


def _gate_arm():
    """Test hook: the next BLAS call of a gated network waits at the gate."""
    global srnn_test_gate
    srnn_test_gate = 1


def _gate_state():
    """Test hook: 0 open, 1 armed, 2 a call waits, 3 released, 4 gave up."""
    return srnn_test_gate


def _gate_release():
    """Test hook: let the waiting call go on (and disarm the gate)."""
    global srnn_test_gate
    srnn_test_gate = 3 if srnn_test_gate == 2 else 0
