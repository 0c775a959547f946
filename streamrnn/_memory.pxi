# dtypes, argument checks, fixed memory blocks (_Memory), "made by its constructor"
# checks, status codes to exceptions, chunking of long C loops.

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
