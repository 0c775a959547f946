# cython: language_level=3
"""Compiled core of streamrnn: owns the memory, validates, releases the GIL, raises.

The numerics live in src_c/ (plain C99); this module hands them raw pointers into
NumPy arrays it owns, plus a table of BLAS function pointers taken from
``scipy.linalg.cython_blas`` (so the extension links no BLAS of its own).

Ownership and aliasing rules (checked here, assumed by the C code):
* a network owns one flat, C-contiguous parameter array; the per-weight arrays are views;
* a State owns (or, for a view into a StateBatch, shares) ``h`` (L, H) and ``c`` (L, H)
  and owns a private scratch buffer, so different states can step in parallel threads;
* ``out`` never overlaps the parameters or the state it is computed from, nor any input of
  the call (x, X, index);
* every buffer the C core keeps a pointer into (parameters, states, trainer buffers) lives in
  a ``_Memory`` block of fixed size and address: the NumPy arrays handed out over it do not
  own their data, so ``resize`` refuses, and whatever is done to such an array object
  (reshaping, re-striding, ``__setstate__``) never moves the memory the C core uses;
* objects made without their constructor (``State.__new__(State)``) raise on every use.
"""
cimport cython
cimport numpy as cnp
from libc.stdint cimport int64_t, uintptr_t
from cpython.mem cimport PyMem_RawCalloc, PyMem_RawFree
from cpython.exc cimport PyErr_CheckSignals
from scipy.linalg.cython_blas cimport sgemv, dgemv, sgemm, dgemm, sger, dger

import sys

import numpy as np

cnp.import_array()

CELL_CODES = {"rnn_tanh": SRNN_RNN_TANH, "rnn_relu": SRNN_RNN_RELU, "lstm": SRNN_LSTM,
              "gru": SRNN_GRU, "gru_reset_before": SRNN_GRU_RB, "lstm_peephole": SRNN_LSTM_PEEP}
CELL_NAMES = {v: k for k, v in CELL_CODES.items()}
_DTYPES = {cnp.NPY_FLOAT32: np.dtype(np.float32), cnp.NPY_FLOAT64: np.dtype(np.float64)}


cdef int _fill_blas(srnn_blas *b) noexcept:
    b.sgemv = <srnn_sgemv_t>sgemv
    b.dgemv = <srnn_dgemv_t>dgemv
    b.sgemm = <srnn_sgemm_t>sgemm
    b.dgemm = <srnn_dgemm_t>dgemm
    b.sger = <srnn_sger_t>sger
    b.dger = <srnn_dger_t>dger
    return 0


def status_name(int status):
    """The C core's name for a status code."""
    return srnn_status_name(status).decode("ascii")


cdef object _dtype_of(int typenum):
    return _DTYPES[typenum]


cdef int _typenum_of(object dtype) except -1:
    dt = np.dtype(dtype)
    if dt == np.float32:
        return cnp.NPY_FLOAT32
    if dt == np.float64:
        return cnp.NPY_FLOAT64
    raise TypeError(f"dtype must be 'float32' or 'float64', got {dt}")


cdef inline void *_ptr(object a):
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef inline bint _overlaps(object a, object b):
    """True when the memory of ndarrays a and b (C-contiguous) intersects."""
    if a is None or b is None:
        return False
    cdef uintptr_t a0 = <uintptr_t>cnp.PyArray_DATA(<cnp.ndarray>a)
    cdef uintptr_t a1 = a0 + <uintptr_t>cnp.PyArray_NBYTES(<cnp.ndarray>a)
    cdef uintptr_t b0 = <uintptr_t>cnp.PyArray_DATA(<cnp.ndarray>b)
    cdef uintptr_t b1 = b0 + <uintptr_t>cnp.PyArray_NBYTES(<cnp.ndarray>b)
    return a0 < b1 and b0 < a1


cdef inline bint _is_exact_vec(object x, int typenum, Py_ssize_t n):
    """The fast path: an aligned C-contiguous 1-D ndarray of the right dtype and length."""
    if not cnp.PyArray_CheckExact(x):
        return False
    cdef cnp.ndarray a = <cnp.ndarray>x
    return (cnp.PyArray_TYPE(a) == typenum and cnp.PyArray_NDIM(a) == 1
            and cnp.PyArray_DIM(a, 0) == n and cnp.PyArray_ISCARRAY_RO(a))


cdef inline bint _is_exact_out(object out, int typenum, Py_ssize_t n):
    """The fast path for out: a writable aligned C-contiguous 1-D ndarray, right dtype/length."""
    if not cnp.PyArray_Check(out):
        return False
    cdef cnp.ndarray a = <cnp.ndarray>out
    return (cnp.PyArray_TYPE(a) == typenum and cnp.PyArray_NDIM(a) == 1
            and cnp.PyArray_DIM(a, 0) == n and cnp.PyArray_ISCARRAY(a))


cdef inline bint _is_exact_mat(object x, int typenum, Py_ssize_t rows, Py_ssize_t cols):
    """Fast path for 2-D inputs: aligned C-contiguous ndarray, right dtype and shape
    (rows == -1: any number of rows)."""
    if not cnp.PyArray_CheckExact(x):
        return False
    cdef cnp.ndarray a = <cnp.ndarray>x
    return (cnp.PyArray_TYPE(a) == typenum and cnp.PyArray_NDIM(a) == 2
            and (rows == -1 or cnp.PyArray_DIM(a, 0) == rows) and cnp.PyArray_DIM(a, 1) == cols
            and cnp.PyArray_ISCARRAY_RO(a))


def _as_input(x, str name, dtype, tuple shape):
    """Validate an input array and return it as an aligned C-contiguous ndarray.

    ndarrays must already have the network's dtype (no silent casts); Python numbers and
    sequences are converted. Shape ``-1`` entries accept any length. Copies only when the
    given array is not contiguous or not aligned.
    """
    if not isinstance(x, np.ndarray) and hasattr(x, "to_numpy") and \
            type(x).__module__.split(".")[0] == "pandas":
        x = x.to_numpy()    # pandas: its values, under the ndarray rules (_checks.py)
    if isinstance(x, np.ndarray):
        arr = x
        if arr.dtype != dtype:
            raise TypeError(f"{name} must be an array of dtype {np.dtype(dtype).name} "
                            f"(the network's dtype), got dtype {arr.dtype}; "
                            f"convert it with .astype(np.{np.dtype(dtype).name})")
    else:
        if isinstance(x, (str, bytes)) or x is None:
            raise TypeError(f"{name} must be a sequence of numbers or an array of shape "
                            f"{_shape_str(shape)}, got {type(x).__name__}")
        try:
            arr = np.asarray(x)
        except (ValueError, TypeError) as e:
            raise TypeError(f"{name} must be a sequence of numbers of shape "
                            f"{_shape_str(shape)}, got {type(x).__name__} ({e})") from None
        if arr.dtype.kind not in "iuf":
            raise TypeError(f"{name} must hold real numbers, got {type(x).__name__} "
                            f"of dtype {arr.dtype}")
        arr = arr.astype(dtype)
        if arr.ndim == 0 and len(shape) == 1 and shape[0] == 1:
            arr = arr.reshape(1)
    if arr.ndim != len(shape) or any(s != -1 and s != g for s, g in zip(shape, arr.shape)):
        raise ValueError(f"{name} must have shape {_shape_str(shape)}, got shape {arr.shape}")
    if not (arr.flags.c_contiguous and arr.flags.aligned):
        arr = np.ascontiguousarray(arr)
    return arr


def _shape_str(tuple shape):
    parts = ["any" if s == -1 else str(s) for s in shape]
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


cdef object _check_out(object out, int typenum, tuple shape):
    """Validate a caller-given output array: exact dtype and shape, C-contiguous, writable."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray or None, got {type(out).__name__}")
    dt = _dtype_of(typenum)
    if out.dtype != dt:
        raise TypeError(f"out must have dtype {dt.name}, got {out.dtype}")
    if out.shape != shape:
        raise ValueError(f"out must have shape {shape}, got {out.shape}")
    if not (out.flags.c_contiguous and out.flags.aligned):
        raise ValueError("out must be C-contiguous and aligned")
    if not out.flags.writeable:
        raise ValueError("out must be writable, got a read-only array")
    return out


@cython.final
cdef class _Memory:
    """A block of zeroed memory of fixed size and address (64-byte aligned).

    Owned by a state, batch, network or trainer, which keeps the C core's pointers into it.
    NumPy arrays over it (``_mem_array``) do not own their data, so ``resize`` refuses, and
    this object, their base, offers no way to move or free the memory from Python: it lives
    while any owner or array refers to it.
    """

    def __cinit__(self, size_t nbytes):
        # the raw allocator: thread-safe, and traced by tracemalloc like NumPy's buffers
        self.raw = PyMem_RawCalloc(nbytes + 64, 1)
        if self.raw == NULL:
            raise MemoryError(f"cannot allocate {nbytes} bytes")
        self.data = <char*>((<uintptr_t>self.raw + 63) & ~(<uintptr_t>63))
        self.nbytes = nbytes

    def __dealloc__(self):
        PyMem_RawFree(self.raw)
        self.raw = NULL
        self.data = NULL


cdef Py_ssize_t _itemsize(int typenum) except -1:
    if typenum == cnp.NPY_FLOAT64 or typenum == cnp.NPY_INT64:
        return 8
    if typenum == cnp.NPY_FLOAT32:
        return 4
    if typenum == cnp.NPY_UINT8:
        return 1
    raise TypeError(f"unsupported type number {typenum}")


cdef object _mem_array(_Memory mem, size_t offset, tuple shape, int typenum):
    """A C-contiguous ndarray of the given shape over mem.data + offset (bytes), its base mem.

    Each call makes a new array object (never a view of another array), so nothing done to
    one array object (shape, strides, __setstate__) reaches another or the owner's pointers."""
    cdef cnp.npy_intp dims[3]
    cdef int nd = len(shape), i
    cdef size_t nbytes = <size_t>_itemsize(typenum)
    if nd < 1 or nd > 3:
        raise RuntimeError("internal error: unsupported number of dimensions")
    for i in range(nd):
        dims[i] = shape[i]
        nbytes *= <size_t>dims[i]
    if offset > mem.nbytes or nbytes > mem.nbytes - offset:
        raise RuntimeError("internal error: an array outside its memory block")
    cdef cnp.ndarray a = cnp.PyArray_SimpleNewFromData(nd, dims, typenum, mem.data + offset)
    cnp.set_array_base(a, mem)
    return a


cdef tuple _block(list specs):
    """One zeroed _Memory for several arrays: specs [(shape, typenum)] -> (mem, offsets).

    Each array starts 64-byte aligned; sizes are computed with Python integers."""
    total = 0
    offsets = []
    for shape, tn in specs:
        nb = _itemsize(tn)
        for n in shape:
            nb *= n
        offsets.append(total)
        total += (nb + 63) // 64 * 64
    if total >= 2**62:
        raise MemoryError(f"cannot allocate {total} bytes")
    return _Memory(max(total, 1)), offsets


cdef inline bint _overlaps_at(object a, const void *p, size_t nbytes):
    """True when the memory of ndarray a (C-contiguous) intersects [p, p + nbytes)."""
    if a is None or p == NULL:
        return False
    cdef uintptr_t a0 = <uintptr_t>cnp.PyArray_DATA(<cnp.ndarray>a)
    cdef uintptr_t a1 = a0 + <uintptr_t>cnp.PyArray_NBYTES(<cnp.ndarray>a)
    cdef uintptr_t b0 = <uintptr_t>p
    return a0 < b0 + nbytes and b0 < a1


_UNINIT = ("this {what} was not initialised: {what} objects are made by {how}, not by "
           "{what}.__new__")


cdef inline int _state_ready(State s) except -1:
    if s.guard is None:
        raise RuntimeError(_UNINIT.format(what="State", how="net.new_state()"))
    return 0


cdef inline int _batch_ready(StateBatch b) except -1:
    if b.guard is None:
        raise RuntimeError(_UNINIT.format(what="StateBatch", how="net.new_states(n)"))
    return 0


cdef inline int _net_ready(_Network net) except -1:
    if net._pmem is None:
        raise RuntimeError("this network was not initialised (make it with streamrnn.LSTM, "
                           "GRU or RNN)")
    return 0


cdef object _status_error(int st, str context):
    if st == SRNN_ERR_NONFINITE_X:
        return ValueError(f"{context} must be finite, got NaN or inf")
    if st == SRNN_ERR_INDEX_RANGE:
        return ValueError(f"{context}: an index is out of range")
    if st == SRNN_ERR_INDEX_DUP:
        return ValueError(f"{context}: a stream index appears more than once")
    return RuntimeError(f"streamrnn core error {st} ({srnn_status_name(st).decode()}) in {context}")


# Long C loops (net.run, trainer.learn_many) run in chunks of whole steps: between chunks
# the GIL is taken back and pending signals are handled (PyErr_CheckSignals), so Ctrl-C
# raises KeyboardInterrupt at a step boundary, with the finished steps committed and the
# state, trainer and weights exactly as after that many sequential steps. A chunk is about
# _CHUNK_WORK parameter reads (a few milliseconds), at least one step.
cdef enum:
    _CHUNK_WORK = 4194304


cdef inline Py_ssize_t _chunk_steps(Py_ssize_t nparams) noexcept:
    cdef Py_ssize_t k = _CHUNK_WORK // (nparams if nparams > 0 else 1)
    return k if k > 0 else 1


cdef class _Guard:
    """Marks an object in use: a readers/writer counter without waiting (RELIABILITY.md,
    "One thread contract").

    ``busy``: 0 free, -1 one writer (a step of the state, a reset, a trainer call), n > 0
    readers (snapshots: copy, pickle, save). Set and cleared with the GIL held, so the
    check and the set cannot interleave; whoever conflicts raises RuntimeError at once.
    """
    def __cinit__(self):
        self.busy = 0

    def _enter(self, bint write, str what):
        """Python-level use (Forecaster): take the guard for reading or writing ``what``."""
        if write:
            if self.busy != 0:
                raise RuntimeError(f"{what} is being {'read' if self.busy > 0 else 'updated'} "
                                   f"by another thread; {_ONE_THREAD}")
            self.busy = -1
        else:
            if self.busy < 0:
                raise RuntimeError(f"{what} is being updated by another thread; "
                                   f"{_ONE_THREAD}")
            self.busy += 1

    def _exit(self, bint write):
        if write:
            self.busy = 0
        elif self.busy > 0:
            self.busy -= 1


_ONE_THREAD = ("to share objects between threads, take one lock around every call on "
               "them in every thread (networks, trainers and forecasters have a .lock for "
               "this; then calls wait instead of raising: RELIABILITY.md, 'One thread "
               "contract')")


cdef inline int _acquire(_Guard g) except -1:
    """Take a state's guard for a step, a reset or a trainer call (exclusive)."""
    if g.busy:
        raise RuntimeError("this state is being " + ("stepped" if g.busy < 0 else "copied")
                           + " by another thread; a State (or StateBatch) may be used by "
                           "one thread at a time; " + _ONE_THREAD)
    g.busy = -1
    return 0


cdef inline int _read_acquire(_Guard g) except -1:
    """Take a state's guard for a snapshot read (copy, pickle, save): shared with readers."""
    if g.busy < 0:
        raise RuntimeError("this state is being stepped by another thread; it cannot be "
                           "read (copied, pickled, saved) meanwhile; " + _ONE_THREAD)
    g.busy += 1
    return 0


cdef inline void _read_release(_Guard g) noexcept:
    g.busy -= 1


cdef str _state_desc(const srnn_dims *d, int typenum):
    return (f"cell={CELL_NAMES[d.cell]!r}, num_layers={d.num_layers}, "
            f"hidden_size={d.hidden_size}, dtype={_dtype_of(typenum).name}")


cdef State _new_state(const srnn_dims *d, int typenum, _Memory mem, size_t hoff,
                      Py_ssize_t coff, _Guard guard, object batch):
    """Build a State over h (and, coff >= 0, c) at byte offsets of mem (its own block, or
    its batch's), with a private step scratch."""
    cdef State s = State.__new__(State)
    shape = (d.num_layers, d.hidden_size)
    s.dims = d[0]
    s.typenum = typenum
    s._mem = mem
    s._h = _mem_array(mem, hoff, shape, typenum)
    s._c = _mem_array(mem, <size_t>coff, shape, typenum) if coff >= 0 else None
    cdef _Memory wmem = _block([((srnn_step_work(d),), typenum)])[0]
    s._wmem = wmem
    s._work = _mem_array(wmem, 0, (srnn_step_work(d),), typenum)
    s.guard = guard
    s._batch = batch
    s.hptr = mem.data + hoff
    s.cptr = mem.data + coff if coff >= 0 else NULL
    s.wptr = wmem.data
    return s


cdef State _zero_state(const srnn_dims *d, int typenum):
    """An independent zero State with its own memory block."""
    shape = (d.num_layers, d.hidden_size)
    lstm = srnn_has_c(d.cell)
    mem, offs = _block([(shape, typenum)] * (2 if lstm else 1))
    return _new_state(d, typenum, mem, offs[0], offs[1] if lstm else -1, _Guard(), None)


cdef int _state_dims(srnn_dims *d, object cell, object num_layers, object hidden_size) except -1:
    """Validate state sizes given from outside (unpickling): a known cell name and integer
    sizes the C core accepts; TypeError/ValueError otherwise."""
    if not isinstance(cell, str) or cell not in CELL_CODES:
        raise ValueError(f"cell must be one of {sorted(CELL_CODES)}, got {cell!r}")
    for name, v in (("num_layers", num_layers), ("hidden_size", hidden_size)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {type(v).__name__}")
        if v < 1 or v > 2**30:
            raise ValueError(f"{name} must be an integer in [1, 2**30], got {v}")
    d.cell = CELL_CODES[cell]
    d.num_layers = num_layers
    d.hidden_size = hidden_size
    d.input_size = 1
    d.output_size = 0
    if srnn_check_dims(d, 1) != SRNN_OK:
        raise ValueError(f"invalid state sizes: num_layers={num_layers}, "
                         f"hidden_size={hidden_size}")
    return 0


def _make_state(cell, num_layers, hidden_size, dtype, h=None, c=None):
    """A fresh State (zeros unless h/c are given; they are copied). Used by unpickling:
    every argument is validated (TypeError/ValueError), as sr.load does."""
    cdef srnn_dims d
    _state_dims(&d, cell, num_layers, hidden_size)
    cdef int typenum = _typenum_of(dtype)
    dt = _dtype_of(typenum)
    shape = (d.num_layers, d.hidden_size)
    hv = _checked_copy(h, "h", dt, shape) if h is not None else None
    cv = None
    if c is not None:
        if not srnn_has_c(d.cell):
            raise ValueError(f"c is only for LSTM states, got c for cell {cell!r}")
        cv = _checked_copy(c, "c", dt, shape)
    cdef State s = _zero_state(&d, typenum)
    if hv is not None:
        s._h[...] = hv
    if cv is not None:
        s._c[...] = cv
    return s


def _checked_copy(a, str name, dt, tuple shape):
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as e:
        raise TypeError(f"{name} must be an array of dtype {np.dtype(dt).name}, got "
                        f"{type(a).__name__} ({e})") from None
    if arr.dtype != dt:
        raise TypeError(f"{name} must have dtype {dt.name}, got {arr.dtype}")
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    return arr


@cython.final
cdef class State:
    """The recurrent state of one stream: ``h`` (num_layers, H) and, for LSTM, ``c``.

    Made by ``net.new_state()`` (zeros) or as a view ``batch[i]`` into a StateBatch, never
    by calling ``State()``. ``h`` and ``c`` are writable C-contiguous NumPy arrays of the
    network's dtype (float32 or float64); the network updates them in place. A state works
    with any network of the same cell kind, layer count, hidden size and dtype. One thread
    at a time may step a state; different states step in parallel threads. States pickle,
    ``copy.copy`` and ``copy.deepcopy`` (always to an independent state).

    Attributes
    ----------
    h : ndarray, shape (num_layers, hidden_size)
        Hidden state of every layer (``h[-1]`` is the top layer's).
    c : ndarray, shape (num_layers, hidden_size), or None
        LSTM cell state; None for RNN and GRU.
    cell : str
        'lstm', 'gru', 'rnn_tanh' or 'rnn_relu'.
    num_layers, hidden_size : int
        L and H.
    dtype : numpy.dtype
        float32 or float64.
    is_view : bool
        True for ``batch[i]``, which shares memory with its StateBatch.

    Raises
    ------
    TypeError
        ``State()`` called directly.
    RuntimeError
        A step or ``reset`` of this state while another thread steps, copies, pickles or
        saves it; a copy, pickle, save or ``h``/``c`` read while another thread steps it
        (readers share; see RELIABILITY.md, "One thread contract").

    See Also
    --------
    StateBatch : many streams' states together.

    Examples
    --------
    >>> import numpy as np, streamrnn as sr
    >>> net = sr.LSTM(2, 4, num_layers=2, seed=0)
    >>> s = net.new_state()
    >>> s.h.shape, s.c.shape, s.dtype
    ((2, 4), (2, 4), dtype('float32'))
    >>> y = net.step(np.ones(2, np.float32), s)   # s.h and s.c updated in place
    >>> saved = s.copy()
    >>> s.reset()
    >>> float(abs(s.h).sum()), bool(abs(saved.h).sum() > 0)
    (0.0, True)
    """

    def __init__(self, *args, **kwargs):
        raise TypeError("States are made by net.new_state() or net.new_states(n)")

    @property
    def h(self):
        """Hidden state, ndarray (num_layers, hidden_size), updated in place by steps.

        An array object over the state's memory, made on first access and kept (never the
        one the state uses itself): writable, but it does not own its data, so ``resize``
        raises, and nothing done to the array object moves the memory the state uses. Reading the
        property raises RuntimeError while another thread steps the state; use ``copy()``
        for a snapshot that later steps do not change."""
        _state_ready(self)
        _read_acquire(self.guard)
        _read_release(self.guard)
        if self._hpub is None:
            self._hpub = _mem_array(self._mem, <size_t>(<char*>self.hptr - self._mem.data),
                                    (self.dims.num_layers, self.dims.hidden_size),
                                    self.typenum)
        return self._hpub

    @property
    def c(self):
        """LSTM cell state, ndarray (num_layers, hidden_size); None for RNN and GRU (as h)."""
        _state_ready(self)
        _read_acquire(self.guard)
        _read_release(self.guard)
        if self.cptr == NULL:
            return None
        if self._cpub is None:
            self._cpub = _mem_array(self._mem, <size_t>(<char*>self.cptr - self._mem.data),
                                    (self.dims.num_layers, self.dims.hidden_size),
                                    self.typenum)
        return self._cpub

    @property
    def cell(self):
        """The cell kind: 'lstm', 'gru', 'rnn_tanh' or 'rnn_relu'."""
        _state_ready(self)
        return CELL_NAMES[self.dims.cell]

    @property
    def num_layers(self):
        """L, the number of stacked layers."""
        _state_ready(self)
        return self.dims.num_layers

    @property
    def hidden_size(self):
        """H, the length of each layer's h."""
        _state_ready(self)
        return self.dims.hidden_size

    @property
    def dtype(self):
        """The dtype of h and c: float32 or float64."""
        _state_ready(self)
        return _dtype_of(self.typenum)

    @property
    def is_view(self):
        """True when this state shares memory with a StateBatch (``batch[i]``)."""
        _state_ready(self)
        return self._batch is not None

    def reset(self):
        """Set h (and c) to zero in place."""
        _state_ready(self)
        _acquire(self.guard)
        self._h[...] = 0
        if self._c is not None:
            self._c[...] = 0
        self.guard.busy = 0

    def copy(self):
        """An independent State with copies of h and c (never a view).

        Raises RuntimeError while another thread steps the state (never a torn copy)."""
        _state_ready(self)
        _read_acquire(self.guard)
        try:
            return _make_state(self.cell, self.dims.num_layers, self.dims.hidden_size,
                               self.dtype, self._h, self._c)
        finally:
            _read_release(self.guard)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        _state_ready(self)
        _read_acquire(self.guard)
        try:
            return (_make_state, (self.cell, self.dims.num_layers, self.dims.hidden_size,
                                  self.dtype.name, self._h.copy(),
                                  None if self._c is None else self._c.copy()))
        finally:
            _read_release(self.guard)

    def __repr__(self):
        if self.guard is None:
            return "State(uninitialised)"
        view = ", view" if self._batch is not None else ""
        return f"State({_state_desc(&self.dims, self.typenum)}{view})"


def _make_batch(cell, num_layers, hidden_size, dtype, n, h=None, c=None):
    """A StateBatch of n zero streams (or copies of given h/c). Used by unpickling: every
    argument is validated (TypeError/ValueError), as sr.load does."""
    cdef srnn_dims d
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an integer >= 1, got {type(n).__name__}")
    if n < 1 or n > 2147483647:
        raise ValueError(f"n must be an integer in [1, 2147483647], got {n}")
    _state_dims(&d, cell, num_layers, hidden_size)
    cdef int typenum = _typenum_of(dtype)
    dt = _dtype_of(typenum)
    shape = (int(n), d.num_layers, d.hidden_size)
    hv = _checked_copy(h, "h", dt, shape) if h is not None else None
    cv = None
    if c is not None:
        if not srnn_has_c(d.cell):
            raise ValueError(f"c is only for LSTM states, got c for cell {cell!r}")
        cv = _checked_copy(c, "c", dt, shape)
    lstm = srnn_has_c(d.cell)
    nwork = srnn_many_work(&d, <size_t>n)
    # one block: h (n, L, H) | c (n, L, H), LSTM | step_many scratch | mark (n,) uint8
    specs = [(shape, typenum)] + ([(shape, typenum)] if lstm else []) + [
        ((nwork,), typenum), ((int(n),), cnp.NPY_UINT8)]
    mem, offs = _block(specs)
    ow, om = offs[len(offs) - 2], offs[len(offs) - 1]
    cdef _Memory m = mem
    cdef StateBatch b = StateBatch.__new__(StateBatch)
    b.dims = d
    b.typenum = typenum
    b.n = n
    b._mem = m
    b._h = _mem_array(m, offs[0], shape, typenum)
    b._c = _mem_array(m, offs[1], shape, typenum) if lstm else None
    b._work = _mem_array(m, ow, (nwork,), typenum)
    b._mark = _mem_array(m, om, (int(n),), cnp.NPY_UINT8)
    b.hptr = m.data + <size_t>offs[0]
    b.cptr = m.data + <size_t>offs[1] if lstm else NULL
    b.wptr = m.data + <size_t>ow
    b.mptr = <unsigned char*>(m.data + <size_t>om)
    if hv is not None:
        b._h[...] = hv
    if cv is not None:
        b._c[...] = cv
    b.guard = _Guard()
    return b


@cython.final
cdef class StateBatch:
    """The states of n independent streams, stored together: ``h`` (n, num_layers, H).

    Made by ``net.new_states(n)`` (zeros), never by calling ``StateBatch()``.
    ``batch[i]`` is a State *view* of stream i: it shares memory (and the one-thread-at-a-time
    guard) with the batch, so stepping it updates the batch. Use ``batch[i].copy()`` for an
    independent State. ``net.step_many(X, batch)`` steps all streams with matrix products.
    Batches pickle and copy (always to an independent batch).

    Attributes
    ----------
    h : ndarray, shape (n, num_layers, hidden_size)
        Hidden states, of the network's dtype (float32 or float64).
    c : ndarray, shape (n, num_layers, hidden_size), or None
        LSTM cell states; None for RNN and GRU.
    cell : str
        'lstm', 'gru', 'rnn_tanh' or 'rnn_relu'.
    num_layers, hidden_size : int
        L and H.
    dtype : numpy.dtype
        float32 or float64.

    Raises
    ------
    TypeError
        ``StateBatch()`` called directly; a non-integer stream index.
    IndexError
        ``batch[i]`` with i outside ``[-n, n)``.
    ValueError
        ``reset(index)`` with an index that is not 1-D distinct integers in ``[0, n)``.
    RuntimeError
        A step or reset of the batch (or one of its views) while another thread steps,
        copies or saves it; a copy, pickle, save or ``h``/``c`` read while another thread
        steps it.

    Examples
    --------
    >>> import numpy as np, streamrnn as sr
    >>> net = sr.GRU(3, 8, seed=0)
    >>> batch = net.new_states(5)
    >>> len(batch), batch.h.shape
    (5, (5, 1, 8))
    >>> Y = net.step_many(np.ones((5, 3), np.float32), batch)
    >>> Y.shape
    (5, 8)
    >>> bool(np.array_equal(batch[2].h, batch.h[2]))   # batch[2] is a view of stream 2
    True
    >>> batch.reset([0, 1])
    """

    def __init__(self, *args, **kwargs):
        raise TypeError("StateBatch objects are made by net.new_states(n)")

    @property
    def h(self):
        """Hidden states, ndarray (n, num_layers, hidden_size).

        An array object over the batch's memory, made on first access and kept (see
        State.h)."""
        _batch_ready(self)
        _read_acquire(self.guard)
        _read_release(self.guard)
        if self._hpub is None:
            self._hpub = _mem_array(self._mem, <size_t>(<char*>self.hptr - self._mem.data),
                                    (self.n, self.dims.num_layers, self.dims.hidden_size),
                                    self.typenum)
        return self._hpub

    @property
    def c(self):
        """LSTM cell states, ndarray (n, num_layers, hidden_size); None otherwise."""
        _batch_ready(self)
        _read_acquire(self.guard)
        _read_release(self.guard)
        if self.cptr == NULL:
            return None
        if self._cpub is None:
            self._cpub = _mem_array(self._mem, <size_t>(<char*>self.cptr - self._mem.data),
                                    (self.n, self.dims.num_layers, self.dims.hidden_size),
                                    self.typenum)
        return self._cpub

    @property
    def cell(self):
        """The cell kind: 'lstm', 'gru', 'rnn_tanh' or 'rnn_relu'."""
        _batch_ready(self)
        return CELL_NAMES[self.dims.cell]

    @property
    def num_layers(self):
        """L, the number of stacked layers."""
        _batch_ready(self)
        return self.dims.num_layers

    @property
    def hidden_size(self):
        """H, the length of each layer's h."""
        _batch_ready(self)
        return self.dims.hidden_size

    @property
    def dtype(self):
        """The dtype of h and c: float32 or float64."""
        _batch_ready(self)
        return _dtype_of(self.typenum)

    def __len__(self):
        _batch_ready(self)
        return self.n

    def __getitem__(self, i):
        """State view of stream i (negative i counts from the end)."""
        _batch_ready(self)
        if not isinstance(i, (int, np.integer)) or isinstance(i, (bool, np.bool_)):
            raise TypeError(f"stream index must be an integer, got {type(i).__name__}")
        cdef Py_ssize_t k = i
        if k < 0:
            k += self.n
        if k < 0 or k >= self.n:
            raise IndexError(f"stream index must be in [-{self.n}, {self.n}), got {i}")
        cdef size_t row = <size_t>k * <size_t>self.dims.num_layers * \
            <size_t>self.dims.hidden_size * <size_t>_itemsize(self.typenum)
        cdef size_t hoff = <size_t>(<char*>self.hptr - self._mem.data) + row
        cdef Py_ssize_t coff = -1
        if self.cptr != NULL:
            coff = <Py_ssize_t>(<size_t>(<char*>self.cptr - self._mem.data) + row)
        return _new_state(&self.dims, self.typenum, self._mem, hoff, coff, self.guard, self)

    def __iter__(self):
        _batch_ready(self)
        for i in range(self.n):
            yield self[i]

    def reset(self, index=None):
        """Zero every stream, or only the streams in ``index``."""
        _batch_ready(self)
        _acquire(self.guard)
        try:
            if index is None:
                self._h[...] = 0
                if self._c is not None:
                    self._c[...] = 0
            else:
                idx = _as_index(index, self.n)
                self._h[idx] = 0
                if self._c is not None:
                    self._c[idx] = 0
        finally:
            self.guard.busy = 0

    def copy(self):
        """An independent StateBatch with copies of every stream (RuntimeError while
        another thread steps the batch or one of its views)."""
        _batch_ready(self)
        _read_acquire(self.guard)
        try:
            return _make_batch(self.cell, self.dims.num_layers, self.dims.hidden_size,
                               self.dtype, self.n, self._h, self._c)
        finally:
            _read_release(self.guard)

    def __copy__(self):
        return self.copy()

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        _batch_ready(self)
        _read_acquire(self.guard)
        try:
            return (_make_batch, (self.cell, self.dims.num_layers, self.dims.hidden_size,
                                  self.dtype.name, self.n, self._h.copy(),
                                  None if self._c is None else self._c.copy()))
        finally:
            _read_release(self.guard)

    def __repr__(self):
        if self.guard is None:
            return "StateBatch(uninitialised)"
        return f"StateBatch(n={self.n}, {_state_desc(&self.dims, self.typenum)})"


def _as_index(index, Py_ssize_t n):
    """Validate a stream index array: 1-D integers in [0, n), no repeats -> int64 array."""
    if isinstance(index, np.ndarray):
        idx = index
    else:
        try:
            idx = np.asarray(index)
        except (ValueError, TypeError):
            raise TypeError(f"index must be a 1-D array of integers, got "
                            f"{type(index).__name__}") from None
    if idx.dtype.kind not in "iu" or idx.dtype == np.bool_:
        if not (idx.dtype.kind == "f" and idx.size == 0):
            raise TypeError(f"index must hold integers, got dtype {idx.dtype}")
    if idx.ndim != 1:
        raise ValueError(f"index must be 1-D, got shape {idx.shape}")
    idx = np.ascontiguousarray(idx, dtype=np.int64)
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= n:
            raise ValueError(f"index values must be in [0, {n}), got values in [{lo}, {hi}]")
        if np.unique(idx).size != idx.size:
            raise ValueError("index must not repeat a stream in one step")
    return idx


_BIDIR = ("{what} needs a unidirectional network: a bidirectional network reads the future "
          "(its backward direction runs over the whole window), so it cannot step one sample "
          "at a time; use net.run(X) on whole windows and streamrnn.SequenceTrainer to train it")

_WRITING = ("the network's weights are being replaced or updated by a trainer in another "
            "thread; a network may be trained (or loaded) or stepped, not both at once")


cdef class _Network:
    """Compiled part of every network: sizes, BLAS table, flat parameters, the step loops.

    Public classes (streamrnn.LSTM/GRU/RNN) are pure Python subclasses.
    """

    def __cinit__(self, *args, **kwargs):
        _fill_blas(&self.blas)
        self.inflight = 0
        self.nparams = 0
        self.ndir = 1
        self._params = None
        self._pmem = None

    def _init_core(self, str cell, int input_size, int hidden_size, int num_layers,
                   int output_size, dtype, int num_directions=1):
        """Allocate the flat parameter buffer (zeros). Called once by __init__.

        num_directions 2: a bidirectional network (whole windows only, see ``run``)."""
        if self._params is not None:
            raise RuntimeError("network already initialised")
        cdef srnn_dims d
        d.cell = CELL_CODES[cell]
        d.input_size = input_size
        d.hidden_size = hidden_size
        d.num_layers = num_layers
        d.output_size = output_size
        st = srnn_check_dims(&d, num_directions)
        if st != SRNN_OK:
            raise ValueError(f"invalid network sizes (input_size={input_size}, "
                             f"hidden_size={hidden_size}, num_layers={num_layers}, "
                             f"output_size={output_size}): {srnn_status_name(st).decode()}")
        self.typenum = _typenum_of(dtype)
        self.dims = d
        self.ndir = num_directions
        self.nparams = srnn_num_params(&d, num_directions)
        self.out_size = srnn_out_size(&d, num_directions)
        mem, _ = _block([((self.nparams,), self.typenum)])
        self._params = _mem_array(mem, 0, (self.nparams,), self.typenum)
        self._pmem = mem
        self.pptr = self._pmem.data

    def parameters(self):
        """All parameters as one flat writable 1-D view (PyTorch's parameters() order).

        An array object over the network's parameter memory (made once, never the one the
        network uses itself): it does not own its data, so ``resize`` raises (the C core
        keeps a pointer to that memory)."""
        _net_ready(self)
        if self._ppub is None:
            self._ppub = _mem_array(self._pmem, 0, (self.nparams,), self.typenum)
        return self._ppub

    def _load_flat(self, params):
        """Copy a flat parameter array (exact dtype and shape) into the parameters: the
        rebuild path of pickles and copies, validated like sr.load's sizes and dtype."""
        _net_ready(self)
        dt = _dtype_of(self.typenum)
        if not isinstance(params, np.ndarray):
            raise TypeError(f"params must be a numpy.ndarray, got {type(params).__name__}")
        if params.dtype != dt:
            raise TypeError(f"params must have dtype {dt.name}, got {params.dtype}")
        if params.shape != (self.nparams,):
            raise ValueError(f"params must have shape ({self.nparams},), got {params.shape}")
        self._begin_write()
        try:
            self._params[...] = params
        finally:
            self._end_write()

    def _layer_offset(self, int layer, int direction=0):
        return srnn_layer_offset(&self.dims, self.ndir, layer, direction)

    @property
    def num_directions(self):
        """2 for a bidirectional network, else 1."""
        return self.ndir

    cdef int _uni(self, str what) except -1:
        if self.ndir != 1:
            raise ValueError(_BIDIR.format(what=what))
        return 0

    def _begin_write(self):
        """Called before parameters are replaced: refuses while a step runs without the GIL."""
        if self.inflight != 0:
            raise RuntimeError("the network's parameters cannot be replaced while another "
                               "thread is stepping it or reading them (state_dict, copy, "
                               "pickle, save) or a trainer updates them")
        self.inflight = -1

    def _end_write(self):
        self.inflight = 0

    def _begin_read(self):
        """Called before a snapshot of the parameters (state_dict, copy, pickle, save): a
        reader like a step; refuses while a trainer or load_state_dict writes them."""
        if self.inflight < 0:
            raise RuntimeError("the network's weights are being replaced or updated by a "
                               "trainer in another thread; they cannot be read (state_dict, "
                               "copy, pickle, save) meanwhile; " + _ONE_THREAD)
        self.inflight += 1

    def _end_read(self):
        self.inflight -= 1

    cdef int _fits(self, State s) except -1:
        """Both made by their constructors, and s a state of this network's cell kind, layer
        count, hidden size and dtype (ValueError naming both otherwise)."""
        _net_ready(self)
        _state_ready(s)
        if (s.dims.cell != self.dims.cell or s.dims.num_layers != self.dims.num_layers
                or s.dims.hidden_size != self.dims.hidden_size or s.typenum != self.typenum):
            raise ValueError(f"state does not fit this network: expected a state with "
                             f"{_state_desc(&self.dims, self.typenum)}, got {s!r}")
        return 0

    cdef int _enter_read(self, State s) except -1:
        """Like _enter, but the state is only read (predict_one): shared with snapshots."""
        self._fits(s)
        if self.inflight < 0:
            raise RuntimeError(_WRITING)
        _read_acquire(s.guard)
        self.inflight += 1
        return 0

    cdef void _leave_read(self, _Guard g) noexcept:
        _read_release(g)
        self.inflight -= 1

    def _gated(self, bint on):
        """Test hook: route this network's gemv/gemm/ger through the test gate (_gate_arm).

        (Small layers use the core's own kernels, not gemv: a gated step needs a layer with
        G*H*(D+H) > SRNN_OWN_GEMV_MAX; step_many with >= 8 rows uses gemm; a trainer update
        with a head uses ger.)"""
        if on:
            self.blas.sgemv = <srnn_sgemv_t>_gated_sgemv
            self.blas.dgemv = <srnn_dgemv_t>_gated_dgemv
            self.blas.sgemm = <srnn_sgemm_t>_gated_sgemm
            self.blas.dgemm = <srnn_dgemm_t>_gated_dgemm
            self.blas.sger = <srnn_sger_t>_gated_sger
            self.blas.dger = <srnn_dger_t>_gated_dger
        else:
            _fill_blas(&self.blas)

    cdef int _enter(self, State s) except -1:
        self._fits(s)
        if self.inflight < 0:
            raise RuntimeError(_WRITING)
        _acquire(s.guard)
        self.inflight += 1
        return 0

    cdef void _leave(self, _Guard g) noexcept:
        g.busy = 0
        self.inflight -= 1

    cdef int _enter_write(self, State s) except -1:
        """Like _enter, but exclusive: for trainer calls, which may update the weights.

        Weights follow a readers/writer rule without waiting: steps are readers (inflight
        > 0), a trainer call is the one writer (inflight == -1). A writer that finds readers,
        or a reader that finds the writer, raises RuntimeError; nobody ever reads
        half-updated weights.
        """
        self._fits(s)
        if self.inflight < 0:
            raise RuntimeError(_WRITING)
        if self.inflight > 0:
            raise RuntimeError("a trainer cannot update the network's weights while another "
                               "thread is stepping the network or reading its weights (a "
                               "copy, pickle or save); " + _ONE_THREAD)
        _acquire(s.guard)
        self.inflight = -1
        return 0

    cdef void _leave_write(self, _Guard g) noexcept:
        g.busy = 0
        self.inflight = 0

    def step(self, x, State state not None, out=None):
        """One timestep: update ``state`` in place and return the output.

        Parameters
        ----------
        x : ndarray, shape (input_size,), or a sequence of numbers
            The input; a NumPy array must have the network's dtype (no silent cast), a
            sequence is converted. Must be finite.
        state : State
            A state fitting this network (cell, layers, hidden size, dtype); updated in place.
        out : ndarray, shape (output_size,) or (hidden_size,), optional
            C-contiguous, writable, of the network's dtype: the result is written there and
            nothing is allocated.

        Returns
        -------
        ndarray, shape (output_size,) with a head, else (hidden_size,)
            The head's output, or the new top-layer h (a copy, or ``out``).

        Raises
        ------
        TypeError
            ``x`` or ``out`` of the wrong dtype or type.
        ValueError
            A wrong shape, a non-finite ``x``, a state that does not fit this network, or an
            ``out`` sharing memory with ``x``, the state or the parameters. Nothing changes then.
        RuntimeError
            ``state`` is being stepped by another thread.

        Examples
        --------
        >>> import numpy as np, streamrnn as sr
        >>> net = sr.RNN(2, 3, output_size=1, seed=0)
        >>> s = net.new_state()
        >>> y = net.step(np.array([0.5, -1.0], np.float32), s)
        >>> y.shape, y.dtype
        ((1,), dtype('float32'))
        >>> out = np.empty(1, np.float32)
        >>> net.step([0.0, 1.0], s, out=out) is out
        True
        """
        cdef int st
        cdef cnp.npy_intp osz = self.out_size
        _net_ready(self)
        _state_ready(state)
        if self.ndir != 1:
            self._uni("step()")
        if not _is_exact_vec(x, self.typenum, self.dims.input_size):
            x = _as_input(x, "x", _dtype_of(self.typenum), (self.dims.input_size,))
        if out is None:
            out = cnp.PyArray_EMPTY(1, &osz, self.typenum, 0)
        else:
            if not _is_exact_out(out, self.typenum, osz):
                _check_out(out, self.typenum, (self.out_size,))
            if _overlaps(out, x) or self._out_hits_state(out, state):
                raise ValueError("out must not share memory with x, the parameters or the "
                                 "state")
        self._enter(state)
        cdef void *xp = _ptr(x)
        cdef void *yp = _ptr(out)
        if self.typenum == cnp.NPY_FLOAT32:
            with nogil:
                st = srnn_step_f32(&self.blas, &self.dims, <float*>self.pptr, <float*>xp,
                                   <float*>state.hptr, <float*>state.cptr, <float*>yp,
                                   <float*>state.wptr)
        else:
            with nogil:
                st = srnn_step_f64(&self.blas, &self.dims, <double*>self.pptr, <double*>xp,
                                   <double*>state.hptr, <double*>state.cptr, <double*>yp,
                                   <double*>state.wptr)
        self._leave(state.guard)
        if st != SRNN_OK:
            raise _status_error(st, "x")
        return out

    cdef bint _out_hits_state(self, object out, State s):
        """out intersects the parameters or the state's h/c (by the C core's pointers)."""
        cdef size_t isz = <size_t>_itemsize(self.typenum)
        cdef size_t lh = <size_t>s.dims.num_layers * <size_t>s.dims.hidden_size * isz
        return (_overlaps_at(out, self.pptr, <size_t>self.nparams * isz)
                or _overlaps_at(out, s.hptr, lh) or _overlaps_at(out, s.cptr, lh))

    def run(self, X, State state=None, out=None):
        """T timesteps: X (T, input_size) -> (T, output_size or hidden_size).

        Exactly T ``step`` calls, run in C without the GIL. X is checked finite before the
        first step, so a bad X leaves the state unchanged. Ctrl-C (KeyboardInterrupt) stops
        it between chunks of whole steps: the state is then exactly as after the steps done,
        whose rows of ``out`` are written (see RELIABILITY.md).

        A bidirectional network runs ``run(X)`` without a state, over X as one whole window
        from zero states: X (T, input_size) -> (T, output_size or 2*hidden_size), each row
        the head of [forward h_t | backward h_t] of the top layer.

        Parameters
        ----------
        X : ndarray, shape (T, input_size), or nested sequences
            The inputs, one row per step, of the network's dtype (sequences are converted).
        state : State or None
            A state fitting this network; updated in place (ends as after the last step).
            None (and only None) for a bidirectional network. None for a unidirectional
            network: a fresh zero state, not kept (as PyTorch's ``h0=None``).
        out : ndarray, shape (T, output_size or hidden_size), optional
            C-contiguous, writable, of the network's dtype.

        Returns
        -------
        ndarray, shape (T, output_size or hidden_size)
            Row t is what ``step(X[t], state)`` returns.

        Raises
        ------
        TypeError, ValueError, RuntimeError
            As :meth:`step` (checked before the first step; nothing changes then); a
            state given to a bidirectional network.
        KeyboardInterrupt
            Ctrl-C, between whole steps.

        Examples
        --------
        >>> import numpy as np, streamrnn as sr
        >>> net = sr.LSTM(1, 4, output_size=1, seed=0)
        >>> X = np.linspace(0, 1, 6, dtype=np.float32).reshape(6, 1)
        >>> s1, s2 = net.new_state(), net.new_state()
        >>> Y = net.run(X, s1)
        >>> Y.shape
        (6, 1)
        >>> bool(np.allclose(Y[-1], [net.step(x, s2) for x in X][-1]))
        True
        """
        cdef int st
        _net_ready(self)
        if self.ndir != 1:
            if state is not None:
                raise ValueError(_BIDIR.format(what="run() with a state") + "; call run(X)")
            return self._run_window(X, out)
        if state is None:
            state = self.new_state()    # like torch: no state means zeros (not kept)
        _state_ready(state)
        if not _is_exact_mat(X, self.typenum, -1, self.dims.input_size):
            X = _as_input(X, "X", _dtype_of(self.typenum), (-1, self.dims.input_size))
        cdef Py_ssize_t T = X.shape[0]
        shape = (T, self.out_size)
        if out is None:
            out = np.empty(shape, dtype=_dtype_of(self.typenum))
        else:
            _check_out(out, self.typenum, shape)
            if _overlaps(out, X) or self._out_hits_state(out, state):
                raise ValueError("out must not share memory with X, the parameters or the "
                                 "state")
        cdef Py_ssize_t chunk = _chunk_steps(self.nparams)
        if T > chunk and not np.isfinite(X).all():
            # the C call checks each chunk; check all of X first so nothing is stepped
            raise _status_error(SRNN_ERR_NONFINITE_X, "X")
        self._enter(state)
        cdef char *xp = <char*>_ptr(X)
        cdef char *yp = <char*>_ptr(out)
        cdef size_t ldx = self.dims.input_size, ldy = self.out_size
        cdef size_t isz = cnp.PyArray_ITEMSIZE(<cnp.ndarray>X)
        cdef Py_ssize_t done = 0, n
        st = SRNN_OK
        try:
            # chunks of whole steps; signals (Ctrl-C) are handled between chunks
            while done < T and st == SRNN_OK:
                if done:
                    PyErr_CheckSignals()
                n = min(chunk, T - done)
                if self.typenum == cnp.NPY_FLOAT32:
                    with nogil:
                        st = srnn_run_f32(&self.blas, &self.dims, <float*>self.pptr, n,
                                          <float*>(xp + done * ldx * isz), ldx,
                                          <float*>state.hptr, <float*>state.cptr,
                                          <float*>(yp + done * ldy * isz), ldy,
                                          <float*>state.wptr)
                else:
                    with nogil:
                        st = srnn_run_f64(&self.blas, &self.dims, <double*>self.pptr, n,
                                          <double*>(xp + done * ldx * isz), ldx,
                                          <double*>state.hptr, <double*>state.cptr,
                                          <double*>(yp + done * ldy * isz), ldy,
                                          <double*>state.wptr)
                done += n
        finally:
            self._leave(state.guard)
        if st != SRNN_OK:
            raise _status_error(st, "X")
        return out

    def _run_window(self, X, out):
        """Whole-window forward of a bidirectional network (see run)."""
        cdef int st
        dt = _dtype_of(self.typenum)
        X = _as_input(X, "X", dt, (-1, self.dims.input_size))
        cdef size_t T = X.shape[0]
        shape = (X.shape[0], self.out_size)
        if out is None:
            out = np.empty(shape, dtype=dt)
        else:
            _check_out(out, self.typenum, shape)
            if _overlaps(out, X) or _overlaps_at(out, self.pptr, <size_t>self.nparams
                                                  * <size_t>_itemsize(self.typenum)):
                raise ValueError("out must not share memory with X or the parameters")
        if T == 0:
            return out
        if not np.isfinite(X).all():
            raise _status_error(SRNN_ERR_NONFINITE_X, "X")
        work = np.empty(srnn_seq_work(&self.dims, self.ndir, T), dtype=dt)
        if self.inflight < 0:
            raise RuntimeError(_WRITING)
        self.inflight += 1
        cdef void *xp = _ptr(X)
        cdef void *yp = _ptr(out)
        cdef void *wp = _ptr(work)
        cdef int nd = self.ndir
        try:
            if self.typenum == cnp.NPY_FLOAT32:
                with nogil:
                    st = srnn_seq_forward_f32(&self.blas, &self.dims, nd, <float*>self.pptr, T,
                                              <float*>xp, NULL, NULL, 0, <float*>yp, NULL,
                                              NULL, <float*>wp)
            else:
                with nogil:
                    st = srnn_seq_forward_f64(&self.blas, &self.dims, nd, <double*>self.pptr,
                                              T, <double*>xp, NULL, NULL, 0, <double*>yp,
                                              NULL, NULL, <double*>wp)
        finally:
            self.inflight -= 1
        if st != SRNN_OK:
            raise _status_error(st, "X")
        return out

    def new_state(self):
        """A zero State for this network: ``h`` (num_layers, H) and, for LSTM, ``c``.

        Returns
        -------
        State
            Independent (owns its arrays), of the network's dtype.

        Raises
        ------
        ValueError
            On a bidirectional network (it runs whole windows, see :meth:`run`).

        Examples
        --------
        >>> import numpy as np, streamrnn as sr
        >>> sr.LSTM(2, 5, num_layers=3).new_state().h.shape
        (3, 5)
        """
        _net_ready(self)
        self._uni("new_state()")
        return _zero_state(&self.dims, self.typenum)

    def new_states(self, n):
        """A StateBatch of n zero streams; ``batch[i]`` is a State view of stream i.

        Parameters
        ----------
        n : int >= 1
            Number of streams.

        Returns
        -------
        StateBatch
            ``h`` (n, num_layers, H) zeros (and ``c`` for LSTM), of the network's dtype.

        Raises
        ------
        TypeError, ValueError
            ``n`` not an integer >= 1 (or beyond 2**31 - 1); ValueError on a bidirectional
            network.

        Examples
        --------
        >>> import numpy as np, streamrnn as sr
        >>> sr.GRU(2, 5).new_states(100).h.shape
        (100, 1, 5)
        """
        _net_ready(self)
        self._uni("new_states()")
        if not isinstance(n, (int, np.integer)) or isinstance(n, (bool, np.bool_)):
            raise TypeError(f"n must be an integer >= 1, got {type(n).__name__}")
        if n > 2147483647:
            raise ValueError(f"n must be an integer <= 2147483647, got {n}")
        return _make_batch(CELL_NAMES[self.dims.cell], self.dims.num_layers,
                           self.dims.hidden_size, _dtype_of(self.typenum), n)

    def step_many(self, X, StateBatch states not None, index=None, out=None):
        """One timestep for many streams: X (m, input_size) -> (m, output_size or H).

        Without ``index``, m == len(states) and row i steps stream i. With ``index`` (m,)
        of distinct stream numbers, row i steps stream index[i]; other streams are untouched.
        The same numbers as m ``step`` calls, computed with matrix-matrix products.

        Parameters
        ----------
        X : ndarray, shape (m, input_size)
            One input row per stepped stream, of the network's dtype.
        states : StateBatch
            A batch fitting this network; the stepped streams are updated in place.
        index : array of int, shape (m,), optional
            Distinct stream numbers in ``[0, len(states))``: only these streams step.
        out : ndarray, shape (m, output_size or hidden_size), optional
            C-contiguous, writable, of the network's dtype.

        Returns
        -------
        ndarray, shape (m, output_size or hidden_size)
            Row i is the output of the stream stepped with ``X[i]``.

        Raises
        ------
        TypeError, ValueError
            Wrong shapes or dtypes, non-finite X, an invalid or repeated index, a batch
            that does not fit this network, an ``out`` sharing memory with X, index, the
            parameters or the states. Nothing changes then.
        RuntimeError
            The batch is being stepped by another thread.

        Examples
        --------
        >>> import numpy as np, streamrnn as sr
        >>> net = sr.LSTM(2, 4, output_size=1, seed=0)
        >>> batch = net.new_states(10)
        >>> net.step_many(np.ones((10, 2), np.float32), batch).shape
        (10, 1)
        >>> net.step_many(np.ones((2, 2), np.float32), batch, index=[7, 3]).shape
        (2, 1)
        """
        cdef int st
        cdef Py_ssize_t m
        cdef int64_t *ip = NULL
        cdef StateBatch b = states
        _net_ready(self)
        _batch_ready(b)
        self._uni("step_many()")
        if (b.dims.cell != self.dims.cell or b.dims.num_layers != self.dims.num_layers
                or b.dims.hidden_size != self.dims.hidden_size or b.typenum != self.typenum):
            raise ValueError(f"states do not fit this network: expected states with "
                             f"{_state_desc(&self.dims, self.typenum)}, got {b!r}")
        if index is None:
            if not _is_exact_mat(X, self.typenum, b.n, self.dims.input_size):
                X = _as_input(X, "X", _dtype_of(self.typenum), (b.n, self.dims.input_size))
            m = b.n
            idx = None
        else:
            # a private copy: the C core reads index while it writes the states and out, so
            # it must not alias them, nor change under it from another thread
            idx = np.array(_as_index(index, b.n), dtype=np.int64, copy=True)
            m = idx.shape[0]
            if not _is_exact_mat(X, self.typenum, m, self.dims.input_size):
                X = _as_input(X, "X", _dtype_of(self.typenum), (m, self.dims.input_size))
            ip = <int64_t*>_ptr(idx)
        shape = (m, self.out_size)
        if out is None:
            out = np.empty(shape, dtype=_dtype_of(self.typenum))
        else:
            if not (_is_exact_mat(out, self.typenum, m, self.out_size)
                    and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out)):
                _check_out(out, self.typenum, shape)
            if (_overlaps(out, X) or (isinstance(index, np.ndarray) and np.may_share_memory(out, index))
                    or _overlaps_at(out, self.pptr, <size_t>self.nparams
                                    * <size_t>_itemsize(self.typenum))
                    or _overlaps_at(out, b._mem.data, b._mem.nbytes)):
                raise ValueError("out must not share memory with X, index, the parameters "
                                 "or the states")
        if self.inflight < 0:
            raise RuntimeError(_WRITING)
        _acquire(b.guard)
        self.inflight += 1
        cdef void *xp = _ptr(X)
        cdef void *yp = _ptr(out)
        cdef void *hp = b.hptr
        cdef void *cp = b.cptr
        cdef void *wp = b.wptr
        cdef unsigned char *mp = b.mptr
        cdef size_t nn = b.n, mm = m
        if self.typenum == cnp.NPY_FLOAT32:
            with nogil:
                st = srnn_step_many_f32(&self.blas, &self.dims, <float*>self.pptr, nn, mm,
                                        <float*>xp, ip, <float*>hp, <float*>cp, <float*>yp,
                                        <float*>wp, mp)
        else:
            with nogil:
                st = srnn_step_many_f64(&self.blas, &self.dims, <double*>self.pptr, nn, mm,
                                        <double*>xp, ip, <double*>hp, <double*>cp,
                                        <double*>yp, <double*>wp, mp)
        self._leave(b.guard)
        if st != SRNN_OK:
            raise _status_error(st, "X" if st == SRNN_ERR_NONFINITE_X else "index")
        return out


_TRAINER_COUNTERS = ("steps", "since_update", "filled", "head", "updates", "skipped",
                     "opt_steps", "loss_count", "loss_sum", "last_loss", "last_grad_norm",
                     "pending")

_COUNTER_GETTERS = tuple((name, sys.intern("_c_" + name)) for name in _TRAINER_COUNTERS)

_CONFIG_ERROR = "invalid trainer settings"


cdef inline int _counters_readable(_Trainer tr) except -1:
    """The counters are read only when no trainer call runs (they move during one)."""
    if tr._state is not None and tr._state.guard.busy < 0:
        raise RuntimeError("this trainer is being used by another thread; its counters "
                           "cannot be read meanwhile; " + _ONE_THREAD)
    return 0


cdef inline int _ready(_Trainer tr) except -1:
    if tr._net is None:
        raise RuntimeError("this trainer was not initialised (make it with "
                           "streamrnn.OnlineTrainer(net, ...))")
    return 0


cdef srnn_trainer _new_trainer(int loss, int opt, double lr, double momentum, bint nesterov,
                               double weight_decay, double beta1, double beta2, double eps,
                               double alpha, int k1, int k2, double clip_value,
                               double clip_norm):
    """A reset trainer struct with these settings and zero counters (checked by the caller
    with srnn_train_check against its network's dims)."""
    cdef srnn_trainer t
    t.loss = loss
    t.opt = opt
    t.lr = lr
    t.momentum = momentum
    t.nesterov = nesterov
    t.weight_decay = weight_decay
    t.beta1 = beta1
    t.beta2 = beta2
    t.eps = eps
    t.alpha = alpha
    t.k1 = k1
    t.k2 = k2
    t.clip_value = clip_value
    t.clip_norm = clip_norm
    t.updates = 0
    t.skipped = 0
    t.opt_steps = 0
    t.last_loss = float("nan")
    t.last_grad_norm = float("nan")
    t.pending = 0
    srnn_train_reset(&t)
    return t


cdef object _snap_get(dict d, str key, str what):
    try:
        return d[key]
    except KeyError:
        raise ValueError(f"{what} is missing {key!r}") from None


cdef int64_t _snap_int(dict counters, str name) except? -1:
    v = _snap_get(counters, name, "trainer snapshot counters")
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"trainer counter {name!r} must be an integer, got {type(v).__name__}")
    # counters count steps and updates: a trainer reaches at most 2**53 of them in
    # practice (centuries at a million steps per second); larger values can only come from
    # a crafted snapshot or file, and would let the C core's own bound (2**62, below which
    # increments cannot overflow) refuse a later step instead of the load
    if v < -2**63 or v > 2**53:
        raise ValueError(f"trainer counter {name!r} is out of range: {v} (at most 2**53)")
    return v


cdef double _snap_float(dict counters, str name) except? -1:
    v = _snap_get(counters, name, "trainer snapshot counters")
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer,
                                                            np.floating)):
        raise TypeError(f"trainer counter {name!r} must be a number, got {type(v).__name__}")
    try:
        return float(v)
    except OverflowError:
        raise ValueError(f"trainer counter {name!r} is out of range: {v}") from None


cdef class _Trainer:
    """Compiled part of OnlineTrainer: the C trainer struct and every buffer it needs.

    Buffers (all allocated once, here): ring (k2, record) of recorded activations, tags (k2,),
    gradient (P,), optimizer moments m1, m2 (P,), scratch. The public class is pure Python.
    """

    def __cinit__(self, *args, **kwargs):
        self._net = None

    def _init_trainer(self, _Network net not None, int loss, int opt, double lr,
                      double momentum, bint nesterov, double weight_decay, double beta1,
                      double beta2, double eps, double alpha, int k1, int k2,
                      double clip_value, double clip_norm):
        if self._net is not None:
            raise RuntimeError("trainer already initialised")
        _net_ready(net)
        if net.ndir != 1:
            raise ValueError(_BIDIR.format(what="OnlineTrainer"))
        cdef srnn_trainer t = _new_trainer(loss, opt, lr, momentum, nesterov, weight_decay,
                                           beta1, beta2, eps, alpha, k1, k2, clip_value,
                                           clip_norm)
        st = srnn_train_check(&net.dims, &t)
        if st != SRNN_OK:
            raise ValueError(f"{_CONFIG_ERROR}: {srnn_status_name(st).decode()}")
        dt = _dtype_of(net.typenum)
        self.t = t
        self._net = net
        self._state = net.new_state()
        self.out_size = net.out_size
        cdef int tn = net.typenum
        cdef Py_ssize_t P = net.nparams
        specs = [((k2, srnn_record_size(&net.dims)), tn), ((k2,), cnp.NPY_INT64),
                 ((3 * P,), tn), ((P,), tn), ((P,), tn), ((srnn_train_work(&net.dims, k2),), tn),
                 ((self.out_size,), tn), ((1,), cnp.NPY_INT64)]
        mem, offs = _block(specs)
        # every buffer lives in one fixed block the trainer holds: the addresses the C core
        # uses never move, whatever happens to the array objects over them
        self._mem = mem
        self._ring, self._tags, self._grad, self._m1, self._m2, self._work, self._ybuf, \
            self._cbuf = [_mem_array(mem, o, sh, k) for (sh, k), o in zip(specs, offs)]
        self._tags[...] = -1
        self.ring_p = self._mem.data + <size_t>offs[0]
        self.tags_p = <int64_t*>(self._mem.data + <size_t>offs[1])
        self.grad_p = self._mem.data + <size_t>offs[2]
        self.m1_p = self._mem.data + <size_t>offs[3]
        self.m2_p = self._mem.data + <size_t>offs[4]
        self.work_p = self._mem.data + <size_t>offs[5]

    @property
    def state(self):
        """The trainer's own stream state (a State; stepped by learn_one)."""
        return self._state

    def _stats(self):
        # interned getter names: a fresh "_c_" + name string per call would sit in the
        # type attribute cache (bounded, but it shows up as allocation growth in leak checks)
        return {name: getattr(self, attr)() for name, attr in _COUNTER_GETTERS}

    def _c_steps(self): _counters_readable(self); return self.t.steps
    def _c_since_update(self): _counters_readable(self); return self.t.since_update
    def _c_filled(self): _counters_readable(self); return self.t.filled
    def _c_head(self): _counters_readable(self); return self.t.head
    def _c_updates(self): _counters_readable(self); return self.t.updates
    def _c_skipped(self): _counters_readable(self); return self.t.skipped
    def _c_opt_steps(self): _counters_readable(self); return self.t.opt_steps
    def _c_loss_count(self): _counters_readable(self); return self.t.loss_count
    def _c_loss_sum(self): _counters_readable(self); return self.t.loss_sum
    def _c_last_loss(self): _counters_readable(self); return self.t.last_loss
    def _c_last_grad_norm(self): _counters_readable(self); return self.t.last_grad_norm
    def _c_pending(self): _counters_readable(self); return self.t.pending

    cdef object _target_row(self, y):
        """The mse target of one step as a (OUT,) array (NaN row for None)."""
        if y is None:
            self._ybuf[...] = np.nan
            return self._ybuf
        if _is_exact_vec(y, self._net.typenum, self.out_size):
            return y
        return _as_input(y, "y", _dtype_of(self._net.typenum), (self.out_size,))

    cdef int64_t _class_of(self, y) except -2:
        if y is None:
            return -1
        if isinstance(y, (bool, np.bool_)):
            raise TypeError(f"y must be a class index (int) or None, got {type(y).__name__}")
        if isinstance(y, (int, np.integer)):
            if y < 0 or y >= self.out_size:
                raise ValueError(f"y must be a class index in [0, {self.out_size}), got {y}")
            return y
        if isinstance(y, (float, np.floating)) and y != y:
            return -1
        raise TypeError(f"y must be a class index (int), None or NaN, got "
                        f"{type(y).__name__} {y!r}")

    cdef int _run(self, Py_ssize_t T, object X, object Yt, object cls, object out,
                  str xname) except -1:
        cdef _Network net = self._net
        cdef State s = self._state
        cdef int st = SRNN_OK
        cdef Py_ssize_t chunk = _chunk_steps(3 * net.nparams)
        if T > chunk:
            # the C call validates each chunk; validate all first so an error changes nothing
            if not np.isfinite(X).all():
                raise _status_error(SRNN_ERR_NONFINITE_X, xname)
            if Yt is not None and np.isinf(Yt).any():
                return self._raise_learn_status(SRNN_ERR_NONFINITE_Y)
            if cls is not None and (cls.min() < -1 or cls.max() >= self.out_size):
                return self._raise_learn_status(SRNN_ERR_CLASS_RANGE)
        cdef Py_ssize_t D = net.dims.input_size, O = self.out_size
        cdef size_t isz = cnp.PyArray_ITEMSIZE(<cnp.ndarray>X)
        cdef char *xp = <char*>_ptr(X)
        cdef char *yp = <char*>_ptr(Yt) if Yt is not None else NULL
        cdef int64_t *cp = <int64_t*>_ptr(cls) if cls is not None else NULL
        cdef char *op = <char*>_ptr(out)
        cdef void *rp = self.ring_p
        cdef int64_t *tp = self.tags_p
        cdef void *gp = self.grad_p
        cdef void *m1 = self.m1_p
        cdef void *m2 = self.m2_p
        cdef void *wp = self.work_p
        cdef Py_ssize_t done = 0, n
        net._enter_write(s)
        try:
            # chunks of whole steps; signals (Ctrl-C) are handled between chunks, so an
            # interrupted learn_many leaves the trainer exactly as after `steps` learn_one calls
            while done < T and st == SRNN_OK:
                if done:
                    PyErr_CheckSignals()
                n = min(chunk, T - done)
                if net.typenum == cnp.NPY_FLOAT32:
                    with nogil:
                        st = srnn_learn_f32(
                            &net.blas, &net.dims, <float*>net.pptr, &self.t, n,
                            <float*>(xp + done * D * isz),
                            <float*>(yp + done * O * isz) if yp != NULL else NULL,
                            cp + done if cp != NULL else NULL, <float*>s.hptr, <float*>s.cptr,
                            <float*>rp, tp, <float*>gp, <float*>m1, <float*>m2,
                            <float*>(op + done * O * isz), <float*>wp)
                else:
                    with nogil:
                        st = srnn_learn_f64(
                            &net.blas, &net.dims, <double*>net.pptr, &self.t, n,
                            <double*>(xp + done * D * isz),
                            <double*>(yp + done * O * isz) if yp != NULL else NULL,
                            cp + done if cp != NULL else NULL, <double*>s.hptr,
                            <double*>s.cptr, <double*>rp, tp, <double*>gp, <double*>m1,
                            <double*>m2, <double*>(op + done * O * isz), <double*>wp)
                done += n
        finally:
            net._leave_write(s.guard)
        return self._raise_learn_status(st, xname)

    cdef int _raise_learn_status(self, int st, str xname="x") except -1:
        if st == SRNN_OK:
            return 0
        if st == SRNN_ERR_NONFINITE_Y:
            raise ValueError("y must not hold inf (NaN marks a step without a target)")
        if st == SRNN_ERR_CLASS_RANGE:
            raise ValueError(f"y must hold class indices in [0, {self.out_size}) or -1")
        if st == SRNN_ERR_NO_PENDING:
            raise ValueError("no step is waiting for a target: call advance(x) before "
                             "observe(y)")
        raise _status_error(st, xname)

    def advance(self, x):
        """Step the trainer's stream with x and return the prediction; its target comes later.

        ``advance(x)`` then ``observe(y)`` gives exactly the numbers of ``learn_one(x, y)``,
        for streams where the next input is known before the current target (a forecaster
        predicts y[t+1] from y[t] as soon as y[t] arrives: one forward step per value). If the
        previous step is still waiting for its target, it is closed without one.
        """
        _ready(self)
        cdef _Network net = self._net
        cdef State s = self._state
        cdef int st
        cdef cnp.npy_intp osz = self.out_size
        if not _is_exact_vec(x, net.typenum, net.dims.input_size):
            x = _as_input(x, "x", _dtype_of(net.typenum), (net.dims.input_size,))
        out = cnp.PyArray_EMPTY(1, &osz, net.typenum, 0)
        cdef void *xp = _ptr(x)
        cdef void *op = _ptr(out)
        cdef void *rp = self.ring_p
        cdef int64_t *tp = self.tags_p
        cdef void *gp = self.grad_p
        cdef void *m1 = self.m1_p
        cdef void *m2 = self.m2_p
        cdef void *wp = self.work_p
        net._enter_write(s)
        if net.typenum == cnp.NPY_FLOAT32:
            with nogil:
                st = srnn_advance_f32(&net.blas, &net.dims, <float*>net.pptr, &self.t,
                                      <float*>xp, <float*>s.hptr, <float*>s.cptr, <float*>rp, tp,
                                      <float*>gp, <float*>m1, <float*>m2, <float*>op,
                                      <float*>wp)
        else:
            with nogil:
                st = srnn_advance_f64(&net.blas, &net.dims, <double*>net.pptr, &self.t,
                                      <double*>xp, <double*>s.hptr, <double*>s.cptr,
                                      <double*>rp, tp, <double*>gp, <double*>m1, <double*>m2,
                                      <double*>op, <double*>wp)
        net._leave_write(s.guard)
        self._raise_learn_status(st)
        return out

    def observe(self, y=None):
        """Give the step made by the last ``advance`` its target y and learn (every k1 steps).

        y as in ``learn_one`` (None or NaN: no target). Raises ValueError when no step is
        waiting for a target; nothing changes then.
        """
        _ready(self)
        cdef _Network net = self._net
        cdef State s = self._state
        cdef int st
        cdef int64_t cls = -1
        cdef void *yp = NULL
        if self.t.loss == SRNN_LOSS_MSE:
            Yt = self._target_row(y)
            yp = _ptr(Yt)
        else:
            cls = self._class_of(y)
        cdef void *rp = self.ring_p
        cdef int64_t *tp = self.tags_p
        cdef void *gp = self.grad_p
        cdef void *m1 = self.m1_p
        cdef void *m2 = self.m2_p
        cdef void *wp = self.work_p
        net._enter_write(s)
        if net.typenum == cnp.NPY_FLOAT32:
            with nogil:
                st = srnn_target_f32(&net.blas, &net.dims, <float*>net.pptr, &self.t,
                                     <float*>yp, cls, <float*>rp, tp, <float*>gp, <float*>m1,
                                     <float*>m2, <float*>wp)
        else:
            with nogil:
                st = srnn_target_f64(&net.blas, &net.dims, <double*>net.pptr, &self.t,
                                     <double*>yp, cls, <double*>rp, tp, <double*>gp,
                                     <double*>m1, <double*>m2, <double*>wp)
        net._leave_write(s.guard)
        self._raise_learn_status(st)

    def learn_one(self, x, y=None):
        """Step the trainer's stream with x, learn from target y; return the prediction.

        The returned prediction (O,) or (H,) is the output for x made before any learning
        at this step. ``y``: mse — array (O|H,) (None or any NaN: no target); cross_entropy —
        a class index (None or NaN: no target). Every k1 steps the weights are updated.
        """
        _ready(self)
        cdef _Network net = self._net
        cdef cnp.npy_intp osz = self.out_size
        if not _is_exact_vec(x, net.typenum, net.dims.input_size):
            x = _as_input(x, "x", _dtype_of(net.typenum), (net.dims.input_size,))
        if self.t.loss == SRNN_LOSS_MSE:
            Yt = self._target_row(y)
            cls = None
        else:
            self._cbuf[0] = self._class_of(y)
            Yt = None
            cls = self._cbuf
        out = cnp.PyArray_EMPTY(1, &osz, net.typenum, 0)
        self._run(1, x, Yt, cls, out, "x")
        return out

    def learn_many(self, X, Y):
        """learn_one over the rows of X (T, D) and targets Y, with the loop in C.

        Y: mse — (T, O|H) (rows with NaN: no target) or None; cross_entropy — (T,) integer
        class indices with -1 for no target, or None. Returns the predictions (T, O|H).
        The same numbers as T learn_one calls. Ctrl-C (KeyboardInterrupt) stops it between
        whole steps: the trainer and the weights are then exactly as after ``steps`` calls.
        """
        _ready(self)
        cdef _Network net = self._net
        dt = _dtype_of(net.typenum)
        X = _as_input(X, "X", dt, (-1, net.dims.input_size))
        T = X.shape[0]
        if self.t.loss == SRNN_LOSS_MSE:
            if Y is None:
                Yt = np.full((T, self.out_size), np.nan, dtype=dt)
            else:
                Yt = _as_input(Y, "Y", dt, (T, self.out_size))
            cls = None
        else:
            Yt = None
            if Y is None:
                cls = np.full(T, -1, dtype=np.int64)
            else:
                arr = np.asarray(Y)
                if arr.dtype.kind not in "iu" or arr.dtype == np.bool_:
                    raise TypeError(f"Y must hold integer class indices (-1: no target), got "
                                    f"dtype {arr.dtype}")
                if arr.shape != (T,):
                    raise ValueError(f"Y must have shape ({T},), got {arr.shape}")
                if T and (arr.min() < -1 or arr.max() >= self.out_size):
                    raise ValueError(f"Y must hold class indices in [0, {self.out_size}) or -1, "
                                     f"got values in [{arr.min()}, {arr.max()}]")
                # a private copy: read while the update writes the weights (it must not
                # alias them) and validated once, so it must not change under the C core
                cls = np.array(arr, dtype=np.int64, copy=True)
        out = np.empty((T, self.out_size), dtype=dt)
        if T:
            self._run(T, X, Yt, cls, out, "X")
        return out

    def predict_one(self, x):
        """The prediction for x from the trainer's state, changing nothing."""
        _ready(self)
        cdef _Network net = self._net
        cdef State s = self._state
        cdef int st
        cdef cnp.npy_intp osz = self.out_size
        if not _is_exact_vec(x, net.typenum, net.dims.input_size):
            x = _as_input(x, "x", _dtype_of(net.typenum), (net.dims.input_size,))
        out = cnp.PyArray_EMPTY(1, &osz, net.typenum, 0)
        # a scratch of its own (not the trainer's): predictions only read the state and the
        # weights, so they run alongside snapshots and other predictions
        work = np.empty(srnn_train_work(&net.dims, 1), dtype=_dtype_of(net.typenum))
        cdef void *xp = _ptr(x)
        cdef void *yp = _ptr(out)
        cdef void *wp = _ptr(work)
        net._enter_read(s)
        if net.typenum == cnp.NPY_FLOAT32:
            with nogil:
                st = srnn_predict_f32(&net.blas, &net.dims, <float*>net.pptr, <float*>xp,
                                      <float*>s.hptr, <float*>s.cptr, <float*>yp, <float*>wp)
        else:
            with nogil:
                st = srnn_predict_f64(&net.blas, &net.dims, <double*>net.pptr, <double*>xp,
                                      <double*>s.hptr, <double*>s.cptr, <double*>yp,
                                      <double*>wp)
        net._leave_read(s.guard)
        if st != SRNN_OK:
            raise _status_error(st, "x")
        return out

    def reset(self):
        """Zero the stream state, empty the ring buffer, clear the since-reset counters.

        The weights and the optimizer's moments and step count are kept.
        """
        _ready(self)
        _acquire(self._state.guard)
        try:
            self._state._h[...] = 0
            if self._state._c is not None:
                self._state._c[...] = 0
            self._tags[...] = -1
            self._ring[...] = 0
            srnn_train_reset(&self.t)
        finally:
            self._state.guard.busy = 0

    def _snapshot(self):
        """Everything that makes this trainer continue bit-for-bit (weights excluded).

        Taken as one read (RuntimeError while a trainer call, reset or step of its state
        runs in another thread): never a mixture of two moments."""
        _ready(self)
        _hold(self, False)
        try:
            return {
                "counters": self._stats(),
                "h": self._state._h.copy(),
                "c": None if self._state._c is None else self._state._c.copy(),
                "ring": self._ring.copy(),
                "tags": self._tags.copy(),
                "m1": self._m1.copy(),
                "m2": self._m2.copy(),
            }
        finally:
            _unhold(self, False)

    def _restore(self, snap):
        """Load a _snapshot() (validated in full before anything is written).

        The rebuild path of pickles and copies: counters, the ring invariant, the ring tags
        and every array's dtype and shape are checked as strictly as sr.load does (and by
        the C core's srnn_train_check_ring); a bad snapshot raises TypeError/ValueError."""
        _ready(self)
        if not isinstance(snap, dict):
            raise TypeError(f"trainer snapshot must be a dict, got {type(snap).__name__}")
        counters = _snap_get(snap, "counters", "trainer snapshot")
        if not isinstance(counters, dict):
            raise TypeError(f"trainer snapshot counters must be a dict, got "
                            f"{type(counters).__name__}")
        cdef srnn_trainer t = self.t
        t.steps = _snap_int(counters, "steps")
        t.since_update = _snap_int(counters, "since_update")
        t.filled = _snap_int(counters, "filled")
        t.head = _snap_int(counters, "head")
        t.updates = _snap_int(counters, "updates")
        t.skipped = _snap_int(counters, "skipped")
        t.opt_steps = _snap_int(counters, "opt_steps")
        t.loss_count = _snap_int(counters, "loss_count")
        t.loss_sum = _snap_float(counters, "loss_sum")
        t.last_loss = _snap_float(counters, "last_loss")
        t.last_grad_norm = _snap_float(counters, "last_grad_norm")
        t.pending = _snap_int(counters, "pending") if "pending" in counters else 0
        arrays = {}
        L, H = self._state.dims.num_layers, self._state.dims.hidden_size
        sdt = _dtype_of(self._net.typenum)
        for name, dt, shape in (("h", sdt, (L, H)),
                                ("c", sdt, (L, H) if self._state.cptr != NULL else None),
                                ("ring", sdt, (self.t.k2, srnn_record_size(&self._net.dims))),
                                ("tags", np.dtype(np.int64), (self.t.k2,)),
                                ("m1", sdt, (self._net.nparams,)),
                                ("m2", sdt, (self._net.nparams,))):
            if shape is None:
                if snap.get(name) is not None:
                    raise ValueError(f"trainer snapshot: {name!r} is only for LSTM trainers")
                continue
            arrays[name] = np.ascontiguousarray(
                _checked_copy(_snap_get(snap, name, "trainer snapshot"), name, dt, shape))
        for name in ("m1", "m2"):
            if not np.isfinite(arrays[name]).all():
                raise ValueError(f"trainer snapshot: optimizer moments {name!r} hold NaN or inf")
        cdef cnp.ndarray tags = arrays["tags"]
        st = srnn_train_check_ring(&self._net.dims, &t, <int64_t*>cnp.PyArray_DATA(tags))
        if st != SRNN_OK:
            raise ValueError("trainer snapshot has inconsistent counters or ring tags (tags "
                             "must be -1 or a target the loss can index; head, filled and "
                             "the other counters must be ones a trainer reaches)")
        _acquire(self._state.guard)
        try:
            self._state._h[...] = arrays["h"]
            if self._state._c is not None:
                self._state._c[...] = arrays["c"]
            self._ring[...] = arrays["ring"]
            self._tags[...] = arrays["tags"]
            self._m1[...] = arrays["m1"]
            self._m2[...] = arrays["m2"]
            self.t = t
        finally:
            self._state.guard.busy = 0


# ---------------------------------------------------------------------------------------
# whole windows: forward/backward with a cache (bidirectional layers, sequence training)
# ---------------------------------------------------------------------------------------

cdef object _state_arg(object a, str name, _Network net):
    """An (L, ndir, H) initial state / state gradient: exact dtype, C-contiguous, or None."""
    if a is None:
        return None
    shape = (net.dims.num_layers, net.ndir, net.dims.hidden_size)
    dt = _dtype_of(net.typenum)
    if not (isinstance(a, np.ndarray) and a.dtype == dt and a.shape == shape):
        raise ValueError(f"{name} must be an ndarray of shape {shape} and dtype {dt.name}, "
                         f"got {type(a).__name__} {getattr(a, 'shape', '')}")
    return np.ascontiguousarray(a)


cdef class _SeqWork:
    """Cache and scratch of whole-window forward/backward for one network.

    Owns one work buffer, grown (never shrunk) when a longer window arrives, so windows of
    a length already seen allocate nothing. ``forward`` caches the window's activations;
    ``backward`` reads them (it must follow a ``forward`` of the same window). The caller
    holds the network's write lock (``_begin_write``) when it also updates the weights.
    """

    def __cinit__(self, _Network net not None):
        _net_ready(net)
        self._net = net
        self._work = None
        self._wmem = None
        self.cap = 0
        self._X = None
        self.T = 0
        self.busy = 0

    cdef int _grow(self, size_t T) except -1:
        cdef size_t need = srnn_seq_work(&self._net.dims, self._net.ndir, T)
        if self._wmem is None or need > self.cap:
            mem, _ = _block([((need,), self._net.typenum)])
            self._wmem = mem
            self._work = _mem_array(mem, 0, (need,), self._net.typenum)
            self.cap = need
        return 0

    def forward(self, X, h0=None, c0=None, bint many_to_one=False, bint final=False):
        """Y (T, OUT) or (OUT,), and with ``final`` the final states (hT, cT) (L, ndir, H).

        X: (T, D) ndarray of the network's dtype (T >= 1). h0/c0: (L, ndir, H) or None."""
        cdef _Network net = self._net
        cdef int st
        dt = _dtype_of(net.typenum)
        X = _as_input(X, "X", dt, (-1, net.dims.input_size))
        cdef size_t T = X.shape[0]
        if T == 0:
            raise ValueError("X must hold at least one step, got shape "
                             f"{X.shape}")
        if not np.isfinite(X).all():
            raise _status_error(SRNN_ERR_NONFINITE_X, "X")
        h0 = _state_arg(h0, "h0", net)
        c0 = _state_arg(c0, "c0", net) if srnn_has_c(net.dims.cell) else None
        if self.busy:
            raise RuntimeError("this sequence trainer is being used by another thread")
        self.busy = 1
        try:
            self._grow(T)
            if many_to_one:
                yshape = (net.out_size,)
            else:
                yshape = (<Py_ssize_t>T, net.out_size)
            Y = np.empty(yshape, dtype=dt)
            sshape = (net.dims.num_layers, net.ndir, net.dims.hidden_size)
            hT = np.empty(sshape, dtype=dt) if final else None
            cT = np.empty(sshape, dtype=dt) if final and srnn_has_c(net.dims.cell) else None
            st = self._forward(T, X, h0, c0, many_to_one, Y, hT, cT)
            if st != SRNN_OK:
                self._X = None
                raise _status_error(st, "X")
            self._X = X
            self.T = T
            self.m2o = many_to_one
        finally:
            self.busy = 0
        if final:
            return Y, hT, cT
        return Y

    cdef int _forward(self, size_t T, object X, object h0, object c0, int m2o, object Y,
                      object hT, object cT):
        cdef _Network net = self._net
        cdef int st, nd = net.ndir
        cdef void *xp = _ptr(X)
        cdef void *h0p = _ptr(h0) if h0 is not None else NULL
        cdef void *c0p = _ptr(c0) if c0 is not None else NULL
        cdef void *yp = _ptr(Y)
        cdef void *hTp = _ptr(hT) if hT is not None else NULL
        cdef void *cTp = _ptr(cT) if cT is not None else NULL
        cdef void *wp = self._wmem.data
        if net.typenum == cnp.NPY_FLOAT32:
            with nogil:
                st = srnn_seq_forward_f32(&net.blas, &net.dims, nd, <float*>net.pptr, T,
                                          <float*>xp, <float*>h0p, <float*>c0p, m2o,
                                          <float*>yp, <float*>hTp, <float*>cTp, <float*>wp)
        else:
            with nogil:
                st = srnn_seq_forward_f64(&net.blas, &net.dims, nd, <double*>net.pptr, T,
                                          <double*>xp, <double*>h0p, <double*>c0p, m2o,
                                          <double*>yp, <double*>hTp, <double*>cTp,
                                          <double*>wp)
        return st

    def backward(self, dY, grad, dhT=None, dcT=None, bint want_dX=False, bint want_d0=False):
        """Accumulate dLoss/dparams of the last forward's window into ``grad`` (P,).

        dY as that forward's Y; dhT/dcT (L, ndir, H) or None. Returns (dX, dh0, dc0), each
        None unless asked for."""
        cdef _Network net = self._net
        cdef int st, nd = net.ndir
        if self._X is None:
            raise RuntimeError("backward() needs a forward() of the window first")
        dt = _dtype_of(net.typenum)
        cdef size_t T = self.T
        if self.m2o:
            yshape = (net.out_size,)
        else:
            yshape = (<Py_ssize_t>T, net.out_size)
        if not (isinstance(dY, np.ndarray) and dY.dtype == dt and dY.shape == yshape):
            raise ValueError(f"dY must be an ndarray of shape {yshape} and dtype {dt.name}")
        dY = np.ascontiguousarray(dY)
        if not (isinstance(grad, np.ndarray) and grad.dtype == dt
                and grad.shape == (net.nparams,) and grad.flags.c_contiguous
                and grad.flags.aligned and grad.flags.writeable):
            raise ValueError(f"grad must be a writable C-contiguous ndarray of shape "
                             f"({net.nparams},) and dtype {dt.name}")
        dhT = _state_arg(dhT, "dhT", net)
        dcT = _state_arg(dcT, "dcT", net) if srnn_has_c(net.dims.cell) else None
        X = self._X
        # the window cached by forward() is the caller's array: check it still has the
        # shape the C core will read (an array of ours cannot be resized; a caller's can)
        if not (isinstance(X, np.ndarray) and X.dtype == dt
                and X.shape == (<Py_ssize_t>T, net.dims.input_size)
                and X.flags.c_contiguous and X.flags.aligned):
            raise RuntimeError("the window given to forward() was changed (resized or "
                               "re-strided) since; run forward() again")
        if (_overlaps_at(grad, net.pptr, <size_t>net.nparams * <size_t>_itemsize(net.typenum))
                or _overlaps(grad, X) or _overlaps(grad, dY) or _overlaps(grad, dhT)
                or _overlaps(grad, dcT)):
            raise ValueError("grad must not share memory with the parameters, the window or "
                             "dY, dhT, dcT")
        sshape = (net.dims.num_layers, net.ndir, net.dims.hidden_size)
        dX = np.empty((<Py_ssize_t>T, net.dims.input_size), dtype=dt) if want_dX else None
        dh0 = np.empty(sshape, dtype=dt) if want_d0 else None
        dc0 = np.empty(sshape, dtype=dt) if want_d0 and srnn_has_c(net.dims.cell) else None
        cdef void *xp = _ptr(X)
        cdef void *dyp = _ptr(dY)
        cdef void *dhTp = _ptr(dhT) if dhT is not None else NULL
        cdef void *dcTp = _ptr(dcT) if dcT is not None else NULL
        cdef void *gp = _ptr(grad)
        cdef void *dxp = _ptr(dX) if dX is not None else NULL
        cdef void *dh0p = _ptr(dh0) if dh0 is not None else NULL
        cdef void *dc0p = _ptr(dc0) if dc0 is not None else NULL
        cdef void *wp = self._wmem.data
        cdef int m2o = self.m2o
        if self.busy:
            raise RuntimeError("this sequence trainer is being used by another thread")
        self.busy = 1
        try:
            if net.typenum == cnp.NPY_FLOAT32:
                with nogil:
                    st = srnn_seq_backward_f32(&net.blas, &net.dims, nd, <float*>net.pptr, T,
                                               <float*>xp, m2o, <float*>dyp, <float*>dhTp,
                                               <float*>dcTp, <float*>gp, <float*>dxp,
                                               <float*>dh0p, <float*>dc0p, <float*>wp)
            else:
                with nogil:
                    st = srnn_seq_backward_f64(&net.blas, &net.dims, nd, <double*>net.pptr, T,
                                               <double*>xp, m2o, <double*>dyp, <double*>dhTp,
                                               <double*>dcTp, <double*>gp, <double*>dxp,
                                               <double*>dh0p, <double*>dc0p, <double*>wp)
        finally:
            self.busy = 0
        if st != SRNN_OK:
            raise _status_error(st, "dY")
        return dX, dh0, dc0


cdef class _Updater:
    """Clipping + optimizer state over the parameters of one or two networks (same dtype),
    through the C core's shared update (the TBPTT trainer's code path).

    Owns grad3 (3P,) (``grad`` is its first P entries, the concatenated gradient), the
    moments m1, m2 (P,) and the optimizer's counters."""

    def __cinit__(self, *args, **kwargs):
        self._nets = None

    def _init_updater(self, list nets, int opt, double lr, double momentum, bint nesterov,
                      double weight_decay, double beta1, double beta2, double eps,
                      double alpha, double clip_value, double clip_norm):
        if self._nets is not None:
            raise RuntimeError("updater already initialised")
        if len(nets) < 1 or len(nets) > 2:
            raise ValueError("an updater takes one or two networks")
        cdef _Network n0 = nets[0]
        cdef _Network n
        cdef srnn_trainer t
        for n in nets:
            _net_ready(n)
        for n in nets:
            if n.typenum != n0.typenum:
                raise TypeError(f"the networks must share one dtype, got "
                                f"{_dtype_of(n0.typenum).name} and {_dtype_of(n.typenum).name}")
        # the optimizer/clipping part of a trainer struct (loss and k1/k2 unused here)
        t = _new_trainer(SRNN_LOSS_MSE, opt, lr, momentum, nesterov, weight_decay, beta1,
                         beta2, eps, alpha, 1, 1, clip_value, clip_norm)
        st = srnn_train_check(&n0.dims, &t)
        if st != SRNN_OK:
            raise ValueError(f"{_CONFIG_ERROR}: {srnn_status_name(st).decode()}")
        self.t = t
        self._nets = list(nets)
        self.P = sum((<_Network>n).nparams for n in nets)
        cdef int tn = n0.typenum
        specs = [((3 * self.P,), tn), ((self.P,), tn), ((self.P,), tn)]
        mem, offs = _block(specs)
        self._mem = mem
        self._grad, self._m1, self._m2 = [_mem_array(mem, o, sh, k)
                                          for (sh, k), o in zip(specs, offs)]
        self.grad_p = self._mem.data + <size_t>offs[0]
        self.m1_p = self._mem.data + <size_t>offs[1]
        self.m2_p = self._mem.data + <size_t>offs[2]

    cdef int _ready(self) except -1:
        if self._nets is None:
            raise RuntimeError("this updater was not initialised (it is made by the sequence "
                               "trainers)")
        return 0

    @property
    def grad(self):
        """The concatenated gradient (P,) (a new array object over the updater's memory
        each time; zeroed by zero_grad)."""
        self._ready()
        return _mem_array(self._mem, 0, (self.P,), (<_Network>self._nets[0]).typenum)

    def zero_grad(self):
        self._ready()
        self._grad[:self.P] = 0

    def apply(self, double loss):
        """Clip the gradient in ``grad`` and apply the optimizer to every network's weights
        (skipped, nothing changed, when the loss, gradient or result is not finite)."""
        cdef float *fp[2]
        cdef double *dp[2]
        cdef size_t sizes[2]
        self._ready()
        cdef int nseg = len(self._nets), i, st
        cdef _Network n
        for i in range(nseg):
            n = self._nets[i]
            fp[i] = <float*>n.pptr
            dp[i] = <double*>n.pptr
            sizes[i] = n.nparams
        cdef void *gp = self.grad_p
        cdef void *m1 = self.m1_p
        cdef void *m2 = self.m2_p
        if (<_Network>self._nets[0]).typenum == cnp.NPY_FLOAT32:
            with nogil:
                st = srnn_apply_update_f32(&self.t, nseg, fp, sizes, <float*>gp, <float*>m1,
                                           <float*>m2, loss)
        else:
            with nogil:
                st = srnn_apply_update_f64(&self.t, nseg, dp, sizes, <double*>gp, <double*>m1,
                                           <double*>m2, loss)
        if st != SRNN_OK:
            raise RuntimeError(f"streamrnn core error {st} in the optimizer update")

    def _stats(self):
        self._ready()
        return {"updates": self.t.updates, "skipped": self.t.skipped,
                "opt_steps": self.t.opt_steps, "last_loss": self.t.last_loss,
                "last_grad_norm": self.t.last_grad_norm}

    def _snapshot(self):
        self._ready()
        # one read of the moments: refused while an update of the networks runs
        with _holding(*self._nets):
            return {"counters": self._stats(), "m1": self._m1.copy(), "m2": self._m2.copy()}

    def _restore(self, snap):
        """Load a _snapshot(): every piece read and checked before anything is written
        (TypeError/ValueError for a bad one, as sr.load)."""
        self._ready()
        if not isinstance(snap, dict):
            raise TypeError(f"updater snapshot must be a dict, got {type(snap).__name__}")
        c = _snap_get(snap, "counters", "updater snapshot")
        if not isinstance(c, dict):
            raise TypeError(f"updater snapshot counters must be a dict, got "
                            f"{type(c).__name__}")
        cdef srnn_trainer t = self.t
        t.updates = _snap_int(c, "updates")
        t.skipped = _snap_int(c, "skipped")
        t.opt_steps = _snap_int(c, "opt_steps")
        t.last_loss = _snap_float(c, "last_loss")
        t.last_grad_norm = _snap_float(c, "last_grad_norm")
        if srnn_train_check(&(<_Network>self._nets[0]).dims, &t) != SRNN_OK:
            raise ValueError("updater snapshot has invalid counters (they must be >= 0)")
        dt = _dtype_of((<_Network>self._nets[0]).typenum)
        m1 = _checked_copy(_snap_get(snap, "m1", "updater snapshot"), "m1", dt, (self.P,))
        m2 = _checked_copy(_snap_get(snap, "m2", "updater snapshot"), "m2", dt, (self.P,))
        if not (np.isfinite(m1).all() and np.isfinite(m2).all()):
            raise ValueError("updater snapshot: optimizer moments hold NaN or inf")
        self._m1[...] = m1
        self._m2[...] = m2
        self.t = t


# ---------------------------------------------------------------------------------------
# one thread contract: holds taken from Python (snapshots), and test hooks
# ---------------------------------------------------------------------------------------

def _hold(obj, bint write=False):
    """Mark ``obj`` in use exactly as the C calls do, or raise RuntimeError at once.

    write=False: a snapshot read (a State/StateBatch guard or a network's weights shared
    with steps and other reads; a trainer: its state and its network). write=True: as a
    step of the state, a trainer call (its state and weights exclusive) or load_state_dict.
    Release with ``_unhold(obj, write)``. Used by copies, pickles and saves, and by tests
    to make an operation be "in flight" without any timing."""
    cdef _Trainer tr
    cdef _Network net
    if isinstance(obj, (State, StateBatch)):
        g = (<State>obj).guard if isinstance(obj, State) else (<StateBatch>obj).guard
        if write:
            _acquire(g)
        else:
            _read_acquire(g)
    elif isinstance(obj, _Trainer):
        tr = obj
        _ready(tr)
        if write:
            tr._net._enter_write(tr._state)
        else:
            tr._net._begin_read()
            try:
                _read_acquire(tr._state.guard)
            except BaseException:
                tr._net._end_read()
                raise
    elif isinstance(obj, _Network):
        net = obj
        if write:
            net._begin_write()
        else:
            net._begin_read()
    elif isinstance(obj, _Guard):
        (<_Guard>obj)._enter(write, "this object")
    else:
        raise TypeError(f"cannot hold a {type(obj).__name__}")


def _unhold(obj, bint write=False):
    """Release a ``_hold(obj, write)``."""
    cdef _Trainer tr
    if isinstance(obj, (State, StateBatch)):
        g = (<State>obj).guard if isinstance(obj, State) else (<StateBatch>obj).guard
        if write:
            (<_Guard>g).busy = 0
        else:
            _read_release(g)
    elif isinstance(obj, _Trainer):
        tr = obj
        if write:
            tr._net._leave_write(tr._state.guard)
        else:
            _read_release(tr._state.guard)
            tr._net._end_read()
    elif isinstance(obj, _Network):
        if write:
            (<_Network>obj)._end_write()
        else:
            (<_Network>obj)._end_read()
    elif isinstance(obj, _Guard):
        (<_Guard>obj)._exit(write)


class _Holding:
    """Context manager of ``_holding``: takes every hold or none."""

    def __init__(self, objs, write):
        self.objs = []
        seen = set()
        for o in objs:                 # one hold per object (a shared network once)
            if o is not None and id(o) not in seen:
                seen.add(id(o))
                self.objs.append(o)
        self.write = write
        self.taken = []

    def __enter__(self):
        try:
            for o in self.objs:
                _hold(o, self.write)
                self.taken.append(o)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        while self.taken:
            _unhold(self.taken.pop(), self.write)
        return False


def _holding(*objs, bint write=False):
    """``with _holding(a, b, ...):`` holds every object (see ``_hold``); None is skipped."""
    return _Holding(objs, write)


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
# =======================================================================================
# Layout facts (issue 15), read from the C core: the one place the Python layer takes gate
# counts, parameter offsets and shapes, enum codes, counter names and the ring-slot layout
# from. (The NumPy reference, streamrnn/reference.py, keeps its own independent copy.)
# =======================================================================================
from collections import namedtuple as _namedtuple
from types import MappingProxyType as _MappingProxy

#: gates per cell (srnn_gates): rows of weight_ih are G * hidden_size
GATES = _MappingProxy({name: srnn_gates(code) for name, code in CELL_CODES.items()})
#: loss name -> srnn_loss code
LOSSES = _MappingProxy({"mse": SRNN_LOSS_MSE, "cross_entropy": SRNN_LOSS_XENT})
#: optimizer kind (SGD/Adam/RMSprop ``.kind``) -> srnn_opt code
OPTIMIZERS = _MappingProxy({"sgd": SRNN_OPT_SGD, "adam": SRNN_OPT_ADAM,
                            "rmsprop": SRNN_OPT_RMSPROP})
#: every counter of a trainer (srnn_trainer), in one order; the float ones among them; the
#: ones a window trainer's optimizer (_Updater) keeps
TRAINER_COUNTERS = _TRAINER_COUNTERS
TRAINER_FLOAT_COUNTERS = ("loss_sum", "last_loss", "last_grad_norm")
UPDATER_COUNTERS = ("updates", "skipped", "opt_steps", "last_loss", "last_grad_norm")
TrainerCounters = _namedtuple("TrainerCounters", TRAINER_COUNTERS)


def trainer_counters(_Trainer tr not None):
    """A trainer's counters as a TrainerCounters record (fields TRAINER_COUNTERS)."""
    _ready(tr)
    return TrainerCounters(**tr._stats())


cdef int _layout_dims(srnn_dims *d, object cell, object input_size, object hidden_size,
                      object num_layers, object output_size, object num_directions) except -1:
    """Fill d from Python sizes (output_size None or 0: no head); ValueError/TypeError for
    anything the C core refuses (srnn_check_dims)."""
    if not isinstance(cell, str) or cell not in CELL_CODES:
        raise ValueError(f"cell must be one of {sorted(CELL_CODES)}, got {cell!r}")
    if output_size is None:
        output_size = 0
    for name, v, lo in (("input_size", input_size, 1), ("hidden_size", hidden_size, 1),
                        ("num_layers", num_layers, 1), ("output_size", output_size, 0),
                        ("num_directions", num_directions, 1)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {type(v).__name__}")
        if v < lo or v > 2147483647:
            raise ValueError(f"{name} must be an integer in [{lo}, 2147483647], got {v}")
    if num_directions > 2:
        raise ValueError(f"num_directions must be 1 or 2, got {num_directions}")
    d.cell = CELL_CODES[cell]
    d.input_size = input_size
    d.hidden_size = hidden_size
    d.num_layers = num_layers
    d.output_size = output_size
    st = srnn_check_dims(d, num_directions)
    if st != SRNN_OK:
        raise ValueError(f"invalid network sizes (input_size={input_size}, "
                         f"hidden_size={hidden_size}, num_layers={num_layers}, "
                         f"output_size={output_size}): {srnn_status_name(st).decode()}")
    return 0


def num_params(cell, input_size, hidden_size, num_layers, output_size, num_directions=1):
    """Length of a network's flat parameter buffer (srnn_num_params)."""
    cdef srnn_dims d
    _layout_dims(&d, cell, input_size, hidden_size, num_layers, output_size, num_directions)
    return srnn_num_params(&d, num_directions)


def param_layout(cell, input_size, hidden_size, num_layers, output_size, num_directions=1):
    """The flat parameter buffer as rows (name, offset, shape), in PyTorch's
    named_parameters order: per layer k and direction (suffix "_reverse" for the backward
    one) weight_ih_l{k} (G*H, D_k), weight_hh_l{k} (G*H, H), bias_ih_l{k}, bias_hh_l{k}
    (G*H,); then head.weight (O, ndir*H) and head.bias (O,) with a head. Offsets (elements)
    come from srnn_layer_offset; each layer's rows are checked to end where the C core puts
    the next one."""
    cdef srnn_dims d
    _layout_dims(&d, cell, input_size, hidden_size, num_layers, output_size, num_directions)
    cdef int ndir = num_directions, L = d.num_layers, k, r
    G, H, D, O = srnn_gates(d.cell), d.hidden_size, d.input_size, d.output_size
    rows = []
    cdef size_t end
    for k in range(L):
        din = D if k == 0 else ndir * H
        for r in range(ndir):
            off = srnn_layer_offset(&d, ndir, k, r)
            sfx = f"_l{k}" + ("_reverse" if r else "")
            arrays = [("weight_ih", (G * H, din)), ("weight_hh", (G * H, H)),
                      ("bias_ih", (G * H,)), ("bias_hh", (G * H,))]
            if d.cell == SRNN_LSTM_PEEP:
                arrays.append(("weight_peephole", (3 * H,)))   # [p_i | p_f | p_o]
            for name, shape in arrays:
                rows.append((name + sfx, off, shape))
                off += int(np.prod(shape))
            end = srnn_layer_offset(&d, ndir, k + 1, 0) if r == ndir - 1 else \
                srnn_layer_offset(&d, ndir, k, r + 1)
            if off != end:
                raise RuntimeError("internal error: parameter layout disagrees with the C core")
    off = srnn_layer_offset(&d, ndir, L, 0)
    if O:
        rows.append(("head.weight", off, (O, ndir * H)))
        rows.append(("head.bias", off + O * ndir * H, (O,)))
        off += O * ndir * H + O
    if off != srnn_num_params(&d, ndir):
        raise RuntimeError("internal error: parameter layout disagrees with the C core")
    return tuple(rows)


def ring_layout(cell, input_size, hidden_size, num_layers, output_size):
    """One online-trainer ring slot: (size, fields), fields rows (name, offset, count,
    length, stride) from srnn_record_field: field name is ``count`` blocks of ``length``
    elements, block k at slot[offset + k * stride]."""
    cdef srnn_dims d
    cdef size_t off, count, length, stride
    cdef const char *name
    _layout_dims(&d, cell, input_size, hidden_size, num_layers, output_size, 1)
    fields = []
    for f in range(SRNN_RECORD_FIELDS):
        name = srnn_record_field(&d, f, &off, &count, &length, &stride)
        if name == NULL:
            raise RuntimeError("internal error: ring field missing")
        fields.append((name.decode("ascii"), off, count, length, stride))
    return srnn_record_size(&d), tuple(fields)
