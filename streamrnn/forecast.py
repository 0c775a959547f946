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

Combination, season and intervals
---------------------------------
``forecast`` returns, per horizon, an online combination (ML-Poly, see ``_experts``) of the
network's rollout with persistence, simple exponential smoothing and, with ``season=m``,
the seasonal naive forecast, three Holt-Winters (two additive, one multiplicative that
takes part on positive series), the mean of the values one and two seasons back, the
seasonal random walk with drift and the value a longer cycle back (``_best_multiple``).
The forecasts of horizons
1..``max_horizon`` are made at the end of ``learn_one`` (``max_horizon - 1`` extra steps on
a scratch copy) and kept until their values arrive, when they train the weights and the
adaptive conformal intervals of ``forecast_interval``. The combination learns from the
forecasts made once two values (or a season) were seen, and the network takes part once its
target scaler has statistics and a season of history: untrained, the forecast is the
persistence forecast, or the seasonal naive one.

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
from typing import (Any, Dict, Hashable, Iterable, Iterator, List, Mapping, Optional, Sequence,
                    Tuple, Union)

import numpy as np

from . import _experts
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
MAX_FEATURES = 1 << 20
MAX_HORIZON = 1 << 20
MAX_SEASON = 1 << 16
MAX_TRACKED = 1 << 10    # max_horizon: the per-stream forecasts kept grow with its square
# Refused at construction: a forecaster whose one stream would need more than this many
# bytes (parameters, gradient, two optimizer moments, the TBPTT ring) is a typo, not a model.
MAX_STREAM_BYTES = 1 << 32
from ._core import GATES as _GATES  # noqa: E402  (gates per cell, from the C core)


def _stream_bytes(cell: str, hidden_size: int, num_layers: int, k2: int, input_size: int,
                  itemsize: int) -> int:
    """Lower bound of the bytes of one stream's network and trainer buffers."""
    G, H, L = _GATES[cell], hidden_size, num_layers
    params = G * H * (input_size + H + 2) + (L - 1) * G * H * (2 * H + 2) + H + 1
    ring = k2 * (L * (G + 2) * H + input_size)
    return itemsize * (4 * params + ring)


def _check_memory(cell: str, hidden_size: int, num_layers: int, k2: int,
                  n_features: Optional[int], differencing: bool, dtype: np.dtype,
                  extra_inputs: int = 0) -> None:
    D = 1 + int(differencing) + extra_inputs + (n_features or 0)
    need = _stream_bytes(cell, hidden_size, num_layers, k2, D, dtype.itemsize)
    if need > MAX_STREAM_BYTES:
        raise ValueError(
            f"hidden_size={hidden_size}, num_layers={num_layers}, k2={k2}, "
            f"n_features={n_features} need about {need / 2**30:.3g} GiB per stream "
            f"(parameters, gradient, optimizer moments, TBPTT ring); at most "
            f"{MAX_STREAM_BYTES / 2**30:g} GiB is accepted")


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


def _hw_update(hw: np.ndarray, season: np.ndarray, y: float, a: float, b: float, g: float,
               phi: float, mult: bool = False) -> None:
    """Holt-Winters with a damped trend, in place: hw = [level, trend, n seen], season[i]
    the component of the positions i mod m, added to the level (mult: multiplying it). The
    first season initialises it (level: its mean, trend 0, components: deviations from, or
    ratios to, that mean). Multiplicative: for positive series; a level or component that
    is not positive restarts it (no forecast until it has seen a new season)."""
    m = season.shape[0]
    n = int(hw[2])
    i = n % m
    if n < m:
        season[i] = y
        if n == m - 1:
            hw[0] = float(season.mean())
            if not mult:
                season -= hw[0]
            elif hw[0] > 0.0 and float(season.min()) > 0.0:
                season /= hw[0]
            else:
                hw[:] = 0.0
                return
    elif mult:
        level, trend, si = float(hw[0]), float(hw[1]), float(season[i])
        new = a * (y / si) + (1.0 - a) * (level + phi * trend)
        s_new = g * (y / new) + (1.0 - g) * si if new > 0.0 else 0.0
        if not (s_new > 0.0 and math.isfinite(s_new)):
            hw[:] = 0.0
            return
        hw[1] = b * (new - level) + (1.0 - b) * phi * trend
        season[i] = s_new
        hw[0] = new
    else:
        level, trend = hw[0], hw[1]
        new = a * (y - season[i]) + (1.0 - a) * (level + phi * trend)
        hw[1] = b * (new - level) + (1.0 - b) * phi * trend
        season[i] = g * (y - new) + (1.0 - g) * season[i]
        hw[0] = new
    hw[2] = n + 1


def _hw_forecast(hw: np.ndarray, season: np.ndarray, K: int, phi: float,
                 mult: bool = False) -> np.ndarray:
    """Holt-Winters forecasts of horizons 1..K (NaN before a season was seen)."""
    m = season.shape[0]
    n = int(hw[2])
    if n < m:
        return np.full(K, np.nan)
    k = np.arange(1, K + 1)
    damp = np.cumsum(phi ** k)
    if mult:
        return (hw[0] + damp * hw[1]) * season[(n + k - 1) % m]
    return hw[0] + damp * hw[1] + season[(n + k - 1) % m]


def _clip(v: float) -> float:
    return _CLIP if v > _CLIP else (-_CLIP if v < -_CLIP else v)


_STREAM_ARRAYS = ("hist", "pend", "porig", "agg_r", "agg_s", "scores", "nscores", "alpha",
                  "hw", "hw_season")
SES_ALPHA = 0.3       # smoothing of the simple exponential smoothing expert
# Holt-Winters experts (with a season): level, trend and season smoothing, the damping of
# the trend over the horizon, and whether the season multiplies the level
HW_SETTINGS = ((0.3, 0.05, 0.3, 0.98, False),     # (alpha, beta, gamma, phi, mult):
               (0.5, 0.1, 0.6, 1.0, False),       # slow and damped; fast; fast and
               (0.5, 0.1, 0.6, 1.0, True))        # multiplicative (positive series)


# seasonal_naive_best: the value c seasons back, c = 1..MULTIPLES, the c whose one-step
# mean absolute error over the newest MULTIPLE_WINDOW seasons is the smallest, when it is
# below MULTIPLE_MARGIN times the error of c = 1 (else the expert takes no part: it would be
# the seasonal naive forecast); for a second, longer cycle (a week of days, of hours)
MULTIPLES = 7
MULTIPLE_WINDOW = 7
MULTIPLE_MARGIN = 0.5
HIST_SEASONS = MULTIPLES + MULTIPLE_WINDOW
MULTIPLE_MAX_SEASON = MAX_TRACKED   # longer seasons: a history of two seasons, no multiple


def _hist_len(season: int) -> int:
    """Values of a stream's season history: 14 seasons + 1 (2 beyond
    MULTIPLE_MAX_SEASON, where seasonal_naive_best takes no part), 0 without season."""
    if not season:
        return 0
    return (HIST_SEASONS if season <= MULTIPLE_MAX_SEASON else 2) * season + 1


def _best_multiple(hist: np.ndarray, m: int) -> int:
    """The multiple c of the season for seasonal_naive_best (0: none) from the values
    hist (oldest first, the newest last; NaN: not seen)."""
    n = MULTIPLE_WINDOW * m
    if hist.shape[0] < n + MULTIPLES * m:
        return 0
    # row i: the n values (MULTIPLES - i) seasons before the newest n, a read-only view
    # (NumPy: np.stack([hist[-n - c*m:len - c*m] for c in MULTIPLES..1])); each row's mean
    # is the same pairwise sum as the 1-D mean of that slice
    base = hist[hist.shape[0] - n - MULTIPLES * m:]
    step = base.strides[0]
    back = np.lib.stride_tricks.as_strided(base, shape=(MULTIPLES, n),
                                           strides=(m * step, step), writeable=False)
    errs = np.abs(back - hist[-n:]).mean(axis=1)[::-1].tolist()     # c = 1..MULTIPLES
    if not all(math.isfinite(e) for e in errs):
        return 0
    best = min(range(MULTIPLES), key=errs.__getitem__)
    return best + 1 if best and errs[best] < MULTIPLE_MARGIN * errs[0] else 0


class _Stream:
    """Everything one keyed stream owns: its trainer (state, ring, moments), its scalers, the
    input of the step that predicts its next value and, once that step has run (no
    features), its output."""

    __slots__ = ("trainer", "sy", "sd", "sx", "u", "last_y", "n_obs", "n_missing",
                 "n_seen", "o", "target", "hist", "ses", "pend", "porig", "agg_r", "agg_s",
                 "scores", "nscores", "alpha", "hw", "hw_season")

    def __init__(self, trainer: OnlineTrainer, alpha: float, n_features: int,
                 dtype: np.dtype, input_size: int, horizons: int = 1, n_experts: int = 3,
                 season: int = 0, miscoverage: float = 0.1) -> None:
        H, E = horizons, n_experts
        # the newest (MULTIPLES + MULTIPLE_WINDOW) seasons + 1 values, oldest first (NaN
        # until seen; see _hist_len); empty without season
        self.hist = np.full(_hist_len(season), np.nan)
        self.ses = _MISSING           # simple exponential smoothing level
        # forecasts issued at step t (slot t % H): per horizon k, the experts' forecasts,
        # the combination and the conformal radius issued with it; porig: t of each slot
        self.pend = np.full((H, H, E + 2), np.nan)
        self.porig = np.full(H, -1, dtype=np.int64)
        self.agg_r = np.zeros((H, E))     # ML-Poly cumulative regrets per horizon
        self.agg_s = np.zeros((H, E))     # and cumulative squared regrets
        self.scores = np.zeros((H, _experts.WINDOW))   # conformal scores (ring) per horizon
        self.nscores = np.zeros(H, dtype=np.int64)
        self.alpha = np.full(H, miscoverage)           # ACI miscoverage per horizon
        # Holt-Winters: [level, trend, values seen]; the season's components by position
        self.hw = np.zeros((len(HW_SETTINGS), 3))
        self.hw_season = np.zeros((len(HW_SETTINGS), season))
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

    def save(self) -> Tuple[Any, ...]:
        """Everything a learn_one may change (for :meth:`restore` after an error): the
        trainer, scalers, history and counters, and the state that changes after its last
        network call (smoothing, Holt-Winters, combination, conformal state, kept
        forecasts), which a MemoryError or a KeyboardInterrupt raised by a program's own
        SIGINT handler may still interrupt half-way."""
        tr = self.trainer
        if isinstance(tr, OnlineTrainer):
            snap: Any = tr._snapshot()
            params = (tr.net.parameters().copy(), tr.updates, tr.skipped_updates)
        else:                            # an inference-only runner (flink's shared mode)
            snap, params = tr.state.copy(), None
        sx = self.sx
        return (snap, params, self.sy.pack(), self.sd.pack(),
                (sx.n.copy(), sx.mean.copy(), sx.var.copy()) if sx.n.shape[0] else None,
                self.u.copy(), self.o, self.last_y, self.n_seen, self.n_obs,
                self.n_missing, self.hist.copy() if self.hist.shape[0] else None,
                self.ses, self.agg_r.copy(), self.agg_s.copy(), self.nscores.copy(),
                self.alpha.copy(), self.porig.copy(), self._save_written(),
                (self.hw.copy(), self.hw_season.copy()) if self.hw_season.shape[1] else None)

    def _save_written(self) -> Tuple[Any, ...]:
        """The parts of the kept forecasts and conformal scores that a learn_one may write:
        the slots of pend scored (t % H: its network forecast replaced with features) and
        issued ((t + 1) % H), t = n_seen before the call, and in each horizon's score ring
        the position nscores % W (copying all of pend, (H, H, E + 2), and scores, (H, W),
        would cost more than the learn_one itself with a long season)."""
        H, W = self.scores.shape
        t = self.n_seen
        a, b = t % H, (t + 1) % H
        if H == 1:
            k = int(self.nscores[0]) % W
            return (a, self.pend[a].copy(), b, None, k, float(self.scores[0, k]))
        ks = self.nscores % W
        rows = np.arange(H)
        return (a, self.pend[a].copy(), b, self.pend[b].copy(), (rows, ks),
                self.scores[rows, ks])

    def restore(self, saved: Tuple[Any, ...]) -> None:
        (snap, params, sy, sd, sx, u, self.o, self.last_y, self.n_seen, self.n_obs,
         self.n_missing, hist, self.ses, agg_r, agg_s, nscores, alpha, porig, written,
         hw) = saved
        if hist is not None:
            self.hist[...] = hist
        self.agg_r[...] = agg_r
        self.agg_s[...] = agg_s
        a, pa, b, pb, at, sc = written
        if pb is not None:
            self.pend[b] = pb
        self.pend[a] = pa
        if isinstance(at, int):
            self.scores[0, at] = sc
        else:
            self.scores[at] = sc
        self.nscores[...] = nscores
        self.alpha[...] = alpha
        self.porig[...] = porig
        if hw is not None:
            self.hw[...], self.hw_season[...] = hw
        tr = self.trainer
        if params is not None:
            p, updates, skipped = params
            if (tr.updates, tr.skipped_updates) != (updates, skipped):
                tr.net.parameters()[...] = p     # an update ran: undo it
            tr._restore(snap)
        else:
            tr.state = snap                  # type: ignore[misc]
        self.sy.unpack(sy)
        self.sd.unpack(sd)
        if sx is not None:
            self.sx.n, self.sx.mean, self.sx.var = sx
        self.u[...] = u


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
    season : int >= 2 or None, default None
        The season length in steps: the network also reads the change (without
        differencing: the value) one season back, and seasonal experts join the
        combination: the seasonal naive forecast, three Holt-Winters (two additive, one
        multiplicative), the mean of two seasons back, the seasonal random walk with drift
        and the value 2-7 seasons back when that cycle is clearly better (see
        ``expert_names``).
    max_horizon : int >= 1 or None, default None (the season, else 1)
        Horizons whose forecasts are made in ``learn_one`` and scored: each has its own
        combination weights and conformal intervals (beyond it, those of max_horizon).
    interval_level : float in (0, 1), default 0.9
        The coverage that adaptive conformal inference tracks per horizon.

    All settings are read-only attributes (a changed setting would not reach the trainers
    and would make ``sr.save`` write a file that loads as another model).
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

    _cell: str
    _hidden_size: int
    _num_layers: int
    _k1: int
    _k2: int
    _optimizer: Union[SGD, Adam, RMSprop]
    _clip_norm: Optional[float]
    _seed: Optional[int]
    _differencing: bool
    _scale: bool
    _scale_halflife: Optional[float]
    _n_features: Optional[int]
    _feature_names: Optional[List[str]]
    _dtype: np.dtype
    _weights: str
    _net: Optional[_Recurrent]
    _season: Optional[int]
    _max_horizon: int
    _interval_level: float
    _expert_names: Tuple[str, ...]
    _prior: int
    _alpha: float
    _streams: Dict[_Key, _Stream]

    def __init__(self, cell: str = "lstm", hidden_size: int = 32, num_layers: int = 1,
                 k1: int = 1, k2: int = 32,
                 optimizer: Optional[Union[SGD, Adam, RMSprop]] = None,
                 clip_norm: Optional[float] = 1.0, seed: Optional[int] = None, *,
                 differencing: bool = True, scale: bool = True,
                 scale_halflife: Optional[float] = None, n_features: Optional[int] = None,
                 dtype: Any = "float32", weights: str = "shared",
                 season: Optional[int] = None, max_horizon: Optional[int] = None,
                 interval_level: float = 0.9, threadsafe: bool = False) -> None:
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
            n_features = _check_int(n_features, "n_features", 0, MAX_FEATURES)
        dt = _check_dtype(dtype)
        if weights not in ("shared", "per_key"):
            raise ValueError(f"weights must be 'shared' or 'per_key', got {weights!r}")
        if season is not None:
            season = _check_int(season, "season", 2, MAX_SEASON)
        if max_horizon is None:
            max_horizon = 1 if season is None else min(season, MAX_TRACKED)
        max_horizon = _check_int(max_horizon, "max_horizon", 1, MAX_TRACKED)
        if isinstance(interval_level, (bool, np.bool_)) or not isinstance(interval_level,
                                                                          Real):
            raise TypeError(f"interval_level must be a number in (0, 1), got "
                            f"{type(interval_level).__name__} {interval_level!r}")
        if not 0.0 < float(interval_level) < 1.0:
            raise ValueError(f"interval_level must be in (0, 1), got {interval_level!r}")
        _check_memory(cell, hidden_size, num_layers, k2, n_features, bool(differencing), dt,
                      int(season is not None))
        # settings: read-only (properties below); training and sr.save read these
        self._cell = cell
        self._hidden_size = hidden_size
        self._num_layers = num_layers
        self._k1 = k1
        self._k2 = k2
        self._optimizer = optimizer
        self._clip_norm = clip_norm
        self._seed = seed
        self._differencing = bool(differencing)
        self._scale = bool(scale)
        self._scale_halflife = scale_halflife
        self._n_features = n_features
        self._feature_names = None
        self._dtype = dt
        self._weights = weights
        self._net = None
        self._season = season
        self._max_horizon = max_horizon
        self._interval_level = float(interval_level)
        names = ["network", "persistence"] + (["seasonal_naive"] if season else []) + ["ses"]
        if season:
            names += [f"holt_winters_{i}" for i in range(len(HW_SETTINGS))]
            names += ["seasonal_naive_2", "seasonal_drift", "seasonal_naive_best"]
        self._expert_names = tuple(names)
        self._prior = 2 if season else 1      # untrained: seasonal naive, or persistence
        self._streams = {}
        self._alpha = 0.0 if scale_halflife is None else 1.0 - 0.5 ** (1.0 / scale_halflife)
        _threads.setup(self, threadsafe)   # .threadsafe, .lock, ._guard (One thread contract)

    # threads: sr.save's read hold, pickling inside one read hold (see streamrnn/_threads.py)
    threadsafe: bool
    lock: Any          # a threading.RLock
    _reading = _threads.reading
    __getstate__ = _threads.getstate
    __setstate__ = _threads.setstate

    # ------------------------------------------------------------------ settings
    # Read-only: a setting changed after construction would not reach the trainers that
    # exist, and sr.save would write a file that does not load (or loads as another model).
    cell = property(lambda self: self._cell, doc="The recurrent cell (read-only).")
    hidden_size = property(lambda self: self._hidden_size, doc="Hidden size (read-only).")
    num_layers = property(lambda self: self._num_layers, doc="Stacked layers (read-only).")
    k1 = property(lambda self: self._k1, doc="TBPTT: update every k1 values (read-only).")
    k2 = property(lambda self: self._k2, doc="TBPTT: backpropagate k2 steps (read-only).")
    optimizer = property(lambda self: self._optimizer, doc="The optimizer (read-only).")
    clip_norm = property(lambda self: self._clip_norm, doc="Gradient norm clip (read-only).")
    seed = property(lambda self: self._seed, doc="Seed of the initial weights (read-only).")
    differencing = property(lambda self: self._differencing,
                            doc="Whether the change is modelled (read-only).")
    scale = property(lambda self: self._scale, doc="Online standardisation (read-only).")
    scale_halflife = property(lambda self: self._scale_halflife,
                              doc="Half-life of the scaling statistics (read-only).")
    n_features = property(lambda self: self._n_features,
                          doc="Number of exogenous features; None until fixed (read-only).")
    feature_names = property(lambda self: self._feature_names,
                             doc="Feature names when features came as mappings (read-only).")
    dtype = property(lambda self: self._dtype, doc="The networks' dtype (read-only).")
    weights = property(lambda self: self._weights,
                       doc="'shared' or 'per_key' (read-only).")
    season = property(lambda self: self._season,
                      doc="Season length in steps, or None (read-only).")
    max_horizon = property(lambda self: self._max_horizon,
                           doc="Horizons whose combination and intervals are tracked "
                               "(read-only).")
    interval_level = property(lambda self: self._interval_level,
                              doc="Coverage that the adaptive conformal intervals track "
                                  "(read-only).")
    expert_names = property(lambda self: self._expert_names,
                            doc="Names of the combined forecasts, in weight order "
                                "(read-only).")
    net = property(lambda self: self._net,
                   doc="The shared network (None before the first value, and with "
                       "weights='per_key'); read-only.")

    def _settings(self) -> Dict[str, Any]:
        return dict(cell=self.cell, hidden_size=self.hidden_size, num_layers=self.num_layers,
                    k1=self.k1, k2=self.k2, optimizer=self.optimizer,
                    clip_norm=self.clip_norm, seed=self.seed, differencing=self.differencing,
                    scale=self.scale, scale_halflife=self.scale_halflife,
                    n_features=self.n_features, dtype=self.dtype.name, weights=self.weights,
                    season=self._season, max_horizon=self._max_horizon,
                    interval_level=self._interval_level)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._settings().items())
        return f"Forecaster({args})"

    @property
    def input_size(self) -> Optional[int]:
        """The network's input size: 1 (level) + 1 with differencing + n_features."""
        if self.n_features is None:
            return None
        return 1 + int(self.differencing) + int(self._season is not None) + self.n_features

    # ------------------------------------------------------------------ streams
    def _new_network(self, input_size: Optional[int] = None) -> _Recurrent:
        D = self.input_size if input_size is None else input_size
        assert D is not None
        return _make_net(self._cell, D, self._hidden_size, self._num_layers, self._dtype,
                         self._seed)

    def _new_stream(self, n_features: Optional[int] = None) -> _Stream:
        """A new stream (with the shared network made if there is none yet, without keeping
        it: the caller commits ``self._net`` once the stream is in use)."""
        nf = self._n_features if n_features is None else n_features
        assert nf is not None
        D = 1 + int(self._differencing) + int(self._season is not None) + nf
        if self._weights == "shared":
            net = self._net if self._net is not None else self._new_network(D)
        else:
            net = self._new_network(D)
        tr = OnlineTrainer(net, loss="mse", optimizer=self._optimizer, k1=self._k1,
                           k2=self._k2, clip_norm=self._clip_norm)
        return self._wrap(tr, nf)

    def _wrap(self, tr: OnlineTrainer, nf: int) -> _Stream:
        """A new stream around the trainer tr (sized for this forecaster's settings)."""
        D = 1 + int(self._differencing) + int(self._season is not None) + nf
        return _Stream(tr, self._alpha, nf, self._dtype, D, self._max_horizon,
                       len(self._expert_names), self._season or 0,
                       1.0 - self._interval_level)

    def _new_stream_arrays(self) -> Dict[str, np.ndarray]:
        """Empty per-stream combination/conformal arrays (their shapes and dtypes, for
        sr.load's checks)."""
        s = _Stream.__new__(_Stream)
        _Stream.__init__(s, None, self._alpha, 0, self._dtype, 1,  # type: ignore[arg-type]
                         self._max_horizon, len(self._expert_names), self._season or 0,
                         1.0 - self._interval_level)
        return {n: getattr(s, n) for n in _STREAM_ARRAYS}

    def _stream(self, key: _Key) -> _Stream:
        try:
            s = self._streams.get(key)
        except TypeError:
            raise TypeError(f"key must be hashable, got {type(key).__name__}") from None
        if s is None:
            s = self._new_stream()
            if self._weights == "shared" and self._net is None:
                self._net = s.trainer.net
            self._streams[key] = s
        return s

    def _lookup(self, key: _Key) -> Optional[_Stream]:
        """The stream of ``key`` or None; TypeError naming ``key`` if it is unhashable."""
        try:
            return self._streams.get(key)
        except TypeError:
            raise TypeError(f"key must be hashable, got {type(key).__name__}") from None

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
        s = self._lookup(key)
        if self._weights == "shared":
            return self._net
        return None if s is None else s.trainer.net

    @_threads.reads
    def trainer(self, key: _Key = None) -> Optional[OnlineTrainer]:
        """The OnlineTrainer of stream ``key`` (None for an unseen key)."""
        s = self._lookup(key)
        return None if s is None else s.trainer

    @_threads.writes
    def forget(self, key: _Key = None) -> None:
        """Drop stream ``key`` (its state, scalers and buffers); shared weights are kept."""
        if self._lookup(key) is None:
            raise KeyError(f"no stream with key {key!r}")
        try:
            del self._streams[key]
        except KeyError:
            raise KeyError(f"no stream with key {key!r}") from None

    @_threads.reads
    def stats(self, key: _Key = None) -> Dict[str, Any]:
        """Counters of stream ``key``: observations, missing values, trainer statistics."""
        s = self._lookup(key)
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
        if self._weights == "shared" and self._net is None:
            self._net = self._new_network()
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
    def _features(self, x: Any, name: str, nf: Optional[int],
                  names: Optional[List[str]]) -> Tuple[Optional[np.ndarray],
                                                       Optional[List[str]]]:
        """x (None, a mapping of feature names, or a sequence) as a float64 array (NaN for a
        missing feature), or None without features, and the feature names of a mapping.
        ``nf``/``names``: the number and names of features known so far (None: not fixed
        yet; the caller fixes them once the call that brought them succeeds)."""
        if x is None:
            return (None if not nf else np.full(nf, np.nan)), names
        if isinstance(x, Mapping):
            if names is None and nf is not None and self._streams:
                raise TypeError(f"{name} must be a sequence of {nf} numbers: the features "
                                f"came as sequences (without names), got a mapping")
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
            return v, names
        if isinstance(x, (str, bytes)):
            raise TypeError(f"{name} must be None, a mapping or a sequence of numbers, got "
                            f"{type(x).__name__}")
        try:
            arr = np.array(x, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            raise TypeError(f"{name} must be None, a mapping or a sequence of numbers, got "
                            f"{type(x).__name__}") from None
        if arr.ndim == 0:
            arr = arr.reshape(1)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
        if nf is not None and arr.shape[0] != nf:
            raise ValueError(f"{name} must have {nf} features, got {arr.shape[0]}")
        if nf is None and arr.shape[0] > MAX_FEATURES:
            raise ValueError(f"{name} must have at most {MAX_FEATURES} features, got "
                             f"{arr.shape[0]}")
        if (np.abs(arr) > MAX_ABS).any():        # (inf included; NaN compares False)
            if np.isinf(arr).any():
                raise ValueError(f"{name} must not hold inf (NaN marks a missing feature)")
            raise ValueError(f"{name} must have magnitudes <= {MAX_ABS:g}, got "
                             f"{np.nanmax(np.abs(arr)):g}")
        return arr, names

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

    def _fill_y(self, s: _Stream, u: np.ndarray, y: float, prev: float,
                back: float = _MISSING, back2: float = _MISSING) -> None:
        """u[:1, 2 or 3] <- the scaled level of y (and its change from prev, NaN at the
        start); with a season also the value one season before the value to predict, back
        (with differencing: its change from back2, the value before it)."""
        u[0] = _clip((y - s.sy.mean) / s.sy.std()) if self._scale else _clip(y)
        j = 1
        if self._differencing:
            if prev != prev:
                u[1] = 0.0
            elif self._scale:
                u[1] = _clip((y - prev - s.sd.mean) / s.sd.std())
            else:
                u[1] = _clip(y - prev)
            j = 2
        if self._season is not None:
            if self._differencing:
                d = back - back2
                if d != d:
                    u[j] = 0.0
                else:
                    u[j] = _clip((d - s.sd.mean) / s.sd.std()) if self._scale else _clip(d)
            elif back != back:
                u[j] = 0.0
            else:
                u[j] = _clip((back - s.sy.mean) / s.sy.std()) if self._scale else _clip(back)

    def _fill_x(self, s: _Stream, u: np.ndarray, xv: Optional[np.ndarray]) -> None:
        """u[j:] <- the scaled features xv (None or NaN entries: their running means)."""
        nf = s.sx.n.shape[0]
        if not nf:
            return
        sx = s.sx
        if xv is None:
            z = np.zeros(nf) if self._scale else sx.mean.copy()
        else:
            xm = np.where(np.isnan(xv), sx.mean, xv)
            z = (xm - sx.mean) / sx.std() if self._scale else xm
        np.clip(z, -_CLIP, _CLIP, out=z)
        u[1 + int(self._differencing) + int(self._season is not None):] = z

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
            yv = self._number(y, "y")
            xv, names = self._features(x, "x", self._n_features, self._feature_names)
            self._learn_checked(yv, xv, names, key)

    def _learn_checked(self, yv: float, xv: Optional[np.ndarray],
                       names: Optional[List[str]], key: _Key) -> None:
        """Learn one validated value, all or nothing: when anything raises (a trainer that
        another thread is using, an interrupt, a network that cannot be built), the stream,
        the weights, ``n_features`` and ``feature_names`` are exactly as before."""
        try:
            s = self._streams.get(key)
        except TypeError:
            raise TypeError(f"key must be hashable, got {type(key).__name__}") from None
        nf = self._n_features
        if nf is None:
            nf = 0 if xv is None else int(xv.shape[0])
            _check_memory(self._cell, self._hidden_size, self._num_layers, self._k2, nf,
                          self._differencing, self._dtype, int(self._season is not None))
        if s is None:
            s = self._new_stream(nf)
            self._learn_one(s, yv, xv)          # on error the new stream is dropped
            self._streams[key] = s
        else:
            undo = s.save()
            try:
                self._learn_one(s, yv, xv)
            except BaseException:
                s.restore(undo)
                raise
        if self._n_features is None:
            self._n_features = nf
        if names is not None and self._feature_names is None:
            self._feature_names = names
        if self._weights == "shared" and self._net is None:
            self._net = s.trainer.net

    def _learn_one(self, s: _Stream, yv: float, xv: Optional[np.ndarray]) -> None:
        s.n_seen += 1
        prev = s.last_y
        tr = s.trainer
        missing = yv != yv
        net1: Optional[float] = None
        if prev != prev:
            # no observed value yet: nothing was predicted, nothing to learn
            if missing:
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
                net1 = self._unscale(s, o, prev)   # the network's forecast knowing x
            s.o = None
            s.target[0] = _MISSING if missing else self._target(s, yv)
            tr.observe(s.target)
            if missing:
                yv = self._unscale(s, o, prev)   # the model's forecast stands in
                if not math.isfinite(yv):
                    yv = prev
        if missing:
            s.n_missing += 1
        else:
            s.n_obs += 1
            if self._differencing and prev == prev:
                s.sd.update(yv - prev)
            s.sy.update(yv)
        if xv is not None:
            s.sx.update(xv)
        h = s.hist
        if h.shape[0]:
            h[:-1] = h[1:]
            h[-1] = yv
            m = int(self._season or 0)
            self._fill_y(s, s.u, yv, prev, h[-m], h[-m - 1])
        else:
            self._fill_y(s, s.u, yv, prev)
        s.last_y = yv
        if not s.sx.n.shape[0]:
            # the one forward step of this value: it predicts the next value
            s.o = float(tr.advance(s.u)[0])
        # the network's forecasts to keep (steps on a copy: may still be refused)
        H = self._max_horizon
        path = self._net_path(s, H, [None] * H)
        # the combination, smoothing and conformal state change only after every network
        # call succeeded (an error from here on, e.g. MemoryError or a KeyboardInterrupt
        # from a program's own SIGINT handler, is undone by _Stream.restore as well)
        if not missing and prev == prev:
            self._score(s, yv, net1)
        s.ses = yv if s.ses != s.ses else s.ses + SES_ALPHA * (yv - s.ses)
        if self._season:
            for i, hs in enumerate(HW_SETTINGS):
                _hw_update(s.hw[i], s.hw_season[i], yv, *hs)
        self._issue(s, path)

    # ------------------------------------------------------------------ combination
    def _net_ready(self, s: _Stream) -> bool:
        """Whether the network's forecasts take part in the combination: once the scaler of
        its targets has statistics (before, its output is scaled by nothing meaningful)."""
        if s.n_obs < max(3, (self._season or 0) + 1):
            return False
        return not self._scale or bool((s.sd if self._differencing else s.sy).ready())

    def _expert_matrix(self, s: _Stream, net_path: Sequence[float]) -> np.ndarray:
        """(len(net_path), E) forecasts of every expert for horizons 1..len(net_path)."""
        K = len(net_path)
        E = len(self._expert_names)
        F = np.empty((K, E))
        last = s.last_y
        F[:, 0] = net_path if self._net_ready(s) else np.nan
        F[:, 1] = last
        j = 2
        m = self._season
        if m:
            k = np.arange(1, K + 1)
            c = -(-k // m)                # seasons between the target and its value back
            back = -1 - (m * c - k)       # that value's index in hist
            hist = s.hist
            v = hist[back]
            F[:, 2] = np.where(v != v, last, v)
            j = 3
        F[:, j] = last if s.ses != s.ses else s.ses
        if m:
            for i, hs in enumerate(HW_SETTINGS):
                F[:, j + 1 + i] = _hw_forecast(s.hw[i], s.hw_season[i], K, hs[3], hs[4])
            j += 1 + len(HW_SETTINGS)
            # the mean of the values one and two seasons back (NaN: not seen yet)
            F[:, j] = 0.5 * (v + hist[back - m])
            # the seasonal random walk with drift: one season back plus the change of the
            # last season per season ahead, y[t+k-cm] + c (y[t] - y[t-m])
            F[:, j + 1] = v + c * (last - hist[-1 - m])
            # the value the best multiple of the season back (NaN: no multiple beats one)
            best = _best_multiple(hist, m)
            if best:
                L = best * m
                F[:, j + 2] = hist[-1 - (L * -(-k // L) - k)]
            else:
                F[:, j + 2] = np.nan
        return F

    def _weights_of(self, s: _Stream, k: int, avail: np.ndarray) -> np.ndarray:
        """Combination weights (E,) of horizon k (1-based; beyond max_horizon: those of
        max_horizon) over the available experts."""
        i = min(k, self._max_horizon) - 1
        R = np.where(avail, s.agg_r[i], 0.0)
        return _experts.weights(R, s.agg_s[i], self._prior)

    def _combine(self, s: _Stream, F: np.ndarray) -> List[float]:
        """The combined forecasts of horizons 1..K from the experts' F (K, E)."""
        idx = np.minimum(np.arange(F.shape[0]), self._max_horizon - 1)
        return _experts.combine(s.agg_r[idx], s.agg_s[idx], F, self._prior).tolist()

    def _issue(self, s: _Stream, net_path: List[float]) -> None:
        """Keep the forecasts of horizons 1..max_horizon made at this step (the experts',
        the combination and the conformal radii), to be scored as the values arrive."""
        if s.last_y != s.last_y:
            return
        H = self._max_horizon
        if H == 1 and not self._season:
            # one horizon, no season (the common case): the same operations as
            # _expert_matrix and _experts.combine on Python floats, so the numbers are
            # identical (NumPy sums fewer than 8 terms sequentially)
            last = s.last_y
            ses = last if s.ses != s.ses else s.ses
            F1 = [net_path[0] if self._net_ready(s) else _MISSING, last, ses]
            tot = acc = 0.0
            for f, r, q in zip(F1, s.agg_r[0].tolist(), s.agg_s[0].tolist()):
                if math.isfinite(f):
                    v = max(r, 0.0) / (1.0 + q)
                    tot += v
                    acc += v * f
            c = acc / tot if tot > 0.0 and math.isfinite(tot) else F1[self._prior]
            F1.append(c)
            # the radius issued with it: computed only when scored (_experts._score1)
            F1.append(_MISSING)
            s.pend[0, 0] = F1
            s.porig[0] = s.n_seen
            return
        E = len(self._expert_names)
        F = self._expert_matrix(s, net_path)
        slot = s.pend[s.n_seen % H]
        slot[:, :E] = F
        slot[:, E] = _experts.combine(s.agg_r, s.agg_s, F, self._prior)
        slot[:, E + 1] = _experts.radii(s.scores, s.nscores, s.alpha)
        s.porig[s.n_seen % H] = s.n_seen

    def _score(self, s: _Stream, y: float, net1: Optional[float] = None) -> None:
        """Score the kept forecasts whose target is the observed value y (this step):
        combination weights and conformal state of every horizon learn from it. net1: with
        features, the network's one-step forecast made with the features that came with y
        (what ``forecast(1, xs=[x])`` gave), which replaces the one kept without them."""
        H = self._max_horizon
        E = len(self._expert_names)
        t = s.n_seen
        if H == 1:
            # one horizon: the forecast made at the step before, without index arrays
            if t < 2 or s.porig[0] != t - 1:
                return
            row = s.pend[0, 0]
            if net1 is not None and row[0] == row[0]:
                row[0] = net1
                row[E] = self._combine(s, row[None, :E])[0]
            if row[E] == row[E]:
                _experts._score1(s.agg_r[0], s.agg_s[0], s.scores[0], s.nscores, s.alpha,
                                 row, t - 1 >= (self._season or 2), y,
                                 1.0 - self._interval_level)
            return
        ks = np.arange(1, H + 1)
        t0 = t - ks
        slots = t0 % H
        valid = (t0 >= 1) & (s.porig[slots] == t0)
        if net1 is not None and valid[0]:
            row = s.pend[slots[0], 0]
            if row[0] == row[0]:
                row[0] = net1
                row[E] = self._combine(s, row[None, :E])[0]
        rows = s.pend[slots, ks - 1]
        valid &= np.isfinite(rows[:, E])
        if not valid.any():
            return
        # the combination learns from the forecasts made once a season (or two values)
        # had been seen
        learn = valid & (t0 >= (self._season or 2))
        _experts.score(s.agg_r, s.agg_s, s.scores, s.nscores, s.alpha, rows, valid, learn,
                       y, 1.0 - self._interval_level)

    @_threads.writes
    def learn_many(self, ys: Iterable[Any], xs: Optional[Iterable[Any]] = None, *,
                   key: _Key = None) -> None:
        """``learn_one`` over a sequence (or any iterable) of values (and feature sets) of one
        stream.

        Every value and feature set is checked before the first is learned: a bad one raises
        ValueError/TypeError naming its index, and nothing is learned. A Ctrl-C
        (KeyboardInterrupt), or a refusal of the trainer (RuntimeError: another thread uses
        it), stops it between two values: the values before were learned exactly as by
        ``learn_one``, the rest not at all (``stats(key)['steps']`` counts the values
        learned).
        """
        if isinstance(ys, (str, bytes, Mapping)) or not hasattr(ys, "__iter__"):
            raise TypeError(f"ys must be a sequence of numbers, got {type(ys).__name__}")
        # an iterator (or a sized iterable without indexing) is read whole, checked, learned
        ys_: Sequence[Any] = (ys if isinstance(ys, (list, tuple, np.ndarray))  # type: ignore[assignment]
                              else list(ys))
        if xs is not None:
            if isinstance(xs, (str, bytes, Mapping)) or not hasattr(xs, "__iter__"):
                raise TypeError(f"xs must be None or a sequence of feature sets, got "
                                f"{type(xs).__name__}")
            xl: Sequence[Any] = (xs if isinstance(xs, (list, tuple, np.ndarray))  # type: ignore[assignment]
                                 else list(xs))
            if len(xl) != len(ys_):
                raise ValueError(f"xs must have one feature set per value ({len(ys_)}), got "
                                 f"{len(xl)}")
        xs_: Optional[Sequence[Any]] = None if xs is None else xl
        try:
            hash(key)
        except TypeError:
            raise TypeError(f"key must be hashable, got {type(key).__name__}") from None
        vals = [self._number(y, f"ys[{i}]") for i, y in enumerate(ys_)]
        feats: List[Tuple[Optional[np.ndarray], Optional[List[str]]]] = []
        nf, names = self._n_features, self._feature_names
        for i in range(len(vals)):
            xv, nm = self._features(None if xs_ is None else xs_[i], f"xs[{i}]", nf, names)
            if nf is None and (xv is not None or xs_ is None or xs_[i] is None):
                nf = 0 if xv is None else int(xv.shape[0])
            if names is None and nm is not None:
                names = nm
            feats.append((xv, nm))
        with critical:
            for yv, (xv, nm) in zip(vals, feats):
                self._learn_checked(yv, xv, nm, key)
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
        if horizon.__class__ is int and horizon == 1 and xs is None:
            # the common call: the forecast issued by the last learn_one, if any
            s = self._streams.get(key) if key.__class__ in (str, int, type(None)) \
                else self._lookup(key)
            if s is not None and s.last_y == s.last_y and not s.sx.n.shape[0]:
                H = self._max_horizon
                if s.porig[s.n_seen % H] == s.n_seen:
                    return [float(s.pend[s.n_seen % H, 0, len(self._expert_names)])]
        horizon = _check_int(horizon, "horizon", 1, MAX_HORIZON)
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
                    feats[k] = self._features(xs[k], f"xs[{k}]", self._n_features,
                                              self._feature_names)[0]
        s = self._lookup(key)
        if s is None or s.last_y != s.last_y:
            return [_MISSING] * horizon
        H = self._max_horizon
        if horizon <= H and not s.sx.n.shape[0] and s.porig[s.n_seen % H] == s.n_seen:
            # issued by the last learn_one (no features: nothing here depends on xs)
            return [float(v) for v in s.pend[s.n_seen % H, :horizon,
                                             len(self._expert_names)]]
        return self._combine(s, self._expert_matrix(s, self._net_path(s, horizon, feats)))

    @_threads.reads
    def forecast_interval(self, horizon: int = 1, level: float = 0.9,
                          xs: Optional[Sequence[Any]] = None, *,
                          key: _Key = None) -> List[Tuple[float, float]]:
        """Prediction intervals ``(low, high)`` for the next ``horizon`` values of ``key``.

        Centred on :meth:`forecast`, with the radius of online conformal prediction: the
        ``level`` quantile (finite-sample corrected) of the newest absolute errors of this
        horizon's forecasts, with the miscoverage adapted online (adaptive conformal
        inference, Gibbs & Candes 2021) so that the coverage of ``interval_level``
        (a setting, default 0.9) is tracked per horizon; another ``level`` shifts the
        quantile by the same learned correction. Horizons beyond ``max_horizon`` use the
        errors of ``max_horizon``. ``(-inf, inf)`` while too few errors were seen for the
        level (fewer than about ``1 / (1 - level)``); NaN bounds before the first value.
        """
        if isinstance(level, (bool, np.bool_)) or not isinstance(level, Real):
            raise TypeError(f"level must be a number in (0, 1), got "
                            f"{type(level).__name__} {level!r}")
        if not 0.0 < float(level) < 1.0:
            raise ValueError(f"level must be in (0, 1), got {level!r}")
        centre = self.forecast(horizon, xs, key=key)
        s = self._streams.get(key)
        if s is None or s.last_y != s.last_y:
            return [(_MISSING, _MISSING)] * len(centre)
        shift = 1.0 - float(level) - (1.0 - self._interval_level)
        out = []
        for k, c in enumerate(centre):
            i = min(k, self._max_horizon - 1)
            r = _experts.radius(s.scores[i], int(s.nscores[i]), float(s.alpha[i]) + shift)
            out.append((c - r, c + r))
        return out

    @_threads.reads
    def expert_weights(self, horizon: int = 1, *, key: _Key = None) -> Dict[str, float]:
        """The combination weights of stream ``key`` at ``horizon`` (1-based; beyond
        ``max_horizon``: those of ``max_horizon``), by expert name. Before the network's
        target scaler has statistics the network takes no part (weight 0)."""
        horizon = _check_int(horizon, "horizon", 1, MAX_HORIZON)
        s = self._lookup(key)
        if s is None:
            raise KeyError(f"no stream with key {key!r}")
        avail = np.ones(len(self._expert_names), dtype=bool)
        avail[0] = self._net_ready(s)
        w = self._weights_of(s, horizon, avail)
        return {n: float(v) for n, v in zip(self._expert_names, w)}

    @_threads.reads
    def expert_forecasts(self, horizon: int = 1, xs: Optional[Sequence[Any]] = None, *,
                         key: _Key = None) -> Dict[str, List[float]]:
        """Every expert's own forecasts of the next ``horizon`` values of ``key`` (the network's
        rollout, persistence, seasonal naive, exponential smoothing), before combination.
        The network's are NaN while it takes no part yet."""
        self.forecast(horizon, xs, key=key)           # validates
        s = self._streams.get(key)
        if s is None or s.last_y != s.last_y:
            return {n: [_MISSING] * horizon for n in self._expert_names}
        feats: List[Optional[np.ndarray]] = [None] * horizon
        if xs is not None:
            feats = [None if v is None else
                     self._features(v, "xs", self._n_features, self._feature_names)[0]
                     for v in xs]
        F = self._expert_matrix(s, self._net_path(s, horizon, feats))
        return {n: [float(v) for v in F[:, e]] for e, n in enumerate(self._expert_names)}

    def _net_path(self, s: _Stream, horizon: int,
                  feats: Sequence[Optional[np.ndarray]]) -> List[float]:
        """The network's own forecasts of horizons 1..horizon (autoregressive rollout on a
        scratch copy of the state; nothing of the stream changes)."""
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
        m = self._season or 0
        # y[t-m..t] (the last season + 1 of the history), then the forecasts
        path = s.hist[s.hist.shape[0] - m - 1:].tolist() if m else []
        if self._scale and not s.sx.n.shape[0]:
            # no features, scaled (the default): _fill_y and _unscale with the scalers'
            # statistics read once (they do not change during the rollout); the same
            # operations, so the same numbers
            my, ssy = s.sy.mean, s.sy.std()
            md, ssd = s.sd.mean, s.sd.std()
            dif = self._differencing
            for k in range(1, horizon):
                u[0] = _clip((yhat - my) / ssy)
                if dif:
                    u[1] = 0.0 if prev != prev else _clip((yhat - prev - md) / ssd)
                if path:
                    path.append(yhat)
                    if dif:
                        d = path[-m] - path[-m - 1]
                        u[2] = 0.0 if d != d else _clip((d - md) / ssd)
                    else:
                        b = path[-m]
                        u[1] = 0.0 if b != b else _clip((b - my) / ssy)
                prev = yhat
                net.step(u, state, out=ybuf)
                o = float(ybuf[0])
                yhat = prev + (o * ssd + md) if dif else o * ssy + my
                out.append(yhat)
            return out
        for k in range(1, horizon):
            if path:
                path.append(yhat)
                self._fill_y(s, u, yhat, prev, path[-m], path[-m - 1])
            else:
                self._fill_y(s, u, yhat, prev)
            self._fill_x(s, u, feats[k])
            prev = yhat
            net.step(u, state, out=ybuf)
            yhat = self._unscale(s, float(ybuf[0]), prev)
            out.append(yhat)
        return out

    # ------------------------------------------------------------------ one stream's state
    # export_stream / import_stream: one stream in streamrnn's file format (streamrnn.io,
    # object type "ForecasterStream"), for engines that keep every key's state themselves
    # (streamrnn.flink). Kept apart from the methods above on purpose.
    @_threads.reads
    def export_stream(self, key: _Key = None) -> bytes:
        """The complete state of stream ``key`` as bytes (no pickle).

        Everything the stream owns: its trainer (recurrent state, TBPTT ring, optimizer
        moments, counters; with ``weights='per_key'`` also its network's weights), scalers,
        next input and pending prediction, season history, smoothing, Holt-Winters, the
        combination's regrets and kept forecasts and the conformal state, plus a fingerprint
        of this forecaster's configuration (settings, optimizer, feature names). With
        ``weights='shared'`` the shared network is not part of a stream (save the forecaster
        for it). Nothing changes.

        Raises
        ------
        KeyError
            No stream ``key``.
        TypeError
            ``key`` unhashable.
        ValueError
            The stream holds NaN or inf where :meth:`import_stream` requires finite values.

        Examples
        --------
        >>> import streamrnn as sr
        >>> f = sr.Forecaster(hidden_size=4, seed=0)
        >>> for t in range(5):
        ...     f.learn_one(float(t), key="a")
        >>> g = sr.Forecaster(hidden_size=4, seed=0)
        >>> g.import_stream("b", f.export_stream("a"))
        >>> g.keys()
        ['b']
        """
        from .io import _dump_stream
        s = self._lookup(key)
        if s is None:
            raise KeyError(f"no stream with key {key!r}")
        return _dump_stream(self, s)

    @_threads.writes
    def import_stream(self, key: _Key, data: bytes) -> None:
        """Set stream ``key`` (new, or replacing the one there) to bytes of
        :meth:`export_stream`: it continues bit for bit where the exported stream stopped
        (with shared weights: on this forecaster's shared network).

        The bytes are validated as strictly as :func:`streamrnn.load` (checksums, shapes,
        dtypes, finite values, statistics) and their configuration fingerprint must equal
        this forecaster's (``n_features`` and ``feature_names`` not yet fixed here are taken
        from the stream). On any error nothing of the forecaster changes.

        Raises
        ------
        FileFormatError (a ValueError)
            Not stream bytes, corrupted or truncated, or a stream of a forecaster with
            another configuration.
        TypeError
            ``data`` not bytes, or ``key`` unhashable.
        """
        from .io import _load_stream
        try:
            hash(key)
        except TypeError:
            raise TypeError(f"key must be hashable, got {type(key).__name__}") from None
        s, net, nf, names = _load_stream(self, data)
        with critical:
            if self._weights == "shared" and self._net is None:
                self._net = net
            if self._n_features is None:
                self._n_features = nf
            if self._feature_names is None and names is not None:
                self._feature_names = names
            self._streams[key] = s
