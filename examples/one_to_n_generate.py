"""one-to-n: generate a whole sequence from one input.

The input is a single vector (amplitude a, frequency f); the output is the curve
y_t = a * sin(2 pi f t) * exp(-t / 40) for t = 1..24. An encoder GRU reads the one input
(a window of length one) and hands its state to a decoder GRU, which generates the curve
autoregressively: each generated value is the decoder's next input (``sr.Seq2Seq``,
context "init_state", teacher forcing in training, greedy generation in inference). Prints
the error of generated curves for held-out (a, f) against the error of the mean curve, and
the share of curves generated within 0.1 RMSE.

    python examples/one_to_n_generate.py [--quick] [--seed 0]
"""
from __future__ import annotations

import argparse
import time
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

import streamrnn as sr

N = 24


def curve(a: float, f: float) -> np.ndarray:
    """(N, 1) float32: the target sequence for input (a, f)."""
    t = np.arange(1, N + 1)
    return (a * np.sin(2 * np.pi * f * t) * np.exp(-t / 40)).astype(np.float32)[:, None]


def dataset(n: int, rng: np.random.Generator) -> Tuple[list, list]:
    a = rng.uniform(0.5, 1.5, size=n)
    f = rng.uniform(0.03, 0.12, size=n)
    src = [np.array([[ai, fi * 10]], dtype=np.float32) for ai, fi in zip(a, f)]  # (1, 2)
    return src, [curve(ai, fi) for ai, fi in zip(a, f)]


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer curves and epochs (tests)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    n_train, epochs = (1000, 10) if args.quick else (3000, 30)
    src, tgt = dataset(n_train, rng)
    src_t, tgt_t = dataset(300, rng)
    model = sr.Seq2Seq(sr.GRU(2, 32, seed=args.seed),
                       sr.GRU(1, 32, output_size=1, seed=args.seed + 1),
                       context="init_state", loss="mse", start=[0.0],
                       optimizer=sr.Adam(lr=5e-3), clip_norm=1.0)
    t0 = time.perf_counter()
    losses = model.fit(src, tgt, epochs=epochs, batch_size=8, seed=args.seed)
    elapsed = time.perf_counter() - t0
    gen = np.array([model.generate(s, max_len=N)[:, 0] for s in src_t])
    truth = np.array([t[:, 0] for t in tgt_t])
    rmse = np.sqrt(((gen - truth) ** 2).mean(axis=1))
    base = np.sqrt(((truth - np.array(tgt)[:, :, 0].mean(axis=0)) ** 2).mean(axis=1))
    within = float((rmse < 0.1).mean())
    print(f"Seq2Seq(GRU 32 -> GRU 32) on {n_train} curves x {epochs} epochs in "
          f"{elapsed:.1f} s (last epoch mean loss {losses[-1]:.2e})")
    print(f"300 held-out inputs: median RMSE of the generated curve {np.median(rmse):.3f} "
          f"(mean curve {np.median(base):.3f}); curves within 0.1 RMSE: {within:.3f}")
    a, f = src_t[0][0]
    print(f"a={a:.2f} f={f / 10:.3f}: truth     " + " ".join(f"{v:+.2f}" for v in truth[0][:8])
          + " ...")
    print(" " * 17 + "generated " + " ".join(f"{v:+.2f}" for v in gen[0][:8]) + " ...")
    return {"within_0.1": within, "median_rmse": float(np.median(rmse)),
            "baseline_rmse": float(np.median(base)), "seconds": elapsed}


if __name__ == "__main__":
    main()
