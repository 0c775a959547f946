"""Public network classes: LSTM, GRU and RNN (pure Python around the compiled core)."""
from __future__ import annotations

import threading
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from . import _core
from ._checks import ReadOnlySettings, check_dtype, check_int, fitted, float_array

__all__ = ["LSTM", "GRU", "RNN", "Layer", "Head"]


def _check_size(value: Any, name: str, minimum: int = 1) -> int:
    return check_int(value, name, minimum, _MAX_SIZE)


_check_dtype = check_dtype   # the name forecast.py imports

# Sizes beyond this cannot be addressed by a BLAS int (the C core checks products too).
_MAX_SIZE = 2**20


def _check_seed(seed: Any) -> Optional[int]:
    if seed is None:
        return None
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be None or an integer >= 0, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be None or an integer >= 0, got {seed}")
    return int(seed)


def _refuse_view_rebind(obj: Any, name: str) -> None:
    """Rebinding a parameter view would silently detach it from the network's buffer."""
    raise AttributeError(f"{type(obj).__name__}.{name} cannot be rebound (it is a view into "
                         f"the network's parameters): write into it instead, e.g. "
                         f"{type(obj).__name__.lower()}.{name}[...] = values")


# The cells whose parameters are a PyTorch module's (state_dict, to_torch); the others are
# variants PyTorch does not have.
_TORCH_CELLS = frozenset({"lstm", "gru", "rnn_tanh", "rnn_relu"})

# Settings fixed at construction: the C core's buffers, states, trainers and checkpoints are
# all built from them, so setting one afterwards would be ignored (or describe a network that
# does not exist). They raise AttributeError instead.
_NET_SETTINGS = frozenset({"input_size", "hidden_size", "num_layers", "output_size", "dtype",
                           "seed", "bidirectional", "nonlinearity", "layers",
                           "layers_reverse", "head", "cell", "reset_after", "peepholes"})


class Layer:
    """One recurrent layer's parameters: writable views into the network's flat buffer.

    Made by the network (``net.layers[k]``), not by users. G is the number of gates (LSTM 4,
    GRU 3, RNN 1), H the hidden size and D_k the layer's input size (``input_size`` for
    layer 0, H above). Rows are in PyTorch's gate order (LSTM i, f, g, o; GRU r, z, n); the
    dtype is the network's. Writing into a view changes the network (assign with
    ``layer.weight_ih[...] = W``; rebinding the attribute raises AttributeError).

    Parameters
    ----------
    weight_ih : ndarray, shape (G*H, D_k)
        Input-to-hidden weights.
    weight_hh : ndarray, shape (G*H, H)
        Hidden-to-hidden weights.
    bias_ih : ndarray, shape (G*H,)
        Input-to-hidden bias.
    bias_hh : ndarray, shape (G*H,)
        Hidden-to-hidden bias (GRU: ``b_hn`` stays inside the reset product).
    weight_peephole : ndarray, shape (3*H,), or None
        ``LSTM(peepholes=True)``: the peephole weights ``[p_i | p_f | p_o]``; None otherwise.

    Attributes
    ----------
    weight_ih, weight_hh, bias_ih, bias_hh : ndarray
        The views above (C-contiguous, writable).
    weight_peephole : ndarray or None
        The peephole view (writable), or None.

    Examples
    --------
    >>> import numpy as np, streamrnn as sr
    >>> net = sr.GRU(3, 8, num_layers=2, seed=0)
    >>> net.layers[0].weight_ih.shape, net.layers[1].weight_ih.shape
    ((24, 3), (24, 8))
    >>> net.layers[0].bias_hh[...] = 0.0   # writes into net.parameters()
    >>> float(abs(net.layers[0].bias_hh).sum())
    0.0
    """

    __slots__ = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_peephole")

    weight_ih: np.ndarray
    weight_hh: np.ndarray
    bias_ih: np.ndarray
    bias_hh: np.ndarray
    weight_peephole: Optional[np.ndarray]

    def __init__(self, weight_ih: np.ndarray, weight_hh: np.ndarray, bias_ih: np.ndarray,
                 bias_hh: np.ndarray, weight_peephole: Optional[np.ndarray] = None) -> None:
        for name, v in (("weight_ih", weight_ih), ("weight_hh", weight_hh),
                        ("bias_ih", bias_ih), ("bias_hh", bias_hh),
                        ("weight_peephole", weight_peephole)):
            object.__setattr__(self, name, v)

    def __setattr__(self, name: str, value: Any) -> None:
        _refuse_view_rebind(self, name)

    def __delattr__(self, name: str) -> None:
        _refuse_view_rebind(self, name)

    def __repr__(self) -> str:
        peep = ("" if self.weight_peephole is None else
                f", weight_peephole={self.weight_peephole.shape}")
        return (f"Layer(weight_ih={self.weight_ih.shape}, weight_hh={self.weight_hh.shape}, "
                f"bias_ih={self.bias_ih.shape}, bias_hh={self.bias_hh.shape}{peep})")


class Head:
    """The linear head on the top layer's h: ``y = weight @ h + bias``.

    Made by a network created with ``output_size=O`` (``net.head``; None without one), not
    by users. Its arrays are writable views into the network's flat parameter buffer, of the
    network's dtype (PyTorch ``nn.Linear(H, O)`` layout).

    Parameters
    ----------
    weight : ndarray, shape (O, H)
        Output weights.
    bias : ndarray, shape (O,)
        Output bias.

    Attributes
    ----------
    weight, bias : ndarray
        The views above (C-contiguous, writable).

    Examples
    --------
    >>> import numpy as np, streamrnn as sr
    >>> net = sr.LSTM(2, 4, output_size=3, seed=0)
    >>> net.head.weight.shape, net.head.bias.shape, net.head.weight.dtype
    ((3, 4), (3,), dtype('float32'))
    >>> sr.LSTM(2, 4).head is None
    True
    """

    __slots__ = ("weight", "bias")

    weight: np.ndarray
    bias: np.ndarray

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "bias", bias)

    def __setattr__(self, name: str, value: Any) -> None:
        _refuse_view_rebind(self, name)

    def __delattr__(self, name: str) -> None:
        _refuse_view_rebind(self, name)

    def __repr__(self) -> str:
        return f"Head(weight={self.weight.shape}, bias={self.bias.shape})"


def _rebuild(cls: type, kwargs: Dict[str, Any], params: np.ndarray,
             initial: Optional[Tuple[Any, Any]] = None) -> "_Recurrent":
    net: _Recurrent = cls(**kwargs)
    net._load_flat(params)  # exact dtype and shape, as sr.load checks (pickles, copies)
    if initial is not None:  # pickles made before initial states existed have 3 arguments
        net.set_initial_state(*initial)
    return net


def _torch_to_numpy(value: Any) -> Any:
    """A torch tensor as a NumPy array (float16/bfloat16 through float32, exactly: NumPy has
    no bfloat16, and torch's ``.numpy()`` raises TypeError for it); anything else as is."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        t = value.detach().cpu()
        if getattr(t.dtype, "is_floating_point", False) and t.element_size() < 4:
            t = t.float()       # float16 and bfloat16 are exact in float32
        try:
            return t.numpy()
        except TypeError:       # e.g. a complex or quantized dtype: named by the caller
            return t
    return value


class _Recurrent(ReadOnlySettings, _core._Network):
    """Shared implementation of LSTM, GRU and RNN. Not public: use the subclasses."""

    _cell: str = ""
    _torch_name: str = ""
    # settings, set once by _setup (read-only: see __setattr__)
    input_size: int
    hidden_size: int
    num_layers: int
    output_size: Optional[int]
    dtype: np.dtype
    seed: Optional[int]
    bidirectional: bool
    layers: Tuple[Layer, ...]
    layers_reverse: Tuple[Layer, ...]
    head: Optional[Head]

    def _setup(self, input_size: Any, hidden_size: Any, num_layers: Any, output_size: Any,
               dtype: Any, seed: Any, bidirectional: Any = False) -> None:
        D = _check_size(input_size, "input_size")
        H = _check_size(hidden_size, "hidden_size")
        L = _check_size(num_layers, "num_layers")
        O = 0 if output_size is None else _check_size(output_size, "output_size")
        dt = check_dtype(dtype)
        seed = _check_seed(seed)
        if not isinstance(bidirectional, (bool, np.bool_)):
            raise TypeError(f"bidirectional must be True or False, got "
                            f"{type(bidirectional).__name__}")
        bidirectional = bool(bidirectional)
        ndir = 2 if bidirectional else 1
        self._init_core(self._cell, D, H, L, O, dt, ndir)
        # the blocking way to share this network (and the trainers built on it) between
        # threads: every thread takes it around its calls (RELIABILITY.md, One thread contract)
        self.lock = threading.RLock()
        flat = self.parameters()
        # PyTorch's init: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)); the head's bound
        # is 1/sqrt(in_features) = 1/sqrt(H) too. Drawn in float64, then cast.
        bound = 1.0 / np.sqrt(H)
        flat[...] = np.random.default_rng(seed).uniform(-bound, bound, flat.shape[0])
        layers: List[Layer] = []
        # bidirectional: layers_reverse[k] is layer k's backward direction (PyTorch's
        # "_reverse" parameters); empty for a unidirectional network
        layers_reverse: List[Layer] = []
        head: Optional[Head] = None
        self._views: Dict[str, np.ndarray] = {}
        # the layout (names in PyTorch's named_parameters order, offsets, shapes) is the C
        # core's: _core.param_layout
        for name, off, shape in _core.param_layout(self._cell, D, H, L, O, ndir):
            self._views[name] = flat[off:off + int(np.prod(shape))].reshape(shape)
        for k in range(L):
            for sfx, dest in (("", layers), ("_reverse", layers_reverse))[:ndir]:
                v = self._views
                dest.append(Layer(v[f"weight_ih_l{k}{sfx}"], v[f"weight_hh_l{k}{sfx}"],
                                  v[f"bias_ih_l{k}{sfx}"], v[f"bias_hh_l{k}{sfx}"],
                                  v.get(f"weight_peephole_l{k}{sfx}")))
        if O:
            head = Head(self._views["head.weight"], self._views["head.bias"])
        # the settings: read-only from here on (see __setattr__)
        self.__dict__.update(bidirectional=bidirectional, input_size=D, hidden_size=H,
                             num_layers=L, output_size=O or None, dtype=dt, seed=seed,
                             layers=tuple(layers), layers_reverse=tuple(layers_reverse),
                             head=head)

    _read_only = _NET_SETTINGS
    _read_only_why = ("the network's buffers, states, trainers and checkpoints are built from "
                      "it; create a new {cls}(...) (and copy weights with load_state_dict) "
                      "instead")

    # ------------------------------------------------------------------ introspection
    @property
    def cell(self) -> str:
        """The cell kind: 'lstm', 'lstm_peephole', 'gru', 'gru_reset_before', 'rnn_tanh' or
        'rnn_relu'."""
        return self._cell

    def _kwargs(self) -> Dict[str, Any]:
        kw = dict(input_size=self.input_size, hidden_size=self.hidden_size,
                  num_layers=self.num_layers, output_size=self.output_size,
                  dtype=self.dtype.name, seed=self.seed)
        if self.bidirectional:
            kw["bidirectional"] = True
        return kw

    def __repr__(self) -> str:
        kw = self._kwargs()
        kw.pop("seed")
        args = ", ".join(f"{k}={v!r}" for k, v in kw.items())
        return f"{type(self).__name__}({args})"

    def __reduce__(self) -> Any:
        with _core._holding(self):     # one read of the weights: never a torn copy
            params = self.parameters().copy()
        initial = self._initial
        if initial is None:
            return (_rebuild, (type(self), self._kwargs(), params))
        return (_rebuild, (type(self), self._kwargs(), params, initial))

    def __copy__(self) -> "_Recurrent":
        with _core._holding(self):
            params = self.parameters().copy()
        return _rebuild(type(self), self._kwargs(), params, self._initial)

    # ------------------------------------------------------------------ initial state
    # None (zeros, the default) or a tuple (h, c or None) of read-only (L, H) arrays of the
    # network's dtype, replaced as a whole (one attribute write: a reader sees the old or
    # the new pair, never a mixture).
    _initial: Optional[Tuple[np.ndarray, Optional[np.ndarray]]] = None

    @property
    def initial_state(self) -> Optional[Tuple[np.ndarray, Optional[np.ndarray]]]:
        """The state streams start from: None (zeros) or ``(h, c)``, copies of shape
        ``(num_layers, hidden_size)`` (``c`` None unless LSTM). Set it with
        :meth:`set_initial_state`."""
        initial = self._initial
        if initial is None:
            return None
        return (initial[0].copy(), None if initial[1] is None else initial[1].copy())

    def set_initial_state(self, h: Any = None, c: Any = None) -> None:
        """Set the constant initial state that :meth:`new_state`, :meth:`new_states`,
        ``run(X)`` without a state, trainers (and their ``reset``) and forecaster streams
        start from; ``h`` and ``c`` None (both): zeros again.

        Like PyTorch's ``h0``/``c0`` (a learned initial state is such a constant once
        trained: streamrnn's trainers do not train it). Saved by ``sr.save``, pickles and
        copies; exported by ``to_onnx`` and ``to_torch``.

        Parameters
        ----------
        h : array-like, shape (num_layers, hidden_size) or (num_layers, 1, hidden_size)
            Per layer h0 (PyTorch's ``h0`` layout, the batch axis of size 1 allowed); any
            real floating dtype (torch tensors too), converted to the network's dtype. None:
            zeros.
        c : array-like or None
            LSTM only: per layer c0, as ``h``. None: zeros.

        Raises
        ------
        TypeError
            A non-floating value.
        ValueError
            A wrong shape, NaN/inf, ``c`` for a GRU or RNN, a bidirectional network (it
            runs whole windows from zero states). Nothing changes then.
        """
        L, H = self.num_layers, self.hidden_size
        if h is None and c is None:
            self._set_initial(None)
            return
        if self.bidirectional:
            raise ValueError("set_initial_state: a bidirectional network runs whole windows "
                             "from zero states; it has no initial state")
        lstm = self._cell.startswith("lstm")     # every LSTM cell kind has a c
        if c is not None and not lstm:
            raise ValueError(f"set_initial_state: c is only for an LSTM, this is a "
                             f"{type(self).__name__}")
        arrs: List[Optional[np.ndarray]] = []
        for name, v in (("h", h), ("c", c)):
            if v is None:
                arrs.append(np.zeros((L, H), self.dtype) if name == "h" or
                            lstm else None)
                continue
            v = _torch_to_numpy(v)
            label = f"set_initial_state: {name}"
            a = float_array(v, label)
            if a.shape == (L, 1, H):
                a = a.reshape(L, H)
            if a.shape != (L, H):
                raise ValueError(f"{label} must have shape ({L}, {H}) or ({L}, 1, {H}) "
                                 f"(num_layers, hidden_size), got {a.shape}")
            arrs.append(fitted(a, label, self.dtype))
        if lstm and arrs[1] is None:
            arrs[1] = np.zeros((L, H), self.dtype)
        for arr in arrs:
            if arr is not None:
                arr.flags.writeable = False
        assert arrs[0] is not None
        self._set_initial((arrs[0], arrs[1]))

    def _set_initial(self, initial: Optional[Tuple[np.ndarray, Optional[np.ndarray]]]) -> None:
        if initial is not None and not any(a is not None and a.any() for a in initial):
            initial = None     # all zeros: the same as none (exports and files stay as before)
        object.__setattr__(self, "_initial", initial)

    def reset_state(self, state: Any, index: Any = None) -> None:
        """Set a State, or a StateBatch (all streams, or those in ``index``), to this
        network's initial state (``state.reset()`` sets zeros). Takes the state as a step
        does: RuntimeError while another thread steps it.

        Raises
        ------
        TypeError
            ``state`` is not a State or StateBatch, or ``index`` given with a State.
        ValueError
            A state of another shape or dtype, or a bad ``index`` (nothing changes).
        """
        if isinstance(state, _core.StateBatch):
            h, c = state.h, state.c
        elif isinstance(state, _core.State):
            if index is not None:
                raise TypeError("reset_state: index is only for a StateBatch")
            h, c = state.h, state.c
        else:
            raise TypeError(f"reset_state: state must be a State or StateBatch, got "
                            f"{type(state).__name__}")
        L, H = self.num_layers, self.hidden_size
        if h.shape[-2:] != (L, H) or h.dtype != self.dtype or \
                (c is None) != (not self._cell.startswith("lstm")):
            raise ValueError(f"reset_state: the state {state!r} does not fit this network "
                             f"({self!r})")
        initial = self._initial
        if isinstance(state, _core.StateBatch):
            state.reset(index)      # validates index first; zeros
        else:
            state.reset()
        if initial is None:
            return
        sel = slice(None) if index is None else np.asarray(index, np.int64)
        with _core._holding(state, write=True):
            h[sel] = initial[0]
            if c is not None and initial[1] is not None:
                c[sel] = initial[1]

    def new_state(self) -> Any:
        """A State for this network: zeros, or the network's initial state (see
        :meth:`set_initial_state`): ``h`` (num_layers, H) and, for LSTM, ``c``.

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
        s = super().new_state()
        initial = self._initial
        if initial is not None:
            s.h[...] = initial[0]
            sc = s.c
            if initial[1] is not None and sc is not None:
                sc[...] = initial[1]
        return s

    def new_states(self, n: Any) -> Any:
        """A StateBatch of n streams, each at the network's initial state (zeros unless set,
        see :meth:`set_initial_state`); ``batch[i]`` is a State view of stream i.

        Parameters
        ----------
        n : int >= 1
            Number of streams.

        Returns
        -------
        StateBatch
            ``h`` (n, num_layers, H) (and ``c`` for LSTM), of the network's dtype.

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
        b = super().new_states(n)
        initial = self._initial
        if initial is not None:
            b.h[...] = initial[0]
            bc = b.c
            if initial[1] is not None and bc is not None:
                bc[...] = initial[1]
        return b

    def __deepcopy__(self, memo: Any) -> "_Recurrent":
        return self.__copy__()

    # ------------------------------------------------------------------ state dict
    def state_dict(self) -> Dict[str, np.ndarray]:
        """Copies of every parameter under PyTorch's key names.

        Keys: ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}`` (as
        ``torch.nn.LSTM/GRU/RNN``; bidirectional networks also the ``..._l{k}_reverse`` keys,
        in ``named_parameters`` order) and, with a head, ``head.weight`` and ``head.bias``.

        One consistent read: raises RuntimeError (rather than mixing two weight versions)
        while a trainer or ``load_state_dict`` in another thread writes the weights.

        Raises ValueError for a cell PyTorch does not have (``GRU(reset_after=False)``,
        ``LSTM(peepholes=True)``): its arrays under ``torch.nn.GRU``'s names would load into
        PyTorch and compute another function. Its weights are ``parameters()`` and the views
        ``layers``/``head``.
        """
        if self._cell not in _TORCH_CELLS:
            raise ValueError(f"state_dict: {self!r} (cell {self._cell!r}) has no PyTorch "
                             f"equivalent, so no PyTorch state dict (torch.nn.GRU would load "
                             f"it and compute something else); read its weights with "
                             f"parameters() or the views layers[k].weight_ih, ... and head, "
                             f"or save it with sr.save / sr.to_onnx")
        with _core._holding(self):
            return {k: v.copy() for k, v in self._views.items()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Replace every parameter, strictly and atomically.

        Values may be NumPy arrays, array-likes or torch tensors of any real floating dtype
        (torch float16 and bfloat16 too, read exactly through float32); they are converted to
        the network's dtype (like ``torch.nn.Module.load_state_dict``). The initial state
        (:meth:`set_initial_state`) is not part of it (as in PyTorch's ``nn.LSTM``).

        Raises
        ------
        TypeError
            ``state_dict`` is not a mapping, or a value is not a real floating array.
        ValueError
            A key is missing or unexpected, a shape differs, or a value is NaN/inf.
            Nothing is changed when anything raises.
        RuntimeError
            Another thread is stepping, training, copying or saving the network.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping of names to arrays, got "
                            f"{type(state_dict).__name__}")
        expected = set(self._views)
        given = set(state_dict)
        missing = sorted(expected - given)
        unexpected = sorted(map(str, given - expected))
        if missing or unexpected:
            raise ValueError(f"state_dict keys do not match this {type(self).__name__}: "
                             f"missing {missing}, unexpected {unexpected}")
        staged = {}
        for key, view in self._views.items():
            value = _torch_to_numpy(state_dict[key])
            label = f"state_dict[{key!r}]"
            arr = float_array(value, label)
            if arr.shape != view.shape:
                raise ValueError(f"{label} must have shape {view.shape}, got {arr.shape}")
            staged[key] = fitted(arr, label, self.dtype)
        self._begin_write()
        try:
            for key, arr in staged.items():
                self._views[key][...] = arr
        finally:
            self._end_write()

    # ------------------------------------------------------------------ interop
    def to_torch(self) -> Any:
        """The equivalent PyTorch module: see :func:`streamrnn.to_torch` (needs torch)."""
        from .interop.torch import to_torch
        return to_torch(self)  # type: ignore[arg-type]


class LSTM(_Recurrent):
    """Long short-term memory network stepped one sample at a time (PyTorch's ``nn.LSTM``).

    Gates in PyTorch's row order i, f, g, o: ``c' = f*c + i*g``, ``h' = o*tanh(c')``.

    Parameters
    ----------
    input_size : int >= 1
        D, the length of each input vector x.
    hidden_size : int >= 1
        H, the length of every layer's h (and c).
    num_layers : int >= 1
        Stacked layers; layer k+1 reads layer k's new h.
    output_size : int >= 1 or None
        O, a linear head ``y = W h_top + b``; None returns the top layer's h.
    dtype : 'float32' (default) or 'float64'
        Of the parameters, states, inputs and outputs (no silent casts of NumPy inputs:
        a float64 array given to a float32 network raises TypeError).
    seed : int or None
        Seed of the PyTorch-style init ``U(-1/sqrt(H), 1/sqrt(H))``.
    bidirectional : bool, default False
        Per layer a forward and a backward direction over a whole window, their h
        concatenated (2H) as the next layer's input and the head's input (PyTorch's
        ``bidirectional=True``, with its ``_reverse`` parameter names). Such a network reads
        the future: only ``run(X)`` (whole windows) and :class:`streamrnn.SequenceTrainer`
        work; ``step``, ``step_many``, ``new_state`` and ``OnlineTrainer`` raise ValueError.
    peepholes : bool, default False
        Peephole connections (ONNX's ``P``): ``i = sigmoid(. + p_i*c)``,
        ``f = sigmoid(. + p_f*c)`` with the previous c, ``o = sigmoid(. + p_o*c')`` with the
        new one; per layer one more trainable parameter, ``weight_peephole`` (3H,) =
        ``[p_i | p_f | p_o]`` (cell ``'lstm_peephole'``). PyTorch has no such LSTM:
        ``state_dict`` and ``to_torch`` raise ValueError.

    Attributes
    ----------
    layers : tuple of Layer
        Per layer, writable views ``weight_ih`` (4H, D_k), ``weight_hh`` (4H, H),
        ``bias_ih`` and ``bias_hh`` (4H,) into :meth:`parameters`.
    head : Head or None
        ``weight`` (O, H) and ``bias`` (O,) when ``output_size`` is set.
    input_size, hidden_size, num_layers : int
        D, H, L.
    output_size : int or None
        O.
    dtype : numpy.dtype
        float32 or float64.
    lock : threading.RLock
        Taken by no streamrnn call: to share the network (or a trainer on it, whose
        ``.lock`` it is) between threads, take it around every call in every thread, so
        calls wait instead of raising RuntimeError (RELIABILITY.md, "One thread contract").

    The settings above (and ``seed``, ``bidirectional``, ``cell``) are read-only: setting
    one raises AttributeError, since buffers, states, trainers and checkpoints are built from
    them. The weights are changed through the views (``layer.weight_ih[...] = W``) or
    :meth:`load_state_dict`.

    Raises
    ------
    TypeError, ValueError
        A size that is not an integer >= 1, an unknown dtype, a negative seed.

    Notes
    -----
    Threads: steps are readers of the weights and writers of their state (different
    states step in parallel); trainer calls and ``load_state_dict`` write the weights;
    ``state_dict``, copies, pickles and ``sr.save`` read them at one moment. A call that
    meets a conflicting one in another thread raises RuntimeError and changes nothing.
    ``parameters()`` and the layer views are live buffers outside this rule.

    See Also
    --------
    GRU, RNN : the other cells, with the same interface.
    OnlineTrainer : online training with truncated BPTT.

    Examples
    --------
    >>> import numpy as np, streamrnn as sr
    >>> net = sr.LSTM(3, 16, output_size=1, seed=0)
    >>> s = net.new_state()
    >>> y = net.step(np.zeros(3, np.float32), s)
    >>> y.shape, s.h.shape, s.c.shape
    ((1,), (1, 16), (1, 16))
    >>> bi = sr.LSTM(3, 8, num_layers=2, bidirectional=True, seed=0)
    >>> bi.run(np.zeros((5, 3), np.float32)).shape
    (5, 16)
    """

    peepholes: bool

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 output_size: Optional[int] = None, dtype: Any = "float32",
                 seed: Optional[int] = None, bidirectional: bool = False,
                 peepholes: bool = False) -> None:
        if not isinstance(peepholes, (bool, np.bool_)):
            raise TypeError(f"peepholes must be True or False, got {type(peepholes).__name__}")
        self._cell = "lstm_peephole" if peepholes else "lstm"
        self.__dict__["peepholes"] = bool(peepholes)   # read-only (see __setattr__)
        self._setup(input_size, hidden_size, num_layers, output_size, dtype, seed,
                    bidirectional)

    def _kwargs(self) -> Dict[str, Any]:
        kw = super()._kwargs()
        if self.peepholes:
            kw["peepholes"] = True
        return kw


class GRU(_Recurrent):
    """Gated recurrent unit network stepped one sample at a time (PyTorch's ``nn.GRU``).

    Gates in PyTorch's row order r, z, n: ``n = tanh(W_in x + b_in + r*(W_hn h + b_hn))``,
    ``h' = (1-z)*n + z*h`` (``b_hn`` stays inside the reset product). With
    ``reset_after=False`` the reset gate acts on h before the recurrent product instead:
    ``n = tanh(W_in x + b_in + W_hn (r*h) + b_hn)`` (ONNX's ``linear_before_reset=0``, Keras'
    ``reset_after=False``; the same parameters and shapes; cell ``'gru_reset_before'``).
    States have ``h`` (num_layers, H) and no ``c``.

    Parameters
    ----------
    input_size : int >= 1
        D, the length of each input vector x.
    hidden_size : int >= 1
        H, the length of every layer's h.
    num_layers : int >= 1
        Stacked layers; layer k+1 reads layer k's new h.
    output_size : int >= 1 or None
        O, a linear head ``y = W h_top + b``; None returns the top layer's h.
    dtype : 'float32' (default) or 'float64'
        Of the parameters, states, inputs and outputs (no silent casts of NumPy inputs).
    seed : int or None
        Seed of the PyTorch-style init ``U(-1/sqrt(H), 1/sqrt(H))``.
    bidirectional : bool, default False
        Forward and backward directions over whole windows (see :class:`LSTM`).
    reset_after : bool, default True
        True: PyTorch's GRU (the reset gate multiplies ``W_hn h + b_hn``). False: the reset
        gate multiplies h before the recurrent product (ONNX ``linear_before_reset=0``,
        Keras ``reset_after=False``). Such a network has no PyTorch equivalent:
        ``to_torch`` raises ValueError; ``state_dict`` keeps PyTorch's key names.

    Raises
    ------
    TypeError, ValueError
        A size that is not an integer >= 1, an unknown dtype, a negative seed,
        ``reset_after`` not a bool.

    See Also
    --------
    LSTM : the same interface, with a cell state c.

    Examples
    --------
    >>> import streamrnn as sr
    >>> net = sr.GRU(2, 8, num_layers=2, dtype="float64", seed=1)
    >>> net.run([[0.5, -1.0], [0.0, 2.0]], net.new_state()).shape
    (2, 8)
    >>> sr.GRU(2, 8, reset_after=False).cell
    'gru_reset_before'
    """

    reset_after: bool

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 output_size: Optional[int] = None, dtype: Any = "float32",
                 seed: Optional[int] = None, bidirectional: bool = False,
                 reset_after: bool = True) -> None:
        if not isinstance(reset_after, (bool, np.bool_)):
            raise TypeError(f"reset_after must be True or False, got "
                            f"{type(reset_after).__name__}")
        self._cell = "gru" if reset_after else "gru_reset_before"
        self.__dict__["reset_after"] = bool(reset_after)   # read-only (see __setattr__)
        self._setup(input_size, hidden_size, num_layers, output_size, dtype, seed,
                    bidirectional)

    def _kwargs(self) -> Dict[str, Any]:
        kw = super()._kwargs()
        if not self.reset_after:
            kw["reset_after"] = False
        return kw


class RNN(_Recurrent):
    """Elman network (PyTorch's ``nn.RNN``): ``h' = act(W_ih x + b_ih + W_hh h + b_hh)``.

    One gate (G = 1); states have ``h`` (num_layers, H) and no ``c``.

    Parameters
    ----------
    input_size : int >= 1
        D, the length of each input vector x.
    hidden_size : int >= 1
        H, the length of every layer's h.
    num_layers : int >= 1
        Stacked layers; layer k+1 reads layer k's new h.
    output_size : int >= 1 or None
        O, a linear head ``y = W h_top + b``; None returns the top layer's h.
    nonlinearity : {'tanh', 'relu'}
        The activation ``act``; the cell kind is then ``'rnn_tanh'`` or ``'rnn_relu'``.
    dtype : 'float32' (default) or 'float64'
        Of the parameters, states, inputs and outputs (no silent casts of NumPy inputs).
    seed : int or None
        Seed of the PyTorch-style init ``U(-1/sqrt(H), 1/sqrt(H))``.

    Raises
    ------
    TypeError, ValueError
        A size that is not an integer >= 1, an unknown nonlinearity or dtype, a negative
        seed.

    Examples
    --------
    >>> import streamrnn as sr
    >>> net = sr.RNN(1, 4, nonlinearity="relu", seed=2)
    >>> net.cell
    'rnn_relu'
    """

    nonlinearity: str

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 output_size: Optional[int] = None, nonlinearity: str = "tanh",
                 dtype: Any = "float32", seed: Optional[int] = None,
                 bidirectional: bool = False) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self._cell = "rnn_" + nonlinearity
        self.__dict__["nonlinearity"] = nonlinearity   # read-only (see __setattr__)
        self._setup(input_size, hidden_size, num_layers, output_size, dtype, seed,
                    bidirectional)

    def _kwargs(self) -> Dict[str, Any]:
        kw = super()._kwargs()
        kw["nonlinearity"] = self.nonlinearity
        return kw
