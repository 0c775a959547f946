"""Online forecasting on real series: streamrnn's Forecaster against persistence and river.

Progressive validation (``sr.evaluate``): at every time step each model forecasts the next
values before the truth arrives, then learns it. Every model of a series is scored on the
same points (after a common grace period, so that river's seasonal models are initialised).
The series come from packages installed only for this script (not dependencies):

    pip install statsmodels river      # data sets, and river's SNARIMAX / HoltWinters
    python benchmarks/forecast_eval.py [--seeds 0,1,2] [--horizon 3] [--markdown]

Series: statsmodels' ``sunspots`` (yearly, public domain), ``nile`` (yearly, public domain),
``co2`` (weekly Mauna Loa CO2 with 59 missing weeks, public domain), ``elnino`` (monthly sea
surface temperatures, public domain, flattened to one series); river's
``AirlinePassengers`` (monthly), ``WaterFlow`` (hourly) and ``TrumpApproval`` (daily).
"""
from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

import streamrnn as sr

# name -> (loader, seasonal period for river's models, description)
SERIES: Dict[str, Tuple[Callable[[], np.ndarray], int, str]] = {}


def _sm(name: str, column: Optional[str] = None) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import statsmodels.api as sm

        data = getattr(sm.datasets, name).load_pandas().data
        if name == "elnino":
            return data.iloc[:, 1:].to_numpy(float).ravel()
        return data[column].to_numpy(float)
    return load


def _river(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from river import datasets

        return np.array([y for _, y in getattr(datasets, name)()], dtype=float)
    return load


SERIES["sunspots"] = (_sm("sunspots", "SUNACTIVITY"), 0, "statsmodels, yearly 1700-2008")
SERIES["nile"] = (_sm("nile", "volume"), 0, "statsmodels, yearly 1871-1970")
SERIES["co2"] = (_sm("co2", "co2"), 52, "statsmodels, weekly 1958-2001, 59 missing")
SERIES["elnino"] = (_sm("elnino"), 12, "statsmodels, monthly SST 1950-2010")
SERIES["AirlinePassengers"] = (_river("AirlinePassengers"), 12, "river, monthly 1949-1960")
SERIES["WaterFlow"] = (_river("WaterFlow"), 0, "river, hourly")
SERIES["TrumpApproval"] = (_river("TrumpApproval"), 0, "river, daily 2017-2020")


def river_models(m: int) -> Dict[str, Callable[[], Any]]:
    """river's models with settings from its documentation (seasonal when m > 1)."""
    from river import linear_model, optim, preprocessing, time_series

    def snarimax() -> Any:
        p = q = m if m > 1 else 3
        return time_series.SNARIMAX(
            p=p, d=1, q=q, m=max(m, 1), sd=1 if m > 1 else 0,
            regressor=(preprocessing.StandardScaler()
                       | linear_model.LinearRegression(intercept_init=0.0,
                                                       optimizer=optim.SGD(0.01),
                                                       intercept_lr=0.3)))

    def holtwinters() -> Any:
        if m > 1:
            return time_series.HoltWinters(alpha=0.3, beta=0.1, gamma=0.6, seasonality=m)
        return time_series.HoltWinters(alpha=0.3, beta=0.1)

    return {"river SNARIMAX": snarimax, "river HoltWinters": holtwinters}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2", help="streamrnn seeds (mean and spread)")
    ap.add_argument("--horizon", type=int, default=3)
    ap.add_argument("--series", default=",".join(SERIES))
    ap.add_argument("--no-river", action="store_true")
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    H = args.horizon
    try:
        import river  # noqa: F401

        have_river = not args.no_river
    except ImportError:
        have_river = False

    rows: List[Dict[str, Any]] = []
    for name in args.series.split(","):
        load, m, desc = SERIES[name]
        y = load()
        grace = max(2 * m, 10)
        res: Dict[str, Any] = {}
        t0 = time.perf_counter()
        runs = [sr.evaluate(y, sr.Forecaster(seed=s), horizon=H, grace_period=grace)
                for s in seeds]
        t_sr = (time.perf_counter() - t0) / len(seeds)
        ref = runs[0]
        res["streamrnn"] = ([float(np.mean([r.mae[k] for r in runs])) for k in range(H)],
                            [float(np.std([r.mae[k] for r in runs])) for k in range(H)],
                            [float(np.mean([r.rmse[k] for r in runs])) for k in range(H)],
                            ref.n, t_sr)
        res["persistence"] = (ref.persistence_mae, [0.0] * H, ref.persistence_rmse, ref.n, 0.0)
        if have_river:
            for label, make in river_models(m).items():
                t0 = time.perf_counter()
                r = sr.evaluate(y, make(), horizon=H, grace_period=grace)
                res[label] = (r.mae, [0.0] * H, r.rmse, r.n, time.perf_counter() - t0)
        rows.append({"name": name, "desc": desc, "T": len(y),
                     "missing": int(np.isnan(y).sum()), "res": res})
        s = res["streamrnn"]
        print(f"{name:18s} T={len(y):5d} streamrnn MAE@1 {s[0][0]:.4g}±{s[1][0]:.2g} "
              f"persistence {ref.persistence_mae[0]:.4g}"
              + "".join(f"  {k} {v[0][0]:.4g}" for k, v in res.items()
                        if k.startswith("river")), file=sys.stderr, flush=True)

    print_tables(rows, H, seeds, have_river, args.markdown)
    return 0


def _cell(v: float, best: bool) -> str:
    if not math.isfinite(v):
        return "n/a"
    s = f"{v:.4g}"
    return f"**{s}**" if best else s


def print_tables(rows: List[Dict[str, Any]], H: int, seeds: List[int], have_river: bool,
                 markdown: bool) -> None:
    models = ["streamrnn", "persistence"] + (["river SNARIMAX", "river HoltWinters"]
                                             if have_river else [])
    for k in sorted({0, H - 1}):
        print()
        print(f"MAE, forecasts {k + 1} step(s) ahead (streamrnn: mean ± std over seeds "
              f"{seeds}; best in bold)")
        print()
        print("| series | T | scored | " + " | ".join(models) + " | streamrnn vs persistence |")
        print("|---|---:|---:|" + "---:|" * len(models) + "---:|")
        for row in rows:
            res = row["res"]
            vals = [res[mdl][0][k] for mdl in models]
            best = min(v for v in vals if math.isfinite(v))
            cells = []
            for mdl, v in zip(models, vals):
                c = _cell(v, v == best)
                if mdl == "streamrnn":
                    c += f" ± {res[mdl][1][k]:.2g}"
                cells.append(c)
            skill = 1 - res["streamrnn"][0][k] / res["persistence"][0][k]
            print(f"| {row['name']} | {row['T']} | {res['streamrnn'][3][k]} | "
                  + " | ".join(cells) + f" | {skill:+.1%} |")
    print()
    print("RMSE, one step ahead")
    print()
    print("| series | " + " | ".join(models) + " |")
    print("|---|" + "---:|" * len(models))
    for row in rows:
        res = row["res"]
        print(f"| {row['name']} | " + " | ".join(_cell(res[m][2][0], False) for m in models)
              + " |")
    print()
    print("Seconds per full run (forecast + learn at every step)")
    print()
    print("| series | " + " | ".join(m for m in models if m != "persistence") + " |")
    print("|---|" + "---:|" * (len(models) - 1))
    for row in rows:
        res = row["res"]
        print(f"| {row['name']} | " + " | ".join(f"{res[m][4]:.2f}" for m in models
                                                  if m != "persistence") + " |")
    print()
    print(f"Python {platform.python_version()}, streamrnn {sr.__version__}, "
          f"{platform.machine()}")


if __name__ == "__main__":
    sys.exit(main())
