"""``python -m streamrnn selfcheck``: a self-check of the installed library.

Prints the version, the BLAS that SciPy provides (and that the C core calls), checks the
C core against the NumPy reference on a small network, and times one ``step`` of the C core
against the reference's step (median of repeated rounds). Exits 0 when the check passes.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Callable, List

import numpy as np


def _blas_description() -> str:
    try:
        import scipy

        info = scipy.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{info.get('name')} {info.get('version')} (through scipy {scipy.__version__})"
    except Exception as e:  # pragma: no cover - depends on the SciPy build
        return f"unknown ({e})"


def _median_time(fn: Callable[[], object], inner: int, rounds: int) -> float:
    """Median over rounds of the mean time of one call, in seconds."""
    times: List[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return float(np.median(times))


def main(argv: "list[str] | None" = None) -> int:
    import streamrnn as sr
    from streamrnn import reference

    ap = argparse.ArgumentParser(prog="python -m streamrnn selfcheck", description=__doc__)
    ap.add_argument("--rounds", type=int, default=7, help="timing rounds (median is printed)")
    args = ap.parse_args(argv)

    print(f"streamrnn {sr.__version__}")
    print(f"numpy {np.__version__}; BLAS: {_blas_description()}")

    # Exactness check: float64 C core against the NumPy reference.
    rng = np.random.default_rng(0)
    worst = 0.0
    for cls, cell in ((sr.LSTM, "lstm"), (sr.GRU, "gru"), (sr.RNN, "rnn_tanh")):
        net = cls(4, 16, num_layers=2, output_size=3, dtype="float64", seed=1)
        ref = reference.Net(cell, 4, 16, 2, 3, params=net.parameters().copy())
        X = rng.normal(size=(25, 4))
        Y = net.run(X, net.new_state())
        h, c = ref.zero_state()
        Yr, _, _ = ref.run(X, h, c)
        worst = max(worst, float(np.max(np.abs(Y - Yr) / (np.abs(Yr) + 1e-300))))
    ok = worst < 1e-12
    print(f"C core vs NumPy reference (float64, 3 cells, 2 layers, T=25): "
          f"max relative difference {worst:.1e} {'OK' if ok else 'FAILED'}")

    print("per-step time, median of rounds (LSTM, num_layers=1, output_size=1):")
    print(f"  {'dtype':8s} {'D':>3s} {'H':>4s} {'C core step':>12s} {'NumPy ref':>11s} {'speed-up':>9s}")
    for dtype in ("float32", "float64"):
        for D, H in ((8, 64), (8, 256)):
            net = sr.LSTM(D, H, output_size=1, dtype=dtype, seed=0)
            s = net.new_state()
            x = rng.normal(size=D).astype(dtype)
            out = np.empty(1, dtype=dtype)
            ref = reference.Net("lstm", D, H, 1, 1, params=net.parameters().copy())
            h, c = ref.zero_state()
            t_c = _median_time(lambda: net.step(x, s, out), 2000, args.rounds)
            t_r = _median_time(lambda: ref.step(x, h, c), 200, args.rounds)
            print(f"  {dtype:8s} {D:3d} {H:4d} {t_c * 1e6:9.2f} us {t_r * 1e6:8.1f} us "
                  f"{t_r / t_c:8.1f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
