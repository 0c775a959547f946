# Whole windows: _SeqWork (forward/backward of one window), _Updater (one optimizer over
# one or two networks' flat buffers).

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
        with nogil:
            st = net.ops.seq_forward(&net.blas, &net.dims, nd, net.pptr, T, xp, h0p, c0p, m2o,
                                     yp, hTp, cTp, wp)
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
            with nogil:
                st = net.ops.seq_backward(&net.blas, &net.dims, nd, net.pptr, T, xp, m2o, dyp,
                                          dhTp, dcTp, gp, dxp, dh0p, dc0p, wp)
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

    def _init_updater(self, list nets, optimizer, double clip_value, double clip_norm):
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
        t = _new_trainer(optimizer, SRNN_LOSS_MSE, 1, 1, clip_value, clip_norm)
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
        cdef void *pp[2]
        cdef size_t sizes[2]
        self._ready()
        cdef int nseg = len(self._nets), i, st
        cdef _Network n
        for i in range(nseg):
            n = self._nets[i]
            pp[i] = n.pptr
            sizes[i] = n.nparams
        cdef void *gp = self.grad_p
        cdef void *m1 = self.m1_p
        cdef void *m2 = self.m2_p
        cdef const srnn_ops *ops = (<_Network>self._nets[0]).ops
        with nogil:
            st = ops.apply_update(&self.t, nseg, pp, sizes, gp, m1, m2, loss)
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
