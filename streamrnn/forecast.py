"""Online forecasting of univariate streams: :class:`Forecaster` (river's conventions).

A forecaster wraps a recurrent network with a linear head, an :class:`~streamrnn.OnlineTrainer`
per stream and online scalers, and follows river's forecaster interface::

    f = sr.Forecaster(hidden_size=32, seed=0)
    for y in stream:
        y_hat = f.forecast(horizon=3)   # the next 3 values, before y arrives
        f.learn_one(y)                  # learn from y, advance the stream

How one observation is processed
--------------------------------
The network steps once per observed value. The step that predicts ``y_{t+1}`` reads
``u = [level_t, (change_t), x_{t+1}...]``: the scaled last value ``(y_t - mean_y) / std_y``;
with ``differencing=True`` also the scaled change ``(y_t - y_{t-1} - mean_d) / std_d``; then
the scaled exogenous features that come *with* ``y_{t+1}`` (river's convention: ``x`` is
observed together with ``y``, and ``forecast`` receives the future ``xs``). Its output is the
scaled forecast of ``y_{t+1}`` (with differencing: of the change ``y_{t+1} - y_t``).

Without exogenous features (``n_features == 0``) that step runs as soon as ``y_t`` is known,
inside ``learn_one(y_t)``, with the trainer's two halves of a training step::

    learn_one(y_t):  trainer.observe(target of y_t)   # scores the prediction made before
                                                      # y_t arrived; TBPTT update every k1
                     trainer.advance(u_t)             # the one forward step: predicts y_{t+1}

so each value costs exactly one forward step. The output of ``advance`` is kept (in scaled
units) as the stream's pending prediction: ``forecast(1)`` only scales it back, with no
forward step at all, and it is exactly the number that the next ``learn_one`` scores.
``forecast(h)`` for ``h > 1`` rolls out steps 2..h on a scratch copy of the (already
advanced) state, feeding each forecast back as the next input; the live state, the weights
and the scalers are never touched.

With exogenous features the step that predicts ``y_{t+1}`` needs ``x_{t+1}``, which arrives
only with ``learn_one(y_{t+1}, x_{t+1})`` (or as ``xs[0]`` of a forecast). That step is then
run lazily: ``learn_one(y_{t+1}, x_{t+1})`` first advances the stream with the now complete
input, then gives it its target (still one live forward step per value, the same numbers as
``trainer.learn_one``); ``forecast`` runs the step on a scratch copy of the state with
``xs[0]`` (``OnlineTrainer.predict_one`` for one step), so with features a forecast costs one
extra forward pass on the copy. Either way, ``forecast(1, xs=[x_{t+1}])`` is the prediction
that ``learn_one(y_{t+1}, x_{t+1})`` learns from.

Scaling and missing values
--------------------------
Targets and features are standardised with running means and variances (all history, or an
exponentially weighted window with ``scale_halflife``), so series of any magnitude train
with the same settings. Predictions are scaled back with the statistics of the time they
were made, and a target is scaled with those same statistics before the loss, so the loss
is the error of the forecast actually returned. Scaled inputs and targets are clipped to
+-10 standard deviations. While a scaler has seen fewer than two distinct values, steps
train without a loss (a short warm-up).

``y = NaN`` (or None) is a missing value: the stream advances one step without a loss (no
weight update can come from it) and the model's own one-step forecast stands in for the
missing value as the next input. A missing exogenous feature (NaN) is replaced by its
running mean.

Many streams (``key=``)
-----------------------
Every call takes an optional ``key`` naming the stream (any hashable; str, int or None to be
savable). ``weights="shared"`` (default) keeps one network whose weights every stream trains
(a global model: each stream has its own recurrent state, TBPTT ring buffer, optimizer
moments and scalers); ``weights="per_key"`` gives each stream a network of its own (same
initial weights from ``seed``). :meth:`Forecaster.memory_per_stream` measures the bytes one
more stream costs. With shared weights and no features, a stream's one-step forecast is made
when its newest value arrives, so it reflects the weights of that moment; updates that other
streams make afterwards enter its forecasts from its next value on (and its rollout steps
2..h, which run in ``forecast``, use the current weights).
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Any, Dict, Hashable, Iterator, List, Mapping, Optional, Sequence, Union

import numpy as np

from ._signals import critical
from . import _threads
from .network import GRU, LSTM, RNN, _Recurrent, _check_dtype, _check_seed, _check_size
from .optim import SGD, Adam, RMSprop
from ._checks import MAX_WINDOW, check_clip as _check_clip, check_int as _check_int
from .trainer import OnlineTrainer

__all__ = ["Forecaster"]

_CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")
_CLIP = 10.0            # scaled inputs and targets are clipped to [-_CLIP, _CLIP]
_MISSING = float("nan")
# Largest magnitude of an observed value or feature: the running variance squares differences
# of values, and (2 * 1e150)**2 = 4e300 still fits a float64 with room for the update; larger
# values would turn the statistics into inf/NaN and the scaled inputs into garbage.
MAX_ABS = 1e150


def _make_net(cell: str, input_size: int, hidden_size: int, num_layers: int, dtype: Any,
              seed: Optional[int]) -> _Recurrent:
    if cell == "lstm":
        return LSTM(input_size, hidden_size, num_layers, 1, dtype=dtype, seed=seed)
    if cell == "gru":
        return GRU(input_size, hidden_size, num_layers, 1, dtype=dtype, seed=seed)
    return RNN(input_size, hidden_size, num_layers, 1, nonlinearity=cell[4:], dtype=dtype,
               seed=seed)


class _Scaler:
    """Running mean and (population) variance of one or more series.

    The update weight of a new value is ``max(1/n, alpha)``: with ``alpha = 0`` these are the
    exact statistics of all values so far (Welford), otherwise an exponentially weighted
    window with half-life ``log(0.5) / log(1 - alpha)`` that starts as the exact statistics.
    """

    __slots__ = ("n", "mean", "var", "alpha")

    def __init__(self, size: int, alpha: float) -> None:
        self.n = np.zeros(size, dtype=np.float64)
        self.mean = np.zeros(size, dtype=np.float64)
        self.var = np.zeros(size, dtype=np.float64)
        self.alpha = alpha

    def update(self, v: np.ndarray) -> None:
        """Add the finite components of v (NaN components are skipped)."""
        ok = np.isfinite(v)
        if not ok.all():
            idx = np.flatnonzero(ok)
            for i in idx:
                self._update1(int(i), float(v[i]))
            return
        n = self.n + 1.0
        a = np.maximum(1.0 / n, self.alpha)
        d = v - self.mean
        self.mean = self.mean + a * d
        self.var = (1.0 - a) * (self.var + a * d * d)
        self.n = n

    def _update1(self, i: int, v: float) -> None:
        n = self.n[i] + 1.0
        a = max(1.0 / n, self.alpha)
        d = v - self.mean[i]
        self.mean[i] += a * d
        self.var[i] = (1.0 - a) * (self.var[i] + a * d * d)
        self.n[i] = n

    def std(self) -> np.ndarray:
        # floor: a constant series (var 0) must not divide by zero; the clip bounds the rest
        floor = 1e-8 * np.maximum(1.0, np.abs(self.mean))
        return np.maximum(np.sqrt(self.var), floor)

    def ready(self) -> np.ndarray:
        return (self.n >= 2) & (self.var > 0)

    def pack(self) -> np.ndarray:
        return np.stack([self.n, self.mean, self.var])

    def unpack(self, a: np.ndarray) -> None:
        self.n, self.mean, self.var = (np.array(a[0]), np.array(a[1]), np.array(a[2]))


class _FloatScaler:
    """:class:`_Scaler` of one series with Python floats (the per-step hot path)."""

    __slots__ = ("n", "mean", "var", "alpha")

    def __init__(self, alpha: float) -> None:
        self.n = 0.0
        self.mean = 0.0
        self.var = 0.0
        self.alpha = alpha

    def update(self, v: float) -> None:
        n = self.n + 1.0
        a = max(1.0 / n, self.alpha)
        d = v - self.mean
        self.mean += a * d
        self.var = (1.0 - a) * (self.var + a * d * d)
        self.n = n

    def std(self) -> float:
        return max(math.sqrt(self.var), 1e-8 * max(1.0, abs(self.mean)))

    def ready(self) -> bool:
        return self.n >= 2 and self.var > 0

    def pack(self) -> List[float]:
        return [self.n, self.mean, self.var]

    def unpack(self, a: "Sequence[float] | np.ndarray") -> None:
        self.n, self.mean, self.var = float(a[0]), float(a[1]), float(a[2])


def _clip(v: float) -> float:
    return _CLIP if v > _CLIP else (-_CLIP if v < -_CLIP else v)


class _Stream:
    """Everything one keyed stream owns: its trainer (state, ring, moments), its scalers, the
    input of the step that predicts its next value and, once that step has run (no
    features), its output."""

    __slots__ = ("trainer", "sy", "sd", "sx", "u", "last_y", "n_obs", "n_missing",
                 "n_seen", "o", "target")

    def __init__(self, trainer: OnlineTrainer, alpha: float, n_features: int,
                 dtype: np.dtype, input_size: int) -> None:
        self.trainer = trainer
        self.sy = _FloatScaler(alpha)
        self.sd = _FloatScaler(alpha)
        self.sx = _Scaler(n_features, alpha)
        self.u = np.zeros(input_size, dtype=dtype)   # input of the step predicting next
        # scaled output of that step once it has run (trainer.advance, waiting for its
        # target in the trainer); None while it has not run (features: it runs lazily)
        self.o: Optional[float] = None
        self.target = np.empty(1, dtype=dtype)       # buffer for trainer.observe
        self.last_y = _MISSING    # newest value (observed, or the model's stand-in)
        self.n_seen = 0           # learn_one calls (observed or missing)
        self.n_obs = 0            # observed (finite) values
        self.n_missing = 0        # missing values (NaN/None)


_Key = Hashable


class Forecaster:
    """Online univariate forecaster: a recurrent network trained one observation at a time.

    river's forecaster interface: ``learn_one(y, x=None)`` and ``forecast(horizon, xs=None)``,
    plus an optional ``key=`` on both for many independent streams.

    Parameters
    ----------
    cell : {'lstm', 'gru', 'rnn_tanh', 'rnn_relu'}, default 'lstm'
    hidden_size : int, default 32
    num_layers : int, default 1
    k1, k2 : int, default 1 and 32
        Truncated BPTT: update every k1 observations, backpropagate through k2 steps.
    optimizer : SGD, Adam or RMSprop, default ``Adam(lr=5e-3)``
    clip_norm : float or None, default 1.0
        Gradient L2-norm clipping of every update.
    seed : int or None
        Seed of the initial weights (every per-key network gets the same initial weights).
    differencing : bool, default True
        Model the change ``y_{t+1} - y_t`` (a forecast is the last value plus the predicted
        change, so an untrained model is the persistence forecast); the scaled level stays an
        input. False: model the level itself.
    scale : bool, default True
        Standardise targets and features online. Without it, raw values go to the network
        (only for series already of order 1).
    scale_halflife : float or None, default None
        None: scaling statistics of all history; a number of observations: exponentially
        weighted statistics with that half-life (for drifting streams).
    n_features : int or None, default None
        Number of exogenous features; None: taken from the first ``learn_one`` (0 without x).
    dtype : 'float32' (default) or 'float64'
        The network's dtype (inputs are converted internally).
    weights : {'shared', 'per_key'}, default 'shared'
        With several keys: one network trained by all streams, or one network per stream.
    threadsafe : bool, default False
        Threads: ``learn_one``/``learn_many``/``forget`` are writers, ``forecast``/``stats``
        and ``sr.save`` readers; a call meeting a conflicting one in another thread raises
        RuntimeError at once (nothing changed; readers share). True: every call first takes
        ``self.lock`` (an RLock), so calls from several threads wait for each other. Not
        saved: set ``f.threadsafe = True`` after ``sr.load`` if needed.

    Attributes
    ----------
    net : LSTM, GRU or RNN or None
        The shared network (None before the first observation, and with ``weights='per_key'``;
        see :meth:`network`).

    Raises
    ------
    TypeError, ValueError
        Bad settings (an unknown cell or weights mode, a size that is not an integer >= 1,
        ``k2 < k1``, an optimizer that is not SGD/Adam/RMSprop, a non-bool flag). In
        ``learn_one``/``forecast``: a value that is not a number, inf, features of the wrong
        number or names, an unhashable key; nothing changes then.
    KeyError
        ``network``, ``trainer``, ``stats`` or ``forget`` of an unknown key.

    See Also
    --------
    evaluate : progressive validation against the persistence forecast.

    Examples
    --------
    >>> import math, streamrnn as sr
    >>> f = sr.Forecaster(hidden_size=16, seed=0)
    >>> for t in range(200):
    ...     f.learn_one(10 + 5 * math.sin(0.3 * t))
    >>> len(f.forecast(horizon=3))
    3
    """

    def __init__(self, cell: str = "lstm", hidden_size: int = 32, num_layers: int = 1,
                 k1: int = 1, k2: int = 32,
                 optimizer: Optional[Union[SGD, Adam, RMSprop]] = None,
                 clip_norm: Optional[float] = 1.0, seed: Optional[int] = None, *,
                 differencing: bool = True, scale: bool = True,
                 scale_halflife: Optional[float] = None, n_features: Optional[int] = None,
                 dtype: Any = "float32", weights: str = "shared",
                 threadsafe: bool = False) -> None:
        if cell not in _CELLS:
            raise ValueError(f"cell must be one of {list(_CELLS)}, got {cell!r}")
        hidden_size = _check_size(hidden_size, "hidden_size")
        num_layers = _check_size(num_layers, "num_layers")
        k1 = _check_int(k1, "k1", 1, MAX_WINDOW)
        k2 = _check_int(k2, "k2", 1, MAX_WINDOW)
        if k2 < k1:
            raise ValueError(f"k2 must be >= k1 (= {k1}), got {k2}")
        if optimizer is None:
            optimizer = Adam(lr=5e-3)
        if not isinstance(optimizer, (SGD, Adam, RMSprop)):
            raise TypeError(f"optimizer must be streamrnn.SGD, Adam or RMSprop, got "
                            f"{type(optimizer).__name__}")
        _check_clip(clip_norm, "clip_norm")
        seed = _check_seed(seed)
        for name, flag in (("differencing", differencing), ("scale", scale)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {type(flag).__name__} {flag!r}")
        if scale_halflife is not None:
            if isinstance(scale_halflife, (bool, np.bool_)) or not isinstance(scale_halflife,
                                                                              Real):
                raise TypeError(f"scale_halflife must be None or a number > 0, got "
                                f"{type(scale_halflife).__name__} {scale_halflife!r}")
            if not (math.isfinite(float(scale_halflife)) and scale_halflife > 0):
                raise ValueError(f"scale_halflife must be None or a finite number > 0, got "
                                 f"{scale_halflife!r}")
            scale_halflife = float(scale_halflife)
        if n_features is not None:
            n_features = _check_int(n_features, "n_features", 0)
        dt = _check_dtype(dtype)
        if weights not in ("shared", "per_key"):
            raise ValueError(f"weights must be 'shared' or 'per_key', got {weights!r}")
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.k1 = k1
        self.k2 = k2
        self.optimizer = optimizer
        self.clip_norm = clip_norm
        self.seed = seed
        self.differencing = bool(differencing)
        self.scale = bool(scale)
        self.scale_halflife = scale_halflife
        self.n_features = n_features
        self.feature_names: Optional[List[str]] = None
        self.dtype = dt
        self.weights = weights
        self.net: Optional[_Recurrent] = None
        self._streams: Dict[_Key, _Stream] = {}
        self._alpha = 0.0 if scale_halflife is None else 1.0 - 0.5 ** (1.0 / scale_halflife)
        _threads.setup(self, threadsafe)   # .threadsafe, .lock, ._guard (One thread contract)

    # threads: sr.save's read hold, pickling inside one read hold (see streamrnn/_threads.py)
    threadsafe: bool
    lock: Any          # a threading.RLock
    _reading = _threads.reading
    __getstate__ = _threads.getstate
    __setstate__ = _threads.setstate

    # ------------------------------------------------------------------ settings
    def _settings(self) -> Dict[str, Any]:
        return dict(cell=self.cell, hidden_size=self.hidden_size, num_layers=self.num_layers,
                    k1=self.k1, k2=self.k2, optimizer=self.optimizer,
                    clip_norm=self.clip_norm, seed=self.seed, differencing=self.differencing,
                    scale=self.scale, scale_halflife=self.scale_halflife,
                    n_features=self.n_features, dtype=self.dtype.name, weights=self.weights)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        return f"Forecaster({args})"

    @property
    def input_size(self) -> Optional[int]:
        """The network's input size: 1 (level) + 1 with differencing + n_features."""
        if self.n_features is None:
            return None
        return 1 + int(self.differencing) + self.n_features

    # ------------------------------------------------------------------ streams
    def _new_network(self) -> _Recurrent:
        assert self.input_size is not None
        return _make_net(self.cell, self.input_size, self.hidden_size, self.num_layers,
                         self.dtype, self.seed)

    def _new_stream(self) -> _Stream:
        if self.weights == "shared":
            if self.net is None:
                self.net = self._new_network()
            net = self.net
        else:
            net = self._new_network()
        tr = OnlineTrainer(net, loss="mse", optimizer=self.optimizer, k1=self.k1, k2=self.k2,
                           clip_norm=self.clip_norm)
        assert self.n_features is not None and self.input_size is not None
        return _Stream(tr, self._alpha, self.n_features, self.dtype, self.input_size)

    def _stream(self, key: _Key) -> _Stream:
        try:
            s = self._streams.get(key)
        except TypeError:
            raise TypeError(f"key must be hashable, got {type(key).__name__}") from None
        if s is None:
            s = self._new_stream()
            self._streams[key] = s
        return s

    @_threads.reads
    def keys(self) -> List[_Key]:
        """The keys of the streams seen so far, in order of first appearance."""
        return list(self._streams)

    def __contains__(self, key: object) -> bool:
        return key in self._streams

    def __len__(self) -> int:
        """Number of streams."""
        return len(self._streams)

    def __iter__(self) -> Iterator[_Key]:
        return iter(self._streams)

    @_threads.reads
    def network(self, key: _Key = None) -> Optional[_Recurrent]:
        """The network that forecasts stream ``key`` (the shared one with weights='shared')."""
        if self.weights == "shared":
            return self.net
        s = self._streams.get(key)
        return None if s is None else s.trainer.net

    @_threads.reads
    def trainer(self, key: _Key = None) -> Optional[OnlineTrainer]:
        """The OnlineTrainer of stream ``key`` (None for an unseen key)."""
        s = self._streams.get(key)
        return None if s is None else s.trainer

    @_threads.writes
    def forget(self, key: _Key = None) -> None:
        """Drop stream ``key`` (its state, scalers and buffers); shared weights are kept."""
        try:
            del self._streams[key]
        except KeyError:
            raise KeyError(f"no stream with key {key!r}") from None

    @_threads.reads
    def stats(self, key: _Key = None) -> Dict[str, Any]:
        """Counters of stream ``key``: observations, missing values, trainer statistics."""
        s = self._streams.get(key)
        if s is None:
            raise KeyError(f"no stream with key {key!r}")
        d: Dict[str, Any] = {"observations": s.n_obs, "missing": s.n_missing,
                             "steps": s.n_seen}
        d.update({f"trainer_{k}": v for k, v in s.trainer.stats().items()})
        return d

    @_threads.writes
    def memory_per_stream(self) -> int:
        """Bytes that one more stream costs, measured (with tracemalloc) by creating one.

        With ``weights='shared'``: the trainer's buffers (ring of k2 recorded steps, gradient
        and optimizer moments, scratch), the recurrent state, scalers and bookkeeping. With
        ``weights='per_key'`` also a network. Needs ``n_features`` known (after the first
        ``learn_one``, or given to the constructor).
        """
        import gc
        import tracemalloc

        if self.n_features is None:
            raise RuntimeError("n_features is not known yet: give n_features= or call "
                               "learn_one first")
        if self.weights == "shared" and self.net is None:
            self.net = self._new_network()
        started = not tracemalloc.is_tracing()
        if started:
            tracemalloc.start()
        try:
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            s = self._new_stream()
            s.sx.update(np.zeros(self.n_features))
            after = tracemalloc.get_traced_memory()[0]
            del s
        finally:
            if started:
                tracemalloc.stop()
        return int(after - before)

    # ------------------------------------------------------------------ inputs
    def _features(self, x: Any, name: str, commit: bool = True) -> Optional[np.ndarray]:
        """x (None, a mapping of feature names, or a sequence) as a float64 array (NaN for a
        missing feature), or None without features. With ``commit``, the first call fixes
        ``n_features`` (and ``feature_names`` for a mapping); nothing is fixed on error."""
        nf = self.n_features
        if x is None:
            if nf is None and commit:
                self.n_features = 0
                nf = 0
            return None if not nf else np.full(nf, np.nan)
        if isinstance(x, Mapping):
            names = self.feature_names
            if names is None:
                names = [str(k) for k in x]
                if len(set(names)) != len(names):
                    raise ValueError(f"{name} has duplicate feature names {names}")
                if nf is not None and nf != len(names):
                    raise ValueError(f"{name} must have {nf} features, got {len(names)}")
            idx = {n: i for i, n in enumerate(names)}
            v = np.full(len(names), np.nan)
            for k, val in x.items():
                i = idx.get(str(k))
                if i is None:
                    raise ValueError(f"{name} has an unknown feature {k!r}; known: {names}")
                v[i] = self._number(val, f"{name}[{k!r}]")
            if commit and self.feature_names is None:
                self.feature_names = names
                self.n_features = len(names)
            return v
        if isinstance(x, (str, bytes)):
            raise TypeError(f"{name} must be None, a mapping or a sequence of numbers, got "
                            f"{type(x).__name__}")
        try:
            arr = np.array(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be None, a mapping or a sequence of numbers, got "
                            f"{type(x).__name__}") from None
        if arr.ndim == 0:
            arr = arr.reshape(1)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
        if nf is not None and arr.shape[0] != nf:
            raise ValueError(f"{name} must have {nf} features, got {arr.shape[0]}")
        if (np.abs(arr) > MAX_ABS).any():        # (inf included; NaN compares False)
            if np.isinf(arr).any():
                raise ValueError(f"{name} must not hold inf (NaN marks a missing feature)")
            raise ValueError(f"{name} must have magnitudes <= {MAX_ABS:g}, got "
                             f"{np.nanmax(np.abs(arr)):g}")
        if commit and nf is None:
            self.n_features = arr.shape[0]
        return arr

    @staticmethod
    def _number(v: Any, name: str) -> float:
        if v is None:
            return _MISSING
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (Real, np.number)):
            raise TypeError(f"{name} must be a number or None, got {type(v).__name__} {v!r}")
        f = float(v)
        if math.isinf(f):
            raise ValueError(f"{name} must be finite or NaN (missing), got {f}")
        if abs(f) > MAX_ABS:
            raise ValueError(f"{name} must have magnitude <= {MAX_ABS:g}, got {f}")
        return f

    def _fill_y(self, s: _Stream, u: np.ndarray, y: float, prev: float) -> None:
        """u[:1 or 2] <- the scaled level of y (and its change from prev, NaN at the start)."""
        u[0] = _clip((y - s.sy.mean) / s.sy.std()) if self.scale else _clip(y)
        if self.differencing:
            if prev != prev:
                u[1] = 0.0
            elif self.scale:
                u[1] = _clip((y - prev - s.sd.mean) / s.sd.std())
            else:
                u[1] = _clip(y - prev)

    def _fill_x(self, s: _Stream, u: np.ndarray, xv: Optional[np.ndarray]) -> None:
        """u[j:] <- the scaled features xv (None or NaN entries: their running means)."""
        if not self.n_features:
            return
        sx = s.sx
        if xv is None:
            z = np.zeros(self.n_features) if self.scale else sx.mean.copy()
        else:
            xm = np.where(np.isnan(xv), sx.mean, xv)
            z = (xm - sx.mean) / sx.std() if self.scale else xm
        np.clip(z, -_CLIP, _CLIP, out=z)
        u[1 + int(self.differencing):] = z

    def _unscale(self, s: _Stream, o: float, base: float) -> float:
        """The forecast in the series' units from the network's output o (base: the value
        the forecast continues, for differencing)."""
        if self.differencing:
            return base + (o * s.sd.std() + s.sd.mean if self.scale else o)
        return o * s.sy.std() + s.sy.mean if self.scale else o

    def _target(self, s: _Stream, y: float) -> float:
        """The scaled target of the pending step for the observed value y (NaN: no loss)."""
        if self.differencing:
            d = y - s.last_y
            if not self.scale:
                return d
            if not s.sd.ready():
                return _MISSING
            return _clip((d - s.sd.mean) / s.sd.std())
        if not self.scale:
            return y
        if not s.sy.ready():
            return _MISSING
        return _clip((y - s.sy.mean) / s.sy.std())

    # ------------------------------------------------------------------ learning
    @_threads.writes
    def learn_one(self, y: Any, x: Any = None, *, key: _Key = None) -> None:
        """Learn from the newest value y of stream ``key`` and advance the stream.

        The prediction of y, made before y arrived by the step that read the history (and x,
        the features that come with y), gets y as its target; its error trains the network
        (every k1 observations). Then y becomes the input of the step that predicts the next
        value. Without features that step runs here, so each value costs one forward step
        and ``forecast(1)`` needs none; with features it runs in the next ``learn_one``, when
        the features of the next value are known (see the module notes).

        y : float; NaN or None marks a missing value: no loss, and the model's own forecast
            stands in for it as the next input.
        x : None, a mapping {name: value} (names fixed by the first call) or a sequence of
            numbers (length fixed by the first call); NaN marks a missing feature.

        Raises ValueError/TypeError (nothing changed) for an infinite or non-numeric y or x.
        A Ctrl-C (KeyboardInterrupt) arriving during the call is raised when it returns,
        so the stream is never left half-way (see RELIABILITY.md).
        """
        with critical:
            self._learn_one(y, x, key)

    def _learn_one(self, y: Any, x: Any, key: _Key) -> None:
        yv = self._number(y, "y")
        xv = self._features(x, "x")
        s = self._stream(key)
        s.n_seen += 1
        prev = s.last_y
        tr = s.trainer
        if prev != prev:
            # no observed value yet: nothing was predicted, nothing to learn
            if yv != yv:
                s.n_missing += 1
                if xv is not None:
                    s.sx.update(xv)
                return
        else:
            o = s.o
            if o is None:
                # the step that predicts y has not run yet (features: it needs x, which
                # came with y): run it now, on the last value (+ change) and x
                self._fill_x(s, s.u, xv)
                o = float(tr.advance(s.u)[0])
            s.o = None
            s.target[0] = _MISSING if yv != yv else self._target(s, yv)
            tr.observe(s.target)
            if yv != yv:
                yv = self._unscale(s, o, prev)   # the model's forecast stands in
                if not math.isfinite(yv):
                    yv = prev
        if y is None or y != y:
            s.n_missing += 1
        else:
            s.n_obs += 1
            if self.differencing and prev == prev:
                s.sd.update(yv - prev)
            s.sy.update(yv)
        if xv is not None:
            s.sx.update(xv)
        self._fill_y(s, s.u, yv, prev)
        s.last_y = yv
        if not self.n_features:
            # the one forward step of this value: it predicts the next value
            s.o = float(tr.advance(s.u)[0])

    @_threads.writes
    def learn_many(self, ys: Sequence[Any], xs: Optional[Sequence[Any]] = None, *,
                   key: _Key = None) -> None:
        """``learn_one`` over a sequence of values (and feature sets) of one stream.

        A Ctrl-C (KeyboardInterrupt) stops it between two values: the values before were
        learned exactly as by ``learn_one``, the rest not at all (``stats(key)['steps']``
        counts the values learned).
        """
        if xs is not None and len(xs) != len(ys):
            raise ValueError(f"xs must have one feature set per value ({len(ys)}), got "
                             f"{len(xs)}")
        with critical:
            if xs is None:
                for y in ys:
                    self._learn_one(y, None, key)
                    critical.check()
            else:
                for y, x in zip(ys, xs):
                    self._learn_one(y, x, key)
                    critical.check()

    # ------------------------------------------------------------------ forecasting
    @_threads.reads
    def forecast(self, horizon: int = 1, xs: Optional[Sequence[Any]] = None, *,
                 key: _Key = None) -> List[float]:
        """Forecasts of the next ``horizon`` values of stream ``key``, as a list of floats.

        The first forecast is the prediction that the next ``learn_one`` learns from. Without
        features it was computed by the last ``learn_one`` (no forward step here); with
        features it is computed on a scratch copy of the state with ``xs[0]``. Further
        forecasts are autoregressive: each forecast is fed back as the next input, on a
        scratch copy of the stream's state; nothing of the forecaster (state, weights,
        scalers, counters) changes. ``xs[k]`` are the exogenous features that come with the
        k-th forecast value (same forms as ``x`` in learn_one; exactly ``horizon`` entries);
        without ``xs``, or for a None entry or a NaN feature, the features' running means are
        used. Before the stream's first observed value, every forecast is NaN.
        """
        horizon = _check_int(horizon, "horizon", 1)
        feats: List[Optional[np.ndarray]] = [None] * horizon
        if xs is not None:
            if isinstance(xs, (str, bytes, Mapping)) or not hasattr(xs, "__len__"):
                raise TypeError(f"xs must be None or a sequence of feature sets, got "
                                f"{type(xs).__name__}")
            if len(xs) != horizon:
                raise ValueError(f"xs must hold one feature set per forecast value "
                                 f"({horizon}), got {len(xs)}")
            for k in range(horizon):
                if xs[k] is not None:
                    feats[k] = self._features(xs[k], f"xs[{k}]", commit=False)
        s = self._streams.get(key)
        if s is None or s.last_y != s.last_y:
            return [_MISSING] * horizon
        tr = s.trainer
        prev = s.last_y
        if s.o is not None:
            # the step that predicts the next value has run (in learn_one): its output is
            # the first forecast, and the trainer's state is the state after it
            yhat = self._unscale(s, s.o, prev)
            if horizon == 1:
                return [yhat]
            state = tr.state.copy()
            u = s.u.copy()
            ybuf = np.empty(1, dtype=self.dtype)
        else:
            u = s.u.copy()
            self._fill_x(s, u, feats[0])
            if horizon == 1:
                return [self._unscale(s, float(tr.predict_one(u)[0]), prev)]
            state = tr.state.copy()
            ybuf = np.empty(1, dtype=self.dtype)
            tr.net.step(u, state, out=ybuf)     # the pending step, on the copy
            yhat = self._unscale(s, float(ybuf[0]), prev)
        net = tr.net
        out = [yhat]
        for k in range(1, horizon):
            self._fill_y(s, u, yhat, prev)
            self._fill_x(s, u, feats[k])
            prev = yhat
            net.step(u, state, out=ybuf)
            yhat = self._unscale(s, float(ybuf[0]), prev)
            out.append(yhat)
        return out
