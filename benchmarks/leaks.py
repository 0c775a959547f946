"""Leak check: many steps and many create/destroy cycles with resident memory flat and no
growth in traced Python allocations.

Full figures (RELIABILITY.md)::

    python benchmarks/leaks.py --steps 10000000 --cycles 100000

CI runs scaled-down counts through tests/test_leaks.py. Prints one JSON object: for each
phase, the resident set size (RSS, from /proc/self/statm, or psutil) after a warm-up and at
the end (``rss_steps``/``rss_cycles`` run between the two readings), and the growth of the
traced Python allocations (tracemalloc) over a traced run of a twentieth of the phase made
right after an identical traced run (which fills bounded caches and free lists).

Phases
------
steps : ``steps`` timesteps through every stepping entry point, in rounds: ``net.step``
    (one call per step), ``net.run`` (1000 steps per call), ``net.step_many`` (8 streams
    per call), ``trainer.learn_one``, ``trainer.learn_many`` (1000 per call),
    ``trainer.predict_one``, ``Forecaster.learn_one`` and ``forecast(3)``.
cycles : ``cycles`` times: create a network (LSTM, GRU, RNN in turn), a state, a state batch,
    a trainer, a forecaster, use each once, drop them (plus a save/load round trip every
    100 cycles).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import streamrnn as sr  # noqa: E402

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """Resident set size of this process."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:     # pragma: no cover - not Linux
        import psutil
        return psutil.Process().memory_info().rss


class Stepper:
    """Objects that are stepped over and over (allocated once)."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.net = sr.LSTM(4, 16, output_size=2, dtype="float64", seed=0)
        self.state = self.net.new_state()
        self.batch = self.net.new_states(8)
        self.X = rng.standard_normal((1000, 4)) * 0.5
        self.Y = np.tanh(self.X[:, :2])
        self.Xb = rng.standard_normal((8, 4))
        self.out = np.empty(2)
        self.trainer = sr.OnlineTrainer(sr.GRU(4, 16, output_size=2, dtype="float64", seed=1),
                                        optimizer=sr.Adam(1e-3), k1=4, k2=16)
        self.fc = sr.Forecaster(hidden_size=8, seed=2)
        self.t = 0

    def round(self) -> int:
        """One round of every entry point; returns the number of steps taken."""
        net, s, X, Y = self.net, self.state, self.X, self.Y
        n = 0
        for t in range(100):
            net.step(X[t], s, out=self.out)
            net.step(X[t], s)
        n += 200
        net.run(X, s)
        n += 1000
        for _ in range(10):
            net.step_many(self.Xb, self.batch)
            net.step_many(self.Xb[:3], self.batch, index=[5, 1, 2])
        n += 110
        tr = self.trainer
        for t in range(100):
            tr.learn_one(X[t], Y[t])
            tr.predict_one(X[t])
        n += 100
        tr.learn_many(X, Y)
        n += 1000
        for _ in range(20):
            self.fc.learn_one(float(np.sin(0.1 * self.t)))
            self.t += 1
        self.fc.forecast(3)
        n += 20
        return n


def one_cycle(i: int, tmp: Path) -> None:
    cls = (sr.LSTM, sr.GRU, sr.RNN)[i % 3]
    net = cls(3, 8, output_size=1, seed=i % 7)
    s = net.new_state()
    net.step([0.0, 0.0, 0.0], s)
    b = net.new_states(4)
    net.step_many(np.zeros((4, 3), dtype=net.dtype), b)
    b[1].copy()
    tr = sr.OnlineTrainer(net, k1=2, k2=4)
    tr.learn_one(np.zeros(3, dtype=net.dtype), np.ones(1, dtype=net.dtype))
    fc = sr.Forecaster(hidden_size=4, seed=1)
    fc.learn_one(1.0)
    fc.learn_one(2.0)
    if i % 100 == 0:
        sr.save(tr, tmp / "t.srnn")
        sr.load(tmp / "t.srnn")
        sr.save(fc, tmp / "f.srnn")
        sr.load(tmp / "f.srnn")
    # errors (and the objects they reference) must not leak either
    try:
        net.step([0.0] * 4, s)
    except ValueError:
        pass


def _traced(run, n):
    """Traced Python allocations: run(n) twice under tracemalloc; the growth during the
    second run (the first fills caches and free lists, which are bounded)."""
    gc.collect()
    tracemalloc.start()
    try:
        run(n)
        gc.collect()
        a = tracemalloc.get_traced_memory()[0]
        run(n)
        gc.collect()
        b = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return a, b


def measure(steps: int, cycles: int) -> dict:
    """Run both phases; return their figures (see the module doc)."""
    st = Stepper()
    counter = {"steps": 0}

    def run_steps(n):
        target = counter["steps"] + n
        while counter["steps"] < target:
            counter["steps"] += st.round()

    run_steps(5000)         # warm-up: caches, allocator pools, first-call paths
    traced_n = max(steps // 20, 20000)
    ta, tb = _traced(run_steps, traced_n)
    gc.collect()
    rss0, t0, s0 = rss_bytes(), time.perf_counter(), counter["steps"]
    run_steps(max(steps - counter["steps"], 0))
    gc.collect()
    out = {"steps": {"steps": counter["steps"], "rss_start": rss0, "rss_end": rss_bytes(),
                     "rss_steps": counter["steps"] - s0,
                     "traced_steps": traced_n, "traced_growth": tb - ta,
                     "seconds": round(time.perf_counter() - t0, 1)}}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        counter["cycles"] = 0

        def run_cycles(n):
            for _ in range(n):
                one_cycle(counter["cycles"], tmp)
                counter["cycles"] += 1

        run_cycles(200)
        traced_c = max(cycles // 20, 1000)
        ta, tb = _traced(run_cycles, traced_c)
        gc.collect()
        rss0, t0, c0 = rss_bytes(), time.perf_counter(), counter["cycles"]
        run_cycles(max(cycles - counter["cycles"], 0))
        gc.collect()
        out["cycles"] = {"cycles": counter["cycles"], "rss_start": rss0,
                         "rss_end": rss_bytes(), "rss_cycles": counter["cycles"] - c0,
                         "traced_cycles": traced_c, "traced_growth": tb - ta,
                         "seconds": round(time.perf_counter() - t0, 1)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=10_000_000)
    ap.add_argument("--cycles", type=int, default=100_000)
    a = ap.parse_args()
    print(json.dumps(measure(a.steps, a.cycles), indent=1))


if __name__ == "__main__":
    main()
