"""An LSTM learns a noisy sine wave online, one sample at a time.

TBPTT(k1=1, k2=32), Adam, clip_norm=1. Each value is predicted before the truth arrives
(progressive validation), so the printed MAE is an honest out-of-sample error. Prints the
MAE per block of samples (it falls as the model learns), against the persistence forecast
(tomorrow = today), and the time per learned sample.

    python examples/online_sine.py [--steps 6000] [--seed 0]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import streamrnn as sr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--block", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    t = np.arange(args.steps + 1)
    series = (np.sin(2 * np.pi * t / 50) + 0.1 * rng.normal(size=t.size)).astype(np.float32)

    net = sr.LSTM(input_size=1, hidden_size=64, output_size=1, seed=args.seed)
    trainer = sr.OnlineTrainer(net, loss="mse", optimizer=sr.Adam(lr=3e-3), k1=1, k2=32,
                               clip_norm=1.0)
    x = np.empty(1, np.float32)
    y = np.empty(1, np.float32)
    errors, naive = [], []
    print(f"{'samples':>8s} {'MAE':>8s} {'persistence MAE':>16s}")
    start = time.perf_counter()
    for i in range(args.steps):
        x[0] = series[i]
        y[0] = series[i + 1]
        pred = trainer.learn_one(x, y)  # the forecast of series[i+1], made before learning
        errors.append(abs(float(pred[0]) - y[0]))
        naive.append(abs(series[i] - y[0]))
        if (i + 1) % args.block == 0:
            print(f"{i + 1:8d} {np.mean(errors[-args.block:]):8.4f} "
                  f"{np.mean(naive[-args.block:]):16.4f}")
    elapsed = time.perf_counter() - start
    print(f"{elapsed / args.steps * 1e6:.1f} µs per learned sample "
          f"({trainer.updates} updates, {trainer.skipped_updates} skipped, "
          f"last pre-clip gradient norm {trainer.last_grad_norm:.3g})")


if __name__ == "__main__":
    main()
