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
``a += gamma_k * (target - err)`` with ``err = 1`` when ``y`` fell outside the interval issued
with that forecast, so the long-run miscoverage tends to the target whatever the drift.
The step is ``gamma_k = GAMMA`` up to horizon ``GAMMA_HORIZON`` and ``GAMMA * GAMMA_HORIZON /
k`` beyond: horizon k's feedback arrives k steps late, and a large step would then overshoot
(measured: see benchmarks/RESULTS.md). For the same reason ``a`` is bounded below (anti-
windup) by ``-ALPHA_FLOOR * max(1, k / GAMMA_HORIZON)**2``: a burst of misses that
horizon k sees only k steps late would otherwise drive ``a`` far below 0, where every
interval is ``(-inf, inf)``, for as many steps again (measured on the public series: the
share of infinite intervals 0.16 -> 0.12 on average, elec_equip's at h=12 0.52 -> 0.28).
"""
from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np

GAMMA = 0.05           # ACI step (Gibbs & Candes used 0.005; measured: see RESULTS.md)
GAMMA_HORIZON = 12.0   # horizon k > GAMMA_HORIZON: step GAMMA * GAMMA_HORIZON / k
ALPHA_FLOOR = 0.05     # the miscoverage of horizon k stays >= -ALPHA_FLOOR * max(1, k/12)^2
WINDOW = 200           # conformal scores kept per horizon
SMALL = 24             # combine: up to this many forecasts (horizons x experts) with
                       # Python floats (measured faster than the array operations)


def weights(R: np.ndarray, S: np.ndarray, prior: int) -> np.ndarray:
    """ML-Poly weights (E,) from cumulative regrets R (E,) and squared regrets S (E,)."""
    v = np.maximum(R, 0.0) / (1.0 + S)
    tot = float(v.sum())
    if not tot > 0.0 or not math.isfinite(tot):
        w = np.zeros(R.shape[0])
        w[prior] = 1.0
        return w
    return v / tot


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


def outside(scores: np.ndarray, n: int, alpha: float, err: float) -> bool:
    """Whether ``err > radius(scores, n, alpha)``, without selecting the quantile: the
    k-th smallest score is below err exactly when at least k scores are."""
    m = min(n, scores.shape[0])
    if m == 0 or alpha <= 0.0:
        return False
    if alpha >= 1.0:
        return err > 0.0
    k = math.ceil((m + 1) * (1.0 - alpha))
    if k > m:
        return False
    return int(np.count_nonzero(scores[:m] < err)) >= k


# ---------------------------------------------------------------- all horizons at once
def combine(R: np.ndarray, S: np.ndarray, F: np.ndarray, prior: int) -> np.ndarray:
    """Combined forecasts (K,) from the forecasts F (K, E) (NaN: expert absent) and the
    regrets R, S (K, E) of each row's horizon: ``weights`` over the present experts, row
    by row (the prior where no present expert has a positive regret)."""
    K, E = F.shape
    if K * E <= SMALL and E < 8:
        # a few horizons (the common case): the same operations on Python floats, in the
        # same order (NumPy sums fewer than 8 terms sequentially), so the results are
        # identical and much cheaper than the array operations at this size
        few: List[float] = []
        for fr, rr, sr in zip(F.tolist(), R.tolist(), S.tolist()):
            tot = acc = 0.0
            for f, r, s in zip(fr, rr, sr):
                if math.isfinite(f):
                    v = max(r, 0.0) / (1.0 + s)
                    tot += v
                    acc += v * f
            few.append(acc / tot if tot > 0.0 and math.isfinite(tot) else fr[prior])
        return np.array(few)
    ok = np.isfinite(F)
    V = np.where(ok, np.maximum(R, 0.0) / (1.0 + S), 0.0)
    tot = V.sum(axis=1)
    Fz = np.where(ok, F, 0.0)
    out = F[:, prior].copy()
    good = (tot > 0.0) & np.isfinite(tot)
    if good.any():
        out[good] = (V[good] * Fz[good]).sum(axis=1) / tot[good]
    return out


def radii(scores: np.ndarray, n: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``radius`` of every row: scores (K, W), n (K,) scores seen, alpha (K,)."""
    K, W = scores.shape
    if K == 1:
        return np.array([radius(scores[0], int(n[0]), float(alpha[0]))])
    m = np.minimum(n, W)
    srt = np.sort(np.where(np.arange(W)[None, :] < m[:, None], scores, np.inf), axis=1)
    with np.errstate(invalid="ignore", over="ignore"):
        k = np.ceil((m + 1) * (1.0 - alpha))
    out = np.full(K, np.inf)
    fin = (m > 0) & (alpha > 0.0) & (alpha < 1.0) & (k <= m)
    idx = np.flatnonzero(fin)
    out[idx] = srt[idx, k[idx].astype(np.int64) - 1]
    out[(m > 0) & (alpha >= 1.0)] = 0.0
    return out


def score(R: np.ndarray, S: np.ndarray, scores: np.ndarray, n: np.ndarray,
          alpha: np.ndarray, rows: np.ndarray, valid: np.ndarray, learn: np.ndarray,
          y: float, target: float) -> None:
    """Score kept forecasts of several horizons against their truth y, in place.

    rows (K, E + 2): the experts' forecasts, the combination and the radius issued with
    it; valid (K,): rows to score (conformal state); learn (K,): rows whose horizon's
    weights learn (ML-Poly's update of the module notes). R, S (K, E), scores (K, W), n, alpha (K,)."""
    E = R.shape[1]
    if R.shape[0] == 1:
        if valid[0]:
            _score1(R[0], S[0], scores[0], n, alpha, rows[0], bool(learn[0]), y, target)
        return
    yhat = rows[:, E]
    g = np.sign(yhat - y)
    r = g[:, None] * (yhat[:, None] - rows[:, :E])
    r[~np.isfinite(r)] = 0.0
    r[~learn] = 0.0
    R += r
    S += r * r
    vi = np.flatnonzero(valid)
    if not vi.shape[0]:
        return
    err = np.abs(y - yhat[vi])
    miss = (err > rows[vi, E + 1]).astype(np.float64)
    nv = n[vi]
    scores[vi, nv % scores.shape[1]] = err
    n[vi] = nv + 1
    # row i is horizon i + 1, whose feedback arrives i + 1 steps late: smaller steps
    late = np.maximum(1.0, (vi + 1.0) / GAMMA_HORIZON)
    gam = GAMMA / late
    alpha[vi] = np.minimum(np.maximum(alpha[vi] + gam * (target - miss),
                                      -ALPHA_FLOOR * late * late), 2.0)


def _score1(R: np.ndarray, S: np.ndarray, scores: np.ndarray, n: np.ndarray,
            alpha: np.ndarray, row: np.ndarray, learn: bool, y: float,
            target: float) -> None:
    """``score`` of one horizon with Python floats (the same operations)."""
    E = R.shape[0]
    vals = row.tolist()
    yhat = vals[E]
    if learn:
        g = 1.0 if yhat > y else (-1.0 if yhat < y else 0.0)
        # on Python floats, written back at once (element-wise NumPy access is slower)
        Rl = R.tolist()
        Sl = S.tolist()
        for e in range(E):
            r = g * (yhat - vals[e])
            if math.isfinite(r):
                Rl[e] += r
                Sl[e] += r * r
        R[:] = Rl
        S[:] = Sl
    err = abs(y - yhat)
    rad = vals[E + 1]
    if rad == rad:
        miss = 1.0 if err > rad else 0.0
    else:
        # radius not computed when issued (one horizon: nothing changed scores, n or
        # alpha since): the test against the radius it would have had
        miss = 1.0 if outside(scores, int(n[0]), float(alpha[0]), err) else 0.0
    k = int(n[0])
    scores[k % scores.shape[0]] = err
    n[0] = k + 1
    alpha[0] = min(max(float(alpha[0]) + GAMMA * (target - miss), -ALPHA_FLOOR), 2.0)
