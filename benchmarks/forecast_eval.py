"""Online forecasting of seasonal real series: streamrnn's Forecaster against baselines.

Progressive validation (``sr.evaluate``): at every time step each model forecasts the next
``season`` values before the truth arrives, then learns it. Every model of a series is scored
on the same points (after a common grace period of two seasons, so that the seasonal models
are initialised). Scored at horizons 1, half a season and one season: MAE, MASE (MAE over the
in-sample MAE of the one-season-back forecast over the whole series), and the coverage of
the Forecaster's 90% conformal intervals. The series come from packages installed only for
this script (not dependencies):

    pip install statsmodels river      # data sets, and river's SNARIMAX / HoltWinters
    pip install --no-deps pmdarima     # only its bundled data sets (see _pmdarima)
    python benchmarks/forecast_eval.py [--seeds 0,1,2] [--markdown]

Series (season in steps): statsmodels' ``co2`` (weekly Mauna Loa CO2, 59 missing weeks,
52), ``elnino`` (monthly sea surface temperatures flattened to one series, 12) and
``elec_equip`` (monthly euro-area electrical equipment orders index, 12); river's
``AirlinePassengers`` (monthly, 12), ``WaterFlow`` (hourly, 24); statsmodels' ``sunspots``
(yearly, the ~11-year cycle given as a season of 11: not an exact season); pmdarima's
``wineind`` (monthly wine sales, 12), ``ausbeer`` (quarterly beer production, 4),
``woolyrnq`` (quarterly woollen yarn production, 4), ``lynx`` (yearly lynx trappings, the
~10-year cycle as a season of 10) and ``taylor`` (half-hourly electricity demand, 48).
A series whose package is missing is left out (with a note on stderr).
"""
from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

import streamrnn as sr

# name -> (loader, season, description)
SERIES: Dict[str, Tuple[Callable[[], np.ndarray], int, str]] = {}


def _sm(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import importlib

        mod = importlib.import_module(f"statsmodels.datasets.{name}")
        data = mod.load_pandas().data
        if name == "elnino":
            return data.iloc[:, 1:].to_numpy(float).ravel()
        if name == "sunspots":
            return data["SUNACTIVITY"].to_numpy(float)
        return data.iloc[:, 0].to_numpy(float)
    return load


def _river(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from river import datasets

        return np.array([y for _, y in getattr(datasets, name)()], dtype=float)
    return load


def _pmdarima(name: str) -> Callable[[], np.ndarray]:
    """pmdarima's bundled data sets (``pip install --no-deps pmdarima``: the data modules
    are plain NumPy/pandas; they are run on their own, without importing pmdarima's
    compiled parts and scikit-learn, which the data sets do not need)."""
    def load() -> np.ndarray:
        import importlib.util

        spec = importlib.util.find_spec("pmdarima")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("pmdarima is not installed (pip install --no-deps pmdarima)")
        import os

        path = os.path.join(list(spec.submodule_search_locations)[0], "datasets",
                            f"{name}.py")
        with open(path) as fh:
            src = fh.read().replace("from ..compat import DTYPE", "DTYPE = np.float64")
        ns: Dict[str, Any] = {"__name__": f"_pmdarima_{name}"}
        exec(compile(src, path, "exec"), ns)
        return np.asarray(ns[f"load_{name}"](), dtype=float)
    return load


SERIES["co2"] = (_sm("co2"), 52, "statsmodels, weekly 1958-2001, 59 missing")
SERIES["elnino"] = (_sm("elnino"), 12, "statsmodels, monthly SST 1950-2010")
SERIES["elec_equip"] = (_sm("elec_equip"), 12, "statsmodels, monthly 1995-2016")
SERIES["AirlinePassengers"] = (_river("AirlinePassengers"), 12, "river, monthly 1949-1960")
SERIES["WaterFlow"] = (_river("WaterFlow"), 24, "river, hourly")
SERIES["sunspots"] = (_sm("sunspots"), 11, "statsmodels, yearly 1700-2008 (~11y cycle)")
SERIES["wineind"] = (_pmdarima("wineind"), 12, "pmdarima, monthly wine sales 1980-1994")
SERIES["ausbeer"] = (_pmdarima("ausbeer"), 4, "pmdarima, quarterly beer production")
SERIES["woolyrnq"] = (_pmdarima("woolyrnq"), 4, "pmdarima, quarterly woollen yarn 1965-94")
SERIES["lynx"] = (_pmdarima("lynx"), 10, "pmdarima, yearly lynx trappings (~10y cycle)")
SERIES["taylor"] = (_pmdarima("taylor"), 48, "pmdarima, half-hourly electricity demand")


class SeasonalNaive:
    """river-style seasonal naive forecaster: y[t+h] = y[t+h-m*ceil(h/m)]."""

    def __init__(self, m: int) -> None:
        self.m = m
        self.hist: List[float] = []

    def learn_one(self, y: float, x: Any = None) -> None:
        self.hist.append(float(y))
        del self.hist[:-self.m]

    def forecast(self, horizon: int, xs: Any = None) -> List[float]:
        if not self.hist:
            return [math.nan] * horizon
        if len(self.hist) < self.m:
            return [self.hist[-1]] * horizon
        return [self.hist[(h - 1) % self.m] for h in range(1, horizon + 1)]


class CountingForecaster(sr.Forecaster):
    """sr.Forecaster that counts, from step ``grace`` on, the intervals ``forecast_interval``
    gives that are infinite (``(-inf, inf)``: adaptive conformal inference's miscoverage
    fell to 0 or below, or too few errors were seen). ``sr.evaluate`` counts an infinite
    interval as covering, so the coverage alone does not show them."""

    def __init__(self, *args: Any, grace: int = 0, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.grace = grace
        self.calls = 0
        self.infinite: Any = None
        self.issued: Any = None

    def forecast_interval(self, horizon: int = 1, level: float = 0.9, xs: Any = None, *,
                          key: Any = None) -> List[Tuple[float, float]]:
        iv = super().forecast_interval(horizon, level, xs, key=key)
        if self.infinite is None:
            self.infinite = np.zeros(horizon)
            self.issued = np.zeros(horizon)
        if self.calls >= self.grace:
            self.issued += 1
            self.infinite += [not math.isfinite(hi - lo) for lo, hi in iv]
        self.calls += 1
        return iv


def river_models(m: int) -> Dict[str, Callable[[], Any]]:
    """river's models with settings from its documentation."""
    from river import linear_model, optim, preprocessing, time_series

    def snarimax() -> Any:
        return time_series.SNARIMAX(
            p=m, d=1, q=m, m=m, sd=1,
            regressor=(preprocessing.StandardScaler()
                       | linear_model.LinearRegression(intercept_init=0.0,
                                                       optimizer=optim.SGD(0.01),
                                                       intercept_lr=0.3)))

    def holtwinters() -> Any:
        return time_series.HoltWinters(alpha=0.3, beta=0.1, gamma=0.6, seasonality=m)

    return {"river SNARIMAX": snarimax, "river HoltWinters": holtwinters}


def mase_scale(y: np.ndarray, m: int) -> float:
    d = np.abs(y[m:] - y[:-m])
    return float(np.nanmean(d))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2", help="streamrnn seeds (mean and spread)")
    ap.add_argument("--series", default=",".join(SERIES))
    ap.add_argument("--no-river", action="store_true")
    ap.add_argument("--level", type=float, default=0.9, help="interval level")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    try:
        import river  # noqa: F401

        have_river = not args.no_river
    except ImportError:
        have_river = False

    rows: List[Dict[str, Any]] = []
    for name in args.series.split(","):
        load, m, desc = SERIES[name]
        try:
            y = load()
        except ImportError as e:
            print(f"{name}: left out ({e})", file=sys.stderr)
            continue
        grace = 2 * m
        steps = sorted({1, max(1, m // 2), m})
        res: Dict[str, Any] = {}
        t0 = time.perf_counter()
        models = [CountingForecaster(season=m, seed=s, grace=grace) for s in seeds]
        runs = [sr.evaluate(y, f, horizon=m, grace_period=grace, interval_level=args.level)
                for f in models]
        t_sr = (time.perf_counter() - t0) / len(seeds)
        ref = runs[0]
        res["streamrnn"] = {"mae": np.mean([r.mae for r in runs], axis=0),
                            "std": np.std([r.mae for r in runs], axis=0),
                            "cov": np.mean([r.coverage for r in runs], axis=0),
                            "inf": np.mean([f.infinite / np.maximum(f.issued, 1)
                                            for f in models], axis=0),
                            "n": ref.n, "s": t_sr}
        res["persistence"] = {"mae": np.array(ref.persistence_mae), "s": 0.0}
        sn = sr.evaluate(y, SeasonalNaive(m), horizon=m, grace_period=grace)
        res["seasonal naive"] = {"mae": np.array(sn.mae), "s": sn.seconds}
        if have_river:
            for label, make in river_models(m).items():
                r = sr.evaluate(y, make(), horizon=m, grace_period=grace)
                res[label] = {"mae": np.array(r.mae), "s": r.seconds}
        rows.append({"name": name, "desc": desc, "T": len(y), "m": m, "steps": steps,
                     "scale": mase_scale(y, m), "res": res})
        s = res["streamrnn"]
        print(f"{name:18s} T={len(y):5d} m={m:3d} " + "  ".join(
            f"h={h}: sr {s['mae'][h - 1]:.4g} best baseline "
            f"{min(v['mae'][h - 1] for k, v in res.items() if k != 'streamrnn'):.4g} "
            f"cov {s['cov'][h - 1]:.3f} inf {s['inf'][h - 1]:.2f}" for h in steps)
            + f"  ({t_sr:.1f} s/run)", file=sys.stderr, flush=True)

    print_tables(rows, seeds, have_river, args.level)
    return 0


def _fmt(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else "n/a"


def print_tables(rows: List[Dict[str, Any]], seeds: List[int], have_river: bool,
                 level: float) -> None:
    models = ["streamrnn", "persistence", "seasonal naive"] + (
        ["river SNARIMAX", "river HoltWinters"] if have_river else [])
    wins = {"1": [0, 0], "half": [0, 0], "season": [0, 0]}
    worst = {"1": 0.0, "half": 0.0, "season": 0.0}
    covs: List[float] = []
    infs: List[float] = []
    for which in ("1", "half", "season"):
        print()
        print(f"MAE at horizon {'1' if which == '1' else ('m/2' if which == 'half' else 'm')}"
              f" (m: season; streamrnn mean ± std over seeds {seeds}; best in bold); MASE "
              f"and {level:.0%} interval coverage of streamrnn (infinite: share of its "
              f"intervals that were (-inf, inf), counted as covering)")
        print()
        print("| series | m | h | scored | " + " | ".join(models)
              + " | streamrnn / best baseline | MASE | coverage | infinite |")
        print("|---|---:|---:|---:|" + "---:|" * len(models) + "---:|---:|---:|---:|")
        for row in rows:
            m = row["m"]
            h = {"1": 1, "half": max(1, m // 2), "season": m}[which]
            res = row["res"]
            vals = [float(res[k]["mae"][h - 1]) for k in models]
            best = min(v for v in vals if math.isfinite(v))
            base = min(v for k, v in zip(models, vals) if k != "streamrnn" and math.isfinite(v))
            ratio = vals[0] / base
            if which in wins:
                wins[which][0] += ratio < 1.0
                wins[which][1] += 1
                worst[which] = max(worst[which], ratio)
            cells = []
            for k, v in zip(models, vals):
                c = _fmt(v)
                if v == best:
                    c = f"**{c}**"
                if k == "streamrnn":
                    c += f" ± {res[k]['std'][h - 1]:.2g}"
                cells.append(c)
            sr_ = res["streamrnn"]
            covs.append(float(sr_["cov"][h - 1]))
            infs.append(float(sr_["inf"][h - 1]))
            print(f"| {row['name']} | {m} | {h} | {sr_['n'][h - 1]} | " + " | ".join(cells)
                  + f" | {ratio:.3f} | {vals[0] / row['scale']:.3f} | "
                  f"{sr_['cov'][h - 1]:.3f} | {sr_['inf'][h - 1]:.2f} |")
    print()
    for which in ("1", "half", "season"):
        w, n = wins[which]
        print(f"- horizon {dict(half='m/2', season='m').get(which, '1')}: streamrnn better "
              f"than the best baseline on {w}/{n} series; worst ratio {worst[which]:.3f}")
    if covs:
        print(f"- {level:.0%} interval coverage: {min(covs):.3f} to {max(covs):.3f} over "
              f"the {len(covs)} series-horizons; share of infinite intervals (counted as "
              f"covering): {min(infs):.2f} to {max(infs):.2f}")
    print()
    print("Seconds per full run (forecast + learn at every step, horizon m)")
    print()
    print("| series | " + " | ".join(k for k in models if k != "persistence") + " |")
    print("|---|" + "---:|" * (len(models) - 1))
    for row in rows:
        res = row["res"]
        print(f"| {row['name']} | " + " | ".join(f"{res[k]['s']:.2f}" for k in models
                                                  if k != "persistence") + " |")
    print()
    print(f"Python {platform.python_version()}, streamrnn {sr.__version__}, "
          f"{platform.machine()}")


if __name__ == "__main__":
    sys.exit(main())
