# _Network: sizes, BLAS table, flat parameters, the step loops (step, run, step_many).

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
        _fill_blas(&self.blas)      # refilled by _init_core once the sizes are known
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
        self.ops = &srnn_ops_f32 if self.typenum == cnp.NPY_FLOAT32 else &srnn_ops_f64
        self.dims = d
        self.ndir = num_directions
        if srnn_wants_blas(&d, num_directions):   # products beyond the own kernels' sizes
            _load_blas()
        _fill_blas(&self.blas)
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
        """Test hook: stop this network's next matrix product (own kernel or BLAS) at the
        test gate (_gate_arm). The numbers are unchanged: the same kernels run."""
        if on:
            self.blas.probe = srnn_test_gate_wait
        else:
            self.blas.probe = NULL

    def _force_blas(self, bint on):
        """Test hook: on, every matrix product of this network goes through SciPy's BLAS
        (loaded if it was not: the path above SRNN_OWN_GEMV_MAX / SRNN_OWN_GEMM_MAX); off,
        the table as a new network of these sizes gets it."""
        if on:
            _load_blas()
        probe = self.blas.probe
        _fill_blas(&self.blas)
        self.blas.probe = probe
        self.blas.blas_only = 1 if on else 0

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
        with nogil:
            st = self.ops.step(&self.blas, &self.dims, self.pptr, xp, state.hptr, state.cptr, yp,
                               state.wptr)
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
                with nogil:
                    st = self.ops.run(&self.blas, &self.dims, self.pptr, n, xp + done * ldx * isz,
                                      ldx, state.hptr, state.cptr, yp + done * ldy * isz, ldy,
                                      state.wptr)
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
            with nogil:
                st = self.ops.seq_forward(&self.blas, &self.dims, nd, self.pptr, T, xp, NULL,
                                          NULL, 0, yp, NULL, NULL, wp)
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
        with nogil:
            st = self.ops.step_many(&self.blas, &self.dims, self.pptr, nn, mm, xp, ip, hp, cp, yp,
                                    wp, mp)
        self._leave(b.guard)
        if st != SRNN_OK:
            raise _status_error(st, "X" if st == SRNN_ERR_NONFINITE_X else "index")
        return out
