"""Online combination of forecasts (ML-Poly) and adaptive conformal intervals, per horizon.

Pure NumPy on small per-stream arrays; deterministic (no randomness at all), so a saved and
loaded forecaster continues bit for bit.

Expert aggregation (ML-Poly, Gaillard, Stoltz & van Erven 2014)
---------------------------------------------------------------
For one horizon, E experts forecast ``f_e``; the combination is ``yhat = sum_e w_e f_e``.
When the truth ``y`` arrives, the absolute loss is linearised at ``yhat`` (gradient trick:
``g = sign(yhat - y)``), each expert's instantaneous regret is ``r_e = g * (yhat - f_e)``,
and ::

    R_e += r_e;   S_e += r_e**2;   w_e  proportional to  (R_e)_+ / (1 + S_e)

(ML-Poly with its polynomial potential of degree 2 and per-expert learning rates
``1 / (1 + S_e)``). Its regret against the best *convex combination* of the experts is
``O(sqrt(T log E))``-like without any tuning; the linearised absolute loss makes it scale-free
in the series' units. While no expert has a positive cumulative regret, the weights are the
prior (all mass on the baseline: persistence, or the seasonal naive forecast with a season).

Adaptive conformal inference (Gibbs & Candes 2021)
--------------------------------------------------
For one horizon, the scores are the absolute errors ``|y - yhat|`` of the combined forecast,
kept in a ring of the W newest. The interval at miscoverage ``a`` is
``yhat +- q`` with ``q`` the ``ceil((n+1)(1-a))``-th smallest of the n scores (infinite when
that exceeds n). ACI adapts ``a`` online: after each scored forecast
``a += gamma * (target - err)`` with ``err = 1`` when ``y`` fell outside the interval issued
with that forecast, so the long-run miscoverage tends to the target whatever the drift.
"""
from __future__ import annotations

import math
from typing import Tuple

import numpy as np

GAMMA = 0.005          # ACI step (Gibbs & Candes' choice)
WINDOW = 200           # conformal scores kept per horizon


def weights(R: np.ndarray, S: np.ndarray, prior: int) -> np.ndarray:
    """ML-Poly weights (E,) from cumulative regrets R (E,) and squared regrets S (E,)."""
    v = np.maximum(R, 0.0) / (1.0 + S)
    tot = float(v.sum())
    if not tot > 0.0 or not math.isfinite(tot):
        w = np.zeros(R.shape[0])
        w[prior] = 1.0
        return w
    return v / tot


def aggregate_update(R: np.ndarray, S: np.ndarray, f: np.ndarray, yhat: float,
                     y: float) -> None:
    """One ML-Poly step in place: experts' forecasts f (E,) (NaN: absent, no regret), the
    combination yhat made from them and the truth y."""
    g = 1.0 if yhat > y else (-1.0 if yhat < y else 0.0)
    r = g * (yhat - f)
    r[~np.isfinite(r)] = 0.0
    R += r
    S += r * r


def radius(scores: np.ndarray, n: int, alpha: float) -> float:
    """Conformal radius at miscoverage alpha from the first min(n, W) scores (inf: none)."""
    m = min(n, scores.shape[0])
    if m == 0 or alpha <= 0.0:
        return math.inf
    if alpha >= 1.0:
        return 0.0
    k = math.ceil((m + 1) * (1.0 - alpha))
    if k > m:
        return math.inf
    return float(np.partition(scores[:m], k - 1)[k - 1])


def conformal_update(scores: np.ndarray, n: int, alpha: float, target: float, err: float,
                     score: float) -> Tuple[int, float]:
    """Add one score to the ring (position n mod W) and take one ACI step; returns the new
    (n, alpha). ``err``: 1.0 if the truth fell outside the interval issued, else 0.0."""
    scores[n % scores.shape[0]] = score
    alpha = alpha + GAMMA * (target - err)
    # bounded, so that a long run of misses or hits cannot take it anywhere absurd
    alpha = min(max(alpha, -1.0), 2.0)
    return n + 1, alpha
