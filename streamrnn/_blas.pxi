# The BLAS table the C core gets (scipy.linalg.cython_blas), loaded lazily, and the test
# gate: a hook that holds a call in flight for the thread tests.
#
# SciPy's BLAS is not imported with streamrnn: importing scipy.linalg.cython_blas runs the
# whole scipy.linalg package init (about 85 modules, most of streamrnn's import time), and the
# C core's own kernels take every product up to SRNN_OWN_GEMV_MAX / SRNN_OWN_GEMM_MAX
# elements (src_c/streamrnn.h). So the module-level table _BLAS stays empty (NULL pointers,
# which the C core reads as "no BLAS: own kernels at every size") until a network whose
# products exceed those sizes is made (srnn_wants_blas) or a test hook asks for BLAS; then
# _load_blas() imports the module once and takes its six function pointers from the capsules
# in its __pyx_capi__, checking each capsule's C signature as a Cython cimport would (an
# ILP64 build, with 64-bit BLAS integers, fails loudly here instead of being called wrongly).

from cpython.pycapsule cimport PyCapsule_GetPointer

cdef srnn_blas _BLAS            # zero-initialised: every pointer NULL until _load_blas()
cdef bint _blas_loaded = False

_CB_S = "__pyx_t_5scipy_6linalg_11cython_blas_s *"
_CB_D = "__pyx_t_5scipy_6linalg_11cython_blas_d *"
_GEMV_SIG = "void (char *, int *, int *, {0}, {0}, int *, {0}, int *, {0}, {0}, int *)"
_GEMM_SIG = ("void (char *, char *, int *, int *, int *, {0}, {0}, int *, {0}, int *, {0}, "
             "{0}, int *)")
_GER_SIG = "void (int *, int *, {0}, {0}, int *, {0}, int *, {0}, int *)"
# the capsule names (C signatures) of scipy.linalg.cython_blas's functions, as its
# __pyx_capi__ holds them (the same strings a cimport checks)
_BLAS_SIGS = (("sgemv", _GEMV_SIG.format(_CB_S)), ("dgemv", _GEMV_SIG.format(_CB_D)),
              ("sgemm", _GEMM_SIG.format(_CB_S)), ("dgemm", _GEMM_SIG.format(_CB_D)),
              ("sger", _GER_SIG.format(_CB_S)), ("dger", _GER_SIG.format(_CB_D)))


def _load_blas():
    """Import scipy.linalg.cython_blas (once per process) and fill the module's BLAS table.
    Called with the GIL held; the table is complete before it is marked loaded."""
    global _blas_loaded
    if _blas_loaded:
        return
    import importlib
    capi = importlib.import_module("scipy.linalg.cython_blas").__pyx_capi__
    cdef void *p[6]
    cdef int i
    for i in range(6):
        name, sig = _BLAS_SIGS[i]
        sigb = sig.encode("ascii")
        p[i] = PyCapsule_GetPointer(capi[name], sigb)   # ValueError on a signature mismatch
    _BLAS.sgemv = <srnn_sgemv_t>p[0]
    _BLAS.dgemv = <srnn_dgemv_t>p[1]
    _BLAS.sgemm = <srnn_sgemm_t>p[2]
    _BLAS.dgemm = <srnn_dgemm_t>p[3]
    _BLAS.sger = <srnn_sger_t>p[4]
    _BLAS.dger = <srnn_dger_t>p[5]
    _blas_loaded = True


def _blas_is_loaded():
    """Test hook: whether this process has loaded SciPy's BLAS for the C core."""
    return bool(_blas_loaded)


cdef int _fill_blas(srnn_blas *b) noexcept:
    """b = the module's table as it is now (NULL pointers while BLAS is not loaded: the C
    core's own kernels then take every product)."""
    b.sgemv = _BLAS.sgemv
    b.dgemv = _BLAS.dgemv
    b.sgemm = _BLAS.sgemm
    b.dgemm = _BLAS.dgemm
    b.sger = _BLAS.sger
    b.dger = _BLAS.dger
    b.blas_only = 0
    b.probe = NULL
    return 0


cdef extern from *:
    """
    /* Test gate (tests/test_threads.py, tests/test_thread_contract.py): a network whose
       table has the gate as its probe (_Network._gated) stops at the start of its next
       matrix product (own kernel or BLAS) after _gate_arm(), without the GIL, until
       _gate_release(). So a test holds a real C call "in flight" for as long as it needs,
       with no timing. States: 0 open, 1 armed, 2 a call waits at the gate, 3 released,
       4 gave up (a failing test never hangs the process: the wait ends after ~1e7 naps of
       0.1 ms, about 20 min). */
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
    void srnn_test_gate_wait() noexcept nogil


def _gate_arm():
    """Test hook: the next matrix product of a gated network waits at the gate."""
    global srnn_test_gate
    srnn_test_gate = 1


def _gate_state():
    """Test hook: 0 open, 1 armed, 2 a call waits, 3 released, 4 gave up."""
    return srnn_test_gate


def _gate_release():
    """Test hook: let the waiting call go on (and disarm the gate)."""
    global srnn_test_gate
    srnn_test_gate = 3 if srnn_test_gate == 2 else 0
