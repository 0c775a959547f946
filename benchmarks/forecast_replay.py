"""Replay the Forecaster's kept expert forecasts through other aggregation rules.

The network of ``sr.Forecaster`` trains on its own one-step loss, independently of how its
forecasts are combined with the baselines. So aggregation rules can be compared offline:
run the Forecaster once per series (as ``forecast_eval.py`` does: ``season=m``, progressive
validation), record at every step every expert's forecasts of horizons 1..m (the
forecaster's kept forecasts, issued by ``learn_one``), and feed them to each rule with the
delays of the real run (horizon k's truth arrives k steps after its forecast). The replay
of ML-Poly reproduces the Forecaster's own combined forecasts exactly (checked here).

    pip install statsmodels river; pip install --no-deps pmdarima    # as forecast_eval.py
    PYTHONPATH=. OPENBLAS_NUM_THREADS=1 python benchmarks/forecast_replay.py --seeds 0

Printed per rule: the MAE ratio to the best baseline (persistence, seasonal naive, and the
river HoltWinters/SNARIMAX figures given by ``--river`` if any, else those two only) at
h=1, m/2 and m, the wins (ratio < 1) and the worst ratio; and per series the hindsight-best
fixed convex combination of the experts at h=m (a linear program: a bound that no online
rule of these experts can beat by much).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any, Dict, List

import numpy as np

import streamrnn as sr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import forecast_eval as fe  # noqa: E402


def record(y: np.ndarray, m: int, seed: int) -> np.ndarray:
    """(T, m, E + 1): at step t (before y[t] is learned) every expert's forecasts of
    y[t..t+m-1] and the Forecaster's combination (NaN before the first issue)."""
    f = sr.Forecaster(season=m, seed=seed)
    E = len(f.expert_names)
    P = np.full((len(y), m, E + 1), np.nan)
    for t in range(len(y)):
        s = f._streams.get(None)
        if s is not None and s.porig[s.n_seen % m] == s.n_seen:
            P[t] = s.pend[s.n_seen % m, :, :E + 1]
        f.learn_one(y[t])
    return P


class MLPoly:
    """ML-Poly on the linearised absolute loss, as streamrnn._experts (prior: index 2)."""

    def init(self, H: int, E: int) -> Dict[str, Any]:
        return {"R": np.zeros((H, E)), "S": np.zeros((H, E))}

    def combine(self, st: Dict[str, Any], F: np.ndarray) -> np.ndarray:
        ok = np.isfinite(F)
        V = np.where(ok, np.maximum(st["R"], 0.0) / (1.0 + st["S"]), 0.0)
        tot = V.sum(axis=1)
        out = F[:, 2].copy()
        g = (tot > 0.0) & np.isfinite(tot)
        out[g] = (V[g] * np.where(ok, F, 0.0)[g]).sum(axis=1) / tot[g]
        return out

    def update(self, st: Dict[str, Any], idx: np.ndarray, rows: np.ndarray,
               yhat: np.ndarray, y: float) -> None:
        r = np.sign(yhat - y)[:, None] * (yhat[:, None] - rows)
        r[~np.isfinite(r)] = 0.0
        st["R"][idx] += r
        st["S"][idx] += r * r


class BOA:
    """Bernstein online aggregation (Wintenberger 2017) on the linearised absolute loss,
    with adaptive rates; ``prior``: the mass on the seasonal naive forecast (None:
    uniform)."""

    def __init__(self, prior: Any = None) -> None:
        self.prior = prior

    def init(self, H: int, E: int) -> Dict[str, Any]:
        pi = np.full(E, 1.0 / E)
        if self.prior is not None:
            pi = np.full(E, (1.0 - self.prior) / (E - 1))
            pi[2] = self.prior
        return {"R": np.zeros((H, E)), "V": np.zeros((H, E)), "B": np.zeros((H, E)),
                "eta": np.full((H, E), np.inf), "pi": pi, "n": np.zeros(H)}

    def combine(self, st: Dict[str, Any], F: np.ndarray) -> np.ndarray:
        ok = np.isfinite(F)
        out = F[:, 2].copy()
        for i in range(F.shape[0]):
            if not st["n"][i]:
                continue
            eta = st["eta"][i]
            with np.errstate(invalid="ignore", over="ignore"):
                lw = np.log(st["pi"]) + eta * st["R"][i] + np.log(eta)
            lw = np.where(ok[i] & np.isfinite(lw), lw, -np.inf)
            if np.isfinite(lw).any():
                w = np.exp(lw - lw.max())
                out[i] = (w / w.sum() * np.where(ok[i], F[i], 0.0)).sum()
        return out

    def update(self, st: Dict[str, Any], idx: np.ndarray, rows: np.ndarray,
               yhat: np.ndarray, y: float) -> None:
        r = np.sign(yhat - y)[:, None] * (yhat[:, None] - rows)
        r[~np.isfinite(r)] = 0.0
        eta = st["eta"][idx]
        st["R"][idx] += r - np.where(np.isfinite(eta), eta, 0.0) * r * r
        st["V"][idx] += r * r
        st["B"][idx] = np.maximum(st["B"][idx], np.abs(r))
        with np.errstate(divide="ignore", invalid="ignore"):
            new = np.minimum(1.0 / (2.0 * st["B"][idx]),
                             np.sqrt(np.log(1.0 / st["pi"])[None, :] / st["V"][idx]))
        st["eta"][idx] = np.where(np.isfinite(new), new, np.inf)
        st["n"][idx] += 1


def replay(F: np.ndarray, y: np.ndarray, m: int, rule: Any) -> np.ndarray:
    """Combined forecasts (T, m) of ``rule`` from the experts' F (T, m, E); horizon k
    learns from the forecasts made once a season was seen, k steps after them."""
    T, H, E = F.shape
    st = rule.init(H, E)
    C = np.full((T, H), np.nan)
    ks = np.arange(1, H + 1)
    for t in range(T):
        if np.isfinite(F[t]).any():
            C[t] = rule.combine(st, F[t])
        if y[t] == y[t]:
            t0 = t - ks + 1
            ok = t0 >= m
            ok[ok] &= np.isfinite(C[t0[ok], ks[ok] - 1])
            if ok.any():
                rule.update(st, np.flatnonzero(ok), F[t0[ok], ks[ok] - 1],
                            C[t0[ok], ks[ok] - 1], float(y[t]))
    return C


def mae(C: np.ndarray, y: np.ndarray, grace: int, h: int) -> float:
    """MAE of the forecasts of horizon h made at steps >= grace (as sr.evaluate)."""
    k = h - 1
    e = [abs(C[t, k] - y[t + k]) for t in range(grace, len(y) - k)
         if y[t + k] == y[t + k] and C[t, k] == C[t, k]]
    return float(np.mean(e))


def baselines(y: np.ndarray, m: int, grace: int, h: int) -> float:
    """The better MAE of persistence and the seasonal naive forecast at horizon h."""
    k = h - 1
    ep, es = [], []
    for t in range(grace, len(y) - k):
        hist = y[:t][~np.isnan(y[:t])]
        if not len(hist) or y[t + k] != y[t + k]:
            continue
        ep.append(abs(hist[-1] - y[t + k]))
        last = hist[-m:]
        es.append(abs((last[-1] if len(last) < m else last[(h - 1) % m]) - y[t + k]))
    return min(float(np.mean(ep)), float(np.mean(es)))


def oracle(F: np.ndarray, y: np.ndarray, grace: int, h: int) -> float:
    """MAE of the best fixed convex combination in hindsight (scipy's linprog) of the
    experts that forecast at 90% of the steps, over the first 1500 steps where they all do
    (and where the seasonal naive forecast's MAE is compared: see main)."""
    from scipy.optimize import linprog

    k = h - 1
    rows = np.arange(grace, len(y) - k)
    cols = np.flatnonzero(np.isfinite(F[rows, k]).mean(axis=0) >= 0.9)
    ts = np.array([t for t in rows if y[t + k] == y[t + k]
                   and np.isfinite(F[t, k, cols]).all()][:1500], dtype=np.int64)
    A, b = F[ts, k][:, cols], y[ts + k]
    n, E = A.shape
    res = linprog(np.r_[np.zeros(E), np.ones(n)],
                  A_ub=np.block([[A, -np.eye(n)], [-A, -np.eye(n)]]), b_ub=np.r_[b, -b],
                  A_eq=np.r_[np.ones(E), np.zeros(n)][None], b_eq=[1.0],
                  bounds=[(0, None)] * (E + n), method="highs")
    return float(res.fun / n) / float(np.mean(np.abs(A[:, list(cols).index(2)] - b)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--series", default=",".join(fe.SERIES))
    ap.add_argument("--no-oracle", action="store_true")
    a = ap.parse_args()
    rules = {"ML-Poly (shipped)": MLPoly, "BOA uniform": BOA, "BOA prior 0.5": lambda: BOA(0.5)}
    ratios: Dict[str, List[List[float]]] = {r: [] for r in rules}
    names: List[str] = []
    for name in a.series.split(","):
        load, m, _ = fe.SERIES[name]
        try:
            y = load()
        except ImportError as e:
            print(f"{name}: left out ({e})", file=sys.stderr)
            continue
        names.append(name)
        grace = 2 * m
        hs = [1, max(1, m // 2), m]
        best = [baselines(y, m, grace, h) for h in hs]
        per: Dict[str, List[List[float]]] = {r: [] for r in rules}
        for seed in (int(s) for s in a.seeds.split(",")):
            P = record(y, m, seed)
            F = P[:, :, :-1]
            for label, make in rules.items():
                C = replay(F, y, m, make())
                if label.startswith("ML-Poly"):
                    same = np.array_equal(C, P[:, :, -1], equal_nan=True)
                    assert same, f"{name}: the replay differs from the Forecaster"
                per[label].append([mae(C, y, grace, h) / b for h, b in zip(hs, best)])
            if not a.no_oracle and seed == int(a.seeds.split(",")[0]):
                print(f"{name}: hindsight-best convex combination at h=m: "
                      f"{oracle(F, y, grace, m):.3f} of the seasonal naive forecast's MAE "
                      f"(same steps)", flush=True)
        for label in rules:
            ratios[label].append(list(np.mean(per[label], axis=0)))
    print()
    print("MAE / best of persistence and seasonal naive (mean over seeds), h = 1, m/2, m")
    print()
    print("| rule | " + " | ".join(names) + " | wins h=1, m/2, m | worst h=1, m/2, m |")
    print("|---|" + "---:|" * (len(names) + 2))
    for label, rs in ratios.items():
        arr = np.array(rs)
        cells = [" / ".join(f"{v:.3f}" for v in r) for r in rs]
        wins = ", ".join(str(int((arr[:, i] < 1).sum())) for i in range(3))
        worst = ", ".join(f"{arr[:, i].max():.3f}" for i in range(3))
        print(f"| {label} | " + " | ".join(cells) + f" | {wins} | {worst} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
