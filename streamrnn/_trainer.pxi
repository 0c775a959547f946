# _Trainer: online TBPTT training (learn_one, advance/observe, snapshots).

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


cdef srnn_trainer _new_trainer(object optimizer, int loss, int k1, int k2, double clip_value,
                               double clip_norm) except *:
    """A reset trainer struct: the settings record filled once from a streamrnn optimizer
    (SGD, Adam or RMSprop, checked by the caller; the attributes another optimizer lacks take
    torch's defaults, unused by it) and zero counters. The caller checks it with
    srnn_train_check against its network's dims."""
    cdef srnn_trainer t
    betas = getattr(optimizer, "betas", (0.9, 0.999))
    t.set.loss = loss
    t.set.opt = OPTIMIZERS[optimizer.kind]
    t.set.lr = optimizer.lr
    t.set.momentum = getattr(optimizer, "momentum", 0.0)
    t.set.nesterov = bool(getattr(optimizer, "nesterov", False))
    t.set.weight_decay = getattr(optimizer, "weight_decay", 0.0)
    t.set.beta1 = betas[0]
    t.set.beta2 = betas[1]
    t.set.eps = getattr(optimizer, "eps", 1e-8)
    t.set.alpha = getattr(optimizer, "alpha", 0.99)
    t.set.k1 = k1
    t.set.k2 = k2
    t.set.clip_value = clip_value
    t.set.clip_norm = clip_norm
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

    def _init_trainer(self, _Network net not None, int loss, optimizer, int k1, int k2,
                      double clip_value, double clip_norm):
        if self._net is not None:
            raise RuntimeError("trainer already initialised")
        _net_ready(net)
        if net.ndir != 1:
            raise ValueError(_BIDIR.format(what="OnlineTrainer"))
        cdef srnn_trainer t = _new_trainer(optimizer, loss, k1, k2, clip_value, clip_norm)
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
        self.bufs.ring = self._mem.data + <size_t>offs[0]
        self.bufs.tags = <int64_t*>(self._mem.data + <size_t>offs[1])
        self.bufs.grad = self._mem.data + <size_t>offs[2]
        self.bufs.m1 = self._mem.data + <size_t>offs[3]
        self.bufs.m2 = self._mem.data + <size_t>offs[4]
        self.bufs.work = self._mem.data + <size_t>offs[5]

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
        cdef Py_ssize_t done = 0, n
        net._enter_write(s)
        try:
            # chunks of whole steps; signals (Ctrl-C) are handled between chunks, so an
            # interrupted learn_many leaves the trainer exactly as after `steps` learn_one calls
            while done < T and st == SRNN_OK:
                if done:
                    PyErr_CheckSignals()
                n = min(chunk, T - done)
                with nogil:
                    st = net.ops.learn(&net.blas, &net.dims, net.pptr, &self.t, &self.bufs, n,
                                       xp + done * D * isz,
                                       yp + done * O * isz if yp != NULL else NULL,
                                       cp + done if cp != NULL else NULL, s.hptr, s.cptr,
                                       op + done * O * isz)
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
        net._enter_write(s)
        with nogil:
            st = net.ops.advance(&net.blas, &net.dims, net.pptr, &self.t, &self.bufs, xp,
                                 s.hptr, s.cptr, op)
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
        if self.t.set.loss == SRNN_LOSS_MSE:
            Yt = self._target_row(y)
            yp = _ptr(Yt)
        else:
            cls = self._class_of(y)
        net._enter_write(s)
        with nogil:
            st = net.ops.target(&net.blas, &net.dims, net.pptr, &self.t, &self.bufs, yp, cls)
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
        if self.t.set.loss == SRNN_LOSS_MSE:
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
        if self.t.set.loss == SRNN_LOSS_MSE:
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
        with nogil:
            st = net.ops.predict(&net.blas, &net.dims, net.pptr, xp, s.hptr, s.cptr, yp, wp)
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
                                ("ring", sdt, (self.t.set.k2, srnn_record_size(&self._net.dims))),
                                ("tags", np.dtype(np.int64), (self.t.set.k2,)),
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
