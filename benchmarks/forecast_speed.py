"""Per-value cost of sr.Forecaster: learn_one + forecast(1), and forecast(h) per horizon.

    PYTHONPATH=. OPENBLAS_NUM_THREADS=1 python benchmarks/forecast_speed.py
    # old against new, round-robin (each round runs every tree in turn in a subprocess,
    # so machine load hits both alike; medians over the rounds):
    OPENBLAS_NUM_THREADS=1 python benchmarks/forecast_speed.py --trees /path/old,. --rounds 7

Rows (microseconds per value; each round: the fastest of 15 interleaved small batches;
the table: median and min over rounds):
  net         the network alone: trainer.observe + trainer.advance (one training step)
  pair        learn_one(y) + forecast(1), hidden 32, no season
  season=m    learn_one(y) + forecast(1) with season m (tracks max_horizon = m horizons)
  forecast(h) forecast(h) alone after a learn_one (no season), per horizon h
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import timeit

SEASONS = (12, 52)
HORIZONS = (1, 2, 4, 8, 16)


def _series(n):
    return [10 + 5 * math.sin(0.3 * t) + 0.1 * ((t * 7919) % 13) for t in range(n)]


def measure(hidden: int = 32, reps: int = 15) -> dict:
    """Every row measured in small batches, the batches of all rows interleaved, reps
    times; a row's figure is its fastest batch (load spikes only ever slow a batch down)."""
    import numpy as np
    import streamrnn as sr
    ys = _series(400)
    feed = _series(100000)[400:]

    def trained(**kw):
        f = sr.Forecaster(hidden_size=hidden, seed=0, **kw)
        for y in ys:
            f.learn_one(y)
        return f

    jobs = {}
    f = trained()
    s = f._streams[None]
    tr = s.trainer
    u = s.u.copy()
    tg = np.array([0.1], dtype=s.u.dtype)
    jobs["net"] = (200, lambda i: (tr.observe(tg), tr.advance(u)))
    f1 = trained()
    jobs["pair"] = (200, lambda i: (f1.learn_one(feed[i]), f1.forecast(1)))
    for m in SEASONS:
        try:
            fm = trained(season=m)
        except TypeError:            # a version without season=
            continue
        jobs[f"season={m}"] = (20, lambda i, fm=fm: (fm.learn_one(feed[i]), fm.forecast(1)))
    fh = trained()
    for h in HORIZONS:
        jobs[f"forecast({h})"] = (200 if h == 1 else 40, lambda i, h=h: fh.forecast(h))
    best = {k: math.inf for k in jobs}
    i = 0
    for _ in range(reps):
        for k, (n, fn) in jobs.items():
            t0 = timeit.default_timer()
            for _ in range(n):
                fn(i)
                i += 1
            best[k] = min(best[k], (timeit.default_timer() - t0) / n * 1e6)
    return best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", default=None,
                    help="comma-separated source trees (each with its built extension)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(measure()))
        return
    trees = [os.path.abspath(t) for t in (a.trees.split(",") if a.trees else ["."])]
    runs = {t: [] for t in trees}
    for _ in range(a.rounds):
        for t in trees:
            env = dict(os.environ, PYTHONPATH=t)
            res = subprocess.run([sys.executable, os.path.abspath(__file__), "--child"],
                                 env=env, cwd=t, capture_output=True, text=True, check=True)
            runs[t].append(json.loads(res.stdout.strip().splitlines()[-1]))
    rows = []
    for t in trees:
        rows += [r for r in runs[t][0] if r not in rows]
    print("| per value (µs, median (min) of %d rounds) | " % a.rounds
          + " | ".join(os.path.basename(t.rstrip("/")) or t for t in trees) + " |")
    print("|---|" + "---:|" * len(trees))
    for r in rows:
        cells = []
        for t in trees:
            vals = [x[r] for x in runs[t] if r in x]
            cells.append(f"{statistics.median(vals):.1f} ({min(vals):.1f})" if vals else "-")
        print(f"| {r} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
