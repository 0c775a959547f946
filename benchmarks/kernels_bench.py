"""The core's own matrix kernels against BLAS, to choose SRNN_OWN_GEMM_MAX (src_c/streamrnn.h).

Each row times one operation of one network three ways, round-robin in one process: the
core's own kernels (the default below the thresholds; ``net._force_blas(False)``), every
product through SciPy's BLAS limited to one thread (``_force_blas(True)`` under
``threadpoolctl``'s ``limit(limits=1)``), and every product through BLAS with its default
threads. The threshold on m*n*k is where BLAS on one thread starts to win.

    PYTHONPATH=DIR_WITH_THREADPOOLCTL python benchmarks/kernels_bench.py [--rounds 7]
    PYTHONPATH=DIR_WITH_THREADPOOLCTL python benchmarks/kernels_bench.py --gemv

``--gemv`` instead times the single-stream ``step`` (matrix-vector products, LSTM D = 8) at
H = 256 ... 1024, own kernel against BLAS gemv on one thread, CPU time (SRNN_OWN_GEMV_MAX).

Operations (LSTM float32 and float64, one layer, D = 8): ``step_many`` over 256 streams (the
gemm (256, 4H, H) and (256, 4H, 8) per call), ``learn_sequence`` on a window of T = 50 (the
gemms (50, 4H, 8) forward, (4H, H, 50) and (4H, 8, 50) for the gradients).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from typing import Dict, List

import numpy as np

import streamrnn as sr

from threadpoolctl import ThreadpoolController

from threads_bench import calibrate, uptime  # the same timing helpers (benchmarks/)


def ops(H: int, dtype: str):
    rng = np.random.default_rng(0)
    net = sr.LSTM(8, H, seed=0, dtype=dtype)
    b = net.new_states(256)
    X = rng.normal(size=(256, 8)).astype(dtype)
    out = np.empty((256, H), dtype)
    net2 = sr.LSTM(8, H, output_size=1, seed=0, dtype=dtype)
    st = sr.SequenceTrainer(net2, optimizer=sr.Adam(lr=1e-4), clip_norm=1.0)
    Xw = rng.normal(size=(50, 8)).astype(dtype)
    Yw = rng.normal(size=(50, 1)).astype(dtype)
    return {"step_many": (net, lambda: net.step_many(X, b, out=out), 256 * 4 * H * (H + 8)),
            "learn_sequence": (net2, lambda: st.learn_sequence(Xw, Yw), 50 * 4 * H * (H + 16))}


def gemv_rows(rounds: int, hidden: List[int], dtypes: List[str]) -> None:
    from threadpoolctl import threadpool_limits
    print("| dtype | H | elements (4H x (H+8)) | own µs | BLAS gemv 1 thread µs | own / BLAS |")
    print("|---|---|---|---|---|---|")
    with threadpool_limits(1):
        for dt in dtypes:
            for H in hidden:
                net = sr.LSTM(8, H, seed=0, dtype=dt)
                s = net.new_state()
                x = np.ones(8, dt)
                out = np.empty(H, dt)
                r: Dict[bool, List[float]] = {False: [], True: []}
                for _ in range(rounds):
                    for f in (False, True):
                        net._force_blas(f)
                        net.step(x, s, out)
                        t, n = time.process_time(), 0
                        while time.process_time() - t < 0.1:
                            net.step(x, s, out)
                            n += 1
                        r[f].append((time.process_time() - t) / n * 1e6)
                net._force_blas(False)
                o, b = statistics.median(r[False]), statistics.median(r[True])
                print(f"| {dt} | {H} | {4 * H * (H + 8):,} | {o:.1f} | {b:.1f} | {o / b:.2f} |",
                      flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--hidden", type=int, nargs="+", default=[16, 32, 64, 128, 256, 512])
    ap.add_argument("--dtype", nargs="+", default=["float32", "float64"])
    ap.add_argument("--gemv", action="store_true", help="single-stream step: own gemv vs BLAS")
    a = ap.parse_args()
    # SciPy's BLAS is loaded on first need: load it now, so that threadpoolctl sees (and
    # limits) it too
    getattr(sr._core, "_load_blas", lambda: None)()
    ctl = ThreadpoolController()
    print(f"command: python benchmarks/kernels_bench.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"Python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    print(f"at start: {uptime()}\n")
    if a.gemv:
        gemv_rows(a.rounds, [256, 384, 512, 768, 1024] if a.hidden == ap.get_default("hidden")
                  else a.hidden, a.dtype)
        print(f"\nat end: {uptime()}; medians of {a.rounds} round-robin rounds, CPU time")
        return 0
    print("| op | dtype | H | multiply-adds per call | own µs | BLAS 1 thread µs | BLAS default µs "
          "| own / BLAS 1 | own / BLAS default |")
    print("|---|---|---|---|---|---|---|---|---|")
    for dt in a.dtype:
        for H in a.hidden:
            for name, (net, fn, macs) in ops(H, dt).items():
                net._force_blas(False)
                inner = calibrate(fn)
                s: Dict[str, List[float]] = {"own": [], "b1": [], "bd": []}
                for r in range(a.rounds):
                    for k in ("own", "b1", "bd"):
                        net._force_blas(k != "own")
                        cm = ctl.limit(limits=1) if k == "b1" else None
                        if cm:
                            cm.__enter__()
                        fn()
                        t0 = time.perf_counter()
                        for _ in range(inner):
                            fn()
                        s[k].append((time.perf_counter() - t0) / inner * 1e6)
                        if cm:
                            cm.__exit__(None, None, None)
                net._force_blas(False)
                m = {k: statistics.median(v) for k, v in s.items()}
                print(f"| {name} | {dt} | {H} | {macs:,} | {m['own']:.1f} | {m['b1']:.1f} | "
                      f"{m['bd']:.1f} | {m['own'] / m['b1']:.2f} | {m['own'] / m['bd']:.2f} |",
                      flush=True)
    print(f"\nat end: {uptime()}; medians of {a.rounds} round-robin rounds, wall clock")
    return 0


if __name__ == "__main__":
    sys.exit(main())
