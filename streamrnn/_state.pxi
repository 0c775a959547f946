# Recurrent states: State (one stream), StateBatch (many streams), their constructors.

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
        'lstm', 'lstm_peephole', 'gru', 'gru_reset_before', 'rnn_tanh' or 'rnn_relu'.
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
        """The cell kind: 'lstm', 'lstm_peephole', 'gru', 'gru_reset_before', 'rnn_tanh' or
        'rnn_relu'."""
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
        'lstm', 'lstm_peephole', 'gru', 'gru_reset_before', 'rnn_tanh' or 'rnn_relu'.
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
        """The cell kind: 'lstm', 'lstm_peephole', 'gru', 'gru_reset_before', 'rnn_tanh' or
        'rnn_relu'."""
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
