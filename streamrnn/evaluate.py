"""Progressive validation of a forecaster against the persistence forecast.

>>> import math, streamrnn as sr
>>> series = [10 + 5 * math.sin(0.3 * t) for t in range(300)]
>>> result = sr.evaluate(series, sr.Forecaster(hidden_size=16, seed=0), horizon=2)
>>> result.mae[0] < result.persistence_mae[0]
True
"""
from __future__ import annotations

import math
from typing import Any, Dict, Hashable, Iterable, List, Optional, Sequence

import numpy as np

from ._progress import progress_bar

__all__ = ["evaluate", "Evaluation"]


class Evaluation:
    """The result of :func:`evaluate`: errors per horizon step, model and persistence.

    Made by :func:`evaluate`, not by users; ``str(res)`` is a small table of the figures,
    :meth:`to_dict` a JSON-ready dict.

    Attributes
    ----------
    horizon : int
    n : list of int
        Scored forecasts per horizon step (step k forecasts the value k+1 ahead).
    mae, rmse : list of float
        The forecaster's mean absolute and root mean squared error per horizon step.
    persistence_mae, persistence_rmse : list of float
        The same for the persistence forecast (the last observed value, at every step).
    forecasts : ndarray (T, horizon) or None
        ``forecasts[t, k]``: the forecast of ``series[t + k]`` made before ``series[t]``
        arrived (with ``return_forecasts=True``; NaN where none was made).
    persistence : ndarray (T,) or None
        The persistence forecast made at each t (the last observed value before t).
    coverage : list of float or None
        With ``interval_level``: the fraction of scored points inside the forecaster's
        ``forecast_interval`` at that level, per horizon step (infinite intervals count as
        covering), and ``interval_width`` the mean width of the finite ones.
    interval_width : list of float or None
    seconds : float
        Wall time of the loop (forecast + learn).
    steps : int
        Number of values processed (T).

    Examples
    --------
    >>> import numpy as np, streamrnn as sr
    >>> res = sr.evaluate([1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0], sr.Forecaster(seed=0))
    >>> res.horizon, res.steps
    (1, 7)
    >>> sorted(res.to_dict())[:3]
    ['coverage', 'horizon', 'interval_width']
    """

    def __init__(self, horizon: int, n: List[int], mae: List[float], rmse: List[float],
                 persistence_mae: List[float], persistence_rmse: List[float],
                 forecasts: Optional[np.ndarray], persistence: Optional[np.ndarray],
                 seconds: float, steps: int, coverage: Optional[List[float]] = None,
                 interval_width: Optional[List[float]] = None) -> None:
        self.horizon = horizon
        self.n = n
        self.mae = mae
        self.rmse = rmse
        self.persistence_mae = persistence_mae
        self.persistence_rmse = persistence_rmse
        self.forecasts = forecasts
        self.persistence = persistence
        self.seconds = seconds
        self.steps = steps
        self.coverage = coverage
        self.interval_width = interval_width

    @property
    def skill(self) -> List[float]:
        """``1 - mae / persistence_mae`` per horizon step (> 0: better than persistence)."""
        return [1.0 - m / p if p > 0 else float("nan")
                for m, p in zip(self.mae, self.persistence_mae)]

    def to_dict(self) -> Dict[str, Any]:
        """The figures as a JSON-serialisable dict (without the forecast arrays)."""
        return {"horizon": self.horizon, "n": self.n, "mae": self.mae, "rmse": self.rmse,
                "persistence_mae": self.persistence_mae,
                "persistence_rmse": self.persistence_rmse, "skill": self.skill,
                "seconds": self.seconds, "steps": self.steps, "coverage": self.coverage,
                "interval_width": self.interval_width}

    def __repr__(self) -> str:
        return (f"Evaluation(horizon={self.horizon}, n={self.n}, mae={self.mae}, "
                f"persistence_mae={self.persistence_mae})")

    def __str__(self) -> str:
        lines = [f"{'step':>4s} {'n':>6s} {'MAE':>11s} {'RMSE':>11s} {'persist MAE':>12s} "
                 f"{'persist RMSE':>12s} {'skill':>7s}"]
        for k in range(self.horizon):
            lines.append(f"{k + 1:4d} {self.n[k]:6d} {self.mae[k]:11.4g} {self.rmse[k]:11.4g} "
                         f"{self.persistence_mae[k]:12.4g} {self.persistence_rmse[k]:12.4g} "
                         f"{self.skill[k]:+7.1%}")
        return "\n".join(lines)


def evaluate(series: Iterable[Any], forecaster: Any, horizon: int = 1, *,
             x: Optional[Sequence[Any]] = None, key: Hashable = None, grace_period: int = 0,
             return_forecasts: bool = False, progress: Optional[bool] = None,
             impute_missing: bool = True,
             interval_level: Optional[float] = None) -> Evaluation:
    """Progressive validation: at each t, forecast ``horizon`` values, then learn series[t].

    The forecast made before ``series[t]`` arrives is scored against ``series[t]``,
    ``series[t+1]``, ... ``series[t+horizon-1]``; the persistence forecast (the last observed
    value before t, for every step) is scored on exactly the same points. Points with a
    missing value (NaN/None) or no forecast yet (before the first observation) are not
    scored, and neither are the first ``grace_period`` time steps (they are still learned).

    Parameters
    ----------
    series : iterable of float (NaN/None: missing), or a pandas Series (its values)
    forecaster : a streamrnn Forecaster, or any object with river's ``learn_one(y, x=None)``
        and ``forecast(horizon, xs=None)`` (river's SNARIMAX, HoltWinters, ...)
    horizon : int >= 1
    x : sequence of feature sets (one per value), a pandas DataFrame (its rows, as
        {column: value} dicts), or None
        ``x[t]`` is given with ``series[t]`` to learn_one; ``x[t:t+horizon]`` to forecast.
    key : the stream key passed to a streamrnn Forecaster (ignored for other forecasters)
    grace_period : int >= 0
    return_forecasts : keep every forecast in the result
    progress : None (default: a bar when stderr is a terminal, silent otherwise), True or
        False
    impute_missing : for forecasters other than streamrnn's (which take NaN themselves):
        at a missing value, learn the model's own forecast of it (the streamrnn policy);
        False: skip the learn_one call
    interval_level : None, or a level in (0, 1): also score the forecaster's
        ``forecast_interval(horizon, level)`` (a streamrnn Forecaster's conformal intervals)
        on the same points: coverage and mean width per horizon step

    Returns
    -------
    Evaluation
        MAE and RMSE per horizon step for the forecaster and for persistence, the number of
        scored points, the wall time and (``return_forecasts=True``) every forecast,
        ``forecasts`` (T, horizon) float64.

    Raises
    ------
    TypeError
        ``series`` not a sequence of numbers, or ``forecaster`` without ``learn_one`` and
        ``forecast``.
    ValueError
        ``horizon < 1``, ``grace_period < 0``, a series that is not 1-D or holds inf, an
        ``x`` of another length than the series.
    KeyboardInterrupt
        Ctrl-C: re-raised with the figures so far as its ``evaluation`` attribute (an
        :class:`Evaluation` over the ``steps`` values processed; see ``e.evaluation``).

    Examples
    --------
    >>> import math, streamrnn as sr
    >>> series = [math.sin(0.3 * t) for t in range(200)]
    >>> res = sr.evaluate(series, sr.Forecaster(hidden_size=8, seed=0), horizon=2)
    >>> res.horizon, len(res.mae), res.n[0] > 150
    (2, 2, True)
    """
    import time

    from ._checks import pandas_rows, pandas_series
    from .forecast import Forecaster

    if isinstance(forecaster, type):
        raise TypeError(f"forecaster must be an instance, got the class "
                        f"{forecaster.__name__}; pass {forecaster.__name__}() (with its "
                        f"settings), e.g. sr.evaluate(series, sr.Forecaster())")
    series = pandas_series(series, "series")
    x = pandas_rows(x, "x")
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
    if isinstance(grace_period, bool) or not isinstance(grace_period, (int, np.integer)) \
            or grace_period < 0:
        raise ValueError(f"grace_period must be an integer >= 0, got {grace_period!r}")
    if not (isinstance(forecaster, Forecaster) or (callable(getattr(forecaster, "learn_one", None))
                                                  and callable(getattr(forecaster, "forecast",
                                                                       None)))):
        raise TypeError(f"forecaster must be a streamrnn Forecaster or have learn_one(y, x) "
                        f"and forecast(horizon, xs) methods, got {type(forecaster).__name__}")
    if isinstance(series, (str, bytes)):
        raise TypeError(f"series must be a sequence of numbers, got {type(series).__name__}")
    try:
        ys = np.array([np.nan if v is None else v for v in series], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"series must be a sequence of numbers (None/NaN: missing): {e}") \
            from None
    if ys.ndim != 1:
        raise ValueError(f"series must be one-dimensional, got shape {ys.shape}")
    if np.isinf(ys).any():
        raise ValueError("series must not hold inf (NaN marks a missing value)")
    T = ys.shape[0]
    if x is not None and len(x) != T:
        raise ValueError(f"x must hold one feature set per value ({T}), got {len(x)}")
    ours = isinstance(forecaster, Forecaster)
    kw = {"key": key} if ours else {}
    if interval_level is not None:
        if isinstance(interval_level, bool) or not isinstance(interval_level, (int, float)) \
                or not 0.0 < float(interval_level) < 1.0:
            raise ValueError(f"interval_level must be None or a number in (0, 1), got "
                             f"{interval_level!r}")
        if not callable(getattr(forecaster, "forecast_interval", None)):
            raise TypeError(f"interval_level needs a forecaster with forecast_interval(), "
                            f"got {type(forecaster).__name__}")
    cover = np.zeros(horizon)
    wsum = np.zeros(horizon)
    wcnt = np.zeros(horizon)
    h = int(horizon)
    abs_m = np.zeros(h)
    sq_m = np.zeros(h)
    abs_p = np.zeros(h)
    sq_p = np.zeros(h)
    cnt = np.zeros(h, dtype=np.int64)
    F = np.full((T, h), np.nan) if return_forecasts else None
    P = np.full(T, np.nan) if return_forecasts else None
    last = np.nan
    seen = False
    bar = progress_bar(T, "evaluate", enabled=progress)
    t0 = time.perf_counter()
    done = 0
    try:
        for t in range(T):
            if seen:
                xs = None if x is None else list(x[t:t + h])
                if xs is not None and len(xs) < h:
                    xs = xs + [None] * (h - len(xs))
                if ours:
                    f = forecaster.forecast(h, xs, **kw)
                else:
                    f = _foreign_forecast(forecaster, h, xs)
                iv = (None if interval_level is None else
                      forecaster.forecast_interval(h, interval_level, xs, **kw))
                if F is not None and P is not None:
                    F[t] = f
                    P[t] = last
                if t >= grace_period:
                    for k in range(min(h, T - t)):
                        yk = ys[t + k]
                        fk = f[k]
                        if yk == yk and fk == fk and last == last:
                            err = fk - yk
                            ep = last - yk
                            abs_m[k] += abs(err)
                            sq_m[k] += err * err
                            abs_p[k] += abs(ep)
                            sq_p[k] += ep * ep
                            cnt[k] += 1
                            if iv is not None:
                                lo, hi = iv[k]
                                cover[k] += lo <= yk <= hi
                                if math.isfinite(hi - lo):
                                    wsum[k] += hi - lo
                                    wcnt[k] += 1
            y = ys[t]
            if ours:
                forecaster.learn_one(y, None if x is None else x[t], **kw)
            else:
                v = y
                if v != v and impute_missing and seen and f[0] == f[0]:
                    v = f[0]
                if v == v:
                    if x is None:
                        forecaster.learn_one(float(v))
                    else:
                        forecaster.learn_one(float(v), x[t])
            if y == y:
                last = y
                seen = True
            bar.update(1)
            done += 1
    except KeyboardInterrupt as e:
        # keep the partial result: the figures over the values processed so far
        partial = _summary(h, cnt, abs_m, sq_m, abs_p, sq_p, cover, wsum, wcnt,
                           interval_level, F, P, time.perf_counter() - t0, done)
        e.evaluation = partial  # type: ignore[attr-defined]
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    return _summary(h, cnt, abs_m, sq_m, abs_p, sq_p, cover, wsum, wcnt, interval_level, F,
                    P, seconds, T)


def _summary(h: int, cnt: np.ndarray, abs_m: np.ndarray, sq_m: np.ndarray,
             abs_p: np.ndarray, sq_p: np.ndarray, cover: np.ndarray, wsum: np.ndarray,
             wcnt: np.ndarray, interval_level: Optional[float], F: Optional[np.ndarray],
             P: Optional[np.ndarray], seconds: float, T: int) -> Evaluation:
    """The Evaluation from the loop's sums (T: values processed)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        n = [int(c) for c in cnt]

        def mean(a: np.ndarray) -> List[float]:
            return [float(a[k] / cnt[k]) if cnt[k] else math.nan for k in range(h)]

        mae, pmae = mean(abs_m), mean(abs_p)
        rmse = [math.sqrt(v) if v == v else v for v in mean(sq_m)]
        prmse = [math.sqrt(v) if v == v else v for v in mean(sq_p)]
        coverage = width = None
        if interval_level is not None:
            coverage = mean(cover)
            width = [float(wsum[k] / wcnt[k]) if wcnt[k] else math.nan for k in range(h)]
    return Evaluation(h, n, mae, rmse, pmae, prmse, F, P, seconds, T, coverage, width)


def _foreign_forecast(model: Any, horizon: int, xs: Optional[List[Any]]) -> List[float]:
    """river-style forecast as a list of floats (NaN where the model gives none)."""
    try:
        f = model.forecast(horizon=horizon) if xs is None else model.forecast(horizon, xs)
    except Exception:
        # river's models raise before they have seen enough data
        return [math.nan] * horizon
    out = [math.nan if v is None else float(v) for v in f]
    return (out + [math.nan] * horizon)[:horizon]
